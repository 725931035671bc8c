//! Ethernet MAC addresses, and the VTEP MACs Culvert derives so that VXLAN profiles can be written in advance.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The VTEP MAC of a VXLAN endpoint when its profile sets none: `02`, the low byte of the VNI, then the low
    /// four bytes of the underlay address. `02` makes it a locally administered unicast address; the VNI byte
    /// keeps one host's VTEPs of different overlays apart; the address keeps hosts apart. For VNI 42 on
    /// 172.31.0.1 it is 02:2a:ac:1f:00:01.
    pub fn derived(vni: u32, underlay: IpAddr) -> Self {
        let tail = match underlay {
            IpAddr::V4(a) => a.octets(),
            IpAddr::V6(a) => {
                let o = a.octets();
                [o[12], o[13], o[14], o[15]]
            }
        };
        MacAddr([0x02, (vni & 0xff) as u8, tail[0], tail[1], tail[2], tail[3]])
    }

    /// A unicast address a device may have (not multicast, not all zeros).
    pub fn is_unicast(&self) -> bool {
        self.0[0] & 1 == 0 && self.0 != [0; 6]
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

impl FromStr for MacAddr {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.trim().split([':', '-']).collect();
        if parts.len() != 6 {
            return Err("is not six hex bytes");
        }
        let mut out = [0u8; 6];
        for (o, p) in out.iter_mut().zip(&parts) {
            if p.len() != 2 {
                return Err("is not six two-digit hex bytes");
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| "has a byte that is not hex")?;
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_macs_are_documented_and_unicast() {
        let m = MacAddr::derived(42, "172.31.0.1".parse().unwrap());
        assert_eq!(m.to_string(), "02:2a:ac:1f:00:01");
        assert!(m.is_unicast());
        assert_eq!(MacAddr::derived(0x0012_3456, "fd00::1:2".parse().unwrap()).to_string(), "02:56:00:01:00:02");
    }

    #[test]
    fn parses_both_separators_and_refuses_junk() {
        assert_eq!("02:2A:ac:1f:00:01".parse::<MacAddr>().unwrap(), "02-2a-ac-1f-00-01".parse().unwrap());
        for bad in ["", "02:2a:ac:1f:00", "02:2a:ac:1f:00:0g", "2:2a:ac:1f:00:01"] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
        assert!(!"01:00:5e:00:00:01".parse::<MacAddr>().unwrap().is_unicast());
    }
}
