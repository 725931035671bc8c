//! The registry of tunnels and the operations requests ask for.

use std::collections::BTreeMap;
use std::sync::Arc;

use culvert_core::ipc::IpcError;
use culvert_core::profile::{Profile, Tunnel as TunnelConfig};
use culvert_core::stats::TunnelStatus;
use tokio::sync::Mutex;

use super::Access;
use crate::system::{Netlink, Records};
use crate::tunnel::userspace::system;
use crate::tunnel::{Tunnel, TunnelInfo, changes, hostgw, tap, udp, vxlan, wireguard};

/// Who sent a request, from SO_PEERCRED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
}

impl Caller {
    fn may_manage(&self, tunnel: &Tunnel) -> bool {
        self.uid == 0 || self.uid == tunnel.info.owner_uid
    }
}

#[derive(Debug)]
pub struct Helper {
    netlink: Netlink,
    records: Records,
    tunnels: Mutex<BTreeMap<String, Tunnel>>,
    pub access: Access,
}

impl Helper {
    pub fn new(netlink: Netlink, records: Records, access: Access) -> Self {
        Self { netlink, records, tunnels: Mutex::default(), access }
    }

    /// Undoes what a previous helper on this state directory recorded and did not undo (it crashed).
    pub async fn recover(&self) -> std::io::Result<usize> {
        let leftovers = self.records.load_all()?;
        for record in &leftovers {
            tracing::info!("removing what tunnel {} left behind: {:?}", record.name, record.objects);
            changes::undo(&self.netlink, &self.records, record).await;
        }
        Ok(leftovers.len())
    }

    pub async fn up(&self, caller: Caller, profile: Profile) -> Result<TunnelStatus, IpcError> {
        profile.validate()?;
        let mut tunnels = self.tunnels.lock().await;
        if tunnels.contains_key(&profile.name) {
            return Err(IpcError::AlreadyUp { name: profile.name });
        }
        // host-gw makes no link, so it has no name to collide.
        if profile.has_link() {
            self.check_interface_free(&tunnels, profile.interface()).await?;
        }
        let name = profile.name.clone();
        let tunnel = match &profile.tunnel {
            TunnelConfig::Udp(c) => {
                let c = c.clone();
                udp::up(&self.netlink, &self.records, profile, &c, caller.uid).await?
            }
            TunnelConfig::Wireguard(c) => {
                let c = c.clone();
                wireguard::up(&self.netlink, &self.records, profile, &c, caller.uid).await?
            }
            TunnelConfig::Vxlan(c) => {
                let c = c.clone();
                vxlan::up(&self.netlink, &self.records, profile, &c, caller.uid).await?
            }
            TunnelConfig::Tap(c) => {
                let c = c.clone();
                tap::up(&self.netlink, &self.records, profile, &c, caller.uid).await?
            }
            TunnelConfig::Hostgw(c) => {
                let c = c.clone();
                hostgw::up(&self.netlink, &self.records, profile, &c, caller.uid).await?
            }
        };
        let status = tunnel.info.status();
        tracing::info!("tunnel {name} is up on {} for uid {}", status.interface, caller.uid);
        tunnels.insert(name, tunnel);
        Ok(status)
    }

    /// A tunnel's link name must be no other tunnel's and no existing link's (Culvert never takes one over).
    async fn check_interface_free(&self, tunnels: &BTreeMap<String, Tunnel>, interface: &str) -> Result<(), IpcError> {
        if let Some(other) =
            tunnels.values().find(|t| t.info.profile.has_link() && t.info.profile.interface() == interface)
        {
            return Err(IpcError::InvalidProfile {
                field: "interface".into(),
                reason: format!("`{interface}` is the interface of tunnel `{}`, which is up", other.info.name()),
                fix: "set `interface` to another name".into(),
            });
        }
        if self.netlink.link(interface).await.map_err(system)?.is_some() {
            return Err(IpcError::InvalidProfile {
                field: "interface".into(),
                reason: format!("a link named `{interface}` already exists and Culvert did not create it"),
                fix: "set `interface` to a name no link uses".into(),
            });
        }
        Ok(())
    }

    pub async fn down(&self, caller: Caller, name: &str) -> Result<Vec<String>, IpcError> {
        let mut tunnels = self.tunnels.lock().await;
        let tunnel = tunnels.get(name).ok_or_else(|| IpcError::NotFound { name: name.into() })?;
        if !caller.may_manage(tunnel) {
            return Err(IpcError::NotOwner { name: name.into(), owner_uid: tunnel.info.owner_uid });
        }
        if let Some(tunnel) = tunnels.remove(name) {
            self.tear_down(tunnel).await;
        }
        Ok(vec![name.into()])
    }

    /// Brings down every tunnel the caller may manage.
    pub async fn down_all(&self, caller: Caller) -> Vec<String> {
        let mut tunnels = self.tunnels.lock().await;
        let names: Vec<String> =
            tunnels.values().filter(|t| caller.may_manage(t)).map(|t| t.info.name().to_owned()).collect();
        for name in &names {
            if let Some(tunnel) = tunnels.remove(name) {
                self.tear_down(tunnel).await;
            }
        }
        names
    }

    async fn tear_down(&self, mut tunnel: Tunnel) {
        let kind = tunnel.kind();
        tunnel.stop().await;
        changes::undo(&self.netlink, &self.records, &tunnel.record).await;
        tracing::info!("{kind} tunnel {} is down", tunnel.info.name());
    }

    pub async fn status(&self, name: Option<&str>) -> Result<Vec<TunnelStatus>, IpcError> {
        let tunnels = self.tunnels.lock().await;
        match name {
            Some(name) => {
                tunnels.get(name).map(|t| vec![t.info.status()]).ok_or_else(|| IpcError::NotFound { name: name.into() })
            }
            None => Ok(tunnels.values().map(|t| t.info.status()).collect()),
        }
    }

    pub async fn info(&self, name: &str) -> Result<Arc<TunnelInfo>, IpcError> {
        self.tunnels
            .lock()
            .await
            .get(name)
            .map(|t| t.info.clone())
            .ok_or_else(|| IpcError::NotFound { name: name.into() })
    }

    /// Brings every tunnel down, as on SIGTERM.
    pub async fn shut_down(&self) {
        self.down_all(Caller { uid: 0, gid: 0 }).await;
    }
}
