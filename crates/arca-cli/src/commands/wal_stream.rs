//! `wal-stream`: WAL over a replication slot into the repository until
//! SIGINT or SIGTERM, which store the growing segment and exit 0.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use arca_ops::postgres::PgSource;
use arca_ops::postgres::{wal_stream, StreamEvent, StreamOptions};
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::args::WalStreamArgs;

pub fn run(a: WalStreamArgs) -> Result<ExitCode> {
    let source = PgSource::parse(&a.source, None)?;
    let repo = super::open(&a.repo)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // A second signal ends the process at once, if storing hangs.
        signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&stop)))
            .context("installing signal handlers")?;
    }
    let opts = StreamOptions {
        slot: a.slot.clone(),
        status_interval: Duration::from_secs(a.status_interval),
    };
    let mut on_event = |ev: StreamEvent<'_>| match ev {
        StreamEvent::Started {
            system_identifier,
            timeline,
            start,
            slot_created,
        } => {
            println!(
                "streaming WAL of cluster {system_identifier} from {start} on timeline {timeline} (slot {}{}); stop with SIGINT or SIGTERM",
                a.slot,
                if slot_created { ", created" } else { "" }
            );
            let _ = std::io::stdout().flush();
        }
        StreamEvent::SegmentStored { name } => tracing::info!("segment {name} stored"),
        StreamEvent::Reconnecting { error, wait } => {
            eprintln!("warning: {error}; connecting again in {} s", wait.as_secs());
        }
        StreamEvent::TimelineSwitch { from, to, at } => {
            println!("timeline {from} ended at {at}: following timeline {to}");
            let _ = std::io::stdout().flush();
        }
    };
    let report = wal_stream(&repo, &source, &opts, &stop, &mut on_event)?;
    println!(
        "stopped: WAL of cluster {} up to {} is in the repository ({} segment{} completed{})",
        report.system_identifier,
        report.stored_up_to,
        report.segments,
        if report.segments == 1 { "" } else { "s" },
        report
            .partial
            .as_deref()
            .map(|p| format!(", {p} growing"))
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}
