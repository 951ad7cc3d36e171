//! A physical backup of a running PostgreSQL cluster.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;

use arca_engine::postgres::{list_data_dir, DataEntry, DataFileReader, PgSource, Segment};
use arca_repo::{BackupSession, FileEntry, Id, Manifest, NewManifest, Progress, Repository};

use super::{stream, PgBackupMeta};
use crate::{BackupOptions, Error, Result};

/// PostgreSQL's page: blocks of this size dedupe pages that did not change.
const PAGE: u32 = 8192;

pub fn backup_postgres(
    repo: &Repository,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<Manifest> {
    let source = PgSource::parse(&opts.source, opts.data_dir.clone())?;
    let start_time = jiff::Timestamp::now();
    let mut session = BackupSession::start(repo, opts.parallelism.max(1))?;
    // From here until stop() the server keeps full-page writes for the
    // backup; an error drops the session, which ends the backup.
    let pg = source.start_backup("arca")?;
    let start = pg.start.clone();
    let root = start.data_directory.clone();
    let root_meta = std::fs::metadata(&root).map_err(|e| arca_repo::Error::io(&root, e))?;
    let entries = list_data_dir(&root)?;
    let parent = Parent::last(repo, &start.system_identifier, opts.full)?;
    let total: u64 = entries
        .iter()
        .map(|e| match e {
            DataEntry::File { size, .. } => *size,
            DataEntry::Dir(_) => 0,
        })
        .sum();
    progress.set_total(total);
    let mut dirs = Vec::new();
    let mut reused = (0usize, 0u64);
    for entry in &entries {
        repo.cancel.check(arca_repo::Op::Backup)?;
        match entry {
            DataEntry::Dir(d) => dirs.push(d.clone()),
            DataEntry::File {
                path,
                size,
                mtime_ns,
            } => {
                if let Some(old) = parent.unchanged(path, *size, *mtime_ns) {
                    if session.add_unchanged(old.clone())? {
                        progress.inc(*size);
                        reused = (reused.0 + 1, reused.1 + size);
                        continue;
                    }
                }
                let Some(mut reader) = DataFileReader::open(&root.join(path), *size)? else {
                    continue; // dropped since it was listed; WAL replays the drop
                };
                session.add_file(
                    path,
                    &mut reader,
                    *size,
                    PAGE,
                    serde_json::json!({ "mtime_ns": mtime_ns }),
                    parent.files.get(path),
                    progress,
                )?;
            }
        }
    }
    tracing::info!(
        "{} files ({} bytes) unchanged since the last backup were not read",
        reused.0,
        reused.1
    );
    let stop = pg.stop()?;
    let stop_time = jiff::Timestamp::now();
    add_text(&mut session, "backup_label", &stop.backup_label, progress)?;
    if !stop.tablespace_map.is_empty() {
        add_text(
            &mut session,
            "tablespace_map",
            &stop.tablespace_map,
            progress,
        )?;
    }
    // pg_backup_stop waited for the archiver; make sure it archived here.
    let stream = stream(&start.system_identifier);
    let seg = start.wal_segment_size;
    let first = Segment::of(start.timeline, start.lsn, seg);
    let last = Segment::of(start.timeline, stop.lsn, seg);
    let archived: std::collections::HashSet<String> = repo
        .list_logs(&stream)?
        .into_iter()
        .map(|l| l.name)
        .collect();
    if let Some(name) = first
        .through(last)
        .map(|s| s.name(seg))
        .find(|n| !archived.contains(n))
    {
        let command = super::commands::archive_command(repo, &opts.reopen);
        return Err(Error::Unsupported(format!(
            "the server did not archive WAL segment {name}, which this backup needs, into {}: set archive_mode = on and archive_command = '{}' in postgresql.conf, then back up again",
            repo.location(),
            command.replace('\'', "''")
        )));
    }
    let meta = PgBackupMeta {
        system_identifier: start.system_identifier.clone(),
        timeline: start.timeline,
        start_lsn: start.lsn,
        stop_lsn: stop.lsn,
        stop_time,
        wal_segment_size: seg,
        server_version_num: start.server_version_num,
        dirs,
        uid: root_meta.uid(),
        gid: root_meta.gid(),
    };
    let snap = session.commit_with_parent(
        NewManifest {
            engine: arca_repo::EngineName::Postgres,
            source: source.to_string(),
            kind: arca_repo::BackupKind::Physical,
            name: opts.name.clone(),
            tags: opts.tags.clone(),
            start_time,
            meta: serde_json::to_value(&meta).expect("meta encodes"),
        },
        parent.id,
    )?;
    Ok(snap)
}

/// The files of the cluster's last backup: the previous versions changed
/// pages are compressed against, and (unless `--full`) the files to skip
/// reading because they did not change since, by size and modification
/// time, as pgBackRest's incremental backups do. Only files last modified
/// before that backup started qualify: its copy of them cannot be torn.
#[derive(Default)]
struct Parent {
    /// The previous backup of the cluster: the manifest's `parent`.
    id: Option<Id>,
    files: HashMap<String, FileEntry>,
    before_ns: i64,
    read_all: bool,
}

impl Parent {
    fn last(repo: &Repository, system_identifier: &str, read_all: bool) -> Result<Parent> {
        // Backups only: a named point of the cluster (kind `point`) has no files.
        let last = repo
            .manifests()?
            .into_iter()
            .filter(|s| {
                PgBackupMeta::of(s).is_some_and(|m| m.system_identifier == system_identifier)
            })
            .max_by_key(|s| s.start_time);
        let Some(last) = last else {
            return Ok(Parent::default());
        };
        // A second's margin for file systems with coarse timestamps.
        let before_ns = last.start_time.as_nanosecond() as i64 - 1_000_000_000;
        let files = last
            .files
            .into_iter()
            .filter(|f| f.meta.get("mtime_ns").is_some())
            .map(|f| (f.path.clone(), f))
            .collect();
        Ok(Parent {
            id: Some(last.id),
            files,
            before_ns,
            read_all,
        })
    }

    fn unchanged(&self, path: &str, size: u64, mtime_ns: i64) -> Option<&FileEntry> {
        if self.read_all {
            return None;
        }
        let old = self.files.get(path)?;
        let old_mtime = old.meta.get("mtime_ns")?.as_i64()?;
        (old.size == size && old_mtime == mtime_ns && mtime_ns < self.before_ns).then_some(old)
    }
}

fn add_text(
    session: &mut BackupSession<'_>,
    name: &str,
    text: &str,
    progress: &dyn Progress,
) -> Result<()> {
    let bytes = text.as_bytes();
    session.add_file(
        name,
        &mut &bytes[..],
        bytes.len() as u64,
        PAGE,
        serde_json::Value::Null,
        None,
        progress,
    )?;
    Ok(())
}
