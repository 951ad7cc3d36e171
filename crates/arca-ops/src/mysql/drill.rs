//! A MySQL restore drill: a logical backup restores into a server, and the
//! drill's server is the source's own. Every database of the backup is
//! restored under a scratch name (`arca_drill_<tag>_DB`), as `arca restore
//! --rename` does, without the binary log after it; then `CHECK TABLE`
//! and a row count of every table, compared with the rows the backup
//! read; then the scratch databases are dropped, whatever happened.
//!
//! Events are created disabled: a copy's events would run on the source's
//! server.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use arca_engine::mysql::{self as my, Database, MysqlSource, ObjectKind, Renames, Schema, Session};
use arca_repo::{Manifest, Progress, Repository};

use crate::drill::{check_cancel, seconds, DrillOptions, Drilled, Scratch};
use crate::engine::RestoreRequest;
use crate::{Error, Result};

/// MySQL's longest database name, in characters.
const NAME_MAX: usize = 64;

pub fn drill(
    repo: &Repository,
    m: &Manifest,
    opts: &DrillOptions,
    scratch: &Scratch,
    progress: &dyn Progress,
) -> Result<Drilled> {
    let schema: Schema = serde_json::from_value(m.meta["schema"].clone()).map_err(|e| {
        arca_repo::Error::corrupt(format!(
            "backup {}'s manifest has no readable schema ({e}): it is damaged",
            m.id.short()
        ))
    })?;
    let target = MysqlSource::parse(&opts.source, opts.password_file.as_deref())?;
    let mut ctl = Session::open(&target)?;
    may_create_databases(&mut ctl, &target, &scratch.tag)?;
    let names: Vec<(String, String)> = schema
        .databases
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.clone(), scratch_name(&scratch.tag, &d.name, i)))
        .collect();
    // Dropped on every way out from here: the restore creates them.
    let mut made = ScratchDatabases {
        server: &target,
        names: names.iter().map(|(_, n)| n.clone()).collect(),
        dropped: false,
    };
    let renames = Renames {
        databases: names,
        tables: Vec::new(),
    };
    let (dbs, events) = without_running_events(&schema.databases);
    let mut req = RestoreRequest::new(PathBuf::from(&opts.source));
    req.id = Some(m.id.to_hex());
    req.parallelism = opts.parallelism.max(1);
    req.password_file = opts.password_file.clone();

    let t = Instant::now();
    let restored = super::restore::into(
        repo, m, &req, progress, &schema, &dbs, &renames, &target, None,
    )?;
    let restore_seconds = seconds(t);
    check_cancel(repo)?;

    let t = Instant::now();
    // A new connection: the first one idled through the restore.
    drop(ctl);
    let mut ctl = Session::open(&target)?;
    let mut checks = vec![format!(
        "restored into {} as {} arca_drill_{}_*",
        ctl.label,
        crate::drill::count(dbs.len(), "scratch database"),
        scratch.tag
    )];
    let recorded: Vec<(String, u64)> =
        serde_json::from_value(m.meta["rows"].clone()).unwrap_or_default();
    for d in &dbs {
        let nd = renames.database(&d.name);
        for t in &d.tables {
            check_cancel(repo)?;
            let name = format!("{}.{}", d.name, t.name);
            checks.push(check_table(&mut ctl, &nd, t, &name)?);
            checks.push(count_rows(&mut ctl, &nd, d, t, &name, &recorded)?);
        }
        let objects = objects_line(d);
        if !objects.is_empty() {
            checks.push(format!("objects {}: {objects} created", d.name));
        }
    }
    if events > 0 {
        checks.push(format!(
            "events: {} created disabled (a copy's events would run on the source's server)",
            crate::drill::count(events, "event")
        ));
    }
    let verify_seconds = seconds(t);

    drop(ctl);
    made.drop_all()?;
    Ok(Drilled {
        restored_bytes: restored.bytes,
        checks,
        restore_seconds,
        verify_seconds,
    })
}

/// `arca_drill_<tag>_DB`, or `arca_drill_<tag>_<i>` for a name too long
/// for that.
fn scratch_name(tag: &str, db: &str, i: usize) -> String {
    let name = format!("arca_drill_{tag}_{db}");
    if name.chars().count() <= NAME_MAX {
        name
    } else {
        format!("arca_drill_{tag}_{i}")
    }
}

/// Refuses, before anything is restored, a user who may not create (and
/// drop) databases on the source's server, by creating one and dropping it.
fn may_create_databases(s: &mut Session, src: &MysqlSource, tag: &str) -> Result<()> {
    let probe = my::quote(&format!("arca_drill_{tag}_probe"));
    let refused = |reason: String| {
        Error::Unsupported(format!(
            "a MySQL drill restores the backup into scratch databases (arca_drill_{tag}_DB) on the source's own server, and {} may not create and drop databases there ({reason}): GRANT CREATE, DROP, ALTER, INDEX, INSERT, SELECT, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, TRIGGER, EVENT ON `arca\\_drill\\_%`.* TO it",
            src.user
        ))
    };
    let denied = |e: &arca_engine::Error| {
        matches!(
            e,
            arca_engine::Error::Mysql {
                code: Some(1044 | 1142 | 1227),
                ..
            }
        )
    };
    match s.exec(&format!("CREATE DATABASE {probe}")) {
        Ok(()) => {}
        Err(e) if denied(&e) => return Err(refused(e.to_string())),
        Err(e) => return Err(e.into()),
    }
    match s.exec(&format!("DROP DATABASE {probe}")) {
        Ok(()) => Ok(()),
        Err(e) if denied(&e) => Err(refused(format!(
            "{e}; drop database arca_drill_{tag}_probe by hand"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// The databases with their events made `DISABLE`; how many events.
fn without_running_events(dbs: &[Database]) -> (Vec<Database>, usize) {
    let mut n = 0;
    let dbs = dbs
        .iter()
        .map(|d| {
            let mut d = d.clone();
            d.objects.retain_mut(|o| {
                if o.kind != ObjectKind::Event {
                    return true;
                }
                n += 1;
                match disabled(&o.create) {
                    Some(c) => {
                        o.create = c;
                        true
                    }
                    // A form this does not know: left out rather than run.
                    None => {
                        tracing::warn!(
                            "event {}.{} is left out of the drill: its definition does not say ENABLE or DISABLE where SHOW CREATE EVENT puts it",
                            d.name,
                            o.name
                        );
                        false
                    }
                }
            });
            d
        })
        .collect();
    (dbs, n)
}

/// `CREATE EVENT …` made `DISABLE`. `SHOW CREATE EVENT` writes `ON
/// COMPLETION [NOT] PRESERVE`, then the state (`ENABLE`, `DISABLE`,
/// `DISABLE ON SLAVE`), then the comment and the body.
fn disabled(create: &str) -> Option<String> {
    let upper = create.to_ascii_uppercase();
    let at = ["ON COMPLETION NOT PRESERVE ", "ON COMPLETION PRESERVE "]
        .iter()
        .find_map(|k| upper.find(k).map(|i| i + k.len()))?;
    let rest = &upper[at..];
    [
        "ENABLE ",
        "DISABLE ON SLAVE ",
        "DISABLE ON REPLICA ",
        "DISABLE ",
    ]
    .iter()
    .find(|state| rest.starts_with(*state))
    .map(|state| format!("{}DISABLE {}", &create[..at], &create[at + state.len()..]))
}

/// `CHECK TABLE` of one restored table: its line, or the error naming it.
fn check_table(s: &mut Session, db: &str, t: &my::Table, name: &str) -> Result<String> {
    let rows = s.texts(&format!("CHECK TABLE {}", my::qualified(db, &t.name)))?;
    // Table, Op, Msg_type, Msg_text
    let msgs: Vec<(String, String)> = rows
        .into_iter()
        .map(|r| {
            let mut r = r.into_iter().skip(2);
            (
                r.next().flatten().unwrap_or_default().to_ascii_lowercase(),
                r.next().flatten().unwrap_or_default(),
            )
        })
        .collect();
    let errors: Vec<&str> = msgs
        .iter()
        .filter(|(k, _)| k == "error")
        .map(|(_, v)| v.as_str())
        .collect();
    let status = msgs
        .iter()
        .rev()
        .find(|(k, _)| k == "status")
        .map(|(_, v)| v.as_str());
    match status {
        Some(s @ ("OK" | "Table is already up to date")) if errors.is_empty() => {
            Ok(format!("CHECK TABLE {name}: {s}"))
        }
        None if errors.is_empty()
            && msgs
                .iter()
                .any(|(_, v)| v.contains("doesn't support check")) =>
        {
            Ok(format!(
                "CHECK TABLE {name}: not supported by its engine ({})",
                t.engine
            ))
        }
        _ => {
            let said: Vec<&str> = errors.into_iter().chain(status).collect();
            Err(Error::Unsupported(format!(
                "CHECK TABLE {name} failed: {}",
                if said.is_empty() {
                    "no status".to_string()
                } else {
                    said.join("; ")
                }
            )))
        }
    }
}

/// The rows of one restored table against those the backup read.
fn count_rows(
    s: &mut Session,
    db: &str,
    d: &Database,
    t: &my::Table,
    name: &str,
    recorded: &[(String, u64)],
) -> Result<String> {
    let have: u64 = s
        .one(&format!(
            "SELECT COUNT(*) FROM {}",
            my::qualified(db, &t.name)
        ))?
        .and_then(|n| n.parse().ok())
        .unwrap_or_default();
    // A table's ranges are files `DB/TABLE/RANGE`.
    let prefix = format!(
        "{}/",
        super::file_path(&d.name, &t.name, 0)
            .rsplit_once('/')
            .expect("has a range")
            .0
    );
    let ranges: Vec<u64> = recorded
        .iter()
        .filter(|(p, _)| p.starts_with(&prefix))
        .map(|(_, n)| *n)
        .collect();
    if ranges.is_empty() {
        return Ok(format!(
            "rows {name}: {have} (the backup recorded no count)"
        ));
    }
    let want: u64 = ranges.iter().sum();
    if have != want {
        return Err(Error::Unsupported(format!(
            "rows {name}: {have} restored, the backup holds {want}"
        )));
    }
    Ok(format!("rows {name}: {have} = {want} in the backup"))
}

/// "2 views, 1 trigger" for a database's objects; empty without any.
fn objects_line(d: &Database) -> String {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for o in &d.objects {
        *counts.entry(o.kind.word()).or_default() += 1;
    }
    let mut parts = Vec::new();
    for kind in [
        ObjectKind::View,
        ObjectKind::Procedure,
        ObjectKind::Function,
        ObjectKind::Trigger,
        ObjectKind::Event,
    ] {
        if let Some(&n) = counts.get(kind.word()) {
            parts.push(crate::drill::count(n, &kind.word().to_ascii_lowercase()));
        }
    }
    if !d.sequences.is_empty() {
        parts.push(crate::drill::count(d.sequences.len(), "sequence"));
    }
    parts.join(", ")
}

/// The scratch databases, dropped when dropped (on an error or a
/// cancellation) unless [`ScratchDatabases::drop_all`] did it already.
struct ScratchDatabases<'a> {
    server: &'a MysqlSource,
    names: Vec<String>,
    dropped: bool,
}

impl ScratchDatabases<'_> {
    fn drop_all(&mut self) -> Result<()> {
        self.dropped = true;
        let mut s = Session::open(self.server)?;
        for n in &self.names {
            s.exec(&format!("DROP DATABASE IF EXISTS {}", my::quote(n)))?;
        }
        Ok(())
    }
}

impl Drop for ScratchDatabases<'_> {
    fn drop(&mut self) {
        if !self.dropped {
            if let Err(e) = self.drop_all() {
                tracing::warn!(
                    "the drill's scratch databases ({}) could not be dropped ({e}): drop them by hand",
                    self.names.join(", ")
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_names_fit_mysqls_limit() {
        assert_eq!(
            scratch_name("1a2b3c4d", "shop", 0),
            "arca_drill_1a2b3c4d_shop"
        );
        let long = "x".repeat(60);
        assert_eq!(scratch_name("1a2b3c4d", &long, 3), "arca_drill_1a2b3c4d_3");
    }

    #[test]
    fn events_are_created_disabled() {
        let c = "CREATE DEFINER=`root`@`localhost` EVENT `e` ON SCHEDULE EVERY 1 HOUR STARTS '2024-01-01 00:00:00' ON COMPLETION NOT PRESERVE ENABLE DO DELETE FROM t";
        assert_eq!(
            disabled(c).unwrap(),
            "CREATE DEFINER=`root`@`localhost` EVENT `e` ON SCHEDULE EVERY 1 HOUR STARTS '2024-01-01 00:00:00' ON COMPLETION NOT PRESERVE DISABLE DO DELETE FROM t"
        );
        let c = "CREATE EVENT `e` ON SCHEDULE AT '2030-01-01' ON COMPLETION PRESERVE DISABLE ON SLAVE COMMENT 'ENABLE DO' DO SELECT 1";
        assert_eq!(
            disabled(c).unwrap(),
            "CREATE EVENT `e` ON SCHEDULE AT '2030-01-01' ON COMPLETION PRESERVE DISABLE COMMENT 'ENABLE DO' DO SELECT 1"
        );
        let c = "CREATE EVENT `e` ON SCHEDULE EVERY 1 DAY ON COMPLETION NOT PRESERVE DISABLE DO SELECT 1";
        assert_eq!(disabled(c).unwrap(), c);
        assert_eq!(
            disabled("CREATE EVENT `e` ON SCHEDULE EVERY 1 DAY DO SELECT 1"),
            None
        );
    }
}
