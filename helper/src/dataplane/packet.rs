//! Just enough of a packet's header to route it: its addresses, through the checked view that the packet views
//! use too ([`culvert_core::wire::Ip`]). Never panics on any input.

use std::net::IpAddr;

use culvert_core::wire::Ip;

/// The destination address of an IPv4 or IPv6 packet, or `None` if `packet` is not one.
pub fn destination(packet: &[u8]) -> Option<IpAddr> {
    Ip::new_checked(packet).map(|ip| ip.destination())
}

/// The source address of an IPv4 or IPv6 packet, or `None` if `packet` is not one.
pub fn source(packet: &[u8]) -> Option<IpAddr> {
    Ip::new_checked(packet).map(|ip| ip.source())
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
    fn reads_the_source_too() {
        let p = build::ip("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), b"x");
        assert_eq!(source(&p), Some("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn hostile_input_is_not_ip() {
        for junk in [&[][..], &[0x45; 19], &[0x60; 39], &[0x00; 64], &[0xff; 100]] {
            assert_eq!(source(junk), None);
            assert_eq!(destination(junk), None);
        }
    }
}
