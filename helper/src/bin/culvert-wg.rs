//! culvert-wg: Culvert's WireGuard engine as a userspace WireGuard, with wireguard-go's command line, so that
//! `wg` and `wg-quick` drive it as they drive wireguard-go (`WG_QUICK_USERSPACE_IMPLEMENTATION=culvert-wg`).
//! It needs no culvertd and reads no profile: the userspace API configures it, and nothing else.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use culvert_helper::args::CulvertWg as Args;
use culvert_helper::tunnel::uapi;
use culvert_helper::wg_device::WgDevice;

/// In the environment of the process that runs the device for a caller that did not ask for the foreground: it
/// tells the caller on its standard output that the device is there ("ready") or why not ("error: ...").
const REPORT_ENV: &str = "CULVERT_WG_REPORT";
/// How often the process looks whether its device or its socket is gone.
const WATCH_EVERY: Duration = Duration::from_millis(200);

/// LOG_LEVEL, as wireguard-go reads it: `verbose` (or `debug`), `error`, `silent`; unset is `error`.
fn log_filter() -> (&'static str, bool) {
    match std::env::var("LOG_LEVEL").ok().as_deref() {
        Some("verbose" | "debug") => ("debug", true),
        Some("silent") => ("off", false),
        Some(_) => ("error", true),
        None => ("error", false),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(problem) = culvert_core::ifname::check(&args.interface) {
        eprintln!("culvert-wg: the interface name {:?} {problem}", args.interface);
        return ExitCode::from(2);
    }
    let (filter, asked_for_logs) = log_filter();
    if !args.foreground {
        return detach(&args.interface, asked_for_logs);
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    culvert_helper::system::memory::map_large_buffers();
    let report = std::env::var_os(REPORT_ENV).is_some();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(report, &format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(run(&args.interface, report)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(report, &message),
    }
}

/// Runs the device in a process of its own and returns once it is there, so that the caller may configure it at
/// once (wg-quick does). The process keeps the caller's standard error only when LOG_LEVEL asked for logs, as
/// wireguard-go does: else a caller capturing its output would wait for the device to end.
fn detach(interface: &str, keep_stderr: bool) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("culvert-wg: cannot find its own executable to run the device: {e}");
            return ExitCode::FAILURE;
        }
    };
    let spawned = Command::new(exe)
        .args(["--foreground", interface])
        .env(REPORT_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if keep_stderr { Stdio::inherit() } else { Stdio::null() })
        // Out of the caller's process group: the terminal's Ctrl-C is not for the device.
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            eprintln!("culvert-wg: cannot start the device's process: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    if line == "ready\n" {
        return ExitCode::SUCCESS;
    }
    let _ = child.wait();
    let message = line.trim_end().strip_prefix("error: ").unwrap_or("the device's process ended before it was ready");
    eprintln!("culvert-wg: {message}");
    ExitCode::FAILURE
}

fn fail(report: bool, message: &str) -> ExitCode {
    if report {
        println!("error: {message}");
    }
    eprintln!("culvert-wg: {message}");
    ExitCode::FAILURE
}

async fn run(interface: &str, report: bool) -> Result<(), String> {
    let device = WgDevice::create(interface).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => format!(
            "cannot create the TUN device {interface}: {e}; run culvert-wg as root (or with CAP_NET_ADMIN), as \
             wg-quick does"
        ),
        _ => format!("cannot create the TUN device {interface}: {e}"),
    })?;
    let device = Arc::new(device);
    let listener = uapi::bind(interface).map_err(|e| e.to_string())?;
    let path = uapi::socket_path(interface);
    let ours = identity(&path);
    let (sets, mut requests) = tokio::sync::mpsc::channel::<uapi::SetRequest>(8);
    tokio::spawn(uapi::serve(listener, device.clone(), interface.to_owned(), sets));
    let applier = device.clone();
    tokio::spawn(async move {
        while let Some(request) = requests.recv().await {
            let _ = request.reply.send(applier.set(&request.set));
        }
    });
    if report {
        ready();
    }
    tracing::info!("({interface}) device started; its userspace API is {}", path.display());
    let why = watch(&device, &path, ours).await;
    tracing::info!("({interface}) shutting down: {why}");
    if ours.is_some() && identity(&path) == ours {
        let _ = std::fs::remove_file(&path);
    }
    Ok(())
}

/// Tells the process that started this one that the device is there, and lets go of its pipe.
fn ready() {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(b"ready\n").and_then(|()| out.flush());
    drop(out);
    if let Ok(null) = std::fs::File::options().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(&null);
    }
}

/// The file at `path`, to tell whether it is still the socket this process made.
fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Waits for a reason to end: a signal, the device deleted, or the socket removed (or replaced).
async fn watch(device: &WgDevice, path: &Path, ours: Option<(u64, u64)>) -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return "cannot listen for signals";
    };
    let mut tick = tokio::time::interval(WATCH_EVERY);
    loop {
        tokio::select! {
            _ = term.recv() => return "SIGTERM",
            _ = int.recv() => return "SIGINT",
            _ = tick.tick() => {
                if device.gone() {
                    return "the device was deleted";
                }
                if identity(path) != ours {
                    return "its userspace API socket was removed";
                }
            }
        }
    }
}
