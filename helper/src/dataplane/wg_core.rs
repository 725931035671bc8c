//! The `wireguard` kind without IO: boringtun's `noise::Tunn` per peer, and what a WireGuard device does around
//! it (DATAPLANE.md 1.2): routing by AllowedIPs, dispatch of incoming messages to peers, cryptokey routing on
//! the way in, roaming, one rate limiter per device, timers.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use boringtun::noise::errors::WireGuardError;
use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Packet, Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use culvert_core::profile::WireguardTunnel;
use culvert_core::stats::{PeerStatus, TunnelState};
use ipnet::IpNet;

use super::counters::{DropReason, Traffic};
use super::packet;
use super::protocol::{Open, Protocol, Seal};
use super::routing::AllowedIps;
use super::udp_core::canonical;

/// Handshakes per second the device answers before it asks initiators for cookies (boringtun's device uses 100).
const HANDSHAKE_RATE_LIMIT: u64 = 100;
/// A message type byte of WireGuard data messages.
const DATA_MESSAGE: u8 = 4;
/// Bytes a data message adds to its packet.
pub const DATA_OVERHEAD: usize = 32;
/// Without a first handshake after this long, the tunnel reports `no handshake` (three REKEY_TIMEOUTs).
const NO_HANDSHAKE_AFTER: Duration = Duration::from_secs(15);

/// One peer: its session state and what the device knows of it.
pub struct WgPeer {
    tunn: Mutex<Tunn>,
    pub public_key: [u8; 32],
    preshared_key: Option<culvert_core::keys::SecretKey>,
    pub allowed_ips: Vec<IpNet>,
    /// Where to send; learned from the profile, and updated from every authenticated datagram (roaming).
    endpoint: Mutex<Option<SocketAddr>>,
    pub keepalive: Option<u16>,
    pub traffic: Traffic,
    /// The first handshake is started by the first timer tick, not by the first packet.
    initiated: AtomicBool,
    /// Unix time of the first handshake attempt that got no answer yet (0: none pending).
    pub waiting_since: AtomicU64,
}

impl WgPeer {
    fn tunn(&self) -> MutexGuard<'_, Tunn> {
        self.tunn.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn endpoint(&self) -> Option<SocketAddr> {
        *self.endpoint.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a new handshake on the next timer tick (after the endpoint changed, say).
    pub fn restart_handshake(&self) {
        self.initiated.store(false, Ordering::Relaxed);
    }

    /// Points the peer at a new address, as a re-resolved host name gives it.
    pub fn set_endpoint(&self, to: SocketAddr) {
        self.roam(canonical(to));
    }

    fn roam(&self, from: SocketAddr) {
        let mut ep = self.endpoint.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *ep != Some(from) {
            tracing::debug!("peer endpoint {ep:?} -> {from}");
            *ep = Some(from);
        }
    }

    /// Seconds since the latest handshake, if there was one.
    pub fn since_handshake(&self) -> Option<Duration> {
        self.tunn().stats().0
    }
}

pub struct WgCore {
    secret: StaticSecret,
    listen_port: std::sync::atomic::AtomicU16,
    fwmark: Option<u32>,
    public: PublicKey,
    limiter: std::sync::Arc<RateLimiter>,
    routes: AllowedIps<usize>,
    by_key: HashMap<[u8; 32], usize>,
    pub peers: Vec<WgPeer>,
}

impl std::fmt::Debug for WgPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WgPeer")
            .field("public_key", &culvert_core::keys::PublicKey(self.public_key))
            .field("endpoint", &self.endpoint())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for WgCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WgCore")
            .field("public", &self.public.as_bytes())
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

/// A profile's endpoints resolved to addresses (host names are resolved by the caller, at `up`).
pub type ResolvedEndpoints = Vec<Option<SocketAddr>>;

impl WgCore {
    pub fn new(config: &WireguardTunnel, endpoints: &ResolvedEndpoints) -> Self {
        let secret = StaticSecret::from(*config.private_key.as_bytes());
        let public = PublicKey::from(&secret);
        let limiter = std::sync::Arc::new(RateLimiter::new(&public, HANDSHAKE_RATE_LIMIT));
        let mut routes = AllowedIps::default();
        let mut by_key = HashMap::new();
        let mut peers = Vec::with_capacity(config.peers.len());
        for (i, p) in config.peers.iter().enumerate() {
            for net in &p.allowed_ips {
                routes.insert(*net, i);
            }
            by_key.insert(p.public_key.0, i);
            // The index is shifted left 8 bits by Tunn to make session indices; it must stay below 2^24.
            let index = u32::try_from(i).unwrap_or(u32::MAX) & 0x00ff_ffff;
            let tunn = Tunn::new(
                secret.clone(),
                PublicKey::from(p.public_key.0),
                p.preshared_key.as_ref().map(|k| *k.as_bytes()),
                p.persistent_keepalive.filter(|k| *k > 0),
                index,
                Some(limiter.clone()),
            );
            peers.push(WgPeer {
                tunn: Mutex::new(tunn),
                public_key: p.public_key.0,
                preshared_key: p.preshared_key.clone(),
                allowed_ips: p.allowed_ips.clone(),
                endpoint: Mutex::new(endpoints.get(i).copied().flatten().map(canonical)),
                keepalive: p.persistent_keepalive.filter(|k| *k > 0),
                traffic: Traffic::default(),
                initiated: AtomicBool::new(false),
                waiting_since: AtomicU64::new(0),
            });
        }
        let listen_port = std::sync::atomic::AtomicU16::new(config.listen_port.unwrap_or(0));
        Self { secret, listen_port, fwmark: config.fwmark, public, limiter, routes, by_key, peers }
    }

    /// The peer a message is for: by the initiator's static key for handshake initiations, by our receiver
    /// index for everything else.
    fn peer_of(&self, packet: &Packet<'_>) -> Option<usize> {
        let idx = match packet {
            Packet::HandshakeInit(p) => {
                let half = parse_handshake_anon(&self.secret, &self.public, p).ok()?;
                return self.by_key.get(&half.peer_static_public).copied();
            }
            Packet::HandshakeResponse(p) => p.receiver_idx,
            Packet::PacketCookieReply(p) => p.receiver_idx,
            Packet::PacketData(p) => p.receiver_idx,
        };
        let peer = (idx >> 8) as usize;
        (peer < self.peers.len()).then_some(peer)
    }
}

/// Where boringtun put its output inside the buffer starting at `base`, as an offset and length; its output
/// may not start at the buffer's start.
fn placed(base: usize, result: &[u8]) -> (usize, usize) {
    ((result.as_ptr() as usize).saturating_sub(base), result.len())
}

/// Moves boringtun's output to the start of `out`, returning its length.
fn to_front(out: &mut [u8], offset: usize, len: usize) -> usize {
    if offset != 0 {
        out.copy_within(offset..offset + len, 0);
    }
    len
}

fn inner_of(datagram: &[u8]) -> usize {
    if datagram.first() == Some(&DATA_MESSAGE) { datagram.len().saturating_sub(DATA_OVERHEAD) } else { 0 }
}

fn drop_reason(e: &WireGuardError) -> DropReason {
    match e {
        WireGuardError::DuplicateCounter | WireGuardError::InvalidCounter => DropReason::Replayed,
        WireGuardError::UnderLoad => DropReason::RateLimited,
        WireGuardError::InvalidMac | WireGuardError::InvalidAeadTag | WireGuardError::WrongKey => DropReason::BadCrypto,
        WireGuardError::NoCurrentSession | WireGuardError::ConnectionExpired => DropReason::NoSession,
        _ => DropReason::Malformed,
    }
}

fn unix_now() -> u64 {
    crate::tunnel::unix_now()
}

impl Protocol for WgCore {
    const OVERHEAD: usize = DATA_OVERHEAD + 148;
    const TIMERS: bool = true;

    fn seal(&self, packet: &[u8], out: &mut [u8]) -> Seal {
        let Some(dst) = packet::destination(packet) else { return Seal::Drop(DropReason::Malformed) };
        let Some(peer) = self.routes.find(dst) else { return Seal::Drop(DropReason::NoRoute) };
        let p = &self.peers[peer];
        let Some(to) = p.endpoint() else { return Seal::Drop(DropReason::NoEndpoint) };
        let base = out.as_ptr() as usize;
        let (offset, len) = match p.tunn().encapsulate(packet, out) {
            TunnResult::WriteToNetwork(d) => placed(base, d),
            // Queued until the handshake it started completes.
            TunnResult::Done => return Seal::Nothing,
            TunnResult::Err(e) => return Seal::Drop(drop_reason(&e)),
            TunnResult::WriteToTunnelV4(..) | TunnResult::WriteToTunnelV6(..) => return Seal::Nothing,
        };
        let len = to_front(out, offset, len);
        if out[0] != DATA_MESSAGE {
            p.waiting_since.compare_exchange(0, unix_now(), Ordering::Relaxed, Ordering::Relaxed).ok();
        }
        Seal::Send { peer, to, len, inner: inner_of(&out[..len]) }
    }

    fn open(&self, from: SocketAddr, datagram: &[u8], out: &mut [u8]) -> Open {
        let from = canonical(from);
        let base = out.as_ptr() as usize;
        let packet = match self.limiter.verify_packet(Some(from.ip()), datagram, out) {
            Ok(packet) => packet,
            Err(TunnResult::WriteToNetwork(cookie)) => {
                let (offset, len) = placed(base, cookie);
                return Open::Reply { peer: None, to: from, len: to_front(out, offset, len) };
            }
            Err(_) => return Open::Drop(DropReason::Malformed),
        };
        let Some(peer) = self.peer_of(&packet) else { return Open::Drop(DropReason::UnknownPeer) };
        let p = &self.peers[peer];
        let result = p.tunn().decapsulate(Some(from.ip()), datagram, out);
        match result {
            TunnResult::WriteToNetwork(reply) => {
                let (offset, len) = placed(base, reply);
                p.roam(from);
                p.waiting_since.store(0, Ordering::Relaxed);
                Open::Reply { peer: Some(peer), to: from, len: to_front(out, offset, len) }
            }
            TunnResult::WriteToTunnelV4(inner, src) => {
                self.deliver(peer, from, IpAddr::V4(src), placed(base, inner), out)
            }
            TunnResult::WriteToTunnelV6(inner, src) => {
                self.deliver(peer, from, IpAddr::V6(src), placed(base, inner), out)
            }
            TunnResult::Done => {
                p.roam(from);
                p.waiting_since.store(0, Ordering::Relaxed);
                Open::Nothing
            }
            TunnResult::Err(e) => Open::Drop(drop_reason(&e)),
        }
    }

    fn flush(&self, peer: usize, out: &mut [u8]) -> Seal {
        let p = &self.peers[peer];
        let Some(to) = p.endpoint() else { return Seal::Nothing };
        let base = out.as_ptr() as usize;
        let (offset, len) = match p.tunn().decapsulate(None, &[], out) {
            TunnResult::WriteToNetwork(d) => placed(base, d),
            _ => return Seal::Nothing,
        };
        let len = to_front(out, offset, len);
        Seal::Send { peer, to, len, inner: inner_of(&out[..len]) }
    }

    fn tick(&self, peer: usize, out: &mut [u8]) -> Seal {
        let p = &self.peers[peer];
        let Some(to) = p.endpoint() else { return Seal::Nothing };
        let first = !p.initiated.swap(true, Ordering::Relaxed);
        let base = out.as_ptr() as usize;
        let mut tunn = p.tunn();
        let result = if first { tunn.format_handshake_initiation(out, false) } else { tunn.update_timers(out) };
        let (offset, len) = match result {
            TunnResult::WriteToNetwork(d) => placed(base, d),
            _ => return Seal::Nothing,
        };
        drop(tunn);
        let len = to_front(out, offset, len);
        if out[0] != DATA_MESSAGE {
            p.waiting_since.compare_exchange(0, unix_now(), Ordering::Relaxed, Ordering::Relaxed).ok();
        }
        Seal::Send { peer, to, len, inner: inner_of(&out[..len]) }
    }

    fn every_second(&self) {
        self.limiter.reset_count();
    }

    fn peer_count(&self) -> usize {
        self.peers.len()
    }

    fn traffic(&self, peer: usize) -> &Traffic {
        &self.peers[peer].traffic
    }
}

impl WgCore {
    /// Cryptokey routing: a decrypted packet is delivered only if its source is one of the sender's AllowedIPs.
    fn deliver(
        &self,
        peer: usize,
        from: SocketAddr,
        src: IpAddr,
        (offset, len): (usize, usize),
        out: &mut [u8],
    ) -> Open {
        let p = &self.peers[peer];
        p.roam(from);
        p.waiting_since.store(0, Ordering::Relaxed);
        if self.routes.find(src) != Some(peer) {
            return Open::Drop(DropReason::SpoofedSource);
        }
        Open::Deliver { peer, len: to_front(out, offset, len) }
    }
}

impl WgCore {
    /// The port the socket got, for reports (the profile may have asked for any free one).
    pub fn set_listen_port(&self, port: u16) {
        self.listen_port.store(port, Ordering::Relaxed);
    }
}

impl crate::tunnel::uapi::UapiSource for WgCore {
    fn uapi_get(&self, out: &mut String) {
        use crate::tunnel::uapi::{hex, time_ago};
        use std::fmt::Write;
        let _ = writeln!(out, "private_key={}", hex(&self.secret.to_bytes()));
        let _ = writeln!(out, "listen_port={}", self.listen_port.load(Ordering::Relaxed));
        if let Some(mark) = self.fwmark {
            let _ = writeln!(out, "fwmark={mark}");
        }
        for p in &self.peers {
            let _ = writeln!(out, "public_key={}", hex(&p.public_key));
            if let Some(psk) = &p.preshared_key {
                let _ = writeln!(out, "preshared_key={}", hex(psk.as_bytes()));
            }
            let _ = writeln!(out, "protocol_version=1");
            if let Some(ep) = p.endpoint() {
                let _ = writeln!(out, "endpoint={ep}");
            }
            let (sec, nsec) = p.since_handshake().map(time_ago).unwrap_or((0, 0));
            let _ = writeln!(out, "last_handshake_time_sec={sec}\nlast_handshake_time_nsec={nsec}");
            let (rx, tx, _, _) = p.traffic.read();
            let _ = writeln!(out, "rx_bytes={rx}\ntx_bytes={tx}");
            let _ = writeln!(out, "persistent_keepalive_interval={}", p.keepalive.unwrap_or(0));
            for net in &p.allowed_ips {
                let _ = writeln!(out, "allowed_ip={net}");
            }
        }
    }
}

impl crate::tunnel::StatusSource for WgCore {
    fn peers(&self) -> Vec<PeerStatus> {
        let now = unix_now();
        self.peers
            .iter()
            .map(|p| PeerStatus {
                public_key: Some(culvert_core::keys::PublicKey(p.public_key).to_string()),
                last_handshake: Some(p.since_handshake().map(|d| now.saturating_sub(d.as_secs()))),
                persistent_keepalive: p.keepalive,
                ..PeerStatus::new(p.endpoint().map(|e| e.to_string()), p.allowed_ips.clone(), p.traffic.read())
            })
            .collect()
    }

    fn state(&self, up_since: u64) -> (TunnelState, Option<String>) {
        if self.peers.iter().any(|p| p.since_handshake().is_some()) {
            return (TunnelState::Up, None);
        }
        let reachable: Vec<&WgPeer> = self.peers.iter().filter(|p| p.endpoint().is_some()).collect();
        if reachable.is_empty() {
            // Nothing to call: the tunnel waits for peers to reach it.
            return (TunnelState::Up, None);
        }
        let waited = unix_now().saturating_sub(up_since);
        if waited < NO_HANDSHAKE_AFTER.as_secs() {
            return (TunnelState::Connecting, None);
        }
        let endpoints: Vec<String> = reachable.iter().filter_map(|p| p.endpoint()).map(|e| e.to_string()).collect();
        let reason = format!(
            "no handshake completed in {waited} s with {}: check that each side has the other's public key, and that \
             UDP reaches {} and comes back",
            if reachable.len() == 1 { "the peer".to_owned() } else { format!("any of {} peers", reachable.len()) },
            endpoints.join(", ")
        );
        (TunnelState::NoHandshake, Some(reason))
    }
}
