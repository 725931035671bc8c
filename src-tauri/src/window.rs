//! The main window.

use tauri::Manager;

/// Shows the main window, in front: from the tray, a second launch, or at start.
pub fn show_main(app: &tauri::AppHandle) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
    }
}
