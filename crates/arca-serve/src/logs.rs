//! Continuous log archiving for plans with `log_archiving = true`: a
//! thread per plan runs the engine's `stream_log` (PostgreSQL WAL over a
//! replication slot, the MySQL binary log as a replica reads it) and starts
//! it again after a failure, waiting 5 s, then twice as long each time up
//! to 5 minutes (back to 5 s after a run of a minute or more).
//!
//! The stream is not a job: it runs beside the source's backups, as
//! `wal-stream` runs beside `arca backup`. Stopping sets its flag; the
//! stream stores what it has received and returns.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{Config, PlanConfig};
use crate::State;

const FIRST_WAIT: Duration = Duration::from_secs(5);
const LONGEST_WAIT: Duration = Duration::from_secs(300);

/// What the API shows of a plan's log archiving.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub plan: String,
    pub source: String,
    /// `starting`, `streaming`, `reconnecting`, `waiting` (after a failure)
    /// or `stopped`.
    pub state: String,
    pub last_message: String,
    pub last_stored_at: Option<String>,
    pub restarts: u64,
}

struct Running {
    /// What it was started with: a change restarts it.
    key: (String, String, String),
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
    status: Arc<Mutex<Status>>,
}

#[derive(Default)]
pub struct Archivers {
    running: Mutex<HashMap<String, Running>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Archivers {
    /// Starts the archiving the configuration asks for and stops what it
    /// no longer does.
    pub fn sync(&self, state: &Arc<State>) {
        let cfg = state.config();
        let wanted: HashMap<String, &PlanConfig> = cfg
            .plans
            .iter()
            .filter(|p| p.log_archiving)
            .map(|p| (p.name.clone(), p))
            .collect();
        let mut running = lock(&self.running);
        let stale: Vec<String> = running
            .iter()
            .filter(|(name, r)| {
                wanted
                    .get(*name)
                    .is_none_or(|p| key(&cfg, p) != r.key || r.thread.is_finished())
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in stale {
            if let Some(r) = running.remove(&name) {
                r.stop.store(true, Ordering::SeqCst);
            }
        }
        for (name, plan) in wanted {
            if running.contains_key(&name) {
                continue;
            }
            let stop = Arc::new(AtomicBool::new(false));
            let status = Arc::new(Mutex::new(Status {
                plan: name.clone(),
                source: plan.source.clone(),
                state: "starting".into(),
                ..Status::default()
            }));
            let (s, p, st, sl) = (state.clone(), plan.clone(), stop.clone(), status.clone());
            let thread = std::thread::Builder::new()
                .name(format!("arca-log-{name}"))
                .spawn(move || supervise(&s, &p, &st, &sl))
                .expect("a thread");
            running.insert(
                name,
                Running {
                    key: key(&cfg, plan),
                    stop,
                    thread,
                    status,
                },
            );
        }
    }

    pub fn statuses(&self) -> Vec<Status> {
        let running = lock(&self.running);
        let mut v: Vec<Status> = running.values().map(|r| lock(&r.status).clone()).collect();
        v.sort_by(|a, b| a.plan.cmp(&b.plan));
        v
    }

    /// Stops every stream and waits for them, at most `wait`.
    pub fn stop_all(&self, wait: Duration) {
        let all: Vec<Running> = lock(&self.running).drain().map(|(_, r)| r).collect();
        for r in &all {
            r.stop.store(true, Ordering::SeqCst);
        }
        let until = Instant::now() + wait;
        for r in all {
            while !r.thread.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            if r.thread.is_finished() {
                let _ = r.thread.join();
            }
        }
    }
}

fn key(cfg: &Config, p: &PlanConfig) -> (String, String, String) {
    let url = cfg
        .source(&p.source)
        .map(|s| s.url.clone())
        .unwrap_or_default();
    (p.source.clone(), p.repository.clone(), url)
}

/// Sleeps `d`, waking early when `stop` is set; answers whether it was.
fn nap(d: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stop.load(Ordering::SeqCst) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.load(Ordering::SeqCst)
}

fn supervise(state: &Arc<State>, plan: &PlanConfig, stop: &AtomicBool, status: &Mutex<Status>) {
    let set = |state_name: &str, message: &str| {
        let mut s = lock(status);
        s.state = state_name.into();
        s.last_message = message.into();
    };
    let mut wait = FIRST_WAIT;
    loop {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let cfg = state.config();
        let Some(source) = cfg.source(&plan.source).cloned() else {
            break;
        };
        let began = Instant::now();
        let outcome = (|| -> Result<(), String> {
            let engine = arca_ops::engine::for_source(&source.url).map_err(|e| e.to_string())?;
            let repo = crate::work::open(&cfg, &plan.repository)?;
            let src = arca_ops::LogSource {
                url: source.url.clone(),
                password_file: source.password_file.clone(),
            };
            engine
                .stream_log(&repo, &src, stop, &mut |ev| match ev {
                    arca_ops::LogEvent::Started(m) => {
                        set("streaming", &m);
                        state.event("log_archiving_started", Some(&plan.source), None, &m);
                    }
                    arca_ops::LogEvent::Stored(m) => {
                        let mut s = lock(status);
                        s.state = "streaming".into();
                        s.last_message = m;
                        s.last_stored_at = Some(crate::stamp(jiff::Timestamp::now()));
                    }
                    arca_ops::LogEvent::Reconnecting(m) => {
                        set("reconnecting", &m);
                        state.event("log_archiving_reconnecting", Some(&plan.source), None, &m);
                    }
                })
                .map_err(|e| e.to_string())
        })();
        if stop.load(Ordering::SeqCst) {
            break;
        }
        if began.elapsed() >= Duration::from_secs(60) {
            wait = FIRST_WAIT;
        }
        let why = match outcome {
            Ok(()) => "the stream ended".to_string(),
            Err(e) => e,
        };
        let message = format!(
            "plan {}: log archiving stopped: {why}; starting again in {} s",
            plan.name,
            wait.as_secs()
        );
        set("waiting", &message);
        lock(status).restarts += 1;
        state.event("log_archiving_failed", Some(&plan.source), None, &message);
        if nap(wait, stop) {
            break;
        }
        wait = (wait * 2).min(LONGEST_WAIT);
    }
    set("stopped", "stopped");
}
