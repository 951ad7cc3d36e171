//! Point-in-time restore: after a backup is restored, the archived binary
//! log of its server is replayed from the backup's exact position to the
//! target (a time, a GTID, or the end of the archive).

use arca_engine::mysql::binlog::{self, SegmentInfo};
use arca_engine::mysql::replay::{Filter, Replayed, Replayer, Stop};
use arca_engine::mysql::{Database, MysqlSource, Renames, Session};
use arca_repo::{Manifest, Repository};

use super::binlog::stream_name;
use crate::engine::{RestoreRequest, Target};
use crate::{Error, Result};

/// The segments a replay reads, checked to form one chain from the
/// backup's point.
pub struct Plan {
    stream: String,
    /// The backup's binary log position.
    file: String,
    pos: u64,
    segments: Vec<String>,
    stop: Stop,
    /// The newest archived transaction.
    pub last: Option<SegmentInfo>,
    /// What a person should know (a gap that ends the replay early).
    pub notes: Vec<String>,
}

/// The backup a point-in-time restore starts from when none is named:
/// the newest taken before the target.
pub fn pick(manifests: &[Manifest], target: &Target) -> Result<Manifest> {
    // Backups only: a named point has no data.
    let newest = |ok: &dyn Fn(&Manifest) -> bool| {
        manifests
            .iter()
            .rev()
            .filter(|m| m.kind != arca_repo::BackupKind::Point)
            .find(|m| ok(m))
            .cloned()
    };
    let found = match target {
        Target::Time(t) => newest(&|m| point_time(m) <= *t),
        Target::Named(n) => match super::points::points_in(manifests)
            .into_iter()
            .find(|p| &p.name == n)
        {
            Some(p) => newest(&|m| {
                m.meta["server"].as_str() == Some(p.server.as_str()) && point_time(m) <= p.time
            }),
            None => {
                return Err(Error::Unsupported(format!(
                    "no snapshot named {n}: `arca snapshot show` lists them"
                )))
            }
        },
        Target::Position(g) => match gtid_parts(g) {
            Some((domain, seq)) => newest(&|m| {
                binlog::gtid_set_max(m.meta["consistency"]["gtid"].as_str().unwrap_or(""))
                    .into_iter()
                    .any(|(d, s)| d == domain && s < seq)
            }),
            None => newest(&|_| true),
        },
        _ => newest(&|_| true),
    };
    found.ok_or_else(|| match (target, manifests.first()) {
        (_, None) => Error::Repo(arca_repo::Error::NoBackups),
        (Target::Time(t), Some(first)) => Error::Unsupported(format!(
            "no backup was taken at or before {t}: the oldest is from {}; choose a later target",
            first.start_time
        )),
        (_, Some(_)) => Error::Unsupported(
            "no backup was taken before that GTID: choose a later one, or name the backup".into(),
        ),
    })
}

/// The restored tables whose engine has no snapshots (MyISAM, Aria,
/// MEMORY): read after the point, so their logged changes are not replayed.
pub fn not_at_point(dbs: &[Database]) -> Vec<(String, String)> {
    dbs.iter()
        .flat_map(|d| {
            d.tables
                .iter()
                .filter(|t| !t.transactional())
                .map(|t| (d.name.clone(), t.name.clone()))
        })
        .collect()
}

/// When backup `m`'s consistent point was: recorded under the lock, or
/// (backups from before that) its start.
pub fn point_time(m: &Manifest) -> jiff::Timestamp {
    m.meta["consistency"]["point_time"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or(m.start_time)
}

/// The MySQL named point `name`.
fn named(repo: &Repository, name: &str) -> Result<super::points::MysqlPoint> {
    super::points::points_in(&repo.manifests()?)
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| {
            Error::Unsupported(format!(
                "no snapshot named {name}: `arca snapshot show` lists them"
            ))
        })
}

/// A GTID as (stream, number): see [`binlog::gtid_key`].
fn gtid_parts(g: &str) -> Option<(String, u64)> {
    binlog::gtid_key(g)
}

/// What to replay after restoring `m`, or None when nothing is to be
/// replayed (no target, and no archive). Everything is checked before the
/// restore writes anything.
pub fn plan(repo: &Repository, m: &Manifest, req: &RestoreRequest) -> Result<Option<Plan>> {
    let stop = match &req.target {
        Target::Latest => Stop::End,
        Target::Time(t) => Stop::Time(t.as_second()),
        Target::Position(g) => Stop::Gtid(g.trim().to_string()),
        Target::Named(n) => {
            let p = named(repo, n)?;
            Stop::Position(p.binlog_file, p.binlog_position)
        }
    };
    let explicit = stop != Stop::End;
    let refuse = |why: String| -> Result<Option<Plan>> {
        if explicit {
            Err(Error::Unsupported(why))
        } else {
            Ok(None)
        }
    };
    let Some(server) = m.meta["server"].as_str() else {
        return refuse(format!(
            "backup {} does not name its server (it is older than binary log archiving): restore it without a target",
            m.id.short()
        ));
    };
    let c = &m.meta["consistency"];
    let (Some(file), Some(pos)) = (c["binlog_file"].as_str(), c["binlog_position"].as_u64()) else {
        return refuse(format!(
            "backup {} has no binary log position (the server logged none, or the backup could not read it): it can only be restored as it was taken",
            m.id.short()
        ));
    };
    let stream = stream_name(server);
    let listed = repo.list_logs_with_times(&stream)?;
    let newest_write = listed.iter().filter_map(|l| l.modified).max();
    let names = super::binlog::in_log_order(listed);
    if names.is_empty() {
        return refuse(format!(
            "the repository has no binary log of {server}: archive it with `arca binlog-stream` to restore to a point after a backup"
        ));
    }
    let mut notes = Vec::new();
    let point_time = point_time(m);
    if let Target::Time(t) = &req.target {
        if point_time > *t {
            return Err(Error::Unsupported(format!(
                "backup {} is at {point_time}, after the target {t}: name an earlier backup, or none (the newest before the target is chosen)",
                m.id.short(),
            )));
        }
    }
    // The segments that end after the backup's point, in order.
    let point =
        binlog::segment_order(&binlog::segment_name(file, pos, false)).ok_or_else(|| {
            Error::Unsupported(format!(
                "backup {} names binary log {file}, which has no number: its manifest is damaged",
                m.id.short()
            ))
        })?;
    let after: Vec<String> = names
        .into_iter()
        .filter(|(o, _)| (o.1, o.2) > (point.1, point.2) || (o.1, o.2) == (point.1, point.2) && o.3)
        .map(|(_, l)| l.name)
        .collect();
    let target_gtid = match &stop {
        Stop::Gtid(g) => gtid_parts(g),
        _ => None,
    };
    let mut infos: Vec<(String, SegmentInfo)> = Vec::new();
    let mut expect = (file.to_string(), pos);
    // Whether the segments so far reach the target.
    let mut reached = false;
    for name in &after {
        let bytes = repo.get_log(&stream, name)?.ok_or_else(|| {
            Error::Unsupported(format!("binlog segment {stream}/{name} vanished"))
        })?;
        let info = binlog::decode_segment(name, &bytes)?.info;
        let first = infos.is_empty();
        if !first && info.file == expect.0 && info.start < expect.1 {
            return Err(Error::Unsupported(format!(
                "the binary log archive of {server} has overlapping segments at {}:{} ({name}): two binlog-stream processes archived it at once; restore to a point before {}:{}",
                info.file, info.start, expect.0, expect.1
            )));
        }
        let connects = info.file == expect.0
            && if first {
                info.start <= expect.1
            } else {
                info.start == expect.1
            };
        if !connects {
            let gap = format!(
                "the binary log archive of {server} has a gap: it lacks {}:{} to {}:{} (the server purged it before it was archived, or archiving was off)",
                expect.0, expect.1, info.file, info.start
            );
            if reached {
                break;
            }
            if explicit {
                return Err(Error::Unsupported(format!(
                    "{gap}; restore to a point before the gap, or from a backup taken after it"
                )));
            }
            notes.push(if first {
                format!("{gap}: backup {} is restored as it was taken", m.id.short())
            } else {
                format!("{gap}: replayed up to the gap")
            });
            break;
        }
        expect = info.resume_at();
        reached |= match (&stop, &target_gtid) {
            (Stop::Time(t), _) => info.last_time.is_some_and(|l| l as i64 > *t),
            (Stop::Position(f, p), _) => {
                binlog::segment_order(&binlog::segment_name(
                    &info.resume_at().0,
                    info.resume_at().1,
                    false,
                )) >= binlog::segment_order(&binlog::segment_name(f, *p, false))
            }
            (Stop::Gtid(_), Some((domain, seq))) => info
                .last_gtid
                .as_deref()
                .and_then(gtid_parts)
                .is_some_and(|(d, s)| d == *domain && s >= *seq),
            _ => false,
        };
        infos.push((name.clone(), info));
    }
    if let Stop::Gtid(g) = &stop {
        // The archive must hold it: found before anything is restored.
        let held = match &target_gtid {
            Some((domain, seq)) => infos.iter().any(|(_, i)| {
                match (
                    i.first_gtid.as_deref().and_then(gtid_parts),
                    i.last_gtid.as_deref().and_then(gtid_parts),
                ) {
                    (Some(a), Some(b)) if a.0 == *domain && b.0 == *domain => {
                        a.1 <= *seq && *seq <= b.1
                    }
                    // Several domains in one segment: the replay tells.
                    (Some(a), Some(b)) => a.0 != b.0,
                    _ => false,
                }
            }),
            None => true,
        };
        if !held {
            return Err(Error::Unsupported(format!(
                "the binary log archive of {server} has no transaction {g} after backup {}'s point: name a GTID it holds (after {})",
                m.id.short(),
                c["gtid"].as_str().unwrap_or("the backup's point")
            )));
        }
    }
    let last = infos
        .iter()
        .rev()
        .find(|(_, i)| i.transactions > 0)
        .map(|(_, i)| i.clone());
    if let (Stop::Position(f, p), false) = (&stop, reached) {
        return Err(Error::Unsupported(format!(
            "the binary log archive of {server} does not reach the snapshot's position {f}:{p} yet: run `arca binlog-stream` (--until-now) first"
        )));
    }
    if let (Stop::Time(t), false) = (&stop, reached) {
        // Past the newest archived commit the archive is complete only if
        // it was still being written after the target.
        let complete = newest_write.is_some_and(|w| w.as_second() > *t);
        if !complete {
            let newest = last
                .as_ref()
                .and_then(|i| i.last_time)
                .and_then(|t| jiff::Timestamp::from_second(t as i64).ok())
                .map(|t| t.to_string())
                .unwrap_or_else(|| "before the backup".into());
            return Err(Error::Unsupported(format!(
                "the binary log archive of {server} ends with a transaction committed {newest} and was last written before the target: what came later is not archived; run `arca binlog-stream` (--until-now) first, or choose an earlier time"
            )));
        }
    }
    Ok(Some(Plan {
        stream,
        file: file.to_string(),
        pos,
        segments: infos.into_iter().map(|(n, _)| n).collect(),
        stop,
        last,
        notes,
    }))
}

/// Replays `plan` into `target`: the tables of `dbs` (or the chosen ones),
/// under `renames`.
pub fn replay(
    repo: &Repository,
    plan: &Plan,
    req: &RestoreRequest,
    dbs: &[Database],
    renames: &Renames,
    target: &MysqlSource,
) -> Result<Replayed> {
    let mut s = Session::open(target)?;
    s.exec(arca_engine::mysql::SESSION)?;
    run(repo, plan, req, dbs, renames, Some(&mut s))
}

/// Runs the replay without a server: fails where the replay would refuse a
/// statement (a DDL on a chosen or renamed table), before the restore has
/// written anything. Only a replay that can refuse needs it.
pub fn check(
    repo: &Repository,
    plan: &Plan,
    req: &RestoreRequest,
    dbs: &[Database],
    renames: &Renames,
) -> Result<()> {
    let table_level = !req.objects.tables.is_empty() || !req.objects.exclude_tables.is_empty();
    if table_level || !renames.tables.is_empty() {
        run(repo, plan, req, dbs, renames, None)?;
    }
    Ok(())
}

fn run(
    repo: &Repository,
    plan: &Plan,
    req: &RestoreRequest,
    dbs: &[Database],
    renames: &Renames,
    session: Option<&mut Session>,
) -> Result<Replayed> {
    let table_level = !req.objects.tables.is_empty() || !req.objects.exclude_tables.is_empty();
    let filter = Filter {
        databases: dbs.iter().map(|d| d.name.clone()).collect(),
        tables: if table_level {
            dbs.iter()
                .flat_map(|d| d.tables.iter().map(|t| (d.name.clone(), t.name.clone())))
                .collect()
        } else {
            Vec::new()
        },
        skip: not_at_point(dbs),
        renames,
    };
    let dry = session.is_none();
    let mut r = match session {
        Some(s) => Replayer::new(s, filter, plan.stop.clone()),
        None => Replayer::dry(filter, plan.stop.clone()),
    };
    for name in &plan.segments {
        let bytes = repo.get_log(&plan.stream, name)?.ok_or_else(|| {
            Error::Unsupported(format!("binlog segment {}/{name} vanished", plan.stream))
        })?;
        let seg = binlog::decode_segment(name, &bytes)?;
        let after = if seg.info.file == plan.file {
            plan.pos
        } else {
            0
        };
        if !r.segment(name, &seg, after)? {
            break;
        }
    }
    let mut done = r.done.clone();
    if let (Stop::Gtid(g), false, false) = (&plan.stop, done.reached, dry) {
        return Err(Error::Unsupported(format!(
            "the archive has no transaction {g} after the backup's point: the tables are restored up to {}; name a GTID the archive holds",
            done.last_gtid.as_deref().unwrap_or("the backup's point")
        )));
    }
    if matches!(plan.stop, Stop::End | Stop::Position(..)) {
        done.reached = true;
    }
    Ok(done)
}
