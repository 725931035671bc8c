//! What each tunnel takes of the host's routing (its interface, addresses, routed prefixes and underlay
//! endpoints), and the rules that keep one user's tunnel from taking what another's holds.
//!
//! * No two tunnels share an interface name or an address (the second would come up with duplicate connected
//!   routes and take the first one's traffic).
//! * A tunnel of a caller who is not root may not route a prefix equal to or more specific than one that another
//!   owner's tunnel routes: the kernel prefers the more specific route, so it would divert that tunnel's traffic.
//!   Default routes are exempt (a split tunnel beside someone's full tunnel is the normal case), as is a default
//!   route of the caller's own: full tunnels pick their own table by policy rules.
//! * Nor may it route a prefix that holds an underlay endpoint of any tunnel: that tunnel's own packets would
//!   then travel inside the new one.

use std::net::{IpAddr, SocketAddr};

use culvert_core::ipc::IpcError;
use culvert_core::profile::{Endpoint, Profile, Table, Tunnel};
use ipnet::IpNet;

/// What one tunnel holds, each item with the profile field it comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claim {
    pub owner_uid: u32,
    /// The link the tunnel creates (host-gw creates none).
    pub interface: Option<String>,
    pub addresses: Vec<(String, IpNet)>,
    /// Prefixes routed into the tunnel: its peers' prefixes (unless it adds no routes) and its addresses'
    /// networks.
    pub routes: Vec<(String, IpNet)>,
    /// Underlay addresses the tunnel's own packets go to.
    pub endpoints: Vec<(String, IpAddr)>,
}

impl Claim {
    /// The claim of `profile` brought up by `owner_uid`, with the endpoints host names resolved to (`resolved[i]`
    /// for WireGuard peer `i`; empty before resolution).
    pub fn of(profile: &Profile, owner_uid: u32, resolved: &[Option<SocketAddr>]) -> Self {
        let mut c = Claim {
            owner_uid,
            interface: profile.has_link().then(|| profile.interface().to_owned()),
            ..Claim::default()
        };
        for (i, net) in profile.addresses().iter().enumerate() {
            c.addresses.push((format!("address[{i}]"), *net));
            c.routes.push((format!("address[{i}]"), net.trunc()));
        }
        let route = |c: &mut Claim, i: usize, key: &str, nets: &[IpNet]| {
            for (j, net) in nets.iter().enumerate() {
                c.routes.push((format!("peer[{i}].{key}[{j}]"), *net));
            }
        };
        match &profile.tunnel {
            Tunnel::Udp(u) => {
                for (i, p) in u.peers.iter().enumerate() {
                    route(&mut c, i, "allowed_ips", &p.allowed_ips);
                    c.endpoints.push((format!("peer[{i}].endpoint"), p.endpoint.ip()));
                }
            }
            Tunnel::Tap(t) => {
                for (i, p) in t.peers.iter().enumerate() {
                    route(&mut c, i, "allowed_ips", &p.allowed_ips);
                    c.endpoints.push((format!("peer[{i}].endpoint"), p.endpoint.ip()));
                }
            }
            Tunnel::Wireguard(w) => {
                for (i, p) in w.peers.iter().enumerate() {
                    if w.table != Table::Off {
                        route(&mut c, i, "allowed_ips", &p.allowed_ips);
                    }
                    let ip = match (&p.endpoint, resolved.get(i).copied().flatten()) {
                        (_, Some(addr)) => Some(addr.ip()),
                        (Some(Endpoint::Addr(addr)), None) => Some(addr.ip()),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        c.endpoints.push((format!("peer[{i}].endpoint"), ip));
                    }
                }
            }
            Tunnel::Vxlan(v) => {
                for (i, p) in v.peers.iter().enumerate() {
                    route(&mut c, i, "subnets", &p.subnets);
                    c.endpoints.push((format!("peer[{i}].vtep"), p.vtep));
                }
            }
            Tunnel::Hostgw(h) => {
                for (i, p) in h.peers.iter().enumerate() {
                    route(&mut c, i, "subnets", &p.subnets);
                    c.endpoints.push((format!("peer[{i}].via"), p.via));
                }
            }
            // Its interface only, until its backend tunnel holds what etcd gave it.
            Tunnel::Overlay(_) => {}
        }
        c
    }
}

fn is_default(net: &IpNet) -> bool {
    net.prefix_len() == 0
}

/// Whether `new` may be brought up beside the tunnels `others` (name and claim) by a caller who is root or not.
pub fn check<'a>(
    new: &Claim,
    caller_is_root: bool,
    others: impl Iterator<Item = (&'a str, &'a Claim)> + Clone,
) -> Result<(), IpcError> {
    let refuse = |field: &str, reason: String, fix: &str| {
        Err(IpcError::InvalidProfile { field: field.into(), reason, fix: fix.into() })
    };
    for (name, other) in others.clone() {
        if let (Some(mine), Some(theirs)) = (&new.interface, &other.interface)
            && mine == theirs
        {
            return refuse(
                "interface",
                format!("`{mine}` is the interface of tunnel `{name}`, which is up"),
                "set `interface` to another name",
            );
        }
        for (field, net) in &new.addresses {
            if let Some(_same) = other.addresses.iter().find(|(_, o)| o.addr() == net.addr()) {
                return refuse(
                    field,
                    format!("{} is already an address of tunnel `{name}`", net.addr()),
                    "give this tunnel an address no other tunnel has",
                );
            }
        }
    }
    if caller_is_root {
        return Ok(());
    }
    for (field, net) in new.routes.iter().filter(|(_, n)| !is_default(n)) {
        for (name, other) in others.clone() {
            if other.owner_uid != new.owner_uid
                && let Some((_, theirs)) = other.routes.iter().find(|(_, o)| !is_default(o) && o.contains(net))
            {
                return refuse(
                    field,
                    format!(
                        "{net} lies within {theirs}, which tunnel `{name}` of uid {} routes: this tunnel would take \
                         that tunnel's traffic",
                        other.owner_uid
                    ),
                    "route a prefix outside it, or ask that tunnel's owner (or root) to bring this one up",
                );
            }
            if let Some((_, ip)) = other.endpoints.iter().find(|(_, ip)| net.contains(ip)) {
                return refuse(
                    field,
                    format!(
                        "{net} holds {ip}, an endpoint of tunnel `{name}`: that tunnel's own packets would travel \
                         inside this one"
                    ),
                    "narrow the prefix so that it leaves out the endpoint",
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A claim as [`Claim::of`] makes them: each address's network is routed too, after the peers' prefixes.
    fn claim(uid: u32, iface: &str, addrs: &[&str], routes: &[&str], endpoints: &[&str]) -> Claim {
        let addresses: Vec<(String, IpNet)> =
            addrs.iter().map(|a| ("address[0]".to_string(), a.parse().unwrap())).collect();
        let mut routes: Vec<(String, IpNet)> =
            routes.iter().enumerate().map(|(j, r)| (format!("peer[0].allowed_ips[{j}]"), r.parse().unwrap())).collect();
        routes.extend(addresses.iter().map(|(f, n)| (f.clone(), n.trunc())));
        Claim {
            owner_uid: uid,
            interface: Some(iface.into()),
            addresses,
            routes,
            endpoints: endpoints.iter().map(|e| ("peer[0].endpoint".to_string(), e.parse().unwrap())).collect(),
        }
    }

    fn field(r: Result<(), IpcError>) -> String {
        match r {
            Err(IpcError::InvalidProfile { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_user_cannot_route_into_another_owners_prefix_or_endpoint() {
        let roots = claim(0, "wg-root", &["10.8.0.1/24"], &["10.8.0.0/24", "192.168.50.0/24"], &["203.0.113.5"]);
        let others = [("office", &roots)];
        let it = || others.iter().map(|(n, c)| (*n, *c));
        // Equal, more specific, and an endpoint's prefix: refused for a user.
        let equal = claim(1000, "u0", &["10.9.0.1/24"], &["192.168.50.0/24"], &["198.51.100.1"]);
        assert_eq!(field(check(&equal, false, it())), "peer[0].allowed_ips[0]");
        let narrower = claim(1000, "u0", &["10.9.0.1/24"], &["10.8.0.128/25"], &["198.51.100.1"]);
        assert_eq!(field(check(&narrower, false, it())), "peer[0].allowed_ips[0]");
        let address_inside = claim(1000, "u0", &["10.8.0.9/32"], &[], &["198.51.100.1"]);
        assert!(check(&address_inside, false, it()).is_err(), "an address's network routes too");
        let endpoint = claim(1000, "u0", &["10.9.0.1/24"], &["203.0.113.0/24"], &["198.51.100.1"]);
        assert_eq!(field(check(&endpoint, false, it())), "peer[0].allowed_ips[0]");
        // Root may; broader prefixes and default routes are not captures.
        check(&narrower, true, it()).unwrap();
        let broader = claim(1000, "u0", &["10.9.0.1/24"], &["10.0.0.0/8", "0.0.0.0/0"], &["198.51.100.1"]);
        check(&broader, false, it()).unwrap();
        let full = claim(0, "wg-full", &["10.7.0.1/24"], &["0.0.0.0/0"], &["203.0.113.9"]);
        let split = claim(1000, "u1", &["10.6.0.1/24"], &["10.6.0.0/24"], &["198.51.100.1"]);
        check(&split, false, [("full", &full)].into_iter()).unwrap();
        // A user's own tunnels do not capture each other, except for endpoints.
        let mine = claim(1000, "u2", &["10.5.0.1/24"], &["10.5.0.0/16"], &["198.51.100.7"]);
        let nested = claim(1000, "u3", &["10.4.0.1/24"], &["10.5.1.0/24"], &["198.51.100.8"]);
        check(&nested, false, [("mine", &mine)].into_iter()).unwrap();
    }

    #[test]
    fn nobody_may_take_an_interface_or_an_address_twice() {
        let a = claim(1000, "cv-a", &["10.9.0.1/24"], &[], &["192.0.2.1"]);
        let same_if = claim(0, "cv-a", &["10.9.1.1/24"], &[], &["192.0.2.2"]);
        assert_eq!(field(check(&same_if, true, [("a", &a)].into_iter())), "interface");
        let same_addr = claim(0, "cv-b", &["10.9.0.1/16"], &[], &["192.0.2.2"]);
        assert_eq!(field(check(&same_addr, true, [("a", &a)].into_iter())), "address[0]");
    }

    #[test]
    fn claims_name_the_fields_they_come_from() {
        let text = "kind = \"udp\"\naddress = [\"10.9.0.1/24\"]\nlisten_port = 8285\n[[peer]]\n\
                    endpoint = \"172.31.0.2:8285\"\nallowed_ips = [\"10.9.0.0/24\", \"10.10.0.0/16\"]\n";
        let p = culvert_core::profile::parse_toml("lab", text).unwrap();
        let c = Claim::of(&p, 7, &[]);
        assert_eq!(c.interface.as_deref(), Some("lab"));
        assert_eq!(c.routes[0], ("address[0]".into(), "10.9.0.0/24".parse().unwrap()));
        assert_eq!(c.routes[2], ("peer[0].allowed_ips[1]".into(), "10.10.0.0/16".parse().unwrap()));
        assert_eq!(c.endpoints, vec![("peer[0].endpoint".into(), "172.31.0.2".parse().unwrap())]);
    }
}
