//! The overlay kinds against the Linux VXLAN device and in multi-host flat networks.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use culvert_tests::{Lab, check, in_ns, ip, ping, run, tcp_transfer, unique};

/// A Culvert vxlan profile: `peers` are (vtep, gateway, subnet).
fn vxlan_profile(local: &str, address: &str, peers: &[(&str, &str, &str)], extra: &str) -> String {
    let mut s = format!("kind = \"vxlan\"\nvni = 42\nlocal = \"{local}\"\naddress = [\"{address}\"]\n{extra}");
    for (vtep, gateway, subnet) in peers {
        s += &format!("[[peer]]\nvtep = \"{vtep}\"\ngateway = \"{gateway}\"\nsubnets = [\"{subnet}\"]\n");
    }
    s
}

#[test]
fn culvert_vxlan_talks_to_a_hand_made_linux_vxlan_link() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    // B: a VXLAN link made by hand, as flannel would, with the MACs Culvert derives (02, VNI, address).
    let vx = unique("vxb");
    ip(&[
        "-n",
        &b,
        "link",
        "add",
        &vx,
        "address",
        "02:2a:ac:1f:00:02",
        "type",
        "vxlan",
        "id",
        "42",
        "dstport",
        "4789",
        "local",
        "172.31.0.2",
        "nolearning",
    ]);
    ip(&["-n", &b, "addr", "add", "10.244.2.0/32", "dev", &vx]);
    ip(&["-n", &b, "link", "set", &vx, "up"]);
    check(in_ns(&b, "bridge").args(["fdb", "append", "00:00:00:00:00:00", "dev", &vx, "dst", "172.31.0.1"]));
    check(in_ns(&b, "bridge").args(["fdb", "add", "02:2a:ac:1f:00:01", "dev", &vx, "dst", "172.31.0.1"]));
    ip(&["-n", &b, "neigh", "add", "10.244.1.0", "lladdr", "02:2a:ac:1f:00:01", "dev", &vx, "nud", "permanent"]);
    ip(&["-n", &b, "route", "add", "10.244.1.0/24", "via", "10.244.1.0", "dev", &vx, "onlink"]);

    let name = unique("vx");
    let p = lab.profile(
        &name,
        &vxlan_profile("172.31.0.1", "10.244.1.0/32", &[("172.31.0.2", "10.244.2.0", "10.244.2.0/24")], ""),
    );
    lab.start_helper(&a, "a", &[]);
    let up = lab.helpers[0].culvert_ok(&["up", p.to_str().unwrap()]);
    assert!(up.contains("vxlan, unencrypted"), "{up}");

    // What Culvert made: learning off, port 4789, the underlay's MTU minus 50, the peer's forwarding state.
    let link = ip(&["-n", &a, "-d", "link", "show", &name]);
    assert!(link.contains("vxlan id 42") && link.contains("dstport 4789") && link.contains("nolearning"), "{link}");
    assert!(link.contains("mtu 1450") && link.contains("02:2a:ac:1f:00:01"), "{link}");
    let fdb = check(in_ns(&a, "bridge").args(["fdb", "show", "dev", &name]));
    assert!(
        fdb.contains("02:2a:ac:1f:00:02 dst 172.31.0.2") && fdb.contains("00:00:00:00:00:00 dst 172.31.0.2"),
        "{fdb}"
    );
    assert!(ip(&["-n", &a, "neigh", "show", "dev", &name]).contains("10.244.2.0 lladdr 02:2a:ac:1f:00:02 PERMANENT"));
    let routes = ip(&["-n", &a, "route", "show", "dev", &name]);
    assert!(routes.contains("10.244.2.0/24 via 10.244.2.0") && routes.contains("onlink"), "{routes}");

    assert!(ping(&a, "10.244.2.0", 3), "Culvert -> hand-made VXLAN");
    assert!(ping(&b, "10.244.1.0", 3), "hand-made VXLAN -> Culvert");
    let (sent, got) = tcp_transfer(&mut lab, &a, &b, "10.244.2.0", 5301, 4 << 20);
    assert!(got == sent, "A->B: {} of {} bytes intact", got.len(), sent.len());
    let (sent, got) = tcp_transfer(&mut lab, &b, &a, "10.244.1.0", 5302, 4 << 20);
    assert!(got == sent, "B->A: {} of {} bytes intact", got.len(), sent.len());
    let s = lab.helpers[0].status(&name);
    assert_eq!(s["kind"], "vxlan");
    assert!(s["tx_bytes"].as_u64().unwrap() >= 4 << 20 && s["rx_bytes"].as_u64().unwrap() >= 4 << 20, "{s}");
    assert_eq!(s["peers"][0]["endpoint"], "172.31.0.2:4789");

    // down removes the link and with it every entry; the sysctl comes back.
    lab.helpers[0].culvert_ok(&["down", &name]);
    assert!(!ip(&["-n", &a, "link", "show"]).contains(&name));
    assert!(!ip(&["-n", &a, "route", "show"]).contains("10.244.2.0"));
}

#[test]
fn a_crashed_helper_s_vxlan_link_and_entries_are_removed_by_the_next() {
    let mut lab = Lab::new();
    let (a, _b) = lab.two_hosts();
    let name = unique("vx");
    let p = lab.profile(
        &name,
        &vxlan_profile("172.31.0.1", "10.244.1.0/32", &[("172.31.0.2", "10.244.2.0", "10.244.2.0/24")], ""),
    );
    let mut h = lab.spawn_helper(&a, "a", &[]).unwrap();
    let out =
        run(std::process::Command::new(culvert_tests::bin("culvert")).arg("--socket").arg(&h.socket).arg("up").arg(&p));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let forwarding =
        || check(in_ns(&a, "sysctl").args(["-n", &format!("net.ipv4.conf.{name}.forwarding")])).trim().to_owned();
    assert_eq!(forwarding(), "1");
    h.stop_with(9);
    // The kernel link outlives the helper, with its routes, neighbours and FDB entries.
    assert!(ip(&["-n", &a, "link", "show"]).contains(&name), "the VXLAN link should outlive kill -9");
    let restarted = lab.spawn_helper(&a, "a", &[]).unwrap();
    assert!(restarted.log_text().contains("left behind"));
    assert!(!ip(&["-n", &a, "link", "show"]).contains(&name), "stale VXLAN link after restart");
    assert!(!ip(&["-n", &a, "route", "show"]).contains("10.244.2.0"));
    lab.helpers.push(restarted);
}

/// Three hosts on one underlay segment (a bridge in a "switch" namespace), each with a pod behind a bridge of
/// its own; `pods[i]` is host i's pod namespace. Host i is 172.31.0.i; its pods are 10.244.i.0/24, the bridge
/// 10.244.i.1 and the pod 10.244.i.2.
struct Cluster {
    hosts: Vec<String>,
    pods: Vec<String>,
}

fn cluster(lab: &mut Lab, n: usize) -> Cluster {
    let switch = lab.netns();
    ip(&["-n", &switch, "link", "add", "sw", "type", "bridge"]);
    ip(&["-n", &switch, "link", "set", "sw", "up"]);
    let mut hosts = Vec::new();
    let mut pods = Vec::new();
    for i in 1..=n {
        let host = lab.netns();
        let (up, down) = (unique("hu"), unique("hd"));
        ip(&["link", "add", &up, "netns", &host, "type", "veth", "peer", "name", &down, "netns", &switch]);
        ip(&["-n", &switch, "link", "set", &down, "master", "sw", "up"]);
        ip(&["-n", &host, "addr", "add", &format!("172.31.0.{i}/24"), "dev", &up]);
        ip(&["-n", &host, "link", "set", &up, "up"]);
        ip(&["-n", &host, "link", "add", "cvpods", "type", "bridge"]);
        ip(&["-n", &host, "addr", "add", &format!("10.244.{i}.1/24"), "dev", "cvpods"]);
        ip(&["-n", &host, "link", "set", "cvpods", "up"]);
        let pod = lab.netns();
        let (inside, outside) = (unique("pi"), unique("po"));
        ip(&["link", "add", &inside, "netns", &pod, "type", "veth", "peer", "name", &outside, "netns", &host]);
        ip(&["-n", &host, "link", "set", &outside, "master", "cvpods", "up"]);
        ip(&["-n", &pod, "addr", "add", &format!("10.244.{i}.2/24"), "dev", &inside]);
        ip(&["-n", &pod, "link", "set", &inside, "up"]);
        ip(&["-n", &pod, "route", "add", "default", "via", &format!("10.244.{i}.1")]);
        hosts.push(host);
        pods.push(pod);
    }
    Cluster { hosts, pods }
}

/// Connects from pod `from` to a server in pod `to` that answers with the address it saw the client at.
fn seen_source(lab: &mut Lab, from: &str, to: &str, to_addr: &str, port: u16) -> String {
    lab.spawn(in_ns(to, "socat").args([&format!("TCP-LISTEN:{port},reuseaddr"), "SYSTEM:echo $SOCAT_PEERADDR"]));
    let ready = culvert_tests::wait_until(std::time::Duration::from_secs(5), || {
        !run(in_ns(to, "ss").args(["-Hltn", &format!("sport = :{port}")])).stdout.is_empty()
    });
    assert!(ready);
    check(in_ns(from, "socat").args(["-T", "5", "-", &format!("TCP:{to_addr}:{port},connect-timeout=5")]))
        .trim()
        .to_owned()
}

#[test]
fn three_hosts_in_a_vxlan_overlay_give_every_pod_every_other_without_nat() {
    let mut lab = Lab::new();
    let c = cluster(&mut lab, 3);
    for i in 1..=3usize {
        let peers: Vec<(String, String, String)> = (1..=3usize)
            .filter(|j| *j != i)
            .map(|j| (format!("172.31.0.{j}"), format!("10.244.{j}.0"), format!("10.244.{j}.0/24")))
            .collect();
        let refs: Vec<(&str, &str, &str)> =
            peers.iter().map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str())).collect();
        let text =
            vxlan_profile(&format!("172.31.0.{i}"), &format!("10.244.{i}.0/32"), &refs, "forward = [\"cvpods\"]\n");
        let p = lab.profile(&format!("flat{i}"), &text);
        let h = lab.spawn_helper(&c.hosts[i - 1], &format!("h{i}"), &[]).unwrap();
        lab.helpers.push(h);
        lab.helpers[i - 1].culvert_ok(&["up", p.to_str().unwrap()]);
    }
    for i in 1..=3 {
        for j in 1..=3 {
            if i != j {
                assert!(ping(&c.pods[i - 1], &format!("10.244.{j}.2"), 1), "pod {i} -> pod {j}");
            }
        }
    }
    // No NAT: the receiving pod sees the sender's own address.
    assert_eq!(seen_source(&mut lab, &c.pods[0].clone(), &c.pods[2].clone(), "10.244.3.2", 7003), "10.244.1.2");
    assert_eq!(seen_source(&mut lab, &c.pods[1].clone(), &c.pods[0].clone(), "10.244.1.2", 7001), "10.244.2.2");
    let forwarding = check(in_ns(&c.hosts[0], "sysctl").args(["-n", "net.ipv4.conf.cvpods.forwarding"]));
    assert_eq!(forwarding.trim(), "1");
    lab.helpers[0].culvert_ok(&["down", "flat1"]);
    let forwarding = check(in_ns(&c.hosts[0], "sysctl").args(["-n", "net.ipv4.conf.cvpods.forwarding"]));
    assert_eq!(forwarding.trim(), "0", "forwarding restored on down");
    assert!(!ping(&c.pods[1], "10.244.1.2", 1), "pod 1 is gone from the overlay");
}

#[test]
fn host_gw_routes_pods_through_their_hosts_and_refuses_an_off_link_next_hop() {
    let mut lab = Lab::new();
    let c = cluster(&mut lab, 2);
    let text = |peer: usize| {
        format!(
            "kind = \"hostgw\"\nforward = [\"cvpods\"]\n[[peer]]\nvia = \"172.31.0.{peer}\"\nsubnets = [\"10.244.{peer}.0/24\"]\n"
        )
    };
    let p1 = lab.profile("gw1", &text(2));
    let p2 = lab.profile("gw2", &text(1));
    let h1 = lab.spawn_helper(&c.hosts[0], "h1", &[]).unwrap();
    lab.helpers.push(h1);
    let mut h2 = lab.spawn_helper(&c.hosts[1], "h2", &[]).unwrap();
    lab.helpers[0].culvert_ok(&["up", p1.to_str().unwrap()]);
    let up = run(std::process::Command::new(culvert_tests::bin("culvert"))
        .arg("--socket")
        .arg(&h2.socket)
        .arg("up")
        .arg(&p2));
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    assert!(ping(&c.pods[0], "10.244.2.2", 2), "pod 1 -> pod 2");
    assert!(ping(&c.pods[1], "10.244.1.2", 2), "pod 2 -> pod 1");
    assert_eq!(seen_source(&mut lab, &c.pods[0].clone(), &c.pods[1].clone(), "10.244.2.2", 7102), "10.244.1.2");
    let route = ip(&["-n", &c.hosts[0], "route", "show", "10.244.2.0/24"]);
    assert!(route.contains("via 172.31.0.2"), "{route}");
    let s = lab.helpers[0].status("gw1");
    assert_eq!((s["kind"].as_str(), s["peers"][0]["endpoint"].as_str()), (Some("hostgw"), Some("172.31.0.2")), "{s}");

    // A next hop off the shared segment is refused and leaves nothing.
    let off =
        lab.profile("offlink", "kind = \"hostgw\"\n[[peer]]\nvia = \"192.0.2.9\"\nsubnets = [\"10.244.9.0/24\"]\n");
    let out = lab.helpers[0].culvert(&["up", off.to_str().unwrap()]);
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && msg.contains("peer[0].via") && msg.contains("layer-2 segment"), "{msg}");
    assert!(!ip(&["-n", &c.hosts[0], "route", "show"]).contains("10.244.9.0"));

    // Routes on the underlay outlive a crash; the next helper removes them and restores forwarding.
    h2.stop_with(9);
    assert!(ip(&["-n", &c.hosts[1], "route", "show"]).contains("10.244.1.0/24 via 172.31.0.1"));
    let restarted = lab.spawn_helper(&c.hosts[1], "h2", &[]).unwrap();
    assert!(!ip(&["-n", &c.hosts[1], "route", "show"]).contains("10.244.1.0"), "stale route after restart");
    let fwd = check(in_ns(&c.hosts[1], "sysctl").args(["-n", "net.ipv4.conf.cvpods.forwarding"]));
    assert_eq!(fwd.trim(), "0");
    lab.helpers.push(restarted);
    lab.helpers[0].culvert_ok(&["down", "gw1"]);
    assert!(!ip(&["-n", &c.hosts[0], "route", "show"]).contains("10.244.2.0"));
}

#[test]
fn culvert_tap_and_socat_tap_carry_ping_and_tcp_at_layer_two() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    let name = unique("tap");
    let text = "kind = \"tap\"\naddress = [\"10.9.0.1/24\"]\nlisten_port = 8285\nmtu = 1400\nmac = \"02:00:00:00:0a:01\"\n\
                [[peer]]\nendpoint = \"172.31.0.2:8285\"\n";
    let p = lab.profile(&name, text);
    lab.start_helper(&a, "a", &[]);
    let up = lab.helpers[0].culvert_ok(&["up", p.to_str().unwrap()]);
    assert!(up.contains("tap, unencrypted"), "{up}");
    let link = ip(&["-n", &a, "link", "show", &name]);
    assert!(link.contains("link/ether 02:00:00:00:0a:01"), "a TAP device with the profile's MAC: {link}");
    lab.spawn(in_ns(&b, "socat").args([
        "UDP-DATAGRAM:172.31.0.1:8285,bind=172.31.0.2:8285",
        "TUN:10.9.0.2/24,tun-type=tap,tun-name=sotap,iff-no-pi,iff-up",
    ]));
    assert!(culvert_tests::wait_until(std::time::Duration::from_secs(5), || run(
        in_ns(&b, "ip").args(["link", "show", "sotap"])
    )
    .status
    .success()));
    ip(&["-n", &b, "link", "set", "sotap", "mtu", "1400"]);
    assert!(ping(&a, "10.9.0.2", 3), "Culvert tap -> socat tap");
    assert!(ping(&b, "10.9.0.1", 3), "socat tap -> Culvert tap");
    // ARP crossed the tunnel: B knows A's MAC.
    assert!(ip(&["-n", &b, "neigh", "show", "dev", "sotap"]).contains("02:00:00:00:0a:01"));
    let (sent, got) = tcp_transfer(&mut lab, &a, &b, "10.9.0.2", 5401, 4 << 20);
    assert!(got == sent, "A->B: {} of {} bytes intact", got.len(), sent.len());
    let (sent, got) = tcp_transfer(&mut lab, &b, &a, "10.9.0.1", 5402, 4 << 20);
    assert!(got == sent, "B->A: {} of {} bytes intact", got.len(), sent.len());
    let s = lab.helpers[0].status(&name);
    assert!(s["rx_bytes"].as_u64().unwrap() >= 4 << 20 && s["tx_bytes"].as_u64().unwrap() >= 4 << 20, "{s}");
    // A stranger's frame is dropped and counted.
    let stranger = run(in_ns(&b, "socat").args([
        "-u",
        "OPEN:/dev/zero,readbytes=64",
        "UDP-SENDTO:172.31.0.1:8285,sourceport=9999",
    ]));
    assert!(stranger.status.success());
    assert!(culvert_tests::wait_until(std::time::Duration::from_secs(3), || {
        lab.helpers[0].status(&name)["drops"]["unknown_peer"].as_u64().unwrap() >= 1
    }));
    lab.helpers[0].culvert_ok(&["down", &name]);
    assert!(!ip(&["-n", &a, "link", "show"]).contains(&name));
}

/// Layer-2 use: the VXLAN link as a bridge port, so the bridges on both hosts form one segment (ARP and all).
#[test]
fn a_vxlan_link_on_a_bridge_joins_two_layer_two_segments() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    for (ns, addr) in [(&a, "10.50.0.1/24"), (&b, "10.50.0.2/24")] {
        ip(&["-n", ns, "link", "add", "cvbr", "type", "bridge"]);
        ip(&["-n", ns, "addr", "add", addr, "dev", "cvbr"]);
        ip(&["-n", ns, "link", "set", "cvbr", "up"]);
    }
    let vx = unique("vxb");
    ip(&[
        "-n",
        &b,
        "link",
        "add",
        &vx,
        "type",
        "vxlan",
        "id",
        "42",
        "dstport",
        "4789",
        "local",
        "172.31.0.2",
        "nolearning",
    ]);
    ip(&["-n", &b, "link", "set", &vx, "master", "cvbr", "up"]);
    check(in_ns(&b, "bridge").args(["fdb", "append", "00:00:00:00:00:00", "dev", &vx, "dst", "172.31.0.1"]));
    let name = unique("l2");
    let text =
        "kind = \"vxlan\"\nvni = 42\nlocal = \"172.31.0.1\"\nbridge = \"cvbr\"\n[[peer]]\nvtep = \"172.31.0.2\"\n";
    let p = lab.profile(&name, text);
    lab.start_helper(&a, "a", &[]);
    lab.helpers[0].culvert_ok(&["up", p.to_str().unwrap()]);
    assert!(ip(&["-n", &a, "link", "show", &name]).contains("master cvbr"));
    assert!(ping(&a, "10.50.0.2", 3), "across the bridged overlay");
    assert!(ping(&b, "10.50.0.1", 3), "and back");
    lab.helpers[0].culvert_ok(&["down", &name]);
    assert!(!ip(&["-n", &a, "link", "show"]).contains(&name));
    assert!(ip(&["-n", &a, "link", "show", "cvbr"]).contains("cvbr"), "the user's bridge stays");
}
