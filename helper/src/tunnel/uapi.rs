//! WireGuard's cross-platform userspace API on `/var/run/wireguard/<interface>.sock`, so that `wg show` lists a
//! Culvert tunnel as it lists wireguard-go's. Only `get=1` is answered; changes go through culvertd's own API.
//! The socket is root-only, like wireguard-go's: `get` reveals the private key, as `wg showconf` needs.

use std::fmt::Write as _;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::control::listener::{ListenError, check_free};

/// Where `wg` looks for userspace devices' sockets; shared by every network namespace.
pub const SOCKET_DIR: &str = "/var/run/wireguard";

/// What a device reports to `get=1`, as the protocol's `key=value` lines.
pub trait UapiSource: Send + Sync + 'static {
    fn uapi_get(&self, out: &mut String);
}

pub fn socket_path(interface: &str) -> PathBuf {
    Path::new(SOCKET_DIR).join(format!("{interface}.sock"))
}

/// Binds the device's socket, root-only; refuses to replace one on which another process answers.
pub fn bind(interface: &str) -> Result<UnixListener, ListenError> {
    let path = socket_path(interface);
    let io_err = |source| ListenError::Io { path: path.clone(), source };
    std::fs::DirBuilder::new().recursive(true).mode(0o755).create(SOCKET_DIR).map_err(io_err)?;
    check_free(&path).map_err(|e| match e {
        ListenError::Taken(path) => ListenError::Io {
            path,
            source: std::io::Error::other(format!(
                "another WireGuard device named {interface} answers there (in another network namespace, perhaps); \
                 set `interface` to another name"
            )),
        },
        other => other,
    })?;
    let listener = UnixListener::bind(&path).map_err(io_err)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io_err)?;
    Ok(listener)
}

pub async fn serve(listener: UnixListener, source: Arc<dyn UapiSource>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let source = source.clone();
        tokio::spawn(async move {
            // A client that says nothing is not kept waiting forever.
            let _ = tokio::time::timeout(Duration::from_secs(5), answer(stream, &*source)).await;
        });
    }
}

async fn answer(stream: UnixStream, source: &dyn UapiSource) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let Some(first) = lines.next_line().await? else { return Ok(()) };
    // Read the request up to its blank line.
    while let Some(line) = lines.next_line().await? {
        if line.is_empty() {
            break;
        }
    }
    let mut out = String::new();
    match first.as_str() {
        "get=1" => {
            source.uapi_get(&mut out);
            out.push_str("errno=0\n\n");
        }
        // EPERM: culvertd's tunnels are configured through culvertd, so that its records stay true.
        _ => out.push_str("errno=1\n\n"),
    }
    write.write_all(out.as_bytes()).await
}

/// 32 bytes as the protocol writes keys: lowercase hex.
pub fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The Unix time of an event `ago` before now, as `(seconds, nanoseconds)`.
pub fn time_ago(ago: Duration) -> (u64, u32) {
    let t = SystemTime::now().checked_sub(ago).unwrap_or(UNIX_EPOCH);
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    (d.as_secs(), d.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_lowercase_hex() {
        let mut k = [0u8; 32];
        k[0] = 0xab;
        k[31] = 0x01;
        let h = hex(&k);
        assert_eq!(h.len(), 64);
        assert!(h.starts_with("ab00") && h.ends_with("01"));
    }
}
