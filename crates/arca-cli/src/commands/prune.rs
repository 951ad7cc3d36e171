use std::process::ExitCode;

use anyhow::Result;

use crate::args::PruneArgs;
use crate::output::{bytes, print_json};

pub fn run(a: PruneArgs) -> Result<ExitCode> {
    let repo = super::open(&a.repo)?;
    let report = arca_repo::prune(&repo)?;
    let wal = {
        let _lock = repo.lock_exclusive("prune")?;
        let (snaps, damaged) = repo.manifests_and_damage()?;
        if damaged.is_empty() {
            arca_ops::pg::expire_wal(&repo, &snaps)?
        } else {
            // A damaged manifest may be the oldest backup still needing its WAL.
            Default::default()
        }
    };
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if a.json {
        let mut v = serde_json::to_value(&report)?;
        v["wal_files_deleted"] = wal.files.into();
        v["wal_bytes_freed"] = wal.bytes.into();
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
        if wal.files > 0 {
            println!(
                "expired: {} WAL files older than every backup, {} freed",
                wal.files,
                bytes(wal.bytes)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
