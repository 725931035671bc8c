//! State the app's parts share: the latest snapshot from culvertd, and the notices of this run.

use std::sync::Mutex;

use tauri::AppHandle;

use crate::model::Snapshot;

/// The latest snapshot, for commands and the tray.
#[derive(Debug, Default)]
pub struct Latest(pub Mutex<Option<Snapshot>>);

/// Every notice of this run: the page may start listening after the first ones were sent.
#[derive(Debug, Default)]
pub struct Notices(pub std::sync::Mutex<Vec<String>>);

pub fn notice(app: &AppHandle, message: String) {
    use tauri::Manager;
    if let Some(n) = app.try_state::<Notices>() {
        n.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(message.clone());
    }
    let _ = crate::bindings::NOTICE.emit(app, &message);
}
