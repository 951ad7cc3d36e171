#![doc = include_str!("docs.md")]

mod backend;
mod config;
mod core;
pub mod replication;
mod restore;
pub mod wal;

pub use backend::{
    list_data_dir, BackupStart, BackupStop, DataEntry, DataFileReader, PgBackup, RestorePoint,
};
pub use config::{PgSource, EXPECTED};
pub use core::{sqlstate_kind, PgCause};
pub use restore::{
    prepare_target, set_owner_and_modes, write_recovery, RecoverySettings, RecoveryTarget,
};
pub use wal::{segment_records, Lsn, Segment, WalRecord};
