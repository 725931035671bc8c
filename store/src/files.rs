//! Profile files without their secrets, and atomic writes.

use std::io::Write;
use std::path::Path;

use culvert_core::profile::Kind;

use super::StoreError;
use super::secrets::{Secrets, private_key_account, psk_account};

/// Writes `bytes` to `path` so that a crash leaves the old file or the new one, never a part: a temporary file
/// in the same directory, fsync, rename over, fsync of the directory. Files are private to the user (0600).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().ok_or_else(|| std::io::Error::other("no parent directory"))?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("profile"),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The kind a stored file declares.
pub fn stored_kind(text: &str) -> Option<Kind> {
    let table: toml::Table = text.parse().ok()?;
    toml::Value::try_into(table.get("kind")?.clone()).ok()
}

/// A profile's TOML with its secrets taken out.
pub fn without_secrets(text: &str) -> String {
    let Ok(mut table) = text.parse::<toml::Table>() else { return text.to_owned() };
    table.remove("private_key");
    if let Some(toml::Value::Array(peers)) = table.get_mut("peer") {
        for peer in peers.iter_mut().filter_map(toml::Value::as_table_mut) {
            peer.remove("preshared_key");
        }
    }
    table.to_string()
}

/// A stored profile's TOML with its secrets put back from the keyring.
pub fn with_secrets(name: &str, text: &str, secrets: &Secrets) -> Result<String, StoreError> {
    let Ok(mut table) = text.parse::<toml::Table>() else { return Ok(text.to_owned()) };
    if table.get("kind").and_then(toml::Value::as_str) != Some("wireguard") {
        return Ok(text.to_owned());
    }
    let key = secrets
        .get(&private_key_account(name))?
        .ok_or_else(|| StoreError::MissingSecret { name: name.into(), what: "private key".into() })?;
    table.insert("private_key".into(), toml::Value::String(key.to_string()));
    if let Some(toml::Value::Array(peers)) = table.get_mut("peer") {
        for peer in peers.iter_mut().filter_map(toml::Value::as_table_mut) {
            let Some(public) = peer.get("public_key").and_then(toml::Value::as_str).and_then(|k| k.parse().ok()) else {
                continue;
            };
            if let Some(psk) = secrets.get(&psk_account(name, &public))? {
                peer.insert("preshared_key".into(), toml::Value::String(psk.to_string()));
            }
        }
    }
    Ok(table.to_string())
}

/// The public keys of a stored WireGuard profile's peers.
pub fn peer_public_keys(text: &str) -> Vec<culvert_core::keys::PublicKey> {
    let Ok(table) = text.parse::<toml::Table>() else { return vec![] };
    let Some(toml::Value::Array(peers)) = table.get("peer") else { return vec![] };
    peers.iter().filter_map(|p| p.get("public_key")?.as_str()?.parse().ok()).collect()
}
