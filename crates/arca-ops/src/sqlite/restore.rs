//! A SQLite restore: the database file into a target, verified, then
//! renamed into place.

use std::path::{Path, PathBuf};

use arca_engine::sqlite;
use arca_repo::{restore_file, Error as RepoError, Manifest, Progress, Repository};

use crate::engine::{RestoreRequest, Restored};
use crate::target::{create_dirs_under, create_new, Temp};
use crate::{Error, Result};

pub fn restore(
    repo: &Repository,
    snap: &Manifest,
    opts: &RestoreRequest,
    progress: &dyn Progress,
) -> Result<Restored> {
    if opts.wants_recovery() {
        return Err(Error::Unsupported(format!(
            "backup {} is a SQLite backup: it restores as it was taken, with no log to recover to a target or instance to start; leave out --target-*, --start, --port and --keep-archiving",
            snap.id.short()
        )));
    }
    let [file] = snap.files.as_slice() else {
        return Err(RepoError::corrupt(format!(
            "sqlite backup {} has {} files, expected one",
            snap.id.short(),
            snap.files.len()
        ))
        .into());
    };
    // Checked even when the target is named in full: a backup that names a
    // path outside its target is damaged or forged.
    let rel = file.checked_path(&snap.id)?;
    let target = if opts.to.is_dir() {
        if let Some(parent) = rel.parent() {
            create_dirs_under(&opts.to, parent).map_err(|e| RepoError::io(&opts.to, e))?;
        }
        opts.to.join(&rel)
    } else {
        opts.to.clone()
    };
    sqlite::prepare_target(&target, opts.force)?;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(RepoError::Format(format!(
            "cannot restore to {}: directory {} does not exist",
            target.display(),
            dir.display()
        ))
        .into());
    }
    let _lock = repo.lock_for_reading("restore")?;
    let index = repo.load_index()?;
    progress.set_total(file.size);
    // Never left behind where the user might take it for a restore: removed
    // on failure, on a signal, or by the next restore if this one is killed.
    let tmp = Temp::new(&target);
    let out = create_new(tmp.path()).map_err(|e| RepoError::io(tmp.path(), e))?;
    restore_file(repo, &index, file, &out, opts.parallelism.max(1), progress).map_err(|e| {
        // The writer names the file as the backup does; the user knows it
        // by the target's name.
        match e {
            RepoError::Io { path, error } if path == Path::new(&file.path) => {
                RepoError::io(&target, error)
            }
            e => e,
        }
    })?;
    out.sync_all().map_err(|e| RepoError::io(tmp.path(), e))?;
    std::fs::rename(tmp.path(), &target).map_err(|e| RepoError::io(&target, e))?;
    tmp.done();
    Ok(Restored {
        backup: snap.id.to_hex(),
        lines: vec![format!(
            "restored backup {} to {} ({}, every block verified)",
            snap.id.short(),
            target.display(),
            crate::bytes(file.size)
        )],
        files: vec![target],
        bytes: file.size,
        detail: Default::default(),
    })
}
