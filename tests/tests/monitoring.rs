//! culvertd's read-only role for monitors: members of the monitor group read the status and counters of every
//! tunnel on the monitor socket, and change nothing, see no packet.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Output};

use culvert_tests::{Lab, bin, ping, run, stderr, udp_profile};

/// Group `users` (100) stands for `culvert-monitor`, `nogroup` (65534) for `culvert`: both exist on Debian.
const MONITORS: (&str, u32) = ("users", 100);
const MEMBERS: (&str, u32) = ("nogroup", 65534);
/// A uid with no account, so no memberships but the process's own group.
const UID: u32 = 4242;

fn culvert_as(gid: u32, socket: &std::path::Path, args: &[&str]) -> Output {
    run(Command::new("setpriv")
        .args([format!("--reuid={UID}"), format!("--regid={gid}"), "--clear-groups".into()])
        .arg(bin("culvert"))
        .arg("--socket")
        .arg(socket)
        .args(args))
}

#[test]
fn monitors_read_every_tunnel_on_their_socket_and_change_nothing() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    let monitor_socket = lab.dir.join("a-monitor.sock");
    lab.start_helper(
        &a,
        "a",
        &["--group", MEMBERS.0, "--monitor-group", MONITORS.0, "--monitor-socket", monitor_socket.to_str().unwrap()],
    );
    lab.start_helper(&b, "b", &[]);
    let pa =
        lab.profile("rootone", &udp_profile("10.9.0.1/24", 8285, "cv-mon", "172.31.0.2:8285", "10.9.0.0/24", 1400));
    let pb = lab.profile("peer", &udp_profile("10.9.0.2/24", 8285, "cv-monp", "172.31.0.1:8285", "10.9.0.0/24", 1400));
    lab.helpers[0].culvert_ok(&["up", pa.to_str().unwrap()]);
    lab.helpers[1].culvert_ok(&["up", pb.to_str().unwrap()]);
    assert!(ping(&a, "10.9.0.2", 3));

    // The socket is the monitor group's, in a directory anyone may pass.
    let meta = std::fs::metadata(&monitor_socket).unwrap();
    assert_eq!((meta.permissions().mode() & 0o777, meta.gid()), (0o660, MONITORS.1));

    // A monitor sees root's tunnel in full, counters included.
    let out = culvert_as(MONITORS.1, &monitor_socket, &["status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen[0]["name"], "rootone");
    assert!(seen[0]["rx_packets"].as_u64().unwrap() >= 3, "a monitor does not see the counters: {seen}");
    assert_eq!(seen[0]["owner_uid"], 0);

    // ... and changes nothing, sees no packet.
    let out = culvert_as(MONITORS.1, &monitor_socket, &["down", "rootone"]);
    assert!(!out.status.success() && stderr(&out).contains("only reads"), "{}", stderr(&out));
    let out = culvert_as(MONITORS.1, &monitor_socket, &["up", pb.to_str().unwrap()]);
    assert!(!out.status.success() && stderr(&out).contains("only reads"), "{}", stderr(&out));
    let out = culvert_as(MONITORS.1, &monitor_socket, &["watch", "rootone", "--packets"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("see its packets"), "{}", stderr(&out));
    assert_eq!(lab.helpers[0].status("rootone")["state"], "up");

    // Neither a member of the main group nor a stranger gets in; on the main socket, a member sees others'
    // tunnels by name only, as before.
    let out = culvert_as(MEMBERS.1, &monitor_socket, &["status"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains(MONITORS.0), "the refusal names the monitor group: {}", stderr(&out));
    let out = culvert_as(MEMBERS.1, &lab.helpers[0].socket, &["status", "--json"]);
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(seen[0].get("rx_packets").is_none(), "a member saw root's counters: {seen}");
}

/// `culvert exporter`, run as a monitor, serves every tunnel's counters; Prometheus's own parser (Python's
/// prometheus_client) reads the page while traffic flows, and each counter lies between the `culvert status
/// --json` read before the scrape and the one after.
#[test]
fn the_exporter_serves_what_status_says_to_a_prometheus_parser() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    let monitor_socket = lab.dir.join("a-monitor.sock");
    lab.start_helper(&a, "a", &["--monitor-group", MONITORS.0, "--monitor-socket", monitor_socket.to_str().unwrap()]);
    lab.start_helper(&b, "b", &[]);
    let pa =
        lab.profile("flowing", &udp_profile("10.9.0.1/24", 8285, "cv-exp", "172.31.0.2:8285", "10.9.0.0/24", 1400));
    let pb = lab.profile("peer", &udp_profile("10.9.0.2/24", 8285, "cv-expp", "172.31.0.1:8285", "10.9.0.0/24", 1400));
    lab.helpers[0].culvert_ok(&["up", pa.to_str().unwrap()]);
    lab.helpers[1].culvert_ok(&["up", pb.to_str().unwrap()]);
    assert!(ping(&a, "10.9.0.2", 2));
    lab.spawn(culvert_tests::in_ns(&a, "ping").args(["-q", "-i", "0.05", "-s", "1000", "10.9.0.2"]));

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    lab.spawn(
        Command::new("setpriv")
            .args([format!("--reuid={UID}"), format!("--regid={}", MONITORS.1), "--clear-groups".into()])
            .arg(bin("culvert"))
            .arg("--socket")
            .arg(&monitor_socket)
            .args(["exporter", "--listen", &listen])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    assert!(
        culvert_tests::wait_until(std::time::Duration::from_secs(10), || std::net::TcpStream::connect(&listen).is_ok()),
        "the exporter does not listen on {listen}"
    );

    let before = lab.helpers[0].status("flowing");
    let parse = "import sys, urllib.request\nfrom prometheus_client.parser import text_string_to_metric_families\n\
                 text = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()\n\
                 for family in text_string_to_metric_families(text):\n    for s in family.samples:\n        \
                 labels = ','.join(f'{k}={v}' for k, v in sorted(s.labels.items()))\n        \
                 print(f'{s.name}\\t{labels}\\t{s.value}')\n";
    // Debian's python3, where python3-prometheus-client is installed (a python3 first on the PATH may not have it).
    let out = run(Command::new("/usr/bin/python3").arg("-c").arg(parse).arg(format!("http://{listen}/metrics")));
    assert!(out.status.success(), "the parser refused the page: {}", stderr(&out));
    let after = lab.helpers[0].status("flowing");
    let samples: Vec<(String, String, f64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut parts = l.split('\t');
            let (name, labels, value) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
            (name.to_owned(), labels.to_owned(), value.parse().unwrap())
        })
        .collect();
    let value = |name: &str, labels: &str| {
        samples.iter().find(|(n, l, _)| n == name && l == labels).map(|s| s.2).unwrap_or_else(|| {
            panic!("no {name}{{{labels}}} in {samples:?}");
        })
    };
    assert_eq!(value("culvert_helper_up", ""), 1.0);
    assert_eq!(value("culvert_tunnel_up", "interface=cv-exp,kind=udp,state=up,tunnel=flowing"), 1.0);
    for (metric, field) in [
        ("culvert_tunnel_receive_bytes_total", "rx_bytes"),
        ("culvert_tunnel_transmit_bytes_total", "tx_bytes"),
        ("culvert_tunnel_receive_packets_total", "rx_packets"),
        ("culvert_tunnel_transmit_packets_total", "tx_packets"),
    ] {
        let scraped = value(metric, "tunnel=flowing");
        let (low, high) = (before[field].as_u64().unwrap() as f64, after[field].as_u64().unwrap() as f64);
        assert!(low <= scraped && scraped <= high, "{metric} {scraped} is not between {low} and {high}");
    }
    assert!(
        after["tx_packets"].as_u64() > before["tx_packets"].as_u64(),
        "no traffic flowed during the scrape: {before} {after}"
    );
}
