//! Storage: a thin wrapper over an OpenDAL operator.
//!
//! Nothing above this module knows which store it talks to. Calls are
//! blocking for the caller; the I/O itself runs on a small tokio runtime the
//! backend owns, so worker threads can call it in parallel.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use opendal::blocking;
use opendal::layers::RetryLayer;
use opendal::options::ListOptions;
use opendal::{ErrorKind, Operator};

use crate::error::{Error, Result};

/// Where a repository lives, as the user gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
}

impl Location {
    /// Parses `--repo`: a local path or a `file://` URL.
    pub fn parse(s: &str) -> Result<Location> {
        if s.is_empty() {
            return Err(Error::Format(
                "the repository location is empty: pass --repo PATH or set ARCA_REPO".into(),
            ));
        }
        if let Some(rest) = s.strip_prefix("file://") {
            return Ok(Location::Local(PathBuf::from(rest)));
        }
        if let Some((scheme, _)) = s.split_once("://") {
            return Err(Error::Format(format!(
                "repository URL scheme {scheme}:// is not supported by this build: use a local path or file:///PATH"
            )));
        }
        Ok(Location::Local(PathBuf::from(s)))
    }

    pub fn local_path(&self) -> Option<&Path> {
        match self {
            Location::Local(p) => Some(p),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
        }
    }
}

/// One file in a listing: its path relative to the repository root, and size.
#[derive(Debug, Clone)]
pub struct ListEntry {
    pub path: String,
    pub size: u64,
}

#[derive(Clone)]
pub struct Backend {
    op: blocking::Operator,
    location: Location,
    _rt: Arc<tokio::runtime::Runtime>,
}

/// Files written with rename-into-place on local disks land here first.
pub const TMP_DIR: &str = ".tmp";

impl Backend {
    /// Opens the store at `location`, creating a local root directory if `create`.
    pub fn open(location: &Location, create: bool) -> Result<Backend> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("arca-io")
            .enable_all()
            .build()
            .map_err(|e| Error::io("tokio runtime", e))?;
        let op = match location {
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
                Operator::new(builder)
                    .map_err(|e| storage_err(&location.to_string(), e))?
                    .layer(RetryLayer::new().with_jitter().with_max_times(5))
            }
        };
        let op = {
            let _guard = rt.enter();
            blocking::Operator::new(op).map_err(|e| storage_err("runtime", e))?
        };
        Ok(Backend {
            op,
            location: location.clone(),
            _rt: Arc::new(rt),
        })
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    pub fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.op
            .read(path)
            .map(|b| b.to_vec())
            .map_err(|e| storage_err(path, e))
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
            .map_err(|e| storage_err(path, e))?;
        if buf.len() as u64 != len {
            return Err(Error::corrupt(format!(
                "{path} is shorter than the index says: read {} of {len} bytes at offset {offset}",
                buf.len()
            )));
        }
        Ok(buf.to_bytes())
    }

    pub fn write(&self, path: &str, data: Vec<u8>) -> Result<()> {
        self.op
            .write(path, data)
            .map(|_| ())
            .map_err(|e| storage_err(path, e))
    }

    pub fn delete(&self, path: &str) -> Result<()> {
        self.op.delete(path).map_err(|e| storage_err(path, e))
    }

    pub fn exists(&self, path: &str) -> Result<bool> {
        self.op.exists(path).map_err(|e| storage_err(path, e))
    }

    /// Size of one file, or None if it does not exist.
    pub fn size(&self, path: &str) -> Result<Option<u64>> {
        match self.op.stat(path) {
            Ok(m) => Ok(Some(m.content_length())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(storage_err(path, e)),
        }
    }

    /// All files under `dir` (recursively), with their sizes. A missing dir is empty.
    pub fn list(&self, dir: &str) -> Result<Vec<ListEntry>> {
        let dir = format!("{}/", dir.trim_end_matches('/'));
        let opts = ListOptions {
            recursive: true,
            ..Default::default()
        };
        let entries = match self.op.list_options(&dir, opts) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(storage_err(&dir, e)),
        };
        let mut out = Vec::new();
        for e in entries {
            if e.metadata().is_dir() {
                continue;
            }
            let size = match e.metadata().content_length() {
                0 => self.size(e.path())?.unwrap_or(0),
                n => n,
            };
            out.push(ListEntry {
                path: e.path().to_string(),
                size,
            });
        }
        Ok(out)
    }
}

fn storage_err(path: &str, source: opendal::Error) -> Error {
    Error::Storage {
        path: path.to_string(),
        source,
    }
}

/// The last path component of a repository path.
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
