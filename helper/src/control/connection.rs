//! One client connection: authorization, admission, the version handshake, requests and subscriptions.
//!
//! What the helper sends is encoded into frames before it is queued, so that everything a connection holds is
//! counted in bytes: responses wait for room in a short queue (they must not be lost), events go through the
//! connection's bounded, lossy [`EventQueue`]. A reply that does not fit in a frame becomes a typed error for
//! its request; nothing is dropped without the client hearing of it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use culvert_core::ipc::codec::{FrameError, JsonCodec, MAX_FRAME, encode_frame};
use culvert_core::ipc::{
    ClientMessage, Event, IpcError, MAX_INTERVAL_MS, MAX_SUBSCRIPTIONS, MIN_INTERVAL_MS, PROTOCOL_VERSION, Request,
    Response, ServerMessage,
};
use culvert_core::packets::MAX_ONE_IN;
use culvert_core::stats::{TunnelStatus, TunnelView};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::FramedRead;

use super::events::EventQueue;
use super::{Caller, Helper};
use crate::dataplane::sampler::SamplingGuard;
use crate::tunnel::TunnelInfo;

/// A client must say hello this soon after connecting.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames of responses waiting to be written; a status sends one per tunnel, and waits for room.
const RESPONSE_QUEUE: usize = 8;
/// Packet samples in one event at most; more since the last event count as missed. At 10 events a second this
/// is more than a packet view can show.
const MAX_SAMPLES_PER_EVENT: usize = 128;

type Reader = FramedRead<OwnedReadHalf, JsonCodec<ClientMessage, ()>>;

/// Which socket a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The main socket: a user's own tunnels, to change and watch.
    User,
    /// The monitor socket: every tunnel's status and counters, read only.
    Monitor,
}

pub async fn serve(helper: Arc<Helper>, stream: UnixStream, role: Role) {
    let cred = match stream.peer_cred() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("refusing a connection whose credentials cannot be read: {e}");
            return;
        }
    };
    let groups = crate::system::peer_groups::peer_groups(std::os::fd::AsFd::as_fd(&stream)).unwrap_or_else(|e| {
        tracing::debug!("cannot read a caller's supplementary groups, going by its account's: {e}");
        Vec::new()
    });
    let monitor = helper.monitors.gid.is_some() && helper.monitors.allows(cred.uid(), cred.gid(), &groups);
    let caller = Caller { uid: cred.uid(), gid: cred.gid(), reads_all: monitor };
    let (read, mut write) = stream.into_split();
    let mut reader: Reader = FramedRead::new(read, JsonCodec::default());
    let access = match role {
        Role::User => &helper.access,
        Role::Monitor => &helper.monitors,
    };
    if !access.allows(caller.uid, caller.gid, &groups) {
        tracing::info!("refused uid {} (gid {}): not root nor in group {}", caller.uid, caller.gid, access.group_name);
        let error = IpcError::NotAuthorized { uid: caller.uid, group: access.group_name.clone() };
        refuse(&mut write, error).await;
        return;
    }
    let _ticket = match helper.admission.admit(caller.uid) {
        Ok(ticket) => ticket,
        Err(error) => {
            tracing::debug!("refused a connection of uid {}: {error}", caller.uid);
            refuse(&mut write, error).await;
            return;
        }
    };
    match tokio::time::timeout(HELLO_TIMEOUT, reader.next()).await {
        Ok(Some(Ok(ClientMessage::Hello { protocol_version }))) if protocol_version == PROTOCOL_VERSION => {}
        Ok(Some(Ok(ClientMessage::Hello { protocol_version }))) => {
            refuse(&mut write, IpcError::VersionMismatch { client: protocol_version, helper: PROTOCOL_VERSION }).await;
            return;
        }
        _ => {
            refuse(&mut write, IpcError::BadRequest { message: "the first message must be a hello".into() }).await;
            return;
        }
    }
    let hello = ServerMessage::Hello {
        protocol_version: PROTOCOL_VERSION,
        helper_version: env!("CARGO_PKG_VERSION").into(),
        request_timeout_ms: u64::try_from(helper.request_timeout.as_millis()).unwrap_or(u64::MAX),
    };
    if send(&mut write, &hello).await.is_err() {
        return;
    }
    Session::new(helper, caller, role).run(reader, write).await;
}

async fn send(write: &mut OwnedWriteHalf, message: &ServerMessage) -> std::io::Result<()> {
    write.write_all(&encode_frame(message)?).await
}

async fn refuse(write: &mut OwnedWriteHalf, error: IpcError) {
    let _ = send(write, &ServerMessage::Refused { error }).await;
}

struct Session {
    helper: Arc<Helper>,
    caller: Caller,
    role: Role,
    events: Arc<EventQueue>,
    subscriptions: HashMap<String, JoinHandle<()>>,
}

impl Session {
    fn new(helper: Arc<Helper>, caller: Caller, role: Role) -> Self {
        Self { helper, caller, role, events: Arc::default(), subscriptions: HashMap::new() }
    }

    async fn run(mut self, mut reader: Reader, mut write: OwnedWriteHalf) {
        let (responses, mut outbox) = mpsc::channel::<Bytes>(RESPONSE_QUEUE);
        let events = self.events.clone();
        let writer = tokio::spawn(async move {
            loop {
                let frame = tokio::select! {
                    biased;
                    frame = outbox.recv() => match frame { Some(f) => f, None => break },
                    frame = events.pop() => frame,
                };
                if write.write_all(&frame).await.is_err() {
                    break;
                }
            }
        });
        while let Some(msg) = reader.next().await {
            let sent = match msg {
                Ok(ClientMessage::Request { id, request }) => self.handle(id, request, &responses).await,
                Ok(ClientMessage::Hello { .. }) => {
                    respond(&responses, 0, Err(bad_request("hello was already exchanged"))).await
                }
                Err(e) => {
                    let _ = respond(&responses, 0, Err(bad_request(&e.to_string()))).await;
                    break;
                }
            };
            if sent.is_err() {
                break;
            }
        }
        for (_, task) in self.subscriptions.drain() {
            task.abort();
        }
        drop(responses);
        let _ = writer.await;
    }

    /// Answers one request; `Err` when the connection's writer is gone.
    async fn handle(&mut self, id: u64, request: Request, out: &mpsc::Sender<Bytes>) -> Result<(), Closed> {
        let helper = &self.helper;
        if self.role == Role::Monitor && !reads_only(&request) {
            let error = IpcError::BadRequest {
                message: "the monitor socket only reads (the status and counters of tunnels): changes go through \
                          culvertd's main socket, for members of its group"
                    .into(),
            };
            return respond(out, id, Err(error)).await;
        }
        let result = match request {
            Request::Up { profile } => helper.up(self.caller, *profile).await.map(|status| Response::Up { status }),
            Request::Apply { profile } => {
                helper.apply(self.caller, *profile).await.map(|(status, changes)| Response::Applied { status, changes })
            }
            Request::Down { name } => helper.down(self.caller, &name).await.map(|names| Response::Down { names }),
            Request::DownAll => Ok(Response::Down { names: helper.down_all(self.caller).await }),
            Request::Enable { profile } => {
                helper.enable(self.caller, *profile).await.map(|status| Response::Enabled { status })
            }
            Request::Disable { name } => helper.disable(self.caller, &name).await.map(|()| Response::Disabled { name }),
            Request::Lockdown { on } => helper.lockdown(self.caller, on).await.map(|on| Response::Lockdown { on }),
            Request::SystemTunnels => Ok(Response::SystemTunnels { tunnels: helper.system_tunnels(self.caller) }),
            Request::Status { name } => match helper.statuses(self.caller, name.as_deref()) {
                Ok(visible) => return status(id, visible, out).await,
                Err(e) => Err(e),
            },
            Request::Subscribe { name, interval_ms, packets } => {
                self.subscribe(name, interval_ms, packets).map(|name| Response::Subscribed { name })
            }
            Request::Unsubscribe { name } => match self.subscriptions.remove(&name) {
                Some(task) => {
                    task.abort();
                    Ok(Response::Unsubscribed { name })
                }
                None => Err(IpcError::NotFound { name }),
            },
        };
        respond(out, id, result).await
    }

    fn subscribe(
        &mut self,
        name: String,
        interval_ms: u32,
        packets: Option<culvert_core::packets::Sampling>,
    ) -> Result<String, IpcError> {
        if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&interval_ms) {
            return Err(IpcError::BadRequest {
                message: format!("interval {interval_ms} ms is outside {MIN_INTERVAL_MS}..={MAX_INTERVAL_MS} ms"),
            });
        }
        self.subscriptions.retain(|_, task| !task.is_finished());
        if !self.subscriptions.contains_key(&name) && self.subscriptions.len() >= MAX_SUBSCRIPTIONS {
            return Err(IpcError::BadRequest {
                message: format!(
                    "one connection may watch {MAX_SUBSCRIPTIONS} tunnels at most; unsubscribe from one first"
                ),
            });
        }
        let info = self.helper.watchable(self.caller, &name)?;
        if packets.is_some() && (self.role == Role::Monitor || !self.caller.owns(info.owner_uid)) {
            // What crosses a tunnel is its owner's to see: monitors read counters only.
            return Err(IpcError::NotOwner {
                name,
                owner_uid: info.owner_uid,
                action: "see its packets (a monitor reads counters only)".into(),
            });
        }
        let sampling = match packets {
            None => None,
            Some(s) if !(1..=MAX_ONE_IN).contains(&s.one_in) => {
                return Err(IpcError::BadRequest {
                    message: format!("sampling one packet in {} is outside 1..={MAX_ONE_IN}", s.one_in),
                });
            }
            Some(s) => match &info.sampler {
                Some(sampler) => Some((sampler.position(), sampler.subscribe(s.one_in))),
                None => {
                    return Err(IpcError::Unsupported {
                        message: format!(
                            "the packets of {} tunnels never pass through culvertd, so it cannot show them",
                            info.profile().kind()
                        ),
                    });
                }
            },
        };
        let interval = Duration::from_millis(u64::from(interval_ms));
        let task = tokio::spawn(stream_stats(info, interval, sampling, self.events.clone()));
        if let Some(old) = self.subscriptions.insert(name.clone(), task) {
            old.abort();
        }
        Ok(name)
    }
}

/// Whether a request only reads, as the monitor socket allows: status, the list of system tunnels, whether
/// lockdown is on, and subscriptions to counters.
fn reads_only(request: &Request) -> bool {
    matches!(
        request,
        Request::Status { .. }
            | Request::SystemTunnels
            | Request::Lockdown { on: None }
            | Request::Subscribe { .. }
            | Request::Unsubscribe { .. }
    )
}

/// The connection's writer has gone: the client left.
#[derive(Debug)]
struct Closed;

fn bad_request(message: &str) -> IpcError {
    IpcError::BadRequest { message: message.into() }
}

/// Queues the response to request `id`; one too large for a frame is replaced by the error that says so.
async fn respond(out: &mpsc::Sender<Bytes>, id: u64, result: Result<Response, IpcError>) -> Result<(), Closed> {
    let frame = match encode_frame(&ServerMessage::Response { id, result }) {
        Ok(frame) => frame,
        Err(FrameError::TooLarge { size }) => {
            let error = IpcError::TooLarge { what: "the reply".into(), size, limit: MAX_FRAME };
            encode_frame(&ServerMessage::Response { id, result: Err(error) }).map_err(|_| Closed)?
        }
        Err(e) => {
            let error = IpcError::System { op: "encoding the reply".into(), message: e.to_string() };
            encode_frame(&ServerMessage::Response { id, result: Err(error) }).map_err(|_| Closed)?
        }
    };
    out.send(frame).await.map_err(|_| Closed)
}

/// A status, one tunnel per frame: however many tunnels and peers there are, each part fits (profiles are
/// bounded), and the client puts them together.
async fn status(id: u64, visible: Vec<(TunnelStatus, bool)>, out: &mpsc::Sender<Bytes>) -> Result<(), Closed> {
    for (status, full) in visible {
        let name = status.name.clone();
        let view = if full { TunnelView::Full(status) } else { TunnelView::Other(status.for_others()) };
        match encode_frame(&ServerMessage::Partial { id, tunnel: Box::new(view) }) {
            Ok(frame) => out.send(frame).await.map_err(|_| Closed)?,
            Err(e) => {
                let size = match e {
                    FrameError::TooLarge { size } => size,
                    FrameError::Json(_) => 0,
                };
                let what = format!("the status of tunnel `{name}`");
                return respond(out, id, Err(IpcError::TooLarge { what, size, limit: MAX_FRAME })).await;
            }
        }
    }
    respond(out, id, Ok(Response::Status { tunnels: vec![] })).await
}

/// Pushes a snapshot of the tunnel every `interval` until it goes down, and the packets sampled since the last
/// one when sampling (which lasts as long as this task: the guard goes with it). While the client is too far
/// behind to take more, nothing is made for it: a stalled client costs a timer.
async fn stream_stats(
    info: Arc<TunnelInfo>,
    interval: Duration,
    mut sampling: Option<(u64, SamplingGuard)>,
    events: Arc<EventQueue>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        if info.is_down() {
            events.push(Event::TunnelDown { name: info.name().to_owned() });
            return;
        }
        if events.is_full() {
            events.skip();
            continue;
        }
        events.push(Event::Stats { at_ms: crate::clock::now_ms(), status: info.status() });
        if let (Some((position, _)), Some(sampler)) = (&mut sampling, &info.sampler) {
            let (samples, next, missed) = sampler.read_since(*position, MAX_SAMPLES_PER_EVENT);
            *position = next;
            if !samples.is_empty() || missed > 0 {
                events.push(Event::PacketSamples { name: info.name().to_owned(), samples, missed });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use culvert_core::ipc::codec::HEADER;

    /// A reply that cannot be a frame reaches the client as the error that says so, never as silence.
    #[tokio::test]
    async fn a_reply_too_large_for_a_frame_becomes_a_typed_error() {
        let (tx, mut rx) = mpsc::channel(1);
        let huge = Response::Down { names: vec!["x".repeat(MAX_FRAME)] };
        respond(&tx, 7, Ok(huge)).await.unwrap();
        let frame = rx.recv().await.unwrap();
        match serde_json::from_slice(&frame[HEADER..]).unwrap() {
            ServerMessage::Response { id: 7, result: Err(IpcError::TooLarge { size, limit, .. }) } => {
                assert!(size > limit && limit == MAX_FRAME);
            }
            other => panic!("{other:?}"),
        }
    }
}
