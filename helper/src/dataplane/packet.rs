//! Just enough IP header parsing to route a packet: version, addresses, length. Never panics on any input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const V4_HEADER: usize = 20;
const V6_HEADER: usize = 40;

/// The destination address of an IPv4 or IPv6 packet, or `None` if `packet` is not one.
pub fn destination(packet: &[u8]) -> Option<IpAddr> {
    match packet.first()? >> 4 {
        4 if packet.len() >= V4_HEADER => Some(IpAddr::V4(Ipv4Addr::from(octets::<4>(&packet[16..20])))),
        6 if packet.len() >= V6_HEADER => Some(IpAddr::V6(Ipv6Addr::from(octets::<16>(&packet[24..40])))),
        _ => None,
    }
}

/// Whether `packet` starts like an IP packet whose header fits, so that it is worth giving to the kernel.
pub fn looks_like_ip(packet: &[u8]) -> bool {
    destination(packet).is_some()
}

fn octets<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&s[..N]);
    out
}

#[cfg(test)]
pub(crate) mod build {
    //! Minimal valid packets for tests.
    use std::net::IpAddr;

    pub fn ip(src: IpAddr, dst: IpAddr, payload: &[u8]) -> Vec<u8> {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut p = vec![0u8; 20];
                p[0] = 0x45;
                let total = (20 + payload.len()) as u16;
                p[2..4].copy_from_slice(&total.to_be_bytes());
                p[8] = 64;
                p[9] = 17;
                p[12..16].copy_from_slice(&s.octets());
                p[16..20].copy_from_slice(&d.octets());
                p.extend_from_slice(payload);
                p
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let mut p = vec![0u8; 40];
                p[0] = 0x60;
                p[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
                p[6] = 17;
                p[7] = 64;
                p[8..24].copy_from_slice(&s.octets());
                p[24..40].copy_from_slice(&d.octets());
                p.extend_from_slice(payload);
                p
            }
            _ => panic!("mixed address families"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_addresses() {
        let p = build::ip("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), b"x");
        assert_eq!(destination(&p), Some("10.0.0.2".parse().unwrap()));
        let p = build::ip("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap(), b"");
        assert_eq!(destination(&p), Some("fd00::2".parse().unwrap()));
    }

    #[test]
    fn hostile_input_is_not_ip() {
        for junk in [&[][..], &[0x45; 19], &[0x60; 39], &[0x00; 64], &[0xff; 100]] {
            assert!(!looks_like_ip(junk), "{junk:?}");
            assert_eq!(destination(junk), None);
        }
    }
}
