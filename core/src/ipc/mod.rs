//! The protocol between clients (CLI, desktop app) and `culvertd`.
//!
//! Frames are a u32 big-endian length and one JSON message ([`codec`]). The first exchange is `Hello` both ways:
//! a client whose `protocol_version` differs from the helper's is told both versions and disconnected. After
//! that the client sends [`Request`]s with an id; the helper answers each with a [`ServerMessage::Response`]
//! echoing the id and, in between, pushes [`Event`]s for the client's subscriptions. A reply too large for one
//! frame comes in parts: a status is one [`ServerMessage::Partial`] per tunnel, then its `Response`.
//!
//! The helper bounds the work of every request by the `request_timeout_ms` it announces in its hello; clients
//! wait a little longer than that for each response (streams of events are not bounded).

pub mod codec;
mod error;

use serde::{Deserialize, Serialize};

pub use error::IpcError;

use crate::profile::Profile;
use crate::stats::{TunnelStatus, TunnelView};

/// Bumped on every incompatible change of the messages below.
pub const PROTOCOL_VERSION: u32 = 2;
/// Subscriptions one connection may hold at once.
pub const MAX_SUBSCRIPTIONS: usize = 16;
/// Subscriptions push stats at most this often...
pub const MIN_INTERVAL_MS: u32 = 100;
/// ...and at least this often.
pub const MAX_INTERVAL_MS: u32 = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Hello { protocol_version: u32 },
    Request { id: u64, request: Request },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Brings a tunnel up from a complete profile (secrets included): the helper reads no files of the caller.
    Up {
        profile: Box<Profile>,
    },
    /// Takes a tunnel that is up to exactly this profile without taking it down (peers that stay keep their
    /// sessions), or brings it up if it is down.
    Apply {
        profile: Box<Profile>,
    },
    Down {
        name: String,
    },
    /// Brings down every tunnel the caller may bring down.
    DownAll,
    /// Makes a system tunnel of a complete profile: culvertd keeps it (root-only, in its config directory) and
    /// brings it up now and whenever it starts, until `Disable`.
    Enable {
        profile: Box<Profile>,
    },
    /// Brings a system tunnel down and forgets it.
    Disable {
        name: String,
    },
    /// Turns lockdown on or off (`None`: only asks): while it is on, nothing leaves the host but through a full
    /// tunnel, whether one is up or not, from boot on.
    Lockdown {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on: Option<bool>,
    },
    /// The system tunnels the caller may change (their own; root: all), up or not.
    SystemTunnels,
    /// Every tunnel, or only the one named.
    Status {
        name: Option<String>,
    },
    /// Pushes `Stats` for the tunnel every `interval_ms` until `Unsubscribe` or the tunnel goes down, and with
    /// `packets`, the headers of sampled packets (userspace kinds only).
    Subscribe {
        name: String,
        interval_ms: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        packets: Option<crate::packets::Sampling>,
    },
    Unsubscribe {
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Hello {
        protocol_version: u32,
        helper_version: String,
        /// The longest the helper works on one request before it gives up and answers with why.
        request_timeout_ms: u64,
    },
    /// Sent instead of `Hello` when the caller may not use the helper; the connection closes after it.
    Refused {
        error: IpcError,
    },
    Response {
        id: u64,
        result: Result<Response, IpcError>,
    },
    /// One tunnel of the status that the `Response` with the same id completes.
    Partial {
        id: u64,
        tunnel: Box<TunnelView>,
    },
    Event {
        event: Event,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Response {
    Up {
        status: TunnelStatus,
    },
    /// What `Apply` did, in words ("peer ... added", "2 routes removed"), and the tunnel's status after it.
    Applied {
        status: TunnelStatus,
        changes: Vec<String>,
    },
    Down {
        names: Vec<String>,
    },
    Enabled {
        status: TunnelStatus,
    },
    Disabled {
        name: String,
    },
    /// Whether lockdown is on, after the request.
    Lockdown {
        on: bool,
    },
    SystemTunnels {
        tunnels: Vec<crate::stats::SystemTunnel>,
    },
    /// Every tunnel, or the one asked for; the helper sends them as [`ServerMessage::Partial`]s before this.
    Status {
        tunnels: Vec<TunnelView>,
    },
    Subscribed {
        name: String,
    },
    Unsubscribed {
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A snapshot of a subscribed tunnel; `at_ms` is the helper's monotonic clock in milliseconds.
    Stats { at_ms: u64, status: TunnelStatus },
    /// Packets sampled since the last such event, oldest first; `missed` counts samples that fell out of the
    /// helper's bounded buffer before they could be sent.
    PacketSamples { name: String, samples: Vec<crate::packets::PacketSample>, missed: u64 },
    /// A subscribed tunnel went down (by request or by its owner); no more `Stats` come for it.
    TunnelDown { name: String },
    /// The client read too slowly and `lost` events were dropped for it.
    Lagged { lost: u64 },
}
