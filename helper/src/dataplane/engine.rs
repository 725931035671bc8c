//! The IO shell of the `udp` kind: two loops, one per direction, each batch-first with buffers allocated once.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use super::counters::{DropReason, TunnelCounters};
use super::io::{RecvMeta, TUN_HEADROOM, TunReader, TunWriter, UdpReader, UdpWriter};
use super::udp_core::UdpCore;

/// Packets per TUN batch: tun-rs splits one offloaded read into at most this many (its `IDEAL_BATCH_SIZE`),
/// and a 64 KiB super-packet at MTU 576 is about 120 segments.
pub const TUN_BATCH: usize = tun_rs::IDEAL_BATCH_SIZE;
/// UDP receive buffers per recvmmsg call.
pub const UDP_SLOTS: usize = 16;
/// One UDP receive buffer holds a GRO batch of up to 64 datagrams of the largest tunnel MTU.
pub const UDP_SLOT_BYTES: usize = 64 * 1024;
/// The kernel refuses UDP GSO sends over 64 KiB.
const MAX_GSO_BYTES: usize = 65_000;

/// Bytes a buffer for one tunnel packet needs.
fn packet_capacity(mtu: u16) -> usize {
    usize::from(mtu).max(1280) + 64
}

/// Reads packets from the tunnel device and sends each to its peer, in GSO runs where they allow it.
pub async fn outbound(
    core: Arc<UdpCore>,
    counters: Arc<TunnelCounters>,
    mut tun: impl TunReader,
    mut udp: impl UdpWriter,
    mtu: u16,
) -> io::Result<()> {
    let mut bufs = vec![vec![0u8; packet_capacity(mtu)]; TUN_BATCH];
    let mut sizes = vec![0usize; TUN_BATCH];
    let mut run = Run::new(udp.max_segments());
    loop {
        let n = tun.recv(&mut bufs, &mut sizes).await?;
        let (mut no_route, mut malformed) = (0, 0);
        for (buf, &size) in bufs.iter().zip(&sizes).take(n) {
            let packet = &buf[..size];
            match core.route_outbound(packet) {
                Ok(peer) => {
                    if !run.fits(peer, packet.len()) {
                        run.flush(&core, &counters, &mut udp).await;
                    }
                    run.push(peer, packet);
                    if run.closed() {
                        run.flush(&core, &counters, &mut udp).await;
                    }
                }
                Err(DropReason::NoRoute) => no_route += 1,
                Err(_) => malformed += 1,
            }
        }
        run.flush(&core, &counters, &mut udp).await;
        counters.drop_packets(DropReason::NoRoute, no_route);
        counters.drop_packets(DropReason::Malformed, malformed);
    }
}

/// Consecutive packets to one peer, all of one size but the last, sent with one GSO call.
struct Run {
    buf: Vec<u8>,
    peer: usize,
    segment: usize,
    count: usize,
    max_segments: usize,
}

impl Run {
    fn new(max_segments: usize) -> Self {
        Self {
            buf: Vec::with_capacity(MAX_GSO_BYTES),
            peer: 0,
            segment: 0,
            count: 0,
            max_segments: max_segments.max(1),
        }
    }

    fn fits(&self, peer: usize, len: usize) -> bool {
        self.count == 0
            || (peer == self.peer
                && len <= self.segment
                && self.count < self.max_segments
                && self.buf.len() + len <= MAX_GSO_BYTES)
    }

    fn push(&mut self, peer: usize, packet: &[u8]) {
        if self.count == 0 {
            self.peer = peer;
            self.segment = packet.len();
        }
        self.buf.extend_from_slice(packet);
        self.count += 1;
    }

    /// A segment shorter than the first must be the last of its run.
    fn closed(&self) -> bool {
        self.count > 0 && self.buf.len() != self.count * self.segment
    }

    async fn flush(&mut self, core: &UdpCore, counters: &TunnelCounters, udp: &mut impl UdpWriter) {
        if self.count == 0 {
            return;
        }
        let peer = &core.peers[self.peer];
        let (sent, bytes) = send_run(udp, peer.endpoint, &self.buf, self.segment, self.count).await;
        peer.traffic.add_tx(sent, bytes);
        counters.traffic.add_tx(sent, bytes);
        counters.drop_packets(DropReason::SendFailed, self.count as u64 - sent);
        self.buf.clear();
        self.count = 0;
    }
}

/// Sends a run, falling back to one datagram at a time when the kernel refuses the batch (no GSO on the
/// route, EMSGSIZE...). Returns the packets and bytes that went out.
async fn send_run(udp: &mut impl UdpWriter, to: SocketAddr, buf: &[u8], segment: usize, count: usize) -> (u64, u64) {
    match udp.send(to, buf, segment).await {
        Ok(()) => return (count as u64, buf.len() as u64),
        Err(e) if count == 1 => {
            tracing::debug!("send to {to} failed: {e}");
            return (0, 0);
        }
        Err(e) => tracing::debug!("GSO send of {count} to {to} failed ({e}); sending one by one"),
    }
    let (mut sent, mut bytes) = (0, 0);
    for datagram in buf.chunks(segment) {
        if udp.send(to, datagram, datagram.len()).await.is_ok() {
            sent += 1;
            bytes += datagram.len() as u64;
        }
    }
    (sent, bytes)
}

/// Receives datagrams from peers and writes the packets they carry to the tunnel device.
pub async fn inbound(
    core: Arc<UdpCore>,
    counters: Arc<TunnelCounters>,
    mut udp: impl UdpReader,
    mut tun: impl TunWriter,
    mtu: u16,
) -> io::Result<()> {
    let mut slots = vec![vec![0u8; UDP_SLOT_BYTES]; UDP_SLOTS];
    let mut meta = [RecvMeta::default(); UDP_SLOTS];
    let mut batch = TunBatch::new(core.peers.len(), packet_capacity(mtu));
    loop {
        let n = udp.recv(&mut slots, &mut meta).await?;
        let (mut unknown, mut malformed) = (0, 0);
        for (slot, m) in slots.iter().zip(&meta).take(n) {
            let data = &slot[..m.len.min(slot.len())];
            for datagram in data.chunks(m.stride.max(1)) {
                match core.accept_inbound(m.addr, datagram) {
                    Ok(peer) => {
                        batch.push(peer, datagram);
                        if batch.full() {
                            batch.flush(&core, &counters, &mut tun).await;
                        }
                    }
                    Err(DropReason::UnknownPeer) => unknown += 1,
                    Err(_) => malformed += 1,
                }
            }
        }
        batch.flush(&core, &counters, &mut tun).await;
        counters.drop_packets(DropReason::UnknownPeer, unknown);
        counters.drop_packets(DropReason::Malformed, malformed);
    }
}

/// Packets waiting to be written to the tunnel device, with what each peer contributed.
struct TunBatch {
    bufs: Vec<Vec<u8>>,
    len: usize,
    per_peer: Vec<(u64, u64)>,
}

impl TunBatch {
    fn new(peers: usize, capacity: usize) -> Self {
        let bufs = (0..TUN_BATCH).map(|_| Vec::with_capacity(TUN_HEADROOM + capacity)).collect();
        Self { bufs, len: 0, per_peer: vec![(0, 0); peers] }
    }

    fn push(&mut self, peer: usize, packet: &[u8]) {
        let buf = &mut self.bufs[self.len];
        buf.clear();
        buf.resize(TUN_HEADROOM, 0);
        buf.extend_from_slice(packet);
        self.len += 1;
        let p = &mut self.per_peer[peer];
        p.0 += 1;
        p.1 += packet.len() as u64;
    }

    fn full(&self) -> bool {
        self.len == self.bufs.len()
    }

    async fn flush(&mut self, core: &UdpCore, counters: &TunnelCounters, tun: &mut impl TunWriter) {
        if self.len == 0 {
            return;
        }
        let written = tun.send(&mut self.bufs[..self.len]).await;
        let (mut packets, mut bytes) = (0, 0);
        for (peer, p) in core.peers.iter().zip(self.per_peer.iter_mut()) {
            if written.is_ok() {
                peer.traffic.add_rx(p.0, p.1);
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
    #[tokio::test]
    async fn two_engines_exchange_packets() {
        let a_addr: SocketAddr = "192.0.2.1:8285".parse().unwrap();
        let b_addr: SocketAddr = "192.0.2.2:8285".parse().unwrap();
        let wire = fake::Wire::default();
        let (a_tun, a_host) = fake::tun();
        let (b_tun, b_host) = fake::tun();
        let a = Arc::new(UdpCore::new(&side("10.9.0.1/24", "192.0.2.2:8285", "10.9.0.2/32")));
        let b = Arc::new(UdpCore::new(&side("10.9.0.2/24", "192.0.2.1:8285", "10.9.0.1/32")));
        let (ac, bc) = (Arc::new(TunnelCounters::default()), Arc::new(TunnelCounters::default()));
        let (a_udp_rx, a_udp_tx) = wire.socket(a_addr, 64);
        let (b_udp_rx, b_udp_tx) = wire.socket(b_addr, 1);
        let (a_tun_rx, a_tun_tx) = a_tun;
        let (b_tun_rx, b_tun_tx) = b_tun;
        tokio::spawn(outbound(a.clone(), ac.clone(), a_tun_rx, a_udp_tx, 1420));
        tokio::spawn(inbound(a.clone(), ac.clone(), a_udp_rx, a_tun_tx, 1420));
        tokio::spawn(outbound(b.clone(), bc.clone(), b_tun_rx, b_udp_tx, 1420));
        tokio::spawn(inbound(b.clone(), bc.clone(), b_udp_rx, b_tun_tx, 1420));

        let (ip_a, ip_b) = ("10.9.0.1".parse().unwrap(), "10.9.0.2".parse().unwrap());
        // A batch of equal packets and a short one: one GSO run from A.
        let batch: Vec<Vec<u8>> =
            (0..5u8).map(|i| build::ip(ip_a, ip_b, &[i; 1000])).chain([build::ip(ip_a, ip_b, b"end")]).collect();
        a_host.write(batch.clone()).await;
        // One packet with no route: dropped and counted.
        a_host.write(vec![build::ip(ip_a, "10.7.0.1".parse().unwrap(), b"lost")]).await;
        for expected in &batch {
            assert_eq!(&b_host.read(Duration::from_secs(5)).await, expected);
        }
        let reply = build::ip(ip_b, ip_a, b"reply");
        b_host.write(vec![reply.clone()]).await;
        assert_eq!(a_host.read(Duration::from_secs(5)).await, reply);

        // A stranger's datagram reaches B's socket but not its device.
        wire.inject("192.0.2.9:8285".parse().unwrap(), b_addr, &build::ip(ip_a, ip_b, b"spoof"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(b_host.try_read().is_none(), "a stranger's packet reached the device");

        let (a_sent, b_got) = (ac.snapshot(), bc.snapshot());
        assert_eq!(a_sent.tx_packets, 6);
        assert_eq!(a_sent.tx_bytes, batch.iter().map(|p| p.len() as u64).sum::<u64>());
        assert_eq!(a_sent.drops["no_route"], 1);
        assert_eq!((b_got.rx_packets, b_got.rx_bytes), (a_sent.tx_packets, a_sent.tx_bytes));
        assert_eq!(b_got.drops["unknown_peer"], 1);
        assert_eq!(a.peers[0].traffic.read().1, a_sent.tx_bytes);
        assert_eq!(a_sent.rx_packets, 1);
        assert_eq!(wire.sends_from(a_addr), 1, "five equal packets and a shorter one should leave as one GSO send");
    }
}
