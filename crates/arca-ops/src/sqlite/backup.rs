//! A SQLite backup: one consistent image of the database file.

use arca_engine::sqlite::{self, SqliteSource};
use arca_repo::{BackupSession, Manifest, NewManifest, Progress, Repository};

use crate::{BackupOptions, Result};

pub fn backup(
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
