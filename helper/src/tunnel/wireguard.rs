//! The `wireguard` kind: boringtun sessions in Culvert's own engine.

use super::TunnelError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use culvert_core::profile::{Endpoint, Profile, Table, WireguardTunnel};
use culvert_core::stats::{PeerStatus, TunnelState};

use super::Tunnel;
use super::resolve::Resolved;
use super::userspace::{self, Plan, PlannedRoute};
use crate::dataplane::live::Live;
use crate::dataplane::udp_io;
use crate::dataplane::wg_core::{WgCore, WgPeer};
use crate::system::dns::DnsConfig;
use crate::system::netlink::{MAIN_TABLE, Rule};
use crate::system::resolver::Resolver;
use crate::system::{Netlink, Records};

/// wg-quick's first table (and mark) for a full tunnel; the next free one is taken when it is in use.
const FIRST_FULL_TUNNEL_TABLE: u32 = 51820;
/// The priorities of a full tunnel's rules: the `suppress_prefixlength 0` lookup in main must come before the
/// `not fwmark` lookup in the tunnel's table, as wg-quick orders them (it gets 32764 and 32765 by default).
const SUPPRESS_RULE_PRIORITY: u32 = 32763;
/// Before both: culvertd's control traffic (its marked DNS lookups of endpoint names) is routed by the main
/// table, so that a tunnel whose peer moved can still look the peer up past itself.
const CONTROL_RULE_PRIORITY: u32 = 32762;
const FWMARK_RULE_PRIORITY: u32 = 32764;

pub async fn up(
    netlink: &Netlink,
    records: &Records,
    profile: Profile,
    config: &WireguardTunnel,
    endpoints: &Resolved,
    owner_uid: u32,
    services: &super::Services,
) -> Result<Tunnel, TunnelError> {
    let routing = routing(netlink, config, None).await?;
    let ipv6 = endpoints.iter().flatten().any(SocketAddr::is_ipv6);
    let port = config.listen_port.unwrap_or(0);
    let socket = udp_io::bind(port, ipv6, routing.fwmark).map_err(|source| TunnelError::Bind { port, source })?;
    let core = WgCore::new(config, endpoints);
    if let Ok(port) = socket.local_port() {
        core.set_listen_port(port);
    }
    let proto = Arc::new(Live::new(core));
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
        uapi: Some((proto.clone(), services.sets.clone())),
    };
    let mut tunnel = userspace::up(netlink, records, profile, owner_uid, plan).await?;
    tunnel.add_task(tokio::spawn(reresolve(proto.clone(), tunnel.info.clone(), services.resolver.clone())));
    tunnel.engine = super::Engine::Wireguard(proto);
    Ok(tunnel)
}

/// How often a host-name endpoint is looked up again while its peer does not answer.
const RERESOLVE_EVERY: Duration = Duration::from_secs(10);
/// A handshake older than this means the peer stopped answering (wireguard-tools' reresolve-dns uses 135 s:
/// REJECT_AFTER_TIME plus a margin).
const STALE_HANDSHAKE: Duration = Duration::from_secs(135);

/// Looks host-name endpoints up again while their peers have no recent handshake, and all of them at once when
/// the host's network changed: the name may point elsewhere now (a dynamic DNS name, a moved server, another
/// network's resolver). The names are the profile's of the moment: `apply` may change them.
async fn reresolve(proto: Arc<Live<WgCore>>, info: Arc<super::TunnelInfo>, resolver: Resolver) {
    let mut tick = tokio::time::interval(RERESOLVE_EVERY);
    tick.tick().await;
    loop {
        // After a change of the host's network every name is looked up again, answering peer or not: the
        // change may be a move to a network where the name means another address.
        let every_peer = tokio::select! {
            _ = tick.tick() => false,
            () = info.network_changed.notified() => true,
        };
        let profile = info.profile();
        let culvert_core::profile::Tunnel::Wireguard(config) = &profile.tunnel else { return };
        let named = config.peers.iter().filter_map(|p| match &p.endpoint {
            Some(Endpoint::Host { host, port }) => Some((p.public_key, host.clone(), *port)),
            _ => None,
        });
        for (key, host, port) in named.collect::<Vec<_>>() {
            let core = proto.load();
            let Some(peer) = core.peer(&key.0) else { continue };
            if !every_peer && peer.since_handshake().is_some_and(|d| d < STALE_HANDSHAKE) {
                continue;
            }
            let Ok(Some(addr)) = resolver.lookup(&host, port).await else { continue };
            if peer.endpoint() != Some(addr) {
                tracing::info!("peer {key}: {host} now resolves to {addr}");
                peer.set_endpoint(addr);
                peer.restart_handshake();
            }
        }
    }
}

pub(super) struct Routing {
    /// Everything goes through the tunnel.
    pub full: bool,
    pub routes: Vec<PlannedRoute>,
    pub rules: Vec<Rule>,
    pub sysctls: Vec<(String, String)>,
    pub fwmark: Option<u32>,
}

/// Where the routes go, as wg-quick decides: `Table = off` adds none; a table id puts them all there; `auto`
/// puts them in main, except that a /0 (a full tunnel) goes to a table of its own, selected by policy rules
/// that let the tunnel's own marked packets and the main table's more specific routes through. A tunnel that is
/// up keeps the table it has (`keep`).
pub(super) async fn routing(
    netlink: &Netlink,
    config: &WireguardTunnel,
    keep: Option<u32>,
) -> Result<Routing, TunnelError> {
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
    let full_table = match keep {
        _ if !(v4_full || v6_full) => None,
        Some(table) => Some(table),
        None => Some(free_table(netlink, config.fwmark).await?),
    };
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
                priority: CONTROL_RULE_PRIORITY,
                table: MAIN_TABLE,
                fwmark: Some(crate::system::CONTROL_MARK),
                invert: false,
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
async fn free_table(netlink: &Netlink, fwmark: Option<u32>) -> Result<u32, TunnelError> {
    if let Some(mark) = fwmark {
        return Ok(mark);
    }
    for table in FIRST_FULL_TUNNEL_TABLE..FIRST_FULL_TUNNEL_TABLE + 1000 {
        if !netlink.table_in_use(table).await? {
            return Ok(table);
        }
    }
    Err(TunnelError::Other {
        op: "choosing a routing table for the full tunnel".into(),
        message: "tables 51820 to 52819 are all in use".into(),
    })
}

/// Without a first handshake after this long, the tunnel reports `no handshake` (three REKEY_TIMEOUTs).
const NO_HANDSHAKE_AFTER: Duration = Duration::from_secs(15);

/// What `status` shows of a WireGuard tunnel: its peers with their keys and handshakes, and whether it is up.
impl super::StatusSource for WgCore {
    fn peers(&self, _profile: &Profile) -> Vec<PeerStatus> {
        let now = super::unix_now();
        self.peers
            .iter()
            .zip(&self.allowed_ips)
            .map(|(p, allowed)| PeerStatus {
                public_key: Some(culvert_core::keys::PublicKey(p.public_key).to_string()),
                last_handshake: Some(p.since_handshake().map(|d| now.saturating_sub(d.as_secs()))),
                persistent_keepalive: p.keepalive,
                ..PeerStatus::new(p.endpoint().map(|e| e.to_string()), allowed.clone(), p.traffic.read())
            })
            .collect()
    }

    fn state(&self, up_since: u64) -> (TunnelState, Option<String>) {
        if self.peers.iter().any(|p| p.since_handshake().is_some()) {
            return (TunnelState::Up, None);
        }
        let reachable: Vec<&Arc<WgPeer>> = self.peers.iter().filter(|p| p.endpoint().is_some()).collect();
        if reachable.is_empty() {
            // Nothing to call: the tunnel waits for peers to reach it.
            return (TunnelState::Up, None);
        }
        let waited = super::unix_now().saturating_sub(up_since);
        if waited < NO_HANDSHAKE_AFTER.as_secs() {
            return (TunnelState::Connecting, None);
        }
        let endpoints: Vec<String> = reachable.iter().filter_map(|p| p.endpoint()).map(|e| e.to_string()).collect();
        let reason = format!(
            "no handshake completed in {waited} s with {}: check that each side has the other's public key, and that \
             UDP reaches {} and comes back",
            if reachable.len() == 1 { "the peer".to_owned() } else { format!("any of {} peers", reachable.len()) },
            endpoints.join(", ")
        );
        (TunnelState::NoHandshake, Some(reason))
    }
}
