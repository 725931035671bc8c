//! What the app tells its UI, as TypeScript types generated into ui/src/bindings by `cargo test`.

use culvert_core::client::ClientError;
use culvert_core::ipc::IpcError;
use culvert_core::packets::PacketSample;
use culvert_core::profile::Kind;
use culvert_core::stats::{OtherTunnel, SystemTunnel, TunnelStatus, TunnelView};
use serde::Serialize;
use ts_rs::TS;

/// Whether the app can use culvertd, and if not, the one thing to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[ts(export)]
pub struct HelperState {
    pub kind: HelperStateKind,
    pub message: String,
    pub socket: String,
    pub helper_version: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[ts(export)]
#[serde(rename_all = "snake_case")]
pub enum HelperStateKind {
    Ok,
    NotRunning,
    NotAuthorized,
    NotInstalled,
    Incompatible,
    Error,
}

/// Where culvertd is installed by the packages; without it and without a socket, it is not installed.
const INSTALLED_HELPER: &str = "/usr/bin/culvertd";

impl HelperState {
    pub fn ok(socket: &str, helper_version: &str) -> Self {
        Self {
            kind: HelperStateKind::Ok,
            message: format!("culvertd {helper_version} on {socket}"),
            socket: socket.into(),
            helper_version: Some(helper_version.into()),
        }
    }

    pub fn from_error(socket: &str, e: &ClientError) -> Self {
        let kind = match e {
            ClientError::NotRunning { .. }
                if !std::path::Path::new(INSTALLED_HELPER).exists() && !std::path::Path::new(socket).exists() =>
            {
                HelperStateKind::NotInstalled
            }
            ClientError::NotRunning { .. } => HelperStateKind::NotRunning,
            ClientError::SocketDenied { .. } | ClientError::Helper(IpcError::NotAuthorized { .. }) => {
                HelperStateKind::NotAuthorized
            }
            ClientError::Helper(IpcError::VersionMismatch { .. }) | ClientError::Protocol(_) => {
                HelperStateKind::Incompatible
            }
            _ => HelperStateKind::Error,
        };
        let message = match kind {
            HelperStateKind::NotInstalled => format!(
                "culvertd is not installed (no {INSTALLED_HELPER}, no socket at {socket}): install the culvert package, \
                 or build it and run `sudo culvertd` (see the README)"
            ),
            _ => e.to_string(),
        };
        Self { kind, message, socket: socket.into(), helper_version: None }
    }
}

/// A stored profile as the sidebar lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[ts(export)]
pub struct ProfileSummary {
    pub name: String,
    pub kind: Option<Kind>,
    pub encrypted: bool,
    pub problem: Option<String>,
}

/// A QR code's modules, row by row (`size` × `size`, true for a dark one), without the quiet zone around it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[ts(export)]
pub struct QrModules {
    pub size: u32,
    pub dark: Vec<bool>,
}

/// culvertd's own resource use, sampled by the app.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export)]
pub struct HelperHealth {
    pub pid: u32,
    pub cpu_percent: f32,
    #[ts(type = "number")]
    pub rss_bytes: u64,
}

/// What saving a profile did: the stored profile, and for a tunnel of it that is up, what applying it live did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[ts(export)]
pub struct Saved {
    pub summary: ProfileSummary,
    pub live: Option<LiveChange>,
}

/// A saved profile applied to its running tunnel: done (and what was done), or why it could not be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[ts(export)]
pub struct LiveChange {
    pub applied: bool,
    pub message: String,
}

/// Pushed about once a second as `culvert://snapshot`.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export)]
pub struct Snapshot {
    pub helper: HelperState,
    /// The tunnels this user may see in full: their own (all, for root).
    pub tunnels: Vec<TunnelStatus>,
    /// Other users' tunnels, as culvertd shows them: name, kind, state and owner only.
    pub others: Vec<OtherTunnel>,
    /// This user's system tunnels (`culvert enable`: always on), up or not.
    pub system_tunnels: Vec<SystemTunnel>,
    /// Nothing leaves the computer but through a WireGuard full tunnel (`culvert lockdown`).
    pub lockdown: bool,
    pub health: Option<HelperHealth>,
    #[ts(type = "number")]
    pub at_ms: u64,
}

/// Pushed as `culvert://packets` while a packet view is open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[ts(export)]
pub struct PacketBatch {
    pub name: String,
    pub samples: Vec<PacketSample>,
    #[ts(type = "number")]
    pub missed: u64,
}

/// Splits what culvertd listed into the tunnels shown in full and other users' tunnels.
pub fn split_views(views: Vec<TunnelView>) -> (Vec<TunnelStatus>, Vec<OtherTunnel>) {
    let mut full = Vec::new();
    let mut others = Vec::new();
    for view in views {
        match view {
            TunnelView::Full(t) => full.push(t),
            TunnelView::Other(o) => others.push(o),
        }
    }
    (full, others)
}
