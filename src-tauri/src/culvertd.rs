//! What the app asks of culvertd, for the commands, the tray and the launch: a connection, and the few
//! operations on a stored profile's tunnel.

use std::path::PathBuf;

use culvert_core::client::Client;
use culvert_core::stats::{TunnelStatus, TunnelView};

use crate::model::LiveChange;
use crate::profiles::with_store;

/// The socket of the helper the app uses: `$CULVERT_SOCKET`, else the default.
pub fn socket() -> PathBuf {
    culvert_core::client::socket_path(None)
}

pub async fn client() -> Result<Client, String> {
    Client::connect(&socket()).await.map_err(|e| e.to_string())
}

/// Brings up the stored profile `name`, with its keys from the keyring.
pub async fn connect(name: String) -> Result<TunnelStatus, String> {
    let profile = with_store(move |s| s.load(&name)).await?;
    client().await?.up(profile).await.map_err(|e| e.to_string())
}

/// Makes the stored profile `name` a system tunnel (always on: culvertd keeps it, keys inline, and brings it up
/// whenever it starts), or stops that and brings it down.
pub async fn set_always_on(name: String, on: bool) -> Result<(), String> {
    if on {
        let profile = with_store(move |s| s.load(&name)).await?;
        client().await?.enable(profile).await.map(|_| ()).map_err(|e| e.to_string())
    } else {
        client().await?.disable(&name).await.map_err(|e| e.to_string())
    }
}

/// Turns lockdown on or off; whether it is on now.
pub async fn set_lockdown(on: bool) -> Result<bool, String> {
    client().await?.lockdown(Some(on)).await.map_err(|e| e.to_string())
}

pub async fn disconnect(app: &tauri::AppHandle, name: String) -> Result<(), String> {
    // Asked for here: the tunnel's going is no surprise to notify of.
    if let Some(alerts) = tauri::Manager::try_state::<crate::alerts::Alerts>(app) {
        alerts.asked_down(&name);
    }
    client().await?.down(Some(&name)).await.map(|_| ()).map_err(|e| e.to_string())
}

/// Applies the stored profile `name` to this user's tunnel of that name, if one is up: what was done, or why
/// it could not be done live.
pub async fn apply_if_up(name: &str) -> Option<LiveChange> {
    let mut c = client().await.ok()?;
    let up = c.status(Some(name)).await.ok()?;
    if !matches!(up.first(), Some(TunnelView::Full(_))) {
        return None;
    }
    let owned = name.to_owned();
    let profile = match with_store(move |s| s.load(&owned)).await {
        Ok(p) => p,
        Err(e) => return Some(LiveChange { applied: false, message: e }),
    };
    Some(match c.apply(profile).await {
        Ok((_, changes)) if changes.is_empty() => {
            LiveChange { applied: true, message: format!("Saved; {name} already ran as it says.") }
        }
        Ok((_, changes)) => LiveChange {
            applied: true,
            message: format!("Saved and applied without reconnecting: {}.", changes.join("; ")),
        },
        Err(e) => {
            LiveChange { applied: false, message: format!("Saved, but {name} could not take it while it runs: {e}") }
        }
    })
}
