//! The `hostgw` kind: routes to each peer's subnets via the peer's host address, as flannel's host-gw backend
//! makes them. No link of its own and no encapsulation: the hosts must share a layer-2 segment, so a next hop
//! that is not on a connected subnet is refused.

use super::TunnelError;
use std::sync::Arc;

use culvert_core::profile::{HostgwTunnel, Profile};
use culvert_core::stats::{Counters, PeerStatus};

use super::changes::Changes;
use super::{StatusSource, Tunnel, TunnelInfo};
use crate::system::netlink::{MAIN_TABLE, Route};
use crate::system::{Netlink, Record, Records};

pub async fn up(
    netlink: &Netlink,
    records: &Records,
    profile: Profile,
    config: &HostgwTunnel,
    owner_uid: u32,
) -> Result<Tunnel, TunnelError> {
    let hops = hops(netlink, config).await?;
    for (i, name) in config.forward.iter().enumerate() {
        if netlink.link(name).await?.is_none() {
            return Err(TunnelError::Profile {
                field: format!("forward[{i}]"),
                reason: format!("there is no interface `{name}`"),
                fix: "create it first, or correct the name".into(),
            });
        }
    }
    let interface = hops.first().map(|(_, n)| n.clone()).unwrap_or_default();
    let record = Record { name: profile.name.clone(), owner_uid, interface, objects: vec![] };
    let mut changes = Changes::begin(netlink, records, record).map_err(TunnelError::Record)?;
    if let Err(e) = configure(&mut changes, config, &hops).await {
        changes.roll_back().await;
        return Err(e);
    }
    let record = changes.commit();
    let mut interfaces: Vec<String> = hops.iter().map(|(_, n)| n.clone()).collect();
    interfaces.dedup();
    let source = Arc::new(HostgwStatus { interfaces: interfaces.join(",") });
    let info = TunnelInfo::new(profile, owner_uid, None, Arc::default(), source);
    Ok(Tunnel::new(info, record, vec![]))
}

/// Where each peer's next hop is: the link (index and name) whose connected subnet holds it.
pub(super) async fn hops(netlink: &Netlink, config: &HostgwTunnel) -> Result<Vec<(u32, String)>, TunnelError> {
    let addresses = netlink.addresses().await?;
    let mut hops = Vec::with_capacity(config.peers.len());
    for (i, peer) in config.peers.iter().enumerate() {
        let Some(on) =
            addresses.iter().find(|a| a.net.prefix_len() < a.net.max_prefix_len() && a.net.contains(&peer.via))
        else {
            return Err(TunnelError::Profile {
                field: format!("peer[{i}].via"),
                reason: format!(
                    "{} is not on a subnet this host is connected to, and host-gw needs the hosts to share a layer-2 segment",
                    peer.via
                ),
                fix: "give the peer's address on the segment you share, or use kind vxlan or wireguard between \
                      hosts on different segments"
                    .into(),
            });
        };
        let name = link_name(netlink, on.index).await?;
        hops.push((on.index, name));
    }
    Ok(hops)
}

/// Each peer's subnets, routed via its host on the link that reaches it, with the field each comes from.
pub(super) fn peer_routes(config: &HostgwTunnel, hops: &[(u32, String)]) -> Vec<(Route, String, String)> {
    let mut routes = Vec::new();
    for (i, (peer, (index, dev))) in config.peers.iter().zip(hops).enumerate() {
        for (j, dst) in peer.subnets.iter().enumerate() {
            let route = Route { dst: *dst, index: *index, table: MAIN_TABLE, via: Some(peer.via), onlink: false };
            routes.push((route, dev.clone(), format!("peer[{i}].subnets[{j}]")));
        }
    }
    routes
}

async fn configure(
    changes: &mut Changes<'_>,
    config: &HostgwTunnel,
    hops: &[(u32, String)],
) -> Result<(), TunnelError> {
    let routes = peer_routes(config, hops);
    changes.add_routes(&routes, "remove that route, or correct the peer's subnets").await?;
    let v6 = config.peers.iter().flat_map(|p| &p.subnets).any(|n| n.addr().is_ipv6());
    let mut names: Vec<&str> =
        hops.iter().map(|(_, n)| n.as_str()).chain(config.forward.iter().map(String::as_str)).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        changes.set_sysctl(&format!("net/ipv4/conf/{name}/forwarding"), "1")?;
        if v6 {
            changes.set_sysctl(&format!("net/ipv6/conf/{name}/forwarding"), "1")?;
        }
    }
    Ok(())
}

async fn link_name(netlink: &Netlink, index: u32) -> Result<String, TunnelError> {
    netlink.link_name(index).await?.ok_or_else(|| TunnelError::Other {
        op: "looking up the interface of a next hop".into(),
        message: format!("link {index} vanished"),
    })
}

/// host-gw has no link of its own, so no counters of its own: the routes share their interfaces' counters.
#[derive(Debug)]
struct HostgwStatus {
    /// The interfaces that reached the next hops when the tunnel came up.
    interfaces: String,
}

impl StatusSource for HostgwStatus {
    fn interface(&self) -> Option<String> {
        Some(self.interfaces.clone())
    }

    fn peers(&self, profile: &Profile) -> Vec<PeerStatus> {
        let culvert_core::profile::Tunnel::Hostgw(config) = &profile.tunnel else { return vec![] };
        config.peers.iter().map(|p| PeerStatus::new(Some(p.via.to_string()), p.subnets.clone(), (0, 0, 0, 0))).collect()
    }

    fn counters(&self) -> Option<Counters> {
        Some(Counters::default())
    }
}
