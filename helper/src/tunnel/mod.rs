//! A tunnel that is up: what it is made of and how it reports itself.

pub mod apply;
pub mod changes;
pub mod error;
pub mod host_check;
pub mod hostgw;
pub mod plan;
pub mod resolve;
pub mod tap;
#[cfg(test)]
mod tests;
pub mod uapi;
pub mod udp;
pub mod userspace;
pub mod vxlan;
pub mod wireguard;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use culvert_core::profile::{Kind, Profile, Tunnel as Config};
use culvert_core::stats::{PeerStatus, TunnelState, TunnelStatus};
use tokio::task::JoinHandle;

use crate::dataplane::counters::TunnelCounters;
use crate::dataplane::live::Live;
use crate::dataplane::tap_core::TapCore;
use crate::dataplane::udp_core::UdpCore;
use crate::dataplane::udp_io::Socket;
use crate::dataplane::wg_core::WgCore;
use crate::system::resolver::Resolver;
use crate::system::{Netlink, Record, Records};
pub use error::TunnelError;
use resolve::Resolved;

/// What the helper lends the tunnels it brings up: where WireGuard's userspace API sends its `set` requests, and
/// the resolver that looks endpoints' host names up again while a tunnel runs.
#[derive(Debug, Clone)]
pub struct Services {
    pub sets: uapi::SetRequests,
    pub resolver: Resolver,
}

/// Brings up the tunnel `profile` describes for `owner_uid`, its host names resolved to `resolved`. On an error
/// nothing it made is left.
pub async fn up(
    netlink: &Netlink,
    records: &Records,
    profile: Profile,
    resolved: &Resolved,
    owner_uid: u32,
    services: &Services,
) -> Result<Tunnel, TunnelError> {
    match profile.tunnel.clone() {
        Config::Udp(c) => udp::up(netlink, records, profile, &c, owner_uid).await,
        Config::Wireguard(c) => wireguard::up(netlink, records, profile, &c, resolved, owner_uid, services).await,
        Config::Vxlan(c) => vxlan::up(netlink, records, profile, &c, owner_uid).await,
        Config::Tap(c) => tap::up(netlink, records, profile, &c, owner_uid).await,
        Config::Hostgw(c) => hostgw::up(netlink, records, profile, &c, owner_uid).await,
        // The overlay layer makes an overlay's vxlan or host-gw tunnel and brings that up instead.
        Config::Overlay(_) => Err(TunnelError::Other {
            op: "bringing up an overlay".into(),
            message: "an overlay is brought up through its network's backend tunnel".into(),
        }),
    }
}

/// Has NetworkManager, where it runs, leave a tunnel's link alone (one just created, before it gets an address,
/// or one that was there before NetworkManager started), waiting up to `within` for NetworkManager to list it. A
/// failure costs the tunnel nothing but NetworkManager's good manners, so it is logged.
pub async fn keep_from_network_manager(netlink: &Netlink, interface: &str, within: std::time::Duration) {
    use crate::system::network_manager::{self, Outcome};
    if netlink.is_fake() {
        return;
    }
    match network_manager::leave_alone(interface, within).await {
        Ok(Outcome::Unmanaged) => tracing::debug!("NetworkManager leaves {interface} unmanaged"),
        Ok(Outcome::NotRunning) => {}
        Err(e) => tracing::warn!("{e}; it may configure {interface} on its own"),
    }
}

/// Where a tunnel's peers come from when a registry (an overlay's etcd) keeps them: it shows itself in the
/// tunnel's status, and the tunnel leaves it when it goes down.
pub trait RegistrySource: Send + Sync + std::fmt::Debug + 'static {
    fn status(&self) -> culvert_core::stats::OverlayStatus;
    /// Gives this host's place back (an overlay revokes its lease), so that the others drop it at once.
    fn leave(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
}

/// A protocol core that is replaced in place reports what the current one says.
impl<P: StatusSource> StatusSource for crate::dataplane::live::Live<P> {
    fn peers(&self, profile: &Profile) -> Vec<PeerStatus> {
        self.load().peers(profile)
    }

    fn state(&self, up_since: u64) -> (TunnelState, Option<String>) {
        self.load().state(up_since)
    }

    fn interface(&self) -> Option<String> {
        self.load().interface()
    }

    fn counters(&self) -> Option<culvert_core::stats::Counters> {
        self.load().counters()
    }
}

/// What a running protocol tells about itself for status reports.
pub trait StatusSource: Send + Sync + std::fmt::Debug + 'static {
    /// The peers, for the tunnel at `profile` (the kernel kinds report what the profile configures).
    fn peers(&self, profile: &Profile) -> Vec<PeerStatus>;
    /// The tunnel's state, and why when it is not well; `up_since` is when the tunnel came up (Unix seconds).
    fn state(&self, _up_since: u64) -> (TunnelState, Option<String>) {
        (TunnelState::Up, None)
    }
    /// The interface to report, for kinds without a link of their own; `None`: the profile's.
    fn interface(&self) -> Option<String> {
        None
    }
    /// The tunnel's counters, for kinds whose packets the kernel moves; `None`: the engine's.
    fn counters(&self) -> Option<culvert_core::stats::Counters> {
        None
    }
}

/// What status snapshots and subscriptions read; shared with them, never locked by the data plane.
#[derive(Debug)]
pub struct TunnelInfo {
    /// The profile the tunnel is at now: `apply` replaces it once the tunnel is there.
    profile: RwLock<Arc<Profile>>,
    /// The tunnel's name, which no apply changes.
    name: String,
    pub owner_uid: u32,
    pub up_since: u64,
    /// The port the tunnel's socket has (a live change may move it).
    listen_port: std::sync::Mutex<Option<u16>>,
    pub counters: Arc<TunnelCounters>,
    pub source: Arc<dyn StatusSource>,
    /// Packet samples, for the kinds whose packets pass through culvertd.
    pub sampler: Option<Arc<crate::dataplane::sampler::Sampler>>,
    /// Set for an overlay's tunnel, whose peers its registry keeps.
    registry: std::sync::OnceLock<Arc<dyn RegistrySource>>,
    down: AtomicBool,
    /// A system tunnel (`culvert enable`), as control keeps it: shown in status.
    system: AtomicBool,
    /// Told when the host's network changed under the tunnel: its host names are looked up again at once.
    pub network_changed: tokio::sync::Notify,
}

impl TunnelInfo {
    pub fn new(
        profile: Profile,
        owner_uid: u32,
        listen_port: Option<u16>,
        counters: Arc<TunnelCounters>,
        source: Arc<dyn StatusSource>,
    ) -> Self {
        Self {
            name: profile.name.clone(),
            profile: RwLock::new(Arc::new(profile)),
            owner_uid,
            up_since: unix_now(),
            listen_port: std::sync::Mutex::new(listen_port),
            counters,
            source,
            sampler: None,
            registry: std::sync::OnceLock::new(),
            down: AtomicBool::new(false),
            system: AtomicBool::new(false),
            network_changed: tokio::sync::Notify::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_system(&self) -> bool {
        self.system.load(Ordering::Relaxed)
    }

    /// Marks the tunnel as a system tunnel, or not, for status.
    pub fn set_system(&self, system: bool) {
        self.system.store(system, Ordering::Relaxed);
    }

    pub fn listen_port(&self) -> Option<u16> {
        *self.listen_port.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn set_listen_port(&self, port: Option<u16>) {
        *self.listen_port.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = port;
    }

    pub fn profile(&self) -> Arc<Profile> {
        self.profile.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The tunnel is at `profile` now.
    pub fn set_profile(&self, profile: Profile) {
        *self.profile.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(profile);
    }

    /// Makes the tunnel an overlay's, whose peers `registry` keeps; once.
    pub fn set_registry(&self, registry: Arc<dyn RegistrySource>) {
        let _ = self.registry.set(registry);
    }

    pub fn registry(&self) -> Option<&Arc<dyn RegistrySource>> {
        self.registry.get()
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    pub fn status(&self) -> TunnelStatus {
        let (state, reason) = self.source.state(self.up_since);
        let profile = self.profile();
        let overlay = self.registry().map(|r| Box::new(r.status()));
        TunnelStatus {
            name: self.name.clone(),
            kind: if overlay.is_some() { Kind::Overlay } else { profile.kind() },
            state,
            reason,
            interface: self.source.interface().unwrap_or_else(|| profile.interface().to_owned()),
            listen_port: self.listen_port(),
            owner_uid: self.owner_uid,
            system: self.system.load(Ordering::Relaxed),
            kill_switch: profile.kill_switch(),
            up_since: self.up_since,
            counters: self.source.counters().unwrap_or_else(|| self.engine_counters()),
            peers: self.source.peers(&profile),
            overlay,
        }
    }
}

impl TunnelInfo {
    /// The engine's counters, plus what the kernel dropped before the engine could read it: a TUN or TAP
    /// device's `tx_dropped` counts packets the host sent into the tunnel while the device's queue was full.
    fn engine_counters(&self) -> culvert_core::stats::Counters {
        let mut c = self.counters.snapshot();
        let path = format!("/sys/class/net/{}/statistics/tx_dropped", self.profile().interface());
        let queue_full = std::fs::read_to_string(path).ok().and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0);
        c.drops.insert("device_queue_full".into(), queue_full);
        c.dropped += queue_full;
        c
    }
}

/// The protocol core of a userspace tunnel, to replace when its peers change.
#[derive(Debug, Clone, Default)]
pub enum Engine {
    /// The kernel moves the tunnel's packets (vxlan, hostgw).
    #[default]
    Kernel,
    Udp(Arc<Live<UdpCore>>),
    Tap(Arc<Live<TapCore>>),
    Wireguard(Arc<Live<WgCore>>),
}

/// A userspace tunnel's engine: a thread per direction (and one for timers), and what stops them.
#[derive(Debug)]
pub struct EngineThreads {
    pub stop: Arc<crate::dataplane::wait::Stop>,
    pub threads: Vec<std::thread::JoinHandle<()>>,
}

impl EngineThreads {
    /// Stops the threads and waits until they have ended, and with them their handles on the device and the
    /// socket. Blocks: for a blocking thread.
    fn join(self) {
        self.stop.stop();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Starts a userspace tunnel's engine on a socket, for packets of up to an MTU.
pub type SpawnDatapath = Box<dyn Fn(Arc<Socket>, u16) -> std::io::Result<EngineThreads> + Send + Sync>;

/// A userspace tunnel's engine, restarted on another socket or for another MTU (its buffers are sized for it)
/// by a live change; the device and the protocol core stay.
pub struct Datapath {
    /// Holds the device; dropped when the tunnel stops, so that the device goes with the engine.
    spawn: Option<SpawnDatapath>,
    pub socket: Arc<Socket>,
    pub mtu: u16,
    engine: Option<EngineThreads>,
    /// Engines a restart replaced: told to stop, and waited for when the tunnel stops, so that no old thread
    /// holds the device after `down`.
    retired: Vec<EngineThreads>,
}

impl std::fmt::Debug for Datapath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datapath").field("socket", &self.socket).field("mtu", &self.mtu).finish_non_exhaustive()
    }
}

impl Datapath {
    pub fn start(spawn: SpawnDatapath, socket: Arc<Socket>, mtu: u16) -> std::io::Result<Self> {
        let engine = spawn(socket.clone(), mtu)?;
        Ok(Self { spawn: Some(spawn), socket, mtu, engine: Some(engine), retired: Vec::new() })
    }

    /// Stops the engine and starts it again on `socket` for `mtu`. Packets between the two are dropped.
    pub fn restart(&mut self, socket: Arc<Socket>, mtu: u16) {
        self.retired.retain(|e| e.threads.iter().any(|t| !t.is_finished()));
        if let Some(old) = self.engine.take() {
            old.stop.stop();
            self.retired.push(old);
        }
        self.socket = socket;
        self.mtu = mtu;
        if let Some(spawn) = &self.spawn {
            match spawn(self.socket.clone(), mtu) {
                Ok(engine) => self.engine = Some(engine),
                // Threads cannot be made: the system is out of them; the tunnel carries nothing until it is
                // brought up again.
                Err(e) => tracing::error!("cannot restart a tunnel's engine: {e}"),
            }
        }
    }

    /// Stops every engine; what the returned closure waits for, on a blocking thread.
    pub fn stop(&mut self) -> impl FnOnce() + Send + 'static {
        self.spawn = None;
        let engines: Vec<EngineThreads> = self.engine.take().into_iter().chain(self.retired.drain(..)).collect();
        for e in &engines {
            e.stop.stop();
        }
        move || engines.into_iter().for_each(EngineThreads::join)
    }
}

/// A tunnel that is up, with everything that keeps it up.
#[derive(Debug)]
pub struct Tunnel {
    pub info: Arc<TunnelInfo>,
    pub record: Record,
    pub engine: Engine,
    /// The engine loops of a userspace tunnel; they hold the device and the socket, which close when they end.
    pub datapath: Option<Box<Datapath>>,
    /// Other tasks that live and end with the tunnel (the userspace API, re-resolution).
    tasks: Vec<JoinHandle<()>>,
}

impl Tunnel {
    pub fn new(info: TunnelInfo, record: Record, tasks: Vec<JoinHandle<()>>) -> Self {
        Self { info: Arc::new(info), record, engine: Engine::Kernel, datapath: None, tasks }
    }

    pub fn kind(&self) -> Kind {
        self.info.profile().kind()
    }

    /// A full tunnel's mark, which its `not fwmark` rule holds: the mark of its own packets.
    pub fn full_tunnel_mark(&self) -> Option<u32> {
        self.record.full_tunnel_mark()
    }

    /// The host's network changed (an address, a route, a link): host names are looked up again and every
    /// WireGuard peer gets a handshake at once, from wherever the packets leave now, so that peers that roam to
    /// our new address hear of it without waiting for a timer.
    pub fn network_changed(&self) {
        self.handshake_now();
        self.info.network_changed.notify_one();
    }

    /// Starts a handshake with every WireGuard peer now, instead of at its timer (the way out was just opened).
    pub fn handshake_now(&self) {
        if let Engine::Wireguard(proto) = &self.engine {
            for peer in &proto.load().peers {
                peer.restart_handshake();
            }
        }
    }

    /// What a live change needs of the tunnel, to work on without holding the registry.
    pub fn parts(&self) -> apply::Parts {
        apply::Parts {
            info: self.info.clone(),
            record: self.record.clone(),
            engine: self.engine.clone(),
            datapath: self.datapath.as_ref().map(|d| (d.socket.clone(), d.mtu)),
        }
    }

    /// Adds a task that lives and ends with the tunnel.
    pub fn add_task(&mut self, task: JoinHandle<()>) {
        self.tasks.push(task);
    }

    /// Stops the data plane and waits until its threads and tasks, and with them the device and socket, are
    /// gone.
    pub async fn stop(&mut self) {
        self.info.down.store(true, Ordering::Relaxed);
        let engine = self.datapath.as_mut().map(|d| d.stop());
        for t in &self.tasks {
            t.abort();
        }
        if let Some(join) = engine {
            let _ = tokio::task::spawn_blocking(join).await;
        }
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
