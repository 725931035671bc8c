//! The `wireguard` kind: boringtun sessions in Culvert's own engine.

use std::net::SocketAddr;
use std::sync::Arc;

use culvert_core::ipc::IpcError;
use culvert_core::profile::{Endpoint, Profile, Table, WireguardTunnel};

use super::Tunnel;
use super::userspace::{self, Plan, PlannedRoute, bind_error};
use crate::dataplane::udp_io;
use crate::dataplane::wg_core::{ResolvedEndpoints, WgCore};
use crate::system::netlink::MAIN_TABLE;
use crate::system::{Netlink, Records};

pub async fn up(
    netlink: &Netlink,
    records: &Records,
    profile: Profile,
    config: &WireguardTunnel,
    owner_uid: u32,
) -> Result<Tunnel, IpcError> {
    not_yet(config)?;
    let endpoints = resolve(config).await?;
    let ipv6 = endpoints.iter().flatten().any(SocketAddr::is_ipv6);
    let port = config.listen_port.unwrap_or(0);
    let socket = udp_io::bind(port, ipv6, config.fwmark).map_err(|e| bind_error(port, &e))?;
    let table = match config.table {
        Table::Off => None,
        Table::Auto => Some(MAIN_TABLE),
        Table::Id(id) => Some(id),
    };
    let routes = table
        .map(|table| {
            config
                .peers
                .iter()
                .enumerate()
                .flat_map(|(i, p)| {
                    p.allowed_ips.iter().enumerate().map(move |(j, dst)| PlannedRoute {
                        field: format!("peer[{i}].allowed_ips[{j}]"),
                        dst: *dst,
                        table,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let proto = Arc::new(WgCore::new(config, &endpoints));
    if let Ok(port) = socket.local_port() {
        proto.set_listen_port(port);
    }
    let plan = Plan { socket, proto: proto.clone(), routes, uapi: Some(proto) };
    userspace::up(netlink, records, profile, owner_uid, plan).await
}

/// Settings that parse but that this version does not apply yet: refused rather than silently ignored.
fn not_yet(config: &WireguardTunnel) -> Result<(), IpcError> {
    if !config.dns.is_empty() || !config.dns_search.is_empty() {
        return Err(IpcError::InvalidProfile {
            field: "dns".into(),
            reason: "this version of culvertd does not set DNS servers yet".into(),
            fix: "remove DNS from the profile and configure the resolver yourself".into(),
        });
    }
    let full_tunnel = config
        .peers
        .iter()
        .enumerate()
        .find_map(|(i, p)| p.allowed_ips.iter().position(|n| n.prefix_len() == 0).map(|j| (i, j)));
    if let (Table::Auto, Some((i, j))) = (config.table, full_tunnel) {
        return Err(IpcError::InvalidProfile {
            field: format!("peer[{i}].allowed_ips[{j}]"),
            reason: "routing everything through the tunnel (a /0) is not supported by this version of culvertd yet"
                .into(),
            fix: "list the networks to route instead, or set table = \"off\" and route yourself".into(),
        });
    }
    Ok(())
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
