//! The helper's Unix socket: never stolen from a live helper, and only as open as its group allows.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

use super::Access;

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("another culvertd answers on {}; stop it, or give this one its own socket with --socket", .0.display())]
    Taken(PathBuf),
    #[error("{} exists and is not a socket; remove it, or choose another path with --socket", .0.display())]
    NotASocket(PathBuf),
    #[error("cannot listen on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Fails if a helper already answers on `path`; removes a stale socket left by a dead one.
pub fn check_free(path: &Path) -> Result<(), ListenError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(ListenError::Io { path: path.into(), source }),
    };
    if !meta.file_type().is_socket() {
        return Err(ListenError::NotASocket(path.into()));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(ListenError::Taken(path.into()));
    }
    fs::remove_file(path).map_err(|source| ListenError::Io { path: path.into(), source })
}

/// Binds the socket, mode 0660 and group `access.gid`, or 0600 (root only) when the group does not exist.
pub fn bind(path: &Path, access: &Access) -> Result<UnixListener, ListenError> {
    let io_err = |source| ListenError::Io { path: path.into(), source };
    check_free(path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        fs::DirBuilder::new().recursive(true).mode(0o755).create(dir).map_err(io_err)?;
    }
    let listener = UnixListener::bind(path).map_err(io_err)?;
    let mode = match access.gid {
        Some(gid) => {
            std::os::unix::fs::chown(path, Some(0), Some(gid)).map_err(io_err)?;
            0o660
        }
        None => 0o600,
    };
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err)?;
    Ok(listener)
}
