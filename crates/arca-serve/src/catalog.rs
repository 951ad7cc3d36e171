//! The daemon's own records in a local SQLite file: jobs, events, when each
//! plan last fired, and a copy of each repository's list of backups for
//! fast listing. The repositories stay the truth: [`Catalog::replace_backups`]
//! rewrites the copy from a scan.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

#[derive(Clone)]
pub struct Catalog {
    /// The one connection that writes.
    conn: Arc<Mutex<Connection>>,
    /// Read-only connections for the API's listings: WAL lets them read
    /// beside the writer and each other, so concurrent requests do not
    /// queue behind one mutex.
    readers: Arc<Vec<Mutex<Connection>>>,
}

/// Read connections: the daemon runs on small hosts; two cover two cores.
const READERS: usize = 2;

/// A job as stored and as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JobRow {
    pub id: String,
    pub kind: String,
    pub source: Option<String>,
    pub plan: Option<String>,
    pub state: String,
    pub phase: String,
    pub progress: Progress,
    pub backup: Option<String>,
    pub error: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// What the job did, beyond the backup id (a restore's files, a
    /// forget's decisions).
    pub result: serde_json::Value,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Progress {
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Bytes per second over the job so far.
    pub rate: u64,
    pub eta_seconds: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    pub id: i64,
    pub time: String,
    pub kind: String,
    pub source: Option<String>,
    pub job: Option<String>,
    pub message: String,
}

/// One backup of a repository, as the daemon lists it.
#[derive(Debug, Clone, Serialize)]
pub struct BackupRow {
    pub id: String,
    pub short_id: String,
    pub repository: String,
    /// The daemon's name for the source, when known.
    pub source: Option<String>,
    /// The source as the backup recorded it.
    pub source_url: String,
    pub engine: String,
    pub kind: String,
    /// `full`, `incremental` (it has a parent) or `snapshot` (a named
    /// point in the log, with no data of its own).
    pub mode: String,
    /// The backup this one was taken against, if incremental.
    pub parent: Option<String>,
    pub name: Option<String>,
    pub size: u64,
    pub stored_bytes: u64,
    pub start_time: String,
    pub end_time: String,
    pub duration_ms: i64,
    pub status: String,
}

/// Filters of a backup listing; `cursor` is the last row's (start_time, id).
#[derive(Debug, Default)]
pub struct BackupQuery {
    pub source: Option<String>,
    pub repository: Option<String>,
    pub kind: Option<String>,
    pub mode: Option<String>,
    pub status: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub cursor: Option<(String, String)>,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
    pub limit: usize,
}

const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, source TEXT, plan TEXT,
    state TEXT NOT NULL, phase TEXT NOT NULL, backup TEXT, error TEXT,
    created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT,
    bytes_done INTEGER NOT NULL DEFAULT 0, bytes_total INTEGER NOT NULL DEFAULT 0,
    result TEXT NOT NULL DEFAULT 'null');
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at DESC, id DESC);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, kind TEXT NOT NULL,
    source TEXT, job TEXT, message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_source ON events (source, id);
CREATE INDEX IF NOT EXISTS events_kind ON events (kind, id);
CREATE INDEX IF NOT EXISTS events_source_kind ON events (source, kind, id);
CREATE TABLE IF NOT EXISTS plan_runs (plan TEXT PRIMARY KEY, last_fire TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS source_keys (source TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (source, key));
CREATE TABLE IF NOT EXISTS backups (
    id TEXT NOT NULL, repository TEXT NOT NULL, source TEXT, source_url TEXT NOT NULL,
    engine TEXT NOT NULL, kind TEXT NOT NULL, mode TEXT NOT NULL, parent TEXT,
    name TEXT, size INTEGER NOT NULL,
    stored_bytes INTEGER NOT NULL, start_time TEXT NOT NULL, end_time TEXT NOT NULL,
    duration_ms INTEGER NOT NULL, status TEXT NOT NULL, PRIMARY KEY (repository, id));
CREATE INDEX IF NOT EXISTS backups_time ON backups (start_time DESC, id DESC);
CREATE INDEX IF NOT EXISTS backups_source_time ON backups (source, start_time DESC, id DESC);
CREATE INDEX IF NOT EXISTS backups_id ON backups (id);
";

pub type Result<T> = std::result::Result<T, rusqlite::Error>;

impl Catalog {
    pub fn open(path: &Path) -> Result<Catalog> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // The backups table is a copy rescanned at every start: a catalog
        // of an older layout drops it rather than migrating it.
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version < SCHEMA_VERSION {
            conn.execute_batch("DROP TABLE IF EXISTS backups")?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        conn.execute_batch(SCHEMA)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            r.busy_timeout(std::time::Duration::from_secs(5))?;
            readers.push(Mutex::new(r));
        }
        Ok(Catalog {
            conn: Arc::new(Mutex::new(conn)),
            readers: Arc::new(readers),
        })
    }

    /// A read on a free read-only connection (or the first, when all are
    /// busy).
    fn read<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        for r in self.readers.iter() {
            if let Ok(mut c) = r.try_lock() {
                return f(&mut c);
            }
        }
        let mut c = self.readers[0].lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c)
    }

    /// Jobs that were queued or running when the daemon stopped.
    pub fn mark_interrupted(&self, now: &str) -> Result<usize> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET state = 'interrupted', phase = 'interrupted',
                 error = COALESCE(error, 'the daemon stopped while this job ran'),
                 finished_at = ?1 WHERE state IN ('queued', 'running')",
                params![now],
            )
        })
    }

    pub fn put_job(&self, j: &JobRow) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO jobs (id, kind, source, plan, state, phase, backup, error,
                 created_at, started_at, finished_at, bytes_done, bytes_total, result)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                params![
                    j.id,
                    j.kind,
                    j.source,
                    j.plan,
                    j.state,
                    j.phase,
                    j.backup,
                    j.error,
                    j.created_at,
                    j.started_at,
                    j.finished_at,
                    j.progress.bytes_done as i64,
                    j.progress.bytes_total as i64,
                    j.result.to_string()
                ],
            )?;
            Ok(())
        })
    }

    pub fn job(&self, id: &str) -> Result<Option<JobRow>> {
        self.read(|c| {
            c.query_row(
                &format!("SELECT {JOB_COLS} FROM jobs WHERE id = ?1"),
                [id],
                job_row,
            )
            .optional()
        })
    }

    /// Newest first; `before` is a job id to page from.
    pub fn jobs(
        &self,
        source: Option<&str>,
        state: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<JobRow>> {
        let mut w = Filter::default();
        w.eq("source", source);
        w.eq("state", state);
        if let Some(b) = before {
            w.cond(
                "(created_at, id) < (SELECT created_at, id FROM jobs WHERE id = ?)",
                b.to_string(),
            );
        }
        self.read(|c| {
            let sql = format!(
                "SELECT {JOB_COLS} FROM jobs{} ORDER BY created_at DESC, id DESC LIMIT {limit}",
                w.sql
            );
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(rusqlite::params_from_iter(w.args), job_row)?;
            rows.collect()
        })
    }

    pub fn event(
        &self,
        time: &str,
        kind: &str,
        source: Option<&str>,
        job: Option<&str>,
        message: &str,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO events (time, kind, source, job, message) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![time, kind, source, job, message],
            )?;
            Ok(())
        })
    }

    /// Newest first; `before` is an event id to page from.
    pub fn events(
        &self,
        source: Option<&str>,
        kind: Option<&str>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<EventRow>> {
        let mut w = Filter::default();
        w.eq("source", source);
        w.eq("kind", kind);
        if let Some(b) = before {
            w.cond("id < ?", b);
        }
        self.read(|c| {
            let sql = format!(
                "SELECT id, time, kind, source, job, message FROM events{} ORDER BY id DESC LIMIT {limit}",
                w.sql
            );
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(rusqlite::params_from_iter(w.args), |r| {
                Ok(EventRow {
                    id: r.get(0)?,
                    time: r.get(1)?,
                    kind: r.get(2)?,
                    source: r.get(3)?,
                    job: r.get(4)?,
                    message: r.get(5)?,
                })
            })?;
            rows.collect()
        })
    }

    pub fn last_fire(&self, plan: &str) -> Result<Option<String>> {
        self.read(|c| {
            c.query_row(
                "SELECT last_fire FROM plan_runs WHERE plan = ?1",
                [plan],
                |r| r.get(0),
            )
            .optional()
        })
    }

    pub fn set_last_fire(&self, plan: &str, at: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO plan_runs (plan, last_fire) VALUES (?1, ?2)",
                params![plan, at],
            )?;
            Ok(())
        })
    }

    /// Remembers that backups recording `key` as their source are of `source`.
    pub fn learn_source_key(&self, source: &str, key: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO source_keys (source, key) VALUES (?1, ?2)",
                params![source, key],
            )?;
            Ok(())
        })
    }

    pub fn source_keys(&self) -> Result<Vec<(String, String)>> {
        self.read(|c| {
            let mut st = c.prepare("SELECT source, key FROM source_keys")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    /// Replaces the copy of one repository's backups with a fresh scan.
    pub fn replace_backups(&self, repository: &str, rows: &[BackupRow]) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM backups WHERE repository = ?1", [repository])?;
            {
                let mut st = tx.prepare(
                    "INSERT OR REPLACE INTO backups (id, repository, source, source_url, engine, kind,
                     mode, parent, name, size, stored_bytes, start_time, end_time, duration_ms, status)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                )?;
                for b in rows {
                    st.execute(params![
                        b.id,
                        b.repository,
                        b.source,
                        b.source_url,
                        b.engine,
                        b.kind,
                        b.mode,
                        b.parent,
                        b.name,
                        b.size as i64,
                        b.stored_bytes as i64,
                        b.start_time,
                        b.end_time,
                        b.duration_ms,
                        b.status
                    ])?;
                }
            }
            tx.commit()
        })
    }

    /// Newest first. Only the filters given go into the statement, so
    /// SQLite can use the index that fits them.
    pub fn backups(&self, q: &BackupQuery) -> Result<Vec<BackupRow>> {
        let mut w = Filter::default();
        w.eq("source", q.source.as_deref());
        w.eq("repository", q.repository.as_deref());
        w.eq("kind", q.kind.as_deref());
        w.eq("mode", q.mode.as_deref());
        w.eq("status", q.status.as_deref());
        if let Some(f) = &q.from {
            w.cond("start_time >= ?", f.clone());
        }
        if let Some(t) = &q.to {
            w.cond("start_time <= ?", t.clone());
        }
        let (op, order) = if q.oldest_first {
            (">", "")
        } else {
            ("<", " DESC")
        };
        if let Some((t, id)) = &q.cursor {
            w.cond2(
                &format!("(start_time, id) {op} (?, ?)"),
                t.clone(),
                id.clone(),
            );
        }
        self.read(|c| {
            let sql = format!(
                "SELECT {BACKUP_COLS} FROM backups{} ORDER BY start_time{order}, id{order} LIMIT {}",
                w.sql, q.limit
            );
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(rusqlite::params_from_iter(w.args), backup_row)?;
            rows.collect()
        })
    }

    /// The backups whose id starts with `prefix` (a short id), at most
    /// `limit`: the primary key's order answers it without a scan.
    pub fn backups_by_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<BackupRow>> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {BACKUP_COLS} FROM backups INDEXED BY backups_id
                 WHERE id >= ?1 AND id < ?1 || 'g' ORDER BY id LIMIT ?2"
            ))?;
            let rows = st.query_map(params![prefix, limit as i64], backup_row)?;
            rows.collect()
        })
    }

    /// Every backup of one source, oldest first (for statistics).
    pub fn backups_of(&self, source: &str) -> Result<Vec<BackupRow>> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {BACKUP_COLS} FROM backups WHERE source = ?1 ORDER BY start_time, id"
            ))?;
            let rows = st.query_map([source], backup_row)?;
            rows.collect()
        })
    }

    /// Finished jobs by kind, source and state, for the metrics.
    pub fn job_counts(&self) -> Result<Vec<(String, String, String, u64)>> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT kind, COALESCE(source, ''), state, COUNT(*) FROM jobs
                 WHERE state NOT IN ('queued', 'running') GROUP BY 1, 2, 3",
            )?;
            let rows = st.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? as u64))
            })?;
            rows.collect()
        })
    }

    /// The newest finished job of a kind for a source.
    pub fn last_job(
        &self,
        kind: &str,
        source: &str,
        state: Option<&str>,
    ) -> Result<Option<JobRow>> {
        self.read(|c| {
            c.query_row(
                &format!(
                    "SELECT {JOB_COLS} FROM jobs WHERE kind = ?1 AND source = ?2
                     AND (?3 IS NULL OR state = ?3) AND finished_at IS NOT NULL
                     ORDER BY finished_at DESC LIMIT 1"
                ),
                params![kind, source, state],
                job_row,
            )
            .optional()
        })
    }
}

const BACKUP_COLS: &str = "id, repository, source, source_url, engine, kind, mode, parent, name, size, stored_bytes, start_time, end_time, duration_ms, status";

/// A WHERE clause of the filters that were given, with their arguments.
#[derive(Default)]
struct Filter {
    sql: String,
    args: Vec<rusqlite::types::Value>,
}

impl Filter {
    fn eq(&mut self, col: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.cond(&format!("{col} = ?"), v.to_string());
        }
    }

    fn cond(&mut self, expr: &str, v: impl Into<rusqlite::types::Value>) {
        self.join(expr);
        self.args.push(v.into());
    }

    fn cond2(&mut self, expr: &str, a: String, b: String) {
        self.join(expr);
        self.args.push(a.into());
        self.args.push(b.into());
    }

    fn join(&mut self, expr: &str) {
        self.sql += if self.sql.is_empty() {
            " WHERE "
        } else {
            " AND "
        };
        self.sql += expr;
    }
}

const JOB_COLS: &str = "id, kind, source, plan, state, phase, backup, error, created_at, started_at, finished_at, bytes_done, bytes_total, result";

fn job_row(r: &rusqlite::Row<'_>) -> Result<JobRow> {
    let result: String = r.get(13)?;
    Ok(JobRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        source: r.get(2)?,
        plan: r.get(3)?,
        state: r.get(4)?,
        phase: r.get(5)?,
        backup: r.get(6)?,
        error: r.get(7)?,
        created_at: r.get(8)?,
        started_at: r.get(9)?,
        finished_at: r.get(10)?,
        progress: Progress {
            bytes_done: r.get::<_, i64>(11)? as u64,
            bytes_total: r.get::<_, i64>(12)? as u64,
            rate: 0,
            eta_seconds: None,
        },
        result: serde_json::from_str(&result).unwrap_or(serde_json::Value::Null),
    })
}

fn backup_row(r: &rusqlite::Row<'_>) -> Result<BackupRow> {
    let id: String = r.get(0)?;
    Ok(BackupRow {
        short_id: id.get(..8).unwrap_or(&id).to_string(),
        id,
        repository: r.get(1)?,
        source: r.get(2)?,
        source_url: r.get(3)?,
        engine: r.get(4)?,
        kind: r.get(5)?,
        mode: r.get(6)?,
        parent: r.get(7)?,
        name: r.get(8)?,
        size: r.get::<_, i64>(9)? as u64,
        stored_bytes: r.get::<_, i64>(10)? as u64,
        start_time: r.get(11)?,
        end_time: r.get(12)?,
        duration_ms: r.get(13)?,
        status: r.get(14)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, source: &str, kind: &str, start: &str) -> BackupRow {
        BackupRow {
            id: id.into(),
            short_id: id[..8].into(),
            repository: "r".into(),
            source: Some(source.into()),
            source_url: format!("sqlite:///{source}.db"),
            engine: "sqlite".into(),
            kind: kind.into(),
            mode: "full".into(),
            parent: None,
            name: None,
            size: 1,
            stored_bytes: 1,
            start_time: start.into(),
            end_time: start.into(),
            duration_ms: 1,
            status: "ok".into(),
        }
    }

    fn plan(c: &Catalog, sql: &str) -> String {
        c.with(|c| {
            let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
            let rows = st.query_map([], |r| r.get::<_, String>(3))?;
            Ok(rows.collect::<Result<Vec<_>>>()?.join("; "))
        })
        .unwrap()
    }

    #[test]
    fn filters_combine_and_page() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(&dir.path().join("c.db")).unwrap();
        let rows = vec![
            row("aa00000000000001", "app", "full", "2026-01-01T00:00:00Z"),
            row(
                "aa00000000000002",
                "app",
                "incremental",
                "2026-01-02T00:00:00Z",
            ),
            row("bb00000000000003", "web", "full", "2026-01-03T00:00:00Z"),
            row("bb00000000000004", "app", "full", "2026-01-04T00:00:00Z"),
        ];
        c.replace_backups("r", &rows).unwrap();
        let ids = |q: BackupQuery| -> Vec<String> {
            c.backups(&q).unwrap().into_iter().map(|b| b.id).collect()
        };
        assert_eq!(
            ids(BackupQuery {
                source: Some("app".into()),
                kind: Some("full".into()),
                limit: 10,
                ..Default::default()
            }),
            ["bb00000000000004", "aa00000000000001"]
        );
        assert_eq!(
            ids(BackupQuery {
                from: Some("2026-01-02T00:00:00Z".into()),
                to: Some("2026-01-03T00:00:00Z".into()),
                limit: 10,
                ..Default::default()
            }),
            ["bb00000000000003", "aa00000000000002"]
        );
        assert_eq!(
            ids(BackupQuery {
                cursor: Some(("2026-01-03T00:00:00Z".into(), "bb00000000000003".into())),
                limit: 1,
                ..Default::default()
            }),
            ["aa00000000000002"]
        );
        let by = |p: &str| -> Vec<String> {
            c.backups_by_prefix(p, 2)
                .unwrap()
                .into_iter()
                .map(|b| b.id)
                .collect()
        };
        assert_eq!(by("bb00000000000003"), ["bb00000000000003"]);
        assert_eq!(by("aa00").len(), 2);
        assert_eq!(
            by("bb000000000000"),
            ["bb00000000000003", "bb00000000000004"]
        );
        assert!(by("ab").is_empty());
        assert!(by("bb00000000000005").is_empty());
    }

    #[test]
    fn events_filter_by_kind_and_source() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(&dir.path().join("c.db")).unwrap();
        for (kind, source) in [("a", "x"), ("b", "x"), ("a", "y"), ("a", "x")] {
            c.event("t", kind, Some(source), None, "m").unwrap();
        }
        let ids = |s: Option<&str>, k: Option<&str>, before: Option<i64>| -> Vec<i64> {
            c.events(s, k, before, 10)
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect()
        };
        assert_eq!(ids(None, None, None), [4, 3, 2, 1]);
        assert_eq!(ids(None, Some("a"), None), [4, 3, 1]);
        assert_eq!(ids(Some("x"), Some("a"), Some(4)), [1]);
        assert_eq!(ids(Some("y"), None, None), [3]);
    }

    #[test]
    fn jobs_filter_by_state_and_page_by_the_last_id() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(&dir.path().join("c.db")).unwrap();
        for (i, state) in ["succeeded", "failed", "succeeded", "succeeded"]
            .iter()
            .enumerate()
        {
            c.put_job(&JobRow {
                id: format!("j{i}"),
                kind: "backup".into(),
                source: Some("app".into()),
                plan: None,
                state: state.to_string(),
                phase: state.to_string(),
                progress: Progress::default(),
                backup: None,
                error: None,
                created_at: format!("2026-12-08T00:00:0{i}.000000Z"),
                started_at: None,
                finished_at: None,
                result: serde_json::Value::Null,
            })
            .unwrap();
        }
        let ids = |state: Option<&str>, before: Option<&str>| -> Vec<String> {
            c.jobs(Some("app"), state, before, 2)
                .unwrap()
                .into_iter()
                .map(|j| j.id)
                .collect()
        };
        assert_eq!(ids(None, None), ["j3", "j2"]);
        assert_eq!(ids(None, Some("j2")), ["j1", "j0"]);
        assert_eq!(ids(Some("succeeded"), Some("j3")), ["j2", "j0"]);
        assert!(c.jobs(Some("web"), None, None, 10).unwrap().is_empty());
    }

    /// Listings read on their own connections: a write in progress (the
    /// writer's connection held) does not hold them up.
    #[test]
    fn reads_do_not_wait_for_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(&dir.path().join("c.db")).unwrap();
        c.event("t", "a", Some("x"), None, "m").unwrap();
        let writer = c.conn.lock().unwrap();
        let c2 = c.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(c2.events(None, None, None, 10).unwrap().len()));
        let n = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("a listing waited for the writer");
        assert_eq!(n, 1);
        drop(writer);
    }

    /// Each listing the API serves is answered from an index, not by
    /// reading every row: the catalog holds up to 100,000s of events.
    #[test]
    fn listings_use_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(&dir.path().join("c.db")).unwrap();
        for sql in [
            "SELECT * FROM events WHERE kind = 'a' ORDER BY id DESC LIMIT 50",
            "SELECT * FROM events WHERE source = 'x' AND kind = 'a' ORDER BY id DESC LIMIT 50",
            "SELECT * FROM backups WHERE source = 'x' ORDER BY start_time DESC, id DESC LIMIT 50",
            "SELECT * FROM backups INDEXED BY backups_id WHERE id >= 'ab' AND id < 'ab' || 'g'",
        ] {
            let p = plan(&c, sql);
            assert!(
                p.contains("USING INDEX") || p.contains("USING COVERING INDEX"),
                "{sql}: {p}"
            );
            assert!(!p.contains("TEMP B-TREE"), "{sql} sorts: {p}");
        }
    }
}
