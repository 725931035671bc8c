//! The batch seams between the engine and the operating system.
//!
//! Each direction of a tunnel is a thread that owns one reader and one writer, so each seam takes `&mut self` and
//! keeps its own scratch state. All buffers are the caller's and reused from batch to batch. Reads and sends
//! block until they can go on (see [`super::wait`]); a read that returns no packet means the datapath is
//! stopping.

use std::io;
use std::net::SocketAddr;

pub use quinn_udp::RecvMeta;

/// Bytes kept free in front of every packet written to the tunnel device, for the virtio-net header the
/// offloading TUN device puts there.
pub const TUN_HEADROOM: usize = tun_rs::VIRTIO_NET_HDR_LEN;

pub trait TunReader: Send + 'static {
    /// Waits for the device and reads at least one packet: packet `i` is `bufs[i][..sizes[i]]`. Returns how
    /// many were read; 0 when the datapath is stopping.
    fn recv(&mut self, bufs: &mut [Vec<u8>], sizes: &mut [usize]) -> io::Result<usize>;
}

pub trait TunWriter: Send + 'static {
    /// Writes every packet of `bufs`, each starting at [`TUN_HEADROOM`]. May rewrite the buffers.
    fn send(&mut self, bufs: &mut [Vec<u8>]) -> io::Result<()>;
}

pub trait UdpReader: Send + 'static {
    /// Waits for datagrams and reads at least one buffer: `bufs[i][..meta[i].len]` holds datagrams of
    /// `meta[i].stride` bytes each (the last may be shorter), all from `meta[i].addr`. Returns how many buffers
    /// were filled; 0 when the datapath is stopping.
    fn recv(&mut self, bufs: &mut [Vec<u8>], meta: &mut [RecvMeta]) -> io::Result<usize>;
}

pub trait UdpWriter: Send + 'static {
    /// How many equal-sized datagrams one [`UdpWriter::send`] may carry.
    fn max_segments(&self) -> usize;
    /// Sends `contents` to `to` as datagrams of `segment_size` bytes (the last may be shorter), waiting while
    /// the socket is full.
    fn send(&mut self, to: SocketAddr, contents: &[u8], segment_size: usize) -> io::Result<()>;
}
