//! A physical backup of a running cluster: `pg_backup_start`, the data
//! directory read while the server runs, `pg_backup_stop`.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::config::{describe, PgSource};
use super::core::PgCause;
use super::wal::Lsn;
use crate::Error;

/// How long `pg_backup_stop` may wait for the archiver.
const ARCHIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// What the server says when a backup starts.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BackupStart {
    pub lsn: Lsn,
    pub timeline: u32,
    pub system_identifier: String,
    pub server_version_num: u32,
    pub wal_segment_size: u64,
    pub data_directory: PathBuf,
}

/// What the server says when it ends: the stop position and the
/// `backup_label` (and `tablespace_map`) a restore must write.
#[derive(Debug, Clone)]
pub struct BackupStop {
    pub lsn: Lsn,
    pub backup_label: String,
    pub tablespace_map: String,
}

/// A backup in progress; the session that started it must end it.
pub struct PgBackup {
    client: postgres::Client,
    source: String,
    pub start: BackupStart,
}

impl PgSource {
    /// Starts a non-exclusive backup (with an immediate checkpoint).
    pub fn start_backup(&self, label: &str) -> Result<PgBackup, Error> {
        let mut client = self.connect()?;
        let source = self.to_string();
        let server = |e: postgres::Error| Error::Server {
            server: source.clone(),
            reason: describe(&e),
            cause: PgCause::of(&e),
        };
        let row = client
            .query_one(
                "SELECT current_setting('server_version_num')::int4,
                        (SELECT setting::int8 FROM pg_settings WHERE name = 'wal_segment_size'),
                        current_setting('data_directory'),
                        current_setting('wal_level'),
                        pg_is_in_recovery(),
                        (SELECT system_identifier::text FROM pg_control_system())",
                &[],
            )
            .map_err(server)?;
        let version: i32 = row.get(0);
        let wal_level: String = row.get(3);
        if wal_level == "minimal" {
            return Err(Error::Server {
                server: source,
                reason: "wal_level is minimal, so its WAL cannot restore a backup: set wal_level = replica and restart the server".into(),
                cause: PgCause::Other,
            });
        }
        if row.get::<_, bool>(4) {
            return Err(Error::Server {
                server: source,
                reason: "the server is a standby: back up the primary".into(),
                cause: PgCause::Other,
            });
        }
        let data_directory = match &self.pgdata {
            Some(p) => p.clone(),
            None => PathBuf::from(row.get::<_, String>(2)),
        };
        if !data_directory.join("global/pg_control").is_file() {
            return Err(Error::Server {
                server: source,
                reason: format!(
                    "cannot read its data directory at {}: run arca on the database host as a user that can read it, or pass --pgdata PATH",
                    data_directory.display()
                ),
                cause: PgCause::Other,
            });
        }
        let sysid: String = row.get(5);
        let control = std::fs::read(data_directory.join("global/pg_control"))
            .map_err(|e| Error::Io(data_directory.join("global/pg_control"), e))?;
        if super::wal::control_sysid(&control).map(|id| id.to_string()) != Some(sysid.clone()) {
            return Err(Error::Server {
                server: source,
                reason: format!(
                    "{} is another cluster's data directory (the server's system identifier is {sysid}): pass the server's own with --pgdata",
                    data_directory.display()
                ),
                cause: PgCause::Other,
            });
        }
        let sql = if version >= 150000 {
            "SELECT pg_backup_start($1, true)::text"
        } else {
            "SELECT pg_start_backup($1, true, false)::text"
        };
        let lsn: String = client.query_one(sql, &[&label]).map_err(server)?.get(0);
        let tli: i32 = client
            .query_one("SELECT timeline_id FROM pg_control_checkpoint()", &[])
            .map_err(server)?
            .get(0);
        let start = BackupStart {
            lsn: lsn.parse().map_err(|reason| Error::Server {
                server: source.clone(),
                reason,
                cause: PgCause::Other,
            })?,
            timeline: tli as u32,
            system_identifier: sysid,
            server_version_num: version as u32,
            wal_segment_size: row.get::<_, i64>(1) as u64,
            data_directory,
        };
        Ok(PgBackup {
            client,
            source,
            start,
        })
    }
}

impl PgBackup {
    /// Ends the backup. Waits until the server has archived the WAL the
    /// backup needs, so a backup that returns is restorable.
    pub fn stop(mut self) -> Result<BackupStop, Error> {
        // The wait for the archiver is bounded: a broken archive_command
        // fails the backup instead of hanging it.
        let timeout = format!("SET statement_timeout = '{}s'", ARCHIVE_TIMEOUT.as_secs());
        self.client
            .batch_execute(&timeout)
            .map_err(|e| Error::Server {
                server: self.source.clone(),
                reason: describe(&e),
                cause: PgCause::of(&e),
            })?;
        let sql = if self.start.server_version_num >= 150000 {
            "SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop(true)"
        } else {
            "SELECT lsn::text, labelfile, spcmapfile FROM pg_stop_backup(false, true)"
        };
        let row = self.client.query_one(sql, &[]).map_err(|e| Error::Server {
            server: self.source.clone(),
            reason: match e.code() {
                Some(c) if *c == postgres::error::SqlState::QUERY_CANCELED => format!(
                    "the server did not archive the backup's last WAL segment within {} s: check archive_command (arca wal-push --repo REPO %p) and the server log",
                    ARCHIVE_TIMEOUT.as_secs()
                ),
                _ => describe(&e),
            },
            cause: PgCause::of(&e),
        })?;
        let lsn: String = row.get(0);
        Ok(BackupStop {
            lsn: lsn.parse().map_err(|reason| Error::Server {
                server: self.source.clone(),
                reason,
                cause: PgCause::Other,
            })?,
            backup_label: row.get(1),
            tablespace_map: row.get::<_, Option<String>>(2).unwrap_or_default(),
        })
    }

    pub fn client(&mut self) -> &mut postgres::Client {
        &mut self.client
    }
}

/// A named restore point the server made.
#[derive(Debug, Clone)]
pub struct RestorePoint {
    pub lsn: Lsn,
    pub timeline: u32,
    pub system_identifier: String,
    /// When the server had made it (before the WAL switch).
    pub made_at: std::time::SystemTime,
}

impl PgSource {
    /// Makes a restore point (`pg_create_restore_point`), then switches to a
    /// new WAL segment so the archiver sends the point at once.
    pub fn create_restore_point(&self, name: &str) -> Result<RestorePoint, Error> {
        let mut client = self.connect()?;
        let server = |reason: String, cause: PgCause| Error::Server {
            server: self.to_string(),
            reason,
            cause,
        };
        let row = client
            .query_one(
                "SELECT pg_create_restore_point($1)::text,
                        (SELECT timeline_id FROM pg_control_checkpoint()),
                        (SELECT system_identifier::text FROM pg_control_system())",
                &[&name],
            )
            .map_err(|e| server(describe(&e), PgCause::of(&e)))?;
        let made_at = std::time::SystemTime::now();
        client
            .batch_execute("SELECT pg_switch_wal()")
            .map_err(|e| server(describe(&e), PgCause::of(&e)))?;
        let lsn: String = row.get(0);
        Ok(RestorePoint {
            lsn: lsn
                .parse()
                .map_err(|reason| server(reason, PgCause::Other))?,
            timeline: row.get::<_, i32>(1) as u32,
            system_identifier: row.get(2),
            made_at,
        })
    }
}

/// One entry of the data directory, by its path relative to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataEntry {
    Dir(String),
    /// `mtime_ns`: the modification time in nanoseconds since 1970.
    File {
        path: String,
        size: u64,
        mtime_ns: i64,
    },
}

/// Directories whose contents a backup skips (the server recreates or does
/// not need them), as pg_basebackup does; `pg_wal` comes from the archive.
const SKIP_CONTENTS: &[&str] = &[
    "pg_wal",
    "pg_stat_tmp",
    "pg_replslot",
    "pg_dynshmem",
    "pg_notify",
    "pg_serial",
    "pg_snapshots",
    "pg_subtrans",
];

/// Files a backup skips wherever they are, or at the top level.
const SKIP_FILES: &[&str] = &["pg_internal.init", "postgresql.auto.conf.tmp"];
const SKIP_TOP: &[&str] = &[
    "postmaster.pid",
    "postmaster.opts",
    "backup_label",
    "backup_label.old",
    "tablespace_map",
    "tablespace_map.old",
    "recovery.signal",
    "standby.signal",
    "current_logfiles.tmp",
];

/// Lists the data directory in walk order (a directory before its contents).
/// Tablespaces (links under `pg_tblspc`) are refused: not supported yet.
pub fn list_data_dir(root: &Path) -> Result<Vec<DataEntry>, Error> {
    let mut out = Vec::new();
    walk(root, root, &mut out)?;
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<DataEntry>) -> Result<(), Error> {
    let mut entries: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .collect::<io::Result<Vec<_>>>()
            .map_err(|e| Error::Io(dir.to_path_buf(), e))?,
        // A directory dropped while the backup runs (DROP DATABASE): its WAL
        // replays the drop.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::Io(dir.to_path_buf(), e)),
    };
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let rel = path
            .strip_prefix(root)
            .expect("walk stays under root")
            .to_string_lossy()
            .into_owned();
        let name = e.file_name().to_string_lossy().into_owned();
        let top = dir == root;
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(Error::Io(path, err)),
        };
        if meta.file_type().is_symlink() {
            if rel.starts_with("pg_tblspc/") {
                return Err(Error::Unsupported(format!(
                    "{} is a tablespace; backups of clusters with tablespaces are not supported yet",
                    path.display()
                )));
            }
            if top && name == "pg_wal" {
                // pg_wal on another disk: only the directory is recorded.
                out.push(DataEntry::Dir(rel));
                continue;
            }
            return Err(Error::Unsupported(format!(
                "{} is a symbolic link, which a backup cannot follow yet",
                path.display()
            )));
        }
        if meta.is_dir() {
            if top && name == "arca-wal-spool" {
                continue; // WAL a restore fetched ahead of recovery
            }
            out.push(DataEntry::Dir(rel.clone()));
            if name.starts_with("pgsql_tmp") {
                continue;
            }
            if top && SKIP_CONTENTS.contains(&name.as_str()) {
                if name == "pg_wal" {
                    out.push(DataEntry::Dir(format!("{rel}/archive_status")));
                }
                continue;
            }
            walk(root, &path, out)?;
        } else if meta.is_file() {
            if SKIP_FILES.contains(&name.as_str())
                || (top && SKIP_TOP.contains(&name.as_str()))
                || name.starts_with("pgsql_tmp")
            {
                continue;
            }
            out.push(DataEntry::File {
                path: rel,
                size: meta.len(),
                mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            });
        }
    }
    Ok(())
}

/// Reads exactly `len` bytes of a data file that the server may be writing:
/// a file that shrank is padded with zeros, as pg_basebackup does (WAL
/// replay from the backup's start rewrites those pages).
pub struct DataFileReader {
    file: File,
    path: PathBuf,
    left: u64,
    eof: bool,
}

impl DataFileReader {
    /// `None` if the file was removed since it was listed.
    pub fn open(path: &Path, len: u64) -> Result<Option<DataFileReader>, Error> {
        match File::open(path) {
            Ok(file) => Ok(Some(DataFileReader {
                file,
                path: path.to_path_buf(),
                left: len,
                eof: false,
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io(path.to_path_buf(), e)),
        }
    }
}

impl Read for DataFileReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (buf.len() as u64).min(self.left) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = if self.eof {
            buf[..want].fill(0);
            want
        } else {
            match self.file.read(&mut buf[..want]) {
                Ok(0) => {
                    self.eof = true;
                    buf[..want].fill(0);
                    want
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
                Err(e) => return Err(io::Error::new(e.kind(), Error::Io(self.path.clone(), e))),
            }
        };
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_skips_what_the_server_recreates() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for dir in [
            "base/1",
            "global",
            "pg_wal/archive_status",
            "pg_stat_tmp",
            "base/pgsql_tmp",
        ] {
            std::fs::create_dir_all(r.join(dir)).unwrap();
        }
        for f in [
            "base/1/1259",
            "global/pg_control",
            "global/pg_internal.init",
            "pg_wal/000000010000000000000001",
            "pg_stat_tmp/x",
            "postmaster.pid",
            "PG_VERSION",
            "base/pgsql_tmp/t1",
        ] {
            std::fs::write(r.join(f), b"12345678").unwrap();
        }
        let listed = list_data_dir(r).unwrap();
        let files: Vec<&str> = listed
            .iter()
            .filter_map(|e| match e {
                DataEntry::File { path, .. } => Some(path.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(files, ["PG_VERSION", "base/1/1259", "global/pg_control"]);
        assert!(listed.contains(&DataEntry::Dir("pg_wal/archive_status".into())));
        assert!(listed.contains(&DataEntry::Dir("pg_stat_tmp".into())));
    }

    #[test]
    fn a_file_that_shrank_reads_padded() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        let mut r = DataFileReader::open(&p, 6).unwrap().unwrap();
        let mut v = Vec::new();
        r.read_to_end(&mut v).unwrap();
        assert_eq!(v, b"abc\0\0\0");
        assert!(DataFileReader::open(&d.path().join("gone"), 1)
            .unwrap()
            .is_none());
    }
}
