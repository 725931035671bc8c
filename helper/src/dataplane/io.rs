//! The batch seams between the engine and the operating system.
//!
//! Each direction of a tunnel is a thread that owns one reader and one writer, so each seam takes `&mut self` and
//! keeps its own scratch state. All buffers are the caller's and reused from batch to batch. Reads and sends
//! block until they can go on (see [`super::wait`]).
//!
//! A tunnel that carries nothing keeps none of its large buffers: a reader that found nothing for
//! [`IDLE_AFTER`] after traffic says [`Read::Idle`], the loop gives its buffers back, and it takes them again
//! once [`TunReader::wait_ready`] says a packet is there. A tunnel that never carried anything never takes them.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use quinn_udp::RecvMeta;

/// Bytes kept free in front of every packet written to the tunnel device, for the virtio-net header the
/// offloading TUN device puts there.
pub const TUN_HEADROOM: usize = tun_rs::VIRTIO_NET_HDR_LEN;

/// How long a reader that has carried traffic waits for more before it says the tunnel is idle. 64 idle
/// tunnels held 1.5 MiB each in buffers they did not use.
pub const IDLE_AFTER: Duration = Duration::from_secs(5);

/// What a read gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// This many packets (or buffers of datagrams): at least one.
    Packets(usize),
    /// Nothing came for [`IDLE_AFTER`]: a time to give buffers back.
    Idle,
    /// The datapath is stopping.
    Stop,
}

pub trait TunReader: Send + 'static {
    /// Waits for the device and reads at least one packet: packet `i` is `bufs[i][..sizes[i]]`.
    fn recv(&mut self, bufs: &mut [Vec<u8>], sizes: &mut [usize]) -> io::Result<Read>;
    /// Waits until a packet is there to read (`false`: the datapath is stopping), with no buffer of the
    /// caller's; the reader gave its own back when it last said [`Read::Idle`].
    fn wait_ready(&mut self) -> io::Result<bool>;
}

pub trait TunWriter: Send + 'static {
    /// Writes every packet of `bufs`, each starting at [`TUN_HEADROOM`]. May rewrite the buffers.
    fn send(&mut self, bufs: &mut [Vec<u8>]) -> io::Result<()>;
}

pub trait UdpReader: Send + 'static {
    /// Waits for datagrams and reads at least one buffer: `bufs[i][..meta[i].len]` holds datagrams of
    /// `meta[i].stride` bytes each (the last may be shorter), all from `meta[i].addr`.
    fn recv(&mut self, bufs: &mut [Vec<u8>], meta: &mut [RecvMeta]) -> io::Result<Read>;
    /// As [`TunReader::wait_ready`].
    fn wait_ready(&mut self) -> io::Result<bool>;
}

pub trait UdpWriter: Send + 'static {
    /// How many equal-sized datagrams one [`UdpWriter::send`] may carry.
    fn max_segments(&self) -> usize;
    /// Sends `contents` to `to` as datagrams of `segment_size` bytes (the last may be shorter), waiting while
    /// the socket is full; from the local address `from` when given (the one the peer last reached us at, so
    /// that a host with several answers from the address it was asked at), else from the one routing picks.
    /// When the host no longer has `from`, it sends from the one routing picks.
    fn send(&mut self, to: SocketAddr, from: Option<IpAddr>, contents: &[u8], segment_size: usize) -> io::Result<()>;
}
