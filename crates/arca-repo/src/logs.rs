//! Log archives: a database's log (PostgreSQL WAL segments, later binlogs)
//! stored as one object per segment under `logs/<stream>/<name>`.
//!
//! Segments are written once and fetched by name during recovery, so they do
//! not go through packs and the index: an archive push is one write, and a
//! fetch is one read, however large the repository grows. Each object is the
//! segment's keyed hash and its zstd frame, sealed like every other object;
//! a fetch verifies the hash, so recovery never replays a damaged segment.

use crate::error::{Error, Result};
use crate::id::BLOB_ID_LEN;
use crate::repository::Repository;

pub const LOGS_DIR: &str = "logs";
const MAGIC: &[u8; 8] = b"ARCALOG1";
/// Larger than any segment PostgreSQL writes (1 GiB at most).
const MAX_SEGMENT: u64 = 1 << 30;

/// What a push found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// The segment was written.
    Stored { bytes: u64 },
    /// The same segment was archived before (a retried push): nothing written.
    AlreadyStored,
    /// A stored copy that was a prefix of this one (a truncated push) was
    /// replaced by it.
    Replaced { bytes: u64, old_len: u64 },
}

/// One archived segment.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub name: String,
    pub stored_bytes: u64,
    pub modified: Option<jiff::Timestamp>,
}

impl Repository {
    fn log_path(stream: &str, name: &str) -> String {
        format!("{LOGS_DIR}/{stream}/{name}")
    }

    /// Archives one segment. A segment already stored with the same content is
    /// not written again. One stored with different content is replaced if it
    /// is a strict prefix of the new content (a truncated copy, which only
    /// the whole segment can make usable); otherwise it is an error (two
    /// clusters pushing into one stream), unless `replace` is set, as it is
    /// for a partial segment that grows.
    pub fn put_log(&self, stream: &str, name: &str, data: &[u8], replace: bool) -> Result<Pushed> {
        let path = Self::log_path(stream, name);
        let id = self.hasher.blob_id(data);
        let mut replaced = None;
        if !replace {
            if let Some(old) = self.backend.probe_read(&path)? {
                let old_id = log_id(&path, &self.env.open(&old)?)?;
                if old_id == id.0 {
                    return Ok(Pushed::AlreadyStored);
                }
                let mut stored = Vec::new();
                self.decode_log(&path, &old, &mut stored)?;
                if stored.len() >= data.len() || !data.starts_with(&stored) {
                    return Err(Error::Format(format!(
                        "{path} is archived already with different content: is a second cluster archiving into the same repository? Give each cluster its own repository"
                    )));
                }
                replaced = Some(stored.len() as u64);
            }
        }
        let level = self.config.compression.level;
        let compressed = zstd::bulk::compress(data, level)
            .map_err(|e| Error::Format(format!("compressing {path}: {e}")))?;
        let mut obj = Vec::with_capacity(MAGIC.len() + BLOB_ID_LEN + compressed.len());
        obj.extend_from_slice(MAGIC);
        obj.extend_from_slice(&id.0);
        obj.extend_from_slice(&compressed);
        let sealed = self.env.seal(obj);
        let bytes = sealed.len() as u64;
        self.backend.write(&path, sealed)?;
        Ok(match replaced {
            Some(old_len) => Pushed::Replaced { bytes, old_len },
            None => Pushed::Stored { bytes },
        })
    }

    /// Fetches and verifies one segment; `None` if it is not archived.
    pub fn get_log(&self, stream: &str, name: &str) -> Result<Option<Vec<u8>>> {
        let mut data = Vec::new();
        Ok(self.get_log_into(stream, name, &mut data)?.then_some(data))
    }

    /// Like [`Repository::get_log`], into `data` (false if not archived).
    /// A caller fetching many segments passes one buffer for all: a fresh
    /// 16 MiB per segment costs thousands of page faults.
    pub fn get_log_into(&self, stream: &str, name: &str, data: &mut Vec<u8>) -> Result<bool> {
        let path = Self::log_path(stream, name);
        let Some(sealed) = self.backend.probe_read(&path)? else {
            return Ok(false);
        };
        self.decode_log(&path, &sealed, data)?;
        Ok(true)
    }

    /// Opens a stored segment object read from `path` into `data`, verifying
    /// its hash.
    fn decode_log(&self, path: &str, sealed: &[u8], data: &mut Vec<u8>) -> Result<()> {
        let obj = self.env.open(sealed)?;
        let id = log_id(path, &obj)?;
        let body = &obj[MAGIC.len() + BLOB_ID_LEN..];
        let undecodable =
            |e: &dyn std::fmt::Display| Error::corrupt(format!("{path} does not decompress: {e}"));
        data.clear();
        match zstd::zstd_safe::get_frame_content_size(body) {
            // The size is in the frame header: decompress in one go.
            Ok(Some(n)) if n <= MAX_SEGMENT => {
                data.reserve(n as usize);
                zstd::bulk::Decompressor::new()
                    .and_then(|mut d| d.decompress_to_buffer(body, data))
                    .map_err(|e| undecodable(&e))?;
            }
            _ => {
                let mut reader =
                    zstd::stream::read::Decoder::new(body).map_err(|e| undecodable(&e))?;
                std::io::copy(&mut reader, data).map_err(|e| undecodable(&e))?;
            }
        }
        if self.hasher.blob_id(data).0 != id {
            return Err(Error::corrupt(format!("{path} fails its hash")));
        }
        Ok(())
    }

    /// Removes one archived segment (a partial one its full segment replaced).
    pub fn delete_log(&self, stream: &str, name: &str) -> Result<()> {
        self.backend.delete(&Self::log_path(stream, name))
    }

    /// The segments of one stream, sorted by name (without times: one listing).
    pub fn list_logs(&self, stream: &str) -> Result<Vec<LogEntry>> {
        let dir = format!("{LOGS_DIR}/{stream}");
        let entries = self.backend.list(&dir)?.into_iter().map(|e| (e, None));
        Ok(log_entries(entries))
    }

    /// Like [`Repository::list_logs`], with each segment's archive time
    /// (a stat per segment where the listing does not carry it).
    pub fn list_logs_with_times(&self, stream: &str) -> Result<Vec<LogEntry>> {
        let dir = format!("{LOGS_DIR}/{stream}");
        Ok(log_entries(self.backend.list_with_times(&dir)?))
    }

    /// The streams that hold segments (for PostgreSQL, one per cluster).
    pub fn log_streams(&self) -> Result<Vec<String>> {
        let mut streams: Vec<String> = self
            .backend
            .list(LOGS_DIR)?
            .into_iter()
            .filter_map(|e| {
                let rest = e.path.strip_prefix(LOGS_DIR)?.trim_start_matches('/');
                let (stream, _) = rest.rsplit_once('/')?;
                Some(stream.to_string())
            })
            .collect();
        streams.sort();
        streams.dedup();
        Ok(streams)
    }
}

fn log_entries(
    entries: impl IntoIterator<Item = (crate::backend::ListEntry, Option<jiff::Timestamp>)>,
) -> Vec<LogEntry> {
    let mut out: Vec<LogEntry> = entries
        .into_iter()
        .map(|(e, modified)| LogEntry {
            name: crate::backend::file_name(&e.path).to_string(),
            stored_bytes: e.size,
            modified,
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The segment's id from an opened log object.
fn log_id(path: &str, obj: &[u8]) -> Result<[u8; BLOB_ID_LEN]> {
    if obj.len() < MAGIC.len() + BLOB_ID_LEN || &obj[..MAGIC.len()] != MAGIC {
        return Err(Error::corrupt(format!("{path} is not an archived segment")));
    }
    let mut id = [0u8; BLOB_ID_LEN];
    id.copy_from_slice(&obj[MAGIC.len()..MAGIC.len() + BLOB_ID_LEN]);
    Ok(id)
}

#[cfg(test)]
mod tests {
    use crate::{InitOptions, Location, Repository};

    #[test]
    fn push_fetch_and_retried_push() {
        let dir = tempfile::tempdir().unwrap();
        let loc = Location::parse(dir.path().join("r").to_str().unwrap()).unwrap();
        let repo = Repository::init(&loc, &InitOptions::default()).unwrap();
        let seg: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        let first = repo.put_log("pg/1", "000000010000000000000001", &seg, false);
        assert!(matches!(first, Ok(super::Pushed::Stored { bytes }) if bytes < 1 << 19));
        let again = repo.put_log("pg/1", "000000010000000000000001", &seg, false);
        assert_eq!(again.unwrap(), super::Pushed::AlreadyStored);
        let mut other = seg.clone();
        other[7] ^= 1;
        let err = repo
            .put_log("pg/1", "000000010000000000000001", &other, false)
            .unwrap_err();
        assert!(err.to_string().contains("different content"), "{err}");
        // A prefix of what is stored is no reason to replace it.
        let err = repo
            .put_log("pg/1", "000000010000000000000001", &seg[..1000], false)
            .unwrap_err();
        assert!(err.to_string().contains("different content"), "{err}");
        assert_eq!(
            repo.get_log("pg/1", "000000010000000000000001")
                .unwrap()
                .unwrap(),
            seg
        );
        assert!(repo
            .get_log("pg/1", "000000010000000000000002")
            .unwrap()
            .is_none());
        let names: Vec<String> = repo
            .list_logs("pg/1")
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["000000010000000000000001"]);
        assert_eq!(repo.log_streams().unwrap(), ["pg/1"]);
    }

    #[test]
    fn a_truncated_segment_is_replaced_by_the_whole_one() {
        let dir = tempfile::tempdir().unwrap();
        let loc = Location::parse(dir.path().join("r").to_str().unwrap()).unwrap();
        let repo = Repository::init(&loc, &InitOptions::default()).unwrap();
        let seg: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        let name = "000000010000000000000001";
        repo.put_log("pg/1", name, &seg[..4096], false).unwrap();
        let r = repo.put_log("pg/1", name, &seg, false).unwrap();
        assert!(
            matches!(r, super::Pushed::Replaced { old_len: 4096, .. }),
            "{r:?}"
        );
        assert_eq!(repo.get_log("pg/1", name).unwrap().unwrap(), seg);
    }

    #[test]
    fn a_damaged_segment_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("r");
        let loc = Location::parse(root.to_str().unwrap()).unwrap();
        let repo = Repository::init(&loc, &InitOptions::default()).unwrap();
        let seg = vec![7u8; 100_000];
        repo.put_log("pg/1", "x", &seg, false).unwrap();
        let path = root.join("logs/pg/1/x");
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 5] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        assert!(repo.get_log("pg/1", "x").is_err());
    }
}
