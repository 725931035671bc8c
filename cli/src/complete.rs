//! What the shell completions offer beyond clap's own words: the names of stored profiles and of the tunnels
//! culvertd shows the user, asked for at the moment of completing (`COMPLETE=bash culvert` writes the shell's
//! part, which calls culvert back). A completion never fails: whatever cannot be listed is left out.

use std::ffi::OsStr;
use std::time::Duration;

use clap_complete::engine::{CompletionCandidate, PathCompleter, ValueCompleter};

/// How long a completion waits for culvertd before offering nothing: a shell must not hang on a Tab.
const HELPER_WAIT: Duration = Duration::from_millis(500);

/// Stored profiles whose names start with what was typed.
pub fn stored_profiles(current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(typed) = current.to_str() else { return Vec::new() };
    let Ok(store) = culvert_store::Store::open_default() else { return Vec::new() };
    let Ok(listed) = store.list() else { return Vec::new() };
    listed
        .into_iter()
        .filter(|l| l.name.starts_with(typed))
        .map(|l| {
            let help = l.kind.map(|k| format!("stored {k} profile"));
            CompletionCandidate::new(l.name).help(help.map(Into::into))
        })
        .collect()
}

/// A profile argument: a stored profile's name, or a file.
pub fn profile_or_file(current: &OsStr) -> Vec<CompletionCandidate> {
    let mut candidates = stored_profiles(current);
    candidates.extend(PathCompleter::file().complete(current));
    candidates
}

/// The user's tunnels as culvertd shows them (root: all), whose names start with what was typed.
pub fn tunnels(current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(typed) = current.to_str() else { return Vec::new() };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return Vec::new() };
    let names = runtime.block_on(async {
        let ask = async {
            let socket = culvert_core::client::socket_path(None);
            let mut client = culvert_core::client::Client::connect(&socket).await.ok()?;
            client.status(None).await.ok()
        };
        tokio::time::timeout(HELPER_WAIT, ask).await.ok().flatten()
    });
    names
        .unwrap_or_default()
        .iter()
        // Others' tunnels are shown by name only, and only their owner (or root, who sees all in full) may act.
        .filter_map(|t| t.full())
        .filter(|t| t.name.starts_with(typed))
        .map(|t| CompletionCandidate::new(&t.name).help(Some(format!("{} tunnel, {}", t.kind, t.state).into())))
        .collect()
}
