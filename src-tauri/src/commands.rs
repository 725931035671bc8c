//! The commands the UI invokes. Errors are one sentence for the user, as culvert's CLI prints them.

use culvert_core::client::Client;
use culvert_core::packets::Sampling;
use culvert_core::stats::TunnelStatus;
use culvert_store::Store;
use tauri::{AppHandle, State};

use crate::culvertd::{self, client};
use crate::model::{HelperState, PacketBatch, ProfileSummary, QrModules};
use crate::profiles::with_store;
use crate::state::Notices;

/// Whether culvertd answers, and if not, why and what to do.
#[culvert_app_macros::command]
pub async fn helper_state() -> HelperState {
    let socket = culvertd::socket();
    let shown = socket.display().to_string();
    match Client::connect(&socket).await {
        Ok(c) => HelperState::ok(&shown, c.helper_version()),
        Err(e) => HelperState::from_error(&shown, &e),
    }
}

pub fn summaries(store: &Store) -> Result<Vec<ProfileSummary>, culvert_store::StoreError> {
    Ok(store
        .list()?
        .into_iter()
        .map(|l| ProfileSummary {
            encrypted: l.kind.is_some_and(|k| k.encrypted()),
            name: l.name,
            kind: l.kind,
            problem: l.problem,
        })
        .collect())
}

/// The stored profiles, by name; a file that is not a profile is listed with its problem.
#[culvert_app_macros::command]
pub async fn list_profiles() -> Result<Vec<ProfileSummary>, String> {
    with_store(summaries).await
}

/// Stores a profile from a file's name and text (the UI reads the file: a dialog or a drop).
#[culvert_app_macros::command]
pub async fn import_profile(file_name: String, text: String) -> Result<ProfileSummary, String> {
    let base = std::path::Path::new(&file_name).file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    if !(base.ends_with(".conf") || base.ends_with(".toml") || base.ends_with(".nmconnection")) {
        return Err(format!(
            "{file_name} is not a profile: import a .conf (wg-quick), .nmconnection (NetworkManager) or .toml file"
        ));
    }
    with_store(move |store| {
        let p = store.import_text(std::path::Path::new(&base), &text)?;
        Ok(ProfileSummary {
            name: p.name.clone(),
            kind: Some(p.kind()),
            encrypted: p.kind().encrypted(),
            problem: None,
        })
    })
    .await
}

/// Removes a stored profile and its keys.
#[culvert_app_macros::command]
pub async fn remove_profile(name: String) -> Result<(), String> {
    with_store(move |s| {
        s.remove(&name)?;
        crate::settings::follow_profile(&name, None);
        Ok(())
    })
    .await
}

/// The profile as a file to hand to someone: wg-quick for WireGuard (keys included), TOML for the others.
#[culvert_app_macros::command]
pub async fn export_profile(name: String) -> Result<String, String> {
    with_store(move |s| s.export(&name)).await
}

/// A WireGuard profile as a QR code for the WireGuard mobile apps: its wg-quick file, keys included (the UI warns
/// before it asks).
#[culvert_app_macros::command]
pub async fn profile_qr(name: String) -> Result<QrModules, String> {
    let code = with_store(move |s| s.qr_code(&name)).await?;
    let size = u32::try_from(code.width()).map_err(|e| e.to_string())?;
    let dark = code.to_colors().into_iter().map(|c| c == qrcode::Color::Dark).collect();
    Ok(QrModules { size, dark })
}

/// Brings the stored profile's tunnel up.
#[culvert_app_macros::command]
pub async fn connect(name: String) -> Result<TunnelStatus, String> {
    culvertd::connect(name).await
}

/// Makes the stored profile a system tunnel of culvertd's ("Always on": up at boot and after a crash, with
/// its keys kept root-only by culvertd), or stops that and brings it down.
#[culvert_app_macros::command]
pub async fn set_always_on(name: String, on: bool) -> Result<(), String> {
    culvertd::set_always_on(name, on).await
}

/// Turns lockdown on or off for the whole computer; answers whether it is on.
#[culvert_app_macros::command]
pub async fn set_lockdown(on: bool) -> Result<bool, String> {
    culvertd::set_lockdown(on).await
}

/// Every notice of this run so far: those sent before the page listened are only here.
#[culvert_app_macros::command]
pub fn notices(notices: State<'_, Notices>) -> Vec<String> {
    notices.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
}

fn settings_view(app: &AppHandle, settings: crate::settings::Settings) -> crate::settings::SettingsView {
    use tauri::Manager;
    use tauri_plugin_autostart::ManagerExt;
    let start_at_login = app.autolaunch().is_enabled().unwrap_or_else(|e| {
        tracing::warn!("cannot tell whether Culvert starts at login: {e}");
        false
    });
    let tray = app.state::<crate::tray::TrayState>().present.load(std::sync::atomic::Ordering::Relaxed);
    crate::settings::SettingsView { settings, start_at_login, tray }
}

/// The app's settings and whether it starts at login.
#[culvert_app_macros::command]
pub fn get_settings(app: AppHandle) -> crate::settings::SettingsView {
    settings_view(&app, crate::settings::load())
}

/// Saves the settings and adds or removes the autostart entry; answers with what is now true.
#[culvert_app_macros::command]
pub fn set_settings(
    app: AppHandle,
    settings: crate::settings::Settings,
    start_at_login: bool,
) -> Result<crate::settings::SettingsView, String> {
    use tauri_plugin_autostart::ManagerExt;
    crate::settings::save(&settings)?;
    let autostart = app.autolaunch();
    if autostart.is_enabled().ok() != Some(start_at_login) {
        let changed = if start_at_login { autostart.enable() } else { autostart.disable() };
        changed.map_err(|e| format!("cannot change whether Culvert starts at login: {e}"))?;
    }
    Ok(settings_view(&app, settings))
}

/// A tunnel's daily totals for the last `days` days, for the usage chart.
#[culvert_app_macros::command]
pub fn usage(
    usage: State<'_, crate::usage::Usage>,
    name: String,
    days: u32,
) -> Result<crate::usage::UsageReport, String> {
    usage
        .with(|book| book.report(&name, days.clamp(1, 366)))
        .unwrap_or_else(|| Err("usage totals are not kept this run: see the app's log for why".into()))
}

/// Takes the tunnel down.
#[culvert_app_macros::command]
pub async fn disconnect(app: AppHandle, name: String) -> Result<(), String> {
    culvertd::disconnect(&app, name).await
}

/// The packet view's subscription, if one is open. The lock is held for a whole `watch_packets`, so that two
/// calls in flight can never leave two streams running.
#[derive(Debug, Default)]
pub struct PacketWatch(pub tokio::sync::Mutex<Option<tauri::async_runtime::JoinHandle<()>>>);

/// Packet batches come this often.
const PACKET_INTERVAL_MS: u32 = 250;

/// Starts streaming `name`'s sampled packets to the UI (every packet: the helper bounds what it keeps), or
/// stops when given no name.
#[culvert_app_macros::command]
pub async fn watch_packets(app: AppHandle, watch: State<'_, PacketWatch>, name: Option<String>) -> Result<(), String> {
    let mut current = watch.0.lock().await;
    if let Some(old) = current.take() {
        old.abort();
    }
    let Some(name) = name else { return Ok(()) };
    let mut c = client().await?;
    c.subscribe(&name, PACKET_INTERVAL_MS, Some(Sampling { one_in: 1 })).await.map_err(|e| e.to_string())?;
    let task = tauri::async_runtime::spawn(async move {
        while let Ok(event) = c.next_event().await {
            match event {
                culvert_core::ipc::Event::PacketSamples { name, samples, missed } => {
                    let _ = crate::bindings::PACKETS.emit(&app, &PacketBatch { name, samples, missed });
                }
                culvert_core::ipc::Event::TunnelDown { .. } => break,
                _ => {}
            }
        }
    });
    *current = Some(task);
    Ok(())
}

/// Checks a form's draft with the CLI's and the helper's rules; nothing when it is a valid profile.
#[culvert_app_macros::command]
pub async fn validate_profile(
    name: String,
    draft: crate::forms::FormDraft,
    original: Option<String>,
) -> Option<crate::forms::FormError> {
    let stored = match original {
        Some(o) => with_store(move |s| s.load(&o)).await.ok(),
        None => None,
    };
    crate::forms::parse(&name, draft, stored.as_ref()).err()
}

/// Saves a form's draft as profile `name`; `original` is the stored profile it edits (renamed when the name
/// changed). Keys go to the keyring as on import. When this user's tunnel of that name is up, the saved profile is
/// applied to it live (`culvert apply`), and what that did is in the answer.
#[culvert_app_macros::command]
pub async fn save_profile(
    name: String,
    draft: crate::forms::FormDraft,
    original: Option<String>,
) -> Result<crate::model::Saved, String> {
    let renamed = original.as_deref().is_some_and(|o| o != name);
    let summary = store_draft(name.clone(), draft, original).await?;
    let live = if renamed { None } else { culvertd::apply_if_up(&name).await };
    Ok(crate::model::Saved { summary, live })
}

async fn store_draft(
    name: String,
    draft: crate::forms::FormDraft,
    original: Option<String>,
) -> Result<ProfileSummary, String> {
    with_store(move |store| {
        let stored = original.as_deref().map(|o| store.load(o)).transpose()?;
        let profile =
            crate::forms::parse(&name, draft, stored.as_ref()).map_err(|e| culvert_store::StoreError::Corrupt {
                name: name.clone(),
                path: store.dir().join(format!("{name}.toml")),
                problem: culvert_core::profile::FileProblem::Field(culvert_core::profile::ProfileError {
                    field: e.field.unwrap_or_default(),
                    problem: e.problem,
                    fix: e.fix,
                }),
            })?;
        if original.as_deref() != Some(name.as_str()) && store.list()?.iter().any(|l| l.name == name) {
            return Err(culvert_store::StoreError::Exists(name));
        }
        store.save(&profile)?;
        if let Some(old) = original.filter(|o| *o != name) {
            store.remove(&old)?;
            crate::settings::follow_profile(&old, Some(&name));
        }
        Ok(crate::forms::summary(&profile))
    })
    .await
}

/// A stored profile's draft for its edit form, without secrets.
#[culvert_app_macros::command]
pub async fn load_profile(name: String) -> Result<crate::forms::Editable, String> {
    with_store(move |s| s.load(&name).map(|p| crate::forms::editable(&p))).await
}

/// A new WireGuard key pair for a form, as `culvert genkey` makes it.
#[culvert_app_macros::command]
pub fn generate_keypair() -> crate::forms::KeyPair {
    crate::forms::keypair()
}
