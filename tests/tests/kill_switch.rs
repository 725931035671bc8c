//! The kill switch and lockdown, proven by what leaves the host: a capture on the far side of the underlay's
//! veth while the host sends probes every 50 ms (ICMP, UDP, DNS to port 53 and TCP, over IPv4 and IPv6) in each
//! state a tunnel goes through. The only packets allowed on the underlay are culvertd's own (to the peer's
//! endpoint), ARP, DHCP and neighbour discovery. A control run without the kill switch sees every kind of
//! probe leak, so a zero is a zero and not a probe that never left.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use culvert_tests::capture::Capture;
use culvert_tests::{Lab, WireguardGo, culvert_keypair, in_ns, ip, ping, run, stderr, wait_until};

/// Probe destinations: "the internet" outside the tunnel, over both families.
const TARGETS: [&str; 2] = ["198.51.100.7", "2001:db8:77::7"];
/// Everything the host may send on the underlay: culvertd's packets to the peer's endpoint (UDP 51821), ARP,
/// DHCP and IPv6 neighbour discovery (ICMPv6 133 to 136).
const ALLOWED: &str = "arp or (udp port 51821) or (icmp6 and ip6[40] >= 133 and ip6[40] <= 136) or \
                       (udp and (port 67 or port 68 or port 546 or port 547))";

/// Sends probes from `ns` for `seconds`; returns how many it tried.
fn probe(ns: &str, seconds: f32) -> u64 {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("probes/leak_probe.py");
    let out = run(in_ns(ns, "python3").arg(script).arg(seconds.to_string()).args(TARGETS));
    assert!(out.status.success(), "probe: {}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    report["tried"].as_u64().unwrap()
}

/// Probes for a second under a fresh capture; returns the leaked packets.
fn leaks_while_probing(lab: &Lab, far: &str, dev: &str, tag: &str, host: &str) -> Vec<String> {
    let capture = Capture::start(&lab.dir, far, dev, tag);
    let tried = probe(host, 1.0);
    assert!(tried >= 80, "only {tried} probes in a second");
    capture.leaked(ALLOWED)
}

struct Setup {
    lab: Lab,
    host: String,
    far: String,
    far_dev: String,
    wgo: WireguardGo,
    public: String,
    private: String,
}

/// The host under test (172.31.0.1, fd00:31::1, default routes via the far side) and, beyond its veth, the far
/// side: its router and a wireguard-go peer (10.8.0.2, UDP 51821) with "the internet" (198.51.100.1) behind it.
fn setup() -> Setup {
    let mut lab = Lab::new();
    let (host, far) = lab.two_hosts();
    ip(&["-n", &host, "route", "add", "default", "via", "172.31.0.2"]);
    ip(&["-n", &host, "-6", "route", "add", "default", "via", "fd00:31::2"]);
    ip(&["-n", &far, "addr", "add", "198.51.100.1/32", "dev", "lo"]);
    // A host whose IPv6 works: its router is a known neighbour before anything is measured (the probes of a
    // host still soliciting it would wait in the neighbour queue, and a leak would look like none).
    let v6_up = wait_until(Duration::from_secs(5), || {
        run(in_ns(&host, "ping").args(["-6", "-c", "1", "-W", "1", "fd00:31::2"])).status.success()
    });
    assert!(v6_up, "the host's IPv6 router never answered");
    let far_dev = Lab::veth_in(&far);
    let wgo = WireguardGo::start(&mut lab, &far, 51821, "10.8.0.2/24");
    let (private, public) = culvert_keypair();
    Setup { lab, host, far, far_dev, wgo, public, private }
}

impl Setup {
    fn profile(&self, name: &str, extra: &str) -> PathBuf {
        self.lab.profile(
            name,
            &format!(
                "kind = \"wireguard\"\nprivate_key = \"{}\"\naddress = [\"10.8.0.1/24\"]\nlisten_port = 51820\n{extra}\n\
                 [[peer]]\npublic_key = \"{}\"\nallowed_ips = [\"0.0.0.0/0\"]\nendpoint = \"172.31.0.2:51821\"\n",
                self.private, self.wgo.public_key
            ),
        )
    }

    fn peer_answers(&self) {
        self.wgo.wg(&["set", &self.wgo.iface, "peer", &self.public, "allowed-ips", "10.8.0.1/32"]);
    }

    fn peer_ignores(&self) {
        self.wgo.wg(&["set", &self.wgo.iface, "peer", &self.public, "remove"]);
    }

    fn leaks(&self, tag: &str) -> Vec<String> {
        leaks_while_probing(&self.lab, &self.far, &self.far_dev, tag, &self.host)
    }

    fn table_is_there(&self) -> bool {
        run(in_ns(&self.host, "nft").args(["list", "table", "inet", "culvert"])).status.success()
    }
}

/// Each probe kind leaks when nothing stops it: the probes and the capture see what they should.
fn assert_every_kind_leaked(leaked: &[String]) {
    let text = leaked.join("\n");
    for (kind, needle) in [
        ("ICMP", "198.51.100.7: ICMP echo request"),
        ("UDP", "198.51.100.7.9: UDP"),
        ("DNS", "198.51.100.7.53:"),
        ("TCP", "198.51.100.7.80: Flags [S]"),
        ("ICMPv6", "2001:db8:77::7: ICMP6, echo request"),
        ("UDP over IPv6", "2001:db8:77::7.9: UDP"),
        ("TCP over IPv6", "2001:db8:77::7.80: Flags [S]"),
    ] {
        assert!(text.contains(needle), "the control run saw no {kind} probe leave:\n{text}");
    }
}

#[test]
fn nothing_leaks_around_a_kill_switch_tunnel_in_any_state_and_a_crash_keeps_it_closed() {
    let mut s = setup();
    let name = culvert_tests::unique("ks");
    let file = s.profile(&name, "kill_switch = true");
    let file = file.to_str().unwrap().to_owned();
    s.lab.start_helper(&s.host.clone(), "h", &[]);
    let mut counts = Vec::new();

    // Connecting: the peer does not know us yet.
    let up = s.lab.helpers[0].culvert_ok(&["up", &file]);
    assert!(up.contains("kill switch on"), "{up}");
    assert!(s.table_is_there());
    assert_eq!(s.lab.helpers[0].status(&name)["state"], "connecting");
    counts.push(("connecting", s.leaks("connecting")));

    // Connected: traffic passes through the tunnel, and nothing around it.
    s.peer_answers();
    assert!(wait_until(Duration::from_secs(10), || ping(&s.host, "10.8.0.2", 1)), "no traffic through the tunnel");
    assert!(ping(&s.host, "198.51.100.1", 2), "the internet through the tunnel");
    assert_eq!(s.lab.helpers[0].status(&name)["kill_switch"], true);
    counts.push(("connected", s.leaks("connected")));

    // The peer stops answering.
    s.peer_ignores();
    counts.push(("peer unreachable", s.leaks("unreachable")));

    // culvertd is killed: its device and routes go with it, the table stays.
    assert!(s.lab.helpers[0].stop_with(9));
    assert!(s.table_is_there(), "the kill switch went with culvertd");
    counts.push(("culvertd killed", s.leaks("killed")));

    // Restarted, it keeps the block and says so, until the owner says otherwise.
    let restarted = s.lab.spawn_helper(&s.host, "h", &[]).unwrap();
    let blocked = restarted.status(&name);
    assert_eq!(blocked["state"], "blocked", "{blocked}");
    assert!(blocked["reason"].as_str().unwrap().contains(&format!("culvert down {name}")), "{blocked}");
    counts.push(("blocked after the restart", s.leaks("blocked")));

    // Up again: it reconnects through the switch.
    s.peer_answers();
    restarted.culvert_ok(&["up", &file]);
    assert!(wait_until(Duration::from_secs(10), || ping(&s.host, "10.8.0.2", 1)), "no reconnect after the block");
    counts.push(("reconnected", s.leaks("reconnected")));

    // `down` lifts it: the table is gone and the host talks to the world again.
    restarted.culvert_ok(&["down", &name]);
    assert!(!s.table_is_there(), "down left the kill switch");
    assert!(!s.leaks("down").is_empty(), "down did not lift the kill switch");

    for (state, leaked) in &counts {
        eprintln!("kill switch, {state}: {} packets leaked", leaked.len());
    }
    for (state, leaked) in counts {
        assert!(leaked.is_empty(), "{state}: leaked\n{}", leaked.join("\n"));
    }
    s.lab.helpers.push(restarted);
}

#[test]
fn without_a_kill_switch_a_crash_leaks_every_kind_of_probe() {
    let mut s = setup();
    let name = culvert_tests::unique("nks");
    let file = s.profile(&name, "");
    s.lab.start_helper(&s.host.clone(), "h", &[]);
    s.peer_answers();
    s.lab.helpers[0].culvert_ok(&["up", file.to_str().unwrap()]);
    assert!(wait_until(Duration::from_secs(10), || ping(&s.host, "10.8.0.2", 1)));
    assert!(!s.table_is_there(), "a tunnel without the switch made the table");
    assert!(s.lab.helpers[0].stop_with(9));
    // No helper starts again to clean up after the crash: its WireGuard API socket is the lab's to remove.
    s.lab.stray_files.push(format!("/var/run/wireguard/{name}.sock").into());
    let leaked = s.leaks("control");
    eprintln!("control, no kill switch, culvertd killed: {} packets leaked", leaked.len());
    assert_every_kind_leaked(&leaked);
}

#[test]
fn lockdown_blocks_with_no_tunnel_lets_a_full_tunnel_through_and_a_stopped_helper_keeps_system_tunnels_closed() {
    let mut s = setup();
    s.peer_answers();
    let name = culvert_tests::unique("ld");
    let plain = s.profile(&name, "");
    let plain = plain.to_str().unwrap().to_owned();
    s.lab.start_helper(&s.host.clone(), "h", &[]);
    let h = &s.lab.helpers[0];
    assert!(h.culvert_ok(&["lockdown"]).contains("lockdown is off"));
    assert!(h.culvert_ok(&["lockdown", "on"]).contains("lockdown is on"));
    assert!(s.lab.dir.join("h-config/lockdown").exists());
    let mut counts = vec![("lockdown, no tunnel", s.leaks("lockdown"))];

    // A full tunnel without a kill switch of its own passes under lockdown; down, nothing passes.
    let h = &s.lab.helpers[0];
    h.culvert_ok(&["up", &plain]);
    assert!(wait_until(Duration::from_secs(10), || ping(&s.host, "10.8.0.2", 1)), "no handshake under lockdown");
    counts.push(("lockdown, tunnel up", s.leaks("lockdown-up")));
    s.lab.helpers[0].culvert_ok(&["down", &name]);
    assert!(s.table_is_there());
    counts.push(("lockdown, tunnel down by the user", s.leaks("lockdown-down")));

    // A split tunnel cannot have a kill switch: it says why.
    let split = s.lab.profile(
        "split",
        &format!(
            "kind = \"wireguard\"\nprivate_key = \"{}\"\naddress = [\"10.8.0.1/24\"]\nkill_switch = true\n\
             [[peer]]\npublic_key = \"{}\"\nallowed_ips = [\"10.8.0.0/24\"]\nendpoint = \"172.31.0.2:51821\"\n",
            s.private, s.wgo.public_key
        ),
    );
    let refused = s.lab.helpers[0].culvert(&["up", split.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("kill_switch") && stderr(&refused).contains("full tunnel"), "{refused:?}");

    // Lockdown off, and a system tunnel with the kill switch (a wg-quick file, with --kill-switch).
    s.lab.helpers[0].culvert_ok(&["lockdown", "off"]);
    assert!(!s.table_is_there(), "lockdown off left the table with nothing guarded");
    let conf = s.lab.conf(
        &name,
        &format!(
            "[Interface]\nPrivateKey = {}\nAddress = 10.8.0.1/24\nListenPort = 51820\n\n[Peer]\nPublicKey = {}\n\
             AllowedIPs = 0.0.0.0/0\nEndpoint = 172.31.0.2:51821\n",
            s.private, s.wgo.public_key
        ),
    );
    let enabled = s.lab.helpers[0].culvert_ok(&["enable", conf.to_str().unwrap(), "--kill-switch"]);
    assert!(enabled.contains("kill switch on") && enabled.contains("enabled"), "{enabled}");
    assert!(wait_until(Duration::from_secs(10), || ping(&s.host, "10.8.0.2", 1)));

    // culvertd stopped: the system tunnel's switch stays; started again, the tunnel is back through it.
    assert!(s.lab.helpers[0].stop_with(15), "culvertd did not stop on SIGTERM");
    assert!(s.table_is_there(), "a stop removed a system tunnel's kill switch");
    counts.push(("culvertd stopped, system tunnel", s.leaks("stopped")));
    let restarted = s.lab.spawn_helper(&s.host, "h", &[]).unwrap();
    assert!(wait_until(Duration::from_secs(10), || ping(&s.host, "10.8.0.2", 1)), "the system tunnel is not back");
    assert_eq!(restarted.status(&name)["system"], true);

    // Disabled, it all goes.
    restarted.culvert_ok(&["disable", &name]);
    assert!(!s.table_is_there(), "disable left the kill switch");
    s.lab.helpers.push(restarted);

    for (state, leaked) in &counts {
        eprintln!("{state}: {} packets leaked", leaked.len());
    }
    for (state, leaked) in counts {
        assert!(leaked.is_empty(), "{state}: leaked\n{}", leaked.join("\n"));
    }
}

/// The peer's name in the name-lookup test, known only to the far side's DNS server.
const PEER_NAME: &str = "peer.culvert.test";
/// That server: beyond the far side's router, so that only a default route reaches it (a full tunnel's, or the
/// underlay's).
const NAME_SERVER: &str = "192.0.2.53";

/// A blocked tunnel whose peer is known by name finds it again through its own block: culvertd asks the host's
/// DNS server itself, on sockets with its control mark that the kill switch lets out to port 53, while every
/// other lookup stays refused. Before this, such a tunnel could not come back ("does not resolve"). And once it
/// is up and its peer falls silent, a change of the host's network has the name looked up past the tunnel,
/// not into it.
#[test]
fn a_blocked_tunnel_finds_its_peer_by_name_while_every_other_lookup_stays_refused() {
    let mut s = setup();
    ip(&["-n", &s.far, "addr", "add", &format!("{NAME_SERVER}/32"), "dev", "lo"]);
    let log = s.lab.dir.join("dns.log");
    let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("probes/dns_server.py");
    s.lab.spawn(in_ns(&s.far, "python3").arg(server).args([NAME_SERVER, PEER_NAME, "172.31.0.2"]).arg(&log));
    let asked = || std::fs::read_to_string(&log).unwrap_or_default().matches(PEER_NAME).count();
    let listening = || std::fs::read_to_string(&log).unwrap_or_default().contains("listening");
    assert!(wait_until(Duration::from_secs(5), listening), "the name server did not start");
    // The host's resolver file names that server; culvertd and the applications see it.
    let resolv = s.lab.dir.join("resolv.conf");
    std::fs::write(&resolv, format!("nameserver {NAME_SERVER}\n")).unwrap();
    let binds = [(resolv.as_path(), "/etc/resolv.conf")];
    let name = culvert_tests::unique("ksn");
    let file = s.lab.profile(
        &name,
        &format!(
            "kind = \"wireguard\"\nprivate_key = \"{}\"\naddress = [\"10.8.0.1/24\"]\nlisten_port = 51820\n\
             kill_switch = true\n[[peer]]\npublic_key = \"{}\"\nallowed_ips = [\"0.0.0.0/0\"]\n\
             endpoint = \"{PEER_NAME}:51821\"\n",
            s.private, s.wgo.public_key
        ),
    );
    let file = file.to_str().unwrap().to_owned();
    let first = s.lab.spawn_helper_with_binds(&s.host, "h", &[], &binds).unwrap();
    s.lab.helpers.push(first);
    s.peer_answers();
    s.lab.helpers[0].culvert_ok(&["up", &file]);
    assert!(wait_until(Duration::from_secs(10), || ping(&s.host, "10.8.0.2", 1)), "no traffic by name");

    // A crash leaves the block; the restarted helper lists the tunnel as blocked.
    assert!(s.lab.helpers[0].stop_with(9));
    let restarted = s.lab.spawn_helper_with_binds(&s.host, "h", &[], &binds).unwrap();
    assert_eq!(restarted.status(&name)["state"], "blocked");

    // An application's lookup is refused by the block...
    let getent = run(in_ns(&s.host, "unshare")
        .args(["-m", "sh", "-c"])
        .arg(format!("mount --bind {} /etc/resolv.conf && exec getent hosts {PEER_NAME}", resolv.display())));
    assert!(!getent.status.success(), "an application resolved {PEER_NAME} through the block");

    // ...culvertd's own is not: the tunnel comes back by name, and nothing else leaves.
    let before = asked();
    let capture = Capture::start(&s.lab.dir, &s.far, &s.far_dev, "by-name");
    restarted.culvert_ok(&["up", &file]);
    assert!(wait_until(Duration::from_secs(10), || ping(&s.host, "10.8.0.2", 1)), "no reconnect by name");
    let tried = probe(&s.host, 1.0);
    assert!(tried >= 80, "only {tried} probes in a second");
    let leaked = capture.leaked(&format!("{ALLOWED} or (udp port 53 and host {NAME_SERVER})"));
    assert!(asked() > before, "the name server was not asked after the restart");

    // The peer falls silent and the host is renumbered: the name is looked up again at once, past the dead
    // tunnel (into it, the question would never arrive).
    s.peer_ignores();
    let dev = Lab::veth_in(&s.host);
    culvert_tests::check(in_ns(&s.host, "sysctl").args(["-qw", &format!("net.ipv4.conf.{dev}.promote_secondaries=1")]));
    let before = asked();
    ip(&["-n", &s.host, "addr", "add", "172.31.0.9/24", "dev", &dev]);
    ip(&["-n", &s.host, "addr", "del", "172.31.0.1/24", "dev", &dev]);
    ip(&["-n", &s.host, "route", "replace", "default", "via", "172.31.0.2"]);
    let again = wait_until(Duration::from_secs(5), || asked() > before);
    s.lab.helpers.push(restarted);
    assert!(again, "the name was not looked up past the tunnel after the network changed");
    eprintln!("kill switch, reconnect by name through the block: {} packets leaked", leaked.len());
    assert!(leaked.is_empty(), "leaked\n{}", leaked.join("\n"));
}

/// At boot, before any network, `culvertd --block-at-boot` puts lockdown's table in place from the config
/// directory alone, and exits.
#[test]
fn block_at_boot_puts_lockdown_in_place_and_exits() {
    let mut lab = Lab::new();
    let (host, _far) = lab.two_hosts();
    let (state, config) = (lab.dir.join("boot-state"), lab.dir.join("boot-config"));
    std::fs::create_dir_all(&state).unwrap();
    std::fs::create_dir_all(&config).unwrap();
    let boot = |lab: &Lab| {
        let out = run(in_ns(&host, culvert_tests::bin("culvertd"))
            .args(["--block-at-boot", "--state-dir"])
            .arg(&state)
            .arg("--config-dir")
            .arg(&config)
            .arg("--socket")
            .arg(lab.dir.join("unused.sock")));
        assert!(out.status.success(), "{}", stderr(&out));
    };
    let table = || run(in_ns(&host, "nft").args(["list", "table", "inet", "culvert"]));
    boot(&lab);
    assert!(!table().status.success(), "no lockdown, no table");
    std::fs::write(config.join("lockdown"), "on\n").unwrap();
    boot(&lab);
    let listed = String::from_utf8_lossy(&table().stdout).into_owned();
    assert!(listed.contains("policy drop"), "{listed}");
    assert!(!ping(&host, "172.31.0.2", 1), "lockdown at boot let a ping out");
}
