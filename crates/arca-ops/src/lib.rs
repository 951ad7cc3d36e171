//! Arca's operations: drive an engine into a repository and back.
//!
//! The engine gives a consistent image of a live database; the repository
//! stores it. Neither knows the other; this crate connects them.
//! [`repos`] names and opens repositories, for the CLI and a daemon alike.

pub mod backup;
pub mod pg;
pub mod repos;
pub mod restore;
mod target;

pub use backup::{backup, BackupOptions};
pub use restore::{restore, RestoreOptions, RestoreReport};
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

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The engines a `--source` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    Sqlite,
    Postgres,
}

impl EngineKind {
    pub fn of_source(source: &str) -> Result<EngineKind> {
        match source.split_once("://") {
            None => Ok(EngineKind::Sqlite),
            Some(("sqlite" | "file", _)) => Ok(EngineKind::Sqlite),
            Some(("postgres" | "postgresql", _)) => Ok(EngineKind::Postgres),
            Some((scheme @ ("mysql" | "mariadb"), _)) => {
                Err(Error::Unsupported(format!(
                    "{scheme}:// sources are not supported yet in this build; SQLite and PostgreSQL are: --source sqlite://PATH or postgres://USER@HOST:PORT/DB"
                )))
            }
            Some((scheme, _)) => Err(Error::Unsupported(format!(
                "unknown source scheme {scheme}://: use sqlite://PATH or postgres://USER@HOST:PORT/DB"
            ))),
        }
    }
}
