//! The registry of tunnels and the operations requests ask for.
//!
//! The registry is only ever locked for a moment, never across slow work: an `up` reserves its name (and what
//! its tunnel will hold, see [`claims`](super::claims)), builds the tunnel unlocked, then publishes it, so that
//! a bring-up waiting on a resolver or on netlink keeps no other request waiting. A `down` marks its tunnel as
//! stopping while it takes it apart. Every `up` is bounded by the helper's request timeout; one that runs over
//! is undone from its record on disk, which always covers what it may have made.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use culvert_core::ipc::IpcError;
use culvert_core::profile::Profile;
use culvert_core::stats::TunnelStatus;

use super::Access;
use super::admission::Admission;
use super::claims::{self, Claim};
use super::kill_switch::{Guard, KillSwitch};
use crate::overlay;
use crate::system::netlink::Way;
use crate::system::netlink::watch as system_watch;
use crate::system::resolver::{Files, Resolver};
use crate::system::{Netlink, Records};
use crate::tunnel::resolve::{self, Progress};
use crate::tunnel::uapi::SetRequest;
use crate::tunnel::{self, Tunnel, TunnelInfo, changes};

/// How long a burst of the kernel's network announcements is let settle before the tunnels follow it: an
/// address change comes with its routes' changes within a few milliseconds, and 2 s is what a roaming peer
/// may wait.
const UNDERLAY_SETTLE: Duration = Duration::from_millis(100);

/// How long culvertd works on one request before it gives up, undoes it and says why (`--request-timeout`).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Who sent a request, from SO_PEERCRED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    /// A member of the monitor group: sees the status and counters of every tunnel in full (never their packets).
    pub reads_all: bool,
}

impl Caller {
    pub const ROOT: Caller = Caller { uid: 0, gid: 0, reads_all: true };

    /// A caller who is not a monitor.
    pub fn user(uid: u32, gid: u32) -> Self {
        Self { uid, gid, reads_all: false }
    }

    /// Whether the caller may change and watch what `owner_uid` brought up: it is theirs, or they are root.
    pub fn owns(&self, owner_uid: u32) -> bool {
        self.uid == 0 || self.uid == owner_uid
    }
}

#[derive(Debug)]
enum Entry {
    /// Reserved by an `up` that is still building it.
    Starting(Claim),
    /// Up; `changing` while an `apply` works on it.
    Up { tunnel: Tunnel, claim: Claim, changing: bool },
    /// Being taken apart by a `down`.
    Stopping(Claim),
}

impl Entry {
    fn claim(&self) -> &Claim {
        match self {
            Entry::Starting(c) | Entry::Stopping(c) | Entry::Up { claim: c, .. } => c,
        }
    }
}

#[derive(Debug)]
pub struct Helper {
    netlink: Netlink,
    records: Records,
    registry: Mutex<BTreeMap<String, Entry>>,
    /// What tunnels are lent: where WireGuard's userspace APIs send `set` requests (and where
    /// [`Helper::serve_uapi_sets`] takes them from), and the resolver of endpoint names.
    services: tunnel::Services,
    pending_sets: Mutex<Option<tokio::sync::mpsc::Receiver<SetRequest>>>,
    /// Where overlays send their backend tunnels as their peers change, and where
    /// [`Helper::serve_overlay_updates`] takes them from.
    overlay_updates: tokio::sync::mpsc::Sender<overlay::Update>,
    pending_overlay_updates: Mutex<Option<tokio::sync::mpsc::Receiver<overlay::Update>>>,
    /// The tunnels `culvert enable` made, kept in the config directory.
    system: super::system_tunnels::SystemTunnels,
    kill_switch: KillSwitch,
    /// The way to each WireGuard endpoint as last seen (by tunnel and endpoint): what a change of the host's
    /// network is compared with.
    ways: Mutex<HashMap<(String, std::net::SocketAddr), Option<Way>>>,
    pub access: Access,
    /// Who may use the monitor socket, and sees every tunnel in full.
    pub monitors: Access,
    pub admission: Arc<Admission>,
    pub request_timeout: Duration,
}

impl Helper {
    pub fn new(
        netlink: Netlink,
        records: Records,
        (access, monitors): (Access, Access),
        admission: Arc<Admission>,
        request_timeout: Duration,
        system: super::system_tunnels::SystemTunnels,
        kill_switch: KillSwitch,
    ) -> Self {
        // A few at a time: `wg` waits for each answer.
        let (sets, pending) = tokio::sync::mpsc::channel(16);
        // Lookups go around the system's resolver while the kill switch's table is there, which the kill switch
        // says.
        let resolver = Resolver::new(Files::system(records.dns_originals()));
        let kill_switch = kill_switch.steering(resolver.clone());
        // Each overlay waits while its update is full; the helper takes the newest per tunnel.
        let (overlay_updates, pending_overlay) = tokio::sync::mpsc::channel(64);
        Self {
            netlink,
            records,
            registry: Mutex::default(),
            services: tunnel::Services { sets, resolver },
            pending_sets: Mutex::new(Some(pending)),
            overlay_updates,
            pending_overlay_updates: Mutex::new(Some(pending_overlay)),
            system,
            kill_switch,
            ways: Mutex::default(),
            access,
            monitors,
            admission,
            request_timeout,
        }
    }

    fn registry(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        self.registry.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Undoes what a previous helper on this state directory recorded and did not undo (it crashed).
    pub async fn recover(&self) -> std::io::Result<usize> {
        let leftovers = self.records.load_all()?;
        for record in &leftovers {
            tracing::info!("removing what tunnel {} left behind: {:?}", record.name, record.objects);
            changes::undo(&self.netlink, &self.records, record).await;
        }
        // The kill switch is not a leftover: what it guarded stays blocked until each owner says otherwise.
        let blocked = self.kill_switch.blocked(None);
        if !blocked.is_empty() {
            let names: Vec<&str> = blocked.iter().map(|b| b.name.as_str()).collect();
            tracing::info!("the kill switch still holds for {}", names.join(", "));
        }
        if let Err(e) = self.kill_switch.sync().await {
            tracing::warn!("cannot make the kill switch's table what it was: {e}");
        }
        Ok(leftovers.len())
    }

    pub async fn up(&self, caller: Caller, profile: Profile) -> Result<TunnelStatus, IpcError> {
        profile.validate()?;
        let name = profile.name.clone();
        if matches!(profile.tunnel, culvert_core::profile::Tunnel::Overlay(_)) && caller.uid != 0 {
            return Err(IpcError::NeedsRoot {
                what: "bring up an overlay tunnel".into(),
                why: "it is host infrastructure: its routes come from etcd, which culvertd talks to on its behalf"
                    .into(),
            });
        }
        // A guarded tunnel's name, and a system tunnel's (which culvertd brings up as its owner), are their
        // owners' even while the tunnel is down.
        let system_owner = self.system.owner(&name);
        if let Some(owner) = self.kill_switch.owner(&name).or(system_owner)
            && !caller.owns(owner)
        {
            return Err(IpcError::NameTaken { name, owner_uid: owner });
        }
        self.reserve(caller, &name, Claim::of(&profile, caller.uid, &[]))?;
        let progress = Progress::default();
        let work = async {
            match &profile.tunnel {
                // Boxed: an overlay's bring-up (etcd's client among it) would make every request's future large.
                culvert_core::profile::Tunnel::Overlay(settings) => {
                    Box::pin(self.build_overlay(caller, &name, settings, &progress)).await
                }
                _ => self.build(caller, profile.clone(), &progress).await,
            }
        };
        let built = match tokio::time::timeout(self.request_timeout, work).await {
            Ok(built) => built,
            Err(_) => {
                // The bring-up was dropped where it stood; its record covers everything it may have made.
                self.undo_recorded(&name).await;
                Err(IpcError::TimedOut {
                    what: format!("bringing up `{name}`"),
                    after_s: self.request_timeout.as_secs(),
                    doing: progress.get(),
                    fix: "check that the host names resolve and the helper's log, then try again".into(),
                })
            }
        };
        let built = match built {
            Ok((tunnel, claim)) => self.guard(tunnel).await.map(|tunnel| (tunnel, claim)),
            Err(e) => Err(e),
        };
        match built {
            Ok((tunnel, claim)) => {
                self.note_dns(&tunnel.info.profile());
                let status = tunnel.info.status();
                tracing::info!("tunnel {name} is up on {} for uid {}", status.interface, caller.uid);
                self.registry().insert(name.clone(), Entry::Up { tunnel, claim, changing: false });
                // A system tunnel brought down and up again by hand is still one: culvertd brings it up at start.
                if system_owner.is_some() {
                    self.mark_system(&name, true).await;
                }
                // What the next change of the host's network is compared with.
                self.follow_ways(Some(&name)).await;
                Ok(TunnelStatus { system: status.system || system_owner.is_some(), ..status })
            }
            Err(e) => {
                self.registry().remove(&name);
                Err(e)
            }
        }
    }

    /// The kill switch's view of a tunnel that is up: a full WireGuard tunnel's interface and mark.
    fn guard_of(tunnel: &Tunnel) -> Option<Guard> {
        let profile = tunnel.info.profile();
        let culvert_core::profile::Tunnel::Wireguard(w) = &profile.tunnel else { return None };
        Some(Guard {
            owner_uid: tunnel.info.owner_uid,
            interface: profile.interface().to_owned(),
            fwmark: tunnel.full_tunnel_mark()?,
            kill_switch: w.kill_switch,
            allow_lan: w.allow_lan,
            system: tunnel.info.is_system(),
            up: true,
        })
    }

    /// Puts a full tunnel that just came up under the kill switch (its way out opened, its handshakes started
    /// at once); one whose switch cannot be put in place is taken down again, since it would not be safe.
    async fn guard(&self, tunnel: Tunnel) -> Result<Tunnel, IpcError> {
        let Some(guard) = Self::guard_of(&tunnel) else { return Ok(tunnel) };
        let name = tunnel.info.name().to_owned();
        let let_through = guard.kill_switch || self.kill_switch.lockdown();
        match self.kill_switch.guard(&name, guard).await {
            Ok(()) => {
                if let_through {
                    tunnel.handshake_now();
                }
                Ok(tunnel)
            }
            Err(e) => {
                let mut tunnel = tunnel;
                tunnel.stop().await;
                changes::undo(&self.netlink, &self.records, &tunnel.record).await;
                Err(IpcError::System {
                    op: format!("putting the kill switch of `{name}` in place"),
                    message: e.to_string(),
                })
            }
        }
    }

    /// Takes the name and what the tunnel will hold, if nothing up or coming up has them.
    fn reserve(&self, caller: Caller, name: &str, claim: Claim) -> Result<(), IpcError> {
        let mut registry = self.registry();
        if let Some(entry) = registry.get(name) {
            return Err(match entry {
                Entry::Up { claim, .. } if !caller.owns(claim.owner_uid) => {
                    IpcError::NameTaken { name: name.into(), owner_uid: claim.owner_uid }
                }
                Entry::Up { .. } => IpcError::AlreadyUp { name: name.into() },
                Entry::Starting(_) | Entry::Stopping(_) => IpcError::Busy { name: name.into() },
            });
        }
        claims::check(&claim, caller.uid == 0, registry.iter().map(|(n, e)| (n.as_str(), e.claim())))?;
        registry.insert(name.into(), Entry::Starting(claim));
        Ok(())
    }

    /// Checks what tunnel `name` would hold against what every other tunnel holds.
    fn check_beside_others(
        registry: &BTreeMap<String, Entry>,
        name: &str,
        claim: &Claim,
        root: bool,
    ) -> Result<(), IpcError> {
        let others = registry.iter().filter(|(n, _)| n.as_str() != name).map(|(n, e)| (n.as_str(), e.claim()));
        claims::check(claim, root, others)
    }

    /// Takes `claim` for the `up` of `name`, once it has been checked, in one look at the registry.
    fn hold_for_up(&self, name: &str, claim: &Claim, root: bool) -> Result<(), IpcError> {
        let mut registry = self.registry();
        Self::check_beside_others(&registry, name, claim, root)?;
        registry.insert(name.to_owned(), Entry::Starting(claim.clone()));
        Ok(())
    }

    /// Everything slow of an `up`, done without the registry: host checks, name resolution, the system changes
    /// and the engine.
    async fn build(&self, caller: Caller, profile: Profile, progress: &Progress) -> Result<(Tunnel, Claim), IpcError> {
        progress.set("checking the host's links and addresses");
        let resolved = resolve::endpoints(&self.services.resolver, &profile, progress).await?;
        tunnel::host_check::check(&self.netlink, &profile, &resolved, false).await?;
        // The endpoints host names gave are part of what the tunnel holds.
        let claim = Claim::of(&profile, caller.uid, &resolved);
        self.hold_for_up(&profile.name, &claim, caller.uid == 0)?;
        progress.set("configuring the device, its addresses and routes");
        let tunnel = tunnel::up(&self.netlink, &self.records, profile, &resolved, caller.uid, &self.services).await?;
        Ok((tunnel, claim))
    }

    /// An overlay's bring-up: its lease in etcd, then the backend tunnel with the peers the other leases make,
    /// then the subnet file; the lease is given back if anything after it fails.
    async fn build_overlay(
        &self,
        caller: Caller,
        name: &str,
        settings: &culvert_core::profile::OverlayTunnel,
        progress: &Progress,
    ) -> Result<(Tunnel, Claim), IpcError> {
        progress.set("reading the network's config and taking a lease in etcd");
        let mut session = overlay::Session::start(name, settings, &self.records.overlay_key(name)).await?;
        let public_ip = std::net::IpAddr::V4(session.public_ip());
        let underlay = self.netlink.addresses().await.ok().and_then(|all| {
            all.into_iter().find(|a| a.net.addr() == public_ip).and_then(|a| match a.net {
                ipnet::IpNet::V4(net) => Some(net.trunc()),
                ipnet::IpNet::V6(_) => None,
            })
        });
        session.set_underlay(underlay);
        progress.set("configuring the backend's link and routes");
        let built = async {
            let backend = session.backend_profile();
            backend.validate_overlay_backend()?;
            tunnel::host_check::check(&self.netlink, &backend, &Vec::new(), false).await?;
            let claim = Claim::of(&backend, caller.uid, &[]);
            self.hold_for_up(name, &claim, true)?;
            let mut tunnel =
                tunnel::up(&self.netlink, &self.records, backend, &Vec::new(), caller.uid, &self.services).await?;
            if let Err(e) = self.finish_overlay(&mut tunnel, &session, settings).await {
                tunnel.stop().await;
                changes::undo(&self.netlink, &self.records, &tunnel.record).await;
                return Err(e);
            }
            Ok::<_, IpcError>((tunnel, claim))
        }
        .await;
        match built {
            Ok((mut tunnel, claim)) => {
                tracing::info!(
                    "overlay {name}: leased {} of {} for {}",
                    session.subnet(),
                    session.network().network,
                    session.public_ip()
                );
                tunnel.info.set_registry(session.view());
                tunnel.add_task(tokio::spawn(session.run(self.overlay_updates.clone())));
                Ok((tunnel, claim))
            }
            Err(e) => {
                session.abandon().await;
                Err(e)
            }
        }
    }

    /// What an overlay adds beside its backend tunnel: the NAT of `ip_masq` (recorded first, like every object)
    /// and the subnet file its pods are configured from.
    async fn finish_overlay(
        &self,
        tunnel: &mut Tunnel,
        session: &overlay::Session,
        settings: &culvert_core::profile::OverlayTunnel,
    ) -> Result<(), IpcError> {
        let (network, subnet) = (session.network().network, session.subnet());
        if settings.ip_masq {
            let table = crate::system::nft::masq_table(&tunnel.record.name);
            tunnel.record.objects.push(crate::system::record::Object::NftTable { name: table.clone() });
            self.records.write(&tunnel.record).map_err(|e| IpcError::System {
                op: "recording the tunnel in the state directory".into(),
                message: e.to_string(),
            })?;
            crate::system::nft::apply(crate::system::nft::masq_ruleset(&table, network, subnet))
                .await
                .map_err(|e| IpcError::System { op: format!("adding nftables table {table}"), message: e.message })?;
        }
        if let Some(file) = session.subnet_file() {
            let mtu = self.overlay_mtu(tunnel, session).await;
            let text = overlay::subnet_env::text(network, subnet, mtu, settings.ip_masq);
            overlay::subnet_env::write(&file, &text)
                .map_err(|e| IpcError::System { op: format!("writing {}", file.display()), message: e.to_string() })?;
        }
        Ok(())
    }

    /// The MTU pods of an overlay get: its VXLAN link's, or for host-gw the underlay's.
    async fn overlay_mtu(&self, tunnel: &Tunnel, session: &overlay::Session) -> u16 {
        let profile = tunnel.info.profile();
        let index = if profile.has_link() {
            self.netlink.link(profile.interface()).await.ok().flatten().map(|l| l.index)
        } else {
            let ip = std::net::IpAddr::V4(session.public_ip());
            self.netlink
                .addresses()
                .await
                .ok()
                .and_then(|a| a.into_iter().find(|a| a.net.addr() == ip))
                .map(|a| a.index)
        };
        let mtu = match index {
            Some(i) => self.netlink.mtu(i).await.ok().flatten(),
            None => None,
        };
        mtu.and_then(|m| u16::try_from(m).ok()).unwrap_or(1450)
    }

    /// Applies the backend tunnels overlays send as their peers change, the newest of each, until the helper
    /// ends. A tunnel that went down meanwhile is left down.
    pub async fn serve_overlay_updates(self: Arc<Self>) {
        let Some(mut pending) =
            self.pending_overlay_updates.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
        else {
            return;
        };
        while let Some(first) = pending.recv().await {
            let mut newest = BTreeMap::new();
            newest.insert(first.tunnel.clone(), first.profile);
            while let Ok(more) = pending.try_recv() {
                newest.insert(more.tunnel.clone(), more.profile);
            }
            for (name, profile) in newest {
                match self.change_overlay(&name, profile).await {
                    Ok(notes) if !notes.is_empty() => tracing::info!("overlay {name}: {}", notes.join("; ")),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("overlay {name}: applying the hosts etcd lists: {e}"),
                }
            }
        }
    }

    async fn change_overlay(&self, name: &str, profile: Profile) -> Result<Vec<String>, IpcError> {
        profile.validate_overlay_backend()?;
        let parts = {
            let mut registry = self.registry();
            match registry.get_mut(name) {
                Some(Entry::Up { tunnel, changing, .. }) if !*changing && tunnel.info.registry().is_some() => {
                    *changing = true;
                    tunnel.parts()
                }
                _ => return Ok(vec![]),
            }
        };
        let changed = self.change(Caller::ROOT, &parts, profile).await;
        self.finish_change(name, changed).map(|(_, notes)| notes)
    }

    /// Takes the tunnel `profile` names to exactly that profile, without taking it down: see
    /// [`tunnel::apply`]. A tunnel that is down is brought up. Returns its status and what was done.
    pub async fn apply(&self, caller: Caller, profile: Profile) -> Result<(TunnelStatus, Vec<String>), IpcError> {
        profile.validate()?;
        let name = profile.name.clone();
        let parts = {
            let mut registry = self.registry();
            match registry.get_mut(&name) {
                None => None,
                Some(Entry::Up { claim, .. }) if !caller.owns(claim.owner_uid) => {
                    let owner_uid = claim.owner_uid;
                    return Err(IpcError::NotOwner { name, owner_uid, action: "change it".into() });
                }
                Some(Entry::Up { tunnel, .. })
                    if tunnel.info.registry().is_some()
                        || matches!(profile.tunnel, culvert_core::profile::Tunnel::Overlay(_)) =>
                {
                    return Err(IpcError::InvalidProfile {
                        field: "kind".into(),
                        reason: format!("`{name}` is an overlay tunnel, whose peers come from etcd and follow it"),
                        fix: format!("to change its own settings, `culvert down {name}` and bring it up again"),
                    });
                }
                Some(Entry::Up { tunnel, changing, .. }) if !*changing => {
                    *changing = true;
                    Some(tunnel.parts())
                }
                Some(_) => return Err(IpcError::Busy { name }),
            }
        };
        let Some(parts) = parts else {
            let status = self.up(caller, profile).await?;
            return Ok((status, vec!["brought up: it was down".into()]));
        };
        let changed = self.change(caller, &parts, profile).await;
        let (status, notes) = self.finish_change(&name, changed)?;
        if let Some(info) = self.visible(Caller::ROOT, Some(&name)).ok().and_then(|v| v.into_iter().next()) {
            self.note_dns(&info.0.profile());
        }
        self.reguard(&name).await?;
        tracing::info!("tunnel {name} changed for uid {}: {}", caller.uid, notes.join("; "));
        Ok((status, notes))
    }

    /// Tells the resolver which DNS servers a tunnel that is up sets: they are never asked for an endpoint.
    fn note_dns(&self, profile: &Profile) {
        let servers = match &profile.tunnel {
            culvert_core::profile::Tunnel::Wireguard(w) => w.dns.as_slice(),
            _ => &[],
        };
        self.services.resolver.set_tunnel_dns(&profile.name, servers);
    }

    /// Makes the kill switch follow a change of tunnel `name` (its switch turned on or off, or the LAN).
    async fn reguard(&self, name: &str) -> Result<(), IpcError> {
        let guard = match self.registry().get(name) {
            Some(Entry::Up { tunnel, .. }) => Self::guard_of(tunnel),
            _ => return Ok(()),
        };
        let Some(guard) = guard else { return Ok(()) };
        self.kill_switch.guard(name, guard).await.map_err(|e| IpcError::System {
            op: format!("changing the kill switch for `{name}` (the tunnel itself changed)"),
            message: e.to_string(),
        })
    }

    /// Ends a change of tunnel `name`: keeps what it did (or, when it failed, nothing) and frees the tunnel
    /// for the next one.
    fn finish_change(
        &self,
        name: &str,
        changed: Result<(tunnel::apply::Applied, Claim), IpcError>,
    ) -> Result<(TunnelStatus, Vec<String>), IpcError> {
        let mut registry = self.registry();
        let Some(Entry::Up { tunnel, claim, changing }) = registry.get_mut(name) else {
            return Err(IpcError::NotFound { name: name.into() });
        };
        *changing = false;
        let (applied, new_claim) = changed?;
        tunnel.record = applied.record;
        *claim = new_claim;
        if let (Some((socket, mtu)), Some(datapath)) = (applied.restart, tunnel.datapath.as_mut()) {
            datapath.restart(socket, mtu);
        }
        Ok((tunnel.info.status(), applied.notes))
    }

    async fn change(
        &self,
        caller: Caller,
        parts: &tunnel::apply::Parts,
        profile: Profile,
    ) -> Result<(tunnel::apply::Applied, Claim), IpcError> {
        let progress = Progress::default();
        // Only the resolver may wait: the change itself is bounded by netlink, and must not stop half-way.
        let resolved = match tokio::time::timeout(
            self.request_timeout,
            resolve::endpoints(&self.services.resolver, &profile, &progress),
        )
        .await
        {
            Ok(resolved) => resolved?,
            Err(_) => {
                return Err(IpcError::TimedOut {
                    what: format!("changing `{}`", profile.name),
                    after_s: self.request_timeout.as_secs(),
                    doing: progress.get(),
                    fix: "check that the host names resolve; the tunnel is as it was".into(),
                });
            }
        };
        let claim = Claim::of(&profile, parts.info.owner_uid, &resolved);
        Self::check_beside_others(&self.registry(), &profile.name, &claim, caller.uid == 0)?;
        tunnel::host_check::check(&self.netlink, &profile, &resolved, true).await?;
        let applied = tunnel::apply::apply(&self.netlink, &self.records, parts, &profile, &resolved).await?;
        Ok((applied, claim))
    }

    /// Applies the `set` requests of WireGuard tunnels' userspace APIs (`wg set`, `wg syncconf`, ...) until the
    /// helper ends: each becomes the tunnel's profile changed as it says, applied as by root (only root may use
    /// those sockets); the tunnel stays its owner's.
    pub async fn serve_uapi_sets(self: Arc<Self>) {
        let Some(mut pending) = self.pending_sets.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
        else {
            return;
        };
        while let Some(request) = pending.recv().await {
            let errno = self.uapi_set(&request.tunnel, &request.set).await;
            let _ = request.reply.send(errno);
        }
    }

    async fn uapi_set(&self, name: &str, set: &tunnel::uapi::request::SetDevice) -> i32 {
        let Ok((info, _)) = self.visible(Caller::ROOT, Some(name)).map(|mut v| v.remove(0)) else {
            return libc::ENODEV;
        };
        let mut profile = (*info.profile()).clone();
        let bound = info.listen_port().unwrap_or(0);
        let culvert_core::profile::Tunnel::Wireguard(config) = &profile.tunnel else { return libc::EINVAL };
        profile.tunnel = culvert_core::profile::Tunnel::Wireguard(tunnel::uapi::set::apply_set(config, bound, set));
        match self.apply(Caller::ROOT, profile).await {
            Ok((_, changes)) => {
                tracing::info!(
                    "tunnel {name}: wg set: {}",
                    if changes.is_empty() { "nothing changed".into() } else { changes.join("; ") }
                );
                0
            }
            Err(e) => {
                tracing::info!("tunnel {name}: wg set refused: {e}");
                match e {
                    IpcError::InvalidProfile { .. } | IpcError::TooLarge { .. } => libc::EINVAL,
                    IpcError::Busy { .. } => libc::EBUSY,
                    _ => libc::EIO,
                }
            }
        }
    }

    async fn undo_recorded(&self, name: &str) {
        match self.records.load(name) {
            Ok(Some(record)) => changes::undo(&self.netlink, &self.records, &record).await,
            Ok(None) => {}
            Err(e) => tracing::warn!("tunnel {name}: cannot read its record to undo it: {e}"),
        }
    }

    pub async fn down(&self, caller: Caller, name: &str) -> Result<Vec<String>, IpcError> {
        self.down_keeping(caller, name, false).await
    }

    /// Brings tunnel `name` down; with `keep_switch`, its kill switch stays (culvertd is stopping).
    async fn down_keeping(&self, caller: Caller, name: &str, keep_switch: bool) -> Result<Vec<String>, IpcError> {
        if !self.registry().contains_key(name) {
            return self.unblock(caller, name).await;
        }
        let tunnel = {
            let mut registry = self.registry();
            let entry = registry.remove(name).ok_or_else(|| IpcError::NotFound { name: name.into() })?;
            match entry {
                Entry::Up { tunnel, claim, changing: false } if caller.owns(claim.owner_uid) => {
                    registry.insert(name.into(), Entry::Stopping(claim));
                    tunnel
                }
                other => {
                    let error = match &other {
                        Entry::Up { claim, .. } if !caller.owns(claim.owner_uid) => IpcError::NotOwner {
                            name: name.into(),
                            owner_uid: claim.owner_uid,
                            action: "bring it down".into(),
                        },
                        _ => IpcError::Busy { name: name.into() },
                    };
                    registry.insert(name.into(), other);
                    return Err(error);
                }
            }
        };
        self.tear_down(tunnel).await;
        if !keep_switch {
            self.kill_switch.release(name).await.map_err(|e| IpcError::System {
                op: format!("lifting the kill switch of `{name}`, which is down"),
                message: e.to_string(),
            })?;
        }
        Ok(vec![name.into()])
    }

    /// `down` of a tunnel that is not up: lifts its kill switch if it still holds.
    async fn unblock(&self, caller: Caller, name: &str) -> Result<Vec<String>, IpcError> {
        let owner = self.kill_switch.owner(name).ok_or_else(|| IpcError::NotFound { name: name.into() })?;
        if !caller.owns(owner) {
            return Err(IpcError::NotOwner { name: name.into(), owner_uid: owner, action: "bring it down".into() });
        }
        self.kill_switch.release(name).await.map_err(|e| IpcError::System {
            op: format!("lifting the kill switch of `{name}`"),
            message: e.to_string(),
        })?;
        tracing::info!("the kill switch of {name} is lifted by uid {}", caller.uid);
        Ok(vec![name.into()])
    }

    /// Turns lockdown on or off (`None`: leaves it as it is); whether it is on.
    pub async fn lockdown(&self, caller: Caller, on: Option<bool>) -> Result<bool, IpcError> {
        if let Some(on) = on {
            self.kill_switch.set_lockdown(on).await.map_err(|e| IpcError::System {
                op: format!("turning lockdown {}", if on { "on" } else { "off" }),
                message: e.to_string(),
            })?;
            tracing::info!("lockdown is {} (uid {})", if on { "on" } else { "off" }, caller.uid);
        }
        Ok(self.kill_switch.lockdown())
    }

    /// Makes `profile` a system tunnel of the caller's: up now (changed live if it is up already), kept in the
    /// config directory, and up again whenever culvertd starts. Nothing is kept if it cannot come up.
    pub async fn enable(&self, caller: Caller, profile: Profile) -> Result<TunnelStatus, IpcError> {
        let name = profile.name.clone();
        if let Some(owner) = self.system.owner(&name)
            && !caller.owns(owner)
        {
            return Err(IpcError::NameTaken { name, owner_uid: owner });
        }
        let status = match self.up(caller, profile.clone()).await {
            Ok(status) => status,
            Err(IpcError::AlreadyUp { .. }) => self.apply(caller, profile.clone()).await?.0,
            Err(e) => return Err(e),
        };
        if let Err(e) = self.system.store(caller.uid, &profile) {
            let _ = self.down(caller, &name).await;
            return Err(IpcError::System { op: format!("keeping system tunnel {name}"), message: e.to_string() });
        }
        self.mark_system(&name, true).await;
        tracing::info!("tunnel {name} is a system tunnel of uid {}", caller.uid);
        Ok(TunnelStatus { system: true, ..status })
    }

    /// The system tunnels `caller` owns (root: all), up or not; a file that cannot be read is left out (its
    /// tunnel's start said why in the log).
    pub fn system_tunnels(&self, caller: Caller) -> Vec<culvert_core::stats::SystemTunnel> {
        self.system
            .list()
            .into_iter()
            .filter_map(|(name, stored)| stored.ok().map(|(owner, profile)| (name, owner, profile)))
            .filter(|(_, owner, _)| caller.owns(*owner) || caller.reads_all)
            .map(|(name, owner_uid, profile)| culvert_core::stats::SystemTunnel {
                kind: profile.kind(),
                kill_switch: matches!(&profile.tunnel, culvert_core::profile::Tunnel::Wireguard(w) if w.kill_switch),
                name,
                owner_uid,
            })
            .collect()
    }

    /// Brings system tunnel `name` down (if it is up) and forgets it: its owner or root.
    pub async fn disable(&self, caller: Caller, name: &str) -> Result<(), IpcError> {
        let owner = self.system.owner(name).ok_or_else(|| IpcError::NotFound { name: name.into() })?;
        if !caller.owns(owner) {
            return Err(IpcError::NotOwner { name: name.into(), owner_uid: owner, action: "disable it".into() });
        }
        match self.down(Caller { uid: owner, ..caller }, name).await {
            Ok(_) | Err(IpcError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        self.system
            .remove(name)
            .map_err(|e| IpcError::System { op: format!("forgetting system tunnel {name}"), message: e.to_string() })?;
        tracing::info!("tunnel {name} is no longer a system tunnel");
        Ok(())
    }

    /// Marks a tunnel that is up as a system tunnel (or not), in its status and in its kill switch's record, so
    /// that the switch outlives a stopped culvertd as a system tunnel's does.
    async fn mark_system(&self, name: &str, system: bool) {
        if let Some(Entry::Up { tunnel, .. }) = self.registry().get(name) {
            tunnel.info.set_system(system);
        }
        if let Err(e) = self.kill_switch.set_system(name, system).await {
            tracing::warn!("tunnel {name}: keeping its kill switch as a system tunnel's: {e}");
        }
    }

    /// Brings every system tunnel up as its owner, as culvertd starts (after the previous run's leftovers are
    /// gone); one that cannot come up is logged with why and left for its owner.
    pub async fn bring_up_system_tunnels(&self) -> usize {
        let mut up = 0;
        for (name, stored) in self.system.list() {
            let (owner, profile) = match stored {
                Ok(found) => found,
                Err(why) => {
                    tracing::warn!("system tunnel {name} is not brought up: {why}");
                    continue;
                }
            };
            match self.up(Caller::user(owner, 0), profile).await {
                Ok(_) => {
                    self.mark_system(&name, true).await;
                    up += 1;
                }
                Err(e) => tracing::warn!("system tunnel {name} did not come up: {e}"),
            }
        }
        up
    }

    /// Brings down every tunnel the caller may manage.
    pub async fn down_all(&self, caller: Caller) -> Vec<String> {
        let names: Vec<String> = self
            .registry()
            .iter()
            .filter(|(_, e)| matches!(e, Entry::Up { claim, .. } if caller.owns(claim.owner_uid)))
            .map(|(n, _)| n.clone())
            .collect();
        let mut down = Vec::new();
        for name in names {
            if self.down(caller, &name).await.is_ok() {
                down.push(name);
            }
        }
        // And the blocks the kill switch still holds for the caller's tunnels that are not up.
        for blocked in self.kill_switch.blocked(None) {
            if caller.owns(blocked.guard.owner_uid) && self.unblock(caller, &blocked.name).await.is_ok() {
                down.push(blocked.name);
            }
        }
        down
    }

    async fn tear_down(&self, mut tunnel: Tunnel) {
        let kind = tunnel.kind();
        tunnel.stop().await;
        if let Some(registry) = tunnel.info.registry() {
            // Bounded: with etcd away, the lease simply runs out.
            if tokio::time::timeout(std::time::Duration::from_secs(3), registry.leave()).await.is_err() {
                tracing::warn!("overlay {}: etcd did not answer; its lease ends at its expiry", tunnel.info.name());
            }
        }
        changes::undo(&self.netlink, &self.records, &tunnel.record).await;
        self.services.resolver.set_tunnel_dns(tunnel.info.name(), &[]);
        tracing::info!("{kind} tunnel {} is down", tunnel.info.name());
        self.registry().remove(tunnel.info.name());
        // A userspace tunnel's buffers are large: worth giving back.
        crate::system::memory::released(crate::system::memory::WORTH_IT);
    }

    /// The tunnels that are up (all, or the one named), each with whether the caller may see it in full.
    pub fn visible(&self, caller: Caller, name: Option<&str>) -> Result<Vec<(Arc<TunnelInfo>, bool)>, IpcError> {
        let registry = self.registry();
        let up = |e: &Entry| match e {
            Entry::Up { tunnel, .. } => {
                Some((tunnel.info.clone(), caller.owns(tunnel.info.owner_uid) || caller.reads_all))
            }
            _ => None,
        };
        match name {
            Some(name) => match registry.get(name).and_then(up) {
                Some(found) => Ok(vec![found]),
                None => Err(IpcError::NotFound { name: name.into() }),
            },
            None => Ok(registry.values().filter_map(up).collect()),
        }
    }

    /// A tunnel the caller may watch: their own, or any for root and monitors (packet samples are the owner's
    /// and root's only: the subscription checks).
    pub fn watchable(&self, caller: Caller, name: &str) -> Result<Arc<TunnelInfo>, IpcError> {
        let (info, owned) = self.visible(caller, Some(name))?.remove(0);
        if !owned {
            return Err(IpcError::NotOwner { name: name.into(), owner_uid: info.owner_uid, action: "watch it".into() });
        }
        Ok(info)
    }

    /// Follows the host's network until the helper ends: after each burst of link, address or route changes,
    /// the way (interface, source address, gateway) to every WireGuard peer's endpoint is looked up again, and
    /// each peer whose way changed gets a handshake at once, from where its packets leave now, and its tunnel
    /// looks its host names up again. So a new address or default route is used, and a roaming peer learns it,
    /// within moments; a change that moves no endpoint (a tunnel's own routes, a link-local address) moves no
    /// session.
    pub async fn follow_underlay(self: Arc<Self>, mut changes: tokio::sync::mpsc::Receiver<system_watch::Change>) {
        while changes.recv().await.is_some() {
            // One change comes with others (an address takes its routes with it): act once on the whole burst.
            tokio::time::sleep(UNDERLAY_SETTLE).await;
            while changes.try_recv().is_ok() {}
            let followed = self.follow_ways(None).await;
            if !followed.is_empty() {
                tracing::info!("the host's network changed: new handshakes for {}", followed.join(", "));
            }
        }
    }

    /// Looks up the way to each endpoint of the WireGuard tunnels (all, or the one named) and compares it with
    /// the last one seen: peers whose way changed get a handshake at once. An endpoint seen for the first time
    /// (a new tunnel, a peer that roamed) is only remembered. Returns the tunnels that had a peer's way change.
    async fn follow_ways(&self, only: Option<&str>) -> Vec<String> {
        let followed: Vec<(String, Option<u32>, tunnel::Engine, Arc<TunnelInfo>)> = self
            .registry()
            .iter()
            .filter(|(name, _)| only.is_none_or(|o| o == name.as_str()))
            .filter_map(|(name, e)| match e {
                Entry::Up { tunnel, .. } if matches!(tunnel.engine, tunnel::Engine::Wireguard(_)) => {
                    let profile = tunnel.info.profile();
                    let mark = match &profile.tunnel {
                        culvert_core::profile::Tunnel::Wireguard(w) => tunnel.full_tunnel_mark().or(w.fwmark),
                        _ => None,
                    };
                    Some((name.clone(), mark, tunnel.engine.clone(), tunnel.info.clone()))
                }
                _ => None,
            })
            .collect();
        let mut moved = Vec::new();
        for (name, mark, engine, info) in followed {
            let tunnel::Engine::Wireguard(proto) = engine else { continue };
            let core = proto.load();
            let mut any = false;
            let mut current = std::collections::HashSet::new();
            for peer in &core.peers {
                let Some(endpoint) = peer.endpoint() else { continue };
                current.insert(endpoint);
                let way = self.netlink.way_to(endpoint.ip(), mark).await.ok().flatten();
                let before = self.ways().insert((name.clone(), endpoint), way);
                if before.is_some_and(|before| before != way) {
                    peer.restart_handshake();
                    any = true;
                }
            }
            // Where peers roamed from is no longer compared with anything.
            self.ways().retain(|(n, endpoint), _| *n != name || current.contains(endpoint));
            if any {
                info.network_changed.notify_one();
                moved.push(name);
            }
        }
        if only.is_none() {
            let registry = self.registry();
            self.ways().retain(|(name, _), _| matches!(registry.get(name), Some(Entry::Up { .. })));
        }
        moved
    }

    fn ways(&self) -> MutexGuard<'_, HashMap<(String, std::net::SocketAddr), Option<Way>>> {
        self.ways.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// After each resume from suspend (logind's `PrepareForSleep`), every WireGuard tunnel starts over as after
    /// a change of the network, until the stream ends.
    pub async fn follow_sleep(self: Arc<Self>, resumes: impl futures::Stream<Item = ()>) {
        tracing::info!("following suspend and resume through logind on the system bus");
        let mut resumes = std::pin::pin!(resumes);
        while futures::StreamExt::next(&mut resumes).await.is_some() {
            let followed = self.network_changed();
            tracing::info!("resumed from sleep: new handshakes for {}", followed.join(", "));
        }
    }

    /// Each time NetworkManager starts while tunnels are up (by hand, or installed, after they came up; at boot
    /// culvertd starts after it), their links are marked unmanaged in it again, until the stream ends.
    pub async fn follow_network_manager(self: Arc<Self>, starts: impl futures::Stream<Item = ()>) {
        let mut starts = std::pin::pin!(starts);
        while futures::StreamExt::next(&mut starts).await.is_some() {
            let links: Vec<String> = self
                .registry()
                .values()
                .filter_map(|entry| match entry {
                    Entry::Up { tunnel, .. } => Some(tunnel.info.profile()),
                    _ => None,
                })
                .filter(|profile| profile.has_link())
                .map(|profile| profile.interface().to_owned())
                .collect();
            tracing::info!("NetworkManager started: leaving {} unmanaged", links.join(", "));
            for link in links {
                let within = crate::system::network_manager::FIND_AFTER_START_WITHIN;
                tunnel::keep_from_network_manager(&self.netlink, &link, within).await;
            }
        }
    }

    /// Tells every WireGuard tunnel that the host's network changed; their names.
    fn network_changed(&self) -> Vec<String> {
        let mut followed = Vec::new();
        for entry in self.registry().values() {
            if let Entry::Up { tunnel, .. } = entry
                && matches!(tunnel.engine, tunnel::Engine::Wireguard(_))
            {
                tunnel.network_changed();
                followed.push(tunnel.info.name().to_owned());
            }
        }
        followed
    }

    /// Brings every tunnel down, as on SIGTERM. System tunnels' kill switches and lockdown stay: culvertd brings
    /// those tunnels up again when it starts, and until then nothing leaves around them.
    pub async fn shut_down(&self) {
        let names: Vec<String> =
            self.registry().iter().filter(|(_, e)| matches!(e, Entry::Up { .. })).map(|(n, _)| n.clone()).collect();
        for name in names {
            if let Err(e) = self.down_keeping(Caller::ROOT, &name, true).await {
                tracing::warn!("tunnel {name}: {e}");
            }
        }
        if let Err(e) = self.kill_switch.stopping().await {
            tracing::warn!("the kill switch as culvertd stops: {e}");
        }
    }

    /// The status of every tunnel the caller may see (or the one named), each with whether they see it in full:
    /// those that are up, and those whose kill switch holds while they are not.
    pub fn statuses(&self, caller: Caller, name: Option<&str>) -> Result<Vec<(TunnelStatus, bool)>, IpcError> {
        let up = match self.visible(caller, name) {
            Ok(up) => up,
            Err(IpcError::NotFound { .. }) if name.is_some() => vec![],
            Err(e) => return Err(e),
        };
        let mut all: Vec<(TunnelStatus, bool)> = up.into_iter().map(|(info, full)| (info.status(), full)).collect();
        let up_names: std::collections::BTreeSet<String> = self.registry().keys().cloned().collect();
        for blocked in self.kill_switch.blocked(name) {
            if up_names.contains(&blocked.name) {
                continue;
            }
            let why = if blocked.guard.kill_switch { "its kill switch holds" } else { "lockdown is on" };
            let reason = format!(
                "not up, and nothing leaves the host around it: {why} (culvertd restarted or stopped while it was \
                 up); `culvert up {0}` connects again, `culvert down {0}` lifts the block",
                blocked.name
            );
            let status = TunnelStatus {
                name: blocked.name.clone(),
                kind: culvert_core::profile::Kind::Wireguard,
                state: culvert_core::stats::TunnelState::Blocked,
                reason: Some(reason),
                interface: blocked.guard.interface.clone(),
                listen_port: None,
                owner_uid: blocked.guard.owner_uid,
                system: blocked.guard.system,
                kill_switch: blocked.guard.kill_switch,
                up_since: 0,
                counters: Default::default(),
                peers: vec![],
                overlay: None,
            };
            all.push((status, caller.owns(blocked.guard.owner_uid)));
        }
        if all.is_empty()
            && let Some(name) = name
        {
            return Err(IpcError::NotFound { name: name.into() });
        }
        all.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        Ok(all)
    }
}
