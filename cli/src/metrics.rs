//! What `culvert exporter` serves: the tunnels culvertd shows, in Prometheus's text format (version 0.0.4).
//!
//! Culvert's own metrics are `culvert_*`, in base units with `_total` on counters. WireGuard peers are also
//! given under the names and labels of prometheus_wireguard_exporter (`wireguard_sent_bytes_total`, ... with
//! `interface`, `public_key`, `allowed_ips`), so that dashboards made for it work on Culvert's tunnels too.

use std::fmt::Write;

use culvert_core::stats::{PeerStatus, TunnelState, TunnelStatus, TunnelView};

/// The port `culvert exporter` listens on unless told otherwise: outside 9100-9999, which Prometheus's port
/// allocation list has given out entirely, and taken by none of the exporters listed outside it; prometheus_
/// wireguard_exporter's 9586 with a 1 in front, to be remembered.
pub const DEFAULT_PORT: u16 = 19586;

/// The media type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A counter of a tunnel: its name, its help, and where its value is.
type TunnelCounter = (&'static str, &'static str, fn(&TunnelStatus) -> u64);
/// A WireGuard peer's metric: its name, type, help, and where its value is.
type PeerMetric = (&'static str, &'static str, &'static str, fn(&PeerStatus) -> u64);

/// One metric family: its name, type and help, then its samples.
struct Family<'a> {
    out: &'a mut String,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &str, kind: &str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Self { out }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = write!(self.out, "{name}");
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{key}=\"{}\"", escape(value));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// A label value as the text format writes it: backslash, double quote and line feed escaped.
fn escape(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

/// The page for the tunnels culvertd showed (`None`: culvertd did not answer), at Unix time `now`.
pub fn render(tunnels: Option<&[TunnelView]>, now: u64) -> String {
    let mut out = String::new();
    Family::new(&mut out, "culvert_helper_up", "gauge", "Whether culvertd answered this scrape.").sample(
        "culvert_helper_up",
        &[],
        u8::from(tunnels.is_some()),
    );
    let full: Vec<&TunnelStatus> = tunnels.unwrap_or_default().iter().filter_map(TunnelView::full).collect();

    let mut f =
        Family::new(&mut out, "culvert_tunnel_up", "gauge", "Whether the tunnel is up (1), or in another state.");
    for t in &full {
        let state = t.state.to_string();
        let labels = [("tunnel", t.name.as_str()), ("kind", kind(t)), ("interface", &t.interface), ("state", &state)];
        f.sample("culvert_tunnel_up", &labels, u8::from(t.state == TunnelState::Up));
    }
    let counters: [TunnelCounter; 4] = [
        ("culvert_tunnel_receive_bytes_total", "Bytes of packets the tunnel delivered to its device.", |t| {
            t.counters.rx_bytes
        }),
        ("culvert_tunnel_transmit_bytes_total", "Bytes of packets the tunnel carried from its device.", |t| {
            t.counters.tx_bytes
        }),
        ("culvert_tunnel_receive_packets_total", "Packets the tunnel delivered to its device.", |t| {
            t.counters.rx_packets
        }),
        ("culvert_tunnel_transmit_packets_total", "Packets the tunnel carried from its device.", |t| {
            t.counters.tx_packets
        }),
    ];
    for (name, help, value) in counters {
        let mut f = Family::new(&mut out, name, "counter", help);
        for t in &full {
            f.sample(name, &[("tunnel", &t.name)], value(t));
        }
    }
    let mut f =
        Family::new(&mut out, "culvert_tunnel_drops_total", "counter", "Packets the tunnel dropped, by reason.");
    for t in &full {
        for (reason, n) in &t.counters.drops {
            f.sample("culvert_tunnel_drops_total", &[("tunnel", &t.name), ("reason", reason)], n);
        }
    }
    let mut f = Family::new(&mut out, "culvert_tunnel_up_since_seconds", "gauge", "Unix time when the tunnel came up.");
    for t in full.iter().filter(|t| t.up_since > 0) {
        f.sample("culvert_tunnel_up_since_seconds", &[("tunnel", &t.name)], t.up_since);
    }

    // WireGuard peers, with a public key each.
    let peers: Vec<(&TunnelStatus, &PeerStatus, &str, String)> = full
        .iter()
        .flat_map(|t| t.peers.iter().map(move |p| (*t, p)))
        .filter_map(|(t, p)| {
            let key = p.public_key.as_deref()?;
            let allowed = p.allowed_ips.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
            Some((t, p, key, allowed))
        })
        .collect();
    let mut f = Family::new(
        &mut out,
        "culvert_wireguard_handshake_age_seconds",
        "gauge",
        "Seconds since the peer's latest handshake (none before the first).",
    );
    for (t, p, key, _) in &peers {
        if let Some(Some(at)) = p.last_handshake {
            f.sample(
                "culvert_wireguard_handshake_age_seconds",
                &[("tunnel", &t.name), ("public_key", key)],
                now.saturating_sub(at),
            );
        }
    }
    let wireguard: [PeerMetric; 3] = [
        ("wireguard_sent_bytes_total", "counter", "Bytes sent to the peer (prometheus_wireguard_exporter's).", |p| {
            p.tx_bytes
        }),
        (
            "wireguard_received_bytes_total",
            "counter",
            "Bytes received from the peer (prometheus_wireguard_exporter's).",
            |p| p.rx_bytes,
        ),
        (
            "wireguard_latest_handshake_seconds",
            "gauge",
            "Unix time of the peer's latest handshake, 0 before the first (prometheus_wireguard_exporter's).",
            |p| p.last_handshake.flatten().unwrap_or(0),
        ),
    ];
    for (name, kind, help, value) in wireguard {
        let mut f = Family::new(&mut out, name, kind, help);
        for (t, p, key, allowed) in &peers {
            f.sample(name, &[("interface", &t.interface), ("public_key", key), ("allowed_ips", allowed)], value(p));
        }
    }
    out
}

fn kind(t: &TunnelStatus) -> &'static str {
    t.kind.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    /// WireGuard peers come under prometheus_wireguard_exporter's names and labels too, and drops by reason.
    #[test]
    fn wireguard_peers_are_where_wireguard_dashboards_look() {
        let status = serde_json::json!([{
            "name": "home", "kind": "wireguard", "state": "up", "interface": "wg-home", "owner_uid": 1000,
            "up_since": 1_700_000_000u64, "rx_bytes": 10, "tx_bytes": 20, "rx_packets": 1, "tx_packets": 2,
            "dropped": 3, "drops": {"no_route": 3}, "cookie_replies": 0,
            "peers": [{
                "endpoint": "192.0.2.1:51820", "allowed_ips": ["10.8.0.2/32", "fd08::2/128"], "rx_bytes": 7,
                "tx_bytes": 9, "rx_packets": 1, "tx_packets": 1, "public_key": "PEER=",
                "last_handshake": 1_700_000_100u64
            }]
        }]);
        let tunnels: Vec<TunnelView> = serde_json::from_value(status).unwrap();
        let page = render(Some(&tunnels), 1_700_000_130);
        let peer = r#"{interface="wg-home",public_key="PEER=",allowed_ips="10.8.0.2/32,fd08::2/128"}"#;
        for line in [
            format!("wireguard_sent_bytes_total{peer} 9"),
            format!("wireguard_received_bytes_total{peer} 7"),
            format!("wireguard_latest_handshake_seconds{peer} 1700000100"),
            r#"culvert_wireguard_handshake_age_seconds{tunnel="home",public_key="PEER="} 30"#.into(),
            r#"culvert_tunnel_drops_total{tunnel="home",reason="no_route"} 3"#.into(),
            r#"culvert_tunnel_up{tunnel="home",kind="wireguard",interface="wg-home",state="up"} 1"#.into(),
        ] {
            assert!(page.lines().any(|l| l == line), "no line {line} in\n{page}");
        }
    }

    #[test]
    fn without_culvertd_the_page_says_so() {
        let page = render(None, 0);
        assert!(page.contains("culvert_helper_up 0\n"), "{page}");
        assert!(page.contains("# TYPE culvert_tunnel_receive_bytes_total counter"), "{page}");
    }
}
