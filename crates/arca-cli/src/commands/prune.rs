use std::process::ExitCode;

use anyhow::Result;
use arca_ops::Pruned;

use crate::args::PruneArgs;
use crate::output::{bytes, out, print_json};

pub fn run(a: PruneArgs) -> Result<ExitCode> {
    let repo = super::open(&a.repo)?;
    let pruned = arca_ops::prune(&repo)?;
    for w in &pruned.packs.warnings {
        eprintln!("warning: {w}");
    }
    if a.json {
        print_json(&json(&pruned)?)?;
    } else {
        print(&pruned)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What a prune did, for `--json` (also `forget --prune --json`).
pub fn json(pruned: &Pruned) -> Result<serde_json::Value> {
    let mut v = serde_json::to_value(&pruned.packs)?;
    // Logs expired, summed over engines (today only PostgreSQL's WAL).
    let files: usize = pruned.logs.iter().map(|l| l.files).sum();
    let freed: u64 = pruned.logs.iter().map(|l| l.bytes).sum();
    v["wal_files_deleted"] = files.into();
    v["wal_bytes_freed"] = freed.into();
    Ok(v)
}

/// What a prune did, for a person (also `forget --prune`).
pub fn print(pruned: &Pruned) -> Result<()> {
    let report = &pruned.packs;
    out(format_args!(
        "pruned: {} packs deleted, {} repacked, {} leftover files removed, {} freed, {} rewritten",
        report.packs_deleted,
        report.packs_repacked,
        report.garbage_files,
        bytes(report.bytes_freed),
        bytes(report.bytes_written)
    ))?;
    for l in pruned.logs.iter().filter(|l| l.files > 0) {
        out(format_args!(
            "expired: {} {} older than every backup, {} freed",
            l.files,
            l.what,
            bytes(l.bytes)
        ))?;
    }
    Ok(())
}
