//! `POST /api/v1/sql` and `arca sql`: StarRocks' backup statements run
//! against the daemon, so StarRocks users drive Arca as they drive
//! StarRocks.
//!
//! How StarRocks' words map onto Arca's:
//! - a *database* (`db` in `db.snapshot`) is a source of the daemon's
//!   configuration; left out, the only source (or an error naming them);
//! - a *repository* is a `[[repository]]` of the configuration;
//!   `CREATE REPOSITORY` adds one to the file (its secret in a file of its
//!   own beside it, never in the configuration), `DROP REPOSITORY` removes
//!   it from the file and leaves its data;
//! - a *snapshot* is a backup: its name, or for an unnamed backup its
//!   short id; its `backup_timestamp` is the backup's start in UTC,
//!   written `YYYY-MM-DD-HH-MM-SS` as StarRocks writes it;
//! - `BACKUP` and `RESTORE` are jobs, one per database at a time; `SHOW`
//!   answers the newest job of each database with StarRocks' columns and
//!   states (PENDING, SNAPSHOTING, UPLOADING, FINISHED, CANCELLED, …).
//!
//! `RESTORE` goes back into the source itself (admins only), or, with the
//! property `"arca.to" = "PATH"`, into a new target (operators).

use std::sync::Arc;

use arca_sql::{Statement, TableRef};
use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::api::{ApiError, Caller};
use crate::catalog::{BackupQuery, JobRow};
use crate::config::{Config, Role};
use crate::jobs::Spec;
use crate::State;

/// A statement's answer: a table (possibly empty) and a line for people.
fn table(columns: &[&str], rows: Vec<Vec<String>>, message: impl Into<String>) -> Value {
    json!({ "columns": columns, "rows": rows, "message": message.into() })
}

fn done(message: impl Into<String>) -> Value {
    table(&[], Vec::new(), message)
}

pub async fn execute(state: &Arc<State>, caller: &Caller, sql: &str) -> Result<Value, ApiError> {
    let stmt = arca_sql::parse(sql).map_err(|e| ApiError {
        field: Some("sql".into()),
        extra: json!({
            "line": e.line,
            "column": e.column,
            "offset": e.offset,
            "detail": e.render(sql),
        }),
        ..ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
    })?;
    let role = match &stmt {
        Statement::CreateRepository { .. } | Statement::DropRepository { .. } => Role::Admin,
        Statement::Backup { .. }
        | Statement::CancelBackup { .. }
        | Statement::CancelRestore { .. } => Role::Operator,
        Statement::Restore { properties, .. } => {
            if prop(properties, "arca.to").is_some() {
                Role::Operator
            } else {
                Role::Admin
            }
        }
        _ => Role::Viewer,
    };
    caller.require(role)?;
    let s = state.clone();
    let who = caller.name.clone();
    tokio::task::spawn_blocking(move || run(&s, &who, stmt))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

fn prop<'a>(props: &'a [(String, String)], key: &str) -> Option<&'a str> {
    props
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

fn unprocessable(m: impl Into<String>) -> ApiError {
    ApiError {
        field: Some("sql".into()),
        ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m)
    }
}

/// The source a statement's database names.
fn database(cfg: &Config, db: Option<&str>) -> Result<String, ApiError> {
    match db {
        Some(d) => cfg.source(d).map(|s| s.name.clone()).ok_or_else(|| {
            unprocessable(format!(
                "unknown database {d:?}: the databases are this daemon's sources ({})",
                names(cfg)
            ))
        }),
        None => match cfg.sources.as_slice() {
            [one] => Ok(one.name.clone()),
            _ => Err(unprocessable(format!(
                "name the database (db.snapshot or FROM db): one of {}",
                names(cfg)
            ))),
        },
    }
}

fn names(cfg: &Config) -> String {
    cfg.sources
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn repository(cfg: &Config, name: &str) -> Result<(), ApiError> {
    if cfg.repository(name).is_none() {
        return Err(unprocessable(format!(
            "unknown repository {name:?}: SHOW REPOSITORIES lists them, CREATE REPOSITORY adds one"
        )));
    }
    Ok(())
}

/// StarRocks' timestamp form: `2026-12-07-21-30-40`, UTC.
fn sr_time(t: &str) -> String {
    t.parse::<jiff::Timestamp>()
        .map(|t| t.strftime("%Y-%m-%d-%H-%M-%S").to_string())
        .unwrap_or_default()
}

/// StarRocks' datetime form for job times: `2026-12-07 21:30:40`.
fn sr_datetime(t: Option<&str>) -> String {
    t.and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "NULL".into())
}

fn tables(t: &[TableRef]) -> Vec<String> {
    t.iter().map(|t| t.name.clone()).collect()
}

/// The one database a MySQL source's URL names (`mysql://…/DB`), which
/// qualifies the tables of `ON (…)`: StarRocks names tables within the
/// statement's database, Arca's MySQL engine as `DB.TABLE`.
fn mysql_database(source: &crate::config::SourceConfig) -> Result<String, ApiError> {
    let rest = source.url.split_once("://").map_or("", |(_, r)| r);
    let path = rest.split_once('/').map_or("", |(_, p)| p);
    let db = path.split(['?', '/']).next().unwrap_or("");
    if db.is_empty() {
        return Err(unprocessable(format!(
            "source {} is a whole server (its URL names no database), so ON (TABLE …) cannot say which database: back it up whole, or add a source whose URL ends in /DATABASE",
            source.name
        )));
    }
    Ok(db.to_string())
}

fn run(state: &Arc<State>, who: &str, stmt: Statement) -> Result<Value, ApiError> {
    let cfg = state.config();
    match stmt {
        Statement::ShowRepositories => {
            let rows = cfg
                .repositories
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let err = crate::work::open(&cfg, &r.name)
                        .err()
                        .unwrap_or_else(|| "NULL".into());
                    vec![
                        (i + 1).to_string(),
                        r.name.clone(),
                        "NULL".into(),
                        "false".into(),
                        r.entry.url.clone(),
                        String::new(),
                        err,
                    ]
                })
                .collect();
            Ok(table(arca_sql::SHOW_REPOSITORIES_COLUMNS, rows, ""))
        }
        Statement::CreateRepository {
            name,
            location,
            read_only,
            properties,
            ..
        } => {
            if read_only {
                return Err(unprocessable(
                    "READ ONLY repositories are not supported: Arca's repositories are read-write; leave out READ ONLY",
                ));
            }
            crate::edit::add_repository(state, &name, &location, &properties)?;
            state.event(
                "repository_created",
                None,
                None,
                &format!("repository {name} ({location}) added by token {who}"),
            );
            Ok(done(format!("repository {name} created at {location}")))
        }
        Statement::DropRepository { name } => {
            repository(&cfg, &name)?;
            if let Some(p) = cfg.plans.iter().find(|p| p.repository == name) {
                return Err(unprocessable(format!(
                    "plan {} backs up into repository {name}: change the plan first",
                    p.name
                )));
            }
            crate::edit::remove_repository(state, &name)?;
            state.event(
                "repository_dropped",
                None,
                None,
                &format!("repository {name} removed from the configuration by token {who}; its data stays"),
            );
            Ok(done(format!(
                "repository {name} dropped from the configuration; its backups stay where they are"
            )))
        }
        Statement::Backup {
            db,
            snapshot,
            repository: repo,
            tables: t,
            properties: _,
        } => {
            let source = database(&cfg, db.as_deref())?;
            repository(&cfg, &repo)?;
            let src = cfg.source(&source).expect("checked").clone();
            let engine =
                arca_ops::engine::for_source(&src.url).map_err(|e| unprocessable(e.to_string()))?;
            let objects = if t.is_empty() {
                arca_ops::Objects::default()
            } else if engine.name() == arca_repo::EngineName::Mysql {
                let db = mysql_database(&src)?;
                arca_ops::Objects {
                    tables: t.iter().map(|t| format!("{db}.{}", t.name)).collect(),
                    ..Default::default()
                }
            } else {
                return Err(unprocessable(format!(
                    "a {} backup takes the whole database: leave out ON (…)",
                    engine.title()
                )));
            };
            let (cfg2, repo2, name2) = (cfg.clone(), repo.clone(), snapshot.clone());
            let job = state.jobs.submit(
                Spec {
                    kind: "backup",
                    source: Some(source.clone()),
                    plan: None,
                    holder: source.clone(),
                    detail: json!({
                        "name": snapshot, "repository": repo, "objects": tables(&t), "via": "sql",
                    }),
                },
                Box::new(move |ctx| {
                    crate::work::backup_objects(
                        &cfg2,
                        &src,
                        &repo2,
                        false,
                        Some(name2),
                        objects,
                        ctx,
                    )
                }),
            )?;
            Ok(done(format!(
                "backup job {job} of {source} queued: SHOW BACKUP FROM {source} follows it"
            )))
        }
        Statement::ShowBackup { db } => {
            let sources = match db {
                Some(d) => vec![database(&cfg, Some(&d))?],
                None => cfg.sources.iter().map(|s| s.name.clone()).collect(),
            };
            let mut rows = Vec::new();
            for s in sources {
                if let Some(j) = newest(state, "backup", &s)? {
                    rows.push(backup_row(&j));
                }
            }
            Ok(table(arca_sql::SHOW_BACKUP_COLUMNS, rows, ""))
        }
        Statement::ShowRestore { db } => {
            let sources = match db {
                Some(d) => vec![database(&cfg, Some(&d))?],
                None => cfg.sources.iter().map(|s| s.name.clone()).collect(),
            };
            let mut rows = Vec::new();
            for s in sources {
                if let Some(j) = newest(state, "restore", &s)? {
                    rows.push(restore_row(&j));
                }
            }
            Ok(table(arca_sql::SHOW_RESTORE_COLUMNS, rows, ""))
        }
        Statement::CancelBackup { db } => cancel(state, &cfg, "backup", db.as_deref()),
        Statement::CancelRestore { db } => cancel(state, &cfg, "restore", db.as_deref()),
        Statement::ShowSnapshot {
            repository: repo,
            snapshot,
            timestamp,
        } => {
            repository(&cfg, &repo)?;
            let all = state
                .catalog
                .backups(&BackupQuery {
                    repository: Some(repo.clone()),
                    status: Some("ok".into()),
                    limit: usize::MAX >> 1,
                    ..BackupQuery::default()
                })
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            let mut rows = Vec::new();
            for b in all.iter().rev() {
                let name = b.name.clone().unwrap_or_else(|| b.short_id.clone());
                let ts = sr_time(&b.start_time);
                if snapshot
                    .as_deref()
                    .is_some_and(|s| s != name && !b.id.starts_with(s))
                {
                    continue;
                }
                if timestamp.as_deref().is_some_and(|t| t != ts) {
                    continue;
                }
                if snapshot.is_some() {
                    let details = json!({
                        "id": b.id, "source": b.source_url, "engine": b.engine,
                        "size": b.size, "stored_bytes": b.stored_bytes,
                    });
                    rows.push(vec![
                        name,
                        ts,
                        b.source.clone().unwrap_or_default(),
                        details.to_string(),
                        "OK".into(),
                    ]);
                } else {
                    rows.push(vec![name, ts, "OK".into()]);
                }
            }
            let cols = if snapshot.is_some() {
                arca_sql::SHOW_SNAPSHOT_DETAIL_COLUMNS
            } else {
                arca_sql::SHOW_SNAPSHOT_COLUMNS
            };
            Ok(table(cols, rows, ""))
        }
        Statement::Restore {
            db,
            snapshot,
            repository: repo,
            tables: t,
            properties,
        } => restore(state, &cfg, who, db, snapshot, repo, t, properties),
    }
}

/// The newest job of a kind for a source: live first, then the catalog.
fn newest(state: &State, kind: &str, source: &str) -> Result<Option<JobRow>, ApiError> {
    let live = state
        .jobs
        .live()
        .into_iter()
        .find(|j| j.kind == kind && j.source.as_deref() == Some(source));
    if live.is_some() {
        return Ok(live);
    }
    let rows = state
        .catalog
        .jobs(Some(source), None, None, 200)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(rows.into_iter().find(|j| j.kind == kind))
}

/// StarRocks' job state for an Arca job.
fn sr_state(j: &JobRow, restore: bool) -> &'static str {
    match (j.state.as_str(), j.phase.as_str()) {
        ("queued", _) => "PENDING",
        ("running", "uploading") => "UPLOADING",
        ("running", "finalising") => {
            if restore {
                "COMMITTING"
            } else {
                "SAVE_META"
            }
        }
        ("running", _) => {
            if restore {
                "DOWNLOADING"
            } else {
                "SNAPSHOTING"
            }
        }
        ("succeeded", _) => "FINISHED",
        _ => "CANCELLED",
    }
}

fn progress(j: &JobRow) -> String {
    let p = &j.progress;
    if p.bytes_total > 0 {
        format!("{}/{} bytes", p.bytes_done, p.bytes_total)
    } else {
        format!("{} bytes", p.bytes_done)
    }
}

fn status(j: &JobRow) -> String {
    match &j.error {
        Some(e) if j.state != "succeeded" => format!("[{e}]"),
        _ => "[OK]".into(),
    }
}

fn backup_row(j: &JobRow) -> Vec<String> {
    let objs = j.result["objects"]
        .as_array()
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_else(|| "(whole database)".into());
    let finished = sr_datetime(j.finished_at.as_deref());
    vec![
        j.id.clone(),
        j.result["name"].as_str().unwrap_or("").to_string(),
        j.source.clone().unwrap_or_default(),
        sr_state(j, false).into(),
        objs,
        sr_datetime(Some(&j.created_at)),
        finished.clone(),
        finished.clone(),
        finished,
        if j.state == "running" { "1" } else { "0" }.into(),
        progress(j),
        j.error.clone().unwrap_or_default(),
        status(j),
        "86400".into(),
    ]
}

fn restore_row(j: &JobRow) -> Vec<String> {
    let finished = sr_datetime(j.finished_at.as_deref());
    vec![
        j.id.clone(),
        j.result["snapshot"].as_str().unwrap_or("").to_string(),
        j.result["backup_timestamp"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        j.source.clone().unwrap_or_default(),
        sr_state(j, true).into(),
        "false".into(),
        "1".into(),
        j.result["to"].as_str().unwrap_or("").to_string(),
        sr_datetime(Some(&j.created_at)),
        sr_datetime(j.started_at.as_deref()),
        finished.clone(),
        finished.clone(),
        finished,
        if j.state == "running" { "1" } else { "0" }.into(),
        progress(j),
        j.error.clone().unwrap_or_default(),
        status(j),
        "86400".into(),
    ]
}

fn cancel(state: &State, cfg: &Config, kind: &str, db: Option<&str>) -> Result<Value, ApiError> {
    let source = database(cfg, db)?;
    let job = state
        .jobs
        .live()
        .into_iter()
        .find(|j| j.kind == kind && j.source.as_deref() == Some(source.as_str()));
    match job {
        Some(j) => {
            state.jobs.cancel(&j.id);
            Ok(done(format!("{kind} job {} of {source} cancelling", j.id)))
        }
        None => Err(unprocessable(format!(
            "no {kind} job of {source} is running"
        ))),
    }
}

#[allow(clippy::too_many_arguments)]
fn restore(
    state: &Arc<State>,
    cfg: &Arc<Config>,
    who: &str,
    db: Option<String>,
    snapshot: String,
    repo: String,
    t: Vec<TableRef>,
    properties: Vec<(String, String)>,
) -> Result<Value, ApiError> {
    let source = database(cfg, db.as_deref())?;
    repository(cfg, &repo)?;
    let src = cfg.source(&source).expect("checked").clone();
    let ts = prop(&properties, "backup_timestamp")
        .unwrap_or_default()
        .to_string();
    let all = state
        .catalog
        .backups(&BackupQuery {
            repository: Some(repo.clone()),
            status: Some("ok".into()),
            limit: usize::MAX >> 1,
            ..BackupQuery::default()
        })
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let found: Vec<_> = all
        .iter()
        .filter(|b| {
            let name = b.name.clone().unwrap_or_else(|| b.short_id.clone());
            (name == snapshot || b.id.starts_with(&snapshot)) && sr_time(&b.start_time) == ts
        })
        .collect();
    let b = match found.as_slice() {
        [one] => *one,
        [] => {
            return Err(unprocessable(format!(
                "no snapshot {snapshot} with backup_timestamp {ts:?} in repository {repo}: SHOW SNAPSHOT ON {repo} lists them"
            )))
        }
        _ => return Err(unprocessable(format!("{} snapshots match: give more of the id", found.len()))),
    };
    let engine =
        arca_ops::engine::for_source(&src.url).map_err(|e| unprocessable(e.to_string()))?;
    let mysql = engine.name() == arca_repo::EngineName::Mysql;
    if !t.is_empty() && !mysql {
        return Err(unprocessable(format!(
            "a {} backup restores whole: leave out ON (…)",
            engine.title()
        )));
    }
    let (to, force) = match prop(&properties, "arca.to") {
        Some(p) => {
            let path = std::path::PathBuf::from(p);
            if !p.contains("://") && (!path.is_absolute() || path.exists()) {
                return Err(unprocessable(format!(
                    "\"arca.to\" = {p:?} must be a new absolute path"
                )));
            }
            (path, false)
        }
        // In place: the source itself.
        None => match src.url.strip_prefix("sqlite://") {
            Some(path) => (std::path::PathBuf::from(path), true),
            None => (std::path::PathBuf::from(&src.url), true),
        },
    };
    let db = if t.is_empty() {
        String::new()
    } else {
        mysql_database(&src)?
    };
    let renames: Vec<String> = t
        .iter()
        .filter_map(|t| {
            t.alias
                .as_ref()
                .map(|a| format!("{db}.{}:{db}.{a}", t.name))
        })
        .collect();
    let only: Vec<String> = t.iter().map(|t| format!("{db}.{}", t.name)).collect();
    let job = crate::work::RestoreJob {
        repository: repo.clone(),
        backup: Some(b.id.clone()),
        target: arca_ops::Target::Latest,
        to: to.clone(),
        force: force && !mysql,
        source: Some(src.clone()),
        tables: only,
        renames,
        replace: force && mysql,
        start: false,
        port: None,
    };
    let cfg2 = cfg.clone();
    let id = state.jobs.submit(
        Spec {
            kind: "restore",
            source: Some(source.clone()),
            plan: None,
            holder: source.clone(),
            detail: json!({
                "snapshot": snapshot, "backup_timestamp": ts, "repository": repo,
                "to": crate::api::redact(&to.to_string_lossy()), "via": "sql",
            }),
        },
        Box::new(move |ctx| crate::work::restore(&cfg2, &job, ctx)),
    )?;
    state.event(
        "restore_requested",
        Some(&source),
        Some(&id),
        &format!("RESTORE SNAPSHOT {snapshot} by token {who}"),
    );
    Ok(done(format!(
        "restore job {id} of {source} queued: SHOW RESTORE FROM {source} follows it"
    )))
}
