//! Named snapshots of a MySQL/MariaDB server: its binary log position,
//! GTID position and clock at a moment, recorded as a manifest with no
//! data. A restore to one replays the archived log up to that position.

use arca_engine::mysql::{binlog, MysqlSource, Session};
use arca_repo::{BackupKind, EngineName, Id, Manifest, Repository};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A named point in a server's binary log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MysqlPoint {
    pub name: String,
    /// The server's archive name (`arca list` shows it).
    pub server: String,
    pub binlog_file: String,
    pub binlog_position: u64,
    pub gtid: Option<String>,
    pub time: jiff::Timestamp,
    #[serde(skip_deserializing)]
    pub id: String,
}

impl MysqlPoint {
    pub fn of(m: &Manifest) -> Option<MysqlPoint> {
        if m.engine != EngineName::Mysql || m.kind != BackupKind::Point {
            return None;
        }
        let mut p: MysqlPoint = serde_json::from_value(m.meta.clone()).ok()?;
        p.id = m.id.to_hex();
        Some(p)
    }

    pub fn position(&self) -> String {
        format!("{}:{}", self.binlog_file, self.binlog_position)
    }
}

/// The named points among `snaps`, oldest first.
pub fn points_in(snaps: &[Manifest]) -> Vec<MysqlPoint> {
    let mut v: Vec<MysqlPoint> = snaps.iter().filter_map(MysqlPoint::of).collect();
    v.sort_by_key(|p| p.time);
    v
}

/// Whether a restore to `p` can start from backup `m`: a backup of its
/// server whose consistent point is not after it.
pub fn reaches(m: &Manifest, p: &MysqlPoint) -> bool {
    m.kind == BackupKind::Logical
        && m.meta["server"].as_str() == Some(p.server.as_str())
        && super::pitr::point_time(m) <= p.time
}

/// Why `p` cannot be restored, if so: no backup of its server before it.
pub fn unrestorable(p: &MysqlPoint, snaps: &[Manifest]) -> Option<String> {
    let based = snaps.iter().any(|m| reaches(m, p));
    (!based).then(|| "no base backup: no backup of its server is older".to_string())
}

/// Records the server's current position under `name`.
pub fn create(repo: &Repository, source: &str, name: &str) -> Result<MysqlPoint> {
    if name.is_empty() || name.len() > 128 {
        return Err(Error::Unsupported(
            "--sname must be 1 to 128 characters".into(),
        ));
    }
    let snaps = repo.manifests()?;
    if snaps
        .iter()
        .any(|m| m.kind == BackupKind::Point && m.name.as_deref() == Some(name))
    {
        return Err(Error::Unsupported(format!(
            "a snapshot named {name} exists: choose another --sname, or drop it first (arca snapshot drop --sname {name})"
        )));
    }
    let src = MysqlSource::parse(source, None)?;
    let mut s = Session::open(&src)?;
    binlog::check_settings(&mut s)?;
    let server = binlog::server_identity(&mut s)?;
    let st = binlog::log_status(&mut s)?.ok_or_else(|| {
        s.error("it reports no binary log position (SHOW MASTER STATUS is empty)")
    })?;
    let gtid = match s.flavor {
        arca_engine::mysql::Flavor::Mariadb => s.one("SELECT @@gtid_binlog_pos")?,
        _ => st.gtid_set,
    };
    let time = binlog::server_time(&mut s)?.unwrap_or_else(jiff::Timestamp::now);
    let point = MysqlPoint {
        name: name.to_string(),
        server,
        binlog_file: st.file.unwrap_or_default(),
        binlog_position: st.position.unwrap_or(4),
        gtid,
        time,
        id: String::new(),
    };
    let _lock = repo.lock_shared("snapshot create")?;
    let m = Manifest {
        version: 1,
        id: Id::random(),
        engine: EngineName::Mysql,
        source: src.url(),
        kind: BackupKind::Point,
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
    repo.write_manifest(&m)?;
    Ok(MysqlPoint {
        id: m.id.to_hex(),
        ..point
    })
}

/// Forgets a named point (the log it is in stays).
pub fn drop(repo: &Repository, name: &str) -> Result<Option<MysqlPoint>> {
    let snaps = repo.manifests()?;
    let Some((m, p)) = snaps
        .iter()
        .find_map(|m| MysqlPoint::of(m).filter(|p| p.name == name).map(|p| (m, p)))
    else {
        return Ok(None);
    };
    let _lock = repo.lock_shared("snapshot drop")?;
    repo.delete_manifest(&m.id)?;
    Ok(Some(p))
}
