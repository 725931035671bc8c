//! From the leases etcd lists to the peers this host gets: each lease checked on its own and against the others,
//! and the choice of this host's own subnet.

use std::net::IpAddr;

use culvert_core::profile::MAX_PEERS;
use culvert_core::stats::OverlayNode;
use ipnet::Ipv4Net;

use super::flannel::{LeaseAttrs, Network, Node, is_own, subnet_of_key};

/// One key under `<prefix>/subnets/` as etcd holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The key's last part: `10.5.34.0-24`.
    pub name: String,
    pub value: Vec<u8>,
    /// When the key was made: of two leases that overlap, the older one stands.
    pub created: i64,
}

/// The peers the leases make, and every lease as status shows it (with why it was skipped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Nodes {
    pub peers: Vec<Node>,
    pub shown: Vec<OverlayNode>,
}

/// Checks every lease but this host's own (`own`), oldest first.
pub fn nodes(network: &Network, own: Ipv4Net, leases: &[Lease]) -> Nodes {
    let mut sorted: Vec<&Lease> = leases.iter().collect();
    sorted.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
    let mut taken: Vec<Ipv4Net> = vec![own];
    let mut out = Nodes::default();
    for lease in sorted {
        let Some(subnet) = subnet_of_key(&lease.name) else {
            out.shown.push(skipped("", &lease.name, "", "its key is not a subnet such as 10.5.34.0-24".into()));
            continue;
        };
        if subnet == own {
            continue;
        }
        let attrs = match LeaseAttrs::parse(&lease.value) {
            Ok(a) => a,
            Err(why) => {
                out.shown.push(skipped("", &subnet.to_string(), "", why));
                continue;
            }
        };
        let checked = if !network.network.contains(&subnet) {
            Err(format!("{subnet} lies outside the network {}", network.network))
        } else if let Some(other) = taken.iter().find(|t| t.contains(&subnet) || subnet.contains(*t)) {
            Err(format!("{subnet} overlaps {other}, leased earlier"))
        } else if !network.holds(subnet) {
            Err(format!("{subnet} is not a /{} the network hands out", network.subnet_len))
        } else if out.peers.len() >= MAX_PEERS {
            Err(format!("more than {MAX_PEERS} hosts: the peer limit"))
        } else {
            attrs.node(subnet, &network.backend).and_then(|node| {
                // One host, one lease: a second peer at one address or with one key would make the backend
                // ambiguous (one FDB entry, one WireGuard peer), so the older lease stands.
                if let Some(other) = out.peers.iter().find(|p| p.public_ip == node.public_ip) {
                    Err(format!("PublicIP {} already holds {}", node.public_ip, other.subnet))
                } else if let Some(other) =
                    out.peers.iter().find(|p| node.public_key.is_some() && p.public_key == node.public_key)
                {
                    Err(format!("its PublicKey is already {}'s", other.subnet))
                } else {
                    Ok(node)
                }
            })
        };
        match checked {
            Ok(node) => {
                taken.push(subnet);
                out.peers.push(node);
                out.shown.push(OverlayNode {
                    public_ip: attrs.public_ip,
                    subnet: subnet.to_string(),
                    backend: attrs.backend_type,
                    skipped_reason: None,
                });
            }
            Err(why) => out.shown.push(skipped(&attrs.public_ip, &subnet.to_string(), &attrs.backend_type, why)),
        }
    }
    out
}

/// host-gw routes via each host's address, so only hosts on this host's own segment can be peers: the others
/// are skipped and shown with the reason, and the rest of the network still works.
pub fn on_segment(mut nodes: Nodes, segment: Ipv4Net) -> Nodes {
    let (near, far): (Vec<Node>, Vec<Node>) = nodes.peers.into_iter().partition(|n| segment.contains(&n.public_ip));
    for node in far {
        let subnet = node.subnet.to_string();
        if let Some(shown) = nodes.shown.iter_mut().find(|s| s.subnet == subnet) {
            shown.skipped_reason = Some(format!(
                "PublicIP {} is not on this host's segment {segment}, and host-gw needs one layer-2 segment",
                node.public_ip
            ));
        }
    }
    nodes.peers = near;
    nodes
}

fn skipped(public_ip: &str, subnet: &str, backend: &str, why: String) -> OverlayNode {
    OverlayNode {
        public_ip: public_ip.into(),
        subnet: subnet.into(),
        backend: backend.into(),
        skipped_reason: Some(why),
    }
}

/// Where this host's subnet comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// A live lease with this host's PublicIP (flannel reuses it, as after a restart).
    Own(Ipv4Net),
    /// The subnet of the previous subnet file, free.
    Previous(Ipv4Net),
    /// A free subnet.
    Free(Ipv4Net),
}

impl Choice {
    pub fn subnet(self) -> Ipv4Net {
        match self {
            Self::Own(s) | Self::Previous(s) | Self::Free(s) => s,
        }
    }
}

/// The subnet this host takes, in flannel's order; `None` when the network is full. `spread` picks where the
/// search for a free one starts, so that hosts joining at once mostly try different subnets.
pub fn choose(
    network: &Network,
    leases: &[Lease],
    public_ip: IpAddr,
    previous: Option<Ipv4Net>,
    spread: u64,
) -> Option<Choice> {
    let held: Vec<Ipv4Net> = leases.iter().filter_map(|l| subnet_of_key(&l.name)).collect();
    let own = leases.iter().find_map(|l| {
        let subnet = subnet_of_key(&l.name)?;
        let attrs = LeaseAttrs::parse(&l.value).ok()?;
        (is_own(&attrs, public_ip) && network.holds(subnet)).then_some(subnet)
    });
    if let Some(subnet) = own {
        return Some(Choice::Own(subnet));
    }
    let free = |s: &Ipv4Net| !held.iter().any(|h| h.contains(s) || s.contains(h));
    if let Some(p) = previous.filter(|p| network.holds(*p) && free(p)) {
        return Some(Choice::Previous(p));
    }
    let count = network.subnets().count();
    if count == 0 {
        return None;
    }
    let start = usize::try_from(spread % count as u64).unwrap_or(0);
    network.subnets().skip(start).chain(network.subnets().take(start)).find(free).map(Choice::Free)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network() -> Network {
        Network::parse(br#"{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}"#).unwrap()
    }

    fn lease(name: &str, ip: &str, created: i64) -> Lease {
        let value = format!(
            r#"{{"PublicIP":"{ip}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{{"VNI":1,"VtepMAC":"4e:3c:2a:11:22:{:02x}"}}}}"#,
            created
        );
        Lease { name: name.into(), value: value.into_bytes(), created }
    }

    #[test]
    fn hostile_leases_are_skipped_with_the_reason_and_the_older_of_two_overlapping_stands() {
        let own = "10.5.1.0/24".parse().unwrap();
        let leases = [
            lease("10.5.2.0-24", "172.31.0.2", 5),
            lease("10.6.0.0-24", "172.31.0.9", 6),
            lease("10.5.2.0-23", "172.31.0.8", 7),
            lease("10.5.1.128-25", "172.31.0.7", 8),
            lease("garbage", "172.31.0.6", 9),
            Lease { name: "10.5.9.0-24".into(), value: b"{".to_vec(), created: 10 },
            lease("10.5.3.0-24", "172.31.0.3", 11),
        ];
        let n = nodes(&network(), own, &leases);
        let peers: Vec<String> = n.peers.iter().map(|p| p.subnet.to_string()).collect();
        assert_eq!(peers, ["10.5.2.0/24", "10.5.3.0/24"]);
        let why = |subnet: &str| {
            n.shown.iter().find(|s| s.subnet == subnet).and_then(|s| s.skipped_reason.clone()).unwrap_or_default()
        };
        assert!(why("10.6.0.0/24").contains("outside the network"), "{n:?}");
        assert!(why("10.5.2.0/23").contains("overlaps 10.5.2.0/24"), "{n:?}");
        assert!(why("10.5.1.128/25").contains("overlaps 10.5.1.0/24"), "{n:?}");
        assert!(why("garbage").contains("not a subnet"), "{n:?}");
        assert!(why("10.5.9.0/24").contains("not a flannel lease"), "{n:?}");
        assert_eq!(n.shown.len(), 7);
    }

    #[test]
    fn a_second_lease_at_one_address_or_with_one_key_is_skipped() {
        let own = "10.5.1.0/24".parse().unwrap();
        let same_ip = [lease("10.5.2.0-24", "172.31.0.2", 5), lease("10.5.3.0-24", "172.31.0.2", 6)];
        let n = nodes(&network(), own, &same_ip);
        assert_eq!(n.peers.len(), 1);
        assert!(n.shown[1].skipped_reason.as_deref().unwrap_or_default().contains("already holds 10.5.2.0/24"));
        let wg = Network::parse(br#"{"Network":"10.5.0.0/16","Backend":{"Type":"wireguard"}}"#).unwrap();
        let key = |name: &str, ip: &str, created| {
            Lease {
            name: name.into(),
            value: format!(
                r#"{{"PublicIP":"{ip}","BackendType":"wireguard","BackendData":{{"PublicKey":"HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="}}}}"#
            )
            .into_bytes(),
            created,
        }
        };
        let n = nodes(&wg, own, &[key("10.5.2.0-24", "172.31.0.2", 1), key("10.5.3.0-24", "172.31.0.3", 2)]);
        assert_eq!(n.peers.len(), 1);
        assert!(n.shown[1].skipped_reason.as_deref().unwrap_or_default().contains("PublicKey is already 10.5.2.0/24"));
    }

    #[test]
    fn a_host_gw_host_off_the_segment_is_skipped_and_the_others_stay() {
        let own = "10.5.1.0/24".parse().unwrap();
        let hostgw = Network::parse(br#"{"Network":"10.5.0.0/16","Backend":{"Type":"host-gw"}}"#).unwrap();
        let lease = |name: &str, ip: &str, created| Lease {
            name: name.into(),
            value: format!(r#"{{"PublicIP":"{ip}","BackendType":"host-gw"}}"#).into_bytes(),
            created,
        };
        let all = nodes(&hostgw, own, &[lease("10.5.2.0-24", "172.31.0.2", 1), lease("10.5.3.0-24", "10.9.0.3", 2)]);
        let n = on_segment(all, "172.31.0.0/24".parse().unwrap());
        assert_eq!(n.peers.len(), 1);
        assert!(n.shown[1].skipped_reason.as_deref().unwrap_or_default().contains("not on this host's segment"));
    }

    #[test]
    fn a_host_takes_its_own_lease_then_its_previous_subnet_then_a_free_one() {
        let net = network();
        let me: IpAddr = "172.31.0.1".parse().unwrap();
        let leases = [lease("10.5.7.0-24", "172.31.0.1", 1), lease("10.5.8.0-24", "172.31.0.2", 2)];
        assert_eq!(choose(&net, &leases, me, None, 0), Some(Choice::Own("10.5.7.0/24".parse().unwrap())));
        let others = &leases[1..];
        let previous = Some("10.5.8.0/24".parse().unwrap());
        assert_eq!(choose(&net, others, me, previous, 0), Some(Choice::Free("10.5.1.0/24".parse().unwrap())));
        let previous = Some("10.5.9.0/24".parse().unwrap());
        assert_eq!(choose(&net, others, me, previous, 0), Some(Choice::Previous("10.5.9.0/24".parse().unwrap())));
        assert_eq!(choose(&net, others, me, None, 7), Some(Choice::Free("10.5.9.0/24".parse().unwrap())));
        let tiny = Network::parse(br#"{"Network":"10.6.0.0/24","SubnetLen":25,"Backend":{"Type":"vxlan"}}"#).unwrap();
        assert_eq!(choose(&tiny, &[lease("10.6.0.128-25", "172.31.0.2", 1)], me, None, 0), None);
    }
}
