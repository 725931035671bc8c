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
    /// Nothing leaves the computer: a kill switch holds for a tunnel that is not up, or lockdown with none up.
    Blocked,
    Error,
}

impl Look {
    fn icon(self) -> &'static [u8] {
        match self {
            Self::Disconnected => include_bytes!("../icons/tray-disconnected.png"),
            Self::Connecting => include_bytes!("../icons/tray-connecting.png"),
            Self::Connected => include_bytes!("../icons/tray-connected.png"),
            Self::Blocked => include_bytes!("../icons/tray-blocked.png"),
            Self::Error => include_bytes!("../icons/tray-error.png"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Disconnected => "disconnected",
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Blocked => "blocked",
            Self::Error => "error",
        }
    }

    /// The tray's state from a snapshot: an unusable helper is an error; then a block, which keeps the whole
    /// computer offline; then a failing handshake; a tunnel that is still connecting wins over the connected ones.
    pub fn of(snapshot: &Snapshot) -> Self {
        if snapshot.helper.kind != HelperStateKind::Ok {
            Self::Error
        } else if blocked_because(snapshot).is_some() {
            Self::Blocked
        } else if snapshot.tunnels.iter().any(|t| t.state == TunnelState::NoHandshake) {
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

/// Why nothing leaves the computer, in words for the tray's tooltip and menu; `None` when traffic flows.
pub fn blocked_because(snapshot: &Snapshot) -> Option<String> {
    if let Some(t) = snapshot.tunnels.iter().find(|t| t.state == TunnelState::Blocked) {
        let holds = if t.kill_switch { "its kill switch holds" } else { "lockdown holds" };
        return Some(format!("{} is not up and {holds}: connect it again, or disconnect it to lift the block", t.name));
    }
    // What lockdown lets through: a WireGuard tunnel with a default route (a peer's /0).
    let full = |t: &&culvert_core::stats::TunnelStatus| {
        t.kind == culvert_core::profile::Kind::Wireguard
            && t.peers.iter().any(|p| p.allowed_ips.iter().any(|net| net.prefix_len() == 0))
    };
    (snapshot.lockdown && !snapshot.tunnels.iter().any(|t| full(&t)))
        .then(|| "lockdown is on and no WireGuard full tunnel is up: nothing leaves this computer".to_owned())
}

/// Each stored profile's name and whether its tunnel is up: the tray menu's toggles.
type Toggles = Vec<(String, bool)>;

/// What the tray shows: its look, why it is blocked, and the toggles.
type Shown = (Look, Option<String>, Toggles);

/// What the tray shows now, so that it is only rebuilt when that changes.
#[derive(Debug, Default)]
pub struct TrayState {
    pub present: std::sync::atomic::AtomicBool,
    shown: Mutex<Option<Shown>>,
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
    let why = if look == Look::Blocked { blocked_because(snapshot) } else { None };
    let now = (look, why, entries);
    let state = app.state::<TrayState>();
    let mut shown = state.shown.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if shown.as_ref() == Some(&now) {
        return;
    }
    let (look, why, entries) = &now;
    if let Ok(icon) = Image::from_bytes(look.icon()) {
        let _ = tray.set_icon(Some(icon));
    }
    let said = match why {
        Some(why) => format!("{}: {why}", look.name()),
        None => look.name().to_owned(),
    };
    let _ = tray.set_tooltip(Some(format!("Culvert: {said}")));
    match menu(app, why.as_deref(), entries) {
        Ok(m) => {
            let _ = tray.set_menu(Some(m));
            tracing::info!("tray: {said}, with {} profile(s) in the menu", entries.len());
        }
        Err(e) => tracing::warn!("cannot build the tray menu: {e}"),
    }
    *shown = Some(now);
}

fn menu(app: &AppHandle, blocked: Option<&str>, entries: &[(String, bool)]) -> tauri::Result<Menu<tauri::Wry>> {
    let menu = Menu::new(app)?;
    // The block first, where it cannot be missed; it is a statement, not an action.
    if let Some(why) = blocked {
        menu.append(&MenuItem::with_id(app, "blocked", format!("Blocked: {why}"), false, None::<&str>)?)?;
        menu.append(&PredefinedMenuItem::separator(app)?)?;
    }
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
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                let result = if up {
                    crate::culvertd::disconnect(&app, name.clone()).await
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
        Snapshot { helper, tunnels, others: vec![], system_tunnels: vec![], lockdown: false, health: None, at_ms: 0 }
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
    fn a_block_shows_with_its_reason_above_a_failing_handshake() {
        let mut s = snapshot(true, &[TunnelState::NoHandshake, TunnelState::Blocked]);
        s.tunnels[1].name = "vpn".into();
        s.tunnels[1].kill_switch = true;
        assert_eq!(Look::of(&s), Look::Blocked);
        let why = blocked_because(&s).unwrap();
        assert!(why.starts_with("vpn is not up and its kill switch holds"), "{why}");

        // Lockdown blocks everything while no WireGuard full tunnel is up, and nothing once one is.
        let mut lockdown = snapshot(true, &[]);
        lockdown.lockdown = true;
        assert_eq!(Look::of(&lockdown), Look::Blocked);
        assert!(blocked_because(&lockdown).unwrap().contains("lockdown is on"));
        let mut through = snapshot(true, &[TunnelState::Up]);
        through.lockdown = true;
        assert_eq!(Look::of(&through), Look::Blocked, "a split tunnel lets nothing else out");
        through.tunnels[0].peers =
            vec![culvert_core::stats::PeerStatus::new(None, vec!["0.0.0.0/0".parse().unwrap()], Default::default())];
        assert_eq!((Look::of(&through), blocked_because(&through)), (Look::Connected, None));
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
