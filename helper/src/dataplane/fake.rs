//! In-memory stand-ins for the tunnel device and the UDP socket, so whole engines can be tested without root.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::io::{RecvMeta, TUN_HEADROOM, TunReader, TunWriter, UdpReader, UdpWriter};

pub struct FakeTunReader(UnboundedReceiver<Vec<u8>>);
pub struct FakeTunWriter(UnboundedSender<Vec<u8>>);

/// The host's side of a fake tunnel device.
pub struct Host {
    to_device: UnboundedSender<Vec<u8>>,
    from_device: tokio::sync::Mutex<UnboundedReceiver<Vec<u8>>>,
}

pub fn tun() -> ((FakeTunReader, FakeTunWriter), Host) {
    let (to_device, device_in) = unbounded_channel();
    let (device_out, from_device) = unbounded_channel();
    ((FakeTunReader(device_in), FakeTunWriter(device_out)), Host { to_device, from_device: from_device.into() })
}

impl Host {
    /// Packets the host routes into the tunnel, all at once.
    pub async fn write(&self, packets: Vec<Vec<u8>>) {
        for p in packets {
            self.to_device.send(p).expect("device gone");
        }
        tokio::task::yield_now().await;
    }

    pub async fn read(&self, within: Duration) -> Vec<u8> {
        let mut rx = self.from_device.lock().await;
        tokio::time::timeout(within, rx.recv()).await.expect("no packet came out of the tunnel").expect("device gone")
    }

    pub fn try_read(&self) -> Option<Vec<u8>> {
        self.from_device.try_lock().ok()?.try_recv().ok()
    }
}

impl TunReader for FakeTunReader {
    async fn recv(&mut self, bufs: &mut [Vec<u8>], sizes: &mut [usize]) -> io::Result<usize> {
        let first = self.0.recv().await.ok_or_else(|| io::Error::other("host gone"))?;
        let mut next = Some(first);
        let mut n = 0;
        while let Some(p) = next {
            bufs[n][..p.len()].copy_from_slice(&p);
            sizes[n] = p.len();
            n += 1;
            next = if n < bufs.len() { self.0.try_recv().ok() } else { None };
        }
        Ok(n)
    }
}

impl TunWriter for FakeTunWriter {
    async fn send(&mut self, bufs: &mut [Vec<u8>]) -> io::Result<()> {
        for b in bufs {
            self.0.send(b[TUN_HEADROOM..].to_vec()).map_err(|_| io::Error::other("host gone"))?;
        }
        Ok(())
    }
}

type Inbox = UnboundedSender<(SocketAddr, Vec<u8>)>;

/// A network joining fake sockets by address; it counts the send calls of each.
#[derive(Clone, Default)]
pub struct Wire {
    sockets: Arc<Mutex<HashMap<SocketAddr, Inbox>>>,
    sends: Arc<Mutex<HashMap<SocketAddr, usize>>>,
}

pub struct FakeUdpReader(UnboundedReceiver<(SocketAddr, Vec<u8>)>);
pub struct FakeUdpWriter {
    wire: Wire,
    me: SocketAddr,
    max_segments: usize,
}

impl Wire {
    pub fn socket(&self, me: SocketAddr, max_segments: usize) -> (FakeUdpReader, FakeUdpWriter) {
        let (tx, rx) = unbounded_channel();
        self.sockets.lock().expect("poisoned").insert(me, tx);
        (FakeUdpReader(rx), FakeUdpWriter { wire: self.clone(), me, max_segments })
    }

    /// Another sending handle of the socket `me`.
    pub fn sender(&self, me: SocketAddr, max_segments: usize) -> FakeUdpWriter {
        FakeUdpWriter { wire: self.clone(), me, max_segments }
    }

    pub fn inject(&self, from: SocketAddr, to: SocketAddr, datagram: &[u8]) {
        if let Some(inbox) = self.sockets.lock().expect("poisoned").get(&to) {
            let _ = inbox.send((from, datagram.to_vec()));
        }
    }

    pub fn sends_from(&self, addr: SocketAddr) -> usize {
        self.sends.lock().expect("poisoned").get(&addr).copied().unwrap_or(0)
    }
}

impl UdpReader for FakeUdpReader {
    async fn recv(&mut self, bufs: &mut [Vec<u8>], meta: &mut [RecvMeta]) -> io::Result<usize> {
        let first = self.0.recv().await.ok_or_else(|| io::Error::other("wire gone"))?;
        let mut next = Some(first);
        let mut n = 0;
        while let Some((from, d)) = next {
            bufs[n][..d.len()].copy_from_slice(&d);
            let mut m = RecvMeta::default();
            m.addr = from;
            m.len = d.len();
            m.stride = d.len();
            meta[n] = m;
            n += 1;
            next = if n < bufs.len() { self.0.try_recv().ok() } else { None };
        }
        Ok(n)
    }
}

impl UdpWriter for FakeUdpWriter {
    fn max_segments(&self) -> usize {
        self.max_segments
    }

    async fn send(&mut self, to: SocketAddr, contents: &[u8], segment_size: usize) -> io::Result<()> {
        *self.wire.sends.lock().expect("poisoned").entry(self.me).or_default() += 1;
        for d in contents.chunks(segment_size.max(1)) {
            self.wire.inject(self.me, to, d);
        }
        Ok(())
    }
}
