//! Relaxed atomic counters, written by the data plane once per batch and read by status and stats snapshots.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use culvert_core::stats::Counters;

/// Why a packet was dropped. The names are the keys of `drops` in `status --json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Read from the tunnel device, but no peer's allowed_ips contains its destination.
    NoRoute,
    /// A datagram from an address that is no peer's endpoint.
    UnknownPeer,
    /// Not an IP packet (from the device or inside a datagram).
    Malformed,
    /// The UDP socket refused to send it.
    SendFailed,
    /// The tunnel device refused to take it.
    TunWriteFailed,
    /// For a peer whose endpoint is not known yet (it has not reached us).
    NoEndpoint,
    /// Decrypted, but its inner source is not among the sending peer's AllowedIPs.
    SpoofedSource,
    /// A WireGuard message seen before, or too old.
    Replayed,
    /// A handshake refused under load (the initiator gets a cookie instead).
    RateLimited,
    /// Authentication failed: not from the key it claims.
    BadCrypto,
    /// Data for a session that does not exist (any more).
    NoSession,
}

impl DropReason {
    pub const ALL: [DropReason; 11] = [
        Self::NoRoute,
        Self::UnknownPeer,
        Self::Malformed,
        Self::SendFailed,
        Self::TunWriteFailed,
        Self::NoEndpoint,
        Self::SpoofedSource,
        Self::Replayed,
        Self::RateLimited,
        Self::BadCrypto,
        Self::NoSession,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::NoRoute => "no_route",
            Self::UnknownPeer => "unknown_peer",
            Self::Malformed => "malformed",
            Self::SendFailed => "send_failed",
            Self::TunWriteFailed => "tun_write_failed",
            Self::NoEndpoint => "no_endpoint",
            Self::SpoofedSource => "spoofed_source",
            Self::Replayed => "replayed",
            Self::RateLimited => "rate_limited",
            Self::BadCrypto => "bad_crypto",
            Self::NoSession => "no_session",
        }
    }
}

/// Bytes and packets in each direction.
#[derive(Debug, Default)]
pub struct Traffic {
    rx_bytes: AtomicU64,
    rx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    tx_packets: AtomicU64,
}

impl Traffic {
    pub fn add_rx(&self, packets: u64, bytes: u64) {
        if packets > 0 {
            self.rx_packets.fetch_add(packets, Relaxed);
            self.rx_bytes.fetch_add(bytes, Relaxed);
        }
    }

    pub fn add_tx(&self, packets: u64, bytes: u64) {
        if packets > 0 {
            self.tx_packets.fetch_add(packets, Relaxed);
            self.tx_bytes.fetch_add(bytes, Relaxed);
        }
    }

    /// (rx_bytes, tx_bytes, rx_packets, tx_packets)
    pub fn read(&self) -> (u64, u64, u64, u64) {
        (
            self.rx_bytes.load(Relaxed),
            self.tx_bytes.load(Relaxed),
            self.rx_packets.load(Relaxed),
            self.tx_packets.load(Relaxed),
        )
    }
}

/// Counters of one tunnel: its traffic, its drops by reason, and the cookie replies it sent.
#[derive(Debug, Default)]
pub struct TunnelCounters {
    pub traffic: Traffic,
    drops: [AtomicU64; DropReason::ALL.len()],
    cookie_replies: AtomicU64,
}

impl TunnelCounters {
    pub fn drop_packets(&self, reason: DropReason, n: u64) {
        if n > 0 {
            self.drops[reason as usize].fetch_add(n, Relaxed);
        }
    }

    /// A WireGuard cookie reply went to a handshake initiator (one refused as `rate_limited`).
    pub fn cookie_reply_sent(&self) {
        self.cookie_replies.fetch_add(1, Relaxed);
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].load(Relaxed)
    }

    pub fn snapshot(&self) -> Counters {
        let (rx_bytes, tx_bytes, rx_packets, tx_packets) = self.traffic.read();
        let drops: BTreeMap<String, u64> =
            DropReason::ALL.iter().map(|r| (r.name().to_owned(), self.dropped(*r))).collect();
        Counters {
            rx_bytes,
            tx_bytes,
            rx_packets,
            tx_packets,
            dropped: drops.values().sum(),
            drops,
            cookie_replies: self.cookie_replies.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_sums_drops() {
        let c = TunnelCounters::default();
        c.traffic.add_tx(2, 300);
        c.drop_packets(DropReason::NoRoute, 3);
        c.drop_packets(DropReason::UnknownPeer, 1);
        let s = c.snapshot();
        assert_eq!((s.tx_packets, s.tx_bytes, s.dropped), (2, 300, 4));
        assert_eq!(s.drops["no_route"], 3);
        assert_eq!(s.drops["tun_write_failed"], 0);
    }
}
