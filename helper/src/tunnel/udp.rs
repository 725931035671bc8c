//! The `udp` kind: one raw IP packet per datagram, peers by endpoint.

use culvert_core::ipc::IpcError;
use culvert_core::profile::{Profile, UdpTunnel};

use super::Tunnel;
use super::userspace::{self, Plan};
use crate::dataplane::udp_core::UdpCore;
use crate::system::{Netlink, Records};

pub async fn up(
    netlink: &Netlink,
    records: &Records,
    profile: Profile,
    config: &UdpTunnel,
    owner_uid: u32,
) -> Result<Tunnel, IpcError> {
    let peers = config.peers.iter().map(|p| (p.endpoint, p.allowed_ips.as_slice()));
    let plan = Plan::by_endpoint(config.listen_port, peers, UdpCore::new(config), None)?;
    userspace::up(netlink, records, profile, owner_uid, plan).await
}
