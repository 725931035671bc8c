//! The commands the UI invokes. Errors are one sentence for the user, as culvert's CLI prints them.

use std::path::PathBuf;

use culvert_core::client::Client;
use culvert_core::packets::Sampling;
use culvert_core::stats::TunnelStatus;
use culvert_store::Store;
use tauri::{AppHandle, Emitter, State};

use crate::link;
use crate::model::{HelperState, PacketBatch, ProfileSummary};

/// Runs a store operation off the async runtime: the keyring's D-Bus calls block.
async fn with_store<T: Send + 'static>(
    f: impl FnOnce(&Store) -> Result<T, culvert_store::StoreError> + Send + 'static,
) -> Result<T, String> {
    tauri::async_runtime::spawn_blocking(move || {
        let store = Store::open_default().map_err(|e| e.to_string())?;
        f(&store).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

async fn client() -> Result<Client, String> {
    Client::connect(&link::socket()).await.map_err(|e| e.to_string())
}

#[tauri::command]
pub async fn helper_state() -> HelperState {
    let socket = link::socket();
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

#[tauri::command]
pub async fn list_profiles() -> Result<Vec<ProfileSummary>, String> {
    with_store(summaries).await
}

/// Stores a profile from a file's name and text (the UI reads the file: a dialog or a drop).
#[tauri::command]
pub async fn import_profile(file_name: String, text: String) -> Result<ProfileSummary, String> {
    let base = std::path::Path::new(&file_name).file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    if !(base.ends_with(".conf") || base.ends_with(".toml")) {
        return Err(format!("{file_name} is not a profile: import a .conf (wg-quick) or .toml file"));
    }
    with_store(move |store| {
        // The store reads profiles from files; this one goes through a private directory that is removed after.
        let dir =
            private_dir().map_err(|source| culvert_store::StoreError::Io { path: std::env::temp_dir(), source })?;
        let path = dir.join(&base);
        let result = culvert_store::write_atomically(&path, text.as_bytes())
            .map_err(|source| culvert_store::StoreError::Io { path: path.clone(), source })
            .and_then(|()| store.import(&path));
        let _ = std::fs::remove_dir_all(&dir);
        let p = result?;
        Ok(ProfileSummary {
            name: p.name.clone(),
            kind: Some(p.kind()),
            encrypted: p.kind().encrypted(),
            problem: None,
        })
    })
    .await
}

fn private_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!("culvert-import-{}-{}", std::process::id(), link::unique()));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}

#[tauri::command]
pub async fn remove_profile(name: String) -> Result<(), String> {
    with_store(move |s| {
        s.remove(&name)?;
        crate::settings::follow_profile(&name, None);
        Ok(())
    })
    .await
}

#[tauri::command]
pub async fn export_profile(name: String) -> Result<String, String> {
    with_store(move |s| s.export(&name)).await
}

#[tauri::command]
pub async fn connect(name: String) -> Result<TunnelStatus, String> {
    let profile = with_store(move |s| s.load(&name)).await?;
    client().await?.up(profile).await.map_err(|e| e.to_string())
}

pub const NOTICE_EVENT: &str = "culvert://notice";

/// Every notice of this run: the page may start listening after the first ones were sent.
#[derive(Debug, Default)]
pub struct Notices(pub std::sync::Mutex<Vec<String>>);

fn notice(app: &AppHandle, message: String) {
    use tauri::Manager;
    if let Some(n) = app.try_state::<Notices>() {
        n.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(message.clone());
    }
    let _ = app.emit(NOTICE_EVENT, message);
}

#[tauri::command]
pub fn notices(notices: State<'_, Notices>) -> Vec<String> {
    notices.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
}

/// Brings up the profiles the settings list for launch, once the helper answers; each failure is told to the
/// user (the UI's error line) and logged, and does not stop the others.
pub async fn connect_on_launch(app: AppHandle, already_up: Vec<String>) {
    let wanted = crate::settings::load().connect_on_launch;
    for name in wanted.into_iter().filter(|n| !already_up.contains(n)) {
        match connect(name.clone()).await {
            Ok(_) => tracing::info!("connected {name} on launch"),
            Err(e) => {
                tracing::warn!("cannot connect {name} on launch: {e}");
                notice(&app, format!("Connect on launch: {name}: {e}"));
            }
        }
    }
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

#[tauri::command]
pub fn get_settings(app: AppHandle) -> crate::settings::SettingsView {
    settings_view(&app, crate::settings::load())
}

/// Saves the settings and adds or removes the autostart entry; answers with what is now true.
#[tauri::command]
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
#[tauri::command]
pub fn usage(
    usage: State<'_, crate::usage::Usage>,
    name: String,
    days: u32,
) -> Result<crate::usage::UsageReport, String> {
    usage
        .with(|book| book.report(&name, days.clamp(1, 366)))
        .unwrap_or_else(|| Err("usage totals are not kept this run: see the app's log for why".into()))
}

#[tauri::command]
pub async fn disconnect(name: String) -> Result<(), String> {
    client().await?.down(Some(&name)).await.map(|_| ()).map_err(|e| e.to_string())
}

/// The packet view's subscription, if one is open. The lock is held for a whole `watch_packets`, so that two
/// calls in flight can never leave two streams running.
#[derive(Debug, Default)]
pub struct PacketWatch(pub tokio::sync::Mutex<Option<tauri::async_runtime::JoinHandle<()>>>);

pub const PACKETS_EVENT: &str = "culvert://packets";
/// Packet batches come this often.
const PACKET_INTERVAL_MS: u32 = 250;

/// Starts streaming `name`'s sampled packets to the UI (every packet: the helper bounds what it keeps), or
/// stops with `None`.
#[tauri::command]
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
                    let _ = app.emit(PACKETS_EVENT, PacketBatch { name, samples, missed });
                }
                culvert_core::ipc::Event::TunnelDown { .. } => break,
                _ => {}
            }
        }
    });
    *current = Some(task);
    Ok(())
}

/// Checks a form's draft with the CLI's and the helper's rules; `None` when it is a valid profile.
#[tauri::command]
pub async fn validate_profile(
    name: String,
    draft: serde_json::Value,
    original: Option<String>,
) -> Option<crate::forms::FormError> {
    let stored = match original {
        Some(o) => with_store(move |s| s.load(&o)).await.ok(),
        None => None,
    };
    crate::forms::parse(&name, &draft, stored.as_ref()).err()
}

/// Saves a form's draft as profile `name`; `original` is the stored profile it edits (renamed when the name
/// changed). Keys go to the keyring as on import.
#[tauri::command]
pub async fn save_profile(
    name: String,
    draft: serde_json::Value,
    original: Option<String>,
) -> Result<ProfileSummary, String> {
    with_store(move |store| {
        let stored = original.as_deref().map(|o| store.load(o)).transpose()?;
        let profile =
            crate::forms::parse(&name, &draft, stored.as_ref()).map_err(|e| culvert_store::StoreError::Corrupt {
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
#[tauri::command]
pub async fn load_profile(name: String) -> Result<crate::forms::Editable, String> {
    with_store(move |s| s.load(&name).map(|p| crate::forms::editable(&p))).await
}

/// A new WireGuard key pair for a form, as `culvert genkey` makes it.
#[tauri::command]
pub fn generate_keypair() -> crate::forms::KeyPair {
    crate::forms::keypair()
}
