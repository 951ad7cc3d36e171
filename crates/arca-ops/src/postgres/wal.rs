//! `archive_command` and `restore_command`: WAL into the repository and back.

use std::io::Write;
use std::path::{Path, PathBuf};

use arca_engine::postgres::wal::{control_sysid, is_segment_name, segment_sysid};
use arca_engine::postgres::{segment_records, Lsn, Segment};
use arca_repo::{Error as RepoError, Pushed, Repository};

use super::{stream, PgBackupMeta};
use crate::{Error, Result};

/// Archives one WAL file (`%p`). The cluster is named by the segment's own
/// header, or for history and backup files by `global/pg_control` in
/// `pgdata` (the working directory of `archive_command` is the data directory).
pub fn wal_push(repo: &Repository, path: &Path, pgdata: Option<&Path>) -> Result<(String, Pushed)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::Unsupported(format!("{} is not a WAL file", path.display())))?;
    let data = std::fs::read(path).map_err(|e| RepoError::io(path, e))?;
    let (control, read) = control_sysid_of(pgdata.unwrap_or(Path::new(".")));
    let from_control = read.ok().flatten();
    let sysid = if is_segment_name(&name) {
        let Some((sysid, _)) = segment_sysid(&data) else {
            return Err(Error::Unsupported(format!(
                "{} does not start with a WAL segment header: is it a WAL segment?",
                path.display()
            )));
        };
        // Stored, a short segment would block the whole one for good and be
        // handed to recovery, which refuses it. A `.partial` (the last
        // segment of a timeline a promotion ended) is taken as it is.
        if !name.ends_with(".partial") {
            check_whole(
                &path.display().to_string(),
                &data,
                "archive the whole segment from the server's pg_wal",
            )?;
        }
        if let Some(c) = from_control.filter(|&c| c != sysid) {
            return Err(Error::Unsupported(format!(
                "{} belongs to cluster {sysid}, but {} says {c}: push each cluster's WAL from its own data directory",
                path.display(),
                control.display()
            )));
        }
        sysid
    } else {
        from_control.ok_or_else(|| {
            Error::Unsupported(format!(
                "cannot tell which cluster {name} belongs to: run wal-push from the data directory (as archive_command does) or pass --pgdata"
            ))
        })?
    };
    let pushed = repo.put_log(&stream(&sysid.to_string()), &name, &data, false)?;
    Ok((sysid.to_string(), pushed))
}

/// The system identifier in a data directory's `global/pg_control` (`None`:
/// the file is too short), with the file's path for messages.
pub(super) fn control_sysid_of(pgdata: &Path) -> (PathBuf, std::io::Result<Option<u64>>) {
    let control = pgdata.join("global/pg_control");
    let read = std::fs::read(&control).map(|c| control_sysid(&c));
    (control, read)
}

/// Refuses a segment whose length is not the segment size its own header
/// states (`what` names it in the error, `fix` says what to do).
fn check_whole(what: &str, data: &[u8], fix: &str) -> Result<()> {
    let seg_size = segment_sysid(data).map_or(0, |(_, s)| s as u64);
    if !seg_size.is_power_of_two() || !(1 << 20..=1 << 30).contains(&seg_size) {
        return Err(Error::Unsupported(format!(
            "{what} has no valid segment size in its header ({seg_size}): it is not a WAL segment, or a damaged one"
        )));
    }
    if data.len() as u64 != seg_size {
        return Err(Error::Unsupported(format!(
            "{what} is {} bytes, but its header says the cluster's WAL segments are {seg_size} bytes: it is truncated; {fix}",
            data.len()
        )));
    }
    Ok(())
}

/// A gap in the archived WAL: recovery would stop before `missing`.
#[derive(Debug, Clone)]
pub struct WalGap {
    pub missing: String,
    pub next_archived: String,
}

impl std::fmt::Display for WalGap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WAL segment {} is missing from the repository although {} is archived: recovery would stop at the gap",
            self.missing, self.next_archived
        )
    }
}

pub enum Fetched {
    Found,
    /// Not archived: the end of the WAL, which ends recovery.
    Missing,
    /// Not archived, but later segments are: recovery must not end here.
    Gap(WalGap),
}

/// Where `arca restore` leaves the first WAL segments recovery will ask for,
/// inside the restored data directory, so most `wal-fetch` calls are a rename.
pub const SPOOL_DIR: &str = "arca-wal-spool";

/// Moves a segment `arca restore` prefetched into `dest`; false if it has none.
pub fn take_spooled(pgdata: &Path, name: &str, dest: &Path) -> Result<bool> {
    let spooled = pgdata.join(SPOOL_DIR).join(name);
    match std::fs::rename(&spooled, dest) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(RepoError::io(&spooled, e).into()),
    }
}

/// Removes what is left of the spool: recovery has passed the end of the
/// archive (or a recovery target), so nothing there will be asked for.
pub fn clear_spool(pgdata: &Path) {
    let _ = std::fs::remove_dir_all(pgdata.join(SPOOL_DIR));
}

/// Fetches segments into `dir` for [`take_spooled`], `parallelism` at a time.
pub(crate) fn prefetch(
    repo: &Repository,
    stream: &str,
    names: &[String],
    dir: &Path,
    parallelism: usize,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| RepoError::io(dir, e))?;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failure = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..parallelism.max(1) {
            s.spawn(|| {
                let mut data = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(name) = names.get(i) else { return };
                    let r = repo
                        .cancel
                        .check(arca_repo::Op::Restore)
                        .and_then(|()| repo.get_log_into(stream, name, &mut data))
                        .map_err(Error::from)
                        .and_then(|found| {
                            // Partial segments are fetched by name at recovery time.
                            if !found {
                                return Ok(());
                            }
                            check_fetched(name, &data)?;
                            // Read once, by recovery: the page cache would only
                            // add a copy and the writeback of 16 MiB a segment.
                            let p = dir.join(name);
                            arca_repo::direct::write_new(&p, &data)
                                .map_err(|e| RepoError::io(&p, e).into())
                        });
                    if let Err(e) = r {
                        failure.lock().unwrap().get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    match failure.into_inner().unwrap() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Fetches `name` into `dest` (written under a temporary name, then renamed).
/// A missing segment with a partial one streamed in its place yields the partial.
pub fn wal_fetch(repo: &Repository, cluster: &str, name: &str, dest: &Path) -> Result<Fetched> {
    let stream = stream(cluster);
    let mut data = repo.get_log(&stream, name)?;
    let mut partial = name.ends_with(".partial");
    if data.is_none() && is_segment_name(name) {
        if let Some(gap) = find_gap(repo, &stream, name)? {
            return Ok(Fetched::Gap(gap));
        }
        data = repo.get_log(&stream, &format!("{name}.partial"))?;
        partial = true;
    }
    let Some(data) = data else {
        return Ok(Fetched::Missing);
    };
    if !partial {
        check_fetched(name, &data)?;
    }
    // No fsync: the server recovers from what it fetched, and after a crash
    // it starts recovery again and fetches the segment again.
    let tmp = temp_name(dest);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&data)?;
        std::fs::rename(&tmp, dest)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(RepoError::io(dest, e).into());
    }
    Ok(Fetched::Found)
}

/// Refuses to hand recovery a truncated segment (archived by an older
/// arca): PostgreSQL would stop on it with a less helpful message.
fn check_fetched(name: &str, data: &[u8]) -> Result<()> {
    if !is_segment_name(name) || name.ends_with(".partial") {
        return Ok(());
    }
    check_whole(
        &format!("archived segment {name}"),
        data,
        "`arca wal-push` of the whole segment from the server's pg_wal replaces it",
    )
}

fn temp_name(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.arca-{}", std::process::id()))
}

/// A later segment of the same timeline is archived while `name` is not.
fn find_gap(repo: &Repository, stream: &str, name: &str) -> Result<Option<WalGap>> {
    let later = repo
        .list_logs(stream)?
        .into_iter()
        .map(|l| l.name)
        .filter(|n| n.len() == 24 && n[..8] == name[..8] && n.as_str() > name)
        .min();
    Ok(later.map(|next| WalGap {
        missing: name.to_string(),
        next_archived: next,
    }))
}

/// A timeline that branched off another: a promotion, or a restored copy
/// that archived into the repository it came from.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Branch {
    pub timeline: u32,
    pub parent: u32,
    /// Where it left its parent.
    pub switch_lsn: Lsn,
    /// Every ancestor and where this timeline's history left it, oldest first.
    #[serde(skip)]
    pub ancestors: Vec<(u32, Lsn)>,
}

impl Branch {
    /// Whether recovery from a backup on `timeline` that ends at `stop`
    /// can follow this timeline (it left `timeline` after `stop`).
    pub fn follows_from(&self, timeline: u32, stop: Lsn) -> bool {
        self.ancestors
            .iter()
            .any(|&(t, at)| t == timeline && at >= stop)
    }
}

/// The branched timelines of one cluster, from its archived history files.
pub fn branches(repo: &Repository, cluster: &str) -> Result<Vec<Branch>> {
    let stream = stream(cluster);
    let mut out = Vec::new();
    for l in repo.list_logs(&stream)? {
        let Some(tli) = l
            .name
            .strip_suffix(".history")
            .filter(|t| t.len() == 8)
            .and_then(|t| u32::from_str_radix(t, 16).ok())
        else {
            continue;
        };
        let Some(data) = repo.get_log(&stream, &l.name)? else {
            continue;
        };
        // Lines of "parent timeline <tab> switch point <tab> reason".
        let ancestors: Vec<(u32, Lsn)> = String::from_utf8_lossy(&data)
            .lines()
            .filter_map(|line| {
                let mut f = line.split_whitespace();
                let t = f.next()?.parse().ok()?;
                let at = f.next()?.parse().ok()?;
                Some((t, at))
            })
            .collect();
        if let Some(&(parent, switch_lsn)) = ancestors.last() {
            out.push(Branch {
                timeline: tli,
                parent,
                switch_lsn,
                ancestors,
            });
        }
    }
    Ok(out)
}

/// Segments `list` reads back from the newest for the last transaction: an
/// idle cluster with archive_timeout archives segments without one.
const COMMIT_SCAN: usize = 64;

/// The time of the last transaction commit or abort in the archived WAL of
/// `timeline` from segment `from` on (at most `scan` segments back from the
/// newest): `recovery_target_time` stops at the first one after the target,
/// so a target is reachable only before it.
pub(crate) fn last_xact_time(
    repo: &Repository,
    stream: &str,
    from: Segment,
    seg_size: u64,
    scan: usize,
) -> Result<Option<jiff::Timestamp>> {
    let mut names: Vec<(Segment, String)> = repo
        .list_logs(stream)?
        .into_iter()
        .filter_map(|l| {
            let s = Segment::parse(l.name.trim_end_matches(".partial"), seg_size)?;
            (s.timeline == from.timeline && s.number >= from.number).then_some((s, l.name))
        })
        .collect();
    names.sort();
    let mut data = Vec::new();
    for (_, name) in names.iter().rev().take(scan) {
        if !repo.get_log_into(stream, name, &mut data)? {
            continue;
        }
        let records = segment_records(&data);
        if let Some(t) = records.iter().rev().find_map(|r| r.xact_time) {
            return Ok(Some(t));
        }
    }
    Ok(None)
}

/// The start of the last record that ends inside `segment`: the latest
/// `recovery_target_lsn` that segment lets recovery reach.
pub(crate) fn last_record_in(
    repo: &Repository,
    stream: &str,
    segment: &str,
) -> Result<Option<Lsn>> {
    Ok(repo
        .get_log(stream, segment)?
        .and_then(|data| segment_records(&data).last().map(|r| r.start)))
}

/// The recoverable window of one cluster.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterWindow {
    pub system_identifier: String,
    pub backups: usize,
    /// The earliest point a restore can reach: the oldest backup's stop.
    pub from: Option<jiff::Timestamp>,
    /// The latest time a restore can reach: the last transaction in the
    /// archived WAL of the newest timeline (`None`: none among the newest
    /// segments).
    pub to: Option<jiff::Timestamp>,
    /// When the newest WAL was archived.
    pub archived_at: Option<jiff::Timestamp>,
    pub newest_segment: Option<String>,
    /// How far the archive is behind now.
    pub lag_seconds: Option<i64>,
    pub segments: usize,
    pub timelines: Vec<Branch>,
}

/// One entry per cluster with backups or archived WAL.
pub fn cluster_windows(
    repo: &Repository,
    snaps: &[arca_repo::Manifest],
) -> Result<Vec<ClusterWindow>> {
    let mut out = Vec::new();
    let mut by_cluster = backups_by_cluster(snaps);
    for s in repo.log_streams()? {
        if let Some(id) = s.strip_prefix("postgres/") {
            by_cluster.entry(id.to_string()).or_default();
        }
    }
    let now = jiff::Timestamp::now();
    for (id, metas) in by_cluster {
        let logs = repo.list_logs_with_times(&stream(&id))?;
        let newest = logs
            .iter()
            .filter(|l| is_segment_name(&l.name))
            .max_by(|a, b| a.name.cmp(&b.name));
        let archived_at = logs.iter().filter_map(|l| l.modified).max();
        let to = match (newest, metas.first()) {
            (Some(n), Some(m)) => {
                let seg = m.wal_segment_size;
                let newest = Segment::parse(n.name.trim_end_matches(".partial"), seg);
                match newest {
                    Some(s) => last_xact_time(
                        repo,
                        &stream(&id),
                        Segment {
                            timeline: s.timeline,
                            number: 0,
                        },
                        seg,
                        COMMIT_SCAN,
                    )?,
                    None => None,
                }
            }
            _ => None,
        };
        let timelines = branches(repo, &id)?;
        out.push(ClusterWindow {
            system_identifier: id,
            backups: metas.len(),
            from: metas.iter().map(|m| m.stop_time).min(),
            to,
            archived_at,
            newest_segment: newest.map(|l| l.name.clone()),
            lag_seconds: archived_at.map(|t| now.duration_since(t).as_secs().max(0)),
            segments: logs.len(),
            timelines,
        });
    }
    Ok(out)
}

/// The physical backups of each cluster, by system identifier.
fn backups_by_cluster(
    snaps: &[arca_repo::Manifest],
) -> std::collections::BTreeMap<String, Vec<PgBackupMeta>> {
    let mut map: std::collections::BTreeMap<String, Vec<PgBackupMeta>> = Default::default();
    for m in snaps.iter().filter_map(PgBackupMeta::of) {
        map.entry(m.system_identifier.clone()).or_default().push(m);
    }
    map
}

/// What [`expire_wal`] removed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WalExpired {
    pub files: usize,
    pub bytes: u64,
}

/// Removes archived WAL no backup can use: segments (and backup history
/// files) older than the start of each cluster's oldest backup. A cluster
/// with no backup keeps all its WAL; timeline history files are kept.
/// The caller holds the exclusive lock, so no restore is choosing a backup.
pub fn expire_wal(repo: &Repository, snaps: &[arca_repo::Manifest]) -> Result<WalExpired> {
    let mut out = WalExpired::default();
    let by_cluster = backups_by_cluster(snaps);
    for s in repo.log_streams()? {
        let Some(cluster) = s.strip_prefix("postgres/") else {
            continue;
        };
        let Some(metas) = by_cluster.get(cluster) else {
            continue;
        };
        let Some(oldest) = metas
            .iter()
            .map(|m| Segment::of(m.timeline, m.start_lsn, m.wal_segment_size).number)
            .min()
        else {
            continue;
        };
        let seg_size = metas[0].wal_segment_size;
        for l in repo.list_logs(&s)? {
            let base = l.name.split('.').next().unwrap_or(&l.name);
            let Some(seg) = Segment::parse(base, seg_size) else {
                continue; // a timeline history file
            };
            if seg.number < oldest {
                repo.delete_log(&s, &l.name)?;
                out.files += 1;
                out.bytes += l.stored_bytes;
            }
        }
    }
    Ok(out)
}
