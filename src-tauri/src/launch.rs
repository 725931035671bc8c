//! Connect on launch: the profiles the settings list, brought up once culvertd first answers.

use tauri::AppHandle;

use crate::culvertd::connect;
use crate::state::notice;

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
