//! The Internet checksum (RFC 1071), as segmentation and coalescing need it: sums of headers and payloads,
//! folded and complemented by the caller.

/// The one's-complement sum of `data`, added to `initial`, not folded.
pub fn sum(data: &[u8], initial: u64) -> u64 {
    let mut acc = initial;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let v = u64::from_be_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        // Two 32-bit halves: the sum cannot overflow for any packet.
        acc += (v >> 32) + (v & 0xffff_ffff);
    }
    let mut rest = words.remainder().chunks_exact(2);
    for pair in &mut rest {
        acc += u64::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = rest.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The pseudo-header's sum for a transport segment of `length` bytes of protocol `proto`, in the IP packet
/// whose header starts `ip`.
pub fn pseudo_header(ip: &[u8], v6: bool, proto: u8, length: u32) -> u64 {
    let addrs = if v6 { &ip[8..40] } else { &ip[12..20] };
    sum(addrs, u64::from(proto) + u64::from(length))
}
