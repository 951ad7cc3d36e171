//! `/metrics` in Prometheus' text format, the storage statistics and the
//! recoverable windows, all computed from the catalog (and, for windows,
//! the repositories) when asked.
//!
//! Names follow Prometheus' conventions: base units (seconds, bytes),
//! `_total` only on counters, one `source` label per database.

use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::{json, Value};

use crate::catalog::BackupQuery;
use crate::State;

type Labels = Vec<(String, String)>;
type G = Family<Labels, Gauge<f64, AtomicU64>>;

fn gauge(reg: &mut Registry, name: &str, help: &str) -> G {
    let g = G::default();
    reg.register(name, help, g.clone());
    g
}

fn src(s: &str) -> Labels {
    vec![("source".into(), s.into())]
}

fn secs(t: &str) -> Option<f64> {
    t.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond() as f64 / 1000.0)
}

pub fn render(state: &State) -> String {
    let cfg = state.config();
    let mut reg = Registry::default();
    let last_ok = gauge(
        &mut reg,
        "arca_backup_last_success_timestamp_seconds",
        "When the last successful backup of the source ended.",
    );
    let duration = gauge(
        &mut reg,
        "arca_backup_last_duration_seconds",
        "How long the last successful backup of the source took.",
    );
    let read = gauge(
        &mut reg,
        "arca_backup_last_source_bytes",
        "Bytes of the source in its last backup.",
    );
    let stored = gauge(
        &mut reg,
        "arca_backup_last_stored_bytes",
        "Bytes the last backup of the source added to its repository.",
    );
    let count = gauge(
        &mut reg,
        "arca_backups",
        "Backups of the source in its repositories.",
    );
    let lag = gauge(
        &mut reg,
        "arca_log_archive_lag_seconds",
        "How far the source's archived log is behind now.",
    );
    let wfrom = gauge(
        &mut reg,
        "arca_recoverable_window_start_timestamp_seconds",
        "The earliest time the source can be restored to.",
    );
    let wto = gauge(
        &mut reg,
        "arca_recoverable_window_end_timestamp_seconds",
        "The latest time the source can be restored to.",
    );
    let repo_bytes = gauge(
        &mut reg,
        "arca_repository_backup_stored_bytes",
        "Bytes the repository's present backups added when they were made.",
    );
    let running = gauge(&mut reg, "arca_jobs_running", "Jobs running or queued now.");
    let drill_ok = gauge(
        &mut reg,
        "arca_drill_last_success",
        "1 if the source's last restore drill passed, 0 if it failed.",
    );
    let drill_time = gauge(
        &mut reg,
        "arca_drill_last_timestamp_seconds",
        "When the source's last restore drill ended.",
    );
    let jobs: Family<Labels, Counter<u64>> = Family::default();
    reg.register(
        "arca_jobs",
        "Jobs finished since the catalog began, by kind, source and outcome.",
        jobs.clone(),
    );

    for s in &cfg.sources {
        let Ok(rows) = state.catalog.backups(&BackupQuery {
            source: Some(s.name.clone()),
            status: Some("ok".into()),
            limit: 1,
            ..BackupQuery::default()
        }) else {
            continue;
        };
        if let Some(b) = rows.first() {
            let l = src(&s.name);
            if let Some(t) = secs(&b.end_time) {
                last_ok.get_or_create(&l).set(t);
            }
            duration
                .get_or_create(&l)
                .set(b.duration_ms as f64 / 1000.0);
            read.get_or_create(&l).set(b.size as f64);
            stored.get_or_create(&l).set(b.stored_bytes as f64);
        }
        if let Ok(all) = state.catalog.backups_of(&s.name) {
            count.get_or_create(&src(&s.name)).set(all.len() as f64);
        }
        if let Ok(Some(d)) = state.catalog.last_job("drill", &s.name, None) {
            if matches!(d.state.as_str(), "succeeded" | "failed") {
                let l = src(&s.name);
                drill_ok
                    .get_or_create(&l)
                    .set(if d.state == "succeeded" { 1.0 } else { 0.0 });
                if let Some(t) = d.finished_at.as_deref().and_then(secs) {
                    drill_time.get_or_create(&l).set(t);
                }
            }
        }
    }
    for r in &cfg.repositories {
        if let Ok(all) = state.catalog.backups(&BackupQuery {
            repository: Some(r.name.clone()),
            limit: usize::MAX >> 1,
            ..BackupQuery::default()
        }) {
            let sum: u64 = all.iter().map(|b| b.stored_bytes).sum();
            repo_bytes
                .get_or_create(&vec![("repository".into(), r.name.clone())])
                .set(sum as f64);
        }
    }
    for w in windows(state) {
        let Some(s) = w.source else { continue };
        let l = src(&s);
        if let Some(x) = w.lag_seconds {
            lag.get_or_create(&l).set(x as f64);
        }
        if let Some(t) = w.from {
            wfrom
                .get_or_create(&l)
                .set(t.as_millisecond() as f64 / 1000.0);
        }
        if let Some(t) = w.to {
            wto.get_or_create(&l)
                .set(t.as_millisecond() as f64 / 1000.0);
        }
    }
    for (kind, source, outcome, n) in state.catalog.job_counts().unwrap_or_default() {
        jobs.get_or_create(&vec![
            ("kind".into(), kind),
            ("source".into(), source),
            ("outcome".into(), outcome),
        ])
        .inc_by(n);
    }
    running
        .get_or_create(&Labels::new())
        .set(state.jobs.live().len() as f64);
    let mut out = String::new();
    let _ = encode(&mut out, &reg);
    out
}

/// A source's recoverable window, as the API and metrics show it.
#[derive(Debug, Clone)]
pub struct SourceWindow {
    pub source: Option<String>,
    pub repository: String,
    pub from: Option<jiff::Timestamp>,
    pub to: Option<jiff::Timestamp>,
    pub lag_seconds: Option<i64>,
    pub lines: Vec<String>,
}

/// Windows are read from the repositories; a scrape every few seconds
/// reuses the last reading for this long.
const WINDOWS_TTL: Duration = Duration::from_secs(30);

/// The last reading and when it was taken.
type Cached = Option<(Instant, Vec<SourceWindow>)>;

static WINDOWS: OnceLock<Mutex<Cached>> = OnceLock::new();

pub fn windows(state: &State) -> Vec<SourceWindow> {
    let cache = WINDOWS.get_or_init(Mutex::default);
    let mut g = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((at, w)) = g.as_ref() {
        if at.elapsed() < WINDOWS_TTL {
            return w.clone();
        }
    }
    let fresh = read_windows(state);
    *g = Some((Instant::now(), fresh.clone()));
    fresh
}

/// Forgets the cached windows (after a job changed a repository).
pub fn invalidate() {
    if let Some(c) = WINDOWS.get() {
        *c.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

fn read_windows(state: &State) -> Vec<SourceWindow> {
    let cfg = state.config();
    let keys = state.catalog.source_keys().unwrap_or_default();
    let mut out = Vec::new();
    for r in &cfg.repositories {
        let Ok(repo) = crate::work::open(&cfg, &r.name) else {
            continue;
        };
        let Ok(manifests) = repo.manifests() else {
            continue;
        };
        let Ok(ws) = arca_ops::windows(&repo, &manifests) else {
            continue;
        };
        for w in ws {
            let source = manifests
                .iter()
                .filter(|m| w.covers(m))
                .find_map(|m| crate::scan::source_of(&cfg, &keys, m));
            out.push(SourceWindow {
                source,
                repository: r.name.clone(),
                from: w.from,
                to: w.to,
                lag_seconds: w.lag_seconds,
                lines: w.lines.clone(),
            });
        }
    }
    out
}

/// Storage statistics per source: its size, what its backups store, the
/// deduplication ratio, and growth per day over the last 30 days.
pub fn stats(state: &State, now: jiff::Timestamp) -> Vec<Value> {
    let cfg = state.config();
    let tz = jiff::tz::TimeZone::UTC;
    cfg.sources
        .iter()
        .map(|s| {
            let all = state.catalog.backups_of(&s.name).unwrap_or_default();
            let source_bytes = all.last().map_or(0, |b| b.size);
            let logical: u64 = all.iter().map(|b| b.size).sum();
            let stored: u64 = all.iter().map(|b| b.stored_bytes).sum();
            let since = now - jiff::SignedDuration::from_hours(24 * 30);
            let mut days: std::collections::BTreeMap<String, u64> = Default::default();
            for b in &all {
                if let Ok(t) = b.start_time.parse::<jiff::Timestamp>() {
                    if t >= since {
                        let day = t.to_zoned(tz.clone()).date().to_string();
                        *days.entry(day).or_default() += b.stored_bytes;
                    }
                }
            }
            let growth: Vec<Value> = days
                .into_iter()
                .map(|(d, b)| json!({ "day": d, "stored_bytes": b }))
                .collect();
            json!({
                "source": s.name,
                "backups": all.len(),
                "source_bytes": source_bytes,
                "stored_bytes": stored,
                "logical_bytes": logical,
                "dedup_ratio": if stored > 0 { logical as f64 / stored as f64 } else { 0.0 },
                "growth_per_day": growth,
            })
        })
        .collect()
}
