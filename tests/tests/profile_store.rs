//! The profile store through the CLI, with a real Secret Service (gnome-keyring) in a throw-away session.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use culvert_tests::{Lab, SessionKeyring, WireguardGo, culvert_keypair, ping, stderr};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn imported_profiles_keep_their_keys_in_the_keyring_and_come_up_by_name() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    let keyring = SessionKeyring::start(&mut lab);
    let (private, public) = culvert_keypair();
    let psk =
        culvert_tests::check(std::process::Command::new(culvert_tests::bin("culvert")).arg("genpsk")).trim().to_owned();
    let wgo = WireguardGo::start(&mut lab, &b, 51821, "10.8.0.2/24");
    let psk_file = lab.dir.join("psk");
    std::fs::write(&psk_file, &psk).unwrap();
    wgo.wg(&[
        "set",
        &wgo.iface,
        "peer",
        &public,
        "preshared-key",
        psk_file.to_str().unwrap(),
        "allowed-ips",
        "10.8.0.1/32",
        "endpoint",
        "172.31.0.1:51820",
    ]);
    let name = culvert_tests::unique("office");
    let conf = lab.conf(
        &name,
        &format!(
            "[Interface]\nPrivateKey = {private}\nAddress = 10.8.0.1/24\nListenPort = 51820\n[Peer]\nPublicKey = {}\n\
             PresharedKey = {psk}\nAllowedIPs = 10.8.0.2/32\nEndpoint = 172.31.0.2:51821\n",
            wgo.public_key
        ),
    );
    lab.start_helper(&a, "a", &[]);
    let socket = lab.helpers[0].socket.clone();

    let out = keyring.culvert(&socket, &["import", conf.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("stored {name} (wireguard)")), "{}", stdout(&out));
    // The file holds no key; the Secret Service holds both.
    let stored = std::fs::read_to_string(keyring.home.join(format!(".config/culvert/profiles/{name}.toml"))).unwrap();
    assert!(!stored.contains(&private) && !stored.contains(&psk), "a key reached the file:\n{stored}");
    assert_eq!(keyring.lookup(&format!("{name}/private_key")).as_deref(), Some(private.as_str()));
    assert_eq!(keyring.lookup(&format!("{name}/preshared_key/{}", wgo.public_key)).as_deref(), Some(psk.as_str()));
    let list = stdout(&keyring.culvert(&socket, &["list"]));
    assert!(list.contains(&format!("{name}\twireguard")) && !list.contains("unencrypted"), "{list}");

    // Up by name: the keys come from the keyring, and the tunnel works.
    let out = keyring.culvert(&socket, &["up", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(ping(&a, "10.8.0.2", 2), "the stored profile's tunnel carries traffic");
    let exported = stdout(&keyring.culvert(&socket, &["export", &name]));
    assert!(exported.contains(&format!("PrivateKey = {private}")) && exported.contains("[Peer]"), "{exported}");
    // The same file as a QR code for a phone: decoded by another decoder, it is exactly what export prints.
    let out = keyring.culvert(&socket, &["export", &name, "--qr"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("private key"), "no warning that the code holds the key: {}", stderr(&out));
    let scanned = culvert_tests::decode_terminal_qr(&stdout(&out)).unwrap();
    assert_eq!(scanned, exported, "the QR code is not the exported file");
    lab.helpers[0].culvert_ok(&["down", &name]);

    // rm deletes the file and the keys.
    let out = keyring.culvert(&socket, &["rm", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(keyring.lookup(&format!("{name}/private_key")), None);
    assert_eq!(keyring.lookup(&format!("{name}/preshared_key/{}", wgo.public_key)), None);
    let out = keyring.culvert(&socket, &["up", &name]);
    assert!(!out.status.success() && stderr(&out).contains("no stored profile"), "{}", stderr(&out));
}

#[test]
fn udp_profiles_are_stored_and_listed_as_unencrypted_without_any_keyring() {
    let lab = Lab::new();
    let home = lab.dir.join("nokeyring");
    let p = lab.profile(
        "plain",
        &culvert_tests::udp_profile("10.9.0.1/24", 8285, "cv-plain", "172.31.0.2:8285", "10.9.0.0/24", 1400),
    );
    // No session bus at all: kinds without secrets must not need one.
    let run = |args: &[&str]| {
        culvert_tests::run(
            std::process::Command::new(culvert_tests::bin("culvert"))
                .env("HOME", &home)
                .env("XDG_CONFIG_HOME", home.join("config"))
                .env_remove("DBUS_SESSION_BUS_ADDRESS")
                .args(args),
        )
    };
    let out = run(&["import", p.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&run(&["list"])).contains("plain\tudp  (unencrypted)"));
    let listed: serde_json::Value = serde_json::from_str(&stdout(&run(&["list", "--json"]))).unwrap();
    assert_eq!(
        (&listed[0]["name"], &listed[0]["kind"], &listed[0]["encrypted"]),
        (&"plain".into(), &"udp".into(), &false.into())
    );
    let exported: serde_json::Value = serde_json::from_str(&stdout(&run(&["--json", "export", "plain"]))).unwrap();
    assert_eq!(exported["format"], "toml");
    assert!(exported["text"].as_str().unwrap().contains("kind = \"udp\""), "{exported}");
    assert!(stdout(&run(&["export", "plain"])).contains("kind = \"udp\""));
    let out = run(&["export", "plain", "--qr"]);
    assert!(!out.status.success() && stderr(&out).contains("QR codes are for WireGuard"), "{}", stderr(&out));
    let out = run(&["import", p.to_str().unwrap()]);
    assert!(!out.status.success() && stderr(&out).contains("stored already"), "{}", stderr(&out));
    assert!(run(&["rm", "plain"]).status.success());
    assert!(stdout(&run(&["list"])).contains("no stored profile"));
}

/// `culvert import` as WireGuard users keep their files: several at once (each stored or skipped with its
/// reason), a NetworkManager connection that then carries traffic to a wireguard-go peer, a root-only file piped
/// in on standard input, and advice for a file the user may not read.
#[test]
fn wireguard_files_import_several_at_once_from_network_manager_and_from_standard_input() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    let keyring = SessionKeyring::start(&mut lab);
    let (private, public) = culvert_keypair();
    let wgo = WireguardGo::start(&mut lab, &b, 51821, "10.8.0.2/24");
    wgo.wg(&["set", &wgo.iface, "peer", &public, "allowed-ips", "10.8.0.1/32", "endpoint", "172.31.0.1:51820"]);
    lab.start_helper(&a, "a", &[]);
    let socket = lab.helpers[0].socket.clone();

    // A connection as NetworkManager keeps it: named by its device, its addresses and DNS under [ipv4].
    let nm_name = culvert_tests::unique("nm");
    let keyfile = lab.dir.join("Home VPN.nmconnection");
    std::fs::write(
        &keyfile,
        format!(
            "[connection]\nid=Home VPN\nuuid=5d0b1c9e-2f1a-4c55-8f0e-0c3a6b1d9e21\ntype=wireguard\n\
             autoconnect=false\ninterface-name={nm_name}\n\n[wireguard]\nlisten-port=51820\n\
             private-key={private}\n\n[wireguard-peer.{}]\nendpoint=172.31.0.2:51821\nallowed-ips=10.8.0.2/32;\n\n\
             [ipv4]\naddress1=10.8.0.1/24\nmethod=manual\n\n[ipv6]\nmethod=disabled\n\n[proxy]\n",
            wgo.public_key
        ),
    )
    .unwrap();
    let conf_name = culvert_tests::unique("conf");
    let (other_private, _) = culvert_keypair();
    let conf_text = format!(
        "[Interface]\nPrivateKey = {other_private}\nAddress = 10.7.0.1/24\n[Peer]\nPublicKey = {}\nAllowedIPs = \
         10.7.0.2/32\n",
        wgo.public_key
    );
    let conf = lab.conf(&conf_name, &conf_text);
    let hook = lab.conf("hooked", &conf_text.replace("[Peer]", "PostUp = touch /tmp/x\n[Peer]"));
    let missing = lab.dir.join("missing.conf");

    let out = keyring.culvert(
        &socket,
        &[
            "import",
            conf.to_str().unwrap(),
            keyfile.to_str().unwrap(),
            hook.to_str().unwrap(),
            missing.to_str().unwrap(),
        ],
    );
    let (said, complained) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(5), "the first skip (an invalid profile) gives the status: {complained}");
    assert!(said.contains(&format!("stored {conf_name} (wireguard)")), "{said}");
    assert!(said.contains(&format!("stored {nm_name} (wireguard) from {}", keyfile.display())), "{said}");
    assert!(
        complained.contains(&format!("skipped {}", hook.display())) && complained.contains("PostUp"),
        "{complained}"
    );
    assert!(complained.contains(&format!("skipped {}", missing.display())), "{complained}");
    assert_eq!(keyring.lookup(&format!("{nm_name}/private_key")).as_deref(), Some(private.as_str()));

    // The imported connection comes up by its name and carries traffic.
    let out = keyring.culvert(&socket, &["up", &nm_name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(ping(&a, "10.8.0.2", 2), "the NetworkManager connection's tunnel carries no traffic");
    lab.helpers[0].culvert_ok(&["down", &nm_name]);

    // A root-only file, piped in: stored as the user's, under the name given, reported as JSON.
    let piped = culvert_tests::unique("pipe");
    let mut cmd = std::process::Command::new(culvert_tests::bin("culvert"));
    keyring.env(&mut cmd).args(["import", "-", "--name", &piped, "--json"]);
    let out = cmd.stdin(std::fs::File::open(&conf).unwrap()).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report[0]["file"], "standard input");
    assert_eq!(
        (&report[0]["imported"], &report[0]["name"], &report[0]["kind"]),
        (&true.into(), &piped.clone().into(), &"wireguard".into())
    );
    assert_eq!(keyring.lookup(&format!("{piped}/private_key")).as_deref(), Some(other_private.as_str()));

    // A file the user may not read: the advice is the pipe, and the status says "not allowed".
    std::fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = culvert_tests::run(
        std::process::Command::new("setpriv")
            .args(["--reuid=4242", "--regid=4242", "--clear-groups"])
            .arg(culvert_tests::bin("culvert"))
            .env("HOME", "/nonexistent")
            .args(["import", conf.to_str().unwrap()]),
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let advice = stderr(&out);
    assert!(advice.contains(&format!("sudo cat {} | culvert import - --name {conf_name}", conf.display())), "{advice}");
}

/// `culvert up <Tab>` offers the stored profiles and `culvert down <Tab>` the user's tunnels, asked of culvert
/// and culvertd at the moment of completing, through bash's own completion function.
#[test]
fn bash_completes_stored_profiles_and_tunnels_that_are_up() {
    let mut lab = Lab::new();
    let (a, _b) = lab.two_hosts();
    lab.start_helper(&a, "a", &[]);
    let socket = lab.helpers[0].socket.clone();
    let home = lab.dir.join("completing");
    let config = home.join("config");
    let empty = lab.dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let stored = culvert_tests::unique("plain");
    let p = lab.profile(
        &stored,
        &culvert_tests::udp_profile("10.9.0.1/24", 8285, "cv-compl", "172.31.0.2:8285", "10.9.0.0/24", 1400),
    );
    let env: [(&str, &Path); 3] = [("HOME", &home), ("XDG_CONFIG_HOME", &config), ("CULVERT_SOCKET", &socket)];
    let mut import = std::process::Command::new(culvert_tests::bin("culvert"));
    for (k, v) in env {
        import.env(k, v);
    }
    culvert_tests::check(import.args(["import", p.to_str().unwrap()]));
    let bin_dir = culvert_tests::bin("culvert").parent().unwrap().to_path_buf();
    let load = "source <(COMPLETE=bash culvert)";
    let complete = |words: &[&str]| culvert_tests::bash_completions(load, &bin_dir, &empty, &env, words);
    // Without a word begun, the options come too: the names are the rest.
    let names =
        |words: &[&str]| -> Vec<String> { complete(words).into_iter().filter(|c| !c.starts_with('-')).collect() };

    assert_eq!(complete(&["culvert", "up", "pla"]), [stored.as_str()], "up offers the stored profile");
    assert_eq!(names(&["culvert", "export", ""]), [stored.as_str()]);
    assert!(complete(&["culvert", "st"]).contains(&"status".to_owned()), "subcommands complete too");
    assert!(names(&["culvert", "down", ""]).is_empty(), "no tunnel is up, so down offers none");

    lab.helpers[0].culvert_ok(&["up", p.to_str().unwrap()]);
    assert_eq!(names(&["culvert", "down", ""]), [stored.as_str()], "down offers the tunnel that is up");
    assert_eq!(complete(&["culvert", "watch", "x"]), Vec::<String>::new());
}
