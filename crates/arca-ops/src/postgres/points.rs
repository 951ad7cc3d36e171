//! Named restore points (mo_br's snapshots): a point in the WAL made by
//! `pg_create_restore_point`, recorded in the repository as a manifest with
//! no files. Creating one copies no data.

use arca_engine::postgres::{Lsn, PgSource};
use arca_repo::{Id, Manifest, Repository};

use super::PgBackupMeta;
use crate::{Error, Result};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Point {
    pub name: String,
    pub lsn: Lsn,
    pub time: jiff::Timestamp,
    pub timeline: u32,
    pub system_identifier: String,
    #[serde(skip_deserializing)]
    pub id: String,
}

impl Point {
    pub fn of(snap: &Manifest) -> Option<Point> {
        if snap.engine != arca_repo::EngineName::Postgres
            || snap.kind != arca_repo::BackupKind::Point
        {
            return None;
        }
        let mut p: Point = serde_json::from_value(snap.meta.clone()).ok()?;
        p.id = snap.id.to_hex();
        Some(p)
    }
}

/// All named points, oldest first.
pub fn points(repo: &Repository) -> Result<Vec<Point>> {
    Ok(points_in(&repo.manifests()?))
}

/// The named points among `snaps`, oldest first.
pub fn points_in(snaps: &[Manifest]) -> Vec<Point> {
    let mut v: Vec<Point> = snaps.iter().filter_map(Point::of).collect();
    v.sort_by_key(|p| p.time);
    v
}

/// Whether a restore to `point` can start from this backup: one of its
/// cluster that ends before it (a restore takes the newest such, see
/// `choose_backup`). A point records no base of its own.
pub fn reaches(backup: &PgBackupMeta, point: &Point) -> bool {
    backup.system_identifier == point.system_identifier && backup.stop_lsn <= point.lsn
}

/// Why `point` cannot be restored from any backup among `snaps`, if so.
pub fn unrestorable(point: &Point, snaps: &[Manifest]) -> Option<String> {
    if snaps
        .iter()
        .filter_map(PgBackupMeta::of)
        .any(|m| reaches(&m, point))
    {
        return None;
    }
    Some("no base backup: no backup of its cluster ends before it".into())
}

/// The points only `backup` reaches: deleting it leaves them unrestorable.
pub fn points_only_based_on(backup: &Manifest, snaps: &[Manifest]) -> Vec<Point> {
    let Some(meta) = PgBackupMeta::of(backup) else {
        return Vec::new();
    };
    let others: Vec<PgBackupMeta> = snaps
        .iter()
        .filter(|s| s.id != backup.id)
        .filter_map(PgBackupMeta::of)
        .collect();
    points_in(snaps)
        .into_iter()
        .filter(|p| reaches(&meta, p) && !others.iter().any(|m| reaches(m, p)))
        .collect()
}

/// Creates a restore point on the server, switches to a new WAL segment so
/// the archiver sends the point at once, and records it.
pub fn create_point(repo: &Repository, source: &str, name: &str) -> Result<Point> {
    if name.is_empty() || name.len() > 63 {
        return Err(Error::Unsupported(
            "--sname must be 1 to 63 characters (PostgreSQL's limit for a restore point)".into(),
        ));
    }
    if points(repo)?.iter().any(|p| p.name == name) {
        return Err(Error::Unsupported(format!(
            "a snapshot named {name} exists: choose another --sname, or drop it first (arca snapshot drop --sname {name})"
        )));
    }
    let source = PgSource::parse(source, None)?;
    let made = source.create_restore_point(name)?;
    let time = jiff::Timestamp::try_from(made.made_at)
        .map_err(|e| Error::Unsupported(format!("the clock is out of range: {e}")))?;
    let point = Point {
        name: name.to_string(),
        lsn: made.lsn,
        time,
        timeline: made.timeline,
        system_identifier: made.system_identifier,
        id: String::new(),
    };
    let _lock = repo.lock_shared("snapshot create")?;
    let snap = Manifest {
        version: 1,
        id: Id::random(),
        engine: arca_repo::EngineName::Postgres,
        source: source.to_string(),
        kind: arca_repo::BackupKind::Point,
        name: Some(name.to_string()),
        tags: Vec::new(),
        hostname: arca_repo::lock::hostname(),
        start_time: time,
        end_time: time,
        size: 0,
        stored_bytes: 0,
        parent: None,
        files: Vec::new(),
        meta: serde_json::to_value(&point).expect("point encodes"),
    };
    repo.write_manifest(&snap)?;
    Ok(Point {
        id: snap.id.to_hex(),
        ..point
    })
}

/// Forgets a named point (the WAL it is in stays).
pub fn drop_point(repo: &Repository, name: &str) -> Result<Point> {
    let snaps = repo.manifests()?;
    let Some((snap, point)) = snaps
        .iter()
        .find_map(|s| Point::of(s).filter(|p| p.name == name).map(|p| (s, p)))
    else {
        return Err(Error::Unsupported(format!(
            "no snapshot named {name}: `arca snapshot show` lists them"
        )));
    };
    let _lock = repo.lock_shared("snapshot drop")?;
    repo.delete_manifest(&snap.id)?;
    Ok(point)
}
