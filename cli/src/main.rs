//! culvert: the command-line client of culvertd.

mod exporter;
mod qr;
mod render;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use culvert_cli::args::{Cli, Command, OnOff};
use culvert_cli::exit;
use culvert_core::client::{Client, ClientError, socket_path};
use culvert_core::ipc::{Event, IpcError};
use culvert_core::keys::SecretKey;
use culvert_core::profile;

/// Writes one line to standard output; unlike `println!`, a closed pipe is an error to return, not a panic.
macro_rules! say {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*)
    };
}

/// Prints `value` as JSON when asked for JSON (`--json`), else `text`, as one line of standard output.
fn out(json: bool, value: impl serde::Serialize, text: impl std::fmt::Display) -> anyhow::Result<()> {
    if json {
        say!("{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        say!("{text}")?;
    }
    Ok(())
}

fn main() -> ExitCode {
    // `COMPLETE=bash culvert` prints the shell's part of the completions; with the shell's words, the candidates.
    // Either way it exits here. The shell's part calls `culvert` by name, so that it finds it on the PATH.
    clap_complete::CompleteEnv::with_factory(<Cli as clap::CommandFactory>::command).completer("culvert").complete();
    let cli = Cli::parse();
    // The profile store talks to the keyring synchronously: its commands run before any async runtime exists.
    let cli = match store_command(cli) {
        Ok(None) => return ExitCode::SUCCESS,
        Ok(Some(cli)) => cli,
        Err(e) if is_broken_pipe(&e) => return ExitCode::SUCCESS,
        Err(e) => return fail(&e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("culvert: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output left (`culvert watch lab | head -1`): done, as Unix tools are.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Says what went wrong and exits with the status that names its kind (`culvert_cli::exit`).
fn fail(e: &anyhow::Error) -> ExitCode {
    if let Some(exit::Reported(status)) = e.downcast_ref() {
        return ExitCode::from(*status as u8);
    }
    eprintln!("culvert: {e}");
    ExitCode::from(exit::status_of(e) as u8)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// A helper's refusal of a profile from a file, said as the CLI's own errors are: the file first, and for a
/// wg-quick file, its keys.
fn from_file(file: &Path, e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Helper(IpcError::InvalidProfile { field, reason, fix }) => {
            let error = profile::ProfileError::new(field, reason, fix);
            let error =
                if file.extension().is_some_and(|e| e == "conf") { profile::wg_quick::for_conf(error) } else { error };
            exit::Invalid(format!("{}: {error}", file.display())).into()
        }
        other => other.into(),
    }
}

/// A command for `culvertd`, with a stored profile resolved.
/// Runs the store's commands; returns the command still to run (with `up NAME` resolved to its profile).
fn store_command(cli: Cli) -> anyhow::Result<Option<Cli>> {
    let store = || culvert_store::Store::open_default();
    let json = cli.json;
    match &cli.command {
        Command::List => {
            let listed = store()?.list()?;
            if json {
                let listed: Vec<serde_json::Value> = listed
                    .iter()
                    .map(|l| {
                        serde_json::json!({
                            "name": l.name,
                            "kind": l.kind.map(|k| k.as_str()),
                            "encrypted": l.kind.map(|k| k.encrypted()),
                            "problem": l.problem,
                        })
                    })
                    .collect();
                say!("{}", serde_json::to_string_pretty(&listed)?)?;
                return Ok(None);
            }
            if listed.is_empty() {
                say!("no stored profile; `culvert import FILE` adds one")?;
            }
            for l in listed {
                match (l.kind, l.problem) {
                    (Some(kind), _) => {
                        let label = if kind.encrypted() { "" } else { "  (unencrypted)" };
                        say!("{}\t{kind}{label}", l.name)?;
                    }
                    (None, problem) => say!("{}\t(unreadable: {})", l.name, problem.unwrap_or_default())?,
                }
            }
            Ok(None)
        }
        Command::Import { files, name } => {
            import(&store()?, files, name.as_deref(), json)?;
            Ok(None)
        }
        Command::Export { name, qr: false } if json => {
            let exported = store()?.export_file(name)?;
            let value = serde_json::json!({
                "name": name,
                "kind": exported.kind.as_str(),
                "format": exported.format.as_str(),
                "text": exported.text.as_str(),
            });
            say!("{}", zeroize::Zeroizing::new(serde_json::to_string_pretty(&value)?).as_str())?;
            Ok(None)
        }
        Command::Export { name, qr: false } => {
            write!(std::io::stdout().lock(), "{}", zeroize::Zeroizing::new(store()?.export(name)?).as_str())?;
            Ok(None)
        }
        Command::Export { name, .. } if json => anyhow::bail!(
            "--qr draws a QR code, which has no JSON form: leave out --json, or run `culvert --json export {name}` for \
             the file as JSON"
        ),
        Command::Export { name, qr: true } => {
            let drawn = zeroize::Zeroizing::new(qr::draw(&store()?.qr_code(name)?));
            eprintln!("culvert: this QR code holds {name}'s private key: whoever scans it can use the tunnel");
            write!(std::io::stdout().lock(), "{}", drawn.as_str())?;
            Ok(None)
        }
        Command::Rm { name } => {
            store()?.remove(name)?;
            out(json, serde_json::json!({ "removed": name }), format!("removed {name}"))?;
            Ok(None)
        }
        Command::Up { profile } if !is_file_argument(profile) => {
            let loaded = store()?.load(profile)?;
            Ok(Some(Cli { socket: cli.socket, json, command: Command::UpLoaded(Box::new(loaded)) }))
        }
        Command::Apply { profile } if !is_file_argument(profile) => {
            let loaded = store()?.load(profile)?;
            Ok(Some(Cli { socket: cli.socket, json, command: Command::ApplyLoaded(Box::new(loaded)) }))
        }
        Command::Enable { profile, kill_switch, allow_lan } if !is_file_argument(profile) => {
            let loaded = store()?.load(profile)?;
            let command = Command::EnableLoaded(Box::new(loaded), *kill_switch, *allow_lan);
            Ok(Some(Cli { socket: cli.socket, json, command }))
        }
        _ => Ok(Some(cli)),
    }
}

/// What became of one file given to `culvert import`.
#[derive(serde::Serialize)]
struct Imported {
    file: String,
    imported: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Stores each file (`-`: standard input) and reports each as stored or skipped; the first skip's error is
/// returned after all were tried, for the exit status.
fn import(store: &culvert_store::Store, files: &[PathBuf], name: Option<&str>, json: bool) -> anyhow::Result<()> {
    let stdin = Path::new("-");
    if name.is_some() && files.len() > 1 {
        anyhow::bail!("--name names one profile: give it with one file (or `-`) only");
    }
    if files.iter().filter(|f| *f == stdin).count() > 1 {
        anyhow::bail!("standard input (`-`) holds one profile: give `-` once");
    }
    let mut reports = Vec::new();
    let mut first_error = None;
    for file in files {
        let result = if file == stdin {
            import_stdin(store, name)
        } else {
            read_profile_file(file).and_then(|text| Ok(store.import_text_as(file, &text, name)?))
        };
        let shown = if file == stdin { "standard input".to_owned() } else { file.display().to_string() };
        match result {
            Ok(p) => {
                if !json {
                    say!("stored {} ({}) from {shown}; `culvert up {}` brings it up", p.name, p.kind(), p.name)?;
                }
                let (name, kind) = (Some(p.name.clone()), Some(p.kind().to_string()));
                reports.push(Imported { file: shown, imported: true, name, kind, error: None });
            }
            Err(e) => {
                if !json {
                    eprintln!("culvert: skipped {shown}: {e}");
                }
                reports.push(Imported {
                    file: shown,
                    imported: false,
                    name: None,
                    kind: None,
                    error: Some(e.to_string()),
                });
                first_error.get_or_insert(e);
            }
        }
    }
    if json {
        say!("{}", serde_json::to_string_pretty(&reports)?)?;
    }
    match first_error {
        Some(e) => Err(exit::Reported(exit::status_of(&e)).into()),
        None => Ok(()),
    }
}

/// A profile file's text, with advice for a file the user may not read (root's, as /etc/wireguard's are).
fn read_profile_file(file: &Path) -> anyhow::Result<zeroize::Zeroizing<String>> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(zeroize::Zeroizing::new(text)),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let name = profile::name_from_path(file).unwrap_or_else(|| "NAME".into());
            Err(anyhow::Error::new(profile::LoadError::Read { path: file.into(), source: e }).context(format!(
                "you may not read {} (it is another user's, root's perhaps): pipe it in as root, with `sudo cat {} | \
                 culvert import - --name {name}`; the profile is stored as yours",
                file.display(),
                file.display()
            )))
        }
        Err(source) => Err(profile::LoadError::Read { path: file.into(), source }.into()),
    }
}

/// One profile from standard input: its format from its first group, its name from --name.
fn import_stdin(store: &culvert_store::Store, name: Option<&str>) -> anyhow::Result<profile::Profile> {
    let Some(name) = name else {
        anyhow::bail!("a profile from standard input has no file name to name it: add --name NAME");
    };
    let mut text = zeroize::Zeroizing::new(String::new());
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
        .map_err(|e| anyhow::anyhow!("cannot read standard input: {e}"))?;
    Ok(store.import_text_as(&profile::file_name_for(name, &text), &text, Some(name))?)
}

/// `profile` with the kill switch `culvert enable` was asked for (added to what the profile says).
fn guarded(mut profile: profile::Profile, kill_switch: bool, allow_lan: bool) -> anyhow::Result<profile::Profile> {
    if !kill_switch {
        return Ok(profile);
    }
    match &mut profile.tunnel {
        profile::Tunnel::Wireguard(w) => {
            w.kill_switch = true;
            w.allow_lan |= allow_lan;
            Ok(profile)
        }
        _ => anyhow::bail!(
            "--kill-switch is for WireGuard full tunnels, and {} is a {} tunnel",
            profile.name,
            profile.kind()
        ),
    }
}

/// `culvert up X` means a file when X looks like a path or names an existing file, else a stored profile.
fn is_file_argument(arg: &str) -> bool {
    arg.contains('/') || arg.ends_with(".toml") || arg.ends_with(".conf") || Path::new(arg).is_file()
}

async fn connect(socket: Option<&Path>) -> anyhow::Result<Client> {
    Ok(Client::connect(&socket_path(socket)).await?)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let socket = cli.socket.as_deref();
    let json = cli.json;
    match cli.command {
        Command::VxlanMac { vni, local } => {
            let mac = culvert_core::mac::MacAddr::derived(vni, local).to_string();
            out(json, serde_json::json!({ "mac": mac }), &mac)?;
        }
        Command::Genkey => {
            let key = SecretKey::generate_private().to_base64();
            out(json, serde_json::json!({ "private_key": key.as_str() }), key.as_str())?;
        }
        Command::Genpsk => {
            let key = SecretKey::generate_preshared().to_base64();
            out(json, serde_json::json!({ "preshared_key": key.as_str() }), key.as_str())?;
        }
        Command::Pubkey => {
            let mut text = zeroize::Zeroizing::new(String::new());
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
            let key: SecretKey = text.trim().parse().map_err(|_| {
                anyhow::anyhow!("standard input is not a private key: pipe in what `culvert genkey` printed")
            })?;
            let public = key.public_key().to_string();
            out(json, serde_json::json!({ "public_key": public }), &public)?;
        }
        Command::UpLoaded(profile) => {
            let status = connect(socket).await?.up(*profile).await?;
            out(json, &status, render::up_line(&status))?;
        }
        Command::ApplyLoaded(profile) => {
            let (status, changes) = connect(socket).await?.apply(*profile).await?;
            out(json, serde_json::json!({ "status": status, "changes": changes }), render::applied(&status, &changes))?;
        }
        Command::EnableLoaded(profile, kill_switch, allow_lan) => {
            let profile = guarded(*profile, kill_switch, allow_lan)?;
            let status = connect(socket).await?.enable(profile).await?;
            out(json, &status, render::enabled(&status))?;
        }
        Command::Enable { profile: file, kill_switch, allow_lan } => {
            let file = PathBuf::from(file);
            let profile = guarded(profile::load_file(&file)?, kill_switch, allow_lan)?;
            let status = connect(socket).await?.enable(profile).await.map_err(|e| from_file(&file, e))?;
            out(json, &status, render::enabled(&status))?;
        }
        Command::Lockdown { state } => {
            let on = connect(socket).await?.lockdown(state.map(|s| s == OnOff::On)).await?;
            let text = if on {
                "lockdown is on: nothing leaves this host but through a WireGuard full tunnel"
            } else {
                "lockdown is off"
            };
            out(json, serde_json::json!({ "lockdown": on }), text)?;
        }
        Command::Disable { name } => {
            connect(socket).await?.disable(&name).await?;
            out(json, serde_json::json!({ "disabled": name }), format!("{name} is down and disabled"))?;
        }
        Command::Enabled => {
            let mut client = connect(socket).await?;
            let enabled = client.system_tunnels().await?;
            let up = client.status(None).await?;
            let listed = render::enabled_list(&enabled, &up);
            if json {
                say!("{}", serde_json::to_string_pretty(&listed)?)?;
            } else if listed.is_empty() {
                say!("no system tunnel: `culvert enable NAME|FILE` makes one")?;
            } else {
                for t in &listed {
                    say!("{}", t.line())?;
                }
            }
        }
        Command::Apply { profile: file } => {
            let file = PathBuf::from(file);
            let profile = profile::load_file(&file)?;
            let (status, changes) = connect(socket).await?.apply(profile).await.map_err(|e| from_file(&file, e))?;
            out(json, serde_json::json!({ "status": status, "changes": changes }), render::applied(&status, &changes))?;
        }
        Command::List | Command::Import { .. } | Command::Export { .. } | Command::Rm { .. } => {}
        Command::Up { profile: file } => {
            let file = PathBuf::from(file);
            if file.extension().is_some_and(|e| e == "conf") {
                let text = std::fs::read_to_string(&file)
                    .map_err(|source| profile::LoadError::Read { path: file.clone(), source })?;
                let name = profile::name_from_path(&file).unwrap_or_default();
                if let Ok((_, notes)) = profile::wg_quick::parse(&name, &text) {
                    for note in notes {
                        eprintln!("culvert: {}: {note}", file.display());
                    }
                }
            }
            let profile = profile::load_file(&file)?;
            let status = connect(socket).await?.up(profile).await.map_err(|e| from_file(&file, e))?;
            out(json, &status, render::up_line(&status))?;
        }
        Command::Down { name, all } => {
            let mut client = connect(socket).await?;
            let names = client.down(if all { None } else { name.as_deref() }).await?;
            let text =
                if names.is_empty() { "no tunnel was up".to_owned() } else { format!("{} down", names.join(", ")) };
            out(json, serde_json::json!({ "down": names }), text)?;
        }
        Command::Status { name } => {
            let tunnels = connect(socket).await?.status(name.as_deref()).await?;
            if json {
                say!("{}", serde_json::to_string_pretty(&tunnels)?)?;
            } else if tunnels.is_empty() {
                say!("no tunnel is up")?;
            } else {
                let mut out = std::io::stdout().lock();
                for t in &tunnels {
                    write!(out, "{}", render::view_block(t))?;
                }
            }
        }
        Command::Exporter { listen } => {
            let socket = socket.map_or_else(|| PathBuf::from(culvert_core::DEFAULT_MONITOR_SOCKET), Path::to_path_buf);
            exporter::serve(listen, socket).await?;
        }
        Command::Watch { name, interval, packets, one_in } => {
            let sampling = packets.then_some(culvert_core::packets::Sampling { one_in });
            watch(socket, &name, interval, json, sampling).await?;
        }
    }
    Ok(())
}

async fn watch(
    socket: Option<&Path>,
    name: &str,
    interval: u32,
    json: bool,
    sampling: Option<culvert_core::packets::Sampling>,
) -> anyhow::Result<()> {
    let mut client = connect(socket).await?;
    client.subscribe(name, interval, sampling).await?;
    let mut last = None;
    // The helper's clock at its latest stats, against ours: dates packet samples.
    let mut clock = (0u64, std::time::SystemTime::now());
    loop {
        let event = tokio::select! {
            e = client.next_event() => e?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        match event {
            Event::Stats { at_ms, status } if status.name == name => {
                clock = (at_ms, std::time::SystemTime::now());
                if let Some((then, before)) = last.replace((at_ms, status.counters.clone())) {
                    let mut line = render::WatchLine::new(&status, &before, at_ms.saturating_sub(then));
                    // Lines less than a second apart need their milliseconds to tell them apart.
                    line.milliseconds = interval < 1000;
                    if json {
                        say!("{}", serde_json::to_string(&line)?)?;
                    } else {
                        say!("{line}")?;
                    }
                }
            }
            Event::PacketSamples { name: of, samples, missed } if of == name => {
                if missed > 0 {
                    eprintln!("culvert: {missed} packet samples were skipped");
                }
                for sample in samples {
                    let line = render::PacketLine::new(name, sample, clock);
                    if json {
                        say!("{}", serde_json::to_string(&line)?)?;
                    } else {
                        say!("{line}")?;
                    }
                }
            }
            Event::TunnelDown { name: gone } if gone == name => {
                eprintln!("culvert: tunnel {name} went down");
                return Ok(());
            }
            Event::Lagged { lost } => eprintln!("culvert: this terminal fell behind; {lost} updates were skipped"),
            _ => {}
        }
    }
}
