//! Jobs: every backup, restore, check, forget and drill the daemon runs.
//!
//! A job is queued, then waits for one of `max_jobs` slots, then runs the
//! library call on a blocking thread with a [`Cancel`] token of its own on
//! the repository it opens. One job per source (or per repository, for
//! jobs without a source) at a time: a second is refused with the first's
//! id. Live jobs are held here; every change of state is written to the
//! catalog, which keeps the finished ones.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arca_repo::Cancel;
use tokio::sync::{broadcast, Semaphore};

use crate::catalog::{Catalog, JobRow, Progress};
use crate::stamp;

/// The phases a running job reports.
pub const PHASES: &[&str] = &[
    "running",
    "reading",
    "uploading",
    "verifying",
    "finalising",
    "restoring",
    "checking",
    "forgetting",
    "pruning",
];

/// What a job's work sees: its token and its progress.
pub struct JobCtx {
    pub cancel: Cancel,
    pub progress: Arc<Meter>,
}

/// Progress counters the work updates and the API reads, lock-free.
#[derive(Default)]
pub struct Meter {
    done: AtomicU64,
    total: AtomicU64,
    phase: AtomicU8,
}

impl Meter {
    pub fn phase(&self, name: &str) {
        if let Some(i) = PHASES.iter().position(|p| *p == name) {
            self.phase.store(i as u8, Ordering::Relaxed);
        }
    }

    fn phase_name(&self) -> &'static str {
        PHASES
            .get(self.phase.load(Ordering::Relaxed) as usize)
            .copied()
            .unwrap_or("running")
    }

    fn snapshot(&self, started: Option<Instant>) -> Progress {
        let done = self.done.load(Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed);
        let secs = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
        let rate = if secs > 0.5 {
            (done as f64 / secs) as u64
        } else {
            0
        };
        let eta_seconds = (rate > 0 && total > done).then(|| (total - done) / rate);
        Progress {
            bytes_done: done,
            bytes_total: total,
            rate,
            eta_seconds,
        }
    }
}

impl arca_repo::Progress for Meter {
    fn set_total(&self, bytes: u64) {
        self.total.store(bytes, Ordering::Relaxed);
    }
    fn inc(&self, bytes: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// What finished work reports.
#[derive(Debug, Default)]
pub struct Outcome {
    pub backup: Option<String>,
    pub result: serde_json::Value,
}

pub type Work = Box<dyn FnOnce(&JobCtx) -> Result<Outcome, String> + Send + 'static>;

/// Called when a job ends (events, webhook, a rescan), off the reactor.
pub type OnFinish = Arc<dyn Fn(&JobRow) + Send + Sync>;

#[derive(Debug)]
pub enum SubmitError {
    /// The source has a job already: its id.
    Busy(String),
    /// The daemon is stopping.
    ShuttingDown,
}

struct Live {
    row: JobRow,
    cancel: Cancel,
    meter: Arc<Meter>,
    started: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    live: HashMap<String, Live>,
    /// The job holding each source (or `repo:NAME`).
    holders: HashMap<String, String>,
    stopping: bool,
}

#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Mutex<Inner>>,
    catalog: Catalog,
    slots: Arc<Semaphore>,
    on_finish: OnFinish,
    /// Every change of a job, for the server-sent events stream.
    changes: broadcast::Sender<String>,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

/// What a job is about.
pub struct Spec {
    pub kind: &'static str,
    pub source: Option<String>,
    pub plan: Option<String>,
    /// What holds it: the source, or `repo:NAME`.
    pub holder: String,
    /// What the job was asked for (a snapshot's name, a restore's target),
    /// kept in its `result` beside what it reports at the end.
    pub detail: serde_json::Value,
}

impl Jobs {
    pub fn new(catalog: Catalog, max_jobs: usize, on_finish: OnFinish) -> Jobs {
        Jobs {
            inner: Arc::default(),
            catalog,
            slots: Arc::new(Semaphore::new(max_jobs)),
            on_finish,
            changes: broadcast::channel(256).0,
            tasks: Arc::default(),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.changes.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `work`; answers the job's id.
    pub fn submit(&self, spec: Spec, work: Work) -> Result<String, SubmitError> {
        let id = new_id();
        let row = JobRow {
            id: id.clone(),
            kind: spec.kind.into(),
            source: spec.source,
            plan: spec.plan,
            state: "queued".into(),
            phase: "queued".into(),
            progress: Progress::default(),
            backup: None,
            error: None,
            created_at: stamp(jiff::Timestamp::now()),
            started_at: None,
            finished_at: None,
            result: spec.detail,
        };
        let cancel = Cancel::default();
        let meter = Arc::new(Meter::default());
        {
            let mut g = self.lock();
            if g.stopping {
                return Err(SubmitError::ShuttingDown);
            }
            if let Some(other) = g.holders.get(&spec.holder) {
                return Err(SubmitError::Busy(other.clone()));
            }
            g.holders.insert(spec.holder.clone(), id.clone());
            g.live.insert(
                id.clone(),
                Live {
                    row: row.clone(),
                    cancel: cancel.clone(),
                    meter: meter.clone(),
                    started: None,
                },
            );
        }
        self.persist(&row);
        let this = self.clone();
        let holder = spec.holder;
        let job = id.clone();
        let handle = tokio::spawn(async move {
            this.run(job, holder, cancel, meter, work).await;
        });
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle);
        Ok(id)
    }

    async fn run(&self, id: String, holder: String, cancel: Cancel, meter: Arc<Meter>, work: Work) {
        // Wait for a slot, or for a cancel while queued.
        let permit = loop {
            if cancel.is_cancelled() {
                break None;
            }
            tokio::select! {
                p = self.slots.clone().acquire_owned() => break p.ok(),
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        };
        let outcome = match permit {
            None => Err("cancelled while queued".to_string()),
            Some(permit) => {
                self.update(&id, |l| {
                    l.row.state = "running".into();
                    l.row.phase = "running".into();
                    l.row.started_at = Some(stamp(jiff::Timestamp::now()));
                    l.started = Some(Instant::now());
                });
                let ctx = JobCtx {
                    cancel: cancel.clone(),
                    progress: meter.clone(),
                };
                let r = tokio::task::spawn_blocking(move || {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&ctx)))
                        .unwrap_or_else(|p| Err(format!("the job panicked: {}", panic_text(&p))))
                })
                .await
                .unwrap_or_else(|e| Err(format!("the job's thread failed: {e}")));
                drop(permit);
                r
            }
        };
        let finished = {
            let mut g = self.lock();
            g.holders.remove(&holder);
            let Some(mut l) = g.live.remove(&id) else {
                return;
            };
            l.row.progress = l.meter.snapshot(l.started);
            l.row.finished_at = Some(stamp(jiff::Timestamp::now()));
            match outcome {
                Ok(o) => {
                    l.row.state = "succeeded".into();
                    l.row.phase = "succeeded".into();
                    l.row.backup = o.backup;
                    merge(&mut l.row.result, o.result);
                }
                Err(e) if cancel.is_cancelled() => {
                    l.row.state = "cancelled".into();
                    l.row.phase = "cancelled".into();
                    l.row.error = Some(e);
                }
                Err(e) => {
                    l.row.state = "failed".into();
                    l.row.phase = "failed".into();
                    l.row.error = Some(e);
                }
            }
            l.row
        };
        self.persist(&finished);
        let on_finish = self.on_finish.clone();
        let _ = tokio::task::spawn_blocking(move || on_finish(&finished)).await;
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Live)) {
        let row = {
            let mut g = self.lock();
            let Some(l) = g.live.get_mut(id) else { return };
            f(l);
            l.row.clone()
        };
        self.persist(&row);
    }

    fn persist(&self, row: &JobRow) {
        if let Err(e) = self.catalog.put_job(row) {
            tracing::error!("job {}: cannot record it in the catalog: {e}", row.id);
        }
        if let Ok(j) = serde_json::to_string(row) {
            let _ = self.changes.send(j);
        }
    }

    /// The job as it is now: live, or from the catalog.
    pub fn get(&self, id: &str) -> Option<JobRow> {
        if let Some(row) = self.live_row(id) {
            return Some(row);
        }
        self.catalog.job(id).ok().flatten()
    }

    fn live_row(&self, id: &str) -> Option<JobRow> {
        let g = self.lock();
        let l = g.live.get(id)?;
        let mut row = l.row.clone();
        row.progress = l.meter.snapshot(l.started);
        if row.state == "running" {
            row.phase = l.meter.phase_name().into();
        }
        Some(row)
    }

    /// Live jobs, newest first.
    pub fn live(&self) -> Vec<JobRow> {
        let ids: Vec<String> = self.lock().live.keys().cloned().collect();
        let mut rows: Vec<JobRow> = ids.iter().filter_map(|id| self.live_row(id)).collect();
        rows.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        rows
    }

    /// Trips a live job's token. `None`: no such live job.
    pub fn cancel(&self, id: &str) -> Option<JobRow> {
        let g = self.lock();
        let l = g.live.get(id)?;
        l.cancel.cancel();
        Some(l.row.clone())
    }

    /// The job holding a source, if any.
    pub fn holder(&self, holder: &str) -> Option<String> {
        self.lock().holders.get(holder).cloned()
    }

    /// Refuses new jobs, cancels every live one and waits for them, at
    /// most `wait`.
    pub async fn shutdown(&self, wait: Duration) {
        {
            let mut g = self.lock();
            g.stopping = true;
            for l in g.live.values() {
                l.cancel.cancel();
            }
        }
        let tasks: Vec<_> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        let all = futures_join(tasks);
        if tokio::time::timeout(wait, all).await.is_err() {
            tracing::warn!(
                "jobs did not stop within {} s; exiting anyway",
                wait.as_secs()
            );
        }
    }
}

/// `extra`'s fields into `into` (an object, or null).
fn merge(into: &mut serde_json::Value, extra: serde_json::Value) {
    if extra.is_null() {
        return;
    }
    if into.is_null() {
        *into = extra;
        return;
    }
    if let Some(m) = into.as_object_mut() {
        match extra {
            serde_json::Value::Object(e) => m.extend(e),
            e => {
                m.insert("outcome".into(), e);
            }
        }
    }
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// A job id: the time it was made and random digits, so ids sort by age.
fn new_id() -> String {
    let mut r = [0u8; 4];
    let _ = getrandom::fill(&mut r);
    let t = jiff::Timestamp::now();
    format!("{}-{}", t.strftime("%Y%m%dT%H%M%S"), hex::encode(r))
}
