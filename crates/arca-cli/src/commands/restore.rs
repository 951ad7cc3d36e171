use std::process::ExitCode;

use anyhow::{bail, Result};
use arca_ops::RestoreOptions;

use crate::args::RestoreArgs;
use crate::output::{bytes, print_json};
use crate::progress::Bar;

pub fn run(a: RestoreArgs) -> Result<ExitCode> {
    if let Some(kind) = &a.restore_dir {
        if kind != "filesystem" {
            bail!("--restore_dir {kind} is not supported: use --restore_dir filesystem --restore_path PATH, or --to PATH");
        }
    }
    let to = match (a.to.clone(), a.restore_path.clone()) {
        (Some(t), None) | (None, Some(t)) => t,
        (Some(t), Some(p)) if t == p => t,
        (Some(_), Some(_)) => bail!("--to and --restore_path name different targets: give one"),
        (None, None) => bail!("no restore target: pass --to PATH"),
    };
    let repo = super::open(&a.repo)?;
    if a.pitr.is_set() {
        return super::pg_restore::run(&repo, &a, to, &repo.snapshots()?);
    }
    let snap = match &a.id {
        Some(id) => repo.find_snapshot(id)?,
        None => {
            let snaps = repo.snapshots()?;
            // A PostgreSQL repository holds many backups; arca picks the
            // newest that reaches the target.
            if snaps.iter().any(|s| s.engine == "postgres") {
                return super::pg_restore::run(&repo, &a, to, &snaps);
            }
            the_only_backup(&repo, snaps)?
        }
    };
    if snap.engine == "postgres" {
        return super::pg_restore::run(&repo, &a, to, &repo.snapshots()?);
    }
    let started = std::time::Instant::now();
    let bar = Bar::new("restore");
    let report = arca_ops::restore(
        &repo,
        &snap,
        &RestoreOptions {
            to,
            force: a.force,
            parallelism: a.par.get_for_restore(),
        },
        &bar,
    )?;
    bar.finish();
    if a.json {
        let mut v = serde_json::to_value(&report)?;
        v["duration_ms"] = (started.elapsed().as_millis() as u64).into();
        print_json(&v)?;
    } else {
        for f in &report.files {
            println!(
                "restored backup {} to {} ({}, every block verified)",
                snap.id.short(),
                f.display(),
                bytes(report.bytes)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// mo_br names a backup by its location alone; here that means a repository
/// holding exactly one backup.
fn the_only_backup(
    repo: &arca_repo::Repository,
    mut snaps: Vec<arca_repo::Snapshot>,
) -> Result<arca_repo::Snapshot> {
    match snaps.len() {
        0 => Err(arca_repo::Error::NoSnapshots.into()),
        1 => Ok(snaps.remove(0)),
        n => bail!(
            "{} holds {n} backups: name one (an id from `arca list`, or `latest`)",
            repo.location()
        ),
    }
}
