use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use arca_ops::mysql::{CompareRequest, Problem, Report, RowKind, TableDifference};
use arca_ops::Objects;

use crate::args::CompareArgs;
use crate::output::{out, print_json};

/// Exit statuses as diff and cmp have them: 0 identical, 1 different, 2
/// the comparison failed, so a script tells a difference from a failure.
const DIFFERENT: u8 = 1;
const FAILED: u8 = 2;

pub fn run(a: CompareArgs) -> Result<ExitCode> {
    let req = CompareRequest {
        source: a.source,
        target: a.target,
        objects: Objects {
            databases: a.databases,
            tables: a.tables,
            exclude_tables: a.ignore_tables,
        },
        password_file: a.password_file,
        threads: a.threads,
        chunk_rows: a.chunk_rows,
        max_rows: a.max_rows,
        wait: Duration::from_secs(a.wait),
    };
    // It only reads: a signal may end it at once, so no token is needed.
    let report = match arca_ops::mysql::compare(&req, None) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {:#}", anyhow::Error::from(e));
            return Ok(ExitCode::from(FAILED));
        }
    };
    if a.json {
        let mut v = serde_json::to_value(&report)?;
        v["identical"] = serde_json::Value::Bool(report.identical());
        print_json(&v)?;
    } else {
        print(&report)?;
    }
    Ok(if report.identical() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(DIFFERENT)
    })
}

fn print(r: &Report) -> Result<()> {
    out(format!(
        "source {}, target {}: {}",
        r.source,
        r.target,
        r.describe()
    ))?;
    for d in &r.differences {
        table(d)?;
    }
    let compared = format!(
        "compared {}, {}, {} in {:.1} s",
        plural(r.tables, "table"),
        plural(r.chunks, "chunk"),
        plural(r.rows, "row"),
        r.seconds
    );
    if r.identical() {
        return out(format!("identical: {compared}"));
    }
    let sum = |f: fn(&TableDifference) -> u64| r.differences.iter().map(f).sum::<u64>();
    let chunks = sum(|d| d.chunks.len() as u64);
    out(format!(
        "differ: {}, {}; rows: {} missing on the target, {} only on the target, {} different; {compared}",
        plural(r.differences.len() as u64, "table"),
        plural(chunks, "chunk"),
        sum(|d| d.missing_on_target),
        sum(|d| d.only_on_target),
        sum(|d| d.different),
    ))
}

fn table(d: &TableDifference) -> Result<()> {
    let name = format!("{}.{}", d.database, d.table);
    match d.problem {
        Problem::OnlyOnSource => return out(format!("{name}: only on the source")),
        Problem::OnlyOnTarget => return out(format!("{name}: only on the target")),
        Problem::Definition => {
            return out(format!(
                "{name}: {}; rows not compared",
                d.detail.as_deref().unwrap_or("definitions differ")
            ))
        }
        Problem::Rows => {}
    }
    out(format!(
        "{name}: rows differ in {}: {} missing on the target, {} only on the target, {} different",
        plural(d.chunks.len() as u64, "chunk"),
        d.missing_on_target,
        d.only_on_target,
        d.different
    ))?;
    for c in &d.chunks {
        let settled = if c.settled {
            String::new()
        } else {
            format!(
                "; {} the source changed at every try, so neither proven equal nor different: compare again when it writes less",
                plural(c.unsettled_rows, "row")
            )
        };
        out(format!(
            "  {}: {} rows on the source, {} on the target{settled}",
            c.range, c.source_rows, c.target_rows
        ))?;
    }
    for row in &d.rows {
        let kind = match row.kind {
            RowKind::MissingOnTarget => "missing on the target",
            RowKind::OnlyOnTarget => "only on the target",
            RowKind::Different => "different",
        };
        out(format!("    {kind}: {}", row.key))?;
    }
    if d.rows_not_listed > 0 {
        let n = d.rows_not_listed;
        let rows = if n == 1 { "row" } else { "rows" };
        out(format!("    and {n} more {rows} (--max-rows lists more)"))?;
    }
    Ok(())
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
