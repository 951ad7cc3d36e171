//! Shared pieces: reading the info pragmas, mapping SQLite errors, and the file lease
//! that makes our own descriptor of a database file safe next to SQLite's locks.

use std::io;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::backend::SqliteInfo;
use super::config::DEFAULT_BUSY_TIMEOUT;
use crate::Error;

/// Page cache of a reading connection, in KiB (`PRAGMA cache_size = -CACHE_KIB`).
pub(crate) const CACHE_KIB: u32 = 2048;

/// SQLite's lock bytes start at this offset; the page containing it is never used.
const PENDING_BYTE: u64 = 0x4000_0000;

/// Number of the page holding the lock bytes (SQLite's `PENDING_BYTE_PAGE`).
pub(crate) fn pending_byte_page(page_size: u32) -> u64 {
    PENDING_BYTE / u64::from(page_size) + 1
}

/// Reads the info pragmas (inside the caller's transaction, if any).
pub(crate) fn read_info(conn: &Connection) -> rusqlite::Result<SqliteInfo> {
    let int =
        |pragma: &str| conn.query_row(&format!("PRAGMA {pragma}"), [], |r| r.get::<_, i64>(0));
    let text =
        |pragma: &str| conn.query_row(&format!("PRAGMA {pragma}"), [], |r| r.get::<_, String>(0));
    let page_size = int("page_size")?;
    Ok(SqliteInfo {
        page_size: u32::try_from(page_size)
            .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, page_size))?,
        page_count: u64::try_from(int("page_count")?).unwrap_or(0),
        encoding: text("encoding")?,
        user_version: int("user_version")?,
        application_id: int("application_id")?,
        journal_mode: text("journal_mode")?,
    })
}

/// Maps an error met while opening a source and pinning its snapshot.
pub(crate) fn map_source_error(path: &Path, timeout: Duration, e: rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(err, msg) = &e {
        if err.extended_code == rusqlite::ffi::SQLITE_READONLY_ROLLBACK {
            return Error::HotJournal {
                path: path.to_path_buf(),
            };
        }
        match err.code {
            ErrorCode::NotADatabase => {
                return Error::NotSqlite {
                    path: path.to_path_buf(),
                    reason: msg
                        .clone()
                        .unwrap_or_else(|| "file is not a database".into()),
                }
            }
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                return Error::Busy {
                    path: path.to_path_buf(),
                    timeout,
                }
            }
            _ => {}
        }
    }
    Error::Sqlite(path.to_path_buf(), e)
}

/// Maps an error met while reading a restored database.
pub(crate) fn map_restored_error(path: &Path, e: rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(err, msg) = &e {
        if matches!(
            err.code,
            ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt
        ) {
            return Error::Damaged {
                path: path.to_path_buf(),
                reason: msg.clone().unwrap_or_else(|| err.to_string()),
            };
        }
    }
    Error::Sqlite(path.to_path_buf(), e)
}

/// Who asks, which decides how errors read: a source (to be backed up) or a restored
/// file (to be verified).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// [`Error::NotFound`], [`Error::NotSqlite`], [`Error::Busy`], [`Error::HotJournal`].
    Source,
    /// A missing file is [`Error::Io`], an unreadable one [`Error::Damaged`].
    Restored,
}

/// Existence and shape checks of a source that need no file descriptor.
pub(crate) fn check_source_file(path: &Path) -> Result<(), Error> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::NotFound {
                path: path.to_path_buf(),
            })
        }
        Err(e) => return Err(Error::Io(path.to_path_buf(), e)),
    };
    let not_sqlite = |reason: &str| Error::NotSqlite {
        path: path.to_path_buf(),
        reason: reason.into(),
    };
    if meta.is_dir() {
        return Err(not_sqlite("a directory"));
    }
    if !meta.is_file() {
        return Err(not_sqlite("not a regular file"));
    }
    if meta.len() == 0 {
        // SQLite treats a 0-byte file as a valid empty database, but it holds nothing
        // to back up and is far more often a wrong path (a file `touch`ed or created by
        // a failed open) than a real database.
        return Err(not_sqlite("an empty file of 0 bytes"));
    }
    Ok(())
}

fn check_restored_file(path: &Path) -> Result<(), Error> {
    let meta = std::fs::metadata(path).map_err(|e| Error::Io(path.to_path_buf(), e))?;
    if meta.is_dir() {
        return Err(Error::Io(
            path.to_path_buf(),
            io::Error::new(io::ErrorKind::IsADirectory, "is a directory"),
        ));
    }
    if meta.len() == 0 {
        return Err(Error::Damaged {
            path: path.to_path_buf(),
            reason: "an empty file of 0 bytes".into(),
        });
    }
    Ok(())
}

/// A read-only connection inside a read transaction, for [`super::inspect`] and
/// [`super::integrity_check`]. Field order is drop order: the connection closes before
/// the lease.
pub(crate) struct ReadOnlyDb {
    pub(crate) conn: Connection,
    lease: FileLease,
    purpose: Purpose,
}

impl ReadOnlyDb {
    /// Opens `path` read-only and starts a read transaction.
    ///
    /// Normally with SQLite's locks and a busy timeout, so a live database is read
    /// consistently. A WAL-mode file with no `-wal` beside it (no connection has it
    /// open) is opened `immutable` instead: a read-only connection would otherwise
    /// create an empty `-wal` and `-shm` beside it and leave them there, which matters
    /// for a freshly restored file. Without a `-wal` nobody can be writing it: WAL
    /// writers append to the `-wal`, and only checkpoints of those frames write the file.
    pub(crate) fn open(path: &Path, purpose: Purpose) -> Result<ReadOnlyDb, Error> {
        match purpose {
            Purpose::Source => check_source_file(path)?,
            Purpose::Restored => check_restored_file(path)?,
        }
        let lease = FileLease::acquire(path).map_err(|e| match (purpose, e.kind()) {
            (Purpose::Source, io::ErrorKind::NotFound) => Error::NotFound {
                path: path.to_path_buf(),
            },
            _ => Error::Io(path.to_path_buf(), e),
        })?;
        let map = |e| match purpose {
            Purpose::Source => map_source_error(path, DEFAULT_BUSY_TIMEOUT, e),
            Purpose::Restored => map_restored_error(path, e),
        };
        let idle_wal = lease.is_wal_header() && !sibling_exists(path, "-wal");
        let conn = if idle_wal {
            let uri = immutable_uri(path).map_err(|e| Error::Io(path.to_path_buf(), e))?;
            Connection::open_with_flags(
                uri,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_URI,
            )
        } else {
            Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
        }
        .map_err(map)?;
        conn.busy_timeout(DEFAULT_BUSY_TIMEOUT).map_err(map)?;
        conn.execute_batch("BEGIN").map_err(map)?;
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(map)?;
        Ok(ReadOnlyDb {
            conn,
            lease,
            purpose,
        })
    }

    /// Maps an error of a query on this connection.
    pub(crate) fn map_err(&self, path: &Path, e: rusqlite::Error) -> Error {
        match self.purpose {
            Purpose::Source => map_source_error(path, DEFAULT_BUSY_TIMEOUT, e),
            Purpose::Restored => map_restored_error(path, e),
        }
    }

    /// The info pragmas. `journal_mode` is `wal` whenever the header says so (an
    /// `immutable` connection ignores WAL and reports `delete`).
    pub(crate) fn info(&self, path: &Path) -> Result<SqliteInfo, Error> {
        let mut info = read_info(&self.conn).map_err(|e| self.map_err(path, e))?;
        if self.lease.is_wal_header() {
            info.journal_mode = "wal".into();
        }
        Ok(info)
    }
}

fn sibling_exists(path: &Path, suffix: &str) -> bool {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    std::fs::symlink_metadata(Path::new(&name)).is_ok()
}

/// `file:PATH?immutable=1`, the path percent-encoded (RFC 3986 unreserved bytes and `/`
/// stay as they are).
fn immutable_uri(path: &Path) -> io::Result<String> {
    #[cfg(unix)]
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    #[cfg(not(unix))]
    let bytes = path
        .to_str()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path is not UTF-8"))?
        .as_bytes();
    let mut uri = String::from("file:");
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    Ok(uri)
}

/// Rows of `PRAGMA integrity_check` (at most 20 problems).
pub(crate) fn integrity_problems(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("PRAGMA integrity_check(20)")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    rows.collect()
}

pub(crate) use lease::FileLease;

#[cfg(unix)]
mod lease {
    //! POSIX advisory locks, which SQLite uses, belong to a (process, file) pair: closing
    //! *any* descriptor of a file drops *all* the process's locks on it, including the
    //! SHARED lock SQLite holds for an open read transaction. SQLite guards its own
    //! descriptors against this; ours must be guarded here.
    //!
    //! Rule: every connection this crate opens on a file is bracketed by a lease on that
    //! file (acquired before the connection opens, released after it closes), and our
    //! descriptors of a file are closed only when its last lease is released, under the
    //! registry lock, so never while one of our connections holds a lock on it.

    use std::collections::HashMap;
    use std::fs::File;
    use std::io;
    use std::os::unix::fs::{FileExt, MetadataExt};
    use std::path::Path;
    use std::sync::{LazyLock, Mutex, MutexGuard};

    type Key = (u64, u64);

    #[derive(Default)]
    struct Entry {
        leases: usize,
        /// Descriptors of released leases, closed when `leases` drops to 0.
        parked: Vec<File>,
    }

    static REGISTRY: LazyLock<Mutex<HashMap<Key, Entry>>> = LazyLock::new(Default::default);

    fn registry() -> MutexGuard<'static, HashMap<Key, Entry>> {
        REGISTRY
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Our own read-only descriptor of a database file; see the module docs.
    pub(crate) struct FileLease {
        key: Key,
        file: Option<File>,
    }

    impl FileLease {
        pub(crate) fn acquire(path: &Path) -> io::Result<FileLease> {
            let mut registry = registry();
            let file = File::open(path)?;
            let meta = file.metadata()?;
            let key = (meta.dev(), meta.ino());
            registry.entry(key).or_default().leases += 1;
            Ok(FileLease {
                key,
                file: Some(file),
            })
        }

        /// Whether `path` still names the file we hold and that file holds at least
        /// `len` bytes. `Err` says why not.
        pub(crate) fn check(&self, path: &Path, len: u64) -> Result<(), String> {
            let now = std::fs::metadata(path).map_err(|e| e.to_string())?;
            if (now.dev(), now.ino()) != self.key {
                return Err("the path was replaced while it was being opened".into());
            }
            let ours = self.file().metadata().map_err(|e| e.to_string())?;
            if ours.len() < len {
                return Err(format!(
                    "the file holds {} bytes, fewer than the {len} of the snapshot",
                    ours.len()
                ));
            }
            Ok(())
        }

        pub(crate) fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            self.file().read_exact_at(buf, offset)
        }

        /// Whether the file header says WAL (read and write versions 2 at byte 18).
        pub(crate) fn is_wal_header(&self) -> bool {
            let mut versions = [0u8; 2];
            self.read_exact_at(&mut versions, 18).is_ok() && versions == [2, 2]
        }

        fn file(&self) -> &File {
            self.file.as_ref().expect("a live lease holds its file")
        }
    }

    impl Drop for FileLease {
        fn drop(&mut self) {
            let mut registry = registry();
            let Some(entry) = registry.get_mut(&self.key) else {
                return;
            };
            entry.parked.extend(self.file.take());
            entry.leases -= 1;
            if entry.leases == 0 {
                // Closes every parked descriptor: none of our connections is open.
                registry.remove(&self.key);
            }
        }
    }
}

#[cfg(not(unix))]
mod lease {
    //! Elsewhere, reading the file directly is not implemented: images use
    //! `sqlite_dbpage`.

    use std::io;
    use std::path::Path;

    pub(crate) struct FileLease;

    impl FileLease {
        pub(crate) fn acquire(path: &Path) -> io::Result<FileLease> {
            std::fs::metadata(path).map(|_| FileLease)
        }

        pub(crate) fn check(&self, _path: &Path, _len: u64) -> Result<(), String> {
            Err("direct file reads are implemented on unix only".into())
        }

        pub(crate) fn read_exact_at(&self, _buf: &mut [u8], _offset: u64) -> io::Result<()> {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "direct file reads are implemented on unix only",
            ))
        }

        pub(crate) fn is_wal_header(&self) -> bool {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immutable_uri_escapes_the_path() {
        assert_eq!(
            immutable_uri(Path::new("/a b/x?#%.db")).unwrap(),
            "file:/a%20b/x%3F%23%25.db?immutable=1"
        );
        assert_eq!(
            immutable_uri(Path::new("rel/x.db")).unwrap(),
            "file:rel/x.db?immutable=1"
        );
    }

    #[test]
    fn pending_byte_page_numbers() {
        assert_eq!(pending_byte_page(4096), 262_145);
        assert_eq!(pending_byte_page(65536), 16_385);
        assert_eq!(pending_byte_page(512), 2_097_153);
    }
}
