//! The objects of a server that a restore recreates, read as the server
//! gives them (`SHOW CREATE …`), with what loading rows back needs to know
//! of each table's columns.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::core::{code, literal, qualified, quote, Flavor, Result, Session};
use crate::Error;

/// Databases a backup never takes: the server's own.
pub const SYSTEM_DATABASES: &[&str] = &["mysql", "information_schema", "performance_schema", "sys"];

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Schema {
    pub databases: Vec<Database>,
    /// `CREATE USER` and `GRANT` statements, with `--users`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<User>,
    /// Every collation a database, table or column uses: a restore target
    /// must have them all.
    pub collations: Vec<String>,
    pub lower_case_table_names: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Database {
    pub name: String,
    pub create: String,
    pub tables: Vec<Table>,
    /// Views, routines, triggers and events, in the order they can be
    /// created (views may name other views: a restore retries those).
    #[serde(default)]
    pub objects: Vec<Object>,
    #[serde(default)]
    pub sequences: Vec<Sequence>,
    /// Whether the whole database was taken (its routines and events too),
    /// not only some of its tables.
    pub whole: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Table {
    pub name: String,
    pub create: String,
    pub engine: String,
    pub columns: Vec<Column>,
    /// Primary key columns, in key order; empty without one.
    pub key: Vec<String>,
    /// The server's estimates, to plan ranges and blocks.
    pub rows_estimate: u64,
    pub avg_row_length: u64,
    pub data_length: u64,
}

impl Table {
    /// The columns whose values a backup stores (not generated ones).
    pub fn stored_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| !c.generated)
    }

    /// Whether the table's rows are read at the snapshot's point (a
    /// transactional engine), or merely read (MyISAM, Aria, MEMORY…).
    pub fn transactional(&self) -> bool {
        matches!(
            self.engine.to_ascii_lowercase().as_str(),
            "innodb" | "xtradb" | "rocksdb" | "tokudb" | "ndbcluster"
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// information_schema's DATA_TYPE ("int", "datetime", "bit"…).
    pub data_type: String,
    #[serde(default)]
    pub generated: bool,
}

/// A view, routine, trigger or event, with the session settings it was
/// created under (its body is parsed with them).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Object {
    pub kind: ObjectKind,
    pub name: String,
    pub create: String,
    #[serde(default)]
    pub sql_mode: Option<String>,
    #[serde(default)]
    pub character_set_client: Option<String>,
    #[serde(default)]
    pub collation_connection: Option<String>,
    /// For a trigger, its table.
    #[serde(default)]
    pub table: Option<String>,
    /// For an event, the time zone its times are in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    View,
    Procedure,
    Function,
    Trigger,
    Event,
}

impl ObjectKind {
    pub fn word(self) -> &'static str {
        match self {
            ObjectKind::View => "VIEW",
            ObjectKind::Procedure => "PROCEDURE",
            ObjectKind::Function => "FUNCTION",
            ObjectKind::Trigger => "TRIGGER",
            ObjectKind::Event => "EVENT",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sequence {
    pub name: String,
    pub create: String,
    /// The next value it hands out.
    pub next: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub create: String,
    pub grants: Vec<String>,
}

/// What to take: whole databases, single tables, tables left out.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub databases: Vec<String>,
    /// `db.table`
    pub tables: Vec<(String, String)>,
    pub exclude: Vec<(String, String)>,
}

impl Selection {
    /// Parses `db.table` names.
    pub fn table_names(
        list: &[String],
        flag: &str,
    ) -> std::result::Result<Vec<(String, String)>, Error> {
        list.iter()
            .map(|t| match t.split_once('.') {
                Some((d, n)) if !d.is_empty() && !n.is_empty() => {
                    Ok((d.to_string(), n.to_string()))
                }
                _ => Err(Error::Unsupported(format!(
                    "{flag} {t:?}: name tables as DATABASE.TABLE"
                ))),
            })
            .collect()
    }
}

fn col(row: &[Option<String>], i: usize) -> String {
    row.get(i).cloned().flatten().unwrap_or_default()
}

/// Reads the definitions of what `sel` selects (everything but the
/// server's own databases when it selects nothing).
pub fn read(s: &mut Session, sel: &Selection, users: bool) -> Result<Schema> {
    let all: Vec<String> = s
        .texts("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")?
        .into_iter()
        .map(|r| col(&r, 0))
        .collect();
    let mut wanted: Vec<(String, Option<Vec<String>>)> = Vec::new();
    let label = s.label.clone();
    let missing = |what: &str, names: Vec<String>| -> Error {
        Error::Unsupported(format!(
            "{label} has no {what} {}: check the names (`SHOW DATABASES`, `SHOW TABLES`)",
            names.join(", ")
        ))
    };
    let unknown: Vec<String> = sel
        .databases
        .iter()
        .chain(sel.tables.iter().map(|(d, _)| d))
        .filter(|d| !all.contains(d))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !unknown.is_empty() {
        return Err(missing("database", unknown));
    }
    for db in &all {
        let whole = if sel.databases.is_empty() && sel.tables.is_empty() {
            !SYSTEM_DATABASES.contains(&db.as_str())
        } else {
            sel.databases.contains(db)
        };
        let some: Vec<String> = sel
            .tables
            .iter()
            .filter(|(d, _)| d == db)
            .map(|(_, t)| t.clone())
            .collect();
        if whole {
            wanted.push((db.clone(), None));
        } else if !some.is_empty() {
            wanted.push((db.clone(), Some(some)));
        }
    }
    let mut schema = Schema {
        lower_case_table_names: s
            .one("SELECT @@lower_case_table_names")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        ..Schema::default()
    };
    let mut collations = BTreeSet::new();
    for (db, only) in wanted {
        let d = read_database(s, &db, only.as_deref(), sel, &mut collations)?;
        schema.databases.push(d);
    }
    let absent: Vec<String> = sel
        .tables
        .iter()
        .filter(|(d, t)| {
            !schema
                .databases
                .iter()
                .any(|x| &x.name == d && x.tables.iter().any(|y| &y.name == t))
                && !schema.databases.iter().any(|x| {
                    &x.name == d
                        && x.objects
                            .iter()
                            .any(|o| o.kind == ObjectKind::View && &o.name == t)
                })
        })
        .map(|(d, t)| format!("{d}.{t}"))
        .collect();
    if !absent.is_empty() {
        return Err(missing("table", absent));
    }
    schema.collations = collations.into_iter().collect();
    if users {
        schema.users = read_users(s)?;
    }
    Ok(schema)
}

fn read_database(
    s: &mut Session,
    db: &str,
    only: Option<&[String]>,
    sel: &Selection,
    collations: &mut BTreeSet<String>,
) -> Result<Database> {
    let lit = literal(db);
    let create = s
        .texts(&format!("SHOW CREATE DATABASE {}", quote(db)))?
        .first()
        .map(|r| col(r, 1))
        .unwrap_or_default();
    for r in s.texts(&format!(
        "SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {lit} \
         UNION SELECT TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = {lit} \
         UNION SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = {lit}"
    ))? {
        if let Some(Some(c)) = r.into_iter().next() {
            collations.insert(c);
        }
    }
    let picked = |name: &str| {
        only.is_none_or(|o| o.iter().any(|t| t == name))
            && !sel.exclude.iter().any(|(d, t)| d == db && t == name)
    };
    // Columns and primary keys of every table, grouped by table once.
    let mut columns: HashMap<String, Vec<Column>> = HashMap::new();
    for r in s.texts(&format!(
        "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, EXTRA FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = {lit} ORDER BY TABLE_NAME, ORDINAL_POSITION"
    ))? {
        let extra = col(&r, 3).to_ascii_uppercase();
        columns.entry(col(&r, 0)).or_default().push(Column {
            name: col(&r, 1),
            data_type: col(&r, 2).to_ascii_lowercase(),
            generated: extra.contains("VIRTUAL GENERATED")
                || extra.contains("STORED GENERATED")
                || extra.contains("PERSISTENT"),
        });
    }
    let mut keys: HashMap<String, Vec<String>> = HashMap::new();
    for r in s.texts(&format!(
        "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = {lit} AND INDEX_NAME = 'PRIMARY' ORDER BY TABLE_NAME, SEQ_IN_INDEX"
    ))? {
        keys.entry(col(&r, 0)).or_default().push(col(&r, 1));
    }
    let mut tables = Vec::new();
    let mut objects = Vec::new();
    let mut sequences = Vec::new();
    let listed = s.texts(&format!(
        "SELECT TABLE_NAME, TABLE_TYPE, ENGINE, TABLE_ROWS, AVG_ROW_LENGTH, DATA_LENGTH \
         FROM information_schema.TABLES WHERE TABLE_SCHEMA = {lit} ORDER BY TABLE_NAME"
    ))?;
    for r in listed {
        let name = col(&r, 0);
        if !picked(&name) {
            continue;
        }
        let q = qualified(db, &name);
        match col(&r, 1).as_str() {
            "VIEW" => {
                let row = show(s, &format!("SHOW CREATE VIEW {q}"), "SHOW VIEW")?;
                objects.push(Object {
                    kind: ObjectKind::View,
                    name,
                    create: col(&row, 1),
                    sql_mode: None,
                    character_set_client: row.get(2).cloned().flatten(),
                    collation_connection: row.get(3).cloned().flatten(),
                    table: None,
                    time_zone: None,
                });
            }
            "SEQUENCE" => {
                let row = show(s, &format!("SHOW CREATE SEQUENCE {q}"), "SELECT")?;
                let next = s
                    .one(&format!("SELECT next_not_cached_value FROM {q}"))?
                    .unwrap_or_default();
                sequences.push(Sequence {
                    name,
                    create: col(&row, 1),
                    next,
                });
            }
            _ => {
                let row = show(s, &format!("SHOW CREATE TABLE {q}"), "SELECT")?;
                let cols = columns.remove(&name).unwrap_or_default();
                let key = keys.remove(&name).unwrap_or_default();
                let num = |i: usize| col(&r, i).parse().unwrap_or(0);
                tables.push(Table {
                    name,
                    create: col(&row, 1),
                    engine: col(&r, 2),
                    columns: cols,
                    key,
                    rows_estimate: num(3),
                    avg_row_length: num(4),
                    data_length: num(5),
                });
            }
        }
    }
    let whole = only.is_none();
    let table_names: Vec<String> = tables.iter().map(|t| t.name.clone()).collect();
    for r in s.texts(&format!(
        "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS \
         WHERE TRIGGER_SCHEMA = {lit} ORDER BY EVENT_OBJECT_TABLE, ACTION_ORDER"
    ))? {
        let (name, table) = (col(&r, 0), col(&r, 1));
        if !table_names.contains(&table) {
            continue;
        }
        let row = show(
            s,
            &format!("SHOW CREATE TRIGGER {}", qualified(db, &name)),
            "TRIGGER",
        )?;
        objects.push(Object {
            kind: ObjectKind::Trigger,
            name,
            create: col(&row, 2),
            sql_mode: row.get(1).cloned().flatten(),
            character_set_client: row.get(3).cloned().flatten(),
            collation_connection: row.get(4).cloned().flatten(),
            table: Some(table),
            time_zone: None,
        });
    }
    if whole {
        for r in s.texts(&format!(
            "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES \
             WHERE ROUTINE_SCHEMA = {lit} AND ROUTINE_TYPE IN ('PROCEDURE', 'FUNCTION') ORDER BY ROUTINE_TYPE, ROUTINE_NAME"
        ))? {
            let (name, kind) = (col(&r, 0), col(&r, 1));
            let kind = if kind == "FUNCTION" {
                ObjectKind::Function
            } else {
                ObjectKind::Procedure
            };
            let row = show(
                s,
                &format!("SHOW CREATE {} {}", kind.word(), qualified(db, &name)),
                "SELECT on mysql.proc",
            )?;
            let Some(create) = row.get(2).cloned().flatten() else {
                return Err(s.error(format!(
                    "the body of {} {db}.{name} is hidden from this user: grant it SELECT on mysql.proc (MariaDB) or SHOW_ROUTINE (MySQL), or leave the database out",
                    kind.word().to_lowercase()
                )));
            };
            objects.push(Object {
                kind,
                name,
                create,
                sql_mode: row.get(1).cloned().flatten(),
                character_set_client: row.get(3).cloned().flatten(),
                collation_connection: row.get(4).cloned().flatten(),
                table: None,
                time_zone: None,
            });
        }
        for r in s.texts(&format!(
            "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = {lit} ORDER BY EVENT_NAME"
        ))? {
            let name = col(&r, 0);
            let row = show(
                s,
                &format!("SHOW CREATE EVENT {}", qualified(db, &name)),
                "EVENT",
            )?;
            objects.push(Object {
                kind: ObjectKind::Event,
                name,
                create: col(&row, 3),
                sql_mode: row.get(1).cloned().flatten(),
                character_set_client: row.get(4).cloned().flatten(),
                collation_connection: row.get(5).cloned().flatten(),
                table: None,
                time_zone: row.get(2).cloned().flatten(),
            });
        }
    }
    Ok(Database {
        name: db.to_string(),
        create,
        tables,
        objects,
        sequences,
        whole,
    })
}

/// The one row of a `SHOW CREATE`; a refusal names the privilege it needs.
fn show(s: &mut Session, sql: &str, privilege: &str) -> Result<Vec<Option<String>>> {
    match s.texts(sql) {
        Ok(rows) => Ok(rows.into_iter().next().unwrap_or_default()),
        Err(Error::Mysql {
            code: Some(c),
            reason,
            ..
        }) if [
            code::TABLE_ACCESS_DENIED,
            code::DB_ACCESS_DENIED,
            code::SPECIFIC_ACCESS_DENIED,
            1143,
            1370,
        ]
        .contains(&c) =>
        {
            Err(s.error(format!(
                "{reason}; a backup needs the {privilege} privilege for it: grant it, or leave the object out (--exclude-tables)"
            )))
        }
        Err(e) => Err(e),
    }
}

fn read_users(s: &mut Session) -> Result<Vec<User>> {
    let sql = if s.flavor == Flavor::Mariadb {
        "SELECT User, Host FROM mysql.user WHERE is_role = 'N' ORDER BY User, Host"
    } else {
        "SELECT User, Host FROM mysql.user ORDER BY User, Host"
    };
    let mut users = Vec::new();
    for r in s.texts(sql)? {
        let (u, h) = (col(&r, 0), col(&r, 1));
        if u.is_empty()
            || matches!(
                u.as_str(),
                "root" | "mariadb.sys" | "mysql.sys" | "mysql.session" | "mysql.infoschema"
            )
        {
            continue;
        }
        let name = format!("{}@{}", literal(&u), literal(&h));
        let create = s
            .one(&format!("SHOW CREATE USER {name}"))?
            .unwrap_or_default();
        let grants = s
            .texts(&format!("SHOW GRANTS FOR {name}"))?
            .into_iter()
            .map(|r| col(&r, 0))
            .collect();
        users.push(User {
            name,
            create,
            grants,
        });
    }
    Ok(users)
}
