use std::process::ExitCode;

use anyhow::Result;
use arca_repo::{check, CheckOptions, NoProgress};

use crate::args::ListArgs;
use crate::output::{backup_json, backup_table, bytes, out, print_json};

pub fn run(a: ListArgs) -> Result<ExitCode> {
    let repo = super::open(&a.repo)?;
    let path = repo.location().to_string();
    let Some(id) = a.id else {
        let (snaps, damaged) = repo.manifests_and_damage()?;
        let damaged_id = |d: &arca_repo::index::Damaged| {
            d.path.rsplit('/').next().unwrap_or_default().to_string()
        };
        let windows = arca_ops::windows(&repo, &snaps)?;
        if a.json {
            // Each backup carries its source's window and lag.
            let mut v = Vec::with_capacity(snaps.len());
            for s in &snaps {
                let mut j = serde_json::to_value(backup_json(s, &path))?;
                if let Some(p) = arca_ops::Point::of(s) {
                    let problem = arca_ops::unrestorable(&p, &snaps);
                    j["restorable"] = problem.is_none().into();
                    j["problem"] = problem.into();
                }
                if let Some(w) = windows.iter().find(|w| w.covers(s)) {
                    j["cluster_window"] = w.json.clone();
                }
                v.push(j);
            }
            v.extend(damaged.iter().map(
                |d| serde_json::json!({"id": damaged_id(d), "damaged": true, "problem": d.problem}),
            ));
            print_json(&v)?;
        } else {
            out(backup_table(&snaps, &path))?;
            for s in &snaps {
                for f in &s.files {
                    if let Some(problems) = f.meta["quick_check"].as_array() {
                        let problems: Vec<_> = problems.iter().filter_map(|p| p.as_str()).collect();
                        out(format_args!(
                            "source check: backup {} file {}: failed PRAGMA quick_check when backed up ({})",
                            s.id.short(),
                            f.path,
                            problems.join("; ")
                        ))?;
                    }
                }
            }
            for d in &damaged {
                let id = damaged_id(d);
                let short = &id[..id.len().min(8)];
                out(format_args!(
                    "damaged: backup {short}: {}; `arca delete {short}` removes it",
                    d.problem
                ))?;
            }
            for p in arca_ops::points_in(&snaps) {
                if let Some(why) = arca_ops::unrestorable(&p, &snaps) {
                    out(format_args!(
                        "unrestorable: named snapshot {} ({}): {why}",
                        p.name,
                        &p.id[..8]
                    ))?;
                }
            }
            for line in windows.iter().flat_map(|w| &w.lines) {
                out(line)?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    };
    // One backup: show it and check that every file it needs is present.
    let snap = repo.find_manifest(&id)?;
    let report = check(
        &repo,
        &CheckOptions {
            read_data: false,
            backup: Some(snap.id.to_hex()),
            parallelism: 1,
        },
        &NoProgress,
    )?;
    if a.json {
        let mut v = serde_json::to_value(backup_json(&snap, &path))?;
        v["complete"] = serde_json::Value::Bool(report.is_ok());
        v["errors"] = serde_json::to_value(&report.errors)?;
        print_json(&v)?;
    } else {
        out(backup_table(std::slice::from_ref(&snap), &path))?;
        out(format_args!("source:       {}", snap.source))?;
        out(format_args!("kind:         {}", snap.kind))?;
        out(format_args!("stored bytes: {}", bytes(snap.stored_bytes)))?;
        if !snap.tags.is_empty() {
            out(format_args!("tags:         {}", snap.tags.join(", ")))?;
        }
        for line in arca_ops::describe(&snap) {
            out(line)?;
        }
        for f in &snap.files {
            let blocks = match f.block_size {
                0 => format!("{} blocks of whole rows", f.blocks),
                n => format!("{} blocks of {n} B", f.blocks),
            };
            out(format_args!(
                "file:         {} ({}, {blocks})",
                f.path,
                bytes(f.size)
            ))?;
        }
        if report.is_ok() {
            out("complete:     every file's data is present")?;
        } else {
            for e in &report.errors {
                out(format_args!("missing:      {e}"))?;
            }
        }
    }
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
