//! Entry points of the fuzz targets (`fuzz/fuzz_targets/`) for the parsers of outside bytes that live in the
//! helper: the userspace API's requests, DNS answers to culvertd's own lookups, and the datagrams and device packets each userspace kind classifies.
//! Each must never panic. The committed corpora are replayed through these same functions by ordinary tests
//! (`helper/tests/fuzz_corpus.rs`).

use std::net::SocketAddr;
use std::sync::OnceLock;

use culvert_core::keys::SecretKey;
use culvert_core::profile::{Endpoint, Table, TapTunnel, UdpPeer, UdpTunnel, WireguardPeer, WireguardTunnel};

use crate::dataplane::protocol::{Open, Protocol, Seal};
use crate::dataplane::tap_core::TapCore;
use crate::dataplane::udp_core::UdpCore;
use crate::dataplane::wg_core::WgCore;

const PEER: &str = "192.0.2.2:8285";
const STRANGER: &str = "198.51.100.9:4000";

/// What an overlay reads from etcd: the network's config, a lease's key and its value, checked against a
/// network of each backend. The first byte splits the rest into a key and a value.
pub fn etcd_records(data: &[u8]) {
    use crate::overlay::flannel::{LeaseAttrs, Network, subnet_of_key};
    use crate::overlay::nodes::{Lease, nodes};
    let _ = Network::parse(data);
    let Some((&split, rest)) = data.split_first() else { return };
    let (key, value) = rest.split_at(usize::from(split).min(rest.len()));
    let key = String::from_utf8_lossy(key);
    let _ = subnet_of_key(&key);
    static NETWORKS: OnceLock<[Network; 4]> = OnceLock::new();
    let networks = NETWORKS.get_or_init(|| {
        let parse = |json: &[u8]| Network::parse(json).expect("a network");
        [
            parse(br#"{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}"#),
            parse(br#"{"Network":"10.6.0.0/24","SubnetLen":26,"Backend":{"Type":"host-gw"}}"#),
            parse(br#"{"Network":"10.5.0.0/16","Backend":{"Type":"wireguard"}}"#),
            parse(br#"{"Network":"10.5.0.0/16"}"#),
        ]
    });
    let leases = [Lease { name: key.into_owned(), value: value.to_vec(), created: 1 }];
    for network in networks {
        if let (Ok(attrs), Some(subnet)) = (LeaseAttrs::parse(value), subnet_of_key(&leases[0].name)) {
            let _ = attrs.node(subnet, &network.backend);
        }
        let checked = nodes(network, network.subnets().next().expect("a subnet"), &leases);
        let _ = crate::overlay::nodes::on_segment(checked, network.network);
    }
}

/// An answer from a DNS server to culvertd's own lookup of `peer.example` (system/resolver.rs). The answer's
/// first two bytes are taken as the question's id, so that the parser goes past the header.
pub fn dns_answer(data: &[u8]) {
    use crate::system::dns_wire::{RecordType, addresses};
    let id = match data {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    };
    for kind in [RecordType::A, RecordType::Aaaa] {
        let _ = addresses(data, id, "peer.example", kind);
    }
}

/// A request on a WireGuard interface's userspace API socket.
pub fn uapi_request(data: &[u8]) {
    let _ = crate::tunnel::uapi::request::parse(data);
}

struct Cores {
    udp: UdpCore,
    tap: TapCore,
    wg: WgCore,
}

/// One tunnel of each userspace kind with two peers, made once: fuzzing is about the bytes, not the setup.
fn cores() -> &'static Cores {
    static CORES: OnceLock<Cores> = OnceLock::new();
    CORES.get_or_init(|| {
        let net = |s: &str| s.parse().expect("a prefix");
        let peers = vec![
            UdpPeer {
                endpoint: PEER.parse().expect("an address"),
                allowed_ips: vec![net("10.9.0.2/32"), net("fd00:9::/64")],
            },
            UdpPeer { endpoint: "192.0.2.3:8285".parse().expect("an address"), allowed_ips: vec![net("10.9.1.0/24")] },
        ];
        let udp = UdpCore::new(&UdpTunnel {
            interface: None,
            address: vec![net("10.9.0.1/24")],
            listen_port: 8285,
            mtu: None,
            peers: peers.clone(),
        });
        let tap = TapCore::new(&TapTunnel {
            interface: None,
            address: vec![],
            listen_port: 8285,
            mtu: None,
            mac: None,
            peers,
        });
        // Fixed keys, so that a corpus found once stays meaningful.
        let key = |b: u8| SecretKey::from_bytes([b; 32]);
        let wg_peer = |k: u8, ip: &str, ep: &str| WireguardPeer {
            public_key: key(k).public_key(),
            preshared_key: None,
            allowed_ips: vec![net(ip)],
            endpoint: Some(Endpoint::Addr(ep.parse().expect("an address"))),
            persistent_keepalive: None,
        };
        let config = WireguardTunnel {
            interface: None,
            private_key: key(1),
            address: vec![net("10.8.0.1/24")],
            listen_port: Some(51820),
            mtu: None,
            dns: vec![],
            dns_search: vec![],
            table: Table::Auto,
            fwmark: None,
            kill_switch: false,
            allow_lan: false,
            peers: vec![wg_peer(2, "10.8.0.2/32", PEER), wg_peer(3, "10.8.1.0/24", "192.0.2.3:51820")],
        };
        let endpoints = config.peers.iter().map(|p| match &p.endpoint {
            Some(Endpoint::Addr(a)) => Some(*a),
            _ => None,
        });
        let wg = WgCore::new(&config, &endpoints.collect());
        Cores { udp, tap, wg }
    })
}

/// A datagram from the network: the first byte picks the kind (udp, tap, wireguard) and the sender (a peer or a
/// stranger); the rest is the datagram.
pub fn datagram(data: &[u8]) {
    let Some((&selector, datagram)) = data.split_first() else { return };
    let from: SocketAddr = if selector & 1 == 0 { PEER } else { STRANGER }.parse().expect("an address");
    let mut out = vec![0u8; datagram.len() + 256];
    let c = cores();
    let opened = match (selector >> 1) % 3 {
        0 => c.udp.open(from, datagram, &mut out),
        1 => c.tap.open(from, datagram, &mut out),
        _ => c.wg.open(from, datagram, &mut out),
    };
    match opened {
        Open::Deliver { len, .. } | Open::Reply { len, .. } | Open::Refuse { len, .. } => assert!(len <= out.len()),
        Open::Nothing | Open::Drop(_) => {}
    }
}

/// A packet read from a tunnel device (any local program can send one): the first byte picks the kind.
pub fn device_packet(data: &[u8]) {
    let Some((&selector, packet)) = data.split_first() else { return };
    let c = cores();
    let sealed = match selector % 3 {
        0 => {
            let mut out = vec![0u8; packet.len() + UdpCore::OVERHEAD];
            (c.udp.seal(packet, &mut out), out.len())
        }
        1 => {
            let mut out = vec![0u8; packet.len() + TapCore::OVERHEAD];
            (c.tap.seal(packet, &mut out), out.len())
        }
        _ => {
            let mut out = vec![0u8; packet.len() + WgCore::OVERHEAD];
            (c.wg.seal(packet, &mut out), out.len())
        }
    };
    match sealed {
        (Seal::Send { len, .. } | Seal::Flood { len, .. }, room) => assert!(len <= room),
        (Seal::Nothing | Seal::Drop(_), _) => {}
    }
}
