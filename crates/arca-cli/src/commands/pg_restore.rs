//! `restore` of a PostgreSQL backup: a data directory that recovers to the
//! target, optionally started as a temporary instance.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{anyhow, bail, Context, Result};
use arca_ops::pg::{choose_backup, restore_postgres, PgRestoreOptions, PgTarget, Point};
use arca_repo::{Manifest, Repository};

use crate::args::RestoreArgs;
use crate::output::{bytes, print_json};
use crate::progress::Bar;

/// `snaps`: the repository's snapshots, read once by the caller.
pub fn run(
    repo: &Repository,
    a: &RestoreArgs,
    to: PathBuf,
    snaps: &[Manifest],
) -> Result<ExitCode> {
    let p = &a.pitr;
    let target = match (&p.target_time, &p.target_lsn, &p.target_snapshot) {
        (None, None, None) => PgTarget::Latest,
        (Some(t), None, None) => PgTarget::Time(super::parse_time(t)?),
        (None, Some(l), None) => PgTarget::Lsn(
            l.parse()
                .map_err(|e: String| anyhow!("--target-lsn: {e}"))?,
        ),
        (None, None, Some(n)) => PgTarget::Snapshot(n.clone()),
        _ => bail!("give one of --target-time, --target-lsn and --target-snapshot"),
    };
    let mut target = target;
    let chosen = match a.id.as_deref() {
        // The newest backup that reaches the target, as without an id.
        None | Some("latest") => None,
        Some(id) => {
            let snap = repo.find_manifest(id)?;
            match Point::of(&snap) {
                // A named point's id means "restore to that point".
                Some(p) if target == PgTarget::Latest => {
                    target = PgTarget::Snapshot(p.name);
                    None
                }
                Some(p) => bail!(
                    "{id} is snapshot {}, a point in time: give it as the target (--target-snapshot {}) or give a backup id",
                    p.name,
                    p.name
                ),
                None => Some(snap),
            }
        }
    };
    let timeline = match p.target_timeline.as_deref() {
        None => None,
        Some(t) if t.eq_ignore_ascii_case("latest") => Some("latest".to_string()),
        Some(t) => match t.parse::<u32>() {
            Ok(n) if n > 0 => Some(n.to_string()),
            _ => bail!(
                "--target-timeline {t:?} is not a timeline: give its number (as `arca list` shows) or latest"
            ),
        },
    };
    let pause_at_target = p.target_action.as_deref() == Some("pause");
    if pause_at_target && target == PgTarget::Latest {
        bail!("--target-action pause needs a target to pause at: give --target-time, --target-lsn or --target-snapshot");
    }
    let (snap, meta, recovery) = choose_backup(snaps, chosen, &target)?;
    // Timelines that branched off the backup's after it: followed only when named.
    let branches: Vec<arca_ops::pg::Branch> =
        arca_ops::pg::branches(repo, &meta.system_identifier)?
            .into_iter()
            .filter(|b| b.follows_from(meta.timeline, meta.stop_lsn))
            .collect();
    let port = match (p.port, p.start) {
        (Some(port), _) => Some(port),
        (None, true) => Some(free_port()?),
        (None, false) => None,
    };
    // PostgreSQL 13 on fails a recovery that ends before its target.
    let to_target = recovery.is_some() && meta.server_version_num >= 130000;
    let started = std::time::Instant::now();
    let bar = Bar::new("restore");
    let report = restore_postgres(
        repo,
        &snap,
        &meta,
        recovery,
        &PgRestoreOptions {
            to: to.clone(),
            force: a.force,
            parallelism: a.par.get_for_restore(),
            target: target.clone(),
            restore_command: restore_command(a, &meta.system_identifier, to_target)?,
            port,
            archive_off: !p.keep_archiving,
            timeline: timeline.clone(),
            pause_at_target,
        },
        &bar,
    )?;
    bar.finish();
    // The timeline recovery ends on: `latest` is the newest that branched
    // off the backup's after it.
    let followed_id = match timeline.as_deref() {
        None => meta.timeline,
        Some("latest") => branches
            .iter()
            .map(|b| b.timeline)
            .max()
            .unwrap_or(meta.timeline),
        Some(n) => n.parse().unwrap_or(meta.timeline),
    };
    let followed = match timeline.as_deref() {
        Some("latest") => format!("{followed_id} (the latest)"),
        _ => followed_id.to_string(),
    };
    // Branches on the way to it are followed up to where the next one left.
    let on_the_way: Vec<u32> = branches
        .iter()
        .find(|b| b.timeline == followed_id)
        .map(|b| b.ancestors.iter().map(|&(t, _)| t).collect())
        .unwrap_or_default();
    if a.json && !p.start {
        let mut v = serde_json::to_value(&report)?;
        v["duration_ms"] = (started.elapsed().as_millis() as u64).into();
        v["timeline"] = followed_id.into();
        v["archiving"] = p.keep_archiving.into();
        print_json(&v)?;
        return Ok(ExitCode::SUCCESS);
    }
    let what = match &target {
        PgTarget::Latest => "the newest archived WAL".to_string(),
        PgTarget::Time(t) => format!("{t}"),
        PgTarget::Lsn(l) => format!("WAL position {l}"),
        PgTarget::Snapshot(n) => format!("snapshot {n}"),
    };
    println!(
        "restored backup {} to {} ({}); it recovers to {what} on timeline {followed} when started",
        snap.id.short(),
        to.display(),
        bytes(report.bytes)
    );
    for b in branches
        .iter()
        .filter(|b| b.timeline != followed_id && !on_the_way.contains(&b.timeline))
    {
        println!(
            "timeline {} branched from timeline {} at {} (a promoted server or a restored copy that archived here): not followed; --target-timeline {} follows it",
            b.timeline, b.parent, b.switch_lsn, b.timeline
        );
    }
    if p.keep_archiving {
        println!(
            "archiving: kept as the source had it; started, this cluster archives into the repository as a primary"
        );
    } else {
        println!(
            "archiving: off (archive_mode = off in {}), so this copy cannot archive into {}; to make it the primary, restore with --keep-archiving",
            to.join("postgresql.auto.conf").display(),
            repo.location()
        );
    }
    if p.start {
        let port = port.expect("--start chose a port");
        let user = user_of(&snap.source);
        let connect = format!("psql -h 127.0.0.1 -p {port} -U {user}");
        let stop = format!("pg_ctl -D {} stop", to.display());
        match start(&to, meta.server_version_num, port, &user)? {
            Started::Promoted => println!(
                "started a temporary PostgreSQL on port {port} from {}: recovery is over; connect with {connect}; stop it with {stop}",
                to.display()
            ),
            Started::Paused => println!(
                "started a temporary PostgreSQL on port {port} from {}: paused at the recovery target, still in recovery (read-only); connect with {connect} to inspect it; SELECT pg_wal_replay_resume() ends recovery and makes it writable; stop it with {stop}",
                to.display()
            ),
            Started::Unchecked(why) => println!(
                "started a temporary PostgreSQL on port {port} from {}; arca could not connect to see whether recovery is over ({why}): SELECT pg_is_in_recovery() tells; connect with {connect}; stop it with {stop}",
                to.display()
            ),
        }
    } else {
        if port.is_none() {
            println!(
                "port: the source's, from its configuration; restore with --port P to run it beside the source"
            );
        }
        println!("start it with: pg_ctl -D {} start", to.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn user_of(source: &str) -> String {
    source
        .split_once("://")
        .and_then(|(_, r)| r.split_once('@'))
        .map_or_else(|| "postgres".into(), |(u, _)| u.to_string())
}

/// `arca wal-fetch` with the repository flags this restore was given (never
/// a secret: the server's environment or ~/.aws provides those).
fn restore_command(a: &RestoreArgs, cluster: &str, to_target: bool) -> Result<String> {
    let exe = std::env::current_exe().context("cannot find the arca binary for restore_command")?;
    let mut args = vec![exe.display().to_string(), "wal-fetch".into()];
    args.extend(super::repo_flags(&a.repo)?);
    args.extend(["--cluster".into(), cluster.to_string()]);
    if to_target {
        args.push("--to-target".into());
    }
    let mut cmd: Vec<String> = args.iter().map(|s| shell_quote(s)).collect();
    cmd.extend(["%f".into(), "%p".into()]);
    Ok(cmd.join(" "))
}

/// `arca wal-push` with this repository's flags, as archive_command runs it:
/// arca by its absolute path, since the server's PATH need not hold it.
pub(super) fn archive_command(repo: &crate::args::RepoArgs) -> Result<String> {
    let exe = std::env::current_exe().context("cannot find the arca binary")?;
    let mut args = vec![exe.display().to_string(), "wal-push".into()];
    args.extend(super::repo_flags(repo)?);
    let mut cmd: Vec<String> = args.iter().map(|s| shell_quote(s)).collect();
    cmd.push("%p".into());
    Ok(cmd.join(" "))
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// How a started cluster came out of recovery.
enum Started {
    /// `pg_is_in_recovery()` is false: it is writable.
    Promoted,
    /// Paused at the recovery target (`--target-action pause`).
    Paused,
    /// arca could not connect to ask (why); recovery.signal is gone.
    Unchecked(String),
}

/// Starts the restored cluster with `pg_ctl`, as the data directory's owner,
/// and waits until recovery is over (or paused at the target).
fn start(dir: &Path, version_num: u32, port: u16, user: &str) -> Result<Started> {
    let pg_ctl = find_pg_ctl(version_num)?;
    let owner = std::fs::metadata(dir)?;
    let log = dir.join("arca-start.log");
    let mut cmd = Command::new(&pg_ctl);
    cmd.arg("-D")
        .arg(dir)
        .arg("-l")
        .arg(&log)
        .args(["-w", "-t", "600", "start", "-o"])
        .arg(format!("-p {port}"));
    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX);
    if me == 0 && owner.uid() != 0 {
        cmd.uid(owner.uid()).gid(owner.gid());
    }
    let out = cmd
        .output()
        .with_context(|| format!("running {}", pg_ctl.display()))?;
    if !out.status.success() {
        bail!(
            "pg_ctl could not start the restored cluster in {}: {}{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim(),
            log_tail(&log)
        );
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
            bail!(
                "the restored cluster in {} stopped before it finished recovery:{}",
                dir.display(),
                log_tail(&log)
            );
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
        arca_ops::pg::clear_spool(dir);
    }
    Ok(started)
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
    let debian = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin/pg_ctl"));
    if debian.is_file() {
        return Ok(debian);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("pg_ctl"))
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("pg_ctl for PostgreSQL {major} not found (looked in {} and PATH): install the server package, or start the restored cluster yourself", debian.display()))
}
