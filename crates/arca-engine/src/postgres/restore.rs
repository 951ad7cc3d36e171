//! Preparing a restored data directory: recovery settings and ownership.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::wal::Lsn;
use crate::Error;

/// Where recovery stops. Without one, it replays all archived WAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryTarget {
    /// A time PostgreSQL can parse, with its zone (`2026-11-21 14:00:00+00`).
    Time(String),
    Lsn(Lsn),
    /// A restore point made by `pg_create_restore_point`.
    Name(String),
}

/// Settings a restored data directory starts with.
#[derive(Debug, Clone, Default)]
pub struct RecoverySettings {
    /// The `restore_command` that fetches WAL from the repository.
    pub restore_command: String,
    pub target: Option<RecoveryTarget>,
    /// Run on this port instead of the original's.
    pub port: Option<u16>,
    /// Archive nothing (`archive_mode = off`): a restored copy must not
    /// archive into the repository it came from unless it is to be the primary.
    pub archive_off: bool,
    /// `recovery_target_timeline`: a timeline id or `latest`. PostgreSQL's
    /// default, latest, would follow any timeline archived beside the backup's.
    pub timeline: Option<String>,
    /// At the target, pause (read-only, for a look first) instead of promoting.
    pub pause: bool,
}

/// Checks a restore target: absent, or an empty directory, or (with
/// `force`) a directory no server is running on.
pub fn prepare_target(dir: &Path, force: bool) -> Result<(), Error> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Io(dir.to_path_buf(), e)),
        // Only a directory is replaced; a symlink to one is not followed.
        Ok(m) if !m.is_dir() => Err(Error::TargetKind {
            path: dir.to_path_buf(),
            found: crate::file_kind(m.file_type()),
            wanted: "a directory",
            choose: "directory",
        }),
        Ok(_) => {
            let mut entries =
                std::fs::read_dir(dir).map_err(|e| Error::Io(dir.to_path_buf(), e))?;
            if entries.next().is_none() {
                return Ok(());
            }
            if !force {
                return Err(Error::TargetExists {
                    path: dir.to_path_buf(),
                });
            }
            if dir.join("postmaster.pid").exists() {
                return Err(Error::Unsupported(format!(
                    "{} has a postmaster.pid: a server may be running on it; stop it (pg_ctl -D {} stop) before restoring over it",
                    dir.display(),
                    dir.display()
                )));
            }
            Ok(())
        }
    }
}

/// Writes `backup_label`'s companions: `recovery.signal` and the recovery
/// settings appended to `postgresql.auto.conf`, which PostgreSQL reads last.
pub fn write_recovery(dir: &Path, s: &RecoverySettings) -> Result<(), Error> {
    let mut conf = String::from("\n# Added by arca restore\n");
    let _ = writeln!(conf, "restore_command = {}", quote(&s.restore_command));
    match &s.target {
        None => {}
        Some(RecoveryTarget::Time(t)) => {
            let _ = writeln!(conf, "recovery_target_time = {}", quote(t));
        }
        Some(RecoveryTarget::Lsn(l)) => {
            let _ = writeln!(conf, "recovery_target_lsn = {}", quote(&l.to_string()));
        }
        Some(RecoveryTarget::Name(n)) => {
            let _ = writeln!(conf, "recovery_target_name = {}", quote(n));
        }
    }
    if let Some(t) = &s.timeline {
        let _ = writeln!(conf, "recovery_target_timeline = {}", quote(t));
    }
    if s.target.is_some() {
        // PostgreSQL's default, pause, leaves a read-only server waiting for
        // a human: only when asked for.
        let action = if s.pause { "pause" } else { "promote" };
        let _ = writeln!(conf, "recovery_target_action = '{action}'");
    }
    if let Some(port) = s.port {
        let _ = writeln!(conf, "port = {port}");
    }
    if s.archive_off {
        conf.push_str("archive_mode = off\n");
    }
    let auto = dir.join("postgresql.auto.conf");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&auto)
        .map_err(|e| Error::Io(auto.clone(), e))?;
    f.write_all(conf.as_bytes())
        .map_err(|e| Error::Io(auto.clone(), e))?;
    let signal = dir.join("recovery.signal");
    std::fs::write(&signal, b"").map_err(|e| Error::Io(signal, e))?;
    Ok(())
}

/// Gives the tree the data directory's owner and the modes PostgreSQL
/// insists on (0700 for the directory). Changing the owner needs root; a user
/// restoring their own cluster already owns what they wrote.
pub fn set_owner_and_modes(dir: &Path, uid: u32, gid: u32) -> Result<(), Error> {
    let io = |p: &Path, e: std::io::Error| Error::Io(p.to_path_buf(), e);
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| io(dir, e))?;
    let current = std::fs::metadata(dir).map_err(|e| io(dir, e))?;
    if current.uid() == uid && current.gid() == gid {
        return Ok(());
    }
    chown_tree(dir, uid, gid)
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), Error> {
    match std::os::unix::fs::lchown(path, Some(uid), Some(gid)) {
        Ok(()) => {}
        // Not root: the files stay the restoring user's.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(()),
        Err(e) => return Err(Error::Io(path.to_path_buf(), e)),
    }
    if std::fs::symlink_metadata(path)
        .map_err(|e| Error::Io(path.to_path_buf(), e))?
        .is_dir()
    {
        for e in std::fs::read_dir(path).map_err(|e| Error::Io(path.to_path_buf(), e))? {
            let e = e.map_err(|e| Error::Io(path.to_path_buf(), e))?;
            chown_tree(&e.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// A PostgreSQL configuration string literal.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_settings_are_quoted_and_promote() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("postgresql.auto.conf"), "a = 1\n").unwrap();
        write_recovery(
            d.path(),
            &RecoverySettings {
                restore_command: "arca wal-fetch --repo '/r' %f %p".into(),
                target: Some(RecoveryTarget::Name("before it's gone".into())),
                port: Some(6000),
                archive_off: true,
                timeline: Some("2".into()),
                pause: false,
            },
        )
        .unwrap();
        let conf = std::fs::read_to_string(d.path().join("postgresql.auto.conf")).unwrap();
        assert!(conf.starts_with("a = 1\n"));
        assert!(conf.contains("restore_command = 'arca wal-fetch --repo ''/r'' %f %p'\n"));
        assert!(conf.contains("recovery_target_name = 'before it''s gone'\n"));
        assert!(conf.contains("recovery_target_action = 'promote'\n"));
        assert!(conf.contains("port = 6000\n"));
        assert!(conf.contains("archive_mode = off\n"));
        assert!(conf.contains("recovery_target_timeline = '2'\n"));
        assert!(d.path().join("recovery.signal").exists());
    }

    #[test]
    fn targets_must_be_empty_or_forced() {
        let d = tempfile::tempdir().unwrap();
        prepare_target(&d.path().join("new"), false).unwrap();
        prepare_target(d.path(), false).unwrap();
        std::fs::write(d.path().join("PG_VERSION"), "15").unwrap();
        assert!(matches!(
            prepare_target(d.path(), false),
            Err(Error::TargetExists { .. })
        ));
        prepare_target(d.path(), true).unwrap();
        std::fs::write(d.path().join("postmaster.pid"), "1").unwrap();
        assert!(prepare_target(d.path(), true).is_err());
    }
}
