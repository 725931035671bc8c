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
    #[error("tunnel `{name}` is already up; bring it down first with `culvert down {name}`")]
    AlreadyUp { name: String },
    #[error("no tunnel `{name}` is up; `culvert status` lists the tunnels that are")]
    NotFound { name: String },
    #[error("tunnel `{name}` was brought up by uid {owner_uid}; only that user or root may bring it down")]
    NotOwner { name: String, owner_uid: u32 },
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
}

impl From<crate::profile::ProfileError> for IpcError {
    fn from(e: crate::profile::ProfileError) -> Self {
        Self::InvalidProfile { field: e.field, reason: e.problem, fix: e.fix }
    }
}
