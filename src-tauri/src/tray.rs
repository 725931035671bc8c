//! The tray icon: the overall state at a glance, and each stored profile as a toggle.
//!
//! Where no tray host runs, building the icon may still succeed (the library falls back to XEmbed) or fail; in
//! both cases the app works as a window, and a failure is logged with its reason.

use std::sync::Mutex;

use culvert_core::stats::TunnelState;
use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager};

use crate::model::{HelperStateKind, Snapshot};

const TRAY_ID: &str = "culvert";

/// The icon's states, each with its own picture and tooltip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    Disconnected,
    Connecting,
    Connected,
    Error,
}

impl Look {
    fn icon(self) -> &'static [u8] {
        match self {
            Self::Disconnected => include_bytes!("../icons/tray-disconnected.png"),
            Self::Connecting => include_bytes!("../icons/tray-connecting.png"),
            Self::Connected => include_bytes!("../icons/tray-connected.png"),
            Self::Error => include_bytes!("../icons/tray-error.png"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Disconnected => "disconnected",
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Error => "error",
        }
    }

    /// The tray's state from a snapshot: an unusable helper or a failing handshake is an error; a tunnel that
    /// is still connecting wins over the connected ones.
    pub fn of(snapshot: &Snapshot) -> Self {
        if snapshot.helper.kind != HelperStateKind::Ok
            || snapshot.tunnels.iter().any(|t| matches!(t.state, TunnelState::NoHandshake | TunnelState::Blocked))
        {
            Self::Error
        } else if snapshot.tunnels.iter().any(|t| t.state == TunnelState::Connecting) {
            Self::Connecting
        } else if snapshot.tunnels.is_empty() {
            Self::Disconnected
        } else {
            Self::Connected
        }
    }
}

/// Each stored profile's name and whether its tunnel is up: the tray menu's toggles.
type Toggles = Vec<(String, bool)>;

/// What the tray shows now, so that it is only rebuilt when that changes.
#[derive(Debug, Default)]
pub struct TrayState {
    pub present: std::sync::atomic::AtomicBool,
    shown: Mutex<Option<(Look, Toggles)>>,
}

pub fn build(app: &AppHandle) {
    let result = Menu::new(app).and_then(|menu| {
        TrayIconBuilder::with_id(TRAY_ID)
            .icon(Image::from_bytes(Look::Disconnected.icon())?)
            .tooltip("Culvert: disconnected")
            .menu(&menu)
            .show_menu_on_left_click(true)
            .on_menu_event(|app, event| on_menu(app, event.id().as_ref()))
            .build(app)
    });
    match result {
        Ok(_) => app.state::<TrayState>().present.store(true, std::sync::atomic::Ordering::Relaxed),
        Err(e) => tracing::warn!("no tray icon ({e}): Culvert runs as a window only"),
    }
}

/// Brings the tray in line with a snapshot: its icon, and a toggle per stored profile.
pub fn update(app: &AppHandle, snapshot: &Snapshot) {
    let Some(tray) = app.tray_by_id(TRAY_ID) else { return };
    let profiles = crate::profiles::store_names();
    let entries: Toggles =
        profiles.into_iter().map(|n| (n.clone(), snapshot.tunnels.iter().any(|t| t.name == n))).collect();
    let look = Look::of(snapshot);
    let state = app.state::<TrayState>();
    let mut shown = state.shown.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if shown.as_ref().is_some_and(|(l, e)| *l == look && *e == entries) {
        return;
    }
    if let Ok(icon) = Image::from_bytes(look.icon()) {
        let _ = tray.set_icon(Some(icon));
    }
    let _ = tray.set_tooltip(Some(format!("Culvert: {}", look.name())));
    match menu(app, &entries) {
        Ok(m) => {
            let _ = tray.set_menu(Some(m));
            tracing::info!("tray: {} with {} profile(s) in the menu", look.name(), entries.len());
        }
        Err(e) => tracing::warn!("cannot build the tray menu: {e}"),
    }
    *shown = Some((look, entries));
}

fn menu(app: &AppHandle, entries: &[(String, bool)]) -> tauri::Result<Menu<tauri::Wry>> {
    let menu = Menu::new(app)?;
    for (name, up) in entries {
        menu.append(&CheckMenuItem::with_id(app, format!("toggle:{name}"), name, true, *up, None::<&str>)?)?;
    }
    if !entries.is_empty() {
        menu.append(&PredefinedMenuItem::separator(app)?)?;
    }
    menu.append(&MenuItem::with_id(app, "open", "Open Culvert", true, None::<&str>)?)?;
    menu.append(&MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?)?;
    Ok(menu)
}

fn on_menu(app: &AppHandle, id: &str) {
    match id {
        "open" => crate::window::show_main(app),
        "quit" => app.exit(0),
        _ => {
            let Some(name) = id.strip_prefix("toggle:").map(str::to_owned) else { return };
            let up = app
                .try_state::<crate::state::Latest>()
                .and_then(|l| {
                    l.0.lock().ok().and_then(|s| s.as_ref().map(|s| s.tunnels.iter().any(|t| t.name == name)))
                })
                .unwrap_or(false);
            tauri::async_runtime::spawn(async move {
                let result = if up {
                    crate::culvertd::disconnect(name.clone()).await
                } else {
                    crate::culvertd::connect(name.clone()).await.map(|_| ())
                };
                if let Err(e) = result {
                    tracing::warn!("tray: {name}: {e}");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HelperState;
    use culvert_core::client::ClientError;

    fn snapshot(helper_ok: bool, states: &[TunnelState]) -> Snapshot {
        let helper = if helper_ok {
            HelperState::ok("/s", "0.1.0")
        } else {
            HelperState::from_error("/s", &ClientError::Disconnected("gone".into()))
        };
        let tunnels = states
            .iter()
            .map(|s| culvert_core::stats::TunnelStatus {
                name: "t".into(),
                kind: culvert_core::profile::Kind::Wireguard,
                state: *s,
                reason: None,
                interface: "t".into(),
                listen_port: None,
                owner_uid: 0,
                system: false,
                kill_switch: false,
                up_since: 0,
                counters: Default::default(),
                peers: vec![],
                overlay: None,
            })
            .collect();
        Snapshot { helper, tunnels, others: vec![], health: None, at_ms: 0 }
    }

    #[test]
    fn the_icon_follows_the_worst_news() {
        assert_eq!(Look::of(&snapshot(true, &[])), Look::Disconnected);
        assert_eq!(Look::of(&snapshot(true, &[TunnelState::Up])), Look::Connected);
        assert_eq!(Look::of(&snapshot(true, &[TunnelState::Up, TunnelState::Connecting])), Look::Connecting);
        assert_eq!(Look::of(&snapshot(true, &[TunnelState::Up, TunnelState::NoHandshake])), Look::Error);
        assert_eq!(Look::of(&snapshot(false, &[])), Look::Error);
    }

    #[test]
    fn helper_errors_become_states_with_their_fix() {
        let not_running = HelperState::from_error(
            "/nonexistent/s.sock",
            &ClientError::NotRunning { path: "/nonexistent/s.sock".into() },
        );
        assert!(matches!(not_running.kind, HelperStateKind::NotInstalled | HelperStateKind::NotRunning));
        let denied =
            HelperState::from_error("/s", &ClientError::SocketDenied { path: "/s".into(), group: "culvert".into() });
        assert_eq!(denied.kind, HelperStateKind::NotAuthorized);
        assert!(denied.message.contains("usermod -aG culvert"), "{}", denied.message);
        let old = HelperState::from_error(
            "/s",
            &ClientError::Helper(culvert_core::ipc::IpcError::VersionMismatch { client: 1, helper: 2 }),
        );
        assert_eq!(old.kind, HelperStateKind::Incompatible);
    }
}
