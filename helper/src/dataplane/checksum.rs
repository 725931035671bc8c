//! The Internet checksum (RFC 1071), as segmentation and coalescing need it: sums of headers and payloads,
//! folded and complemented by the caller.

/// The one's-complement sum of `data` as 16-bit big-endian words, added to `initial`, not folded.
pub fn sum(data: &[u8], initial: u64) -> u64 {
    // Native (little-endian) words in four lanes, which the compiler vectorizes, then one byte swap: the
    // one's-complement sum is the same in either byte order but for that swap (RFC 1071, 2(B)). Each lane adds
    // two 32-bit halves per word, which cannot overflow for any packet.
    let mut lanes = [0u64; 4];
    let mut blocks = data.chunks_exact(32);
    for block in &mut blocks {
        for (lane, w) in lanes.iter_mut().zip(block.chunks_exact(8)) {
            let v = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            *lane += (v >> 32) + (v & 0xffff_ffff);
        }
    }
    let mut acc: u64 = lanes.iter().sum();
    let mut words = blocks.remainder().chunks_exact(2);
    for pair in &mut words {
        acc += u64::from(u16::from_le_bytes([pair[0], pair[1]]));
    }
    // An odd last byte is the high half of a big-endian word.
    if let [last] = words.remainder() {
        acc += u64::from(*last);
    }
    initial + u64::from(fold(acc).swap_bytes())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071's own loop: big-endian words, one at a time.
    fn reference(data: &[u8]) -> u16 {
        let mut acc: u64 = data.chunks(2).map(|c| u64::from(c[0]) << 8 | c.get(1).copied().map_or(0, u64::from)).sum();
        while acc >> 16 != 0 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn the_fast_sum_is_rfc_1071s_for_every_length_and_alignment() {
        let data: Vec<u8> = (0..4000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for start in 0..8 {
            for len in (0..300).chain([1399, 1400, 1401, 3992]) {
                let slice = &data[start..start + len];
                assert_eq!(fold(sum(slice, 0)), reference(slice), "start {start}, len {len}");
            }
        }
        // All ones: the sum of 0xffff words stays 0xffff, never 0.
        assert_eq!(fold(sum(&[0xff; 64], 0)), 0xffff);
        assert_eq!(fold(sum(&[0x12, 0x34], 0x0001)), 0x1235);
    }
}
