//! The async client of `culvertd`, used by the CLI and the desktop app.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};

use futures::{SinkExt, StreamExt};
use tokio::net::UnixStream;
use tokio_util::codec::Framed;

use crate::ipc::codec::JsonCodec;
use crate::ipc::{ClientMessage, Event, IpcError, PROTOCOL_VERSION, Request, Response, ServerMessage};
use crate::profile::Profile;
use crate::stats::TunnelStatus;

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
        "you may not use culvertd's socket {}: only root and members of group `{}` may; \
         run `sudo usermod -aG {} $USER`, then log in again",
        path.display(), crate::DEFAULT_GROUP, crate::DEFAULT_GROUP
    )]
    SocketDenied { path: PathBuf },
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
}

impl Client {
    /// Connects to the helper on `path` and exchanges `Hello`.
    pub async fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).await.map_err(|source| match source.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => ClientError::NotRunning { path: path.into() },
            io::ErrorKind::PermissionDenied => ClientError::SocketDenied { path: path.into() },
            _ => ClientError::Io { path: path.into(), source },
        })?;
        let mut framed = Framed::new(stream, JsonCodec::default());
        // A helper that refuses us may close before reading our hello: its reason is still worth reading.
        let sent = framed.send(ClientMessage::Hello { protocol_version: PROTOCOL_VERSION }).await;
        let reply = framed.next().await;
        if let (Err(e), None | Some(Err(_))) = (&sent, &reply) {
            return Err(ClientError::Disconnected(e.to_string()));
        }
        let helper_version = match reply {
            Some(Ok(ServerMessage::Hello { protocol_version, helper_version })) => {
                if protocol_version != PROTOCOL_VERSION {
                    return Err(IpcError::VersionMismatch { client: PROTOCOL_VERSION, helper: protocol_version }.into());
                }
                helper_version
            }
            Some(Ok(ServerMessage::Refused { error })) => return Err(error.into()),
            Some(Ok(other)) => return Err(ClientError::Protocol(format!("{other:?} before its hello"))),
            Some(Err(e)) => return Err(ClientError::Protocol(e.to_string())),
            None => return Err(ClientError::Disconnected("closed during the handshake".into())),
        };
        Ok(Client { framed, path: path.into(), next_id: 1, events: VecDeque::new(), helper_version })
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

    /// Sends one request and waits for its response; events arriving meanwhile are kept for [`Self::next_event`].
    pub async fn request(&mut self, request: Request) -> Result<Response, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        self.framed
            .send(ClientMessage::Request { id, request })
            .await
            .map_err(|e| ClientError::Disconnected(e.to_string()))?;
        loop {
            match self.receive().await? {
                ServerMessage::Response { id: got, result } if got == id => return Ok(result?),
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

    pub async fn status(&mut self, name: Option<&str>) -> Result<Vec<TunnelStatus>, ClientError> {
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

fn unexpected(response: &Response) -> ClientError {
    ClientError::Protocol(format!("an unexpected response {response:?}"))
}
