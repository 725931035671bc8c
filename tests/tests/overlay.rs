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
