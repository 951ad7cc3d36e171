//! MySQL and MariaDB: a logical backup of a server's databases at one
//! consistent point, restored into a server, and the binary log archived
//! beside it (`binlog-stream`) for point-in-time restores and named
//! points.

mod backup;
mod binlog;
mod compare;
mod drill;
mod instance;
mod pitr;
mod points;
mod restore;

pub use binlog::{
    binlog_stream, last_segment, stream_name, BinlogEvent, BinlogOptions, BinlogReport,
};
pub use compare::{
    compare, ChunkDifference, CompareRequest, Mode, Problem, Report, RowDifference, RowKind,
    TableDifference,
};
pub use points::{drop as drop_point, points_in, reaches, unrestorable, MysqlPoint};

use arca_repo::{EngineName, Manifest, Progress, Repository};

use crate::drill::{DrillOptions, Drilled, Scratch};
use crate::engine::{BackupOptions, Engine, Expired, RestoreRequest, Restored, Window};
use crate::{Error, Result};

pub struct Mysql;

impl Engine for Mysql {
    fn name(&self) -> EngineName {
        EngineName::Mysql
    }

    fn title(&self) -> &'static str {
        "MySQL"
    }

    fn source_forms(&self) -> &'static str {
        "mysql://USER@HOST:PORT[/DB]"
    }

    fn recognises(&self, source: &str) -> bool {
        matches!(source.split_once("://"), Some(("mysql" | "mariadb", _)))
    }

    fn backup(
        &self,
        repo: &Repository,
        opts: &BackupOptions,
        progress: &dyn Progress,
    ) -> Result<Manifest> {
        backup::backup(repo, opts, progress)
    }

    fn expire_logs(&self, repo: &Repository, manifests: &[Manifest]) -> Result<Expired> {
        let (files, bytes) = binlog::expire(repo, manifests)?;
        Ok(Expired {
            files,
            bytes,
            what: "binary log segments",
        })
    }

    fn windows(&self, repo: &Repository, manifests: &[Manifest]) -> Result<Vec<Window>> {
        let mut out = Vec::new();
        for w in binlog::windows(repo, manifests)? {
            let json = serde_json::to_value(&w).expect("a window encodes");
            let mut window = Window::new(
                EngineName::Mysql,
                w.server.clone(),
                |m, key| m.meta["server"].as_str() == Some(key),
                json,
            );
            window.from = w.from;
            window.to = w.to;
            window.lag_seconds = w.lag_seconds;
            let at = |t: &Option<jiff::Timestamp>| {
                t.map(|t| {
                    t.to_zoned(jiff::tz::TimeZone::system())
                        .strftime("%Y-%m-%d %H:%M:%S %Z")
                        .to_string()
                })
            };
            window.lines.push(match (at(&w.from), at(&w.to)) {
                (Some(f), Some(t)) => format!(
                    "MySQL server {}: recoverable from {f} to {t} (GTID {}); newest archived transaction {} s old",
                    w.server,
                    w.last_gtid.as_deref().unwrap_or("-"),
                    w.lag_seconds.unwrap_or_default()
                ),
                (None, _) => format!(
                    "MySQL server {}: binary log archived up to {}, but no backup of it to start from",
                    w.server,
                    w.archived_up_to.as_deref().unwrap_or("-")
                ),
                (Some(f), None) => format!(
                    "MySQL server {}: recoverable at {f} (its backups); no transaction archived since",
                    w.server
                ),
            });
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
        let opts = BinlogOptions {
            source: source.url.clone(),
            password_file: source.password_file.clone(),
            until_now: false,
            from_now: false,
            seal_every: std::time::Duration::from_secs(2),
            replica_id: 1_095_910_209,
        };
        let mut events = |ev: BinlogEvent<'_>| match ev {
            BinlogEvent::Started {
                server,
                stream,
                start,
                reason,
            } => on_event(LogEvent::Started(format!(
                "streaming the binary log of {server} into {stream} from {start} ({reason})"
            ))),
            BinlogEvent::SegmentStored { name, transactions } => on_event(LogEvent::Stored(
                format!("binary log segment {name} stored ({transactions} transactions)"),
            )),
            BinlogEvent::Reconnecting { error, wait } => on_event(LogEvent::Reconnecting(format!(
                "{error}; connecting again in {} s",
                wait.as_secs()
            ))),
        };
        binlog_stream(repo, &opts, stop, &mut events)?;
        Ok(())
    }

    fn create_point(
        &self,
        repo: &Repository,
        source: &str,
        name: &str,
    ) -> Result<crate::engine::NamedPoint> {
        let p = points::create(repo, source, name)?;
        Ok(crate::engine::NamedPoint {
            name: p.name.clone(),
            time: p.time,
            position: format!(
                "binary log {}{}, server {}",
                p.position(),
                p.gtid
                    .as_deref()
                    .map(|g| format!(", GTID {g}"))
                    .unwrap_or_default(),
                p.server
            ),
            json: serde_json::to_value(&p).expect("a point encodes"),
        })
    }

    fn describe(&self, m: &Manifest) -> Vec<String> {
        let mut lines = Vec::new();
        if let (Ok(f), Some(v)) = (
            serde_json::from_value::<arca_engine::mysql::Flavor>(m.meta["flavor"].clone()),
            m.meta["version"].as_str(),
        ) {
            lines.push(format!("server:       {} {v}", f.title()));
        }
        if let Ok(c) =
            serde_json::from_value::<arca_engine::mysql::Consistency>(m.meta["consistency"].clone())
        {
            lines.push(format!("consistency:  {}", c.describe()));
            if !c.not_at_point.is_empty() {
                lines.push(format!("not at point: {}", c.not_at_point.join(", ")));
            }
        }
        if let Ok(s) =
            serde_json::from_value::<arca_engine::mysql::Schema>(m.meta["schema"].clone())
        {
            for d in &s.databases {
                let rows: u64 = d.tables.iter().map(|t| t.rows_estimate).sum();
                lines.push(format!(
                    "database:     {} ({} tables, about {rows} rows, {} views/routines/triggers/events)",
                    d.name,
                    d.tables.len(),
                    d.objects.len()
                ));
            }
        }
        lines
    }

    fn restore(
        &self,
        repo: &Repository,
        manifests: &[Manifest],
        chosen: Option<Manifest>,
        req: &RestoreRequest,
        progress: &dyn Progress,
    ) -> Result<Restored> {
        if req.timeline.is_some() || req.pause_at_target || req.keep_archiving {
            return Err(Error::Unsupported(
                "--target-timeline, --target-action and --keep-archiving are PostgreSQL's: a MySQL restore replays the binary log to its target and ends".into(),
            ));
        }
        if req.port.is_some() && !req.start {
            return Err(Error::Unsupported(
                "--port is the port of a new server: use it with --to-instance DIR".into(),
            ));
        }
        let m = match chosen {
            Some(m) => m,
            None => pitr::pick(manifests, &req.target)?,
        };
        restore::restore(repo, &m, req, progress)
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
}

/// Where a table range's rows are in a backup: names are escaped so that
/// any identifier makes one safe path component.
pub(crate) fn file_path(db: &str, table: &str, range: i64) -> String {
    format!("{}/{}/{range}", escape(db), escape(table))
}

fn escape(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
