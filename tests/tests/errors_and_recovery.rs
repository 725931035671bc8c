//! What users see when things go wrong, and that nothing is left behind: bad profiles, refused callers,
//! crashes and a second helper.

use std::process::Command;

use culvert_tests::{Lab, bin, in_ns, ip, ping, run, stderr, udp_profile};

// culvert's exit statuses (culvert(1), EXIT STATUS), as a script sees them.
const FAILED: i32 = 1;
const NO_HELPER: i32 = 3;
const NOT_ALLOWED: i32 = 4;
const INVALID_PROFILE: i32 = 5;
const NOT_FOUND: i32 = 6;

#[test]
fn bad_profiles_fail_clearly_and_leave_nothing() {
    let mut lab = Lab::new();
    let (a, _b) = lab.two_hosts();
    lab.start_helper(&a, "a", &[]);
    let h = &lab.helpers[0];

    // Refused by the client: the message names the file, the line and the fix.
    let typo = lab.profile(
        "typo",
        &udp_profile("10.9.0.1/24", 8285, "cv-t", "172.31.0.2:8285", "10.9.0.0/24", 1400)
            .replace("listen_port", "listen_prot"),
    );
    let out = h.culvert(&["up", typo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(INVALID_PROFILE));
    let msg = stderr(&out);
    assert!(msg.contains("typo.toml") && msg.contains("listen_prot") && msg.contains("spelling"), "{msg}");

    let bad_cidr =
        lab.profile("cidr", &udp_profile("10.9.0.1/24", 8285, "cv-t", "172.31.0.2:8285", "10.9.0.0/33", 1400));
    let out = h.culvert(&["up", bad_cidr.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(INVALID_PROFILE));
    let msg = stderr(&out);
    assert!(msg.contains("peer[0].allowed_ips[0]") && msg.contains("10.9.0.0/33"), "{msg}");

    // What is not there, a file or a tunnel.
    let out = h.culvert(&["up", lab.dir.join("absent.conf").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(NOT_FOUND), "{}", stderr(&out));
    assert!(stderr(&out).contains("absent.conf"), "{}", stderr(&out));
    let out = h.culvert(&["down", "absent"]);
    assert_eq!(out.status.code(), Some(NOT_FOUND), "{}", stderr(&out));

    // Refused by the helper halfway: a route that collides with one through another interface. The device
    // and the routes made before the collision are rolled back.
    ip(&["-n", &a, "link", "add", "taken0", "type", "veth", "peer", "name", "taken1"]);
    ip(&["-n", &a, "link", "set", "taken0", "up"]);
    ip(&["-n", &a, "route", "add", "10.50.0.0/24", "dev", "taken0"]);
    let text = "kind = \"udp\"\naddress = [\"10.9.0.1/24\"]\nlisten_port = 8285\ninterface = \"cv-half\"\n\
                [[peer]]\nendpoint = \"172.31.0.2:8285\"\nallowed_ips = [\"10.40.0.0/24\", \"10.50.0.0/24\"]\n";
    let clash = lab.profile("clash", text);
    let out = h.culvert(&["up", clash.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(INVALID_PROFILE), "a profile the helper refuses is invalid too");
    let msg = stderr(&out);
    assert!(msg.contains("peer[0].allowed_ips[1]") && msg.contains("already exists"), "{msg}");
    assert!(!ip(&["-n", &a, "link", "show"]).contains("cv-half"));
    assert!(!ip(&["-n", &a, "route", "show"]).contains("10.40.0.0"));
    assert!(h.records().is_empty(), "records left: {:?}", h.records());

    // An interface name that belongs to a link Culvert did not create.
    let squat =
        lab.profile("squat", &udp_profile("10.9.0.1/24", 8285, "taken0", "172.31.0.2:8285", "10.9.0.0/24", 1400));
    let msg = stderr(&h.culvert(&["up", squat.to_str().unwrap()]));
    assert!(msg.contains("interface") && msg.contains("Culvert did not create"), "{msg}");
    assert!(ip(&["-n", &a, "link", "show", "taken0"]).contains("taken0"), "the foreign link must survive");

    // A port in use fails before anything is created.
    let _squatter = lab.spawn(in_ns(&a, "socat").args(["-u", "UDP-RECV:8399", "OPEN:/dev/null"]));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let busy =
        lab.profile("busy", &udp_profile("10.9.0.1/24", 8399, "cv-busy", "172.31.0.2:8285", "10.9.0.0/24", 1400));
    let msg = stderr(&lab.helpers[0].culvert(&["up", busy.to_str().unwrap()]));
    assert!(msg.contains("listen_port") && msg.contains("8399") && msg.contains("in use"), "{msg}");
    assert!(!ip(&["-n", &a, "link", "show"]).contains("cv-busy"));

    // The same name twice.
    let good =
        lab.profile("good", &udp_profile("10.9.0.1/24", 8285, "cv-good", "172.31.0.2:8285", "10.9.0.0/24", 1400));
    // --json gives what was said as data: the status of the tunnel that came up.
    let up: serde_json::Value =
        serde_json::from_str(&lab.helpers[0].culvert_ok(&["up", good.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!((&up["name"], &up["state"], &up["interface"]), (&"good".into(), &"up".into(), &"cv-good".into()));
    let out = lab.helpers[0].culvert(&["up", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(FAILED));
    let msg = stderr(&out);
    assert!(msg.contains("already up") && msg.contains("culvert down good"), "{msg}");
}

#[test]
fn no_helper_running_says_how_to_start_it() {
    let lab = Lab::new();
    let out = run(Command::new(bin("culvert")).arg("--socket").arg(lab.dir.join("none.sock")).arg("status"));
    assert_eq!(out.status.code(), Some(NO_HELPER));
    let msg = stderr(&out);
    assert!(msg.contains("culvertd is not running") && msg.contains("systemctl start culvertd"), "{msg}");
    // The environment variable names the socket too.
    let out = run(Command::new(bin("culvert")).env("CULVERT_SOCKET", lab.dir.join("env.sock")).arg("status"));
    assert!(stderr(&out).contains("env.sock"), "{}", stderr(&out));
}

#[test]
fn callers_outside_the_group_are_refused_by_mode_and_by_credentials() {
    let mut lab = Lab::new();
    let (a, _b) = lab.two_hosts();
    // Group `nogroup` (65534) stands for `culvert`; uid 4242 has no account and so no memberships.
    lab.start_helper(&a, "a", &["--group", "nogroup"]);
    let p =
        lab.profile("rootone", &udp_profile("10.9.0.1/24", 8285, "cv-root", "172.31.0.2:8285", "10.9.0.0/24", 1400));
    let mine =
        lab.profile("mine", &udp_profile("10.8.0.1/24", 8286, "cv-mine", "172.31.0.2:8286", "10.8.0.0/24", 1400));
    let h = &lab.helpers[0];
    let socket = h.socket.clone();
    let mode = std::fs::metadata(&socket).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777, 0o660);
    assert_eq!(std::os::unix::fs::MetadataExt::gid(&mode), 65534);

    // Layer 1: the socket's mode. The advice names the group that owns the socket, the one culvertd was given
    // (`--group nogroup`), not the default.
    let out = h.culvert_as(4242, 4242, &["status"]);
    assert_eq!(out.status.code(), Some(NOT_ALLOWED));
    let msg = stderr(&out);
    assert!(msg.contains("may not use culvertd's socket") && msg.contains("usermod -aG nogroup"), "{msg}");
    assert!(!msg.contains("group `culvert`"), "{msg}");

    // Layer 2: SO_PEERCRED, with the socket made world-connectable for the test.
    std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let out = h.culvert_as(4242, 4242, &["status"]);
    assert_eq!(out.status.code(), Some(NOT_ALLOWED));
    let msg = stderr(&out);
    assert!(
        msg.contains("uid 4242") && msg.contains("group `nogroup`") && msg.contains("usermod -aG nogroup"),
        "{msg}"
    );
    assert!(h.log_text().contains("refused uid 4242"), "{}", h.log_text());

    // A member of the group is served, and may bring down only its own tunnels.
    h.culvert_ok(&["up", p.to_str().unwrap()]);
    let out = h.culvert_as(4242, 65534, &["status", "--json"]);
    assert!(out.status.success(), "{}\n{}", stderr(&out), h.log_text());
    let out = h.culvert_as(4242, 65534, &["down", "rootone"]);
    assert!(stderr(&out).contains("brought up by uid 0"), "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(NOT_ALLOWED));
    let out = h.culvert_as(4242, 65534, &["up", mine.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(h.status("mine")["owner_uid"], 4242);
    let out = h.culvert_as(4242, 65534, &["down", "--all"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "mine down");
    assert_eq!(h.status("rootone")["state"], "up");

    // So is a process given the group only as a supplementary one when it started (systemd's
    // SupplementaryGroups=, `sg`), which the group database does not list for its user: culvertd reads the
    // caller's groups from the socket (SO_PEERGROUPS). The socket's mode is back to the group's.
    std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o660)).unwrap();
    let given = |groups: &str| {
        run(Command::new("setpriv")
            .args(["--reuid=4242", "--regid=4242", &format!("--groups={groups}")])
            .arg(bin("culvert"))
            .arg("--socket")
            .arg(&socket)
            .args(["status", "--json"]))
    };
    let out = given("65534");
    assert!(out.status.success(), "a supplementary member was refused: {}\n{}", stderr(&out), h.log_text());
    assert!(String::from_utf8_lossy(&out.stdout).contains("rootone"), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(given("4243").status.code(), Some(NOT_ALLOWED), "another supplementary group let the caller in");
}

#[test]
fn a_crashed_helper_leaves_nothing_after_restart() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    let pa =
        lab.profile("crash", &udp_profile("10.9.0.1/24", 8285, "cv-crash", "172.31.0.2:8285", "10.9.0.0/24", 1400));
    let pb =
        lab.profile("other", &udp_profile("10.9.0.2/24", 8285, "cv-other", "172.31.0.1:8285", "10.9.0.0/24", 1400));
    lab.start_helper(&b, "b", &[]);
    lab.helpers[0].culvert_ok(&["up", pb.to_str().unwrap()]);
    let mut h = lab.spawn_helper(&a, "a", &[]).unwrap();
    assert!(run(Command::new(bin("culvert")).arg("--socket").arg(&h.socket).arg("up").arg(&pa)).status.success());
    assert!(ping(&a, "10.9.0.2", 1));
    assert_eq!(h.records(), ["crash.json"]);

    h.stop_with(9);
    // The TUN device died with the process, but the record remains; so would a link that outlives the
    // process (as later kinds' links do): stand one in with a persistent TUN device of the recorded name.
    assert_eq!(h.records(), ["crash.json"]);
    ip(&["-n", &a, "tuntap", "add", "dev", "cv-crash", "mode", "tun"]);
    ip(&["-n", &a, "link", "set", "cv-crash", "up"]);
    ip(&["-n", &a, "route", "add", "10.9.0.0/24", "dev", "cv-crash"]);

    let restarted = lab.spawn_helper(&a, "a", &[]).unwrap();
    assert!(restarted.log_text().contains("left behind"), "{}", restarted.log_text());
    assert!(restarted.records().is_empty());
    let links = ip(&["-n", &a, "link", "show"]);
    assert!(!links.contains("cv-crash"), "stale link: {links}");
    assert!(!ip(&["-n", &a, "route", "show"]).contains("10.9.0.0/24"));
    // The same profile comes up again and works.
    assert!(
        run(Command::new(bin("culvert")).arg("--socket").arg(&restarted.socket).arg("up").arg(&pa)).status.success()
    );
    assert!(ping(&a, "10.9.0.2", 2));
    lab.helpers.push(restarted);
}

#[test]
fn sigterm_brings_every_tunnel_down() {
    let mut lab = Lab::new();
    let (a, _b) = lab.two_hosts();
    let p = lab.profile("term", &udp_profile("10.9.0.1/24", 8285, "cv-term", "172.31.0.2:8285", "10.9.0.0/24", 1400));
    let mut h = lab.spawn_helper(&a, "a", &[]).unwrap();
    assert!(run(Command::new(bin("culvert")).arg("--socket").arg(&h.socket).arg("up").arg(&p)).status.success());
    assert!(h.stop_with(15), "culvertd did not exit on SIGTERM");
    assert!(!ip(&["-n", &a, "link", "show"]).contains("cv-term"));
    assert!(h.records().is_empty());
    assert!(!h.socket.exists(), "the socket file should be removed");
    assert!(h.log_text().contains("udp tunnel term is down"));
}

#[test]
fn a_second_helper_refuses_a_taken_state_dir_or_socket() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    lab.start_helper(&a, "a", &[]);
    // Same state directory (and socket): refused because of the lock.
    let err = lab.spawn_helper(&b, "a", &[]).unwrap_err().to_string();
    assert!(err.contains("already uses the state directory"), "{err}");
    // Own state directory, but the first helper's live socket.
    let socket = lab.helpers[0].socket.clone();
    let out = run(in_ns(&b, bin("culvertd"))
        .arg("--socket")
        .arg(&socket)
        .arg("--state-dir")
        .arg(lab.dir.join("b-state"))
        .arg("--config-dir")
        .arg(lab.dir.join("b-config")));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("another culvertd answers on"), "{}", stderr(&out));
    // The first helper still serves.
    lab.helpers[0].culvert_ok(&["status"]);
}
