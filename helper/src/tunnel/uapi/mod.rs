//! WireGuard's cross-platform userspace API on `/var/run/wireguard/<interface>.sock`, so that `wg show` lists a
//! Culvert tunnel as it lists wireguard-go's, and so that `wg set`, `wg addconf`, `wg syncconf` and `wg setconf`
//! change it. Requests are parsed whole ([`request`]); `get=1` is answered from the current core, and a `set=1`
//! becomes a profile ([`set`]) that the registry applies as `culvert apply` would. The socket is root-only, like
//! wireguard-go's: `get` reveals the private key, as `wg showconf` needs.

pub mod request;
pub mod set;

use std::fmt::Write as _;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::dataplane::live::Live;
use crate::dataplane::wg_core::WgCore;
use crate::system::socket_file::{Found, clear_stale};

/// Where `wg` looks for userspace devices' sockets; shared by every network namespace.
pub const SOCKET_DIR: &str = "/var/run/wireguard";

/// What a device reports to `get=1`, as the protocol's `key=value` lines.
pub trait UapiSource: Send + Sync + 'static {
    fn uapi_get(&self, out: &mut String);
}

/// The directory of the sockets: [`SOCKET_DIR`], or in this crate's unit tests one of the test's own (a test
/// runs on a thread of its own), which the test removes.
pub fn socket_dir() -> PathBuf {
    if cfg!(test) {
        let thread: String =
            format!("{:?}", std::thread::current().id()).chars().filter(char::is_ascii_digit).collect();
        std::env::temp_dir().join(format!("culvert-uapi-test-{}-{thread}", std::process::id()))
    } else {
        PathBuf::from(SOCKET_DIR)
    }
}

pub fn socket_path(interface: &str) -> PathBuf {
    socket_dir().join(format!("{interface}.sock"))
}

/// Why the device's socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(
        "another WireGuard device named {interface} answers on {} (in another network namespace, perhaps); \
         set `interface` to another name", path.display()
    )]
    Taken { interface: String, path: PathBuf },
    #[error(
        "{} is not a socket, so `wg` cannot reach {interface} there; remove it if nothing needs it, or set \
         `interface` to another name", path.display()
    )]
    NotASocket { interface: String, path: PathBuf },
    #[error("cannot open {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Binds the device's socket, root-only; refuses to replace one on which another process answers.
pub fn bind(interface: &str) -> Result<UnixListener, BindError> {
    let path = socket_path(interface);
    let io_err = |source| BindError::Io { path: path.clone(), source };
    std::fs::DirBuilder::new().recursive(true).mode(0o755).create(socket_dir()).map_err(io_err)?;
    match clear_stale(&path).map_err(io_err)? {
        Found::Free => {}
        Found::Live => return Err(BindError::Taken { interface: interface.into(), path }),
        Found::NotASocket => return Err(BindError::NotASocket { interface: interface.into(), path }),
    }
    let listener = UnixListener::bind(&path).map_err(io_err)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io_err)?;
    Ok(listener)
}

/// A `set=1` on tunnel `tunnel`'s socket, for the registry to apply; the answer is the protocol's `errno`.
#[derive(Debug)]
pub struct SetRequest {
    pub tunnel: String,
    pub set: request::SetDevice,
    pub reply: tokio::sync::oneshot::Sender<i32>,
}

/// Where a tunnel's userspace API sends its `set` requests: to the registry, which applies them as `culvert
/// apply` applies a profile.
pub type SetRequests = tokio::sync::mpsc::Sender<SetRequest>;

pub async fn serve(listener: UnixListener, source: Arc<dyn UapiSource>, tunnel: String, sets: SetRequests) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let source = source.clone();
        let (tunnel, sets) = (tunnel.clone(), sets.clone());
        tokio::spawn(async move {
            // A client that says nothing is not kept waiting forever.
            let answered = answer(stream, &*source, &tunnel, &sets);
            let _ = tokio::time::timeout(Duration::from_secs(10), answered).await;
        });
    }
}

async fn answer(
    mut stream: UnixStream,
    source: &dyn UapiSource,
    tunnel: &str,
    sets: &SetRequests,
) -> std::io::Result<()> {
    let Some(text) = read_request(&mut stream).await? else { return Ok(()) };
    let mut out = String::new();
    let parsed = match text {
        Some(text) => request::parse(&text),
        None => Err(request::RequestError::Invalid { key: "request".into(), value: "too long".into() }),
    };
    match parsed {
        Ok(request::Request::Get) => {
            source.uapi_get(&mut out);
            out.push_str("errno=0\n\n");
        }
        Ok(request::Request::Set(set)) => {
            let (reply, answer) = tokio::sync::oneshot::channel();
            let request = SetRequest { tunnel: tunnel.to_owned(), set, reply };
            let errno = match sets.send(request).await {
                Ok(()) => answer.await.unwrap_or(libc::EIO),
                Err(_) => libc::EIO,
            };
            let _ = write!(out, "errno={errno}\n\n");
        }
        Err(e) => {
            tracing::debug!("userspace API: {e}");
            let _ = write!(out, "errno={}\n\n", e.errno());
        }
    }
    stream.write_all(out.as_bytes()).await
}

/// A request's text up to the blank line that ends it: `None` when the client left before sending anything,
/// `Some(None)` when the request is longer than [`request::MAX_REQUEST`].
async fn read_request(stream: &mut UnixStream) -> std::io::Result<Option<Option<Vec<u8>>>> {
    let mut text = Vec::with_capacity(256);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok((!text.is_empty()).then_some(Some(text)));
        }
        let seen = text.len().saturating_sub(1);
        text.extend_from_slice(&chunk[..n]);
        if let Some(end) = text[seen..].windows(2).position(|w| w == b"\n\n") {
            text.truncate(seen + end + 1);
            return Ok(Some(Some(text)));
        }
        if text.len() > request::MAX_REQUEST {
            return Ok(Some(None));
        }
    }
}

/// A WireGuard tunnel's current core answers `get=1` as wireguard-go does.
impl UapiSource for Live<WgCore> {
    fn uapi_get(&self, out: &mut String) {
        get(&self.load(), out);
    }
}

/// The `key=value` lines of a `get=1` answer for `core`.
pub fn get(core: &WgCore, out: &mut String) {
    let _ = writeln!(out, "private_key={}", hex(&core.private_key()));
    let _ = writeln!(out, "listen_port={}", core.listen_port());
    if let Some(mark) = core.fwmark() {
        let _ = writeln!(out, "fwmark={mark}");
    }
    for (p, allowed) in core.peers.iter().zip(&core.allowed_ips) {
        let _ = writeln!(out, "public_key={}", hex(&p.public_key));
        if let Some(psk) = p.preshared_key() {
            let _ = writeln!(out, "preshared_key={}", hex(psk.as_bytes()));
        }
        let _ = writeln!(out, "protocol_version=1");
        if let Some(ep) = p.endpoint() {
            let _ = writeln!(out, "endpoint={ep}");
        }
        let (sec, nsec) = p.since_handshake().map(time_ago).unwrap_or((0, 0));
        let _ = writeln!(out, "last_handshake_time_sec={sec}\nlast_handshake_time_nsec={nsec}");
        let (rx, tx, _, _) = p.traffic.read();
        let _ = writeln!(out, "rx_bytes={rx}\ntx_bytes={tx}");
        let _ = writeln!(out, "persistent_keepalive_interval={}", p.keepalive.unwrap_or(0));
        for net in allowed {
            let _ = writeln!(out, "allowed_ip={net}");
        }
    }
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

    /// The advice for a taken API socket is about the tunnel's interface: `--socket` is culvertd's own socket.
    #[test]
    fn a_taken_api_socket_is_explained_in_the_tunnels_terms() {
        let path = PathBuf::from("/var/run/wireguard/wg0.sock");
        for e in [
            BindError::Taken { interface: "wg0".into(), path: path.clone() },
            BindError::NotASocket { interface: "wg0".into(), path },
        ] {
            let msg = e.to_string();
            assert!(msg.contains("set `interface` to another name") && !msg.contains("--socket"), "{msg}");
        }
    }

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
