//! Keeping the catalog's copy of each repository's backups current: at
//! start, after every job, and every few minutes for backups made by the
//! CLI or another daemon. What happens when a job ends lives here too.

use std::sync::Arc;
use std::time::Duration;

use arca_repo::Manifest;

use crate::catalog::{BackupRow, JobRow};
use crate::config::Config;
use crate::{stamp, State};

/// How often repositories are listed again.
const RESCAN: Duration = Duration::from_secs(300);

pub async fn periodic(state: Arc<State>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RESCAN) => {}
            _ = stop.changed() => return,
        }
        let s = state.clone();
        let _ = tokio::task::spawn_blocking(move || scan_all(&s)).await;
    }
}

/// Lists every repository of the configuration into the catalog.
pub fn scan_all(state: &State) {
    let cfg = state.config();
    for r in &cfg.repositories {
        scan(state, &cfg, &r.name);
    }
}

/// Which source of the configuration a backup is of: one the daemon saw
/// a backup of record this source, or the same URL.
pub fn source_of(cfg: &Config, keys: &[(String, String)], m: &Manifest) -> Option<String> {
    if let Some((s, _)) = keys.iter().find(|(_, k)| *k == m.source) {
        return Some(s.clone());
    }
    cfg.sources
        .iter()
        .find(|s| same_source(&s.url, &m.source))
        .map(|s| s.name.clone())
}

fn same_source(configured: &str, recorded: &str) -> bool {
    if configured == recorded {
        return true;
    }
    // SQLite records the file's absolute path.
    let path = |u: &str| u.strip_prefix("sqlite://").map(std::path::PathBuf::from);
    match (path(configured), path(recorded)) {
        (Some(a), Some(b)) => std::fs::canonicalize(&a).is_ok_and(|a| a == b),
        _ => false,
    }
}

/// How the console and the API's `mode` filter name a backup.
fn mode(m: &Manifest) -> &'static str {
    match (&m.kind, &m.parent) {
        (arca_repo::BackupKind::Point, _) => "snapshot",
        (_, Some(_)) => "incremental",
        (_, None) => "full",
    }
}

pub fn scan(state: &State, cfg: &Config, repository: &str) {
    let repo = match crate::work::open(cfg, repository) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("cannot list repository {repository}: {e}");
            return;
        }
    };
    let (manifests, damaged) = match repo.manifests_and_damage() {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!("cannot list repository {repository}: {e}");
            return;
        }
    };
    let keys = state.catalog.source_keys().unwrap_or_default();
    let mut rows: Vec<BackupRow> = manifests
        .iter()
        .map(|m| {
            let id = m.id.to_hex();
            BackupRow {
                short_id: m.id.short(),
                id,
                repository: repository.to_string(),
                source: source_of(cfg, &keys, m),
                source_url: m.source.clone(),
                engine: m.engine.as_str().to_string(),
                kind: m.kind.as_str().to_string(),
                mode: mode(m).into(),
                parent: m.parent.as_ref().map(|p| p.to_hex()),
                name: m.name.clone(),
                size: m.size,
                stored_bytes: m.stored_bytes,
                start_time: stamp(m.start_time),
                end_time: stamp(m.end_time),
                duration_ms: m.duration_ms(),
                status: "ok".into(),
            }
        })
        .collect();
    for d in &damaged {
        let id = d.path.rsplit('/').next().unwrap_or_default().to_string();
        rows.push(BackupRow {
            short_id: id.get(..8).unwrap_or(&id).to_string(),
            id,
            repository: repository.to_string(),
            source: None,
            source_url: String::new(),
            engine: String::new(),
            kind: String::new(),
            mode: String::new(),
            parent: None,
            name: None,
            size: 0,
            stored_bytes: 0,
            start_time: String::new(),
            end_time: String::new(),
            duration_ms: 0,
            status: "damaged".into(),
        });
    }
    if let Err(e) = state.catalog.replace_backups(repository, &rows) {
        tracing::error!("cannot record repository {repository}'s backups in the catalog: {e}");
    }
}

/// A job ended: its event, the repository listed again, and for a
/// scheduled backup of a plan with retention, the plan's retention.
pub fn job_finished(state: &Arc<State>, row: &JobRow) {
    let cfg = state.config();
    let what = match (&row.source, &row.plan) {
        (Some(s), Some(p)) => format!("{} of {s} (plan {p})", row.kind),
        (Some(s), None) => format!("{} of {s}", row.kind),
        _ => row.kind.clone(),
    };
    let message = match row.state.as_str() {
        "succeeded" => match &row.backup {
            Some(b) if row.kind == "backup" => {
                format!("{what} succeeded: backup {}", &b[..8.min(b.len())])
            }
            _ => format!("{what} succeeded"),
        },
        state => format!(
            "{what} {state}: {}",
            row.error.as_deref().unwrap_or("no reason given")
        ),
    };
    let kind = format!("job_{}", row.state);
    state.event(&kind, row.source.as_deref(), Some(&row.id), &message);
    if let (Some(source), Some(key)) = (&row.source, row.result["source_url"].as_str()) {
        if let Err(e) = state.catalog.learn_source_key(source, key) {
            tracing::error!("catalog: {e}");
        }
    }
    if let Some(r) = row.result["repository"].as_str() {
        scan(state, &cfg, r);
    }
    crate::metrics::invalidate();
    crate::notify::job_finished(state, &cfg, row);
    crate::scheduler::after_job(state, &cfg, row);
}
