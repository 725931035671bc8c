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
    Host { ns, helper, file, subnet }
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

#[test]
fn a_vxlan_overlay_joins_hosts_through_etcd_and_follows_them_as_they_come_and_go() {
    let mut lab = Lab::new();
    let etcd = overlay::underlay(&mut lab);
    network(&etcd, "vxlan");
    let hosts: Vec<Host> = (1..=3).map(|n| join(&mut lab, &etcd, n, "")).collect();

    // flannel's subnet file and lease record, as flanneld writes them.
    let first = &hosts[0];
    assert_eq!(overlay::subnet_value(&first.file, "FLANNEL_NETWORK"), "10.5.0.0/16");
    assert_eq!(overlay::subnet_value(&first.file, "FLANNEL_MTU"), "1450");
    assert_eq!(overlay::subnet_value(&first.file, "FLANNEL_IPMASQ"), "false");
    let key = format!("/coreos.com/network/subnets/{}", first.subnet.replace('/', "-"));
    let record: serde_json::Value =
        serde_json::from_str(etcd.ctl(&["get", &key, "--print-value-only"]).trim()).unwrap();
    assert_eq!(record["PublicIP"], "172.31.0.1");
    assert!(record["PublicIPv6"].is_null(), "{record}");
    assert_eq!(record["BackendType"], "vxlan");
    assert_eq!(record["BackendData"]["VNI"], 1);
    assert_eq!(record["BackendData"]["VtepMAC"], "02:01:ac:1f:00:01");
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
    assert_eq!(s["overlay"]["network"], "10.5.0.0/16");
    assert_eq!(s["overlay"]["registry"], "ok");
    assert_eq!(s["overlay"]["nodes"].as_array().unwrap().len(), 2, "{s}");

    // A fourth host joins: every other host routes to it within 2 s of its `up`.
    let fourth = join(&mut lab, &etcd, 4, "");
    let joined = Instant::now();
    for h in &hosts {
        assert!(wait_until(Duration::from_secs(2), || !overlay::route_to(&h.ns, &fourth.subnet).is_empty()));
    }
    println!("joined: every host had the new one's route after {:?}", joined.elapsed());
    let pod4 = overlay::pod(&mut lab, &fourth.ns, &fourth.file);
    assert!(ping(&pods[0].0, &pod4.1, 1), "the new host's pod is not reached");

    // Hostile leases, written straight into etcd: skipped, shown with the reason, no route.
    let prefix = "/coreos.com/network/subnets";
    let lease = |ip: &str| {
        format!(
            r#"{{"PublicIP":"{ip}","BackendType":"vxlan","BackendData":{{"VNI":1,"VtepMAC":"02:01:ac:1f:00:63"}}}}"#
        )
    };
    etcd.ctl(&["put", &format!("{prefix}/10.6.0.0-24"), &lease("172.31.0.99")]);
    let overlapping = first.subnet.replace(".0/24", ".0-23");
    etcd.ctl(&["put", &format!("{prefix}/{}", overlapping.replace('/', "-")), &lease("172.31.0.98")]);
    let shown = wait_until(Duration::from_secs(2), || {
        let nodes = status(&lab, &hosts[1], 2)["overlay"]["nodes"].clone();
        nodes.as_array().unwrap().iter().filter(|n| n["skipped_reason"].is_string()).count() == 2
    });
    let s = status(&lab, &hosts[1], 2);
    assert!(shown, "{s}");
    let text = s.to_string();
    assert!(text.contains("lies outside the network 10.5.0.0/16"), "{text}");
    assert!(text.contains("overlaps"), "{text}");
    assert!(overlay::route_to(&hosts[1].ns, "10.6.0.0/24").is_empty());
    let plain = String::from_utf8_lossy(&lab.helpers[hosts[1].helper].culvert(&["status", "ov2"]).stdout).into_owned();
    assert!(plain.contains("skipped: 10.6.0.0/24 lies outside"), "{plain}");
    all_reach_all(&pods);

    // etcd goes away: the hosts keep their peers and their traffic, say etcd is unreachable, and catch up with
    // what changed once it is back.
    let (from, to) = (pods[0].0.clone(), pods[5].1.clone());
    let steady = run_ping(&from, &to, 600);
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

    // The fourth host leaves: its lease is revoked, and every other host drops it within 2 s.
    lab.helpers[fourth.helper].culvert_ok(&["down", "ov4"]);
    let left = Instant::now();
    for h in &hosts {
        assert!(wait_until(Duration::from_secs(2), || overlay::route_to(&h.ns, &fourth.subnet).is_empty()));
    }
    println!("left: every host had dropped it after {:?}", left.elapsed());
    let key4 = format!("{prefix}/{}", fourth.subnet.replace('/', "-"));
    assert!(etcd.ctl(&["get", &key4]).trim().is_empty(), "down must revoke the lease");
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
fn a_host_gw_overlay_routes_pods_via_hosts_and_drops_a_dead_host_at_lease_expiry() {
    let mut lab = Lab::new();
    let etcd = overlay::underlay(&mut lab);
    network(&etcd, "host-gw");
    let ttl = "lease_ttl = \"10s\"\nlease_renew_margin = \"5s\"\n";
    let hosts: Vec<Host> = (1..=3).map(|n| join(&mut lab, &etcd, n, ttl)).collect();
    let mut pods = Vec::new();
    for h in &hosts {
        for _ in 0..2 {
            pods.push(overlay::pod(&mut lab, &h.ns, &h.file));
        }
    }
    all_reach_all(&pods);
    assert_eq!(overlay::subnet_value(&hosts[0].file, "FLANNEL_MTU"), "1500");
    let route = overlay::route_to(&hosts[0].ns, &hosts[1].subnet);
    assert!(route.contains("via 172.31.0.2"), "{route}");
    // Renewed past its first TTL: still there, still routed.
    std::thread::sleep(Duration::from_secs(12));
    assert!(!overlay::route_to(&hosts[0].ns, &hosts[2].subnet).is_empty(), "a lease was not renewed");
    all_reach_all(&pods);
    // Host 3's culvertd dies: nobody revokes its lease, which ends at its TTL, and the others drop it then.
    let pid = lab.helpers[hosts[2].helper].pid().unwrap();
    run(std::process::Command::new("kill").args(["-KILL", &pid.to_string()]));
    let killed = Instant::now();
    for h in &hosts[..2] {
        assert!(
            wait_until(Duration::from_secs(15), || overlay::route_to(&h.ns, &hosts[2].subnet).is_empty()),
            "the dead host's route stayed"
        );
    }
    println!("a killed host was dropped after {:?} (TTL 10 s)", killed.elapsed());
    assert!(ping(&pods[0].0, &pods[2].1, 1), "the living hosts lost each other");
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
