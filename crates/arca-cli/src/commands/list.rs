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
        let windows = arca_ops::pg::cluster_windows(&repo, &snaps)?;
        if a.json {
            // Each PostgreSQL backup carries its cluster's window and lag.
            let mut v = Vec::with_capacity(snaps.len());
            for s in &snaps {
                let mut j = serde_json::to_value(backup_json(s, &path))?;
                if let Some(p) = arca_ops::pg::Point::of(s) {
                    let problem = arca_ops::pg::unrestorable(&p, &snaps);
                    j["restorable"] = problem.is_none().into();
                    j["problem"] = problem.into();
                }
                if let Some(w) = arca_ops::pg::PgBackupMeta::of(s).and_then(|m| {
                    windows
                        .iter()
                        .find(|w| w.system_identifier == m.system_identifier)
                }) {
                    j["cluster_window"] = serde_json::to_value(w)?;
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
            for p in arca_ops::pg::points_in(&snaps) {
                if let Some(why) = arca_ops::pg::unrestorable(&p, &snaps) {
                    out(format_args!(
                        "unrestorable: named snapshot {} ({}): {why}",
                        p.name,
                        &p.id[..8]
                    ))?;
                }
            }
            for w in &windows {
                out(window_line(w))?;
                for b in &w.timelines {
                    out(format_args!(
                        "  timeline {} branched from timeline {} at {}",
                        b.timeline, b.parent, b.switch_lsn
                    ))?;
                }
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
        for f in &snap.files {
            out(format_args!(
                "file:         {} ({}, {} blocks of {} B)",
                f.path,
                bytes(f.size),
                f.blocks,
                f.block_size
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

/// One PostgreSQL cluster's recoverable window and archive lag.
fn window_line(w: &arca_ops::pg::ClusterWindow) -> String {
    let local = |t: &jiff::Timestamp| {
        t.to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S %Z")
            .to_string()
    };
    let window = match (&w.from, &w.to) {
        (Some(f), Some(t)) if f <= t => format!(
            "recoverable from {} to {} (the last archived transaction)",
            local(f),
            local(t)
        ),
        (Some(f), _) => format!(
            "recoverable at {} only (no transaction archived after it)",
            local(f)
        ),
        (None, _) => "not recoverable: no backup yet".to_string(),
    };
    let lag = match w.lag_seconds {
        Some(s) => format!("archive lag {s} s"),
        None => "no WAL archived".to_string(),
    };
    format!(
        "PostgreSQL cluster {}: {window}; {lag}; newest WAL {}; {} backups, {} WAL files",
        w.system_identifier,
        w.newest_segment.as_deref().unwrap_or("-"),
        w.backups,
        w.segments
    )
}
