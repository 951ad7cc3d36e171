//! Preparing a restore target server: what must hold before anything is
//! written, tables created with their secondary keys held back until the
//! rows are in, and the objects that come after the rows.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::core::{literal, qualified, quote, Result, Session};
use super::encode;
use super::rename::Renames;
use super::schema::{Database, Object, ObjectKind, Schema, Table};

/// Settings of every restoring session: values are taken as stored (zero
/// dates, 0 in an AUTO_INCREMENT column), keys are not checked row by row.
pub const SESSION: &str = "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION', \
     foreign_key_checks = 0, unique_checks = 0, time_zone = '+00:00'";

/// Refuses, before anything is written, a target that cannot take the
/// backup: other letter-case rules for names, missing collations, or
/// (without `replace`) tables or views that exist already.
pub fn check_target(
    s: &mut Session,
    schema: &Schema,
    dbs: &[&Database],
    renames: &Renames,
    replace: bool,
) -> Result<()> {
    let lower: u32 = s
        .one("SELECT @@lower_case_table_names")?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if lower != schema.lower_case_table_names {
        let mixed = dbs.iter().any(|d| {
            d.name.chars().any(|c| c.is_uppercase())
                || d.tables
                    .iter()
                    .any(|t| t.name.chars().any(|c| c.is_uppercase()))
        });
        if mixed || lower == 0 {
            return Err(s.error(format!(
                "the target has lower_case_table_names = {lower}, the backup's server had {}: names would change case or collide; restore into a server with lower_case_table_names = {}",
                schema.lower_case_table_names, schema.lower_case_table_names
            )));
        }
    }
    let have: BTreeSet<String> = s
        .texts("SELECT COLLATION_NAME FROM information_schema.COLLATIONS")?
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect();
    let missing: Vec<&str> = schema
        .collations
        .iter()
        .filter(|c| !have.contains(*c))
        .map(|c| c.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(s.error(format!(
            "the target lacks the collation(s) {} that the backup's tables use: restore into a server version that has them",
            missing.join(", ")
        )));
    }
    if s.one("SELECT @@local_infile")?.as_deref() == Some("0") {
        return Err(s.error(
            "the target refuses LOAD DATA LOCAL INFILE (local_infile = OFF), which a restore streams rows with: SET GLOBAL local_infile = 1 on it for the restore",
        ));
    }
    if replace {
        return Ok(());
    }
    // What each target database has, read once per catalog and database;
    // compared without regard to case, as information_schema compares.
    let mut known: HashMap<(&str, String), HashSet<String>> = HashMap::new();
    let mut has = |s: &mut Session, catalog: &'static str, db: &str, name: &str| -> Result<bool> {
        let key = (catalog, db.to_string());
        if !known.contains_key(&key) {
            let (column, schema) = match catalog {
                "ROUTINES" => ("ROUTINE_NAME", "ROUTINE_SCHEMA"),
                "EVENTS" => ("EVENT_NAME", "EVENT_SCHEMA"),
                "TRIGGERS" => ("TRIGGER_NAME", "TRIGGER_SCHEMA"),
                _ => ("TABLE_NAME", "TABLE_SCHEMA"),
            };
            let names = s
                .texts(&format!(
                    "SELECT {column} FROM information_schema.{catalog} WHERE {schema} = {}",
                    literal(db)
                ))?
                .into_iter()
                .filter_map(|r| r.into_iter().next().flatten())
                .map(|n| n.to_lowercase())
                .collect();
            known.insert(key.clone(), names);
        }
        Ok(known[&key].contains(&name.to_lowercase()))
    };
    let mut exist = Vec::new();
    for d in dbs {
        let nd = renames.database(&d.name);
        for o in &d.objects {
            let catalog = match o.kind {
                ObjectKind::Procedure | ObjectKind::Function => "ROUTINES",
                ObjectKind::Event => "EVENTS",
                ObjectKind::Trigger => "TRIGGERS",
                ObjectKind::View => continue,
            };
            let db = match (o.kind, &o.table) {
                (ObjectKind::Trigger, Some(t)) => renames.table(&d.name, t).0,
                _ => nd.clone(),
            };
            if has(s, catalog, &db, &o.name)? {
                exist.push(format!("{} {db}.{}", o.kind.word().to_lowercase(), o.name));
            }
        }
    }
    for d in dbs {
        let mut names: Vec<(String, String)> = d
            .tables
            .iter()
            .map(|t| renames.table(&d.name, &t.name))
            .collect();
        names.extend(
            d.objects
                .iter()
                .filter(|o| o.kind == ObjectKind::View)
                .map(|o| renames.table(&d.name, &o.name)),
        );
        names.extend(d.sequences.iter().map(|q| renames.table(&d.name, &q.name)));
        for (db, t) in names {
            if has(s, "TABLES", &db, &t)? {
                exist.push(format!("{db}.{t}"));
            }
        }
    }
    if !exist.is_empty() {
        let more = if exist.len() > 10 {
            format!(" and {} more", exist.len() - 10)
        } else {
            String::new()
        };
        exist.truncate(10);
        return Err(s.error(format!(
            "the target already has {}{more}: pass --replace to drop and restore them, or --rename to restore under other names",
            exist.join(", ")
        )));
    }
    Ok(())
}

/// `CREATE DATABASE` for `d` under its new name, keeping its character set.
pub fn create_database(s: &mut Session, d: &Database, new: &str) -> Result<()> {
    let old = format!("CREATE DATABASE {}", quote(&d.name));
    let stmt = match d.create.strip_prefix(&old) {
        Some(rest) => format!("CREATE DATABASE IF NOT EXISTS {}{rest}", quote(new)),
        None => format!("CREATE DATABASE IF NOT EXISTS {}", quote(new)),
    };
    s.exec(&stmt)
}

/// A table's `CREATE TABLE` under its new name without the secondary keys
/// that can wait, and the `ALTER TABLE` that adds them after the rows.
/// Keys stay when the table has foreign keys (they need their indexes) or
/// when a key holds the AUTO_INCREMENT column (it must be indexed).
pub fn split_create(t: &Table, db: &str, renames: &Renames) -> (String, Option<String>) {
    let (new_db, new_name) = renames.table(db, &t.name);
    let header = format!("CREATE TABLE {}", quote(&t.name));
    let body = t.create.strip_prefix(&header).unwrap_or(&t.create);
    let mut body = renames.rewrite(body);
    // A foreign key to a table of the same database names it bare.
    for ((d, old), (nd, nt)) in &renames.tables {
        if d == db {
            body = body.replace(
                &format!("REFERENCES {} (", quote(old)),
                &format!("REFERENCES {} (", qualified(nd, nt)),
            );
        }
    }
    let create = format!("CREATE TABLE {}{body}", qualified(&new_db, &new_name));
    let has_fk = create.contains("FOREIGN KEY");
    let auto: Option<String> = create
        .lines()
        .find(|l| l.contains(" AUTO_INCREMENT") && l.trim_start().starts_with('`'))
        .and_then(|l| l.trim_start().split('`').nth(1).map(|n| format!("`{n}`")));
    if has_fk {
        return (create, None);
    }
    let mut kept = Vec::new();
    let mut deferred = Vec::new();
    for line in create.lines() {
        let l = line.trim_start();
        // FULLTEXT keys stay: InnoDB adds only one per ALTER TABLE.
        let key =
            l.starts_with("KEY ") || l.starts_with("UNIQUE KEY ") || l.starts_with("SPATIAL KEY ");
        let holds_auto = auto.as_ref().is_some_and(|a| {
            l.split_once('(')
                .is_some_and(|(_, cols)| cols.contains(a.as_str()))
        });
        if key && !holds_auto {
            deferred.push(l.trim_end_matches(',').to_string());
        } else {
            kept.push(line.to_string());
        }
    }
    if deferred.is_empty() {
        return (create, None);
    }
    // The line before the closing parenthesis must not end in a comma.
    let close = kept
        .iter()
        .rposition(|l| l.starts_with(')'))
        .unwrap_or(kept.len());
    if close > 0 {
        let prev = &mut kept[close - 1];
        if prev.ends_with(',') {
            prev.pop();
        }
    }
    let alter = format!(
        "ALTER TABLE {} {}",
        qualified(&new_db, &new_name),
        deferred
            .iter()
            .map(|k| format!("ADD {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    (kept.join("\n"), Some(alter))
}

/// The `LOAD DATA` statement that reads a backup's rows of `t` into
/// `db`.`name`.
pub fn load_statement(t: &Table, db: &str, name: &str) -> String {
    let cols: Vec<_> = t.stored_columns().collect();
    format!(
        "LOAD DATA LOCAL INFILE 'arca' INTO TABLE {} CHARACTER SET binary \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' {}",
        qualified(db, name),
        encode::load_columns(&cols)
    )
}

/// Creates a view, routine, trigger or event in database `db` (renamed),
/// under the session settings it was defined with.
pub fn create_object(
    s: &mut Session,
    old_db: &str,
    db: &str,
    o: &Object,
    renames: &Renames,
) -> Result<()> {
    let mut set = Vec::new();
    if let Some(m) = &o.sql_mode {
        set.push(format!("sql_mode = {}", literal(m)));
    }
    // The definition was read as UTF-8: it is sent as UTF-8, and its
    // literals take the connection collation it was defined with.
    set.push("character_set_client = utf8mb4".to_string());
    if let Some(c) = &o.collation_connection {
        set.push(format!("collation_connection = {}", literal(c)));
    }
    if let Some(z) = &o.time_zone {
        set.push(format!("time_zone = {}", literal(z)));
    }
    let mut create = renames.rewrite(&o.create);
    let mut db = db.to_string();
    match (o.kind, &o.table) {
        (ObjectKind::Trigger, Some(t)) => {
            // A trigger lives in its table's database, under the table's
            // new name; its ON clause is as the user typed it.
            let (nd, nt) = renames.table(old_db, t);
            db = nd;
            create = replace_on(&create, t, &nt);
        }
        (ObjectKind::View, _) => {
            let (nd, nv) = renames.table(old_db, &o.name);
            db = nd;
            create = create.replacen(
                &format!(" VIEW {} AS ", quote(&o.name)),
                &format!(" VIEW {} AS ", quote(&nv)),
                1,
            );
        }
        _ => {}
    }
    s.exec(&format!("USE {}", quote(&db)))?;
    s.exec(&format!("SET SESSION {}", set.join(", ")))?;
    let r = s.exec(&create);
    s.exec(SESSION)?;
    s.exec("SET NAMES utf8mb4")?;
    r
}

/// `create` with its first ` ON <table> ` (quoted or bare, any case of
/// `ON`) naming `new` instead.
fn replace_on(create: &str, table: &str, new: &str) -> String {
    let lower = create.to_ascii_lowercase();
    for name in [quote(table), table.to_string()] {
        let pat = format!(" on {} ", name.to_ascii_lowercase());
        if let Some(i) = lower.find(&pat) {
            return format!(
                "{} ON {} {}",
                &create[..i],
                quote(new),
                &create[i + pat.len()..]
            );
        }
    }
    create.to_string()
}

/// `DROP` for what `--replace` replaces.
pub fn drop_existing(s: &mut Session, db: &str, name: &str, view: bool) -> Result<()> {
    let what = if view { "VIEW" } else { "TABLE" };
    s.exec(&format!("DROP {what} IF EXISTS {}", qualified(db, name)))
}
