//! culvert's exit status: what a script may tell apart without reading the message. The man page's EXIT STATUS
//! section is rendered from [`CODES`], so the two cannot disagree.

use std::io::ErrorKind;

use culvert_core::client::ClientError;
use culvert_core::ipc::IpcError;
use culvert_core::profile::LoadError;
use culvert_store::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    Done = 0,
    Failed = 1,
    /// clap's own for a command line it does not understand.
    Usage = 2,
    NoHelper = 3,
    NotAllowed = 4,
    InvalidProfile = 5,
    NotFound = 6,
}

/// Each status and when culvert exits with it.
pub const CODES: &[(Exit, &str)] = &[
    (Exit::Done, "Done (also when the reader of the output left early, as head does)."),
    (Exit::Failed, "Failed; standard error says what went wrong and how to fix it."),
    (Exit::Usage, "The command line was not understood (a missing or unknown argument)."),
    (Exit::NoHelper, "culvertd is not running: nothing answers on its socket."),
    (
        Exit::NotAllowed,
        "Not allowed: you may not use culvertd's socket, the tunnel is another user's, the change needs root, or a \
         file cannot be read.",
    ),
    (Exit::InvalidProfile, "The profile is not valid (its syntax or a value); the message names the field."),
    (Exit::NotFound, "No such tunnel, stored profile or profile file."),
];

/// Said where a profile was refused in a form of the CLI's own (the file named first), so that the refusal is
/// still known as one.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// A failure already said where it happened (one file of several, say): only its status is left to give.
#[derive(Debug, thiserror::Error)]
#[error("failed with status {}", *.0 as u8)]
pub struct Reported(pub Exit);

/// The status for an error: the first cause in its chain that says which.
pub fn status_of(error: &anyhow::Error) -> Exit {
    error.chain().find_map(classify).unwrap_or(Exit::Failed)
}

fn classify(cause: &(dyn std::error::Error + 'static)) -> Option<Exit> {
    if cause.is::<Invalid>() {
        return Some(Exit::InvalidProfile);
    }
    if let Some(e) = cause.downcast_ref::<ClientError>() {
        return match e {
            ClientError::NotRunning { .. } => Some(Exit::NoHelper),
            ClientError::SocketDenied { .. } => Some(Exit::NotAllowed),
            ClientError::Helper(e) => Some(of_helper(e)),
            _ => Some(Exit::Failed),
        };
    }
    if let Some(e) = cause.downcast_ref::<IpcError>() {
        return Some(of_helper(e));
    }
    if let Some(e) = cause.downcast_ref::<StoreError>() {
        return match e {
            StoreError::NotFound(_) => Some(Exit::NotFound),
            StoreError::Corrupt { .. } => Some(Exit::InvalidProfile),
            StoreError::Load(e) => Some(of_load(e)),
            _ => None,
        };
    }
    if let Some(e) = cause.downcast_ref::<LoadError>() {
        return Some(of_load(e));
    }
    None
}

fn of_helper(e: &IpcError) -> Exit {
    match e {
        IpcError::NotAuthorized { .. }
        | IpcError::NotOwner { .. }
        | IpcError::NeedsRoot { .. }
        | IpcError::NameTaken { .. } => Exit::NotAllowed,
        IpcError::InvalidProfile { .. } => Exit::InvalidProfile,
        IpcError::NotFound { .. } => Exit::NotFound,
        _ => Exit::Failed,
    }
}

fn of_load(e: &LoadError) -> Exit {
    match e {
        LoadError::Read { source, .. } if source.kind() == ErrorKind::NotFound => Exit::NotFound,
        LoadError::Read { source, .. } if source.kind() == ErrorKind::PermissionDenied => Exit::NotAllowed,
        LoadError::Read { .. } => Exit::Failed,
        LoadError::Invalid { .. } => Exit::InvalidProfile,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_gets_its_status_through_context() {
        let gone = ClientError::NotRunning { path: "/run/x.sock".into() };
        assert_eq!(status_of(&anyhow::Error::new(gone)), Exit::NoHelper);
        let owner = IpcError::NotOwner { name: "a".into(), owner_uid: 7, action: "x".into() };
        let wrapped = anyhow::Error::new(ClientError::Helper(owner)).context("bringing a down");
        assert_eq!(status_of(&wrapped), Exit::NotAllowed);
        assert_eq!(status_of(&anyhow::Error::new(StoreError::NotFound("p".into()))), Exit::NotFound);
        let missing = LoadError::Read { path: "x.conf".into(), source: std::io::Error::from(ErrorKind::NotFound) };
        assert_eq!(status_of(&anyhow::Error::new(missing)), Exit::NotFound);
        assert_eq!(status_of(&anyhow::Error::new(Invalid("x.conf: bad".into()))), Exit::InvalidProfile);
        assert_eq!(status_of(&anyhow::anyhow!("something else")), Exit::Failed);
    }

    #[test]
    fn every_status_is_documented_once() {
        let mut codes: Vec<u8> = CODES.iter().map(|(c, _)| *c as u8).collect();
        codes.dedup();
        assert_eq!(codes, (0..=6).collect::<Vec<u8>>());
    }
}
