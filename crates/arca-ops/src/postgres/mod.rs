//! PostgreSQL: physical backups, the WAL archive, restore to a point in time,
//! and named restore points.
//!
//! WAL goes into the repository's log archive under the stream
//! `postgres/<system identifier>`, one object per segment (or history file),
//! so one repository can hold several clusters and `wal-push` is one write.

mod backup;
mod commands;
mod drill;
mod points;
mod restore;
mod start;
mod streaming;
mod wal;

/// Whether a file name is a WAL segment (not a history or backup file).
pub use arca_engine::postgres::wal::is_segment_name;
pub use arca_engine::postgres::PgSource;
pub use commands::archive_command;
pub use points::{
    create_point, drop_point, points, points_in, points_only_based_on, reaches, unrestorable, Point,
};
pub use restore::{choose_backup, restore_postgres, PgRestoreOptions, PgTarget};
pub use start::{start, Started};
pub use streaming::{wal_stream, StreamEvent, StreamOptions, StreamReport};
pub use wal::{
    branches, clear_spool, cluster_windows, expire_wal, take_spooled, wal_fetch, wal_push, Branch,
    ClusterWindow, Fetched, WalExpired, WalGap, SPOOL_DIR,
};

use arca_engine::postgres::Lsn;
use arca_repo::{BackupKind, EngineName, Manifest, Progress, Repository};
use serde::{Deserialize, Serialize};

use crate::drill::{DrillOptions, Drilled, Scratch};
use crate::engine::{BackupOptions, Engine, Expired, RestoreRequest, Restored, Window};
use crate::{Error, Result};

pub struct Postgres;

impl Engine for Postgres {
    fn name(&self) -> EngineName {
        EngineName::Postgres
    }

    fn title(&self) -> &'static str {
        "PostgreSQL"
    }

    fn source_forms(&self) -> &'static str {
        "postgres://USER[:PASSWORD]@HOST[:PORT]/DB"
    }

    fn recognises(&self, source: &str) -> bool {
        matches!(
            source.split_once("://"),
            Some(("postgres" | "postgresql", _))
        )
    }

    fn backup(
        &self,
        repo: &Repository,
        opts: &BackupOptions,
        progress: &dyn Progress,
    ) -> Result<Manifest> {
        opts.refuse_objects(self.title())?;
        backup::backup_postgres(repo, opts, progress)
    }

    fn restore(
        &self,
        repo: &Repository,
        manifests: &[Manifest],
        chosen: Option<Manifest>,
        req: &RestoreRequest,
        progress: &dyn Progress,
    ) -> Result<Restored> {
        req.refuse_objects(self.title())?;
        restore::restore(repo, manifests, chosen, req, progress)
    }

    fn drill(
        &self,
        repo: &Repository,
        m: &Manifest,
        opts: &DrillOptions,
        scratch: &Scratch,
        progress: &dyn Progress,
    ) -> Result<Drilled> {
        drill::drill(repo, m, opts, scratch, progress)
    }

    fn expire_logs(&self, repo: &Repository, manifests: &[Manifest]) -> Result<Expired> {
        let w = expire_wal(repo, manifests)?;
        Ok(Expired {
            files: w.files,
            bytes: w.bytes,
            what: "WAL files",
        })
    }

    fn windows(&self, repo: &Repository, manifests: &[Manifest]) -> Result<Vec<Window>> {
        let mut out = Vec::new();
        for w in cluster_windows(repo, manifests)? {
            let json = serde_json::to_value(&w).expect("a window encodes");
            let mut window = Window::new(
                EngineName::Postgres,
                w.system_identifier.clone(),
                |m, key| PgBackupMeta::of(m).is_some_and(|p| p.system_identifier == key),
                json,
            );
            window.from = w.from;
            window.to = w.to;
            window.lag_seconds = w.lag_seconds;
            window.lines.push(window_line(&w));
            window.lines.extend(w.timelines.iter().map(|b| {
                format!(
                    "  timeline {} branched from timeline {} at {}",
                    b.timeline, b.parent, b.switch_lsn
                )
            }));
            out.push(window);
        }
        Ok(out)
    }

    fn stream_log(
        &self,
        repo: &Repository,
        source: &crate::engine::LogSource,
        stop: &std::sync::atomic::AtomicBool,
        on_event: &mut dyn FnMut(crate::engine::LogEvent),
    ) -> Result<()> {
        use crate::engine::LogEvent;
        let src = PgSource::parse(&source.url, None)?;
        let opts = StreamOptions {
            slot: "arca".into(),
            status_interval: std::time::Duration::from_secs(5),
        };
        let mut events = |ev: StreamEvent<'_>| {
            match ev {
            StreamEvent::Started {
                system_identifier,
                timeline,
                start,
                slot_created,
            } => on_event(LogEvent::Started(format!(
                "streaming WAL of cluster {system_identifier} from {start} on timeline {timeline} (slot arca{})",
                if slot_created { ", created" } else { "" }
            ))),
            StreamEvent::SegmentStored { name } => {
                on_event(LogEvent::Stored(format!("WAL segment {name} stored")))
            }
            StreamEvent::TimelineSwitch { from, to, at } => on_event(LogEvent::Started(format!(
                "timeline {from} ended at {at}: following timeline {to}"
            ))),
            StreamEvent::Reconnecting { error, wait } => on_event(LogEvent::Reconnecting(format!(
                "{error}; connecting again in {} s",
                wait.as_secs()
            ))),
        }
        };
        wal_stream(repo, &src, &opts, stop, &mut events)?;
        Ok(())
    }

    fn create_point(
        &self,
        repo: &Repository,
        source: &str,
        name: &str,
    ) -> Result<crate::engine::NamedPoint> {
        let p = create_point(repo, source, name)?;
        Ok(crate::engine::NamedPoint {
            name: p.name.clone(),
            time: p.time,
            position: format!("WAL {}, cluster {}", p.lsn, p.system_identifier),
            json: serde_json::to_value(&p).expect("a point encodes"),
        })
    }
}

/// The cluster a data directory belongs to, from its `global/pg_control`:
/// which WAL `wal-fetch` fetches when not told.
pub fn cluster_of(pgdata: &std::path::Path) -> Result<String> {
    let (control, read) = wal::control_sysid_of(pgdata);
    match read {
        Ok(Some(id)) => Ok(id.to_string()),
        Ok(None) => Err(Error::Unsupported(format!(
            "{} is too short",
            control.display()
        ))),
        Err(e) => Err(Error::Unsupported(format!(
            "cannot read {} to tell which cluster to fetch for ({e}): pass --cluster SYSTEM_ID or --pgdata",
            control.display()
        ))),
    }
}

/// One PostgreSQL cluster's recoverable window and archive lag.
fn window_line(w: &ClusterWindow) -> String {
    let local = |t: &jiff::Timestamp| {
        t.to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S %Z")
            .to_string()
    };
    let window = match (&w.from, &w.to) {
        (Some(f), Some(t)) if f <= t => format!(
            "recoverable from {} to {} (the last archived transaction)",
            local(f),
            local(t)
        ),
        (Some(f), _) => format!(
            "recoverable at {} only (no transaction archived after it)",
            local(f)
        ),
        (None, _) => "not recoverable: no backup yet".to_string(),
    };
    let lag = match w.lag_seconds {
        Some(s) => format!("archive lag {s} s"),
        None => "no WAL archived".to_string(),
    };
    format!(
        "PostgreSQL cluster {}: {window}; {lag}; newest WAL {}; {} backups, {} WAL files",
        w.system_identifier,
        w.newest_segment.as_deref().unwrap_or("-"),
        w.backups,
        w.segments
    )
}

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
        if snap.engine != EngineName::Postgres || snap.kind != BackupKind::Physical {
            return None;
        }
        serde_json::from_value(snap.meta.clone()).ok()
    }
}
