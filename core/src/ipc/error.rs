//! Errors the helper returns, each rendered as one sentence that says what to do.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum IpcError {
    #[error("profile field {field}: {reason}; {fix}")]
    InvalidProfile { field: String, reason: String, fix: String },
    #[error(
        "you (uid {uid}) may not use culvertd: only root and members of group `{group}` may; \
         run `sudo usermod -aG {group} $USER`, then log in again"
    )]
    NotAuthorized { uid: u32, group: String },
    #[error(
        "tunnel `{name}` is already up; `culvert apply` changes it to the profile in place, `culvert down {name}` \
         brings it down"
    )]
    AlreadyUp { name: String },
    #[error(
        "uid {owner_uid} has a tunnel named `{name}` up; give your profile another name to bring it up beside that one"
    )]
    NameTaken { name: String, owner_uid: u32 },
    #[error("no tunnel `{name}` is up; `culvert status` lists the tunnels that are")]
    NotFound { name: String },
    #[error("tunnel `{name}` was brought up by uid {owner_uid}; only that user or root may {action}")]
    NotOwner { name: String, owner_uid: u32, action: String },
    #[error("tunnel `{name}` is still coming up; try again when `culvert up` has answered")]
    Busy { name: String },
    #[error(
        "culvertd serves at most {limit} connections {scope} and has that many; close other culvert programs \
         (or windows of the app) and try again"
    )]
    TooManyConnections { limit: usize, scope: String },
    #[error("{what} did not finish within {after_s} s while {doing}, so it was undone; {fix}")]
    TimedOut { what: String, after_s: u64, doing: String, fix: String },
    #[error("{what} is {size} bytes, more than the {limit} one message may carry")]
    TooLarge { what: String, size: usize, limit: usize },
    #[error(
        "the helper speaks protocol version {helper} and this client {client}; install matching versions of culvert and culvertd"
    )]
    VersionMismatch { client: u32, helper: u32 },
    #[error("bad request: {message}; this client and culvertd do not understand each other, install matching versions")]
    BadRequest { message: String },
    #[error("{op} failed: {message}")]
    System { op: String, message: String },
    #[error("{message}")]
    Unsupported { message: String },
    #[error("only root may {what}: {why}; run it with sudo")]
    NeedsRoot { what: String, why: String },
    #[error("{message}; {fix}")]
    Overlay { message: String, fix: String },
}

impl From<crate::profile::ProfileError> for IpcError {
    fn from(e: crate::profile::ProfileError) -> Self {
        Self::InvalidProfile { field: e.field, reason: e.problem, fix: e.fix }
    }
}
