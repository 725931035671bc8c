//! The kernel kinds brought up, changed, rolled back and undone against the in-memory kernel
//! (`system::netlink::fake`): what a tunnel makes, and that every way out of it leaves the kernel as it was.

use std::sync::{Arc, Mutex};

use culvert_core::profile::{Profile, parse_toml};

use super::apply::{Parts, apply};
use super::changes;
use crate::system::netlink::fake::FakeKernel;
use crate::system::{Netlink, Records};

/// A state directory of the test's own, removed when it goes.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(tag: &str) -> (Scratch, Records) {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("culvert-tunnel-{tag}-{}-{n}", std::process::id()));
    let records = Records::open(&dir).unwrap();
    (Scratch(dir), records)
}

fn kernel() -> (Netlink, Arc<Mutex<FakeKernel>>) {
    let mut k = FakeKernel::host("172.31.0.1/24");
    k.add_link("cvpods", Some("bridge"), 1500);
    Netlink::fake(k)
}

/// No `set` reaches a helper here, and the resolver asks the system's (no test resolves a name).
fn services() -> super::Services {
    let (sets, _) = tokio::sync::mpsc::channel(1);
    let resolver = crate::system::resolver::Resolver::new(crate::system::resolver::Files::system(std::env::temp_dir()));
    super::Services { sets, resolver }
}

fn snapshot(k: &Arc<Mutex<FakeKernel>>) -> FakeKernel {
    k.lock().unwrap().state()
}

fn vxlan(peers: &[(&str, &str, &str)]) -> Profile {
    let mut text = "kind = \"vxlan\"\nvni = 42\nlocal = \"172.31.0.1\"\naddress = [\"10.244.1.0/32\"]\n\
                    forward = [\"cvpods\"]\n"
        .to_owned();
    for (vtep, gw, subnet) in peers {
        text += &format!("[[peer]]\nvtep = \"{vtep}\"\ngateway = \"{gw}\"\nsubnets = [\"{subnet}\"]\n");
    }
    parse_toml("ov", &text).unwrap()
}

fn hostgw(peers: &[(&str, &str)]) -> Profile {
    let mut text = "kind = \"hostgw\"\nforward = [\"cvpods\"]\n".to_owned();
    for (via, subnet) in peers {
        text += &format!("[[peer]]\nvia = \"{via}\"\nsubnets = [\"{subnet}\"]\n");
    }
    parse_toml("gw", &text).unwrap()
}

const TWO: [(&str, &str, &str); 2] =
    [("172.31.0.2", "10.244.2.0", "10.244.2.0/24"), ("172.31.0.3", "10.244.3.0", "10.244.3.0/24")];

async fn up(netlink: &Netlink, records: &Records, profile: Profile) -> super::Tunnel {
    super::up(netlink, records, profile, &vec![], 0, &services()).await.unwrap()
}

#[tokio::test]
async fn a_vxlan_tunnel_makes_flannels_state_and_down_takes_all_of_it_back() {
    let (netlink, k) = kernel();
    let (_dir, records) = scratch("vx");
    let before = snapshot(&k);
    let tunnel = up(&netlink, &records, vxlan(&TWO)).await;
    {
        let k = k.lock().unwrap();
        let link = k.links.iter().find(|l| l.name == "ov").unwrap();
        assert_eq!((link.kind.as_deref(), link.mtu, link.up), (Some("vxlan"), 1450, true));
        assert_eq!(k.fdb.iter().filter(|f| f.0 == link.index).count(), 4, "a unicast and a flood entry per peer");
        assert_eq!(k.neighbours.len(), 2);
        assert!(k.routes.iter().any(|r| r.dst == "10.244.3.0/24".parse().unwrap() && r.onlink));
        assert_eq!(k.sysctls["net/ipv4/conf/cvpods/forwarding"], "1");
    }
    changes::undo(&netlink, &records, &tunnel.record).await;
    assert_eq!(snapshot(&k), before, "down left something behind");
    assert!(records.load_all().unwrap().is_empty());
}

#[tokio::test]
async fn a_vxlan_peer_added_and_removed_live_and_a_change_that_fails_leaves_everything_as_it_was() {
    let (netlink, k) = kernel();
    let (_dir, records) = scratch("vxapply");
    let one = vxlan(&TWO[..1]);
    let tunnel = up(&netlink, &records, one.clone()).await;
    let parts = Parts {
        info: tunnel.info.clone(),
        record: tunnel.record.clone(),
        engine: tunnel.engine.clone(),
        datapath: None,
    };
    let at_one = snapshot(&k);

    let applied = apply(&netlink, &records, &parts, &vxlan(&TWO), &vec![]).await.unwrap();
    assert!(applied.notes.iter().any(|n| n == "1 route added"), "{:?}", applied.notes);
    assert_eq!(k.lock().unwrap().fdb.len(), 4);
    assert_eq!(records.load("ov").unwrap().unwrap(), applied.record, "the record on disk is the tunnel's");
    let at_two = snapshot(&k);

    // The second peer's subnet is refused by the kernel: the change is undone, and nothing differs.
    let three = vxlan(&[TWO[0], TWO[1], ("172.31.0.4", "10.244.4.0", "10.244.4.0/24")]);
    k.lock().unwrap().refuse_routes.insert("10.244.4.0/24".parse().unwrap());
    let parts = Parts { record: applied.record.clone(), ..parts };
    let failed = apply(&netlink, &records, &parts, &three, &vec![]).await.unwrap_err();
    assert!(failed.to_string().contains("10.244.4.0/24"), "{failed}");
    assert_eq!(snapshot(&k), at_two, "the failed change left something behind");
    assert_eq!(records.load("ov").unwrap().unwrap(), applied.record, "the failed change left its record");

    // Back to one peer: exactly the state of one peer again.
    let back = apply(&netlink, &records, &parts, &one, &vec![]).await.unwrap();
    assert_eq!(snapshot(&k), at_one);
    // A crash now: a restarted helper undoes the record on disk, and the kernel is as before the tunnel.
    let on_disk = records.load("ov").unwrap().unwrap();
    assert_eq!(on_disk, back.record);
    changes::undo(&netlink, &records, &on_disk).await;
    let k = k.lock().unwrap();
    assert!(k.links.iter().all(|l| l.name != "ov") && k.fdb.is_empty() && k.neighbours.is_empty());
    assert_eq!(k.sysctls["net/ipv4/conf/cvpods/forwarding"], "0");
}

#[tokio::test]
async fn host_gw_routes_via_each_host_and_a_crash_mid_change_is_undone_from_the_record() {
    let (netlink, k) = kernel();
    let (_dir, records) = scratch("gw");
    let before = snapshot(&k);
    let tunnel = up(&netlink, &records, hostgw(&[("172.31.0.2", "10.245.2.0/24")])).await;
    let parts = Parts {
        info: tunnel.info.clone(),
        record: tunnel.record.clone(),
        engine: tunnel.engine.clone(),
        datapath: None,
    };
    let two = hostgw(&[("172.31.0.2", "10.245.2.0/24"), ("172.31.0.3", "10.245.3.0/24")]);
    apply(&netlink, &records, &parts, &two, &vec![]).await.unwrap();
    {
        let k = k.lock().unwrap();
        let eth = k.links.iter().find(|l| l.name == "eth0").unwrap().index;
        let via: Vec<_> = k.routes.iter().map(|r| (r.dst.to_string(), r.via.map(|v| v.to_string()), r.index)).collect();
        assert!(via.contains(&("10.245.3.0/24".into(), Some("172.31.0.3".into()), eth)), "{via:?}");
        assert_eq!(k.sysctls["net/ipv4/conf/eth0/forwarding"], "1");
    }
    // What a crash leaves is the record: undoing it gives back the kernel as it was before the tunnel.
    let on_disk = records.load("gw").unwrap().unwrap();
    changes::undo(&netlink, &records, &on_disk).await;
    assert_eq!(snapshot(&k), before);
}

/// A full WireGuard tunnel's routing as wg-quick makes it: a table of its own (the first free from 51820, or the
/// one it has when it is up), the `not fwmark` and `suppress_prefixlength 0` rules, and src_valid_mark.
#[tokio::test]
async fn a_full_tunnel_takes_the_first_free_table_and_keeps_it_when_it_changes() {
    let (netlink, k) = kernel();
    let text = "[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\nAddress = 10.8.0.1/24\n\
                [Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\nAllowedIPs = 0.0.0.0/0\n";
    let profile = culvert_core::profile::wg_quick::parse("wg0", text).unwrap().0;
    let culvert_core::profile::Tunnel::Wireguard(config) = &profile.tunnel else { panic!() };
    let r = super::wireguard::routing(&netlink, config, None).await.unwrap();
    assert!(r.full && r.fwmark == Some(51820), "{:?}", r.fwmark);
    assert!(r.rules.iter().any(|rule| rule.invert && rule.table == 51820 && rule.fwmark == Some(51820)));
    assert!(r.rules.iter().any(|rule| rule.suppress_prefixlen == Some(0)));
    // culvertd's own lookups go by the main table, before the tunnel's rules.
    let control = r.rules.iter().find(|rule| rule.fwmark == Some(crate::system::CONTROL_MARK)).unwrap();
    assert!(!control.invert && control.table == crate::system::netlink::MAIN_TABLE);
    assert!(r.rules.iter().all(|rule| rule.fwmark == control.fwmark || rule.priority > control.priority));
    assert_eq!(r.sysctls, vec![("net/ipv4/conf/all/src_valid_mark".to_string(), "1".to_string())]);
    // Table 51820 in use by something else: the next one.
    let eth = k.lock().unwrap().links.iter().find(|l| l.name == "eth0").unwrap().index;
    let route = crate::system::netlink::Route {
        dst: "10.0.0.0/8".parse().unwrap(),
        index: eth,
        table: 51820,
        via: None,
        onlink: false,
    };
    k.lock().unwrap().add_route(&route).unwrap();
    assert_eq!(super::wireguard::routing(&netlink, config, None).await.unwrap().fwmark, Some(51821));
    // A tunnel that is up keeps its table, even one that others use too (its own routes are there).
    assert_eq!(super::wireguard::routing(&netlink, config, Some(51820)).await.unwrap().fwmark, Some(51820));
}

/// A port nobody here listens on, for a userspace tunnel's socket.
fn free_port() -> u16 {
    std::net::UdpSocket::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port()
}

/// A udp or tap profile on interface `cvu` with peers (endpoint, allowed prefix).
fn by_endpoint(kind: &str, port: u16, peers: &[(&str, &str)]) -> Profile {
    let mut text =
        format!("kind = \"{kind}\"\naddress = [\"10.9.0.1/24\"]\nlisten_port = {port}\ninterface = \"cvu\"\n");
    for (endpoint, allowed) in peers {
        text += &format!("[[peer]]\nendpoint = \"{endpoint}\"\nallowed_ips = [\"{allowed}\"]\n");
    }
    parse_toml("lab", &text).unwrap()
}

/// A WireGuard profile on interface `cvw` with peers (public key, allowed prefix, endpoint).
fn wireguard(peers: &[(&str, &str)]) -> Profile {
    let mut text = "kind = \"wireguard\"\nprivate_key = \"yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\"\n\
                    address = [\"10.8.0.1/24\"]\ninterface = \"cvw\"\n"
        .to_owned();
    for (i, (key, allowed)) in peers.iter().enumerate() {
        text += &format!(
            "[[peer]]\npublic_key = \"{key}\"\nallowed_ips = [\"{allowed}\"]\nendpoint = \"172.31.0.{}:51820\"\n",
            i + 2
        );
    }
    parse_toml("wg", &text).unwrap()
}

/// Takes a change that succeeded into the tunnel, as the registry does.
fn take(tunnel: &mut super::Tunnel, new: &Profile, applied: super::apply::Applied) {
    tunnel.record = applied.record;
    tunnel.info.set_profile(new.clone());
    if let (Some(datapath), Some((socket, mtu))) = (tunnel.datapath.as_mut(), applied.restart) {
        datapath.restart(socket, mtu);
    }
}

fn peers_of(tunnel: &super::Tunnel) -> usize {
    tunnel.info.status().peers.len()
}

/// A tunnel's link as the fake kernel holds it.
struct LinkState {
    kind: String,
    mtu: u32,
    up: bool,
    addresses: Vec<String>,
    /// Destinations routed through the link.
    routes: Vec<String>,
}

fn link_state(k: &Arc<Mutex<FakeKernel>>, name: &str) -> Option<LinkState> {
    let k = k.lock().unwrap();
    let link = k.links.iter().find(|l| l.name == name)?;
    Some(LinkState {
        kind: link.kind.clone().unwrap_or_default(),
        mtu: link.mtu,
        up: link.up,
        addresses: k.addresses.iter().filter(|a| a.index == link.index).map(|a| a.net.to_string()).collect(),
        routes: k.routes.iter().filter(|r| r.index == link.index).map(|r| r.dst.to_string()).collect(),
    })
}

/// udp, tap and WireGuard over the in-memory kernel: bring-up, a peer added and removed live (the engine's peers
/// and the routes), a change the kernel refuses half way leaving everything as it was, down, and a crash undone
/// from the record.
#[tokio::test]
async fn userspace_kinds_come_up_change_live_roll_back_go_down_and_are_undone_after_a_crash() {
    const KEY_B: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
    const KEY_C: &str = "ClIKlRzEQFRjCyeTuh6flHz4dmRYV4GSku1bbZZizHc=";
    let port = free_port();
    let cases = [
        (
            "cvu",
            by_endpoint("udp", port, &[("172.31.0.2:8285", "10.9.0.2/32")]),
            by_endpoint("udp", port, &[("172.31.0.2:8285", "10.9.0.2/32"), ("172.31.0.3:8285", "10.19.0.0/24")]),
        ),
        (
            "cvu",
            by_endpoint("tap", port, &[("172.31.0.2:8285", "10.9.0.2/32")]),
            by_endpoint("tap", port, &[("172.31.0.2:8285", "10.9.0.2/32"), ("172.31.0.3:8285", "10.19.0.0/24")]),
        ),
        ("cvw", wireguard(&[(KEY_B, "10.8.0.2/32")]), wireguard(&[(KEY_B, "10.8.0.2/32"), (KEY_C, "10.19.0.0/24")])),
    ];
    for (interface, one, two) in cases {
        let kind = one.kind();
        let (netlink, k) = kernel();
        let (_dir, records) = scratch(kind.as_str());
        let before = snapshot(&k);
        let mut tunnel = up(&netlink, &records, one.clone()).await;
        let link = link_state(&k, interface).unwrap();
        assert_eq!((link.kind.as_str(), link.mtu, link.up), ("tun", 1420, true), "{kind}");
        let address = if interface == "cvw" { "10.8.0.1/24" } else { "10.9.0.1/24" };
        assert_eq!(link.addresses, [address], "{kind}");
        assert_eq!(link.routes.len(), 1, "{kind}: {:?}", link.routes);
        assert_eq!(peers_of(&tunnel), 1);
        let at_one = snapshot(&k);

        let applied = apply(&netlink, &records, &tunnel.parts(), &two, &vec![]).await.unwrap();
        assert!(applied.notes.iter().any(|n| n.ends_with(": added")), "{kind}: {:?}", applied.notes);
        assert!(applied.notes.iter().any(|n| n == "1 route added"), "{kind}: {:?}", applied.notes);
        take(&mut tunnel, &two, applied);
        assert_eq!(peers_of(&tunnel), 2, "{kind}: the engine did not take the peer");
        assert!(link_state(&k, interface).unwrap().routes.contains(&"10.19.0.0/24".to_string()));
        assert_eq!(records.load(&one.name).unwrap().unwrap(), tunnel.record, "{kind}: the record is the tunnel's");
        let at_two = snapshot(&k);

        // A third peer whose second prefix the kernel refuses: nothing of the change stays, in the kernel or
        // the engine.
        let mut three = two.clone();
        let extra: [ipnet::IpNet; 2] = ["10.29.0.0/24", "10.39.0.0/24"].map(|p| p.parse().unwrap());
        match &mut three.tunnel {
            culvert_core::profile::Tunnel::Udp(u) => u.peers.push(culvert_core::profile::UdpPeer {
                endpoint: "172.31.0.4:8285".parse().unwrap(),
                allowed_ips: extra.to_vec(),
            }),
            culvert_core::profile::Tunnel::Tap(t) => t.peers.push(culvert_core::profile::UdpPeer {
                endpoint: "172.31.0.4:8285".parse().unwrap(),
                allowed_ips: extra.to_vec(),
            }),
            culvert_core::profile::Tunnel::Wireguard(w) => {
                let mut p = w.peers[0].clone();
                p.public_key = "3BCQ9KxbfT62AJYFOdRAbSaf1ZT7FRvyJJ4Xq5DJFes=".parse().unwrap();
                p.allowed_ips = extra.to_vec();
                w.peers.push(p);
            }
            _ => unreachable!(),
        }
        k.lock().unwrap().refuse_routes.insert(extra[1]);
        let failed = apply(&netlink, &records, &tunnel.parts(), &three, &vec![]).await.unwrap_err();
        assert!(failed.to_string().contains("10.39.0.0/24"), "{kind}: {failed}");
        assert_eq!(snapshot(&k), at_two, "{kind}: the failed change left something in the kernel");
        assert_eq!(peers_of(&tunnel), 2, "{kind}: the failed change left a peer in the engine");
        assert_eq!(records.load(&one.name).unwrap().unwrap(), tunnel.record, "{kind}: or in the record");

        let applied = apply(&netlink, &records, &tunnel.parts(), &one, &vec![]).await.unwrap();
        assert!(applied.notes.iter().any(|n| n.ends_with(": removed")), "{kind}: {:?}", applied.notes);
        take(&mut tunnel, &one, applied);
        assert_eq!(peers_of(&tunnel), 1);
        assert_eq!(snapshot(&k), at_one, "{kind}: back to one peer is the state of one peer");

        if kind == culvert_core::profile::Kind::Tap {
            // A crash: the process's device goes with it, the record stays; undoing it leaves the kernel as it
            // was before the tunnel.
            let record = records.load(&one.name).unwrap().unwrap();
            tunnel.stop().await;
            drop(tunnel);
            assert!(link_state(&k, interface).is_none(), "the device outlived its handle");
            changes::undo(&netlink, &records, &record).await;
        } else {
            tunnel.stop().await;
            changes::undo(&netlink, &records, &tunnel.record).await;
        }
        assert_eq!(snapshot(&k), before, "{kind}: down left something behind");
        assert!(records.load_all().unwrap().is_empty(), "{kind}");
    }
    // Empty: the API socket went with the tunnel.
    std::fs::remove_dir(super::uapi::socket_dir()).unwrap();
}

/// `Table =` changes live: the routes move to the table the profile names, and `off` takes them away.
#[tokio::test]
async fn a_wireguard_tunnels_routes_follow_its_table_live() {
    use crate::system::netlink::MAIN_TABLE;
    use culvert_core::profile::{Table, Tunnel as Config};
    let (netlink, k) = kernel();
    let (_dir, records) = scratch("table");
    let auto = wireguard(&[("xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=", "10.8.0.2/32")]);
    let with_table = |table: Table| {
        let mut p = auto.clone();
        if let Config::Wireguard(w) = &mut p.tunnel {
            w.table = table;
        }
        p
    };
    let tables = |k: &Arc<Mutex<FakeKernel>>| {
        let k = k.lock().unwrap();
        let index = k.links.iter().find(|l| l.name == "cvw").unwrap().index;
        k.routes.iter().filter(|r| r.index == index).map(|r| r.table).collect::<Vec<_>>()
    };
    let mut tunnel = up(&netlink, &records, auto.clone()).await;
    assert_eq!(tables(&k), [MAIN_TABLE]);
    for (table, want) in [(Table::Id(1234), vec![1234]), (Table::Off, vec![]), (Table::Auto, vec![MAIN_TABLE])] {
        let next = with_table(table);
        let applied = apply(&netlink, &records, &tunnel.parts(), &next, &vec![]).await.unwrap();
        take(&mut tunnel, &next, applied);
        assert_eq!(tables(&k), want, "{table:?}");
        assert_eq!(records.load("wg").unwrap().unwrap(), tunnel.record);
    }
    assert_eq!(peers_of(&tunnel), 1);
    tunnel.stop().await;
    changes::undo(&netlink, &records, &tunnel.record).await;
    // Empty: the API socket went with the tunnel.
    std::fs::remove_dir(super::uapi::socket_dir()).unwrap();
}
