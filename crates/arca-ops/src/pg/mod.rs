//! PostgreSQL: physical backups, the WAL archive, restore to a point in time,
//! and named restore points.
//!
//! WAL goes into the repository's log archive under the stream
//! `postgres/<system identifier>`, one object per segment (or history file),
//! so one repository can hold several clusters and `wal-push` is one write.

mod backup;
mod points;
mod restore;
mod streaming;
mod wal;

pub use backup::backup_postgres;
pub use points::{
    create_point, drop_point, points, points_in, points_only_based_on, reaches, unrestorable, Point,
};
pub use restore::{choose_backup, restore_postgres, PgRestoreOptions, PgTarget};
pub use streaming::{wal_stream, StreamEvent, StreamOptions, StreamReport};
pub use wal::{
    branches, clear_spool, cluster_windows, expire_wal, take_spooled, wal_fetch, wal_push, Branch,
    ClusterWindow, Fetched, WalExpired, WalGap, SPOOL_DIR,
};

use arca_repo::Manifest;
use serde::{Deserialize, Serialize};

use arca_engine::postgres::Lsn;

/// The log stream of one cluster.
pub fn stream(system_identifier: &str) -> String {
    format!("postgres/{system_identifier}")
}

/// What a PostgreSQL backup's manifest records beside its files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PgBackupMeta {
    pub system_identifier: String,
    pub timeline: u32,
    pub start_lsn: Lsn,
    pub stop_lsn: Lsn,
    /// When `pg_backup_stop` returned: the earliest time a restore can reach.
    pub stop_time: jiff::Timestamp,
    pub wal_segment_size: u64,
    pub server_version_num: u32,
    /// Every directory of the data directory, relative to it.
    pub dirs: Vec<String>,
    pub uid: u32,
    pub gid: u32,
}

impl PgBackupMeta {
    pub fn of(snap: &Manifest) -> Option<PgBackupMeta> {
        if snap.engine != arca_repo::EngineName::Postgres
            || snap.kind != arca_repo::BackupKind::Physical
        {
            return None;
        }
        serde_json::from_value(snap.meta.clone()).ok()
    }
}
