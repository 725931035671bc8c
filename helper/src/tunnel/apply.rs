//! Bringing a tunnel that is up to a new profile without taking it down.
//!
//! What the profile decides of the system (routes, rules, forwarding entries) is planned from the tunnel's record
//! ([`super::plan`]); addresses and the MTU are set on the link in place; the protocol core of a userspace tunnel
//! is replaced between two batches, carrying the peers that stay with their sessions and counters. The system
//! changes come first and roll themselves back on failure, and the core is replaced only once they all took, so
//! a change that fails leaves the tunnel as it was. Changes the kernel cannot make live (a kind, an interface
//! name, a VXLAN link's identity) are refused before anything is touched.

use super::TunnelError;
use std::net::SocketAddr;
use std::sync::Arc;

use culvert_core::profile::{Endpoint, Profile, Tunnel as Config};
use ipnet::IpNet;

use super::changes::Changes;
use super::plan::{Plan, plan};
use super::resolve::Resolved;
use super::{Engine, TunnelInfo, hostgw, vxlan, wireguard};
use crate::dataplane::udp_io::Socket;
use crate::system::dns::{DnsChange, DnsConfig};
use crate::system::netlink::MAIN_TABLE;
use crate::system::{Netlink, Object, Record, Records};

/// What a tunnel that is up is made of, as a live change needs it.
#[derive(Debug, Clone)]
pub struct Parts {
    pub info: std::sync::Arc<TunnelInfo>,
    pub record: Record,
    pub engine: Engine,
    /// A userspace tunnel's socket and the MTU its loops are sized for.
    pub datapath: Option<(Arc<Socket>, u16)>,
}

/// A change that took: the tunnel's record now, what was done, in words, and for a userspace tunnel whose loops
/// must start again (on a new socket, or for a new MTU), the socket and MTU to start them with.
#[derive(Debug)]
pub struct Applied {
    pub record: Record,
    pub notes: Vec<String>,
    pub restart: Option<(Arc<Socket>, u16)>,
}

fn cannot(field: &str, reason: String, name: &str) -> TunnelError {
    TunnelError::Profile {
        field: field.into(),
        reason,
        fix: format!("bring the tunnel down and up again for it (`culvert down {name}`, then `culvert up`)"),
    }
}

/// Takes the tunnel of `parts` to `new`. Nothing is changed when it fails.
pub async fn apply(
    netlink: &Netlink,
    records: &Records,
    parts: &Parts,
    new: &Profile,
    resolved: &Resolved,
) -> Result<Applied, TunnelError> {
    let old = parts.info.profile();
    let name = new.name.as_str();
    if old.kind() != new.kind() {
        return Err(cannot("kind", format!("the tunnel is {} and the profile {}", old.kind(), new.kind()), name));
    }
    if old.interface() != new.interface() {
        let reason = format!("the tunnel's interface is {}, and a link is not renamed while it is up", old.interface());
        return Err(cannot("interface", reason, name));
    }
    let interface = new.interface().to_owned();
    let (desired, fields) = desired(netlink, &parts.record, &old, new, &interface).await?;
    let mut notes = Vec::new();
    // A new port is bound before anything changes: a port in use fails the change with nothing to undo.
    let socket = match &parts.datapath {
        Some((socket, _)) => rebind(socket, &parts.record, &old, new, resolved, &mut notes)?,
        None => None,
    };
    // A socket that stays takes a new mark first, and gets its old one back if anything after fails.
    let remark = match &parts.datapath {
        Some((current, _)) => remark(current, socket.is_some(), &parts.record, &old, new, &mut notes)?,
        None => None,
    };
    let plan = plan(&parts.record.objects, &desired);

    let link = match new.has_link() {
        true => Some(netlink.link(&interface).await?.ok_or_else(|| TunnelError::Other {
            op: format!("changing {interface}"),
            message: "the tunnel's link is gone".into(),
        })?),
        false => None,
    };
    // Addresses and the MTU, in place, undone if the plan then fails.
    let mut undo_link: Vec<LinkStep> = Vec::new();
    if let Some(link) = &link {
        let result = link_steps(netlink, link.index, &old, new, &mut undo_link, &mut notes).await;
        if let Err(e) = result {
            undo_steps(netlink, link.index, &undo_link).await;
            if let Some(r) = remark {
                r.undo();
            }
            return Err(e);
        }
    }
    let mut changes = Changes::resume(netlink, records, parts.record.clone());
    let dns = match dns_step(&mut changes, &old, new, link.as_ref().map(|l| l.index), &mut notes).await {
        Ok(dns) => dns,
        Err(e) => {
            if let Some(link) = &link {
                undo_steps(netlink, link.index, &undo_link).await;
            }
            if let Some(r) = remark {
                r.undo();
            }
            return Err(e);
        }
    };
    let field_of =
        |o: &Object| fields.iter().find(|(d, _)| d == o).map_or_else(|| "peer".to_owned(), |(_, f)| f.clone());
    if let Err(e) = changes.carry_out(&plan, field_of, "remove what holds it, or change the profile").await {
        if let Some(undo) = dns {
            undo.run(&mut changes, &old).await;
        }
        if let Some(link) = &link {
            undo_steps(netlink, link.index, &undo_link).await;
        }
        if let Some(r) = remark {
            r.undo();
        }
        return Err(e);
    }
    describe(&plan, &mut notes);
    let port = socket.as_ref().and_then(|s| s.local_port().ok());
    replace_core(&parts.engine, &old, new, resolved, port, &mut notes);
    parts.info.set_profile(new.clone());
    if let Some(port) = port {
        parts.info.set_listen_port(Some(port));
    }
    let restart = match &parts.datapath {
        Some((current, mtu)) if socket.is_some() || *mtu != new.mtu() => {
            Some((socket.unwrap_or_else(|| current.clone()), new.mtu()))
        }
        _ => None,
    };
    Ok(Applied { record: changes.commit(), notes, restart })
}

/// A new socket for a userspace tunnel whose profile moved its listen port; `None` when the current one serves.
/// A socket that reaches IPv4 only cannot be made to reach an IPv6 peer on the same port live.
fn rebind(
    current: &Socket,
    record: &Record,
    old: &Profile,
    new: &Profile,
    resolved: &Resolved,
    notes: &mut Vec<String>,
) -> Result<Option<Arc<Socket>>, TunnelError> {
    let (before, after, ipv6, fwmark) = match (&old.tunnel, &new.tunnel) {
        (Config::Udp(o), Config::Udp(n)) => {
            (Some(o.listen_port), Some(n.listen_port), n.peers.iter().any(|p| p.endpoint.is_ipv6()), None)
        }
        (Config::Tap(o), Config::Tap(n)) => {
            (Some(o.listen_port), Some(n.listen_port), n.peers.iter().any(|p| p.endpoint.is_ipv6()), None)
        }
        (Config::Wireguard(o), Config::Wireguard(n)) => {
            (o.listen_port, n.listen_port, resolved.iter().flatten().any(SocketAddr::is_ipv6), socket_mark(record, n))
        }
        _ => return Ok(None),
    };
    let bound = current.local_port().ok();
    let moved = after.is_some() && after != before && after != bound;
    if !moved {
        if ipv6 && !current.dual_stack() {
            return Err(cannot(
                "peer",
                "the tunnel's socket reaches IPv4 only, and an IPv6 peer needs one that reaches both".into(),
                &new.name,
            ));
        }
        return Ok(None);
    }
    let port = after.unwrap_or(0);
    let socket = crate::dataplane::udp_io::bind(port, ipv6 || current.dual_stack(), fwmark)
        .map_err(|source| TunnelError::Bind { port, source })?;
    notes.push(format!("listen port {} -> {port}", bound.map_or_else(|| "?".to_owned(), |p| p.to_string())));
    Ok(Some(socket))
}

/// A WireGuard socket's mark before a change, to put back if the change fails.
struct Remark {
    socket: Arc<Socket>,
    before: u32,
}

impl Remark {
    fn undo(self) {
        if let Err(e) = self.socket.set_mark(self.before) {
            tracing::warn!("could not give the tunnel's socket its fwmark {:#x} back: {e}", self.before);
        }
    }
}

/// Gives the socket of a WireGuard tunnel that is not a full tunnel (a full tunnel's mark is refused as a live
/// change) the profile's new `fwmark`, when it changed; a socket bound anew (`rebound`) has it already.
fn remark(
    current: &Arc<Socket>,
    rebound: bool,
    record: &Record,
    old: &Profile,
    new: &Profile,
    notes: &mut Vec<String>,
) -> Result<Option<Remark>, TunnelError> {
    let (Config::Wireguard(o), Config::Wireguard(n)) = (&old.tunnel, &new.tunnel) else { return Ok(None) };
    let (before, after) = (socket_mark(record, o).unwrap_or(0), socket_mark(record, n).unwrap_or(0));
    if before == after {
        return Ok(None);
    }
    let word = |m: u32| if m == 0 { "off".to_owned() } else { format!("{m:#x}") };
    notes.push(format!("fwmark {} -> {}", word(before), word(after)));
    if rebound {
        return Ok(None);
    }
    current.set_mark(after).map_err(|source| TunnelError::Mark { mark: after, source })?;
    Ok(Some(Remark { socket: current.clone(), before }))
}

/// The mark a WireGuard tunnel's socket carries: a full tunnel's, which its `not fwmark` rule holds, else the
/// profile's.
fn socket_mark(record: &Record, config: &culvert_core::profile::WireguardTunnel) -> Option<u32> {
    record.full_tunnel_mark().or(config.fwmark)
}

/// The objects the profile decides, with the field each comes from, refusing what cannot change live.
async fn desired(
    netlink: &Netlink,
    record: &Record,
    old: &Profile,
    new: &Profile,
    dev: &str,
) -> Result<(Vec<Object>, Vec<(Object, String)>), TunnelError> {
    let name = new.name.as_str();
    let route = |dst: IpNet, table: u32| Object::Route { dst, dev: dev.into(), table, via: None, onlink: false };
    let by_peer = |peers: Vec<(&[IpNet], usize)>| -> Vec<(Object, String)> {
        peers
            .into_iter()
            .flat_map(|(nets, i)| {
                nets.iter()
                    .enumerate()
                    .map(move |(j, n)| (route(*n, MAIN_TABLE), format!("peer[{i}].allowed_ips[{j}]")))
            })
            .collect()
    };
    let with_fields: Vec<(Object, String)> = match (&old.tunnel, &new.tunnel) {
        (Config::Udp(_), Config::Udp(n)) => {
            by_peer(n.peers.iter().enumerate().map(|(i, p)| (p.allowed_ips.as_slice(), i)).collect())
        }
        (Config::Tap(_), Config::Tap(n)) => {
            by_peer(n.peers.iter().enumerate().map(|(i, p)| (p.allowed_ips.as_slice(), i)).collect())
        }
        (Config::Wireguard(o), Config::Wireguard(n)) => {
            let keep = record.objects.iter().find_map(|o| match o {
                Object::Rule(r) if r.invert => Some(r.table),
                _ => None,
            });
            let (before, after) =
                (wireguard::routing(netlink, o, keep).await?, wireguard::routing(netlink, n, keep).await?);
            // A full tunnel's mark is its rules' and its table's, and it sets sysctls: it is one for its life.
            // Other tunnels' marks change on their socket (`remark`).
            let full = before.full || after.full;
            if full && (before.fwmark != after.fwmark || before.sysctls != after.sysctls) {
                let reason = "a full tunnel's fwmark, rules and sysctls are fixed while it is up".into();
                return Err(cannot("fwmark", reason, name));
            }
            let mut out: Vec<(Object, String)> =
                after.routes.iter().map(|r| (route(r.dst, r.table), r.field.clone())).collect();
            out.extend(after.rules.iter().map(|r| (Object::Rule(r.clone()), "peer".to_owned())));
            out
        }
        (Config::Vxlan(o), Config::Vxlan(n)) => {
            let identity = |v: &culvert_core::profile::VxlanTunnel| {
                (v.vni, v.port(), v.local, v.underlay.clone(), v.own_mac(), v.bridge.clone(), v.forward.clone())
            };
            if identity(o) != identity(n) {
                let reason = "a VXLAN link's VNI, port, local address, underlay, MAC, bridge and forwarding are \
                              fixed when it is made"
                    .into();
                return Err(cannot("vni", reason, name));
            }
            vxlan::peer_state(n, dev, &vxlan::underlay_name(netlink, n).await?)
        }
        (Config::Hostgw(o), Config::Hostgw(n)) => {
            if o.forward != n.forward {
                return Err(cannot("forward", "forwarding is set for the tunnel's whole life".into(), name));
            }
            let hops = hostgw::hops(netlink, n).await?;
            hostgw::peer_routes(n, &hops)
                .into_iter()
                .map(|(r, dev, field)| {
                    (Object::Route { dst: r.dst, dev, table: r.table, via: r.via, onlink: r.onlink }, field)
                })
                .collect()
        }
        _ => return Err(cannot("kind", "the kind cannot change".into(), name)),
    };
    let mut desired: Vec<Object> = Vec::with_capacity(with_fields.len());
    for (o, _) in &with_fields {
        if !desired.contains(o) {
            desired.push(o.clone());
        }
    }
    Ok((desired, with_fields))
}

/// A change made to the link in place, kept so that it can be undone.
#[derive(Debug)]
enum LinkStep {
    Added(IpNet),
    Removed(IpNet),
    Mtu(u16),
}

async fn link_steps(
    netlink: &Netlink,
    index: u32,
    old: &Profile,
    new: &Profile,
    done: &mut Vec<LinkStep>,
    notes: &mut Vec<String>,
) -> Result<(), TunnelError> {
    for net in new.addresses().iter().filter(|a| !old.addresses().contains(a)) {
        netlink.add_address(index, *net).await?;
        done.push(LinkStep::Added(*net));
        notes.push(format!("address {net} added"));
    }
    for net in old.addresses().iter().filter(|a| !new.addresses().contains(a)) {
        netlink.delete_address(index, *net).await?;
        done.push(LinkStep::Removed(*net));
        notes.push(format!("address {net} removed"));
    }
    let mtu = |p: &Profile| match &p.tunnel {
        // A VXLAN link's MTU without a setting came from its underlay: leave it.
        Config::Vxlan(v) => v.mtu,
        Config::Hostgw(_) => None,
        _ => Some(p.mtu()),
    };
    if let (Some(before), Some(after)) = (mtu(old), mtu(new))
        && before != after
    {
        netlink.set_mtu(index, after).await?;
        done.push(LinkStep::Mtu(before));
        notes.push(format!("MTU {before} -> {after}"));
    }
    Ok(())
}

async fn undo_steps(netlink: &Netlink, index: u32, done: &[LinkStep]) {
    for step in done.iter().rev() {
        let undone = match step {
            LinkStep::Added(net) => netlink.delete_address(index, *net).await,
            LinkStep::Removed(net) => netlink.add_address(index, *net).await,
            LinkStep::Mtu(mtu) => netlink.set_mtu(index, *mtu).await,
        };
        if let Err(e) = undone {
            tracing::warn!("could not undo {step:?}: {e}");
        }
    }
}

/// The DNS of a WireGuard tunnel: the servers and search domains, or none.
fn dns_of(p: &Profile) -> Option<DnsConfig> {
    let Config::Wireguard(w) = &p.tunnel else { return None };
    let full = w.table == culvert_core::profile::Table::Auto
        && w.peers.iter().flat_map(|p| &p.allowed_ips).any(|n| n.prefix_len() == 0);
    (!w.dns.is_empty() || !w.dns_search.is_empty()).then(|| DnsConfig {
        servers: w.dns.clone(),
        search: w.dns_search.clone(),
        default_route: full,
    })
}

/// How to take back a DNS step of a change that then failed.
enum DnsUndo {
    /// Set again as it was, where the change set it otherwise.
    Reapply(DnsChange),
    /// Undo what the change set where nothing was set.
    Remove(DnsChange),
    /// Set again where the change took it away.
    Restore(DnsChange),
}

impl DnsUndo {
    async fn run(self, changes: &mut Changes<'_>, old: &Profile) {
        let put_back = |change: &DnsChange| {
            let (change, config, name) = (change.clone(), dns_of(old), old.name.clone());
            async move {
                if let Some(config) = config
                    && let Err(e) = crate::system::dns::apply(&change, &name, &config).await
                {
                    tracing::warn!("could not set DNS back: {e}");
                }
            }
        };
        match self {
            Self::Reapply(change) => put_back(&change).await,
            Self::Remove(change) => {
                if let Err(e) = crate::system::dns::undo(&change).await {
                    tracing::warn!("could not take DNS back: {e}");
                }
                changes.forget(&Object::Dns(change));
            }
            Self::Restore(change) => {
                put_back(&change).await;
                let _ = changes.will_create(Object::Dns(change));
            }
        }
    }
}

/// Sets the DNS a WireGuard tunnel's new profile asks for: anew where it was set, first where it was not, and
/// put back where it no longer is.
async fn dns_step(
    changes: &mut Changes<'_>,
    old: &Profile,
    new: &Profile,
    index: Option<u32>,
    notes: &mut Vec<String>,
) -> Result<Option<DnsUndo>, TunnelError> {
    let (before, after) = (dns_of(old), dns_of(new));
    if before == after {
        return Ok(None);
    }
    let failed = TunnelError::Dns;
    let recorded = changes.record.objects.iter().find_map(|o| match o {
        Object::Dns(change) => Some(change.clone()),
        _ => None,
    });
    let name = new.name.as_str();
    match (recorded, after) {
        (Some(change), Some(config)) => {
            crate::system::dns::apply(&change, name, &config).await.map_err(failed)?;
            notes.push("DNS changed".into());
            Ok(Some(DnsUndo::Reapply(change)))
        }
        (Some(change), None) => {
            crate::system::dns::undo(&change).await.map_err(|e| failed(e.to_string()))?;
            changes.forget(&Object::Dns(change.clone()));
            notes.push("DNS removed".into());
            Ok(Some(DnsUndo::Restore(change)))
        }
        (None, Some(config)) => {
            let Some(index) = index else { return Ok(None) };
            let backup = changes.records().dns_backup(name);
            let change = crate::system::dns::plan(crate::system::dns::backend().await, new.interface(), index, backup)
                .map_err(failed)?;
            changes.will_create(Object::Dns(change.clone())).map_err(TunnelError::Record)?;
            if let Err(e) = crate::system::dns::apply(&change, name, &config).await {
                changes.forget(&Object::Dns(change));
                return Err(failed(e));
            }
            notes.push("DNS set".into());
            Ok(Some(DnsUndo::Remove(change)))
        }
        (None, None) => Ok(None),
    }
}

fn describe(plan: &Plan, notes: &mut Vec<String>) {
    let count = |objects: &[Object], what: fn(&Object) -> bool| objects.iter().filter(|o| what(o)).count();
    let routes = |o: &Object| matches!(o, Object::Route { .. });
    let entries = |o: &Object| matches!(o, Object::Fdb { .. } | Object::Neighbour { .. });
    for (verb, objects) in [("added", &plan.add), ("removed", &plan.remove)] {
        match count(objects, routes) {
            0 => {}
            1 => notes.push(format!("1 route {verb}")),
            n => notes.push(format!("{n} routes {verb}")),
        }
        match count(objects, entries) {
            0 => {}
            n => notes.push(format!("{n} forwarding entries {verb}")),
        }
    }
}

/// Replaces a userspace tunnel's protocol core with one for `new`; peers whose profile endpoint changed are
/// moved there and shake hands again.
fn replace_core(
    engine: &Engine,
    old: &Profile,
    new: &Profile,
    resolved: &Resolved,
    port: Option<u16>,
    notes: &mut Vec<String>,
) {
    match (engine, &new.tunnel) {
        (Engine::Udp(live), Config::Udp(config)) => {
            let (next, said) = live.load().next(config);
            live.store(next);
            notes.extend(said);
        }
        (Engine::Tap(live), Config::Tap(config)) => {
            let (next, said) = live.load().next(config);
            live.store(next);
            notes.extend(said);
        }
        (Engine::Wireguard(live), Config::Wireguard(config)) => {
            let current = live.load();
            let (next, said) = current.next(config, resolved);
            next.set_listen_port(port.unwrap_or_else(|| current.listen_port()));
            let Config::Wireguard(before) = &old.tunnel else { return };
            for (i, p) in config.peers.iter().enumerate() {
                let was = before.peers.iter().find(|b| b.public_key == p.public_key).and_then(|b| b.endpoint.clone());
                let to: Option<SocketAddr> = resolved.get(i).copied().flatten();
                if was != p.endpoint
                    && let (Some(peer), Some(to)) = (next.peer(&p.public_key.0), to)
                    && p.endpoint.as_ref().is_some_and(|e| matches!(e, Endpoint::Addr(_) | Endpoint::Host { .. }))
                {
                    peer.set_endpoint(to);
                    peer.restart_handshake();
                    notes.push(format!("peer {}: endpoint {to}", p.public_key));
                }
            }
            live.store(next);
            notes.extend(said);
        }
        _ => {}
    }
}
