//! Bringing up a tunnel whose packets the helper moves itself (udp, wireguard): the TUN device, its addresses
//! and routes, then the engine's tasks.

use super::TunnelError;
use std::io;
use std::sync::Arc;

use culvert_core::profile::Profile;
use ipnet::IpNet;

use super::changes::Changes;
use super::uapi::{self, UapiSource};
use super::{StatusSource, Tunnel, TunnelInfo};
use crate::dataplane::counters::TunnelCounters;
use crate::dataplane::live::Live;
use crate::dataplane::protocol::Protocol;
use crate::dataplane::sampler::Sampler;
use crate::dataplane::udp_io::{Socket, SocketReader, SocketWriter};
use crate::dataplane::wait::Stop;
use crate::dataplane::{engine, tun_io};
use crate::system::dns::{self, DnsConfig};
use crate::system::netlink::{Route, Rule};
use crate::system::{Netlink, Object, Record, Records};

/// The stack of an engine thread: its buffers are on the heap, and its deepest call (a WireGuard seal or open)
/// needs a few KiB; the default 2 MiB would only be address space, but a small stack is a bound.
const ENGINE_STACK: usize = 256 * 1024;

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
    /// The protocol core, replaced in place when the tunnel's peers change.
    pub proto: Arc<Live<P>>,
    pub routes: Vec<PlannedRoute>,
    /// Policy rules, added after the routes (a full tunnel's, as wg-quick adds them).
    pub rules: Vec<Rule>,
    /// Sysctls to set while the tunnel is up: (key under /proc/sys, value).
    pub sysctls: Vec<(String, String)>,
    /// DNS servers and search domains to use while the tunnel is up.
    pub dns: Option<DnsConfig>,
    /// A TAP device (Ethernet frames) instead of TUN, with its MAC if the profile sets one.
    pub tap: Option<Option<culvert_core::mac::MacAddr>>,
    /// WireGuard's userspace API: what `get` reads, and where `set` requests go.
    pub uapi: Option<(Arc<dyn UapiSource>, uapi::SetRequests)>,
}

impl<P> std::fmt::Debug for Plan<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("routes", &self.routes)
            .field("rules", &self.rules)
            .field("sysctls", &self.sysctls)
            .finish_non_exhaustive()
    }
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
    ) -> Result<Self, TunnelError> {
        let ipv6 = peers.clone().any(|(endpoint, _)| endpoint.is_ipv6());
        let socket = crate::dataplane::udp_io::bind(listen_port, ipv6, None)
            .map_err(|source| TunnelError::Bind { port: listen_port, source })?;
        let routes = peer_routes(peers.map(|(_, nets)| nets), crate::system::netlink::MAIN_TABLE);
        let proto = Arc::new(Live::new(proto));
        Ok(Self { socket, proto, routes, rules: vec![], sysctls: vec![], dns: None, tap, uapi: None })
    }
}

pub async fn up<P: Protocol + StatusSource + std::fmt::Debug>(
    netlink: &Netlink,
    records: &Records,
    profile: Profile,
    owner_uid: u32,
    plan: Plan<P>,
) -> Result<Tunnel, TunnelError> {
    let interface = profile.interface().to_owned();
    let mtu = profile.mtu();
    let listen_port = plan.socket.local_port().ok();
    let record = Record { name: profile.name.clone(), owner_uid, interface: interface.clone(), objects: vec![] };
    let mut changes = Changes::begin(netlink, records, record).map_err(TunnelError::Record)?;
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
    let sampler = Arc::new(Sampler::new(plan.tap.is_some(), crate::clock::now_ms));
    let name = profile.name.clone();
    let spawn = spawner(&name, proto.clone(), counters.clone(), sampler.clone(), device);
    let mut tasks = vec![];
    if let (Some(listener), Some((source, sets))) = (uapi_listener, uapi) {
        tasks.push(tokio::spawn(uapi::serve(listener, source, name.clone(), sets)));
    }
    let mut info = TunnelInfo::new(profile, owner_uid, listen_port, counters, proto);
    info.sampler = Some(sampler);
    let mut tunnel = Tunnel::new(info, record, tasks);
    let datapath = super::Datapath::start(spawn, socket, mtu);
    match datapath {
        Ok(datapath) => tunnel.datapath = Some(Box::new(datapath)),
        Err(e) => {
            let record = tunnel.record.clone();
            tunnel.stop().await;
            super::changes::undo(netlink, records, &record).await;
            return Err(TunnelError::Other { op: format!("starting the engine of {name}"), message: e.to_string() });
        }
    }
    Ok(tunnel)
}

/// What starts a userspace tunnel's engine on a socket: a thread per direction, and one for the protocol's timers.
pub fn spawner<P: Protocol>(
    name: &str,
    proto: Arc<Live<P>>,
    counters: Arc<TunnelCounters>,
    sampler: Arc<Sampler>,
    device: tun_io::Device,
) -> super::SpawnDatapath {
    let name = name.to_owned();
    Box::new(move |socket: Arc<Socket>, mtu: u16| {
        let stop = Arc::new(Stop::new()?);
        let mut threads = Vec::new();
        let started = (|| {
            let (p, c, s, dev) = (proto.clone(), counters.clone(), sampler.clone(), device.clone());
            let (reader, writer) =
                (tun_io::DeviceReader::new(dev, stop.clone()), SocketWriter::new(socket.clone(), stop.clone()));
            threads.push(spawn_thread(&name, "out", move || engine::outbound(p, c, s, reader, writer, mtu))?);
            let (p, c, s, dev) = (proto.clone(), counters.clone(), sampler.clone(), device.clone());
            let reader = SocketReader::new(socket.clone(), stop.clone());
            let (writer, replies) =
                (tun_io::DeviceWriter::new(dev, engine::TUN_BATCH), SocketWriter::new(socket.clone(), stop.clone()));
            threads.push(spawn_thread(&name, "in", move || engine::inbound(p, c, s, reader, writer, replies, mtu))?);
            if P::TIMERS {
                let (p, c, stop) = (proto.clone(), counters.clone(), stop.clone());
                let writer = SocketWriter::new(socket.clone(), stop.clone());
                threads.push(spawn_thread(&name, "timers", move || engine::timers(p, c, writer, mtu, &stop))?);
            }
            io::Result::Ok(())
        })();
        if let Err(e) = started {
            stop.stop();
            return Err(e);
        }
        Ok(super::EngineThreads { stop, threads })
    })
}

/// Creates and configures the device. Dropping the returned device (as an error return does) destroys it.
async fn configure<P: Send + Sync>(
    changes: &mut Changes<'_>,
    profile: &Profile,
    plan: &Plan<P>,
) -> Result<tun_io::Device, TunnelError> {
    let routes = &plan.routes;
    let interface = profile.interface();
    let mtu = profile.mtu();
    changes.will_create(Object::Link { name: interface.into(), kind: "tun".into() }).map_err(TunnelError::Record)?;
    let device = create_device(changes.netlink, interface, mtu, plan.tap.is_some())
        .map_err(|source| TunnelError::Device { interface: interface.into(), source })?;
    let netlink = changes.netlink;
    let link = netlink.link(interface).await?.ok_or_else(|| TunnelError::Other {
        op: format!("creating the TUN device {interface}"),
        message: "the device vanished right after it was created".into(),
    })?;
    super::keep_from_network_manager(netlink, interface, crate::system::network_manager::FIND_NEW_LINK_WITHIN).await;
    match plan.tap {
        Some(Some(mac)) => netlink.set_mac(link.index, mac.0).await?,
        // A TAP device is Ethernet, where link-local IPv6 is how neighbours find each other; a TUN device is not.
        Some(None) => {}
        None => netlink.no_link_local(link.index).await?,
    }
    for net in profile.addresses() {
        netlink.add_address(link.index, *net).await?;
    }
    netlink.set_up(link.index, mtu).await?;
    let routes: Vec<_> = routes
        .iter()
        .map(|r| {
            let route = Route { dst: r.dst, index: link.index, table: r.table, via: None, onlink: false };
            (route, interface.to_owned(), r.field.clone())
        })
        .collect();
    changes.add_routes(&routes, "remove that route, or narrow allowed_ips so the two do not collide").await?;
    for (key, value) in &plan.sysctls {
        changes.set_sysctl(key, value)?;
    }
    for rule in &plan.rules {
        changes.add_rule(rule).await?;
    }
    if let Some(config) = &plan.dns {
        let failed = TunnelError::Dns;
        let backup = changes.records().dns_backup(&profile.name);
        let change = dns::plan(dns::backend().await, interface, link.index, backup).map_err(failed)?;
        changes.will_create(Object::Dns(change.clone())).map_err(TunnelError::Record)?;
        dns::apply(&change, &profile.name, config).await.map_err(failed)?;
    }
    Ok(device)
}

fn create_device(netlink: &Netlink, interface: &str, mtu: u16, tap: bool) -> io::Result<tun_io::Device> {
    #[cfg(test)]
    if let Some(made) = netlink.fake_tun(interface, mtu) {
        return made.map(tun_io::Device::Silent);
    }
    #[cfg(not(test))]
    let _ = netlink;
    tun_io::create(interface, mtu, tap)
}

/// The userspace API socket for `wg show`, recorded so that a crash does not leave it behind.
fn uapi_listener(changes: &mut Changes<'_>, interface: &str) -> Result<tokio::net::UnixListener, TunnelError> {
    changes.will_create(Object::UnixSocket { path: uapi::socket_path(interface) }).map_err(TunnelError::Record)?;
    Ok(uapi::bind(interface)?)
}

/// Runs one loop of a tunnel's engine on a thread of its own, named for it (`top -H` shows them), and logs why
/// it ended if it failed.
fn spawn_thread(
    tunnel: &str,
    role: &'static str,
    f: impl FnOnce() -> io::Result<()> + Send + 'static,
) -> io::Result<std::thread::JoinHandle<()>> {
    let tunnel = tunnel.to_owned();
    // Linux keeps 15 bytes of a thread's name.
    let name: String = format!("{role} {tunnel}").chars().take(15).collect();
    std::thread::Builder::new().name(name).stack_size(ENGINE_STACK).spawn(move || {
        if let Err(e) = f() {
            tracing::error!("tunnel {tunnel}: the {role} data path stopped: {e}");
        }
    })
}
