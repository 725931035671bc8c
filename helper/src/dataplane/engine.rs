//! The IO shell of the userspace kinds: one loop per direction plus a timer loop, each a thread of its own
//! (see [`super::wait`]), each batch-first with buffers allocated once. What happens to each packet is the
//! [`Protocol`]'s business: each loop loads the current protocol core once per batch ([`Live`]), so peers
//! change without the loops stopping. A loop ends when its reader says the datapath is stopping.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::counters::{DropReason, TunnelCounters};
use super::io::{Read, RecvMeta, TUN_HEADROOM, TunReader, TunWriter, UdpReader, UdpWriter};
use super::live::Live;
use super::protocol::{Open, Protocol, Seal};
use super::sampler::Sampler;
use super::wait::Stop;
use crate::system::memory;
use culvert_core::packets::Direction;

/// Packets per TUN batch: tun-rs splits one offloaded read into at most this many (its `IDEAL_BATCH_SIZE`),
/// and a 64 KiB super-packet at MTU 576 is about 120 segments.
pub const TUN_BATCH: usize = tun_rs::IDEAL_BATCH_SIZE;
/// UDP receive buffers per recvmmsg call.
pub const UDP_SLOTS: usize = 16;
/// One UDP receive buffer holds a GRO batch of up to 64 datagrams of the largest tunnel MTU.
pub const UDP_SLOT_BYTES: usize = 64 * 1024;
/// The kernel refuses UDP GSO sends over 64 KiB.
const MAX_GSO_BYTES: usize = 65_000;
/// How often protocol timers run: boringtun's own device uses 250 ms (DATAPLANE.md 1.1).
pub const TICK: Duration = Duration::from_millis(250);

/// Bytes a buffer for one tunnel packet needs.
fn packet_capacity(mtu: u16) -> usize {
    usize::from(mtu).max(1280) + 64
}

/// `n` buffers of `len` zero bytes, each allocated zeroed: `vec![vec![0; len]; n]` would clone the first and so
/// write every byte, where a zeroed allocation may leave the pages to the kernel until a packet touches them.
fn zeroed_buffers(n: usize, len: usize) -> Vec<Vec<u8>> {
    (0..n).map(|_| vec![0u8; len]).collect()
}

/// Drops counted over a batch and added to the shared counters once.
#[derive(Default)]
struct Tally([u64; DropReason::ALL.len()]);

impl Tally {
    fn add(&mut self, reason: DropReason) {
        self.0[reason as usize] += 1;
    }

    fn apply(&mut self, counters: &TunnelCounters) {
        for (reason, n) in DropReason::ALL.iter().zip(&mut self.0) {
            counters.drop_packets(*reason, std::mem::take(n));
        }
    }
}

/// The outbound direction's buffers: taken when traffic comes, given back when it stops.
struct OutBuffers {
    bufs: Vec<Vec<u8>>,
    sizes: Vec<usize>,
    run: Run,
}

/// Reads packets from the tunnel device, seals each, and sends the datagrams in GSO runs where they allow it.
pub fn outbound<P: Protocol>(
    live: Arc<Live<P>>,
    counters: Arc<TunnelCounters>,
    sampler: Arc<Sampler>,
    mut tun: impl TunReader,
    mut udp: impl UdpWriter,
    mtu: u16,
) -> io::Result<()> {
    let mut buffers: Option<OutBuffers> = None;
    let mut drops = Tally::default();
    loop {
        let b = match &mut buffers {
            Some(b) => b,
            None => {
                if !tun.wait_ready()? {
                    return Ok(());
                }
                buffers.insert(OutBuffers {
                    bufs: zeroed_buffers(TUN_BATCH, packet_capacity(mtu)),
                    sizes: vec![0usize; TUN_BATCH],
                    run: Run::new(udp.max_segments(), packet_capacity(mtu) + P::OVERHEAD),
                })
            }
        };
        let n = match tun.recv(&mut b.bufs, &mut b.sizes)? {
            Read::Packets(n) => n,
            Read::Stop => return Ok(()),
            Read::Idle => {
                buffers = None;
                memory::released(memory::WORTH_IT);
                continue;
            }
        };
        let proto = live.load();
        let run = &mut b.run;
        for (buf, &size) in b.bufs.iter().zip(&b.sizes).take(n) {
            sampler.offer(Direction::Out, &buf[..size]);
            match proto.seal(&buf[..size], run.spare()) {
                Seal::Send { peer, to, len, inner } => run.add(peer, to, len, inner, &*proto, &counters, &mut udp),
                Seal::Flood { len, inner } => run.flood(len, inner, &*proto, &counters, &mut udp),
                Seal::Nothing => {}
                Seal::Drop(reason) => drops.add(reason),
            }
        }
        run.send(&*proto, &counters, &mut udp);
        drops.apply(&counters);
    }
}

/// Consecutive datagrams to one peer, all of one size but the last, sent with one GSO call. Each datagram is
/// sealed straight into the run's buffer.
struct Run {
    buf: Vec<u8>,
    used: usize,
    peer: usize,
    to: SocketAddr,
    /// The local address the run goes from, when the peer's is known.
    from: Option<IpAddr>,
    segment: usize,
    /// The device packet size each datagram carries (0 for protocol messages).
    inner: Vec<usize>,
    max_segments: usize,
}

impl Run {
    fn new(max_segments: usize, max_datagram: usize) -> Self {
        let max_segments = max_segments.clamp(1, 64);
        Self {
            buf: vec![0; MAX_GSO_BYTES + max_datagram],
            used: 0,
            peer: 0,
            to: SocketAddr::from(([0, 0, 0, 0], 0)),
            from: None,
            segment: 0,
            inner: Vec::with_capacity(max_segments),
            max_segments,
        }
    }

    /// Where the next datagram is sealed.
    fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.used..]
    }

    /// Takes the datagram just sealed at [`Run::spare`] into the run, sending what it cannot join first.
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        peer: usize,
        to: SocketAddr,
        len: usize,
        inner: usize,
        proto: &impl Protocol,
        counters: &TunnelCounters,
        udp: &mut impl UdpWriter,
    ) {
        let start = self.used;
        let joins = peer == self.peer && to == self.to && len <= self.segment && start + len <= MAX_GSO_BYTES;
        if !self.inner.is_empty() && !joins {
            self.send(proto, counters, udp);
            self.buf.copy_within(start..start + len, 0);
        }
        if self.inner.is_empty() {
            self.peer = peer;
            self.to = to;
            self.from = proto.source(peer);
            self.segment = len;
        }
        self.used += len;
        self.inner.push(inner);
        // A datagram shorter than the first must be the last of its run.
        if len < self.segment || self.inner.len() == self.max_segments {
            self.send(proto, counters, udp);
        }
    }

    /// Sends the datagram just sealed at [`Run::spare`] to every peer, after what the run holds.
    fn flood(
        &mut self,
        len: usize,
        inner: usize,
        proto: &impl Protocol,
        counters: &TunnelCounters,
        udp: &mut impl UdpWriter,
    ) {
        let start = self.used;
        self.send(proto, counters, udp);
        self.buf.copy_within(start..start + len, 0);
        let mut sent = false;
        for peer in 0..proto.peer_count() {
            let Some(to) = proto.peer_endpoint(peer) else { continue };
            if udp.send(to, proto.source(peer), &self.buf[..len], len).is_ok() {
                proto.traffic(peer).add_tx(1, inner as u64);
                sent = true;
            }
        }
        if sent {
            counters.traffic.add_tx(1, inner as u64);
        } else {
            counters.drop_packets(DropReason::SendFailed, 1);
        }
    }

    fn send(&mut self, proto: &impl Protocol, counters: &TunnelCounters, udp: &mut impl UdpWriter) {
        if self.inner.is_empty() {
            return;
        }
        let (mut packets, mut bytes, mut failed) = (0, 0, 0);
        let all = &self.buf[..self.used];
        let mut count = |inner: usize, ok: bool| match (ok, inner) {
            (true, 0) => {}
            (true, n) => {
                packets += 1;
                bytes += n as u64;
            }
            (false, _) => failed += 1,
        };
        match udp.send(self.to, self.from, all, self.segment) {
            Ok(()) => self.inner.iter().for_each(|n| count(*n, true)),
            Err(e) if self.inner.len() == 1 => {
                tracing::debug!("send to {} failed: {e}", self.to);
                count(self.inner[0], false);
            }
            Err(e) => {
                // No GSO on this route, or EMSGSIZE: one datagram at a time.
                tracing::debug!("GSO send of {} to {} failed ({e}); sending one by one", self.inner.len(), self.to);
                for (datagram, inner) in all.chunks(self.segment).zip(&self.inner) {
                    count(*inner, udp.send(self.to, self.from, datagram, datagram.len()).is_ok());
                }
            }
        }
        proto.traffic(self.peer).add_tx(packets, bytes);
        counters.traffic.add_tx(packets, bytes);
        counters.drop_packets(DropReason::SendFailed, failed);
        self.used = 0;
        self.inner.clear();
    }
}

/// The inbound direction's buffers: taken when traffic comes, given back when it stops.
struct InBuffers {
    slots: Vec<Vec<u8>>,
    meta: [RecvMeta; UDP_SLOTS],
    batch: TunBatch,
    flush: Vec<u8>,
}

/// Receives datagrams, opens each, and writes the packets to the tunnel device in batches; protocol replies
/// (handshake responses, queued packets) go out through `replies`.
pub fn inbound<P: Protocol>(
    live: Arc<Live<P>>,
    counters: Arc<TunnelCounters>,
    sampler: Arc<Sampler>,
    mut udp: impl UdpReader,
    mut tun: impl TunWriter,
    mut replies: impl UdpWriter,
    mtu: u16,
) -> io::Result<()> {
    let mut buffers: Option<InBuffers> = None;
    let mut drops = Tally::default();
    loop {
        let b = match &mut buffers {
            Some(b) => b,
            None => {
                if !udp.wait_ready()? {
                    return Ok(());
                }
                buffers.insert(InBuffers {
                    slots: zeroed_buffers(UDP_SLOTS, UDP_SLOT_BYTES),
                    meta: [RecvMeta::default(); UDP_SLOTS],
                    batch: TunBatch::new(packet_capacity(mtu)),
                    flush: vec![0u8; packet_capacity(mtu) + P::OVERHEAD],
                })
            }
        };
        let n = match udp.recv(&mut b.slots, &mut b.meta)? {
            Read::Packets(n) => n,
            Read::Stop => return Ok(()),
            Read::Idle => {
                buffers = None;
                memory::released(memory::WORTH_IT);
                continue;
            }
        };
        let proto = live.load();
        let batch = &mut b.batch;
        for (slot, m) in b.slots.iter().zip(&b.meta).take(n) {
            let data = &slot[..m.len.min(slot.len())];
            // The host's address these datagrams came to: replies go from it, and so do sends to their peer.
            let local = m.dst_ip.map(|ip| ip.to_canonical());
            let mut heard = None;
            for datagram in data.chunks(m.stride.max(1)) {
                let out = batch.slot(datagram.len());
                match proto.open(m.addr, datagram, out) {
                    Open::Deliver { peer, len } => {
                        heard = Some(peer);
                        sampler.offer(Direction::In, &out[..len]);
                        batch.commit(peer, len);
                        if batch.full() {
                            batch.flush(&*proto, &counters, &mut tun);
                        }
                    }
                    Open::Reply { peer, to, len } => {
                        if let Err(e) = replies.send(to, local, &out[..len], len) {
                            tracing::debug!("reply to {to} failed: {e}");
                        }
                        if let Some(peer) = peer {
                            if let Some(local) = local {
                                proto.arrived_at(peer, local);
                            }
                            send_flushed(&*proto, &counters, peer, &mut b.flush, &mut replies);
                        }
                    }
                    Open::Refuse { to, len, reason } => {
                        drops.add(reason);
                        match replies.send(to, local, &out[..len], len) {
                            Ok(()) => counters.cookie_reply_sent(),
                            Err(e) => tracing::debug!("reply to {to} failed: {e}"),
                        }
                    }
                    Open::Nothing => {}
                    Open::Drop(reason) => drops.add(reason),
                }
            }
            // Once per buffer: all its datagrams came from one sender to one address.
            if let (Some(peer), Some(local)) = (heard, local) {
                proto.arrived_at(peer, local);
            }
        }
        batch.flush(&*proto, &counters, &mut tun);
        drops.apply(&counters);
    }
}

/// Sends everything the protocol has queued for `peer`.
fn send_flushed(
    proto: &impl Protocol,
    counters: &TunnelCounters,
    peer: usize,
    buf: &mut [u8],
    udp: &mut impl UdpWriter,
) {
    while let Seal::Send { peer, to, len, inner } = proto.flush(peer, buf) {
        match udp.send(to, proto.source(peer), &buf[..len], len) {
            Ok(()) if inner > 0 => {
                proto.traffic(peer).add_tx(1, inner as u64);
                counters.traffic.add_tx(1, inner as u64);
            }
            Ok(()) => {}
            Err(_) => counters.drop_packets(DropReason::SendFailed, u64::from(inner > 0)),
        }
    }
}

/// Runs the protocol's timers every [`TICK`] and sends what they produce, until the datapath stops.
pub fn timers<P: Protocol>(
    live: Arc<Live<P>>,
    counters: Arc<TunnelCounters>,
    mut udp: impl UdpWriter,
    mtu: u16,
    stop: &Stop,
) -> io::Result<()> {
    let mut buf = vec![0u8; packet_capacity(mtu) + P::OVERHEAD];
    let ticks_per_second = (Duration::from_secs(1).as_millis() / TICK.as_millis()) as u64;
    for n in 0u64.. {
        if !stop.sleep(TICK)? {
            break;
        }
        let proto = live.load();
        if n % ticks_per_second == 0 {
            proto.every_second();
        }
        for peer in 0..proto.peer_count() {
            if let Seal::Send { to, len, inner, .. } = proto.tick(peer, &mut buf) {
                match udp.send(to, proto.source(peer), &buf[..len], len) {
                    Ok(()) if inner > 0 => {
                        proto.traffic(peer).add_tx(1, inner as u64);
                        counters.traffic.add_tx(1, inner as u64);
                    }
                    Ok(()) => {}
                    Err(e) => tracing::debug!("timer send to {to} failed: {e}"),
                }
            }
        }
    }
    Ok(())
}

/// Packets waiting to be written to the tunnel device, with what each peer contributed.
struct TunBatch {
    bufs: Vec<Vec<u8>>,
    len: usize,
    /// Packets and bytes by peer position in the core the batch was opened with; grown when peers are added.
    per_peer: Vec<(u64, u64)>,
}

impl TunBatch {
    fn new(capacity: usize) -> Self {
        let bufs = (0..TUN_BATCH).map(|_| Vec::with_capacity(TUN_HEADROOM + capacity)).collect();
        Self { bufs, len: 0, per_peer: Vec::new() }
    }

    /// Room for the next packet, of at most `max` bytes.
    fn slot(&mut self, max: usize) -> &mut [u8] {
        let buf = &mut self.bufs[self.len];
        buf.resize(TUN_HEADROOM + max, 0);
        &mut buf[TUN_HEADROOM..]
    }

    /// Keeps the packet of `len` bytes just opened into [`TunBatch::slot`].
    fn commit(&mut self, peer: usize, len: usize) {
        self.bufs[self.len].truncate(TUN_HEADROOM + len);
        self.len += 1;
        if peer >= self.per_peer.len() {
            self.per_peer.resize(peer + 1, (0, 0));
        }
        let p = &mut self.per_peer[peer];
        p.0 += 1;
        p.1 += len as u64;
    }

    fn full(&self) -> bool {
        self.len == self.bufs.len()
    }

    fn flush(&mut self, proto: &impl Protocol, counters: &TunnelCounters, tun: &mut impl TunWriter) {
        if self.len == 0 {
            return;
        }
        let written = tun.send(&mut self.bufs[..self.len]);
        let (mut packets, mut bytes) = (0, 0);
        for (peer, p) in self.per_peer.iter_mut().enumerate().filter(|(_, p)| p.0 > 0) {
            if written.is_ok() {
                proto.traffic(peer).add_rx(p.0, p.1);
            }
            packets += p.0;
            bytes += p.1;
            *p = (0, 0);
        }
        match written {
            Ok(()) => counters.traffic.add_rx(packets, bytes),
            Err(e) => {
                tracing::debug!("writing {packets} packets to the tunnel device failed: {e}");
                counters.drop_packets(DropReason::TunWriteFailed, packets);
            }
        }
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::dataplane::fake;
    use crate::dataplane::packet::build;
    use crate::dataplane::udp_core::UdpCore;
    use crate::dataplane::wg_core::WgCore;
    use culvert_core::profile::{UdpPeer, UdpTunnel};

    fn side(me: &str, peer: &str, peer_net: &str) -> UdpTunnel {
        UdpTunnel {
            interface: None,
            address: vec![me.parse().unwrap()],
            listen_port: 1,
            mtu: None,
            peers: vec![UdpPeer { endpoint: peer.parse().unwrap(), allowed_ips: vec![peer_net.parse().unwrap()] }],
        }
    }

    /// Two whole engines joined by an in-memory wire: packets written into A's tunnel device come out of B's.
    /// Runs both directions of an engine, each on a thread, over a fake device and a fake socket at `addr` on
    /// `wire`, sending up to `max_segments` datagrams per GSO send, until `stop`.
    fn spawn_engine<P: Protocol + 'static>(
        proto: &Arc<Live<P>>,
        counters: &Arc<TunnelCounters>,
        (tun_rx, tun_tx): (fake::FakeTunReader, fake::FakeTunWriter),
        wire: &fake::Wire,
        addr: SocketAddr,
        max_segments: usize,
        stop: &Arc<Stop>,
    ) -> Vec<std::thread::JoinHandle<io::Result<()>>> {
        let (udp_rx, udp_tx) = wire.socket(addr, max_segments, stop);
        let sampler = || Arc::new(Sampler::new(false, || 0));
        let (p, c, s) = (proto.clone(), counters.clone(), sampler());
        let out = std::thread::spawn(move || outbound(p, c, s, tun_rx, udp_tx, 1420));
        let replies = wire.sender(addr, 1);
        let (p, c, s) = (proto.clone(), counters.clone(), sampler());
        let inb = std::thread::spawn(move || inbound(p, c, s, udp_rx, tun_tx, replies, 1420));
        vec![out, inb]
    }

    /// Ends the engines and checks that each ended cleanly.
    fn stop_engines(stop: &Stop, threads: Vec<std::thread::JoinHandle<io::Result<()>>>) {
        stop.stop();
        for t in threads {
            t.join().expect("an engine thread panicked").expect("an engine loop failed");
        }
    }

    #[test]
    fn two_engines_exchange_packets() {
        let a_addr: SocketAddr = "192.0.2.1:8285".parse().unwrap();
        let b_addr: SocketAddr = "192.0.2.2:8285".parse().unwrap();
        let wire = fake::Wire::default();
        let stop = Arc::new(Stop::new().unwrap());
        let (a_tun, a_host) = fake::tun(&stop);
        let (b_tun, b_host) = fake::tun(&stop);
        let a = Arc::new(Live::new(UdpCore::new(&side("10.9.0.1/24", "192.0.2.2:8285", "10.9.0.2/32"))));
        let b = Arc::new(Live::new(UdpCore::new(&side("10.9.0.2/24", "192.0.2.1:8285", "10.9.0.1/32"))));
        let (ac, bc) = (Arc::new(TunnelCounters::default()), Arc::new(TunnelCounters::default()));
        let mut threads = spawn_engine(&a, &ac, a_tun, &wire, a_addr, 64, &stop);
        threads.extend(spawn_engine(&b, &bc, b_tun, &wire, b_addr, 1, &stop));

        let (ip_a, ip_b) = ("10.9.0.1".parse().unwrap(), "10.9.0.2".parse().unwrap());
        // A batch of equal packets and a short one: one GSO run from A.
        let batch: Vec<Vec<u8>> =
            (0..5u8).map(|i| build::ip(ip_a, ip_b, &[i; 1000])).chain([build::ip(ip_a, ip_b, b"end")]).collect();
        a_host.write(batch.clone());
        // One packet with no route: dropped and counted.
        a_host.write(vec![build::ip(ip_a, "10.7.0.1".parse().unwrap(), b"lost")]);
        for expected in &batch {
            assert_eq!(&b_host.read(Duration::from_secs(5)), expected);
        }
        let reply = build::ip(ip_b, ip_a, b"reply");
        b_host.write(vec![reply.clone()]);
        assert_eq!(a_host.read(Duration::from_secs(5)), reply);

        // A stranger's datagram reaches B's socket but not its device.
        wire.inject("192.0.2.9:8285".parse().unwrap(), b_addr, &build::ip(ip_a, ip_b, b"spoof"));
        std::thread::sleep(Duration::from_millis(50));
        assert!(b_host.try_read().is_none(), "a stranger's packet reached the device");

        let (a_sent, b_got) = (ac.snapshot(), bc.snapshot());
        assert_eq!(a_sent.tx_packets, 6);
        assert_eq!(a_sent.tx_bytes, batch.iter().map(|p| p.len() as u64).sum::<u64>());
        assert_eq!(a_sent.drops["no_route"], 1);
        assert_eq!((b_got.rx_packets, b_got.rx_bytes), (a_sent.tx_packets, a_sent.tx_bytes));
        assert_eq!(b_got.drops["unknown_peer"], 1);
        assert_eq!(a.load().peers[0].traffic.read().1, a_sent.tx_bytes);
        assert_eq!(a_sent.rx_packets, 1);
        assert_eq!(wire.sends_from(a_addr), 1, "five equal packets and a shorter one should leave as one GSO send");
        stop_engines(&stop, threads);
    }

    /// Two WireGuard engines in memory: the first packet starts a handshake, is queued, and arrives encrypted
    /// once the handshake completes; a wrong source from the peer is dropped.
    #[test]
    fn two_wireguard_engines_shake_hands_and_exchange_packets() {
        use culvert_core::keys::SecretKey;
        use culvert_core::profile::{Endpoint, Table, WireguardPeer, WireguardTunnel};
        let (ka, kb) = (SecretKey::generate_private(), SecretKey::generate_private());
        let a_addr: SocketAddr = "192.0.2.1:51820".parse().unwrap();
        let b_addr: SocketAddr = "192.0.2.2:51820".parse().unwrap();
        let side = |key: &SecretKey, peer: &SecretKey, peer_ip: &str, endpoint: SocketAddr| WireguardTunnel {
            interface: None,
            private_key: key.clone(),
            address: vec![],
            listen_port: None,
            mtu: None,
            dns: vec![],
            dns_search: vec![],
            table: Table::Auto,
            fwmark: None,
            kill_switch: false,
            allow_lan: false,
            peers: vec![WireguardPeer {
                public_key: peer.public_key(),
                preshared_key: None,
                allowed_ips: vec![peer_ip.parse().unwrap()],
                endpoint: Some(Endpoint::Addr(endpoint)),
                persistent_keepalive: None,
            }],
        };
        let a = Arc::new(Live::new(WgCore::new(&side(&ka, &kb, "10.8.0.2/32", b_addr), &vec![Some(b_addr)])));
        let b = Arc::new(Live::new(WgCore::new(&side(&kb, &ka, "10.8.0.1/32", a_addr), &vec![Some(a_addr)])));
        let wire = fake::Wire::default();
        let stop = Arc::new(Stop::new().unwrap());
        let (a_tun, a_host) = fake::tun(&stop);
        let (b_tun, b_host) = fake::tun(&stop);
        let (ac, bc) = (Arc::new(TunnelCounters::default()), Arc::new(TunnelCounters::default()));
        let mut threads = spawn_engine(&a, &ac, a_tun, &wire, a_addr, 64, &stop);
        threads.extend(spawn_engine(&b, &bc, b_tun, &wire, b_addr, 64, &stop));

        let (ip_a, ip_b) = ("10.8.0.1".parse().unwrap(), "10.8.0.2".parse().unwrap());
        let first = build::ip(ip_a, ip_b, b"first, queued during the handshake");
        a_host.write(vec![first.clone()]);
        assert_eq!(b_host.read(Duration::from_secs(5)), first);
        let reply = build::ip(ip_b, ip_a, &[7; 1200]);
        b_host.write(vec![reply.clone()]);
        assert_eq!(a_host.read(Duration::from_secs(5)), reply);
        // B's packet from a source outside B's AllowedIPs at A.
        b_host.write(vec![build::ip("10.8.0.9".parse().unwrap(), ip_a, b"spoof")]);
        std::thread::sleep(Duration::from_millis(50));
        assert!(a_host.try_read().is_none(), "a spoofed packet reached the device");
        assert_eq!(ac.snapshot().drops["spoofed_source"], 1);
        assert_eq!((bc.snapshot().rx_packets, bc.snapshot().rx_bytes), (1, first.len() as u64));
        assert_eq!(ac.snapshot().tx_packets, 1, "the queued packet counts once, when it is sent");
        assert!(a.load().peers[0].since_handshake().is_some());
        stop_engines(&stop, threads);
    }
}
