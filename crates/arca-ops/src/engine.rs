//! The seam every engine implements, and the registry of engines.
//!
//! The CLI and the daemon call [`crate::backup`], [`crate::restore`],
//! [`crate::prune`] and [`crate::windows`] without knowing which engine a
//! source or a backup belongs to; those find the engine here, by the
//! source's URL or by the engine name its manifest records. Adding an
//! engine is one folder (`src/<engine>/`) and one line in [`ENGINES`]:
//! `docs/design/engines.md` says what the folder holds.

use std::path::PathBuf;

use arca_repo::{EngineName, Manifest, Progress, Repository};

use crate::drill::{DrillOptions, Drilled, Scratch};
use crate::{Error, Result};

/// The engines this build has, in the order `--source` URLs are tried.
pub static ENGINES: &[&dyn Engine] = &[
    &crate::sqlite::Sqlite,
    &crate::postgres::Postgres,
    &crate::mysql::Mysql,
];

/// One database engine, as the operations see it.
pub trait Engine: Sync {
    /// The name its backups record.
    fn name(&self) -> EngineName;

    /// What users call it ("PostgreSQL").
    fn title(&self) -> &'static str;

    /// The `--source` forms it takes, for error messages.
    fn source_forms(&self) -> &'static str;

    /// Whether a `--source` value names a database of this engine.
    fn recognises(&self, source: &str) -> bool;

    /// One consistent backup of the source into the repository.
    fn backup(
        &self,
        repo: &Repository,
        opts: &BackupOptions,
        progress: &dyn Progress,
    ) -> Result<Manifest>;

    /// Restores `chosen` (or, with none, the backup this engine picks for
    /// the target) from `manifests`, the repository's readable manifests.
    fn restore(
        &self,
        repo: &Repository,
        manifests: &[Manifest],
        chosen: Option<Manifest>,
        req: &RestoreRequest,
        progress: &dyn Progress,
    ) -> Result<Restored>;

    /// Deletes log objects no remaining backup needs. `manifests` are the
    /// engine's own, and none of the repository's is damaged.
    fn expire_logs(&self, _repo: &Repository, _manifests: &[Manifest]) -> Result<Expired> {
        Ok(Expired::default())
    }

    /// The recoverable windows of the sources whose logs the repository
    /// holds, with their log lag. `manifests` are the engine's own.
    fn windows(&self, _repo: &Repository, _manifests: &[Manifest]) -> Result<Vec<Window>> {
        Ok(Vec::new())
    }

    /// Lines about a backup of this engine for `arca list ID`, beyond what
    /// every manifest says (a MySQL backup: its consistency point).
    fn describe(&self, _m: &Manifest) -> Vec<String> {
        Vec::new()
    }

    /// Names the source's current point in its log (a named snapshot).
    fn create_point(&self, _repo: &Repository, _source: &str, _name: &str) -> Result<NamedPoint> {
        Err(Error::Unsupported(format!(
            "{} keeps no log in the repository, so a point in time cannot be named: take a backup (arca backup --name NAME) instead",
            self.title()
        )))
    }

    /// Archives the source's log into the repository until `stop` is set:
    /// what `wal-stream` and `binlog-stream` do, for the daemon's continuous
    /// log archiving. Reconnects by itself after the server restarts;
    /// returns an error only when waiting cannot help (then the daemon
    /// starts it again later).
    fn stream_log(
        &self,
        _repo: &Repository,
        _source: &LogSource,
        _stop: &std::sync::atomic::AtomicBool,
        _on_event: &mut dyn FnMut(LogEvent),
    ) -> Result<()> {
        Err(Error::Unsupported(format!(
            "{} keeps no log to archive: leave log_archiving out of the plan",
            self.title()
        )))
    }

    /// A restore drill of backup `m` (one of this engine's): restores it
    /// into `scratch` (a directory of the drill's own, or scratch
    /// databases named with its tag), verifies it as this engine can, says
    /// what it checked and how long restoring and checking took, and
    /// removes whatever it restored or started on every way out, errors
    /// and cancellation included. [`crate::drill::drill`] picks the backup
    /// and removes the scratch directory afterwards.
    fn drill(
        &self,
        _repo: &Repository,
        m: &Manifest,
        _opts: &DrillOptions,
        _scratch: &Scratch,
        _progress: &dyn Progress,
    ) -> Result<Drilled> {
        Err(Error::Unsupported(format!(
            "backup {} is a {} backup, and this arca cannot run restore drills of those yet: restore it (arca restore) and check it by hand",
            m.id.short(),
            self.title()
        )))
    }
}

/// The source of continuous log archiving ([`Engine::stream_log`]).
#[derive(Debug, Clone)]
pub struct LogSource {
    pub url: String,
    pub password_file: Option<PathBuf>,
}

/// What continuous log archiving reports, a line for a person each.
#[derive(Debug, Clone)]
pub enum LogEvent {
    /// Streaming began (from where, and why there).
    Started(String),
    /// A piece of log is safe in the repository.
    Stored(String),
    /// The connection was lost; it is tried again.
    Reconnecting(String),
}

/// What a backup is asked for, whatever the engine.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    pub source: String,
    pub name: Option<String>,
    pub tags: Vec<String>,
    pub parallelism: usize,
    /// Where the database's files are on this host, if not where the
    /// server says (PostgreSQL's data directory).
    pub data_dir: Option<PathBuf>,
    /// Read everything, also what is unchanged since the last backup.
    pub full: bool,
    /// Check the source's consistency first (SQLite: `PRAGMA
    /// quick_check`). A source that fails is still backed up (it may be the
    /// best copy there is), with a warning and the problems in the manifest.
    pub check_source: bool,
    /// The arguments after `arca` that open this repository from another
    /// process (never a secret), for the commands a server runs itself:
    /// PostgreSQL's `archive_command` and `restore_command`.
    pub reopen: Vec<String>,
    /// Which databases and tables, for engines whose sources hold several.
    pub objects: Objects,
    /// A file holding the source's password (its first line).
    pub password_file: Option<PathBuf>,
    /// Take the server's users and grants too.
    pub users: bool,
}

impl BackupOptions {
    /// Refuses databases, tables, users and a password file for an engine
    /// whose source is one database without them.
    pub fn refuse_objects(&self, title: &str) -> Result<()> {
        if !self.objects.is_empty() || self.users || self.password_file.is_some() {
            return Err(Error::Unsupported(format!(
                "a {title} backup takes the whole database: leave out --databases, --tables, --exclude-tables, --users and --password-file"
            )));
        }
        Ok(())
    }
}

/// Databases and tables to take or restore (`db.table` names).
#[derive(Debug, Clone, Default)]
pub struct Objects {
    pub databases: Vec<String>,
    pub tables: Vec<String>,
    pub exclude_tables: Vec<String>,
}

impl Objects {
    pub fn is_empty(&self) -> bool {
        self.databases.is_empty() && self.tables.is_empty() && self.exclude_tables.is_empty()
    }
}

/// Where a point-in-time restore stops.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The end of the archived log (or the backup itself, without one).
    Latest,
    Time(jiff::Timestamp),
    /// A position in the engine's log, as the engine writes it (a
    /// PostgreSQL LSN).
    Position(String),
    /// A named snapshot.
    Named(String),
}

/// What a restore is asked for, whatever the engine.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// A backup id, `latest`, or none: the engine picks.
    pub id: Option<String>,
    /// The target path: a file, a directory to restore into, or a data
    /// directory, as the engine restores.
    pub to: PathBuf,
    pub force: bool,
    pub parallelism: usize,
    pub target: Target,
    /// The log timeline to follow (a number or `latest`).
    pub timeline: Option<String>,
    /// Pause at the target instead of ending recovery.
    pub pause_at_target: bool,
    /// The restored copy keeps archiving into the repository (it becomes
    /// the primary); by default it archives nothing.
    pub keep_archiving: bool,
    /// Start the restored instance and wait until it is ready.
    pub start: bool,
    pub port: Option<u16>,
    /// As [`BackupOptions::reopen`].
    pub reopen: Vec<String>,
    /// Restore only these databases and tables.
    pub objects: Objects,
    /// `OLD:NEW` database and `DB.T:DB.T2` table renames.
    pub renames: Vec<String>,
    /// Drop and restore tables the target has already.
    pub replace: bool,
    /// As [`BackupOptions::password_file`], for the target server.
    pub password_file: Option<PathBuf>,
    /// Restore the backup's users and grants too.
    pub users: bool,
}

impl RestoreRequest {
    pub fn new(to: PathBuf) -> RestoreRequest {
        RestoreRequest {
            id: None,
            to,
            force: false,
            parallelism: 1,
            target: Target::Latest,
            timeline: None,
            pause_at_target: false,
            keep_archiving: false,
            start: false,
            port: None,
            reopen: Vec::new(),
            objects: Objects::default(),
            renames: Vec::new(),
            replace: false,
            password_file: None,
            users: false,
        }
    }

    /// Refuses what only engines restoring into a server can do.
    pub fn refuse_objects(&self, title: &str) -> Result<()> {
        if self.wants_objects() || self.password_file.is_some() {
            return Err(Error::Unsupported(format!(
                "a {title} backup restores whole: leave out --databases, --tables, --exclude-tables, --rename, --replace, --users and --password-file"
            )));
        }
        Ok(())
    }

    /// Whether databases, tables, renames or users were asked for: only
    /// engines restoring into a server can.
    pub fn wants_objects(&self) -> bool {
        !self.objects.is_empty() || !self.renames.is_empty() || self.replace || self.users
    }

    /// Whether anything beyond "restore this backup" was asked for.
    pub fn wants_recovery(&self) -> bool {
        self.target != Target::Latest
            || self.timeline.is_some()
            || self.pause_at_target
            || self.keep_archiving
            || self.start
            || self.port.is_some()
    }
}

/// What a restore did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Restored {
    /// The backup restored, in full.
    pub backup: String,
    pub files: Vec<PathBuf>,
    pub bytes: u64,
    /// What the engine adds for `--json` (PostgreSQL: the timeline).
    #[serde(flatten)]
    pub detail: serde_json::Map<String, serde_json::Value>,
    /// What happened and what to do next, a line each, for a person.
    #[serde(skip)]
    pub lines: Vec<String>,
}

/// A named point as `snapshot create` reports it, whatever the engine.
#[derive(Debug, Clone)]
pub struct NamedPoint {
    pub name: String,
    pub time: jiff::Timestamp,
    /// Where it is, for a person: "WAL 0/3000060, cluster 7312…".
    pub position: String,
    /// The engine's own record of it, for `--json`.
    pub json: serde_json::Value,
}

/// Log objects deleted by [`Engine::expire_logs`].
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Expired {
    pub files: usize,
    pub bytes: u64,
    /// What the log objects are called ("WAL files").
    #[serde(skip)]
    pub what: &'static str,
}

/// One source's recoverable window and log lag.
#[derive(Debug, Clone)]
pub struct Window {
    pub engine: EngineName,
    /// Which backups it covers: see [`Window::covers`].
    pub key: String,
    pub from: Option<jiff::Timestamp>,
    pub to: Option<jiff::Timestamp>,
    pub lag_seconds: Option<i64>,
    /// The window for a person: the first line, then details.
    pub lines: Vec<String>,
    /// The window as `list --json` shows it beside each backup it covers.
    pub json: serde_json::Value,
    covers: fn(&Manifest, &str) -> bool,
}

impl Window {
    pub fn new(
        engine: EngineName,
        key: String,
        covers: fn(&Manifest, &str) -> bool,
        json: serde_json::Value,
    ) -> Window {
        Window {
            engine,
            key,
            from: None,
            to: None,
            lag_seconds: None,
            lines: Vec::new(),
            json,
            covers,
        }
    }

    /// Whether backup `m` is one this window's source can recover from.
    pub fn covers(&self, m: &Manifest) -> bool {
        (self.covers)(m, &self.key)
    }
}

/// The engine a `--source` names.
pub fn for_source(source: &str) -> Result<&'static dyn Engine> {
    if let Some(e) = ENGINES.iter().find(|e| e.recognises(source)) {
        return Ok(*e);
    }
    let forms: Vec<&str> = ENGINES.iter().map(|e| e.source_forms()).collect();
    let scheme = source.split_once("://").map_or(source, |(s, _)| s);
    Err(Error::Unsupported(format!(
        "unknown source scheme {scheme}://: use {}",
        forms.join(" or ")
    )))
}

/// The engine that wrote a backup.
pub fn of(m: &Manifest) -> Result<&'static dyn Engine> {
    ENGINES
        .iter()
        .find(|e| e.name() == m.engine)
        .copied()
        .ok_or_else(|| {
            Error::Unsupported(format!(
                "backup {} was written by engine {:?}, which this arca ({}) does not know: upgrade arca to restore it",
                m.id.short(),
                m.engine.as_str(),
                env!("CARGO_PKG_VERSION")
            ))
        })
}
