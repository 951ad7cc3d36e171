use std::io::Read;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use arca_ops::{RestoreRequest, Target};
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::args::RestoreArgs;
use crate::output::print_json;
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
    let p = &a.pitr;
    let target = match (&p.target_time, &p.target_lsn, &p.target_snapshot) {
        (None, None, None) => Target::Latest,
        (Some(t), None, None) => Target::Time(super::parse_time(t)?),
        (None, Some(l), None) => Target::Position(l.clone()),
        (None, None, Some(n)) => Target::Named(n.clone()),
        _ => bail!("give one of --target-time, --target-lsn and --target-snapshot"),
    };
    let req = RestoreRequest {
        id: a.id.clone(),
        to,
        force: a.force,
        parallelism: a.par.get_for_restore(),
        target,
        timeline: p.target_timeline.clone(),
        pause_at_target: p.target_action.as_deref() == Some("pause"),
        keep_archiving: p.keep_archiving,
        start: p.start,
        port: p.port,
        reopen: super::repo_flags(&a.repo)?,
    };
    let started = std::time::Instant::now();
    let bar = Bar::new("restore");
    let done = arca_ops::restore(&repo, &req, &bar)?;
    bar.finish();
    if a.json {
        let mut v = serde_json::to_value(&done)?;
        v["duration_ms"] = (started.elapsed().as_millis() as u64).into();
        print_json(&v)?;
    } else {
        for line in &done.lines {
            println!("{line}");
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
