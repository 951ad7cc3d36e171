//! Whether two servers hold the same rows: a primary and its replica, or a
//! database and a restored copy of it.
//!
//! **Chunks.** Each table is cut into ranges of its primary key on the
//! source (`ORDER BY key LIMIT 1 OFFSET n` walks the key, `n` rows a
//! chunk; the first chunk has no lower bound, the last no upper one, so
//! rows the target has outside the source's keys land in a chunk too).
//! Both servers compute, for the same range, the row count and the sum of
//! a 64-bit hash of every row: the first 16 hex digits of `MD5` over the
//! row's columns, each written as its length, `:`, and its bytes
//! (`CAST(… AS BINARY)`; a FLOAT widened to DOUBLE first, which prints
//! every bit), NULL as `N`. So NULL and the empty string differ, a value
//! moved to the next column differs, and bytes differ even where a
//! collation calls them equal. A sum, unlike an XOR, also counts rows that
//! appear twice. A table without a primary key is one chunk.
//!
//! **Rows.** A chunk whose sums differ is read again row by row on both
//! sides (key values and row hash), and its rows are sorted into missing
//! on the target, only on the target, and different, by key.
//!
//! **A consistent point while the source writes.** When the target
//! replicates from the source (its replication status names the source's
//! server id), the source is read at a consistent snapshot P whose GTID
//! (or binary log position) is known, the target waits until it has
//! applied that position (`MASTER_GTID_WAIT`, `WAIT_FOR_EXECUTED_GTID_SET`,
//! `MASTER_POS_WAIT`) and is read at a snapshot R opened right after: R
//! holds everything up to P and perhaps a little more. A chunk whose sums
//! differ is read again at a snapshot P' of the source opened after R, so
//! P ≤ R ≤ P' and, replicas applying transactions in order, R is the
//! source at some point between the two. If the target's chunk is the
//! source's at P', the source merely moved on. Otherwise each row is
//! judged: equal if the target has it as the source had it at P or at P';
//! different for sure if the source had it alike at P and at P' and the
//! target has it otherwise; unsettled if the source changed it between
//! P and P' and the target has neither version. Unsettled rows are judged
//! again at new points P ≤ R ≤ P' a few times; a row that never holds
//! still is reported as unsettled, never as equal. Rows, not chunks, are
//! judged, so a table whose end keeps growing settles too. Without
//! replication between them, each server is read at its own snapshot and
//! every difference is real.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql::Value;
use serde::Serialize;

use super::backend::{open_snapshot, Consistency};
use super::config::MysqlSource;
use super::core::{code, literal, qualified, quote, sql_error, text, Flavor, Result, Session};
use super::encode::{self, Kind};
use super::schema::{Column, Selection, SYSTEM_DATABASES};
use crate::{Error, ErrorKind};

/// How many times a chunk the source keeps changing is compared again.
const ROUNDS: u32 = 8;
/// A table without a primary key is listed row by row only up to this
/// many rows (its rows are held in memory to be matched).
const KEYLESS_ROWS: u64 = 2_000_000;

/// What to compare, and how.
#[derive(Clone)]
pub struct CompareOptions {
    /// The primary, or the original.
    pub source: MysqlSource,
    /// The replica, or the copy.
    pub target: MysqlSource,
    /// Databases and tables; nothing selected: every database but the
    /// servers' own, on either side.
    pub selection: Selection,
    /// Tables compared at once (a connection to each server each).
    pub threads: usize,
    /// Rows per chunk.
    pub chunk_rows: u64,
    /// Rows listed per table.
    pub max_rows: usize,
    /// How long the target may take to reach the source's position.
    pub wait: Duration,
    /// Tripped to stop between chunks.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl CompareOptions {
    /// Rows a chunk holds unless asked otherwise.
    pub const CHUNK_ROWS: u64 = 1000;
    /// Rows listed per table unless asked otherwise.
    pub const MAX_ROWS: usize = 20;
    /// How long the target may take to reach the source's position unless
    /// asked otherwise.
    pub const WAIT: Duration = Duration::from_secs(60);

    pub fn new(source: MysqlSource, target: MysqlSource) -> CompareOptions {
        CompareOptions {
            source,
            target,
            selection: Selection::default(),
            threads: 1,
            chunk_rows: Self::CHUNK_ROWS,
            max_rows: Self::MAX_ROWS,
            wait: Self::WAIT,
            cancel: None,
        }
    }

    fn check_cancel(&self, label: &str) -> Result<()> {
        if self
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
        {
            return Err(Error::Mysql {
                server: label.to_string(),
                reason: "the comparison was cancelled before it finished".into(),
                kind: ErrorKind::Temporary,
                code: None,
            });
        }
        Ok(())
    }
}

/// How the two servers' points were chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The target replicates from the source: read once it had applied
    /// the source's point, differences rechecked.
    Replica,
    /// Each read at its own snapshot.
    Direct,
}

/// What a comparison found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub source: String,
    pub target: String,
    pub mode: Mode,
    /// The source's position the target was read at (replica mode).
    pub point: Option<String>,
    /// Tables whose rows were compared.
    pub tables: u64,
    pub chunks: u64,
    /// Rows the source holds in the compared tables.
    pub rows: u64,
    /// Chunks read again because the source changed them meanwhile.
    pub rechecked: u64,
    pub differences: Vec<TableDifference>,
    pub seconds: f64,
}

impl Report {
    pub fn identical(&self) -> bool {
        self.differences.is_empty()
    }

    /// One line for a person: how the servers were read.
    pub fn describe(&self) -> String {
        match (self.mode, &self.point) {
            (Mode::Replica, Some(p)) => format!(
                "the target replicates from the source: read once it had applied the source's position {p}"
            ),
            (Mode::Replica, None) => {
                "the target replicates from the source: read once it had applied the source's position".into()
            }
            (Mode::Direct, _) => {
                "the target does not replicate from the source: each read at its own snapshot".into()
            }
        }
    }
}

/// How a table differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    OnlyOnSource,
    OnlyOnTarget,
    /// Columns, their types or collations, or the primary key differ: rows
    /// are not compared.
    Definition,
    Rows,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableDifference {
    pub database: String,
    pub table: String,
    pub problem: Problem,
    /// For a definition: what differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The primary key's columns ("" for a table without one).
    pub key: Vec<String>,
    pub chunks: Vec<ChunkDifference>,
    pub missing_on_target: u64,
    pub only_on_target: u64,
    pub different: u64,
    /// The first rows that differ, up to the limit.
    pub rows: Vec<RowDifference>,
    /// Rows that differ but are not listed.
    pub rows_not_listed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChunkDifference {
    /// The key range ("`id` >= 51 AND `id` < 101", "all rows").
    pub range: String,
    pub source_rows: u64,
    pub target_rows: u64,
    /// False when the source kept changing some of the chunk's rows at
    /// every try: those are not proven different, nor equal.
    pub settled: bool,
    /// How many rows of the chunk stayed unsettled.
    pub unsettled_rows: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    MissingOnTarget,
    OnlyOnTarget,
    Different,
}

#[derive(Debug, Clone, Serialize)]
pub struct RowDifference {
    pub kind: RowKind,
    /// The primary key ("`id`=5", "`a`=1, `b`='x'"), or for a table
    /// without one, the row's values.
    pub key: String,
}

/// A table's definition, as far as comparing its rows goes.
#[derive(Debug, Clone, PartialEq)]
struct Def {
    columns: Vec<ColDef>,
    key: Vec<String>,
    rows_estimate: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct ColDef {
    name: String,
    data_type: String,
    column_type: String,
    collation: Option<String>,
    generated: bool,
}

impl Def {
    fn same_as(&self, other: &Def) -> bool {
        self.columns == other.columns && self.key == other.key
    }

    /// The columns whose values are compared (generated ones follow).
    fn stored(&self) -> Vec<&ColDef> {
        self.columns.iter().filter(|c| !c.generated).collect()
    }

    fn kinds(&self) -> Vec<Kind> {
        self.key
            .iter()
            .map(|k| {
                let c = self.columns.iter().find(|c| &c.name == k);
                Kind::of(&Column {
                    name: k.clone(),
                    data_type: c.map(|c| c.data_type.clone()).unwrap_or_default(),
                    generated: false,
                })
            })
            .collect()
    }
}

/// What differs between two definitions, in a few words.
fn describe_difference(s: &Def, t: &Def) -> String {
    fn names(d: &Def) -> Vec<&str> {
        d.columns.iter().map(|c| c.name.as_str()).collect()
    }
    if names(s) != names(t) {
        return format!(
            "columns differ: source ({}), target ({})",
            names(s).join(", "),
            names(t).join(", ")
        );
    }
    for (a, b) in s.columns.iter().zip(&t.columns) {
        if a != b {
            let show = |c: &ColDef| {
                let mut x = c.column_type.clone();
                if let Some(co) = &c.collation {
                    x.push_str(&format!(" COLLATE {co}"));
                }
                if c.generated {
                    x.push_str(" (generated)");
                }
                x
            };
            return format!(
                "column {} differs: source {}, target {}",
                quote(&a.name),
                show(a),
                show(b)
            );
        }
    }
    format!(
        "primary keys differ: source ({}), target ({})",
        s.key.join(", "),
        t.key.join(", ")
    )
}

/// `int(11)` and `int` are the same type (MySQL 8 no longer shows widths).
fn normalize_type(column_type: &str, data_type: &str) -> String {
    let t = column_type.to_ascii_lowercase();
    if matches!(
        data_type,
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint"
    ) {
        if let (Some(open), Some(close)) = (t.find('('), t.find(')')) {
            if open < close && t[open + 1..close].bytes().all(|b| b.is_ascii_digit()) {
                return format!("{}{}", &t[..open], &t[close + 1..]);
            }
        }
    }
    t
}

fn col(r: &[Option<String>], i: usize) -> String {
    r.get(i).cloned().flatten().unwrap_or_default()
}

/// The tables of `dbs` on one server, by (database, table).
fn read_defs(s: &mut Session, dbs: &[String]) -> Result<BTreeMap<(String, String), Def>> {
    let mut defs = BTreeMap::new();
    if dbs.is_empty() {
        return Ok(defs);
    }
    let list = dbs
        .iter()
        .map(|d| literal(d))
        .collect::<Vec<_>>()
        .join(", ");
    for r in s.texts(&format!(
        "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA IN ({list}) AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')"
    ))? {
        defs.insert(
            (col(&r, 0), col(&r, 1)),
            Def {
                columns: Vec::new(),
                key: Vec::new(),
                rows_estimate: col(&r, 2).parse().unwrap_or(0),
            },
        );
    }
    for r in s.texts(&format!(
        "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, COLLATION_NAME, EXTRA \
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN ({list}) \
         ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION"
    ))? {
        if let Some(d) = defs.get_mut(&(col(&r, 0), col(&r, 1))) {
            let data_type = col(&r, 3).to_ascii_lowercase();
            let extra = col(&r, 6).to_ascii_uppercase();
            d.columns.push(ColDef {
                name: col(&r, 2),
                column_type: normalize_type(&col(&r, 4), &data_type),
                data_type,
                collation: r.get(5).cloned().flatten(),
                generated: extra.contains("GENERATED") || extra.contains("PERSISTENT"),
            });
        }
    }
    for r in s.texts(&format!(
        "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA IN ({list}) AND INDEX_NAME = 'PRIMARY' \
         ORDER BY TABLE_SCHEMA, TABLE_NAME, SEQ_IN_INDEX"
    ))? {
        if let Some(d) = defs.get_mut(&(col(&r, 0), col(&r, 1))) {
            d.key.push(col(&r, 2));
        }
    }
    Ok(defs)
}

fn databases(s: &mut Session) -> Result<BTreeSet<String>> {
    Ok(
        s.texts("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")?
            .into_iter()
            .map(|r| col(&r, 0))
            .collect(),
    )
}

/// A table both servers have alike, to compare row by row.
#[derive(Clone)]
struct Job {
    db: String,
    table: String,
    def: Def,
}

impl Job {
    fn name(&self) -> String {
        qualified(&self.db, &self.table)
    }
}

/// The tables to compare, and the differences already found in the
/// definitions.
fn plan_tables(
    src: &mut Session,
    dst: &mut Session,
    sel: &Selection,
) -> Result<(Vec<Job>, Vec<TableDifference>)> {
    let on_src = databases(src)?;
    let on_dst = databases(dst)?;
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    if sel.databases.is_empty() && sel.tables.is_empty() {
        wanted.extend(
            on_src
                .iter()
                .chain(&on_dst)
                .filter(|d| !SYSTEM_DATABASES.contains(&d.as_str()))
                .cloned(),
        );
    } else {
        wanted.extend(sel.databases.iter().cloned());
        wanted.extend(sel.tables.iter().map(|(d, _)| d.clone()));
    }
    let unknown: Vec<&String> = wanted
        .iter()
        .filter(|d| !on_src.contains(*d) && !on_dst.contains(*d))
        .collect();
    if !unknown.is_empty() {
        return Err(Error::Unsupported(format!(
            "neither server has database {}: check the names (`SHOW DATABASES`)",
            unknown
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let dbs: Vec<String> = wanted.into_iter().collect();
    let s_defs = read_defs(src, &dbs)?;
    let t_defs = read_defs(dst, &dbs)?;
    let whole = |db: &str| {
        (sel.databases.is_empty() && sel.tables.is_empty()) || sel.databases.iter().any(|d| d == db)
    };
    let picked = |db: &str, t: &str| {
        (whole(db) || sel.tables.iter().any(|(d, n)| d == db && n == t))
            && !sel.exclude.iter().any(|(d, n)| d == db && n == t)
    };
    let absent: Vec<String> = sel
        .tables
        .iter()
        .filter(|k| !s_defs.contains_key(*k) && !t_defs.contains_key(*k))
        .map(|(d, t)| format!("{d}.{t}"))
        .collect();
    if !absent.is_empty() {
        return Err(Error::Unsupported(format!(
            "neither server has table {}: check the names (`SHOW TABLES`)",
            absent.join(", ")
        )));
    }
    let names: BTreeSet<&(String, String)> = s_defs.keys().chain(t_defs.keys()).collect();
    let mut jobs = Vec::new();
    let mut diffs = Vec::new();
    for k in names {
        if !picked(&k.0, &k.1) {
            continue;
        }
        let diff = |problem, detail: Option<String>, key: Vec<String>| TableDifference {
            database: k.0.clone(),
            table: k.1.clone(),
            problem,
            detail,
            key,
            chunks: Vec::new(),
            missing_on_target: 0,
            only_on_target: 0,
            different: 0,
            rows: Vec::new(),
            rows_not_listed: 0,
        };
        match (s_defs.get(k), t_defs.get(k)) {
            (Some(s), Some(t)) if s.same_as(t) => jobs.push(Job {
                db: k.0.clone(),
                table: k.1.clone(),
                def: s.clone(),
            }),
            (Some(s), Some(t)) => diffs.push(diff(
                Problem::Definition,
                Some(describe_difference(s, t)),
                s.key.clone(),
            )),
            (Some(s), None) => diffs.push(diff(Problem::OnlyOnSource, None, s.key.clone())),
            (None, Some(t)) => diffs.push(diff(Problem::OnlyOnTarget, None, t.key.clone())),
            (None, None) => {}
        }
    }
    // The largest first, so the last table to finish is a small one.
    jobs.sort_by_key(|j| std::cmp::Reverse(j.def.rows_estimate));
    Ok((jobs, diffs))
}

/// One key range: from `lo` (inclusive) to `hi` (exclusive); None: open.
#[derive(Debug, Clone, Default)]
struct Chunk {
    lo: Option<Vec<Value>>,
    hi: Option<Vec<Value>>,
}

/// `k1 > ? OR (k1 = ? AND (k2 > ? OR (… AND kn >= ?)))` for the bound `v`
/// (`>=` for a lower bound, `<` for an upper one): the form every
/// optimizer turns into one range of the primary key.
fn bound(key: &[String], v: &[Value], lower: bool, params: &mut Vec<Value>) -> String {
    let (strict, last) = if lower { (">", ">=") } else { ("<", "<") };
    let k = quote(&key[0]);
    if key.len() == 1 {
        params.push(v[0].clone());
        return format!("{k} {last} ?");
    }
    params.push(v[0].clone());
    params.push(v[0].clone());
    let rest = bound(&key[1..], &v[1..], lower, params);
    format!("({k} {strict} ? OR ({k} = ? AND ({rest})))")
}

impl Chunk {
    /// ` WHERE …` (or nothing) with its parameters.
    fn condition(&self, key: &[String]) -> (String, Vec<Value>) {
        let mut params = Vec::new();
        let mut conds = Vec::new();
        if let Some(lo) = &self.lo {
            conds.push(bound(key, lo, true, &mut params));
        }
        if let Some(hi) = &self.hi {
            conds.push(bound(key, hi, false, &mut params));
        }
        if conds.is_empty() {
            (String::new(), params)
        } else {
            (format!(" WHERE {}", conds.join(" AND ")), params)
        }
    }

    /// For people: "`id` >= 51 AND `id` < 101", "all rows".
    fn describe(&self, key: &[String], kinds: &[Kind]) -> String {
        let names = if key.len() == 1 {
            quote(&key[0])
        } else {
            format!(
                "({})",
                key.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ")
            )
        };
        let values = |v: &[Value]| {
            let shown: Vec<String> = v.iter().zip(kinds).map(|(x, k)| show(x, *k)).collect();
            if shown.len() == 1 {
                shown[0].clone()
            } else {
                format!("({})", shown.join(", "))
            }
        };
        match (&self.lo, &self.hi) {
            (None, None) => "all rows".into(),
            (Some(lo), None) => format!("{names} >= {}", values(lo)),
            (None, Some(hi)) => format!("{names} < {}", values(hi)),
            (Some(lo), Some(hi)) => {
                format!("{names} >= {} AND {names} < {}", values(lo), values(hi))
            }
        }
    }
}

/// A value as SQL would write it.
fn show(v: &Value, kind: Kind) -> String {
    match v {
        Value::NULL => "NULL".into(),
        Value::Bytes(b) if kind == Kind::Bit => format!("b'{}'", bits(b)),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) if !s.chars().any(char::is_control) => literal(s),
            _ => {
                let mut h = String::from("0x");
                for x in b {
                    h.push_str(&format!("{x:02x}"));
                }
                h
            }
        },
        Value::Int(_) | Value::UInt(_) | Value::Float(_) | Value::Double(_) => {
            let mut out = Vec::new();
            encode::field(&mut out, v, kind);
            String::from_utf8_lossy(&out).into_owned()
        }
        Value::Date(..) | Value::Time(..) => {
            let mut out = Vec::new();
            encode::field(&mut out, v, kind);
            format!("'{}'", String::from_utf8_lossy(&out))
        }
    }
}

fn bits(b: &[u8]) -> String {
    let n = b.iter().fold(0u64, |n, &x| (n << 8) | x as u64);
    format!("{n:b}")
}

/// The expression of a row's hash: MD5 over each stored column as
/// `LENGTH:BYTES`, NULL as `N` (see the module's docs).
fn row_hash(def: &Def) -> String {
    let parts: Vec<String> = def
        .stored()
        .iter()
        .map(|c| {
            let q = quote(&c.name);
            let v = if c.data_type == "float" {
                format!("CAST(CAST({q} AS DOUBLE) AS BINARY)")
            } else {
                format!("CAST({q} AS BINARY)")
            };
            format!("IFNULL(CONCAT(LENGTH({v}), ':', {v}), 'N')")
        })
        .collect();
    format!("MD5(CONCAT({}))", parts.join(", "))
}

fn from_table(job: &Job) -> String {
    if job.def.key.is_empty() {
        job.name()
    } else {
        format!("{} FORCE INDEX (PRIMARY)", job.name())
    }
}

/// A chunk's row count and hash sum on one server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Sum {
    rows: u64,
    hash: String,
}

fn exec(s: &mut Session, sql: &str, params: Vec<Value>, what: &str) -> Result<Vec<Vec<Value>>> {
    let rows: Vec<mysql::Row> = s
        .conn
        .exec(sql, params)
        .map_err(|e| sql_error(&s.label, what, e))?;
    Ok(rows.into_iter().map(|r| r.unwrap()).collect())
}

fn checksum(s: &mut Session, job: &Job, chunk: &Chunk) -> Result<Sum> {
    let (cond, params) = chunk.condition(&job.def.key);
    let sql = format!(
        "SELECT COUNT(*), COALESCE(SUM(CAST(CONV(LEFT({}, 16), 16, 10) AS UNSIGNED)), 0) FROM {}{cond}",
        row_hash(&job.def),
        from_table(job)
    );
    let what = format!("summing rows of {}.{}", job.db, job.table);
    let row = exec(s, &sql, params, &what)?
        .into_iter()
        .next()
        .unwrap_or_default();
    let mut it = row.into_iter().map(text);
    Ok(Sum {
        rows: it
            .next()
            .flatten()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        hash: it.next().flatten().unwrap_or_default(),
    })
}

/// The sums of a chunk on both servers, read at once.
fn both(src: &mut Session, dst: &mut Session, job: &Job, chunk: &Chunk) -> Result<(Sum, Sum)> {
    std::thread::scope(|sc| {
        let t = sc.spawn(|| checksum(dst, job, chunk));
        let a = checksum(src, job, chunk);
        let b = t.join().expect("a checksum thread panicked");
        Ok((a?, b?))
    })
}

/// The key of the first row of the chunk after the one starting at `lo`.
fn next_bound(
    s: &mut Session,
    job: &Job,
    lo: &Option<Vec<Value>>,
    n: u64,
) -> Result<Option<Vec<Value>>> {
    let key = &job.def.key;
    let chunk = Chunk {
        lo: lo.clone(),
        hi: None,
    };
    let (cond, params) = chunk.condition(key);
    let list = key.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "SELECT {list} FROM {}{cond} ORDER BY {list} LIMIT 1 OFFSET {n}",
        from_table(job)
    );
    let what = format!("cutting {}.{} into chunks", job.db, job.table);
    Ok(exec(s, &sql, params, &what)?.into_iter().next())
}

/// A chunk whose sums differed at the first reading.
#[derive(Clone)]
struct Suspect {
    job: usize,
    chunk: Chunk,
    source: Sum,
    target: Sum,
}

/// What a worker found in one table.
struct Outcome {
    chunks: u64,
    rows: u64,
    suspects: Vec<Suspect>,
}

fn compare_table(
    opts: &CompareOptions,
    src: &mut Session,
    dst: &mut Session,
    jobs: &[Job],
    i: usize,
) -> Result<Outcome> {
    let job = &jobs[i];
    let mut out = Outcome {
        chunks: 0,
        rows: 0,
        suspects: Vec::new(),
    };
    let mut lo: Option<Vec<Value>> = None;
    loop {
        opts.check_cancel(&src.label)?;
        let hi = if job.def.key.is_empty() {
            None
        } else {
            next_bound(src, job, &lo, opts.chunk_rows.max(1))?
        };
        let chunk = Chunk {
            lo: lo.clone(),
            hi: hi.clone(),
        };
        let (a, b) = both(src, dst, job, &chunk)?;
        out.chunks += 1;
        out.rows += a.rows;
        if a != b {
            out.suspects.push(Suspect {
                job: i,
                chunk,
                source: a,
                target: b,
            });
        }
        match hi {
            Some(h) => lo = Some(h),
            None => return Ok(out),
        }
    }
}

/// Whether `t` replicates from `s`: its replication status names the
/// server id of `s`.
fn replicates_from(s: &mut Session, t: &mut Session) -> Result<bool> {
    let id = s.one("SELECT @@server_id")?.unwrap_or_default();
    let mut last = None;
    for sql in ["SHOW REPLICA STATUS", "SHOW SLAVE STATUS"] {
        match t.conn.query::<mysql::Row, _>(sql) {
            Ok(rows) => {
                return Ok(rows.iter().any(|r| {
                    let cols = r.columns_ref();
                    cols.iter().enumerate().any(|(i, c)| {
                        matches!(&*c.name_str(), "Master_Server_Id" | "Source_Server_Id")
                            && r.as_ref(i).cloned().and_then(text).as_deref() == Some(id.as_str())
                    })
                }))
            }
            Err(mysql::Error::MySqlError(m))
                if [code::SPECIFIC_ACCESS_DENIED, code::ACCESS_DENIED].contains(&m.code) =>
            {
                return Err(t.error(format!(
                    "cannot read its replication status ({}): grant the user SLAVE MONITOR (MariaDB) or REPLICATION CLIENT (MySQL), so the comparison knows whether to wait for replication",
                    m.message
                )));
            }
            Err(e) => last = Some(e),
        }
    }
    tracing::debug!(
        "{}: no replication status ({}): comparing directly",
        t.label,
        last.map(|e| e.to_string()).unwrap_or_default()
    );
    Ok(false)
}

/// The source's position, for messages.
fn position(c: &Consistency) -> Option<String> {
    match (&c.gtid, &c.binlog_file, c.binlog_position) {
        (Some(g), _, _) if !g.is_empty() => Some(format!("GTID {g}")),
        (_, Some(f), Some(p)) => Some(format!("{f}:{p}")),
        _ => None,
    }
}

/// Waits until `t` has applied the source's point `c`.
fn wait_for(
    opts: &CompareOptions,
    t: &mut Session,
    src_flavor: Flavor,
    c: &Consistency,
) -> Result<()> {
    let deadline = Instant::now() + opts.wait;
    let sql = match (&c.gtid, &c.binlog_file, c.binlog_position) {
        (Some(g), _, _) if !g.is_empty() => {
            if src_flavor == Flavor::Mysql || t.flavor == Flavor::Mysql {
                format!("SELECT WAIT_FOR_EXECUTED_GTID_SET({}, 1) = 0", literal(g))
            } else {
                format!("SELECT MASTER_GTID_WAIT({}, 1) = 0", literal(g))
            }
        }
        (_, Some(f), Some(p)) => format!("SELECT MASTER_POS_WAIT({}, {p}, 1) >= 0", literal(f)),
        _ => {
            return Err(Error::Unsupported(format!(
                "{} writes no binary log, so {} cannot be waited for: compare them while the source takes no writes",
                opts.source.server(),
                t.label
            )))
        }
    };
    loop {
        opts.check_cancel(&t.label)?;
        match t.one(&sql)?.as_deref() {
            Some("1") => return Ok(()),
            Some("0") if Instant::now() < deadline => continue,
            Some("0") => {
                return Err(t.error(format!(
                    "it did not apply the source's position {} within {} s: check that replication runs (SHOW SLAVE STATUS), or allow longer with --wait",
                    position(c).unwrap_or_default(),
                    opts.wait.as_secs()
                )))
            }
            _ => {
                return Err(t.error(
                    "its replication is not running, so it cannot catch up with the source: START SLAVE (START REPLICA) first",
                ))
            }
        }
    }
}

/// A chunk's rows on one server: identity → (value, key values). With a
/// primary key the identity is the key's canonical bytes and the value the
/// row's hash; without one, the identity is the row's hash and the value
/// how many rows have it (and no key values).
type Rows = HashMap<Vec<u8>, (Vec<u8>, Vec<Value>)>;

fn read_rows(s: &mut Session, job: &Job, chunk: &Chunk) -> Result<Rows> {
    if job.def.key.is_empty() {
        return keyless_counts(s, job);
    }
    let key = &job.def.key;
    let kinds = job.def.kinds();
    let (cond, params) = chunk.condition(key);
    let list = key.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "SELECT {list}, {} FROM {}{cond}",
        row_hash(&job.def),
        from_table(job)
    );
    let what = format!("reading rows of {}.{}", job.db, job.table);
    let mut out = HashMap::new();
    for mut r in exec(s, &sql, params, &what)? {
        let hash = match r.pop() {
            Some(Value::Bytes(b)) => b,
            _ => Vec::new(),
        };
        let mut canon = Vec::new();
        for (v, k) in r.iter().zip(&kinds) {
            encode::field(&mut canon, v, *k);
            canon.push(b'\t');
        }
        out.insert(canon, (hash, r));
    }
    Ok(out)
}

/// A key for people: "`a`=1, `b`='x'".
fn show_key(job: &Job, values: &[Value]) -> String {
    values
        .iter()
        .zip(job.def.kinds())
        .zip(&job.def.key)
        .map(|((v, k), name)| format!("{}={}", quote(name), show(v, k)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Key values in about the order a server sorts them: numbers by value,
/// strings by their bytes.
fn cmp_keys(a: &[Value], b: &[Value]) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    fn rank(v: &Value) -> u8 {
        match v {
            Value::NULL => 0,
            Value::Int(_) | Value::UInt(_) | Value::Float(_) | Value::Double(_) => 1,
            Value::Bytes(_) => 2,
            Value::Date(..) => 3,
            Value::Time(..) => 4,
        }
    }
    fn num(v: &Value) -> f64 {
        match v {
            Value::Int(i) => *i as f64,
            Value::UInt(u) => *u as f64,
            Value::Float(f) => *f as f64,
            Value::Double(d) => *d,
            _ => 0.0,
        }
    }
    for (x, y) in a.iter().zip(b) {
        let o = rank(x).cmp(&rank(y)).then_with(|| match (x, y) {
            (Value::Int(i), Value::Int(j)) => i.cmp(j),
            (Value::UInt(i), Value::UInt(j)) => i.cmp(j),
            (Value::Bytes(i), Value::Bytes(j)) => i.cmp(j),
            (Value::Date(..), Value::Date(..)) | (Value::Time(..), Value::Time(..)) => {
                format!("{x:?}").cmp(&format!("{y:?}"))
            }
            _ => num(x).partial_cmp(&num(y)).unwrap_or(Ordering::Equal),
        });
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

/// Row hash → how many rows have it, for a table without a primary key.
fn keyless_counts(s: &mut Session, job: &Job) -> Result<Rows> {
    let sql = format!("SELECT {} FROM {}", row_hash(&job.def), job.name());
    let what = format!("reading rows of {}.{}", job.db, job.table);
    let label = s.label.clone();
    let mut counts: HashMap<Vec<u8>, u64> = HashMap::new();
    let result = s
        .conn
        .query_iter(sql)
        .map_err(|e| sql_error(&label, &what, e))?;
    for r in result {
        let r = r.map_err(|e| sql_error(&label, &what, e))?;
        if let Some(Value::Bytes(h)) = r.unwrap().into_iter().next() {
            *counts.entry(h).or_insert(0) += 1;
        }
    }
    Ok(counts
        .into_iter()
        .map(|(h, n)| (h, (n.to_string().into_bytes(), Vec::new())))
        .collect())
}

fn count(v: Option<&Vec<u8>>) -> u64 {
    v.and_then(|b| std::str::from_utf8(b).ok()?.parse().ok())
        .unwrap_or(0)
}

fn rows_in(rows: &Rows, keyed: bool) -> u64 {
    if keyed {
        rows.len() as u64
    } else {
        rows.values().map(|(n, _)| count(Some(n))).sum()
    }
}

/// The values of rows whose hash is in `wanted`, for people, in `wanted`'s
/// order where found.
fn keyless_show(
    s: &mut Session,
    job: &Job,
    wanted: &HashMap<Vec<u8>, usize>,
) -> Result<HashMap<usize, String>> {
    let mut out = HashMap::new();
    if wanted.is_empty() {
        return Ok(out);
    }
    let cols = job.def.stored();
    let list = cols
        .iter()
        .map(|c| quote(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("SELECT {}, {list} FROM {}", row_hash(&job.def), job.name());
    let what = format!("reading rows of {}.{}", job.db, job.table);
    let label = s.label.clone();
    let kinds: Vec<Kind> = cols
        .iter()
        .map(|c| {
            Kind::of(&Column {
                name: c.name.clone(),
                data_type: c.data_type.clone(),
                generated: false,
            })
        })
        .collect();
    let result = s
        .conn
        .exec_iter(sql, ())
        .map_err(|e| sql_error(&label, &what, e))?;
    for r in result {
        let mut v = r.map_err(|e| sql_error(&label, &what, e))?.unwrap();
        let Value::Bytes(h) = v.remove(0) else {
            continue;
        };
        if let Some(&i) = wanted.get(&h) {
            if out.contains_key(&i) {
                continue;
            }
            let shown: Vec<String> = v
                .iter()
                .zip(&cols)
                .zip(&kinds)
                .map(|((x, c), k)| format!("{}={}", quote(&c.name), show(x, *k)))
                .collect();
            out.insert(i, format!("row ({})", shown.join(", ")));
            if out.len() == wanted.len() {
                break;
            }
        }
    }
    Ok(out)
}

/// A row that differs for sure: its identity, how, and by how many rows.
struct Real {
    id: Vec<u8>,
    kind: RowKind,
    n: u64,
}

/// Judges the rows of one chunk (only the identities in `open`, if
/// given): the source at P (`s`), the target at R (`t`), and the source at
/// P' (`s2`), with P ≤ R ≤ P'. A row is equal when the target has it as
/// the source had it at P or at P'; different for sure when the source
/// had it alike at P and P' and the target has it otherwise; unsettled
/// otherwise (the source changed it meanwhile, and the target has neither
/// version). Direct mode passes `s` as `s2`.
fn judge(
    open: Option<&BTreeSet<Vec<u8>>>,
    s: &Rows,
    t: &Rows,
    s2: &Rows,
    keyed: bool,
) -> (Vec<Real>, BTreeSet<Vec<u8>>) {
    let ids: BTreeSet<&Vec<u8>> = match open {
        Some(o) => o.iter().collect(),
        None => s.keys().chain(t.keys()).chain(s2.keys()).collect(),
    };
    let mut real = Vec::new();
    let mut unsettled = BTreeSet::new();
    for id in ids {
        let (vs, vt, vs2) = (
            s.get(id).map(|x| &x.0),
            t.get(id).map(|x| &x.0),
            s2.get(id).map(|x| &x.0),
        );
        if vt == vs || vt == vs2 {
            continue;
        }
        if vs != vs2 {
            unsettled.insert(id.clone());
            continue;
        }
        let (kind, n) = if keyed {
            match (vs, vt) {
                (None, _) => (RowKind::OnlyOnTarget, 1),
                (_, None) => (RowKind::MissingOnTarget, 1),
                _ => (RowKind::Different, 1),
            }
        } else {
            let (a, b) = (count(vs), count(vt));
            if a > b {
                (RowKind::MissingOnTarget, a - b)
            } else {
                (RowKind::OnlyOnTarget, b - a)
            }
        };
        real.push(Real {
            id: id.clone(),
            kind,
            n,
        });
    }
    (real, unsettled)
}

fn rows_difference(job: &Job) -> TableDifference {
    TableDifference {
        database: job.db.clone(),
        table: job.table.clone(),
        problem: Problem::Rows,
        detail: None,
        key: job.def.key.clone(),
        chunks: Vec::new(),
        missing_on_target: 0,
        only_on_target: 0,
        different: 0,
        rows: Vec::new(),
        rows_not_listed: 0,
    }
}

/// A chunk whose rows are still being judged.
struct Pending {
    s: Suspect,
    /// The identities not yet judged; None before the first judging.
    open: Option<BTreeSet<Vec<u8>>>,
    /// Its entry in the table's difference, once it has one.
    entry: Option<usize>,
    /// Rows on the source and the target at the last reading.
    rows: (u64, u64),
}

impl Pending {
    fn new(s: Suspect) -> Pending {
        let rows = (s.source.rows, s.target.rows);
        Pending {
            s,
            open: None,
            entry: None,
            rows,
        }
    }

    /// The chunk's entry in its table's difference, made on first use.
    fn entry<'a>(
        &mut self,
        jobs: &[Job],
        found: &'a mut BTreeMap<usize, TableDifference>,
        rows: (u64, u64),
    ) -> &'a mut ChunkDifference {
        let job = &jobs[self.s.job];
        let d = found
            .entry(self.s.job)
            .or_insert_with(|| rows_difference(job));
        let i = *self.entry.get_or_insert_with(|| {
            d.chunks.push(ChunkDifference {
                range: self.s.chunk.describe(&job.def.key, &job.def.kinds()),
                source_rows: 0,
                target_rows: 0,
                settled: true,
                unsettled_rows: 0,
            });
            d.chunks.len() - 1
        });
        let c = &mut d.chunks[i];
        (c.source_rows, c.target_rows) = rows;
        c
    }
}

/// Reads a pending chunk's rows at the three points and records what is
/// different for sure; keeps the unsettled rows open. `pa` reads P' (the
/// same session as `p` in direct mode).
#[allow(clippy::too_many_arguments)]
fn settle(
    opts: &CompareOptions,
    jobs: &[Job],
    pend: &mut Pending,
    p: &mut Session,
    r: &mut Session,
    pa: Option<&mut Session>,
    found: &mut BTreeMap<usize, TableDifference>,
) -> Result<()> {
    let job = &jobs[pend.s.job];
    let keyed = !job.def.key.is_empty();
    if !keyed && pend.s.source.rows + pend.s.target.rows > KEYLESS_ROWS {
        // Too many rows to match in memory: the sums speak for the table.
        pend.entry(jobs, found, (pend.s.source.rows, pend.s.target.rows));
        pend.open = Some(BTreeSet::new());
        return Ok(());
    }
    let s = read_rows(p, job, &pend.s.chunk)?;
    let t = read_rows(r, job, &pend.s.chunk)?;
    let (s2, shower) = match pa {
        Some(pa) => (Some(read_rows(pa, job, &pend.s.chunk)?), pa),
        None => (None, p),
    };
    let after = s2.as_ref().unwrap_or(&s);
    let (mut real, unsettled) = judge(pend.open.as_ref(), &s, &t, after, keyed);
    let rows = (rows_in(after, keyed), rows_in(&t, keyed));
    pend.rows = rows;
    if !real.is_empty() {
        // In key order, for people.
        let values = |x: &Real| after.get(&x.id).or_else(|| t.get(&x.id)).map(|v| &v.1);
        real.sort_by(|a, b| match (values(a), values(b)) {
            (Some(x), Some(y)) if keyed => cmp_keys(x, y),
            _ => (a.kind as u8)
                .cmp(&(b.kind as u8))
                .then_with(|| a.id.cmp(&b.id)),
        });
        let mut shown: HashMap<usize, String> = HashMap::new();
        let room = opts
            .max_rows
            .saturating_sub(found.get(&pend.s.job).map_or(0, |d| d.rows.len()));
        if keyed {
            for (i, x) in real.iter().enumerate().take(room) {
                shown.insert(i, values(x).map(|v| show_key(job, v)).unwrap_or_default());
            }
        } else {
            let mut on_src = HashMap::new();
            let mut on_dst = HashMap::new();
            for (i, x) in real.iter().enumerate().take(room) {
                match x.kind {
                    RowKind::OnlyOnTarget => on_dst.insert(x.id.clone(), i),
                    _ => on_src.insert(x.id.clone(), i),
                };
            }
            shown.extend(keyless_show(shower, job, &on_src)?);
            shown.extend(keyless_show(r, job, &on_dst)?);
        }
        pend.entry(jobs, found, rows);
        let d = found.get_mut(&pend.s.job).expect("made by entry");
        for (i, x) in real.iter().enumerate() {
            match x.kind {
                RowKind::MissingOnTarget => d.missing_on_target += x.n,
                RowKind::OnlyOnTarget => d.only_on_target += x.n,
                RowKind::Different => d.different += x.n,
            }
            match shown.remove(&i) {
                Some(key) if d.rows.len() < opts.max_rows => {
                    let key = if x.n > 1 {
                        format!("{key}, {} times", x.n)
                    } else {
                        key
                    };
                    d.rows.push(RowDifference { kind: x.kind, key });
                }
                _ => d.rows_not_listed += x.n,
            }
        }
    } else if pend.entry.is_some() {
        pend.entry(jobs, found, rows);
    }
    pend.open = Some(unsettled);
    Ok(())
}

/// A server's error, saying which side it is.
fn role(e: Error, side: &str) -> Error {
    match e {
        Error::Mysql {
            server,
            reason,
            kind,
            code,
        } => Error::Mysql {
            server: format!("{side} {server}"),
            reason,
            kind,
            code,
        },
        other => other,
    }
}

/// Compares the servers `opts` names.
pub fn compare(opts: &CompareOptions) -> Result<Report> {
    let start = Instant::now();
    let mut sctl = Session::open(&opts.source).map_err(|e| role(e, "source"))?;
    let mut tctl = Session::open(&opts.target).map_err(|e| role(e, "target"))?;
    let (jobs, mut differences) = plan_tables(&mut sctl, &mut tctl, &opts.selection)?;
    let mode = if replicates_from(&mut sctl, &mut tctl)? {
        Mode::Replica
    } else {
        Mode::Direct
    };
    let n = opts.threads.clamp(1, jobs.len().max(1));
    let mut report = Report {
        source: opts.source.url(),
        target: opts.target.url(),
        mode,
        point: None,
        tables: jobs.len() as u64,
        chunks: 0,
        rows: 0,
        rechecked: 0,
        differences: Vec::new(),
        seconds: 0.0,
    };
    let mut suspects = Vec::new();
    if !jobs.is_empty() {
        let p = open_snapshot(&opts.source, n)?;
        if mode == Mode::Replica {
            report.point = position(&p.consistency);
            wait_for(opts, &mut tctl, sctl.flavor, &p.consistency)?;
        }
        let r = open_snapshot(&opts.target, n)?;
        let (mut psess, mut rsess) = (p.sessions, r.sessions);
        let outcomes = run_workers(opts, &jobs, &mut psess, &mut rsess)?;
        for o in outcomes {
            report.chunks += o.chunks;
            report.rows += o.rows;
            suspects.extend(o.suspects);
        }
        suspects.sort_by_key(|s| s.job);
        let mut found: BTreeMap<usize, TableDifference> = BTreeMap::new();
        if mode == Mode::Direct {
            for s in suspects {
                opts.check_cancel(&sctl.label)?;
                let mut pend = Pending::new(s);
                settle(
                    opts,
                    &jobs,
                    &mut pend,
                    &mut psess[0],
                    &mut rsess[0],
                    None,
                    &mut found,
                )?;
            }
        } else {
            report.rechecked = suspects.len() as u64;
            recheck(
                opts,
                &jobs,
                suspects,
                &mut psess[0],
                &mut rsess[0],
                &mut tctl,
                sctl.flavor,
                &mut found,
            )?;
        }
        differences.extend(found.into_values());
    }
    differences.sort_by(|a, b| (&a.database, &a.table).cmp(&(&b.database, &b.table)));
    report.differences = differences;
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

/// Compares the tables on `psess.len()` connections to each server.
fn run_workers(
    opts: &CompareOptions,
    jobs: &[Job],
    psess: &mut [Session],
    rsess: &mut [Session],
) -> Result<Vec<Outcome>> {
    let queue = Mutex::new((0..jobs.len()).collect::<VecDeque<usize>>());
    let failed = AtomicBool::new(false);
    let results: Vec<Result<Vec<Outcome>>> = std::thread::scope(|sc| {
        let handles: Vec<_> = psess
            .iter_mut()
            .zip(rsess.iter_mut())
            .map(|(p, r)| {
                let (queue, failed) = (&queue, &failed);
                sc.spawn(move || -> Result<Vec<Outcome>> {
                    let mut done = Vec::new();
                    loop {
                        if failed.load(Ordering::Relaxed) {
                            return Ok(done);
                        }
                        let Some(i) = queue.lock().expect("queue poisoned").pop_front() else {
                            return Ok(done);
                        };
                        match compare_table(opts, p, r, jobs, i) {
                            Ok(o) => done.push(o),
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                return Err(e);
                            }
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a compare worker panicked"))
            .collect()
    });
    let mut out = Vec::new();
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}

/// Settles the chunks that differed at the first reading, in replica mode
/// (see the module's docs): round 0 reuses the first points P and R; each
/// later round takes new ones and judges only the rows still unsettled.
#[allow(clippy::too_many_arguments)]
fn recheck(
    opts: &CompareOptions,
    jobs: &[Job],
    suspects: Vec<Suspect>,
    p0: &mut Session,
    r0: &mut Session,
    tctl: &mut Session,
    src_flavor: Flavor,
    found: &mut BTreeMap<usize, TableDifference>,
) -> Result<()> {
    let mut open: Vec<Pending> = suspects.into_iter().map(Pending::new).collect();
    for round in 0..=ROUNDS {
        if open.is_empty() {
            return Ok(());
        }
        let mut fresh = None;
        if round > 0 {
            std::thread::sleep(Duration::from_millis(20 * round as u64));
            let p = open_snapshot(&opts.source, 1)?;
            wait_for(opts, tctl, src_flavor, &p.consistency)?;
            let r = open_snapshot(&opts.target, 1)?;
            fresh = Some((p.sessions, r.sessions));
        }
        // P', opened after R.
        let mut after = open_snapshot(&opts.source, 1)?.sessions;
        let pa = &mut after[0];
        let (p, r): (&mut Session, &mut Session) = match &mut fresh {
            Some((p, r)) => (&mut p[0], &mut r[0]),
            None => (&mut *p0, &mut *r0),
        };
        let mut next = Vec::new();
        for mut pend in open {
            opts.check_cancel(&p.label)?;
            if round == 0 {
                // The whole chunk as the target has it at R is the
                // source's at P': the source moved on, nothing differs.
                let c = checksum(pa, &jobs[pend.s.job], &pend.s.chunk)?;
                if c == pend.s.target {
                    continue;
                }
            }
            settle(opts, jobs, &mut pend, p, r, Some(pa), found)?;
            if pend.open.as_ref().is_some_and(|o| !o.is_empty()) {
                next.push(pend);
            }
        }
        open = next;
    }
    for mut pend in open {
        let n = pend.open.as_ref().map_or(0, |o| o.len() as u64);
        let rows = pend.rows;
        let c = pend.entry(jobs, found, rows);
        c.settled = false;
        c.unsettled_rows = n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_cover_one_key_range() {
        let key = vec!["a".to_string(), "b".to_string()];
        let chunk = Chunk {
            lo: Some(vec![Value::Int(1), Value::Bytes(b"x".to_vec())]),
            hi: Some(vec![Value::Int(2), Value::Bytes(b"y".to_vec())]),
        };
        let (cond, params) = chunk.condition(&key);
        assert_eq!(
            cond,
            " WHERE (`a` > ? OR (`a` = ? AND (`b` >= ?))) AND (`a` < ? OR (`a` = ? AND (`b` < ?)))"
        );
        assert_eq!(params.len(), 6);
        assert_eq!(
            chunk.describe(&key, &[Kind::Plain, Kind::Plain]),
            "(`a`, `b`) >= (1, 'x') AND (`a`, `b`) < (2, 'y')"
        );
        let one = Chunk {
            lo: None,
            hi: Some(vec![Value::Int(51)]),
        };
        assert_eq!(one.condition(&key[..1]).0, " WHERE `a` < ?");
        assert_eq!(one.describe(&key[..1], &[Kind::Plain]), "`a` < 51");
    }

    #[test]
    fn integer_widths_are_not_differences() {
        assert_eq!(normalize_type("int(11)", "int"), "int");
        assert_eq!(
            normalize_type("bigint(20) unsigned", "bigint"),
            "bigint unsigned"
        );
        assert_eq!(normalize_type("varchar(10)", "varchar"), "varchar(10)");
        assert_eq!(normalize_type("decimal(10,2)", "decimal"), "decimal(10,2)");
    }

    #[test]
    fn values_read_as_sql() {
        assert_eq!(
            show(&Value::Bytes(b"it's".to_vec()), Kind::Plain),
            "'it''s'"
        );
        assert_eq!(show(&Value::Bytes(vec![0, 0xff]), Kind::Plain), "0x00ff");
        assert_eq!(show(&Value::Int(-5), Kind::Plain), "-5");
        assert_eq!(show(&Value::NULL, Kind::Plain), "NULL");
    }
}
