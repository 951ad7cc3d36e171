//! Backup manifests: one JSON file per backup, written last.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Envelope;
use crate::error::{Error, Result};
use crate::id::{BlobId, Id, BLOB_ID_LEN};

pub const MANIFEST_DIR: &str = "snapshots";

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
pub struct Manifest {
    pub version: u32,
    pub id: Id,
    pub engine: EngineName,
    pub source: String,
    pub kind: BackupKind,
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

impl Manifest {
    pub fn path(id: &Id) -> String {
        format!("{MANIFEST_DIR}/{}", id.to_hex())
    }

    pub fn encode(&self, env: &Envelope) -> Result<Vec<u8>> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Format(format!("manifest encoding failed: {e}")))?;
        Ok(crate::object::wrap(env.seal(json)))
    }

    /// Verifies the manifest's checksum, then decodes it.
    pub fn decode(env: &Envelope, bytes: Vec<u8>) -> Result<Manifest> {
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

/// A name stored as text in a manifest. A value this arca does not know
/// (written by a newer arca) is kept as it is: it shows in `list` and a
/// command that needs to understand it says so, instead of the manifest
/// failing to parse as if damaged.
macro_rules! stored_name {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
            /// Not known to this arca.
            Unknown(String),
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Unknown(s) => s,
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> $name {
                match s.as_str() {
                    $($text => $name::$variant,)+
                    _ => $name::Unknown(s),
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> $name {
                $name::from(s.to_string())
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().to_string()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

stored_name! {
    /// The engine that wrote a backup (`engine` in the manifest).
    EngineName {
        Sqlite = "sqlite",
        Postgres = "postgres",
        Mysql = "mysql",
    }
}

stored_name! {
    /// What a manifest records (`kind` in the manifest).
    BackupKind {
        /// A consistent image of the database's files.
        Physical = "physical",
        /// The rows and definitions of a server's databases, read at one
        /// consistent point.
        Logical = "logical",
        /// A named point in time in an engine's log, with no data of its own.
        Point = "point",
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
    fn unknown_engine_and_kind_names_survive_a_round_trip() {
        let e: EngineName = serde_json::from_str("\"oracle\"").unwrap();
        assert_eq!(e, EngineName::Unknown("oracle".into()));
        assert_eq!(serde_json::to_string(&e).unwrap(), "\"oracle\"");
        let k: BackupKind = serde_json::from_str("\"physical\"").unwrap();
        assert_eq!(k, BackupKind::Physical);
        assert_eq!(
            serde_json::to_string(&EngineName::Postgres).unwrap(),
            "\"postgres\""
        );
    }

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
