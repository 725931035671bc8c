//! The `udp` kind: one raw IP packet per datagram, peers by endpoint.

use super::TunnelError;
use culvert_core::profile::{Profile, UdpTunnel};

use super::userspace::{self, Plan};
use super::{StatusSource, Tunnel};
use crate::dataplane::udp_core::UdpCore;
use crate::system::{Netlink, Records};

pub async fn up(
    netlink: &Netlink,
    records: &Records,
    profile: Profile,
    config: &UdpTunnel,
    owner_uid: u32,
) -> Result<Tunnel, TunnelError> {
    let peers = config.peers.iter().map(|p| (p.endpoint, p.allowed_ips.as_slice()));
    let plan = Plan::by_endpoint(config.listen_port, peers, UdpCore::new(config), None)?;
    let live = plan.proto.clone();
    let mut tunnel = userspace::up(netlink, records, profile, owner_uid, plan).await?;
    tunnel.engine = super::Engine::Udp(live);
    Ok(tunnel)
}

/// A udp or tap tunnel's status: its peers, by endpoint.
impl StatusSource for UdpCore {
    fn peers(&self, _profile: &Profile) -> Vec<culvert_core::stats::PeerStatus> {
        self.peers.iter().map(crate::dataplane::udp_core::Peer::status).collect()
    }
}
