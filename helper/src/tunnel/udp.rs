//! Bringing up a `udp` tunnel: socket, TUN device, addresses, routes, then the two engine tasks.

use std::io;
use std::sync::Arc;

use culvert_core::ipc::IpcError;
use culvert_core::profile::{Profile, Tunnel as TunnelConfig, UdpTunnel};
use tun_rs::AsyncDevice;

use super::changes::Changes;
use super::{Tunnel, TunnelInfo, unix_now};
use crate::dataplane::counters::TunnelCounters;
use crate::dataplane::udp_core::UdpCore;
use crate::dataplane::{engine, tun_io, udp_io};
use crate::system::netlink::{MAIN_TABLE, Route};
use crate::system::{Netlink, NetlinkError, Object, Record, Records};

pub async fn up(netlink: &Netlink, records: &Records, profile: Profile, owner_uid: u32) -> Result<Tunnel, IpcError> {
    let TunnelConfig::Udp(config) = &profile.tunnel;
    let interface = profile.interface().to_owned();
    let mtu = profile.mtu();
    // The socket first: a port in use fails the request before anything exists to undo.
    let ipv6 = config.peers.iter().any(|p| p.endpoint.is_ipv6());
    let socket = udp_io::bind(config.listen_port, ipv6).map_err(|e| bind_error(config.listen_port, &e))?;
    let listen_port = socket.local_port().ok();

    let record = Record { name: profile.name.clone(), owner_uid, interface: interface.clone(), objects: vec![] };
    let mut changes = Changes::begin(netlink, records, record).map_err(record_error)?;
    let device = match configure(&mut changes, config, &interface, mtu).await {
        Ok(device) => device,
        Err(e) => {
            changes.roll_back().await;
            return Err(e);
        }
    };
    let record = changes.commit();

    let core = Arc::new(UdpCore::new(config));
    let counters = Arc::new(TunnelCounters::default());
    let name = profile.name.clone();
    let tasks = vec![
        spawn_logged(
            &name,
            "outbound",
            engine::outbound(
                core.clone(),
                counters.clone(),
                tun_io::DeviceReader::new(device.clone()),
                udp_io::SocketWriter(socket.clone()),
                mtu,
            ),
        ),
        spawn_logged(
            &name,
            "inbound",
            engine::inbound(
                core.clone(),
                counters.clone(),
                udp_io::SocketReader(socket),
                tun_io::DeviceWriter::new(device),
                mtu,
            ),
        ),
    ];
    let info =
        TunnelInfo { profile, owner_uid, up_since: unix_now(), listen_port, counters, core, down: Default::default() };
    Ok(Tunnel { info: Arc::new(info), record, tasks })
}

/// Creates and configures the device. Dropping the returned device (as an error return does) destroys it.
async fn configure(
    changes: &mut Changes<'_>,
    config: &UdpTunnel,
    interface: &str,
    mtu: u16,
) -> Result<Arc<AsyncDevice>, IpcError> {
    changes.will_create(Object::Link { name: interface.into(), kind: "tun".into() }).map_err(record_error)?;
    let device = tun_io::create(interface, mtu).map_err(|e| IpcError::System {
        op: format!("creating the TUN device {interface}"),
        message: match e.raw_os_error() {
            Some(libc::EPERM) => "permission denied: culvertd must run as root or with CAP_NET_ADMIN".into(),
            _ => e.to_string(),
        },
    })?;
    let netlink = changes.netlink;
    let link = netlink.link(interface).await.map_err(system)?.ok_or_else(|| IpcError::System {
        op: format!("creating the TUN device {interface}"),
        message: "the device vanished right after it was created".into(),
    })?;
    for net in &config.address {
        netlink.add_address(link.index, *net).await.map_err(system)?;
    }
    netlink.set_up(link.index, mtu).await.map_err(system)?;
    for (i, peer) in config.peers.iter().enumerate() {
        for (j, dst) in peer.allowed_ips.iter().enumerate() {
            changes
                .will_create(Object::Route { dst: *dst, dev: interface.into(), table: MAIN_TABLE })
                .map_err(record_error)?;
            match netlink.add_route(&Route { dst: *dst, index: link.index, table: MAIN_TABLE }).await {
                Ok(true) => {}
                Ok(false) => changes.not_created().map_err(record_error)?,
                Err(e) if e.errno == Some(libc::EEXIST) => {
                    return Err(IpcError::InvalidProfile {
                        field: format!("peer[{i}].allowed_ips[{j}]"),
                        reason: format!("a route to {dst} through another interface already exists"),
                        fix: "remove that route, or narrow allowed_ips so the two do not collide".into(),
                    });
                }
                Err(e) => return Err(system(e)),
            }
        }
    }
    Ok(device)
}

fn spawn_logged(
    tunnel: &str,
    direction: &'static str,
    f: impl Future<Output = io::Result<()>> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let tunnel = tunnel.to_owned();
    tokio::spawn(async move {
        if let Err(e) = f.await {
            tracing::error!("tunnel {tunnel}: the {direction} data path stopped: {e}");
        }
    })
}

fn bind_error(port: u16, e: &io::Error) -> IpcError {
    match e.kind() {
        io::ErrorKind::AddrInUse => IpcError::InvalidProfile {
            field: "listen_port".into(),
            reason: format!("UDP port {port} is already in use"),
            fix: "choose another listen_port, or stop the program that uses it".into(),
        },
        _ => IpcError::System { op: format!("binding UDP port {port}"), message: e.to_string() },
    }
}

pub fn system(e: NetlinkError) -> IpcError {
    IpcError::System { op: e.op, message: e.message }
}

pub fn record_error(e: io::Error) -> IpcError {
    IpcError::System { op: "writing the tunnel's record in the state directory".into(), message: e.to_string() }
}
