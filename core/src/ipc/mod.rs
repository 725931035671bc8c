//! The protocol between clients (CLI, desktop app) and `culvertd`.
//!
//! Frames are a u32 big-endian length and one JSON message ([`codec`]). The first exchange is `Hello` both ways:
//! a client whose `protocol_version` differs from the helper's is told both versions and disconnected. After
//! that the client sends [`Request`]s with an id; the helper answers each with a [`ServerMessage::Response`]
//! echoing the id and, in between, pushes [`Event`]s for the client's subscriptions.

pub mod codec;
mod error;

use serde::{Deserialize, Serialize};

pub use error::IpcError;

use crate::profile::Profile;
use crate::stats::TunnelStatus;

/// Bumped on every incompatible change of the messages below.
pub const PROTOCOL_VERSION: u32 = 1;
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
    Down {
        name: String,
    },
    /// Brings down every tunnel the caller may bring down.
    DownAll,
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
    },
    /// Sent instead of `Hello` when the caller may not use the helper; the connection closes after it.
    Refused {
        error: IpcError,
    },
    Response {
        id: u64,
        result: Result<Response, IpcError>,
    },
    Event {
        event: Event,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Response {
    Up { status: TunnelStatus },
    Down { names: Vec<String> },
    Status { tunnels: Vec<TunnelStatus> },
    Subscribed { name: String },
    Unsubscribed { name: String },
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
