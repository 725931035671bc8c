//! The WireGuard key a host makes for a wireguard overlay, as flanneld makes its own: generated on the first
//! `up`, kept root-only in the state directory so that the host keeps its identity across restarts, and never
//! leaving it but as the public key in the lease.

use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use culvert_core::keys::SecretKey;

/// The key at `path`, or a new one written there (mode 0600, in a 0700 directory) when there is none.
pub fn load_or_make(path: &Path) -> io::Result<SecretKey> {
    if let Some(dir) = path.parent() {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    match OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path) {
        Ok(mut f) => {
            let meta = f.metadata()?;
            if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 {
                return Err(io::Error::other(format!(
                    "{} is not a file only its owner may read; remove it and a new key is made",
                    path.display()
                )));
            }
            let mut text = zeroize::Zeroizing::new(String::new());
            Read::take(&mut f, 128).read_to_string(&mut text)?;
            text.trim().parse().map_err(|_| {
                io::Error::other(format!("{} holds no WireGuard key; remove it and a new key is made", path.display()))
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let key = SecretKey::generate_private();
            let text = zeroize::Zeroizing::new(format!("{}\n", key.to_base64().as_str()));
            crate::system::files::write_atomically(path, text.as_bytes(), 0o600)?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_root_only_and_read_back_the_same() {
        let dir = std::env::temp_dir().join(format!("culvert-node-key-{}", std::process::id()));
        let path = dir.join("keys").join("ov.key");
        let made = load_or_make(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(load_or_make(&path).unwrap().public_key(), made.public_key());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load_or_make(&path).unwrap_err().to_string().contains("only its owner"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
