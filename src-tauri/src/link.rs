//! The app's link to culvertd: a loop that keeps a connection, asks for every tunnel's status once a second and
//! pushes a snapshot to the UI and the tray; it reconnects by itself when the helper restarts.

use std::time::Duration;

use culvert_core::client::Client;
use culvert_core::stats::{SystemTunnel, TunnelView};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use tauri::{AppHandle, Manager};

use crate::model::{HelperHealth, HelperState, Snapshot};

/// How often the UI gets a snapshot: the chart's resolution.
pub const TICK: Duration = Duration::from_secs(1);

pub async fn run(app: AppHandle) {
    let socket = crate::culvertd::socket();
    let shown = socket.display().to_string();
    let mut client: Option<Client> = None;
    // sysinfo 0.40's constructors are fallible; without it there is simply no health line.
    let mut system = System::new().ok();
    let mut tick = tokio::time::interval(TICK);
    let started = std::time::Instant::now();
    let mut launched = false;
    loop {
        tick.tick().await;
        if client.is_none() {
            client = match Client::connect(&socket).await {
                Ok(c) => Some(c),
                Err(e) => {
                    publish(&app, unusable(&shown, &e, started));
                    continue;
                }
            };
        }
        let Some(c) = client.as_mut() else { continue };
        match machine_state(c).await {
            Ok((views, system_tunnels, lockdown)) => {
                let (tunnels, others) = crate::model::split_views(views);
                if !launched {
                    launched = true;
                    let up = tunnels.iter().map(|t| t.name.clone()).collect();
                    tauri::async_runtime::spawn(crate::launch::connect_on_launch(app.clone(), up));
                }
                app.state::<crate::usage::Usage>().with(|book| book.observe(&tunnels));
                let health = c.helper_pid().zip(system.as_mut()).and_then(|(pid, system)| health(system, pid));
                let helper = HelperState::ok(&shown, c.helper_version());
                publish(
                    &app,
                    Snapshot { helper, tunnels, others, system_tunnels, lockdown, health, at_ms: ms(started) },
                );
            }
            Err(e) => {
                // The helper went away (or restarted): say so, and connect afresh on the next tick.
                publish(&app, unusable(&shown, &e, started));
                client = None;
            }
        }
    }
}

/// What culvertd says now: the tunnels, this user's system tunnels, and whether lockdown is on.
async fn machine_state(
    c: &mut Client,
) -> Result<(Vec<TunnelView>, Vec<SystemTunnel>, bool), culvert_core::client::ClientError> {
    let views = c.status(None).await?;
    let system = c.system_tunnels().await?;
    let lockdown = c.lockdown(None).await?;
    Ok((views, system, lockdown))
}

/// What the UI sees while the helper cannot be used: why, and no tunnels.
fn unusable(socket: &str, e: &culvert_core::client::ClientError, started: std::time::Instant) -> Snapshot {
    Snapshot {
        helper: HelperState::from_error(socket, e),
        tunnels: vec![],
        others: vec![],
        system_tunnels: vec![],
        lockdown: false,
        health: None,
        at_ms: ms(started),
    }
}

fn ms(started: std::time::Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn publish(app: &AppHandle, snapshot: Snapshot) {
    crate::tray::update(app, &snapshot);
    crate::alerts::notify(app, &snapshot);
    if let Err(e) = crate::bindings::SNAPSHOT.emit(app, &snapshot) {
        tracing::debug!("cannot emit a snapshot: {e}");
    }
    if let Some(latest) = app.try_state::<crate::state::Latest>() {
        *latest.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(snapshot);
    }
}

/// CPU (percent of one core since the last sample) and resident memory of culvertd, when /proc shows it.
fn health(system: &mut System, pid: u32) -> Option<HelperHealth> {
    let pid_ = Pid::from_u32(pid);
    let kind = ProcessRefreshKind::nothing().with_cpu().with_memory();
    system.refresh_processes_specifics(ProcessesToUpdate::Some(&[pid_]), true, kind);
    let p = system.process(pid_)?;
    Some(HelperHealth { pid, cpu_percent: p.cpu_usage(), rss_bytes: p.memory() })
}
