//! Starting a restored cluster as a temporary instance (`restore --start`).

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use arca_repo::Error as RepoError;

use crate::{Error, Result};

/// How a started cluster came out of recovery.
pub enum Started {
    /// `pg_is_in_recovery()` is false: it is writable.
    Promoted,
    /// Paused at the recovery target (`--target-action pause`).
    Paused,
    /// arca could not connect to ask (why); recovery.signal is gone.
    Unchecked(String),
}

/// The user a `postgres://USER@…` source connected as.
pub fn user_of(source: &str) -> String {
    source
        .split_once("://")
        .and_then(|(_, r)| r.split_once('@'))
        .map_or_else(|| "postgres".into(), |(u, _)| u.to_string())
}

/// Starts the restored cluster with `pg_ctl`, as the data directory's owner,
/// and waits until recovery is over (or paused at the target).
pub fn start(dir: &Path, version_num: u32, port: u16, user: &str) -> Result<Started> {
    let pg_ctl = find_pg_ctl(version_num)?;
    let owner = std::fs::metadata(dir).map_err(|e| RepoError::io(dir, e))?;
    let log = dir.join("arca-start.log");
    let mut cmd = Command::new(&pg_ctl);
    cmd.arg("-D")
        .arg(dir)
        .arg("-l")
        .arg(&log)
        .args(["-w", "-t", "600", "start", "-o"])
        .arg(format!("-p {port}"));
    if crate::target::running_as_root() && owner.uid() != 0 {
        cmd.uid(owner.uid()).gid(owner.gid());
    }
    let out = cmd.output().map_err(|e| RepoError::io(&pg_ctl, e))?;
    if !out.status.success() {
        return Err(Error::Unsupported(format!(
            "pg_ctl could not start the restored cluster in {}: {}{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim(),
            log_tail(&log)
        )));
    }
    // pg_ctl returns once connections are accepted, which a hot standby
    // does before recovery ends; and the server removes recovery.signal
    // before its end-of-recovery checkpoint, while it is still read-only.
    // Only the server can say when recovery is over.
    let mut config = postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user(user)
        .dbname("postgres")
        .application_name("arca")
        .connect_timeout(std::time::Duration::from_secs(10));
    if let Ok(pw) = std::env::var("PGPASSWORD") {
        config.password(pw);
    }
    let signal = dir.join("recovery.signal");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3600);
    let mut unchecked: Option<String> = None;
    let started = loop {
        if !dir.join("postmaster.pid").exists() || std::time::Instant::now() > deadline {
            return Err(Error::Unsupported(format!(
                "the restored cluster in {} stopped before it finished recovery:{}",
                dir.display(),
                log_tail(&log)
            )));
        }
        if let Some(why) = &unchecked {
            if !signal.exists() {
                break Started::Unchecked(why.clone());
            }
        } else {
            match recovery_state(&mut config) {
                Ok(Some(s)) => break s,
                Ok(None) => {}
                Err(why) => unchecked = Some(why),
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    if !matches!(started, Started::Paused) {
        // Recovery is over: prefetched WAL it did not ask for is not needed.
        super::clear_spool(dir);
    }
    Ok(started)
}

/// Stops a cluster [`start`] started, as its owner, and waits until it is
/// down: `fast` ends its sessions and checkpoints, `immediate` just stops
/// (the next start recovers).
pub(crate) fn stop(dir: &Path, version_num: u32, mode: &str) -> Result<()> {
    let pg_ctl = find_pg_ctl(version_num)?;
    let owner = std::fs::metadata(dir).map_err(|e| RepoError::io(dir, e))?;
    let mut cmd = Command::new(&pg_ctl);
    cmd.arg("-D")
        .arg(dir)
        .args(["-m", mode, "-w", "-t", "120", "stop"]);
    if crate::target::running_as_root() && owner.uid() != 0 {
        cmd.uid(owner.uid()).gid(owner.gid());
    }
    let out = cmd.output().map_err(|e| RepoError::io(&pg_ctl, e))?;
    if !out.status.success() {
        return Err(Error::Unsupported(format!(
            "pg_ctl could not stop the cluster in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Whether the server is out of recovery or paused in it (`None`: still
/// replaying, or not accepting connections yet). An error is a refusal that
/// waiting will not change (authentication).
fn recovery_state(config: &mut postgres::Config) -> std::result::Result<Option<Started>, String> {
    use postgres::error::SqlState;
    let mut client = match config.connect(postgres::NoTls) {
        Ok(c) => c,
        Err(e) => {
            return match e.code() {
                Some(c)
                    if *c == SqlState::INVALID_PASSWORD
                        || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
                {
                    Err(e
                        .as_db_error()
                        .map_or(e.to_string(), |d| d.message().to_string()))
                }
                _ => Ok(None),
            };
        }
    };
    let row = client
        .query_one(
            "SELECT pg_is_in_recovery(), pg_is_in_recovery() AND pg_is_wal_replay_paused()",
            &[],
        )
        .map_err(|e| e.to_string())?;
    Ok(match (row.get::<_, bool>(0), row.get::<_, bool>(1)) {
        (false, _) => Some(Started::Promoted),
        (true, true) => Some(Started::Paused),
        (true, false) => None,
    })
}

/// The server log's last five lines, each on a line of its own, indented.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.iter().rev().map(|l| format!("\n  {l}")).collect()
}

fn find_pg_ctl(version_num: u32) -> Result<PathBuf> {
    let major = version_num / 10000;
    let debian = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
    crate::target::find_program("pg_ctl", &[&debian], &[])
        .ok_or_else(|| Error::Unsupported(format!("pg_ctl for PostgreSQL {major} not found (looked in {} and PATH): install the server package, or start the restored cluster yourself", debian.join("pg_ctl").display())))
}
