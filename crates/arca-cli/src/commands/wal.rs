//! `wal-push` and `wal-fetch`: PostgreSQL's archive_command and restore_command.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use arca_ops::postgres::{
    clear_spool, cluster_of, is_segment_name, take_spooled, wal_fetch, wal_push, Fetched,
};
use arca_repo::Pushed;

use crate::args::{WalFetchArgs, WalPushArgs};

pub fn push(a: WalPushArgs) -> Result<ExitCode> {
    let repo = super::open(&a.repo)?;
    let (cluster, pushed) = wal_push(&repo, &a.wal_file, a.pgdata.as_deref())?;
    match pushed {
        Pushed::Stored { bytes } => {
            tracing::info!(
                "archived {} for cluster {cluster} ({bytes} B stored)",
                a.wal_file.display()
            )
        }
        Pushed::Replaced { bytes, old_len } => tracing::warn!(
            "archived {} for cluster {cluster} ({bytes} B stored), replacing a truncated copy of {old_len} B",
            a.wal_file.display()
        ),
        Pushed::AlreadyStored => tracing::info!(
            "{} was archived before with the same content",
            a.wal_file.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// PostgreSQL ends recovery when restore_command exits 1..=125 and aborts it
/// above 125: a missing segment at the end of the archive is the normal end,
/// while a gap or an unreachable repository must never end recovery early.
const ABORT_RECOVERY: u8 = 126;

pub fn fetch(a: WalFetchArgs) -> Result<ExitCode> {
    match try_fetch(&a) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("error: arca wal-fetch {}: {e:#}", a.name);
            Ok(ExitCode::from(ABORT_RECOVERY))
        }
    }
}

fn try_fetch(a: &WalFetchArgs) -> Result<ExitCode> {
    // Most segments of a fresh restore are waiting in its spool: a rename,
    // before anything else is read.
    let pgdata = a.pgdata.as_deref().unwrap_or(Path::new("."));
    if take_spooled(pgdata, &a.name, &a.dest)? {
        return Ok(ExitCode::SUCCESS);
    }
    let cluster = match &a.cluster {
        Some(c) => c.clone(),
        None => cluster_of(pgdata)?,
    };
    let repo = super::open(&a.repo)?;
    match wal_fetch(&repo, &cluster, &a.name, &a.dest)? {
        Fetched::Found => Ok(ExitCode::SUCCESS),
        Fetched::Missing => {
            tracing::info!("{} is not archived", a.name);
            if is_segment_name(&a.name) {
                // The end of the archive: the rest of the spool is not needed.
                clear_spool(pgdata);
            }
            Ok(ExitCode::FAILURE)
        }
        Fetched::Gap(gap) if a.to_target => {
            tracing::info!("{gap}; the server fails recovery itself if its target lies past it");
            Ok(ExitCode::FAILURE)
        }
        Fetched::Gap(gap) => {
            eprintln!("error: {gap}; refusing to end recovery early");
            Ok(ExitCode::from(ABORT_RECOVERY))
        }
    }
}
