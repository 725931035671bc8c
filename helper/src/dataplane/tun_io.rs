//! The real tunnel device: a tun-rs TUN with offloads, so one read can carry a 64 KiB TCP super-packet and one
//! write many coalesced segments. Its descriptor is non-blocking: the engine's threads read until it is empty
//! and then wait for it with the datapath's [`Stop`].

use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;

use tun_rs::{DeviceBuilder, SyncDevice, VIRTIO_NET_HDR_LEN};

use super::gro::{self, Coalescer, ETHERNET};
use super::gso;
use super::io::{IDLE_AFTER, Read, TunReader, TunWriter};
use super::wait::{Stop, Wake};

/// Linux gives TUN devices a 500-packet queue; a deeper one absorbs the bursts a batch writer makes
/// (Firezone raised it for the same reason, DATAPLANE.md 7.4).
const TX_QUEUE_LEN: u32 = 1000;

/// The device a userspace tunnel's engine reads and writes.
#[derive(Clone)]
pub enum Device {
    /// A TUN device, or with `frames` a TAP device (Ethernet frames); both with the virtio-net header.
    Kernel { dev: Arc<SyncDevice>, frames: bool },
    /// A device that never carries a packet (reads wait for the stop, writes vanish), for unit tests of
    /// bring-up over the in-memory kernel. It holds a guard whose drop removes its link, as dropping a kernel
    /// TUN destroys it.
    #[cfg(test)]
    Silent(Arc<dyn std::any::Any + Send + Sync>),
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Kernel { frames, .. } => write!(f, "Device::Kernel {{ frames: {frames} }}"),
            #[cfg(test)]
            Self::Silent(_) => f.write_str("Device::Silent"),
        }
    }
}

impl Device {
    /// Whether the device was deleted (`ip link del`, in whatever namespace it was moved to): the descriptor then
    /// belongs to no device, and asking it for its name fails.
    pub fn gone(&self) -> bool {
        match self {
            Self::Kernel { dev, .. } => dev.name().is_err(),
            #[cfg(test)]
            Self::Silent(_) => false,
        }
    }
}

/// Creates the TUN device `name`, or with `tap` a TAP device (Ethernet frames), with offloads: a read may be a
/// TCP or UDP super-packet, and writes may be. It is not persistent: it disappears when the last handle is
/// dropped. tun-rs splits a TUN device's reads; a TAP device's are split here ([`gso`]).
pub fn create(name: &str, mtu: u16, tap: bool) -> io::Result<Device> {
    let builder = DeviceBuilder::new().name(name).mtu(mtu).tx_queue_len(TX_QUEUE_LEN).enable(false).offload(true);
    let builder = if tap { builder.layer(tun_rs::Layer::L2) } else { builder };
    let device = builder.build_sync()?;
    device.set_nonblocking(true)?;
    Ok(Device::Kernel { dev: Arc::new(device), frames: tap })
}

pub struct DeviceReader {
    dev: Device,
    stop: Arc<Stop>,
    /// One raw read: the virtio-net header and a packet of up to 64 KiB before it is split. Empty while the
    /// tunnel is idle.
    scratch: Vec<u8>,
    /// Something was read since the reader last said [`Read::Idle`].
    busy: bool,
}

impl DeviceReader {
    pub fn new(dev: Device, stop: Arc<Stop>) -> Self {
        Self { dev, stop, scratch: Vec::new(), busy: false }
    }
}

impl TunReader for DeviceReader {
    fn recv(&mut self, bufs: &mut [Vec<u8>], sizes: &mut [usize]) -> io::Result<Read> {
        let Self { dev, stop, scratch, busy } = self;
        // One arm outside unit tests, where the silent device does not exist.
        #[cfg_attr(not(test), allow(clippy::infallible_destructuring_match))]
        let (dev, frames) = match dev {
            Device::Kernel { dev, frames } => (dev, *frames),
            #[cfg(test)]
            Device::Silent(_) => return stop.wait_for_stop().map(|()| Read::Stop),
        };
        loop {
            if stop.stopping() {
                return Ok(Read::Stop);
            }
            if scratch.is_empty() {
                // Allocated zeroed rather than resized: resizing writes every byte of it (see engine::zeroed_buffers).
                *scratch = vec![0u8; VIRTIO_NET_HDR_LEN + 65_535];
            }
            let read = if frames {
                dev.recv(scratch).and_then(|len| {
                    gso::split(&scratch[..len], ETHERNET, bufs, sizes).map_err(|e| io::Error::other(e.to_string()))
                })
            } else {
                dev.recv_multiple(scratch, bufs, sizes, 0)
            };
            match read {
                Ok(n) => {
                    *busy = true;
                    return Ok(Read::Packets(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match stop.wait_readable(dev.as_fd(), busy.then_some(IDLE_AFTER))? {
                        Wake::Ready => {}
                        Wake::Stop => return Ok(Read::Stop),
                        Wake::Timeout => {
                            *busy = false;
                            *scratch = Vec::new();
                            return Ok(Read::Idle);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A packet the splitter cannot handle is lost on its own; the device stays usable.
                Err(e) if e.kind() != io::ErrorKind::Other || e.raw_os_error().is_some() => return Err(e),
                Err(e) => tracing::debug!("dropped an unsplittable packet from the tunnel device: {e}"),
            }
        }
    }

    fn wait_ready(&mut self) -> io::Result<bool> {
        match &self.dev {
            Device::Kernel { dev, .. } => Ok(self.stop.wait_readable(dev.as_fd(), None)? == Wake::Ready),
            #[cfg(test)]
            Device::Silent(_) => self.stop.wait_for_stop().map(|()| false),
        }
    }
}

pub struct DeviceWriter {
    dev: Device,
    gro: Coalescer,
}

impl std::fmt::Debug for DeviceWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceWriter").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for DeviceReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceReader").field("scratch", &self.scratch.len()).finish_non_exhaustive()
    }
}

impl DeviceWriter {
    /// A writer of batches of up to `batch` packets.
    pub fn new(dev: Device, batch: usize) -> Self {
        let link = match &dev {
            Device::Kernel { frames: true, .. } => ETHERNET,
            _ => 0,
        };
        Self { dev, gro: Coalescer::new(batch, link) }
    }
}

/// The device's descriptor as the coalescer writes to it.
struct Fd<'a>(&'a SyncDevice);

impl gro::Sink for Fd<'_> {
    fn write(&mut self, packet: &[u8]) -> io::Result<()> {
        nix::unistd::write(self.0.as_fd(), packet).map(|_| ()).map_err(io::Error::from)
    }

    fn writev(&mut self, parts: &[io::IoSlice<'_>]) -> io::Result<()> {
        nix::sys::uio::writev(self.0.as_fd(), parts).map(|_| ()).map_err(io::Error::from)
    }
}

impl TunWriter for DeviceWriter {
    fn send(&mut self, bufs: &mut [Vec<u8>]) -> io::Result<()> {
        match &self.dev {
            // A write never waits: the packet goes into the kernel's receive path at once.
            Device::Kernel { dev, .. } => self.gro.write_all(bufs, &mut Fd(dev)),
            #[cfg(test)]
            Device::Silent(_) => Ok(()),
        }
    }
}
