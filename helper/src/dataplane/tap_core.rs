//! The `tap` kind without IO: one Ethernet frame per datagram, peers by endpoint, frames switched by a MAC
//! table learnt from what each peer sends, as a bridge does; broadcast, multicast and unknown destinations go
//! to every peer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use culvert_core::profile::TapTunnel;
use culvert_core::stats::PeerStatus;

use super::counters::{DropReason, Traffic};
use super::protocol::{Open, Protocol, Seal};
use super::udp_core::{Peer, canonical};

const ETHERNET_HEADER: usize = 14;
/// Learnt MACs at most, so that a peer sending from random addresses cannot grow the table without bound.
const MAX_LEARNT: usize = 4096;

#[derive(Debug)]
pub struct TapCore {
    pub peers: Vec<Peer>,
    by_endpoint: HashMap<SocketAddr, usize>,
    macs: RwLock<HashMap<[u8; 6], usize>>,
}

fn is_unicast(mac: &[u8]) -> bool {
    mac.first().is_some_and(|b| b & 1 == 0)
}

impl TapCore {
    pub fn new(config: &TapTunnel) -> Self {
        let peers: Vec<Peer> = config
            .peers
            .iter()
            .map(|p| Peer {
                endpoint: canonical(p.endpoint),
                allowed_ips: p.allowed_ips.clone(),
                traffic: Arc::default(),
            })
            .collect();
        let by_endpoint = peers.iter().enumerate().map(|(i, p)| (p.endpoint, i)).collect();
        Self { peers, by_endpoint, macs: RwLock::default() }
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

impl crate::tunnel::StatusSource for TapCore {
    fn peers(&self) -> Vec<PeerStatus> {
        self.peers.iter().map(Peer::status).collect()
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
    fn strangers_and_runts_are_dropped() {
        let c = core();
        let mut out = [0u8; 64];
        let f = frame([2; 6], [4; 6]);
        assert_eq!(c.open("192.0.2.9:1".parse().unwrap(), &f, &mut out), Open::Drop(DropReason::UnknownPeer));
        assert_eq!(c.open("192.0.2.2:1".parse().unwrap(), &f[..10], &mut out), Open::Drop(DropReason::Malformed));
        assert_eq!(c.seal(&f[..13], &mut out), Seal::Drop(DropReason::Malformed));
    }
}
