//! One client connection: authorization, the version handshake, requests and subscriptions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use culvert_core::ipc::codec::JsonCodec;
use culvert_core::ipc::{
    ClientMessage, Event, IpcError, MAX_INTERVAL_MS, MIN_INTERVAL_MS, PROTOCOL_VERSION, Request, Response,
    ServerMessage,
};
use culvert_core::packets::MAX_ONE_IN;
use futures::{SinkExt, StreamExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;

use super::events::EventQueue;
use super::{Caller, Helper};
use crate::dataplane::sampler::SamplingGuard;
use crate::tunnel::TunnelInfo;

/// A client must say hello this soon after connecting.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

type Conn = Framed<UnixStream, JsonCodec<ClientMessage, ServerMessage>>;

pub async fn serve(helper: Arc<Helper>, stream: UnixStream) {
    let cred = match stream.peer_cred() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("refusing a connection whose credentials cannot be read: {e}");
            return;
        }
    };
    let caller = Caller { uid: cred.uid(), gid: cred.gid() };
    let mut conn: Conn = Framed::new(stream, JsonCodec::default());
    if !helper.access.allows(caller.uid, caller.gid) {
        tracing::info!(
            "refused uid {} (gid {}): not root nor in group {}",
            caller.uid,
            caller.gid,
            helper.access.group_name
        );
        let error = IpcError::NotAuthorized { uid: caller.uid, group: helper.access.group_name.clone() };
        let _ = conn.send(ServerMessage::Refused { error }).await;
        return;
    }
    match tokio::time::timeout(HELLO_TIMEOUT, conn.next()).await {
        Ok(Some(Ok(ClientMessage::Hello { protocol_version }))) if protocol_version == PROTOCOL_VERSION => {}
        Ok(Some(Ok(ClientMessage::Hello { protocol_version }))) => {
            let error = IpcError::VersionMismatch { client: protocol_version, helper: PROTOCOL_VERSION };
            let _ = conn.send(ServerMessage::Refused { error }).await;
            return;
        }
        _ => {
            let error = IpcError::BadRequest { message: "the first message must be a hello".into() };
            let _ = conn.send(ServerMessage::Refused { error }).await;
            return;
        }
    }
    let hello =
        ServerMessage::Hello { protocol_version: PROTOCOL_VERSION, helper_version: env!("CARGO_PKG_VERSION").into() };
    if conn.send(hello).await.is_err() {
        return;
    }
    Session::new(helper, caller).run(conn).await;
}

struct Session {
    helper: Arc<Helper>,
    caller: Caller,
    events: Arc<EventQueue>,
    subscriptions: HashMap<String, JoinHandle<()>>,
}

impl Session {
    fn new(helper: Arc<Helper>, caller: Caller) -> Self {
        Self { helper, caller, events: Arc::default(), subscriptions: HashMap::new() }
    }

    async fn run(mut self, conn: Conn) {
        let (mut sink, mut stream) = conn.split();
        // Responses must not be lost, so they wait for room; events never wait (see EventQueue).
        let (responses, mut outbox) = mpsc::channel::<ServerMessage>(16);
        let events = self.events.clone();
        let writer = tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    biased;
                    msg = outbox.recv() => match msg { Some(m) => m, None => break },
                    event = events.pop() => ServerMessage::Event { event },
                };
                if sink.send(msg).await.is_err() {
                    break;
                }
            }
        });
        while let Some(msg) = stream.next().await {
            let reply = match msg {
                Ok(ClientMessage::Request { id, request }) => {
                    ServerMessage::Response { id, result: self.handle(request).await }
                }
                Ok(ClientMessage::Hello { .. }) => bad_request(0, "hello was already exchanged"),
                Err(e) => {
                    let _ = responses.send(bad_request(0, &e.to_string())).await;
                    break;
                }
            };
            if responses.send(reply).await.is_err() {
                break;
            }
        }
        for (_, task) in self.subscriptions.drain() {
            task.abort();
        }
        drop(responses);
        let _ = writer.await;
    }

    async fn handle(&mut self, request: Request) -> Result<Response, IpcError> {
        let helper = &self.helper;
        match request {
            Request::Up { profile } => helper.up(self.caller, *profile).await.map(|status| Response::Up { status }),
            Request::Down { name } => helper.down(self.caller, &name).await.map(|names| Response::Down { names }),
            Request::DownAll => Ok(Response::Down { names: helper.down_all(self.caller).await }),
            Request::Status { name } => {
                helper.status(name.as_deref()).await.map(|tunnels| Response::Status { tunnels })
            }
            Request::Subscribe { name, interval_ms, packets } => {
                if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&interval_ms) {
                    return Err(IpcError::BadRequest {
                        message: format!(
                            "interval {interval_ms} ms is outside {MIN_INTERVAL_MS}..={MAX_INTERVAL_MS} ms"
                        ),
                    });
                }
                let info = helper.info(&name).await?;
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
                                    info.profile.kind()
                                ),
                            });
                        }
                    },
                };
                let task = tokio::spawn(stream_stats(
                    info,
                    Duration::from_millis(u64::from(interval_ms)),
                    sampling,
                    self.events.clone(),
                ));
                if let Some(old) = self.subscriptions.insert(name.clone(), task) {
                    old.abort();
                }
                Ok(Response::Subscribed { name })
            }
            Request::Unsubscribe { name } => match self.subscriptions.remove(&name) {
                Some(task) => {
                    task.abort();
                    Ok(Response::Unsubscribed { name })
                }
                None => Err(IpcError::NotFound { name }),
            },
        }
    }
}

fn bad_request(id: u64, message: &str) -> ServerMessage {
    ServerMessage::Response { id, result: Err(IpcError::BadRequest { message: message.into() }) }
}

/// Pushes a snapshot of the tunnel every `interval` until it goes down, and the packets sampled since the last
/// one when sampling (which lasts as long as this task: the guard goes with it).
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
        events.push(Event::Stats { at_ms: crate::clock::now_ms(), status: info.status() });
        if let (Some((position, _)), Some(sampler)) = (&mut sampling, &info.sampler) {
            let (samples, next, missed) = sampler.read_since(*position);
            *position = next;
            if !samples.is_empty() || missed > 0 {
                events.push(Event::PacketSamples { name: info.name().to_owned(), samples, missed });
            }
        }
    }
}
