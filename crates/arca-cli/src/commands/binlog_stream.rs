//! `binlog-stream`: a MySQL/MariaDB server's binary log into the repository
//! until SIGINT or SIGTERM (which store what has arrived and exit 0), or up
//! to the server's current position with --until-now.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use arca_ops::mysql::{binlog_stream, BinlogEvent, BinlogOptions};
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::args::BinlogStreamArgs;
use crate::output::print_json;

pub fn run(a: BinlogStreamArgs) -> Result<ExitCode> {
    let repo = super::open(&a.repo)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // A second signal ends the process at once, if storing hangs.
        signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&stop)))
            .context("installing signal handlers")?;
    }
    let opts = BinlogOptions {
        source: a.source.clone(),
        password_file: a.password_file.clone(),
        until_now: a.until_now,
        from_now: a.from_now,
        seal_every: Duration::from_secs(a.seal_interval),
        replica_id: a.replica_server_id,
    };
    let json = a.json;
    let mut on_event = |ev: BinlogEvent<'_>| match ev {
        BinlogEvent::Started {
            server,
            stream,
            start,
            reason,
        } => {
            if !json {
                println!(
                    "archiving the binary log of {server} into {stream} from {start} ({reason}){}",
                    if a.until_now {
                        ", up to the server's current position"
                    } else {
                        "; stop with SIGINT or SIGTERM"
                    }
                );
                let _ = std::io::stdout().flush();
            }
        }
        BinlogEvent::SegmentStored { name, transactions } => {
            tracing::info!("segment {name} stored ({transactions} transactions)")
        }
        BinlogEvent::Reconnecting { error, wait } => {
            eprintln!("warning: {error}; connecting again in {} s", wait.as_secs());
        }
    };
    let report = binlog_stream(&repo, &opts, &stop, &mut on_event)?;
    if json {
        print_json(&report)?;
    } else {
        println!(
            "stopped: the binary log up to {}{} is in the repository ({} transaction{} in {} segment{} this run)",
            report.stored_up_to,
            report
                .last_gtid
                .as_deref()
                .map(|g| format!(" (GTID {g})"))
                .unwrap_or_default(),
            report.transactions,
            if report.transactions == 1 { "" } else { "s" },
            report.segments,
            if report.segments == 1 { "" } else { "s" },
        );
    }
    Ok(ExitCode::SUCCESS)
}
