//! Unix socket files that a helper binds: a dead one (its process gone) is removed, a live one is never taken.

use std::fs;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

/// What was found at a socket's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Nothing, or a socket nobody answered on, which was removed: the path is free.
    Free,
    /// A socket a process answers on.
    Live,
    /// Something that is not a socket.
    NotASocket,
}

/// Frees `path` of a stale socket, and says what is there otherwise.
pub fn clear_stale(path: &Path) -> io::Result<Found> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Free),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Ok(Found::NotASocket);
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Ok(Found::Live);
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(Found::Free),
    }
}
