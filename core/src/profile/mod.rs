//! Tunnel profiles: the typed model, the file schema ([`Draft`]) in TOML and wg-quick form, and validation.
//!
//! A profile is named by its file's stem (`lab.toml` is tunnel `lab`), as wg-quick names its tunnels. The same
//! [`Profile::validate`] runs in every client before sending and in the helper on every `Up` it receives, because
//! the helper must not trust its callers.

mod draft;
mod error;
mod fields;
mod file;
pub mod nm_keyfile;
mod toml_file;
mod validate;
pub mod wg_quick;

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use draft::{
    Draft, HostgwDraft, HostgwPeerDraft, NumberOrText, OverlayDraft, TapDraft, UdpDraft, UdpPeerDraft, VxlanDraft,
    VxlanPeerDraft, WireguardDraft, WireguardPeerDraft,
};
pub use error::{FileProblem, LoadError, ProfileError};
pub use file::{file_name_for, load_file, name_from_path, parse_file, read_etcd_files};
pub use toml_file::{parse_toml, write_toml};
pub use validate::name as validate_name;

use crate::keys::{PublicKey, SecretKey};
use crate::mac::MacAddr;

/// MTU of a tunnel device when the profile sets none: 1500 minus the worst-case WireGuard overhead over IPv6,
/// so that profiles stay valid when switched between kinds.
pub const DEFAULT_MTU: u16 = 1420;
/// Limits that keep one request from asking the helper for unbounded memory and work.
pub const MAX_PEERS: usize = 1024;
/// Allowed IPs (or subnets) of all peers together, and of one peer.
pub const MAX_PREFIXES: usize = 4096;
pub const MAX_PREFIXES_PER_PEER: usize = 1024;
/// Addresses on the tunnel's link.
pub const MAX_ADDRESSES: usize = 256;
/// DNS servers, and search domains, of a tunnel.
pub const MAX_DNS: usize = 16;
pub const MAX_NAME_LEN: usize = 64;

/// A named tunnel of one kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    #[serde(flatten)]
    pub tunnel: Tunnel,
}

/// The kind-specific part of a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Tunnel {
    /// One raw IP packet per UDP datagram, unencrypted (flannel's udp backend, `socat TUN UDP`).
    Udp(UdpTunnel),
    /// WireGuard, interoperable with the kernel's and wireguard-go.
    Wireguard(WireguardTunnel),
    /// A kernel VXLAN link with static forwarding state per peer (flannel's vxlan backend), unencrypted.
    Vxlan(VxlanTunnel),
    /// Routes to each peer's subnets via the peer's host address (flannel's host-gw backend); no encapsulation.
    Hostgw(HostgwTunnel),
    /// A TAP device: one Ethernet frame per UDP datagram, unencrypted.
    Tap(TapTunnel),
    /// One flat network over many hosts, each leasing a subnet in etcd as flannel does; the peers are the
    /// other hosts' leases.
    Overlay(OverlayTunnel),
}

/// The kinds of tunnel, without their settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Udp,
    Wireguard,
    Vxlan,
    Hostgw,
    Tap,
    Overlay,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Wireguard => "wireguard",
            Self::Vxlan => "vxlan",
            Self::Hostgw => "hostgw",
            Self::Tap => "tap",
            Self::Overlay => "overlay",
        }
    }

    /// Whether the kind encrypts what it carries (only WireGuard does).
    pub fn encrypted(self) -> bool {
        self == Self::Wireguard
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdpTunnel {
    /// Interface name; the tunnel's name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Addresses on the tunnel device, with their prefix length.
    pub address: Vec<IpNet>,
    pub listen_port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
    pub peers: Vec<UdpPeer>,
}

/// A layer-2 tunnel: a TAP device whose Ethernet frames travel one per UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TapTunnel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Addresses on the TAP device (none when it is bridged).
    #[serde(default)]
    pub address: Vec<IpNet>,
    pub listen_port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
    /// The device's MAC; the kernel picks a random one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    pub peers: Vec<UdpPeer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdpPeer {
    pub endpoint: SocketAddr,
    /// Destinations routed through the tunnel to this peer (for `tap`, routes on the device; frames go by MAC).
    #[serde(default)]
    pub allowed_ips: Vec<IpNet>,
}

/// The IANA port of VXLAN; Linux's own default, when `dstport` is not given, is 8472 (flannel's).
pub const VXLAN_PORT: u16 = 4789;

/// A VXLAN overlay endpoint (VTEP) and its peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VxlanTunnel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// The VXLAN network identifier, 1 to 16777215.
    pub vni: u32,
    /// The UDP port, both ends; 4789 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// This host's underlay address: the source of the encapsulated packets.
    pub local: IpAddr,
    /// The underlay device; found from `local` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub underlay: Option<String>,
    /// This VTEP's MAC; derived from the VNI and `local` when absent (see [`crate::mac::MacAddr::derived`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// Overlay addresses on the VXLAN link (none when it is a bridge port).
    #[serde(default)]
    pub address: Vec<IpNet>,
    /// The link's MTU; the underlay's minus 50 (IPv4) or 70 (IPv6) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
    /// A bridge to attach the link to, for layer-2 use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// Interfaces behind which this host's own pods sit: forwarding is enabled on them (and on the VXLAN link)
    /// while the tunnel is up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward: Vec<String>,
    pub peers: Vec<VxlanPeer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VxlanPeer {
    /// The peer's underlay address.
    pub vtep: IpAddr,
    /// The peer's VTEP MAC; derived from the VNI and `vtep` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// The peer's overlay address: the next hop for its subnets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Networks behind the peer (its pods), routed on-link via `gateway`.
    #[serde(default)]
    pub subnets: Vec<IpNet>,
    /// Route `subnets` via `vtep` on the underlay, unencapsulated, as flannel's `DirectRouting` does for a host
    /// on this host's own underlay subnet. Set by overlays; profile files have no key for it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub direct: bool,
}

impl VxlanTunnel {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(VXLAN_PORT)
    }

    pub fn own_mac(&self) -> MacAddr {
        self.mac.unwrap_or_else(|| MacAddr::derived(self.vni, self.local))
    }

    pub fn peer_mac(&self, peer: &VxlanPeer) -> MacAddr {
        peer.mac.unwrap_or_else(|| MacAddr::derived(self.vni, peer.vtep))
    }
}

/// Routes to peers' subnets through their host addresses on a shared layer-2 segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostgwTunnel {
    /// Interfaces behind which this host's own pods sit: forwarding is enabled on them (and on the interfaces
    /// that reach the peers) while the tunnel is up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward: Vec<String>,
    pub peers: Vec<HostgwPeer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostgwPeer {
    /// The peer host's address, on a subnet this host is connected to.
    pub via: IpAddr,
    /// Networks behind the peer host.
    pub subnets: Vec<IpNet>,
}

/// flannel's default etcd prefix (`--etcd-prefix`).
pub const OVERLAY_PREFIX: &str = "/coreos.com/network";
/// flannel's default subnet file (`--subnet-file`).
pub const OVERLAY_SUBNET_FILE: &str = "/run/flannel/subnet.env";
/// The directories an overlay's subnet file may be written in: culvertd, as root, writes nowhere else.
pub const OVERLAY_SUBNET_DIRS: [&str; 2] = ["/run/flannel/", "/run/culvert/"];
/// flannel's lease lifetime and renewal margin (`--subnet-lease-renew-margin`), in seconds.
pub const OVERLAY_LEASE_TTL: u64 = 24 * 3600;
pub const OVERLAY_RENEW_MARGIN: u64 = 3600;

/// A PEM file an overlay's etcd client uses: where the profile names it, and what it holds. The client (the CLI
/// or the app) reads it and sends the contents, so that culvertd never opens a user's file; `pem` is empty until
/// [`read_etcd_files`] has read it. The contents are never shown by `Debug` and are zeroed when dropped (a
/// client key is among them).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PemFile {
    pub path: String,
    #[serde(default)]
    pub pem: String,
}

impl PemFile {
    pub fn named(path: impl Into<String>) -> Self {
        Self { path: path.into(), pem: String::new() }
    }
}

impl std::fmt::Debug for PemFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PemFile({:?}, {} bytes)", self.path, self.pem.len())
    }
}

impl Drop for PemFile {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.pem);
    }
}

/// A password: never shown by `Debug`, zeroed when dropped.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

impl Drop for Password {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// The largest PEM file an overlay may name (a CA bundle of a few dozen certificates fits).
pub const MAX_PEM: usize = 64 * 1024;

/// A host of a flannel network: culvertd leases one of the network's subnets in etcd, publishes how to reach
/// it, and makes every other host's lease a peer of the backend the network's config names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayTunnel {
    /// etcd's client URLs (`http://10.99.0.10:2379`, or `https://` with `etcd_ca`).
    pub etcd: Vec<String>,
    /// The CA that signed etcd's certificates, for https:// endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_ca: Option<PemFile>,
    /// This host's client certificate and key, when etcd asks for one (`--client-cert-auth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_cert: Option<PemFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_key: Option<PemFile>,
    /// etcd's user and password, when its auth is on. The password is a secret: the keyring in the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_password: Option<Password>,
    /// Where the network's config and leases are kept.
    pub prefix: String,
    /// This host's underlay address; the source address of the default route when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<IpAddr>,
    /// The backend's link (vxlan); the tunnel's name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// NAT for pod traffic leaving the network, as flannel's `--ip-masq`.
    #[serde(default)]
    pub ip_masq: bool,
    /// Where `FLANNEL_SUBNET` and the rest are written; `None`: nowhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_file: Option<String>,
    /// The lease's lifetime in seconds, and how long before its end it is renewed.
    pub lease_ttl: u64,
    pub lease_renew_margin: u64,
}

/// A WireGuard interface and its peers: wg-quick's `[Interface]` and `[Peer]` sections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireguardTunnel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    pub private_key: SecretKey,
    pub address: Vec<IpNet>,
    /// The UDP port to listen on; a free one is picked when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
    /// DNS servers used while the tunnel is up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<IpAddr>,
    /// DNS search domains used while the tunnel is up (the `DNS` entries that are not addresses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    /// Where the routes for allowed_ips go, as wg-quick's `Table`.
    #[serde(default, skip_serializing_if = "Table::is_auto")]
    pub table: Table,
    /// The firewall mark on the tunnel's own UDP packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    /// While this full tunnel is meant to be up, nothing leaves the host around it (Culvert's `inet culvert`
    /// table), even when culvertd or the tunnel fails.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kill_switch: bool,
    /// With the kill switch (or lockdown), the local subnets stay reachable outside the tunnel.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_lan: bool,
    pub peers: Vec<WireguardPeer>,
}

impl WireguardTunnel {
    /// Whether everything goes through the tunnel: a peer routes a /0 and the routes go where wg-quick's
    /// `Table = auto` puts them (the only table for which Culvert adds the policy rules of a full tunnel).
    pub fn is_full(&self) -> bool {
        self.table == Table::Auto && self.peers.iter().flat_map(|p| &p.allowed_ips).any(|n| n.prefix_len() == 0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireguardPeer {
    pub public_key: PublicKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preshared_key: Option<SecretKey>,
    /// Destinations routed to this peer, and the only inner sources accepted from it.
    pub allowed_ips: Vec<IpNet>,
    /// Where to reach the peer; without one, the peer must reach us first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
    /// Seconds between keepalives when otherwise idle (for peers behind NAT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_keepalive: Option<u16>,
}

/// A peer's endpoint: an address, or a host name resolved when the tunnel comes up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Addr(SocketAddr),
    Host { host: String, port: u16 },
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Addr(a) => a.fmt(f),
            Self::Host { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl std::str::FromStr for Endpoint {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(addr) = s.parse() {
            return Ok(Self::Addr(addr));
        }
        let (host, port) = s.rsplit_once(':').ok_or("has no port")?;
        // Digits only: `u16::from_str` would take "+51820", which then reads back as another endpoint.
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err("has no valid port");
        }
        let port: u16 = port.parse().map_err(|_| "has no valid port")?;
        let valid_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
        };
        let labels = host.trim_end_matches('.');
        // A name's last label is never all digits (RFC 3696): "192.0.2.300" is a mistyped address, not a name.
        let numeric_tld = labels.rsplit('.').next().is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
        if host.len() > 253 || !labels.split('.').all(valid_label) || numeric_tld {
            return Err("is neither an IP address nor a host name");
        }
        Ok(Self::Host { host: host.to_owned(), port })
    }
}

impl Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// wg-quick's `Table`: `auto` (the main table, or a table of its own for a full tunnel), `off` (no routes), or a
/// table id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Table {
    #[default]
    Auto,
    Off,
    #[serde(untagged)]
    Id(u32),
}

impl Table {
    pub fn is_auto(&self) -> bool {
        *self == Self::Auto
    }
}

impl Profile {
    pub fn kind(&self) -> Kind {
        match self.tunnel {
            Tunnel::Udp(_) => Kind::Udp,
            Tunnel::Wireguard(_) => Kind::Wireguard,
            Tunnel::Vxlan(_) => Kind::Vxlan,
            Tunnel::Hostgw(_) => Kind::Hostgw,
            Tunnel::Tap(_) => Kind::Tap,
            Tunnel::Overlay(_) => Kind::Overlay,
        }
    }

    /// The interface the tunnel's device gets: `interface` if set, else the tunnel's name.
    pub fn interface(&self) -> &str {
        let set = match &self.tunnel {
            Tunnel::Udp(u) => u.interface.as_deref(),
            Tunnel::Wireguard(w) => w.interface.as_deref(),
            Tunnel::Vxlan(v) => v.interface.as_deref(),
            Tunnel::Hostgw(_) => None,
            Tunnel::Tap(t) => t.interface.as_deref(),
            Tunnel::Overlay(o) => o.interface.as_deref(),
        };
        set.unwrap_or(&self.name)
    }

    pub fn mtu(&self) -> u16 {
        let set = match &self.tunnel {
            Tunnel::Udp(u) => u.mtu,
            Tunnel::Wireguard(w) => w.mtu,
            Tunnel::Vxlan(v) => v.mtu,
            Tunnel::Hostgw(_) | Tunnel::Overlay(_) => None,
            Tunnel::Tap(t) => t.mtu,
        };
        set.unwrap_or(DEFAULT_MTU)
    }

    /// The addresses on the tunnel's link.
    pub fn addresses(&self) -> &[IpNet] {
        match &self.tunnel {
            Tunnel::Udp(u) => &u.address,
            Tunnel::Wireguard(w) => &w.address,
            Tunnel::Vxlan(v) => &v.address,
            Tunnel::Hostgw(_) | Tunnel::Overlay(_) => &[],
            Tunnel::Tap(t) => &t.address,
        }
    }

    /// Whether the tunnel has a link of its own (host-gw only adds routes on existing ones).
    /// Whether nothing may leave around this tunnel while it is meant to be up.
    pub fn kill_switch(&self) -> bool {
        matches!(&self.tunnel, Tunnel::Wireguard(w) if w.kill_switch)
    }

    pub fn has_link(&self) -> bool {
        !matches!(self.tunnel, Tunnel::Hostgw(_))
    }

    /// Checks every rule a profile must meet; the first broken one is reported.
    pub fn validate(&self) -> Result<(), ProfileError> {
        validate::profile(self)
    }

    /// [`Profile::validate`] for the vxlan or host-gw tunnel an overlay makes, which may have no peers yet.
    pub fn validate_overlay_backend(&self) -> Result<(), ProfileError> {
        validate::overlay_backend(self)
    }
}
