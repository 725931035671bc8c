//! Profile files: a wg-quick file if its name ends in `.conf`, a NetworkManager keyfile if in `.nmconnection`,
//! else TOML; the file's stem names the tunnel, as wg-quick names its tunnels (`lab.toml` is tunnel `lab`), but
//! for a keyfile, whose connection names its device.

use std::path::{Path, PathBuf};

use super::{FileProblem, LoadError, Profile, ProfileError};

/// The tunnel name a file gives: its stem, as with wg-quick (`lab.toml` is `lab`).
pub fn name_from_path(path: &Path) -> Option<String> {
    path.file_stem().and_then(|s| s.to_str()).map(str::to_owned)
}

/// The file name text read from elsewhere (standard input, say) would have, for [`parse_file`]: `name` with the
/// extension of the format its first group says: `[Interface]` is wg-quick, `[connection]` NetworkManager's,
/// anything else TOML.
pub fn file_name_for(name: &str, text: &str) -> PathBuf {
    let first_group = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .filter(|l| l.starts_with('['))
        .map(str::to_ascii_lowercase);
    let extension = match first_group.as_deref() {
        Some("[interface]") => "conf",
        Some("[connection]") => super::nm_keyfile::EXTENSION,
        _ => "toml",
    };
    PathBuf::from(format!("{name}.{extension}"))
}

/// Reads, parses and validates a profile file: wg-quick for `.conf`, NetworkManager for `.nmconnection`, else TOML.
pub fn load_file(path: &Path) -> Result<Profile, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read { path: path.into(), source })?;
    let mut profile = parse_file(path, &text)?;
    read_etcd_files(&mut profile, path.parent().unwrap_or(Path::new(".")))?;
    Ok(profile)
}

/// Reads the PEM files an overlay profile names (paths relative to `base`, the profile file's directory), as
/// the client that sends it must: culvertd never reads a user's files. Each path becomes the absolute one that
/// was read, so that a stored copy of the profile still finds it.
pub fn read_etcd_files(profile: &mut Profile, base: &Path) -> Result<(), LoadError> {
    let super::Tunnel::Overlay(o) = &mut profile.tunnel else { return Ok(()) };
    for (field, file) in [("etcd_ca", &mut o.etcd_ca), ("etcd_cert", &mut o.etcd_cert), ("etcd_key", &mut o.etcd_key)] {
        let Some(file) = file else { continue };
        let path = base.join(&file.path);
        let invalid = |problem: String, fix: &str| LoadError::Invalid {
            path: path.clone(),
            error: FileProblem::Field(ProfileError::new(field, problem, fix)),
        };
        let unreadable = |e: std::io::Error| {
            invalid(
                format!("cannot read {}: {e}", path.display()),
                "name a file you may read; a relative path is taken from the profile's directory",
            )
        };
        let meta = std::fs::metadata(&path).map_err(unreadable)?;
        if meta.len() > super::MAX_PEM as u64 {
            return Err(invalid(
                format!("is larger than {} KiB", super::MAX_PEM / 1024),
                "name the PEM file itself, not a bundle of everything",
            ));
        }
        let pem = std::fs::read_to_string(&path).map_err(unreadable)?;
        if !pem.contains("-----BEGIN ") {
            return Err(invalid("is not a PEM file".into(), "name the PEM file (it starts with -----BEGIN)"));
        }
        file.pem = pem;
        file.path = std::path::absolute(&path).unwrap_or(path).display().to_string();
    }
    Ok(())
}

/// Parses and validates the text of a profile file called `path` (its name decides the format and the tunnel's
/// name; nothing is read from it): for text that came from elsewhere, a file dropped on the app's window, say.
pub fn parse_file(path: &Path, text: &str) -> Result<Profile, LoadError> {
    let invalid = |error| LoadError::Invalid { path: PathBuf::from(path), error };
    let name = name_from_path(path).ok_or_else(|| {
        invalid(FileProblem::Field(ProfileError::new(
            "name",
            "the file name is not valid UTF-8",
            "rename the file, such as lab.toml",
        )))
    })?;
    if path.extension().is_some_and(|e| e == "conf") {
        return super::wg_quick::parse(&name, text).map(|(profile, _notes)| profile).map_err(invalid);
    }
    if path.extension().is_some_and(|e| e == super::nm_keyfile::EXTENSION) {
        return super::nm_keyfile::parse(&name, text).map_err(invalid);
    }
    super::toml_file::parse_toml(&name, text).map_err(invalid)
}
