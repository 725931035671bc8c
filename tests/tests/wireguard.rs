//! WireGuard tunnels against wireguard-go configured with `wg`, and between Culvert helpers.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use culvert_tests::{Lab, WireguardGo, culvert_keypair, in_ns, ip, ping, run, tcp_transfer, wait_until};

/// A wg-quick file for Culvert: `peers` are (public key, allowed ips, endpoint, preshared key).
fn conf(private: &str, address: &str, port: u16, peers: &[(&str, &str, Option<&str>, Option<&str>)]) -> String {
    let mut s = format!("[Interface]\nPrivateKey = {private}\nAddress = {address}\nListenPort = {port}\n");
    for (key, allowed, endpoint, psk) in peers {
        s += &format!("\n[Peer]\nPublicKey = {key}\nAllowedIPs = {allowed}\n");
        if let Some(e) = endpoint {
            s += &format!("Endpoint = {e}\n");
        }
        if let Some(p) = psk {
            s += &format!("PresharedKey = {p}\n");
        }
    }
    s
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// Culvert in A (10.8.0.1, UDP 51820) and wireguard-go in B (10.8.0.2, UDP 51821), peered. Returns the
/// wireguard-go device, Culvert's public key and the tunnel's name, which is also its interface: unique, because
/// /var/run/wireguard, where `wg` finds devices, is shared by all namespaces.
fn culvert_and_wireguard_go(lab: &mut Lab, a: &str, b: &str, psk: Option<&str>) -> (WireguardGo, String, String) {
    let (private, public) = culvert_keypair();
    let wgo = WireguardGo::start(lab, b, 51821, "10.8.0.2/24");
    let mut peer = vec!["peer", public.as_str(), "allowed-ips", "10.8.0.1/32", "endpoint", "172.31.0.1:51820"];
    let psk_file = lab.dir.join("psk");
    if let Some(psk) = psk {
        std::fs::write(&psk_file, psk).unwrap();
        peer.extend(["preshared-key", psk_file.to_str().unwrap()]);
    }
    wgo.wg(&[&["set", &wgo.iface][..], &peer].concat());
    let name = culvert_tests::unique("cwg");
    let file = lab.conf(
        &name,
        &conf(&private, "10.8.0.1/24", 51820, &[(&wgo.public_key, "10.8.0.2/32", Some("172.31.0.2:51821"), psk)]),
    );
    lab.start_helper(a, "a", &[]);
    let up = lab.helpers[0].culvert_ok(&["up", file.to_str().unwrap()]);
    assert!(up.contains(&format!("{name} is up")) && !up.contains("unencrypted"), "{up}");
    (wgo, public, name)
}

#[test]
fn culvert_and_wireguard_go_shake_hands_and_carry_ping_and_tcp() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    let (wgo, culvert_public, wg0) = culvert_and_wireguard_go(&mut lab, &a, &b, None);
    assert!(ping(&a, "10.8.0.2", 3), "Culvert -> wireguard-go");
    assert!(ping(&b, "10.8.0.1", 3), "wireguard-go -> Culvert");
    let (sent, got) = tcp_transfer(&mut lab, &a, &b, "10.8.0.2", 5201, 4 << 20);
    assert!(got == sent, "Culvert->wireguard-go: {} of {} bytes intact", got.len(), sent.len());
    let (sent, got) = tcp_transfer(&mut lab, &b, &a, "10.8.0.1", 5202, 4 << 20);
    assert!(got == sent, "wireguard-go->Culvert: {} of {} bytes intact", got.len(), sent.len());

    let s = lab.helpers[0].status(&wg0);
    assert_eq!((s["kind"].as_str(), s["state"].as_str()), (Some("wireguard"), Some("up")), "{s}");
    let peer = &s["peers"][0];
    assert_eq!(peer["public_key"], wgo.public_key.as_str());
    assert_eq!(peer["endpoint"], "172.31.0.2:51821");
    let handshake = peer["last_handshake"].as_u64().expect("a handshake time");
    assert!(handshake <= unix_now() && handshake + 120 > unix_now(), "{s}");
    assert!(peer["rx_bytes"].as_u64().unwrap() >= 4 << 20 && peer["tx_bytes"].as_u64().unwrap() >= 4 << 20, "{s}");

    // wireguard-go sees the same session from its side.
    let peers = wgo.peers();
    let (key, endpoint, latest, rx, tx) = &peers[0];
    assert_eq!(key, &culvert_public);
    assert_eq!(endpoint, "172.31.0.1:51820");
    assert!(*latest > 0 && *rx >= 4 << 20 && *tx >= 4 << 20, "{peers:?}");
    let shown = wgo.wg(&["show", &wgo.iface]);
    assert!(shown.contains("latest handshake"), "{shown}");

    // And `wg` sees Culvert's tunnel through the userspace API, as it sees wireguard-go's.
    let ours = culvert_tests::check(in_ns(&a, "wg").args(["show", &wg0]));
    assert!(ours.contains(&format!("peer: {}", wgo.public_key)), "{ours}");
    assert!(ours.contains("endpoint: 172.31.0.2:51821") && ours.contains("latest handshake"), "{ours}");
    assert!(ours.contains("allowed ips: 10.8.0.2/32") && ours.contains("listening port: 51820"), "{ours}");
    assert!(ours.contains(&format!("public key: {culvert_public}")), "{ours}");
    let dump = culvert_tests::check(in_ns(&a, "wg").args(["show", &wg0, "dump"]));
    let fields: Vec<&str> = dump.lines().nth(1).unwrap().split('\t').collect();
    let latest: u64 = fields[4].parse().unwrap();
    assert!(latest + 120 > unix_now() && latest <= unix_now(), "{dump}");
    assert!(fields[5].parse::<u64>().unwrap() >= 4 << 20, "{dump}");
    let socket = format!("/var/run/wireguard/{wg0}.sock");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the API socket reveals the private key: root only");
    // `wg set` moves the live tunnel to another port; its packets come from there now, and wireguard-go, which
    // follows an authenticated peer wherever it sends from, keeps talking to it.
    culvert_tests::check(in_ns(&a, "wg").args(["set", &wg0, "listen-port", "51999"]));
    assert!(culvert_tests::check(in_ns(&a, "wg").args(["show", &wg0])).contains("listening port: 51999"));
    assert_eq!(lab.helpers[0].status(&wg0)["listen_port"], 51999);
    assert!(ping(&a, "10.8.0.2", 2), "no traffic after the port moved");

    lab.helpers[0].culvert_ok(&["down", &wg0]);
    assert!(!ip(&["-n", &a, "link", "show"]).contains(&wg0));
    assert!(!std::path::Path::new(&socket).exists(), "the API socket should go with the tunnel");
}

#[test]
fn a_preshared_key_works_against_wireguard_go() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    let psk =
        culvert_tests::check(std::process::Command::new(culvert_tests::bin("culvert")).arg("genpsk")).trim().to_owned();
    culvert_and_wireguard_go(&mut lab, &a, &b, Some(&psk));
    assert!(ping(&a, "10.8.0.2", 2), "with a preshared key");
}

#[test]
fn spoofed_sources_are_dropped_and_a_roaming_peer_keeps_working() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    let (wgo, _, wg0) = culvert_and_wireguard_go(&mut lab, &a, &b, None);
    assert!(ping(&a, "10.8.0.2", 1));

    // wireguard-go sends a packet whose inner source is not among its AllowedIPs at Culvert.
    ip(&["-n", &b, "addr", "add", "10.99.0.5/32", "dev", &wgo.iface]);
    let spoofed = run(in_ns(&b, "ping").args(["-c", "2", "-W", "1", "-I", "10.99.0.5", "10.8.0.1"]));
    assert!(!spoofed.status.success(), "a spoofed packet got an answer");
    let s = lab.helpers[0].status(&wg0);
    assert!(s["drops"]["spoofed_source"].as_u64().unwrap() >= 2, "{s}");

    // wireguard-go moves to another port; once it sends from there, Culvert answers there.
    wgo.wg(&["set", &wgo.iface, "listen-port", "51999"]);
    assert!(ping(&b, "10.8.0.1", 2), "after the move, wireguard-go -> Culvert");
    assert!(ping(&a, "10.8.0.2", 2), "after the move, Culvert -> wireguard-go");
    let s = lab.helpers[0].status(&wg0);
    assert_eq!(s["peers"][0]["endpoint"], "172.31.0.2:51999", "{s}");
}

/// The host's underlay address changes under a running tunnel: culvertd hears of it from the kernel and starts a
/// handshake at once from the new address, so the peer (which only answers to where it last heard from) roams
/// there. Without that, nothing of Culvert's would reach it (no keepalive, no traffic from this side) and its
/// packets would go to the old address for good.
#[test]
fn a_new_underlay_address_is_followed_and_traffic_resumes_within_two_seconds() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    let (_wgo, _, wg0) = culvert_and_wireguard_go(&mut lab, &a, &b, None);
    assert!(ping(&a, "10.8.0.2", 1));
    assert!(ping(&b, "10.8.0.1", 1));
    let dev = Lab::veth_in(&a);
    // As a DHCP renumbering does it: the new address first, then the old one goes (and the new one, a secondary
    // of the same subnet, is promoted instead of removed with it).
    culvert_tests::check(in_ns(&a, "sysctl").args(["-qw", &format!("net.ipv4.conf.{dev}.promote_secondaries=1")]));
    ip(&["-n", &a, "addr", "add", "172.31.0.5/24", "dev", &dev]);
    let moved = std::time::Instant::now();
    ip(&["-n", &a, "addr", "del", "172.31.0.1/24", "dev", &dev]);
    let resumed = wait_until(Duration::from_secs(5), || {
        run(in_ns(&b, "ping").args(["-c", "1", "-W", "0.2", "10.8.0.1"])).status.success()
    });
    let took = moved.elapsed();
    eprintln!("traffic resumed {} ms after the address changed", took.as_millis());
    assert!(resumed, "wireguard-go never heard from the new address");
    assert!(took < Duration::from_secs(2), "traffic resumed only after {took:?}");
    let s = lab.helpers[0].status(&wg0);
    assert!(lab.helpers[0].log_text().contains("network changed"), "{s}");
}

/// logind's stand-in on a private bus: it owns logind's name and announces a sleep and a resume when told.
struct StandInLogind {
    resume: tokio::sync::mpsc::Sender<()>,
}

impl StandInLogind {
    fn start(bus: &str) -> Self {
        let (resume, mut resumes) = tokio::sync::mpsc::channel::<()>(1);
        let (ready, is_ready) = std::sync::mpsc::channel();
        let bus = bus.to_owned();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let conn = zbus::connection::Builder::address(bus.as_str())
                    .unwrap()
                    .name("org.freedesktop.login1")
                    .unwrap()
                    .build()
                    .await
                    .unwrap();
                ready.send(()).unwrap();
                while resumes.recv().await.is_some() {
                    for before in [true, false] {
                        conn.emit_signal(
                            None::<zbus::names::BusName<'_>>,
                            "/org/freedesktop/login1",
                            "org.freedesktop.login1.Manager",
                            "PrepareForSleep",
                            &(before,),
                        )
                        .await
                        .unwrap();
                    }
                }
            });
        });
        is_ready.recv_timeout(Duration::from_secs(5)).expect("the stand-in logind did not take its name");
        Self { resume }
    }

    fn sleep_and_resume(&self) {
        self.resume.blocking_send(()).unwrap();
    }
}

/// After a resume from suspend (`PrepareForSleep(false)` from logind on the system bus), culvertd starts a
/// handshake with every peer at once instead of waiting for its timers. logind is a stand-in here, on a real
/// dbus-daemon: these machines have no logind (systemd is not PID 1).
#[test]
fn a_resume_from_suspend_starts_handshakes_at_once() {
    let mut lab = Lab::new();
    let socket = lab.dir.join("system-bus");
    let bus = format!("unix:path={}", socket.display());
    lab.spawn(std::process::Command::new("dbus-daemon").args([
        "--session",
        "--nofork",
        "--nopidfile",
        &format!("--address={bus}"),
    ]));
    assert!(wait_until(Duration::from_secs(5), || socket.exists()), "the bus did not start");
    let logind = StandInLogind::start(&bus);
    lab.helper_env.push(("DBUS_SYSTEM_BUS_ADDRESS".into(), bus));
    let (a, b) = lab.two_hosts();
    let (wgo, _, _wg0) = culvert_and_wireguard_go(&mut lab, &a, &b, None);
    assert!(ping(&a, "10.8.0.2", 1));
    let following = wait_until(Duration::from_secs(5), || lab.helpers[0].log_text().contains("following suspend"));
    assert!(following, "{}", lab.helpers[0].log_text());
    let before = wgo.peers()[0].2;
    // Handshake times are whole seconds: the next one must be in a later second.
    std::thread::sleep(Duration::from_millis(1100));
    logind.sleep_and_resume();
    let resumed = std::time::Instant::now();
    let shook = wait_until(Duration::from_secs(5), || wgo.peers()[0].2 > before);
    eprintln!("handshake {} ms after the resume", resumed.elapsed().as_millis());
    assert!(shook, "no handshake after the resume: {}", lab.helpers[0].log_text());
    assert!(resumed.elapsed() < Duration::from_secs(2), "the handshake took {:?}", resumed.elapsed());
    assert!(lab.helpers[0].log_text().contains("resumed from sleep"));
}

#[test]
fn a_wrong_public_key_never_shakes_hands_and_the_status_says_so() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    let (private, public) = culvert_keypair();
    let wgo = WireguardGo::start(&mut lab, &b, 51821, "10.8.0.2/24");
    wgo.wg(&["set", &wgo.iface, "peer", &public, "allowed-ips", "10.8.0.1/32", "endpoint", "172.31.0.1:51820"]);
    let (_, wrong) = culvert_keypair();
    let name = culvert_tests::unique("wrong");
    let file = lab
        .conf(&name, &conf(&private, "10.8.0.1/24", 51820, &[(&wrong, "10.8.0.2/32", Some("172.31.0.2:51821"), None)]));
    lab.start_helper(&a, "a", &[]);
    lab.helpers[0].culvert_ok(&["up", file.to_str().unwrap()]);
    assert_eq!(lab.helpers[0].status(&name)["state"], "connecting");
    assert!(!ping(&a, "10.8.0.2", 2));
    let said = wait_until(Duration::from_secs(25), || lab.helpers[0].status(&name)["state"] == "no handshake");
    let s = lab.helpers[0].status(&name);
    assert!(said, "{s}");
    let reason = s["reason"].as_str().unwrap();
    assert!(reason.contains("public key") && reason.contains("172.31.0.2:51821"), "{reason}");
    assert!(s["peers"][0]["last_handshake"].is_null(), "{s}");
    assert!(wgo.peers()[0].2 == 0, "wireguard-go must not have shaken hands either");
    let text = lab.helpers[0].culvert_ok(&["status", &name]);
    assert!(text.contains("no handshake") && text.contains("no handshake yet"), "{text}");
}

#[test]
fn a_hub_gives_each_peer_exactly_its_allowed_ips() {
    let mut lab = Lab::new();
    // The hub H has one link to each spoke: 172.30.N.1 (hub) - 172.30.N.2 (spoke N).
    let hub = lab.netns();
    let spokes: Vec<String> = (1..=3).map(|_| lab.netns()).collect();
    for (n, spoke) in spokes.iter().enumerate() {
        let n = n + 1;
        lab.veth(&hub, &[&format!("172.30.{n}.1/24")], spoke, &[&format!("172.30.{n}.2/24")]);
    }
    let hub_keys = culvert_keypair();
    let spoke_keys: Vec<(String, String)> = (0..3).map(|_| culvert_keypair()).collect();
    // Spoke 1 may reach only the hub; spokes 2 and 3 the whole 10.8.0.0/24 through it.
    let hub_peers: Vec<(String, String, Option<String>)> = spoke_keys
        .iter()
        .enumerate()
        .map(|(i, (_, public))| (public.clone(), format!("10.8.0.{}/32", i + 2), None))
        .collect();
    let hub_peer_refs: Vec<(&str, &str, Option<&str>, Option<&str>)> =
        hub_peers.iter().map(|(k, a, e)| (k.as_str(), a.as_str(), e.as_deref(), None)).collect();
    let hub_name = culvert_tests::unique("hub");
    let hub_file = lab.conf(&hub_name, &conf(&hub_keys.0, "10.8.0.1/24", 51820, &hub_peer_refs));
    let h = lab.spawn_helper(&hub, "hub", &[]).unwrap();
    lab.helpers.push(h);
    lab.helpers[0].culvert_ok(&["up", hub_file.to_str().unwrap()]);
    culvert_tests::check(in_ns(&hub, "sysctl").args(["-qw", "net.ipv4.ip_forward=1"]));
    for (i, spoke) in spokes.iter().enumerate() {
        let n = i + 1;
        let allowed = if n == 1 { "10.8.0.1/32" } else { "10.8.0.0/24" };
        let endpoint = format!("172.30.{n}.1:51820");
        let file = lab.conf(
            &format!("{hub_name}s{n}"),
            &conf(
                &spoke_keys[i].0,
                &format!("10.8.0.{}/24", n + 1),
                51820,
                &[(&hub_keys.1, allowed, Some(&endpoint), None)],
            ),
        );
        let h = lab.spawn_helper(spoke, &format!("spoke{n}"), &[]).unwrap();
        lab.helpers.push(h);
        lab.helpers[n].culvert_ok(&["up", file.to_str().unwrap()]);
    }
    for (i, spoke) in spokes.iter().enumerate() {
        assert!(ping(spoke, "10.8.0.1", 2), "spoke {} -> hub", i + 1);
    }
    assert!(ping(&spokes[1], "10.8.0.4", 2), "spoke 2 -> spoke 3 through the hub");
    assert!(!ping(&spokes[0], "10.8.0.3", 1), "spoke 1 must not reach spoke 2");
    let s1 = lab.helpers[1].status(&format!("{hub_name}s1"));
    assert!(s1["drops"]["no_route"].as_u64().unwrap() >= 1, "{s1}");
    let hub_status = lab.helpers[0].status(&hub_name);
    assert_eq!(hub_status["peers"].as_array().unwrap().len(), 3);
    assert!(hub_status["peers"].as_array().unwrap().iter().all(|p| p["last_handshake"].is_u64()), "{hub_status}");
    // The hub learnt each spoke's endpoint from its handshake.
    assert_eq!(hub_status["peers"][2]["endpoint"], "172.30.3.2:51820", "{hub_status}");
}

/// An unconfirmed boringtun report says 0.7.1 sessions can go one-way deaf 15-30 s after a handshake; traffic
/// every second for 90 s against wireguard-go must never stall.
#[test]
fn traffic_every_second_for_90_s_never_stalls() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    culvert_and_wireguard_go(&mut lab, &a, &b, None);
    let out = run(in_ns(&a, "ping").args(["-c", "90", "-i", "1", "-W", "2", "10.8.0.2"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("90 received"), "{text}");
    let back = run(in_ns(&b, "ping").args(["-c", "3", "-i", "0.3", "10.8.0.1"]));
    assert!(back.status.success(), "wireguard-go -> Culvert after 90 s");
}

/// AllowedIPs 0.0.0.0/0 routes everything through the tunnel as wg-quick does (a table of its own, a marked
/// socket, a `not fwmark` rule and a `suppress_prefixlength 0` rule), and the rules, which outlive the helper,
/// are gone after `down` and after a crash and restart.
#[test]
fn a_full_tunnel_routes_everything_and_leaves_no_rule_behind() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    let (private, public) = culvert_keypair();
    let wgo = WireguardGo::start(&mut lab, &b, 51821, "10.8.0.2/24");
    wgo.wg(&["set", &wgo.iface, "peer", &public, "allowed-ips", "10.8.0.1/32", "endpoint", "172.31.0.1:51820"]);
    // "The internet" behind the peer.
    ip(&["-n", &b, "addr", "add", "198.51.100.1/32", "dev", "lo"]);
    let name = culvert_tests::unique("full");
    let file = lab.conf(
        &name,
        &conf(&private, "10.8.0.1/24", 51820, &[(&wgo.public_key, "0.0.0.0/0", Some("172.31.0.2:51821"), None)]),
    );
    let baseline_rules = ip(&["-n", &a, "rule", "show"]);
    let mut h = lab.spawn_helper(&a, "a", &[]).unwrap();
    let up = run(std::process::Command::new(culvert_tests::bin("culvert"))
        .arg("--socket")
        .arg(&h.socket)
        .arg("up")
        .arg(&file));
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));

    assert!(ping(&a, "198.51.100.1", 2), "through the full tunnel");
    let route = ip(&["-n", &a, "route", "get", "198.51.100.1"]);
    assert!(route.contains(&format!("dev {name}")) && route.contains("table 51820"), "{route}");
    // The tunnel's own packets (marked) and the LAN (a more specific route in main) bypass it.
    let own = ip(&["-n", &a, "route", "get", "172.31.0.2", "mark", "51820"]);
    assert!(!own.contains(&name), "{own}");
    assert!(ping(&a, "172.31.0.2", 1), "the LAN stays reachable");
    let rules = ip(&["-n", &a, "rule", "show"]);
    assert!(rules.contains("not from all fwmark 0xca6c lookup 51820"), "{rules}");
    assert!(rules.contains("from all lookup main suppress_prefixlength 0"), "{rules}");
    let src_valid_mark = || culvert_tests::check(in_ns(&a, "sysctl").args(["-n", "net.ipv4.conf.all.src_valid_mark"]));
    assert_eq!(src_valid_mark().trim(), "1");

    // A crash leaves the rules (and the table's routes would be gone with the device); a restart removes them.
    h.stop_with(9);
    assert!(ip(&["-n", &a, "rule", "show"]).contains("lookup 51820"), "rules outlive the helper");
    let restarted = lab.spawn_helper(&a, "a", &[]).unwrap();
    assert_eq!(ip(&["-n", &a, "rule", "show"]), baseline_rules, "stale rules after the restart");
    assert_eq!(src_valid_mark().trim(), "0", "src_valid_mark restored");
    assert!(ip(&["-n", &a, "route", "show", "table", "51820"]).trim().is_empty());

    // And a clean up and down leaves the same.
    let up = run(std::process::Command::new(culvert_tests::bin("culvert"))
        .arg("--socket")
        .arg(&restarted.socket)
        .arg("up")
        .arg(&file));
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    assert!(ping(&a, "198.51.100.1", 1));
    lab.helpers.push(restarted);
    lab.helpers[0].culvert_ok(&["down", &name]);
    assert_eq!(ip(&["-n", &a, "rule", "show"]), baseline_rules);
    assert_eq!(src_valid_mark().trim(), "0");
}

/// DNS from the profile, through the /etc/resolv.conf fallback (no systemd-resolved or resolvconf here), in a
/// private mount namespace: set while the tunnel is up, restored on down and by a restart after a crash.
#[test]
fn dns_is_set_while_up_and_restored_after_down_and_after_a_crash() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    let resolv = lab.dir.join("resolv.conf");
    let original = "# the machine's own\nnameserver 192.0.2.53\noptions edns0\n";
    std::fs::write(&resolv, original).unwrap();
    let (private, public) = culvert_keypair();
    let wgo = WireguardGo::start(&mut lab, &b, 51821, "10.8.0.2/24");
    wgo.wg(&["set", &wgo.iface, "peer", &public, "allowed-ips", "10.8.0.1/32", "endpoint", "172.31.0.1:51820"]);
    let name = culvert_tests::unique("dns");
    let text =
        conf(&private, "10.8.0.1/24", 51820, &[(&wgo.public_key, "10.8.0.2/32", Some("172.31.0.2:51821"), None)])
            .replace("ListenPort = 51820\n", "ListenPort = 51820\nDNS = 10.8.0.53, corp.example\nDNS = fd00:8::53\n");
    let file = lab.conf(&name, &text);
    let up = |h: &culvert_tests::Helper| {
        let out = run(std::process::Command::new(culvert_tests::bin("culvert"))
            .arg("--socket")
            .arg(&h.socket)
            .arg("up")
            .arg(&file));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let mut h = lab.spawn_helper_with_binds(&a, "a", &[], &[(&resolv, "/etc/resolv.conf")]).unwrap();
    up(&h);
    let during = std::fs::read_to_string(&resolv).unwrap();
    assert!(during.contains("nameserver 10.8.0.53\nnameserver fd00:8::53\nsearch corp.example\n"), "{during}");
    assert!(!during.contains("192.0.2.53"), "the tunnel's servers only: {during}");
    assert!(
        h.state_dir.join(format!("dns/{name}.resolv.conf")).exists(),
        "the original is kept in the state directory"
    );
    assert!(ping(&a, "10.8.0.2", 1));

    // A second tunnel with DNS is refused while the first holds the file, and leaves nothing.
    let second = lab.conf(
        &culvert_tests::unique("dns"),
        &text
            .replace("ListenPort = 51820", "ListenPort = 51830")
            .replace("10.8.0.1/24", "10.18.0.1/24")
            .replace("10.8.0.2/32", "10.18.0.2/32"),
    );
    let out = run(std::process::Command::new(culvert_tests::bin("culvert"))
        .arg("--socket")
        .arg(&h.socket)
        .arg("up")
        .arg(&second));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && msg.contains("another Culvert tunnel has set DNS"), "{msg}");
    assert_eq!(std::fs::read_to_string(&resolv).unwrap(), during);

    // A crash leaves the rewritten file; the restarted helper restores the original.
    h.stop_with(9);
    assert_eq!(std::fs::read_to_string(&resolv).unwrap(), during);
    let h = lab.spawn_helper_with_binds(&a, "a", &[], &[(&resolv, "/etc/resolv.conf")]).unwrap();
    assert_eq!(std::fs::read_to_string(&resolv).unwrap(), original);

    // Up again, then down: restored again.
    up(&h);
    assert!(std::fs::read_to_string(&resolv).unwrap().contains("10.8.0.53"));
    lab.helpers.push(h);
    lab.helpers[0].culvert_ok(&["down", &name]);
    assert_eq!(std::fs::read_to_string(&resolv).unwrap(), original);
    assert!(!lab.helpers[0].state_dir.join(format!("dns/{name}.resolv.conf")).exists());
}

/// A host-name endpoint is resolved at up, and resolved again while the peer does not answer: here the name
/// first points at the wrong address, then (as a dynamic DNS name would) at the right one. The helper runs with
/// its own /etc/hosts in a private mount namespace.
#[test]
fn host_name_endpoints_are_resolved_and_re_resolved_when_handshakes_fail() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    let hosts = lab.dir.join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n172.31.0.9 peer.culvert.test\n").unwrap();
    let (private, public) = culvert_keypair();
    let wgo = WireguardGo::start(&mut lab, &b, 51821, "10.8.0.2/24");
    wgo.wg(&["set", &wgo.iface, "peer", &public, "allowed-ips", "10.8.0.1/32"]);
    let name = culvert_tests::unique("host");
    let file = lab.conf(
        &name,
        &conf(
            &private,
            "10.8.0.1/24",
            51820,
            &[(&wgo.public_key, "10.8.0.2/32", Some("peer.culvert.test:51821"), None)],
        ),
    );
    let h = lab.spawn_helper_with_binds(&a, "a", &[], &[(&hosts, "/etc/hosts")]).unwrap();
    lab.helpers.push(h);
    lab.helpers[0].culvert_ok(&["up", file.to_str().unwrap()]);
    assert_eq!(lab.helpers[0].status(&name)["peers"][0]["endpoint"], "172.31.0.9:51821", "resolved at up");
    assert!(!ping(&a, "10.8.0.2", 1));
    std::fs::write(&hosts, "127.0.0.1 localhost\n172.31.0.2 peer.culvert.test\n").unwrap();
    let moved = wait_until(Duration::from_secs(40), || lab.helpers[0].status(&name)["state"] == "up");
    let s = lab.helpers[0].status(&name);
    assert!(moved, "{s}");
    assert_eq!(s["peers"][0]["endpoint"], "172.31.0.2:51821");
    assert!(ping(&a, "10.8.0.2", 2));
    // A name that does not resolve at all fails the up, naming the peer.
    let bad = lab.conf(
        &culvert_tests::unique("nx"),
        &conf(
            &private,
            "10.9.0.1/24",
            51830,
            &[(&wgo.public_key, "10.9.0.2/32", Some("nowhere.culvert.test:1"), None)],
        ),
    );
    let out = lab.helpers[0].culvert(&["up", bad.to_str().unwrap()]);
    let msg = String::from_utf8_lossy(&out.stderr);
    // The helper's refusal names the file and the wg-quick key, as the CLI's own errors do.
    let named = format!("{}: [Peer] 1 Endpoint", bad.display());
    assert!(!out.status.success() && msg.contains(&named) && msg.contains("does not resolve"), "{msg}");
}

/// What Culvert writes for export is a file wg-quick accepts, and `wg` applies what wg-quick makes of it.
#[test]
fn wg_quick_and_wg_accept_the_files_culvert_writes() {
    let mut lab = Lab::new();
    let b = lab.netns();
    let (private, _) = culvert_keypair();
    let peer1 = culvert_keypair().1;
    let peer2 = culvert_keypair().1;
    let psk = culvert_tests::check(std::process::Command::new(culvert_tests::bin("culvert")).arg("genpsk"));
    let text = format!(
        "[Interface]\nPrivateKey = {private}\nAddress = 10.8.0.1/24, fd00:8::1/64\nListenPort = 51820\nMTU = 1380\n\
         DNS = 10.8.0.53, corp.example\nFwMark = 0x1234\nTable = 4321\n\n[Peer]\nPublicKey = {peer1}\n\
         AllowedIPs = 10.8.0.2/32\nEndpoint = 192.0.2.7:51820\nPersistentKeepalive = 25\n\n[Peer]\n\
         PublicKey = {peer2}\nPresharedKey = {}\nAllowedIPs = 10.8.1.0/24, fd00:8::/64\n",
        psk.trim()
    );
    let (profile, _) = culvert_core::profile::wg_quick::parse("exp", &text).unwrap();
    let written = culvert_core::profile::wg_quick::write(&profile).unwrap();
    let file = lab.conf(&culvert_tests::unique("exp"), &written);
    let stripped = culvert_tests::check(std::process::Command::new("wg-quick").arg("strip").arg(&file));
    assert!(stripped.contains(&format!("PublicKey = {peer2}")) && !stripped.contains("Address"), "{stripped}");
    let wgo = WireguardGo::start(&mut lab, &b, 51999, "10.7.0.1/24");
    let setconf = lab.dir.join("setconf.conf");
    std::fs::write(&setconf, &stripped).unwrap();
    wgo.wg(&["setconf", &wgo.iface, setconf.to_str().unwrap()]);
    let shown = wgo.wg(&["showconf", &wgo.iface]);
    for expected in [
        "ListenPort = 51820".to_string(),
        "FwMark = 0x1234".to_string(),
        format!("PublicKey = {peer1}"),
        "Endpoint = 192.0.2.7:51820".to_string(),
        "PersistentKeepalive = 25".to_string(),
        format!("PresharedKey = {}", psk.trim()),
        "AllowedIPs = 10.8.1.0/24, fd00:8::/64".to_string(),
    ] {
        assert!(shown.contains(&expected), "{expected} missing from:\n{shown}");
    }
}

/// /var/run/wireguard is shared by all namespaces: a Culvert tunnel never takes over the API socket of a device
/// of the same name elsewhere, and the failed up leaves nothing behind.
#[test]
fn an_interface_name_whose_api_socket_answers_elsewhere_is_refused() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    let wgo = WireguardGo::start(&mut lab, &b, 51821, "10.8.0.2/24");
    let (private, _) = culvert_keypair();
    let file = lab.conf(
        &wgo.iface,
        &conf(&private, "10.8.0.1/24", 51820, &[(&wgo.public_key, "10.8.0.2/32", Some("172.31.0.2:51821"), None)]),
    );
    lab.start_helper(&a, "a", &[]);
    let out = lab.helpers[0].culvert(&["up", file.to_str().unwrap()]);
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && msg.contains("another WireGuard device named") && msg.contains("interface"),
        "{msg}"
    );
    assert!(!ip(&["-n", &a, "link", "show"]).contains(&wgo.iface), "the device must be rolled back");
    assert!(wgo.wg(&["show", &wgo.iface]).contains("listening port: 51821"), "wireguard-go's socket must survive");
}

/// Two full tunnels at once share net.ipv4.conf.all.src_valid_mark and the `suppress_prefixlength 0` rule (as
/// wg-quick shares the rule): the first one down leaves both for the other, the last one down restores what the
/// machine had, and so does a restart after a crash with both up.
#[test]
fn two_full_tunnels_share_their_rule_and_sysctl_until_the_last_is_down() {
    let mut lab = Lab::new();
    let (a, _b) = lab.two_hosts();
    let src_valid_mark = || culvert_tests::check(in_ns(&a, "sysctl").args(["-n", "net.ipv4.conf.all.src_valid_mark"]));
    let rules = || ip(&["-n", &a, "rule", "show"]);
    let baseline = rules();
    assert_eq!(src_valid_mark().trim(), "0");
    let mut helper = lab.spawn_helper(&a, "a", &[]).unwrap();
    let (_, peer) = culvert_keypair();
    let names: Vec<String> = (0..2).map(|_| culvert_tests::unique("full")).collect();
    let files: Vec<std::path::PathBuf> = names
        .iter()
        .enumerate()
        .map(|(n, name)| {
            let (private, _) = culvert_keypair();
            let port = 51830 + u16::try_from(n).unwrap();
            let address = format!("10.8.{n}.1/24");
            lab.conf(name, &conf(&private, &address, port, &[(&peer, "0.0.0.0/0", Some("172.31.0.2:51821"), None)]))
        })
        .collect();
    let up_both = |h: &culvert_tests::Helper| {
        for file in &files {
            h.culvert_ok(&["up", file.to_str().unwrap()]);
            assert_eq!(src_valid_mark().trim(), "1");
        }
    };
    up_both(&helper);
    helper.culvert_ok(&["down", &names[0]]);
    assert_eq!(src_valid_mark().trim(), "1", "the second full tunnel still needs src_valid_mark");
    assert!(rules().contains("suppress_prefixlength 0"), "the second full tunnel still needs its rule: {}", rules());
    helper.culvert_ok(&["down", &names[1]]);
    assert_eq!(src_valid_mark().trim(), "0", "the last one down restores the machine's value");
    assert_eq!(rules(), baseline);

    up_both(&helper);
    helper.stop_with(9);
    let restarted = lab.spawn_helper(&a, "a", &[]).unwrap();
    assert_eq!(src_valid_mark().trim(), "0", "a restart after a crash restores it too");
    assert_eq!(rules(), baseline);
    lab.helpers.push(restarted);
}
