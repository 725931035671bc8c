//! The `tap` kind without IO: one Ethernet frame per datagram, peers by endpoint, frames switched by a MAC
//! table learnt from what each peer sends, as a bridge does; broadcast, multicast and unknown destinations go
//! to every peer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::RwLock;

use culvert_core::profile::TapTunnel;

use culvert_core::wire::{self, ETHERNET_HEADER, ETHERTYPE_IPV4, ETHERTYPE_IPV6};

use super::counters::{DropReason, Traffic};
use super::packet;
use super::protocol::{Open, Protocol, Seal};
use super::routing::AllowedIps;
use super::udp_core::{Peer, canonical, carry_peers};

/// Learnt MACs at most, so that a peer sending from random addresses cannot grow the table without bound.
const MAX_LEARNT: usize = 4096;

#[derive(Debug)]
pub struct TapCore {
    pub peers: Vec<Peer>,
    by_endpoint: HashMap<SocketAddr, usize>,
    macs: RwLock<HashMap<[u8; 6], usize>>,
    /// The peers' allowed_ips: the IP frames of a peer that has any must come from one of them.
    sources: AllowedIps<usize>,
}

fn is_unicast(mac: &[u8]) -> bool {
    mac.first().is_some_and(|b| b & 1 == 0)
}

impl TapCore {
    pub fn new(config: &TapTunnel) -> Self {
        Self::with_peers(carry_peers(&config.peers, &[]).0, HashMap::new())
    }

    /// The core for `config` in place of this one: peers that stay (by endpoint) keep their counters and the
    /// MACs learnt behind them.
    pub fn next(&self, config: &TapTunnel) -> (Self, Vec<String>) {
        let (peers, notes) = carry_peers(&config.peers, &self.peers);
        let learnt = self.macs.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let macs = learnt
            .iter()
            .filter_map(|(mac, &at)| {
                let endpoint = self.peers.get(at)?.endpoint;
                peers.iter().position(|p| p.endpoint == endpoint).map(|i| (*mac, i))
            })
            .collect();
        (Self::with_peers(peers, macs), notes)
    }

    fn with_peers(peers: Vec<Peer>, macs: HashMap<[u8; 6], usize>) -> Self {
        let by_endpoint = peers.iter().enumerate().map(|(i, p)| (p.endpoint, i)).collect();
        let mut sources = AllowedIps::default();
        for (i, p) in peers.iter().enumerate() {
            for net in &p.allowed_ips {
                sources.insert(*net, i);
            }
        }
        Self { peers, by_endpoint, macs: RwLock::new(macs), sources }
    }

    /// Whether `peer` may send `frame`: anything, for a bridged peer without allowed_ips; for one with them, an
    /// IP frame only from its own addresses (other frames, ARP among them, pass).
    fn source_allowed(&self, peer: usize, frame: &[u8]) -> Result<(), DropReason> {
        if self.peers[peer].allowed_ips.is_empty() {
            return Ok(());
        }
        match wire::ethernet(frame) {
            Some((ETHERTYPE_IPV4 | ETHERTYPE_IPV6, ip)) => {
                let src = packet::source(ip).ok_or(DropReason::Malformed)?;
                if self.sources.find(src) == Some(peer) { Ok(()) } else { Err(DropReason::SpoofedSource) }
            }
            _ => Ok(()),
        }
    }

    fn learnt(&self, mac: &[u8]) -> Option<usize> {
        let key: [u8; 6] = mac.try_into().ok()?;
        self.macs.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key).copied()
    }

    fn learn(&self, mac: &[u8], peer: usize) {
        let Ok(key) = <[u8; 6]>::try_from(mac) else { return };
        if !is_unicast(&key) || self.learnt(&key) == Some(peer) {
            return;
        }
        let mut macs = self.macs.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if macs.len() < MAX_LEARNT || macs.contains_key(&key) {
            macs.insert(key, peer);
        }
    }
}

impl Protocol for TapCore {
    const OVERHEAD: usize = 0;
    const TIMERS: bool = false;

    fn seal(&self, frame: &[u8], out: &mut [u8]) -> Seal {
        if frame.len() < ETHERNET_HEADER {
            return Seal::Drop(DropReason::Malformed);
        }
        out[..frame.len()].copy_from_slice(frame);
        let dst = &frame[..6];
        let peer = match (self.peers.len(), is_unicast(dst).then(|| self.learnt(dst)).flatten()) {
            (1, _) => 0,
            (_, Some(peer)) => peer,
            _ => return Seal::Flood { len: frame.len(), inner: frame.len() },
        };
        Seal::Send { peer, to: self.peers[peer].endpoint, len: frame.len(), inner: frame.len() }
    }

    fn open(&self, from: SocketAddr, datagram: &[u8], out: &mut [u8]) -> Open {
        let Some(&peer) = self.by_endpoint.get(&canonical(from)) else { return Open::Drop(DropReason::UnknownPeer) };
        if datagram.len() < ETHERNET_HEADER {
            return Open::Drop(DropReason::Malformed);
        }
        if let Err(reason) = self.source_allowed(peer, datagram) {
            return Open::Drop(reason);
        }
        self.learn(&datagram[6..12], peer);
        out[..datagram.len()].copy_from_slice(datagram);
        Open::Deliver { peer, len: datagram.len() }
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
    use culvert_core::profile::UdpPeer;

    fn core() -> TapCore {
        TapCore::new(&TapTunnel {
            interface: None,
            address: vec![],
            listen_port: 1,
            mtu: None,
            mac: None,
            peers: vec![
                UdpPeer { endpoint: "192.0.2.2:1".parse().unwrap(), allowed_ips: vec![] },
                UdpPeer { endpoint: "192.0.2.3:1".parse().unwrap(), allowed_ips: vec![] },
            ],
        })
    }

    fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
        let mut f = dst.to_vec();
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 20]);
        f
    }

    #[test]
    fn floods_until_it_learns_then_switches() {
        let c = core();
        let mut out = [0u8; 64];
        let b = [2, 0, 0, 0, 0, 0xb];
        let me = [2, 0, 0, 0, 0, 0xa];
        assert!(matches!(c.seal(&frame(b, me), &mut out), Seal::Flood { .. }));
        assert!(matches!(c.seal(&frame([0xff; 6], me), &mut out), Seal::Flood { .. }));
        // B speaks from the second peer: frames for B now go there only.
        assert!(matches!(
            c.open("192.0.2.3:1".parse().unwrap(), &frame(me, b), &mut out),
            Open::Deliver { peer: 1, .. }
        ));
        assert!(matches!(c.seal(&frame(b, me), &mut out), Seal::Send { peer: 1, .. }));
        assert!(matches!(c.seal(&frame([0xff; 6], me), &mut out), Seal::Flood { .. }), "broadcast still floods");
    }

    #[test]
    fn ip_frames_of_a_peer_with_allowed_ips_must_come_from_them() {
        let c = TapCore::new(&TapTunnel {
            interface: None,
            address: vec![],
            listen_port: 1,
            mtu: None,
            mac: None,
            peers: vec![
                UdpPeer { endpoint: "192.0.2.2:1".parse().unwrap(), allowed_ips: vec!["10.9.0.2/32".parse().unwrap()] },
                UdpPeer { endpoint: "192.0.2.3:1".parse().unwrap(), allowed_ips: vec![] },
            ],
        });
        let ip_frame = |src: &str| {
            let mut f = vec![2, 0, 0, 0, 0, 0xa, 2, 0, 0, 0, 0, 0xb, 0x08, 0x00];
            f.extend(crate::dataplane::packet::build::ip(src.parse().unwrap(), "10.9.0.1".parse().unwrap(), b"x"));
            f
        };
        let (restricted, bridged) = ("192.0.2.2:1".parse().unwrap(), "192.0.2.3:1".parse().unwrap());
        let mut out = [0u8; 128];
        assert!(matches!(c.open(restricted, &ip_frame("10.9.0.2"), &mut out), Open::Deliver { peer: 0, .. }));
        assert_eq!(c.open(restricted, &ip_frame("10.9.0.77"), &mut out), Open::Drop(DropReason::SpoofedSource));
        let mut arp = frame([0xff; 6], [2, 0, 0, 0, 0, 0xb]);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(matches!(c.open(restricted, &arp, &mut out), Open::Deliver { .. }), "ARP is not IP");
        assert!(matches!(c.open(bridged, &ip_frame("10.9.0.77"), &mut out), Open::Deliver { peer: 1, .. }));
    }

    #[test]
    fn strangers_and_runts_are_dropped() {
        let c = core();
        let mut out = [0u8; 64];
        let f = frame([2; 6], [4; 6]);
        assert_eq!(c.open("192.0.2.9:1".parse().unwrap(), &f, &mut out), Open::Drop(DropReason::UnknownPeer));
        assert_eq!(c.open("192.0.2.2:1".parse().unwrap(), &f[..10], &mut out), Open::Drop(DropReason::Malformed));
        assert_eq!(c.seal(&f[..13], &mut out), Seal::Drop(DropReason::Malformed));
    }
}
