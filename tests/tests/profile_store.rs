//! The profile store through the CLI, with a real Secret Service (gnome-keyring) in a throw-away session.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

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
    assert!(stdout(&run(&["export", "plain"])).contains("kind = \"udp\""));
    let out = run(&["import", p.to_str().unwrap()]);
    assert!(!out.status.success() && stderr(&out).contains("stored already"), "{}", stderr(&out));
    assert!(run(&["rm", "plain"]).status.success());
    assert!(stdout(&run(&["list"])).contains("no stored profile"));
}
