//! Snapshot manifests: one JSON file per backup, written last.

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
        let json = env.open(checked.sealed)?;
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
