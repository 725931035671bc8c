//! `culvert-wg`, Culvert's engine as a userspace WireGuard: driven by Debian's `wg` and `wg-quick` exactly as
//! they drive wireguard-go, against wireguard-go as the peer, and over the ground of the WireGuard project's own
//! namespace test (wireguard-go's tests/netns.sh): a device moved out of the namespace whose `lo` carries its
//! packets, IPv4 and IPv6 as the outer transport, a 34,816-byte MTU, roaming, cryptokey routing, and huge
//! configurations loaded and listed whole.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use culvert_tests::{Lab, WireguardGo, bin, check, in_ns, ip, ping, run, tcp_transfer, unique, wait_until, wg_keypair};

fn socket(iface: &str) -> PathBuf {
    PathBuf::from(format!("/var/run/wireguard/{iface}.sock"))
}

/// Starts `culvert-wg IFACE` in `ns` as wg-quick does (it detaches); returns once it says the device is there.
fn start(lab: &mut Lab, ns: &str, iface: &str) {
    lab.stray_files.push(socket(iface));
    let out = run(in_ns(ns, bin("culvert-wg")).arg(iface));
    assert!(out.status.success(), "culvert-wg {iface} failed: {}", culvert_tests::stderr(&out));
    assert!(socket(iface).exists(), "culvert-wg returned before its API socket existed");
    let links = ip(&["-n", ns, "-o", "link", "show", "dev", iface]);
    assert!(links.contains(iface), "culvert-wg returned before its device existed: {links}");
}

/// `wg ARGS` in `ns`; must succeed.
fn wg(ns: &str, args: &[&str]) -> String {
    check(in_ns(ns, "wg").args(args))
}

/// A key written to a file, as `wg set ... private-key FILE` takes it.
fn key_file(lab: &Lab, key: &str) -> String {
    let path = lab.dir.join(unique("key"));
    std::fs::write(&path, key).expect("key file");
    path.display().to_string()
}

/// The device's own counters, from the kernel: (rx bytes, tx bytes, rx packets, tx packets).
fn link_counters(ns: &str, iface: &str) -> (u64, u64, u64, u64) {
    let read = |what: &str| {
        let path = format!("/sys/class/net/{iface}/statistics/{what}");
        check(in_ns(ns, "cat").arg(path)).trim().parse::<u64>().expect("a counter")
    };
    (read("rx_bytes"), read("tx_bytes"), read("rx_packets"), read("tx_packets"))
}

/// Whether a process holds the API socket of `iface` open for listening (the device's process is alive).
fn answers(iface: &str) -> bool {
    std::os::unix::net::UnixStream::connect(socket(iface)).is_ok()
}

#[test]
fn wg_quick_drives_culvert_wg_to_a_wireguard_go_peer() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    let peer = WireguardGo::start(&mut lab, &b, 51821, "10.8.0.2/24");
    let iface = unique("cwg");
    let (private, public) = wg_keypair();
    let conf = lab.dir.join(format!("{iface}.conf"));
    std::fs::write(
        &conf,
        format!(
            "[Interface]\nPrivateKey = {private}\nAddress = 10.8.0.1/24\nListenPort = 51820\nMTU = 1420\n\n\
             [Peer]\nPublicKey = {}\nEndpoint = 172.31.0.2:51821\nAllowedIPs = 10.8.0.2/32\n",
            peer.public_key
        ),
    )
    .expect("config");
    peer.wg(&["set", &peer.iface, "peer", &public, "allowed-ips", "10.8.0.1/32"]);
    lab.stray_files.push(socket(&iface));

    let up =
        run(in_ns(&a, "wg-quick").arg("up").arg(&conf).env("WG_QUICK_USERSPACE_IMPLEMENTATION", bin("culvert-wg")));
    let said = format!("{}{}", String::from_utf8_lossy(&up.stdout), culvert_tests::stderr(&up));
    assert!(up.status.success(), "wg-quick up failed: {said}");
    assert!(said.contains("culvert-wg"), "wg-quick did not fall back to culvert-wg: {said}");

    assert!(ping(&a, "10.8.0.2", 3), "no ping through culvert-wg to wireguard-go");
    let (sent, got) = tcp_transfer(&mut lab, &a, &b, "10.8.0.2", 5201, 4 << 20);
    assert!(sent == got, "4 MiB over TCP arrived as {} bytes, or changed", got.len());

    let dump = wg(&a, &["show", &iface, "dump"]);
    let line = dump.lines().nth(1).unwrap_or_else(|| panic!("no peer in wg show: {dump}"));
    let f: Vec<&str> = line.split('\t').collect();
    assert_eq!(f[0], peer.public_key, "{dump}");
    assert_eq!(f[2], "172.31.0.2:51821", "{dump}");
    let (handshake, rx, tx): (u64, u64, u64) = (f[4].parse().unwrap(), f[5].parse().unwrap(), f[6].parse().unwrap());
    assert!(handshake > 0 && rx > 0 && tx > 4 << 20, "wg show: handshake {handshake}, rx {rx}, tx {tx}");
    let theirs = peer.peers();
    assert!(theirs.iter().any(|p| p.0 == public && p.2 > 0 && p.3 > 4 << 20), "wireguard-go saw: {theirs:?}");
    // wg-quick set the device's address, MTU and route, not culvert-wg.
    let shown = ip(&["-n", &a, "addr", "show", "dev", &iface]);
    assert!(shown.contains("10.8.0.1/24") && shown.contains("mtu 1420"), "{shown}");

    let down = run(in_ns(&a, "wg-quick").arg("down").arg(&conf));
    assert!(down.status.success(), "wg-quick down failed: {}", culvert_tests::stderr(&down));
    assert!(wait_until(Duration::from_secs(2), || !socket(&iface).exists()), "culvert-wg left its socket after down");
    assert!(!answers(&iface));
}

#[test]
fn the_device_ends_with_its_link_its_socket_or_a_signal_and_bad_names_are_refused() {
    let mut lab = Lab::new();
    let ns = lab.netns();
    // Deleted link: the process ends and removes its socket.
    let one = unique("cwg");
    start(&mut lab, &ns, &one);
    assert!(answers(&one));
    ip(&["-n", &ns, "link", "del", &one]);
    assert!(wait_until(Duration::from_secs(2), || !socket(&one).exists()), "the socket outlived the deleted device");

    // Removed socket: the process ends and its device goes with it.
    let two = unique("cwg");
    start(&mut lab, &ns, &two);
    std::fs::remove_file(socket(&two)).expect("remove the socket");
    assert!(
        wait_until(Duration::from_secs(2), || run(in_ns(&ns, "ip").args(["link", "show", &two])).status.code()
            != Some(0)),
        "the device outlived its socket"
    );

    // SIGTERM, to a foreground device the lab started.
    let three = unique("cwg");
    lab.stray_files.push(socket(&three));
    let child = lab.spawn(in_ns(&ns, bin("culvert-wg")).args(["-f", &three]));
    let pid = child.id();
    assert!(wait_until(Duration::from_secs(5), || answers(&three)), "culvert-wg -f did not open its socket");
    check(Command::new("kill").args(["-TERM", &pid.to_string()]));
    assert!(wait_until(Duration::from_secs(2), || !socket(&three).exists()), "SIGTERM left the socket");
    let gone = wait_until(Duration::from_secs(2), || {
        run(in_ns(&ns, "ip").args(["link", "show", &three])).status.code() != Some(0)
    });
    assert!(gone, "SIGTERM left the device");

    // A name the kernel would refuse, and a name another device already has.
    let bad = run(in_ns(&ns, bin("culvert-wg")).arg("much-too-long-name0"));
    assert_eq!(bad.status.code(), Some(2));
    assert!(culvert_tests::stderr(&bad).contains("at most 15"), "{}", culvert_tests::stderr(&bad));
    let taken = run(in_ns(&ns, bin("culvert-wg")).arg("lo"));
    assert!(!taken.status.success());
    assert!(
        culvert_tests::stderr(&taken).contains("cannot create the TUN device lo"),
        "{}",
        culvert_tests::stderr(&taken)
    );
    // Without the privilege TUNSETIFF needs, the message says how to run it.
    let unprivileged = run(Command::new("setpriv")
        .args(["--reuid=4242", "--regid=4242", "--clear-groups"])
        .arg(bin("culvert-wg"))
        .arg(unique("cwg")));
    assert!(!unprivileged.status.success());
    let said = culvert_tests::stderr(&unprivileged);
    assert!(said.contains("run culvert-wg as root"), "{said}");
}

/// WireGuard's namespace trick as netns.sh sets it up: two devices made in `ns0`, whose `lo` carries their UDP,
/// then moved to `ns1` and `ns2`, configured with a preshared key, and up.
struct Trick {
    ns: [String; 3],
    dev: [String; 2],
    public: [String; 2],
}

impl Trick {
    fn new(lab: &mut Lab) -> Self {
        let ns = [lab.netns(), lab.netns(), lab.netns()];
        let dev = [unique("cwa"), unique("cwb")];
        let (k1, p1) = wg_keypair();
        let (k2, p2) = wg_keypair();
        let psk = check(Command::new("wg").arg("genpsk")).trim().to_owned();
        let psk_file = key_file(lab, &psk);
        for (i, (key, peer, port, peer_last)) in
            [(&k1, &p2, "10000", "2"), (&k2, &p1, "20000", "1")].into_iter().enumerate()
        {
            start(lab, &ns[0], &dev[i]);
            ip(&["-n", &ns[0], "link", "set", &dev[i], "netns", &ns[i + 1]]);
            let me = i + 1;
            ip(&["-n", &ns[i + 1], "addr", "add", &format!("192.168.241.{me}/24"), "dev", &dev[i]]);
            ip(&["-n", &ns[i + 1], "addr", "add", &format!("fd00::{me}/24"), "dev", &dev[i], "nodad"]);
            let allowed = format!("192.168.241.{peer_last}/32,fd00::{peer_last}/128");
            let key = key_file(lab, key);
            wg(
                &ns[0],
                &[
                    "set",
                    &dev[i],
                    "private-key",
                    &key,
                    "listen-port",
                    port,
                    "peer",
                    peer,
                    "preshared-key",
                    &psk_file,
                    "allowed-ips",
                    &allowed,
                ],
            );
            ip(&["-n", &ns[i + 1], "link", "set", "up", "dev", &dev[i]]);
        }
        Self { ns, dev, public: [p1, p2] }
    }

    /// Points each device at the other through `host` (an address of ns0's lo) at its port.
    fn endpoints(&self, host: &str) {
        wg(&self.ns[0], &["set", &self.dev[0], "peer", &self.public[1], "endpoint", &format!("{host}:20000")]);
        wg(&self.ns[0], &["set", &self.dev[1], "peer", &self.public[0], "endpoint", &format!("{host}:10000")]);
    }

    fn mtu(&self, mtu: u32) {
        for i in 0..2 {
            ip(&["-n", &self.ns[i + 1], "link", "set", &self.dev[i], "mtu", &mtu.to_string()]);
        }
    }

    /// Pings both ways over IPv4 and IPv6 (with packets of `size` bytes), then iperf3 TCP and UDP both ways.
    fn traffic(&self, size: u32, what: &str) {
        let ping_ok = |ns: &str, dst: &str| {
            run(in_ns(ns, "ping").args(["-c", "10", "-i", "0.01", "-W", "2", "-s", &size.to_string(), dst]))
                .status
                .success()
        };
        for (ns, dst) in [(2, "192.168.241.1"), (1, "192.168.241.2"), (2, "fd00::1"), (1, "fd00::2")] {
            assert!(ping_ok(&self.ns[ns], dst), "{what}: no ping of {size} bytes from ns{ns} to {dst}");
        }
        for (server, addr, client, udp) in [
            (2, "192.168.241.2", 1, false),
            (1, "fd00::1", 2, false),
            (1, "192.168.241.1", 2, true),
            (2, "fd00::2", 1, true),
        ] {
            let received = iperf3(&self.ns[server], addr, &self.ns[client], udp);
            assert!(received > 0, "{what}: iperf3 {} to {addr} moved nothing", if udp { "UDP" } else { "TCP" });
        }
    }
}

/// One iperf3 run from `client` to `addr` in `server` (20 MB over TCP, or 5 MB of UDP at 200 Mbit/s, as netns.sh
/// runs them on a smaller scale); the bytes the receiver got.
fn iperf3(server: &str, addr: &str, client: &str, udp: bool) -> u64 {
    let mut s = in_ns(server, "iperf3")
        .args(["-s", "-1", "-B", addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3 -s");
    let listening = wait_until(Duration::from_secs(5), || {
        !run(in_ns(server, "ss").args(["-Hltn", "sport = :5201"])).stdout.is_empty()
    });
    assert!(listening, "iperf3 did not listen");
    let mut c = in_ns(client, "iperf3");
    c.args(["-c", addr, "-J", "--connect-timeout", "3000"]);
    if udp {
        c.args(["-u", "-b", "200M", "-n", "5M"]);
    } else {
        c.args(["-n", "20M"]);
    }
    let out = run(&mut c);
    let _ = wait_until(Duration::from_secs(5), || matches!(s.try_wait(), Ok(Some(_))));
    let _ = s.kill();
    let _ = s.wait();
    assert!(out.status.success(), "iperf3 -c {addr} failed: {}", String::from_utf8_lossy(&out.stdout));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("iperf3 JSON");
    let end = &report["end"];
    let bytes = if udp { &end["sum"]["bytes"] } else { &end["sum_received"]["bytes"] };
    bytes.as_u64().unwrap_or(0)
}

#[test]
fn a_moved_device_carries_both_families_over_either_transport_at_any_mtu_and_counts_it() {
    let mut lab = Lab::new();
    let t = Trick::new(&mut lab);
    t.endpoints("127.0.0.1");
    // The device's own counters count what crossed it: ten pings, 84 bytes each way, and little else.
    let before = link_counters(&t.ns[2], &t.dev[1]);
    assert!(run(in_ns(&t.ns[2], "ping").args(["-c", "10", "-i", "0.01", "-W", "2", "192.168.241.1"])).status.success());
    let after = link_counters(&t.ns[2], &t.dev[1]);
    let (rx, tx) = (after.0 - before.0, after.1 - before.1);
    assert!((840..2500).contains(&rx) && (840..2500).contains(&tx), "the device counted rx {rx} and tx {tx} bytes");
    assert!(after.2 - before.2 >= 10 && after.3 - before.3 >= 10, "packets: {before:?} -> {after:?}");

    let orig = 1420;
    let big = 34_816 - 1500 + orig;
    for (host, transport) in [("127.0.0.1", "IPv4"), ("[::1]", "IPv6")] {
        t.endpoints(host);
        t.mtu(orig);
        t.traffic(56, &format!("{transport} transport, MTU {orig}"));
        t.mtu(big);
        t.traffic(30_000, &format!("{transport} transport, MTU {big}"));
    }
}

#[test]
fn peers_roam_and_cryptokey_routing_decides_who_may_send_what() {
    let mut lab = Lab::new();
    let t = Trick::new(&mut lab);
    t.endpoints("127.0.0.1");
    assert!(ping(&t.ns[1], "192.168.241.2", 1));
    let endpoints = |i: usize| wg(&t.ns[0], &["show", &t.dev[i], "endpoints"]).trim().to_owned();

    // IPv4: ns0's loopback address changes and wg1 moves to another port; wg2 follows where it hears from.
    ip(&["-n", &t.ns[0], "-4", "addr", "del", "127.0.0.1/8", "dev", "lo"]);
    ip(&["-n", &t.ns[0], "-4", "addr", "add", "127.212.121.99/8", "dev", "lo"]);
    wg(&t.ns[0], &["set", &t.dev[0], "listen-port", "9999"]);
    wg(&t.ns[0], &["set", &t.dev[0], "peer", &t.public[1], "endpoint", "127.0.0.1:20000"]);
    assert!(ping(&t.ns[1], "fd00::2", 1), "no ping after wg1 moved to port 9999");
    assert_eq!(endpoints(1), format!("{}\t127.212.121.99:9999", t.public[0]));

    // IPv6, as netns.sh does it: from inside ns1, where `wg` reaches the device's socket all the same.
    wg(&t.ns[1], &["set", &t.dev[0], "listen-port", "9998"]);
    wg(&t.ns[1], &["set", &t.dev[0], "peer", &t.public[1], "endpoint", "[::1]:20000"]);
    assert!(ping(&t.ns[1], "192.168.241.2", 1), "no ping over IPv6 after wg1 moved to port 9998");
    assert_eq!(endpoints(1), format!("{}\t[::1]:9998", t.public[0]));

    // Cryptokey routing: wg2 may send from 192.168.241.2 while that is its allowed IP, not once a more specific
    // peer holds it; its datagram still moves wg1's endpoint for it (it was authentic).
    wg(&t.ns[0], &["set", &t.dev[0], "peer", &t.public[1], "allowed-ips", "192.168.241.0/24"]);
    assert!(udp_arrives(&lab, &t.ns[1], &t.ns[2]), "a datagram from an allowed source did not arrive");
    let (_, more_specific) = wg_keypair();
    wg(&t.ns[0], &["set", &t.dev[0], "peer", &more_specific, "allowed-ips", "192.168.241.2/32"]);
    wg(&t.ns[0], &["set", &t.dev[1], "listen-port", "9997"]);
    assert!(!udp_arrives(&lab, &t.ns[1], &t.ns[2]), "a datagram from another peer's allowed IP was delivered");
    wg(&t.ns[0], &["set", &t.dev[0], "peer", &more_specific, "remove"]);
    assert_eq!(endpoints(0), format!("{}\t[::1]:9997", t.public[1]));
}

/// Whether one UDP datagram from ns2 to 192.168.241.1:1111 reaches a receiver in ns1 within a second.
fn udp_arrives(lab: &Lab, ns1: &str, ns2: &str) -> bool {
    let file = lab.dir.join(unique("udp"));
    let mut rx = in_ns(ns1, "socat")
        .args(["-u", "UDP-RECV:1111,bind=192.168.241.1", &format!("CREATE:{}", file.display())])
        .stdin(Stdio::null())
        .spawn()
        .expect("socat receiver");
    let listening = wait_until(Duration::from_secs(5), || {
        !run(in_ns(ns1, "ss").args(["-Hlun", "sport = :1111"])).stdout.is_empty()
    });
    assert!(listening, "socat did not listen");
    let mut tx = in_ns(ns2, "socat")
        .args(["-u", "-", "UDP-SENDTO:192.168.241.1:1111"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("socat sender");
    std::io::Write::write_all(tx.stdin.as_mut().expect("stdin"), b"X\n").expect("send");
    drop(tx.stdin.take());
    let _ = tx.wait();
    let arrived = wait_until(Duration::from_secs(1), || std::fs::read(&file).is_ok_and(|b| b.starts_with(b"X")));
    let _ = rx.kill();
    let _ = rx.wait();
    arrived
}

/// netns.sh's configurations that split `wg`'s messages: 130,560 allowed IPs on one peer, 40 peers of 52, and
/// 30 peers on a device with no private key. Each loads whole and lists whole; the big one is timed against
/// wireguard-go loading the same file in the same run.
#[test]
fn huge_configurations_load_and_list_whole() {
    let mut lab = Lab::new();
    let ns = lab.netns();
    let dir = lab.dir.clone();
    let file = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("config file");
        path.display().to_string()
    };
    let (key, _) = wg_keypair();
    let (_, peer) = wg_keypair();
    let mut big = format!("[Interface]\nPrivateKey={key}\n[Peer]\nPublicKey={peer}\n");
    for a in 1..=255 {
        for b in 0..=255 {
            big.push_str(&format!("AllowedIPs={a}.{b}.0.0/16,{a:x}::{b:x}/128\n"));
        }
    }
    let big = file("big.conf", big);
    let mut timings = vec![];
    for program in [bin("culvert-wg"), PathBuf::from("wireguard-go")] {
        let iface = unique("cwh");
        lab.stray_files.push(socket(&iface));
        check(in_ns(&ns, &program).arg(&iface));
        let started = Instant::now();
        wg(&ns, &["setconf", &iface, &big]);
        let loaded = started.elapsed();
        let listed = wg(&ns, &["show", &iface, "allowed-ips"]);
        let took = (loaded, started.elapsed() - loaded);
        assert_eq!(
            listed.split_whitespace().count(),
            255 * 256 * 2 + 1,
            "{}: not every allowed IP listed",
            program.display()
        );
        ip(&["-n", &ns, "link", "del", &iface]);
        timings.push((program.display().to_string(), took));
    }
    for (program, (loaded, listed)) in &timings {
        eprintln!("130,560 allowed IPs: {program} loaded them in {loaded:?} and listed them in {listed:?}");
    }

    let iface = unique("cwh");
    start(&mut lab, &ns, &iface);
    let mut forty = format!("[Interface]\nPrivateKey={key}\n");
    for a in 1..=40 {
        let (_, p) = wg_keypair();
        forty.push_str(&format!("[Peer]\nPublicKey={p}\n"));
        for b in 1..=52 {
            forty.push_str(&format!("AllowedIPs={a}.{b}.0.0/16\n"));
        }
    }
    wg(&ns, &["setconf", &iface, &file("forty.conf", forty)]);
    let lines: Vec<String> = wg(&ns, &["show", &iface, "allowed-ips"]).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 40);
    assert!(lines.iter().all(|l| l.split_whitespace().count() == 53), "{lines:?}");
    ip(&["-n", &ns, "link", "del", &iface]);

    let iface = unique("cwh");
    start(&mut lab, &ns, &iface);
    let mut keyless = String::new();
    for _ in 0..29 {
        keyless.push_str(&format!("[Peer]\nPublicKey={}\n", wg_keypair().1));
    }
    let (_, last) = wg_keypair();
    keyless.push_str(&format!("[Peer]\nPublicKey={last}\nAllowedIPs=255.2.3.4/32,abcd::255/128\n"));
    wg(&ns, &["setconf", &iface, &file("keyless.conf", keyless)]);
    let shown = wg(&ns, &["showconf", &iface]);
    assert_eq!(shown.matches("[Peer]").count(), 30, "{shown}");
    assert!(!shown.contains("PrivateKey"), "a device with no key showed one: {shown}");
    assert!(shown.contains(&format!("PublicKey = {last}\nAllowedIPs = 255.2.3.4/32, abcd::255/128")), "{shown}");
    ip(&["-n", &ns, "link", "del", &iface]);
    assert!(!run(in_ns(&ns, "wg").args(["show", "doesnotexist"])).status.success());
}

/// A peer behind NAT stays reachable from outside while its keepalive holds the NAT's mapping open (ns0 routes
/// and masquerades ns1, and forgets a UDP mapping after 2 s), and is not once the keepalive is off.
#[test]
fn a_peer_behind_nat_stays_reachable_while_its_keepalive_holds_the_mapping() {
    let mut lab = Lab::new();
    let (router, client, server) = (lab.netns(), lab.netns(), lab.netns());
    let (d1, d2) = (unique("cwn"), unique("cwn"));
    start(&mut lab, &client, &d1);
    start(&mut lab, &server, &d2);
    let (k1, p1) = wg_keypair();
    let (k2, p2) = wg_keypair();
    let (k1, k2) = (key_file(&lab, &k1), key_file(&lab, &k2));
    wg(
        &client,
        &["set", &d1, "private-key", &k1, "listen-port", "10000", "peer", &p2, "allowed-ips", "192.168.241.2/32"],
    );
    wg(
        &server,
        &["set", &d2, "private-key", &k2, "listen-port", "20000", "peer", &p1, "allowed-ips", "192.168.241.1/32"],
    );
    for (ns, dev, me) in [(&client, &d1, 1), (&server, &d2, 2)] {
        ip(&["-n", ns, "addr", "add", &format!("192.168.241.{me}/24"), "dev", dev]);
        ip(&["-n", ns, "link", "set", "up", "dev", dev]);
    }
    lab.veth(&router, &["192.168.1.1/24"], &client, &["192.168.1.100/24"]);
    lab.veth(&router, &["10.0.0.1/24"], &server, &["10.0.0.100/24"]);
    ip(&["-n", &client, "route", "add", "default", "via", "192.168.1.1"]);
    let nat = "add table ip cvnat\n\
               add chain ip cvnat post { type nat hook postrouting priority 100; }\n\
               add rule ip cvnat post ip saddr 192.168.1.0/24 ip daddr 10.0.0.0/24 snat to 10.0.0.1\n";
    let nft = std::fs::write(lab.dir.join("nat.nft"), nat);
    nft.expect("nft file");
    check(in_ns(&router, "nft").arg("-f").arg(lab.dir.join("nat.nft")));
    for (key, value) in [
        ("net.ipv4.ip_forward", "1"),
        ("net.netfilter.nf_conntrack_udp_timeout", "2"),
        ("net.netfilter.nf_conntrack_udp_timeout_stream", "2"),
    ] {
        check(in_ns(&router, "sysctl").args(["-qw", &format!("{key}={value}")]));
    }

    wg(&client, &["set", &d1, "peer", &p2, "endpoint", "10.0.0.100:20000", "persistent-keepalive", "1"]);
    assert!(ping(&client, "192.168.241.2", 1), "no ping out through the NAT");
    assert!(ping(&server, "192.168.241.1", 1), "no ping back in through the NAT");
    assert_eq!(wg(&server, &["show", &d2, "endpoints"]).trim(), format!("{p1}\t10.0.0.1:10000"));
    std::thread::sleep(Duration::from_secs(3));
    let once = |ns: &str, dst: &str| run(in_ns(ns, "ping").args(["-c", "1", "-W", "1", dst])).status.success();
    assert!(once(&server, "192.168.241.1"), "the keepalive did not hold the NAT's mapping open");

    // The control: without the keepalive the mapping lapses, and the server can no longer reach the client.
    wg(&client, &["set", &d1, "peer", &p2, "persistent-keepalive", "0"]);
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !once(&server, "192.168.241.1"),
        "the server reached the client with no mapping: the NAT is not in the way"
    );
}

/// Source addresses are sticky but not too sticky: a device answers from the address it was reached at (so that
/// a peer reaching a host with several addresses keeps the one it chose), and when the address it sends from
/// is removed it sends from another instead of failing.
#[test]
fn a_device_answers_from_the_address_it_was_reached_at_and_moves_on_when_that_address_goes() {
    let mut lab = Lab::new();
    let (n1, n2) = (lab.netns(), lab.netns());
    let (d1, d2) = (unique("cws"), unique("cws"));
    start(&mut lab, &n1, &d1);
    start(&mut lab, &n2, &d2);
    let (k1, p1) = wg_keypair();
    let (k2, p2) = wg_keypair();
    let (k1, k2) = (key_file(&lab, &k1), key_file(&lab, &k2));
    wg(&n1, &["set", &d1, "private-key", &k1, "listen-port", "10000", "peer", &p2, "allowed-ips", "192.168.241.2/32"]);
    wg(&n2, &["set", &d2, "private-key", &k2, "listen-port", "20000", "peer", &p1, "allowed-ips", "192.168.241.1/32"]);
    for (ns, dev, me) in [(&n1, &d1, 1), (&n2, &d2, 2)] {
        ip(&["-n", ns, "addr", "add", &format!("192.168.241.{me}/24"), "dev", dev]);
        ip(&["-n", ns, "link", "set", "up", "dev", dev]);
    }
    let (v1, v2) = (unique("vs"), unique("vs"));
    ip(&["link", "add", &v1, "netns", &n1, "type", "veth", "peer", "name", &v2, "netns", &n2]);
    // Removing the first address of a subnet keeps the others (it would remove them all otherwise).
    check(in_ns(&n1, "sysctl").args(["-qw", &format!("net.ipv4.conf.{v1}.promote_secondaries=1")]));
    let addrs = |ns: &str, dev: &str, list: &[&str]| {
        for a in list {
            let nodad: &[&str] = if a.contains(':') { &["nodad"] } else { &[] };
            ip(&[&["-n", ns, "addr", "add", a, "dev", dev][..], nodad].concat());
        }
    };
    addrs(&n1, &v1, &["10.0.0.1/24", "fd00:aa::1/96"]);
    addrs(&n2, &v2, &["10.0.0.2/24", "fd00:aa::2/96"]);
    ip(&["-n", &n1, "link", "set", &v1, "up"]);
    ip(&["-n", &n2, "link", "set", &v2, "up"]);
    let once = |ns: &str, dst: &str| run(in_ns(ns, "ping").args(["-c", "1", "-W", "2", dst])).status.success();

    // Not too sticky: the address wg1 sends from goes, and it sends from the one that took its place.
    wg(&n1, &["set", &d1, "peer", &p2, "endpoint", "10.0.0.2:20000"]);
    assert!(once(&n1, "192.168.241.2"), "no ping over 10.0.0.0/24");
    addrs(&n1, &v1, &["10.0.0.10/24"]);
    ip(&["-n", &n1, "addr", "del", "10.0.0.1/24", "dev", &v1]);
    assert!(once(&n1, "192.168.241.2"), "the IPv4 address sent from went, and so did the tunnel");
    wg(&n1, &["set", &d1, "peer", &p2, "endpoint", "[fd00:aa::2]:20000"]);
    assert!(once(&n1, "192.168.241.2"), "no ping over fd00:aa::/96");
    addrs(&n1, &v1, &["fd00:aa::10/96"]);
    ip(&["-n", &n1, "addr", "del", "fd00:aa::1/96", "dev", &v1]);
    assert!(once(&n1, "192.168.241.2"), "the IPv6 address sent from went, and so did the tunnel");

    // Sticky: wg1 has two addresses of each family, and answers wg2 from whichever wg2 reached it at.
    for (ns, dev) in [(&n1, &v1), (&n2, &v2)] {
        ip(&["-n", ns, "link", "set", dev, "down"]);
        ip(&["-n", ns, "addr", "flush", "dev", dev]);
    }
    addrs(&n1, &v1, &["10.0.0.1/24", "10.0.0.2/24", "fd00:aa::1/96", "fd00:aa::2/96"]);
    addrs(&n2, &v2, &["10.0.0.3/24", "fd00:aa::3/96"]);
    ip(&["-n", &n1, "link", "set", &v1, "up"]);
    ip(&["-n", &n2, "link", "set", &v2, "up"]);
    for at in ["10.0.0.1:10000", "[fd00:aa::1]:10000", "10.0.0.2:10000", "[fd00:aa::2]:10000"] {
        wg(&n2, &["set", &d2, "peer", &p1, "endpoint", at]);
        assert!(once(&n2, "192.168.241.1"), "no ping with wg1 reached at {at}");
        assert_eq!(wg(&n2, &["show", &d2, "endpoints"]).trim(), format!("{p1}\t{at}"), "wg1 did not answer from {at}");
    }
}

/// `wg set ... fwmark` marks every datagram the device sends (for policy routing), from the start and when
/// changed while it runs; an nft counter in the sender's namespace tells marked from unmarked.
#[test]
fn the_fwmark_wg_sets_marks_what_the_device_sends_and_can_be_changed() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    let peer = WireguardGo::start(&mut lab, &b, 51821, "10.8.0.2/24");
    let iface = unique("cwm");
    start(&mut lab, &a, &iface);
    let (private, public) = wg_keypair();
    let key = key_file(&lab, &private);
    peer.wg(&["set", &peer.iface, "peer", &public, "allowed-ips", "10.8.0.1/32"]);
    wg(&a, &["set", &iface, "private-key", &key, "fwmark", "0x5c", "peer", &peer.public_key]);
    wg(&a, &["set", &iface, "peer", &peer.public_key, "endpoint", "172.31.0.2:51821", "allowed-ips", "10.8.0.2/32"]);
    ip(&["-n", &a, "addr", "add", "10.8.0.1/24", "dev", &iface]);
    ip(&["-n", &a, "link", "set", &iface, "up"]);
    let rules = "add table inet cvmark\n\
                 add chain inet cvmark out { type filter hook output priority 0; }\n\
                 add rule inet cvmark out udp dport 51821 meta mark 0x5c counter\n\
                 add rule inet cvmark out udp dport 51821 meta mark 0 counter\n";
    std::fs::write(lab.dir.join("mark.nft"), rules).expect("nft file");
    check(in_ns(&a, "nft").arg("-f").arg(lab.dir.join("mark.nft")));
    // (marked, unmarked) datagrams to the peer so far.
    let counted = || {
        let listed = check(in_ns(&a, "nft").args(["list", "table", "inet", "cvmark"]));
        let n: Vec<u64> = listed
            .split("counter packets ")
            .skip(1)
            .map(|rest| rest.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0))
            .collect();
        assert_eq!(n.len(), 2, "{listed}");
        (n[0], n[1])
    };

    assert!(ping(&a, "10.8.0.2", 3), "no ping through a marked device");
    assert_eq!(wg(&a, &["show", &iface, "fwmark"]).trim(), "0x5c");
    let (marked, unmarked) = counted();
    assert!(marked >= 3 && unmarked == 0, "marked {marked}, unmarked {unmarked}");

    wg(&a, &["set", &iface, "fwmark", "0"]);
    assert!(ping(&a, "10.8.0.2", 3), "no ping once the mark was cleared");
    assert_eq!(wg(&a, &["show", &iface, "fwmark"]).trim(), "off");
    // The three pings went unmarked (a timer's datagram may still have left marked just before the change).
    let (still, now_unmarked) = counted();
    assert!(still - marked < 3 && now_unmarked >= 3, "after clearing: marked {still}, unmarked {now_unmarked}");
}
