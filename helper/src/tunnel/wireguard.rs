//! The `wireguard` kind: boringtun sessions in Culvert's own engine.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use culvert_core::ipc::IpcError;
use culvert_core::profile::{Endpoint, Profile, Table, WireguardTunnel};

use super::Tunnel;
use super::userspace::{self, Plan, PlannedRoute, bind_error, system};
use crate::dataplane::udp_io;
use crate::dataplane::wg_core::{ResolvedEndpoints, WgCore};
use crate::system::dns::DnsConfig;
use crate::system::netlink::{MAIN_TABLE, Rule};
use crate::system::{Netlink, Records};

/// wg-quick's first table (and mark) for a full tunnel; the next free one is taken when it is in use.
const FIRST_FULL_TUNNEL_TABLE: u32 = 51820;
/// The priorities of a full tunnel's rules: the `suppress_prefixlength 0` lookup in main must come before the
/// `not fwmark` lookup in the tunnel's table, as wg-quick orders them (it gets 32764 and 32765 by default).
const SUPPRESS_RULE_PRIORITY: u32 = 32763;
const FWMARK_RULE_PRIORITY: u32 = 32764;

pub async fn up(
    netlink: &Netlink,
    records: &Records,
    profile: Profile,
    config: &WireguardTunnel,
    owner_uid: u32,
) -> Result<Tunnel, IpcError> {
    let endpoints = resolve(config).await?;
    let routing = routing(netlink, config).await?;
    let ipv6 = endpoints.iter().flatten().any(SocketAddr::is_ipv6);
    let port = config.listen_port.unwrap_or(0);
    let socket = udp_io::bind(port, ipv6, routing.fwmark).map_err(|e| bind_error(port, &e))?;
    let proto = Arc::new(WgCore::new(config, &endpoints));
    if let Ok(port) = socket.local_port() {
        proto.set_listen_port(port);
    }
    let dns = (!config.dns.is_empty() || !config.dns_search.is_empty()).then(|| DnsConfig {
        servers: config.dns.clone(),
        search: config.dns_search.clone(),
        default_route: routing.full,
    });
    let plan = Plan {
        socket,
        proto: proto.clone(),
        routes: routing.routes,
        rules: routing.rules,
        sysctls: routing.sysctls,
        dns,
        tap: None,
        uapi: Some(proto.clone()),
    };
    let named: Vec<(usize, String, u16)> = config
        .peers
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match &p.endpoint {
            Some(Endpoint::Host { host, port }) => Some((i, host.clone(), *port)),
            _ => None,
        })
        .collect();
    let mut tunnel = userspace::up(netlink, records, profile, owner_uid, plan).await?;
    if !named.is_empty() {
        tunnel.add_task(tokio::spawn(reresolve(proto, named)));
    }
    Ok(tunnel)
}

/// How often a host-name endpoint is looked up again while its peer does not answer.
const RERESOLVE_EVERY: Duration = Duration::from_secs(10);
/// A handshake older than this means the peer stopped answering (wireguard-tools' reresolve-dns uses 135 s:
/// REJECT_AFTER_TIME plus a margin).
const STALE_HANDSHAKE: Duration = Duration::from_secs(135);

/// Looks host-name endpoints up again while their peers have no recent handshake: the name may point elsewhere
/// now (a dynamic DNS name, a moved server).
async fn reresolve(proto: Arc<WgCore>, named: Vec<(usize, String, u16)>) {
    let mut tick = tokio::time::interval(RERESOLVE_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        for (i, host, port) in &named {
            let peer = &proto.peers[*i];
            if peer.since_handshake().is_some_and(|d| d < STALE_HANDSHAKE) {
                continue;
            }
            let Ok(found) = tokio::net::lookup_host((host.as_str(), *port)).await else { continue };
            let all: Vec<SocketAddr> = found.collect();
            let Some(addr) = all.iter().find(|a| a.is_ipv4()).or(all.first()).copied() else { continue };
            if peer.endpoint() != Some(addr) {
                tracing::info!("peer {i}: {host} now resolves to {addr}");
                peer.set_endpoint(addr);
                peer.restart_handshake();
            }
        }
    }
}

struct Routing {
    /// Everything goes through the tunnel.
    full: bool,
    routes: Vec<PlannedRoute>,
    rules: Vec<Rule>,
    sysctls: Vec<(String, String)>,
    fwmark: Option<u32>,
}

/// Where the routes go, as wg-quick decides: `Table = off` adds none; a table id puts them all there; `auto`
/// puts them in main, except that a /0 (a full tunnel) goes to a table of its own, selected by policy rules
/// that let the tunnel's own marked packets and the main table's more specific routes through.
async fn routing(netlink: &Netlink, config: &WireguardTunnel) -> Result<Routing, IpcError> {
    // Collected before any await: an iterator of closures held across one makes the future not Send.
    let all: Vec<(String, ipnet::IpNet)> = config
        .peers
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            p.allowed_ips.iter().enumerate().map(move |(j, dst)| (format!("peer[{i}].allowed_ips[{j}]"), *dst))
        })
        .collect();
    let mut out = Routing { full: false, routes: vec![], rules: vec![], sysctls: vec![], fwmark: config.fwmark };
    let auto_table = match config.table {
        Table::Off => return Ok(out),
        Table::Id(id) => {
            out.routes = all.into_iter().map(|(field, dst)| PlannedRoute { field, dst, table: id }).collect();
            return Ok(out);
        }
        Table::Auto => MAIN_TABLE,
    };
    let (v4_full, v6_full) = config
        .peers
        .iter()
        .flat_map(|p| &p.allowed_ips)
        .filter(|n| n.prefix_len() == 0)
        .fold((false, false), |(v4, v6), n| (v4 || n.addr().is_ipv4(), v6 || n.addr().is_ipv6()));
    let full_table = if v4_full || v6_full { Some(free_table(netlink, config.fwmark).await?) } else { None };
    for (field, dst) in all {
        let table = if dst.prefix_len() == 0 { full_table.unwrap_or(auto_table) } else { auto_table };
        out.routes.push(PlannedRoute { field, dst, table });
    }
    if let Some(table) = full_table {
        out.full = true;
        let mark = config.fwmark.unwrap_or(table);
        out.fwmark = Some(mark);
        for (v6, full) in [(false, v4_full), (true, v6_full)] {
            if !full {
                continue;
            }
            out.rules.push(Rule {
                v6,
                priority: FWMARK_RULE_PRIORITY,
                table,
                fwmark: Some(mark),
                invert: true,
                suppress_prefixlen: None,
            });
            out.rules.push(Rule {
                v6,
                priority: SUPPRESS_RULE_PRIORITY,
                table: MAIN_TABLE,
                fwmark: None,
                invert: false,
                suppress_prefixlen: Some(0),
            });
        }
        if v4_full {
            // Replies to the marked packets must pass reverse-path filtering, as wg-quick arranges.
            out.sysctls.push(("net/ipv4/conf/all/src_valid_mark".into(), "1".into()));
        }
    }
    Ok(out)
}

/// A routing table no route uses yet: the profile's fwmark if it set one, else the first from 51820 on.
async fn free_table(netlink: &Netlink, fwmark: Option<u32>) -> Result<u32, IpcError> {
    if let Some(mark) = fwmark {
        return Ok(mark);
    }
    for table in FIRST_FULL_TUNNEL_TABLE..FIRST_FULL_TUNNEL_TABLE + 1000 {
        if !netlink.table_in_use(table).await.map_err(system)? {
            return Ok(table);
        }
    }
    Err(IpcError::System {
        op: "choosing a routing table for the full tunnel".into(),
        message: "tables 51820 to 52819 are all in use".into(),
    })
}

/// Resolves host-name endpoints; one that does not resolve fails the request, naming the peer.
async fn resolve(config: &WireguardTunnel) -> Result<ResolvedEndpoints, IpcError> {
    let mut out = Vec::with_capacity(config.peers.len());
    for (i, p) in config.peers.iter().enumerate() {
        out.push(match &p.endpoint {
            None => None,
            Some(Endpoint::Addr(a)) => Some(*a),
            Some(Endpoint::Host { host, port }) => {
                let found =
                    tokio::net::lookup_host((host.as_str(), *port)).await.map_err(|e| IpcError::InvalidProfile {
                        field: format!("peer[{i}].endpoint"),
                        reason: format!("{host} does not resolve: {e}"),
                        fix: "check the name, or give the peer's address instead".into(),
                    })?;
                let all: Vec<SocketAddr> = found.collect();
                // Prefer IPv4, as wg does, when a name has both.
                all.iter().find(|a| a.is_ipv4()).or(all.first()).copied()
            }
        });
    }
    Ok(out)
}
