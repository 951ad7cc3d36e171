//! Repository locks: shared for backup, restore, check and delete; exclusive
//! for prune. See docs/design/repository.md for why locks and not a
//! lock-free two-phase delete.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::backend::{file_name, Backend};
use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::id::Id;

pub const LOCK_DIR: &str = "locks";
/// A lock not refreshed for this long belongs to a process that is gone.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockInfo {
    pub hostname: String,
    pub pid: u32,
    pub exclusive: bool,
    pub command: String,
    pub time: jiff::Timestamp,
    pub refreshed: jiff::Timestamp,
}

impl LockInfo {
    fn is_stale(&self, now: jiff::Timestamp) -> bool {
        if self.hostname == hostname() && !process_alive(self.pid) {
            return true;
        }
        let age = now.duration_since(self.refreshed);
        age.unsigned_abs() > STALE_AFTER && age.is_positive()
    }

    fn describe(&self) -> String {
        format!(
            "{} lock held by `arca {}` (pid {} on {}) since {}",
            if self.exclusive { "an exclusive" } else { "a" },
            self.command,
            self.pid,
            self.hostname,
            self.time
        )
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

/// Whether process `pid` of this host still runs. A zombie has exited, so
/// whatever it left (a lock, a restore's temporary) is as dead as it is.
/// Without /proc it cannot tell and says yes.
pub fn process_alive(pid: u32) -> bool {
    if !std::path::Path::new("/proc/self").exists() {
        return true; // no /proc: cannot tell, trust the refresh time
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// A held lock; dropping it removes the lock file.
pub struct LockGuard {
    backend: Backend,
    path: String,
    stop: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
    refresher: Option<JoinHandle<()>>,
}

impl LockGuard {
    /// Fails if this lock was removed as stale by another arca (this process
    /// was paused or cut off longer than the stale time): a prune may have
    /// deleted what this process wrote, so it must not commit.
    pub fn ensure_held(&self) -> Result<()> {
        if !self.lost.load(Ordering::SeqCst) && self.backend.exists(&self.path)? {
            return Ok(());
        }
        Err(Error::Locked(format!(
            "this process's lock {} was removed as stale by another arca, so a prune may have removed its data; nothing was committed: run the command again",
            self.path
        )))
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.refresher.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        if let Err(e) = self.backend.delete_quick(&self.path) {
            tracing::warn!("could not remove lock {}: {e}", self.path);
        }
    }
}

/// Takes a lock, waiting up to `wait` for conflicting holders to finish;
/// a tripped `cancel` ends the wait at once.
pub fn acquire(
    backend: &Backend,
    exclusive: bool,
    command: &str,
    wait: Duration,
    cancel: &Cancel,
) -> Result<LockGuard> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        let now = jiff::Timestamp::now();
        let info = LockInfo {
            hostname: hostname(),
            pid: std::process::id(),
            exclusive,
            command: command.to_string(),
            time: now,
            refreshed: now,
        };
        let path = format!("{LOCK_DIR}/{}", Id::random().to_hex());
        write_lock(backend, &path, &info).map_err(|e| Error::LockUnwritable(Box::new(e)))?;
        match conflicts(backend, &path, exclusive)? {
            None => return Ok(spawn_refresher(backend.clone(), path, info)),
            Some(holder) => {
                backend.delete(&path)?;
                if started.elapsed() >= wait {
                    return Err(Error::Locked(format!(
                        "{holder}; waited {}s. Retry when it has finished, or raise --lock-wait",
                        wait.as_secs()
                    )));
                }
                tracing::info!("waiting for {holder}");
                if cancel.sleep(pause + jitter(pause)) {
                    return Err(Error::Interrupted {
                        what: command.to_string(),
                        left: "it was waiting for a lock, so it had done nothing",
                    });
                }
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

fn jitter(base: Duration) -> Duration {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    base.mul_f64(u16::from_le_bytes(b) as f64 / u16::MAX as f64 / 2.0)
}

fn write_lock(backend: &Backend, path: &str, info: &LockInfo) -> Result<()> {
    let json = serde_json::to_vec(info).expect("lock info encodes");
    backend.write(path, json)
}

/// Returns a description of the first live lock that conflicts with ours.
/// Stale locks are removed on the way.
fn conflicts(backend: &Backend, own: &str, exclusive: bool) -> Result<Option<String>> {
    let now = jiff::Timestamp::now();
    for entry in backend.list(LOCK_DIR)? {
        if entry.path == own {
            continue;
        }
        if file_name(&entry.path).parse::<Id>().is_err() {
            tracing::warn!(
                "ignoring {}: Arca did not write it (its name is not an id)",
                entry.path
            );
            continue;
        }
        let info: LockInfo = match backend.read(&entry.path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(i) => i,
                Err(_) => {
                    // A lock file cut short by a crash cannot protect anything.
                    let _ = backend.delete(&entry.path);
                    continue;
                }
            },
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        if info.is_stale(now) {
            tracing::info!("removing stale lock {}: {}", entry.path, info.describe());
            let _ = backend.delete(&entry.path);
            continue;
        }
        if exclusive || info.exclusive {
            return Ok(Some(info.describe()));
        }
    }
    Ok(None)
}

fn spawn_refresher(backend: Backend, path: String, mut info: LockInfo) -> LockGuard {
    let stop = Arc::new(AtomicBool::new(false));
    let lost = Arc::new(AtomicBool::new(false));
    let (flag, gone) = (stop.clone(), lost.clone());
    let (b, p) = (backend.clone(), path.clone());
    let refresher = std::thread::Builder::new()
        .name("arca-lock".into())
        .spawn(move || loop {
            std::thread::park_timeout(REFRESH_EVERY);
            if flag.load(Ordering::SeqCst) {
                return;
            }
            // A lock another arca removed as stale must stay removed: writing
            // it again would hide that a prune may have run meanwhile.
            if matches!(b.exists(&p), Ok(false)) {
                gone.store(true, Ordering::SeqCst);
                return;
            }
            info.refreshed = jiff::Timestamp::now();
            if let Err(e) = write_lock(&b, &p, &info) {
                tracing::warn!("could not refresh lock {p}: {e}");
            }
        })
        .ok();
    LockGuard {
        backend,
        path,
        stop,
        lost,
        refresher,
    }
}
