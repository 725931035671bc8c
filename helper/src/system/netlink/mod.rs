//! A small, idempotent facade over rtnetlink: "already exists" is success where the end state is the one asked
//! for, and "already gone" is success when removing.

use std::net::IpAddr;

use futures::StreamExt;
use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_core::{NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkInfo};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleFlags, RuleMessage};
use rtnetlink::{Handle, LinkUnspec, LinkVxlan, RouteMessageBuilder};
use serde::{Deserialize, Serialize};

/// A netlink request that failed, with the operation it was part of.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {message}")]
pub struct NetlinkError {
    pub op: String,
    pub message: String,
    /// The kernel's errno, when the kernel refused the request.
    pub errno: Option<i32>,
}

impl NetlinkError {
    fn new(op: impl Into<String>, e: &rtnetlink::Error) -> Self {
        let errno = match e {
            rtnetlink::Error::NetlinkError(m) => Some(-m.raw_code()),
            _ => None,
        };
        let message = match errno {
            Some(errno) => std::io::Error::from_raw_os_error(errno).to_string(),
            None => e.to_string(),
        };
        Self { op: op.into(), message, errno }
    }
}

/// A link as the helper needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    /// The `IFLA_INFO_KIND` ("tun", "vxlan", ...), when the link has one.
    pub kind: Option<String>,
}

/// A route in one table through one interface, optionally via a next hop (on-link: without the kernel checking
/// that the next hop is on a connected subnet, as VXLAN overlays need).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNet,
    pub index: u32,
    pub table: u32,
    pub via: Option<IpAddr>,
    pub onlink: bool,
}

/// A kernel VXLAN link to create.
#[derive(Debug, Clone)]
pub struct Vxlan {
    pub name: String,
    pub vni: u32,
    pub port: u16,
    pub local: IpAddr,
    pub underlay: u32,
    pub mac: [u8; 6],
    pub mtu: u16,
}

/// One address on a link, as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkAddress {
    pub index: u32,
    pub net: IpNet,
}

/// The main routing table.
pub const MAIN_TABLE: u32 = 254;

/// A policy routing rule that sends lookups to `table` (`ip rule add [not] [fwmark M] table T
/// [suppress_prefixlength N] pref P`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub v6: bool,
    pub priority: u32,
    pub table: u32,
    pub fwmark: Option<u32>,
    /// Matches packets *without* the mark.
    pub invert: bool,
    pub suppress_prefixlen: Option<u32>,
}

impl Rule {
    fn message(&self) -> RuleMessage {
        let mut msg = RuleMessage::default();
        msg.header.family = if self.v6 {
            netlink_packet_route::AddressFamily::Inet6
        } else {
            netlink_packet_route::AddressFamily::Inet
        };
        msg.header.table = u8::try_from(self.table).unwrap_or(0);
        // Without an explicit action the kernel accepts the rule but fails every lookup that hits it
        // (DATAPLANE.md 3.3).
        msg.header.action = RuleAction::ToTable;
        if self.invert {
            msg.header.flags |= RuleFlags::Invert;
        }
        msg.attributes.push(RuleAttribute::Table(self.table));
        msg.attributes.push(RuleAttribute::Priority(self.priority));
        if let Some(mark) = self.fwmark {
            msg.attributes.push(RuleAttribute::FwMark(mark));
        }
        if let Some(len) = self.suppress_prefixlen {
            msg.attributes.push(RuleAttribute::SuppressPrefixLen(len));
        }
        msg
    }
}

#[cfg(test)]
pub mod fake;
pub mod watch;

/// How packets to one destination leave: by which interface, from which address, through which gateway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Way {
    pub interface: Option<u32>,
    pub source: Option<IpAddr>,
    pub gateway: Option<IpAddr>,
}

/// The helper's one way to the kernel's network state and sysctls: rtnetlink, or in unit tests an in-memory
/// kernel ([`fake::FakeKernel`]) that answers the same calls.
#[derive(Debug, Clone)]
pub struct Netlink {
    handle: Handle,
    #[cfg(test)]
    fake: Option<std::sync::Arc<std::sync::Mutex<fake::FakeKernel>>>,
}

/// In unit tests, answers a call from the fake kernel when there is one.
macro_rules! or_fake {
    ($self:ident, $k:ident => $answer:expr) => {
        #[cfg(test)]
        if let Some(kernel) = &$self.fake {
            #[allow(unused_mut)]
            let mut $k = kernel.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            return $answer;
        }
    };
}

impl Netlink {
    /// Opens a netlink socket in the helper's network namespace; its connection runs as a task.
    pub fn connect() -> std::io::Result<Self> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(conn);
        Ok(Self {
            handle,
            #[cfg(test)]
            fake: None,
        })
    }

    /// A facade over the in-memory `kernel`, which the test keeps a handle on to look at and to change.
    #[cfg(test)]
    pub fn fake(kernel: fake::FakeKernel) -> (Self, std::sync::Arc<std::sync::Mutex<fake::FakeKernel>>) {
        let kernel = std::sync::Arc::new(std::sync::Mutex::new(kernel));
        // A handle with no connection behind it: never used while the fake answers.
        let (_conn, handle, _) = rtnetlink::new_connection().expect("a netlink socket");
        (Self { handle, fake: Some(kernel.clone()) }, kernel)
    }

    /// In unit tests over the fake kernel: a TUN link `name` made in it, and a guard that deletes the link when
    /// dropped (a kernel TUN goes with its last handle); `None` for the real kernel.
    #[cfg(test)]
    pub fn fake_tun(
        &self,
        name: &str,
        mtu: u16,
    ) -> Option<std::io::Result<std::sync::Arc<dyn std::any::Any + Send + Sync>>> {
        let kernel = self.fake.as_ref()?;
        Some(fake::FakeTun::create(kernel, name, mtu).map(|t| std::sync::Arc::new(t) as _))
    }

    /// Whether this is the unit tests' in-memory kernel, where nothing outside the helper (NetworkManager, the
    /// resolver) may be asked about its links.
    pub fn is_fake(&self) -> bool {
        #[cfg(test)]
        return self.fake.is_some();
        #[cfg(not(test))]
        false
    }

    /// A sysctl's value (`key` under /proc/sys).
    pub fn read_sysctl(&self, key: &str) -> std::io::Result<String> {
        or_fake!(self, k => k.read_sysctl(key));
        super::sysctl::read(key)
    }

    pub fn write_sysctl(&self, key: &str, value: &str) -> std::io::Result<()> {
        or_fake!(self, k => k.write_sysctl(key, value));
        super::sysctl::write(key, value)
    }

    pub async fn link(&self, name: &str) -> Result<Option<Link>, NetlinkError> {
        or_fake!(self, k => k.link(name));
        match self.handle.link().get().match_name(name).execute().try_next().await {
            Ok(Some(msg)) => {
                let kind = msg.attributes.iter().find_map(|a| match a {
                    LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                        LinkInfo::Kind(k) => Some(kind_name(k)),
                        _ => None,
                    }),
                    _ => None,
                });
                Ok(Some(Link { index: msg.header.index, kind }))
            }
            Ok(None) => Ok(None),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(NetlinkError::new(format!("looking up link {name}"), &e)),
        }
    }

    /// Creates a VXLAN link (down, learning off) on the underlay link `underlay`.
    pub async fn add_vxlan(&self, v: &Vxlan) -> Result<(), NetlinkError> {
        or_fake!(self, k => k.add_vxlan(v));
        let builder = LinkVxlan::new(&v.name, v.vni).dev(v.underlay).port(v.port).learning(false);
        let builder = match v.local {
            IpAddr::V4(a) => builder.local(a),
            IpAddr::V6(a) => builder.local6(a),
        };
        let msg: LinkMessage = builder.address(v.mac.to_vec()).mtu(u32::from(v.mtu)).build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(|e| NetlinkError::new(format!("creating the VXLAN link {}", v.name), &e))
    }

    pub async fn set_mac(&self, index: u32, mac: [u8; 6]) -> Result<(), NetlinkError> {
        or_fake!(self, k => k.set_mac(index, mac));
        let msg = LinkUnspec::new_with_index(index).address(mac.to_vec()).build();
        self.handle.link().set(msg).execute().await.map_err(|e| NetlinkError::new("setting the MAC address", &e))
    }

    /// The name of link `index`.
    pub async fn link_name(&self, index: u32) -> Result<Option<String>, NetlinkError> {
        or_fake!(self, k => k.link_name(index));
        let msg = match self.handle.link().get().match_index(index).execute().try_next().await {
            Ok(msg) => msg,
            Err(e) if errno(&e) == Some(libc::ENODEV) => None,
            Err(e) => return Err(NetlinkError::new("looking up a link", &e)),
        };
        Ok(msg.and_then(|m| {
            m.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(name) => Some(name.clone()),
                _ => None,
            })
        }))
    }

    /// The MTU of link `index`.
    pub async fn mtu(&self, index: u32) -> Result<Option<u32>, NetlinkError> {
        or_fake!(self, k => k.mtu(index));
        let msg = self
            .handle
            .link()
            .get()
            .match_index(index)
            .execute()
            .try_next()
            .await
            .map_err(|e| NetlinkError::new("looking up a link", &e))?;
        Ok(msg.and_then(|m| {
            m.attributes.iter().find_map(|a| match a {
                LinkAttribute::Mtu(mtu) => Some(*mtu),
                _ => None,
            })
        }))
    }

    /// Every address on every link.
    pub async fn addresses(&self) -> Result<Vec<LinkAddress>, NetlinkError> {
        or_fake!(self, k => k.addresses());
        let mut dump = self.handle.address().get().execute();
        let mut out = Vec::new();
        while let Some(msg) = dump.try_next().await.map_err(|e| NetlinkError::new("listing addresses", &e))? {
            let addr = msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            if let Some(net) = addr.and_then(|ip| IpNet::new(ip, msg.header.prefix_len).ok()) {
                out.push(LinkAddress { index: msg.header.index, net });
            }
        }
        Ok(out)
    }

    /// Makes link `index` a port of bridge `master`.
    pub async fn set_master(&self, index: u32, master: u32) -> Result<(), NetlinkError> {
        or_fake!(self, k => k.set_master(index, master));
        let msg = LinkUnspec::new_with_index(index).controller(master).build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| NetlinkError::new("attaching the link to its bridge", &e))
    }

    /// `bridge fdb replace MAC dev DEV dst IP self permanent`: where frames for MAC go.
    pub async fn add_fdb(&self, index: u32, mac: [u8; 6], dst: IpAddr) -> Result<(), NetlinkError> {
        or_fake!(self, k => k.add_fdb(index, mac, dst));
        let mut msg = fdb_message(index, mac, dst);
        msg.header.state = NeighbourState::Permanent;
        let op = format!("adding the forwarding entry for {} to {dst}", culvert_core::mac::MacAddr(mac));
        if mac == [0; 6] {
            // Several all-zero (flood) entries, one per VTEP, need NLM_F_APPEND (`bridge fdb append`), which the
            // rtnetlink builder cannot send (DATAPLANE.md 3.2).
            let mut req = NetlinkMessage::from(RouteNetlinkMessage::NewNeighbour(msg));
            req.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND;
            let mut resp = self.handle.clone().request(req).map_err(|e| NetlinkError::new(op.clone(), &e))?;
            while let Some(m) = resp.next().await {
                if let NetlinkPayload::Error(e) = m.payload
                    && e.code.is_some()
                    && -e.raw_code() != libc::EEXIST
                {
                    return Err(NetlinkError::new(op, &rtnetlink::Error::NetlinkError(e)));
                }
            }
            return Ok(());
        }
        let mut req = self.handle.neighbours().add_bridge(index, &mac).replace();
        *req.message_mut() = msg;
        req.replace().execute().await.map_err(|e| NetlinkError::new(op, &e))
    }

    pub async fn delete_fdb(&self, index: u32, mac: [u8; 6], dst: IpAddr) -> Result<(), NetlinkError> {
        or_fake!(self, k => k.delete_fdb(index, mac, dst));
        match self.handle.neighbours().del(fdb_message(index, mac, dst)).execute().await {
            Err(e) if !matches!(errno(&e), Some(libc::ENOENT | libc::ENODEV | libc::ESRCH)) => {
                Err(NetlinkError::new("deleting a forwarding entry", &e))
            }
            _ => Ok(()),
        }
    }

    /// A permanent neighbour entry: `ip neigh replace IP lladdr MAC dev DEV nud permanent`.
    pub async fn add_neighbour(&self, index: u32, ip: IpAddr, mac: [u8; 6]) -> Result<(), NetlinkError> {
        or_fake!(self, k => k.add_neighbour(index, ip, mac));
        self.handle
            .neighbours()
            .add(index, ip)
            .link_layer_address(&mac)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await
            .map_err(|e| NetlinkError::new(format!("adding the neighbour entry for {ip}"), &e))
    }

    pub async fn delete_neighbour(&self, index: u32, ip: IpAddr) -> Result<(), NetlinkError> {
        or_fake!(self, k => k.delete_neighbour(index, ip));
        let mut msg = NeighbourMessage::default();
        msg.header.family = match ip {
            IpAddr::V4(_) => netlink_packet_route::AddressFamily::Inet,
            IpAddr::V6(_) => netlink_packet_route::AddressFamily::Inet6,
        };
        msg.header.ifindex = index;
        msg.attributes.push(NeighbourAttribute::Destination(match ip {
            IpAddr::V4(a) => NeighbourAddress::Inet(a),
            IpAddr::V6(a) => NeighbourAddress::Inet6(a),
        }));
        match self.handle.neighbours().del(msg).execute().await {
            Err(e) if !matches!(errno(&e), Some(libc::ENOENT | libc::ENODEV | libc::ESRCH)) => {
                Err(NetlinkError::new(format!("deleting the neighbour entry for {ip}"), &e))
            }
            _ => Ok(()),
        }
    }

    /// Stops the kernel from giving a layer-3 link an IPv6 link-local address (IN6_ADDR_GEN_MODE_NONE): on a
    /// TUN device it would only send router solicitations that no peer routes, counted as drops the user never
    /// caused. Without IPv6 in the kernel there is nothing to stop.
    pub async fn no_link_local(&self, index: u32) -> Result<(), NetlinkError> {
        or_fake!(self, _k => Ok(()));
        use netlink_packet_route::link::{AfSpecInet6, AfSpecUnspec, In6AddrGenMode};
        let mut msg = LinkUnspec::new_with_index(index).build();
        msg.attributes.push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(
            In6AddrGenMode::None,
        )])]));
        match self.handle.link().set(msg).execute().await {
            Err(e) if matches!(errno(&e), Some(libc::EAFNOSUPPORT | libc::EOPNOTSUPP)) => Ok(()),
            other => other.map_err(|e| NetlinkError::new("turning off IPv6 link-local addressing", &e)),
        }
    }

    pub async fn set_up(&self, index: u32, mtu: u16) -> Result<(), NetlinkError> {
        or_fake!(self, k => k.set_up(index, mtu));
        let msg = LinkUnspec::new_with_index(index).mtu(u32::from(mtu)).up().build();
        self.handle.link().set(msg).execute().await.map_err(|e| NetlinkError::new("setting the link up", &e))
    }

    pub async fn delete_link(&self, index: u32) -> Result<(), NetlinkError> {
        or_fake!(self, k => k.delete_link(index));
        match self.handle.link().del(index).execute().await {
            Err(e) if errno(&e) != Some(libc::ENODEV) => Err(NetlinkError::new("deleting the link", &e)),
            _ => Ok(()),
        }
    }

    pub async fn add_address(&self, index: u32, net: IpNet) -> Result<(), NetlinkError> {
        or_fake!(self, k => k.add_address(index, net));
        match self.handle.address().add(index, net.addr(), net.prefix_len()).execute().await {
            Err(e) if errno(&e) != Some(libc::EEXIST) => Err(NetlinkError::new(format!("adding address {net}"), &e)),
            _ => Ok(()),
        }
    }

    /// Removes address `net` from link `index`; one that is not there is gone already.
    pub async fn delete_address(&self, index: u32, net: IpNet) -> Result<(), NetlinkError> {
        or_fake!(self, k => k.delete_address(index, net));
        let op = || format!("removing address {net}");
        let mut dump = self.handle.address().get().set_link_index_filter(index).execute();
        while let Some(msg) = dump.try_next().await.map_err(|e| NetlinkError::new(op(), &e))? {
            let ip = msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            if ip == Some(net.addr()) && msg.header.prefix_len == net.prefix_len() {
                return match self.handle.address().del(msg).execute().await {
                    Err(e) if !matches!(errno(&e), Some(libc::EADDRNOTAVAIL | libc::ENODEV)) => {
                        Err(NetlinkError::new(op(), &e))
                    }
                    _ => Ok(()),
                };
            }
        }
        Ok(())
    }

    /// Sets link `index`'s MTU, leaving it up or down as it is.
    pub async fn set_mtu(&self, index: u32, mtu: u16) -> Result<(), NetlinkError> {
        or_fake!(self, k => k.set_mtu(index, mtu));
        let msg = LinkUnspec::new_with_index(index).mtu(u32::from(mtu)).build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| NetlinkError::new(format!("setting the MTU to {mtu}"), &e))
    }

    /// Adds `route`. Returns `false` when an identical route through the same interface was already there
    /// (the kernel's own prefix route of an address, say), which then is not ours to remove.
    pub async fn add_route(&self, route: &Route) -> Result<bool, NetlinkError> {
        or_fake!(self, k => k.add_route(route));
        let op = || format!("adding a route to {}", route.dst);
        match self.handle.route().add(route_message(route)).execute().await {
            Ok(()) => Ok(true),
            Err(e) if errno(&e) == Some(libc::EEXIST) => {
                if self.routes_to(route.dst, route.table).await?.contains(&route.index) {
                    Ok(false)
                } else {
                    Err(NetlinkError {
                        op: op(),
                        message: "a route to it through another interface already exists".into(),
                        errno: Some(libc::EEXIST),
                    })
                }
            }
            Err(e) => Err(NetlinkError::new(op(), &e)),
        }
    }

    pub async fn delete_route(&self, route: &Route) -> Result<(), NetlinkError> {
        or_fake!(self, k => k.delete_route(route));
        match self.handle.route().del(route_message(route)).execute().await {
            Err(e) if !matches!(errno(&e), Some(libc::ESRCH | libc::ENOENT | libc::ENODEV)) => {
                Err(NetlinkError::new(format!("deleting the route to {}", route.dst), &e))
            }
            _ => Ok(()),
        }
    }

    /// Adds a rule; an identical rule already there is success (the kernel does not duplicate it).
    pub async fn add_rule(&self, rule: &Rule) -> Result<(), NetlinkError> {
        or_fake!(self, k => k.add_rule(rule));
        let mut req = self.handle.rule().add();
        *req.message_mut() = rule.message();
        req.execute()
            .await
            .map_err(|e| NetlinkError::new(format!("adding the policy rule for table {}", rule.table), &e))
    }

    pub async fn delete_rule(&self, rule: &Rule) -> Result<(), NetlinkError> {
        or_fake!(self, k => k.delete_rule(rule));
        match self.handle.rule().del(rule.message()).execute().await {
            Err(e) if !matches!(errno(&e), Some(libc::ENOENT | libc::ESRCH)) => {
                Err(NetlinkError::new(format!("deleting the policy rule for table {}", rule.table), &e))
            }
            _ => Ok(()),
        }
    }

    /// Whether any route of either family lives in `table`.
    pub async fn table_in_use(&self, table: u32) -> Result<bool, NetlinkError> {
        or_fake!(self, k => k.table_in_use(table));
        for query in [
            RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
            RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
        ] {
            let mut dump = self.handle.route().get(query).execute();
            while let Some(msg) = dump.try_next().await.map_err(|e| NetlinkError::new("listing routes", &e))? {
                if route_table(&msg) == table {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Every route of one family as (table, destination, output interface), to tell at once which of many routes
    /// exist already.
    pub async fn route_keys(&self, v6: bool) -> Result<std::collections::HashSet<(u32, IpNet, u32)>, NetlinkError> {
        or_fake!(self, k => k.route_keys(v6));
        let query = if v6 {
            RouteMessageBuilder::<std::net::Ipv6Addr>::new().build()
        } else {
            RouteMessageBuilder::<std::net::Ipv4Addr>::new().build()
        };
        let mut dump = self.handle.route().get(query).execute();
        let mut found = std::collections::HashSet::new();
        while let Some(msg) = dump.try_next().await.map_err(|e| NetlinkError::new("listing routes", &e))? {
            let len = msg.header.destination_prefix_length;
            let any = if v6 {
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
            };
            let Ok(dst) = IpNet::new(route_destination(&msg).unwrap_or(any), len) else { continue };
            for oif in msg.attributes.iter().filter_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            }) {
                found.insert((route_table(&msg), dst, oif));
            }
        }
        Ok(found)
    }

    /// How the kernel would send a packet to `dst` now, with the firewall mark `mark` (which a full tunnel's own
    /// packets carry, so that they leave around it): `None` when nothing routes there.
    pub async fn way_to(&self, dst: IpAddr, mark: Option<u32>) -> Result<Option<Way>, NetlinkError> {
        or_fake!(self, k => k.way_to(dst));
        let len = if dst.is_ipv4() { 32 } else { 128 };
        let Ok(builder) = RouteMessageBuilder::<IpAddr>::new().destination_prefix(dst, len) else { return Ok(None) };
        let mut query = builder.build();
        if let Some(mark) = mark {
            query.attributes.push(RouteAttribute::Mark(mark));
        }
        let mut answer = self.handle.route().get(query).execute();
        let msg = match answer.try_next().await {
            Ok(Some(msg)) => msg,
            Ok(None) => return Ok(None),
            Err(rtnetlink::Error::NetlinkError(e))
                if matches!(-e.raw_code(), libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EINVAL) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(NetlinkError::new("looking up the route to an endpoint", &e)),
        };
        let address = |a: &RouteAddress| match a {
            RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
            RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
            _ => None,
        };
        let mut way = Way::default();
        for attribute in &msg.attributes {
            match attribute {
                RouteAttribute::Oif(i) => way.interface = Some(*i),
                RouteAttribute::PrefSource(a) => way.source = address(a),
                RouteAttribute::Gateway(a) => way.gateway = address(a),
                _ => {}
            }
        }
        Ok(Some(way))
    }

    /// The interfaces of the routes to exactly `dst` in `table`.
    pub async fn routes_to(&self, dst: IpNet, table: u32) -> Result<Vec<u32>, NetlinkError> {
        or_fake!(self, k => k.routes_to(dst, table));
        let query = match dst {
            IpNet::V4(_) => RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
            IpNet::V6(_) => RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
        };
        let mut dump = self.handle.route().get(query).execute();
        let mut found = Vec::new();
        while let Some(msg) = dump.try_next().await.map_err(|e| NetlinkError::new("listing routes", &e))? {
            if route_table(&msg) == table
                && msg.header.destination_prefix_length == dst.prefix_len()
                && route_destination(&msg).unwrap_or(unspecified(dst)) == dst.network()
            {
                found.extend(msg.attributes.iter().filter_map(|a| match a {
                    RouteAttribute::Oif(i) => Some(*i),
                    _ => None,
                }));
            }
        }
        Ok(found)
    }
}

fn unspecified(net: IpNet) -> IpAddr {
    match net {
        IpNet::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        IpNet::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    }
}

fn fdb_message(index: u32, mac: [u8; 6], dst: IpAddr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = netlink_packet_route::AddressFamily::Bridge;
    msg.header.ifindex = index;
    msg.header.flags = NeighbourFlags::Own;
    msg.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    msg.attributes.push(NeighbourAttribute::Destination(match dst {
        IpAddr::V4(a) => NeighbourAddress::Inet(a),
        IpAddr::V6(a) => NeighbourAddress::Inet6(a),
    }));
    msg
}

fn route_message(route: &Route) -> RouteMessage {
    let mut msg = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(route.dst.network(), route.dst.prefix_len())
        .and_then(|b| match route.via {
            Some(via) => b.gateway(via),
            None => Ok(b),
        })
        .map(|b| {
            let b = b.output_interface(route.index).table_id(route.table);
            if route.onlink { b.onlink().build() } else { b.build() }
        })
        .unwrap_or_default();
    // The builder only fails on a family mismatch, which an `IpNet` cannot have; keep the family regardless.
    if msg.attributes.is_empty() {
        msg.header.address_family = match route.dst {
            IpNet::V4(_) => netlink_packet_route::AddressFamily::Inet,
            IpNet::V6(_) => netlink_packet_route::AddressFamily::Inet6,
        };
    }
    msg
}

fn route_table(msg: &RouteMessage) -> u32 {
    msg.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(msg.header.table))
}

fn route_destination(msg: &RouteMessage) -> Option<IpAddr> {
    msg.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(IpAddr::V4(*a)),
        RouteAttribute::Destination(RouteAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
        _ => None,
    })
}

fn kind_name(k: &InfoKind) -> String {
    match k {
        InfoKind::Other(s) => s.clone(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(-m.raw_code()),
        _ => None,
    }
}
