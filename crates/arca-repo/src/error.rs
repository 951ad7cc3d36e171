//! The repository's typed errors. Each message names the problem and what to do.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no repository at {location}: create one with `arca init --repo {location}`")]
    NoRepository { location: String },

    #[error("{location} is not an Arca repository (it has no config file): create one with `arca init --repo {location}` or check the path")]
    NotARepository { location: String },

    #[error("{location} already holds a repository")]
    AlreadyExists { location: String },

    #[error(
        "{location} is not empty and is not an Arca repository: choose an empty or new directory or prefix"
    )]
    NotEmpty { location: String },

    #[error("repository {location} has format version {found}, this arca reads version {supported}: upgrade arca")]
    UnsupportedVersion {
        location: String,
        found: u32,
        supported: u32,
    },

    /// The config names a format feature added after this arca was built.
    #[error("repository {location} uses format feature {feature:?}, which this arca ({}) does not know: upgrade arca to open it", env!("CARGO_PKG_VERSION"))]
    UnknownFeature { location: String, feature: String },

    #[error("no backup matches {0:?}: see `arca list` for the ids")]
    BackupNotFound(String),

    #[error("backup id prefix {0:?} matches more than one backup: give more digits")]
    AmbiguousId(String),

    #[error("the repository is empty: there is no backup yet")]
    NoBackups,

    #[error("repository is locked: {0}")]
    Locked(String),

    /// The lock file could not be written (read-only storage or
    /// credentials, a full disk).
    #[error("{0}")]
    LockUnwritable(Box<Error>),

    #[error("damaged repository data: {0}")]
    Corrupt(String),

    #[error("{0}")]
    Format(String),

    /// A local repository's file could not be read or written: the path in
    /// full and the system's reason, one line.
    #[error("cannot {} {path}: {}", .request.op, system_reason(.error))]
    Storage {
        path: String,
        request: Box<Request>,
        error: Box<opendal::Error>,
    },

    /// An object store refused or failed a request. The message names the
    /// bucket and endpoint, and never a credential.
    #[error("{message}")]
    Remote {
        request: Box<Request>,
        kind: opendal::ErrorKind,
        /// The store's own error code, e.g. S3's `NoSuchBucket`.
        code: Option<String>,
        message: String,
    },

    /// The system's reason is in the message, not also a source: an error
    /// chain printed in full would say it twice.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },

    #[error("{0}")]
    Source(std::io::Error),

    /// A stage of a pipeline stopped because another failed; that one's
    /// error is the one reported.
    #[error("cancelled")]
    Cancelled,

    /// The operation's [`Cancel`](crate::Cancel) token was tripped: it
    /// stopped between steps, and `left` says what it left behind.
    #[error("{what} interrupted: {left}")]
    Interrupted { what: String, left: &'static str },
}

impl Error {
    pub fn corrupt(msg: impl Into<String>) -> Error {
        Error::Corrupt(msg.into())
    }

    /// A damage report's own words, without the "damaged repository data" prefix.
    pub fn detail(&self) -> String {
        match self {
            Error::Corrupt(m) => m.clone(),
            e => e.to_string(),
        }
    }

    /// The file or object is not there.
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Storage { error, .. } => error.kind() == opendal::ErrorKind::NotFound,
            Error::Remote { kind, .. } => *kind == opendal::ErrorKind::NotFound,
            _ => false,
        }
    }

    /// The request to the store that failed, for a storage error.
    pub fn request(&self) -> Option<&Request> {
        match self {
            Error::Storage { request, .. } | Error::Remote { request, .. } => Some(request),
            _ => None,
        }
    }

    /// The object store says the bucket does not exist.
    pub fn is_missing_bucket(&self) -> bool {
        matches!(self, Error::Remote { code: Some(c), .. } if c == "NoSuchBucket")
    }

    /// The operation was stopped by its cancellation token.
    pub fn is_interrupted(&self) -> bool {
        matches!(self, Error::Interrupted { .. })
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            error: source,
        }
    }
}

/// A request to the store, as a storage error records it (boxed there: it
/// is rarely read, and the error stays small).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `open`, `start`, `read`, `write`, `rename`, `delete`, `list`, `stat`.
    pub op: &'static str,
    /// The path relative to the repository's root (`data/…`, `locks/…`);
    /// empty for the store as a whole.
    pub key: String,
}

impl Request {
    pub(crate) fn new(op: &'static str, key: &str) -> Box<Request> {
        Box::new(Request {
            op,
            key: key.to_string(),
        })
    }
}

/// The operating system's words for a storage error ("No space left on
/// device (os error 28)") without OpenDAL's context, else OpenDAL's message.
fn system_reason(e: &opendal::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => cause.to_string(),
        None => e.to_string(),
    }
}
