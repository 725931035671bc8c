//! The `wireguard` kind without IO: boringtun's `noise::Tunn` per peer, and what a WireGuard device does around
//! it (DATAPLANE.md 1.2): routing by AllowedIPs, dispatch of incoming messages to peers, cryptokey routing on
//! the way in, roaming, one rate limiter per device, timers.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use boringtun::noise::errors::WireGuardError;
use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Packet, Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use culvert_core::profile::WireguardTunnel;
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

/// One peer: its session state and what the device knows of it.
pub struct WgPeer {
    tunn: Mutex<Tunn>,
    /// The peer's session index in the device (boringtun's, shifted left 8 bits in the messages): stable for as
    /// long as the peer stays, whatever else changes, and unique among the device's peers.
    pub index: u32,
    pub public_key: [u8; 32],
    preshared_key: Option<culvert_core::keys::SecretKey>,
    /// Where to send; learned from the profile, and updated from every authenticated datagram (roaming).
    endpoint: Mutex<Option<SocketAddr>>,
    /// The host's address the peer's datagrams last came to, to send from: a host with several addresses
    /// answers from the one it was reached at. Forgotten when the endpoint is set anew.
    local: Mutex<Option<IpAddr>>,
    pub keepalive: Option<u16>,
    pub traffic: Traffic,
    /// What the next timer tick does besides the protocol's timers: [`START`], [`RESTART`] or nothing.
    handshake: AtomicU8,
}

/// Start a handshake unless one was already started (by the first packet, say) or a session exists: a tunnel
/// shakes hands as it comes up, without waiting for traffic, and only once.
const START: u8 = 1;
/// Start a new handshake even if one is in progress or a session exists: the way to the peer changed, so what
/// was sent before went where it may never arrive (a previous endpoint, an old source address, a firewall not
/// yet open).
const RESTART: u8 = 2;

impl WgPeer {
    fn tunn(&self) -> MutexGuard<'_, Tunn> {
        self.tunn.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn endpoint(&self) -> Option<SocketAddr> {
        *self.endpoint.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a new handshake on the next timer tick (after the endpoint changed, say).
    pub fn restart_handshake(&self) {
        self.handshake.store(RESTART, Ordering::Relaxed);
    }

    /// Points the peer at a new address, as a re-resolved host name gives it; the address it was sent from
    /// before may not reach the new one.
    pub fn set_endpoint(&self, to: SocketAddr) {
        self.roam(canonical(to));
        *self.local.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    fn roam(&self, from: SocketAddr) {
        let mut ep = self.endpoint.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *ep != Some(from) {
            tracing::debug!("peer endpoint {ep:?} -> {from}");
            *ep = Some(from);
        }
    }

    pub fn preshared_key(&self) -> Option<&culvert_core::keys::SecretKey> {
        self.preshared_key.as_ref()
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
    limiter: Arc<RateLimiter>,
    routes: AllowedIps<usize>,
    by_key: HashMap<[u8; 32], usize>,
    by_index: HashMap<u32, usize>,
    /// Shared with the cores this one replaces or is replaced by, so that sessions and counters stay.
    pub peers: Vec<Arc<WgPeer>>,
    /// Each peer's allowed IPs, by position in `peers`.
    pub allowed_ips: Vec<Vec<IpNet>>,
    next_index: u32,
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

/// Session indices are 24 bits (boringtun shifts them left 8 bits).
const INDEX_MASK: u32 = 0x00ff_ffff;

impl WgCore {
    pub fn new(config: &WireguardTunnel, endpoints: &ResolvedEndpoints) -> Self {
        let secret = StaticSecret::from(*config.private_key.as_bytes());
        let public = PublicKey::from(&secret);
        let limiter = Arc::new(RateLimiter::new(&public, HANDSHAKE_RATE_LIMIT));
        Self::assemble(config, endpoints, &limiter, |_| None, 0)
    }

    /// The core for `config` in place of this one: peers that stay (the same public key, preshared key and
    /// keepalive) keep their sessions, endpoints learnt by roaming and counters; the others get new sessions.
    /// Also says, for each peer, what it had to do.
    pub fn next(&self, config: &WireguardTunnel, endpoints: &ResolvedEndpoints) -> (Self, Vec<String>) {
        let mut notes = Vec::new();
        let secret = StaticSecret::from(*config.private_key.as_bytes());
        let public = PublicKey::from(&secret);
        let limiter = if public == self.public {
            self.limiter.clone()
        } else {
            notes.push("a new private key: every peer shakes hands again".to_owned());
            Arc::new(RateLimiter::new(&public, HANDSHAKE_RATE_LIMIT))
        };
        let rekeyed = public != self.public;
        let keep = |i: usize| {
            let wanted = &config.peers[i];
            let old = self.by_key.get(&wanted.public_key.0).map(|&at| &self.peers[at])?;
            let same = old.preshared_key == wanted.preshared_key
                && old.keepalive == wanted.persistent_keepalive.filter(|k| *k > 0);
            if !same {
                return None;
            }
            if rekeyed {
                old.tunn().set_static_private(secret.clone(), public, Some(limiter.clone()));
            }
            Some(old.clone())
        };
        let next = Self::assemble(config, endpoints, &limiter, keep, self.next_index);
        for (i, p) in config.peers.iter().enumerate() {
            let key = culvert_core::keys::PublicKey(p.public_key.0);
            match self.by_key.get(&p.public_key.0) {
                None => notes.push(format!("peer {key}: added")),
                Some(&at) if !Arc::ptr_eq(&self.peers[at], &next.peers[i]) => {
                    notes.push(format!("peer {key}: a new session for its new preshared key or keepalive"));
                }
                Some(_) => {}
            }
        }
        for p in self.peers.iter().filter(|p| !next.by_key.contains_key(&p.public_key)) {
            notes.push(format!("peer {}: removed", culvert_core::keys::PublicKey(p.public_key)));
        }
        (next, notes)
    }

    /// Builds a core for `config`, taking peer `i` from `keep(i)` when it gives one and making it new otherwise.
    fn assemble(
        config: &WireguardTunnel,
        endpoints: &ResolvedEndpoints,
        limiter: &Arc<RateLimiter>,
        keep: impl Fn(usize) -> Option<Arc<WgPeer>>,
        mut next_index: u32,
    ) -> Self {
        let secret = StaticSecret::from(*config.private_key.as_bytes());
        let public = PublicKey::from(&secret);
        let kept: Vec<Option<Arc<WgPeer>>> = (0..config.peers.len()).map(&keep).collect();
        let taken: std::collections::HashSet<u32> = kept.iter().flatten().map(|p| p.index).collect();
        let mut fresh_index = || loop {
            let index = next_index & INDEX_MASK;
            next_index = next_index.wrapping_add(1);
            if !taken.contains(&index) {
                return index;
            }
        };
        let mut routes = AllowedIps::default();
        let mut by_key = HashMap::new();
        let mut by_index = HashMap::new();
        let mut peers = Vec::with_capacity(config.peers.len());
        for (i, (p, kept)) in config.peers.iter().zip(kept).enumerate() {
            for net in &p.allowed_ips {
                routes.insert(*net, i);
            }
            // A kept peer keeps the endpoint it roamed to; the tunnel layer moves it when the profile's changed.
            let peer = match kept {
                Some(peer) => peer,
                None => {
                    let index = fresh_index();
                    let tunn = Tunn::new(
                        secret.clone(),
                        PublicKey::from(p.public_key.0),
                        p.preshared_key.as_ref().map(|k| *k.as_bytes()),
                        p.persistent_keepalive.filter(|k| *k > 0),
                        index,
                        Some(limiter.clone()),
                    );
                    Arc::new(WgPeer {
                        tunn: Mutex::new(tunn),
                        index,
                        public_key: p.public_key.0,
                        preshared_key: p.preshared_key.clone(),
                        endpoint: Mutex::new(endpoints.get(i).copied().flatten().map(canonical)),
                        local: Mutex::new(None),
                        keepalive: p.persistent_keepalive.filter(|k| *k > 0),
                        traffic: Traffic::default(),
                        handshake: AtomicU8::new(START),
                    })
                }
            };
            by_key.insert(p.public_key.0, i);
            by_index.insert(peer.index, i);
            peers.push(peer);
        }
        let allowed_ips = config.peers.iter().map(|p| p.allowed_ips.clone()).collect();
        let listen_port = std::sync::atomic::AtomicU16::new(config.listen_port.unwrap_or(0));
        Self {
            secret,
            listen_port,
            fwmark: config.fwmark,
            public,
            limiter: limiter.clone(),
            routes,
            by_key,
            by_index,
            peers,
            allowed_ips,
            next_index,
        }
    }

    /// The peer with public key `key`, if it is one of this core's.
    pub fn peer(&self, key: &[u8; 32]) -> Option<&Arc<WgPeer>> {
        self.by_key.get(key).map(|&at| &self.peers[at])
    }

    /// The device's own private key, for the userspace API's `get` (`wg showconf`).
    pub fn private_key(&self) -> [u8; 32] {
        self.secret.to_bytes()
    }

    pub fn listen_port(&self) -> u16 {
        self.listen_port.load(Ordering::Relaxed)
    }

    pub fn fwmark(&self) -> Option<u32> {
        self.fwmark
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
        self.by_index.get(&(idx >> 8)).copied()
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
        Seal::Send { peer, to, len, inner: inner_of(&out[..len]) }
    }

    fn open(&self, from: SocketAddr, datagram: &[u8], out: &mut [u8]) -> Open {
        let from = canonical(from);
        let base = out.as_ptr() as usize;
        let packet = match self.limiter.verify_packet(Some(from.ip()), datagram, out) {
            Ok(packet) => packet,
            // Over the handshake rate: the initiator gets a cookie to come back with, and nothing else.
            Err(TunnResult::WriteToNetwork(cookie)) => {
                let (offset, len) = placed(base, cookie);
                return Open::Refuse { to: from, len: to_front(out, offset, len), reason: DropReason::RateLimited };
            }
            Err(TunnResult::Err(e)) => return Open::Drop(drop_reason(&e)),
            Err(_) => return Open::Drop(DropReason::Malformed),
        };
        let Some(peer) = self.peer_of(&packet) else { return Open::Drop(DropReason::UnknownPeer) };
        let p = &self.peers[peer];
        let result = p.tunn().decapsulate(Some(from.ip()), datagram, out);
        match result {
            TunnResult::WriteToNetwork(reply) => {
                let (offset, len) = placed(base, reply);
                p.roam(from);
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
        let wanted = p.handshake.swap(0, Ordering::Relaxed);
        let base = out.as_ptr() as usize;
        let mut tunn = p.tunn();
        let result = match wanted {
            RESTART => tunn.format_handshake_initiation(out, true),
            START if tunn.time_since_last_handshake().is_none() => tunn.format_handshake_initiation(out, false),
            _ => tunn.update_timers(out),
        };
        let (offset, len) = match result {
            TunnResult::WriteToNetwork(d) => placed(base, d),
            _ => return Seal::Nothing,
        };
        drop(tunn);
        let len = to_front(out, offset, len);
        Seal::Send { peer, to, len, inner: inner_of(&out[..len]) }
    }

    fn every_second(&self) {
        self.limiter.reset_count();
    }

    fn arrived_at(&self, peer: usize, local: IpAddr) {
        if let Some(p) = self.peers.get(peer) {
            *p.local.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(local);
        }
    }

    fn source(&self, peer: usize) -> Option<IpAddr> {
        *self.peers.get(peer)?.local.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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

#[cfg(test)]
mod tests {
    use super::*;
    use culvert_core::keys::SecretKey;
    use culvert_core::profile::{Table, WireguardPeer};

    fn device(key: &SecretKey) -> WgCore {
        device_to(key, None)
    }

    fn device_to(key: &SecretKey, endpoint: Option<SocketAddr>) -> WgCore {
        let config = WireguardTunnel {
            interface: None,
            private_key: key.clone(),
            address: vec!["10.8.0.1/24".parse().unwrap()],
            listen_port: None,
            mtu: None,
            dns: vec![],
            dns_search: vec![],
            table: Table::Auto,
            fwmark: None,
            kill_switch: false,
            allow_lan: false,
            peers: vec![WireguardPeer {
                public_key: SecretKey::generate_private().public_key(),
                preshared_key: None,
                allowed_ips: vec!["10.8.0.2/32".parse().unwrap()],
                endpoint: None,
                persistent_keepalive: None,
            }],
        };
        WgCore::new(&config, &vec![endpoint])
    }

    /// The first byte of a datagram the core would send now, if any: 1 is a handshake initiation.
    fn sent(seal: Seal, out: &[u8]) -> Option<u8> {
        match seal {
            Seal::Send { len, .. } if len > 0 => Some(out[0]),
            _ => None,
        }
    }

    /// A ping before the first tick starts the handshake; the tick then starts no second one (whose new
    /// session would replace the first for nothing), and a restart after the way changed always starts one.
    #[test]
    fn a_tunnel_shakes_hands_once_as_it_comes_up_and_again_when_told() {
        let key = SecretKey::generate_private();
        let core = device_to(&key, Some("192.0.2.9:51820".parse().unwrap()));
        let mut out = vec![0u8; 2048];
        let mut ping = [0u8; 28];
        ping[..20].copy_from_slice(&[0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 10, 8, 0, 1, 10, 8, 0, 2]);
        assert_eq!(sent(core.seal(&ping, &mut out), &out), Some(1), "the first packet starts a handshake");
        assert_eq!(sent(core.tick(0, &mut out), &out), None, "the first tick started a second handshake");
        core.peers[0].restart_handshake();
        assert_eq!(sent(core.tick(0, &mut out), &out), Some(1), "a restart started no handshake");
        assert_eq!(sent(core.tick(0, &mut out), &out), None);

        // With no traffic, the first tick starts it.
        let idle = device_to(&key, Some("192.0.2.9:51820".parse().unwrap()));
        assert_eq!(sent(idle.tick(0, &mut out), &out), Some(1), "an idle tunnel did not shake hands");
        assert_eq!(sent(idle.tick(0, &mut out), &out), None);
    }

    /// A handshake initiation to `to` from a new key: its mac1 is valid, so it passes the first check.
    fn initiation(to: &SecretKey, index: u32) -> Vec<u8> {
        let secret = StaticSecret::random_from_rng(rand_core::OsRng);
        let mut tunn = Tunn::new(secret, PublicKey::from(to.public_key().0), None, None, index, None);
        let mut buf = [0u8; 256];
        match tunn.format_handshake_initiation(&mut buf, false) {
            TunnResult::WriteToNetwork(d) => d.to_vec(),
            _ => panic!("no initiation"),
        }
    }

    /// Over the rate limit, initiations get cookie replies and are counted as refused (they were counted nowhere).
    #[test]
    fn handshakes_over_the_rate_are_refused_with_cookies() {
        let key = SecretKey::generate_private();
        let core = device(&key);
        let from: SocketAddr = "192.0.2.9:40000".parse().unwrap();
        let mut out = vec![0u8; 2048];
        let (mut refused, mut unknown) = (0, 0);
        for i in 0..300 {
            match core.open(from, &initiation(&key, i), &mut out) {
                Open::Refuse { to, len, reason: DropReason::RateLimited } => {
                    assert_eq!((to, len, out[0]), (from, 64, 3), "a cookie reply, to the sender");
                    refused += 1;
                }
                Open::Drop(DropReason::UnknownPeer) => unknown += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(unknown, HANDSHAKE_RATE_LIMIT as usize, "the first ones are handled (and are nobody's)");
        assert_eq!(refused, 300 - HANDSHAKE_RATE_LIMIT as usize);
        // A mac1 made for another key is bad crypto, not malformed.
        let other = SecretKey::generate_private();
        assert_eq!(core.open(from, &initiation(&other, 302), &mut out), Open::Drop(DropReason::BadCrypto));
    }
}
