//! What only the host can tell about a profile before its tunnel is made: names and addresses in use here.

use super::TunnelError;
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use culvert_core::profile::{Profile, Tunnel as Config};

use super::resolve::Resolved;
use crate::system::Netlink;

/// Checks what only the host can tell about a profile: that its interface name is no existing link's (Culvert
/// never takes one over), that no peer's endpoint is the tunnel's own socket (one of this host's addresses with
/// the tunnel's listen port: it would send to itself), that no host-gw next hop is this host, and that no
/// WireGuard tunnel takes culvertd's own mark.
/// `up`: whether the tunnel is up already (a live change), so that its link is its own.
pub async fn check(netlink: &Netlink, profile: &Profile, resolved: &Resolved, up: bool) -> Result<(), TunnelError> {
    let interface = profile.interface();
    if !up && profile.has_link() && netlink.link(interface).await?.is_some() {
        return Err(TunnelError::Profile {
            field: "interface".into(),
            reason: format!("a link named `{interface}` already exists and Culvert did not create it"),
            fix: "set `interface` to a name no link uses".into(),
        });
    }
    let local: HashSet<IpAddr> = netlink.addresses().await?.into_iter().map(|a| a.net.addr()).collect();
    let own_socket = |field: String, ep: SocketAddr, port: Option<u16>| {
        if Some(ep.port()) == port && local.contains(&ep.ip().to_canonical()) {
            return Err(TunnelError::Profile {
                field,
                reason: format!(
                    "{ep} is this host's own address and the tunnel's listen port: the tunnel would send to itself"
                ),
                fix: "set the peer's address, or another listen_port".into(),
            });
        }
        Ok(())
    };
    match &profile.tunnel {
        Config::Udp(u) => u
            .peers
            .iter()
            .enumerate()
            .try_for_each(|(i, p)| own_socket(format!("peer[{i}].endpoint"), p.endpoint, Some(u.listen_port))),
        Config::Tap(t) => t
            .peers
            .iter()
            .enumerate()
            .try_for_each(|(i, p)| own_socket(format!("peer[{i}].endpoint"), p.endpoint, Some(t.listen_port))),
        Config::Wireguard(w) if w.fwmark == Some(crate::system::CONTROL_MARK) => Err(TunnelError::Profile {
            field: "fwmark".into(),
            reason: format!(
                "{:#x} is the mark of culvertd's own lookups, which the kill switch and full tunnels' rules let past                  every tunnel",
                crate::system::CONTROL_MARK
            ),
            fix: "choose another fwmark, or leave it out".into(),
        }),
        Config::Wireguard(w) => resolved
            .iter()
            .enumerate()
            .filter_map(|(i, ep)| ep.map(|ep| (i, ep)))
            .try_for_each(|(i, ep)| own_socket(format!("peer[{i}].endpoint"), ep, w.listen_port)),
        Config::Hostgw(h) => match h.peers.iter().enumerate().find(|(_, p)| local.contains(&p.via)) {
            Some((i, p)) => Err(TunnelError::Profile {
                field: format!("peer[{i}].via"),
                reason: format!("{} is an address of this host, not of a peer", p.via),
                fix: "set `via` to the peer host's address on the segment you share".into(),
            }),
            None => Ok(()),
        },
        Config::Vxlan(_) | Config::Overlay(_) => Ok(()),
    }
}
