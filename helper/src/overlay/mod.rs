//! Overlay tunnels: flannel's design on a real etcd. This host leases one subnet of the network, publishes how
//! to reach it in flannel's own record format, and watches the other hosts' leases; each becomes a peer of the
//! vxlan or host-gw tunnel the network's backend names, applied live through the tunnel layer's planner.
//!
//! Layers: control -> overlay (this; it talks to etcd and decides the peers) -> tunnel (which builds them).
//! The pure parts, the records and the checks of the leases, are in [`flannel`] and [`nodes`].

pub mod flannel;
pub mod node_key;
pub mod nodes;
pub mod registry;
pub mod subnet_env;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use culvert_core::keys::SecretKey;
use culvert_core::mac::MacAddr;
use culvert_core::profile::{
    Endpoint, HostgwPeer, HostgwTunnel, OverlayTunnel, Profile, Table, Tunnel as Config, UdpPeer, UdpTunnel, VxlanPeer,
    VxlanTunnel, WireguardPeer, WireguardTunnel,
};
use culvert_core::stats::{OverlayStatus, RegistryState};
use ipnet::{IpNet, Ipv4Net};

use flannel::{Backend, LeaseAttrs, Network, Node, Own, RecordError};
use nodes::{Choice, Lease};
use registry::Registry;

/// Why an overlay could not start, as this layer knows it; the control layer words it for the wire.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("etcd at {endpoints} does not answer: {message}")]
    Unreachable { endpoints: String, message: String },
    #[error("etcd at {endpoints}: {op}: {message}")]
    Etcd { op: String, endpoints: String, message: String },
    #[error("etcd at {endpoints} refused this host: {message}")]
    Refused { endpoints: String, message: String },
    #[error("etcd has no network config at {key}")]
    NoConfig { key: String },
    #[error("the network config at {key}: {problem}")]
    BadConfig { key: String, problem: RecordError },
    #[error("every subnet of {network} is leased")]
    Full { network: Ipv4Net },
    #[error("other hosts took each subnet this host tried, {tries} times")]
    Contended { tries: u32 },
    #[error("public_ip: {0}")]
    PublicIp(String),
    #[error("this host's WireGuard key: {0}")]
    NodeKey(std::io::Error),
}

/// A lease this host tries again when another host took its subnet first, as flannel does.
const ACQUIRE_TRIES: u32 = 10;
/// Reconnecting to etcd: from 100 ms, doubling, up to 5 s (flannel's backoff).
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A failed renewal is tried again this often (flannel: every minute), or sooner when the lease is short.
const RENEW_RETRY: Duration = Duration::from_secs(60);

/// What status shows of an overlay and what `down` needs to leave the network; shared by the session's task
/// and the tunnel's status.
#[derive(Debug)]
pub struct View {
    status: Mutex<OverlayStatus>,
    /// The etcd lease that holds this host's key, to revoke on `down`.
    lease: Mutex<(Registry, i64)>,
}

impl View {
    pub fn status(&self) -> OverlayStatus {
        self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn update(&self, f: impl FnOnce(&mut OverlayStatus)) {
        f(&mut self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    /// Revokes this host's lease: every other host drops it at once.
    pub async fn leave(&self) {
        let (mut registry, id) = self.lease.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        registry.revoke(id).await;
    }
}

impl crate::tunnel::RegistrySource for View {
    fn status(&self) -> OverlayStatus {
        View::status(self)
    }

    fn leave(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(View::leave(self))
    }
}

/// A changed backend tunnel for the helper to apply.
#[derive(Debug)]
pub struct Update {
    pub tunnel: String,
    pub profile: Profile,
}

/// An overlay that holds its lease: what it needs to keep it, and to follow the other hosts.
#[derive(Debug)]
pub struct Session {
    name: String,
    settings: OverlayTunnel,
    registry: Registry,
    network: Network,
    public_ip: Ipv4Addr,
    /// The underlay subnet of `public_ip`, once control has found it (for DirectRouting).
    underlay: Option<Ipv4Net>,
    /// This host's WireGuard key, for a wireguard network.
    private_key: Option<SecretKey>,
    attrs: LeaseAttrs,
    subnet: Ipv4Net,
    lease_id: i64,
    leases: BTreeMap<String, Lease>,
    revision: i64,
    view: Arc<View>,
    /// The peers, and the subnet, last handed to the helper.
    applied: Vec<Node>,
    applied_subnet: Ipv4Net,
    /// Until the session runs, its lease is given back when it is dropped: an `up` that failed or was
    /// abandoned at its deadline leaves no lease for the others to route to until its TTL.
    give_back_on_drop: bool,
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.give_back_on_drop {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (mut registry, id) = (self.registry.clone(), self.lease_id);
            runtime.spawn(async move { registry.revoke(id).await });
        }
    }
}

impl Session {
    /// Connects to etcd, reads the network's config and takes this host's lease. A wireguard network's key is
    /// kept at `key_file`.
    pub async fn start(name: &str, settings: &OverlayTunnel, key_file: &Path) -> Result<Self, OverlayError> {
        let public_ip = match settings.public_ip {
            Some(IpAddr::V4(ip)) => ip,
            Some(IpAddr::V6(ip)) => {
                return Err(OverlayError::PublicIp(format!(
                    "{ip} is IPv6; flannel's leases carry an IPv4 PublicIP: set public_ip to this host's IPv4 address"
                )));
            }
            None => default_source()?,
        };
        let mut registry = Registry::connect(settings).await?;
        let network = registry.network().await?;
        let mut private_key = None;
        let own = match network.backend {
            Backend::Vxlan { vni, .. } => Own::Vxlan(MacAddr::derived(vni, public_ip.into())),
            Backend::Wireguard { .. } => {
                let key = node_key::load_or_make(key_file).map_err(OverlayError::NodeKey)?;
                let public = key.public_key();
                private_key = Some(key);
                Own::Wireguard(public)
            }
            Backend::HostGw | Backend::Udp { .. } => Own::None,
        };
        let attrs = LeaseAttrs::own(public_ip, &network.backend, own);
        let previous = settings.subnet_file.as_deref().and_then(|f| subnet_env::previous_subnet(f.as_ref()));
        let (subnet, lease_id) =
            take_lease(&mut registry, &network, &attrs, public_ip, previous, settings.lease_ttl).await?;
        let (leases, revision) = match registry.leases().await {
            Ok(found) => found,
            Err(e) => {
                registry.revoke(lease_id).await;
                return Err(e);
            }
        };
        let status = OverlayStatus {
            network: network.network.to_string(),
            subnet: subnet.to_string(),
            backend: network.backend.name().into(),
            lease_expires: crate::tunnel::unix_now() + settings.lease_ttl,
            registry: RegistryState::Ok,
            nodes: vec![],
        };
        let view = Arc::new(View { status: Mutex::new(status), lease: Mutex::new((registry.clone(), lease_id)) });
        let mut session = Self {
            name: name.to_owned(),
            settings: settings.clone(),
            registry,
            network,
            public_ip,
            underlay: None,
            private_key,
            attrs,
            subnet,
            lease_id,
            leases: leases.into_iter().map(|l| (l.name.clone(), l)).collect(),
            revision,
            view,
            applied: vec![],
            applied_subnet: subnet,
            give_back_on_drop: true,
        };
        session.applied = session.check_nodes();
        Ok(session)
    }

    pub fn view(&self) -> Arc<View> {
        self.view.clone()
    }

    pub fn network(&self) -> &Network {
        &self.network
    }

    pub fn subnet(&self) -> Ipv4Net {
        self.subnet
    }

    pub fn public_ip(&self) -> Ipv4Addr {
        self.public_ip
    }

    /// The underlay subnet this host's public IP is on: under DirectRouting, hosts on it are routed to directly.
    pub fn set_underlay(&mut self, underlay: Option<Ipv4Net>) {
        self.underlay = underlay;
        self.applied = self.check_nodes();
    }

    /// Where the subnet file goes, if anywhere.
    pub fn subnet_file(&self) -> Option<PathBuf> {
        self.settings.subnet_file.as_ref().map(PathBuf::from)
    }

    /// Gives the lease back, for an `up` that failed after taking it.
    pub async fn abandon(mut self) {
        self.give_back_on_drop = false;
        self.registry.revoke(self.lease_id).await;
    }

    /// The backend tunnel of the network with the peers the leases make now.
    pub fn backend_profile(&self) -> Profile {
        let own = Host {
            public_ip: self.public_ip,
            underlay: self.underlay,
            subnet: self.subnet,
            private_key: self.private_key.as_ref(),
        };
        backend_profile(&self.name, &self.settings, &self.network, &own, &self.applied)
    }

    /// Checks every lease, shows them, and gives the peers they make.
    fn check_nodes(&self) -> Vec<Node> {
        let leases: Vec<Lease> = self.leases.values().cloned().collect();
        let mut checked = nodes::nodes(&self.network, self.subnet, &leases);
        if let (Backend::HostGw, Some(segment)) = (self.network.backend, self.underlay) {
            checked = nodes::on_segment(checked, segment);
        }
        for skipped in checked.shown.iter().filter(|n| n.skipped_reason.is_some()) {
            tracing::debug!("overlay {}: lease {} skipped: {:?}", self.name, skipped.subnet, skipped.skipped_reason);
        }
        self.view.update(|s| s.nodes = checked.shown);
        checked.peers
    }

    /// Follows the other hosts' leases and keeps this host's own until the tunnel goes down (the task is
    /// aborted): every change of the peers goes to `updates`.
    pub async fn run(mut self, updates: tokio::sync::mpsc::Sender<Update>) {
        // From here on the tunnel is up, and `down` gives the lease back (through the view).
        self.give_back_on_drop = false;
        let renew_after = Duration::from_secs(self.settings.lease_ttl - self.settings.lease_renew_margin);
        let mut renew_at = tokio::time::Instant::now() + renew_after;
        let mut backoff = BACKOFF_MIN;
        let mut first = true;
        loop {
            if !first {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                // Whatever happened while the watch was down: read it all again.
                match self.registry.leases().await {
                    Ok((leases, revision)) => {
                        self.leases = leases.into_iter().map(|l| (l.name.clone(), l)).collect();
                        self.revision = revision;
                        self.own_lease_check().await;
                        self.publish(&updates).await;
                    }
                    Err(e) => {
                        self.unreachable(&e);
                        continue;
                    }
                }
            }
            first = false;
            let mut stream = match self.registry.watch(self.revision).await {
                Ok(s) => s,
                Err(e) => {
                    self.unreachable(&e);
                    continue;
                }
            };
            self.view.update(|s| s.registry = RegistryState::Ok);
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(renew_at) => {
                        renew_at = tokio::time::Instant::now() + match self.renew().await {
                            Ok(()) => renew_after,
                            Err(e) => {
                                tracing::warn!("overlay {}: renewing the lease: {e}", self.name);
                                RENEW_RETRY.min(Duration::from_secs(self.settings.lease_renew_margin / 2).max(Duration::from_secs(1)))
                            }
                        };
                    }
                    message = stream.message() => match message {
                        Ok(Some(response)) if response.canceled() || response.compact_revision() > 0 => {
                            tracing::info!("overlay {}: the watch was cancelled ({}); reading the leases again", self.name, response.cancel_reason());
                            break;
                        }
                        Ok(Some(response)) => {
                            backoff = BACKOFF_MIN;
                            self.apply_events(&response);
                            self.own_lease_check().await;
                            self.publish(&updates).await;
                        }
                        Ok(None) | Err(_) => {
                            self.view.update(|s| s.registry = RegistryState::Unreachable);
                            tracing::warn!("overlay {}: lost the watch on etcd; reconnecting", self.name);
                            break;
                        }
                    }
                }
            }
        }
    }

    fn unreachable(&self, e: &OverlayError) {
        self.view.update(|s| s.registry = RegistryState::Unreachable);
        tracing::warn!("overlay {}: {e}; the peers stay as they are", self.name);
    }

    fn apply_events(&mut self, response: &etcd_client::WatchResponse) {
        let prefix = self.registry.subnets_prefix();
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            self.revision = self.revision.max(kv.mod_revision());
            // A deleted key's kv carries only its key and revision, version 0; a put's version is 1 or more.
            // Told apart so rather than by `Event::event_type`, which panics on a type it does not know.
            if kv.version() > 0 {
                if let Some(lease) = registry::lease(&prefix, kv) {
                    self.leases.insert(lease.name.clone(), lease);
                }
            } else if let Ok(key) = kv.key_str()
                && let Some(name) = key.strip_prefix(&prefix)
            {
                self.leases.remove(name);
            }
        }
    }

    /// When this host's own key is gone (expired while etcd was away, or deleted), takes a lease again, the
    /// same subnet when it is free.
    async fn own_lease_check(&mut self) {
        let own = flannel::key_of_subnet(self.subnet);
        let mine =
            self.leases.get(&own).and_then(|l| LeaseAttrs::parse(&l.value).ok()).is_some_and(|a| a == self.attrs);
        if mine {
            return;
        }
        match take_lease(
            &mut self.registry,
            &self.network,
            &self.attrs,
            self.public_ip,
            Some(self.subnet),
            self.settings.lease_ttl,
        )
        .await
        {
            Ok((subnet, id)) => {
                tracing::warn!("overlay {}: its lease of {} was gone; it leased {subnet}", self.name, self.subnet);
                self.subnet = subnet;
                self.set_lease(id);
                if let Ok((leases, revision)) = self.registry.leases().await {
                    self.leases = leases.into_iter().map(|l| (l.name.clone(), l)).collect();
                    self.revision = self.revision.max(revision);
                }
            }
            Err(e) => tracing::warn!("overlay {}: its lease is gone and taking another failed: {e}", self.name),
        }
    }

    fn set_lease(&mut self, id: i64) {
        self.lease_id = id;
        *self.view.lease.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = (self.registry.clone(), id);
        let expires = crate::tunnel::unix_now() + self.settings.lease_ttl;
        let subnet = self.subnet.to_string();
        self.view.update(|s| {
            s.lease_expires = expires;
            s.subnet = subnet;
        });
    }

    /// flannel's renewal: the key put again under a fresh etcd lease, the old one then revoked.
    async fn renew(&mut self) -> Result<(), OverlayError> {
        let old = self.lease_id;
        let id = self.registry.acquire(self.subnet, &self.attrs, self.settings.lease_ttl, true).await?;
        if let Some(id) = id {
            self.set_lease(id);
            self.registry.revoke(old).await;
        }
        Ok(())
    }

    async fn publish(&mut self, updates: &tokio::sync::mpsc::Sender<Update>) {
        let peers = self.check_nodes();
        if peers == self.applied && self.subnet == self.applied_subnet {
            return;
        }
        self.applied = peers;
        self.applied_subnet = self.subnet;
        let _ = updates.send(Update { tunnel: self.name.clone(), profile: self.backend_profile() }).await;
    }
}

/// Takes a lease in flannel's order of preference, trying again when another host is faster.
async fn take_lease(
    registry: &mut Registry,
    network: &Network,
    attrs: &LeaseAttrs,
    public_ip: Ipv4Addr,
    previous: Option<Ipv4Net>,
    ttl: u64,
) -> Result<(Ipv4Net, i64), OverlayError> {
    for attempt in 0..ACQUIRE_TRIES {
        let (leases, _) = registry.leases().await?;
        let spread = u64::from(u32::from(public_ip)).wrapping_mul(2_654_435_761).wrapping_add(u64::from(attempt));
        let choice = nodes::choose(network, &leases, public_ip.into(), previous, spread)
            .ok_or(OverlayError::Full { network: network.network })?;
        if let Some(id) = registry.acquire(choice.subnet(), attrs, ttl, matches!(choice, Choice::Own(_))).await? {
            return Ok((choice.subnet(), id));
        }
    }
    Err(OverlayError::Contended { tries: ACQUIRE_TRIES })
}

/// The source address the kernel picks toward the default route, as flannel finds its public IP. No packet is
/// sent: connecting a UDP socket only chooses the route.
fn default_source() -> Result<Ipv4Addr, OverlayError> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").map_err(|e| OverlayError::PublicIp(e.to_string()))?;
    let none = |_| OverlayError::PublicIp("this host has no default route to take it from: set public_ip".into());
    socket.connect("192.0.2.1:9").map_err(none)?;
    match socket.local_addr().map_err(|e| OverlayError::PublicIp(e.to_string()))?.ip() {
        IpAddr::V4(ip) if !ip.is_unspecified() => Ok(ip),
        other => Err(OverlayError::PublicIp(format!("the default route's source {other} is not IPv4: set public_ip"))),
    }
}

/// The backend link's own address, as flannel gives it: the subnet's network address, /32. Each other host's
/// subnet is a route of its own on the link.
fn backend_address(subnet: Ipv4Net) -> Vec<IpNet> {
    Ipv4Net::new(subnet.network(), 32).map(|n| vec![IpNet::V4(n)]).unwrap_or_default()
}

/// This host, as its backend tunnel needs it.
#[derive(Debug, Clone, Copy)]
pub struct Host<'a> {
    pub public_ip: Ipv4Addr,
    /// The underlay subnet `public_ip` is on: hosts on it are reached directly under DirectRouting.
    pub underlay: Option<Ipv4Net>,
    pub subnet: Ipv4Net,
    pub private_key: Option<&'a SecretKey>,
}

/// The tunnel of the network's backend that carries the network, with `peers`.
pub fn backend_profile(
    name: &str,
    settings: &OverlayTunnel,
    network: &Network,
    own: &Host<'_>,
    peers: &[Node],
) -> Profile {
    let interface = Some(settings.interface.clone().unwrap_or_else(|| name.to_owned()));
    let (public_ip, subnet) = (own.public_ip, own.subnet);
    let endpoint = |n: &Node, default: u16| SocketAddr::new(n.public_ip.into(), n.port.unwrap_or(default));
    let tunnel = match network.backend {
        Backend::Vxlan { vni, port, direct_routing } => Config::Vxlan(VxlanTunnel {
            interface,
            vni,
            port: Some(port),
            local: public_ip.into(),
            underlay: None,
            mac: None,
            address: backend_address(subnet),
            mtu: None,
            bridge: None,
            forward: vec![],
            peers: peers
                .iter()
                .map(|n| {
                    let direct = direct_routing && own.underlay.is_some_and(|u| u.contains(&n.public_ip));
                    VxlanPeer {
                        vtep: n.public_ip.into(),
                        mac: n.vtep_mac,
                        gateway: (!direct).then(|| n.subnet.network().into()),
                        subnets: vec![IpNet::V4(n.subnet)],
                        direct,
                    }
                })
                .collect(),
        }),
        Backend::HostGw => Config::Hostgw(HostgwTunnel {
            forward: vec![],
            peers: peers
                .iter()
                .map(|n| HostgwPeer { via: n.public_ip.into(), subnets: vec![IpNet::V4(n.subnet)] })
                .collect(),
        }),
        Backend::Wireguard { listen_port } => Config::Wireguard(WireguardTunnel {
            interface,
            // The session makes the key before the first profile; an all-zero key is refused by validation.
            private_key: own.private_key.cloned().unwrap_or_else(|| SecretKey::from_bytes([0; 32])),
            address: backend_address(subnet),
            listen_port: Some(listen_port),
            mtu: None,
            dns: vec![],
            dns_search: vec![],
            table: Table::Auto,
            fwmark: None,
            kill_switch: false,
            allow_lan: false,
            peers: peers
                .iter()
                .filter_map(|n| {
                    Some(WireguardPeer {
                        public_key: n.public_key?,
                        preshared_key: None,
                        allowed_ips: vec![IpNet::V4(n.subnet)],
                        endpoint: Some(Endpoint::Addr(endpoint(n, listen_port))),
                        persistent_keepalive: None,
                    })
                })
                .collect(),
        }),
        Backend::Udp { port } => Config::Udp(UdpTunnel {
            interface,
            address: backend_address(subnet),
            listen_port: port,
            mtu: None,
            peers: peers
                .iter()
                .map(|n| UdpPeer { endpoint: endpoint(n, port), allowed_ips: vec![IpNet::V4(n.subnet)] })
                .collect(),
        }),
    };
    Profile { name: name.to_owned(), tunnel }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vxlan_network_is_flannels_link_and_each_host_an_on_link_route_via_its_vtep() {
        let network = Network::parse(br#"{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan","VNI":3}}"#).unwrap();
        let settings = OverlayTunnel {
            etcd: vec!["http://10.99.0.10:2379".into()],
            etcd_ca: None,
            etcd_cert: None,
            etcd_key: None,
            etcd_username: None,
            etcd_password: None,
            prefix: "/coreos.com/network".into(),
            public_ip: None,
            interface: None,
            ip_masq: false,
            subnet_file: None,
            lease_ttl: 60,
            lease_renew_margin: 10,
        };
        let peer = Node {
            subnet: "10.5.7.0/24".parse().unwrap(),
            public_ip: Ipv4Addr::new(172, 31, 0, 2),
            vtep_mac: Some("4e:3c:2a:11:22:33".parse().unwrap()),
            public_key: None,
            port: None,
        };
        let me = Host {
            public_ip: Ipv4Addr::new(172, 31, 0, 1),
            underlay: Some("172.31.0.0/24".parse().unwrap()),
            subnet: "10.5.3.0/24".parse().unwrap(),
            private_key: None,
        };
        let p = backend_profile("ov", &settings, &network, &me, &[peer]);
        p.validate().unwrap();
        let Config::Vxlan(v) = &p.tunnel else { panic!("{p:?}") };
        assert_eq!((v.vni, v.port(), v.interface.as_deref()), (3, 8472, Some("ov")));
        assert_eq!(v.address, vec!["10.5.3.0/32".parse::<IpNet>().unwrap()]);
        assert_eq!(v.peers[0].gateway, Some("10.5.7.0".parse().unwrap()));
        // DirectRouting: a host on this host's underlay subnet is routed to directly, another through VXLAN.
        let direct =
            Network::parse(br#"{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan","DirectRouting":true}}"#).unwrap();
        let far = Node { public_ip: Ipv4Addr::new(172, 31, 9, 2), subnet: "10.5.8.0/24".parse().unwrap(), ..peer };
        let p = backend_profile("ov", &settings, &direct, &me, &[peer, far]);
        p.validate().unwrap();
        let Config::Vxlan(v) = &p.tunnel else { panic!("{p:?}") };
        assert_eq!((v.peers[0].direct, v.peers[0].gateway), (true, None));
        assert_eq!((v.peers[1].direct, v.peers[1].gateway), (false, Some("10.5.8.0".parse().unwrap())));
        let alone = backend_profile("ov", &settings, &network, &me, &[]);
        alone.validate_overlay_backend().unwrap();
        assert!(alone.validate().is_err(), "a plain vxlan profile needs a peer");
    }
}
