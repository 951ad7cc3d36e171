//! A MySQL backup: definitions, then every table's rows, read by N
//! connections at one point and stored as blocks of whole rows.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use arca_engine::mysql::{self as my, MysqlSource, Plan, Selection};
use arca_repo::archiver::BlockSource;
use arca_repo::{BackupSession, FileEntry, Manifest, NewManifest, Progress, Repository};
use crossbeam_channel::{bounded, Receiver};
use serde_json::json;

use super::file_path;
use crate::{BackupOptions, Error, Result};

/// One range of one table.
#[derive(Clone, Copy)]
struct Task {
    db: usize,
    table: usize,
    range: i64,
    plan: Plan,
}

enum Msg {
    Block(Vec<u8>),
    Done(my::Read),
}

pub fn backup(
    repo: &Repository,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<Manifest> {
    let src = MysqlSource::parse(&opts.source, opts.password_file.as_deref())?;
    let mut sel = Selection {
        databases: opts.objects.databases.clone(),
        tables: Selection::table_names(&opts.objects.tables, "--tables")?,
        exclude: Selection::table_names(&opts.objects.exclude_tables, "--exclude-tables")?,
    };
    if let Some(db) = &src.database {
        if sel.databases.is_empty() && sel.tables.is_empty() {
            sel.databases.push(db.clone());
        }
    }
    let start_time = jiff::Timestamp::now();
    let n = opts.parallelism.max(1);
    let mut snap = my::open_snapshot(&src, n)?;
    let (flavor, version) = (snap.sessions[0].flavor, snap.sessions[0].version.clone());
    let first = &mut snap.sessions[0];
    let server = my::binlog::server_identity(first)?;
    let schema = my::read_schema(first, &sel, opts.users)?;
    let source_name = src.url();
    let base = repo
        .manifests()?
        .into_iter()
        .rev()
        .find(|m| m.engine == arca_repo::EngineName::Mysql && m.source == source_name);
    let base_plans: HashMap<(String, String), Plan> = base
        .as_ref()
        .and_then(|m| {
            serde_json::from_value::<Vec<(String, String, Plan)>>(m.meta["plans"].clone()).ok()
        })
        .unwrap_or_default()
        .into_iter()
        .map(|(d, t, p)| ((d, t), p))
        .collect();
    let base_files: HashMap<&str, &FileEntry> = base
        .as_ref()
        .map(|m| m.files.iter().map(|f| (f.path.as_str(), f)).collect())
        .unwrap_or_default();

    let mut plans = Vec::new();
    let mut tasks = Vec::new();
    let mut total = 0u64;
    for (di, d) in schema.databases.iter().enumerate() {
        for (ti, t) in d.tables.iter().enumerate() {
            let p = my::plan(
                first,
                &d.name,
                t,
                base_plans.get(&(d.name.clone(), t.name.clone())).copied(),
            )?;
            if t.key.is_empty() {
                tracing::warn!(
                    "{}.{} has no primary key: it is read whole by one connection, and changes move its blocks more",
                    d.name,
                    t.name
                );
            }
            if !t.transactional() {
                snap.consistency
                    .not_at_point
                    .push(format!("{}.{} ({})", d.name, t.name, t.engine));
            }
            total += t.data_length;
            for range in p.first..=p.last {
                tasks.push((
                    t.data_length / (p.last - p.first + 1) as u64,
                    Task {
                        db: di,
                        table: ti,
                        range,
                        plan: p,
                    },
                ));
            }
            plans.push((d.name.clone(), t.name.clone(), p));
        }
    }
    // The definitions and plans were read in the first worker's snapshot:
    // let go of the tables' metadata locks before the rows are read.
    my::release(&mut snap.sessions[0])?;
    if !snap.consistency.not_at_point.is_empty() {
        tracing::warn!(
            "tables without snapshots are read, but not at the backup's point: {}",
            snap.consistency.not_at_point.join(", ")
        );
    }
    tracing::info!("{}", snap.consistency.describe());
    // Largest first: the last range to finish is a small one.
    tasks.sort_by_key(|t| std::cmp::Reverse(t.0));
    let queue: Mutex<VecDeque<Task>> = Mutex::new(tasks.into_iter().map(|(_, t)| t).collect());
    progress.set_total(total);

    let mut session = BackupSession::start(repo, n)?;
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let mut rows: Vec<(String, u64)> = Vec::new();
    let sessions = std::mem::take(&mut snap.sessions);
    let ids: Vec<u32> = sessions.iter().map(|s| s.conn.connection_id()).collect();
    let schema_ref = &schema;
    let stop = AtomicBool::new(false);
    std::thread::scope(|sc| -> Result<()> {
        let (files_tx, files_rx) = bounded::<(Task, Receiver<Msg>)>(n);
        for mut s in sessions {
            let (files_tx, queue, failure, stop) = (files_tx.clone(), &queue, &failure, &stop);
            sc.spawn(move || loop {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Some(task) = queue.lock().unwrap().pop_front() else {
                    return;
                };
                let d = &schema_ref.databases[task.db];
                let t = &d.tables[task.table];
                let plan = task.plan;
                // About 2 MiB of blocks read ahead; blocks of single large
                // rows (BLOBs) can be MiBs each: fewer of them.
                let (tx, rx) = bounded::<Msg>(if plan.cut_bits == 0 { 4 } else { 256 });
                if files_tx.send((task, rx)).is_err() {
                    return;
                }
                let mut sink = |b: Vec<u8>| {
                    tx.send(Msg::Block(b))
                        .map_err(|_| arca_engine::Error::Unsupported("stopped".into()))
                };
                match my::read_range(&mut s, &d.name, t, &plan, task.range, &mut sink) {
                    Ok(read) => {
                        let _ = tx.send(Msg::Done(read));
                    }
                    Err(e) => {
                        failure.lock().unwrap().get_or_insert(e.into());
                        stop.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            });
        }
        drop(files_tx);
        let mut archive = || -> Result<()> {
            for (task, rx) in files_rx.iter() {
                let d = &schema.databases[task.db];
                let t = &d.tables[task.table];
                let path = file_path(&d.name, &t.name, task.range);
                let mut src = Blocks { rx, done: None };
                let meta = json!({"database": d.name, "table": t.name, "range": task.range});
                let r = session.add_blocks(
                    &path,
                    &mut src,
                    meta,
                    base_files.get(path.as_str()).copied(),
                    progress,
                );
                if let Some(e) = failure.lock().unwrap().take() {
                    return Err(e);
                }
                r?;
                let Some(read) = src.done else {
                    return Err(Error::Unsupported(format!(
                        "reading {}.{} stopped early",
                        d.name, t.name
                    )));
                };
                rows.push((path, read.rows));
            }
            Ok(())
        };
        let result = archive();
        if result.is_err() {
            // Workers blocked handing over blocks stop once nobody takes
            // them: drop every range they announced until all are gone.
            // A stopped reader would otherwise read the rest of its range
            // (the client drains a result it drops): its query is killed.
            stop.store(true, Ordering::SeqCst);
            interrupt(&src, &ids);
            for (_, rx) in files_rx.iter() {
                drop(rx);
            }
        }
        result?;
        if let Some(e) = failure.lock().unwrap().take() {
            return Err(e);
        }
        Ok(())
    })?;
    let meta = json!({
        "flavor": flavor,
        "version": version,
        "server": server,
        "consistency": snap.consistency,
        "schema": schema,
        "plans": plans,
        "rows": rows,
    });
    let m = session.commit(NewManifest {
        engine: arca_repo::EngineName::Mysql,
        source: source_name,
        kind: arca_repo::BackupKind::Logical,
        name: opts.name.clone(),
        tags: opts.tags.clone(),
        start_time,
        meta,
    })?;
    Ok(m)
}

/// Ends the statements the readers' connections are running.
fn interrupt(src: &MysqlSource, ids: &[u32]) {
    if let Ok(mut s) = my::Session::open(src) {
        for id in ids {
            let _ = s.exec(&format!("KILL QUERY {id}"));
        }
    }
}

/// A range's blocks as the worker reading it sends them.
struct Blocks {
    rx: Receiver<Msg>,
    done: Option<my::Read>,
}

impl BlockSource for Blocks {
    fn fill(&mut self, buf: &mut Vec<u8>, cuts: &mut Vec<u32>, want: usize) -> std::io::Result<()> {
        while buf.len() < want && self.done.is_none() {
            match self.rx.recv() {
                Ok(Msg::Block(b)) => {
                    cuts.push(b.len() as u32);
                    buf.extend_from_slice(&b);
                }
                Ok(Msg::Done(r)) => self.done = Some(r),
                // The worker failed: its error is reported by the caller.
                Err(_) => {
                    return Err(std::io::Error::other(
                        "the connection reading the table failed",
                    ))
                }
            }
        }
        Ok(())
    }
}
