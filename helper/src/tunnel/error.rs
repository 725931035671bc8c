//! Why bringing up or changing a tunnel failed, as the tunnel layer knows it: a profile the host cannot take (with
//! its field and fix), or a system operation that failed, with its source kept. The control layer turns it into
//! the wire's error once (`control::errors`).

use std::io;

use crate::system::NetlinkError;

#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// The profile cannot be brought up (or changed to) here, for a reason in one of its fields.
    #[error("{field}: {reason}; {fix}")]
    Profile { field: String, reason: String, fix: String },
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error("writing the tunnel's record in the state directory: {0}")]
    Record(#[source] io::Error),
    #[error("creating the device {interface}: {source}")]
    Device {
        interface: String,
        #[source]
        source: io::Error,
    },
    #[error("binding UDP port {port}: {source}")]
    Bind {
        port: u16,
        #[source]
        source: io::Error,
    },
    #[error("marking the tunnel's socket with fwmark {mark:#x}: {source}")]
    Mark {
        mark: u32,
        #[source]
        source: io::Error,
    },
    #[error("setting sysctl {key}: {source}")]
    Sysctl {
        key: String,
        #[source]
        source: io::Error,
    },
    #[error("setting DNS: {0}")]
    Dns(String),
    #[error("opening the WireGuard API socket: {0}")]
    Uapi(#[from] super::uapi::BindError),
    /// Something that should not happen did (a link gone right after it was made, every table in use).
    #[error("{op}: {message}")]
    Other { op: String, message: String },
}

impl TunnelError {
    pub fn profile(field: impl Into<String>, reason: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::Profile { field: field.into(), reason: reason.into(), fix: fix.into() }
    }
}
