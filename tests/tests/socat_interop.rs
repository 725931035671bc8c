//! Interop with a peer nobody here wrote: socat's TUN/UDP tunnel, one raw IP packet per datagram.

use std::time::Duration;

use culvert_tests::{Lab, in_ns, ip, ping, tcp_transfer, udp_profile, wait_until};

#[test]
fn culvert_and_socat_exchange_ping_and_tcp_both_ways() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    lab.start_helper(&a, "a", &[]);
    let p =
        lab.profile("tosocat", &udp_profile("10.9.0.1/24", 8285, "cv-socat", "172.31.0.2:8285", "10.9.0.0/24", 1400));
    lab.helpers[0].culvert_ok(&["up", p.to_str().unwrap()]);
    // UDP-DATAGRAM, not UDP: a connected socket makes socat exit on the first ICMP port-unreachable.
    lab.spawn(in_ns(&b, "socat").args([
        "UDP-DATAGRAM:172.31.0.1:8285,bind=172.31.0.2:8285",
        "TUN:10.9.0.2/24,tun-name=sotun,iff-no-pi,iff-up",
    ]));
    assert!(wait_until(Duration::from_secs(5), || culvert_tests::run(in_ns(&b, "ip").args(["link", "show", "sotun"]))
        .status
        .success()));
    // socat's TUN defaults to MTU 1500; both ends must agree.
    ip(&["-n", &b, "link", "set", "sotun", "mtu", "1400"]);

    assert!(ping(&a, "10.9.0.2", 3), "Culvert -> socat");
    assert!(ping(&b, "10.9.0.1", 3), "socat -> Culvert");
    let (sent, got) = tcp_transfer(&mut lab, &a, &b, "10.9.0.2", 5101, 4 << 20);
    assert!(got == sent, "Culvert->socat: {} of {} bytes intact", got.len(), sent.len());
    let (sent, got) = tcp_transfer(&mut lab, &b, &a, "10.9.0.1", 5102, 4 << 20);
    assert!(got == sent, "socat->Culvert: {} of {} bytes intact", got.len(), sent.len());
    let s = lab.helpers[0].status("tosocat");
    assert!(s["rx_bytes"].as_u64().unwrap() >= 4 << 20 && s["tx_bytes"].as_u64().unwrap() >= 4 << 20, "{s}");
}
