//! The rules every profile must meet, shared by clients and the helper.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{
    HostgwTunnel, MAX_NAME_LEN, MAX_PEERS, MAX_PREFIXES, Profile, ProfileError, Table, TapTunnel, Tunnel, UdpTunnel,
    VxlanTunnel, WireguardTunnel,
};
use crate::ifname;

pub(super) fn profile(p: &Profile) -> Result<(), ProfileError> {
    name(&p.name)?;
    match &p.tunnel {
        Tunnel::Udp(u) => udp(p, u),
        Tunnel::Wireguard(w) => wireguard(p, w),
        Tunnel::Vxlan(v) => vxlan(p, v),
        Tunnel::Hostgw(h) => hostgw(h),
        Tunnel::Tap(t) => tap(p, t),
    }
}

/// A tunnel name is also a file stem and a key in the helper's state directory: it must be short and plain.
pub fn name(name: &str) -> Result<(), ProfileError> {
    let fix = "name the profile with letters, digits, '_', '.' or '-', such as lab (as a file: lab.toml)";
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(ProfileError::new("name", format!("must be 1 to {MAX_NAME_LEN} bytes long"), fix));
    }
    if name.starts_with('.') {
        return Err(ProfileError::new("name", format!("`{name}` starts with '.'"), fix));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return Err(ProfileError::new("name", format!("`{name}` contains {c:?}"), fix));
    }
    Ok(())
}

fn interface(p: &Profile, set: Option<&str>) -> Result<(), ProfileError> {
    match set {
        Some(ifname) => ifname::check(ifname).map_err(|problem| {
            ProfileError::new(
                "interface",
                format!("`{ifname}` {problem}"),
                "set `interface` to a Linux interface name such as \"cv-lab\"",
            )
        }),
        None => ifname::check(&p.name).map_err(|problem| {
            ProfileError::new(
                "interface",
                format!("the tunnel name `{}` {problem}, so it cannot be the interface name", p.name),
                "set `interface` to a Linux interface name such as \"cv-lab\"",
            )
        }),
    }
}

fn mtu(mtu: Option<u16>, addresses: &[IpNet]) -> Result<(), ProfileError> {
    let Some(mtu) = mtu else { return Ok(()) };
    let min = if addresses.iter().any(|a| a.addr().is_ipv6()) { 1280 } else { 576 };
    if !(min..=9000).contains(&mtu) {
        let why = if min == 1280 { " (IPv6 needs at least 1280)" } else { "" };
        return Err(ProfileError::new(
            "mtu",
            format!("{mtu} is out of range{why}"),
            format!("set `mtu` between {min} and 9000, or leave it out for {}", super::DEFAULT_MTU),
        ));
    }
    Ok(())
}

fn addresses(addresses: &[IpNet]) -> Result<(), ProfileError> {
    if addresses.is_empty() {
        return Err(ProfileError::new(
            "address",
            "is empty",
            "give the tunnel device at least one address, such as address = [\"10.9.0.1/24\"]",
        ));
    }
    let mut seen = HashSet::new();
    for (i, a) in addresses.iter().enumerate() {
        let field = format!("address[{i}]");
        if !usable_host(a.addr()) {
            return Err(ProfileError::new(
                field,
                format!("{} is not a unicast host address", a.addr()),
                "use an address such as 10.9.0.1/24 or fd00:9::1/64",
            ));
        }
        if !seen.insert(a.addr()) {
            return Err(ProfileError::new(field, format!("{} is listed twice", a.addr()), "remove the duplicate"));
        }
    }
    Ok(())
}

fn usable_host(ip: IpAddr) -> bool {
    !(ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() || ip == IpAddr::V4(std::net::Ipv4Addr::BROADCAST))
}

fn listen_port(port: u16) -> Result<(), ProfileError> {
    if port == 0 {
        return Err(ProfileError::new(
            "listen_port",
            "is 0",
            "set `listen_port` to the UDP port (1-65535) your peers send to, such as 8285",
        ));
    }
    Ok(())
}

fn udp(p: &Profile, u: &UdpTunnel) -> Result<(), ProfileError> {
    interface(p, u.interface.as_deref())?;
    addresses(&u.address)?;
    listen_port(u.listen_port)?;
    mtu(u.mtu, &u.address)?;
    peer_count(u.peers.len())?;
    allowed_ips(u.peers.iter().map(|p| p.allowed_ips.as_slice()))?;
    let mut endpoints = HashSet::new();
    for (i, peer) in u.peers.iter().enumerate() {
        let ep = peer.endpoint;
        let field = format!("peer[{i}].endpoint");
        if ep.port() == 0 || ep.ip().is_unspecified() || ep.ip().is_multicast() {
            return Err(ProfileError::new(
                field,
                format!("{ep} cannot be sent to"),
                "set the peer's unicast address and UDP port, such as \"172.31.0.2:8285\"",
            ));
        }
        if !endpoints.insert(ep) {
            return Err(ProfileError::new(
                field,
                format!("{ep} is the endpoint of an earlier peer too"),
                "merge the two peers into one, with both peers' allowed_ips",
            ));
        }
        if peer.allowed_ips.is_empty() {
            return Err(ProfileError::new(
                format!("peer[{i}].allowed_ips"),
                "is empty",
                "list the addresses routed to this peer, such as allowed_ips = [\"10.9.0.0/24\"]",
            ));
        }
        for (j, net) in peer.allowed_ips.iter().enumerate() {
            let field = format!("peer[{i}].allowed_ips[{j}]");
            // Packets to our own peer would be routed into the tunnel they travel in.
            if let Some(looping) = u.peers.iter().map(|p| p.endpoint.ip()).find(|ip| net.contains(ip)) {
                return Err(ProfileError::new(
                    field,
                    format!("{net} contains the peer endpoint {looping}, which would route the tunnel into itself"),
                    "narrow allowed_ips so it leaves out the endpoint's address",
                ));
            }
        }
    }
    Ok(())
}

fn peer_count(n: usize) -> Result<(), ProfileError> {
    if n == 0 {
        return Err(ProfileError::new(
            "peer",
            "there is no peer",
            "add a [[peer]] table ([Peer] section in a .conf file)",
        ));
    }
    if n > MAX_PEERS {
        return Err(ProfileError::new(
            "peer",
            format!("{n} peers is more than the {MAX_PEERS} allowed"),
            "split the tunnel in two",
        ));
    }
    Ok(())
}

/// Each prefix given to one peer only, written as a network, and no more of them than the helper takes.
fn allowed_ips<'a>(peers: impl Iterator<Item = &'a [IpNet]>) -> Result<(), ProfileError> {
    let mut seen = HashSet::new();
    for (i, nets) in peers.enumerate() {
        for (j, net) in nets.iter().enumerate() {
            let field = format!("peer[{i}].allowed_ips[{j}]");
            if net.trunc() != *net {
                return Err(ProfileError::new(
                    field,
                    format!("{net} has host bits set"),
                    format!("write the network as {}", net.trunc()),
                ));
            }
            if !seen.insert(*net) {
                return Err(ProfileError::new(
                    field,
                    format!("{net} is listed twice"),
                    "give each prefix to one peer only",
                ));
            }
        }
    }
    if seen.len() > MAX_PREFIXES {
        return Err(ProfileError::new(
            "peer",
            format!("{} allowed_ips entries is more than the {MAX_PREFIXES} allowed", seen.len()),
            "merge adjacent prefixes",
        ));
    }
    Ok(())
}

fn wireguard(p: &Profile, w: &WireguardTunnel) -> Result<(), ProfileError> {
    interface(p, w.interface.as_deref())?;
    addresses(&w.address)?;
    mtu(w.mtu, &w.address)?;
    peer_count(w.peers.len())?;
    allowed_ips(w.peers.iter().map(|p| p.allowed_ips.as_slice()))?;
    let own = w.private_key.public_key();
    let mut keys = HashSet::new();
    for (i, peer) in w.peers.iter().enumerate() {
        if peer.public_key == own {
            return Err(ProfileError::new(
                format!("peer[{i}].public_key"),
                "is this tunnel's own public key",
                "set the peer's public key (`culvert pubkey` prints yours, for the peer's side)",
            ));
        }
        if !keys.insert(peer.public_key) {
            return Err(ProfileError::new(
                format!("peer[{i}].public_key"),
                format!("{} is the key of an earlier peer too", peer.public_key),
                "merge the two peers into one",
            ));
        }
        let Some(super::Endpoint::Addr(ep)) = &peer.endpoint else { continue };
        let field = format!("peer[{i}].endpoint");
        if ep.port() == 0 || ep.ip().is_unspecified() || ep.ip().is_multicast() {
            return Err(ProfileError::new(
                field,
                format!("{ep} cannot be sent to"),
                "set the peer's unicast address and UDP port, such as \"203.0.113.5:51820\"",
            ));
        }
        // A full tunnel (a /0) keeps the endpoint reachable with policy routing; any narrower prefix that holds the
        // endpoint would send the tunnel's own packets into itself.
        if w.table != Table::Off {
            for (k, other) in w.peers.iter().enumerate() {
                if let Some(net) = other.allowed_ips.iter().find(|n| n.prefix_len() > 0 && n.contains(&ep.ip())) {
                    return Err(ProfileError::new(
                        format!("peer[{k}].allowed_ips"),
                        format!(
                            "{net} contains the endpoint {} of peer[{i}], which would route the tunnel into itself",
                            ep.ip()
                        ),
                        "narrow allowed_ips so it leaves out the endpoint, or route everything with 0.0.0.0/0",
                    ));
                }
            }
        }
    }
    for (i, domain) in w.dns_search.iter().enumerate() {
        let ok = !domain.is_empty()
            && domain.len() <= 253
            && domain
                .trim_end_matches('.')
                .split('.')
                .all(|l| !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        if !ok {
            return Err(ProfileError::new(
                format!("dns_search[{i}]"),
                format!("`{domain}` is not a domain name"),
                "list DNS servers as addresses and search domains as names such as corp.example",
            ));
        }
    }
    Ok(())
}

fn tap(p: &Profile, t: &TapTunnel) -> Result<(), ProfileError> {
    interface(p, t.interface.as_deref())?;
    if !t.address.is_empty() {
        addresses(&t.address)?;
    }
    listen_port(t.listen_port)?;
    mtu(t.mtu, &t.address)?;
    if let Some(mac) = t.mac.filter(|m| !m.is_unicast()) {
        return Err(ProfileError::new(
            "mac",
            format!("{mac} is not a unicast MAC"),
            "leave `mac` out for a random one",
        ));
    }
    peer_count(t.peers.len())?;
    allowed_ips(t.peers.iter().map(|p| p.allowed_ips.as_slice()))?;
    let mut endpoints = HashSet::new();
    for (i, peer) in t.peers.iter().enumerate() {
        let ep = peer.endpoint;
        if ep.port() == 0 || ep.ip().is_unspecified() || ep.ip().is_multicast() || !endpoints.insert(ep) {
            return Err(ProfileError::new(
                format!("peer[{i}].endpoint"),
                format!("{ep} is not a distinct peer address"),
                "set each peer's unicast address and UDP port, such as \"172.31.0.2:8285\"",
            ));
        }
        if let Some(net) = peer.allowed_ips.iter().find(|n| t.peers.iter().any(|p| n.contains(&p.endpoint.ip()))) {
            return Err(ProfileError::new(
                format!("peer[{i}].allowed_ips"),
                format!("{net} contains a peer endpoint, which would route the tunnel into itself"),
                "narrow allowed_ips so it leaves out the endpoints",
            ));
        }
    }
    Ok(())
}

fn hostgw(h: &HostgwTunnel) -> Result<(), ProfileError> {
    for (i, name) in h.forward.iter().enumerate() {
        ifname::check(name).map_err(|problem| {
            ProfileError::new(format!("forward[{i}]"), format!("`{name}` {problem}"), "name an existing interface")
        })?;
    }
    peer_count(h.peers.len())?;
    allowed_ips(h.peers.iter().map(|p| p.subnets.as_slice()))?;
    let mut seen = HashSet::new();
    for (i, peer) in h.peers.iter().enumerate() {
        if !usable_host(peer.via) || !seen.insert(peer.via) {
            return Err(ProfileError::new(
                format!("peer[{i}].via"),
                format!("{} is not a distinct unicast host address", peer.via),
                "set `via` to the peer host's address on the segment you share",
            ));
        }
        if peer.subnets.is_empty() {
            return Err(ProfileError::new(
                format!("peer[{i}].subnets"),
                "is empty",
                "list the networks behind the peer host, such as subnets = [\"10.244.2.0/24\"]",
            ));
        }
        if let Some(net) = peer.subnets.iter().find(|n| n.contains(&peer.via)) {
            return Err(ProfileError::new(
                format!("peer[{i}].subnets"),
                format!("{net} contains the peer's own address {}", peer.via),
                "list only the networks behind the peer",
            ));
        }
    }
    Ok(())
}

/// The largest VXLAN network identifier: it is 24 bits.
pub const MAX_VNI: u32 = 0x00ff_ffff;

fn vxlan(p: &Profile, v: &VxlanTunnel) -> Result<(), ProfileError> {
    interface(p, v.interface.as_deref())?;
    if !(1..=MAX_VNI).contains(&v.vni) {
        return Err(ProfileError::new("vni", format!("{} is out of range", v.vni), "set `vni` between 1 and 16777215"));
    }
    if v.port == Some(0) {
        return Err(ProfileError::new("port", "is 0", "leave `port` out for 4789, or set the peers' UDP port"));
    }
    if !usable_host(v.local) {
        return Err(ProfileError::new(
            "local",
            format!("{} is not a unicast address", v.local),
            "set `local` to this host's underlay address, such as \"172.31.0.1\"",
        ));
    }
    if let Some(dev) = &v.underlay {
        ifname::check(dev).map_err(|problem| {
            ProfileError::new(
                "underlay",
                format!("`{dev}` {problem}"),
                "set `underlay` to the device that holds `local`",
            )
        })?;
    }
    for (field, name) in v
        .bridge
        .iter()
        .map(|b| ("bridge".to_string(), b))
        .chain(v.forward.iter().enumerate().map(|(i, f)| (format!("forward[{i}]"), f)))
    {
        ifname::check(name)
            .map_err(|problem| ProfileError::new(field, format!("`{name}` {problem}"), "name an existing interface"))?;
    }
    if let Some(mac) = v.mac.filter(|m| !m.is_unicast()) {
        return Err(ProfileError::new("mac", format!("{mac} is not a unicast MAC"), "leave `mac` out to derive one"));
    }
    if !v.address.is_empty() {
        addresses(&v.address)?;
    }
    mtu(v.mtu, &v.address)?;
    peer_count(v.peers.len())?;
    allowed_ips(v.peers.iter().map(|p| p.subnets.as_slice()))?;
    let own_mac = v.own_mac();
    let mut vteps = HashSet::new();
    for (i, peer) in v.peers.iter().enumerate() {
        if !usable_host(peer.vtep) || peer.vtep == v.local {
            return Err(ProfileError::new(
                format!("peer[{i}].vtep"),
                format!("{} is not another host's underlay address", peer.vtep),
                "set `vtep` to the peer's underlay address",
            ));
        }
        if peer.vtep.is_ipv4() != v.local.is_ipv4() {
            return Err(ProfileError::new(
                format!("peer[{i}].vtep"),
                format!("{} and local {} are of different families", peer.vtep, v.local),
                "use IPv4 or IPv6 underlay addresses throughout",
            ));
        }
        if !vteps.insert(peer.vtep) {
            return Err(ProfileError::new(
                format!("peer[{i}].vtep"),
                format!("{} is listed twice", peer.vtep),
                "merge the two peers into one",
            ));
        }
        let mac = v.peer_mac(peer);
        if !mac.is_unicast() || mac == own_mac {
            return Err(ProfileError::new(
                format!("peer[{i}].mac"),
                format!("{mac} is not a unicast MAC distinct from this VTEP's"),
                "give the peer's own VTEP MAC (`culvert vxlan-mac` prints the derived one)",
            ));
        }
        if !peer.subnets.is_empty() && peer.gateway.is_none() {
            return Err(ProfileError::new(
                format!("peer[{i}].gateway"),
                "is missing, but the peer has subnets",
                "set `gateway` to the peer's overlay address, the next hop for its subnets",
            ));
        }
        if let Some(gw) = peer.gateway.filter(|g| !usable_host(*g)) {
            return Err(ProfileError::new(
                format!("peer[{i}].gateway"),
                format!("{gw} is not a unicast address"),
                "set the peer's overlay address",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Profile, Tunnel, UdpPeer, UdpTunnel};

    fn lab() -> Profile {
        Profile {
            name: "lab".into(),
            tunnel: Tunnel::Udp(UdpTunnel {
                interface: None,
                address: vec!["10.9.0.1/24".parse().unwrap()],
                listen_port: 8285,
                mtu: Some(1400),
                peers: vec![UdpPeer {
                    endpoint: "172.31.0.2:8285".parse().unwrap(),
                    allowed_ips: vec!["10.9.0.0/24".parse().unwrap()],
                }],
            }),
        }
    }

    fn udp(p: &mut Profile) -> &mut UdpTunnel {
        let Tunnel::Udp(u) = &mut p.tunnel else { panic!("not udp") };
        u
    }

    fn field_of(p: &Profile) -> String {
        p.validate().expect_err("profile should be refused").field
    }

    #[test]
    fn a_plain_lab_profile_is_valid() {
        lab().validate().unwrap();
    }

    #[test]
    fn long_name_needs_an_interface() {
        let mut p = lab();
        p.name = "a-very-long-tunnel-name".into();
        let e = p.validate().unwrap_err();
        assert_eq!(e.field, "interface");
        assert!(e.fix.contains("set `interface`"), "{e}");
        udp(&mut p).interface = Some("cv-long".into());
        p.validate().unwrap();
    }

    #[test]
    fn names_that_could_escape_the_state_directory_are_refused() {
        for bad in ["", "../x", ".hidden", "a/b", "a b"] {
            let mut p = lab();
            p.name = bad.into();
            assert_eq!(field_of(&p), "name", "{bad:?}");
        }
    }

    #[test]
    fn each_rule_names_its_field() {
        type Breaker = Box<dyn Fn(&mut UdpTunnel)>;
        let cases: Vec<(&str, Breaker)> = vec![
            ("interface", Box::new(|u| u.interface = Some("has space".into()))),
            ("address", Box::new(|u| u.address.clear())),
            ("address[0]", Box::new(|u| u.address[0] = "0.0.0.0/8".parse().unwrap())),
            ("address[1]", Box::new(|u| u.address.push("10.9.0.1/16".parse().unwrap()))),
            ("listen_port", Box::new(|u| u.listen_port = 0)),
            ("mtu", Box::new(|u| u.mtu = Some(100))),
            ("peer", Box::new(|u| u.peers.clear())),
            ("peer[0].endpoint", Box::new(|u| u.peers[0].endpoint = "0.0.0.0:1".parse().unwrap())),
            ("peer[0].allowed_ips", Box::new(|u| u.peers[0].allowed_ips.clear())),
            ("peer[0].allowed_ips[0]", Box::new(|u| u.peers[0].allowed_ips[0] = "10.9.0.1/24".parse().unwrap())),
            ("peer[0].allowed_ips[0]", Box::new(|u| u.peers[0].allowed_ips[0] = "172.31.0.0/16".parse().unwrap())),
        ];
        for (field, break_it) in cases {
            let mut p = lab();
            break_it(udp(&mut p));
            assert_eq!(field_of(&p), field);
        }
    }

    #[test]
    fn ipv6_needs_mtu_1280() {
        let mut p = lab();
        udp(&mut p).address.push("fd00:9::1/64".parse().unwrap());
        udp(&mut p).mtu = Some(1200);
        let e = p.validate().unwrap_err();
        assert!(e.problem.contains("IPv6"), "{e}");
    }

    #[test]
    fn a_prefix_given_to_two_peers_is_refused() {
        let mut p = lab();
        let second =
            UdpPeer { endpoint: "172.31.0.3:8285".parse().unwrap(), allowed_ips: vec!["10.9.0.0/24".parse().unwrap()] };
        udp(&mut p).peers.push(second);
        assert_eq!(field_of(&p), "peer[1].allowed_ips[0]");
    }
}
