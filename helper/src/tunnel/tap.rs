//! The `tap` kind: a TAP device, one Ethernet frame per datagram, peers by endpoint.

use culvert_core::ipc::IpcError;
use culvert_core::profile::{Profile, TapTunnel};

use super::Tunnel;
use super::userspace::{self, Plan};
use crate::dataplane::tap_core::TapCore;
use crate::system::{Netlink, Records};

pub async fn up(
    netlink: &Netlink,
    records: &Records,
    profile: Profile,
    config: &TapTunnel,
    owner_uid: u32,
) -> Result<Tunnel, IpcError> {
    let peers = config.peers.iter().map(|p| (p.endpoint, p.allowed_ips.as_slice()));
    let plan = Plan::by_endpoint(config.listen_port, peers, TapCore::new(config), Some(config.mac))?;
    userspace::up(netlink, records, profile, owner_uid, plan).await
}
