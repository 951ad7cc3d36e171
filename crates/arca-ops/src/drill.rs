//! Restore drills: a backup restored into scratch space, verified as its
//! engine can, and removed again, with a report of what was checked and
//! how long it took. The daemon runs them on a schedule; anything may call
//! [`drill`].
//!
//! Which backup, where to and the clean-up of the scratch directory are
//! here; how an engine restores and verifies is its own
//! ([`crate::Engine::drill`]): SQLite checks the restored file with `PRAGMA
//! integrity_check`, PostgreSQL starts the restored cluster and runs
//! `pg_amcheck`, MySQL restores into scratch databases on the source's own
//! server and runs `CHECK TABLE` and counts rows. `docs/design/drills.md`
//! says why each does what it does.

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::time::Instant;

use arca_repo::{BackupKind, EngineName, Error as RepoError, Manifest, Op, Progress, Repository};

use crate::engine::{self, Engine};
use crate::{Error, Result};

/// What a drill is asked for.
#[derive(Debug, Clone, Default)]
pub struct DrillOptions {
    /// The source, as `arca backup --source` takes it (or as manifests
    /// record it).
    pub source: String,
    /// An existing directory the drill may use; it leaves nothing in it.
    pub scratch: PathBuf,
    /// A backup id (or a unique prefix, or `latest`); by default the
    /// newest backup of the source. A backup named may be of another
    /// source of the same engine: the source then says where and as whom
    /// to drill it.
    pub backup: Option<String>,
    /// A file holding the source's password (its first line), for the
    /// engines that connect to a server to verify.
    pub password_file: Option<PathBuf>,
    pub parallelism: usize,
}

/// What a drill verified.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DrillReport {
    /// The backup drilled, in full.
    pub backup: String,
    /// The engine, as users call it ("PostgreSQL").
    pub engine: &'static str,
    pub restored_bytes: u64,
    /// What was verified, a line each ("PRAGMA integrity_check: ok").
    pub checks: Vec<String>,
    pub restore_seconds: f64,
    pub verify_seconds: f64,
}

/// What an engine's drill did, for [`DrillReport`].
#[derive(Debug, Clone, Default)]
pub struct Drilled {
    pub restored_bytes: u64,
    pub checks: Vec<String>,
    /// Restoring, and for a server whatever it needs to come up (recovery).
    pub restore_seconds: f64,
    /// The checks.
    pub verify_seconds: f64,
}

/// Where an engine's drill may put what it restores.
#[derive(Debug, Clone)]
pub struct Scratch {
    /// A new, empty directory inside [`DrillOptions::scratch`], removed
    /// with everything in it once the engine returns.
    pub dir: PathBuf,
    /// 8 hex digits unique to this drill, for names outside the directory
    /// (MySQL's scratch databases: `arca_drill_<tag>_DB`).
    pub tag: String,
}

/// Restores a backup of `opts.source` (the newest, unless one is named)
/// into scratch space, verifies it and removes it again.
///
/// A failed check, like any other failure, is an error naming the backup
/// ("drill of backup 1a2b3c4d: PRAGMA integrity_check failed: …"). The
/// drill stops at its next step once `repo.cancel` is tripped, with an
/// interrupted error; whatever it restored or started is removed (a
/// server stopped, scratch databases dropped) on every way out.
pub fn drill(
    repo: &Repository,
    opts: &DrillOptions,
    progress: &dyn Progress,
) -> Result<DrillReport> {
    let engine = engine::for_source(&opts.source)?;
    check_scratch(&opts.scratch)?;
    let m = choose(repo, engine, opts)?;
    let short = m.id.short();
    repo.cancel
        .check(Op::Restore)
        .map_err(|e| named(e.into(), &short))?;
    let work = Work::create(&opts.scratch).map_err(|e| named(e, &short))?;
    let scratch = Scratch {
        dir: work.path.clone(),
        tag: work.tag.clone(),
    };
    let started = Instant::now();
    let result = engine.drill(repo, &m, opts, &scratch, progress);
    let removed = work.remove();
    let drilled = result.map_err(|e| named(e, &short))?;
    removed.map_err(|e| named(e, &short))?;
    tracing::info!(
        "drill of backup {short}: {} checks passed in {:.1} s",
        drilled.checks.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(DrillReport {
        backup: m.id.to_hex(),
        engine: engine.title(),
        restored_bytes: drilled.restored_bytes,
        checks: drilled.checks,
        restore_seconds: drilled.restore_seconds,
        verify_seconds: drilled.verify_seconds,
    })
}

/// Fails once `repo.cancel` is tripped: for the engines' drills, between
/// their steps.
pub(crate) fn check_cancel(repo: &Repository) -> Result<()> {
    Ok(repo.cancel.check(Op::Restore)?)
}

/// "1 table", "2 tables" ("index": "indexes").
pub(crate) fn count(n: usize, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        _ if what.ends_with('x') || what.ends_with('s') => format!("{n} {what}es"),
        _ => format!("{n} {what}s"),
    }
}

/// Seconds since `t`.
pub(crate) fn seconds(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

fn check_scratch(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::Unsupported(format!(
            "drill scratch {} is not a directory: give an existing directory the drill may use",
            dir.display()
        ))),
        Err(e) => Err(Error::Unsupported(format!(
            "drill scratch directory {} cannot be used ({e}): give an existing directory the drill may use",
            dir.display()
        ))),
    }
}

/// The backup to drill: the one named, or the newest of the source.
fn choose(repo: &Repository, engine: &dyn Engine, opts: &DrillOptions) -> Result<Manifest> {
    let manifests = repo.manifests()?;
    let recorded = source_name(engine, &opts.source)?;
    let of_source = |m: &Manifest| {
        m.engine == engine.name() && (m.source == recorded || m.source == opts.source)
    };
    let named = match opts.backup.as_deref() {
        None | Some("latest") => None,
        Some(id) => Some(repo.resolve_id(id)?),
    };
    let Some(id) = named else {
        return manifests
            .iter()
            .rev()
            .filter(|m| m.kind != BackupKind::Point)
            .find(|m| of_source(m))
            .cloned()
            .ok_or_else(|| {
                Error::Unsupported(format!(
                    "{} holds no backup of {recorded} to drill: take one (arca backup --source …) first; `arca list --json` shows each backup's source",
                    repo.location()
                ))
            });
    };
    // A damaged manifest is read once more for the error naming its problem.
    let m = match manifests.iter().find(|m| m.id == id) {
        Some(m) => m.clone(),
        None => repo.read_manifest(&id)?,
    };
    if m.kind == BackupKind::Point {
        return Err(Error::Unsupported(format!(
            "{} is a named point in time, not a backup: drill a backup (an id from `arca list`)",
            m.id.short()
        )));
    }
    // Named, a backup may be drilled with another source of its engine:
    // the source then only says where and as whom (MySQL: a user who may
    // create the scratch databases, or another server).
    if m.engine != engine.name() {
        return Err(Error::Unsupported(format!(
            "backup {} is a {} backup of {}, and {recorded} is no source of that engine: drill it with a source of its own",
            m.id.short(),
            m.engine,
            m.source
        )));
    }
    Ok(m)
}

/// The name a backup of `source` records (no password), as each engine's
/// backup writes it; the same rule `arca forget --source` follows.
fn source_name(engine: &dyn Engine, source: &str) -> Result<String> {
    Ok(match engine.name() {
        EngineName::Sqlite => {
            let s = arca_engine::sqlite::SqliteSource::parse(source)?;
            let path = std::path::absolute(&s.path).unwrap_or(s.path);
            format!("sqlite://{}", path.display())
        }
        EngineName::Postgres => arca_engine::postgres::PgSource::parse(source, None)?.to_string(),
        EngineName::Mysql => arca_engine::mysql::MysqlSource::parse(source, None)?.url(),
        EngineName::Unknown(_) => source.to_string(),
    })
}

/// An error of the drill of backup `short`, saying so. Interruption stays
/// an interruption, and a lock held elsewhere stays temporary.
fn named(e: Error, short: &str) -> Error {
    match e {
        Error::Repo(RepoError::Interrupted { .. }) => Error::Repo(RepoError::Interrupted {
            what: format!("drill of backup {short}"),
            left: "what it restored or started was removed",
        }),
        Error::Repo(RepoError::Locked(_)) => e,
        e => Error::Unsupported(format!("drill of backup {short}: {e}")),
    }
}

/// 8 hex digits that no other drill on this host is likely to have.
fn tag() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{:08x}", h.finish() as u32)
}

/// The drill's own directory in the scratch directory, removed with all it
/// holds when dropped.
struct Work {
    path: PathBuf,
    tag: String,
    removed: bool,
}

impl Work {
    fn create(scratch: &Path) -> Result<Work> {
        use std::os::unix::fs::DirBuilderExt;
        let mut last = None;
        for _ in 0..8 {
            let tag = tag();
            let path = scratch.join(format!("arca-drill-{tag}"));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    return Ok(Work {
                        path,
                        tag,
                        removed: false,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(RepoError::io(&path, e).into()),
            }
        }
        Err(RepoError::io(scratch, last.expect("tried")).into())
    }

    /// Removes the directory now, saying whether that worked.
    fn remove(mut self) -> Result<()> {
        self.removed = true;
        remove_tree(&self.path).map_err(|e| {
            Error::Unsupported(format!(
                "the drill's scratch copy {} could not be removed ({e}): remove it by hand",
                self.path.display()
            ))
        })
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        if !self.removed {
            if let Err(e) = remove_tree(&self.path) {
                tracing::warn!(
                    "the drill's scratch copy {} could not be removed ({e}): remove it by hand",
                    self.path.display()
                );
            }
        }
    }
}

/// Removes a directory and everything in it, not following symlinks; a
/// directory already gone is removed.
fn remove_tree(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_eight_hex_digits_and_differ() {
        let a = tag();
        let b = tag();
        assert_eq!(a.len(), 8);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn counts_read_as_english() {
        assert_eq!(count(1, "table"), "1 table");
        assert_eq!(count(0, "table"), "0 tables");
        assert_eq!(count(2, "index"), "2 indexes");
        assert_eq!(count(3, "WAL segment"), "3 WAL segments");
    }

    #[test]
    fn the_work_directory_goes_with_what_it_holds() {
        let d = tempfile::tempdir().unwrap();
        let w = Work::create(d.path()).unwrap();
        std::fs::create_dir(w.path.join("sub")).unwrap();
        std::fs::write(w.path.join("sub/f"), b"x").unwrap();
        drop(w);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
        let w = Work::create(d.path()).unwrap();
        w.remove().unwrap();
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn errors_name_the_backup_and_interruptions_stay_interruptions() {
        let e = named(
            Error::Unsupported("PRAGMA integrity_check failed: x".into()),
            "1a2b3c4d",
        );
        assert_eq!(
            e.to_string(),
            "drill of backup 1a2b3c4d: PRAGMA integrity_check failed: x"
        );
        let e = named(
            RepoError::Interrupted {
                what: "restore".into(),
                left: "",
            }
            .into(),
            "1a2b3c4d",
        );
        assert!(matches!(&e, Error::Repo(r) if r.is_interrupted()), "{e}");
        assert!(e
            .to_string()
            .starts_with("drill of backup 1a2b3c4d interrupted"));
    }
}
