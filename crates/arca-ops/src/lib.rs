//! Arca's operations: drive an engine into a repository and back.
//!
//! The engine gives a consistent image of a live database; the repository
//! stores it. Neither knows the other; this crate connects them, one folder
//! per engine (`sqlite/`, `postgres/`) behind the [`engine::Engine`] seam.
//! The CLI and the daemon call the functions here and never name an engine;
//! [`repos`] names and opens repositories, for both alike.

pub mod drill;
pub mod engine;
pub mod mysql;
pub mod postgres;
pub mod repos;
pub mod retention;
pub mod schedule;
pub mod sqlite;
mod target;

use arca_repo::{Manifest, Progress, Repository};

pub use engine::{
    BackupOptions, Engine, Expired, LogEvent, LogSource, Objects, RestoreRequest, Restored, Target,
    Window,
};
pub use postgres::{drop_point, points_in, points_only_based_on, unrestorable, Point};
pub use target::remove_temps;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Repo(#[from] arca_repo::Error),
    #[error(transparent)]
    Engine(#[from] arca_engine::Error),
    #[error("{0}")]
    Unsupported(String),
    /// A backup stopped after it had begun to write (a full disk, a store
    /// that refused): what it wrote is garbage until a prune.
    #[error("{error}; the packs this backup wrote stay until `arca prune` removes them")]
    Leftovers { error: arca_repo::Error },
}

pub use arca_engine::ErrorKind;

impl Error {
    /// Whether trying the same operation again later may succeed. An
    /// engine's error decides by its own kind; a repository's is temporary
    /// only when another process holds its lock: the repository has already
    /// retried the store's temporary failures itself.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Engine(e) => e.kind(),
            Error::Repo(arca_repo::Error::Locked(_)) => ErrorKind::Temporary,
            Error::Repo(_) | Error::Leftovers { .. } | Error::Unsupported(_) => {
                ErrorKind::Permanent
            }
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Backs up `opts.source` with the engine its URL names.
pub fn backup(
    repo: &Repository,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<Manifest> {
    let engine = engine::for_source(&opts.source)?;
    engine.backup(repo, opts, progress).map_err(|e| match e {
        Error::Repo(error) if wrote_data(&error) => Error::Leftovers { error },
        e => e,
    })
}

/// A failed write of a pack or index (not of a lock: then nothing was written).
fn wrote_data(e: &arca_repo::Error) -> bool {
    e.request().is_some_and(|r| {
        matches!(r.op, "write" | "rename")
            && r.key.split('/').next() != Some(arca_repo::lock::LOCK_DIR)
    })
}

/// Restores what `req` asks for with the engine of the backup it names.
/// Without an id, the engine of the repository's backups picks one (the
/// newest reaching the target, or the only one).
pub fn restore(
    repo: &Repository,
    req: &RestoreRequest,
    progress: &dyn Progress,
) -> Result<Restored> {
    let manifests = repo.manifests()?;
    let chosen = match req.id.as_deref() {
        None | Some("latest") => None,
        // Among the manifests just read; one that is not there (damaged)
        // is read once more for the error that names its problem.
        Some(id) => {
            let id = repo.resolve_id(id)?;
            match manifests.iter().find(|m| m.id == id) {
                Some(m) => Some(m.clone()),
                None => Some(repo.read_manifest(&id)?),
            }
        }
    };
    let engine = match (&chosen, req.id.as_deref()) {
        (Some(m), _) => engine::of(m)?,
        // `latest`: the newest backup's engine picks its newest.
        (None, Some(_)) => engine::of(manifests.last().ok_or(arca_repo::Error::NoBackups)?)?,
        (None, None) => {
            let mut engines: Vec<_> = manifests.iter().map(|m| m.engine.as_str()).collect();
            engines.sort();
            engines.dedup();
            match engines.as_slice() {
                [] => return Err(arca_repo::Error::NoBackups.into()),
                [_] => engine::of(&manifests[0])?,
                _ => {
                    return Err(Error::Unsupported(format!(
                        "{} holds backups of {} engines ({}): name the backup to restore (an id from `arca list`, or `latest`)",
                        repo.location(),
                        engines.len(),
                        engines.join(", ")
                    )))
                }
            }
        }
    };
    engine.restore(repo, &written_by(engine, &manifests), chosen, req, progress)
}

/// The manifests `engine` wrote: an engine is never handed another's.
fn written_by(engine: &dyn Engine, manifests: &[Manifest]) -> Vec<Manifest> {
    manifests
        .iter()
        .filter(|m| m.engine == engine.name())
        .cloned()
        .collect()
}

/// What [`prune`] did: packs, and each engine's expired logs.
#[derive(Debug, serde::Serialize)]
pub struct Pruned {
    #[serde(flatten)]
    pub packs: arca_repo::PruneReport,
    #[serde(skip)]
    pub logs: Vec<Expired>,
}

/// Removes what no backup needs: packs (repacking where worth it), then
/// each engine's log objects older than every backup that needs them.
pub fn prune(repo: &Repository) -> Result<Pruned> {
    let packs = arca_repo::prune(repo)?;
    let _lock = repo.lock_exclusive("prune")?;
    let (manifests, damaged) = repo.manifests_and_damage()?;
    let mut logs = Vec::new();
    // A damaged manifest may be the oldest backup still needing its log.
    if damaged.is_empty() {
        for e in engine::ENGINES {
            logs.push(e.expire_logs(repo, &written_by(*e, &manifests))?);
        }
    }
    Ok(Pruned { packs, logs })
}

/// What the engine that wrote backup `m` says of it, a line each (a MySQL
/// backup: its consistency point); nothing for an engine this arca does
/// not know.
pub fn describe(m: &Manifest) -> Vec<String> {
    engine::of(m).map_or_else(|_| Vec::new(), |e| e.describe(m))
}

/// Every source's recoverable window, by engine.
pub fn windows(repo: &Repository, manifests: &[Manifest]) -> Result<Vec<Window>> {
    let mut out = Vec::new();
    for e in engine::ENGINES {
        out.extend(e.windows(repo, &written_by(*e, manifests))?);
    }
    Ok(out)
}

/// Names the current point of `source`'s log.
pub fn create_point(repo: &Repository, source: &str, name: &str) -> Result<engine::NamedPoint> {
    engine::for_source(source)?.create_point(repo, source, name)
}

/// A byte count for a person: `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
