use std::process::ExitCode;

use anyhow::Result;

use crate::args::PruneArgs;
use crate::output::{bytes, print_json};

pub fn run(a: PruneArgs) -> Result<ExitCode> {
    let repo = super::open(&a.repo)?;
    let report = arca_repo::prune(&repo)?;
    if a.json {
        print_json(&report)?;
    } else {
        println!(
            "pruned: {} packs deleted, {} repacked, {} leftover files removed, {} freed, {} rewritten",
            report.packs_deleted,
            report.packs_repacked,
            report.garbage_files,
            bytes(report.bytes_freed),
            bytes(report.bytes_written)
        );
    }
    Ok(ExitCode::SUCCESS)
}
