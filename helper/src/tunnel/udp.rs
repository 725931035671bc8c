//! The `udp` kind: one raw IP packet per datagram, peers by endpoint.

use std::sync::Arc;

use culvert_core::ipc::IpcError;
use culvert_core::profile::{Profile, UdpTunnel};

use super::Tunnel;
use super::userspace::{self, Plan, bind_error};
use crate::dataplane::udp_core::UdpCore;
use crate::dataplane::udp_io;
use crate::system::netlink::MAIN_TABLE;
use crate::system::{Netlink, Records};

pub async fn up(
    netlink: &Netlink,
    records: &Records,
    profile: Profile,
    config: &UdpTunnel,
    owner_uid: u32,
) -> Result<Tunnel, IpcError> {
    // The socket first: a port in use fails the request before anything exists to undo.
    let ipv6 = config.peers.iter().any(|p| p.endpoint.is_ipv6());
    let socket = udp_io::bind(config.listen_port, ipv6, None).map_err(|e| bind_error(config.listen_port, &e))?;
    let routes = userspace::peer_routes(config.peers.iter().map(|p| p.allowed_ips.as_slice()), MAIN_TABLE);
    let plan = Plan {
        socket,
        proto: Arc::new(UdpCore::new(config)),
        routes,
        rules: vec![],
        sysctls: vec![],
        dns: None,
        tap: None,
        uapi: None,
    };
    userspace::up(netlink, records, profile, owner_uid, plan).await
}
