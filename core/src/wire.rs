//! A checked view of an IP packet's header, over bytes from anywhere (a tunnel device, a peer's datagram, a
//! packet sample): every accessor is infallible once [`Ip::new_checked`] has accepted the bytes, and nothing in
//! here trusts a length the packet states or panics on any input. The data plane routes with it; packet views
//! read their headers with it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const V4_HEADER: usize = 20;
const V6_HEADER: usize = 40;

/// An IPv4 or IPv6 packet whose fixed header is all there.
#[derive(Debug, Clone, Copy)]
pub struct Ip<'a> {
    bytes: &'a [u8],
}

impl<'a> Ip<'a> {
    /// The packet, if `bytes` start with a whole IPv4 header (with a header length of at least 20 bytes) or a
    /// whole IPv6 header.
    pub fn new_checked(bytes: &'a [u8]) -> Option<Self> {
        match bytes.first()? >> 4 {
            4 if bytes.len() >= V4_HEADER && usize::from(bytes[0] & 0x0f) * 4 >= V4_HEADER => Some(Self { bytes }),
            6 if bytes.len() >= V6_HEADER => Some(Self { bytes }),
            _ => None,
        }
    }

    pub fn is_v6(&self) -> bool {
        self.bytes[0] >> 4 == 6
    }

    pub fn source(&self) -> IpAddr {
        if self.is_v6() {
            IpAddr::V6(Ipv6Addr::from(self.array::<16>(8)))
        } else {
            IpAddr::V4(Ipv4Addr::from(self.array::<4>(12)))
        }
    }

    pub fn destination(&self) -> IpAddr {
        if self.is_v6() {
            IpAddr::V6(Ipv6Addr::from(self.array::<16>(24)))
        } else {
            IpAddr::V4(Ipv4Addr::from(self.array::<4>(16)))
        }
    }

    /// The IPv4 protocol, or the IPv6 next header.
    pub fn protocol(&self) -> u8 {
        if self.is_v6() { self.bytes[6] } else { self.bytes[9] }
    }

    /// What follows the header: empty when an IPv4 header claims to be longer than the packet.
    pub fn payload(&self) -> &'a [u8] {
        let header = if self.is_v6() { V6_HEADER } else { usize::from(self.bytes[0] & 0x0f) * 4 };
        self.bytes.get(header..).unwrap_or(&[])
    }

    /// The source and destination ports of a TCP or UDP packet whose ports are there.
    pub fn ports(&self) -> Option<(u16, u16)> {
        let l4 = self.payload();
        (matches!(self.protocol(), 6 | 17) && l4.len() >= 4)
            .then(|| (u16::from_be_bytes([l4[0], l4[1]]), u16::from_be_bytes([l4[2], l4[3]])))
    }

    fn array<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut out = [0; N];
        // In bounds: new_checked saw the whole fixed header, which holds both addresses.
        if let Some(s) = self.bytes.get(at..at + N) {
            out.copy_from_slice(s);
        }
        out
    }
}

/// EtherTypes of the IP payloads of Ethernet frames.
pub const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
pub const ETHERTYPE_IPV6: [u8; 2] = [0x86, 0xdd];
pub const ETHERTYPE_ARP: [u8; 2] = [0x08, 0x06];
/// Bytes of an Ethernet header without VLAN tags.
pub const ETHERNET_HEADER: usize = 14;

/// The EtherType of an Ethernet frame and what follows the header, if the header is all there.
pub fn ethernet(frame: &[u8]) -> Option<([u8; 2], &[u8])> {
    let kind = frame.get(12..14)?;
    Some(([kind[0], kind[1]], &frame[ETHERNET_HEADER..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_families_and_refuses_short_or_odd_headers() {
        let mut v4 = vec![0u8; 28];
        v4[0] = 0x45;
        v4[9] = 17;
        v4[12..16].copy_from_slice(&[10, 0, 0, 1]);
        v4[16..20].copy_from_slice(&[10, 0, 0, 2]);
        v4[20..24].copy_from_slice(&[0, 53, 0x14, 0x51]);
        let ip = Ip::new_checked(&v4).unwrap();
        assert_eq!((ip.source(), ip.destination()), ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()));
        assert_eq!(ip.ports(), Some((53, 5201)));
        let mut v6 = vec![0u8; 40];
        v6[0] = 0x60;
        v6[6] = 58;
        v6[39] = 1;
        let ip = Ip::new_checked(&v6).unwrap();
        assert_eq!(ip.destination(), "::1".parse::<IpAddr>().unwrap());
        assert_eq!((ip.protocol(), ip.ports()), (58, None));
        for junk in [&[][..], &[0x45; 19], &[0x44; 20], &[0x60; 39], &[0x00; 64], &[0xff; 100]] {
            assert!(Ip::new_checked(junk).is_none(), "{junk:?}");
        }
        // A header length past the end leaves no payload, and no ports.
        v4[0] = 0x4f;
        assert_eq!(Ip::new_checked(&v4).unwrap().ports(), None);
    }
}
