use std::io::Read;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use arca_ops::RestoreOptions;
use signal_hook::consts::{SIGINT, SIGTERM};

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
    clean_up_on_signal()?;
    if a.pitr.is_set() {
        return super::pg_restore::run(&repo, &a, to, &repo.manifests()?);
    }
    let snap = match &a.id {
        Some(id) => repo.find_manifest(id)?,
        None => {
            let snaps = repo.manifests()?;
            // A PostgreSQL repository holds many backups; arca picks the
            // newest that reaches the target.
            if snaps
                .iter()
                .any(|s| s.engine == arca_repo::EngineName::Postgres)
            {
                return super::pg_restore::run(&repo, &a, to, &snaps);
            }
            the_only_backup(&repo, snaps)?
        }
    };
    if snap.engine == arca_repo::EngineName::Postgres {
        return super::pg_restore::run(&repo, &a, to, &repo.manifests()?);
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

/// On SIGINT or SIGTERM, removes the partial restore beside the target
/// before exiting (the default action would leave it there); a second
/// signal ends the process at once.
fn clean_up_on_signal() -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let which = Arc::new(AtomicUsize::new(0));
    // A thread blocked on a socket wakes at once: polling a flag would let
    // the restore write on meanwhile.
    let (mut rx, tx) = UnixStream::pair().context("installing signal handlers")?;
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register_usize(sig, Arc::clone(&which), sig as usize))
            .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&stop)))
            .and_then(|_| signal_hook::low_level::pipe::register(sig, tx.try_clone()?))
            .context("installing signal handlers")?;
    }
    std::thread::spawn(move || loop {
        let mut byte = [0u8; 1];
        if !matches!(rx.read(&mut byte), Ok(1)) {
            return;
        }
        let sig = which.load(Ordering::SeqCst);
        if sig != 0 {
            if arca_ops::remove_temps() > 0 {
                eprintln!("error: restore cancelled: its partial files were removed");
            } else {
                eprintln!("error: restore cancelled");
            }
            std::process::exit(128 + sig as i32);
        }
    });
    Ok(())
}

/// mo_br names a backup by its location alone; here that means a repository
/// holding exactly one backup.
fn the_only_backup(
    repo: &arca_repo::Repository,
    mut snaps: Vec<arca_repo::Manifest>,
) -> Result<arca_repo::Manifest> {
    match snaps.len() {
        0 => Err(arca_repo::Error::NoBackups.into()),
        1 => Ok(snaps.remove(0)),
        n => bail!(
            "{} holds {n} backups: name one (an id from `arca list`, or `latest`)",
            repo.location()
        ),
    }
}
