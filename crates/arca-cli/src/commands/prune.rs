use std::process::ExitCode;

use anyhow::Result;

use crate::args::PruneArgs;
use crate::output::{bytes, print_json};

pub fn run(a: PruneArgs) -> Result<ExitCode> {
    let repo = super::open(&a.repo)?;
    let pruned = arca_ops::prune(&repo)?;
    let report = &pruned.packs;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if a.json {
        let mut v = serde_json::to_value(report)?;
        // Logs expired, summed over engines (today only PostgreSQL's WAL).
        let files: usize = pruned.logs.iter().map(|l| l.files).sum();
        let freed: u64 = pruned.logs.iter().map(|l| l.bytes).sum();
        v["wal_files_deleted"] = files.into();
        v["wal_bytes_freed"] = freed.into();
        print_json(&v)?;
    } else {
        println!(
            "pruned: {} packs deleted, {} repacked, {} leftover files removed, {} freed, {} rewritten",
            report.packs_deleted,
            report.packs_repacked,
            report.garbage_files,
            bytes(report.bytes_freed),
            bytes(report.bytes_written)
        );
        for l in pruned.logs.iter().filter(|l| l.files > 0) {
            println!(
                "expired: {} {} older than every backup, {} freed",
                l.files,
                l.what,
                bytes(l.bytes)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
