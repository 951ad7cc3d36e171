//! A SQLite restore drill: the database file restored into the scratch
//! directory (every block's hash verified on the way), then `PRAGMA
//! integrity_check` on it and its pages compared with what the backup
//! recorded; the file goes with the scratch directory.

use std::path::Path;
use std::time::Instant;

use arca_engine::sqlite::{self, SqliteInfo};
use arca_repo::{Error as RepoError, Manifest, Progress, Repository};

use crate::drill::{check_cancel, seconds, DrillOptions, Drilled, Scratch};
use crate::engine::RestoreRequest;
use crate::{Error, Result};

pub fn drill(
    repo: &Repository,
    m: &Manifest,
    opts: &DrillOptions,
    scratch: &Scratch,
    progress: &dyn Progress,
) -> Result<Drilled> {
    if opts.password_file.is_some() {
        return Err(Error::Unsupported(
            "a SQLite drill connects to no server: leave out the password file".into(),
        ));
    }
    let [file] = m.files.as_slice() else {
        return Err(RepoError::corrupt(format!(
            "sqlite backup {} has {} files, expected one",
            m.id.short(),
            m.files.len()
        ))
        .into());
    };
    let name = Path::new(&file.path)
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "database.db".into());
    let to = scratch.dir.join(name);

    let t = Instant::now();
    let mut req = RestoreRequest::new(to.clone());
    req.id = Some(m.id.to_hex());
    req.parallelism = opts.parallelism.max(1);
    let restored = super::restore::restore(repo, m, &req, progress)?;
    let restore_seconds = seconds(t);
    check_cancel(repo)?;

    let t = Instant::now();
    let mut checks = Vec::new();
    sqlite::integrity_check(&to).map_err(|e| match e {
        arca_engine::Error::Damaged { reason, .. } => Error::Unsupported(format!(
            "PRAGMA integrity_check failed: {}",
            reason.trim_start_matches("integrity_check: ")
        )),
        e => Error::Unsupported(format!("PRAGMA integrity_check could not run: {e}")),
    })?;
    checks.push("PRAGMA integrity_check: ok".to_string());
    check_cancel(repo)?;

    let info = sqlite::inspect(&to)?;
    match serde_json::from_value::<SqliteInfo>(file.meta.clone()) {
        Ok(want) if (want.page_size, want.page_count) == (info.page_size, info.page_count) => {
            checks.push(format!(
                "pages: {} of {} bytes = {} in the backup",
                info.page_count, info.page_size, want.page_count
            ))
        }
        Ok(want) => {
            return Err(Error::Unsupported(format!(
                "the restored database has {} pages of {} bytes, the backup recorded {} of {}",
                info.page_count, info.page_size, want.page_count, want.page_size
            )))
        }
        // An older backup without the database's info: the size still tells.
        Err(_) => checks.push(format!(
            "pages: {} of {} bytes (the backup recorded no page count)",
            info.page_count, info.page_size
        )),
    }
    let size = std::fs::metadata(&to)
        .map_err(|e| RepoError::io(&to, e))?
        .len();
    if size != file.size {
        return Err(Error::Unsupported(format!(
            "the restored database is {size} bytes, the backup recorded {}",
            file.size
        )));
    }
    checks.push(format!("size: {size} bytes = {} in the backup", file.size));
    let verify_seconds = seconds(t);

    std::fs::remove_file(&to).map_err(|e| RepoError::io(&to, e))?;
    Ok(Drilled {
        restored_bytes: restored.bytes,
        checks,
        restore_seconds,
        verify_seconds,
    })
}
