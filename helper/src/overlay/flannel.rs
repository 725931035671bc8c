//! flannel's records in etcd, read and written as flanneld does (flannel's `pkg/subnet/config.go`,
//! `pkg/lease/lease.go`, `MakeSubnetKey`): the network's config at `<prefix>/config`, and one lease per host at
//! `<prefix>/subnets/10.5.34.0-24`. Everything here comes from etcd, so every reader checks every value.

use std::net::{IpAddr, Ipv4Addr};

use culvert_core::keys::PublicKey;
use culvert_core::mac::MacAddr;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// The backends of a flannel network that Culvert's overlay builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A kernel VXLAN link; each host's subnet is routed on-link via its VTEP.
    Vxlan { vni: u32, port: u16, direct_routing: bool },
    /// Routes via each host's address: every host must share one layer-2 segment.
    HostGw,
    /// A WireGuard device; each host is a peer whose allowed IPs are its subnet. Keys are made by each host.
    Wireguard { listen_port: u16 },
    /// A TUN device whose packets travel one per UDP datagram, unencrypted (flannel's first backend).
    Udp { port: u16 },
}

impl Backend {
    /// The `BackendType` of leases and `Backend.Type` of the config.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Vxlan { .. } => "vxlan",
            Self::HostGw => "host-gw",
            Self::Wireguard { .. } => "wireguard",
            Self::Udp { .. } => "udp",
        }
    }
}

/// A network's config, with flannel's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub network: Ipv4Net,
    pub subnet_len: u8,
    pub subnet_min: Ipv4Addr,
    pub subnet_max: Ipv4Addr,
    pub backend: Backend,
}

/// What is wrong with a record, naming its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct RecordError {
    pub key: String,
    pub problem: String,
}

fn wrong(key: &str, problem: impl Into<String>) -> RecordError {
    RecordError { key: key.into(), problem: problem.into() }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigJson {
    network: Option<String>,
    subnet_len: Option<u8>,
    subnet_min: Option<String>,
    subnet_max: Option<String>,
    backend: Option<serde_json::Value>,
}

/// The largest VNI (24 bits).
const MAX_VNI: u64 = 0x00ff_ffff;

impl Network {
    /// The config's JSON, as `etcdctl put <prefix>/config '{"Network":"10.5.0.0/16",...}'` wrote it.
    pub fn parse(text: &[u8]) -> Result<Self, RecordError> {
        let json: ConfigJson =
            serde_json::from_slice(text).map_err(|e| wrong("config", format!("is not flannel's config JSON: {e}")))?;
        let network: Ipv4Net = json
            .network
            .as_deref()
            .ok_or_else(|| wrong("Network", "is missing (an IPv4 network such as \"10.5.0.0/16\")"))?
            .parse()
            .map_err(|_| wrong("Network", "is not an IPv4 network such as \"10.5.0.0/16\""))?;
        if network.network() != network.addr() {
            return Err(wrong("Network", format!("{network} has host bits set; write {}", network.trunc())));
        }
        // flannel: 24, or two bits more than the network's when the network is /24 or smaller.
        let subnet_len =
            json.subnet_len.unwrap_or(if network.prefix_len() < 24 { 24 } else { network.prefix_len() + 2 });
        if subnet_len <= network.prefix_len() || subnet_len > 30 {
            return Err(wrong(
                "SubnetLen",
                format!("{subnet_len} must be longer than the network's /{} and at most 30", network.prefix_len()),
            ));
        }
        let size = 1u32 << (32 - subnet_len);
        let first = u32::from(network.network());
        let last_subnet = u32::from(network.broadcast()) - (size - 1);
        let bound = |key: &str, text: Option<String>, default: u32| -> Result<Ipv4Addr, RecordError> {
            let Some(text) = text else { return Ok(Ipv4Addr::from(default)) };
            let a: Ipv4Addr = text.parse().map_err(|_| wrong(key, format!("`{text}` is not an IPv4 address")))?;
            if !network.contains(&a) || u32::from(a) % size != 0 {
                return Err(wrong(key, format!("{a} is not the start of a /{subnet_len} inside {network}")));
            }
            Ok(a)
        };
        // flannel leaves the network's first subnet out by default.
        let subnet_min = bound("SubnetMin", json.subnet_min, first + size)?;
        let subnet_max = bound("SubnetMax", json.subnet_max, last_subnet)?;
        if subnet_min > subnet_max {
            return Err(wrong("SubnetMin", format!("{subnet_min} is above SubnetMax {subnet_max}")));
        }
        Ok(Self { network, subnet_len, subnet_min, subnet_max, backend: backend(json.backend)? })
    }

    /// Whether `subnet` is one this network hands out.
    pub fn holds(&self, subnet: Ipv4Net) -> bool {
        subnet.prefix_len() == self.subnet_len
            && (self.subnet_min..=self.subnet_max).contains(&subnet.network())
            && subnet.addr() == subnet.network()
    }

    /// Every subnet the network hands out, from SubnetMin to SubnetMax.
    pub fn subnets(&self) -> impl Iterator<Item = Ipv4Net> + '_ {
        let size = 1u64 << (32 - self.subnet_len);
        let (min, max) = (u64::from(u32::from(self.subnet_min)), u64::from(u32::from(self.subnet_max)));
        (min..=max)
            .step_by(size as usize)
            .filter_map(|a| Ipv4Net::new(Ipv4Addr::from(u32::try_from(a).ok()?), self.subnet_len).ok())
    }
}

fn backend(value: Option<serde_json::Value>) -> Result<Backend, RecordError> {
    // flannel: a config without a Backend is udp on port 8285.
    let value = value.unwrap_or_else(|| serde_json::json!({}));
    if !value.is_object() {
        return Err(wrong("Backend", format!("{value} is not an object such as {{\"Type\":\"vxlan\"}}")));
    }
    let field = |name: &str| value.get(name);
    let number = |name: &str, default: u64, max: u64| -> Result<u64, RecordError> {
        match field(name) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| wrong(&format!("Backend.{name}"), format!("{v} is not a number from 1 to {max}"))),
        }
    };
    let kind = match field("Type") {
        None => "udp",
        Some(t) => t.as_str().ok_or_else(|| wrong("Backend.Type", format!("{t} is not a string")))?,
    };
    match kind {
        "vxlan" => Ok(Backend::Vxlan {
            vni: u32::try_from(number("VNI", 1, MAX_VNI)?).unwrap_or(1),
            port: u16::try_from(number("Port", 8472, 65535)?).unwrap_or(8472),
            direct_routing: match field("DirectRouting") {
                None => false,
                Some(v) => v.as_bool().ok_or_else(|| wrong("Backend.DirectRouting", "is not true or false"))?,
            },
        }),
        "host-gw" => Ok(Backend::HostGw),
        "wireguard" => {
            Ok(Backend::Wireguard { listen_port: u16::try_from(number("ListenPort", 51820, 65535)?).unwrap_or(51820) })
        }
        "udp" => Ok(Backend::Udp { port: u16::try_from(number("Port", 8285, 65535)?).unwrap_or(8285) }),
        other => {
            Err(wrong("Backend.Type", format!("`{other}` is not a flannel backend (vxlan, host-gw, wireguard, udp)")))
        }
    }
}

/// A lease's key: `10.5.34.0-24`, or dual-stack `10.5.34.0-24&fc00::-64` (whose IPv6 part is not used).
pub fn subnet_of_key(name: &str) -> Option<Ipv4Net> {
    let v4 = name.split_once('&').map_or(name, |(v4, _)| v4);
    let (addr, len) = v4.split_once('-')?;
    if len.is_empty() || len.len() > 2 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Ipv4Net::new(addr.parse().ok()?, len.parse().ok()?).ok()
}

pub fn key_of_subnet(subnet: Ipv4Net) -> String {
    format!("{}-{}", subnet.addr(), subnet.prefix_len())
}

/// A lease's value, as flanneld writes it (`LeaseAttrs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LeaseAttrs {
    #[serde(rename = "PublicIP")]
    pub public_ip: String,
    #[serde(rename = "PublicIPv6", default)]
    pub public_ipv6: Option<String>,
    #[serde(default)]
    pub backend_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_data: Option<serde_json::Value>,
}

/// What another host's lease says about reaching it, once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    pub subnet: Ipv4Net,
    pub public_ip: Ipv4Addr,
    /// Its VTEP's MAC, for vxlan.
    pub vtep_mac: Option<MacAddr>,
    /// Its public key, for wireguard.
    pub public_key: Option<PublicKey>,
    /// The UDP port it listens on, for wireguard and udp.
    pub port: Option<u16>,
}

/// What this host publishes of its backend beside its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Own {
    Vxlan(MacAddr),
    Wireguard(PublicKey),
    None,
}

impl LeaseAttrs {
    /// This host's own lease for `backend`.
    pub fn own(public_ip: Ipv4Addr, backend: &Backend, own: Own) -> Self {
        let backend_data = match (backend, own) {
            (Backend::Vxlan { vni, .. }, Own::Vxlan(mac)) => {
                Some(serde_json::json!({ "VNI": vni, "VtepMAC": mac.to_string() }))
            }
            // flanneld writes only the key and listens where the network's config says; the port is for readers
            // that want it, and is ignored by flanneld.
            (Backend::Wireguard { listen_port }, Own::Wireguard(key)) => {
                Some(serde_json::json!({ "PublicKey": key.to_string(), "Port": listen_port }))
            }
            _ => None,
        };
        Self { public_ip: public_ip.to_string(), public_ipv6: None, backend_type: backend.name().into(), backend_data }
    }

    /// The lease's value, as its JSON.
    pub fn parse(text: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(text).map_err(|e| format!("is not a flannel lease: {e}"))
    }

    pub fn public_ip(&self) -> Option<Ipv4Addr> {
        self.public_ip.parse().ok()
    }

    /// The peer the lease of `subnet` makes in a network of `backend`, or why it makes none.
    pub fn node(&self, subnet: Ipv4Net, backend: &Backend) -> Result<Node, String> {
        let public_ip =
            self.public_ip().ok_or_else(|| format!("PublicIP `{}` is not an IPv4 address", self.public_ip))?;
        if public_ip.is_unspecified()
            || public_ip.is_multicast()
            || public_ip.is_loopback()
            || public_ip.is_broadcast()
            || public_ip.is_link_local()
        {
            return Err(format!("PublicIP {public_ip} is not a unicast host address"));
        }
        if self.backend_type != backend.name() {
            return Err(format!("BackendType `{}` is not the network's {}", self.backend_type, backend.name()));
        }
        let (mut vtep_mac, mut public_key, mut port) = (None, None, None);
        match backend {
            Backend::HostGw => {}
            Backend::Udp { port: p } => port = Some(*p),
            Backend::Wireguard { listen_port } => {
                let data = self.backend_data.as_ref().ok_or("has no BackendData")?;
                let key = data.get("PublicKey").and_then(|k| k.as_str()).ok_or("has no PublicKey")?;
                let key: PublicKey = key
                    .parse()
                    .map_err(|_| format!("PublicKey `{key}` is not a WireGuard key (44 characters of base64)"))?;
                if key.0 == [0; 32] {
                    return Err("PublicKey is all zeros".into());
                }
                public_key = Some(key);
                port = Some(match data.get("Port") {
                    None => *listen_port,
                    Some(p) => p
                        .as_u64()
                        .and_then(|p| u16::try_from(p).ok())
                        .filter(|p| *p != 0)
                        .ok_or_else(|| format!("Port {p} is not a UDP port"))?,
                });
            }
            Backend::Vxlan { vni, .. } => {
                let data = self.backend_data.as_ref().ok_or("has no BackendData")?;
                if let Some(theirs) = data.get("VNI").and_then(serde_json::Value::as_u64)
                    && theirs != u64::from(*vni)
                {
                    return Err(format!("VNI {theirs} is not the network's {vni}"));
                }
                let mac = data.get("VtepMAC").and_then(|m| m.as_str()).ok_or("has no VtepMAC")?;
                let mac: MacAddr = mac.parse().map_err(|_| format!("VtepMAC `{mac}` is not a MAC address"))?;
                if !mac.is_unicast() {
                    return Err(format!("VtepMAC {mac} is not a unicast MAC"));
                }
                vtep_mac = Some(mac);
            }
        }
        Ok(Node { subnet, public_ip, vtep_mac, public_key, port })
    }
}

/// Whether `ip` is the lease's own host: flannel reuses a lease whose PublicIP is its own.
pub fn is_own(attrs: &LeaseAttrs, ip: IpAddr) -> bool {
    attrs.public_ip().map(IpAddr::V4) == Some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_gets_flannels_defaults_and_a_wrong_one_names_its_key() {
        let n = Network::parse(br#"{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}"#).unwrap();
        assert_eq!(n.subnet_len, 24);
        assert_eq!((n.subnet_min, n.subnet_max), ("10.5.1.0".parse().unwrap(), "10.5.255.0".parse().unwrap()));
        assert_eq!(n.backend, Backend::Vxlan { vni: 1, port: 8472, direct_routing: false });
        assert_eq!(n.subnets().count(), 255);
        let small = Network::parse(br#"{"Network":"10.6.0.0/24","Backend":{"Type":"host-gw"}}"#).unwrap();
        assert_eq!((small.subnet_len, small.subnets().count()), (26, 3));
        // flannel's other defaults: no Backend is udp on 8285; wireguard listens on 51820.
        let udp = Network::parse(br#"{"Network":"10.5.0.0/16"}"#).unwrap();
        assert_eq!(udp.backend, Backend::Udp { port: 8285 });
        let wg = Network::parse(br#"{"Network":"10.5.0.0/16","Backend":{"Type":"wireguard"}}"#).unwrap();
        assert_eq!(wg.backend, Backend::Wireguard { listen_port: 51820 });
        for (json, key) in [
            (&br#"{"SubnetLen":24}"#[..], "Network"),
            (br#"{"Network":"10.5.0.1/16","Backend":{"Type":"vxlan"}}"#, "Network"),
            (br#"{"Network":"10.5.0.0/16","SubnetLen":8,"Backend":{"Type":"vxlan"}}"#, "SubnetLen"),
            (br#"{"Network":"10.5.0.0/16","SubnetMin":"10.6.0.0","Backend":{"Type":"vxlan"}}"#, "SubnetMin"),
            (br#"{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan","VNI":16777216}}"#, "Backend.VNI"),
            (br#"{"Network":"10.5.0.0/16","Backend":{"Type":"gre"}}"#, "Backend.Type"),
            (br#"{"Network":"10.5.0.0/16","Backend":{"Type":"udp","Port":0}}"#, "Backend.Port"),
            (br#"{"Network":"10.5.0.0/16","Backend":{"Type":"wireguard","ListenPort":65536}}"#, "Backend.ListenPort"),
            (br#"{"Network":"10.5.0.0/16","Backend":"vxlan"}"#, "Backend"),
            (b"not json", "config"),
        ] {
            let e = Network::parse(json).unwrap_err();
            assert_eq!(e.key, key, "{e}");
        }
    }

    #[test]
    fn keys_read_as_flannel_writes_them() {
        assert_eq!(subnet_of_key("10.5.34.0-24"), Some("10.5.34.0/24".parse().unwrap()));
        assert_eq!(subnet_of_key("10.5.34.0-24&fc00::-64"), Some("10.5.34.0/24".parse().unwrap()));
        for bad in ["10.5.34.0", "10.5.34.0-", "10.5.34.0-+4", "10.5.34.0-33", "x-24", "10.5.34.0-024"] {
            assert_eq!(subnet_of_key(bad), None, "{bad}");
        }
        assert_eq!(key_of_subnet("10.5.34.0/24".parse().unwrap()), "10.5.34.0-24");
    }

    #[test]
    fn a_lease_written_as_flanneld_writes_it_is_a_node_and_a_hostile_one_says_why_not() {
        let vxlan = Backend::Vxlan { vni: 1, port: 8472, direct_routing: false };
        let subnet = "10.5.34.0/24".parse().unwrap();
        let flanneld = br#"{"PublicIP":"172.31.0.2","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"4e:3c:2a:11:22:33"},"Extra":1}"#;
        let node = LeaseAttrs::parse(flanneld).unwrap().node(subnet, &vxlan).unwrap();
        assert_eq!(node.public_ip, Ipv4Addr::new(172, 31, 0, 2));
        assert_eq!(node.vtep_mac.unwrap().to_string(), "4e:3c:2a:11:22:33");
        for (json, says) in [
            (&br#"{"PublicIP":"224.0.0.5","BackendType":"vxlan","BackendData":{"VtepMAC":"4e:3c:2a:11:22:33"}}"#[..], "unicast"),
            (br#"{"PublicIP":"172.31.0.2","BackendType":"host-gw"}"#, "not the network's"),
            (br#"{"PublicIP":"172.31.0.2","BackendType":"vxlan","BackendData":{"VtepMAC":"zz"}}"#, "not a MAC"),
            (br#"{"PublicIP":"172.31.0.2","BackendType":"vxlan","BackendData":{"VNI":2,"VtepMAC":"4e:3c:2a:11:22:33"}}"#, "VNI 2"),
            (br#"{"PublicIP":"172.31.0.2","BackendType":"vxlan","BackendData":{"VtepMAC":"01:00:5e:00:00:01"}}"#, "unicast MAC"),
        ] {
            let e = LeaseAttrs::parse(json).unwrap().node(subnet, &vxlan).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
        assert!(LeaseAttrs::parse(b"{}").is_err());
    }

    #[test]
    fn an_own_lease_carries_flannels_field_names_and_types() {
        let mac: MacAddr = "4e:3c:2a:11:22:33".parse().unwrap();
        let vxlan = Backend::Vxlan { vni: 7, port: 8472, direct_routing: false };
        let json =
            serde_json::to_value(LeaseAttrs::own(Ipv4Addr::new(172, 31, 0, 1), &vxlan, Own::Vxlan(mac))).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"PublicIP":"172.31.0.1","PublicIPv6":null,"BackendType":"vxlan",
                "BackendData":{"VNI":7,"VtepMAC":"4e:3c:2a:11:22:33"}})
        );
        let hostgw =
            serde_json::to_value(LeaseAttrs::own(Ipv4Addr::new(172, 31, 0, 1), &Backend::HostGw, Own::None)).unwrap();
        assert_eq!(hostgw, serde_json::json!({"PublicIP":"172.31.0.1","PublicIPv6":null,"BackendType":"host-gw"}));
        let key: PublicKey = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=".parse().unwrap();
        let wg = Backend::Wireguard { listen_port: 51820 };
        let json =
            serde_json::to_value(LeaseAttrs::own(Ipv4Addr::new(172, 31, 0, 1), &wg, Own::Wireguard(key))).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"PublicIP":"172.31.0.1","PublicIPv6":null,"BackendType":"wireguard",
                "BackendData":{"PublicKey":"HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=","Port":51820}})
        );
    }

    #[test]
    fn a_wireguard_lease_as_flanneld_writes_it_listens_on_the_networks_port() {
        let wg = Backend::Wireguard { listen_port: 51820 };
        let subnet = "10.5.34.0/24".parse().unwrap();
        let flanneld = br#"{"PublicIP":"172.31.0.2","PublicIPv6":null,"BackendType":"wireguard","BackendData":{"PublicKey":"HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="}}"#;
        let node = LeaseAttrs::parse(flanneld).unwrap().node(subnet, &wg).unwrap();
        assert_eq!(node.port, Some(51820));
        assert_eq!(node.public_key.unwrap().to_string(), "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=");
        for (json, says) in [
            (&br#"{"PublicIP":"172.31.0.2","BackendType":"wireguard"}"#[..], "no BackendData"),
            (br#"{"PublicIP":"172.31.0.2","BackendType":"wireguard","BackendData":{"PublicKey":"abc"}}"#, "not a WireGuard key"),
            (br#"{"PublicIP":"172.31.0.2","BackendType":"wireguard","BackendData":{"PublicKey":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}"#, "all zeros"),
            (br#"{"PublicIP":"172.31.0.2","BackendType":"wireguard","BackendData":{"PublicKey":"HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=","Port":70000}}"#, "not a UDP port"),
        ] {
            let e = LeaseAttrs::parse(json).unwrap().node(subnet, &wg).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
        let udp = LeaseAttrs::parse(br#"{"PublicIP":"172.31.0.2","BackendType":"udp"}"#).unwrap();
        assert_eq!(udp.node(subnet, &Backend::Udp { port: 8285 }).unwrap().port, Some(8285));
    }
}
