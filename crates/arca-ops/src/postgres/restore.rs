//! Restore a PostgreSQL backup into a data directory set up to recover to a
//! point: files into a staging directory beside the target, recovery
//! settings, then one rename, so a failed restore leaves no half-written
//! data directory.

use std::collections::BTreeSet;
use std::path::PathBuf;

use arca_engine::postgres::{
    prepare_target, set_owner_and_modes, write_recovery, Lsn, RecoverySettings, RecoveryTarget,
    Segment,
};
use arca_repo::{Error as RepoError, Manifest, Progress, Repository};

use super::points::Point;
use super::wal::{last_record_in, last_xact_time, prefetch, SPOOL_DIR};

/// Segments a restore fetches ahead of recovery: those the backup needs to
/// become consistent and a few more, at most 64 (1 GiB of 16 MiB segments).
const PREFETCH_SEGMENTS: usize = 64;
const PREFETCH_PAST_STOP: u64 = 8;
use super::commands::restore_command;
use super::start::{start, user_of, Started};
use super::wal::{branches, Branch};
use super::{stream, PgBackupMeta};
use crate::engine::{RestoreRequest, Restored, Target};
use crate::target::free_port;
use crate::target::{create_dirs_under, create_new, Temp};
use crate::{Error, Result};

/// Where recovery should stop.
#[derive(Debug, Clone, PartialEq)]
pub enum PgTarget {
    /// Replay all archived WAL.
    Latest,
    Time(jiff::Timestamp),
    Lsn(Lsn),
    /// A named snapshot (restore point).
    Snapshot(String),
}

#[derive(Debug, Clone)]
pub struct PgRestoreOptions {
    pub to: PathBuf,
    pub force: bool,
    pub parallelism: usize,
    pub target: PgTarget,
    /// The `restore_command` the restored server runs, with `%f %p`.
    pub restore_command: String,
    pub port: Option<u16>,
    /// Archive nothing: the restored cluster is a copy, not the new primary.
    pub archive_off: bool,
    /// `recovery_target_timeline` (a number or `latest`); `None`: the
    /// backup's own, so a timeline some copy archived is never followed
    /// unless asked for.
    pub timeline: Option<String>,
    /// Pause at the recovery target instead of promoting.
    pub pause_at_target: bool,
}

/// Picks the backup to start from: the newest one of the cluster that ends
/// before the target (or `chosen`, checked against the target).
pub fn choose_backup(
    snaps: &[Manifest],
    chosen: Option<Manifest>,
    target: &PgTarget,
) -> Result<(Manifest, PgBackupMeta, Option<RecoveryTarget>)> {
    let (want_cluster, recovery, limit_lsn, limit_time) = match target {
        PgTarget::Latest => (None, None, None, None),
        PgTarget::Time(t) => (
            None,
            Some(RecoveryTarget::Time(
                t.strftime("%Y-%m-%d %H:%M:%S%.6f+00").to_string(),
            )),
            None,
            Some(*t),
        ),
        PgTarget::Lsn(l) => (None, Some(RecoveryTarget::Lsn(*l)), Some(*l), None),
        PgTarget::Snapshot(name) => {
            let p = snaps
                .iter()
                .filter_map(Point::of)
                .find(|p| &p.name == name)
                .ok_or_else(|| {
                    Error::Unsupported(format!(
                        "no snapshot named {name}: `arca snapshot show` lists them"
                    ))
                })?;
            (
                Some(p.system_identifier.clone()),
                Some(RecoveryTarget::Name(p.name.clone())),
                Some(p.lsn),
                None,
            )
        }
    };
    let fits = |m: &PgBackupMeta| {
        want_cluster
            .as_ref()
            .is_none_or(|c| &m.system_identifier == c)
            && limit_lsn.is_none_or(|l| m.stop_lsn <= l)
            && limit_time.is_none_or(|t| m.stop_time <= t)
    };
    if let Some(snap) = chosen {
        let meta = PgBackupMeta::of(&snap).ok_or_else(|| {
            Error::Unsupported(format!(
                "{} is not a PostgreSQL physical backup",
                snap.id.short()
            ))
        })?;
        if !fits(&meta) {
            return Err(Error::Unsupported(format!(
                "backup {} ends at {} ({}), after the recovery target: choose an earlier backup, or leave the id out and arca picks one",
                snap.id.short(),
                meta.stop_lsn,
                meta.stop_time
            )));
        }
        return Ok((snap, meta, recovery));
    }
    let best = snaps
        .iter()
        .filter_map(|s| PgBackupMeta::of(s).map(|m| (s, m)))
        .filter(|(_, m)| fits(m))
        .max_by_key(|(_, m)| m.stop_lsn);
    match best {
        Some((s, m)) => Ok((s.clone(), m, recovery)),
        None => Err(match target {
            PgTarget::Snapshot(name) => Error::Unsupported(format!(
                "snapshot {name} cannot be restored: no backup of its cluster ends before it (its base backup was deleted, or it was made before the first backup)"
            )),
            _ => Error::Unsupported(
            "no PostgreSQL backup in this repository ends before the recovery target: take a backup first (arca backup --source postgres://…), or choose a later target".into(),
            ),
        }),
    }
}

pub fn restore_postgres(
    repo: &Repository,
    snap: &Manifest,
    meta: &PgBackupMeta,
    recovery: Option<RecoveryTarget>,
    opts: &PgRestoreOptions,
    progress: &dyn Progress,
) -> Result<Restored> {
    // Every path the backup names stays inside the data directory.
    for d in &meta.dirs {
        arca_repo::checked_path(&snap.id, d)?;
    }
    for f in &snap.files {
        f.checked_path(&snap.id)?;
    }
    prepare_target(&opts.to, opts.force)?;
    let parent = match opts.to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(RepoError::Format(format!(
            "cannot restore to {}: directory {} does not exist",
            opts.to.display(),
            parent.display()
        ))
        .into());
    }
    let _lock = repo.lock_for_reading("restore")?;
    let timeline = opts
        .timeline
        .clone()
        .unwrap_or_else(|| meta.timeline.to_string());
    let other_timeline = timeline != meta.timeline.to_string();
    let replay = check_wal(repo, meta, &opts.target, other_timeline)?;
    let index = repo.load_index()?;
    // Removed on failure, on a signal, or by the next restore if this one
    // is killed.
    let temp = Temp::new(&opts.to);
    let staging = temp.path();
    let result = (|| -> Result<()> {
        std::fs::create_dir(staging).map_err(|e| RepoError::io(staging, e))?;
        for d in &meta.dirs {
            let rel = arca_repo::checked_path(&snap.id, d)?;
            create_dirs_under(staging, &rel).map_err(|e| RepoError::io(staging.join(&rel), e))?;
        }
        progress.set_total(snap.size);
        // The first segments recovery asks for, so it need not wait for a
        // fetch from the repository for each; up to a few past the backup's
        // end (a recovery target further on would leave the rest unread in
        // the spool). Fetched by one thread beside the files' restore, which
        // leaves a core idle part of the time.
        let stop = Segment::of(meta.timeline, meta.stop_lsn, meta.wal_segment_size);
        let first: Vec<String> = replay
            .into_iter()
            .filter(|n| {
                Segment::parse(n, meta.wal_segment_size)
                    .is_some_and(|s| s.number <= stop.number + PREFETCH_PAST_STOP)
            })
            .take(PREFETCH_SEGMENTS)
            .collect();
        let (files, wal) = std::thread::scope(|s| {
            let wal = s.spawn(|| {
                prefetch(
                    repo,
                    &stream(&meta.system_identifier),
                    &first,
                    &staging.join(SPOOL_DIR),
                    1,
                )
            });
            let files = restore_files(
                repo,
                &index,
                snap,
                staging,
                opts.parallelism.max(1),
                progress,
            );
            (files, wal.join())
        });
        files?;
        wal.unwrap_or_else(|_| Err(Error::Unsupported("WAL prefetch panicked".into())))?;
        write_recovery(
            staging,
            &RecoverySettings {
                restore_command: opts.restore_command.clone(),
                target: recovery.clone(),
                port: opts.port,
                archive_off: opts.archive_off,
                timeline: Some(timeline.clone()),
                pause: opts.pause_at_target,
            },
        )?;
        set_owner_and_modes(staging, meta.uid, meta.gid)?;
        // Everything written is on disk before the directory takes its name.
        sync_filesystem(staging)?;
        if opts.to.exists() {
            std::fs::remove_dir_all(&opts.to).map_err(|e| RepoError::io(&opts.to, e))?;
        }
        std::fs::rename(staging, &opts.to).map_err(|e| RepoError::io(&opts.to, e))?;
        sync_filesystem(&opts.to)?;
        Ok(())
    })();
    result?;
    temp.done();
    Ok(Restored {
        backup: snap.id.to_hex(),
        files: vec![opts.to.clone()],
        bytes: snap.size,
        detail: Default::default(),
        lines: Vec::new(),
    })
}

/// Restores a data directory's files, largest first, so the last to finish
/// is a small one; one set of threads serves them all.
fn restore_files(
    repo: &Repository,
    index: &arca_repo::index::Index,
    snap: &Manifest,
    staging: &std::path::Path,
    parallelism: usize,
    progress: &dyn Progress,
) -> Result<()> {
    let mut files: Vec<&arca_repo::FileEntry> = snap.files.iter().collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.size));
    // One create at a time: creates in one directory take turns on its lock
    // in the kernel anyway, and a waiting thread spins there.
    let creating = std::sync::Mutex::new(());
    let open = |file: &arca_repo::FileEntry| -> std::result::Result<std::fs::File, RepoError> {
        let rel = file.checked_path(&snap.id)?;
        let p = staging.join(&rel);
        let _one = creating.lock().unwrap();
        match create_new(&p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A directory the backup did not list (older backups).
                if let Some(dir) = rel.parent() {
                    create_dirs_under(staging, dir).map_err(|e| RepoError::io(&p, e))?;
                }
                create_new(&p)
            }
            r => r,
        }
        .map_err(|e| RepoError::io(&p, e))
    };
    arca_repo::restore_files(repo, index, &files, &open, parallelism, progress)?;
    Ok(())
}

/// Flushes the file system holding `path` in one call (`syncfs`): the
/// files, the directories that name them and the rename, which an fsync of
/// each file alone would not cover; as fast as those fsyncs were here.
fn sync_filesystem(path: &std::path::Path) -> Result<()> {
    let dir = std::fs::File::open(path).map_err(|e| RepoError::io(path, e))?;
    rustix::fs::syncfs(&dir).map_err(|e| RepoError::io(path, e.into()))?;
    Ok(())
}

/// Refuses a restore whose WAL has a gap before the target: PostgreSQL would
/// end recovery at the gap and come up silently short.
/// Returns the segments recovery will replay, first to last. Following
/// another timeline (`other_timeline`), only the WAL the backup itself needs
/// is checked: the rest lies on timelines this check does not walk.
fn check_wal(
    repo: &Repository,
    meta: &PgBackupMeta,
    target: &PgTarget,
    other_timeline: bool,
) -> Result<Vec<String>> {
    let seg = meta.wal_segment_size;
    let archived: BTreeSet<String> = repo
        .list_logs(&super::stream(&meta.system_identifier))?
        .into_iter()
        .map(|l| l.name)
        .collect();
    let first = Segment::of(meta.timeline, meta.start_lsn, seg);
    let newest = archived
        .iter()
        .filter_map(|n| Segment::parse(n.trim_end_matches(".partial"), seg))
        .filter(|s| s.timeline == meta.timeline)
        .max();
    let last = match target {
        _ if other_timeline => first,
        PgTarget::Lsn(l) => Segment::of(meta.timeline, *l, seg),
        _ => newest.unwrap_or(first),
    };
    let last = last.max(Segment::of(meta.timeline, meta.stop_lsn, seg));
    let replay: Vec<String> = first.through(last).map(|s| s.name(seg)).collect();
    // A partial segment (streamed, not yet complete) ends a recovery, but
    // not early: it is the newest WAL there is.
    let stream = stream(&meta.system_identifier);
    if let Some(missing) = replay
        .iter()
        .find(|n| !archived.contains(*n) && !archived.contains(&format!("{n}.partial")))
    {
        // The latest target short of the gap: the last record that ends in
        // the segment before it, if that is past the backup's end.
        let before = Segment::parse(missing, seg)
            .filter(|s| s.number > first.number)
            .map(|s| Segment {
                timeline: s.timeline,
                number: s.number - 1,
            });
        let reachable = match before {
            Some(b) => last_record_in(repo, &stream, &b.name(seg))?,
            None => None,
        }
        .filter(|l| *l >= meta.stop_lsn);
        let instead = match reachable {
            Some(l) => format!("or restore to a point before it (--target-lsn {l})"),
            None => "or restore an earlier backup: no point after this backup's end is reachable before the gap".to_string(),
        };
        return Err(Error::Unsupported(format!(
            "WAL segment {missing} is missing from {}: recovery from the backup (which starts at {}) would stop there, before the target. Archive it from the server's pg_wal (arca wal-push), {instead}",
            repo.location(),
            meta.start_lsn,
        )));
    }
    // Recovery to a time stops at the first transaction after it: a time
    // after the last archived one would fail only once the server runs.
    if let (PgTarget::Time(t), false) = (target, other_timeline) {
        match last_xact_time(repo, &stream, first, seg, usize::MAX)? {
            Some(last) if last > *t => {}
            Some(last) => {
                return Err(Error::Unsupported(format!(
                    "--target-time {t} is not before the last transaction in the archived WAL ({last}): recovery cannot reach it. Choose an earlier time, or leave --target-time out to recover all archived WAL"
                )))
            }
            None => {
                return Err(Error::Unsupported(format!(
                    "no transaction in the archived WAL after the backup's start ({}), so no --target-time can be reached from it: leave --target-time out to recover all archived WAL",
                    meta.start_lsn
                )))
            }
        }
    }
    Ok(replay
        .into_iter()
        .filter(|n| archived.contains(n))
        .collect())
}

/// A restore as the engine seam asks for it: picks the backup for the
/// target, restores it, and starts it if asked; says what it did and what
/// to do next.
pub fn restore(
    repo: &Repository,
    manifests: &[Manifest],
    chosen: Option<Manifest>,
    req: &RestoreRequest,
    progress: &dyn Progress,
) -> Result<Restored> {
    let mut target = match &req.target {
        Target::Latest => PgTarget::Latest,
        Target::Time(t) => PgTarget::Time(*t),
        Target::Position(l) => PgTarget::Lsn(
            l.parse()
                .map_err(|e: String| Error::Unsupported(format!("--target-lsn: {e}")))?,
        ),
        Target::Named(n) => PgTarget::Snapshot(n.clone()),
    };
    let chosen = match chosen {
        // A named point's id means "restore to that point".
        Some(m) => match Point::of(&m) {
            Some(p) if target == PgTarget::Latest => {
                target = PgTarget::Snapshot(p.name);
                None
            }
            Some(p) => {
                return Err(Error::Unsupported(format!(
                    "{} is snapshot {}, a point in time: give it as the target (--target-snapshot {}) or give a backup id",
                    m.id.short(),
                    p.name,
                    p.name
                )))
            }
            None => Some(m),
        },
        None => None,
    };
    let timeline = match req.timeline.as_deref() {
        None => None,
        Some(t) if t.eq_ignore_ascii_case("latest") => Some("latest".to_string()),
        Some(t) => match t.parse::<u32>() {
            Ok(n) if n > 0 => Some(n.to_string()),
            _ => {
                return Err(Error::Unsupported(format!(
                    "--target-timeline {t:?} is not a timeline: give its number (as `arca list` shows) or latest"
                )))
            }
        },
    };
    if req.pause_at_target && target == PgTarget::Latest {
        return Err(Error::Unsupported("--target-action pause needs a target to pause at: give --target-time, --target-lsn or --target-snapshot".into()));
    }
    let (snap, meta, recovery) = choose_backup(manifests, chosen, &target)?;
    // Timelines that branched off the backup's after it: followed only when named.
    let branches: Vec<Branch> = branches(repo, &meta.system_identifier)?
        .into_iter()
        .filter(|b| b.follows_from(meta.timeline, meta.stop_lsn))
        .collect();
    let port = match (req.port, req.start) {
        (Some(port), _) => Some(port),
        (None, true) => Some(free_port()?),
        (None, false) => None,
    };
    // PostgreSQL 13 on fails a recovery that ends before its target.
    let to_target = recovery.is_some() && meta.server_version_num >= 130000;
    let to = req.to.clone();
    let report = restore_postgres(
        repo,
        &snap,
        &meta,
        recovery,
        &PgRestoreOptions {
            to: to.clone(),
            force: req.force,
            parallelism: req.parallelism,
            target: target.clone(),
            restore_command: restore_command(repo, &req.reopen, &meta.system_identifier, to_target),
            port,
            archive_off: !req.keep_archiving,
            timeline: timeline.clone(),
            pause_at_target: req.pause_at_target,
        },
        progress,
    )?;
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
    let mut done = report;
    done.detail.insert("timeline".into(), followed_id.into());
    done.detail
        .insert("archiving".into(), req.keep_archiving.into());
    let what = match &target {
        PgTarget::Latest => "the newest archived WAL".to_string(),
        PgTarget::Time(t) => format!("{t}"),
        PgTarget::Lsn(l) => format!("WAL position {l}"),
        PgTarget::Snapshot(n) => format!("snapshot {n}"),
    };
    let lines = &mut done.lines;
    lines.push(format!(
        "restored backup {} to {} ({}); it recovers to {what} on timeline {followed} when started",
        snap.id.short(),
        to.display(),
        crate::bytes(done.bytes)
    ));
    for b in branches
        .iter()
        .filter(|b| b.timeline != followed_id && !on_the_way.contains(&b.timeline))
    {
        lines.push(format!(
            "timeline {} branched from timeline {} at {} (a promoted server or a restored copy that archived here): not followed; --target-timeline {} follows it",
            b.timeline, b.parent, b.switch_lsn, b.timeline
        ));
    }
    if req.keep_archiving {
        lines.push("archiving: kept as the source had it; started, this cluster archives into the repository as a primary".into());
    } else {
        lines.push(format!(
            "archiving: off (archive_mode = off in {}), so this copy cannot archive into {}; to make it the primary, restore with --keep-archiving",
            to.join("postgresql.auto.conf").display(),
            repo.location()
        ));
    }
    if req.start {
        let port = port.expect("--start chose a port");
        let user = user_of(&snap.source);
        let connect = format!("psql -h 127.0.0.1 -p {port} -U {user}");
        let stop = format!("pg_ctl -D {} stop", to.display());
        done.detail.insert("port".into(), port.into());
        lines.push(match start(&to, meta.server_version_num, port, &user)? {
            Started::Promoted => format!(
                "started a temporary PostgreSQL on port {port} from {}: recovery is over; connect with {connect}; stop it with {stop}",
                to.display()
            ),
            Started::Paused => format!(
                "started a temporary PostgreSQL on port {port} from {}: paused at the recovery target, still in recovery (read-only); connect with {connect} to inspect it; SELECT pg_wal_replay_resume() ends recovery and makes it writable; stop it with {stop}",
                to.display()
            ),
            Started::Unchecked(why) => format!(
                "started a temporary PostgreSQL on port {port} from {}; arca could not connect to see whether recovery is over ({why}): SELECT pg_is_in_recovery() tells; connect with {connect}; stop it with {stop}",
                to.display()
            ),
        });
    } else {
        if port.is_none() {
            lines.push("port: the source's, from its configuration; restore with --port P to run it beside the source".into());
        }
        lines.push(format!("start it with: pg_ctl -D {} start", to.display()));
    }
    Ok(done)
}
