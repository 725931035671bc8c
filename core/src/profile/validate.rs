//! The rules every profile must meet, shared by clients and the helper.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ipnet::IpNet;

use super::{
    Endpoint, HostgwTunnel, MAX_ADDRESSES, MAX_DNS, MAX_NAME_LEN, MAX_PEERS, MAX_PREFIXES, MAX_PREFIXES_PER_PEER,
    OVERLAY_SUBNET_DIRS, OverlayTunnel, Profile, ProfileError, Table, TapTunnel, Tunnel, UdpTunnel, VxlanTunnel,
    WireguardTunnel,
};
use crate::ifname;

pub(super) fn profile(p: &Profile) -> Result<(), ProfileError> {
    checked(p, false)
}

/// The rules for the vxlan or host-gw tunnel an overlay makes of its network, whose peers come and go with the
/// other hosts: it may have none.
pub(super) fn overlay_backend(p: &Profile) -> Result<(), ProfileError> {
    checked(p, true)
}

fn checked(p: &Profile, peers_may_be_none: bool) -> Result<(), ProfileError> {
    name(&p.name)?;
    match &p.tunnel {
        Tunnel::Udp(u) => udp(p, u, peers_may_be_none),
        Tunnel::Wireguard(w) => wireguard(p, w, peers_may_be_none),
        Tunnel::Vxlan(v) => vxlan(p, v, peers_may_be_none),
        Tunnel::Hostgw(h) => hostgw(h, peers_may_be_none),
        Tunnel::Tap(t) => tap(p, t),
        Tunnel::Overlay(o) => overlay(p, o),
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
    if addresses.len() > MAX_ADDRESSES {
        return Err(ProfileError::new(
            "address",
            format!("{} addresses is more than the {MAX_ADDRESSES} allowed", addresses.len()),
            "give the tunnel fewer addresses, with wider prefixes",
        ));
    }
    let mut seen = HashSet::new();
    for (i, a) in addresses.iter().enumerate() {
        let field = format!("address[{i}]");
        if a.prefix_len() == 0 {
            return Err(ProfileError::new(
                field,
                format!("{a} would make every address reachable through the tunnel's link"),
                "give the address its network's prefix length, such as 10.9.0.1/24",
            ));
        }
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

/// An endpoint a tunnel can send to: a unicast address and a port, and not the tunnel's own socket on loopback
/// (the helper checks the host's other addresses). Loopback with another port stays allowed: a local UDP proxy
/// is a real setup.
fn endpoint(field: String, ep: SocketAddr, listen_port: Option<u16>, example: &str) -> Result<(), ProfileError> {
    let ip = ep.ip().to_canonical();
    if ep.port() == 0 || ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
        return Err(ProfileError::new(
            field,
            format!("{ep} cannot be sent to: it is not one host's address and port"),
            format!("set the peer's unicast address and UDP port, such as \"{example}\""),
        ));
    }
    if ip.is_loopback() && Some(ep.port()) == listen_port {
        return Err(ProfileError::new(
            field,
            format!("{ep} is this tunnel's own socket: it would send to itself"),
            "set the peer's address, or a local proxy's port",
        ));
    }
    Ok(())
}

/// No address of the tunnel may be a peer's endpoint, nor hold one in its prefix: the connected route of that
/// prefix would send the tunnel's own datagrams into the tunnel.
fn addresses_leave_out(
    addresses: &[IpNet],
    endpoints: impl Iterator<Item = (String, IpAddr)>,
) -> Result<(), ProfileError> {
    for (field, ep) in endpoints {
        let ep = ep.to_canonical();
        if let Some((i, a)) = addresses.iter().enumerate().find(|(_, a)| a.contains(&ep)) {
            let what = if a.addr() == ep { "is" } else { "holds" };
            return Err(ProfileError::new(
                format!("address[{i}]"),
                format!("{a} {what} the {field} {ep}, which would route the tunnel into itself"),
                "give the tunnel an address on a network of its own, apart from the peers' underlay addresses",
            ));
        }
    }
    Ok(())
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

fn udp(p: &Profile, u: &UdpTunnel, peers_may_be_none: bool) -> Result<(), ProfileError> {
    interface(p, u.interface.as_deref())?;
    addresses(&u.address)?;
    listen_port(u.listen_port)?;
    mtu(u.mtu, &u.address)?;
    if !(peers_may_be_none && u.peers.is_empty()) {
        peer_count(u.peers.len())?;
    }
    allowed_ips("allowed_ips", u.peers.iter().map(|p| p.allowed_ips.as_slice()))?;
    let mut endpoints = HashSet::new();
    for (i, peer) in u.peers.iter().enumerate() {
        let ep = peer.endpoint;
        let field = format!("peer[{i}].endpoint");
        endpoint(field.clone(), ep, Some(u.listen_port), "172.31.0.2:8285")?;
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
    addresses_leave_out(
        &u.address,
        u.peers.iter().enumerate().map(|(i, p)| (format!("endpoint of peer[{i}]"), p.endpoint.ip())),
    )
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

/// Each prefix (of the peers' `key`: allowed_ips or subnets) given to one peer only, written as a network, and
/// no more of them than the helper takes.
fn allowed_ips<'a>(key: &str, peers: impl Iterator<Item = &'a [IpNet]>) -> Result<(), ProfileError> {
    let mut seen = HashSet::new();
    for (i, nets) in peers.enumerate() {
        if nets.len() > MAX_PREFIXES_PER_PEER {
            return Err(ProfileError::new(
                format!("peer[{i}].{key}"),
                format!("{} prefixes is more than the {MAX_PREFIXES_PER_PEER} one peer may have", nets.len()),
                "merge adjacent prefixes",
            ));
        }
        for (j, net) in nets.iter().enumerate() {
            let field = format!("peer[{i}].{key}[{j}]");
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
            format!("{} {key} entries is more than the {MAX_PREFIXES} allowed", seen.len()),
            "merge adjacent prefixes",
        ));
    }
    Ok(())
}

fn wireguard(p: &Profile, w: &WireguardTunnel, peers_may_be_none: bool) -> Result<(), ProfileError> {
    interface(p, w.interface.as_deref())?;
    addresses(&w.address)?;
    mtu(w.mtu, &w.address)?;
    if !(peers_may_be_none && w.peers.is_empty()) {
        peer_count(w.peers.len())?;
    }
    allowed_ips("allowed_ips", w.peers.iter().map(|p| p.allowed_ips.as_slice()))?;
    if let Table::Id(id @ (0 | 255)) = w.table {
        return Err(ProfileError::new(
            "table",
            format!("{id} is not a routing table routes can be added to"),
            "set it to auto, off, or a table number such as 51820",
        ));
    }
    for (field, on) in [("kill_switch", w.kill_switch), ("allow_lan", w.allow_lan)] {
        if on && !w.is_full() {
            return Err(ProfileError::new(
                field,
                "needs a full tunnel: without a default route through it, the traffic the tunnel does not carry \
                 leaves around it by design",
                "give a peer allowed_ips = [\"0.0.0.0/0\"] (and \"::/0\" for IPv6) with table = auto, or remove it",
            ));
        }
    }
    if w.dns.len() > MAX_DNS || w.dns_search.len() > MAX_DNS {
        return Err(ProfileError::new(
            "dns",
            format!("more than {MAX_DNS} DNS servers or search domains"),
            "list fewer; resolvers use only the first few",
        ));
    }
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
        if !w.private_key.agrees_with(&peer.public_key) {
            return Err(ProfileError::new(
                format!("peer[{i}].public_key"),
                format!(
                    "{} is a point of small order: the keys of a session with it would be known to all",
                    peer.public_key
                ),
                "set the peer's real public key (the output of `culvert pubkey` or `wg pubkey` on its side)",
            ));
        }
        let Some(Endpoint::Addr(ep)) = &peer.endpoint else { continue };
        endpoint(format!("peer[{i}].endpoint"), *ep, w.listen_port, "203.0.113.5:51820")?;
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
    let literal = w.peers.iter().enumerate().filter_map(|(i, p)| match &p.endpoint {
        Some(Endpoint::Addr(ep)) => Some((format!("endpoint of peer[{i}]"), ep.ip())),
        _ => None,
    });
    addresses_leave_out(&w.address, literal)?;
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
    allowed_ips("allowed_ips", t.peers.iter().map(|p| p.allowed_ips.as_slice()))?;
    let mut endpoints = HashSet::new();
    for (i, peer) in t.peers.iter().enumerate() {
        let ep = peer.endpoint;
        endpoint(format!("peer[{i}].endpoint"), ep, Some(t.listen_port), "172.31.0.2:8285")?;
        if !endpoints.insert(ep) {
            return Err(ProfileError::new(
                format!("peer[{i}].endpoint"),
                format!("{ep} is the endpoint of an earlier peer too"),
                "set each peer's own address and UDP port, such as \"172.31.0.2:8285\"",
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
    addresses_leave_out(
        &t.address,
        t.peers.iter().enumerate().map(|(i, p)| (format!("endpoint of peer[{i}]"), p.endpoint.ip())),
    )
}

fn hostgw(h: &HostgwTunnel, peers_may_be_none: bool) -> Result<(), ProfileError> {
    forward(&h.forward)?;
    for (i, name) in h.forward.iter().enumerate() {
        ifname::check(name).map_err(|problem| {
            ProfileError::new(format!("forward[{i}]"), format!("`{name}` {problem}"), "name an existing interface")
        })?;
    }
    if !(peers_may_be_none && h.peers.is_empty()) {
        peer_count(h.peers.len())?;
    }
    allowed_ips("subnets", h.peers.iter().map(|p| p.subnets.as_slice()))?;
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
        // A next hop inside a subnet routed via a next hop can never be reached.
        for (k, other) in h.peers.iter().enumerate() {
            if let Some(net) = peer.subnets.iter().find(|n| n.contains(&other.via)) {
                let whose = if k == i { "the peer's own address".to_owned() } else { format!("peer[{k}].via") };
                return Err(ProfileError::new(
                    format!("peer[{i}].subnets"),
                    format!("{net} contains {whose} {}", other.via),
                    "list only the networks behind the peer",
                ));
            }
        }
    }
    Ok(())
}

/// Interfaces to forward between, at most as many as a host has bridges for pods.
fn forward(names: &[String]) -> Result<(), ProfileError> {
    const MAX_FORWARD: usize = 64;
    if names.len() > MAX_FORWARD {
        return Err(ProfileError::new(
            "forward",
            format!("{} interfaces is more than the {MAX_FORWARD} allowed", names.len()),
            "list the interfaces the host's pods sit behind",
        ));
    }
    Ok(())
}

/// The largest VXLAN network identifier: it is 24 bits.
pub const MAX_VNI: u32 = 0x00ff_ffff;

fn vxlan(p: &Profile, v: &VxlanTunnel, peers_may_be_none: bool) -> Result<(), ProfileError> {
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
        if dev == "lo" {
            return Err(ProfileError::new(
                "underlay",
                "`lo` is the loopback device: VXLAN packets sent there never leave the host",
                "set `underlay` to the device that reaches the peers, or leave it out to find it from `local`",
            ));
        }
    }
    forward(&v.forward)?;
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
    if !(peers_may_be_none && v.peers.is_empty()) {
        peer_count(v.peers.len())?;
    }
    allowed_ips("subnets", v.peers.iter().map(|p| p.subnets.as_slice()))?;
    addresses_leave_out(&v.address, v.peers.iter().enumerate().map(|(i, p)| (format!("vtep of peer[{i}]"), p.vtep)))?;
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
        if !peer.subnets.is_empty() && peer.gateway.is_none() && !peer.direct {
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

/// etcd endpoints a profile may name: enough for any cluster, few enough to try in turn.
pub const MAX_ETCD_ENDPOINTS: usize = 16;

fn overlay(p: &Profile, o: &OverlayTunnel) -> Result<(), ProfileError> {
    interface(p, o.interface.as_deref())?;
    if o.etcd.is_empty() || o.etcd.len() > MAX_ETCD_ENDPOINTS {
        return Err(ProfileError::new(
            "etcd",
            format!("names {} endpoints", o.etcd.len()),
            format!("list 1 to {MAX_ETCD_ENDPOINTS} of etcd's client URLs, as etcd = [\"http://10.99.0.10:2379\"]"),
        ));
    }
    for (i, url) in o.etcd.iter().enumerate() {
        etcd_url(url).map_err(|why| {
            ProfileError::new(format!("etcd[{i}]"), format!("`{url}` {why}"), "write it as http://10.99.0.10:2379")
        })?;
    }
    etcd_security(o)?;
    let plain = |c: char| c.is_ascii_graphic() && c != '\\';
    if !o.prefix.starts_with('/') || o.prefix.len() < 2 || o.prefix.ends_with('/') || !o.prefix.chars().all(plain) {
        return Err(ProfileError::new(
            "prefix",
            format!("`{}` is not an etcd key prefix", o.prefix),
            "write it as flannel's \"/coreos.com/network\": a leading slash, no trailing one, no spaces",
        ));
    }
    if o.prefix.len() > 256 {
        return Err(ProfileError::new("prefix", "is longer than 256 characters", "use a shorter prefix"));
    }
    if let Some(ip) = o.public_ip.filter(|ip| !usable_host(*ip)) {
        return Err(ProfileError::new(
            "public_ip",
            format!("{ip} is not a unicast address"),
            "set it to this host's address that the other hosts reach, or leave it out",
        ));
    }
    if let Some(file) = &o.subnet_file {
        subnet_file(file)?;
    }
    if !(10..=30 * 24 * 3600).contains(&o.lease_ttl) {
        return Err(ProfileError::new(
            "lease_ttl",
            format!("{} s is outside 10 s to 30 days", o.lease_ttl),
            "leave it out for flannel's 24h",
        ));
    }
    if o.lease_renew_margin == 0 || o.lease_renew_margin >= o.lease_ttl {
        return Err(ProfileError::new(
            "lease_renew_margin",
            format!("{} s is not between 0 and the lease's {} s", o.lease_renew_margin, o.lease_ttl),
            "make it shorter than lease_ttl, or leave both out for flannel's 24h and 1h",
        ));
    }
    Ok(())
}

/// TLS only on https:// endpoints and always with the CA; a certificate with its key; a user with a password.
fn etcd_security(o: &OverlayTunnel) -> Result<(), ProfileError> {
    let https = o.etcd.iter().filter(|u| u.starts_with("https://")).count();
    if https != 0 && https != o.etcd.len() {
        return Err(ProfileError::new(
            "etcd",
            "mixes http:// and https:// endpoints",
            "list the members of one etcd cluster, all of them with the same scheme",
        ));
    }
    if https > 0 && o.etcd_ca.is_none() {
        return Err(ProfileError::new(
            "etcd_ca",
            "is missing, and https:// endpoints need it",
            "set etcd_ca to the CA file that signed etcd's certificate, such as etcd_ca = \"ca.pem\"",
        ));
    }
    let files = [("etcd_ca", &o.etcd_ca), ("etcd_cert", &o.etcd_cert), ("etcd_key", &o.etcd_key)];
    for (field, file) in files {
        let Some(file) = file else { continue };
        if https == 0 {
            return Err(ProfileError::new(field, "is only for https:// endpoints", "write etcd's URLs as https://"));
        }
        if file.path.is_empty() || file.path.len() > 4096 || file.path.contains('\0') {
            return Err(ProfileError::new(field, "is not a file name", "name the PEM file, such as \"ca.pem\""));
        }
        if file.pem.len() > super::MAX_PEM {
            return Err(ProfileError::new(
                field,
                format!("{} is larger than {} KiB", file.path, super::MAX_PEM / 1024),
                "name the PEM file itself, not a bundle of everything",
            ));
        }
    }
    if o.etcd_cert.is_some() != o.etcd_key.is_some() {
        let missing = if o.etcd_cert.is_some() { "etcd_key" } else { "etcd_cert" };
        return Err(ProfileError::new(
            missing,
            "is missing: a client certificate goes with its key",
            "set both etcd_cert and etcd_key, or neither",
        ));
    }
    match (&o.etcd_username, &o.etcd_password) {
        (Some(user), Some(password)) => {
            if user.is_empty() || user.len() > 128 || user.chars().any(char::is_control) {
                return Err(ProfileError::new(
                    "etcd_username",
                    "is not a user name",
                    "give etcd's user, such as \"node1\"",
                ));
            }
            if password.expose().is_empty() || password.expose().len() > 1024 {
                return Err(ProfileError::new("etcd_password", "must be 1 to 1024 bytes", "give the user's password"));
            }
        }
        (None, None) => {}
        (Some(_), None) => {
            return Err(ProfileError::new("etcd_password", "is missing", "give etcd_username's password, or neither"));
        }
        (None, Some(_)) => {
            return Err(ProfileError::new(
                "etcd_username",
                "is missing",
                "give the user etcd_password is for, or neither",
            ));
        }
    }
    Ok(())
}

fn etcd_url(url: &str) -> Result<(), &'static str> {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")).ok_or("is not an http:// URL")?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = authority.rsplit_once(':').ok_or("has no port")?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u16>().is_err() {
        return Err("has no valid port");
    }
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    if host.is_empty() || !(host.parse::<IpAddr>().is_ok() || host.chars().all(name_char)) {
        return Err("has no valid host");
    }
    Ok(())
}

fn subnet_file(file: &str) -> Result<(), ProfileError> {
    let inside = OVERLAY_SUBNET_DIRS.iter().any(|dir| {
        file.strip_prefix(dir).is_some_and(|name| !name.is_empty() && !name.contains('/') && !name.starts_with('.'))
    });
    if !inside {
        return Err(ProfileError::new(
            "subnet_file",
            format!("`{file}` is not a file directly in /run/flannel/ or /run/culvert/"),
            "leave it out for /run/flannel/subnet.env, name a file in one of those directories, or set \"\" for none",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Profile, ProfileError, Tunnel, UdpPeer, UdpTunnel};
    use ipnet::IpNet;
    use std::net::IpAddr;

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

    fn parse(kind_text: &str) -> Result<Profile, crate::profile::FileProblem> {
        crate::profile::parse_toml("t", kind_text)
    }

    fn refused(text: &str) -> ProfileError {
        match parse(text) {
            Err(crate::profile::FileProblem::Field(e)) => e,
            other => panic!("{text}\nshould be refused by the validator: {other:?}"),
        }
    }

    const UDP: &str = "kind = \"udp\"\naddress = [\"10.9.0.1/24\"]\nlisten_port = 8285\n[[peer]]\n\
                       endpoint = \"172.31.0.2:8285\"\nallowed_ips = [\"10.9.0.0/24\"]\n";

    /// Profiles the helper once took and must not (the hardening issue), each refused by the one validator that
    /// files and requests share, naming the field.
    #[test]
    fn addresses_and_endpoints_that_loop_or_cannot_be_sent_to_are_refused() {
        let cases = [
            ("10.9.0.1/24", "0.0.0.0/0", "address[0]"),
            ("\"172.31.0.2:8285\"", "\"255.255.255.255:8285\"", "peer[0].endpoint"),
            ("\"172.31.0.2:8285\"", "\"224.0.0.1:8285\"", "peer[0].endpoint"),
            ("\"172.31.0.2:8285\"", "\"127.0.0.1:8285\"", "peer[0].endpoint"),
            ("10.9.0.1/24", "172.31.0.2/32", "address[0]"),
            ("10.9.0.1/24", "172.31.0.1/24", "address[0]"),
        ];
        for (from, to, field) in cases {
            let e = refused(&UDP.replace(from, to));
            assert_eq!(e.field, field, "{to}: {e}");
        }
        // A local proxy on another port of loopback is a real setup.
        parse(&UDP.replace("172.31.0.2:8285", "127.0.0.1:9000")).unwrap();
        let e = refused(&UDP.replace("10.9.0.1/24", "172.31.0.1/24"));
        assert!(e.problem.contains("holds") && e.problem.contains("172.31.0.2"), "{e}");
    }

    #[test]
    fn a_kill_switch_is_only_for_full_tunnels() {
        let wg = |extra: &str, allowed: &str| {
            format!(
                "kind = \"wireguard\"\nprivate_key = \"yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\"\n\
                 address = [\"10.8.0.1/24\"]\n{extra}\n[[peer]]\npublic_key = \"xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\"\n\
                 allowed_ips = [{allowed}]\nendpoint = \"172.31.0.2:51820\"\n"
            )
        };
        let full = parse(&wg("kill_switch = true\nallow_lan = true", "\"0.0.0.0/0\"")).unwrap();
        assert!(full.kill_switch());
        let Tunnel::Wireguard(w) = &full.tunnel else { panic!() };
        assert!(w.allow_lan && w.is_full());
        parse(&wg("kill_switch = true", "\"::/0\", \"10.9.0.0/16\"")).unwrap();
        for (extra, allowed, field) in [
            ("kill_switch = true", "\"10.8.0.2/32\"", "kill_switch"),
            ("allow_lan = true", "\"10.8.0.2/32\"", "allow_lan"),
            ("kill_switch = true\ntable = 1234", "\"0.0.0.0/0\"", "kill_switch"),
            ("kill_switch = true\ntable = \"off\"", "\"0.0.0.0/0\"", "kill_switch"),
        ] {
            let e = refused(&wg(extra, allowed));
            assert_eq!(e.field, field, "{extra}: {e}");
            assert!(e.problem.contains("full tunnel") && e.fix.contains("0.0.0.0/0"), "{e}");
        }
    }

    #[test]
    fn wireguard_tables_and_small_order_keys_are_refused() {
        let wg = |extra: &str, key: &str| {
            format!(
                "kind = \"wireguard\"\nprivate_key = \"yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\"\n\
                 address = [\"10.8.0.1/24\"]\n{extra}\n[[peer]]\npublic_key = \"{key}\"\nallowed_ips = [\"10.8.0.2/32\"]\n"
            )
        };
        let good = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
        parse(&wg("table = 1234", good)).unwrap();
        for table in ["table = 0", "table = 255"] {
            assert_eq!(refused(&wg(table, good)).field, "table", "{table}");
        }
        // The same rule holds for a profile that never was a file (an IPC request).
        let mut p = parse(&wg("", good)).unwrap();
        let Tunnel::Wireguard(w) = &mut p.tunnel else { panic!() };
        w.table = crate::profile::Table::Id(255);
        assert_eq!(p.validate().unwrap_err().field, "table");
        // The all-zero key and another point of small order (order 8, from the curve's torsion subgroup).
        for small in ["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "4Ot6fDtBuK4WVuP68Z/EatoJjeucMrH9hmIFFl9JuAA="] {
            let e = refused(&wg("", small));
            assert_eq!(e.field, "peer[0].public_key", "{small}");
            assert!(e.problem.contains("small order"), "{e}");
        }
    }

    #[test]
    fn overlay_rules_name_subnets_and_refuse_loopback_and_unreachable_hops() {
        let hostgw = "kind = \"hostgw\"\n[[peer]]\nvia = \"172.31.0.2\"\nsubnets = [\"10.244.2.1/24\"]\n";
        let e = refused(hostgw);
        assert_eq!(e.field, "peer[0].subnets[0]");
        let two = "kind = \"hostgw\"\n[[peer]]\nvia = \"172.31.0.2\"\nsubnets = [\"10.244.2.0/24\"]\n\
                   [[peer]]\nvia = \"10.244.2.7\"\nsubnets = [\"10.244.3.0/24\"]\n";
        let e = refused(two);
        assert!(e.field == "peer[0].subnets" && e.problem.contains("peer[1].via"), "{e}");
        let vxlan =
            "kind = \"vxlan\"\nvni = 42\nlocal = \"172.31.0.1\"\nunderlay = \"lo\"\n[[peer]]\nvtep = \"172.31.0.2\"\n";
        assert_eq!(refused(vxlan).field, "underlay");
        let vx_bits = vxlan.replace("underlay = \"lo\"\n", "").replace(
            "vtep = \"172.31.0.2\"\n",
            "vtep = \"172.31.0.2\"\ngateway = \"10.244.2.0\"\nsubnets = [\"10.244.2.1/24\"]\n",
        );
        let e = refused(&vx_bits);
        assert_eq!(e.field, "peer[0].subnets[0]", "{e}");
    }

    #[test]
    fn sizes_are_bounded_with_the_limit_in_the_error() {
        let mut p = lab();
        udp(&mut p).address = (0..300u32)
            .map(|i| IpNet::new(IpAddr::from(std::net::Ipv4Addr::from_bits((10u32 << 24) + i + 1)), 32).unwrap())
            .collect();
        let e = p.validate().unwrap_err();
        assert!(e.field == "address" && e.problem.contains("256"), "{e}");
        let mut p = lab();
        udp(&mut p).peers[0].allowed_ips = (0..1100u32)
            .map(|i| IpNet::new(IpAddr::from(std::net::Ipv4Addr::from_bits((11u32 << 24) + (i << 8))), 24).unwrap())
            .collect();
        let e = p.validate().unwrap_err();
        assert!(e.field == "peer[0].allowed_ips" && e.problem.contains("1024"), "{e}");
    }

    #[test]
    fn an_overlay_profile_takes_flannels_defaults_and_reads_back_as_written() {
        let p = parse("kind = \"overlay\"\netcd = [\"http://10.99.0.10:2379\"]\n").unwrap();
        let Tunnel::Overlay(o) = &p.tunnel else { panic!("{p:?}") };
        assert_eq!(o.prefix, "/coreos.com/network");
        assert_eq!(o.subnet_file.as_deref(), Some("/run/flannel/subnet.env"));
        assert_eq!((o.lease_ttl, o.lease_renew_margin), (86_400, 3_600));
        let text = "kind = \"overlay\"\netcd = [\"http://[fd00::1]:2379\"]\nprefix = \"/lab/net\"\n\
                    public_ip = \"172.31.0.1\"\nsubnet_file = \"\"\nlease_ttl = \"90m\"\n\
                    lease_renew_margin = \"30s\"\n";
        let p = parse(text).unwrap();
        let Tunnel::Overlay(o) = &p.tunnel else { panic!("{p:?}") };
        assert_eq!((o.subnet_file.as_deref(), o.lease_ttl, o.lease_renew_margin), (None, 5400, 30));
        let again = parse(&super::super::Draft::from(&p).to_toml()).unwrap();
        assert_eq!(again, p);
    }

    #[test]
    fn an_overlay_profile_that_is_wrong_names_the_key() {
        let base = "kind = \"overlay\"\netcd = [\"http://10.99.0.10:2379\"]\n";
        for (extra, field, says) in [
            ("subnet_file = \"/etc/passwd\"\n", "subnet_file", "/run/flannel/"),
            ("subnet_file = \"/run/flannel/../x\"\n", "subnet_file", "not a file directly"),
            ("lease_ttl = \"5s\"\n", "lease_ttl", "outside"),
            ("lease_ttl = \"1d\"\n", "lease_ttl", "not a duration"),
            ("lease_ttl = \"60s\"\nlease_renew_margin = \"1h\"\n", "lease_renew_margin", "between"),
            ("prefix = \"coreos.com\"\n", "prefix", "not an etcd key prefix"),
            ("public_ip = \"224.0.0.1\"\n", "public_ip", "unicast"),
        ] {
            let e = refused(&format!("{base}{extra}"));
            assert!(e.field == field && e.problem.contains(says), "{extra}: {e}");
        }
        for (url, says) in [("10.99.0.10:2379", "not an http"), ("http://10.99.0.10", "no port")] {
            let e = refused(&format!("kind = \"overlay\"\netcd = [\"{url}\"]\n"));
            assert!(e.field == "etcd[0]" && e.problem.contains(says), "{url}: {e}");
        }
        let tls = "kind = \"overlay\"\netcd = [\"https://10.99.0.10:2379\"]\n";
        for (text, field, says) in [
            (tls.to_owned(), "etcd_ca", "https:// endpoints need it"),
            (format!("{base}etcd_ca = \"ca.pem\"\n"), "etcd_ca", "only for https://"),
            (format!("{tls}etcd_ca = \"ca.pem\"\netcd_cert = \"n.pem\"\n"), "etcd_key", "goes with its key"),
            ("kind = \"overlay\"\netcd = [\"https://a:1\", \"http://b:1\"]\n".to_owned(), "etcd", "mixes"),
            (format!("{base}etcd_username = \"node1\"\n"), "etcd_password", "missing"),
            (format!("{base}etcd_password = \"x\"\n"), "etcd_username", "missing"),
        ] {
            let e = refused(&text);
            assert!(e.field == field && e.problem.contains(says), "{text}: {e}");
        }
        let good = format!("{tls}etcd_ca = \"ca.pem\"\netcd_cert = \"n.pem\"\netcd_key = \"n-key.pem\"\n");
        let p = crate::profile::parse_toml("ov", &format!("{good}etcd_username = \"node1\"\netcd_password = \"pw\"\n"));
        let p = p.unwrap();
        assert!(!format!("{p:?}").contains("pw\""), "the password must not show: {p:?}");
        let e = refused("kind = \"overlay\"\n");
        assert_eq!(e.field, "etcd");
    }
}
