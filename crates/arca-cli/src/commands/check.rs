use std::process::ExitCode;

use anyhow::Result;
use arca_repo::{check, CheckOptions};

use crate::args::CheckArgs;
use crate::output::{bytes, print_json};
use crate::progress::Bar;

pub fn run(a: CheckArgs) -> Result<ExitCode> {
    let repo = super::open(&a.repo)?;
    let bar = Bar::new("check");
    let report = check(
        &repo,
        &CheckOptions {
            read_data: a.read_data,
            backup: a.id,
            parallelism: a.par.get(),
        },
        &bar,
    )?;
    bar.finish();
    if a.json {
        let mut v = serde_json::to_value(&report)?;
        v["ok"] = serde_json::Value::Bool(report.is_ok());
        print_json(&v)?;
    } else {
        for e in &report.errors {
            println!("error: {e}");
        }
        let what = if a.read_data && report.logs > 0 {
            format!(
                ", read {} in {} blobs and {} archived log segments",
                bytes(report.bytes_read),
                report.blobs_read,
                report.logs
            )
        } else if a.read_data {
            format!(
                ", read {} in {} blobs",
                bytes(report.bytes_read),
                report.blobs_read
            )
        } else {
            String::new()
        };
        if report.is_ok() {
            println!(
                "no errors: {} backups, {} packs{what}",
                report.backups, report.packs
            );
        } else {
            println!(
                "{} errors found: {} backups, {} packs{what}",
                report.errors.len(),
                report.backups,
                report.packs
            );
        }
    }
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
