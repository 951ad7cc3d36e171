//! A MySQL restore: checks, then tables, then rows streamed from the
//! repository into `LOAD DATA LOCAL INFILE` on N connections, then keys,
//! then views, routines, triggers and events.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use arca_engine::mysql::{self as my, Database, MysqlSource, ObjectKind, Renames, Schema, Session};
use arca_repo::{BlockStream, FileEntry, Manifest, Progress, Repository};
use crossbeam_channel::bounded;
use mysql::prelude::Queryable;

use crate::engine::{RestoreRequest, Restored};
use crate::{Error, Result};

pub fn restore(
    repo: &Repository,
    m: &Manifest,
    req: &RestoreRequest,
    progress: &dyn Progress,
) -> Result<Restored> {
    let schema: Schema = serde_json::from_value(m.meta["schema"].clone()).map_err(|e| {
        arca_repo::Error::corrupt(format!(
            "backup {}'s manifest has no readable schema ({e}): it is damaged; restore another backup",
            m.id.short()
        ))
    })?;
    let dbs = select(&schema, req)?;
    let renames = Renames::parse(&req.renames)?;
    let plan = super::pitr::plan(repo, m, req)?;
    let plan = plan.as_ref();
    if let Some(p) = plan {
        super::pitr::check(repo, p, req, &dbs, &renames)?;
    }
    let to = req.to.to_str().unwrap_or("");
    if req.start {
        let port = match req.port {
            Some(p) => p,
            None => crate::target::free_port()?,
        };
        let instance = super::instance::create(&req.to, port, schema.lower_case_table_names)?;
        let target = instance.target()?;
        return match into(
            repo, m, req, progress, &schema, &dbs, &renames, &target, plan,
        ) {
            Ok(mut done) => {
                done.lines.extend(instance.lines());
                done.detail.insert("port".into(), port.into());
                done.detail.insert(
                    "socket".into(),
                    instance.socket.display().to_string().into(),
                );
                Ok(done)
            }
            Err(e) => {
                instance.stop();
                Err(e)
            }
        };
    }
    if !(to.starts_with("mysql://") || to.starts_with("mariadb://")) {
        return Err(Error::Unsupported(format!(
            "backup {} is of a MySQL server: restore it into one with --to mysql://USER@HOST:PORT, or into a new one with --to-instance DIR",
            m.id.short()
        )));
    }
    let target = MysqlSource::parse(to, req.password_file.as_deref())?;
    into(
        repo, m, req, progress, &schema, &dbs, &renames, &target, plan,
    )
}

/// Restores the selected databases `dbs` into the server `target`, then
/// replays the binary log as `plan` says (none: the backup as it was
/// taken, as a drill restores it).
#[allow(clippy::too_many_arguments)]
pub(super) fn into(
    repo: &Repository,
    m: &Manifest,
    req: &RestoreRequest,
    progress: &dyn Progress,
    schema: &Schema,
    dbs: &[Database],
    renames: &Renames,
    target: &MysqlSource,
    plan: Option<&super::pitr::Plan>,
) -> Result<Restored> {
    let rows: HashMap<String, u64> =
        serde_json::from_value::<Vec<(String, u64)>>(m.meta["rows"].clone())
            .unwrap_or_default()
            .into_iter()
            .collect();
    let n = req.parallelism.clamp(1, 16);
    let mut ctl = Session::open(target)?;
    ctl.exec(my::SESSION)?;
    let refs: Vec<&Database> = dbs.iter().collect();
    my::check_target(&mut ctl, schema, &refs, renames, req.replace)?;
    let _lock = repo.lock_for_reading("restore")?;
    let index = repo.load_index()?;

    // Databases, and what --replace replaces.
    for d in dbs {
        let new = renames.database(&d.name);
        my::create_database(&mut ctl, d, &new)?;
        if req.replace {
            for t in &d.tables {
                let (nd, nt) = renames.table(&d.name, &t.name);
                my::drop_existing(&mut ctl, &nd, &nt, false)?;
            }
            for o in d.objects.iter().filter(|o| o.kind == ObjectKind::View) {
                let (nd, nt) = renames.table(&d.name, &o.name);
                my::drop_existing(&mut ctl, &nd, &nt, true)?;
            }
            for q in &d.sequences {
                let (nd, nt) = renames.table(&d.name, &q.name);
                ctl.exec(&format!(
                    "DROP SEQUENCE IF EXISTS {}",
                    my::qualified(&nd, &nt)
                ))?;
            }
        }
    }

    let mut sessions = Vec::new();
    for _ in 0..n {
        let mut s = Session::open(target)?;
        s.exec(my::SESSION)?;
        sessions.push(s);
    }

    // Tables, without the keys that can wait.
    let mut creates = Vec::new();
    let mut alters = Vec::new();
    for d in dbs {
        for t in &d.tables {
            let (create, alter) = my::split_create(t, &d.name, renames);
            creates.push(create);
            alters.extend(alter);
        }
        for q in &d.sequences {
            let (nd, nt) = renames.table(&d.name, &q.name);
            let body = q
                .create
                .strip_prefix(&format!("CREATE SEQUENCE {}", my::quote(&q.name)))
                .unwrap_or(&q.create);
            creates.push(format!("CREATE SEQUENCE {}{body}", my::qualified(&nd, &nt)));
        }
    }
    run_all(&mut sessions, creates, |s, sql| Ok(s.exec(&sql)?))?;

    // Rows.
    let mut loads: Vec<(&Database, &my::Table, &FileEntry)> = Vec::new();
    for d in dbs {
        for t in &d.tables {
            let prefix = format!(
                "{}/",
                super::file_path(&d.name, &t.name, 0)
                    .rsplit_once('/')
                    .expect("has a range")
                    .0
            );
            for f in m.files.iter().filter(|f| f.path.starts_with(&prefix)) {
                loads.push((d, t, f));
            }
        }
    }
    loads.sort_by_key(|l| std::cmp::Reverse(l.2.size));
    progress.set_total(loads.iter().map(|l| l.2.size).sum());
    let total_rows = std::sync::atomic::AtomicU64::new(0);
    let index = &index;
    let total_rows_ref = &total_rows;
    let renames_ref = &renames;
    let rows_ref = &rows;
    run_all(&mut sessions, loads, |s, (d, t, f)| {
        let (nd, nt) = renames_ref.table(&d.name, &t.name);
        let sql = my::load_statement(t, &nd, &nt);
        let loaded = load(repo, index, s, &sql, f, progress)?;
        if let Some(&want) = rows_ref.get(&f.path) {
            if want != loaded {
                return Err(Error::Unsupported(format!(
                    "{nd}.{nt}: loaded {loaded} rows of range {}, the backup holds {want}: the target changed the rows (a trigger, a unique key?); restore into an empty database",
                    f.path
                )));
            }
        }
        total_rows_ref.fetch_add(loaded, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    })?;

    // Keys, then what comes after the rows: users first (definers name
    // them), then sequences, routines, views, triggers, events.
    run_all(&mut sessions, alters, |s, sql| Ok(s.exec(&sql)?))?;
    if req.users {
        for u in &schema.users {
            let create = u
                .create
                .replacen("CREATE USER ", "CREATE USER IF NOT EXISTS ", 1);
            ctl.exec(&create)?;
            for g in &u.grants {
                ctl.exec(&renames.rewrite(g))?;
            }
        }
    }
    for d in dbs {
        let nd = renames.database(&d.name);
        for q in &d.sequences {
            let (nd, nt) = renames.table(&d.name, &q.name);
            ctl.exec(&format!(
                "SELECT SETVAL({}, {}, 0)",
                my::qualified(&nd, &nt),
                q.next.parse::<i128>().unwrap_or(1)
            ))?;
        }
        create_objects(&mut ctl, d, &nd, renames, req.replace)?;
    }
    let tables: usize = dbs.iter().map(|d| d.tables.len()).sum();
    let rows = total_rows.load(std::sync::atomic::Ordering::Relaxed);
    let mut detail = serde_json::Map::new();
    detail.insert(
        "databases".into(),
        dbs.iter()
            .map(|d| renames.database(&d.name))
            .collect::<Vec<_>>()
            .into(),
    );
    detail.insert("tables".into(), tables.into());
    detail.insert("rows".into(), rows.into());
    let mut lines = vec![format!(
        "restored backup {} into {}: {} database(s), {tables} table(s), {rows} rows",
        m.id.short(),
        ctl.label,
        dbs.len()
    )];
    if let Some(plan) = plan {
        let done = super::pitr::replay(repo, plan, req, dbs, renames, target)?;
        let when = |t: Option<i64>| {
            t.and_then(|t| jiff::Timestamp::from_second(t).ok())
                .map(|t| t.to_string())
                .unwrap_or_default()
        };
        lines.push(match &done.last_gtid {
            Some(g) => format!(
                "replayed the binary log after it: {} transaction(s), up to GTID {g} committed {}",
                done.transactions,
                when(done.last_time)
            ),
            None => format!(
                "replayed the binary log after it: {} transaction(s)",
                done.transactions
            ),
        });
        if let (crate::Target::Time(t), Some(last)) = (&req.target, &plan.last) {
            if last.last_time.is_some_and(|l| (l as i64) < t.as_second()) {
                lines.push(format!(
                    "the archive's newest transaction was committed {}: the target is later, so anything committed after it and not yet archived is missing",
                    when(last.last_time.map(i64::from))
                ));
            }
        }
        lines.extend(plan.notes.iter().cloned());
        let skipped = super::pitr::not_at_point(dbs);
        if !skipped.is_empty() {
            lines.push(format!(
                "not rolled forward (read after the backup's point, engines without snapshots): {}",
                skipped
                    .iter()
                    .map(|(d, t)| format!("{d}.{t}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        detail.insert(
            "replayed".into(),
            serde_json::to_value(&done).unwrap_or_default(),
        );
    }
    Ok(Restored {
        backup: m.id.to_hex(),
        files: Vec::new(),
        bytes: m.files.iter().map(|f| f.size).sum(),
        detail,
        lines,
    })
}

/// The databases (and in them the tables) the request selects.
fn select(schema: &Schema, req: &RestoreRequest) -> Result<Vec<Database>> {
    let o = &req.objects;
    let tables = my::Selection::table_names(&o.tables, "--tables")?;
    let exclude = my::Selection::table_names(&o.exclude_tables, "--exclude-tables")?;
    let known = |d: &str| schema.databases.iter().any(|x| x.name == d);
    let unknown: Vec<String> = o
        .databases
        .iter()
        .chain(tables.iter().map(|(d, _)| d))
        .filter(|d| !known(d))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(Error::Unsupported(format!(
            "the backup holds no database {}: `arca list ID` shows what it holds",
            unknown.join(", ")
        )));
    }
    let mut out = Vec::new();
    for d in &schema.databases {
        let whole = (o.databases.is_empty() && tables.is_empty()) || o.databases.contains(&d.name);
        let some: Vec<&str> = tables
            .iter()
            .filter(|(x, _)| *x == d.name)
            .map(|(_, t)| t.as_str())
            .collect();
        if !whole && some.is_empty() {
            continue;
        }
        let mut d = d.clone();
        let keep = |name: &str| {
            (whole || some.contains(&name))
                && !exclude.iter().any(|(x, t)| *x == d.name && t == name)
        };
        let missing: Vec<&str> = some
            .iter()
            .filter(|t| {
                !d.tables.iter().any(|x| x.name == **t)
                    && !d
                        .objects
                        .iter()
                        .any(|o| o.kind == ObjectKind::View && o.name == **t)
            })
            .copied()
            .collect();
        if !missing.is_empty() {
            return Err(Error::Unsupported(format!(
                "the backup holds no table {} in database {}",
                missing.join(", "),
                d.name
            )));
        }
        let tables: Vec<my::Table> = d.tables.iter().filter(|t| keep(&t.name)).cloned().collect();
        let objects = d
            .objects
            .iter()
            .filter(|o| match o.kind {
                ObjectKind::View => keep(&o.name),
                ObjectKind::Trigger => o
                    .table
                    .as_deref()
                    .is_some_and(|t| tables.iter().any(|x| x.name == t)),
                _ => whole,
            })
            .cloned()
            .collect();
        let sequences = d
            .sequences
            .iter()
            .filter(|q| keep(&q.name))
            .cloned()
            .collect();
        d.tables = tables;
        d.objects = objects;
        d.sequences = sequences;
        out.push(d);
    }
    Ok(out)
}

/// Views (retried until those naming other views exist), then routines,
/// triggers and events.
fn create_objects(
    s: &mut Session,
    d: &Database,
    new_db: &str,
    renames: &Renames,
    replace: bool,
) -> Result<()> {
    let of = |k: ObjectKind| d.objects.iter().filter(move |o| o.kind == k);
    let routines = of(ObjectKind::Procedure).chain(of(ObjectKind::Function));
    let create = |s: &mut Session, o: &my::Object| -> Result<()> {
        if replace {
            let db = match (o.kind, &o.table) {
                (ObjectKind::Trigger, Some(t)) => renames.table(&d.name, t).0,
                _ => new_db.to_string(),
            };
            s.exec(&format!(
                "DROP {} IF EXISTS {}",
                o.kind.word(),
                my::qualified(&db, &o.name)
            ))?;
        }
        Ok(my::create_object(s, &d.name, new_db, o, renames)?)
    };
    // Routines first: a view may call a function.
    for o in routines {
        create(s, o)?;
    }
    // Views may name views: retried until none is left or none succeeds.
    let mut views: Vec<_> = of(ObjectKind::View).collect();
    while !views.is_empty() {
        let mut failed = Vec::new();
        let mut last = None;
        for v in &views {
            if let Err(e) = my::create_object(s, &d.name, new_db, v, renames) {
                last = Some(e);
                failed.push(*v);
            }
        }
        if failed.len() == views.len() {
            return Err(last.expect("a view failed").into());
        }
        views = failed;
    }
    for o in of(ObjectKind::Trigger).chain(of(ObjectKind::Event)) {
        create(s, o)?;
    }
    Ok(())
}

/// Runs `f` on every item, `sessions.len()` at a time, each worker with a
/// session of its own; the first error stops the rest.
fn run_all<T: Send>(
    sessions: &mut [Session],
    items: Vec<T>,
    f: impl Fn(&mut Session, T) -> Result<()> + Sync,
) -> Result<()> {
    let queue = Mutex::new(VecDeque::from(items));
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|sc| {
        for s in sessions.iter_mut() {
            let (queue, failure, f) = (&queue, &failure, &f);
            sc.spawn(move || loop {
                if failure.lock().unwrap().is_some() {
                    return;
                }
                let Some(item) = queue.lock().unwrap().pop_front() else {
                    return;
                };
                if let Err(e) = f(s, item) {
                    failure.lock().unwrap().get_or_insert(e);
                    return;
                }
            });
        }
    });
    match failure.into_inner().unwrap() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Streams one range's blocks into the server; returns the rows loaded.
/// A block that fails its check stops the statement, which the server then
/// rolls back whole.
fn load(
    repo: &Repository,
    index: &arca_repo::index::Index,
    s: &mut Session,
    sql: &str,
    f: &FileEntry,
    progress: &dyn Progress,
) -> Result<u64> {
    let (tx, rx) = bounded::<std::result::Result<Vec<u8>, String>>(16);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let rx = std::sync::Arc::new(Mutex::new(rx));
    let handler_rx = rx.clone();
    s.conn
        .set_local_infile_handler(Some(mysql::LocalInfileHandler::new(move |_, w| {
            let rx = handler_rx.lock().unwrap();
            for block in rx.iter() {
                match block {
                    Ok(b) => std::io::Write::write_all(w, &b)?,
                    Err(e) => return Err(std::io::Error::other(e)),
                }
            }
            Ok(())
        })));
    let label = s.label.clone();
    let result = std::thread::scope(|sc| {
        let failure = &failure;
        sc.spawn(move || {
            for block in BlockStream::new(repo, index, f) {
                match block {
                    Ok(b) => {
                        progress.inc(b.len() as u64);
                        if tx.send(Ok(b)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        failure.lock().unwrap().get_or_insert(e.into());
                        return;
                    }
                }
            }
        });
        let r = s
            .conn
            .query_iter(sql)
            .map(|r| (r.affected_rows(), r.warnings()));
        // The reader stops once nobody receives (the statement may have
        // ended early).
        s.conn.set_local_infile_handler(None);
        drop(rx);
        r
    });
    if let Some(e) = failure.into_inner().unwrap() {
        return Err(e);
    }
    let (rows, warnings) = result.map_err(|e| match &e {
        mysql::Error::MySqlError(m) if [1148, 3948, 4166].contains(&m.code) => Error::Unsupported(format!(
            "{label} refuses LOAD DATA LOCAL INFILE ({}), which a restore streams rows with: SET GLOBAL local_infile = 1 on it for the restore",
            m.message
        )),
        _ => my::sql_error(&label, "loading rows", e).into(),
    })?;
    if warnings > 0 {
        let shown = s.texts("SHOW WARNINGS LIMIT 3")?;
        let text: Vec<String> = shown
            .into_iter()
            .map(|r| r.into_iter().flatten().collect::<Vec<_>>().join(" "))
            .collect();
        return Err(Error::Unsupported(format!(
            "{label}: loading {} gave {warnings} warning(s), so rows may differ from the backup: {}",
            f.path,
            text.join("; ")
        )));
    }
    Ok(rows)
}
