//! culvertd: Culvert's privileged helper.
//!
//! It owns everything that touches the kernel (TUN devices, addresses, routes) and the userspace data plane,
//! and serves clients on an authenticated Unix socket. See ARCHITECTURE.md for the whole picture.

mod clock;
mod control;
mod dataplane;
mod system;
mod tunnel;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

use control::{Access, Helper, connection, listener};
use system::state_dir::StateDir;
use system::{Netlink, Records};

#[derive(Debug, Parser)]
#[command(name = "culvertd", version, about = "Culvert's privileged helper: tunnels, routes and the data plane")]
struct Args {
    /// The Unix socket clients connect to.
    #[arg(long, env = culvert_core::SOCKET_ENV, default_value = culvert_core::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Where the helper records what it created, to undo it after a crash. Locked while the helper runs.
    #[arg(long, default_value = "/var/lib/culvert")]
    state_dir: PathBuf,
    /// Members of this group may use the helper; if it does not exist, only root may.
    #[arg(long, default_value = culvert_core::DEFAULT_GROUP)]
    group: String,
}

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
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("culvertd: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
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
    let state = StateDir::open(&args.state_dir)?;
    listener::check_free(&args.socket)?;
    let netlink = Netlink::connect().context("cannot open a netlink socket")?;
    let records = Records::open(state.path()).with_context(|| format!("cannot use {}", state.path().display()))?;
    let access = Access::for_group(&args.group);
    if access.gid.is_none() {
        tracing::warn!(
            "group `{0}` does not exist, so only root may use culvertd; create it with `sudo groupadd --system {0}` \
             and add users with `sudo usermod -aG {0} USER`",
            args.group
        );
    }
    let helper = Arc::new(Helper::new(netlink, records, access));
    let cleaned = helper.recover().await.context("cannot read the records in the state directory")?;
    if cleaned > 0 {
        tracing::info!("removed what {cleaned} tunnel(s) of a previous run left behind");
    }
    let listener = listener::bind(&args.socket, &helper.access)?;
    tracing::info!("culvertd {} listening on {}", env!("CARGO_PKG_VERSION"), args.socket.display());
    system::notify::notify("READY=1");

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => { tokio::spawn(connection::serve(helper.clone(), stream)); }
                Err(e) => tracing::warn!("accept failed: {e}"),
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("shutting down: bringing every tunnel down");
    system::notify::notify("STOPPING=1");
    helper.shut_down().await;
    let _ = std::fs::remove_file(&args.socket);
    drop(state);
    Ok(())
}
