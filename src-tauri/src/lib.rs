//! Culvert's desktop app: an unprivileged Tauri 2 app that talks to culvertd only through culvert-core's client,
//! keeps profiles in culvert-store (keys in the Secret Service), and shows live traffic, packets and a tray.

mod alerts;
mod bindings;
mod commands;
mod culvertd;
mod forms;
mod launch;
mod link;
pub mod model;
mod profiles;
mod settings;
mod state;
mod tray;
mod usage;
mod window;

use tauri::Manager;

pub fn run() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let app = tauri::Builder::default()
        // First, so that a second launch only shows the running app's window (over the session bus).
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| window::show_main(app)))
        .plugin(tauri_plugin_autostart::Builder::new().build())
        .plugin(tauri_plugin_notification::init())
        .manage(alerts::Alerts::default())
        .manage(state::Latest::default())
        .manage(usage::Usage::open_default())
        .manage(state::Notices::default())
        .manage(commands::PacketWatch::default())
        .manage(tray::TrayState::default())
        .invoke_handler(bindings::invoke_handler!())
        .setup(|app| {
            tray::build(app.handle());
            // The window starts hidden (tauri.conf.json) and shows unless it may start in the tray.
            let tray = app.state::<tray::TrayState>().present.load(std::sync::atomic::Ordering::Relaxed);
            let minimized = settings::load().start_minimized;
            if minimized && tray {
                tracing::info!("starting minimized: the window opens from the tray");
            } else {
                if minimized {
                    tracing::info!("start minimized is set, but there is no tray to start in: showing the window");
                }
                window::show_main(app.handle());
            }
            tauri::async_runtime::spawn(link::run(app.handle().clone()));
            Ok(())
        })
        .on_window_event(|window, event| {
            // With a tray, closing the window keeps the app running there; without one it quits.
            if let tauri::WindowEvent::CloseRequested { api, .. } = event {
                let tray = window.app_handle().state::<tray::TrayState>();
                if tray.present.load(std::sync::atomic::Ordering::Relaxed) {
                    api.prevent_close();
                    let _ = window.hide();
                }
            }
        })
        .build(tauri::generate_context!());
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            eprintln!("culvert-app: {e}");
            std::process::exit(1);
        }
    };
    app.run(|app, event| {
        if let tauri::RunEvent::Exit = event {
            let flushed = app.state::<usage::Usage>().with(usage::UsageBook::flush);
            if let Some(Err(e)) = flushed {
                tracing::warn!("usage totals not saved at exit: {e}");
            }
        }
    });
}
