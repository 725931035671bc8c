//! In-memory stand-ins for the tunnel device and the UDP socket, so whole engines can be tested without root.
//! Their readers end (read no packet) once the datapath's [`Stop`] says so, as the real ones do.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::io::{Read, RecvMeta, TUN_HEADROOM, TunReader, TunWriter, UdpReader, UdpWriter};
use super::wait::Stop;

/// How often a fake reader with nothing to read looks whether the datapath stops.
const STOP_POLL: Duration = Duration::from_millis(5);

/// Waits for the first item of a batch, or for the stop: `None` when the datapath stops.
fn first<T>(rx: &Receiver<T>, stop: &Stop) -> io::Result<Option<T>> {
    loop {
        if stop.stopping() {
            return Ok(None);
        }
        match rx.recv_timeout(STOP_POLL) {
            Ok(item) => return Ok(Some(item)),
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return Err(io::Error::other("the other end is gone")),
        }
    }
}

pub struct FakeTunReader {
    rx: Receiver<Vec<u8>>,
    stop: Arc<Stop>,
}
pub struct FakeTunWriter(Sender<Vec<u8>>);

/// The host's side of a fake tunnel device.
pub struct Host {
    to_device: Sender<Vec<u8>>,
    from_device: Mutex<Receiver<Vec<u8>>>,
}

pub fn tun(stop: &Arc<Stop>) -> ((FakeTunReader, FakeTunWriter), Host) {
    let (to_device, device_in) = channel();
    let (device_out, from_device) = channel();
    let reader = FakeTunReader { rx: device_in, stop: stop.clone() };
    ((reader, FakeTunWriter(device_out)), Host { to_device, from_device: from_device.into() })
}

impl Host {
    /// Packets the host routes into the tunnel, all at once.
    pub fn write(&self, packets: Vec<Vec<u8>>) {
        for p in packets {
            self.to_device.send(p).expect("device gone");
        }
    }

    pub fn read(&self, within: Duration) -> Vec<u8> {
        let rx = self.from_device.lock().expect("poisoned");
        rx.recv_timeout(within).expect("no packet came out of the tunnel")
    }

    pub fn try_read(&self) -> Option<Vec<u8>> {
        self.from_device.lock().ok()?.try_recv().ok()
    }
}

impl TunReader for FakeTunReader {
    fn recv(&mut self, bufs: &mut [Vec<u8>], sizes: &mut [usize]) -> io::Result<Read> {
        let Some(first) = first(&self.rx, &self.stop)? else { return Ok(Read::Stop) };
        let mut next = Some(first);
        let mut n = 0;
        while let Some(p) = next {
            bufs[n][..p.len()].copy_from_slice(&p);
            sizes[n] = p.len();
            n += 1;
            next = if n < bufs.len() { self.rx.try_recv().ok() } else { None };
        }
        Ok(Read::Packets(n))
    }

    /// A fake device cannot be looked at without reading: the read that follows waits instead.
    fn wait_ready(&mut self) -> io::Result<bool> {
        Ok(!self.stop.stopping())
    }
}

impl TunWriter for FakeTunWriter {
    fn send(&mut self, bufs: &mut [Vec<u8>]) -> io::Result<()> {
        for b in bufs {
            self.0.send(b[TUN_HEADROOM..].to_vec()).map_err(|_| io::Error::other("host gone"))?;
        }
        Ok(())
    }
}

type Inbox = Sender<(SocketAddr, Vec<u8>)>;

/// A network joining fake sockets by address; it counts the send calls of each.
#[derive(Clone, Default)]
pub struct Wire {
    sockets: Arc<Mutex<HashMap<SocketAddr, Inbox>>>,
    sends: Arc<Mutex<HashMap<SocketAddr, usize>>>,
}

pub struct FakeUdpReader {
    rx: Receiver<(SocketAddr, Vec<u8>)>,
    stop: Arc<Stop>,
}
pub struct FakeUdpWriter {
    wire: Wire,
    me: SocketAddr,
    max_segments: usize,
}

impl Wire {
    pub fn socket(&self, me: SocketAddr, max_segments: usize, stop: &Arc<Stop>) -> (FakeUdpReader, FakeUdpWriter) {
        let (tx, rx) = channel();
        self.sockets.lock().expect("poisoned").insert(me, tx);
        (FakeUdpReader { rx, stop: stop.clone() }, FakeUdpWriter { wire: self.clone(), me, max_segments })
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
    fn recv(&mut self, bufs: &mut [Vec<u8>], meta: &mut [RecvMeta]) -> io::Result<Read> {
        let Some(first) = first(&self.rx, &self.stop)? else { return Ok(Read::Stop) };
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
            next = if n < bufs.len() { self.rx.try_recv().ok() } else { None };
        }
        Ok(Read::Packets(n))
    }

    fn wait_ready(&mut self) -> io::Result<bool> {
        Ok(!self.stop.stopping())
    }
}

impl UdpWriter for FakeUdpWriter {
    fn max_segments(&self) -> usize {
        self.max_segments
    }

    fn send(&mut self, to: SocketAddr, _from: Option<IpAddr>, contents: &[u8], segment_size: usize) -> io::Result<()> {
        *self.wire.sends.lock().expect("poisoned").entry(self.me).or_default() += 1;
        for d in contents.chunks(segment_size.max(1)) {
            self.wire.inject(self.me, to, d);
        }
        Ok(())
    }
}
