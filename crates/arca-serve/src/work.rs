//! The library calls a job runs: the same `arca_ops` calls as the CLI's
//! verbs, on a repository opened with the job's token.

use std::path::PathBuf;

use arca_ops::repos::registry::Named;
use arca_ops::repos::RepoSpec;
use arca_ops::{BackupOptions, RestoreRequest, Target};
use arca_repo::{Repository, StoreOptions};

use crate::config::{Config, RepositoryConfig, SourceConfig};
use crate::jobs::{JobCtx, Outcome};

/// How a repository of the configuration is reached: its spec for
/// `arca_ops::repos`, with the credentials read from where the file says.
pub fn repo_spec(cfg: &Config, r: &RepositoryConfig) -> Result<RepoSpec, String> {
    let named = Named {
        name: r.name.clone(),
        entry: r.entry.clone(),
        config: cfg.path.clone(),
    };
    let opts = named
        .store_options(&StoreOptions::default())
        .map_err(|e| e.to_string())?;
    Ok(RepoSpec {
        repo: Some(r.entry.url.clone()),
        endpoint: opts.endpoint,
        region: opts.region,
        is_minio: opts.path_style,
        role_arn: opts.role_arn,
        access_key_id: opts.access_key_id,
        secret_access_key: opts.secret_access_key,
        lock_wait: std::time::Duration::from_secs(60),
        ..RepoSpec::default()
    })
}

pub fn open(cfg: &Config, name: &str) -> Result<Repository, String> {
    let r = cfg
        .repository(name)
        .ok_or_else(|| format!("no repository named {name:?} in {}", cfg.path.display()))?;
    let spec = repo_spec(cfg, r)?;
    arca_ops::repos::open(&spec).map_err(|e| format!("repository {name}: {e}"))
}

fn open_for(cfg: &Config, name: &str, ctx: &JobCtx) -> Result<Repository, String> {
    let mut repo = open(cfg, name)?;
    repo.cancel = ctx.cancel.clone();
    Ok(repo)
}

/// One backup of `source` into `repository`.
pub fn backup(
    cfg: &Config,
    source: &SourceConfig,
    repository: &str,
    full: bool,
    name: Option<String>,
    ctx: &JobCtx,
) -> Result<Outcome, String> {
    backup_objects(
        cfg,
        source,
        repository,
        full,
        name,
        arca_ops::Objects::default(),
        ctx,
    )
}

/// One backup of some of a source's databases and tables.
pub fn backup_objects(
    cfg: &Config,
    source: &SourceConfig,
    repository: &str,
    full: bool,
    name: Option<String>,
    objects: arca_ops::Objects,
    ctx: &JobCtx,
) -> Result<Outcome, String> {
    let repo = open_for(cfg, repository, ctx)?;
    let spec = repo_spec(cfg, cfg.repository(repository).expect("checked"))?;
    let reopen = arca_ops::repos::reopen_args(&spec).map_err(|e| e.to_string())?;
    ctx.progress.phase("reading");
    let m = arca_ops::backup(
        &repo,
        &BackupOptions {
            source: source.url.clone(),
            name,
            full,
            parallelism: source.parallelism,
            password_file: source.password_file.clone(),
            reopen,
            objects,
            ..BackupOptions::default()
        },
        ctx.progress.as_ref(),
    )
    .map_err(|e| e.to_string())?;
    ctx.progress.phase("finalising");
    Ok(Outcome {
        backup: Some(m.id.to_hex()),
        result: serde_json::json!({
            "repository": repository,
            "source_url": m.source,
            "size": m.size,
            "stored_bytes": m.stored_bytes,
            "duration_ms": m.duration_ms(),
            "notes": arca_ops::describe(&m),
        }),
    })
}

/// What a restore job is asked for.
#[derive(Debug, Clone)]
pub struct RestoreJob {
    pub repository: String,
    pub backup: Option<String>,
    pub target: Target,
    pub to: PathBuf,
    pub force: bool,
    pub source: Option<SourceConfig>,
    /// Only these tables (`db.t`), for engines restoring into a server.
    pub tables: Vec<String>,
    /// `OLD:NEW` renames.
    pub renames: Vec<String>,
    /// Drop and restore tables the target has.
    pub replace: bool,
    /// Start the restored copy as a temporary instance.
    pub start: bool,
    pub port: Option<u16>,
}

pub fn restore(cfg: &Config, r: &RestoreJob, ctx: &JobCtx) -> Result<Outcome, String> {
    let repo = open_for(cfg, &r.repository, ctx)?;
    let spec = repo_spec(cfg, cfg.repository(&r.repository).expect("checked"))?;
    ctx.progress.phase("restoring");
    let mut req = RestoreRequest::new(r.to.clone());
    req.id = r.backup.clone();
    req.target = r.target.clone();
    req.force = r.force;
    req.parallelism = 2;
    req.reopen = arca_ops::repos::reopen_args(&spec).map_err(|e| e.to_string())?;
    if let Some(s) = &r.source {
        req.password_file = s.password_file.clone();
    }
    req.objects.tables = r.tables.clone();
    req.renames = r.renames.clone();
    req.replace = r.replace;
    req.start = r.start;
    req.port = r.port;
    let done = arca_ops::restore(&repo, &req, ctx.progress.as_ref()).map_err(|e| e.to_string())?;
    Ok(Outcome {
        backup: Some(done.backup.clone()),
        result: serde_json::to_value(&done).unwrap_or_default(),
    })
}

/// `arca check` of one repository (or one backup).
pub fn check(
    cfg: &Config,
    repository: &str,
    backup: Option<String>,
    read_data: bool,
    ctx: &JobCtx,
) -> Result<Outcome, String> {
    let repo = open_for(cfg, repository, ctx)?;
    ctx.progress.phase("checking");
    let report = arca_repo::check(
        &repo,
        &arca_repo::CheckOptions {
            read_data,
            backup,
            parallelism: 2,
        },
        ctx.progress.as_ref(),
    )
    .map_err(|e| e.to_string())?;
    let json = serde_json::to_value(&report).unwrap_or_default();
    if !report.errors.is_empty() {
        return Err(format!(
            "check found {} problem(s): {}",
            report.errors.len(),
            report.errors.join("; ")
        ));
    }
    Ok(Outcome {
        backup: None,
        result: json,
    })
}

/// A plan's retention: forget what its policy does not keep, then prune
/// when anything went.
pub fn forget(
    cfg: &Config,
    plan: &crate::config::PlanConfig,
    now: jiff::Timestamp,
    dry_run: bool,
    prune: bool,
    ctx: &JobCtx,
) -> Result<Outcome, String> {
    let repo = open_for(cfg, &plan.repository, ctx)?;
    let source = cfg
        .source(&plan.source)
        .ok_or("the plan's source is gone")?;
    ctx.progress.phase("forgetting");
    let opts = arca_ops::retention::ForgetOptions {
        source: Some(source.url.clone()),
        timezone: plan.schedule_zone(),
        now: Some(now),
        dry_run,
        prune: false,
    };
    let mut done =
        arca_ops::retention::forget(&repo, &plan.retention, &opts).map_err(|e| e.to_string())?;
    if prune && !dry_run && !done.deleted.is_empty() {
        ctx.progress.phase("pruning");
        done.pruned = Some(arca_ops::prune(&repo).map_err(|e| e.to_string())?);
    }
    let mut result = serde_json::to_value(&done).unwrap_or_default();
    result["repository"] = plan.repository.clone().into();
    Ok(Outcome {
        backup: None,
        result,
    })
}

/// A restore drill of the plan's source: its newest backup restored into
/// scratch space, verified, and removed (`arca_ops::drill`).
pub fn drill(
    cfg: &Config,
    plan: &crate::config::PlanConfig,
    ctx: &JobCtx,
) -> Result<Outcome, String> {
    let repo = open_for(cfg, &plan.repository, ctx)?;
    let source = cfg
        .source(&plan.source)
        .ok_or("the plan's source is gone")?;
    std::fs::create_dir_all(&plan.drill_scratch).map_err(|e| {
        format!(
            "drill_scratch {}: {e}: give a directory the daemon may write",
            plan.drill_scratch.display()
        )
    })?;
    ctx.progress.phase("restoring");
    let report = arca_ops::drill::drill(
        &repo,
        &arca_ops::drill::DrillOptions {
            source: source.url.clone(),
            scratch: plan.drill_scratch.clone(),
            backup: None,
            password_file: source.password_file.clone(),
            parallelism: source.parallelism,
        },
        ctx.progress.as_ref(),
    )
    .map_err(|e| e.to_string())?;
    let mut result = serde_json::to_value(&report).unwrap_or_default();
    result["repository"] = plan.repository.clone().into();
    Ok(Outcome {
        backup: Some(report.backup.clone()),
        result,
    })
}
