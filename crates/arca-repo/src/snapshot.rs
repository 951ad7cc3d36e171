//! Snapshot manifests: one JSON file per backup, written last.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Envelope;
use crate::error::{Error, Result};
use crate::id::{BlobId, Id, BLOB_ID_LEN};

pub const SNAPSHOT_DIR: &str = "snapshots";

/// Block ids per list blob: a list blob of 16-byte ids is 64 KiB and covers
/// 16 MiB of a 4 KiB-page database. Unchanged stretches of a file keep their
/// list blobs, so an unchanged re-backup stores almost nothing.
pub const LIST_IDS: usize = 4096;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// The file's name inside the backup (the engine decides; for SQLite the
    /// database file's name).
    pub path: String,
    pub size: u64,
    pub block_size: u32,
    pub blocks: u64,
    /// List blobs, each holding up to [`LIST_IDS`] block ids in file order.
    pub lists: Vec<BlobId>,
    /// What the engine wants to remember about this file (page size, encoding…).
    #[serde(default)]
    pub meta: serde_json::Value,
}

impl FileEntry {
    /// The file's path under a restore's target: see [`checked_path`].
    pub fn checked_path(&self, snapshot: &Id) -> Result<PathBuf> {
        checked_path(snapshot, &self.path)
    }
}

/// A path from backup `snapshot`'s manifest as a relative path that stays
/// under whatever directory it is joined to.
///
/// A manifest is untrusted input (damaged or forged): an empty or absolute
/// path, `..`, `.`, an empty component or a NUL would let a restore write
/// outside its target, so such a path is [`Error::Corrupt`].
pub fn checked_path(snapshot: &Id, path: &str) -> Result<PathBuf> {
    let components = || path.split('/');
    let problem = if path.is_empty() {
        "it is empty"
    } else if path.starts_with('/') {
        "it is absolute"
    } else if path.contains('\0') {
        "it contains a NUL byte"
    } else if components().any(|c| c == "..") {
        "it contains `..`"
    } else if components().any(|c| c.is_empty() || c == ".") {
        "it has an empty or `.` component"
    } else {
        return Ok(PathBuf::from(path));
    };
    Err(Error::corrupt(format!(
        "backup {} names file {path:?}, which would be restored outside the restore target ({problem}): its manifest is damaged or forged; restore another backup",
        snapshot.short()
    )))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    pub id: Id,
    pub engine: String,
    pub source: String,
    /// What kind of copy: `physical` for a consistent image of the database files.
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub hostname: String,
    pub start_time: jiff::Timestamp,
    pub end_time: jiff::Timestamp,
    /// Bytes of the source.
    pub size: u64,
    /// Bytes this backup added to the repository (packs, index, this manifest).
    pub stored_bytes: u64,
    #[serde(default)]
    pub parent: Option<Id>,
    pub files: Vec<FileEntry>,
    /// What the engine records about the whole backup (PostgreSQL: LSNs,
    /// timeline, system identifier, directories).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub meta: serde_json::Value,
}

impl Snapshot {
    pub fn path(id: &Id) -> String {
        format!("{SNAPSHOT_DIR}/{}", id.to_hex())
    }

    pub fn encode(&self, env: &Envelope) -> Result<Vec<u8>> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Format(format!("snapshot encoding failed: {e}")))?;
        Ok(crate::object::wrap(env.seal(json)))
    }

    /// Verifies the manifest's checksum, then decodes it.
    pub fn decode(env: &Envelope, bytes: Vec<u8>) -> Result<Snapshot> {
        let checked = crate::object::unwrap(&bytes, crate::object::LEGACY_MANIFEST)?;
        let json = env.open(checked)?;
        serde_json::from_slice(&json).map_err(|e| Error::corrupt(format!("does not parse: {e}")))
    }

    pub fn duration_ms(&self) -> i64 {
        (self.end_time - self.start_time)
            .total(jiff::Unit::Millisecond)
            .map(|ms| ms as i64)
            .unwrap_or(0)
    }
}

/// Encodes block ids as a list blob: the ids back to back.
pub fn encode_list(ids: &[BlobId]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ids.len() * BLOB_ID_LEN);
    for id in ids {
        out.extend_from_slice(&id.0);
    }
    out
}

pub fn decode_list(bytes: &[u8]) -> Result<Vec<BlobId>> {
    if !bytes.len().is_multiple_of(BLOB_ID_LEN) {
        return Err(Error::corrupt("block list length is not a multiple of 16"));
    }
    Ok(bytes
        .chunks_exact(BLOB_ID_LEN)
        .map(BlobId::from_slice)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_the_target_are_refused() {
        let id = Id([7; 32]);
        for ok in [
            "app.db",
            "base/1/1259",
            "pg_wal/archive_status",
            ".hidden",
            "a..b",
        ] {
            assert_eq!(checked_path(&id, ok).unwrap(), PathBuf::from(ok));
        }
        for bad in [
            "",
            "/etc/passwd",
            "../escape",
            "a/../../b",
            "a/..",
            "./a",
            "a//b",
            "a/",
            "a\0b",
        ] {
            let e = checked_path(&id, bad).unwrap_err().to_string();
            assert!(
                e.contains(&format!("backup {} names file", id.short())),
                "{e}"
            );
        }
    }
}
