//! Overlay tunnels on a real etcd: hosts in namespaces on one bridge, each with its own culvertd, pods made by
//! the real CNI bridge plugin from each host's subnet file; flannel's records, read and written by etcdctl.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use culvert_tests::overlay::{self, Etcd};
use culvert_tests::{Lab, check, in_ns, ip, ping, run, wait_until};

/// A host of the test network: its namespace, culvertd's index in the lab, its subnet file, its lease.
struct Host {
    ns: String,
    /// The backend's link.
    link: String,
    helper: usize,
    file: PathBuf,
    subnet: String,
}

fn join(lab: &mut Lab, etcd: &Etcd, n: u8, extra: &str) -> Host {
    let ns = overlay::host(lab, etcd, n, &[]);
    let helper = lab.helpers.len() - 1;
    let file = overlay::subnet_file(lab, n);
    let profile = lab.profile(&format!("ov{n}"), &overlay::profile(etcd, n, &file, extra));
    let up = lab.helpers[helper].culvert_ok(&["up", profile.to_str().unwrap()]);
    assert!(up.contains("is up"), "{up}");
    let subnet = overlay::subnet_value(&file, "FLANNEL_SUBNET").replace(".1/", ".0/");
    let link = extra
        .lines()
        .find_map(|l| l.strip_prefix("interface = "))
        .map_or_else(|| format!("ov{n}"), |name| name.trim_matches('"').to_owned());
    Host { ns, link, helper, file, subnet }
}

fn status(lab: &Lab, host: &Host, n: u8) -> serde_json::Value {
    lab.helpers[host.helper].status(&format!("ov{n}"))
}

/// Every pod pings every other by its own address.
fn all_reach_all(pods: &[(String, String)]) {
    for (from, _) in pods {
        for (_, to) in pods.iter().filter(|(ns, _)| ns != from) {
            assert!(ping(from, to, 1), "pod {from} does not reach {to}");
        }
    }
}

/// `count` pings every 50 ms from `ns` to `dst`, running while the test goes on.
fn run_ping(ns: &str, dst: &str, count: u32) -> std::process::Child {
    in_ns(ns, "ping")
        .args(["-q", "-i", "0.05", "-W", "1", "-c", &count.to_string(), dst])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn network(etcd: &Etcd, backend: &str) {
    let config = format!(r#"{{"Network":"10.5.0.0/16","SubnetLen":24,"Backend":{{"Type":"{backend}"}}}}"#);
    etcd.ctl(&["put", "/coreos.com/network/config", &config]);
}

/// Short leases, so that a killed host is dropped within the test.
const SHORT_LEASES: &str = "lease_ttl = \"10s\"\nlease_renew_margin = \"5s\"\n";

fn mtu_of(ns: &str, link: &str) -> String {
    let out =
        String::from_utf8_lossy(&run(std::process::Command::new("ip").args(["-n", ns, "link", "show", link])).stdout)
            .into_owned();
    out.split_whitespace().skip_while(|w| *w != "mtu").nth(1).unwrap_or_default().to_owned()
}

/// What every backend must do: 3 hosts with 2 pods each reach each other by their own addresses; a host joins
/// and leaves within 2 s; hostile leases are skipped and shown; etcd restarts under a pod-to-pod TCP stream that
/// lives through it; leases are renewed; a killed host is dropped at its lease's expiry.
fn lifecycle(backend: &str, record: impl Fn(&serde_json::Value)) {
    let mut lab = Lab::new();
    let etcd = overlay::underlay(&mut lab);
    network(&etcd, backend);
    let started = Instant::now();
    // WireGuard's API sockets live in one directory for every namespace: each test's links get names of their own.
    let tag = culvert_tests::unique("w");
    let extra = |n: u8| {
        if backend == "wireguard" {
            format!("{SHORT_LEASES}interface = \"{tag}{n}\"\n")
        } else {
            SHORT_LEASES.to_owned()
        }
    };
    let hosts: Vec<Host> = (1..=3).map(|n| join(&mut lab, &etcd, n, &extra(n))).collect();

    // flannel's subnet file and lease record, as flanneld writes them.
    let first = &hosts[0];
    assert_eq!(overlay::subnet_value(&first.file, "FLANNEL_NETWORK"), "10.5.0.0/16");
    let mtu = if backend == "host-gw" { "1500".to_owned() } else { mtu_of(&first.ns, &first.link) };
    assert_eq!(overlay::subnet_value(&first.file, "FLANNEL_MTU"), mtu);
    assert_eq!(overlay::subnet_value(&first.file, "FLANNEL_IPMASQ"), "false");
    let prefix = "/coreos.com/network/subnets";
    let key = format!("{prefix}/{}", first.subnet.replace('/', "-"));
    let value = etcd.ctl(&["get", &key, "--print-value-only"]).trim().to_owned();
    let lease: serde_json::Value = serde_json::from_str(&value).unwrap();
    assert_eq!(lease["PublicIP"], "172.31.0.1");
    assert!(lease["PublicIPv6"].is_null(), "{lease}");
    assert_eq!(lease["BackendType"], backend);
    record(&lease);
    let with_lease: serde_json::Value = serde_json::from_str(&etcd.ctl(&["get", &key, "-w", "json"])).unwrap();
    assert_ne!(with_lease["kvs"][0]["lease"].as_i64().unwrap_or(0), 0, "the key must be held by an etcd lease");

    let mut pods = Vec::new();
    for h in &hosts {
        for _ in 0..2 {
            pods.push(overlay::pod(&mut lab, &h.ns, &h.file));
        }
    }
    all_reach_all(&pods);
    let s = status(&lab, first, 1);
    assert_eq!(s["kind"], "overlay");
    assert_eq!((&s["overlay"]["network"], &s["overlay"]["backend"]), (&"10.5.0.0/16".into(), &backend.into()));
    assert_eq!(s["overlay"]["registry"], "ok");
    assert_eq!(s["overlay"]["nodes"].as_array().unwrap().len(), 2, "{s}");

    // A fourth host joins: every other host routes to it within 2 s of its `up`.
    let fourth = join(&mut lab, &etcd, 4, &extra(4));
    let joined = Instant::now();
    for h in &hosts {
        assert!(wait_until(Duration::from_secs(2), || !overlay::route_to(&h.ns, &fourth.subnet).is_empty()));
    }
    println!("{backend}: joined: every host had the new one's route after {:?}", joined.elapsed());
    let pod4 = overlay::pod(&mut lab, &fourth.ns, &fourth.file);
    assert!(ping(&pods[0].0, &pod4.1, 1), "the new host's pod is not reached");

    // Hostile leases, written straight into etcd (a copy of a real one, so only the subnet is wrong): skipped,
    // shown with the reason, no route.
    let hostile = |ip: &str| value.replace("172.31.0.1", ip);
    etcd.ctl(&["put", &format!("{prefix}/10.6.0.0-24"), &hostile("172.31.0.99")]);
    let overlapping = first.subnet.replace(".0/24", ".0-23");
    etcd.ctl(&["put", &format!("{prefix}/{overlapping}"), &hostile("172.31.0.98")]);
    // host-gw reaches only hosts on its own segment: one elsewhere is skipped, and the rest go on working (the
    // fourth host's leave below is applied beside it).
    let hostile_count = if backend == "host-gw" {
        etcd.ctl(&["put", &format!("{prefix}/10.5.250.0-24"), &hostile("10.9.0.9")]);
        3
    } else {
        2
    };
    let shown = wait_until(Duration::from_secs(2), || {
        let nodes = status(&lab, &hosts[1], 2)["overlay"]["nodes"].clone();
        nodes.as_array().unwrap().iter().filter(|n| n["skipped_reason"].is_string()).count() == hostile_count
    });
    let s = status(&lab, &hosts[1], 2);
    assert!(shown, "{s}");
    let text = s.to_string();
    assert!(text.contains("lies outside the network 10.5.0.0/16"), "{text}");
    assert!(text.contains("overlaps"), "{text}");
    assert!(backend != "host-gw" || text.contains("is not on this host's segment 172.31.0.0/24"), "{text}");
    assert!(overlay::route_to(&hosts[1].ns, "10.6.0.0/24").is_empty());
    let plain = String::from_utf8_lossy(&lab.helpers[hosts[1].helper].culvert(&["status", "ov2"]).stdout).into_owned();
    assert!(plain.contains("skipped: 10.6.0.0/24 lies outside"), "{plain}");
    all_reach_all(&pods);

    // etcd goes away under a pod-to-pod TCP stream and steady pings: the hosts keep their peers and their
    // traffic, say etcd is unreachable, and catch up with what changed once it is back.
    let stream = overlay::Stream::open(&pods[1].0, &pods[4].0, &pods[4].1, 7001);
    let (from, to) = (pods[0].0.clone(), pods[5].1.clone());
    let steady = run_ping(&from, &to, 300);
    let mut etcd = etcd;
    etcd.stop();
    assert!(
        wait_until(Duration::from_secs(20), || status(&lab, first, 1)["overlay"]["registry"] == "unreachable"),
        "status never said etcd was unreachable"
    );
    assert!(!overlay::route_to(&first.ns, &hosts[2].subnet).is_empty(), "a peer went with etcd");
    etcd.start();
    assert!(
        wait_until(Duration::from_secs(20), || status(&lab, first, 1)["overlay"]["registry"] == "ok"),
        "status never said etcd was back"
    );
    etcd.ctl(&["del", &format!("{prefix}/10.6.0.0-24")]);
    assert!(wait_until(Duration::from_secs(5), || {
        status(&lab, first, 1)["overlay"]["nodes"].as_array().unwrap().iter().all(|n| n["subnet"] != "10.6.0.0/24")
    }));
    let summary = String::from_utf8_lossy(&steady.wait_with_output().unwrap().stdout).into_owned();
    assert!(summary.contains(" 0% packet loss"), "pod traffic suffered while etcd was away: {summary}");
    let (sent, received) = stream.close();
    assert!(sent.len() > 100_000, "the stream carried only {} bytes", sent.len());
    assert!(sent == received, "the TCP stream broke: {} bytes sent, {} received", sent.len(), received.len());

    // The fourth host leaves: its lease is revoked, and every other host drops it within 2 s.
    lab.helpers[fourth.helper].culvert_ok(&["down", "ov4"]);
    let left = Instant::now();
    for h in &hosts {
        assert!(wait_until(Duration::from_secs(2), || overlay::route_to(&h.ns, &fourth.subnet).is_empty()));
    }
    println!("{backend}: left: every host had dropped it after {:?}", left.elapsed());
    let key4 = format!("{prefix}/{}", fourth.subnet.replace('/', "-"));
    assert!(etcd.ctl(&["get", &key4]).trim().is_empty(), "down must revoke the lease");

    // Past the first lease's TTL (10 s): renewed, still routed.
    std::thread::sleep(Duration::from_secs(12).saturating_sub(started.elapsed()));
    assert!(!overlay::route_to(&hosts[0].ns, &hosts[2].subnet).is_empty(), "a lease was not renewed");
    all_reach_all(&pods);
    // Host 3's culvertd dies: nobody revokes its lease, which ends at its TTL, and the others drop it then.
    let pid = lab.helpers[hosts[2].helper].pid().unwrap();
    run(std::process::Command::new("kill").args(["-KILL", &pid.to_string()]));
    // Nothing restarts it to clean up after the crash: its WireGuard API socket is the lab's to remove.
    if backend == "wireguard" {
        lab.stray_files.push(format!("/var/run/wireguard/{tag}3.sock").into());
    }
    let killed = Instant::now();
    for h in &hosts[..2] {
        assert!(
            wait_until(Duration::from_secs(15), || overlay::route_to(&h.ns, &hosts[2].subnet).is_empty()),
            "the dead host's route stayed"
        );
    }
    println!("{backend}: a killed host was dropped after {:?} (TTL 10 s)", killed.elapsed());
    assert!(ping(&pods[0].0, &pods[2].1, 1), "the living hosts lost each other");
}

#[test]
fn a_vxlan_overlay_joins_hosts_through_etcd_and_follows_them_as_they_come_and_go() {
    lifecycle("vxlan", |lease| {
        assert_eq!(lease["BackendData"]["VNI"], 1);
        assert_eq!(lease["BackendData"]["VtepMAC"], "02:01:ac:1f:00:01");
    });
}

#[test]
fn a_host_gw_overlay_routes_pods_via_hosts_and_follows_them_as_they_come_and_go() {
    lifecycle("host-gw", |lease| assert!(lease.get("BackendData").is_none(), "{lease}"));
}

#[test]
fn a_wireguard_overlay_encrypts_between_hosts_with_keys_each_host_made() {
    lifecycle("wireguard", |lease| {
        let key = lease["BackendData"]["PublicKey"].as_str().unwrap();
        assert_eq!(key.len(), 44, "{lease}");
        assert_eq!(lease["BackendData"]["Port"], 51820);
    });
}

#[test]
fn a_udp_overlay_carries_pods_in_plain_datagrams_as_flannels_first_backend() {
    lifecycle("udp", |lease| assert!(lease.get("BackendData").is_none(), "{lease}"));
}

/// The private key of a wireguard overlay stays root-only on the host, and the host keeps it across `down`.
#[test]
fn a_wireguard_overlay_keeps_its_key_root_only_and_the_same_across_down_and_up() {
    let mut lab = Lab::new();
    let etcd = overlay::underlay(&mut lab);
    network(&etcd, "wireguard");
    let host = join(&mut lab, &etcd, 1, &format!("interface = \"{}\"\n", culvert_tests::unique("k")));
    let key_file = lab.helpers[host.helper].state_dir.join("keys/ov1.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key_file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let published = |etcd: &Etcd| {
        let key = format!("/coreos.com/network/subnets/{}", host.subnet.replace('/', "-"));
        let v: serde_json::Value = serde_json::from_str(etcd.ctl(&["get", &key, "--print-value-only"]).trim()).unwrap();
        v["BackendData"]["PublicKey"].as_str().unwrap().to_owned()
    };
    let before = published(&etcd);
    let private = std::fs::read_to_string(&key_file).unwrap();
    assert!(!std::fs::read_to_string(&lab.helpers[host.helper].log).unwrap().contains(private.trim()));
    lab.helpers[host.helper].culvert_ok(&["down", "ov1"]);
    let profile = lab.dir.join("ov1.toml");
    lab.helpers[host.helper].culvert_ok(&["up", profile.to_str().unwrap()]);
    assert_eq!(published(&etcd), before, "the host made a new key");
}

/// A 3-member etcd cluster loses the member the hosts talk to: the overlay does not notice.
#[test]
fn an_overlay_on_a_three_member_etcd_cluster_does_not_notice_a_member_dying() {
    let mut lab = Lab::new();
    let mut etcd = overlay::underlay_with(&mut lab, 3);
    network(&etcd, "vxlan");
    let hosts: Vec<Host> = (1..=2).map(|n| join(&mut lab, &etcd, n, SHORT_LEASES)).collect();
    let pods: Vec<(String, String)> = hosts.iter().map(|h| overlay::pod(&mut lab, &h.ns, &h.file)).collect::<Vec<_>>();
    all_reach_all(&pods);
    let steady = run_ping(&pods[0].0, &pods[1].1, 300);
    // The hosts' clients balance over the members: whichever each used for its watch, one of them dies.
    etcd.stop_member(0);
    let third = join(&mut lab, &etcd, 3, SHORT_LEASES);
    let joined = Instant::now();
    for h in &hosts {
        assert!(
            wait_until(Duration::from_secs(2), || !overlay::route_to(&h.ns, &third.subnet).is_empty()),
            "a host did not follow the new one; its log:\n{}",
            std::fs::read_to_string(&lab.helpers[h.helper].log).unwrap_or_default()
        );
    }
    println!("with a member dead: every host had the new one's route after {:?}", joined.elapsed());
    // Past the leases' TTL: renewed through the living members, nobody dropped.
    std::thread::sleep(Duration::from_secs(12));
    for (h, n) in hosts.iter().zip(1..) {
        let s = status(&lab, h, n);
        assert_eq!(s["overlay"]["registry"], "ok", "{s}");
        assert_eq!(s["overlay"]["nodes"].as_array().unwrap().len(), 2, "{s}");
    }
    let pod3 = overlay::pod(&mut lab, &third.ns, &third.file);
    assert!(ping(&pods[0].0, &pod3.1, 1));
    let summary = String::from_utf8_lossy(&steady.wait_with_output().unwrap().stdout).into_owned();
    assert!(summary.contains(" 0% packet loss"), "pod traffic suffered when a member died: {summary}");
    etcd.start_member(0);
}

/// A host set up by hand exactly as flanneld sets one up (its VXLAN link, and its lease written with etcdctl as
/// flanneld writes it) is a peer like any other, both ways.
#[test]
fn a_lease_written_as_flanneld_writes_it_is_a_working_peer() {
    let mut lab = Lab::new();
    let etcd = overlay::underlay(&mut lab);
    network(&etcd, "vxlan");
    let culvert = join(&mut lab, &etcd, 1, "");
    let (pod, pod_ip) = overlay::pod(&mut lab, &culvert.ns, &culvert.file);
    // The hand-made flannel host: flannel.1 with VNI 1 on port 8472, its subnet's .0/32 on it.
    let flannel = lab.netns();
    let (inside, outside) = (culvert_tests::unique("ve"), culvert_tests::unique("vb"));
    ip(&["link", "add", &inside, "netns", &flannel, "type", "veth", "peer", "name", &outside, "netns", &etcd.ns]);
    ip(&["-n", &flannel, "addr", "add", "172.31.0.9/24", "dev", &inside]);
    ip(&["-n", &flannel, "link", "set", &inside, "up"]);
    ip(&["-n", &etcd.ns, "link", "set", &outside, "master", "br0", "up"]);
    let mac = "4e:3c:2a:11:22:33";
    ip(&[
        "-n",
        &flannel,
        "link",
        "add",
        "flannel.1",
        "address",
        mac,
        "type",
        "vxlan",
        "id",
        "1",
        "local",
        "172.31.0.9",
        "dstport",
        "8472",
        "nolearning",
    ]);
    ip(&["-n", &flannel, "addr", "add", "10.5.200.0/32", "dev", "flannel.1"]);
    ip(&["-n", &flannel, "link", "set", "flannel.1", "up"]);
    // flanneld's lease record: its field names and types (`PublicIPv6` null, `BackendData` an object).
    let record = format!(
        r#"{{"PublicIP":"172.31.0.9","PublicIPv6":null,"BackendType":"vxlan","BackendData":{{"VNI":1,"VtepMAC":"{mac}"}}}}"#
    );
    let granted = etcd.ctl(&["lease", "grant", "60"]);
    let lease_id = granted.split_whitespace().nth(1).unwrap().to_owned();
    etcd.ctl(&["put", "--lease", &lease_id, "/coreos.com/network/subnets/10.5.200.0-24", &record]);
    // And what flanneld does with Culvert's lease: route, neighbour and FDB entry from its record.
    let key = format!("/coreos.com/network/subnets/{}", culvert.subnet.replace('/', "-"));
    let theirs: serde_json::Value =
        serde_json::from_str(etcd.ctl(&["get", &key, "--print-value-only"]).trim()).unwrap();
    let vtep_mac = theirs["BackendData"]["VtepMAC"].as_str().unwrap().to_owned();
    let gateway = culvert.subnet.split('/').next().unwrap().to_owned();
    ip(&["-n", &flannel, "neigh", "add", &gateway, "lladdr", &vtep_mac, "dev", "flannel.1", "nud", "permanent"]);
    check(in_ns(&flannel, "bridge").args(["fdb", "append", &vtep_mac, "dev", "flannel.1", "dst", "172.31.0.1"]));
    ip(&["-n", &flannel, "route", "add", &culvert.subnet, "via", &gateway, "dev", "flannel.1", "onlink"]);
    assert!(wait_until(Duration::from_secs(2), || !overlay::route_to(&culvert.ns, "10.5.200.0/24").is_empty()));
    assert!(ping(&flannel, &pod_ip, 2), "the flannel host does not reach Culvert's pod");
    assert!(ping(&pod, "10.5.200.0", 2), "Culvert's pod does not reach the flannel host");
    let s = lab.helpers[culvert.helper].status("ov1");
    assert_eq!(s["overlay"]["nodes"][0]["public_ip"], "172.31.0.9", "{s}");
    assert!(s["overlay"]["nodes"][0]["skipped_reason"].is_null(), "{s}");
    // Its lease revoked, as when flanneld's host goes away: Culvert drops it.
    etcd.ctl(&["lease", "revoke", &lease_id]);
    assert!(wait_until(Duration::from_secs(2), || overlay::route_to(&culvert.ns, "10.5.200.0/24").is_empty()));
}

#[test]
fn only_root_may_bring_up_an_overlay_and_a_missing_config_names_the_key_and_leaves_nothing() {
    let mut lab = Lab::new();
    let etcd = overlay::underlay(&mut lab);
    let ns = overlay::host(&mut lab, &etcd, 1, &["--group", "nogroup"]);
    let file = overlay::subnet_file(&mut lab, 1);
    let profile = lab.profile("ov1", &overlay::profile(&etcd, 1, &file, ""));
    let helper = &lab.helpers[0];
    let as_user = helper.culvert_as(4242, 65534, &["up", profile.to_str().unwrap()]);
    assert!(!as_user.status.success());
    assert!(
        culvert_tests::stderr(&as_user).contains("only root may bring up an overlay"),
        "{}",
        culvert_tests::stderr(&as_user)
    );
    let missing = helper.culvert(&["up", profile.to_str().unwrap()]);
    let said = culvert_tests::stderr(&missing);
    assert!(!missing.status.success());
    assert!(said.contains("no network config at /coreos.com/network/config") && said.contains("etcdctl put"), "{said}");
    etcd.ctl(&["put", "/coreos.com/network/config", r#"{"Network":"10.5.0.0/16","Backend":{"Type":"gre"}}"#]);
    let bad = helper.culvert(&["up", profile.to_str().unwrap()]);
    assert!(culvert_tests::stderr(&bad).contains("Backend.Type"), "{}", culvert_tests::stderr(&bad));
    assert!(!run(std::process::Command::new("ip").args(["-n", &ns, "link", "show", "ov1"])).status.success());
    assert!(etcd.ctl(&["get", "--prefix", "/coreos.com/network/subnets/"]).trim().is_empty(), "no lease may be left");
    assert!(!file.exists(), "no subnet file may be written");
}

fn nft_table(ns: &str, table: &str) -> Option<String> {
    let out = run(in_ns(ns, "nft").args(["list", "table", "ip", table]));
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The address a TCP client in `from` appears to come from at `to_addr` (a socat in `to` answers with it).
fn seen_as(from: &str, to: &str, to_addr: &str, port: u16) -> String {
    let mut server = in_ns(to, "socat")
        .args([&format!("TCP-LISTEN:{port},reuseaddr"), "EXEC:printenv SOCAT_PEERADDR"])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || {
        !run(in_ns(to, "ss").args(["-Hltn", &format!("sport = :{port}")])).stdout.is_empty()
    }));
    let out = run(in_ns(from, "socat").args(["-T", "5", "-", &format!("TCP:{to_addr}:{port},connect-timeout=5")]));
    let _ = server.kill();
    let _ = server.wait();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `ip_masq`: pods reach the world beyond the network from their host's address, while between pods every
/// address stays its own; the NAT is a table of its own, gone after `down` and after a crash.
#[test]
fn ip_masq_nats_pod_traffic_leaving_the_network_in_a_table_removed_on_down_and_after_a_crash() {
    let mut lab = Lab::new();
    let etcd = overlay::underlay(&mut lab);
    network(&etcd, "vxlan");
    let hosts: Vec<Host> = (1..=2).map(|n| join(&mut lab, &etcd, n, "ip_masq = true\n")).collect();
    assert_eq!(overlay::subnet_value(&hosts[0].file, "FLANNEL_IPMASQ"), "true");
    let (pod1, pod1_ip) = overlay::pod(&mut lab, &hosts[0].ns, &hosts[0].file);
    let (pod2, pod2_ip) = overlay::pod(&mut lab, &hosts[1].ns, &hosts[1].file);
    let table = nft_table(&hosts[0].ns, "culvert-masq-ov1").expect("the NAT table");
    assert!(table.contains("masquerade") && table.contains("10.5.0.0/16"), "{table}");
    // Between pods: their own addresses.
    assert_eq!(seen_as(&pod1, &pod2, &pod2_ip, 7201), pod1_ip);
    // A machine outside the network, on the underlay, that has no route to the pods: it sees the host.
    let outside = lab.netns();
    let (inside, bridge_end) = (culvert_tests::unique("ve"), culvert_tests::unique("vb"));
    ip(&["link", "add", &inside, "netns", &outside, "type", "veth", "peer", "name", &bridge_end, "netns", &etcd.ns]);
    ip(&["-n", &outside, "addr", "add", "172.31.0.50/24", "dev", &inside]);
    ip(&["-n", &outside, "link", "set", &inside, "up"]);
    ip(&["-n", &etcd.ns, "link", "set", &bridge_end, "master", "br0", "up"]);
    assert_eq!(seen_as(&pod1, &outside, "172.31.0.50", 7202), "172.31.0.1");
    assert!(ping(&pod1, "172.31.0.50", 1), "a pod does not reach beyond the network");

    // down removes the table; a crash leaves it, and the next culvertd removes it while it recovers.
    lab.helpers[hosts[0].helper].culvert_ok(&["down", "ov1"]);
    assert!(nft_table(&hosts[0].ns, "culvert-masq-ov1").is_none(), "down left the NAT table");
    assert!(!ping(&pod1, "172.31.0.50", 1), "without the NAT, the outside has no way back to the pod");
    assert!(nft_table(&hosts[1].ns, "culvert-masq-ov2").is_some());
    assert!(lab.helpers[hosts[1].helper].stop_with(9), "culvertd outlived SIGKILL");
    assert!(nft_table(&hosts[1].ns, "culvert-masq-ov2").is_some(), "the table outlives a crash");
    let restarted = lab.spawn_helper(&hosts[1].ns, "h2", &[]).unwrap();
    assert!(nft_table(&hosts[1].ns, "culvert-masq-ov2").is_none(), "recovery left the NAT table");
    drop(restarted);
}

/// DirectRouting: hosts on one underlay subnet route to each other's pods directly, as host-gw does, and reach
/// a host on another subnet through VXLAN; every pod still reaches every other.
#[test]
fn a_vxlan_overlay_with_direct_routing_skips_encapsulation_between_hosts_on_one_subnet() {
    let mut lab = Lab::new();
    let etcd = overlay::underlay(&mut lab);
    let config = r#"{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan","DirectRouting":true}}"#;
    etcd.ctl(&["put", "/coreos.com/network/config", config]);
    // The underlay's namespace routes between 172.31.0.0/24 and a second subnet, 172.31.1.0/24.
    ip(&["-n", &etcd.ns, "addr", "add", "172.31.1.100/24", "dev", "br0"]);
    check(in_ns(&etcd.ns, "sysctl").args(["-qw", "net.ipv4.ip_forward=1"]));
    let mut hosts: Vec<Host> = (1..=2).map(|n| join(&mut lab, &etcd, n, "")).collect();
    for h in &hosts {
        ip(&["-n", &h.ns, "route", "add", "172.31.1.0/24", "via", overlay::ETCD_IP]);
    }
    let far_ns = overlay::host_at(&mut lab, &etcd, 3, "172.31.1.3/24", Some("172.31.1.100"), &[]);
    let file = overlay::subnet_file(&mut lab, 3);
    let text = overlay::profile(&etcd, 3, &file, "").replace("172.31.0.3", "172.31.1.3");
    let profile = lab.profile("ov3", &text);
    lab.helpers.last().unwrap().culvert_ok(&["up", profile.to_str().unwrap()]);
    let subnet = overlay::subnet_value(&file, "FLANNEL_SUBNET").replace(".1/", ".0/");
    hosts.push(Host { ns: far_ns, link: "ov3".into(), helper: lab.helpers.len() - 1, file, subnet });
    assert!(wait_until(Duration::from_secs(2), || {
        !overlay::route_to(&hosts[0].ns, &hosts[2].subnet).is_empty()
            && !overlay::route_to(&hosts[0].ns, &hosts[1].subnet).is_empty()
    }));
    let near = overlay::route_to(&hosts[0].ns, &hosts[1].subnet);
    assert!(near.contains("via 172.31.0.2") && !near.contains("dev ov1"), "not a direct route: {near}");
    let far = overlay::route_to(&hosts[0].ns, &hosts[2].subnet);
    assert!(far.contains("dev ov1") && far.contains("onlink"), "not through VXLAN: {far}");
    let mut pods = Vec::new();
    for h in &hosts {
        pods.push(overlay::pod(&mut lab, &h.ns, &h.file));
    }
    all_reach_all(&pods);
    // The near host's pods are reached without VXLAN: nothing crossed ov1 toward it.
    let tx = |ns: &str| {
        let out = run(in_ns(ns, "cat").arg("/sys/class/net/ov1/statistics/tx_packets"));
        String::from_utf8_lossy(&out.stdout).trim().parse::<u64>().unwrap()
    };
    // (The link sends a stray packet of its own now and then, such as IPv6 neighbour discovery: 10 pings show.)
    let before = tx(&hosts[0].ns);
    assert!(run(in_ns(&pods[0].0, "ping").args(["-c", "10", "-i", "0.05", "-W", "2", &pods[1].1])).status.success());
    let near_crossed = tx(&hosts[0].ns) - before;
    assert!(near_crossed < 10, "pings to the near host went through VXLAN: {near_crossed} packets");
    let before = tx(&hosts[0].ns);
    assert!(run(in_ns(&pods[0].0, "ping").args(["-c", "10", "-i", "0.05", "-W", "2", &pods[2].1])).status.success());
    let far_crossed = tx(&hosts[0].ns) - before;
    assert!(far_crossed >= 10, "pings to the far host did not go through VXLAN: {far_crossed} packets");
}

/// etcd with TLS, client certificates and a password: the client reads the files the profile names (relative to
/// the profile) and sends them, culvertd never logs the key or the password, and a wrong password is refused
/// with what etcd said, leaving nothing behind.
#[test]
fn an_overlay_speaks_tls_and_a_password_to_etcd_and_never_logs_them() {
    let mut lab = Lab::new();
    let mut etcd = overlay::underlay_tls(&mut lab);
    // etcd's auth: root, and node1 who may use the network's keys only.
    etcd.ctl(&["user", "add", "root:r00t-pw"]);
    etcd.ctl(&["user", "add", "node1:n0de-pw"]);
    etcd.ctl(&["role", "add", "overlay"]);
    etcd.ctl(&["role", "grant-permission", "overlay", "--prefix=true", "readwrite", "/coreos.com/network/"]);
    etcd.ctl(&["user", "grant-role", "node1", "overlay"]);
    etcd.ctl(&["auth", "enable"]);
    etcd.root = Some("root:r00t-pw".into());
    network(&etcd, "vxlan");
    let secure = |password: &str| {
        format!(
            "etcd_ca = \"pki/ca.pem\"\netcd_cert = \"pki/node1.pem\"\netcd_key = \"pki/node1-key.pem\"\n\
             etcd_username = \"node1\"\netcd_password = \"{password}\"\n"
        )
    };
    let hosts: Vec<Host> = (1..=2).map(|n| join(&mut lab, &etcd, n, &secure("n0de-pw"))).collect();
    let pods: Vec<(String, String)> = hosts.iter().map(|h| overlay::pod(&mut lab, &h.ns, &h.file)).collect();
    all_reach_all(&pods);
    let key = format!("/coreos.com/network/subnets/{}", hosts[0].subnet.replace('/', "-"));
    assert!(etcd.ctl(&["get", &key]).contains("172.31.0.1"), "the lease is not in etcd");
    let private_key = std::fs::read_to_string(lab.dir.join("pki/node1-key.pem")).unwrap();
    let body = private_key.lines().nth(1).unwrap().to_owned();
    for h in &hosts {
        let log = std::fs::read_to_string(&lab.helpers[h.helper].log).unwrap();
        assert!(!log.contains("n0de-pw") && !log.contains(&body), "a secret reached culvertd's log:\n{log}");
    }

    // A third host with a wrong password: refused with etcd's reason, nothing left.
    let ns = overlay::host(&mut lab, &etcd, 3, &[]);
    let file = overlay::subnet_file(&mut lab, 3);
    let profile = lab.profile("ov3", &overlay::profile(&etcd, 3, &file, &secure("wrong")));
    let out = lab.helpers.last().unwrap().culvert(&["up", profile.to_str().unwrap()]);
    let said = culvert_tests::stderr(&out);
    assert!(!out.status.success());
    assert!(said.contains("authentication failed"), "{said}");
    println!("wrong password: {said}");
    assert!(!said.contains("wrong"), "the error shows the password: {said}");
    assert!(!run(std::process::Command::new("ip").args(["-n", &ns, "link", "show", "ov3"])).status.success());
    assert!(!file.exists());
    // A PEM file that is not there is named by the client, before culvertd hears of it.
    let missing =
        lab.profile("ov3", &overlay::profile(&etcd, 3, &file, &secure("n0de-pw").replace("ca.pem", "no.pem")));
    let out = lab.helpers.last().unwrap().culvert(&["up", missing.to_str().unwrap()]);
    let said = culvert_tests::stderr(&out);
    assert!(said.contains("etcd_ca") && said.contains("no.pem") && said.contains("cannot read"), "{said}");
}

/// An `up` that fails after it took its lease gives the lease back at once: no other host routes to it.
#[test]
fn an_up_that_fails_after_taking_its_lease_gives_it_back() {
    let mut lab = Lab::new();
    let etcd = overlay::underlay(&mut lab);
    network(&etcd, "vxlan");
    let ns = overlay::host(&mut lab, &etcd, 1, &[]);
    // Something else already holds the backend link's name.
    ip(&["-n", &ns, "link", "add", "ov1", "type", "bridge"]);
    let file = overlay::subnet_file(&mut lab, 1);
    let profile = lab.profile("ov1", &overlay::profile(&etcd, 1, &file, ""));
    let out = lab.helpers[0].culvert(&["up", profile.to_str().unwrap()]);
    assert!(!out.status.success());
    let said = culvert_tests::stderr(&out);
    assert!(said.contains("ov1"), "{said}");
    assert!(etcd.ctl(&["get", "--prefix", "/coreos.com/network/subnets/"]).trim().is_empty(), "the lease stayed");
    assert!(
        run(std::process::Command::new("ip").args(["-n", &ns, "link", "show", "ov1", "type", "bridge"]))
            .status
            .success()
    );
    assert!(!file.exists());
}
