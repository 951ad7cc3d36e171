//! Backup: one consistent image of the source into a new snapshot.

use arca_engine::sqlite::{self, SqliteSource};
use arca_repo::{BackupSession, Manifest, NewManifest, Progress, Repository};

use crate::{EngineKind, Error, Result};

#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    pub source: String,
    pub name: Option<String>,
    pub tags: Vec<String>,
    pub parallelism: usize,
    /// PostgreSQL: the data directory on this host, if not the server's own
    /// `data_directory`.
    pub pgdata: Option<std::path::PathBuf>,
    /// PostgreSQL: read every file, also those unchanged since the last backup.
    pub full: bool,
    /// SQLite: run `PRAGMA quick_check` on the image first. A source that
    /// fails is still backed up (it may be the best copy there is), with a
    /// warning and the problems in the manifest.
    pub check_source: bool,
    /// PostgreSQL: the `archive_command` an error tells the user to set: arca
    /// by its absolute path (the server runs it with its own PATH) and this
    /// repository's flags.
    pub archive_command: Option<String>,
}

pub fn backup(
    repo: &Repository,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<Manifest> {
    let done = match EngineKind::of_source(&opts.source)? {
        EngineKind::Sqlite => backup_sqlite(repo, opts, progress),
        EngineKind::Postgres => crate::pg::backup_postgres(repo, opts, progress),
    };
    done.map_err(|e| match e {
        Error::Repo(error) if wrote_data(&error) => Error::Leftovers { error },
        e => e,
    })
}

/// A failed write of a pack or index (not of a lock: then nothing was written).
fn wrote_data(e: &arca_repo::Error) -> bool {
    match e {
        arca_repo::Error::Storage { op, path, .. } => {
            matches!(*op, "write" | "rename") && !path.contains("/locks/")
        }
        arca_repo::Error::Remote { message, .. } => {
            message.contains("cannot write") && !message.contains("locks/")
        }
        _ => false,
    }
}

fn backup_sqlite(
    repo: &Repository,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<Manifest> {
    let source = SqliteSource::parse(&opts.source)?;
    let path = std::path::absolute(&source.path).unwrap_or_else(|_| source.path.clone());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "database.db".into());
    // Bad input fails at once, before the lock; the read transaction that
    // pins the image starts only once the repository is ready.
    sqlite::inspect(&source.path)?;
    let start_time = jiff::Timestamp::now();
    let mut session = BackupSession::start(repo, opts.parallelism.max(1))?;
    let source_name = format!("sqlite://{}", path.display());
    // The last backup of this database: changed pages are stored as deltas
    // against their versions there.
    let base = repo
        .manifests()?
        .into_iter()
        .rev()
        .find(|s| s.source == source_name)
        .and_then(|s| s.files.into_iter().find(|f| f.path == name));
    let mut image = source.open_image()?;
    let len = image.len();
    let page_size = image.page_size();
    let mut meta = serde_json::to_value(image.info()).expect("sqlite info encodes");
    if opts.check_source {
        let problems = image.quick_check()?;
        if !problems.is_empty() {
            tracing::warn!(
                "{} fails PRAGMA quick_check ({}); backing it up anyway, marked in the backup",
                path.display(),
                problems.join("; ")
            );
        }
        meta["quick_check"] = if problems.is_empty() {
            "ok".into()
        } else {
            problems.into()
        };
    }
    progress.set_total(len);
    session.add_file(
        &name,
        &mut image,
        len,
        page_size,
        meta,
        base.as_ref(),
        progress,
    )?;
    // The read transaction ends here, before the index and snapshot writes.
    drop(image);
    let snap = session.commit(NewManifest {
        engine: arca_repo::EngineName::Sqlite,
        source: source_name,
        kind: arca_repo::BackupKind::Physical,
        name: opts.name.clone(),
        tags: opts.tags.clone(),
        start_time,
        meta: serde_json::Value::Null,
    })?;
    Ok(snap)
}
