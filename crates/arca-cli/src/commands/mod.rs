//! One module per verb.

mod backup;
mod check;
mod delete;
pub mod demo;
mod init;
mod list;
mod prune;
mod restore;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use arca_repo::{Location, Repository};

use crate::args::{Cli, Command, RepoArgs};

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Init(a) => init::run(a),
        Command::Backup(a) => backup::run(a),
        Command::List(a) => list::run(a),
        Command::Check(a) => check::run(a),
        Command::Restore(a) => restore::run(a),
        Command::Delete(a) => delete::run(a),
        Command::Prune(a) => prune::run(a),
        Command::Demo(a) => demo::run(a),
    }
}

/// Resolves `--repo`, `ARCA_REPO`, or mo_br's `--backup_dir filesystem --path P`.
pub fn location(a: &RepoArgs) -> Result<Location> {
    if let Some(kind) = &a.backup_dir {
        if kind != "filesystem" {
            bail!("--backup_dir {kind} is not supported by this build: use --backup_dir filesystem --path PATH, or --repo PATH");
        }
    }
    let given = match (&a.repo, &a.path) {
        (Some(r), None) => r.clone(),
        (None, Some(p)) => p.clone(),
        (Some(r), Some(p)) if r == p => r.clone(),
        (Some(_), Some(_)) => bail!("--repo and --path name different repositories: give one"),
        (None, None) => bail!("no repository given: pass --repo PATH or set ARCA_REPO"),
    };
    Ok(Location::parse(&given)?)
}

pub fn open(a: &RepoArgs) -> Result<Repository> {
    let mut repo = Repository::open(&location(a)?)?;
    repo.lock_wait = Duration::from_secs(a.lock_wait);
    Ok(repo)
}
