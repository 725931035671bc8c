//! Sampled packet headers, as the helper streams them for live packet views: never payloads.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::wire;

/// Which way a packet crossed the tunnel: `out` from this host into the tunnel, `in` from the tunnel to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    In,
    Out,
}

/// The headers of one packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct PacketSample {
    /// The helper's monotonic clock, in milliseconds.
    #[ts(type = "number")]
    pub at_ms: u64,
    pub direction: Direction,
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `arp`, or the IP protocol number.
    pub protocol: String,
    #[ts(type = "string | null")]
    pub src: Option<IpAddr>,
    #[ts(type = "string | null")]
    pub dst: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    /// The whole packet's length in bytes.
    pub len: u32,
}

/// What a subscription asks for besides stats: one packet in `one_in` sampled, each way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sampling {
    pub one_in: u32,
}

/// Sampling is refused outside this range: 1 (every packet) to 1,000,000.
pub const MAX_ONE_IN: u32 = 1_000_000;

/// Reads the headers of an IP packet (or, with `ethernet`, of an Ethernet frame) without trusting any length
/// in it. Never panics.
pub fn parse(at_ms: u64, direction: Direction, bytes: &[u8], ethernet: bool) -> PacketSample {
    let mut s = PacketSample {
        at_ms,
        direction,
        protocol: "unknown".into(),
        src: None,
        dst: None,
        src_port: None,
        dst_port: None,
        len: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
    };
    let ip = if ethernet {
        match wire::ethernet(bytes) {
            Some((wire::ETHERTYPE_IPV4 | wire::ETHERTYPE_IPV6, ip)) => ip,
            Some((wire::ETHERTYPE_ARP, _)) => {
                s.protocol = "arp".into();
                return s;
            }
            Some((t, _)) => {
                s.protocol = format!("ethertype 0x{:02x}{:02x}", t[0], t[1]);
                return s;
            }
            None => return s,
        }
    } else {
        bytes
    };
    let Some(ip) = wire::Ip::new_checked(ip) else { return s };
    s.src = Some(ip.source());
    s.dst = Some(ip.destination());
    s.protocol = match ip.protocol() {
        6 => "tcp".into(),
        17 => "udp".into(),
        1 => "icmp".into(),
        58 => "icmpv6".into(),
        n => n.to_string(),
    };
    if let Some((src, dst)) = ip.ports() {
        s.src_port = Some(src);
        s.dst_port = Some(dst);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tcp_over_ipv4_and_icmpv6() {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 9, 0, 1]);
        p[16..20].copy_from_slice(&[10, 9, 0, 2]);
        p[20..24].copy_from_slice(&[0x14, 0x51, 0x00, 0x50]);
        let s = parse(5, Direction::Out, &p, false);
        assert_eq!((s.protocol.as_str(), s.src_port, s.dst_port, s.len), ("tcp", Some(5201), Some(80), 40));
        assert_eq!(s.dst, Some("10.9.0.2".parse().unwrap()));
        let mut v6 = vec![0u8; 48];
        v6[0] = 0x60;
        v6[6] = 58;
        assert_eq!(parse(0, Direction::In, &v6, false).protocol, "icmpv6");
    }

    #[test]
    fn frames_and_junk() {
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(parse(0, Direction::In, &arp, true).protocol, "arp");
        for junk in [&[][..], &[0x45; 19], &[0x4f; 20], &[0xff; 3]] {
            let s = parse(0, Direction::In, junk, false);
            assert!(s.src.is_none() || junk.len() >= 20, "{junk:?}");
            let _ = parse(0, Direction::In, junk, true);
        }
        let mut frame = vec![0u8; 20];
        frame[12..14].copy_from_slice(&[0x88, 0xcc]);
        assert_eq!(parse(0, Direction::In, &frame, true).protocol, "ethertype 0x88cc");
        // An IHL pointing past the end gives no ports, not a panic.
        let mut p = vec![0u8; 20];
        p[0] = 0x4f;
        p[9] = 17;
        assert_eq!(parse(0, Direction::In, &p, false).src_port, None);
    }
}
