//! Tables and figures for people; JSON for scripts.

use arca_repo::Manifest;
use comfy_table::{presets, Table};
use serde::Serialize;

pub use arca_ops::bytes;

pub fn duration_ms(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.2}s", ms as f64 / 1000.0)
    } else {
        let s = ms / 1000;
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

pub fn local_time(t: jiff::Timestamp) -> String {
    t.to_zoned(jiff::tz::TimeZone::system())
        .strftime("%Y-%m-%d %H:%M:%S %z")
        .to_string()
}

/// A backup as `--json` listings print it.
#[derive(Serialize)]
pub struct BackupJson<'a> {
    pub id: String,
    pub size: u64,
    pub stored_bytes: u64,
    pub duration_ms: i64,
    pub path: String,
    pub engine: &'a str,
    pub source: &'a str,
    pub kind: &'a str,
    pub name: &'a Option<String>,
    pub tags: &'a [String],
    pub hostname: &'a str,
    pub start_time: String,
    pub end_time: String,
    pub parent: Option<String>,
    /// Which consistency point the backup got (engines reading a server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency: Option<&'a serde_json::Value>,
    pub files: Vec<FileJson<'a>>,
}

#[derive(Serialize)]
pub struct FileJson<'a> {
    pub path: &'a str,
    pub size: u64,
    pub block_size: u32,
    pub blocks: u64,
    pub meta: &'a serde_json::Value,
}

pub fn backup_json<'a>(s: &'a Manifest, repo_path: &str) -> BackupJson<'a> {
    BackupJson {
        id: s.id.to_hex(),
        size: s.size,
        stored_bytes: s.stored_bytes,
        duration_ms: s.duration_ms(),
        path: repo_path.to_string(),
        engine: s.engine.as_str(),
        source: &s.source,
        kind: s.kind.as_str(),
        name: &s.name,
        tags: &s.tags,
        hostname: &s.hostname,
        start_time: s.start_time.to_string(),
        end_time: s.end_time.to_string(),
        parent: s.parent.map(|p| p.to_hex()),
        consistency: s.meta.get("consistency"),
        files: s
            .files
            .iter()
            .map(|f| FileJson {
                path: &f.path,
                size: f.size,
                block_size: f.block_size,
                blocks: f.blocks,
                meta: &f.meta,
            })
            .collect(),
    }
}

/// mo_br's table of backups, with ENGINE and NAME added.
pub fn backup_table(snaps: &[Manifest], repo_path: &str) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::ASCII_MARKDOWN);
    t.set_header([
        "ID",
        "SIZE",
        "PATH",
        "AT TIME",
        "DURATION",
        "COMPLETE TIME",
        "ENGINE",
        "NAME",
    ]);
    for s in snaps {
        t.add_row([
            s.id.short(),
            bytes(s.size),
            repo_path.to_string(),
            local_time(s.start_time),
            duration_ms(s.duration_ms()),
            local_time(s.end_time),
            s.engine.to_string(),
            s.name.clone().unwrap_or_default(),
        ]);
    }
    t
}

/// Prints one line; unlike `println!`, a closed pipe (`arca list | head`)
/// is an error main ends quietly on, not a panic.
pub fn out(line: impl std::fmt::Display) -> anyhow::Result<()> {
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{line}")?;
    Ok(())
}

pub fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}
