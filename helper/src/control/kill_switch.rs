//! The kill switch: which full tunnels guard the host, whether lockdown is on, and the `inet culvert` table
//! made of them.
//!
//! The table is a kernel object, so it outlives culvertd: that is how the switch fails closed. What it was made
//! of is kept in `<state-dir>/kill-switch.json`, written before every change of the table, so that a helper
//! that starts after a crash rebuilds the same table instead of removing it, and lists each tunnel it still
//! guards as `blocked` until its owner brings it up again or down. Lockdown is `<config-dir>/lockdown`, kept
//! across reboots; culvertd's unit puts the table in place from it before the network is up.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::system::files;
use crate::system::nft::{self, Passage};
use crate::system::resolver::Resolver;

/// One full tunnel, as the kill switch knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guard {
    pub owner_uid: u32,
    pub interface: String,
    /// The mark on culvertd's own packets for the tunnel.
    pub fwmark: u32,
    /// The profile asks for the kill switch; without it, the tunnel is guarded only while lockdown is on.
    pub kill_switch: bool,
    pub allow_lan: bool,
    /// A system tunnel: its kill switch stays while culvertd is stopped, since culvertd brings it up again.
    #[serde(default)]
    pub system: bool,
    /// Up in this helper; false for what a previous helper left.
    #[serde(skip)]
    pub up: bool,
}

#[derive(Debug, Default)]
struct State {
    guards: BTreeMap<String, Guard>,
    lockdown: bool,
}

impl State {
    /// Whether the table must be there, and what it lets through.
    fn passages(&self) -> Option<Vec<Passage>> {
        let guarded = |g: &&Guard| g.kill_switch || self.lockdown;
        if !self.lockdown && !self.guards.values().any(|g| g.kill_switch) {
            return None;
        }
        Some(
            self.guards
                .values()
                .filter(guarded)
                .map(|g| Passage { interface: g.interface.clone(), fwmark: g.fwmark, allow_lan: g.allow_lan })
                .collect(),
        )
    }
}

#[derive(Debug)]
pub struct KillSwitch {
    state_file: PathBuf,
    lockdown_file: PathBuf,
    state: Mutex<State>,
    /// One change of the table at a time; each is made from the state as it is then, so the last one to run
    /// leaves the newest.
    applying: tokio::sync::Mutex<()>,
    /// Off in unit tests over the fake kernel, which has no nftables.
    tables: bool,
    /// Told whether the table is in place, so that endpoints' names are looked up past it.
    resolver: Option<Resolver>,
}

/// A tunnel the kill switch still guards while it is not up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub name: String,
    pub guard: Guard,
    pub lockdown: bool,
}

impl KillSwitch {
    /// The kill switch of the state directory `state_dir` and config directory `config_dir`, as the previous
    /// helper left it: every tunnel it guarded is now blocked.
    pub fn open(state_dir: &Path, config_dir: &Path) -> io::Result<Self> {
        let state_file = state_dir.join("kill-switch.json");
        let lockdown_file = config_dir.join("lockdown");
        let guards = match std::fs::read(&state_file) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                // Fail closed: an unreadable record is taken as lockdown below, never as "nothing guarded".
                tracing::warn!("{} is unreadable ({e}): blocking until a tunnel is up", state_file.display());
                BTreeMap::from([(String::new(), Guard::unknown())])
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        let lockdown = lockdown_file.exists();
        let mut state = State { guards, lockdown };
        // What was guarded only by lockdown, with lockdown now off, is not blocked.
        state.guards.retain(|_, g| g.kill_switch || lockdown);
        Ok(Self {
            state_file,
            lockdown_file,
            state: Mutex::new(state),
            applying: Default::default(),
            tables: true,
            resolver: None,
        })
    }

    /// Has `resolver` look names up with marked sockets whenever the table is in place.
    pub fn steering(self, resolver: Resolver) -> Self {
        Self { resolver: Some(resolver), ..self }
    }

    /// For unit tests over the fake kernel: kept in memory and files, with no table.
    #[cfg(test)]
    pub fn without_tables(state_dir: &Path, config_dir: &Path) -> Self {
        Self { tables: false, ..Self::open(state_dir, config_dir).expect("kill switch") }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn lockdown(&self) -> bool {
        self.state().lockdown
    }

    pub fn lockdown_word(&self) -> &'static str {
        if self.lockdown() { "on" } else { "off" }
    }

    /// Who a guarded tunnel belongs to, if the kill switch guards one of that name.
    pub fn owner(&self, name: &str) -> Option<u32> {
        self.state().guards.get(name).map(|g| g.owner_uid)
    }

    /// The tunnels guarded but not up, all or the one named.
    pub fn blocked(&self, name: Option<&str>) -> Vec<Blocked> {
        let state = self.state();
        state
            .guards
            .iter()
            .filter(|(n, g)| !g.up && !n.is_empty() && name.is_none_or(|want| want == n.as_str()))
            .map(|(n, g)| Blocked { name: n.clone(), guard: g.clone(), lockdown: state.lockdown })
            .collect()
    }

    /// Guards tunnel `name` (up now), and puts the table in place if it is needed. When the table cannot be
    /// changed, what was guarded before stays guarded (a block from before a crash, say): failing, it fails
    /// closed.
    pub async fn guard(&self, name: &str, guard: Guard) -> Result<(), KillSwitchError> {
        let (unknown, previous) = {
            let mut state = self.state();
            (state.guards.remove(""), state.guards.insert(name.to_owned(), Guard { up: true, ..guard }))
        };
        let result = self.sync().await;
        if result.is_err() {
            {
                let mut state = self.state();
                match previous {
                    Some(before) => state.guards.insert(name.to_owned(), before),
                    None => state.guards.remove(name),
                };
                if let Some(unknown) = unknown {
                    state.guards.insert(String::new(), unknown);
                }
            }
            let _ = self.sync().await;
        }
        result
    }

    /// Stops guarding tunnel `name` (down, or never up).
    pub async fn release(&self, name: &str) -> Result<(), KillSwitchError> {
        if self.state().guards.remove(name).is_none() {
            return Ok(());
        }
        self.sync().await
    }

    /// As culvertd stops: system tunnels' kill switches stay (culvertd brings them up again), the others go.
    pub async fn stopping(&self) -> Result<(), KillSwitchError> {
        {
            let mut state = self.state();
            state.guards.retain(|_, g| g.system && g.kill_switch);
            for g in state.guards.values_mut() {
                g.up = false;
            }
        }
        self.sync().await
    }

    pub async fn set_system(&self, name: &str, system: bool) -> Result<(), KillSwitchError> {
        let changed = match self.state().guards.get_mut(name) {
            Some(g) if g.system != system => {
                g.system = system;
                true
            }
            _ => false,
        };
        if changed { self.sync().await } else { Ok(()) }
    }

    /// Turns lockdown on or off, kept across restarts and reboots.
    pub async fn set_lockdown(&self, on: bool) -> Result<(), KillSwitchError> {
        let kept = if on {
            files::write_atomically(&self.lockdown_file, b"on\n", 0o600)
        } else {
            files::remove_if_there(&self.lockdown_file).map(|_| ())
        };
        kept.map_err(|e| KillSwitchError::File { path: self.lockdown_file.clone(), source: e })?;
        {
            let mut state = self.state();
            state.lockdown = on;
            // A tunnel that was blocked only by lockdown is no longer blocked.
            state.guards.retain(|_, g| g.up || g.kill_switch);
        }
        self.sync().await
    }

    /// Makes the table what the state says: built whole, or removed when nothing needs it. The record is
    /// written first, so that a crash in between leaves a record at least as strict as the table.
    pub async fn sync(&self) -> Result<(), KillSwitchError> {
        let _one_at_a_time = self.applying.lock().await;
        let (record, passages) = {
            let state = self.state();
            (serde_json::to_vec_pretty(&state.guards).unwrap_or_default(), state.passages())
        };
        let kept = if record.len() > 2 {
            files::write_atomically(&self.state_file, &record, 0o600)
        } else {
            files::remove_if_there(&self.state_file).map(|_| ())
        };
        kept.map_err(|e| KillSwitchError::File { path: self.state_file.clone(), source: e })?;
        let in_place = passages.is_some();
        if self.tables {
            match passages {
                Some(passages) => nft::apply(nft::kill_switch_ruleset(&passages)).await?,
                None => nft::apply(nft::kill_switch_removal()).await?,
            }
        }
        if let Some(resolver) = &self.resolver {
            resolver.set_marked(in_place);
        }
        Ok(())
    }
}

impl Guard {
    /// What an unreadable record stands for: a tunnel of unknown owner, guarded with nothing let through.
    fn unknown() -> Self {
        Self {
            owner_uid: 0,
            interface: "lo".into(),
            fwmark: 0,
            kill_switch: true,
            allow_lan: false,
            system: true,
            up: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KillSwitchError {
    #[error("keeping {path}: {source}")]
    File { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Table(#[from] nft::NftError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(kill_switch: bool, system: bool) -> Guard {
        Guard {
            owner_uid: 1000,
            interface: "wg0".into(),
            fwmark: 51820,
            kill_switch,
            allow_lan: false,
            system,
            up: false,
        }
    }

    #[tokio::test]
    async fn what_is_guarded_survives_a_restart_as_blocked_and_stopping_keeps_only_system_tunnels() {
        let dir = std::env::temp_dir().join(format!("culvert-ks-{}", std::process::id()));
        let (state_dir, config_dir) = (dir.join("state"), dir.join("config"));
        std::fs::create_dir_all(&state_dir).unwrap();
        std::fs::create_dir_all(&config_dir).unwrap();
        let ks = KillSwitch::without_tables(&state_dir, &config_dir);
        assert_eq!(ks.state().passages(), None, "no table with nothing guarded");
        ks.guard("wg0", guard(true, false)).await.unwrap();
        ks.guard("plain", Guard { interface: "wg1".into(), ..guard(false, false) }).await.unwrap();
        ks.guard("sys", Guard { interface: "wg2".into(), ..guard(true, true) }).await.unwrap();
        assert!(ks.blocked(None).is_empty(), "all up");
        let names = |p: Option<Vec<Passage>>| p.unwrap().into_iter().map(|p| p.interface).collect::<Vec<_>>();
        assert_eq!(names(ks.state().passages()), ["wg2", "wg0"], "a tunnel without the switch is not let through");

        // A crash: the next helper finds them blocked; the one guarded only by lockdown is not.
        let after = KillSwitch::without_tables(&state_dir, &config_dir);
        let blocked: Vec<String> = after.blocked(None).into_iter().map(|b| b.name).collect();
        assert_eq!(blocked, ["sys", "wg0"]);
        assert_eq!(after.owner("wg0"), Some(1000));
        after.release("wg0").await.unwrap();
        assert_eq!(after.blocked(Some("wg0")), vec![]);

        // Lockdown lets through every full tunnel, and with none up, nothing.
        after.set_lockdown(true).await.unwrap();
        assert!(config_dir.join("lockdown").exists());
        after.guard("plain", Guard { interface: "wg1".into(), ..guard(false, false) }).await.unwrap();
        assert_eq!(names(after.state().passages()), ["wg1", "wg2"]);

        // Stopping keeps the system tunnel's switch; lockdown stays; with both gone, so is the record.
        after.stopping().await.unwrap();
        let again = KillSwitch::without_tables(&state_dir, &config_dir);
        assert!(again.lockdown());
        assert_eq!(again.blocked(None).into_iter().map(|b| b.name).collect::<Vec<_>>(), ["sys"]);
        again.release("sys").await.unwrap();
        again.set_lockdown(false).await.unwrap();
        assert_eq!(again.state().passages(), None);
        assert!(!state_dir.join("kill-switch.json").exists() && !config_dir.join("lockdown").exists());

        // An unreadable record fails closed.
        std::fs::write(state_dir.join("kill-switch.json"), "{not json").unwrap();
        let unreadable = KillSwitch::without_tables(&state_dir, &config_dir);
        assert_eq!(names(unreadable.state().passages()), ["lo"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
