//! Arca's database engines.
//!
//! An engine turns a live database into bytes with one consistent point in time, and
//! prepares a target to restore those bytes into. It knows nothing about repositories,
//! packs or chunking: the `ops` layer drives an engine into a repository.
//!
//! One module per database, each with the same file set (`config.rs` parses the
//! `--source` value, `backend.rs` reads the consistent image, `restore.rs` prepares a
//! restore target, `core.rs` holds what those share, `docs.md` explains how it works
//! and why it is consistent; it is also the module's rustdoc).
//!
//! - [`sqlite`]: a byte image of a SQLite database file (pages `1..=page_count` of
//!   one read snapshot), taken online while other processes keep writing, in WAL and
//!   in rollback-journal mode.
//!
//! # Example
//!
//! ```no_run
//! use std::io::Read;
//! use arca_engine::sqlite::SqliteSource;
//!
//! let source = SqliteSource::parse("sqlite://./app.db")?;
//! let mut image = source.open_image()?; // the point in time is fixed here
//! println!("{} pages of {} bytes", image.page_count(), image.page_size());
//! let mut buf = vec![0u8; 1 << 20];
//! loop {
//!     let n = image.read(&mut buf)?; // exactly image.len() bytes, then 0
//!     if n == 0 {
//!         break;
//!     }
//!     // chunk, hash, store buf[..n] ...
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Errors
//!
//! Every function returns the typed [`Error`]. Its `Display` is one line that names the
//! path and says what to do, and already contains the underlying cause (an
//! [`std::io::Error`] or [`rusqlite::Error`]), so it does not chain a `source()`.
//! [`Error::kind`] tells a retry layer whether trying again later can help; it is
//! decided on what the error is (an I/O error's kind, SQLite's result code,
//! PostgreSQL's SQLSTATE), never on the words of its message.
//! Errors raised while *reading* an image surface through [`std::io::Read`] as an
//! [`std::io::Error`] whose inner error is the engine [`Error`]
//! (`io_err.get_ref().and_then(|e| e.downcast_ref::<arca_engine::Error>())`).

use std::path::PathBuf;
use std::time::Duration;

pub mod mysql;
pub mod postgres;
pub mod sqlite;

/// An engine error. `Display` is one line naming the path and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The source database file does not exist.
    #[error("source {} does not exist: check the path in --source sqlite://PATH", path.display())]
    NotFound { path: PathBuf },

    /// The source exists but is not a SQLite database (text file, empty file,
    /// directory, encrypted database, ...).
    #[error("{} is not a SQLite database ({reason}): point --source at a SQLite database file", path.display())]
    NotSqlite { path: PathBuf, reason: String },

    /// The `--source` value cannot be parsed. `expected` says what one
    /// looks like for the engine that was asked ([`sqlite::EXPECTED`],
    /// [`postgres::EXPECTED`]).
    #[error("invalid source {input:?}: {reason}; expected {expected}")]
    InvalidSource {
        input: String,
        reason: String,
        expected: &'static str,
    },

    /// The restore target (or one of its `-wal`, `-shm`, `-journal` siblings) exists.
    #[error("restore target {} exists: pass --force to overwrite it", path.display())]
    TargetExists { path: PathBuf },

    /// The restore target is something a restore must not replace (a device,
    /// a FIFO, a symlink…): only what the restore writes may be replaced.
    #[error("cannot restore to {}: it is {found}, not {wanted}; choose a {choose} path", path.display())]
    TargetKind {
        path: PathBuf,
        found: &'static str,
        wanted: &'static str,
        choose: &'static str,
    },

    /// Another connection held a lock on the source for longer than the busy timeout.
    #[error("source {} stayed locked by another connection for {}s (the busy timeout): retry when its writers are idle", path.display(), timeout.as_secs_f64())]
    Busy { path: PathBuf, timeout: Duration },

    /// A rollback-journal database has a hot journal left by an interrupted write,
    /// which a read-only connection must not roll back.
    #[error("source {} has a hot journal left by an interrupted write: let the application (or `sqlite3 {} 'PRAGMA quick_check'`) open it once read-write so SQLite rolls it back, then retry", path.display(), path.display())]
    HotJournal { path: PathBuf },

    /// A restored database fails `PRAGMA integrity_check` or cannot be read at all.
    #[error("restored database {} is damaged ({reason}): restore it again and verify the repository with `arca check --read-data`", path.display())]
    Damaged { path: PathBuf, reason: String },

    /// An I/O error on a file.
    #[error("I/O error on {}: {}", .0.display(), .1)]
    Io(PathBuf, std::io::Error),

    /// A PostgreSQL server could not be reached or refused the login.
    #[error("cannot connect to {server}: {reason}; {}", connect_advice(.cause))]
    Connect {
        server: String,
        reason: String,
        cause: postgres::PgCause,
    },

    /// A PostgreSQL server answered with an error, the connection to it
    /// broke, or the server is not fit for a backup. `reason` says what to do.
    #[error("PostgreSQL at {server}: {reason}")]
    Server {
        server: String,
        reason: String,
        cause: postgres::PgCause,
    },

    /// A MySQL-protocol server could not be reached, refused the login or
    /// a statement, or is not fit for what was asked. `reason` says what
    /// to do; `server` is "MariaDB at HOST:PORT".
    #[error("{server}: {reason}")]
    Mysql {
        server: String,
        reason: String,
        kind: ErrorKind,
        /// The server's error number, if it sent one.
        code: Option<u16>,
    },

    /// Something this build cannot do yet, or will not do.
    #[error("{0}")]
    Unsupported(String),

    /// Any other SQLite error.
    #[error("SQLite error on {}: {}", .0.display(), .1)]
    Sqlite(PathBuf, rusqlite::Error),
}

/// Whether an error may go away by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Trying the same operation again later may succeed: a lock another
    /// connection holds, a server that is restarting, a connection that broke.
    Temporary,
    /// Waiting will not help: the input, a password, a permission, a setting
    /// or the data must change first.
    Permanent,
}

/// What to do when a login failed, by why it failed.
fn connect_advice(cause: &postgres::PgCause) -> &'static str {
    match cause {
        postgres::PgCause::Connection => "check the host and port and that the server is running",
        c if c.kind() == ErrorKind::Temporary => "retry when the server accepts connections",
        _ => "check host, port, user and password (URL, PGPASSWORD or ~/.pgpass)",
    }
}

impl Error {
    /// Whether retrying the same operation later may succeed, or the user must
    /// fix something first. Decided on what the error is, never on its words.
    pub fn kind(&self) -> ErrorKind {
        let temporary = match self {
            Error::Busy { .. } => true,
            Error::Io(_, e) => matches!(
                e.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::WouldBlock
                    | std::io::ErrorKind::TimedOut
            ),
            Error::Sqlite(_, e) => matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            Error::Connect { cause, .. } | Error::Server { cause, .. } => {
                return cause.kind();
            }
            Error::Mysql { kind, .. } => return *kind,
            _ => false,
        };
        if temporary {
            ErrorKind::Temporary
        } else {
            ErrorKind::Permanent
        }
    }

    /// `kind() == ErrorKind::Temporary`.
    pub fn is_temporary(&self) -> bool {
        self.kind() == ErrorKind::Temporary
    }

    /// The SQLSTATE a PostgreSQL server sent, if this error is one.
    pub fn sqlstate(&self) -> Option<&::postgres::error::SqlState> {
        match self {
            Error::Connect { cause, .. } | Error::Server { cause, .. } => cause.sqlstate(),
            _ => None,
        }
    }

    /// The path the error is about, if any.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Error::NotFound { path }
            | Error::NotSqlite { path, .. }
            | Error::TargetExists { path }
            | Error::TargetKind { path, .. }
            | Error::Busy { path, .. }
            | Error::HotJournal { path }
            | Error::Damaged { path, .. }
            | Error::Io(path, _)
            | Error::Sqlite(path, _) => Some(path),
            Error::InvalidSource { .. }
            | Error::Connect { .. }
            | Error::Server { .. }
            | Error::Mysql { .. }
            | Error::Unsupported(_) => None,
        }
    }
}

/// `input` with the password of its `scheme://user:password@host…` form
/// replaced, for messages; anything else as it is.
pub(crate) fn redact_url(input: &str) -> String {
    if let Some((scheme, rest)) = input.split_once("://") {
        if let Some((auth, host)) = rest.rsplit_once('@') {
            if let Some((user, _)) = auth.split_once(':') {
                return format!("{scheme}://{user}:[SECRET]@{host}");
            }
        }
    }
    input.to_string()
}

/// What a file is, in words for an error message ("a FIFO").
pub fn file_kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_file() {
        "a regular file"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_path_and_the_fix() {
        let e = Error::NotFound {
            path: "/x/y.db".into(),
        };
        assert_eq!(
            e.to_string(),
            "source /x/y.db does not exist: check the path in --source sqlite://PATH"
        );
        let e = Error::NotSqlite {
            path: "/x/y.txt".into(),
            reason: "file is not a database".into(),
        };
        assert_eq!(
            e.to_string(),
            "/x/y.txt is not a SQLite database (file is not a database): point --source at a SQLite database file"
        );
        let e = Error::TargetExists { path: "/p".into() };
        assert_eq!(
            e.to_string(),
            "restore target /p exists: pass --force to overwrite it"
        );
    }

    #[test]
    fn busy_is_temporary_not_found_is_not() {
        let busy = Error::Busy {
            path: "/x".into(),
            timeout: Duration::from_secs(30),
        };
        assert!(busy.is_temporary());
        assert!(!Error::NotFound { path: "/x".into() }.is_temporary());
    }

    #[test]
    fn a_login_failure_says_what_to_do_by_its_sqlstate() {
        use ::postgres::error::SqlState;
        let connect = |code: SqlState| Error::Connect {
            server: "postgres://u@h:5432/db".into(),
            reason: "why (CODE)".into(),
            cause: postgres::PgCause::Sql(code),
        };
        let e = connect(SqlState::INVALID_PASSWORD);
        assert_eq!(e.kind(), ErrorKind::Permanent);
        assert_eq!(e.sqlstate(), Some(&SqlState::INVALID_PASSWORD));
        assert_eq!(
            e.to_string(),
            "cannot connect to postgres://u@h:5432/db: why (CODE); check host, port, user and password (URL, PGPASSWORD or ~/.pgpass)"
        );
        assert_eq!(
            connect(SqlState::INSUFFICIENT_PRIVILEGE).kind(),
            ErrorKind::Permanent
        );
        let e = connect(SqlState::CANNOT_CONNECT_NOW);
        assert_eq!(e.kind(), ErrorKind::Temporary);
        assert!(e.is_temporary());
        assert_eq!(
            e.to_string(),
            "cannot connect to postgres://u@h:5432/db: why (CODE); retry when the server accepts connections"
        );
        let e = Error::Server {
            server: "s".into(),
            reason: "terminating connection due to administrator command (57P01)".into(),
            cause: postgres::PgCause::Sql(SqlState::ADMIN_SHUTDOWN),
        };
        assert_eq!(e.kind(), ErrorKind::Temporary);
        let e = Error::Server {
            server: "s".into(),
            reason: "the server is a standby: back up the primary".into(),
            cause: postgres::PgCause::Other,
        };
        assert_eq!(e.kind(), ErrorKind::Permanent);
        assert_eq!(e.sqlstate(), None);
    }

    #[test]
    fn a_cause_in_the_message_is_not_also_a_source() {
        use std::error::Error as _;
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let errors = [
            Error::Io("/p".into(), io()),
            Error::Sqlite("/p".into(), rusqlite::Error::InvalidQuery),
            Error::Connect {
                server: "s".into(),
                reason: "r".into(),
                cause: postgres::PgCause::Connection,
            },
            Error::Server {
                server: "s".into(),
                reason: "r".into(),
                cause: postgres::PgCause::Other,
            },
            Error::InvalidSource {
                input: "x".into(),
                reason: "r".into(),
                expected: sqlite::EXPECTED,
            },
        ];
        for e in errors {
            assert!(e.source().is_none(), "{e}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }

    #[test]
    fn errors_are_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<Error>();
    }
}
