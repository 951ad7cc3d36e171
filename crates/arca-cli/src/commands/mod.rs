//! One module per verb.

mod backup;
mod binlog_stream;
mod check;
mod compare;
mod delete;
pub mod demo;
mod forget;
mod init;
mod list;
mod prune;
mod repair;
mod repo;
mod restore;
mod serve;
mod snapshot;
mod sql;
mod wal;
mod wal_stream;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Result};
use arca_ops::repos::{self, RepoSpec};
use arca_repo::{Location, Repository};

use crate::args::{Cli, Command, RepoArgs};

pub fn run(mut cli: Cli) -> Result<ExitCode> {
    if let Some(r) = cli.command.repo_args_mut() {
        r.config.clone_from(&cli.config);
    }
    match cli.command {
        Command::Init(a) => init::run(a),
        Command::Backup(a) => backup::run(a),
        Command::List(a) => list::run(a),
        Command::Check(a) => check::run(a),
        Command::Restore(a) => restore::run(a),
        Command::Delete(a) => delete::run(a),
        Command::Prune(a) => prune::run(a),
        Command::Forget(a) => forget::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Repo(c) => repo::run(c, cli.config.as_deref()),
        Command::WalPush(a) => wal::push(a),
        Command::WalFetch(a) => wal::fetch(a),
        Command::WalStream(a) => wal_stream::run(a),
        Command::BinlogStream(a) => binlog_stream::run(a),
        Command::Snapshot(c) => snapshot::run(c),
        Command::Repair(c) => repair::run(c),
        Command::Compare(a) => compare::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Sql(a) => sql::run(a),
    }
}

/// What `--repo` and the location flags gave, for [`arca_ops::repos`].
fn spec(a: &RepoArgs) -> RepoSpec {
    if a.access_key_id.is_some() || a.secret_access_key.is_some() {
        eprintln!(
            "warning: --access_key_id/--secret_access_key show in the process list to every user of this machine; \
             prefer AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws/credentials"
        );
    }
    RepoSpec {
        repo: a.repo.clone(),
        config: a.config.clone(),
        backup_dir: a.backup_dir.clone(),
        path: a.path.clone(),
        bucket: a.bucket.clone(),
        filepath: a.filepath.clone(),
        endpoint: a.endpoint.clone(),
        region: a.region.clone(),
        is_minio: a.is_minio,
        role_arn: a.role_arn.clone(),
        access_key_id: a.access_key_id.clone(),
        secret_access_key: a.secret_access_key.clone(),
        lock_wait: Duration::from_secs(a.lock_wait),
    }
}

/// Where the repository is: see [`repos::resolve`].
pub fn location(a: &RepoArgs) -> Result<Location> {
    Ok(repos::location(&spec(a))?)
}

/// Opens the repository, waiting `--lock-wait` for a conflicting lock.
pub fn open(a: &RepoArgs) -> Result<Repository> {
    let mut repo = repos::open(&spec(a))?;
    repo.cancel = crate::signals::token();
    Ok(repo)
}

/// The flags that reach the same repository from another process (the
/// restore_command of a restored PostgreSQL): never a secret.
pub fn repo_flags(a: &RepoArgs) -> Result<Vec<String>> {
    Ok(repos::reopen_args(&spec(a))?)
}

/// A time as users write it: "YYYY-MM-DD HH:MM:SS[.ffffff][+TZ]", RFC 3339,
/// or without a zone in this machine's zone.
pub fn parse_time(s: &str) -> Result<jiff::Timestamp> {
    let t = s.trim();
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts);
    }
    // PostgreSQL's own "+00" offset form.
    let padded = match t.rfind(['+', '-']) {
        Some(i) if i > 10 && t.len() - i == 3 => format!("{t}:00"),
        _ => t.to_string(),
    };
    if let Ok(ts) = padded.parse::<jiff::Timestamp>() {
        return Ok(ts);
    }
    let civil: jiff::civil::DateTime = t.parse().map_err(|_| {
        anyhow!("{s:?} is not a time: write YYYY-MM-DD HH:MM:SS, optionally with .ffffff and a zone such as +00:00")
    })?;
    Ok(civil.to_zoned(jiff::tz::TimeZone::system())?.timestamp())
}
