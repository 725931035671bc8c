//! What a tunnel kind does to packets, without IO: the engine hands it packets and datagrams and does what the
//! answers say. The `udp` kind copies; `wireguard` encrypts, decrypts and keeps sessions.

use std::net::{IpAddr, SocketAddr};

use super::counters::{DropReason, Traffic};

/// What became of a packet from the device, or of a timer tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seal {
    /// Send `out[..len]` to `to`. `inner` is the size of the device packet it carries (0 for protocol messages
    /// such as handshakes and keepalives).
    Send {
        peer: usize,
        to: SocketAddr,
        len: usize,
        inner: usize,
    },
    /// Send `out[..len]` to every peer (a layer-2 broadcast, or a frame for an address not learnt yet).
    Flood {
        len: usize,
        inner: usize,
    },
    /// Nothing to send now (WireGuard queues packets while it shakes hands).
    Nothing,
    Drop(DropReason),
}

/// What became of a datagram from the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// Write the packet `out[..len]` to the device.
    Deliver {
        peer: usize,
        len: usize,
    },
    /// Send `out[..len]` back to `to`; then, for a known `peer`, send what [`Protocol::flush`] gives.
    Reply {
        peer: Option<usize>,
        to: SocketAddr,
        len: usize,
    },
    /// Refuse the datagram for `reason` (counted as a drop), answering `to` with `out[..len]`: a WireGuard
    /// cookie reply to a handshake that came while the device was under load.
    Refuse {
        to: SocketAddr,
        len: usize,
        reason: DropReason,
    },
    Nothing,
    Drop(DropReason),
}

pub trait Protocol: Send + Sync + 'static {
    /// Bytes a sealed datagram may add to its packet.
    const OVERHEAD: usize;
    /// Whether [`Protocol::tick`] must run (every [`TICK`](super::engine::TICK)).
    const TIMERS: bool;

    /// Seals a packet read from the device into `out`, which has `packet.len() + OVERHEAD` bytes at least.
    fn seal(&self, packet: &[u8], out: &mut [u8]) -> Seal;
    /// Opens a datagram received from `from` into `out`, which is at least as long as the datagram.
    fn open(&self, from: SocketAddr, datagram: &[u8], out: &mut [u8]) -> Open;
    /// After a [`Open::Reply`], more datagrams for `peer` (packets queued during a handshake); called until it
    /// returns [`Seal::Nothing`].
    fn flush(&self, _peer: usize, _out: &mut [u8]) -> Seal {
        Seal::Nothing
    }
    /// Timers of `peer`: handshakes to retry, keepalives to send.
    fn tick(&self, _peer: usize, _out: &mut [u8]) -> Seal {
        Seal::Nothing
    }
    /// Once a second, for per-tunnel housekeeping such as rate limiter resets.
    fn every_second(&self) {}
    /// `peer`'s authenticated datagrams arrive at `local`, the host's own address: sends to it go from there.
    fn arrived_at(&self, _peer: usize, _local: IpAddr) {}
    /// The local address to send to `peer` from, if it is known (see [`Protocol::arrived_at`]).
    fn source(&self, _peer: usize) -> Option<IpAddr> {
        None
    }
    /// Where `peer` is, for sends to every peer ([`Seal::Flood`]).
    fn peer_endpoint(&self, _peer: usize) -> Option<SocketAddr> {
        None
    }
    fn peer_count(&self) -> usize;
    fn traffic(&self, peer: usize) -> &Traffic;
}
