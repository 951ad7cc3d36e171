//! Arca's repository: where backups live.
//!
//! A repository holds content-addressed blobs (database blocks and block
//! lists) compressed in frames inside pack files, index files that say where
//! each blob is, and one snapshot manifest per backup. Writes go packs →
//! index → snapshot, and nothing is overwritten in place, so a crash leaves
//! at worst unreferenced files that `prune` removes. The format is written
//! down in `docs/design/repository.md`.
//!
//! ```no_run
//! use arca_repo::{Location, Repository, InitOptions};
//! let loc = Location::parse("/tmp/repo").unwrap();
//! let repo = Repository::init(&loc, &InitOptions::default()).unwrap();
//! for snap in repo.manifests().unwrap() {
//!     println!("{} {}", snap.id, snap.source);
//! }
//! ```

pub mod archiver;
pub mod backend;
pub mod cancel;
pub mod check;
pub mod config;
pub mod direct;
pub mod error;
pub mod frames;
pub mod id;
pub mod index;
pub mod lock;
pub mod logs;
pub mod manifest;
pub mod object;
pub mod pack;
pub mod prune;
pub mod repair;
pub mod repository;
pub mod restorer;
pub mod secret;

pub use archiver::{BackupSession, BlockSource, NewManifest};
pub use backend::{Location, Scheme, StoreOptions};
pub use cancel::{Cancel, Op};
pub use check::{check, CheckOptions, CheckReport};
pub use config::InitOptions;
pub use error::{Error, Result};
pub use id::{BlobId, Id};
pub use logs::{LogEntry, Pushed};
pub use manifest::{checked_path, BackupKind, EngineName, FileEntry, Manifest};
pub use prune::{prune, prune_with_progress, PruneReport};
pub use repository::Repository;
pub use restorer::{restore_file, restore_files, BlockReader, BlockStream};
pub use secret::Secret;

/// Progress of a long operation, in bytes. The CLI draws bars; libraries
/// only report.
pub trait Progress: Sync {
    fn set_total(&self, _bytes: u64) {}
    fn inc(&self, _bytes: u64) {}
}

/// Reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {}
