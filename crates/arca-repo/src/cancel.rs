//! Cancellation: a token the caller trips (a signal handler, an HTTP
//! request to cancel a job) and long operations check between steps.
//!
//! The token rides on the [`Repository`](crate::Repository) handle, so every
//! operation on that handle sees it. An operation checks it where its work
//! goes in steps (a segment read, a pack read, a file deleted) and stops with
//! [`Error::Interrupted`], which says what it left behind. A step that must
//! not be cut in two (an index written and the one it replaces deleted) is
//! finished first.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};

/// A cancellation token. Clones share one state: cancelling any cancels all.
#[derive(Clone, Default)]
pub struct Cancel(Arc<Inner>);

#[derive(Default)]
struct Inner {
    cancelled: Arc<AtomicBool>,
    /// Wakes [`Cancel::sleep`] at once.
    lock: Mutex<()>,
    wake: Condvar,
}

/// The operations that check the token, for the message of the error they
/// stop with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Backup,
    Restore,
    Check,
    Prune,
    Repair,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Backup => "backup",
            Op::Restore => "restore",
            Op::Check => "check",
            Op::Prune => "prune",
            Op::Repair => "repair",
        }
    }

    /// What an interrupted operation leaves, as its error says.
    fn left(self) -> &'static str {
        match self {
            Op::Backup => {
                "nothing was committed; the packs it wrote stay until `arca prune` removes them"
            }
            // The restorer writes into files its caller made; every caller
            // (arca-ops) makes them as temporaries it removes on any error.
            Op::Restore => "its partial files were removed",
            Op::Check => "the repository was not changed",
            Op::Prune => "the repository is whole; run `arca prune` again to finish",
            Op::Repair => "what it did so far stands; run it again to finish",
        }
    }
}

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Trips the token. Operations stop at their next check.
    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::SeqCst);
        let _held = self.0.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.0.wake.notify_all();
    }

    /// The flag itself, for a signal handler, which may only store to an
    /// atomic: set there, operations see it at once; a sleep sees it at its
    /// end, or when [`Cancel::cancel`] is called too.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.cancelled.clone()
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }

    /// Fails with [`Error::Interrupted`] for `op` once the token is tripped.
    pub fn check(&self, op: Op) -> Result<()> {
        if self.is_cancelled() {
            return Err(Error::Interrupted {
                what: op.name().to_string(),
                left: op.left(),
            });
        }
        Ok(())
    }

    /// Sleeps for `d` or until the token is tripped; true if it was.
    pub fn sleep(&self, d: Duration) -> bool {
        let held = self.0.lock.lock().unwrap_or_else(|e| e.into_inner());
        let (_held, _) = self
            .0
            .wake
            .wait_timeout_while(held, d, |_| !self.is_cancelled())
            .unwrap_or_else(|e| e.into_inner());
        self.is_cancelled()
    }
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancel")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn clones_share_the_state_and_a_sleep_wakes_at_once() {
        let token = Cancel::new();
        let other = token.clone();
        assert!(token.check(Op::Backup).is_ok());
        let t = Instant::now();
        assert!(!token.sleep(Duration::from_millis(20)));
        assert!(t.elapsed() >= Duration::from_millis(20));
        let waker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            other.cancel();
        });
        let t = Instant::now();
        assert!(token.sleep(Duration::from_secs(30)));
        assert!(t.elapsed() < Duration::from_secs(10));
        waker.join().unwrap();
        let e = token.check(Op::Prune).unwrap_err().to_string();
        assert_eq!(
            e,
            "prune interrupted: the repository is whole; run `arca prune` again to finish"
        );
    }
}
