//! The `tap` kind: a TAP device, one Ethernet frame per datagram, peers by endpoint.

use super::TunnelError;
use culvert_core::profile::{Profile, TapTunnel};

use super::userspace::{self, Plan};
use super::{StatusSource, Tunnel};
use crate::dataplane::tap_core::TapCore;
use crate::system::{Netlink, Records};

pub async fn up(
    netlink: &Netlink,
    records: &Records,
    profile: Profile,
    config: &TapTunnel,
    owner_uid: u32,
) -> Result<Tunnel, TunnelError> {
    let peers = config.peers.iter().map(|p| (p.endpoint, p.allowed_ips.as_slice()));
    let plan = Plan::by_endpoint(config.listen_port, peers, TapCore::new(config), Some(config.mac))?;
    let live = plan.proto.clone();
    let mut tunnel = userspace::up(netlink, records, profile, owner_uid, plan).await?;
    tunnel.engine = super::Engine::Tap(live);
    Ok(tunnel)
}

/// A udp or tap tunnel's status: its peers, by endpoint.
impl StatusSource for TapCore {
    fn peers(&self, _profile: &Profile) -> Vec<culvert_core::stats::PeerStatus> {
        self.peers.iter().map(crate::dataplane::udp_core::Peer::status).collect()
    }
}
