use std::process::ExitCode;

use anyhow::Result;
use arca_repo::{check, CheckOptions, NoProgress};

use crate::args::ListArgs;
use crate::output::{bytes, print_json, snapshot_json, snapshot_table};

pub fn run(a: ListArgs) -> Result<ExitCode> {
    let repo = super::open(&a.repo)?;
    let path = repo.location().to_string();
    let Some(id) = a.id else {
        let snaps = repo.snapshots()?;
        if a.json {
            let v: Vec<_> = snaps.iter().map(|s| snapshot_json(s, &path)).collect();
            print_json(&v)?;
        } else {
            println!("{}", snapshot_table(&snaps, &path));
        }
        return Ok(ExitCode::SUCCESS);
    };
    // One backup: show it and check that every file it needs is present.
    let snap = repo.find_snapshot(&id)?;
    let report = check(
        &repo,
        &CheckOptions {
            read_data: false,
            snapshot: Some(snap.id.to_hex()),
            parallelism: 1,
        },
        &NoProgress,
    )?;
    if a.json {
        let mut v = serde_json::to_value(snapshot_json(&snap, &path))?;
        v["complete"] = serde_json::Value::Bool(report.is_ok());
        v["errors"] = serde_json::to_value(&report.errors)?;
        print_json(&v)?;
    } else {
        println!("{}", snapshot_table(std::slice::from_ref(&snap), &path));
        println!("source:       {}", snap.source);
        println!("kind:         {}", snap.kind);
        println!("stored bytes: {}", bytes(snap.stored_bytes));
        if !snap.tags.is_empty() {
            println!("tags:         {}", snap.tags.join(", "));
        }
        for f in &snap.files {
            println!(
                "file:         {} ({}, {} blocks of {} B)",
                f.path,
                bytes(f.size),
                f.blocks,
                f.block_size
            );
        }
        if report.is_ok() {
            println!("complete:     every file's data is present");
        } else {
            for e in &report.errors {
                println!("missing:      {e}");
            }
        }
    }
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
