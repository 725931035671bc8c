//! What the helper reports about a tunnel, and the rates clients compute from two reports.

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::profile::Kind;

/// The state of one tunnel as `status` and `Stats` events show it. Counters count what crosses the tunnel
/// device (inner packets), not the overhead of the datagrams that carry them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct TunnelStatus {
    pub name: String,
    pub kind: Kind,
    pub state: TunnelState,
    /// Why the state is not `up`, and what to check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub interface: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_port: Option<u16>,
    /// The uid of the caller that brought the tunnel up.
    pub owner_uid: u32,
    /// A system tunnel (`culvert enable`): culvertd brings it up whenever it starts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[ts(as = "Option<bool>", optional)]
    pub system: bool,
    /// Nothing leaves the host around this tunnel (its profile's `kill_switch`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[ts(as = "Option<bool>", optional)]
    pub kill_switch: bool,
    /// Unix time (seconds) when the tunnel came up.
    #[ts(type = "number")]
    pub up_since: u64,
    #[serde(flatten)]
    pub counters: Counters,
    pub peers: Vec<PeerStatus>,
    /// For an overlay tunnel: its network, its lease and the hosts etcd lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub overlay: Option<Box<OverlayStatus>>,
}

/// An overlay tunnel's place in its network, as its registry (etcd) has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct OverlayStatus {
    /// The whole network (`Network` of its config) and this host's lease in it.
    pub network: String,
    pub subnet: String,
    /// The backend the network's config names (`vxlan`, `host-gw`).
    pub backend: String,
    /// Unix time (seconds) when this host's lease ends unless renewed.
    #[ts(type = "number")]
    pub lease_expires: u64,
    pub registry: RegistryState,
    /// The other hosts' leases, each a peer unless `skipped_reason` says why not.
    pub nodes: Vec<OverlayNode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export)]
#[serde(rename_all = "lowercase")]
pub enum RegistryState {
    /// Watching etcd.
    Ok,
    /// etcd does not answer: the peers stay as they were and are caught up when it is back.
    Unreachable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct OverlayNode {
    pub public_ip: String,
    pub subnet: String,
    pub backend: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub skipped_reason: Option<String>,
}

/// A tunnel as one caller may see it: in full when it is theirs (or they are root), else only who holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TunnelView {
    Full(TunnelStatus),
    Other(OtherTunnel),
}

/// A system tunnel (`culvert enable`): culvertd keeps its profile and brings it up whenever it starts, until it
/// is disabled. Whether it is up now is the status's to say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct SystemTunnel {
    pub name: String,
    pub kind: Kind,
    pub owner_uid: u32,
    pub kill_switch: bool,
}

/// Another user's tunnel: its name, kind, state and owner, and nothing of its addresses, peers or traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export)]
#[serde(deny_unknown_fields)]
pub struct OtherTunnel {
    pub name: String,
    pub kind: Kind,
    pub state: TunnelState,
    pub owner_uid: u32,
}

impl TunnelView {
    pub fn name(&self) -> &str {
        match self {
            Self::Full(t) => &t.name,
            Self::Other(t) => &t.name,
        }
    }

    pub fn owner_uid(&self) -> u32 {
        match self {
            Self::Full(t) => t.owner_uid,
            Self::Other(t) => t.owner_uid,
        }
    }

    /// The whole status, when the caller may see it.
    pub fn full(&self) -> Option<&TunnelStatus> {
        match self {
            Self::Full(t) => Some(t),
            Self::Other(_) => None,
        }
    }
}

impl TunnelStatus {
    /// What a caller who is neither the owner nor root is shown.
    pub fn for_others(&self) -> OtherTunnel {
        OtherTunnel { name: self.name.clone(), kind: self.kind, state: self.state, owner_uid: self.owner_uid }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export)]
pub enum TunnelState {
    #[serde(rename = "up")]
    Up,
    /// Waiting for a first handshake (kinds with handshakes).
    #[serde(rename = "connecting")]
    Connecting,
    /// Handshakes keep failing; the status's `reason` says what to check.
    #[serde(rename = "no handshake")]
    NoHandshake,
    /// Not up, and nothing leaves the host around it: its kill switch (or lockdown) holds; `reason` says why and
    /// how to lift it.
    #[serde(rename = "blocked")]
    Blocked,
}

impl std::fmt::Display for TunnelState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Up => "up",
            Self::Connecting => "connecting",
            Self::NoHandshake => "no handshake",
            Self::Blocked => "blocked",
        })
    }
}

/// Traffic counters of a tunnel: `rx` is what came out of the tunnel into this host, `tx` what went in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct Counters {
    #[ts(type = "number")]
    pub rx_bytes: u64,
    #[ts(type = "number")]
    pub tx_bytes: u64,
    #[ts(type = "number")]
    pub rx_packets: u64,
    #[ts(type = "number")]
    pub tx_packets: u64,
    /// Sum of `drops`.
    #[ts(type = "number")]
    pub dropped: u64,
    /// Dropped packets by reason, such as `no_route` or `unknown_peer`.
    #[ts(type = "Record<string, number>")]
    pub drops: BTreeMap<String, u64>,
    /// WireGuard: cookie replies sent to handshakes refused under load (each also counted as `rate_limited`).
    #[serde(default)]
    #[ts(type = "number")]
    pub cookie_replies: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export)]
pub struct PeerStatus {
    /// `ip:port`, or null while the peer's address is unknown.
    pub endpoint: Option<String>,
    #[ts(type = "Array<string>")]
    pub allowed_ips: Vec<IpNet>,
    #[ts(type = "number")]
    pub rx_bytes: u64,
    #[ts(type = "number")]
    pub tx_bytes: u64,
    #[ts(type = "number")]
    pub rx_packets: u64,
    #[ts(type = "number")]
    pub tx_packets: u64,
    /// WireGuard peers only: the peer's public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub public_key: Option<String>,
    /// WireGuard peers only: Unix time (seconds) of the latest handshake, or null before the first.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present_or_null")]
    #[ts(optional, type = "number | null")]
    pub last_handshake: Option<Option<u64>>,
    /// WireGuard peers only, when set: seconds between keepalives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub persistent_keepalive: Option<u16>,
}

/// A key that is present is `Some`, whether its value is null or not; an absent key stays `None`.
fn present_or_null<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl PeerStatus {
    /// A peer without handshakes, with its traffic as (rx bytes, tx bytes, rx packets, tx packets).
    pub fn new(endpoint: Option<String>, allowed_ips: Vec<IpNet>, traffic: (u64, u64, u64, u64)) -> Self {
        let (rx_bytes, tx_bytes, rx_packets, tx_packets) = traffic;
        Self {
            endpoint,
            allowed_ips,
            rx_bytes,
            tx_bytes,
            rx_packets,
            tx_packets,
            public_key: None,
            last_handshake: None,
            persistent_keepalive: None,
        }
    }
}

/// Bytes per second in each direction between two reports of the same tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub rx_bps: f64,
    pub tx_bps: f64,
}

impl Rates {
    /// Rates from `earlier` to `later`, `elapsed_ms` apart. Counters that went backwards (the tunnel was
    /// recreated in between) give 0 rather than a huge bogus rate.
    pub fn between(earlier: &Counters, later: &Counters, elapsed_ms: u64) -> Rates {
        if elapsed_ms == 0 {
            return Rates { rx_bps: 0.0, tx_bps: 0.0 };
        }
        let per_sec = |a: u64, b: u64| b.saturating_sub(a) as f64 * 1000.0 / elapsed_ms as f64;
        Rates { rx_bps: per_sec(earlier.rx_bytes, later.rx_bytes), tx_bps: per_sec(earlier.tx_bytes, later.tx_bytes) }
    }
}

/// `1234567` as `1.2 MB`: decimal units, as network rates are usually given.
pub fn human_bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{v:.0} {}", UNITS[0]) } else { format!("{v:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_second() {
        let a = Counters { rx_bytes: 1000, tx_bytes: 0, ..Default::default() };
        let b = Counters { rx_bytes: 3000, tx_bytes: 500, ..Default::default() };
        let r = Rates::between(&a, &b, 500);
        assert_eq!((r.rx_bps, r.tx_bps), (4000.0, 1000.0));
        assert_eq!(Rates::between(&b, &a, 1000).rx_bps, 0.0);
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(999.0), "999 B");
        assert_eq!(human_bytes(1_234_567.0), "1.2 MB");
    }

    #[test]
    fn status_json_has_the_documented_keys() {
        let s = TunnelStatus {
            name: "lab".into(),
            kind: Kind::Udp,
            state: TunnelState::Up,
            reason: None,
            interface: "lab".into(),
            listen_port: Some(8285),
            owner_uid: 0,
            system: false,
            kill_switch: false,
            up_since: 1,
            counters: Counters { drops: [("no_route".to_string(), 2)].into(), dropped: 2, ..Default::default() },
            peers: vec![],
            overlay: None,
        };
        let v = serde_json::to_value(&s).unwrap();
        for key in [
            "name",
            "kind",
            "state",
            "interface",
            "rx_bytes",
            "tx_bytes",
            "rx_packets",
            "tx_packets",
            "dropped",
            "drops",
            "peers",
        ] {
            assert!(v.get(key).is_some(), "{key} missing from {v}");
        }
        assert_eq!(v["state"], "up");
        assert_eq!(v["drops"]["no_route"], 2);

        // Another user sees four keys, and both forms read back as what they were.
        let other = serde_json::to_value(TunnelView::Other(s.for_others())).unwrap();
        let keys: Vec<&String> = other.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["kind", "name", "owner_uid", "state"]);
        for view in [TunnelView::Full(s.clone()), TunnelView::Other(s.for_others())] {
            let text = serde_json::to_string(&view).unwrap();
            assert_eq!(serde_json::from_str::<TunnelView>(&text).unwrap(), view);
        }
    }
}
