//! Storage: a thin wrapper over an OpenDAL operator.
//!
//! Nothing above this module knows which store it talks to: a local
//! directory ([`Location::Local`]) or an object store ([`Location::Remote`]:
//! S3 and S3-compatible stores, GCS, Azure Blob, WebHDFS, COS, OSS). Calls are
//! blocking for the caller; the I/O itself runs on a small tokio runtime the
//! backend owns, so worker threads can call it in parallel.
//!
//! Every file is written whole: on a local disk under [`TMP_DIR`] and renamed
//! into place; on an object store by one PUT, which is atomic (WebHDFS, which
//! has no atomic create, writes under [`TMP_DIR`] and renames, as a disk does).

mod classify;
mod location;
mod remote;
mod s3;
mod stores;

use std::sync::{Arc, Once};

use bytes::Bytes;
use opendal::blocking;
use opendal::layers::RetryLayer;
use opendal::options::ListOptions;
use opendal::{Buffer, ErrorKind, Operator};

pub use location::{Location, Remote, Scheme, StoreOptions};

use crate::error::{Error, Result};
use crate::id::Id;

/// One file in a listing: its path relative to the repository root, and size.
#[derive(Debug, Clone)]
pub struct ListEntry {
    pub path: String,
    pub size: u64,
}

#[derive(Clone)]
pub struct Backend {
    op: blocking::Operator,
    /// Object stores only.
    remote: Option<Arc<RemoteParts>>,
    location: Location,
    _rt: Arc<tokio::runtime::Runtime>,
}

struct RemoteParts {
    /// The same store with short retries, for the first request.
    quick: blocking::Operator,
    describe: remote::Describe,
    /// The store has no atomic create: write to TMP_DIR, then rename.
    rename_writes: bool,
}

/// Files written with rename-into-place on local disks land here first.
pub const TMP_DIR: &str = ".tmp";

/// Objects larger than this are uploaded in parts of [`MULTIPART_PART`] bytes,
/// [`MULTIPART_CONCURRENCY`] at a time.
const MULTIPART_ABOVE: usize = 16 << 20;
const MULTIPART_PART: usize = 8 << 20;
const MULTIPART_CONCURRENCY: usize = 4;

/// Fails if a range read of `len` bytes at `offset` of `path` got only `read`.
fn whole_range(path: &str, offset: u64, len: u64, read: usize) -> Result<()> {
    if read as u64 != len {
        return Err(Error::corrupt(format!(
            "{path} is shorter than the index says: read {read} of {len} bytes at offset {offset}"
        )));
    }
    Ok(())
}

impl Backend {
    /// Opens the store at `location`, creating a local root directory if `create`.
    /// Opening an object store sends no request.
    pub fn open(location: &Location, create: bool) -> Result<Backend> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("arca-io")
            .enable_all()
            .build()
            .map_err(|e| Error::io("tokio runtime", e))?;
        let (op, remote) = match location {
            Location::Local(path) => {
                if create {
                    std::fs::create_dir_all(path.join(TMP_DIR)).map_err(|e| Error::io(path, e))?;
                }
                let root = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
                let tmp = root.join(TMP_DIR);
                let mut builder = opendal::services::Fs::default().root(&root.to_string_lossy());
                // Whole-file writes go to a temp file and are renamed into place,
                // so a crash never leaves a half-written file under its final name.
                if tmp.is_dir() {
                    builder = builder.atomic_write_dir(&tmp.to_string_lossy());
                }
                let op = Operator::new(builder)
                    .map_err(|e| storage_err("open", &location.to_string(), "", e))?
                    // Few and short: a local error (a full disk, a
                    // permission) rarely goes away, and a write that fails
                    // should say so at once rather than after half a minute.
                    .layer(
                        RetryLayer::new()
                            .with_jitter()
                            .with_min_delay(std::time::Duration::from_millis(50))
                            .with_max_delay(std::time::Duration::from_millis(500))
                            .with_max_times(2),
                    );
                (op, None)
            }
            Location::Remote(r) => {
                install_http_transport();
                let store = remote::open(r)?;
                (store.main, Some((store.quick, store.describe, r.scheme)))
            }
        };
        let guard = rt.enter();
        let op = blocking::Operator::new(op)
            .map_err(|e| storage_err("start", "the storage runtime", "", e))?;
        let remote = match remote {
            None => None,
            Some((quick, describe, scheme)) => Some(Arc::new(RemoteParts {
                quick: blocking::Operator::new(quick)
                    .map_err(|e| storage_err("start", "the storage runtime", "", e))?,
                describe,
                rename_writes: scheme == Scheme::Webhdfs,
            })),
        };
        drop(guard);
        Ok(Backend {
            op,
            remote,
            location: location.clone(),
            _rt: Arc::new(rt),
        })
    }

    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    pub fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.op
            .read(path)
            .map(|b| b.to_vec())
            .map_err(|e| self.err("read", path, e))
    }

    /// Reads `len` bytes at `offset`; fails if the file is shorter.
    pub fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<bytes::Bytes> {
        let opts = opendal::options::ReadOptions {
            range: (offset..offset + len).into(),
            ..Default::default()
        };
        let buf = self
            .op
            .read_options(path, opts)
            .map_err(|e| self.err("read", path, e))?;
        whole_range(path, offset, len, buf.len())?;
        Ok(buf.to_bytes())
    }

    /// Like [`Backend::read_range`], into `buf` (emptied first), whose memory
    /// is reused: a restore reads a gigabyte a few MiB at a time, and a fresh
    /// buffer per read costs a page fault per 4 KiB of it.
    pub fn read_range_into(
        &self,
        path: &str,
        offset: u64,
        len: u64,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        buf.clear();
        buf.reserve(len as usize);
        let read = self
            .op
            .reader(path)
            .and_then(|r| r.read_into(buf, offset..offset + len))
            .map_err(|e| self.err("read", path, e))?;
        whole_range(path, offset, len, read)
    }

    /// Reads a small file with few retries; None if it does not exist. The
    /// first request of a command goes through here, so a wrong endpoint or
    /// bad credentials fail at once.
    pub fn probe_read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let op = self.remote.as_ref().map_or(&self.op, |r| &r.quick);
        match op.read(path) {
            Ok(b) => Ok(Some(b.to_vec())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err("read", path, e)),
        }
    }

    /// Deletes with few retries: for cleanup on the way out (a lock), where
    /// a store that is down should not hold the exit for the full retry
    /// budget; what is left behind is cleaned up later (stale locks).
    pub fn delete_quick(&self, path: &str) -> Result<()> {
        let op = self.remote.as_ref().map_or(&self.op, |r| &r.quick);
        op.delete(path).map_err(|e| self.err("delete", path, e))
    }

    /// True if the repository root holds nothing at all.
    pub fn is_empty(&self) -> Result<bool> {
        let opts = ListOptions {
            limit: Some(8),
            ..Default::default()
        };
        let lister = match self.op.lister_options("/", opts) {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(self.err("list", "", e)),
        };
        for entry in lister {
            let entry = entry.map_err(|e| self.err("list", "", e))?;
            if !matches!(entry.path(), "" | "/") {
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub fn write(&self, path: &str, data: impl Into<Buffer>) -> Result<()> {
        let data: Buffer = data.into();
        if self.remote.as_ref().is_some_and(|r| r.rename_writes) {
            let tmp = format!("{TMP_DIR}/{}", Id::random().to_hex());
            self.op
                .write(&tmp, data)
                .map_err(|e| self.err("write", &tmp, e))?;
            return self
                .op
                .rename(&tmp, path)
                .map_err(|e| self.err("rename", path, e));
        }
        if self.remote.is_some() && data.len() > MULTIPART_ABOVE {
            // Packs go up as a multipart upload with parts in flight at once:
            // one stream to an object store rarely fills the link.
            let opts = opendal::options::WriteOptions {
                chunk: Some(MULTIPART_PART),
                concurrent: MULTIPART_CONCURRENCY,
                ..Default::default()
            };
            return self
                .op
                .write_options(path, data, opts)
                .map(|_| ())
                .map_err(|e| self.err("write", path, e));
        }
        self.op
            .write(path, data)
            .map(|_| ())
            .map_err(|e| self.err("write", path, e))
    }

    /// Writes `data` to `path`, then gives its buffer back for reuse if
    /// the store kept no hold of it. Large buffers filled anew each time
    /// cost a page fault per 4 KiB, which on a VM is most of their cost.
    pub fn write_reclaim(&self, path: &str, data: Vec<u8>) -> Result<Option<Vec<u8>>> {
        let bytes = Bytes::from(data);
        self.write(path, bytes.clone())?;
        Ok(bytes.try_into_mut().ok().map(Vec::from))
    }

    pub fn delete(&self, path: &str) -> Result<()> {
        self.op
            .delete(path)
            .map_err(|e| self.err("delete", path, e))
    }

    pub fn exists(&self, path: &str) -> Result<bool> {
        self.op.exists(path).map_err(|e| self.err("stat", path, e))
    }

    /// Size of one file, or None if it does not exist.
    pub fn size(&self, path: &str) -> Result<Option<u64>> {
        match self.op.stat(path) {
            Ok(m) => Ok(Some(m.content_length())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err("stat", path, e)),
        }
    }

    /// All files under `dir` (recursively), with their sizes. A missing dir is empty.
    pub fn list(&self, dir: &str) -> Result<Vec<ListEntry>> {
        Ok(self
            .list_entries(dir, false)?
            .into_iter()
            .map(|(e, _)| e)
            .collect())
    }

    fn list_entries(
        &self,
        dir: &str,
        times: bool,
    ) -> Result<Vec<(ListEntry, Option<opendal::raw::Timestamp>)>> {
        let dir = format!("{}/", dir.trim_end_matches('/'));
        let opts = ListOptions {
            recursive: true,
            ..Default::default()
        };
        let entries = match self.op.list_options(&dir, opts) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.err("list", &dir, e)),
        };
        let mut out = Vec::new();
        for e in entries {
            let meta = e.metadata();
            if meta.is_dir() {
                continue;
            }
            let (mut size, mut modified) = (meta.content_length(), meta.last_modified());
            if size == 0 || (times && modified.is_none()) {
                // Some listings (local files) carry neither: ask the file.
                match self.op.stat(e.path()) {
                    Ok(m) => (size, modified) = (m.content_length(), m.last_modified()),
                    Err(err) if err.kind() == ErrorKind::NotFound => continue,
                    Err(err) => return Err(self.err("stat", e.path(), err)),
                }
            }
            out.push((
                ListEntry {
                    path: e.path().to_string(),
                    size,
                },
                modified,
            ));
        }
        Ok(out)
    }

    /// Like [`Backend::list`], with each file's modification time where the
    /// store gives one (in the listing, else from a stat).
    pub fn list_with_times(&self, dir: &str) -> Result<Vec<(ListEntry, Option<jiff::Timestamp>)>> {
        Ok(self
            .list_entries(dir, true)?
            .into_iter()
            .map(|(e, t)| (e, t.map(jiff::Timestamp::from)))
            .collect())
    }

    /// Local errors name the file in full and the system's reason;
    /// object-store errors become one line naming the bucket and endpoint,
    /// never a secret.
    fn err(&self, op: &'static str, path: &str, e: opendal::Error) -> Error {
        match (&self.remote, &self.location) {
            (Some(r), _) => r.describe.error(op, path, &e),
            (None, Location::Local(root)) => {
                storage_err(op, &root.join(path).to_string_lossy(), path, e)
            }
            (None, _) => storage_err(op, path, path, e),
        }
    }
}

/// Installs the HTTP client object stores use (reqwest with rustls and
/// ring), once per process. A connect timeout makes an endpoint that does not
/// answer fail like one that refuses.
fn install_http_transport() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another crypto provider is installed already: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        opendal::init_default_registry();
        match reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
        {
            Ok(client) => opendal::HttpTransporter::install_default(
                opendal_http_transport_reqwest::ReqwestTransport::new(client),
            ),
            Err(e) => {
                tracing::warn!("HTTP client with a connect timeout: {e}; using the default");
                opendal_http_transport_reqwest::install_default();
            }
        }
    });
}

const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn storage_err(op: &'static str, path: &str, key: &str, error: opendal::Error) -> Error {
    Error::Storage {
        path: path.to_string(),
        request: crate::error::Request::new(op, key),
        error: Box::new(error),
    }
}

/// The last path component of a repository path.
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A written buffer comes back, the same allocation, for the next write.
    #[test]
    fn a_written_buffer_comes_back_for_reuse() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Backend::open(&Location::Local(dir.path().to_path_buf()), true).unwrap();
        let data = vec![7u8; 1 << 20];
        let at = data.as_ptr();
        let back = backend.write_reclaim("packs/p", data).unwrap();
        let back = back.expect("the buffer is given back");
        assert_eq!(back.as_ptr(), at);
        assert_eq!(back, vec![7u8; 1 << 20]);
        assert_eq!(backend.read("packs/p").unwrap(), back);
    }

    /// A failed request names its operation and the repository path, not
    /// only in words: callers decide on them.
    #[test]
    fn a_failed_write_names_its_operation_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Backend::open(&Location::Local(dir.path().to_path_buf()), true).unwrap();
        // A directory where the file should go: no retry and no user can
        // write it.
        std::fs::create_dir_all(dir.path().join("locks/l")).unwrap();
        let request = |e: &Error| e.request().map(|r| (r.op, r.key.clone()));
        let e = backend.write("locks/l", vec![1u8]).unwrap_err();
        assert_eq!(request(&e), Some(("write", "locks/l".into())), "{e}");
        let e = backend.read("data/none").unwrap_err();
        assert_eq!(request(&e), Some(("read", "data/none".into())), "{e}");
        assert!(e.is_not_found());
        assert_eq!(request(&Error::NoBackups), None);
    }
}
