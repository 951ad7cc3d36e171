//! Restore-target preparation and checks of a restored database.
//!
//! A restore writes the image to a temporary file next to the target, then renames it
//! over the target. Before that, [`prepare_target`] makes sure nothing is overwritten
//! by accident and that no stale `-wal` / `-journal` left beside the target can be
//! replayed onto the restored file (SQLite would apply a hot journal or a valid WAL
//! to whatever database file has that name: silent corruption).

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use super::backend::SqliteInfo;
use super::core::{self, Purpose, ReadOnlyDb};
use crate::Error;

/// The files SQLite keeps beside a database, which belong to the file of that name.
const SIBLING_SUFFIXES: [&str; 3] = ["-wal", "-journal", "-shm"];

/// `path` with `suffix` appended to its file name (`app.db` -> `app.db-wal`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

fn exists(path: &Path) -> io::Result<bool> {
    // symlink_metadata: a dangling symlink is something that exists, too.
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Prepares `path` to receive a restored database.
///
/// Without `force`, refuses with [`Error::TargetExists`] if `path` or one of its
/// `-wal`, `-journal`, `-shm` siblings exists. With `force`, removes those siblings so
/// they cannot be replayed onto the restored file. Never deletes `path` itself: the
/// caller renames its finished temporary file over it, so a failed restore leaves the
/// old database in place. Fails with [`Error::TargetKind`] if `path` or a sibling is
/// anything but a regular file (a directory, a device, a FIFO, a symlink), and if the
/// parent directory does not exist.
///
/// Restoring over a database that an application has open is not supported: stop the
/// application first (its open connections would keep using the old file and could
/// write a new `-wal` for it).
pub fn prepare_target(path: &Path, force: bool) -> Result<(), Error> {
    let io_err = |p: &Path, e: io::Error| Error::Io(p.to_path_buf(), e);
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match std::fs::metadata(parent) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(io_err(
                parent,
                io::Error::new(
                    io::ErrorKind::NotADirectory,
                    "the restore target's parent is not a directory",
                ),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(io_err(
                parent,
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "the restore target's directory does not exist: create it first",
                ),
            ))
        }
        Err(e) => return Err(io_err(parent, e)),
    }
    let siblings = SIBLING_SUFFIXES.map(|suffix| sibling(path, suffix));
    // Only a regular file is ever replaced (or removed): not a device, a
    // FIFO, a directory, nor a symlink, whose link is not followed.
    for candidate in std::iter::once(path).chain(siblings.iter().map(PathBuf::as_path)) {
        match std::fs::symlink_metadata(candidate) {
            Ok(m) if !m.is_file() => {
                return Err(Error::TargetKind {
                    path: candidate.to_path_buf(),
                    found: crate::file_kind(m.file_type()),
                    wanted: "a regular file",
                    choose: "file",
                })
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(candidate, e)),
        }
    }
    if !force {
        for candidate in std::iter::once(path).chain(siblings.iter().map(PathBuf::as_path)) {
            if exists(candidate).map_err(|e| io_err(candidate, e))? {
                return Err(Error::TargetExists {
                    path: candidate.to_path_buf(),
                });
            }
        }
        return Ok(());
    }
    for stale in &siblings {
        match std::fs::remove_file(stale) {
            Ok(()) => tracing::info!(
                path = %stale.display(),
                "removed a stale SQLite file beside the restore target"
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(stale, e)),
        }
    }
    Ok(())
}

/// Opens a database read-only and reports its info, read inside one read transaction:
/// safe on a live source as well as on a restored file.
///
/// Errors read as for a source ([`Error::NotFound`], [`Error::NotSqlite`] for a
/// directory, a 0-byte or a non-SQLite file, [`Error::Busy`], [`Error::HotJournal`]),
/// so it doubles as the early check of a `--source`. A WAL-mode file with no `-wal`
/// beside it is read `immutable`, which leaves no `-wal`/`-shm` behind.
pub fn inspect(path: &Path) -> Result<SqliteInfo, Error> {
    ReadOnlyDb::open(path, Purpose::Source)?.info(path)
}

/// Runs `PRAGMA integrity_check` on a (restored) database: `Ok` only if SQLite answers
/// the single row `ok`.
///
/// Errors read as for a restored file: anything SQLite cannot read as a sound database
/// (a failed check, a 0-byte or a non-SQLite file) is [`Error::Damaged`] listing the
/// first problems, a missing file an [`Error::Io`]. Opens the file as [`inspect`] does.
pub fn integrity_check(path: &Path) -> Result<(), Error> {
    let db = ReadOnlyDb::open(path, Purpose::Restored)?;
    let problems = core::integrity_problems(&db.conn).map_err(|e| db.map_err(path, e))?;
    if problems.len() == 1 && problems[0] == "ok" {
        Ok(())
    } else {
        Err(Error::Damaged {
            path: path.to_path_buf(),
            reason: format!("integrity_check: {}", problems.join("; ")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siblings_append_to_the_file_name() {
        assert_eq!(
            sibling(Path::new("/a/b.db"), "-wal"),
            PathBuf::from("/a/b.db-wal")
        );
        assert_eq!(
            sibling(Path::new("b"), "-journal"),
            PathBuf::from("b-journal")
        );
    }
}
