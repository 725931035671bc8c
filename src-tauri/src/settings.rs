//! The app's own settings: start minimized and the tunnels to connect on launch, in
//! `$XDG_CONFIG_HOME/culvert/app.toml` (written atomically, like the profiles). Start at login is not stored
//! here: the autostart entry in `~/.config/autostart` is its only truth.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ts_rs::TS;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Start in the tray with the window hidden (only where a tray exists: without one the window always shows).
    #[serde(default)]
    pub start_minimized: bool,
    /// Stored profiles to bring up when the app starts, in this order.
    #[serde(default)]
    pub connect_on_launch: Vec<String>,
    /// Desktop notifications: a tunnel connected or went down, a handshake that fails, the helper gone and back.
    #[serde(default = "on")]
    pub notifications: bool,
}

fn on() -> bool {
    true
}

impl Default for Settings {
    fn default() -> Self {
        Self { start_minimized: false, connect_on_launch: vec![], notifications: true }
    }
}

/// What the settings view shows: the stored settings and what lives elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[ts(export)]
pub struct SettingsView {
    pub settings: Settings,
    pub start_at_login: bool,
    /// Whether a tray icon exists; without one, closing the window quits and start minimized cannot apply.
    pub tray: bool,
}

pub fn path() -> Option<PathBuf> {
    culvert_store::xdg_dir("XDG_CONFIG_HOME", ".config").map(|c| c.join("app.toml"))
}

/// Reads the settings; a missing file is the defaults, a damaged one is the defaults with the reason logged
/// (the file is left alone until the user saves settings again).
pub fn load_from(path: &Path) -> Settings {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).unwrap_or_else(|e| {
            tracing::warn!("ignoring {}: {e}; saving settings rewrites it", path.display());
            Settings::default()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Settings::default(),
        Err(e) => {
            tracing::warn!("cannot read {}: {e}", path.display());
            Settings::default()
        }
    }
}

pub fn load() -> Settings {
    path().map(|p| load_from(&p)).unwrap_or_default()
}

pub fn save_to(path: &Path, settings: &Settings) -> Result<(), String> {
    let text = toml::to_string(settings).map_err(|e| e.to_string())?;
    culvert_store::write_atomically(path, text.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub fn save(settings: &Settings) -> Result<(), String> {
    let path = path().ok_or("neither XDG_CONFIG_HOME nor HOME is set: there is nowhere to keep settings")?;
    save_to(&path, settings)
}

impl Settings {
    /// Keeps the launch list true when a profile is renamed (`to` Some) or removed (`to` None).
    pub fn rename_profile(&mut self, from: &str, to: Option<&str>) -> bool {
        let before = self.connect_on_launch.clone();
        self.connect_on_launch = before
            .iter()
            .filter_map(|n| if n == from { to.map(str::to_owned) } else { Some(n.clone()) })
            .fold(Vec::new(), |mut list, n| {
                if !list.contains(&n) {
                    list.push(n);
                }
                list
            });
        self.connect_on_launch != before
    }
}

/// Applies a rename or removal to the stored settings, when it changes them.
pub fn follow_profile(from: &str, to: Option<&str>) {
    let mut settings = load();
    if settings.rename_profile(from, to)
        && let Err(e) = save(&settings)
    {
        tracing::warn!("cannot update the launch list after {from} changed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_a_missing_file_is_the_defaults() {
        let dir = std::env::temp_dir().join(format!("culvert-settings-{}", std::process::id()));
        let path = dir.join("app.toml");
        assert_eq!(load_from(&path), Settings::default());
        let s = Settings {
            start_minimized: true,
            connect_on_launch: vec!["office".into(), "lab".into()],
            notifications: false,
        };
        save_to(&path, &s).unwrap();
        assert_eq!(load_from(&path), s);
        // A file from before notifications could be turned off has them on.
        std::fs::write(&path, "start_minimized = true").unwrap();
        assert!(load_from(&path).notifications);
        std::fs::write(&path, "start_minimized = \"yes\"").unwrap();
        assert_eq!(load_from(&path), Settings::default(), "a damaged file reads as the defaults");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_launch_list_follows_renames_and_removals() {
        let mut s = Settings { connect_on_launch: vec!["a".into(), "b".into()], ..Settings::default() };
        assert!(s.rename_profile("a", Some("c")));
        assert_eq!(s.connect_on_launch, ["c", "b"]);
        assert!(s.rename_profile("c", Some("b")), "a rename onto a listed name leaves it once");
        assert_eq!(s.connect_on_launch, ["b"]);
        assert!(!s.rename_profile("x", None));
        assert!(s.rename_profile("b", None));
        assert!(s.connect_on_launch.is_empty());
    }
}
