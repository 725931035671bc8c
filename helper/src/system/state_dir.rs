//! The helper's state directory, locked for as long as the helper runs.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error(
        "another culvertd{} already uses the state directory {}; stop it, or give this one its own with --state-dir",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default(), path.display()
    )]
    Locked { path: PathBuf, pid: Option<u32> },
    #[error("cannot use the state directory {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A locked state directory. The lock (flock) goes with the process, so a crashed helper never leaves it held.
#[derive(Debug)]
pub struct StateDir {
    path: PathBuf,
    _lock: File,
}

impl StateDir {
    pub fn open(path: &Path) -> Result<Self, StateDirError> {
        let io_err = |source| StateDirError::Io { path: path.into(), source };
        fs::DirBuilder::new().recursive(true).mode(0o700).create(path).map_err(io_err)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(io_err)?;
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path.join("lock"))
            .map_err(io_err)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = lock.read_to_string(&mut pid);
                return Err(StateDirError::Locked { path: path.into(), pid: pid.trim().parse().ok() });
            }
            Err(TryLockError::Error(e)) => return Err(io_err(e)),
        }
        lock.set_len(0)
            .and_then(|()| lock.rewind())
            .and_then(|()| writeln!(lock, "{}", std::process::id()))
            .map_err(io_err)?;
        Ok(Self { path: path.into(), _lock: lock })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_opener_is_refused_with_the_pid() {
        let dir = std::env::temp_dir().join(format!("culvert-state-{}", std::process::id()));
        let first = StateDir::open(&dir).unwrap();
        match StateDir::open(&dir) {
            Err(StateDirError::Locked { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("{other:?}"),
        }
        drop(first);
        drop(StateDir::open(&dir).unwrap());
        fs::remove_dir_all(&dir).unwrap();
    }
}
