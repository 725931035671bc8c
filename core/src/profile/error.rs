//! Errors a profile can have, each naming the field, the problem and the fix.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong with a profile: which field, what is wrong with it, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{field}: {problem}; {fix}")]
pub struct ProfileError {
    /// Path of the field inside the profile, such as `peer[0].allowed_ips[1]`.
    pub field: String,
    pub problem: String,
    pub fix: String,
}

impl ProfileError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { field: field.into(), problem: problem.into(), fix: fix.into() }
    }
}

/// A profile file that could not be read or is not a valid profile.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read profile {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {}", path.display(), error)]
    Invalid { path: PathBuf, error: FileProblem },
}

/// What is wrong inside a profile file: either its syntax (with a line) or a field's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileProblem {
    Syntax { line: Option<usize>, message: String, fix: String },
    Field(ProfileError),
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax { line: Some(line), message, fix } => write!(f, "line {line}: {message}; {fix}"),
            Self::Syntax { line: None, message, fix } => write!(f, "{message}; {fix}"),
            Self::Field(e) => e.fmt(f),
        }
    }
}

impl From<ProfileError> for FileProblem {
    fn from(e: ProfileError) -> Self {
        Self::Field(e)
    }
}
