//! A tunnel that is up: what it is made of and how it reports itself.

pub mod changes;
pub mod hostgw;
pub mod tap;
pub mod uapi;
pub mod udp;
pub mod userspace;
pub mod vxlan;
pub mod wireguard;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use culvert_core::profile::{Kind, Profile};
use culvert_core::stats::{PeerStatus, TunnelState, TunnelStatus};
use tokio::task::JoinHandle;

use crate::dataplane::counters::TunnelCounters;
use crate::system::Record;

/// What a running protocol tells about itself for status reports.
pub trait StatusSource: Send + Sync + std::fmt::Debug + 'static {
    fn peers(&self) -> Vec<PeerStatus>;
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
    pub profile: Profile,
    pub owner_uid: u32,
    pub up_since: u64,
    pub listen_port: Option<u16>,
    pub counters: Arc<TunnelCounters>,
    pub source: Arc<dyn StatusSource>,
    /// Packet samples, for the kinds whose packets pass through culvertd.
    pub sampler: Option<Arc<crate::dataplane::sampler::Sampler>>,
    down: AtomicBool,
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
            profile,
            owner_uid,
            up_since: unix_now(),
            listen_port,
            counters,
            source,
            sampler: None,
            down: AtomicBool::new(false),
        }
    }

    pub fn name(&self) -> &str {
        &self.profile.name
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    pub fn status(&self) -> TunnelStatus {
        let (state, reason) = self.source.state(self.up_since);
        TunnelStatus {
            name: self.profile.name.clone(),
            kind: self.profile.kind(),
            state,
            reason,
            interface: self.source.interface().unwrap_or_else(|| self.profile.interface().to_owned()),
            listen_port: self.listen_port,
            owner_uid: self.owner_uid,
            up_since: self.up_since,
            counters: self.source.counters().unwrap_or_else(|| self.engine_counters()),
            peers: self.source.peers(),
        }
    }
}

impl TunnelInfo {
    /// The engine's counters, plus what the kernel dropped before the engine could read it: a TUN or TAP
    /// device's `tx_dropped` counts packets the host sent into the tunnel while the device's queue was full.
    fn engine_counters(&self) -> culvert_core::stats::Counters {
        let mut c = self.counters.snapshot();
        let path = format!("/sys/class/net/{}/statistics/tx_dropped", self.profile.interface());
        let queue_full = std::fs::read_to_string(path).ok().and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0);
        c.drops.insert("device_queue_full".into(), queue_full);
        c.dropped += queue_full;
        c
    }
}

/// A tunnel that is up, with everything that keeps it up.
#[derive(Debug)]
pub struct Tunnel {
    pub info: Arc<TunnelInfo>,
    pub record: Record,
    /// The data-plane tasks; they own the device and the socket, which close when the tasks end.
    tasks: Vec<JoinHandle<()>>,
}

impl Tunnel {
    pub fn new(info: TunnelInfo, record: Record, tasks: Vec<JoinHandle<()>>) -> Self {
        Self { info: Arc::new(info), record, tasks }
    }

    pub fn kind(&self) -> Kind {
        self.info.profile.kind()
    }

    /// Adds a task that lives and ends with the tunnel.
    pub fn add_task(&mut self, task: JoinHandle<()>) {
        self.tasks.push(task);
    }

    /// Stops the data plane and waits until its tasks, and with them the device and socket, are gone.
    pub async fn stop(&mut self) {
        self.info.down.store(true, Ordering::Relaxed);
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
