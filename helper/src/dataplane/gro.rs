//! Generic receive offload for the TUN device: consecutive TCP segments of one flow in a batch are written to
//! the kernel as one super-packet (a virtio-net header asking for TCP segmentation, then the first segment's
//! headers fixed up for the whole, then every segment's payload), so that one write and one pass through the
//! kernel's TCP receive path carry up to 64 segments. This is what wireguard-go's tun/offload_linux.go does;
//! unlike tun-rs's port of it, the payloads are not copied together first: the write gathers them where they
//! are (writev), and nothing is allocated per batch.
//!
//! Whatever cannot join a super-packet (other protocols, out-of-order or resent segments, a bad checksum) is
//! written alone, with an empty virtio-net header, in the order it came.

use std::io::{self, IoSlice};

use super::checksum::{fold, pseudo_header, sum};

/// The virtio-net header in front of every write to a TUN device with `IFF_VNET_HDR`.
pub const VNET_HDR_LEN: usize = 10;
const VNET_F_NEEDS_CSUM: u8 = 1;
const VNET_GSO_TCPV4: u8 = 1;
const VNET_GSO_TCPV6: u8 = 4;
/// The kernel's own TCP GRO stops at 64 segments.
const MAX_SEGMENTS: usize = 64;
/// An Ethernet header: destination and source MAC, EtherType (no VLAN tag: tagged frames are written alone).
pub const ETHERNET: usize = 14;
/// An IPv4 total length (and an IPv6 payload length) is 16 bits.
const MAX_SUPER_PACKET: usize = 65_535;
const TCP: u8 = 6;
const TCP_ACK: u8 = 0x10;
const TCP_PSH: u8 = 0x08;
const NONE: u16 = u16::MAX;

/// One TCP segment's facts, as far as coalescing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    v6: bool,
    /// Source and destination addresses and ports, packed.
    flow: [u8; 36],
    ack: u32,
    seq: u32,
    iph_len: u8,
    tcph_len: u8,
    payload: u16,
    psh: bool,
}

/// A run of segments written as one: its first packet, how to reach the next member, and what may still join.
#[derive(Debug, Clone, Copy)]
struct Group {
    seg: Segment,
    first: u16,
    last: u16,
    segments: u16,
    payload: usize,
    next_seq: u32,
    /// A short or PSH segment ended it, or a packet that could not join took its place.
    closed: bool,
}

/// The coalescing state of one writer: its tables, allocated once for batches of up to `capacity` packets.
#[derive(Debug)]
pub struct Coalescer {
    groups: Vec<Group>,
    /// The next member of each packet's group (`NONE` for the last).
    next: Vec<u16>,
    /// A super-packet's virtio-net header and rewritten headers.
    head: [u8; VNET_HDR_LEN + ETHERNET + 60 + 60],
    /// The link-layer header in front of each IP packet: 14 for a TAP device's Ethernet frames, else 0.
    link: usize,
    /// Off after the kernel refused a super-packet (some kernels' virtio-net GRO returned EINVAL): every
    /// packet is written alone from then on.
    enabled: bool,
}

/// Where super-packets and single packets go: the TUN device's descriptor, or a test's recorder.
pub trait Sink {
    fn write(&mut self, packet: &[u8]) -> io::Result<()>;
    fn writev(&mut self, parts: &[IoSlice<'_>]) -> io::Result<()>;
}

impl Coalescer {
    /// A coalescer for batches of up to `capacity` packets, each behind a link-layer header of `link` bytes (0
    /// for a TUN device, [`ETHERNET`] for a TAP device).
    pub fn new(capacity: usize, link: usize) -> Self {
        Self {
            groups: Vec::with_capacity(capacity),
            next: vec![NONE; capacity],
            head: [0; VNET_HDR_LEN + ETHERNET + 120],
            link: link.min(ETHERNET),
            enabled: true,
        }
    }

    /// Writes every packet of `bufs` to `sink`, each at `bufs[i][VNET_HDR_LEN..]` with room for its virtio-net
    /// header in front, coalescing what can be. The first error is returned after everything was tried.
    pub fn write_all(&mut self, bufs: &mut [Vec<u8>], sink: &mut impl Sink) -> io::Result<()> {
        let capacity = self.next.len().clamp(1, usize::from(NONE));
        let mut result = Ok(());
        for chunk in bufs.chunks_mut(capacity) {
            if let Err(e) = self.write_chunk(chunk, sink) {
                result = result.and(Err(e));
            }
        }
        result
    }

    fn write_chunk(&mut self, bufs: &mut [Vec<u8>], sink: &mut impl Sink) -> io::Result<()> {
        self.group(bufs);
        let mut result = Ok(());
        for g in 0..self.groups.len() {
            let group = self.groups[g];
            let written = if group.segments > 1 { self.write_super(&group, bufs, sink) } else { Ok(()) };
            let refused = written.as_ref().is_err_and(|e| e.raw_os_error() == Some(libc::EINVAL));
            if refused {
                tracing::warn!("the kernel refused a coalesced TCP write (EINVAL): writing packets one by one");
                self.enabled = false;
            }
            if group.segments == 1 || refused {
                let mut at = group.first;
                while at != NONE {
                    let buf = &mut bufs[usize::from(at)];
                    if let Some(header) = buf.get_mut(..VNET_HDR_LEN) {
                        header.fill(0);
                        if let Err(e) = sink.write(buf) {
                            result = result.and(Err(e));
                        }
                    }
                    at = self.next[usize::from(at)];
                }
            } else if let Err(e) = written {
                result = result.and(Err(e));
            }
        }
        result
    }

    /// Sorts the packets into groups, in the order of their first packets.
    fn group(&mut self, bufs: &[Vec<u8>]) {
        self.groups.clear();
        for (i, buf) in bufs.iter().enumerate() {
            let at = i as u16;
            self.next[i] = NONE;
            let packet = buf.get(VNET_HDR_LEN..).unwrap_or_default();
            let seg = if self.enabled { segment(packet, self.link) } else { None };
            let Some(seg) = seg else {
                self.groups.push(Group::alone(at));
                continue;
            };
            let open = self.groups.iter().rposition(|g| !g.closed && g.seg.flow == seg.flow && g.seg.v6 == seg.v6);
            if let Some(g) = open {
                let group = &mut self.groups[g];
                let first = &bufs[usize::from(group.first)][VNET_HDR_LEN..];
                let l = self.link;
                // The same link-layer header: MAC addresses and EtherType.
                if first[..l] == packet[..l]
                    && joins(group, &seg, &first[l..], &packet[l..])
                    && (group.segments > 1 || checksum_ok(&first[l..], group.seg.iph_len))
                    && checksum_ok(&packet[l..], seg.iph_len)
                {
                    self.next[usize::from(group.last)] = at;
                    group.last = at;
                    group.segments += 1;
                    group.payload += usize::from(seg.payload);
                    group.next_seq = group.next_seq.wrapping_add(u32::from(seg.payload));
                    group.closed = seg.psh || seg.payload < group.seg.payload;
                    group.seg.psh |= seg.psh;
                    continue;
                }
                group.closed = true;
            }
            self.groups.push(Group {
                seg,
                first: at,
                last: at,
                segments: 1,
                payload: usize::from(seg.payload),
                next_seq: seg.seq.wrapping_add(u32::from(seg.payload)),
                closed: seg.psh,
            });
        }
    }

    /// Writes a group of two or more segments as one super-packet.
    fn write_super(&mut self, group: &Group, bufs: &[Vec<u8>], sink: &mut impl Sink) -> io::Result<()> {
        let seg = group.seg;
        let (link, iph, tcph) = (self.link, usize::from(seg.iph_len), usize::from(seg.tcph_len));
        let hdr_len = link + iph + tcph;
        let first = &bufs[usize::from(group.first)][VNET_HDR_LEN..];
        let total = iph + tcph + group.payload;
        let head = &mut self.head[..VNET_HDR_LEN + hdr_len];
        head[VNET_HDR_LEN..].copy_from_slice(&first[..hdr_len]);
        // The virtio-net header: segment as TCP at the first segment's size, with the checksum left to finish.
        head[0] = VNET_F_NEEDS_CSUM;
        head[1] = if seg.v6 { VNET_GSO_TCPV6 } else { VNET_GSO_TCPV4 };
        head[2..4].copy_from_slice(&(hdr_len as u16).to_le_bytes());
        head[4..6].copy_from_slice(&seg.payload.to_le_bytes());
        head[6..8].copy_from_slice(&((link + iph) as u16).to_le_bytes());
        head[8..10].copy_from_slice(&16u16.to_le_bytes());
        let ip = &mut head[VNET_HDR_LEN + link..];
        if seg.v6 {
            ip[4..6].copy_from_slice(&((total - iph) as u16).to_be_bytes());
        } else {
            ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            ip[10..12].fill(0);
            let csum = !fold(sum(&ip[..iph], 0));
            ip[10..12].copy_from_slice(&csum.to_be_bytes());
        }
        if seg.psh {
            ip[iph + 13] |= TCP_PSH;
        }
        // The TCP checksum field holds the pseudo-header's sum: the kernel adds the rest (CHECKSUM_PARTIAL).
        let pseudo = pseudo_header(ip, seg.v6, TCP, (total - iph) as u32);
        ip[iph + 16..iph + 18].copy_from_slice(&fold(pseudo).to_be_bytes());
        let mut parts = [IoSlice::new(&[]); MAX_SEGMENTS + 1];
        parts[0] = IoSlice::new(head);
        let mut count = 1;
        let mut at = group.first;
        while at != NONE {
            parts[count] = IoSlice::new(&bufs[usize::from(at)][VNET_HDR_LEN + hdr_len..]);
            count += 1;
            at = self.next[usize::from(at)];
        }
        sink.writev(&parts[..count])
    }
}

impl Group {
    /// A packet written alone.
    fn alone(at: u16) -> Self {
        let seg = Segment { v6: false, flow: [0; 36], ack: 0, seq: 0, iph_len: 0, tcph_len: 0, payload: 0, psh: false };
        Self { seg, first: at, last: at, segments: 1, payload: 0, next_seq: 0, closed: true }
    }
}

/// The segment a packet is (behind a link-layer header of `link` bytes), if it is a TCP segment that may be
/// coalesced: no IP options or extension headers, not a fragment, only ACK (and PSH) set, and some payload.
fn segment(frame: &[u8], link: usize) -> Option<Segment> {
    let p = frame.get(link..)?;
    let version = p.first()? >> 4;
    if link == ETHERNET && frame[12..14] != if version == 6 { [0x86, 0xdd] } else { [0x08, 0x00] } {
        return None;
    }
    let (v6, iph_len, total) = match version {
        4 => {
            if p.len() < 20 || p[0] & 0x0f != 5 || p[9] != TCP {
                return None;
            }
            // More fragments, or an offset: a fragment.
            if p[6] & 0x3f != 0 || p[7] != 0 {
                return None;
            }
            (false, 20, usize::from(u16::from_be_bytes([p[2], p[3]])))
        }
        6 => {
            if p.len() < 40 || p[6] != TCP {
                return None;
            }
            (true, 40, 40 + usize::from(u16::from_be_bytes([p[4], p[5]])))
        }
        _ => return None,
    };
    if total != p.len() || p.len() < iph_len + 20 {
        return None;
    }
    let tcp = &p[iph_len..];
    let tcph_len = usize::from(tcp[12] >> 4) * 4;
    if !(20..=60).contains(&tcph_len) || p.len() <= iph_len + tcph_len {
        return None;
    }
    let psh = match tcp[13] {
        TCP_ACK => false,
        f if f == TCP_ACK | TCP_PSH => true,
        _ => return None,
    };
    let mut flow = [0u8; 36];
    let addrs = if v6 { &p[8..40] } else { &p[12..20] };
    flow[..addrs.len()].copy_from_slice(addrs);
    flow[32..36].copy_from_slice(&tcp[..4]);
    Some(Segment {
        v6,
        flow,
        ack: u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]),
        seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
        iph_len: iph_len as u8,
        tcph_len: tcph_len as u8,
        payload: (p.len() - iph_len - tcph_len) as u16,
        psh,
    })
}

/// Whether `seg` (packet `p`) may follow the segments of `g`, whose first packet is `first`.
fn joins(g: &Group, seg: &Segment, first: &[u8], p: &[u8]) -> bool {
    let (iph, tcph) = (usize::from(seg.iph_len), usize::from(seg.tcph_len));
    seg.seq == g.next_seq
        && seg.ack == g.seg.ack
        && seg.tcph_len == g.seg.tcph_len
        && seg.payload <= g.seg.payload
        && usize::from(g.segments) < MAX_SEGMENTS
        && usize::from(seg.iph_len + seg.tcph_len) + g.payload + usize::from(seg.payload) <= MAX_SUPER_PACKET
        // The same options (timestamps change per segment in most stacks: then they start groups anew).
        && p[iph + 20..iph + tcph] == first[iph + 20..iph + tcph]
        && if seg.v6 {
            // Traffic class and hop limit.
            p[0] == first[0] && p[1] >> 4 == first[1] >> 4 && p[7] == first[7]
        } else {
            // TOS, the DF and reserved flags, TTL.
            p[1] == first[1] && p[6] >> 5 == first[6] >> 5 && p[8] == first[8]
        }
}

/// Whether the TCP checksum of packet `p` (IP header of `iph_len` bytes) is right.
fn checksum_ok(p: &[u8], iph_len: u8) -> bool {
    let iph = usize::from(iph_len);
    let v6 = p[0] >> 4 == 6;
    fold(sum(&p[iph..], pseudo_header(p, v6, TCP, (p.len() - iph) as u32))) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a sink was given: one entry per write, the parts of a writev joined.
    #[derive(Default)]
    struct Recorder(Vec<Vec<u8>>);

    impl Sink for Recorder {
        fn write(&mut self, packet: &[u8]) -> io::Result<()> {
            self.0.push(packet.to_vec());
            Ok(())
        }
        fn writev(&mut self, parts: &[IoSlice<'_>]) -> io::Result<()> {
            self.0.push(parts.iter().flat_map(|p| p.iter().copied()).collect());
            Ok(())
        }
    }

    /// A TCP segment over IPv4 or IPv6 with a right checksum, behind room for the virtio-net header.
    fn tcp(v6: bool, sport: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let iph = if v6 { 40 } else { 20 };
        let mut p = vec![0u8; iph + 20 + payload.len()];
        if v6 {
            p[0] = 0x60;
            p[4..6].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
            p[6] = TCP;
            p[7] = 64;
            p[8..24].copy_from_slice(&"fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
            p[24..40].copy_from_slice(&"fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets());
        } else {
            p[0] = 0x45;
            let total = p.len() as u16;
            p[2..4].copy_from_slice(&total.to_be_bytes());
            p[6] = 0x40;
            p[8] = 64;
            p[9] = TCP;
            p[12..16].copy_from_slice(&[10, 9, 0, 1]);
            p[16..20].copy_from_slice(&[10, 9, 0, 2]);
            let c = !fold(sum(&p[..20], 0));
            p[10..12].copy_from_slice(&c.to_be_bytes());
        }
        let t = &mut p[iph..];
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&5201u16.to_be_bytes());
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        t[8..12].copy_from_slice(&7u32.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = flags;
        t[14..16].copy_from_slice(&512u16.to_be_bytes());
        t[20..].copy_from_slice(payload);
        let length = (p.len() - iph) as u32;
        let c = !fold(sum(&p[iph..], pseudo_header(&p, v6, TCP, length)));
        p[iph + 16..iph + 18].copy_from_slice(&c.to_be_bytes());
        let mut buf = vec![0xaa; VNET_HDR_LEN];
        buf.extend_from_slice(&p);
        buf
    }

    fn write(bufs: &mut [Vec<u8>]) -> Vec<Vec<u8>> {
        let mut sink = Recorder::default();
        Coalescer::new(128, 0).write_all(bufs, &mut sink).unwrap();
        sink.0
    }

    #[test]
    fn in_order_segments_of_a_flow_become_one_super_packet_the_kernel_can_split() {
        for v6 in [false, true] {
            let iph = if v6 { 40 } else { 20 };
            let mut bufs: Vec<Vec<u8>> =
                (0..3u32).map(|i| tcp(v6, 40000, 1000 + i * 100, TCP_ACK, &[i as u8; 100])).collect();
            bufs.push(tcp(v6, 40000, 1300, TCP_ACK | TCP_PSH, &[9; 40]));
            let out = write(&mut bufs);
            assert_eq!(out.len(), 1, "v6 {v6}");
            let w = &out[0];
            let (hdr, p) = w.split_at(VNET_HDR_LEN);
            assert_eq!(hdr[0], VNET_F_NEEDS_CSUM);
            assert_eq!(hdr[1], if v6 { VNET_GSO_TCPV6 } else { VNET_GSO_TCPV4 });
            assert_eq!(u16::from_le_bytes([hdr[2], hdr[3]]) as usize, iph + 20, "hdr_len");
            assert_eq!(u16::from_le_bytes([hdr[4], hdr[5]]), 100, "gso_size");
            assert_eq!(u16::from_le_bytes([hdr[6], hdr[7]]) as usize, iph, "csum_start");
            assert_eq!(p.len(), iph + 20 + 340);
            if v6 {
                assert_eq!(u16::from_be_bytes([p[4], p[5]]) as usize, 20 + 340);
            } else {
                assert_eq!(u16::from_be_bytes([p[2], p[3]]) as usize, p.len());
                assert_eq!(fold(sum(&p[..20], 0)), 0xffff, "the IPv4 header checksum");
            }
            assert_eq!(p[iph + 13], TCP_ACK | TCP_PSH, "the last segment's PSH");
            assert_eq!(&p[iph + 20..iph + 120], &[0; 100]);
            assert_eq!(&p[iph + 320..], &[9; 40]);
            // What the kernel finishes: the pseudo-header's sum is in place, so adding header and payload
            // (with the field as is) gives a right checksum.
            let mut whole = p.to_vec();
            let partial = u16::from_be_bytes([whole[iph + 16], whole[iph + 17]]);
            whole[iph + 16..iph + 18].fill(0);
            let length = (whole.len() - iph) as u32;
            assert_eq!(
                fold(sum(&whole[iph..], 0) + u64::from(partial)),
                fold(sum(&whole[iph..], pseudo_header(&whole, v6, TCP, length)))
            );
        }
    }

    #[test]
    fn what_cannot_join_is_written_alone_in_order() {
        let mut bufs = vec![
            tcp(false, 40000, 1000, TCP_ACK, &[1; 100]),
            tcp(false, 40001, 5000, TCP_ACK, &[2; 100]),
            tcp(false, 40000, 1100, TCP_ACK, &[3; 100]),
            // A gap: starts a group of its own.
            tcp(false, 40000, 1400, TCP_ACK, &[4; 100]),
            // A SYN, and a segment with a bad checksum.
            tcp(false, 40002, 1, 0x02, &[5; 10]),
            tcp(false, 40000, 1500, TCP_ACK, &[6; 100]),
            tcp(false, 40001, 5100, TCP_ACK, &[7; 100]),
        ];
        let last = bufs[5].len() - 1;
        bufs[5][last] ^= 0xff;
        let out = write(&mut bufs);
        let sizes: Vec<usize> = out.iter().map(Vec::len).collect();
        // 40000: 1000+1100 together; 40001: 5000+5100 together; 1400 alone (1500 has a bad checksum, alone too).
        assert_eq!(sizes, [10 + 40 + 200, 10 + 40 + 200, 10 + 140, 10 + 50, 10 + 140], "{sizes:?}");
        assert_eq!(&out[2][..VNET_HDR_LEN], &[0; VNET_HDR_LEN], "a single packet's header is empty");
        assert_eq!(out[4][out[4].len() - 1], 6 ^ 0xff, "the bad segment went through untouched");
    }

    #[test]
    fn ethernet_frames_coalesce_behind_their_header_and_only_between_the_same_macs() {
        let frame = |mac: u8, seq: u32| {
            let mut b = tcp(false, 40000, seq, TCP_ACK, &[mac; 100]);
            let header = [2, 0, 0, 0, 0, mac, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
            b.splice(VNET_HDR_LEN..VNET_HDR_LEN, header);
            b
        };
        let mut bufs = vec![frame(2, 1000), frame(2, 1100), frame(3, 1200)];
        let mut sink = Recorder::default();
        Coalescer::new(8, ETHERNET).write_all(&mut bufs, &mut sink).unwrap();
        let out = sink.0;
        assert_eq!(out.iter().map(Vec::len).collect::<Vec<_>>(), [10 + 14 + 40 + 200, 10 + 14 + 140]);
        let (hdr, f) = out[0].split_at(VNET_HDR_LEN);
        assert_eq!(u16::from_le_bytes([hdr[2], hdr[3]]), 14 + 40, "hdr_len counts the Ethernet header");
        assert_eq!(u16::from_le_bytes([hdr[6], hdr[7]]), 14 + 20, "csum_start");
        assert_eq!(&f[..14], &[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 240, "the IPv4 total length");
        // A frame whose EtherType is not its IP version's is written alone.
        let mut odd = vec![frame(2, 1000), frame(2, 1100)];
        odd[1][VNET_HDR_LEN + 12] = 0x86;
        let mut sink = Recorder::default();
        Coalescer::new(8, ETHERNET).write_all(&mut odd, &mut sink).unwrap();
        assert_eq!(sink.0.len(), 2);
    }

    #[test]
    fn a_short_or_pushed_segment_ends_its_group() {
        let mut bufs = vec![
            tcp(false, 40000, 1000, TCP_ACK, &[1; 100]),
            tcp(false, 40000, 1100, TCP_ACK, &[2; 50]),
            tcp(false, 40000, 1150, TCP_ACK, &[3; 50]),
        ];
        assert_eq!(write(&mut bufs).iter().map(Vec::len).collect::<Vec<_>>(), [10 + 40 + 150, 10 + 90]);
        let mut bufs =
            vec![tcp(false, 40000, 1000, TCP_ACK | TCP_PSH, &[1; 100]), tcp(false, 40000, 1100, TCP_ACK, &[2; 100])];
        assert_eq!(write(&mut bufs).len(), 2);
    }

    #[test]
    fn a_refused_super_packet_is_written_again_piecewise_and_coalescing_stops() {
        struct Refusing(Vec<usize>);
        impl Sink for Refusing {
            fn write(&mut self, packet: &[u8]) -> io::Result<()> {
                self.0.push(packet.len());
                Ok(())
            }
            fn writev(&mut self, _: &[IoSlice<'_>]) -> io::Result<()> {
                Err(io::Error::from_raw_os_error(libc::EINVAL))
            }
        }
        let mut c = Coalescer::new(8, 0);
        let mut bufs = vec![tcp(false, 1, 0, TCP_ACK, &[0; 10]), tcp(false, 1, 10, TCP_ACK, &[0; 10])];
        let mut sink = Refusing(vec![]);
        c.write_all(&mut bufs, &mut sink).unwrap();
        assert_eq!(sink.0, [10 + 50, 10 + 50], "each packet went alone after the refusal");
        c.write_all(&mut bufs, &mut sink).unwrap();
        assert_eq!(sink.0.len(), 4, "no coalescing after the refusal");
    }

    #[test]
    fn hostile_packets_are_written_alone_and_never_panic() {
        let good = tcp(false, 40000, 1000, TCP_ACK, &[1; 100]);
        let mut bufs: Vec<Vec<u8>> = (VNET_HDR_LEN..good.len()).map(|end| good[..end].to_vec()).collect();
        bufs.push(good.clone());
        bufs.push(good);
        let mut lying = tcp(false, 40000, 1100, TCP_ACK, &[1; 100]);
        lying[VNET_HDR_LEN + 32] = 0xf0; // a TCP header length of 60 in a packet of 40 header bytes
        bufs.push(lying);
        let out = write(&mut bufs);
        assert_eq!(out.len(), bufs.len());
    }
}
