//! The profile file's schema: one struct per kind, of plain text and numbers, as a TOML file or the app's form
//! holds it. A [`Draft`] is what a person wrote and may be wrong anywhere; [`Draft::into_profile`] checks every
//! value, naming its field (`peer[0].allowed_ips[1]`), and gives the typed [`Profile`]. The TOML files, the
//! app's profile store (which keeps a draft without its secrets) and the app's forms (whose TypeScript type is
//! generated from this one) all read and write this schema, so a key is spelled in one place.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::fields::{
    endpoint, fwmark, interface_address, out_of_range, port, prefix, public_key, secret_key, split_dns, table,
    wg_endpoint,
};
use super::{
    FileProblem, HostgwPeer, HostgwTunnel, Kind, OVERLAY_LEASE_TTL, OVERLAY_PREFIX, OVERLAY_RENEW_MARGIN,
    OVERLAY_SUBNET_FILE, OverlayTunnel, Password, PemFile, Profile, ProfileError, Table, TapTunnel, Tunnel, UdpPeer,
    UdpTunnel, VxlanPeer, VxlanTunnel, WireguardPeer, WireguardTunnel,
};
use crate::mac::MacAddr;

/// A profile as written, before its values are checked. Its `kind` key picks the variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[ts(export)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Draft {
    Udp(UdpDraft),
    Wireguard(WireguardDraft),
    Tap(TapDraft),
    Vxlan(VxlanDraft),
    Hostgw(HostgwDraft),
    Overlay(OverlayDraft),
}

/// The `kind` key inside a kind's struct: read (so that `deny_unknown_fields` accepts it) but never kept, since
/// the variant of [`Draft`] is the kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindKey;

impl<'de> Deserialize<'de> for KindKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Self)
    }
}

/// `table` and `fwmark` take a number or a word (`"off"`, `"auto"`, `"0xca6c"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export)]
#[serde(untagged)]
pub enum NumberOrText {
    Number(i64),
    Text(String),
}

impl NumberOrText {
    fn text(&self) -> String {
        match self {
            Self::Number(n) => n.to_string(),
            Self::Text(s) => s.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
#[ts(export, optional_fields)]
#[serde(deny_unknown_fields)]
pub struct UdpDraft {
    #[serde(rename = "kind", default, skip_serializing)]
    #[ts(skip)]
    pub kind_key: KindKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    pub address: Vec<String>,
    pub listen_port: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<UdpPeerDraft>>")]
    pub peer: Vec<UdpPeerDraft>,
}

/// A peer of a udp or tap tunnel.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
#[ts(export, optional_fields)]
#[serde(deny_unknown_fields)]
pub struct UdpPeerDraft {
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<String>>")]
    pub allowed_ips: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
#[ts(export, optional_fields)]
#[serde(deny_unknown_fields)]
pub struct TapDraft {
    #[serde(rename = "kind", default, skip_serializing)]
    #[ts(skip)]
    pub kind_key: KindKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<String>>")]
    pub address: Vec<String>,
    pub listen_port: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<UdpPeerDraft>>")]
    pub peer: Vec<UdpPeerDraft>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
#[ts(export, optional_fields)]
#[serde(deny_unknown_fields)]
pub struct WireguardDraft {
    #[serde(rename = "kind", default, skip_serializing)]
    #[ts(skip)]
    pub kind_key: KindKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Absent in the app's store, which keeps it in the keyring, and in a form editing a stored profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    pub address: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i64>,
    /// Servers and search domains together, as wg-quick's `DNS =` takes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<String>>")]
    pub dns: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<NumberOrText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<NumberOrText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_switch: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_lan: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<WireguardPeerDraft>>")]
    pub peer: Vec<WireguardPeerDraft>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
#[ts(export, optional_fields)]
#[serde(deny_unknown_fields)]
pub struct WireguardPeerDraft {
    pub public_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preshared_key: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<String>>")]
    pub allowed_ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_keepalive: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
#[ts(export, optional_fields)]
#[serde(deny_unknown_fields)]
pub struct VxlanDraft {
    #[serde(rename = "kind", default, skip_serializing)]
    #[ts(skip)]
    pub kind_key: KindKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    pub vni: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    pub local: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub underlay: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<String>>")]
    pub address: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<String>>")]
    pub forward: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<VxlanPeerDraft>>")]
    pub peer: Vec<VxlanPeerDraft>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
#[ts(export, optional_fields)]
#[serde(deny_unknown_fields)]
pub struct VxlanPeerDraft {
    pub vtep: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<String>>")]
    pub subnets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
#[ts(export, optional_fields)]
#[serde(deny_unknown_fields)]
pub struct HostgwDraft {
    #[serde(rename = "kind", default, skip_serializing)]
    #[ts(skip)]
    pub kind_key: KindKey,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<String>>")]
    pub forward: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<HostgwPeerDraft>>")]
    pub peer: Vec<HostgwPeerDraft>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
#[ts(export, optional_fields)]
#[serde(deny_unknown_fields)]
pub struct HostgwPeerDraft {
    pub via: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<String>>")]
    pub subnets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
#[ts(export, optional_fields)]
#[serde(deny_unknown_fields)]
pub struct OverlayDraft {
    #[serde(rename = "kind", default, skip_serializing)]
    #[ts(skip)]
    pub kind_key: KindKey,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<String>>")]
    pub etcd: Vec<String>,
    /// Paths of PEM files, relative to the profile file; read by the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_ca: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_cert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_username: Option<String>,
    /// A secret: kept in the keyring by the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_masq: Option<bool>,
    /// `""` writes none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_file: Option<String>,
    /// Durations as `"24h"`, `"90m"`, `"30s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ttl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_renew_margin: Option<String>,
}

impl Draft {
    pub fn kind(&self) -> Kind {
        match self {
            Self::Udp(_) => Kind::Udp,
            Self::Wireguard(_) => Kind::Wireguard,
            Self::Tap(_) => Kind::Tap,
            Self::Vxlan(_) => Kind::Vxlan,
            Self::Hostgw(_) => Kind::Hostgw,
            Self::Overlay(_) => Kind::Overlay,
        }
    }

    /// The draft of a TOML file's text; a syntax error or an unknown key names its line.
    pub fn from_toml(text: &str) -> Result<Self, FileProblem> {
        #[derive(Deserialize)]
        struct KindOnly {
            kind: Option<String>,
        }
        let syntax = |e: toml::de::Error| syntax(text, &e);
        let kind = kind_of(toml::from_str::<KindOnly>(text).map_err(syntax)?.kind.as_deref())?;
        Ok(match kind {
            Kind::Udp => Self::Udp(toml::from_str(text).map_err(syntax)?),
            Kind::Wireguard => Self::Wireguard(toml::from_str(text).map_err(syntax)?),
            Kind::Tap => Self::Tap(toml::from_str(text).map_err(syntax)?),
            Kind::Vxlan => Self::Vxlan(toml::from_str(text).map_err(syntax)?),
            Kind::Hostgw => Self::Hostgw(toml::from_str(text).map_err(syntax)?),
            Kind::Overlay => Self::Overlay(toml::from_str(text).map_err(syntax)?),
        })
    }

    /// The draft of a JSON object with the file's keys (the app's form), with the same errors as a file's.
    pub fn from_json(value: serde_json::Value) -> Result<Self, FileProblem> {
        let kind = kind_of(value.get("kind").map(|k| k.as_str().unwrap_or("")))?;
        let syntax = |e: serde_json::Error| {
            let message = e.to_string();
            FileProblem::Syntax { line: None, fix: fix_for(&message).into(), message }
        };
        Ok(match kind {
            Kind::Udp => Self::Udp(serde_json::from_value(value).map_err(syntax)?),
            Kind::Wireguard => Self::Wireguard(serde_json::from_value(value).map_err(syntax)?),
            Kind::Tap => Self::Tap(serde_json::from_value(value).map_err(syntax)?),
            Kind::Vxlan => Self::Vxlan(serde_json::from_value(value).map_err(syntax)?),
            Kind::Hostgw => Self::Hostgw(serde_json::from_value(value).map_err(syntax)?),
            Kind::Overlay => Self::Overlay(serde_json::from_value(value).map_err(syntax)?),
        })
    }

    pub fn to_toml(&self) -> String {
        // Plain strings, numbers and arrays of them always serialize.
        toml::to_string(self).unwrap_or_default()
    }

    /// The draft with its secrets taken out (a WireGuard private key and preshared keys), as the app's store
    /// writes it and its form shows it.
    pub fn without_secrets(mut self) -> Self {
        match &mut self {
            Self::Wireguard(w) => {
                w.private_key = None;
                for p in &mut w.peer {
                    p.preshared_key = None;
                }
            }
            Self::Overlay(o) => o.etcd_password = None,
            _ => {}
        }
        self
    }

    /// Checks every value and gives the profile called `name`, or the first thing wrong, by its field.
    pub fn into_profile(self, name: &str) -> Result<Profile, ProfileError> {
        let tunnel = match self {
            Self::Udp(u) => Tunnel::Udp(u.into_tunnel()?),
            Self::Wireguard(w) => Tunnel::Wireguard(w.into_tunnel()?),
            Self::Tap(t) => Tunnel::Tap(t.into_tunnel()?),
            Self::Vxlan(v) => Tunnel::Vxlan(v.into_tunnel()?),
            Self::Hostgw(h) => Tunnel::Hostgw(h.into_tunnel()?),
            Self::Overlay(o) => Tunnel::Overlay(o.into_tunnel()?),
        };
        let profile = Profile { name: name.to_owned(), tunnel };
        profile.validate()?;
        Ok(profile)
    }
}

fn kind_of(kind: Option<&str>) -> Result<Kind, ProfileError> {
    match kind {
        Some("udp") => Ok(Kind::Udp),
        Some("wireguard") => Ok(Kind::Wireguard),
        Some("tap") => Ok(Kind::Tap),
        Some("vxlan") => Ok(Kind::Vxlan),
        Some("hostgw") => Ok(Kind::Hostgw),
        Some("overlay") => Ok(Kind::Overlay),
        Some(other) => Err(ProfileError::new(
            "kind",
            format!("`{other}` is not a tunnel kind"),
            "set kind to \"wireguard\", \"udp\", \"tap\", \"vxlan\", \"hostgw\" or \"overlay\"",
        )),
        None => Err(ProfileError::new(
            "kind",
            "is missing",
            "add a line such as kind = \"wireguard\" at the top of the file",
        )),
    }
}

fn fix_for(message: &str) -> &'static str {
    if message.starts_with("unknown field") {
        "remove it or correct its spelling"
    } else if message.starts_with("missing field") {
        "add it: the README shows an example profile of each kind"
    } else {
        "correct the value: the README shows an example profile of each kind"
    }
}

fn syntax(text: &str, e: &toml::de::Error) -> FileProblem {
    let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let message = e.message().trim_end().replace('\n', " ");
    FileProblem::Syntax { line, fix: fix_for(&message).into(), message }
}

fn strs(v: &[IpNet]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

impl From<&Profile> for Draft {
    fn from(profile: &Profile) -> Self {
        let udp_peers = |peers: &[UdpPeer]| {
            peers
                .iter()
                .map(|p| UdpPeerDraft { endpoint: p.endpoint.to_string(), allowed_ips: strs(&p.allowed_ips) })
                .collect()
        };
        match &profile.tunnel {
            Tunnel::Udp(u) => Self::Udp(UdpDraft {
                kind_key: KindKey,
                interface: u.interface.clone(),
                address: strs(&u.address),
                listen_port: u.listen_port.into(),
                mtu: u.mtu.map(i64::from),
                peer: udp_peers(&u.peers),
            }),
            Tunnel::Tap(t) => Self::Tap(TapDraft {
                kind_key: KindKey,
                interface: t.interface.clone(),
                address: strs(&t.address),
                listen_port: t.listen_port.into(),
                mtu: t.mtu.map(i64::from),
                mac: t.mac.map(|m| m.to_string()),
                peer: udp_peers(&t.peers),
            }),
            Tunnel::Wireguard(w) => Self::Wireguard(WireguardDraft {
                kind_key: KindKey,
                interface: w.interface.clone(),
                private_key: Some(w.private_key.to_base64().to_string()),
                address: strs(&w.address),
                listen_port: w.listen_port.map(i64::from),
                mtu: w.mtu.map(i64::from),
                dns: w.dns.iter().map(ToString::to_string).chain(w.dns_search.iter().cloned()).collect(),
                table: match w.table {
                    Table::Auto => None,
                    Table::Off => Some(NumberOrText::Text("off".into())),
                    Table::Id(id) => Some(NumberOrText::Number(id.into())),
                },
                fwmark: w.fwmark.map(|m| NumberOrText::Number(m.into())),
                kill_switch: w.kill_switch.then_some(true),
                allow_lan: w.allow_lan.then_some(true),
                peer: w
                    .peers
                    .iter()
                    .map(|p| WireguardPeerDraft {
                        public_key: p.public_key.to_string(),
                        preshared_key: p.preshared_key.as_ref().map(|k| k.to_base64().to_string()),
                        allowed_ips: strs(&p.allowed_ips),
                        endpoint: p.endpoint.as_ref().map(ToString::to_string),
                        persistent_keepalive: p.persistent_keepalive.map(i64::from),
                    })
                    .collect(),
            }),
            Tunnel::Vxlan(v) => Self::Vxlan(VxlanDraft {
                kind_key: KindKey,
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
                    .map(|p| VxlanPeerDraft {
                        vtep: p.vtep.to_string(),
                        mac: p.mac.map(|m| m.to_string()),
                        gateway: p.gateway.map(|g| g.to_string()),
                        subnets: strs(&p.subnets),
                    })
                    .collect(),
            }),
            Tunnel::Hostgw(h) => Self::Hostgw(HostgwDraft {
                kind_key: KindKey,
                forward: h.forward.clone(),
                peer: h
                    .peers
                    .iter()
                    .map(|p| HostgwPeerDraft { via: p.via.to_string(), subnets: strs(&p.subnets) })
                    .collect(),
            }),
            Tunnel::Overlay(o) => Self::Overlay(OverlayDraft {
                kind_key: KindKey,
                etcd: o.etcd.clone(),
                etcd_ca: o.etcd_ca.as_ref().map(|f| f.path.clone()),
                etcd_cert: o.etcd_cert.as_ref().map(|f| f.path.clone()),
                etcd_key: o.etcd_key.as_ref().map(|f| f.path.clone()),
                etcd_username: o.etcd_username.clone(),
                etcd_password: o.etcd_password.as_ref().map(|p| p.expose().to_owned()),
                prefix: (o.prefix != OVERLAY_PREFIX).then(|| o.prefix.clone()),
                public_ip: o.public_ip.map(|ip| ip.to_string()),
                interface: o.interface.clone(),
                ip_masq: o.ip_masq.then_some(true),
                subnet_file: match &o.subnet_file {
                    Some(f) if f == OVERLAY_SUBNET_FILE => None,
                    Some(f) => Some(f.clone()),
                    None => Some(String::new()),
                },
                lease_ttl: (o.lease_ttl != OVERLAY_LEASE_TTL).then(|| duration_text(o.lease_ttl)),
                lease_renew_margin: (o.lease_renew_margin != OVERLAY_RENEW_MARGIN)
                    .then(|| duration_text(o.lease_renew_margin)),
            }),
        }
    }
}

fn addresses(list: &[String]) -> Result<Vec<IpNet>, ProfileError> {
    list.iter().enumerate().map(|(i, a)| interface_address(&format!("address[{i}]"), a)).collect()
}

fn prefixes(field: &str, list: &[String]) -> Result<Vec<IpNet>, ProfileError> {
    list.iter().enumerate().map(|(j, a)| prefix(&format!("{field}[{j}]"), a)).collect()
}

fn mtu(value: Option<i64>, range: &str) -> Result<Option<u16>, ProfileError> {
    value.map(|m| u16::try_from(m).map_err(|_| out_of_range("mtu", m, range))).transpose()
}

fn udp_peers(peers: Vec<UdpPeerDraft>) -> Result<Vec<UdpPeer>, ProfileError> {
    peers
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            Ok(UdpPeer {
                endpoint: endpoint(&format!("peer[{i}].endpoint"), &p.endpoint)?,
                allowed_ips: prefixes(&format!("peer[{i}].allowed_ips"), &p.allowed_ips)?,
            })
        })
        .collect()
}

impl UdpDraft {
    fn into_tunnel(self) -> Result<UdpTunnel, ProfileError> {
        Ok(UdpTunnel {
            interface: self.interface,
            address: addresses(&self.address)?,
            listen_port: port("listen_port", self.listen_port)?,
            mtu: mtu(self.mtu, "between 576 and 9000")?,
            peers: udp_peers(self.peer)?,
        })
    }
}

impl TapDraft {
    fn into_tunnel(self) -> Result<TapTunnel, ProfileError> {
        Ok(TapTunnel {
            interface: self.interface,
            address: addresses(&self.address)?,
            listen_port: port("listen_port", self.listen_port)?,
            mtu: mtu(self.mtu, "between 576 and 9000")?,
            mac: self.mac.map(|m| mac("mac", &m)).transpose()?,
            peers: udp_peers(self.peer)?,
        })
    }
}

impl WireguardDraft {
    fn into_tunnel(self) -> Result<WireguardTunnel, ProfileError> {
        let (dns, dns_search) = split_dns(&self.dns);
        let peers = self
            .peer
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let keepalive = |k: i64| {
                    u16::try_from(k).map_err(|_| {
                        out_of_range(&format!("peer[{i}].persistent_keepalive"), k, "between 0 (off) and 65535 seconds")
                    })
                };
                Ok(WireguardPeer {
                    public_key: public_key(&format!("peer[{i}].public_key"), &p.public_key)?,
                    preshared_key: p
                        .preshared_key
                        .map(|k| secret_key(&format!("peer[{i}].preshared_key"), &k))
                        .transpose()?,
                    allowed_ips: prefixes(&format!("peer[{i}].allowed_ips"), &p.allowed_ips)?,
                    endpoint: p.endpoint.map(|e| wg_endpoint(&format!("peer[{i}].endpoint"), &e)).transpose()?,
                    persistent_keepalive: p.persistent_keepalive.map(keepalive).transpose()?,
                })
            })
            .collect::<Result<_, ProfileError>>()?;
        let private_key = self.private_key.ok_or_else(|| {
            ProfileError::new("private_key", "is missing", "add the tunnel's private key (`culvert genkey` makes one)")
        })?;
        Ok(WireguardTunnel {
            interface: self.interface,
            private_key: secret_key("private_key", &private_key)?,
            address: addresses(&self.address)?,
            listen_port: self.listen_port.map(|p| port("listen_port", p)).transpose()?,
            mtu: mtu(self.mtu, "between 1280 and 9000")?,
            dns,
            dns_search,
            table: self.table.map(|t| table(&t.text())).transpose()?.unwrap_or_default(),
            fwmark: self.fwmark.map(|f| fwmark(&f.text())).transpose()?.flatten(),
            kill_switch: self.kill_switch.unwrap_or(false),
            allow_lan: self.allow_lan.unwrap_or(false),
            peers,
        })
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

impl VxlanDraft {
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
                    subnets: prefixes(&format!("peer[{i}].subnets"), &p.subnets)?,
                    direct: false,
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
            address: addresses(&self.address)?,
            mtu: mtu(self.mtu, "between 576 and 9000")?,
            bridge: self.bridge,
            forward: self.forward,
            peers,
        })
    }
}

impl HostgwDraft {
    fn into_tunnel(self) -> Result<HostgwTunnel, ProfileError> {
        let peers = self
            .peer
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                Ok(HostgwPeer {
                    via: ip(&format!("peer[{i}].via"), &p.via, "172.31.0.2")?,
                    subnets: prefixes(&format!("peer[{i}].subnets"), &p.subnets)?,
                })
            })
            .collect::<Result<_, ProfileError>>()?;
        Ok(HostgwTunnel { forward: self.forward, peers })
    }
}

impl OverlayDraft {
    fn into_tunnel(self) -> Result<OverlayTunnel, ProfileError> {
        let seconds =
            |field: &str, text: Option<String>, default: u64| text.map_or(Ok(default), |t| duration(field, &t));
        Ok(OverlayTunnel {
            etcd: self.etcd,
            etcd_ca: self.etcd_ca.map(PemFile::named),
            etcd_cert: self.etcd_cert.map(PemFile::named),
            etcd_key: self.etcd_key.map(PemFile::named),
            etcd_username: self.etcd_username,
            etcd_password: self.etcd_password.map(Password::new),
            prefix: self.prefix.unwrap_or_else(|| OVERLAY_PREFIX.into()),
            public_ip: self.public_ip.map(|ip| self::ip("public_ip", &ip, "172.31.0.1")).transpose()?,
            interface: self.interface,
            ip_masq: self.ip_masq.unwrap_or(false),
            subnet_file: match self.subnet_file {
                None => Some(OVERLAY_SUBNET_FILE.into()),
                Some(f) if f.is_empty() => None,
                Some(f) => Some(f),
            },
            lease_ttl: seconds("lease_ttl", self.lease_ttl, OVERLAY_LEASE_TTL)?,
            lease_renew_margin: seconds("lease_renew_margin", self.lease_renew_margin, OVERLAY_RENEW_MARGIN)?,
        })
    }
}

/// `"24h"`, `"90m"`, `"30s"` (or a bare number of seconds) as seconds.
fn duration(field: &str, text: &str) -> Result<u64, ProfileError> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => 0,
    };
    match digits.parse::<u64>() {
        Ok(n) if scale > 0 && !digits.is_empty() => n.checked_mul(scale).ok_or(()),
        _ => Err(()),
    }
    .map_err(|()| {
        ProfileError::new(field, format!("`{text}` is not a duration"), "write it as \"24h\", \"90m\" or \"30s\"")
    })
}

/// Seconds as the largest unit that writes them exactly.
fn duration_text(seconds: u64) -> String {
    match seconds {
        s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
