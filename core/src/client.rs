//! The async client of `culvertd`, used by the CLI and the desktop app.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::UnixStream;
use tokio_util::codec::Framed;

use crate::ipc::codec::JsonCodec;
use crate::ipc::{ClientMessage, Event, IpcError, PROTOCOL_VERSION, Request, Response, ServerMessage};
use crate::profile::Profile;
use crate::stats::{TunnelStatus, TunnelView};

/// How long a client waits for the helper's hello: a helper that accepted nothing by then is stuck.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(15);
/// How much longer than the helper's own bound a client waits for a response, so that the helper's answer
/// (its own timeout, say) arrives before the client gives up.
pub const RESPONSE_MARGIN: Duration = Duration::from_secs(5);

/// Why a call to the helper failed, worded as what the user should do.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "culvertd is not running (nothing answers on {}): start it with `sudo systemctl start culvertd`, \
         or run `sudo culvertd --socket {}` in another terminal",
        path.display(), path.display()
    )]
    NotRunning { path: PathBuf },
    #[error(
        "you may not use culvertd's socket {}: only root and members of group `{group}` may; \
         run `sudo usermod -aG {group} $USER`, then log in again",
        path.display()
    )]
    SocketDenied { path: PathBuf, group: String },
    #[error(
        "culvertd did not answer within {} s on {}; see its log (`journalctl -u culvertd`) for why",
        waited.as_secs(), path.display()
    )]
    NoAnswer { path: PathBuf, waited: Duration },
    #[error("{0}")]
    Helper(#[from] IpcError),
    #[error("lost the connection to culvertd ({0}); check that it still runs with `systemctl status culvertd`")]
    Disconnected(String),
    #[error("cannot talk to culvertd on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "culvertd sent {0}, which this client does not understand; install matching versions of culvert and culvertd"
    )]
    Protocol(String),
}

/// The socket a client uses: the one given, else `$CULVERT_SOCKET`, else the default.
pub fn socket_path(explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(crate::SOCKET_ENV).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(crate::DEFAULT_SOCKET))
}

/// A connection to `culvertd` that has passed the version handshake.
#[derive(Debug)]
pub struct Client {
    framed: Framed<UnixStream, JsonCodec<ServerMessage, ClientMessage>>,
    path: PathBuf,
    next_id: u64,
    /// Events that arrived while a response was awaited.
    events: VecDeque<Event>,
    helper_version: String,
    /// How long to wait for each response: the helper's announced bound and a margin.
    response_timeout: Duration,
}

impl Client {
    /// Connects to the helper on `path` and exchanges `Hello`.
    pub async fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).await.map_err(|source| match source.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => ClientError::NotRunning { path: path.into() },
            io::ErrorKind::PermissionDenied => {
                ClientError::SocketDenied { path: path.into(), group: socket_group(path) }
            }
            _ => ClientError::Io { path: path.into(), source },
        })?;
        let mut framed = Framed::new(stream, JsonCodec::default());
        let handshake = async {
            // A helper that refuses us may close before reading our hello: its reason is still worth reading.
            let sent = framed.send(ClientMessage::Hello { protocol_version: PROTOCOL_VERSION }).await;
            (sent, framed.next().await)
        };
        let (sent, reply) = tokio::time::timeout(HELLO_TIMEOUT, handshake)
            .await
            .map_err(|_| ClientError::NoAnswer { path: path.into(), waited: HELLO_TIMEOUT })?;
        if let (Err(e), None | Some(Err(_))) = (&sent, &reply) {
            return Err(ClientError::Disconnected(e.to_string()));
        }
        let (helper_version, bound) = match reply {
            Some(Ok(ServerMessage::Hello { protocol_version, helper_version, request_timeout_ms })) => {
                if protocol_version != PROTOCOL_VERSION {
                    return Err(IpcError::VersionMismatch { client: PROTOCOL_VERSION, helper: protocol_version }.into());
                }
                (helper_version, Duration::from_millis(request_timeout_ms))
            }
            Some(Ok(ServerMessage::Refused { error })) => return Err(error.into()),
            Some(Ok(other)) => return Err(ClientError::Protocol(format!("{other:?} before its hello"))),
            Some(Err(e)) => return Err(ClientError::Protocol(e.to_string())),
            None => return Err(ClientError::Disconnected("closed during the handshake".into())),
        };
        Ok(Client {
            framed,
            path: path.into(),
            next_id: 1,
            events: VecDeque::new(),
            helper_version,
            response_timeout: bound.saturating_add(RESPONSE_MARGIN),
        })
    }

    pub fn helper_version(&self) -> &str {
        &self.helper_version
    }

    pub fn socket(&self) -> &Path {
        &self.path
    }

    /// The helper's process id, from the socket's peer credentials (for resource reports, never for trust).
    pub fn helper_pid(&self) -> Option<u32> {
        self.framed.get_ref().peer_cred().ok()?.pid().and_then(|p| u32::try_from(p).ok())
    }

    /// Sends one request and waits for its response, at most a little longer than the helper's own bound; events
    /// arriving meanwhile are kept for [`Self::next_event`], and the parts of a status join its response.
    pub async fn request(&mut self, request: Request) -> Result<Response, ClientError> {
        let waited = self.response_timeout;
        let path = self.path.clone();
        tokio::time::timeout(waited, self.exchange(request))
            .await
            .map_err(|_| ClientError::NoAnswer { path, waited })?
    }

    async fn exchange(&mut self, request: Request) -> Result<Response, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        self.framed
            .send(ClientMessage::Request { id, request })
            .await
            .map_err(|e| ClientError::Disconnected(e.to_string()))?;
        let mut parts = Vec::new();
        loop {
            match self.receive().await? {
                ServerMessage::Response { id: got, result } if got == id => {
                    return match result? {
                        Response::Status { tunnels } => {
                            parts.extend(tunnels);
                            Ok(Response::Status { tunnels: parts })
                        }
                        other if parts.is_empty() => Ok(other),
                        other => Err(ClientError::Protocol(format!("parts of a status before {other:?}"))),
                    };
                }
                ServerMessage::Partial { id: got, tunnel } if got == id => parts.push(*tunnel),
                ServerMessage::Event { event } => self.events.push_back(event),
                other => return Err(ClientError::Protocol(format!("{other:?} while awaiting response {id}"))),
            }
        }
    }

    /// The next event pushed by the helper.
    pub async fn next_event(&mut self) -> Result<Event, ClientError> {
        if let Some(e) = self.events.pop_front() {
            return Ok(e);
        }
        match self.receive().await? {
            ServerMessage::Event { event } => Ok(event),
            other => Err(ClientError::Protocol(format!("{other:?} where an event was expected"))),
        }
    }

    async fn receive(&mut self) -> Result<ServerMessage, ClientError> {
        match self.framed.next().await {
            Some(Ok(msg)) => Ok(msg),
            Some(Err(e)) if e.kind() == io::ErrorKind::InvalidData => Err(ClientError::Protocol(e.to_string())),
            Some(Err(e)) => Err(ClientError::Disconnected(e.to_string())),
            None => Err(ClientError::Disconnected("culvertd closed the connection".into())),
        }
    }

    pub async fn up(&mut self, profile: Profile) -> Result<TunnelStatus, ClientError> {
        match self.request(Request::Up { profile: Box::new(profile) }).await? {
            Response::Up { status } => Ok(status),
            other => Err(unexpected(&other)),
        }
    }

    /// Makes `profile` a system tunnel, up now and whenever culvertd starts: its status.
    pub async fn enable(&mut self, profile: Profile) -> Result<TunnelStatus, ClientError> {
        match self.request(Request::Enable { profile: Box::new(profile) }).await? {
            Response::Enabled { status } => Ok(status),
            other => Err(unexpected(&other)),
        }
    }

    /// Brings system tunnel `name` down and forgets it.
    pub async fn disable(&mut self, name: &str) -> Result<(), ClientError> {
        match self.request(Request::Disable { name: name.into() }).await? {
            Response::Disabled { .. } => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Turns lockdown on or off (`None`: leaves it), and says whether it is on.
    pub async fn lockdown(&mut self, on: Option<bool>) -> Result<bool, ClientError> {
        match self.request(Request::Lockdown { on }).await? {
            Response::Lockdown { on } => Ok(on),
            other => Err(unexpected(&other)),
        }
    }

    /// The system tunnels this user may change (root: all), up or not.
    pub async fn system_tunnels(&mut self) -> Result<Vec<crate::stats::SystemTunnel>, ClientError> {
        match self.request(Request::SystemTunnels).await? {
            Response::SystemTunnels { tunnels } => Ok(tunnels),
            other => Err(unexpected(&other)),
        }
    }

    /// Takes the tunnel to `profile` in place (or brings it up): its status after, and what was done.
    pub async fn apply(&mut self, profile: Profile) -> Result<(TunnelStatus, Vec<String>), ClientError> {
        match self.request(Request::Apply { profile: Box::new(profile) }).await? {
            Response::Applied { status, changes } => Ok((status, changes)),
            other => Err(unexpected(&other)),
        }
    }

    /// Brings down the named tunnel, or all the caller may when `name` is `None`.
    pub async fn down(&mut self, name: Option<&str>) -> Result<Vec<String>, ClientError> {
        let request = match name {
            Some(name) => Request::Down { name: name.into() },
            None => Request::DownAll,
        };
        match self.request(request).await? {
            Response::Down { names } => Ok(names),
            other => Err(unexpected(&other)),
        }
    }

    /// The tunnels the helper has, yours in full and other users' as their name, kind, state and owner.
    pub async fn status(&mut self, name: Option<&str>) -> Result<Vec<TunnelView>, ClientError> {
        match self.request(Request::Status { name: name.map(str::to_owned) }).await? {
            Response::Status { tunnels } => Ok(tunnels),
            other => Err(unexpected(&other)),
        }
    }

    pub async fn subscribe(
        &mut self,
        name: &str,
        interval_ms: u32,
        packets: Option<crate::packets::Sampling>,
    ) -> Result<(), ClientError> {
        match self.request(Request::Subscribe { name: name.into(), interval_ms, packets }).await? {
            Response::Subscribed { .. } => Ok(()),
            other => Err(unexpected(&other)),
        }
    }
}

/// The name of the group that owns the socket at `path`: the group a caller must be in to pass its mode.
fn socket_group(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else { return crate::DEFAULT_GROUP.into() };
    match nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(meta.gid())) {
        Ok(Some(group)) => group.name,
        _ => format!("gid {}", meta.gid()),
    }
}

fn unexpected(response: &Response) -> ClientError {
    ClientError::Protocol(format!("an unexpected response {response:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UnixListener;

    type Server = Framed<UnixStream, JsonCodec<ClientMessage, ServerMessage>>;

    fn socket(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("culvert-client-{tag}-{}.sock", std::process::id()))
    }

    /// A helper that says hello (announcing `bound`) and then reads requests without ever answering them.
    async fn silent_helper(path: &Path, bound_ms: u64, hello: bool) -> tokio::task::JoinHandle<()> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut server: Server = Framed::new(stream, JsonCodec::default());
            let _ = server.next().await;
            if hello {
                let hello = ServerMessage::Hello {
                    protocol_version: PROTOCOL_VERSION,
                    helper_version: "test".into(),
                    request_timeout_ms: bound_ms,
                };
                server.send(hello).await.unwrap();
            }
            while server.next().await.is_some() {}
        })
    }

    /// A helper that does not answer is reported after its own bound and a margin, not waited for forever.
    #[tokio::test(start_paused = true)]
    async fn a_silent_helper_is_given_up_on_after_its_bound() {
        let path = socket("silent");
        let _server = silent_helper(&path, 2_000, true).await;
        let mut client = Client::connect(&path).await.unwrap();
        match client.status(None).await {
            Err(e @ ClientError::NoAnswer { waited, .. }) => {
                assert_eq!(waited, Duration::from_secs(2) + RESPONSE_MARGIN);
                assert!(e.to_string().contains("did not answer within 7 s"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        let path = socket("mute");
        let _server = silent_helper(&path, 0, false).await;
        match Client::connect(&path).await {
            Err(ClientError::NoAnswer { waited, .. }) => assert_eq!(waited, HELLO_TIMEOUT),
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_file(socket("silent"));
        let _ = std::fs::remove_file(path);
    }
}
