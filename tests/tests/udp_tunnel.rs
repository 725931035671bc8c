//! A udp tunnel between two namespaces, each with its own culvertd: traffic, counters, watch and teardown.

use std::time::Duration;

use culvert_tests::{Lab, check, in_ns, ip, ping, run, tcp_transfer, udp_profile, wait_until};

const MIB: usize = 1 << 20;

#[test]
fn udp_tunnel_carries_ping_and_tcp_both_ways_and_counts_it() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    let pa = lab.profile("lab", &udp_profile("10.9.0.1/24", 8285, "cv-lab", "172.31.0.2:8285", "10.9.0.0/24", 1400));
    let pb = lab.profile("peer", &udp_profile("10.9.0.2/24", 8285, "cv-peer", "172.31.0.1:8285", "10.9.0.0/24", 1400));
    lab.start_helper(&a, "a", &[]);
    lab.start_helper(&b, "b", &[]);
    let up = lab.helpers[0].culvert_ok(&["up", pa.to_str().unwrap()]);
    assert!(up.contains("lab is up on cv-lab"), "{up}");
    lab.helpers[1].culvert_ok(&["up", pb.to_str().unwrap()]);

    assert!(ping(&a, "10.9.0.2", 3), "A cannot ping B through the tunnel");
    assert!(ping(&b, "10.9.0.1", 3), "B cannot ping A through the tunnel");

    let (sent, got) = tcp_transfer(&mut lab, &a, &b, "10.9.0.2", 5001, 8 * MIB);
    assert!(got == sent, "A->B: {} of {} bytes arrived intact", got.len(), sent.len());
    let (sent_back, got_back) = tcp_transfer(&mut lab, &b, &a, "10.9.0.1", 5002, 8 * MIB);
    assert!(got_back == sent_back, "B->A: {} of {} bytes arrived intact", got_back.len(), sent_back.len());

    // Counters account for at least the payload that crossed, in both directions and per peer.
    let s = lab.helpers[0].status("lab");
    let payload = 8 * MIB as u64;
    assert_eq!(s["kind"], "udp");
    assert_eq!(s["state"], "up");
    assert_eq!(s["interface"], "cv-lab");
    assert!(s["tx_bytes"].as_u64().unwrap() >= payload, "{s}");
    assert!(s["rx_bytes"].as_u64().unwrap() >= payload, "{s}");
    assert!(s["tx_packets"].as_u64().unwrap() >= payload / 1400, "{s}");
    // Nothing was dropped: the kernel sent no IPv6 router solicitations, since the device has no link-local address.
    assert_eq!(s["dropped"], 0, "{s}");
    let addresses = check(in_ns(&a, "ip").args(["-6", "-o", "addr", "show", "dev", "cv-lab"]));
    assert!(!addresses.contains("fe80"), "the TUN device has a link-local address: {addresses}");
    let peer = &s["peers"][0];
    assert_eq!(peer["endpoint"], "172.31.0.2:8285");
    assert_eq!(peer["allowed_ips"][0], "10.9.0.0/24");
    assert_eq!(peer["tx_bytes"], s["tx_bytes"]);
    // What A sent is what B received: nothing is lost or invented on a clean veth.
    let sb = lab.helpers[1].status("peer");
    assert_eq!(sb["rx_bytes"], s["tx_bytes"], "A: {s}\nB: {sb}");
    // B wrote the TCP segments it received to its device coalesced: the kernel counted far fewer packets in
    // (its RX of the TUN device) than culvertd delivered, with the same bytes in them.
    let stats = check(in_ns(&b, "cat").arg("/sys/class/net/cv-peer/statistics/rx_packets"));
    let device_rx: u64 = stats.trim().parse().unwrap();
    let delivered = sb["rx_packets"].as_u64().unwrap();
    eprintln!("B delivered {delivered} packets in {device_rx} writes to its device");
    assert!(device_rx * 4 < delivered, "B delivered {delivered} packets in {device_rx} writes: not coalesced");

    // `down` removes the device and its routes.
    lab.helpers[0].culvert_ok(&["down", "lab"]);
    let links = ip(&["-n", &a, "link", "show"]);
    assert!(!links.contains("cv-lab"), "{links}");
    let routes = ip(&["-n", &a, "route", "show"]);
    assert!(!routes.contains("10.9.0.0/24"), "{routes}");
    assert!(!ping(&a, "10.9.0.2", 1));
    let err = lab.helpers[0].culvert(&["status", "lab"]);
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("no tunnel `lab` is up"));
}

#[test]
fn several_tunnels_at_once_over_ipv4_and_ipv6() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    lab.start_helper(&a, "a", &[]);
    lab.start_helper(&b, "b", &[]);
    for (i, port) in [(1u8, 8301u16), (2, 8302)] {
        let (na, nb) = (format!("t{i}a"), format!("t{i}b"));
        let text = |me: u8, peer_host: u8| {
            format!(
                "kind = \"udp\"\naddress = [\"10.{i}0.0.{me}/24\", \"fd00:{i}::{me}/64\"]\nlisten_port = {port}\n\
                 [[peer]]\nendpoint = \"{}\"\nallowed_ips = [\"10.{i}0.0.0/24\", \"fd00:{i}::/64\"]\n",
                // The first tunnel runs over IPv4, the second over IPv6.
                if i == 1 { format!("172.31.0.{peer_host}:{port}") } else { format!("[fd00:31::{peer_host}]:{port}") }
            )
        };
        let pa = lab.profile(&na, &text(1, 2));
        let pb = lab.profile(&nb, &text(2, 1));
        lab.helpers[0].culvert_ok(&["up", pa.to_str().unwrap()]);
        lab.helpers[1].culvert_ok(&["up", pb.to_str().unwrap()]);
    }
    for i in [1, 2] {
        assert!(ping(&a, &format!("10.{i}0.0.2"), 2), "tunnel {i} IPv4");
        assert!(ping(&a, &format!("fd00:{i}::2"), 2), "tunnel {i} IPv6");
    }
    let all: Vec<serde_json::Value> = serde_json::from_str(&lab.helpers[0].culvert_ok(&["status", "--json"])).unwrap();
    let names: Vec<&str> = all.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["t1a", "t2a"]);
    // The interface defaults to the tunnel's name.
    assert!(ip(&["-n", &a, "link", "show", "t1a"]).contains("t1a"));
    let t2 = lab.helpers[0].status("t2a");
    assert_eq!(t2["peers"][0]["endpoint"], "[fd00:31::2]:8302");
    assert!(t2["rx_packets"].as_u64().unwrap() >= 4, "{t2}");
    let down = lab.helpers[0].culvert_ok(&["down", "--all"]);
    assert!(down.contains("t1a, t2a"), "{down}");
    assert_eq!(lab.helpers[0].culvert_ok(&["status"]).trim(), "no tunnel is up");
}

#[test]
fn watch_prints_live_rates_and_totals() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    let pa = lab.profile("w", &udp_profile("10.9.0.1/24", 8285, "cv-w", "172.31.0.2:8285", "10.9.0.0/24", 1400));
    let pb = lab.profile("wpeer", &udp_profile("10.9.0.2/24", 8285, "cv-w", "172.31.0.1:8285", "10.9.0.0/24", 1400));
    lab.start_helper(&a, "a", &[]);
    lab.start_helper(&b, "b", &[]);
    lab.helpers[1].culvert_ok(&["up", pb.to_str().unwrap()]);
    lab.helpers[0].culvert_ok(&["up", pa.to_str().unwrap()]);
    let socket = lab.helpers[0].socket.clone();
    let out = lab.dir.join("watch.jsonl");
    let watch = std::process::Command::new(culvert_tests::bin("culvert"))
        .arg("--socket")
        .arg(&socket)
        .args(["watch", "w", "--interval", "200", "--json"])
        .stdout(std::fs::File::create(&out).unwrap())
        .spawn()
        .unwrap();
    lab.children.push(watch);
    // Steady traffic: 20 pings of 1000 bytes, 100 ms apart.
    let pinged = run(in_ns(&a, "ping").args(["-c", "20", "-i", "0.1", "-s", "1000", "10.9.0.2"]));
    assert!(pinged.status.success());
    assert!(wait_until(Duration::from_secs(3), || std::fs::read_to_string(&out).unwrap().lines().count() >= 8));
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect(l)).collect();
    assert!(lines.iter().all(|l| l["name"] == "w" && l["time"].as_f64().unwrap() > 1.7e9), "{text}");
    let first = lines.first().unwrap()["tx_bytes"].as_u64().unwrap();
    let last = lines.last().unwrap()["tx_bytes"].as_u64().unwrap();
    assert!(last >= first + 10 * 1028, "tx_bytes went from {first} to {last}:\n{text}");
    assert!(lines.iter().any(|l| l["tx_bytes_per_sec"].as_f64().unwrap() > 1000.0), "no rate above 1 kB/s:\n{text}");

    // When the tunnel goes down, watch says so and ends.
    lab.helpers[0].culvert_ok(&["down", "w"]);
    let watch = lab.children.last_mut().unwrap();
    assert!(wait_until(Duration::from_secs(3), || matches!(watch.try_wait(), Ok(Some(_)))), "watch kept running");
}

#[test]
fn watch_packets_shows_sampled_headers_both_ways() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    let pa = lab.profile("pk", &udp_profile("10.9.0.1/24", 8285, "cv-pk", "172.31.0.2:8285", "10.9.0.0/24", 1400));
    let pb = lab.profile("pkpeer", &udp_profile("10.9.0.2/24", 8285, "cv-pk", "172.31.0.1:8285", "10.9.0.0/24", 1400));
    lab.start_helper(&a, "a", &[]);
    lab.start_helper(&b, "b", &[]);
    lab.helpers[1].culvert_ok(&["up", pb.to_str().unwrap()]);
    lab.helpers[0].culvert_ok(&["up", pa.to_str().unwrap()]);
    let out = lab.dir.join("packets.jsonl");
    let watch = std::process::Command::new(culvert_tests::bin("culvert"))
        .arg("--socket")
        .arg(&lab.helpers[0].socket)
        .args(["watch", "pk", "--interval", "200", "--json", "--packets"])
        .stdout(std::fs::File::create(&out).unwrap())
        .spawn()
        .unwrap();
    lab.children.push(watch);
    // The first line comes once the subscription stands: packets from then on are sampled.
    let subscribed = wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.lines().next().is_some_and(|l| l.ends_with('}')))
    });
    assert!(subscribed, "watch printed nothing");
    assert!(run(in_ns(&a, "ping").args(["-c", "5", "-i", "0.1", "-s", "1000", "10.9.0.2"])).status.success());
    let packets = |text: &str| -> Vec<serde_json::Value> {
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["type"] == "packet")
            .collect()
    };
    assert!(wait_until(Duration::from_secs(3), || packets(&std::fs::read_to_string(&out).unwrap()).len() >= 10));
    let text = std::fs::read_to_string(&out).unwrap();
    let all = packets(&text);
    let echo = |dir: &str, src: &str, dst: &str| {
        all.iter().any(|p| {
            p["direction"] == dir && p["protocol"] == "icmp" && p["src"] == src && p["dst"] == dst && p["len"] == 1028
        })
    };
    assert!(echo("out", "10.9.0.1", "10.9.0.2"), "no outgoing echo request among:\n{text}");
    assert!(echo("in", "10.9.0.2", "10.9.0.1"), "no incoming echo reply among:\n{text}");
    assert!(all.iter().all(|p| p["name"] == "pk" && p["time"].as_f64().unwrap() > 1.7e9), "{text}");
    // Packets of kernel kinds never pass through culvertd: asking for them says so.
    let vx =
        lab.profile("vxpk", "kind = \"vxlan\"\nvni = 9\nlocal = \"172.31.0.1\"\n[[peer]]\nvtep = \"172.31.0.2\"\n");
    lab.helpers[0].culvert_ok(&["up", vx.to_str().unwrap()]);
    let refused = lab.helpers[0].culvert(&["watch", "vxpk", "--packets"]);
    let msg = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && msg.contains("never pass through culvertd"), "{msg}");
}
