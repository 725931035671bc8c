//! The profile store shared by the CLI and the desktop app.
//!
//! Profiles live as TOML files in `$XDG_CONFIG_HOME/culvert/profiles/<name>.toml` (default `~/.config`), written
//! atomically (temporary file, fsync, rename, fsync of the directory). Their secrets (WireGuard private and
//! preshared keys) never go into those files: they live in the desktop session's Secret Service under service
//! `culvert`, account `<profile>/private_key` or `<profile>/preshared_key/<peer public key>`.

mod files;
mod secrets;

use std::path::{Path, PathBuf};

use culvert_core::keys::PublicKey;
use culvert_core::profile::{self, Draft, FileProblem, Kind, Profile, Tunnel, WireguardDraft};
use zeroize::Zeroizing;

pub use files::write_atomically;
pub use secrets::Secrets;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("there is no stored profile `{0}`; `culvert list` shows the stored ones, `culvert import FILE` adds one")]
    NotFound(String),
    #[error(
        "a profile `{0}` is stored already; remove it first with `culvert rm {0}`, or import the file under another name"
    )]
    Exists(String),
    #[error("{0}")]
    Load(#[from] profile::LoadError),
    #[error("stored profile {}: {problem}; fix the file, or remove it with `culvert rm {name}`", path.display())]
    Corrupt { name: String, path: PathBuf, problem: FileProblem },
    #[error(
        "the {what} of profile `{name}` is not in your keyring; import the profile again (`culvert rm {name}`, then \
         `culvert import FILE`)"
    )]
    MissingSecret { name: String, what: String },
    #[error("{0}")]
    Secrets(#[from] secrets::SecretError),
    #[error(
        "{name} is a {kind} profile: QR codes are for WireGuard profiles, which the WireGuard mobile apps import; \
         export it as a file instead"
    )]
    NotForQr { name: String, kind: Kind },
    #[error("{name} is too large for a QR code ({reason}): export it as a file instead")]
    TooLargeForQr { name: String, reason: String },
    #[error("cannot use the profile directory {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A stored profile as a file to hand on.
#[derive(Debug)]
pub struct Exported {
    pub kind: Kind,
    pub format: ExportFormat,
    pub text: Zeroizing<String>,
}

/// How an exported profile is written: wg-quick for WireGuard, TOML for the other kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    WgQuick,
    Toml,
}

impl ExportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WgQuick => "wg-quick",
            Self::Toml => "toml",
        }
    }
}

/// A stored profile as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub kind: Option<Kind>,
    /// Why the file cannot be read as a profile, if it cannot.
    pub problem: Option<String>,
}

#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    secrets: Secrets,
}

/// Culvert's directory under an XDG base directory: `$VAR/culvert`, else `$HOME/<home_default>/culvert`
/// (`XDG_CONFIG_HOME` and `.config`, `XDG_DATA_HOME` and `.local/share`).
pub fn xdg_dir(var: &str, home_default: &str) -> Option<PathBuf> {
    let base = std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(home_default)))?;
    Some(base.join("culvert"))
}

/// `$XDG_CONFIG_HOME/culvert/profiles`, else `$HOME/.config/culvert/profiles`.
pub fn default_dir() -> Option<PathBuf> {
    xdg_dir("XDG_CONFIG_HOME", ".config").map(|c| c.join("profiles"))
}

impl Store {
    /// The user's store, with secrets in the session's Secret Service.
    pub fn open_default() -> Result<Self, StoreError> {
        let dir = default_dir().ok_or_else(|| StoreError::Io {
            path: PathBuf::from("~/.config/culvert/profiles"),
            source: std::io::Error::other("neither XDG_CONFIG_HOME nor HOME is set"),
        })?;
        Ok(Self::open(dir, Secrets::secret_service()))
    }

    pub fn open(dir: PathBuf, secrets: Secrets) -> Self {
        Self { dir, secrets }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.toml"))
    }

    /// Every stored profile, by name.
    pub fn list(&self) -> Result<Vec<Listed>, StoreError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(source) => return Err(StoreError::Io { path: self.dir.clone(), source }),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let Some(name) = profile::name_from_path(&path) else { continue };
            let (kind, problem) = match std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|text| Draft::from_toml(&text).map(|d| d.kind()).map_err(|e| e.to_string()))
            {
                Ok(kind) => (Some(kind), None),
                Err(p) => (None, Some(p)),
            };
            out.push(Listed { name, kind, problem });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Reads a profile file (`.conf` for wg-quick, else TOML), validates it and stores it under its stem.
    pub fn import(&self, file: &Path) -> Result<Profile, StoreError> {
        let text =
            std::fs::read_to_string(file).map_err(|source| profile::LoadError::Read { path: file.into(), source })?;
        self.import_text(file, &text)
    }

    /// Stores the profile of a file's text, named and read by the file's name (`wg0.conf` is a wg-quick file of
    /// tunnel `wg0`): for text read elsewhere, a file dropped on the app's window, say.
    pub fn import_text(&self, file_name: &Path, text: &str) -> Result<Profile, StoreError> {
        self.import_text_as(file_name, text, None)
    }

    /// As [`Store::import_text`], stored under `name` instead of the name the file gives, when there is one.
    pub fn import_text_as(&self, file_name: &Path, text: &str, name: Option<&str>) -> Result<Profile, StoreError> {
        let mut profile = profile::parse_file(file_name, text)?;
        if let Some(name) = name {
            profile.name = name.to_owned();
            profile
                .validate()
                .map_err(|e| profile::LoadError::Invalid { path: file_name.into(), error: FileProblem::Field(e) })?;
        }
        // An overlay's PEM files are found from the file's directory, and stored by their absolute paths.
        let base = file_name.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        profile::read_etcd_files(&mut profile, base)?;
        if self.path(&profile.name).exists() {
            return Err(StoreError::Exists(profile.name));
        }
        self.save(&profile)?;
        Ok(profile)
    }

    /// Stores `profile`, replacing a stored one of the same name: secrets to the keyring first, then the file.
    pub fn save(&self, profile: &Profile) -> Result<(), StoreError> {
        profile.validate().map_err(|e| StoreError::Corrupt {
            name: profile.name.clone(),
            path: self.path(&profile.name),
            problem: FileProblem::Field(e),
        })?;
        if let Tunnel::Wireguard(w) = &profile.tunnel {
            self.secrets.set(&secrets::private_key_account(&profile.name), &w.private_key.to_base64())?;
            for p in &w.peers {
                if let Some(psk) = &p.preshared_key {
                    self.secrets.set(&secrets::psk_account(&profile.name, &p.public_key), &psk.to_base64())?;
                }
            }
        }
        // Only a profile with a password needs the keyring: the others work without one.
        if let Tunnel::Overlay(o) = &profile.tunnel
            && let Some(password) = &o.etcd_password
        {
            self.secrets.set(&secrets::etcd_password_account(&profile.name), password.expose())?;
        }
        let text = Draft::from(profile).without_secrets().to_toml();
        let path = self.path(&profile.name);
        write_atomically(&path, text.as_bytes()).map_err(|source| StoreError::Io { path, source })
    }

    /// A stored profile's file and its text (without secrets); a name that cannot be stored is not found.
    fn read(&self, name: &str) -> Result<(PathBuf, String), StoreError> {
        profile::validate_name(name).map_err(|_| StoreError::NotFound(name.into()))?;
        let path = self.path(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok((path, text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound(name.into())),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// The stored profile with its secrets from the keyring, ready for `Up`.
    pub fn load(&self, name: &str) -> Result<Profile, StoreError> {
        let (path, text) = self.read(name)?;
        let corrupt = |problem| StoreError::Corrupt { name: name.into(), path: path.clone(), problem };
        let mut draft = Draft::from_toml(&text).map_err(corrupt)?;
        match &mut draft {
            Draft::Wireguard(w) => self.put_secrets_back(name, w)?,
            Draft::Overlay(o) if o.etcd_username.is_some() => {
                let password = self
                    .secrets
                    .get(&secrets::etcd_password_account(name))?
                    .ok_or_else(|| StoreError::MissingSecret { name: name.into(), what: "etcd password".into() })?;
                o.etcd_password = Some(password.to_string());
            }
            _ => {}
        }
        let mut profile = draft.into_profile(name).map_err(|e| corrupt(FileProblem::Field(e)))?;
        // The PEM files an overlay names are read here, by the client, as for a profile file.
        profile::read_etcd_files(&mut profile, &self.dir).map_err(StoreError::from)?;
        Ok(profile)
    }

    fn put_secrets_back(&self, name: &str, w: &mut WireguardDraft) -> Result<(), StoreError> {
        let key = self
            .secrets
            .get(&secrets::private_key_account(name))?
            .ok_or_else(|| StoreError::MissingSecret { name: name.into(), what: "private key".into() })?;
        w.private_key = Some(key.to_string());
        for peer in &mut w.peer {
            let Ok(public) = peer.public_key.parse::<PublicKey>() else { continue };
            if let Some(psk) = self.secrets.get(&secrets::psk_account(name, &public))? {
                peer.preshared_key = Some(psk.to_string());
            }
        }
        Ok(())
    }

    /// The profile as a file to hand to someone: wg-quick for WireGuard (keys included, as wg-quick files hold
    /// them), TOML for the other kinds.
    pub fn export(&self, name: &str) -> Result<String, StoreError> {
        // Moved out, not copied: no second copy of the keys is left to wipe.
        Ok(std::mem::take(&mut *self.export_file(name)?.text))
    }

    /// As [`Store::export`], with the profile's kind and the file's format; the text is wiped when dropped.
    pub fn export_file(&self, name: &str) -> Result<Exported, StoreError> {
        let profile = self.load(name)?;
        let (format, text) = match profile::wg_quick::write(&profile) {
            Some(conf) => (ExportFormat::WgQuick, conf),
            None => (ExportFormat::Toml, profile::write_toml(&profile)),
        };
        Ok(Exported { kind: profile.kind(), format, text: Zeroizing::new(text) })
    }

    /// A WireGuard profile's wg-quick file as a QR code, as the WireGuard mobile apps import them. It holds the
    /// private key: the CLI and the app warn before they show it.
    pub fn qr_code(&self, name: &str) -> Result<qrcode::QrCode, StoreError> {
        let profile = self.load(name)?;
        let Some(conf) = profile::wg_quick::write(&profile).map(Zeroizing::new) else {
            return Err(StoreError::NotForQr { name: name.into(), kind: profile.kind() });
        };
        // The lowest error correction gives the fewest modules, the easiest to scan from a screen (qrencode's
        // default).
        qrcode::QrCode::with_error_correction_level(conf.as_bytes(), qrcode::EcLevel::L)
            .map_err(|e| StoreError::TooLargeForQr { name: name.into(), reason: e.to_string() })
    }

    /// Removes the file, then the secrets (WireGuard profiles only: the other kinds have none, and need no
    /// keyring).
    pub fn remove(&self, name: &str) -> Result<(), StoreError> {
        let (path, text) = self.read(name)?;
        std::fs::remove_file(&path).map_err(|source| StoreError::Io { path, source })?;
        match Draft::from_toml(&text) {
            Ok(Draft::Wireguard(w)) => {
                self.secrets.delete(&secrets::private_key_account(name))?;
                for peer in w.peer.iter().filter_map(|p| p.public_key.parse::<PublicKey>().ok()) {
                    self.secrets.delete(&secrets::psk_account(name, &peer))?;
                }
            }
            Ok(Draft::Overlay(o)) if o.etcd_username.is_some() => {
                self.secrets.delete(&secrets::etcd_password_account(name))?;
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
