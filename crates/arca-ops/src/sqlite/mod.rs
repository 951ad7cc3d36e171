//! SQLite: a byte image of one database file, taken online; restored to a
//! file. SQLite keeps no log in the repository, so it has no windows, no
//! log expiry and no named points.

mod backup;
mod drill;
mod restore;

use arca_repo::{EngineName, Manifest, Progress, Repository};

use crate::drill::{DrillOptions, Drilled, Scratch};
use crate::engine::{BackupOptions, Engine, RestoreRequest, Restored};
use crate::{Error, Result};

pub use arca_engine::sqlite::integrity_check;

pub struct Sqlite;

impl Engine for Sqlite {
    fn name(&self) -> EngineName {
        EngineName::Sqlite
    }

    fn title(&self) -> &'static str {
        "SQLite"
    }

    fn source_forms(&self) -> &'static str {
        "sqlite://PATH (or a path)"
    }

    fn recognises(&self, source: &str) -> bool {
        matches!(
            source.split_once("://"),
            None | Some(("sqlite" | "file", _))
        )
    }

    fn backup(
        &self,
        repo: &Repository,
        opts: &BackupOptions,
        progress: &dyn Progress,
    ) -> Result<Manifest> {
        opts.refuse_objects(self.title())?;
        backup::backup(repo, opts, progress)
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
        let m = match (chosen, req.id.as_deref()) {
            (Some(m), _) => m,
            (None, Some(_latest)) => manifests
                .last()
                .cloned()
                .ok_or(arca_repo::Error::NoBackups)?,
            (None, None) => the_only_backup(repo, manifests)?,
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

/// mo_br names a backup by its location alone; for SQLite that means a
/// repository holding exactly one backup.
fn the_only_backup(repo: &Repository, manifests: &[Manifest]) -> Result<Manifest> {
    match manifests {
        [] => Err(arca_repo::Error::NoBackups.into()),
        [m] => Ok(m.clone()),
        _ => Err(Error::Unsupported(format!(
            "{} holds {} backups: name one (an id from `arca list`, or `latest`)",
            repo.location(),
            manifests.len()
        ))),
    }
}
