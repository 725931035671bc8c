//! Tunnels changed while they run (`culvert apply`): peers added and removed with traffic to the peers that stay
//! flowing, a failed change leaving the tunnel exactly as it was, and a crash in the middle leaving nothing.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use culvert_tests::{Lab, WireguardGo, culvert_keypair, in_ns, ip, ping, stderr, udp_profile, wait_until};

/// Three hosts: A in the middle, B on 172.31.0.0/24 and C on 172.32.0.0/24, a helper in each.
fn three_hosts(lab: &mut Lab) -> (String, String, String) {
    let (a, b) = lab.two_hosts();
    let c = lab.netns();
    lab.veth(&a, &["172.32.0.1/24"], &c, &["172.32.0.2/24"]);
    for (ns, tag) in [(&a, "a"), (&b, "b"), (&c, "c")] {
        lab.start_helper(ns, tag, &[]);
    }
    (a, b, c)
}

/// wireguard-go in B (10.8.0.2) and C (10.8.0.3), each with A's Culvert tunnel (10.8.0.1, port 51820) as its peer.
fn two_wireguard_go_peers(lab: &mut Lab, b: &str, c: &str, public: &str) -> (WireguardGo, WireguardGo) {
    let wb = WireguardGo::start(lab, b, 51821, "10.8.0.2/24");
    wb.wg(&["set", &wb.iface, "peer", public, "allowed-ips", "10.8.0.1/32", "endpoint", "172.31.0.1:51820"]);
    let wc = WireguardGo::start(lab, c, 51822, "10.8.0.3/24");
    wc.wg(&["set", &wc.iface, "peer", public, "allowed-ips", "10.8.0.1/32", "endpoint", "172.32.0.1:51820"]);
    (wb, wc)
}

/// A ping every 10 ms from `ns` to `dst`, `count` of them, its summary written to a file.
fn steady_ping(lab: &mut Lab, ns: &str, dst: &str, count: u32) -> (Child, PathBuf) {
    let out = lab.dir.join(format!("{}.ping", culvert_tests::unique("p")));
    let child = in_ns(ns, "ping")
        .args(["-q", "-i", "0.01", "-W", "1", "-c", &count.to_string(), dst])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, out)
}

/// (sent, received) from a ping summary.
fn ping_result(mut child: Child, out: &PathBuf) -> (u64, u64) {
    let _ = child.wait();
    let text = std::fs::read_to_string(out).unwrap();
    let line = text.lines().find(|l| l.contains("packets transmitted")).unwrap_or_else(|| panic!("{text}"));
    let n = |word: &str| {
        line.split(", ").find(|p| p.contains(word)).and_then(|p| p.split_whitespace().next()?.parse().ok()).unwrap()
    };
    (n("transmitted"), n("received"))
}

fn udp_with(address: &str, port: u16, iface: &str, peers: &[(&str, &str)]) -> String {
    let mut text =
        format!("kind = \"udp\"\naddress = [\"{address}\"]\nlisten_port = {port}\ninterface = \"{iface}\"\n");
    for (endpoint, allowed) in peers {
        text += &format!("[[peer]]\nendpoint = \"{endpoint}\"\nallowed_ips = [{allowed}]\n");
    }
    text
}

#[test]
fn a_udp_peer_comes_and_goes_while_traffic_to_the_other_never_stops() {
    let mut lab = Lab::new();
    let (a, b, c) = three_hosts(&mut lab);
    let one = udp_with("10.9.0.1/24", 8285, "cv-live", &[("172.31.0.2:8285", "\"10.9.0.2/32\"")]);
    let two = udp_with(
        "10.9.0.1/24",
        8285,
        "cv-live",
        &[("172.31.0.2:8285", "\"10.9.0.2/32\""), ("172.32.0.2:8285", "\"10.9.0.3/32\", \"10.19.0.0/24\"")],
    );
    let v1 = lab.profile("live", &one);
    let pb = lab.profile("pb", &udp_profile("10.9.0.2/24", 8285, "cv-b", "172.31.0.1:8285", "10.9.0.1/32", 1420));
    let pc = lab.profile("pc", &udp_profile("10.9.0.3/24", 8285, "cv-c", "172.32.0.1:8285", "10.9.0.1/32", 1420));
    lab.helpers[0].culvert_ok(&["up", v1.to_str().unwrap()]);
    lab.helpers[1].culvert_ok(&["up", pb.to_str().unwrap()]);
    lab.helpers[2].culvert_ok(&["up", pc.to_str().unwrap()]);
    assert!(ping(&a, "10.9.0.2", 1));
    let (pinger, summary) = steady_ping(&mut lab, &a, "10.9.0.2", 500);
    std::thread::sleep(Duration::from_millis(800));

    let v2 = lab.profile("live", &two);
    let said = lab.helpers[0].culvert_ok(&["apply", v2.to_str().unwrap()]);
    assert!(said.contains("applied without reconnecting") && said.contains("peer 172.32.0.2:8285: added"), "{said}");
    assert!(said.contains("2 routes added"), "{said}");
    assert!(ping(&a, "10.9.0.3", 2), "the added peer does not answer");
    assert!(ip(&["-n", &a, "route"]).contains("10.19.0.0/24 dev cv-live"));
    let s = lab.helpers[0].status("live");
    assert_eq!(s["peers"].as_array().unwrap().len(), 2, "{s}");

    let v1 = lab.profile("live", &one);
    let said = lab.helpers[0].culvert_ok(&["apply", v1.to_str().unwrap()]);
    assert!(said.contains("peer 172.32.0.2:8285: removed") && said.contains("2 routes removed"), "{said}");
    assert!(!ping(&a, "10.9.0.3", 1), "the removed peer still answers");
    assert!(!ip(&["-n", &a, "route"]).contains("10.19.0.0/24"), "the removed peer's routes stayed");
    let same = lab.helpers[0].culvert_ok(&["apply", v1.to_str().unwrap()]);
    assert!(same.contains("nothing changed"), "{same}");

    let (sent, received) = ping_result(pinger, &summary);
    eprintln!("udp: {sent} pings to the peer that stayed, {received} answered across two applies");
    assert_eq!((sent, received), (500, 500), "pings to the unchanged peer were lost");
    // The counters of the peer that stayed went on from where they were.
    assert!(lab.helpers[0].status("live")["peers"][0]["tx_packets"].as_u64().unwrap() >= 500);
    drop(b);
    drop(c);
}

#[test]
fn a_wireguard_peer_comes_and_goes_without_a_new_handshake_for_the_other() {
    let mut lab = Lab::new();
    let (a, b, c) = three_hosts(&mut lab);
    let (private, public) = culvert_keypair();
    let (wb, wc) = two_wireguard_go_peers(&mut lab, &b, &c, &public);
    let conf = |peers: &[(&str, &str, &str)]| {
        let mut text = format!("[Interface]\nPrivateKey = {private}\nAddress = 10.8.0.1/24\nListenPort = 51820\n");
        for (key, allowed, endpoint) in peers {
            text += &format!("[Peer]\nPublicKey = {key}\nAllowedIPs = {allowed}\nEndpoint = {endpoint}\n");
        }
        text
    };
    let one = conf(&[(&wb.public_key, "10.8.0.2/32", "172.31.0.2:51821")]);
    let two = conf(&[
        (&wb.public_key, "10.8.0.2/32", "172.31.0.2:51821"),
        (&wc.public_key, "10.8.0.3/32", "172.32.0.2:51822"),
    ]);
    let file = lab.conf("wglive", &one);
    lab.helpers[0].culvert_ok(&["up", file.to_str().unwrap()]);
    assert!(ping(&a, "10.8.0.2", 2));
    let handshake_of = |wg: &WireguardGo| wg.peers().first().map(|p| p.2).unwrap_or(0);
    let first = handshake_of(&wb);
    assert!(first > 0);
    let (pinger, summary) = steady_ping(&mut lab, &a, "10.8.0.2", 500);
    std::thread::sleep(Duration::from_millis(800));

    std::fs::write(&file, &two).unwrap();
    let said = lab.helpers[0].culvert_ok(&["apply", file.to_str().unwrap()]);
    assert!(said.contains(&format!("peer {}: added", wc.public_key)), "{said}");
    assert!(ping(&a, "10.8.0.3", 3), "the added wireguard-go peer does not answer");
    std::fs::write(&file, &one).unwrap();
    let said = lab.helpers[0].culvert_ok(&["apply", file.to_str().unwrap()]);
    assert!(said.contains(&format!("peer {}: removed", wc.public_key)), "{said}");
    assert!(!ip(&["-n", &a, "route"]).contains("10.8.0.3"), "the removed peer's route stayed");

    let (sent, received) = ping_result(pinger, &summary);
    eprintln!("wireguard: {sent} pings to the peer that stayed, {received} answered across two applies");
    assert_eq!((sent, received), (500, 500), "pings to the unchanged peer were lost");
    assert_eq!(handshake_of(&wb), first, "the peer that stayed shook hands again");
}

/// A VXLAN link made by hand in `ns`, as flannel would (VNI 42, the MACs Culvert derives: 02, VNI, address), with
/// A (172.31.0.1, 10.244.1.0) as its one neighbour.
fn hand_made_vtep(ns: &str, local: &str, mac: &str, address: &str) {
    let vx = "cvhand";
    let link = ["link", "add", vx, "address", mac, "type", "vxlan", "id", "42", "dstport", "4789", "nolearning"];
    ip(&[&["-n", ns][..], &link[..], &["local", local][..]].concat());
    ip(&["-n", ns, "addr", "add", &format!("{address}/32"), "dev", vx]);
    ip(&["-n", ns, "link", "set", vx, "up"]);
    culvert_tests::check(in_ns(ns, "bridge").args([
        "fdb",
        "append",
        "00:00:00:00:00:00",
        "dev",
        vx,
        "dst",
        "172.31.0.1",
    ]));
    culvert_tests::check(in_ns(ns, "bridge").args(["fdb", "add", "02:2a:ac:1f:00:01", "dev", vx, "dst", "172.31.0.1"]));
    ip(&["-n", ns, "neigh", "add", "10.244.1.0", "lladdr", "02:2a:ac:1f:00:01", "dev", vx, "nud", "permanent"]);
    ip(&["-n", ns, "route", "add", "10.244.1.0/24", "via", "10.244.1.0", "dev", vx, "onlink"]);
}

#[test]
fn a_vxlan_peer_comes_and_goes_while_traffic_to_the_other_never_stops() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    let c = lab.netns();
    lab.veth(&a, &["172.32.0.1/24"], &c, &["172.32.0.2/24"]);
    // C's underlay reaches A's VTEP address through A.
    ip(&["-n", &c, "route", "add", "172.31.0.0/24", "via", "172.32.0.1"]);
    hand_made_vtep(&b, "172.31.0.2", "02:2a:ac:1f:00:02", "10.244.2.0");
    hand_made_vtep(&c, "172.32.0.2", "02:2a:ac:20:00:02", "10.244.3.0");
    lab.start_helper(&a, "a", &[]);
    let vx = |peers: &[(&str, &str, &str)]| {
        let mut text = "kind = \"vxlan\"\nvni = 42\nlocal = \"172.31.0.1\"\naddress = [\"10.244.1.0/32\"]\n\
                        interface = \"cvvx\"\n"
            .to_owned();
        for (vtep, gw, subnet) in peers {
            text += &format!("[[peer]]\nvtep = \"{vtep}\"\ngateway = \"{gw}\"\nsubnets = [\"{subnet}\"]\n");
        }
        text
    };
    let b_only = vx(&[("172.31.0.2", "10.244.2.0", "10.244.2.0/24")]);
    let v1 = lab.profile("ov", &b_only);
    lab.helpers[0].culvert_ok(&["up", v1.to_str().unwrap()]);
    assert!(ping(&a, "10.244.2.0", 1));
    let (pinger, summary) = steady_ping(&mut lab, &a, "10.244.2.0", 500);
    std::thread::sleep(Duration::from_millis(800));

    let v2 = lab.profile(
        "ov",
        &vx(&[("172.31.0.2", "10.244.2.0", "10.244.2.0/24"), ("172.32.0.2", "10.244.3.0", "10.244.3.0/24")]),
    );
    let said = lab.helpers[0].culvert_ok(&["apply", v2.to_str().unwrap()]);
    assert!(said.contains("1 route added") && said.contains("3 forwarding entries added"), "{said}");
    assert!(ping(&a, "10.244.3.0", 2), "the added VTEP does not answer");
    let fdb = culvert_tests::check(in_ns(&a, "bridge").args(["fdb", "show", "dev", "cvvx"]));
    assert!(fdb.contains("dst 172.32.0.2") && fdb.contains("dst 172.31.0.2"), "{fdb}");
    assert!(ip(&["-n", &a, "route"]).contains("10.244.3.0/24 via 10.244.3.0 dev cvvx"));

    let v1 = lab.profile("ov", &b_only);
    lab.helpers[0].culvert_ok(&["apply", v1.to_str().unwrap()]);
    assert!(!ping(&a, "10.244.3.0", 1), "the removed VTEP still answers");
    let fdb = culvert_tests::check(in_ns(&a, "bridge").args(["fdb", "show", "dev", "cvvx"]));
    assert!(!fdb.contains("172.32.0.2") && fdb.contains("172.31.0.2"), "{fdb}");
    assert!(!ip(&["-n", &a, "route"]).contains("10.244.3.0/24"));
    assert!(!ip(&["-n", &a, "neigh", "show", "dev", "cvvx"]).contains("10.244.3.0"));

    let (sent, received) = ping_result(pinger, &summary);
    eprintln!("vxlan: {sent} pings to the VTEP that stayed, {received} answered across two applies");
    assert_eq!((sent, received), (500, 500), "pings to the unchanged VTEP were lost");
    // The link's identity cannot change live: refused, and nothing changed.
    let other = lab.profile("ov", &b_only.replace("vni = 42", "vni = 43"));
    let msg = stderr(&lab.helpers[0].culvert(&["apply", other.to_str().unwrap()]));
    assert!(msg.contains("vni") && msg.contains("culvert down ov"), "{msg}");
    assert!(ping(&a, "10.244.2.0", 1));
}

#[test]
fn a_hostgw_peer_comes_and_goes_while_traffic_to_the_other_never_stops() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    let c = lab.netns();
    lab.veth(&a, &["172.32.0.1/24"], &c, &["172.32.0.2/24"]);
    // Each peer host holds an address of the subnet routed to it (on its loopback: this kernel has no dummy links).
    for (ns, address) in [(&b, "10.245.2.1/32"), (&c, "10.245.3.1/32")] {
        ip(&["-n", ns, "link", "set", "lo", "up"]);
        ip(&["-n", ns, "addr", "add", address, "dev", "lo"]);
    }
    lab.start_helper(&a, "a", &[]);
    let gw = |peers: &[(&str, &str)]| {
        let mut text = "kind = \"hostgw\"\n".to_owned();
        for (via, subnet) in peers {
            text += &format!("[[peer]]\nvia = \"{via}\"\nsubnets = [\"{subnet}\"]\n");
        }
        text
    };
    let g1 = lab.profile("gw", &gw(&[("172.31.0.2", "10.245.2.0/24")]));
    lab.helpers[0].culvert_ok(&["up", g1.to_str().unwrap()]);
    assert!(ping(&a, "10.245.2.1", 1));
    let (pinger, summary) = steady_ping(&mut lab, &a, "10.245.2.1", 500);
    std::thread::sleep(Duration::from_millis(800));

    let g2 = lab.profile("gw", &gw(&[("172.31.0.2", "10.245.2.0/24"), ("172.32.0.2", "10.245.3.0/24")]));
    let said = lab.helpers[0].culvert_ok(&["apply", g2.to_str().unwrap()]);
    assert!(said.contains("1 route added"), "{said}");
    assert!(ip(&["-n", &a, "route"]).contains("10.245.3.0/24 via 172.32.0.2"));
    assert!(ping(&a, "10.245.3.1", 2), "the added host's subnet does not answer");
    let g1 = lab.profile("gw", &gw(&[("172.31.0.2", "10.245.2.0/24")]));
    let said = lab.helpers[0].culvert_ok(&["apply", g1.to_str().unwrap()]);
    assert!(said.contains("1 route removed"), "{said}");
    let routes = ip(&["-n", &a, "route"]);
    assert!(!routes.contains("10.245.3.0/24") && routes.contains("10.245.2.0/24 via 172.31.0.2"), "{routes}");
    assert!(!ping(&a, "10.245.3.1", 1), "the removed host's subnet is still routed");

    let (sent, received) = ping_result(pinger, &summary);
    eprintln!("hostgw: {sent} pings to the host that stayed, {received} answered across two applies");
    assert_eq!((sent, received), (500, 500), "pings to the unchanged host were lost");
}

#[test]
fn a_tap_peer_comes_and_goes_while_traffic_to_the_other_never_stops() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    let c = lab.netns();
    lab.veth(&a, &["172.32.0.1/24"], &c, &["172.32.0.2/24"]);
    // The peers are socat's TAP over UDP, one segment 10.9.0.0/24 across all three.
    for (ns, here, there, address) in
        [(&b, "172.31.0.2", "172.31.0.1", "10.9.0.2/24"), (&c, "172.32.0.2", "172.32.0.1", "10.9.0.3/24")]
    {
        lab.spawn(in_ns(ns, "socat").args([
            format!("UDP-DATAGRAM:{there}:8285,bind={here}:8285"),
            format!("TUN:{address},tun-type=tap,tun-name=sotap,iff-no-pi,iff-up"),
        ]));
        assert!(wait_until(Duration::from_secs(5), || {
            culvert_tests::run(in_ns(ns, "ip").args(["link", "show", "sotap"])).status.success()
        }));
        ip(&["-n", ns, "link", "set", "sotap", "mtu", "1400"]);
    }
    lab.start_helper(&a, "a", &[]);
    let tap = |endpoints: &[&str]| {
        let mut text = "kind = \"tap\"\naddress = [\"10.9.0.1/24\"]\nlisten_port = 8285\nmtu = 1400\n\
                        interface = \"cv-tap\"\n"
            .to_owned();
        for endpoint in endpoints {
            text += &format!("[[peer]]\nendpoint = \"{endpoint}\"\n");
        }
        text
    };
    let t1 = lab.profile("seg", &tap(&["172.31.0.2:8285"]));
    lab.helpers[0].culvert_ok(&["up", t1.to_str().unwrap()]);
    assert!(ping(&a, "10.9.0.2", 2));
    let (pinger, summary) = steady_ping(&mut lab, &a, "10.9.0.2", 500);
    std::thread::sleep(Duration::from_millis(800));

    let t2 = lab.profile("seg", &tap(&["172.31.0.2:8285", "172.32.0.2:8285"]));
    let said = lab.helpers[0].culvert_ok(&["apply", t2.to_str().unwrap()]);
    assert!(said.contains("applied without reconnecting") && said.contains("peer 172.32.0.2:8285: added"), "{said}");
    assert!(ping(&a, "10.9.0.3", 2), "the added peer does not answer");
    let t1 = lab.profile("seg", &tap(&["172.31.0.2:8285"]));
    let said = lab.helpers[0].culvert_ok(&["apply", t1.to_str().unwrap()]);
    assert!(said.contains("peer 172.32.0.2:8285: removed"), "{said}");
    assert!(!ping(&a, "10.9.0.3", 1), "the removed peer still answers");

    let (sent, received) = ping_result(pinger, &summary);
    eprintln!("tap: {sent} pings to the peer that stayed, {received} answered across two applies");
    assert_eq!((sent, received), (500, 500), "pings to the unchanged peer were lost");
    assert_eq!(lab.helpers[0].status("seg")["peers"].as_array().unwrap().len(), 1);
}

/// Everything a tunnel is made of that a change could touch, as the kernel and culvertd report it.
fn snapshot(lab: &Lab, ns: &str, name: &str) -> String {
    let h = &lab.helpers[0];
    let mut status = h.status(name);
    let counters = ["rx_bytes", "tx_bytes", "rx_packets", "tx_packets", "dropped", "drops", "cookie_replies"];
    for key in counters {
        status.as_object_mut().unwrap().remove(key);
    }
    for peer in status["peers"].as_array_mut().unwrap() {
        for key in counters {
            peer.as_object_mut().unwrap().remove(key);
        }
    }
    [
        ip(&["-n", ns, "-d", "link", "show"]).lines().filter(|l| !l.contains("link/")).collect::<Vec<_>>().join("\n"),
        ip(&["-n", ns, "addr", "show"]),
        ip(&["-n", ns, "route", "show", "table", "all"]),
        ip(&["-n", ns, "-6", "route", "show", "table", "all"]),
        ip(&["-n", ns, "rule", "show"]),
        serde_json::to_string(&status).unwrap(),
        h.records().join(","),
    ]
    .join("\n--\n")
}

#[test]
fn a_change_that_fails_half_way_leaves_the_tunnel_exactly_as_it_was() {
    let mut lab = Lab::new();
    let (a, _b, _c) = three_hosts(&mut lab);
    let one = udp_with("10.9.0.1/24", 8285, "cv-atom", &[("172.31.0.2:8285", "\"10.9.0.2/32\"")]);
    let v1 = lab.profile("atom", &one);
    lab.helpers[0].culvert_ok(&["up", v1.to_str().unwrap()]);
    // A route through another interface that the change's second route collides with.
    ip(&["-n", &a, "link", "add", "cvtaken0", "type", "veth", "peer", "name", "cvtaken1"]);
    ip(&["-n", &a, "link", "set", "cvtaken0", "up"]);
    ip(&["-n", &a, "route", "add", "10.77.0.0/24", "dev", "cvtaken0"]);
    let before = snapshot(&lab, &a, "atom");
    let bad = udp_with(
        "10.9.0.1/24",
        8285,
        "cv-atom",
        &[("172.31.0.2:8285", "\"10.9.0.2/32\""), ("172.32.0.2:8285", "\"10.78.0.0/24\", \"10.77.0.0/24\"")],
    )
    .replace("address = [\"10.9.0.1/24\"]", "address = [\"10.9.0.1/24\", \"10.9.5.1/24\"]\nmtu = 1300");
    let v2 = lab.profile("atom", &bad);
    let out = lab.helpers[0].culvert(&["apply", v2.to_str().unwrap()]);
    let msg = stderr(&out);
    assert!(!out.status.success());
    assert!(msg.contains("atom.toml: peer[1].allowed_ips[1]"), "{msg}");
    assert_eq!(snapshot(&lab, &a, "atom"), before, "the failed change left something behind");
    // Changes that cannot be made live are refused before anything is touched.
    let tap = lab.profile("atom", &one.replace("kind = \"udp\"", "kind = \"tap\""));
    assert!(stderr(&lab.helpers[0].culvert(&["apply", tap.to_str().unwrap()])).contains("kind"));
    assert_eq!(snapshot(&lab, &a, "atom"), before);
    // `up` of a tunnel that is up names `apply`; `apply` of one that is down brings it up.
    assert!(stderr(&lab.helpers[0].culvert(&["up", v1.to_str().unwrap()])).contains("culvert apply"));
    lab.helpers[0].culvert_ok(&["down", "atom"]);
    let said = lab.helpers[0].culvert_ok(&["apply", v1.to_str().unwrap()]);
    assert!(said.contains("atom is up on cv-atom"), "{said}");
}

#[test]
fn a_crash_in_the_middle_of_a_change_leaves_nothing_after_restart() {
    let mut lab = Lab::new();
    let (a, _b) = lab.two_hosts();
    let mut h = lab.spawn_helper(&a, "a", &[]).unwrap();
    let small = udp_with("10.9.0.1/24", 8285, "cv-crash", &[("172.31.0.2:8285", "\"10.9.0.2/32\"")]);
    let file = lab.profile("crash", &small);
    assert!(h.culvert(&["up", file.to_str().unwrap()]).status.success());
    // A change of 1000 peers with 3000 routes, and a kill -9 while it is being made.
    let mut big = small;
    for p in 0..1000u32 {
        let prefixes: Vec<String> = (0..3).map(|k| format!("\"10.{}.{}.{}/32\"", 100 + p / 250, p % 250, k)).collect();
        big += &format!(
            "[[peer]]\nendpoint = \"172.30.{}.{}:8285\"\nallowed_ips = [{}]\n",
            p / 250,
            p % 250 + 1,
            prefixes.join(", ")
        );
    }
    std::fs::write(&file, big).unwrap();
    let mut apply = Command::new(culvert_tests::bin("culvert"))
        .arg("--socket")
        .arg(&h.socket)
        .arg("apply")
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = wait_until(Duration::from_secs(20), || ip(&["-n", &a, "route"]).lines().count() > 100);
    h.stop_with(9);
    let _ = apply.wait();
    assert!(started, "the change never began");
    let restarted = lab.spawn_helper(&a, "a", &[]).unwrap();
    assert!(restarted.records().is_empty(), "{:?}", restarted.records());
    let routes = ip(&["-n", &a, "route"]);
    assert!(!routes.contains("cv-crash"), "routes of the half-made change stayed:\n{routes}");
    assert!(!ip(&["-n", &a, "link", "show"]).contains("cv-crash"));
    lab.helpers.push(restarted);
}

/// `wg set` and `wg syncconf` on Culvert's interface, as on wireguard-go's: a peer added and removed, and the
/// socket's mark set and cleared, through the userspace API while a ping every 10 ms to the other peer runs.
#[test]
fn wg_set_and_wg_syncconf_change_the_tunnel_live() {
    let mut lab = Lab::new();
    let (a, b, c) = three_hosts(&mut lab);
    let (private, public) = culvert_keypair();
    let (wb, wc) = two_wireguard_go_peers(&mut lab, &b, &c, &public);
    let iface = culvert_tests::unique("cvw");
    let file = lab.conf(
        &iface,
        &format!(
            "[Interface]\nPrivateKey = {private}\nAddress = 10.8.0.1/24\nListenPort = 51820\n[Peer]\n\
             PublicKey = {}\nAllowedIPs = 10.8.0.2/32\nEndpoint = 172.31.0.2:51821\n",
            wb.public_key
        ),
    );
    lab.helpers[0].culvert_ok(&["up", file.to_str().unwrap()]);
    assert!(ping(&a, "10.8.0.2", 2));
    let first = wb.peers()[0].2;
    let (pinger, summary) = steady_ping(&mut lab, &a, "10.8.0.2", 500);
    std::thread::sleep(Duration::from_millis(800));
    let wg = |args: &[&str]| culvert_tests::check(in_ns(&a, "wg").args(args));

    wg(&["set", &iface, "peer", &wc.public_key, "allowed-ips", "10.8.0.3/32", "endpoint", "172.32.0.2:51822"]);
    assert!(ping(&a, "10.8.0.3", 3), "the peer added with wg set does not answer");
    assert!(ip(&["-n", &a, "route"]).contains(&format!("10.8.0.3 dev {iface}")), "its allowed IP has no route");
    let s = lab.helpers[0].status(&iface);
    assert_eq!(s["peers"].as_array().unwrap().len(), 2, "{s}");
    assert_eq!(s["owner_uid"], 0);

    // What wg showconf gives, syncconf'd back unchanged, changes nothing; without C's peer, removes it.
    let conf = wg(&["showconf", &iface]);
    let again = lab.dir.join("again.conf");
    std::fs::write(&again, &conf).unwrap();
    wg(&["syncconf", &iface, again.to_str().unwrap()]);
    assert_eq!(lab.helpers[0].status(&iface)["peers"].as_array().unwrap().len(), 2);
    let without: Vec<&str> = conf.split("[Peer]").filter(|block| !block.contains(&wc.public_key)).collect();
    std::fs::write(&again, without.join("[Peer]")).unwrap();
    wg(&["syncconf", &iface, again.to_str().unwrap()]);
    assert_eq!(lab.helpers[0].status(&iface)["peers"].as_array().unwrap().len(), 1);
    assert!(!ip(&["-n", &a, "route"]).contains("10.8.0.3"), "the removed peer's route stayed");

    // The socket's mark changes in place (what `ss` reports of the socket itself), and back off.
    let socket_line = || {
        let out = culvert_tests::check(in_ns(&a, "ss").args(["-H", "-u", "-a", "-n", "-e", "sport", "=", ":51820"]));
        out.lines().next().unwrap_or_default().to_owned()
    };
    assert!(!socket_line().contains("fwmark"), "{}", socket_line());
    wg(&["set", &iface, "fwmark", "0x1234"]);
    assert!(socket_line().contains("fwmark:0x1234"), "{}", socket_line());
    assert_eq!(wg(&["show", &iface, "fwmark"]).trim(), "0x1234");
    wg(&["set", &iface, "fwmark", "off"]);
    assert!(!socket_line().contains("fwmark"), "{}", socket_line());

    let (sent, received) = ping_result(pinger, &summary);
    eprintln!("wg set/syncconf/fwmark: {sent} pings to the peer that stayed, {received} answered");
    assert_eq!((sent, received), (500, 500), "pings to the unchanged peer were lost");
    assert_eq!(wb.peers()[0].2, first, "the peer that stayed shook hands again");
}

/// The listen port and the MTU change live: the engine's loops start again on the new socket, with buffers for
/// the new MTU, and the tunnel carries packets that only the new MTU lets through.
#[test]
fn a_udp_tunnel_moves_its_port_and_takes_a_larger_mtu_live() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    lab.start_helper(&a, "a", &[]);
    lab.start_helper(&b, "b", &[]);
    let side = |me: &str, port: u16, iface: &str, peer: &str, mtu: u16| {
        udp_profile(me, port, iface, peer, if me.starts_with("10.9.0.1") { "10.9.0.2/32" } else { "10.9.0.1/32" }, mtu)
    };
    let pa = lab.profile("mover", &side("10.9.0.1/24", 8285, "cv-mv", "172.31.0.2:8285", 1300));
    let pb = lab.profile("still", &side("10.9.0.2/24", 8285, "cv-st", "172.31.0.1:8285", 1300));
    lab.helpers[0].culvert_ok(&["up", pa.to_str().unwrap()]);
    lab.helpers[1].culvert_ok(&["up", pb.to_str().unwrap()]);
    // 1408 bytes: more than the engine's buffers for an MTU of 1300 hold, and with UDP's 28, less than the
    // underlay's 1500.
    let big = |ns: &str| {
        culvert_tests::run(in_ns(ns, "ping").args(["-c", "1", "-W", "2", "-M", "do", "-s", "1380", "10.9.0.2"]))
    };
    assert!(ping(&a, "10.9.0.2", 1));
    assert!(!big(&a).status.success(), "a 1408-byte packet should not fit an MTU of 1300");

    let pa = lab.profile("mover", &side("10.9.0.1/24", 8290, "cv-mv", "172.31.0.2:8285", 1450));
    let said = lab.helpers[0].culvert_ok(&["apply", pa.to_str().unwrap()]);
    assert!(said.contains("listen port 8285 -> 8290") && said.contains("MTU 1300 -> 1450"), "{said}");
    assert_eq!(lab.helpers[0].status("mover")["listen_port"], 8290);
    let pb = lab.profile("still", &side("10.9.0.2/24", 8285, "cv-st", "172.31.0.1:8290", 1450));
    let said = lab.helpers[1].culvert_ok(&["apply", pb.to_str().unwrap()]);
    assert!(said.contains("peer 172.31.0.1:8290: added") && said.contains("peer 172.31.0.1:8285: removed"), "{said}");
    assert!(ping(&a, "10.9.0.2", 2), "no traffic after the port moved");
    let out = big(&a);
    assert!(
        out.status.success(),
        "a 1408-byte packet did not cross at MTU 1450: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A port in use is refused, and the tunnel stays on its own.
    let _squatter = lab.spawn(in_ns(&a, "socat").args(["-u", "UDP-RECV:8299", "OPEN:/dev/null"]));
    std::thread::sleep(Duration::from_millis(300));
    let taken = lab.profile("mover", &side("10.9.0.1/24", 8299, "cv-mv", "172.31.0.2:8285", 1450));
    let msg = stderr(&lab.helpers[0].culvert(&["apply", taken.to_str().unwrap()]));
    assert!(msg.contains("listen_port") && msg.contains("8299") && msg.contains("in use"), "{msg}");
    assert_eq!(lab.helpers[0].status("mover")["listen_port"], 8290);
    assert!(ping(&a, "10.9.0.2", 1));
}

/// DNS set, changed and removed on a WireGuard tunnel that stays up, the machine's own resolver file (here bound
/// into the helper's mount namespace) coming back at the end.
#[test]
fn a_wireguard_tunnels_dns_changes_live() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    let resolv = lab.dir.join("resolv.conf");
    let original = "# the machine's own\nnameserver 192.0.2.53\n";
    std::fs::write(&resolv, original).unwrap();
    let h = lab.spawn_helper_with_binds(&a, "a", &[], &[(&resolv, "/etc/resolv.conf")]).unwrap();
    lab.helpers.push(h);
    let (private, public) = culvert_keypair();
    let wgo = WireguardGo::start(&mut lab, &b, 51821, "10.8.0.2/24");
    wgo.wg(&["set", &wgo.iface, "peer", &public, "allowed-ips", "10.8.0.1/32", "endpoint", "172.31.0.1:51820"]);
    let conf = |dns: &str| {
        format!(
            "[Interface]\nPrivateKey = {private}\nAddress = 10.8.0.1/24\nListenPort = 51820\n{dns}[Peer]\n\
             PublicKey = {}\nAllowedIPs = 10.8.0.2/32\nEndpoint = 172.31.0.2:51821\n",
            wgo.public_key
        )
    };
    let file = lab.conf("dnslive", &conf(""));
    let h = &lab.helpers[0];
    h.culvert_ok(&["up", file.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&resolv).unwrap(), original);
    for (dns, expect) in [
        ("DNS = 10.8.0.53\n", "nameserver 10.8.0.53\n"),
        ("DNS = 10.8.0.54, corp.example\n", "nameserver 10.8.0.54\nsearch corp.example\n"),
    ] {
        std::fs::write(&file, conf(dns)).unwrap();
        let said = h.culvert_ok(&["apply", file.to_str().unwrap()]);
        assert!(said.contains("DNS"), "{said}");
        let now = std::fs::read_to_string(&resolv).unwrap();
        assert!(now.contains(expect) && !now.contains("192.0.2.53"), "{now}");
    }
    std::fs::write(&file, conf("")).unwrap();
    let said = h.culvert_ok(&["apply", file.to_str().unwrap()]);
    assert!(said.contains("DNS removed"), "{said}");
    assert_eq!(std::fs::read_to_string(&resolv).unwrap(), original, "the machine's own file did not come back");
    assert!(ping(&a, "10.8.0.2", 1), "the tunnel stopped carrying traffic");
}
