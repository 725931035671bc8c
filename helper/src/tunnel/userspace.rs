//! Bringing up a tunnel whose packets the helper moves itself (udp, wireguard): the TUN device, its addresses
//! and routes, then the engine's tasks.

use std::io;
use std::sync::Arc;

use culvert_core::ipc::IpcError;
use culvert_core::profile::Profile;
use ipnet::IpNet;
use tun_rs::AsyncDevice;

use super::changes::Changes;
use super::uapi::{self, UapiSource};
use super::{StatusSource, Tunnel, TunnelInfo};
use crate::dataplane::counters::TunnelCounters;
use crate::dataplane::protocol::Protocol;
use crate::dataplane::sampler::Sampler;
use crate::dataplane::udp_io::{Socket, SocketReader, SocketWriter};
use crate::dataplane::{engine, tun_io};
use crate::system::dns::{self, DnsConfig};
use crate::system::netlink::{Route, Rule};
use crate::system::{Netlink, NetlinkError, Object, Record, Records};

/// A route the tunnel needs, with the profile field it comes from (for errors).
#[derive(Debug, Clone)]
pub struct PlannedRoute {
    pub field: String,
    pub dst: IpNet,
    pub table: u32,
}

/// One route per allowed_ips entry of each peer, into `table`.
pub fn peer_routes<'a>(peers: impl Iterator<Item = &'a [IpNet]>, table: u32) -> Vec<PlannedRoute> {
    peers
        .enumerate()
        .flat_map(|(i, nets)| {
            nets.iter().enumerate().map(move |(j, dst)| PlannedRoute {
                field: format!("peer[{i}].allowed_ips[{j}]"),
                dst: *dst,
                table,
            })
        })
        .collect()
}

/// Everything `up` needs besides the profile: the bound socket, the protocol, the routes to add, and whether
/// to answer WireGuard's userspace API (for `wg show`).
pub struct Plan<P> {
    pub socket: Arc<Socket>,
    pub proto: Arc<P>,
    pub routes: Vec<PlannedRoute>,
    /// Policy rules, added after the routes (a full tunnel's, as wg-quick adds them).
    pub rules: Vec<Rule>,
    /// Sysctls to set while the tunnel is up: (key under /proc/sys, value).
    pub sysctls: Vec<(String, String)>,
    /// DNS servers and search domains to use while the tunnel is up.
    pub dns: Option<DnsConfig>,
    /// A TAP device (Ethernet frames) instead of TUN, with its MAC if the profile sets one.
    pub tap: Option<Option<culvert_core::mac::MacAddr>>,
    pub uapi: Option<Arc<dyn UapiSource>>,
}

impl<P> Plan<P> {
    /// The plan of a kind whose peers are known by their endpoints (udp, tap): one route per allowed_ips entry
    /// in the main table, nothing else. The socket is bound first: a port in use fails the request before
    /// anything exists to undo.
    pub fn by_endpoint<'a>(
        listen_port: u16,
        peers: impl Iterator<Item = (std::net::SocketAddr, &'a [IpNet])> + Clone,
        proto: P,
        tap: Option<Option<culvert_core::mac::MacAddr>>,
    ) -> Result<Self, IpcError> {
        let ipv6 = peers.clone().any(|(endpoint, _)| endpoint.is_ipv6());
        let socket =
            crate::dataplane::udp_io::bind(listen_port, ipv6, None).map_err(|e| bind_error(listen_port, &e))?;
        let routes = peer_routes(peers.map(|(_, nets)| nets), crate::system::netlink::MAIN_TABLE);
        Ok(Self { socket, proto: Arc::new(proto), routes, rules: vec![], sysctls: vec![], dns: None, tap, uapi: None })
    }
}

pub async fn up<P: Protocol + StatusSource>(
    netlink: &Netlink,
    records: &Records,
    profile: Profile,
    owner_uid: u32,
    plan: Plan<P>,
) -> Result<Tunnel, IpcError> {
    let interface = profile.interface().to_owned();
    let mtu = profile.mtu();
    let listen_port = plan.socket.local_port().ok();
    let record = Record { name: profile.name.clone(), owner_uid, interface: interface.clone(), objects: vec![] };
    let mut changes = Changes::begin(netlink, records, record).map_err(record_error)?;
    let configured = match configure(&mut changes, &profile, &plan).await {
        Ok(device) => match plan.uapi.is_some().then(|| uapi_listener(&mut changes, profile.interface())).transpose() {
            Ok(listener) => Ok((device, listener)),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let (device, uapi_listener) = match configured {
        Ok(parts) => parts,
        Err(e) => {
            changes.roll_back().await;
            return Err(e);
        }
    };
    let record = changes.commit();

    let Plan { socket, proto, uapi, .. } = plan;
    let counters = Arc::new(TunnelCounters::default());
    let sampler = Arc::new(Sampler::new(plan.tap.is_some()));
    let name = profile.name.clone();
    let mut tasks = vec![
        spawn_logged(
            &name,
            "outbound",
            engine::outbound(
                proto.clone(),
                counters.clone(),
                sampler.clone(),
                tun_io::DeviceReader::new(device.clone()),
                SocketWriter(socket.clone()),
                mtu,
            ),
        ),
        spawn_logged(
            &name,
            "inbound",
            engine::inbound(
                proto.clone(),
                counters.clone(),
                sampler.clone(),
                SocketReader(socket.clone()),
                tun_io::DeviceWriter::new(device),
                SocketWriter(socket.clone()),
                mtu,
            ),
        ),
    ];
    if let (Some(listener), Some(source)) = (uapi_listener, uapi) {
        tasks.push(tokio::spawn(uapi::serve(listener, source)));
    }
    if P::TIMERS {
        let timers = engine::timers(proto.clone(), counters.clone(), SocketWriter(socket), mtu);
        tasks.push(tokio::spawn(timers));
    }
    let mut info = TunnelInfo::new(profile, owner_uid, listen_port, counters, proto);
    info.sampler = Some(sampler);
    Ok(Tunnel::new(info, record, tasks))
}

/// Creates and configures the device. Dropping the returned device (as an error return does) destroys it.
async fn configure<P: Send + Sync>(
    changes: &mut Changes<'_>,
    profile: &Profile,
    plan: &Plan<P>,
) -> Result<Arc<AsyncDevice>, IpcError> {
    let routes = &plan.routes;
    let interface = profile.interface();
    let mtu = profile.mtu();
    changes.will_create(Object::Link { name: interface.into(), kind: "tun".into() }).map_err(record_error)?;
    let device = tun_io::create(interface, mtu, plan.tap.is_some()).map_err(|e| IpcError::System {
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
    match plan.tap {
        Some(Some(mac)) => netlink.set_mac(link.index, mac.0).await.map_err(system)?,
        // A TAP device is Ethernet, where link-local IPv6 is how neighbours find each other; a TUN device is not.
        Some(None) => {}
        None => netlink.no_link_local(link.index).await.map_err(system)?,
    }
    for net in profile.addresses() {
        netlink.add_address(link.index, *net).await.map_err(system)?;
    }
    netlink.set_up(link.index, mtu).await.map_err(system)?;
    for r in routes {
        let route = Route { dst: r.dst, index: link.index, table: r.table, via: None, onlink: false };
        changes
            .add_route(
                &route,
                interface,
                &r.field,
                "remove that route, or narrow allowed_ips so the two do not collide",
            )
            .await?;
    }
    for (key, value) in &plan.sysctls {
        changes.set_sysctl(key, value)?;
    }
    for rule in &plan.rules {
        changes.add_rule(rule).await?;
    }
    if let Some(config) = &plan.dns {
        let failed = |message: String| IpcError::System { op: "setting DNS".into(), message };
        let backup = changes.records().dns_backup(&profile.name);
        let change = dns::plan(dns::backend().await, interface, link.index, backup).map_err(failed)?;
        changes.will_create(Object::Dns(change.clone())).map_err(record_error)?;
        dns::apply(&change, &profile.name, config).await.map_err(failed)?;
    }
    Ok(device)
}

/// The userspace API socket for `wg show`, recorded so that a crash does not leave it behind.
fn uapi_listener(changes: &mut Changes<'_>, interface: &str) -> Result<tokio::net::UnixListener, IpcError> {
    changes.will_create(Object::UnixSocket { path: uapi::socket_path(interface) }).map_err(record_error)?;
    uapi::bind(interface).map_err(|e| IpcError::System {
        op: format!("opening the WireGuard API socket for {interface}"),
        message: e.to_string(),
    })
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

/// The error for a socket that could not be bound to `port`.
pub fn bind_error(port: u16, e: &io::Error) -> IpcError {
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
