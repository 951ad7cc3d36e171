//! SIGINT and SIGTERM. The first trips the cancellation token that every
//! repository this process opens carries ([`token`]): the command stops at
//! its next step, leaves nothing half-done, and fails with one line and
//! exit code 130. A second signal ends the process at once, after removing
//! a restore's partial files.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::sync::OnceLock;

use anyhow::{Context, Result};
use arca_repo::Cancel;
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::args::Command;

/// The exit code of a command stopped by a signal: 130, as for Ctrl-C, by
/// SIGTERM as well.
pub const INTERRUPTED: u8 = 130;

/// The token of this process; [`install`] trips it on a signal.
pub fn token() -> Cancel {
    static TOKEN: OnceLock<Cancel> = OnceLock::new();
    TOKEN.get_or_init(Cancel::new).clone()
}

/// The commands that stop cleanly on the token. The others keep the
/// signals' default action: `wal-push` and `wal-fetch` run under
/// PostgreSQL, which signals them as it means to, `wal-stream` handles its
/// own, and the rest end at once with nothing to clean up.
pub fn wanted(c: &Command) -> bool {
    matches!(
        c,
        Command::Backup(_)
            | Command::Restore(_)
            | Command::Check(_)
            | Command::Prune(_)
            | Command::Repair(_)
            | Command::Delete(_)
            | Command::Forget(_)
            | Command::Snapshot(_)
    )
}

/// Installs the handlers, once per process.
pub fn install() -> Result<()> {
    let token = token();
    // The handler sets the token's flag, so the work sees it at once, and
    // writes a byte for the thread below, which wakes a lock wait and
    // counts the signals.
    let (mut rx, tx) = UnixStream::pair().context("installing signal handlers")?;
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register(sig, token.flag())
            .and_then(|_| signal_hook::low_level::pipe::register(sig, tx.try_clone()?))
            .context("installing signal handlers")?;
    }
    std::thread::Builder::new()
        .name("arca-signals".into())
        .spawn(move || {
            let mut byte = [0u8; 1];
            if !matches!(rx.read(&mut byte), Ok(1)) {
                return;
            }
            token.cancel();
            if !matches!(rx.read(&mut byte), Ok(1)) {
                return;
            }
            if arca_ops::remove_temps() > 0 {
                eprintln!("error: restore interrupted: its partial files were removed");
            } else {
                eprintln!("error: interrupted twice: stopped at once");
            }
            // Locks stay behind; they belong to a process that is gone, so
            // the next arca on this host removes them at once.
            std::process::exit(INTERRUPTED.into());
        })
        .context("installing signal handlers")?;
    Ok(())
}

/// The command failed because its token was tripped.
pub fn interrupted(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<arca_repo::Error>()
            .is_some_and(arca_repo::Error::is_interrupted)
            || matches!(
                e.downcast_ref::<arca_ops::Error>(),
                Some(arca_ops::Error::Repo(r)) if r.is_interrupted()
            )
    })
}
