use std::process::ExitCode;

use anyhow::Result;
use arca_repo::repair::{repair_backups, repair_index};

use crate::args::RepairCommand;
use crate::output::print_json;
use crate::progress::Bar;

pub fn run(c: RepairCommand) -> Result<ExitCode> {
    match c {
        RepairCommand::Index(a) => {
            let repo = super::open(&a.repo)?;
            let bar = Bar::new("repair index");
            let report = repair_index(&repo, a.par.get(), &bar)?;
            bar.finish();
            if a.json {
                print_json(&report)?;
                return Ok(ExitCode::SUCCESS);
            }
            for p in &report.problems {
                println!("unreadable: {p}");
            }
            println!(
                "rebuilt the index from {} packs: {} blobs in {} packs, {} frames left out; replaced {} index files",
                report.packs_read,
                report.blobs,
                report.packs_indexed,
                report.frames_dropped,
                report.index_files_replaced
            );
            println!("next: `arca repair backups` removes backups whose data is gone; `arca check --read-data` verifies the rest");
        }
        RepairCommand::Backups(a) => {
            let repo = super::open(&a.repo)?;
            let bar = Bar::new("repair backups");
            let report = repair_backups(&repo, a.read_data, a.dry_run, a.par.get(), &bar)?;
            bar.finish();
            if a.json {
                print_json(&report)?;
                return Ok(ExitCode::SUCCESS);
            }
            let verb = if a.dry_run { "would remove" } else { "removed" };
            for (id, why) in &report.removed {
                println!("{verb} backup {}: {why}", &id[..id.len().min(8)]);
            }
            println!(
                "{} backups restore whole; {} {verb}{}",
                report.kept,
                report.removed.len(),
                if report.removed.is_empty() || a.dry_run {
                    String::new()
                } else {
                    "; `arca prune` frees what only they used".to_string()
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
