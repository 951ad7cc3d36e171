//! Runs each plan's backups on its schedule, in its time zone.
//!
//! The catalog keeps when each plan last fired. A plan fires once when its
//! next time after that has come; if the daemon was down over one or more
//! of its times, it fires once at start (`run_missed`, on by default) and
//! the event says how many were missed. A firing while the source has a
//! job is skipped, with an event naming the job.

use std::sync::Arc;
use std::time::Duration;

use crate::catalog::JobRow;
use crate::config::{Config, PlanConfig};
use crate::jobs::{Outcome, Spec, SubmitError};
use crate::{stamp, Clock, State};

/// The longest the scheduler sleeps on the real clock before looking again.
const MAX_NAP: Duration = Duration::from_secs(30);

pub async fn run(state: Arc<State>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut first = true;
    loop {
        let s = state.clone();
        let started = first;
        let next = tokio::task::spawn_blocking(move || tick(&s, started))
            .await
            .ok()
            .flatten();
        first = false;
        let nap = match (&state.clock, next) {
            (Clock::Real, Some(n)) => {
                let wait = n.duration_since(jiff::Timestamp::now());
                Duration::try_from(wait)
                    .unwrap_or(Duration::ZERO)
                    .min(MAX_NAP)
            }
            _ => MAX_NAP,
        };
        tokio::select! {
            _ = tokio::time::sleep(nap.max(Duration::from_millis(50))) => {}
            _ = state.wake.notified() => {}
            _ = stop.changed() => return,
        }
    }
}

/// Fires every plan whose time has come; answers the earliest next time.
fn tick(state: &Arc<State>, started: bool) -> Option<jiff::Timestamp> {
    let cfg = state.config();
    let now = state.clock.now();
    let mut earliest: Option<jiff::Timestamp> = None;
    let mut due_list: Vec<(String, &arca_ops::schedule::Schedule, &PlanConfig, bool)> = Vec::new();
    for plan in &cfg.plans {
        due_list.push((plan.name.clone(), &plan.schedule, plan, false));
        if let Some(d) = &plan.drill {
            due_list.push((format!("drill:{}", plan.name), d, plan, true));
        }
    }
    for (key, schedule, plan, is_drill) in due_list {
        let last = match state.catalog.last_fire(&key) {
            Ok(Some(t)) => t.parse::<jiff::Timestamp>().ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::error!("catalog: {e}");
                continue;
            }
        };
        let Some(last) = last else {
            // A new plan starts counting now.
            let _ = state.catalog.set_last_fire(&key, &stamp(now));
            earliest = min(earliest, schedule.next_after(now));
            continue;
        };
        let Some(due) = schedule.next_after(last) else {
            continue;
        };
        if due <= now {
            let missed = count_due(schedule, last, now);
            if started && missed > 0 && !cfg.run_missed {
                state.event(
                    "schedule_missed",
                    Some(&plan.source),
                    None,
                    &format!(
                        "plan {}: {missed} run(s) missed while the daemon was down; run_missed = false, so none runs now",
                        plan.name
                    ),
                );
            } else {
                let why = if missed > 1 {
                    format!("{missed} runs were due since {last}; running once")
                } else {
                    format!("due at {}", due.to_zoned(plan.schedule_zone()))
                };
                if is_drill {
                    fire_drill(state, &cfg, plan, &why);
                } else {
                    fire(state, &cfg, plan, &why);
                }
            }
            let _ = state.catalog.set_last_fire(&key, &stamp(now));
            earliest = min(earliest, schedule.next_after(now));
        } else {
            earliest = min(earliest, Some(due));
        }
    }
    let _ = state.ticked.send(now);
    earliest
}

fn min(a: Option<jiff::Timestamp>, b: Option<jiff::Timestamp>) -> Option<jiff::Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// How many fire times fell in (last, now], at most 1000.
fn count_due(
    schedule: &arca_ops::schedule::Schedule,
    last: jiff::Timestamp,
    now: jiff::Timestamp,
) -> usize {
    let mut n = 0;
    let mut t = last;
    while let Some(next) = schedule.next_after(t) {
        if next > now || n >= 1000 {
            break;
        }
        n += 1;
        t = next;
    }
    n
}

/// Queues the plan's backup.
pub fn fire(state: &Arc<State>, cfg: &Config, plan: &PlanConfig, why: &str) {
    match submit_backup(state, cfg, plan, None) {
        Ok(job) => state.event(
            "schedule_fired",
            Some(&plan.source),
            Some(&job),
            &format!("plan {}: backup queued ({why})", plan.name),
        ),
        Err(SubmitError::Busy(other)) => state.event(
            "schedule_skipped",
            Some(&plan.source),
            Some(&other),
            &format!(
                "plan {}: skipped ({why}): source {} has job {other} running",
                plan.name, plan.source
            ),
        ),
        Err(SubmitError::ShuttingDown) => {}
    }
}

/// Queues the plan's restore drill.
pub fn fire_drill(state: &Arc<State>, cfg: &Config, plan: &PlanConfig, why: &str) {
    match submit_drill(state, cfg, plan) {
        Ok(job) => state.event(
            "drill_fired",
            Some(&plan.source),
            Some(&job),
            &format!("plan {}: restore drill queued ({why})", plan.name),
        ),
        Err(SubmitError::Busy(other)) => state.event(
            "drill_skipped",
            Some(&plan.source),
            Some(&other),
            &format!(
                "plan {}: drill skipped ({why}): source {} has job {other} running",
                plan.name, plan.source
            ),
        ),
        Err(SubmitError::ShuttingDown) => {}
    }
}

/// Queues a restore drill of the plan's source.
pub fn submit_drill(
    state: &Arc<State>,
    cfg: &Config,
    plan: &PlanConfig,
) -> Result<String, SubmitError> {
    let cfg2 = Arc::new(cfg.clone());
    let plan2 = plan.clone();
    state.jobs.submit(
        Spec {
            kind: "drill",
            source: Some(plan.source.clone()),
            plan: Some(plan.name.clone()),
            holder: plan.source.clone(),
            detail: serde_json::json!({ "repository": plan.repository }),
        },
        Box::new(move |ctx| crate::work::drill(&cfg2, &plan2, ctx)),
    )
}

/// Queues a backup of the plan's source into the plan's repository.
pub fn submit_backup(
    state: &Arc<State>,
    cfg: &Config,
    plan: &PlanConfig,
    name: Option<String>,
) -> Result<String, SubmitError> {
    let cfg2 = Arc::new(cfg.clone());
    let source = cfg.source(&plan.source).expect("checked").clone();
    let repository = plan.repository.clone();
    let full = plan.full;
    state.jobs.submit(
        Spec {
            kind: "backup",
            source: Some(plan.source.clone()),
            plan: Some(plan.name.clone()),
            holder: plan.source.clone(),
            detail: serde_json::Value::Null,
        },
        Box::new(move |ctx| crate::work::backup(&cfg2, &source, &repository, full, name, ctx)),
    )
}

/// After a plan's backup succeeds: its retention, as a job of its own.
pub fn after_job(state: &Arc<State>, cfg: &Config, row: &JobRow) {
    if row.kind != "backup" || row.state != "succeeded" {
        return;
    }
    let Some(plan) = row.plan.as_deref().and_then(|p| cfg.plan(p)) else {
        return;
    };
    if !plan.has_retention() {
        return;
    }
    let now = state.clock.now();
    match submit_forget(state, cfg, plan, now, false, true) {
        Ok(job) => state.event(
            "retention_queued",
            Some(&plan.source),
            Some(&job),
            &format!("plan {}: retention queued", plan.name),
        ),
        Err(SubmitError::Busy(other)) => state.event(
            "retention_skipped",
            Some(&plan.source),
            Some(&other),
            &format!(
                "plan {}: retention skipped: job {other} holds the source",
                plan.name
            ),
        ),
        Err(SubmitError::ShuttingDown) => {}
    }
}

/// Queues the plan's retention (forget, then prune if anything went).
pub fn submit_forget(
    state: &Arc<State>,
    cfg: &Config,
    plan: &PlanConfig,
    now: jiff::Timestamp,
    dry_run: bool,
    prune: bool,
) -> Result<String, SubmitError> {
    let cfg2 = Arc::new(cfg.clone());
    let plan2 = plan.clone();
    state.jobs.submit(
        Spec {
            kind: "forget",
            source: Some(plan.source.clone()),
            plan: Some(plan.name.clone()),
            holder: plan.source.clone(),
            detail: serde_json::Value::Null,
        },
        Box::new(move |ctx| -> Result<Outcome, String> {
            crate::work::forget(&cfg2, &plan2, now, dry_run, prune, ctx)
        }),
    )
}

impl PlanConfig {
    pub fn schedule_zone(&self) -> jiff::tz::TimeZone {
        self.schedule.tz().clone()
    }
}
