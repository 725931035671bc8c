//! The `vxlan` kind: a kernel VXLAN link with static forwarding state per peer, as flannel's vxlan backend
//! writes it: a unicast FDB entry (peer VTEP MAC -> peer underlay address), an all-zero flood entry per peer
//! VTEP, a neighbour entry (peer gateway -> VTEP MAC) and an on-link route to each peer subnet via its gateway.
//! The kernel moves the packets; the link outlives the helper, so everything is recorded before it is made.

use super::TunnelError;
use std::sync::Arc;

use culvert_core::profile::{Profile, VxlanTunnel};
use culvert_core::stats::{Counters, PeerStatus};

use super::changes::Changes;
use super::{StatusSource, Tunnel, TunnelInfo};
use crate::system::netlink::{MAIN_TABLE, Route, Vxlan};
use crate::system::{Netlink, Object, Record, Records};

/// VXLAN's overhead on an IPv4 underlay: outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14).
const OVERHEAD_V4: u32 = 50;
/// And on IPv6 (outer header of 40).
const OVERHEAD_V6: u32 = 70;

pub async fn up(
    netlink: &Netlink,
    records: &Records,
    profile: Profile,
    config: &VxlanTunnel,
    owner_uid: u32,
) -> Result<Tunnel, TunnelError> {
    let interface = profile.interface().to_owned();
    let underlay = underlay(netlink, config).await?;
    let mtu = match config.mtu {
        Some(mtu) => mtu,
        None => {
            let underlay_mtu = netlink.mtu(underlay).await?.unwrap_or(1500);
            let overhead = if config.local.is_ipv4() { OVERHEAD_V4 } else { OVERHEAD_V6 };
            u16::try_from(underlay_mtu.saturating_sub(overhead)).unwrap_or(u16::MAX)
        }
    };
    let bridge = match &config.bridge {
        Some(name) => Some(existing(netlink, "bridge", name).await?),
        None => None,
    };
    for (i, name) in config.forward.iter().enumerate() {
        existing(netlink, &format!("forward[{i}]"), name).await?;
    }

    let record = Record { name: profile.name.clone(), owner_uid, interface: interface.clone(), objects: vec![] };
    let mut changes = Changes::begin(netlink, records, record).map_err(TunnelError::Record)?;
    if let Err(e) = configure(&mut changes, config, &interface, underlay, mtu, bridge).await {
        changes.roll_back().await;
        return Err(e);
    }
    let record = changes.commit();
    let source = Arc::new(VxlanStatus { interface: interface.clone() });
    let info = TunnelInfo::new(profile, owner_uid, Some(config.port()), Arc::default(), source);
    Ok(Tunnel::new(info, record, vec![]))
}

async fn configure(
    changes: &mut Changes<'_>,
    config: &VxlanTunnel,
    interface: &str,
    underlay: u32,
    mtu: u16,
    bridge: Option<u32>,
) -> Result<(), TunnelError> {
    let netlink = changes.netlink;
    changes.will_create(Object::Link { name: interface.into(), kind: "vxlan".into() }).map_err(TunnelError::Record)?;
    let vxlan = Vxlan {
        name: interface.into(),
        vni: config.vni,
        port: config.port(),
        local: config.local,
        underlay,
        mac: config.own_mac().0,
        mtu,
    };
    netlink.add_vxlan(&vxlan).await?;
    let link = netlink.link(interface).await?.ok_or_else(|| TunnelError::Other {
        op: format!("creating the VXLAN link {interface}"),
        message: "the link vanished right after it was created".into(),
    })?;
    super::keep_from_network_manager(netlink, interface, crate::system::network_manager::FIND_NEW_LINK_WITHIN).await;
    for net in &config.address {
        netlink.add_address(link.index, *net).await?;
    }
    if let Some(master) = bridge {
        netlink.set_master(link.index, master).await?;
    }
    netlink.set_up(link.index, mtu).await?;
    let dev = interface.to_owned();
    let underlay_dev = netlink.link_name(underlay).await?.unwrap_or_default();
    // Everything on the link is the link's: recorded at once, then made.
    let (entries, routes): (Vec<_>, Vec<_>) =
        peer_state(config, &dev, &underlay_dev).into_iter().partition(|(o, _)| !matches!(o, Object::Route { .. }));
    changes.will_create_all(entries.iter().map(|(o, _)| o.clone())).map_err(TunnelError::Record)?;
    for (entry, _) in &entries {
        match entry {
            Object::Fdb { mac, dst, .. } => netlink.add_fdb(link.index, mac.0, *dst).await?,
            Object::Neighbour { ip, mac: Some(mac), .. } => {
                netlink.add_neighbour(link.index, *ip, mac.0).await?;
            }
            _ => {}
        }
    }
    let routes: Vec<_> = routes
        .into_iter()
        .filter_map(|(o, field)| match o {
            Object::Route { dst, table, via, onlink, dev: route_dev } => {
                let index = if route_dev == dev { link.index } else { underlay };
                Some((Route { dst, index, table, via, onlink }, route_dev, field))
            }
            _ => None,
        })
        .collect();
    changes.add_routes(&routes, "remove that route, or correct the peer's subnets").await?;
    // Pods behind this host reach the overlay, and the overlay reaches them, only if the host forwards
    // between the two.
    let v6 = config.peers.iter().flat_map(|p| &p.subnets).any(|n| n.addr().is_ipv6());
    for name in std::iter::once(interface).chain(config.forward.iter().map(String::as_str)) {
        changes.set_sysctl(&format!("net/ipv4/conf/{name}/forwarding"), "1")?;
        if v6 {
            changes.set_sysctl(&format!("net/ipv6/conf/{name}/forwarding"), "1")?;
        }
    }
    Ok(())
}

/// The forwarding state of each peer, as flannel's vxlan backend writes it, with the profile field each entry
/// comes from: a unicast FDB entry (its VTEP's MAC to its underlay address) and an all-zero flood entry, a
/// permanent neighbour entry for its gateway, and an on-link route to each of its subnets via that gateway. A
/// `direct` peer gets only routes via its VTEP on the underlay link `underlay_dev`, as flannel's DirectRouting.
pub(super) fn peer_state(config: &VxlanTunnel, dev: &str, underlay_dev: &str) -> Vec<(Object, String)> {
    let mut out = Vec::new();
    for (i, peer) in config.peers.iter().enumerate() {
        if peer.direct {
            for (j, dst) in peer.subnets.iter().enumerate() {
                let route = Object::Route {
                    dst: *dst,
                    dev: underlay_dev.into(),
                    table: MAIN_TABLE,
                    via: Some(peer.vtep),
                    onlink: false,
                };
                out.push((route, format!("peer[{i}].subnets[{j}]")));
            }
            continue;
        }
        let mac = config.peer_mac(peer);
        for entry in [mac, culvert_core::mac::MacAddr([0; 6])] {
            out.push((Object::Fdb { dev: dev.into(), mac: entry, dst: peer.vtep }, format!("peer[{i}].vtep")));
        }
        let Some(gateway) = peer.gateway else { continue };
        out.push((Object::Neighbour { dev: dev.into(), ip: gateway, mac: Some(mac) }, format!("peer[{i}].gateway")));
        for (j, dst) in peer.subnets.iter().enumerate() {
            let route =
                Object::Route { dst: *dst, dev: dev.into(), table: MAIN_TABLE, via: Some(gateway), onlink: true };
            out.push((route, format!("peer[{i}].subnets[{j}]")));
        }
    }
    out
}

/// The name of the underlay link, for the routes of `direct` peers.
pub(super) async fn underlay_name(netlink: &Netlink, config: &VxlanTunnel) -> Result<String, TunnelError> {
    let index = underlay(netlink, config).await?;
    Ok(netlink.link_name(index).await?.unwrap_or_default())
}

/// The underlay link: the one named, or the one that holds `local`.
async fn underlay(netlink: &Netlink, config: &VxlanTunnel) -> Result<u32, TunnelError> {
    if let Some(name) = &config.underlay {
        return existing(netlink, "underlay", name).await;
    }
    let addresses = netlink.addresses().await?;
    addresses.iter().find(|a| a.net.addr() == config.local).map(|a| a.index).ok_or_else(|| TunnelError::Profile {
        field: "local".into(),
        reason: format!("no interface of this host has the address {}", config.local),
        fix: "set `local` to one of this host's underlay addresses (`ip addr` lists them)".into(),
    })
}

async fn existing(netlink: &Netlink, field: &str, name: &str) -> Result<u32, TunnelError> {
    match netlink.link(name).await? {
        Some(link) => Ok(link.index),
        None => Err(TunnelError::Profile {
            field: field.into(),
            reason: format!("there is no interface `{name}`"),
            fix: "create it first, or correct the name".into(),
        }),
    }
}

/// What a kernel VXLAN link reports: its own counters, read from sysfs, and its peers as configured.
#[derive(Debug)]
struct VxlanStatus {
    interface: String,
}

impl StatusSource for VxlanStatus {
    fn peers(&self, profile: &Profile) -> Vec<PeerStatus> {
        let culvert_core::profile::Tunnel::Vxlan(config) = &profile.tunnel else { return vec![] };
        // The kernel keeps no counters per VTEP.
        config
            .peers
            .iter()
            .map(|p| {
                let endpoint = std::net::SocketAddr::new(p.vtep, config.port()).to_string();
                PeerStatus::new(Some(endpoint), p.subnets.clone(), (0, 0, 0, 0))
            })
            .collect()
    }

    fn counters(&self) -> Option<Counters> {
        Some(link_counters(&self.interface))
    }
}

/// A link's counters from /sys/class/net/<link>/statistics (the helper's network namespace's sysfs).
pub fn link_counters(interface: &str) -> Counters {
    let read = |name: &str| {
        std::fs::read_to_string(format!("/sys/class/net/{interface}/statistics/{name}"))
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let drops: std::collections::BTreeMap<String, u64> = [
        ("rx_dropped", read("rx_dropped")),
        ("tx_dropped", read("tx_dropped")),
        ("rx_errors", read("rx_errors")),
        ("tx_errors", read("tx_errors")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Counters {
        rx_bytes: read("rx_bytes"),
        tx_bytes: read("tx_bytes"),
        rx_packets: read("rx_packets"),
        tx_packets: read("tx_packets"),
        dropped: drops.values().sum(),
        drops,
        cookie_replies: 0,
    }
}
