//! The TOML file format of profiles.
//!
//! Files are read into "raw" structs of plain strings and integers first, so that a bad value can be reported
//! with the path of its field rather than as a bare serde message.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{
    Endpoint, FileProblem, HostgwPeer, HostgwTunnel, LoadError, Profile, ProfileError, Table, TapTunnel, Tunnel,
    UdpPeer, UdpTunnel, VxlanPeer, VxlanTunnel, WireguardPeer, WireguardTunnel,
};
use crate::keys::{PublicKey, SecretKey};
use crate::mac::MacAddr;

/// The tunnel name a file gives: its stem, as with wg-quick (`lab.toml` is `lab`).
pub fn name_from_path(path: &Path) -> Option<String> {
    path.file_stem().and_then(|s| s.to_str()).map(str::to_owned)
}

/// Reads, parses and validates a profile file: a wg-quick file if its name ends in `.conf`, else TOML.
pub fn load_file(path: &Path) -> Result<Profile, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read { path: path.into(), source })?;
    let invalid = |error| LoadError::Invalid { path: PathBuf::from(path), error };
    let name = name_from_path(path).ok_or_else(|| {
        invalid(FileProblem::Field(ProfileError::new(
            "name",
            "the file name is not valid UTF-8",
            "rename the file, such as lab.toml",
        )))
    })?;
    if path.extension().is_some_and(|e| e == "conf") {
        return super::wg_quick::parse(&name, &text).map(|(profile, _notes)| profile).map_err(invalid);
    }
    parse_toml(&name, &text).map_err(invalid)
}

/// Parses and validates the TOML text of the profile called `name`.
pub fn parse_toml(name: &str, text: &str) -> Result<Profile, FileProblem> {
    #[derive(Deserialize)]
    struct KindOnly {
        kind: Option<String>,
    }
    let kind = toml::from_str::<KindOnly>(text).map_err(|e| syntax(text, &e))?.kind;
    let tunnel = match kind.as_deref() {
        Some("udp") => Tunnel::Udp(toml::from_str::<RawUdp>(text).map_err(|e| syntax(text, &e))?.into_tunnel()?),
        Some("wireguard") => {
            Tunnel::Wireguard(toml::from_str::<RawWireguard>(text).map_err(|e| syntax(text, &e))?.into_tunnel()?)
        }
        Some("vxlan") => Tunnel::Vxlan(toml::from_str::<RawVxlan>(text).map_err(|e| syntax(text, &e))?.into_tunnel()?),
        Some("tap") => Tunnel::Tap(toml::from_str::<RawTap>(text).map_err(|e| syntax(text, &e))?.into_tunnel()?),
        Some("hostgw") => {
            Tunnel::Hostgw(toml::from_str::<RawHostgw>(text).map_err(|e| syntax(text, &e))?.into_tunnel()?)
        }
        Some(other) => {
            return Err(FileProblem::Field(ProfileError::new(
                "kind",
                format!("`{other}` is not a tunnel kind"),
                "set kind to \"wireguard\", \"udp\", \"tap\", \"vxlan\" or \"hostgw\"",
            )));
        }
        None => {
            return Err(FileProblem::Field(ProfileError::new(
                "kind",
                "is missing",
                "add a line such as kind = \"wireguard\" at the top of the file",
            )));
        }
    };
    let profile = Profile { name: name.to_owned(), tunnel };
    profile.validate()?;
    Ok(profile)
}

/// Writes a profile in the TOML file format [`parse_toml`] reads (the name is the file's, not written).
pub fn write_toml(profile: &Profile) -> String {
    let strs = |v: &[IpNet]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    let text = match &profile.tunnel {
        Tunnel::Udp(u) => toml::to_string(&RawUdp {
            _kind: "udp".into(),
            interface: u.interface.clone(),
            address: strs(&u.address),
            listen_port: u.listen_port.into(),
            mtu: u.mtu.map(i64::from),
            peer: u
                .peers
                .iter()
                .map(|p| RawUdpPeer { endpoint: p.endpoint.to_string(), allowed_ips: strs(&p.allowed_ips) })
                .collect(),
        }),
        Tunnel::Tap(t) => toml::to_string(&RawTap {
            _kind: "tap".into(),
            interface: t.interface.clone(),
            address: strs(&t.address),
            listen_port: t.listen_port.into(),
            mtu: t.mtu.map(i64::from),
            mac: t.mac.map(|m| m.to_string()),
            peer: t
                .peers
                .iter()
                .map(|p| RawUdpPeer { endpoint: p.endpoint.to_string(), allowed_ips: strs(&p.allowed_ips) })
                .collect(),
        }),
        Tunnel::Wireguard(w) => toml::to_string(&RawWireguard {
            _kind: "wireguard".into(),
            interface: w.interface.clone(),
            private_key: w.private_key.to_base64().to_string(),
            address: strs(&w.address),
            listen_port: w.listen_port.map(i64::from),
            mtu: w.mtu.map(i64::from),
            dns: w.dns.iter().map(ToString::to_string).chain(w.dns_search.iter().cloned()).collect(),
            table: match w.table {
                Table::Auto => None,
                Table::Off => Some(toml::Value::String("off".into())),
                Table::Id(id) => Some(toml::Value::Integer(id.into())),
            },
            fwmark: w.fwmark.map(|m| toml::Value::Integer(m.into())),
            peer: w
                .peers
                .iter()
                .map(|p| RawWireguardPeer {
                    public_key: p.public_key.to_string(),
                    preshared_key: p.preshared_key.as_ref().map(|k| k.to_base64().to_string()),
                    allowed_ips: strs(&p.allowed_ips),
                    endpoint: p.endpoint.as_ref().map(ToString::to_string),
                    persistent_keepalive: p.persistent_keepalive.map(i64::from),
                })
                .collect(),
        }),
        Tunnel::Vxlan(v) => toml::to_string(&RawVxlan {
            _kind: "vxlan".into(),
            interface: v.interface.clone(),
            vni: v.vni.into(),
            port: v.port.map(i64::from),
            local: v.local.to_string(),
            underlay: v.underlay.clone(),
            mac: v.mac.map(|m| m.to_string()),
            address: strs(&v.address),
            mtu: v.mtu.map(i64::from),
            bridge: v.bridge.clone(),
            forward: v.forward.clone(),
            peer: v
                .peers
                .iter()
                .map(|p| RawVxlanPeer {
                    vtep: p.vtep.to_string(),
                    mac: p.mac.map(|m| m.to_string()),
                    gateway: p.gateway.map(|g| g.to_string()),
                    subnets: strs(&p.subnets),
                })
                .collect(),
        }),
        Tunnel::Hostgw(h) => toml::to_string(&RawHostgw {
            _kind: "hostgw".into(),
            forward: h.forward.clone(),
            peer: h.peers.iter().map(|p| RawHostgwPeer { via: p.via.to_string(), subnets: strs(&p.subnets) }).collect(),
        }),
    };
    // The raw structs hold only strings, numbers and arrays of them: they always serialize.
    text.unwrap_or_default()
}

fn syntax(text: &str, e: &toml::de::Error) -> FileProblem {
    let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let message = e.message().trim_end().replace('\n', " ");
    let fix = if message.starts_with("unknown field") {
        "remove it or correct its spelling"
    } else if message.starts_with("missing field") {
        "add it: the README shows an example profile of each kind"
    } else {
        "correct the value: the README shows an example profile of each kind"
    };
    FileProblem::Syntax { line, message, fix: fix.into() }
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawUdp {
    #[serde(rename = "kind")]
    _kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    interface: Option<String>,
    address: Vec<String>,
    listen_port: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    peer: Vec<RawUdpPeer>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawUdpPeer {
    endpoint: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    allowed_ips: Vec<String>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawTap {
    #[serde(rename = "kind")]
    _kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    interface: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    address: Vec<String>,
    listen_port: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    peer: Vec<RawUdpPeer>,
}

impl RawTap {
    fn into_tunnel(self) -> Result<TapTunnel, ProfileError> {
        let mac = self.mac.map(|m| mac("mac", &m)).transpose()?;
        let as_udp = RawUdp {
            _kind: self._kind,
            interface: self.interface,
            address: self.address,
            listen_port: self.listen_port,
            mtu: self.mtu,
            peer: self.peer,
        };
        let u = as_udp.into_tunnel()?;
        Ok(TapTunnel {
            interface: u.interface,
            address: u.address,
            listen_port: u.listen_port,
            mtu: u.mtu,
            mac,
            peers: u.peers,
        })
    }
}

impl RawUdp {
    fn into_tunnel(self) -> Result<UdpTunnel, ProfileError> {
        let address = self
            .address
            .iter()
            .enumerate()
            .map(|(i, a)| interface_address(&format!("address[{i}]"), a))
            .collect::<Result<_, _>>()?;
        let peers = self
            .peer
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                Ok(UdpPeer {
                    endpoint: endpoint(&format!("peer[{i}].endpoint"), &p.endpoint)?,
                    allowed_ips: p
                        .allowed_ips
                        .iter()
                        .enumerate()
                        .map(|(j, a)| prefix(&format!("peer[{i}].allowed_ips[{j}]"), a))
                        .collect::<Result<_, _>>()?,
                })
            })
            .collect::<Result<_, ProfileError>>()?;
        Ok(UdpTunnel {
            interface: self.interface,
            address,
            listen_port: port("listen_port", self.listen_port)?,
            mtu: self
                .mtu
                .map(|m| u16::try_from(m).map_err(|_| out_of_range("mtu", m, "between 576 and 9000")))
                .transpose()?,
            peers,
        })
    }
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawWireguard {
    #[serde(rename = "kind")]
    _kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    interface: Option<String>,
    private_key: String,
    address: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    listen_port: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    dns: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    table: Option<toml::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fwmark: Option<toml::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    peer: Vec<RawWireguardPeer>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawWireguardPeer {
    public_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    preshared_key: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    allowed_ips: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    persistent_keepalive: Option<i64>,
}

impl RawWireguard {
    fn into_tunnel(self) -> Result<WireguardTunnel, ProfileError> {
        let address = self
            .address
            .iter()
            .enumerate()
            .map(|(i, a)| interface_address(&format!("address[{i}]"), a))
            .collect::<Result<_, _>>()?;
        let (dns, dns_search) = split_dns(&self.dns);
        let peers = self
            .peer
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                Ok(WireguardPeer {
                    public_key: public_key(&format!("peer[{i}].public_key"), &p.public_key)?,
                    preshared_key: p
                        .preshared_key
                        .map(|k| secret_key(&format!("peer[{i}].preshared_key"), &k))
                        .transpose()?,
                    allowed_ips: p
                        .allowed_ips
                        .iter()
                        .enumerate()
                        .map(|(j, a)| prefix(&format!("peer[{i}].allowed_ips[{j}]"), a))
                        .collect::<Result<_, _>>()?,
                    endpoint: p.endpoint.map(|e| wg_endpoint(&format!("peer[{i}].endpoint"), &e)).transpose()?,
                    persistent_keepalive: p
                        .persistent_keepalive
                        .map(|k| {
                            u16::try_from(k).map_err(|_| {
                                out_of_range(
                                    &format!("peer[{i}].persistent_keepalive"),
                                    k,
                                    "between 0 (off) and 65535 seconds",
                                )
                            })
                        })
                        .transpose()?,
                })
            })
            .collect::<Result<_, ProfileError>>()?;
        Ok(WireguardTunnel {
            interface: self.interface,
            private_key: secret_key("private_key", &self.private_key)?,
            address,
            listen_port: self.listen_port.map(|p| port("listen_port", p)).transpose()?,
            mtu: self
                .mtu
                .map(|m| u16::try_from(m).map_err(|_| out_of_range("mtu", m, "between 1280 and 9000")))
                .transpose()?,
            dns,
            dns_search,
            table: self.table.map(|t| table(&value_text(&t))).transpose()?.unwrap_or_default(),
            fwmark: self.fwmark.map(|f| fwmark(&value_text(&f))).transpose()?.flatten(),
            peers,
        })
    }
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawVxlan {
    #[serde(rename = "kind")]
    _kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    interface: Option<String>,
    vni: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<i64>,
    local: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    underlay: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    address: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bridge: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    forward: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    peer: Vec<RawVxlanPeer>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawVxlanPeer {
    vtep: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    subnets: Vec<String>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawHostgw {
    #[serde(rename = "kind")]
    _kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    forward: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    peer: Vec<RawHostgwPeer>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawHostgwPeer {
    via: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    subnets: Vec<String>,
}

impl RawHostgw {
    fn into_tunnel(self) -> Result<HostgwTunnel, ProfileError> {
        let peers = self
            .peer
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                Ok(HostgwPeer {
                    via: ip(&format!("peer[{i}].via"), &p.via, "172.31.0.2")?,
                    subnets: p
                        .subnets
                        .iter()
                        .enumerate()
                        .map(|(j, a)| prefix(&format!("peer[{i}].subnets[{j}]"), a))
                        .collect::<Result<_, _>>()?,
                })
            })
            .collect::<Result<_, ProfileError>>()?;
        Ok(HostgwTunnel { forward: self.forward, peers })
    }
}

fn ip(field: &str, text: &str, example: &str) -> Result<std::net::IpAddr, ProfileError> {
    text.trim().parse().map_err(|_| {
        ProfileError::new(field, format!("`{text}` is not an IP address"), format!("write it as {example}"))
    })
}

fn mac(field: &str, text: &str) -> Result<MacAddr, ProfileError> {
    text.parse().map_err(|why| {
        ProfileError::new(
            field,
            format!("`{text}` {why}"),
            "write it as 02:2a:ac:1f:00:01, or leave it out to derive it",
        )
    })
}

impl RawVxlan {
    fn into_tunnel(self) -> Result<VxlanTunnel, ProfileError> {
        let peers = self
            .peer
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                Ok(VxlanPeer {
                    vtep: ip(&format!("peer[{i}].vtep"), &p.vtep, "172.31.0.2")?,
                    mac: p.mac.map(|m| mac(&format!("peer[{i}].mac"), &m)).transpose()?,
                    gateway: p.gateway.map(|g| ip(&format!("peer[{i}].gateway"), &g, "10.244.2.0")).transpose()?,
                    subnets: p
                        .subnets
                        .iter()
                        .enumerate()
                        .map(|(j, a)| prefix(&format!("peer[{i}].subnets[{j}]"), a))
                        .collect::<Result<_, _>>()?,
                })
            })
            .collect::<Result<_, ProfileError>>()?;
        Ok(VxlanTunnel {
            interface: self.interface,
            vni: u32::try_from(self.vni).map_err(|_| out_of_range("vni", self.vni, "between 1 and 16777215"))?,
            port: self.port.map(|p| port("port", p)).transpose()?,
            local: ip("local", &self.local, "172.31.0.1")?,
            underlay: self.underlay,
            mac: self.mac.map(|m| mac("mac", &m)).transpose()?,
            address: self
                .address
                .iter()
                .enumerate()
                .map(|(i, a)| interface_address(&format!("address[{i}]"), a))
                .collect::<Result<_, _>>()?,
            mtu: self
                .mtu
                .map(|m| u16::try_from(m).map_err(|_| out_of_range("mtu", m, "between 576 and 9000")))
                .transpose()?,
            bridge: self.bridge,
            forward: self.forward,
            peers,
        })
    }
}

fn value_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(crate) fn secret_key(field: &str, text: &str) -> Result<SecretKey, ProfileError> {
    text.parse().map_err(|_| {
        ProfileError::new(
            field,
            "is not a WireGuard key",
            "paste the 44-character base64 key that `culvert genkey` or `wg genkey` printed",
        )
    })
}

pub(crate) fn public_key(field: &str, text: &str) -> Result<PublicKey, ProfileError> {
    text.parse().map_err(|_| {
        ProfileError::new(
            field,
            format!("`{}` is not a WireGuard public key", text.trim()),
            "paste the peer's 44-character base64 public key (`culvert pubkey` or `wg pubkey` prints it)",
        )
    })
}

pub(crate) fn wg_endpoint(field: &str, text: &str) -> Result<Endpoint, ProfileError> {
    text.parse().map_err(|why| {
        ProfileError::new(
            field,
            format!("`{}` {why}", text.trim()),
            "write it as 203.0.113.5:51820, [2001:db8::5]:51820 or vpn.example.com:51820",
        )
    })
}

/// wg-quick's rule: DNS entries that parse as addresses are servers, the others search domains.
pub(crate) fn split_dns(entries: &[String]) -> (Vec<std::net::IpAddr>, Vec<String>) {
    let mut servers = Vec::new();
    let mut search = Vec::new();
    for e in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        match e.parse() {
            Ok(ip) => servers.push(ip),
            Err(_) => search.push(e.to_owned()),
        }
    }
    (servers, search)
}

pub(crate) fn table(text: &str) -> Result<Table, ProfileError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "auto" => Ok(Table::Auto),
        "off" => Ok(Table::Off),
        t => match t.parse::<u32>() {
            Ok(id) if id > 0 && id != 255 => Ok(Table::Id(id)),
            _ => Err(ProfileError::new(
                "table",
                format!("`{text}` is not a routing table"),
                "set it to auto, off, or a table number such as 51820",
            )),
        },
    }
}

/// `off`, `0`, a decimal or a 0x-hex mark; `None` means no mark.
pub(crate) fn fwmark(text: &str) -> Result<Option<u32>, ProfileError> {
    let t = text.trim().to_ascii_lowercase();
    let parsed = if t == "off" {
        Ok(0)
    } else if let Some(hex) = t.strip_prefix("0x") {
        u32::from_str_radix(hex, 16)
    } else {
        t.parse()
    };
    match parsed {
        Ok(0) => Ok(None),
        Ok(mark) => Ok(Some(mark)),
        Err(_) => Err(ProfileError::new(
            "fwmark",
            format!("`{text}` is not a mark"),
            "set it to off, or a number such as 51820 or 0xca6c",
        )),
    }
}

fn out_of_range(field: &str, value: i64, range: &str) -> ProfileError {
    ProfileError::new(field, format!("{value} is out of range"), format!("set `{field}` {range}"))
}

fn port(field: &str, value: i64) -> Result<u16, ProfileError> {
    u16::try_from(value).map_err(|_| out_of_range(field, value, "to a UDP port between 1 and 65535"))
}

/// An address with its prefix length, as `ip addr add` takes it; a bare address is a host address.
pub(crate) fn interface_address(field: &str, text: &str) -> Result<IpNet, ProfileError> {
    let text = text.trim();
    text.parse::<IpNet>().or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from)).map_err(|_| {
        ProfileError::new(
            field,
            format!("`{text}` is not an address with a prefix length"),
            "write it as 10.9.0.1/24 or fd00:9::1/64",
        )
    })
}

/// A network prefix; a bare address is a host route.
pub(crate) fn prefix(field: &str, text: &str) -> Result<IpNet, ProfileError> {
    interface_address(field, text)
        .map_err(|e| ProfileError { fix: "write it as 10.9.0.0/24 or fd00:9::/64".into(), ..e })
}

pub(crate) fn endpoint(field: &str, text: &str) -> Result<SocketAddr, ProfileError> {
    text.trim().parse().map_err(|_| {
        ProfileError::new(
            field,
            format!("`{text}` is not an IP address and port"),
            "write it as 172.31.0.2:8285, or [fd00::2]:8285 for IPv6",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = r#"
kind = "udp"
address = ["10.9.0.1/24", "fd00:9::1/64"]   # IPv4 and IPv6
listen_port = 8285
mtu = 1400
interface = "cv-lab"
[[peer]]
endpoint = "172.31.0.2:8285"
allowed_ips = ["10.9.0.0/24"]
[[peer]]
endpoint = "[fd00:31::2]:8285"
allowed_ips = ["10.10.0.0/16", "fd00:10::/64"]
"#;

    #[test]
    fn parses_the_documented_example() {
        let p = parse_toml("lab", LAB).unwrap();
        assert_eq!(p.name, "lab");
        assert_eq!(p.interface(), "cv-lab");
        assert_eq!(p.mtu(), 1400);
        let Tunnel::Udp(u) = &p.tunnel else { panic!("not udp") };
        assert_eq!(u.peers.len(), 2);
        assert_eq!(u.peers[1].endpoint, "[fd00:31::2]:8285".parse().unwrap());
        assert_eq!(u.address[1], "fd00:9::1/64".parse::<IpNet>().unwrap());
    }

    #[test]
    fn defaults_apply() {
        let text = "kind = \"udp\"\naddress = [\"10.9.0.1/24\"]\nlisten_port = 1\n[[peer]]\nendpoint = \"192.0.2.1:1\"\nallowed_ips = [\"10.9.0.0/24\"]\n";
        let p = parse_toml("lab", text).unwrap();
        assert_eq!((p.interface(), p.mtu()), ("lab", super::super::DEFAULT_MTU));
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line() {
        let text = LAB.replace("listen_port", "lisen_port");
        match parse_toml("lab", &text).unwrap_err() {
            FileProblem::Syntax { line, message, fix } => {
                assert!(message.contains("lisen_port"), "{message}");
                assert_eq!(line, Some(4));
                assert!(fix.contains("spelling"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_peer_keys_are_errors() {
        let text = LAB.replace("allowed_ips = [\"10.9.0.0/24\"]", "allowed_ips = [\"10.9.0.0/24\"]\nallowedips = []");
        assert!(parse_toml("lab", &text).unwrap_err().to_string().contains("allowedips"));
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            ("10.9.0.1/24\", \"fd00:9::1/64", "10.9.0.1/33\", \"fd00:9::1/64", "address[0]"),
            ("172.31.0.2:8285", "172.31.0.2", "peer[0].endpoint"),
            ("fd00:10::/64", "fd00:10::/129", "peer[1].allowed_ips[1]"),
            ("listen_port = 8285", "listen_port = 70000", "listen_port"),
            ("kind = \"udp\"", "kind = \"gre\"", "kind"),
        ];
        for (from, to, field) in cases {
            let text = LAB.replace(from, to);
            match parse_toml("lab", &text).unwrap_err() {
                FileProblem::Field(e) => assert_eq!(e.field, field, "{e}"),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn garbage_is_a_syntax_error() {
        assert!(matches!(parse_toml("lab", "kind = \"udp\n"), Err(FileProblem::Syntax { .. })));
        assert!(matches!(parse_toml("lab", "\u{0}\u{1}"), Err(FileProblem::Syntax { .. })));
    }

    #[test]
    fn parses_a_wireguard_profile() {
        let text = r#"
kind = "wireguard"
private_key = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
address = ["10.8.0.1/24"]
listen_port = 51820
dns = ["10.8.0.53", "corp.example"]
table = 1234
fwmark = "0xca6c"
[[peer]]
public_key = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
allowed_ips = ["10.8.0.2/32"]
endpoint = "vpn.example.com:51820"
persistent_keepalive = 25
"#;
        let p = parse_toml("office", text).unwrap();
        let Tunnel::Wireguard(w) = &p.tunnel else { panic!("not wireguard") };
        assert_eq!((w.table, w.fwmark, w.listen_port), (Table::Id(1234), Some(0xca6c), Some(51820)));
        assert_eq!(w.dns_search, vec!["corp.example"]);
        assert_eq!(w.peers[0].endpoint, Some(Endpoint::Host { host: "vpn.example.com".into(), port: 51820 }));
        // The same profile as a wg-quick file, and back.
        let conf = crate::profile::wg_quick::write(&p).unwrap();
        assert_eq!(crate::profile::wg_quick::parse("office", &conf).unwrap().0, p);
        let bad = text.replace("xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=", "not-a-key");
        match parse_toml("office", &bad).unwrap_err() {
            FileProblem::Field(e) => assert_eq!(e.field, "peer[0].public_key"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_a_vxlan_profile_with_derived_macs() {
        let text = r#"
kind = "vxlan"
vni = 42
local = "172.31.0.1"
address = ["10.244.1.0/32"]
forward = ["cvpods0"]
[[peer]]
vtep = "172.31.0.2"
gateway = "10.244.2.0"
subnets = ["10.244.2.0/24"]
[[peer]]
vtep = "172.31.0.3"
mac = "02:00:00:00:00:03"
"#;
        let p = parse_toml("overlay", text).unwrap();
        let Tunnel::Vxlan(v) = &p.tunnel else { panic!("not vxlan") };
        assert_eq!(v.port(), 4789);
        assert_eq!(v.own_mac().to_string(), "02:2a:ac:1f:00:01");
        assert_eq!(v.peer_mac(&v.peers[0]).to_string(), "02:2a:ac:1f:00:02");
        assert_eq!(v.peer_mac(&v.peers[1]).to_string(), "02:00:00:00:00:03");
        for (from, to, field) in [
            ("vni = 42", "vni = 16777216", "vni"),
            ("gateway = \"10.244.2.0\"\n", "", "peer[0].gateway"),
            ("vtep = \"172.31.0.3\"", "vtep = \"172.31.0.1\"", "peer[1].vtep"),
            ("vtep = \"172.31.0.3\"", "vtep = \"fd00::3\"", "peer[1].vtep"),
            ("mac = \"02:00:00:00:00:03\"", "mac = \"01:00:00:00:00:03\"", "peer[1].mac"),
        ] {
            match parse_toml("overlay", &text.replace(from, to)).unwrap_err() {
                FileProblem::Field(e) => assert_eq!(e.field, field, "{e}"),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    /// Every kind's profile, written and read back, is the same profile.
    #[test]
    fn written_profiles_read_back_the_same() {
        let texts = [
            LAB.to_string(),
            "kind = \"tap\"\nlisten_port = 1\nmac = \"02:00:00:00:00:01\"\n[[peer]]\nendpoint = \"192.0.2.1:1\"\n".into(),
            "kind = \"hostgw\"\nforward = [\"br0\"]\n[[peer]]\nvia = \"192.0.2.1\"\nsubnets = [\"10.1.0.0/24\"]\n".into(),
            "kind = \"vxlan\"\nvni = 7\nport = 8472\nlocal = \"192.0.2.1\"\nbridge = \"br0\"\n[[peer]]\nvtep = \"192.0.2.2\"\n".into(),
            "kind = \"wireguard\"\nprivate_key = \"yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\"\naddress = [\"10.8.0.1/24\"]\n\
             dns = [\"10.8.0.53\", \"corp.example\"]\ntable = \"off\"\nfwmark = 51820\n[[peer]]\n\
             public_key = \"xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\"\n\
             preshared_key = \"/UwcSPg38hW/D9Y3tcS1FOV0K1wuURMbS0sesJEP5ak=\"\nallowed_ips = [\"0.0.0.0/0\"]\n\
             endpoint = \"vpn.example.com:51820\"\npersistent_keepalive = 25\n"
                .into(),
        ];
        for text in texts {
            let p = parse_toml("x", &text).unwrap();
            let written = write_toml(&p);
            assert_eq!(parse_toml("x", &written).unwrap(), p, "{written}");
        }
    }
}
