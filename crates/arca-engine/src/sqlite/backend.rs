//! The consistent image reader: one read transaction, pages `1..=page_count` in order.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use super::config::{ImageOptions, ReadMethod, SqliteSource};
use super::core::{self, FileLease};
use crate::Error;

/// What a SQLite database file says about itself, read inside the image's read
/// transaction (or from a restored file by [`super::inspect`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqliteInfo {
    /// Bytes per page (512..=65536).
    pub page_size: u32,
    /// Pages in the database at the image's point in time.
    pub page_count: u64,
    /// Text encoding: `UTF-8`, `UTF-16le` or `UTF-16be`.
    pub encoding: String,
    /// `PRAGMA user_version`.
    pub user_version: i64,
    /// `PRAGMA application_id`.
    pub application_id: i64,
    /// `wal` for a WAL database, otherwise the reading connection's rollback mode
    /// (`delete`: rollback modes are per connection, the file does not record them).
    pub journal_mode: String,
}

impl SqliteInfo {
    /// `page_size * page_count`: the image's length in bytes.
    pub fn len(&self) -> u64 {
        u64::from(self.page_size) * self.page_count
    }

    /// Whether the database has no pages (never true for an image).
    pub fn is_empty(&self) -> bool {
        self.page_count == 0
    }

    /// Whether the database is in WAL mode.
    pub fn is_wal(&self) -> bool {
        self.journal_mode.eq_ignore_ascii_case("wal")
    }
}

/// A consistent byte image of a live SQLite database: the database file as of the
/// moment [`SqliteSource::open_image`] returned.
///
/// [`Read`] yields exactly [`SqliteImage::len`] bytes (pages `1..=page_count` of the
/// snapshot, in order), then EOF. The read transaction that pins the snapshot stays
/// open until the image is dropped: in rollback-journal mode that keeps writers from
/// committing for that long (see [`SqliteImage::blocks_writers`]); in WAL mode writers
/// go on and only checkpoints stop short of the snapshot. Drop the image as soon as it
/// has been read.
///
/// Errors while reading come out of `read` as an [`io::Error`] wrapping the engine
/// [`Error`].
pub struct SqliteImage {
    // Field order is drop order and matters: `conn` holds the read transaction (and
    // SQLite's POSIX locks on the file); it must close before `lease` may close our
    // own descriptor of the same file, see `core::FileLease`.
    conn: Connection,
    lease: FileLease,
    method: ReadMethod,
    path: PathBuf,
    info: SqliteInfo,
    /// Next page number (1-based) to fetch.
    next_page: u64,
    /// One page fetched for a `read` call with a buffer smaller than a page.
    partial: Vec<u8>,
    partial_pos: usize,
    /// File change counter (header bytes 24..28) as streamed in page 1, File method.
    change_counter: Option<[u8; 4]>,
    finished: bool,
    started: Instant,
}

impl SqliteSource {
    /// Opens the source and pins a read snapshot: the image's point in time is now.
    ///
    /// Errors: [`Error::NotFound`], [`Error::NotSqlite`] (text file, directory, empty
    /// file), [`Error::Busy`] (a writer held its lock longer than the busy timeout),
    /// [`Error::HotJournal`], [`Error::Io`], [`Error::Sqlite`].
    pub fn open_image(&self) -> Result<SqliteImage, Error> {
        self.open_image_with(&ImageOptions::default())
    }

    /// [`SqliteSource::open_image`] with explicit options.
    pub fn open_image_with(&self, options: &ImageOptions) -> Result<SqliteImage, Error> {
        let path = self.path.as_path();
        core::check_source_file(path)?;
        // Before SQLite takes any lock on the file: see `FileLease`.
        let lease = FileLease::acquire(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound {
                path: path.to_path_buf(),
            },
            _ => Error::Io(path.to_path_buf(), e),
        })?;

        let map = |e| core::map_source_error(path, options.busy_timeout, e);
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(map)?;
        conn.busy_timeout(options.busy_timeout).map_err(map)?;
        // A small page cache: memory stays bounded whatever the database size. The
        // memory map is off by default (see `ImageOptions::mmap_size`).
        conn.execute_batch(&format!(
            "PRAGMA cache_size = -{}; PRAGMA mmap_size = {};",
            core::CACHE_KIB,
            options.mmap_size.min(i64::MAX as u64)
        ))
        .map_err(map)?;
        // Pin the snapshot: a deferred BEGIN takes no lock, the first read takes the
        // SHARED lock (rollback mode) or a WAL read mark (WAL mode) and keeps it until
        // the transaction ends, i.e. until this image is dropped.
        conn.execute_batch("BEGIN").map_err(map)?;
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(map)?;
        let info = core::read_info(&conn).map_err(map)?;
        if info.page_count == 0 {
            // A 0-byte file is caught above; this is a file SQLite sees as empty.
            return Err(Error::NotSqlite {
                path: path.to_path_buf(),
                reason: "an empty database with no pages".into(),
            });
        }

        let method = choose_method(path, options.method, &info, &lease);
        tracing::debug!(
            path = %path.display(),
            journal_mode = %info.journal_mode,
            page_size = info.page_size,
            page_count = info.page_count,
            ?method,
            "sqlite image opened"
        );
        Ok(SqliteImage {
            conn,
            lease,
            method,
            path: path.to_path_buf(),
            info,
            next_page: 1,
            partial: Vec::new(),
            partial_pos: 0,
            change_counter: None,
            finished: false,
            started: Instant::now(),
        })
    }
}

fn choose_method(
    path: &Path,
    wanted: ReadMethod,
    info: &SqliteInfo,
    lease: &FileLease,
) -> ReadMethod {
    if info.is_wal() || wanted == ReadMethod::Dbpage {
        // In WAL mode the newest committed version of a page may live in the -wal
        // file, and checkpoints write the database file while we read: only the
        // pager knows the snapshot.
        return ReadMethod::Dbpage;
    }
    // Rollback mode: our SHARED lock keeps every writer from committing, so the file
    // is the snapshot. Make sure our descriptor is the file SQLite locked and that it
    // is as long as the snapshot says.
    match lease.check(path, info.len()) {
        Ok(()) => ReadMethod::File,
        Err(why) => {
            tracing::debug!(path = %path.display(), %why, "reading through sqlite_dbpage");
            ReadMethod::Dbpage
        }
    }
}

impl SqliteImage {
    /// Bytes per page.
    pub fn page_size(&self) -> u32 {
        self.info.page_size
    }

    /// Pages in the image.
    pub fn page_count(&self) -> u64 {
        self.info.page_count
    }

    /// `page_size * page_count`: the number of bytes [`Read`] yields.
    pub fn len(&self) -> u64 {
        self.info.len()
    }

    /// Always false: an image has at least one page.
    pub fn is_empty(&self) -> bool {
        self.info.is_empty()
    }

    /// `PRAGMA quick_check` of the image's point in time (the same read
    /// transaction): the problems found, none when the database is sound.
    /// Reads every page once more.
    pub fn quick_check(&self) -> Result<Vec<String>, Error> {
        let problems: Vec<String> = (|| {
            let mut stmt = self.conn.prepare("PRAGMA quick_check(20)")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
        })()
        .map_err(|e| core::map_source_error(&self.path, Duration::ZERO, e))?;
        Ok(if problems == ["ok"] {
            Vec::new()
        } else {
            problems
        })
    }

    /// What the database says about itself at the image's point in time.
    pub fn info(&self) -> &SqliteInfo {
        &self.info
    }

    /// How this image reads pages: [`ReadMethod::File`] or [`ReadMethod::Dbpage`].
    pub fn method(&self) -> ReadMethod {
        self.method
    }

    /// Whether writers of the source are blocked until this image is dropped (true in
    /// rollback-journal mode: they cannot commit while our read transaction holds its
    /// SHARED lock; false in WAL mode).
    pub fn blocks_writers(&self) -> bool {
        !self.info.is_wal()
    }

    /// Bytes handed out by [`Read`] so far.
    pub fn position(&self) -> u64 {
        let fetched = (self.next_page - 1) * u64::from(self.info.page_size);
        fetched - (self.partial.len() - self.partial_pos) as u64
    }

    /// Fetches `count` pages starting at `first` into `out` (exactly `count` pages long).
    fn fetch(&mut self, first: u64, count: u64, out: &mut [u8]) -> Result<(), Error> {
        let page_size = self.info.page_size as usize;
        debug_assert_eq!(out.len() as u64, count * page_size as u64);
        match self.method {
            ReadMethod::File => {
                let offset = (first - 1) * page_size as u64;
                self.lease
                    .read_exact_at(out, offset)
                    .map_err(|e| match e.kind() {
                        io::ErrorKind::UnexpectedEof => Error::Io(
                            self.path.clone(),
                            io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "the file became shorter than the snapshot while our read \
                                 transaction held its SHARED lock: is another process \
                                 writing it without SQLite's locks (e.g. on a network \
                                 file system)?",
                            ),
                        ),
                        _ => Error::Io(self.path.clone(), e),
                    })?;
                // SQLite never uses the page holding the lock bytes; the file may hold
                // anything there. Serve zeros, as sqlite_dbpage does.
                let pending = core::pending_byte_page(self.info.page_size);
                if (first..first + count).contains(&pending) {
                    let at = ((pending - first) as usize) * page_size;
                    out[at..at + page_size].fill(0);
                }
                if first == 1 {
                    self.change_counter = Some(out[24..28].try_into().expect("4 bytes"));
                }
            }
            ReadMethod::Dbpage | ReadMethod::Auto => {
                let mut stmt = self
                    .conn
                    .prepare_cached("SELECT data FROM sqlite_dbpage WHERE pgno = ?1")
                    .map_err(|e| Error::Sqlite(self.path.clone(), e))?;
                for (i, page) in out.chunks_exact_mut(page_size).enumerate() {
                    let pgno = first + i as u64;
                    let copied = stmt
                        .query_row([pgno as i64], |row| {
                            let data = row.get_ref(0)?.as_blob()?;
                            if data.len() == page.len() {
                                page.copy_from_slice(data);
                                Ok(true)
                            } else {
                                Ok(false)
                            }
                        })
                        .map_err(|e| Error::Sqlite(self.path.clone(), e))?;
                    if !copied {
                        return Err(Error::Io(
                            self.path.clone(),
                            io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!("sqlite_dbpage returned page {pgno} with a wrong size"),
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// At EOF: in File mode, prove the file did not change while we read it.
    fn finish(&mut self) -> Result<(), Error> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        if let (ReadMethod::File, Some(streamed)) = (self.method, self.change_counter) {
            let mut now = [0u8; 4];
            self.lease
                .read_exact_at(&mut now, 24)
                .map_err(|e| Error::Io(self.path.clone(), e))?;
            if now != streamed {
                return Err(Error::Io(
                    self.path.clone(),
                    io::Error::other(
                        "a transaction was committed while our read transaction held its \
                         SHARED lock, so the image is not consistent: is another process \
                         writing without SQLite's locks (e.g. on a network file system)?",
                    ),
                ));
            }
        }
        let secs = self.started.elapsed().as_secs_f64();
        tracing::debug!(
            path = %self.path.display(),
            bytes = self.len(),
            secs,
            mb_per_s = self.len() as f64 / secs.max(1e-9) / 1e6,
            "sqlite image read"
        );
        Ok(())
    }

    fn read_inner(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.partial_pos < self.partial.len() {
            let n = out.len().min(self.partial.len() - self.partial_pos);
            out[..n].copy_from_slice(&self.partial[self.partial_pos..self.partial_pos + n]);
            self.partial_pos += n;
            return Ok(n);
        }
        let remaining = self.info.page_count + 1 - self.next_page;
        if remaining == 0 {
            self.finish()?;
            return Ok(0);
        }
        let page_size = self.info.page_size as usize;
        let first = self.next_page;
        let whole = (out.len() / page_size) as u64;
        if whole > 0 {
            // Whole pages straight into the caller's buffer.
            let count = whole.min(remaining);
            let len = count as usize * page_size;
            self.fetch(first, count, &mut out[..len])?;
            self.next_page += count;
            return Ok(len);
        }
        // The caller's buffer is smaller than a page.
        let mut page = std::mem::take(&mut self.partial);
        page.resize(page_size, 0);
        let fetched = self.fetch(first, 1, &mut page);
        self.partial = page;
        self.partial_pos = self.partial.len();
        fetched?;
        self.next_page += 1;
        self.partial_pos = 0;
        let n = out.len();
        out.copy_from_slice(&self.partial[..n]);
        self.partial_pos = n;
        Ok(n)
    }
}

impl Read for SqliteImage {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.read_inner(out).map_err(|e| {
            // Keep the kind of I/O errors visible; the engine error rides inside.
            let kind = match &e {
                Error::Io(_, io) => io.kind(),
                _ => io::ErrorKind::Other,
            };
            io::Error::new(kind, e)
        })
    }
}

impl std::fmt::Debug for SqliteImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteImage")
            .field("path", &self.path)
            .field("info", &self.info)
            .field("method", &self.method)
            .field("position", &self.position())
            .finish_non_exhaustive()
    }
}
