//! The protocol of the `udp` kind, without IO: one raw IP packet per datagram, peers by endpoint, routing by
//! allowed_ips.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use culvert_core::profile::{UdpPeer, UdpTunnel};

use super::counters::{DropReason, Traffic};
use super::packet;
use super::protocol::{Open, Protocol, Seal};
use super::routing::AllowedIps;

/// A peer known by its endpoint (the `udp` and `tap` kinds).
#[derive(Debug)]
pub struct Peer {
    pub endpoint: SocketAddr,
    pub allowed_ips: Vec<ipnet::IpNet>,
    pub traffic: Arc<Traffic>,
}

impl Peer {
    pub fn status(&self) -> culvert_core::stats::PeerStatus {
        culvert_core::stats::PeerStatus::new(
            Some(self.endpoint.to_string()),
            self.allowed_ips.clone(),
            self.traffic.read(),
        )
    }
}

#[derive(Debug)]
pub struct UdpCore {
    routes: AllowedIps<usize>,
    by_endpoint: HashMap<SocketAddr, usize>,
    pub peers: Vec<Peer>,
}

/// The same address in one spelling: IPv4-mapped IPv6 (as a dual-stack socket reports IPv4 peers) as IPv4.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// The peers of a configuration, each with the counters an earlier core had for its endpoint (`before`), or
/// new ones; and what changed, said per peer.
pub fn carry_peers(peers: &[UdpPeer], before: &[Peer]) -> (Vec<Peer>, Vec<String>) {
    let mut notes = Vec::new();
    let out = peers
        .iter()
        .map(|p| {
            let endpoint = canonical(p.endpoint);
            let old = before.iter().find(|o| o.endpoint == endpoint);
            match old {
                None if !before.is_empty() => notes.push(format!("peer {endpoint}: added")),
                Some(o) if o.allowed_ips != p.allowed_ips => notes.push(format!("peer {endpoint}: new allowed_ips")),
                _ => {}
            }
            Peer {
                endpoint,
                allowed_ips: p.allowed_ips.clone(),
                traffic: old.map(|o| o.traffic.clone()).unwrap_or_default(),
            }
        })
        .collect::<Vec<_>>();
    for o in before.iter().filter(|o| !out.iter().any(|p| p.endpoint == o.endpoint)) {
        notes.push(format!("peer {}: removed", o.endpoint));
    }
    (out, notes)
}

impl UdpCore {
    pub fn new(config: &UdpTunnel) -> Self {
        Self::with_peers(carry_peers(&config.peers, &[]).0)
    }

    /// The core for `config` in place of this one: peers that stay (by endpoint) keep their counters.
    pub fn next(&self, config: &UdpTunnel) -> (Self, Vec<String>) {
        let (peers, notes) = carry_peers(&config.peers, &self.peers);
        (Self::with_peers(peers), notes)
    }

    fn with_peers(peers: Vec<Peer>) -> Self {
        let mut routes = AllowedIps::default();
        let mut by_endpoint = HashMap::new();
        for (i, p) in peers.iter().enumerate() {
            for net in &p.allowed_ips {
                routes.insert(*net, i);
            }
            by_endpoint.insert(p.endpoint, i);
        }
        Self { routes, by_endpoint, peers }
    }

    /// The peer a packet read from the tunnel device goes to.
    pub fn route_outbound(&self, packet: &[u8]) -> Result<usize, DropReason> {
        let dst: IpAddr = packet::destination(packet).ok_or(DropReason::Malformed)?;
        self.routes.find(dst).ok_or(DropReason::NoRoute)
    }

    /// The peer a datagram came from, if it is one, the datagram holds an IP packet, and the packet's source is
    /// one of that peer's allowed_ips (as WireGuard's cryptokey routing requires of decrypted packets: without
    /// it, a peer could pose as any host behind any other peer).
    pub fn accept_inbound(&self, from: SocketAddr, datagram: &[u8]) -> Result<usize, DropReason> {
        let peer = *self.by_endpoint.get(&canonical(from)).ok_or(DropReason::UnknownPeer)?;
        let src = packet::source(datagram).ok_or(DropReason::Malformed)?;
        if self.routes.find(src) != Some(peer) {
            return Err(DropReason::SpoofedSource);
        }
        Ok(peer)
    }
}

impl Protocol for UdpCore {
    const OVERHEAD: usize = 0;
    const TIMERS: bool = false;

    fn seal(&self, packet: &[u8], out: &mut [u8]) -> Seal {
        match self.route_outbound(packet) {
            Ok(peer) => {
                out[..packet.len()].copy_from_slice(packet);
                Seal::Send { peer, to: self.peers[peer].endpoint, len: packet.len(), inner: packet.len() }
            }
            Err(reason) => Seal::Drop(reason),
        }
    }

    fn open(&self, from: SocketAddr, datagram: &[u8], out: &mut [u8]) -> Open {
        match self.accept_inbound(from, datagram) {
            Ok(peer) => {
                out[..datagram.len()].copy_from_slice(datagram);
                Open::Deliver { peer, len: datagram.len() }
            }
            Err(reason) => Open::Drop(reason),
        }
    }

    fn peer_endpoint(&self, peer: usize) -> Option<SocketAddr> {
        self.peers.get(peer).map(|p| p.endpoint)
    }

    fn peer_count(&self) -> usize {
        self.peers.len()
    }

    fn traffic(&self, peer: usize) -> &Traffic {
        &self.peers[peer].traffic
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::packet::build;
    use culvert_core::profile::UdpPeer;

    fn core() -> UdpCore {
        UdpCore::new(&UdpTunnel {
            interface: None,
            address: vec!["10.9.0.1/24".parse().unwrap()],
            listen_port: 1,
            mtu: None,
            peers: vec![
                UdpPeer { endpoint: "192.0.2.2:1".parse().unwrap(), allowed_ips: vec!["10.9.0.0/24".parse().unwrap()] },
                UdpPeer {
                    endpoint: "192.0.2.3:1".parse().unwrap(),
                    allowed_ips: vec!["10.9.0.128/25".parse().unwrap()],
                },
            ],
        })
    }

    fn to(dst: &str) -> Vec<u8> {
        build::ip("10.9.0.1".parse().unwrap(), dst.parse().unwrap(), b"hi")
    }

    #[test]
    fn routes_by_longest_prefix() {
        let c = core();
        assert_eq!(c.route_outbound(&to("10.9.0.2")), Ok(0));
        assert_eq!(c.route_outbound(&to("10.9.0.200")), Ok(1));
        assert_eq!(c.route_outbound(&to("10.8.0.1")), Err(DropReason::NoRoute));
        assert_eq!(c.route_outbound(b"\x00junk"), Err(DropReason::Malformed));
    }

    fn from(src: &str) -> Vec<u8> {
        build::ip(src.parse().unwrap(), "10.9.0.1".parse().unwrap(), b"hi")
    }

    #[test]
    fn accepts_only_peers_and_only_their_own_sources() {
        let c = core();
        assert_eq!(c.accept_inbound("192.0.2.3:1".parse().unwrap(), &from("10.9.0.200")), Ok(1));
        assert_eq!(c.accept_inbound("[::ffff:192.0.2.2]:1".parse().unwrap(), &from("10.9.0.2")), Ok(0));
        assert_eq!(c.accept_inbound("192.0.2.3:2".parse().unwrap(), &from("10.9.0.200")), Err(DropReason::UnknownPeer));
        assert_eq!(c.accept_inbound("192.0.2.2:1".parse().unwrap(), b"garbage"), Err(DropReason::Malformed));
        // Peer 0 may not speak for peer 1's addresses, nor for addresses no peer has.
        let peer0: SocketAddr = "192.0.2.2:1".parse().unwrap();
        assert_eq!(c.accept_inbound(peer0, &from("10.9.0.200")), Err(DropReason::SpoofedSource));
        assert_eq!(c.accept_inbound(peer0, &from("10.99.0.5")), Err(DropReason::SpoofedSource));
    }

    /// Hostile bytes from a peer or from the device are dropped and counted, never a panic.
    #[test]
    fn random_bytes_never_panic() {
        let c = core();
        let peer: SocketAddr = "192.0.2.2:1".parse().unwrap();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut buf = [0u8; 128];
        for _ in 0..100_000 {
            let len = (next() % 129) as usize;
            for b in buf.iter_mut().take(len) {
                *b = next() as u8;
            }
            // Bias the first byte towards IP versions so the deeper paths run too.
            if len > 0 && next() % 2 == 0 {
                buf[0] = if next() % 2 == 0 { 0x45 } else { 0x60 };
            }
            let _ = c.route_outbound(&buf[..len]);
            let _ = c.accept_inbound(peer, &buf[..len]);
        }
    }
}
