//! Parsing of the `--source` value for SQLite.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::Error;

/// The scheme prefix of a SQLite source.
pub(crate) const SCHEME: &str = "sqlite://";

/// What a SQLite `--source` looks like, for messages.
pub const EXPECTED: &str = "sqlite://PATH or a path to a SQLite database file";

/// How long opening an image waits for another connection's lock by default.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// A SQLite database to back up, as given by `--source`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SqliteSource {
    /// Path of the database file, exactly as given (relative paths are relative to the
    /// working directory of the process).
    pub path: PathBuf,
}

impl SqliteSource {
    /// Parses a `--source` value.
    ///
    /// Accepted forms:
    /// - `sqlite://./x.db`, `sqlite://x.db`, `sqlite://dir/x.db`: relative path
    /// - `sqlite:///abs/x.db`: absolute path `/abs/x.db`
    /// - a bare path: `x.db`, `./x.db`, `/abs/x.db`
    ///
    /// The scheme is case-insensitive. The path is taken literally: no percent-decoding,
    /// no `?query`, no `~` expansion. Another scheme (`postgres://...`) or an empty path
    /// is an [`Error::InvalidSource`]. Whether the file exists is checked by
    /// [`SqliteSource::open_image`], not here.
    pub fn parse(s: &str) -> Result<SqliteSource, Error> {
        let invalid = |reason: &str| Error::InvalidSource {
            input: s.to_string(),
            reason: reason.to_string(),
            expected: EXPECTED,
        };
        let path = match strip_prefix_ignore_case(s, SCHEME) {
            Some(rest) => rest,
            None => {
                if let Some(scheme) = url_scheme(s) {
                    return Err(invalid(&format!(
                        "the {scheme}:// scheme is not a SQLite source"
                    )));
                }
                s
            }
        };
        if path.is_empty() {
            return Err(invalid("the path is empty"));
        }
        if path.contains('\0') {
            return Err(invalid("the path contains a NUL byte"));
        }
        Ok(SqliteSource {
            path: PathBuf::from(path),
        })
    }
}

impl FromStr for SqliteSource {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SqliteSource::parse(s)
    }
}

/// Formats as `sqlite://PATH`, which [`SqliteSource::parse`] reads back.
impl fmt::Display for SqliteSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}", self.path.display())
    }
}

/// Options for [`SqliteSource::open_image_with`]. `Default` is what
/// [`SqliteSource::open_image`] uses.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImageOptions {
    /// How long to wait for a lock held by another connection before failing with
    /// [`Error::Busy`].
    pub busy_timeout: Duration,
    /// Which way to read pages; [`ReadMethod::Auto`] picks the fastest consistent one.
    pub method: ReadMethod,
    /// `PRAGMA mmap_size` for the reading connection, which matters for the
    /// `sqlite_dbpage` path only. Default `0`: pages are read with `pread` through a
    /// 2 MiB page cache, so peak RSS stays a few MB whatever the database size. A large
    /// value (SQLite caps it at 2 GiB) reads ~1.6x faster on a WAL database whose WAL is
    /// small, but every page read stays mapped: peak RSS grows to the database size
    /// (file-backed and reclaimable, yet counted by RSS and by cgroup limits). See
    /// `docs.md` for the measurements.
    pub mmap_size: u64,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions {
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            method: ReadMethod::Auto,
            mmap_size: 0,
        }
    }
}

impl ImageOptions {
    /// Sets [`ImageOptions::busy_timeout`].
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Sets [`ImageOptions::method`].
    pub fn method(mut self, method: ReadMethod) -> Self {
        self.method = method;
        self
    }

    /// Sets [`ImageOptions::mmap_size`].
    pub fn mmap_size(mut self, bytes: u64) -> Self {
        self.mmap_size = bytes;
        self
    }
}

/// How an image reads its pages. See the module docs for why both are consistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadMethod {
    /// `File` in rollback-journal mode, `Dbpage` in WAL mode.
    Auto,
    /// Pages through the `sqlite_dbpage` virtual table: the pager serves the read
    /// snapshot, WAL-aware. Works in every journal mode.
    Dbpage,
    /// Large reads of the database file while the read transaction's SHARED lock keeps
    /// writers from committing. Only valid in rollback-journal mode; asking for it in
    /// WAL mode falls back to `Dbpage`.
    File,
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `Some("postgres")` for `postgres://...`: a URL scheme per RFC 3986 followed by `://`.
fn url_scheme(s: &str) -> Option<&str> {
    let (scheme, _) = s.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_round_trips() {
        for s in ["sqlite://./x.db", "sqlite:///abs/x.db", "sqlite://x.db"] {
            let src = SqliteSource::parse(s).unwrap();
            assert_eq!(src.to_string(), s);
            assert_eq!(SqliteSource::parse(&src.to_string()).unwrap(), src);
        }
    }

    #[test]
    fn scheme_detection() {
        assert_eq!(url_scheme("postgres://h/db"), Some("postgres"));
        assert_eq!(url_scheme("./a://b"), None);
        assert_eq!(url_scheme("x.db"), None);
    }
}
