//! The helper's Unix socket: never stolen from a live helper, and only as open as its group allows.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::net::UnixListener;

use super::Access;
use crate::system::socket_file::{Found, clear_stale};

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("another culvertd answers on {}; stop it, or give this one its own socket with --socket", .0.display())]
    Taken(PathBuf),
    #[error("{} exists and is not a socket; remove it, or give culvertd another socket with --socket", .0.display())]
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
    match clear_stale(path) {
        Ok(Found::Free) => Ok(()),
        Ok(Found::Live) => Err(ListenError::Taken(path.into())),
        Ok(Found::NotASocket) => Err(ListenError::NotASocket(path.into())),
        Err(source) => Err(ListenError::Io { path: path.into(), source }),
    }
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

/// Binds the monitor socket as [`bind`] does, for `monitors`; its directory is opened to all (0755), as
/// systemd's RuntimeDirectory= makes it the main group's only: the socket's own mode and group keep others out.
pub fn bind_monitor(path: &Path, monitors: &Access) -> Result<UnixListener, ListenError> {
    let listener = bind(path, monitors)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
            .map_err(|source| ListenError::Io { path: dir.into(), source })?;
    }
    Ok(listener)
}

/// Pauses of the accept loop after it fails. Out of file descriptors (EMFILE, ENFILE) or memory, trying again at
/// once fails again at once: that spun a core and wrote millions of log lines. The pause doubles up to a second
/// while the shortage lasts, and the log says so once per [`LOG_EVERY`].
#[derive(Debug, Default)]
pub struct Backoff {
    pause: Option<Duration>,
    logged: Option<Instant>,
    unlogged: u64,
}

const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);
pub const LOG_EVERY: Duration = Duration::from_secs(10);

impl Backoff {
    /// A connection was accepted: the shortage, if any, is over.
    pub fn reset(&mut self) {
        if self.pause.take().is_some() {
            tracing::info!("accepting clients again");
        }
        self.logged = None;
        self.unlogged = 0;
    }

    /// How long to wait before accepting again after `e`, with `open` clients connected; `None`: at once.
    pub fn after(&mut self, e: &io::Error, open: usize) -> Option<Duration> {
        let shortage = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM));
        if !shortage && e.kind() == io::ErrorKind::ConnectionAborted {
            return None;
        }
        let pause = self.pause.map_or(FIRST_PAUSE, |p| (p * 2).min(LONGEST_PAUSE));
        self.pause = Some(pause);
        self.unlogged += 1;
        if self.logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            let times = std::mem::take(&mut self.unlogged);
            if shortage {
                tracing::warn!(
                    "cannot accept clients: {e} ({open} connected, {times} failure(s) since the last report); new \
                     clients wait until others leave; raise the open-file limit (LimitNOFILE) if this lasts"
                );
            } else {
                tracing::warn!("cannot accept clients: {e} ({times} failure(s) since the last report)");
            }
            self.logged = Some(Instant::now());
        }
        Some(pause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shortage_backs_off_up_to_a_second_and_a_success_resets() {
        let mut b = Backoff::default();
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let pauses: Vec<Duration> = (0..12).filter_map(|_| b.after(&emfile, 3)).collect();
        assert_eq!(pauses[0], FIRST_PAUSE);
        assert_eq!(pauses[1], FIRST_PAUSE * 2);
        assert_eq!(*pauses.last().unwrap(), LONGEST_PAUSE);
        assert_eq!(b.unlogged, 11, "one report for twelve failures within the interval");
        b.reset();
        assert_eq!(b.after(&emfile, 0), Some(FIRST_PAUSE));
        assert_eq!(b.after(&io::Error::from(io::ErrorKind::ConnectionAborted), 0), None);
    }
}
