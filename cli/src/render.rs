//! How tunnels look on a terminal.

use std::fmt::{self, Write};

use culvert_core::stats::{Counters, Rates, SystemTunnel, TunnelStatus, TunnelView, human_bytes};
use serde::Serialize;

pub fn up_line(s: &TunnelStatus) -> String {
    let port = s.listen_port.map(|p| format!(", UDP port {p}")).unwrap_or_default();
    let peers = match s.peers.len() {
        1 => "1 peer".to_owned(),
        n => format!("{n} peers"),
    };
    let label = if s.kind.encrypted() { "" } else { ", unencrypted" };
    let switch = if s.kill_switch { "; kill switch on: nothing leaves this host around it" } else { "" };
    format!("{} is up on {} ({}{label}{port}, {peers}){switch}", s.name, s.interface, s.kind)
}

/// What `culvert enable` did.
pub fn enabled(s: &TunnelStatus) -> String {
    format!("{}, and enabled: it comes up whenever culvertd starts", up_line(s))
}

/// A system tunnel as `culvert enabled` lists it: what culvertd keeps, and its state now (`down` when it is not
/// up).
#[derive(Debug, Serialize)]
pub struct Enabled<'a> {
    #[serde(flatten)]
    pub tunnel: &'a SystemTunnel,
    pub state: String,
}

impl Enabled<'_> {
    pub fn line(&self) -> String {
        let t = self.tunnel;
        let switch = if t.kill_switch { ", kill switch on" } else { "" };
        format!("{}: {} {}, enabled by uid {}{switch}", t.name, t.kind, self.state, t.owner_uid)
    }
}

pub fn enabled_list<'a>(enabled: &'a [SystemTunnel], up: &[TunnelView]) -> Vec<Enabled<'a>> {
    enabled
        .iter()
        .map(|t| {
            let state = up.iter().find(|v| v.name() == t.name).map(|v| match v {
                TunnelView::Full(s) => s.state.to_string(),
                TunnelView::Other(o) => o.state.to_string(),
            });
            Enabled { tunnel: t, state: state.unwrap_or_else(|| "down".into()) }
        })
        .collect()
}

/// A tunnel in `culvert status`: in full, or another user's as only what they may see of it.
pub fn view_block(v: &TunnelView) -> String {
    match v {
        TunnelView::Full(s) => status_block(s),
        TunnelView::Other(o) => format!(
            "{}: {} {}, brought up by uid {} (only its owner and root see more)\n",
            o.name, o.kind, o.state, o.owner_uid
        ),
    }
}

/// What `culvert apply` did: "applied without reconnecting" and each change, or that nothing changed.
pub fn applied(s: &TunnelStatus, changes: &[String]) -> String {
    match changes {
        [] => format!("{} is already as the profile says: nothing changed", s.name),
        [only] if only.starts_with("brought up") => up_line(s),
        changes => format!("{}: applied without reconnecting: {}", s.name, changes.join("; ")),
    }
}

pub fn status_block(s: &TunnelStatus) -> String {
    let mut out = String::new();
    let port = s.listen_port.map(|p| format!("  port {p}")).unwrap_or_default();
    let system = match (s.system, s.kill_switch) {
        (true, true) => ", system tunnel (enabled), kill switch on",
        (true, false) => ", system tunnel (enabled)",
        (false, true) => ", kill switch on",
        (false, false) => "",
    };
    let _ = writeln!(out, "{}: {} {}, interface {}{port}{system}", s.name, s.kind, s.state, s.interface);
    if let Some(reason) = &s.reason {
        let _ = writeln!(out, "  {reason}");
    }
    let c = &s.counters;
    let _ = writeln!(
        out,
        "  rx {} ({} packets)  tx {} ({} packets)  dropped {}{}",
        human_bytes(c.rx_bytes as f64),
        c.rx_packets,
        human_bytes(c.tx_bytes as f64),
        c.tx_packets,
        c.dropped,
        drop_detail(c)
    );
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if let Some(o) = &s.overlay {
        let registry = match o.registry {
            culvert_core::stats::RegistryState::Ok => "etcd ok",
            culvert_core::stats::RegistryState::Unreachable => "etcd unreachable: peers kept as they were",
        };
        let _ = writeln!(
            out,
            "  overlay {} ({}): this host {}, lease ends in {}, {registry}",
            o.network,
            o.backend,
            o.subnet,
            age(o.lease_expires.saturating_sub(now))
        );
        for n in &o.nodes {
            let what = n.skipped_reason.as_deref().map_or_else(|| "peer".to_owned(), |r| format!("skipped: {r}"));
            let _ = writeln!(
                out,
                "  host {}  subnet {}  {what}",
                if n.public_ip.is_empty() { "?" } else { &n.public_ip },
                n.subnet
            );
        }
    }
    for p in &s.peers {
        let allowed: Vec<String> = p.allowed_ips.iter().map(ToString::to_string).collect();
        if let (Some(key), Some(last_handshake)) = (&p.public_key, p.last_handshake) {
            let handshake = match last_handshake {
                Some(t) => format!("latest handshake {} ago", age(now.saturating_sub(t))),
                None => "no handshake yet".into(),
            };
            let _ = writeln!(out, "  peer {key}  {handshake}");
            let _ = writeln!(
                out,
                "    endpoint {}  allowed {}  rx {}  tx {}",
                p.endpoint.as_deref().unwrap_or("(none yet)"),
                allowed.join(", "),
                human_bytes(p.rx_bytes as f64),
                human_bytes(p.tx_bytes as f64)
            );
            continue;
        }
        let _ = writeln!(
            out,
            "  peer {}  allowed {}  rx {}  tx {}",
            p.endpoint.as_deref().unwrap_or("(unknown)"),
            allowed.join(", "),
            human_bytes(p.rx_bytes as f64),
            human_bytes(p.tx_bytes as f64)
        );
    }
    out
}

/// `75` as `1 min 15 s`.
fn age(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, secs / 60 % 60),
    }
}

fn drop_detail(c: &Counters) -> String {
    let nonzero: Vec<String> = c.drops.iter().filter(|(_, n)| **n > 0).map(|(r, n)| format!("{r} {n}")).collect();
    if nonzero.is_empty() { String::new() } else { format!(" ({})", nonzero.join(", ")) }
}

/// One line of `culvert watch`.
#[derive(Debug, Serialize)]
pub struct WatchLine {
    #[serde(rename = "type")]
    pub line: &'static str,
    /// Unix time in seconds, with milliseconds.
    pub time: f64,
    pub name: String,
    pub rx_bytes_per_sec: f64,
    pub tx_bytes_per_sec: f64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub dropped: u64,
    /// Whether the text form shows milliseconds (for intervals under a second).
    #[serde(skip)]
    pub milliseconds: bool,
}

impl WatchLine {
    pub fn new(now: &TunnelStatus, before: &Counters, elapsed_ms: u64) -> Self {
        let rates = Rates::between(before, &now.counters, elapsed_ms);
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_millis() as f64 / 1000.0);
        let c = &now.counters;
        Self {
            line: "stats",
            time,
            name: now.name.clone(),
            rx_bytes_per_sec: rates.rx_bps,
            tx_bytes_per_sec: rates.tx_bps,
            rx_bytes: c.rx_bytes,
            tx_bytes: c.tx_bytes,
            rx_packets: c.rx_packets,
            tx_packets: c.tx_packets,
            dropped: c.dropped,
            milliseconds: false,
        }
    }
}

/// A sampled packet's line in `culvert watch --packets`.
#[derive(Debug, Serialize)]
pub struct PacketLine {
    #[serde(rename = "type")]
    pub line: &'static str,
    /// Unix time in seconds, with milliseconds.
    pub time: f64,
    pub name: String,
    #[serde(flatten)]
    pub sample: culvert_core::packets::PacketSample,
}

impl PacketLine {
    /// `clock` pairs a helper time (ms) with the local time it was seen at, to date the sample.
    pub fn new(name: &str, sample: culvert_core::packets::PacketSample, clock: (u64, std::time::SystemTime)) -> Self {
        let behind = std::time::Duration::from_millis(clock.0.saturating_sub(sample.at_ms));
        let when = clock.1.checked_sub(behind).unwrap_or(clock.1);
        let time = when.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_millis() as f64 / 1000.0);
        Self { line: "packet", time, name: name.to_owned(), sample }
    }
}

impl fmt::Display for PacketLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.sample;
        let ms = (self.time * 1000.0) as u64;
        let secs = ms / 1000 % 86_400;
        let end = |ip: Option<std::net::IpAddr>, port: Option<u16>| match (ip, port) {
            (Some(std::net::IpAddr::V6(a)), Some(p)) => format!("[{a}]:{p}"),
            (Some(a), Some(p)) => format!("{a}:{p}"),
            (Some(a), None) => a.to_string(),
            (None, _) => "-".into(),
        };
        let direction = match s.direction {
            culvert_core::packets::Direction::In => "in ",
            culvert_core::packets::Direction::Out => "out",
        };
        write!(
            f,
            "{:02}:{:02}:{:02}.{:03}Z {} {direction} {:<6} {} > {}  {} B",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            ms % 1000,
            self.name,
            s.protocol,
            end(s.src, s.src_port),
            end(s.dst, s.dst_port),
            s.len
        )
    }
}

impl fmt::Display for WatchLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = (self.time * 1000.0) as u64;
        let secs = ms / 1000 % 86_400;
        let fraction = if self.milliseconds { format!(".{:03}", ms % 1000) } else { String::new() };
        write!(
            f,
            "{:02}:{:02}:{:02}{fraction}Z {}  rx {}/s  tx {}/s  total rx {}  tx {}  dropped {}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            self.name,
            human_bytes(self.rx_bytes_per_sec),
            human_bytes(self.tx_bytes_per_sec),
            human_bytes(self.rx_bytes as f64),
            human_bytes(self.tx_bytes as f64),
            self.dropped
        )
    }
}
