//! Profile files: a wg-quick file if its name ends in `.conf`, else TOML; the file's stem names the tunnel, as
//! wg-quick names its tunnels (`lab.toml` is tunnel `lab`).

use std::path::{Path, PathBuf};

use super::{FileProblem, LoadError, Profile, ProfileError};

/// The tunnel name a file gives: its stem, as with wg-quick (`lab.toml` is `lab`).
pub fn name_from_path(path: &Path) -> Option<String> {
    path.file_stem().and_then(|s| s.to_str()).map(str::to_owned)
}

/// Reads, parses and validates a profile file: a wg-quick file if its name ends in `.conf`, else TOML.
pub fn load_file(path: &Path) -> Result<Profile, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read { path: path.into(), source })?;
    parse_file(path, &text)
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
    super::toml_file::parse_toml(&name, text).map_err(invalid)
}
