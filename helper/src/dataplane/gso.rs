//! Segmentation offload for what a device with `IFF_VNET_HDR` gives: a read is a virtio-net header and a
//! packet (or an Ethernet frame) that may stand for many, a TCP or UDP "super-packet" of up to 64 KiB with one
//! set of headers and a checksum left unfinished. Splitting it here, into the MTU-sized packets a peer expects,
//! costs one copy; taking it from the kernel in one read instead of forty saves forty system calls and as many
//! trips through the device's queue (a TAP device without offloads dropped thousands of frames a second in the
//! bench because its reader could not keep up).
//!
//! tun-rs does this for TUN devices; a TAP device's frames carry an Ethernet header first, which is what `link`
//! says here (14 for TAP, 0 for TUN).

use super::checksum::{fold, pseudo_header, sum};
use super::gro::VNET_HDR_LEN;

const VNET_F_NEEDS_CSUM: u8 = 1;
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;
const GSO_UDP_L4: u8 = 5;
const GSO_ECN: u8 = 0x80;
const TCP: u8 = 6;
const UDP: u8 = 17;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("the read is shorter than its headers say")]
    Short,
    #[error("the virtio-net header asks for an offload this device never enabled")]
    Unsupported,
    #[error("the packet needs more than the batch's {0} buffers")]
    TooManySegments(usize),
    #[error("a segment does not fit a buffer")]
    TooLarge,
}

/// Splits `read` (a virtio-net header, then the packet or frame) into `bufs`: packet `i` is
/// `bufs[i][..sizes[i]]`, each with its checksums complete. Returns how many packets there are.
pub fn split(read: &[u8], link: usize, bufs: &mut [Vec<u8>], sizes: &mut [usize]) -> Result<usize, SplitError> {
    let (hdr, data) = read.split_at_checked(VNET_HDR_LEN).ok_or(SplitError::Short)?;
    let (flags, gso_type) = (hdr[0], hdr[1] & !GSO_ECN);
    let gso_size = usize::from(u16::from_le_bytes([hdr[4], hdr[5]]));
    let csum_start = usize::from(u16::from_le_bytes([hdr[6], hdr[7]]));
    let csum_offset = usize::from(u16::from_le_bytes([hdr[8], hdr[9]]));
    if gso_type == GSO_NONE {
        let out = bufs.first_mut().ok_or(SplitError::TooManySegments(0))?;
        let len = data.len();
        out.get_mut(..len).ok_or(SplitError::TooLarge)?.copy_from_slice(data);
        if flags & VNET_F_NEEDS_CSUM != 0 {
            finish_checksum(&mut out[..len], csum_start, csum_offset)?;
        }
        sizes[0] = len;
        return Ok(1);
    }
    let udp = match gso_type {
        GSO_TCPV4 | GSO_TCPV6 => false,
        GSO_UDP_L4 => true,
        _ => return Err(SplitError::Unsupported),
    };
    // The transport header starts at csum_start; its length is its own to say (the virtio header's hdr_len is
    // a hint the kernel does not always fill in).
    let l4 = csum_start;
    let v6 = data.get(link).ok_or(SplitError::Short)? >> 4 == 6;
    if l4 < link + if v6 { 40 } else { 20 } {
        return Err(SplitError::Short);
    }
    let l4_len = if udp { 8 } else { usize::from(data.get(l4 + 12).ok_or(SplitError::Short)? >> 4) * 4 };
    let hdr_len = l4 + l4_len;
    if gso_size == 0 || data.len() <= hdr_len || (!udp && l4_len < 20) {
        return Err(SplitError::Short);
    }
    let payload = &data[hdr_len..];
    let segments = payload.len().div_ceil(gso_size);
    if segments > bufs.len() {
        return Err(SplitError::TooManySegments(segments));
    }
    let headers = &data[..hdr_len];
    let ip_id = u16::from_be_bytes([headers[link + 4], headers[link + 5]]);
    let seq = u32::from_be_bytes([headers[l4 + 4], headers[l4 + 5], headers[l4 + 6], headers[l4 + 7]]);
    for (i, chunk) in payload.chunks(gso_size).enumerate() {
        let len = hdr_len + chunk.len();
        let out = bufs[i].get_mut(..len).ok_or(SplitError::TooLarge)?;
        out[..hdr_len].copy_from_slice(headers);
        out[hdr_len..].copy_from_slice(chunk);
        let ip = &mut out[link..];
        if v6 {
            ip[4..6].copy_from_slice(&((len - link - 40) as u16).to_be_bytes());
        } else {
            ip[2..4].copy_from_slice(&((len - link) as u16).to_be_bytes());
            // Each segment has an ID of its own, counting up, as the kernel's own segmentation gives them.
            ip[4..6].copy_from_slice(&ip_id.wrapping_add(i as u16).to_be_bytes());
            ip[10..12].fill(0);
            let csum = !fold(sum(&ip[..l4 - link], 0));
            ip[10..12].copy_from_slice(&csum.to_be_bytes());
        }
        let transport = &mut out[l4..];
        if udp {
            transport[4..6].copy_from_slice(&((8 + chunk.len()) as u16).to_be_bytes());
            transport[6..8].fill(0);
        } else {
            transport[4..8].copy_from_slice(&seq.wrapping_add((i * gso_size) as u32).to_be_bytes());
            // FIN and PSH belong to the last segment only, CWR to the first only.
            if i + 1 < segments {
                transport[13] &= !(TCP_FIN | TCP_PSH);
            }
            if i > 0 {
                transport[13] &= !TCP_CWR;
            }
            transport[16..18].fill(0);
        }
        let csum_at = if udp { 6 } else { 16 };
        let pseudo = pseudo_header(&out[link..], v6, if udp { UDP } else { TCP }, (len - l4) as u32);
        let mut csum = !fold(sum(&out[l4..], pseudo));
        // A UDP checksum of 0 means none: 0xffff is the same sum.
        if udp && csum == 0 {
            csum = 0xffff;
        }
        out[l4 + csum_at..l4 + csum_at + 2].copy_from_slice(&csum.to_be_bytes());
        sizes[i] = len;
    }
    Ok(segments)
}

/// Finishes a checksum the kernel left partial: the field at `start + offset` holds the pseudo-header's sum;
/// the one's complement of the sum from `start` on is the checksum.
fn finish_checksum(p: &mut [u8], start: usize, offset: usize) -> Result<(), SplitError> {
    let at = start.checked_add(offset).filter(|at| at + 2 <= p.len()).ok_or(SplitError::Short)?;
    let csum = !fold(sum(&p[start..], 0));
    p[at..at + 2].copy_from_slice(&csum.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ETH: [u8; 14] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];

    /// A super-packet as the kernel hands it over: headers once, a partial checksum (the pseudo-header's sum
    /// over the whole length), `payload` after.
    fn super_packet(link: bool, v6: bool, udp: bool, gso: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
        let l2 = if link { 14 } else { 0 };
        let iph = if v6 { 40 } else { 20 };
        let l4 = if udp { 8 } else { 20 };
        let mut p = vec![0u8; l2 + iph + l4 + payload.len()];
        if link {
            p[..14].copy_from_slice(&ETH);
            if v6 {
                p[12..14].copy_from_slice(&[0x86, 0xdd]);
            }
        }
        let total = p.len() - l2;
        let ip = &mut p[l2..];
        if v6 {
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&((total - 40) as u16).to_be_bytes());
            ip[6] = if udp { UDP } else { TCP };
            ip[7] = 64;
            ip[23] = 1;
            ip[39] = 2;
        } else {
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            ip[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
            ip[6] = 0x40;
            ip[8] = 64;
            ip[9] = if udp { UDP } else { TCP };
            ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
            ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
        }
        let t = &mut ip[iph..];
        t[0..2].copy_from_slice(&4000u16.to_be_bytes());
        t[2..4].copy_from_slice(&5201u16.to_be_bytes());
        if udp {
            t[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        } else {
            t[4..8].copy_from_slice(&1000u32.to_be_bytes());
            t[12] = 5 << 4;
            t[13] = flags;
        }
        t[l4..].copy_from_slice(payload);
        let pseudo = fold(pseudo_header(ip, v6, if udp { UDP } else { TCP }, (total - iph) as u32));
        let at = if udp { 6 } else { 16 };
        ip[iph + at..iph + at + 2].copy_from_slice(&pseudo.to_be_bytes());
        let mut read = vec![
            VNET_F_NEEDS_CSUM,
            if udp {
                GSO_UDP_L4
            } else if v6 {
                GSO_TCPV6
            } else {
                GSO_TCPV4
            },
        ];
        read.extend_from_slice(&((l2 + iph + l4) as u16).to_le_bytes());
        read.extend_from_slice(&gso.to_le_bytes());
        read.extend_from_slice(&((l2 + iph) as u16).to_le_bytes());
        read.extend_from_slice(&(at as u16).to_le_bytes());
        read.extend_from_slice(&p);
        read
    }

    fn bufs() -> (Vec<Vec<u8>>, Vec<usize>) {
        (vec![vec![0u8; 2000]; 8], vec![0; 8])
    }

    /// Each split packet is a packet a receiver takes: lengths, checksums, sequence numbers, IDs.
    #[test]
    fn super_packets_split_into_packets_a_receiver_takes() {
        let payload: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
        for (link, v6, udp) in
            [(false, false, false), (true, false, false), (true, true, false), (false, true, true), (true, false, true)]
        {
            let l2 = if link { 14 } else { 0 };
            let iph = if v6 { 40 } else { 20 };
            let l4 = if udp { 8 } else { 20 };
            let read = super_packet(link, v6, udp, 1000, 0x10 | TCP_PSH | TCP_FIN, &payload);
            let (mut out, mut sizes) = bufs();
            let n = split(&read, l2, &mut out, &mut sizes).unwrap();
            assert_eq!(n, 3, "{link} {v6} {udp}");
            let mut joined = Vec::new();
            for i in 0..n {
                let p = &out[i][..sizes[i]];
                let ip = &p[l2..];
                if link {
                    assert_eq!(&p[..12], &ETH[..12]);
                }
                if v6 {
                    assert_eq!(usize::from(u16::from_be_bytes([ip[4], ip[5]])), ip.len() - 40);
                } else {
                    assert_eq!(usize::from(u16::from_be_bytes([ip[2], ip[3]])), ip.len());
                    assert_eq!(u16::from_be_bytes([ip[4], ip[5]]), 0x1234 + i as u16);
                    assert_eq!(fold(sum(&ip[..20], 0)), 0xffff, "IPv4 header checksum of segment {i}");
                }
                let t = &ip[iph..];
                let proto = if udp { UDP } else { TCP };
                assert_eq!(fold(sum(t, pseudo_header(ip, v6, proto, t.len() as u32))), 0xffff, "checksum of {i}");
                if udp {
                    assert_eq!(usize::from(u16::from_be_bytes([t[4], t[5]])), t.len());
                } else {
                    assert_eq!(u32::from_be_bytes([t[4], t[5], t[6], t[7]]), 1000 + 1000 * i as u32);
                    let last = i == n - 1;
                    assert_eq!(t[13] & (TCP_PSH | TCP_FIN) != 0, last, "PSH and FIN on the last only");
                }
                joined.extend_from_slice(&t[l4..]);
            }
            assert_eq!(joined, payload);
        }
    }

    #[test]
    fn a_single_packet_gets_its_checksum_finished_and_bad_reads_are_refused() {
        let read = super_packet(false, false, false, 1000, 0x10, &[7; 300]);
        let mut single = read.clone();
        single[1] = GSO_NONE;
        let (mut out, mut sizes) = bufs();
        assert_eq!(split(&single, 0, &mut out, &mut sizes), Ok(1));
        let p = &out[0][..sizes[0]];
        assert_eq!(fold(sum(&p[20..], pseudo_header(p, false, TCP, (p.len() - 20) as u32))), 0xffff);
        // Truncations and nonsense are errors, never panics.
        for end in 0..read.len() {
            let _ = split(&read[..end], 0, &mut out, &mut sizes);
        }
        let mut ufo = read.clone();
        ufo[1] = 3;
        assert_eq!(split(&ufo, 0, &mut out, &mut sizes), Err(SplitError::Unsupported));
        let many = super_packet(false, false, false, 10, 0x10, &[0; 200]);
        assert_eq!(split(&many, 0, &mut out, &mut sizes), Err(SplitError::TooManySegments(20)));
        let mut lying = read;
        lying[VNET_HDR_LEN + 32] = 0xf0;
        let _ = split(&lying, 0, &mut out, &mut sizes);
    }
}
