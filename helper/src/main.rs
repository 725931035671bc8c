//! culvertd: Culvert's privileged helper (the library `culvert_helper` is all of it but this start-up).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use culvert_helper::args::Culvertd as Args;
use tokio::signal::unix::{SignalKind, signal};

use culvert_helper::clock;
use culvert_helper::control::admission::{Admission, Limits};
use culvert_helper::control::{self, Access, Helper, connection, listener};
use culvert_helper::system::state_dir::StateDir;
use culvert_helper::system::{self, Netlink, Records};

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    system::memory::map_large_buffers();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("culvertd: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(args));
    // A host-name lookup still running (getaddrinfo cannot be cancelled) must not hold the exit up: every tunnel
    // is down and recorded by now.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("culvertd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    clock::now_ms();
    if !nix::unistd::geteuid().is_root() {
        tracing::warn!("culvertd is not running as root: creating devices and routes needs root or CAP_NET_ADMIN");
    }
    if args.block_at_boot {
        let kill_switch = control::kill_switch::KillSwitch::open(&args.state_dir, &args.config_dir)?;
        kill_switch.sync().await.context("cannot put the kill switch's table in place")?;
        tracing::info!("the kill switch is as culvertd left it (lockdown {})", kill_switch.lockdown_word());
        return Ok(());
    }
    let state = StateDir::open(&args.state_dir)?;
    listener::check_free(&args.socket)?;
    let netlink = Netlink::connect().context("cannot open a netlink socket")?;
    let records = Records::open(state.path()).with_context(|| format!("cannot use {}", state.path().display()))?;
    raise_open_file_limit(args.max_connections as usize);
    let access = Access::for_group(&args.group);
    if access.gid.is_none() {
        tracing::warn!(
            "group `{0}` does not exist, so only root may use culvertd; create it with `sudo groupadd --system {0}` \
             and add users with `sudo usermod -aG {0} USER`",
            args.group
        );
    }
    let limits = Limits { total: args.max_connections as usize, per_user: args.max_connections_per_user as usize };
    let timeout = Duration::from_secs(args.request_timeout);
    let system = control::system_tunnels::SystemTunnels::open(&args.config_dir)
        .with_context(|| format!("cannot use the config directory {}", args.config_dir.display()))?;
    let kill_switch = control::kill_switch::KillSwitch::open(state.path(), &args.config_dir)
        .with_context(|| format!("cannot read the kill switch's record in {}", state.path().display()))?;
    let monitors = Access::for_group(&args.monitor_group);
    let helper = Arc::new(Helper::new(
        netlink,
        records,
        (access, monitors),
        Admission::new(limits),
        timeout,
        system,
        kill_switch,
    ));
    let cleaned = helper.recover().await.context("cannot read the records in the state directory")?;
    if cleaned > 0 {
        tracing::info!("removed what {cleaned} tunnel(s) of a previous run left behind");
    }
    let enabled = helper.bring_up_system_tunnels().await;
    if enabled > 0 {
        tracing::info!("brought up {enabled} system tunnel(s)");
    }
    let listener = listener::bind(&args.socket, &helper.access)?;
    tracing::info!("culvertd {} listening on {}", env!("CARGO_PKG_VERSION"), args.socket.display());
    // Monitoring is beside the point of culvertd: without its socket, tunnels still work, and the log says why.
    let monitor = match helper.monitors.gid {
        Some(_) => match listener::bind_monitor(&args.monitor_socket, &helper.monitors) {
            Ok(monitor) => {
                tracing::info!("monitors (group {}) read on {}", args.monitor_group, args.monitor_socket.display());
                Some(monitor)
            }
            Err(e) => {
                tracing::warn!("no monitor socket: {e}");
                None
            }
        },
        None => {
            tracing::info!("no group `{}`, so no monitor socket", args.monitor_group);
            None
        }
    };
    let monitor_accept = || async {
        match &monitor {
            Some(listener) => listener.accept().await,
            None => std::future::pending().await,
        }
    };
    system::notify::notify("READY=1");

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(system::memory::trim_when_released());
    tokio::spawn(helper.clone().serve_uapi_sets());
    tokio::spawn(helper.clone().serve_overlay_updates());
    match system::netlink::watch::watch() {
        Ok(changes) => {
            tokio::spawn(helper.clone().follow_underlay(changes));
        }
        Err(e) => tracing::warn!("cannot follow the host's network changes: {e}; tunnels follow them at their timers"),
    }
    tokio::spawn({
        let helper = helper.clone();
        async move {
            match tokio::time::timeout(Duration::from_secs(5), system::sleep::resumes()).await {
                Ok(Ok(resumes)) => helper.follow_sleep(resumes).await,
                Ok(Err(e)) => {
                    tracing::info!("no system bus ({e}): resumes from suspend are left to the tunnels' timers")
                }
                Err(_) => tracing::warn!("the system bus did not answer: resumes from suspend are left to the timers"),
            }
        }
    });
    tokio::spawn({
        let helper = helper.clone();
        async move {
            // Without a system bus there is no NetworkManager either (the line above says so).
            if let Ok(Ok(starts)) =
                tokio::time::timeout(Duration::from_secs(5), system::network_manager::starts()).await
            {
                helper.follow_network_manager(starts).await;
            }
        }
    });
    let mut backoff = listener::Backoff::default();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    backoff.reset();
                    tokio::spawn(connection::serve(helper.clone(), stream, connection::Role::User));
                }
                Err(e) => {
                    if let Some(pause) = backoff.after(&e, helper.admission.open()) {
                        tokio::time::sleep(pause).await;
                    }
                }
            },
            accepted = monitor_accept() => match accepted {
                Ok((stream, _)) => {
                    backoff.reset();
                    tokio::spawn(connection::serve(helper.clone(), stream, connection::Role::Monitor));
                }
                Err(e) => {
                    if let Some(pause) = backoff.after(&e, helper.admission.open()) {
                        tokio::time::sleep(pause).await;
                    }
                }
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("shutting down: bringing every tunnel down");
    system::notify::notify("STOPPING=1");
    helper.shut_down().await;
    let _ = std::fs::remove_file(&args.socket);
    if monitor.is_some() {
        let _ = std::fs::remove_file(&args.monitor_socket);
    }
    drop(state);
    Ok(())
}

/// Raises the soft limit on open files to the hard one: each client and each tunnel takes descriptors, and the
/// soft default (1024) is below what `--max-connections` allows. Says so when the hard limit is the bound.
fn raise_open_file_limit(max_connections: usize) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return };
    if soft < hard
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::warn!("cannot raise the open-file limit from {soft} to {hard}: {e}");
    }
    // Room for the tunnels' devices, sockets and netlink beside the clients.
    let wanted = max_connections as u64 + 256;
    if hard < wanted {
        tracing::warn!(
            "the open-file limit is {hard}, below the {wanted} that --max-connections {max_connections} may need: \
             clients beyond it wait until others leave (raise LimitNOFILE, or `ulimit -n`)"
        );
    }
}
