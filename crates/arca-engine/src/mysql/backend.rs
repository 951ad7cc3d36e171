//! One consistent point for the whole backup, and the rows of a table
//! range read at it, cut into blocks.
//!
//! N connections each open a `START TRANSACTION WITH CONSISTENT SNAPSHOT`
//! while commits are held for a moment (MariaDB's `BACKUP STAGE
//! BLOCK_COMMIT`, otherwise `FLUSH TABLES WITH READ LOCK`), so every
//! snapshot sees the same transactions; the binary log position of that
//! point is read under the same hold. With one connection no hold is
//! needed: its snapshot is the point (MariaDB reports the binary log
//! position matching it).

use std::time::Instant;

use mysql::prelude::Queryable;
use mysql::Value;
use serde::{Deserialize, Serialize};

use super::config::MysqlSource;
use super::core::{code, qualified, quote, Flavor, Result, Session};
use super::encode::{self, KeyHash, Kind};
use super::schema::Table;
use crate::Error;

/// Which consistency a backup got, recorded in its manifest and printed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Consistency {
    /// "BACKUP STAGE BLOCK_COMMIT", "FLUSH TABLES WITH READ LOCK", "one
    /// snapshot" or "none".
    pub method: String,
    /// Connections reading at the point.
    pub connections: usize,
    /// How long commits were held, in milliseconds.
    pub lock_ms: u64,
    /// The binary log position of the point, if the server logs.
    pub binlog_file: Option<String>,
    pub binlog_position: Option<u64>,
    /// The GTID position (MariaDB) or executed set (MySQL) of the point.
    pub gtid: Option<String>,
    /// Tables of engines without snapshots: read, but not at the point.
    #[serde(default)]
    pub not_at_point: Vec<String>,
    /// The server's clock at the point (a point-in-time restore picks
    /// backups by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_time: Option<jiff::Timestamp>,
}

impl Consistency {
    /// One line for a person.
    pub fn describe(&self) -> String {
        let point = match (&self.binlog_file, self.binlog_position, &self.gtid) {
            (Some(f), Some(p), Some(g)) if !g.is_empty() => format!(" at {f}:{p} (GTID {g})"),
            (Some(f), Some(p), _) => format!(" at {f}:{p}"),
            _ => " (no binary log position recorded)".to_string(),
        };
        match self.method.as_str() {
            "one snapshot" => format!("consistent: one snapshot read by one connection{point}"),
            "none" => {
                "not consistent: the server offers no snapshot; each table was read at its own moment"
                    .to_string()
            }
            m => format!(
                "consistent: {} connections at one point, commits held {} ms by {m}{point}",
                self.connections, self.lock_ms
            ),
        }
    }
}

/// The sessions reading at one point.
pub struct Snapshot {
    pub sessions: Vec<Session>,
    pub consistency: Consistency,
}

/// Opens `n` connections at one consistent point (see the module's docs).
pub fn open_snapshot(src: &MysqlSource, n: usize) -> Result<Snapshot> {
    let n = n.max(1);
    let mut ctl = Session::open(src)?;
    let log_bin = ctl.one("SELECT @@log_bin")?.as_deref() == Some("1");
    let mut sessions = (0..n)
        .map(|_| Session::open(src))
        .collect::<Result<Vec<_>>>()?;
    let flavor = ctl.flavor;
    let start = Instant::now();
    let method = if n == 1 && flavor == Flavor::Mariadb {
        None
    } else {
        match hold_commits(&mut ctl) {
            Ok(m) => Some(m),
            Err(Error::Mysql { code: Some(c), .. })
                if n == 1
                    && [code::SPECIFIC_ACCESS_DENIED, code::DB_ACCESS_DENIED, 1064]
                        .contains(&c) =>
            {
                None
            }
            Err(Error::Mysql { code: Some(c), .. })
                if [code::SPECIFIC_ACCESS_DENIED, code::DB_ACCESS_DENIED].contains(&c) =>
            {
                return Err(ctl.error(format!(
                    "user {} lacks the RELOAD privilege, which opening {n} connections at one consistent point needs ({}): grant it (GRANT RELOAD ON *.* TO …), or pass --parallelism 1 for one consistent snapshot read by one connection",
                    src.user,
                    if flavor == Flavor::Mariadb { "BACKUP STAGE" } else { "FLUSH TABLES WITH READ LOCK" }
                )));
            }
            Err(e) if flavor == Flavor::Other => {
                tracing::warn!("{e}: reading with one connection, at its own snapshot");
                sessions.truncate(1);
                None
            }
            Err(e) => return Err(e),
        }
    };
    let mut snapshots = true;
    for s in &mut sessions {
        match open_transaction(s) {
            Ok(()) => {}
            Err(e) if flavor == Flavor::Other => {
                tracing::warn!("{e}: reading table after table, without a snapshot");
                snapshots = false;
                break;
            }
            Err(e) => return Err(e),
        }
    }
    if !snapshots {
        for s in sessions.iter_mut().filter(|s| s.snapshot) {
            s.exec("ROLLBACK")?;
            s.snapshot = false;
        }
    }
    let mut c = Consistency {
        method: match &method {
            _ if !snapshots => "none".into(),
            Some(m) => m.clone(),
            None => "one snapshot".into(),
        },
        connections: sessions.len(),
        lock_ms: 0,
        binlog_file: None,
        binlog_position: None,
        gtid: None,
        not_at_point: Vec::new(),
        point_time: None,
    };
    // Read while commits are still held: no commit lies between the
    // snapshots and this time.
    c.point_time = super::binlog::server_time(&mut sessions[0])?;
    if log_bin && snapshots {
        if flavor == Flavor::Mariadb {
            // The position matching the first session's snapshot; the
            // others share its point while commits are held.
            let s = &mut sessions[0];
            let mut file = None;
            let mut pos = None;
            for r in s.texts("SHOW STATUS LIKE 'binlog_snapshot_%'")? {
                match r.first().cloned().flatten().as_deref() {
                    Some("Binlog_snapshot_file") => file = r.get(1).cloned().flatten(),
                    Some("Binlog_snapshot_position") => {
                        pos = r.get(1).cloned().flatten().and_then(|p| p.parse().ok())
                    }
                    _ => {}
                }
            }
            if let (Some(f), Some(p)) = (&file, pos) {
                c.gtid = s.one(&format!(
                    "SELECT BINLOG_GTID_POS({}, {p})",
                    super::core::literal(f)
                ))?;
            }
            c.binlog_file = file;
            c.binlog_position = pos;
        } else if method.is_some() {
            if let Some(st) = super::binlog::log_status(&mut ctl)? {
                c.binlog_file = st.file;
                c.binlog_position = st.position;
                c.gtid = st.gtid_set;
            }
        }
    }
    if let Some(m) = &method {
        let release = if m == "BACKUP STAGE BLOCK_COMMIT" {
            "BACKUP STAGE END"
        } else {
            "UNLOCK TABLES"
        };
        ctl.exec(release)?;
        c.lock_ms = start.elapsed().as_millis() as u64;
    }
    Ok(Snapshot {
        sessions,
        consistency: c,
    })
}

fn open_transaction(s: &mut Session) -> Result<()> {
    s.exec("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")?;
    s.exec("START TRANSACTION WITH CONSISTENT SNAPSHOT")?;
    // Rolling back to it releases the metadata locks of what was read
    // since (as mysqldump does): a DDL on a table already backed up does
    // not wait for the whole backup.
    s.exec("SAVEPOINT arca")?;
    s.snapshot = true;
    Ok(())
}

fn hold_commits(ctl: &mut Session) -> Result<String> {
    // Waiting for long statements while holding writes would stall the
    // server: give up after a while instead.
    ctl.exec("SET SESSION lock_wait_timeout = 30")?;
    if ctl.flavor == Flavor::Mariadb {
        ctl.exec("BACKUP STAGE START")?;
        ctl.exec("BACKUP STAGE BLOCK_COMMIT")?;
        Ok("BACKUP STAGE BLOCK_COMMIT".into())
    } else {
        ctl.exec("FLUSH TABLES WITH READ LOCK")?;
        Ok("FLUSH TABLES WITH READ LOCK".into())
    }
}

/// Integer types a table's ranges can be cut on.
fn is_integer(data_type: &str) -> bool {
    matches!(
        data_type,
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint"
    )
}

/// How a table is read: whole, or in ranges of its first key column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Width of each range of the first key column's values (a power of
    /// two, so ranges stay where they were as the table grows); 0: whole.
    pub stride: u64,
    /// The lowest and highest range numbers (value / stride).
    pub first: i64,
    pub last: i64,
    /// Rows per block are about 2^cut_bits: a block ends after a row whose
    /// key hash has that many low zero bits.
    pub cut_bits: u32,
    /// The table's size when the ranges were cut.
    #[serde(default)]
    pub bytes: u64,
}

/// Bytes a range aims at: big enough to keep connections busy, small
/// enough that several ranges of a large table load at once.
const RANGE_BYTES: u64 = 64 << 20;
/// Bytes a block aims at.
const BLOCK_BYTES: u64 = 8 << 10;

/// Plans reading `t`; `base` is its plan in the previous backup, kept when
/// still about right so blocks and ranges line up with it.
pub fn plan(s: &mut Session, db: &str, t: &Table, base: Option<Plan>) -> Result<Plan> {
    let cut_bits = match base {
        Some(b) => b.cut_bits,
        None => {
            let row = sample_row_bytes(s, db, t)?.max(16);
            (BLOCK_BYTES / row).max(1).ilog2().min(16)
        }
    };
    let whole = Plan {
        stride: 0,
        first: 0,
        last: 0,
        cut_bits,
        bytes: t.data_length,
    };
    let Some(first_key) = t.key.first() else {
        return Ok(whole);
    };
    let integer = t
        .columns
        .iter()
        .any(|c| &c.name == first_key && is_integer(&c.data_type));
    // ARCA_MYSQL_RANGE_MIB tunes the range size (tests use small ones).
    let range_bytes = std::env::var("ARCA_MYSQL_RANGE_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&m| m > 0)
        .map_or(RANGE_BYTES, |m| m << 20);
    // Tables without snapshots are read in one statement: rows moving
    // between ranges read at different times would be read twice.
    if !integer || !t.transactional() || t.data_length < 2 * range_bytes {
        return Ok(whole);
    }
    let k = quote(first_key);
    let row = s
        .texts(&format!(
            "SELECT MIN({k}), MAX({k}) FROM {}",
            qualified(db, &t.name)
        ))?
        .into_iter()
        .next()
        .unwrap_or_default();
    let parse = |i: usize| -> Option<i128> { row.get(i).cloned().flatten()?.parse().ok() };
    let (Some(lo), Some(hi)) = (parse(0), parse(1)) else {
        return Ok(whole);
    };
    // The previous backup's ranges while the table is about as large:
    // a block is stored as a delta against the same block of the same
    // range, and new keys past either end join the open-ended end ranges.
    if let Some(b) = base.filter(|b| {
        b.stride > 0 && b.bytes / 4 <= t.data_length && t.data_length <= b.bytes.saturating_mul(4)
    }) {
        let st = b.stride as i128;
        let span = b.last - b.first + 1;
        return Ok(Plan {
            first: (lo.div_euclid(st) as i64).clamp(b.first - span, b.first),
            last: (hi.div_euclid(st) as i64).clamp(b.last, b.last + span),
            cut_bits,
            ..b
        });
    }
    let ranges = (t.data_length / range_bytes).max(1) as i128;
    let want = ((hi - lo + 1) / ranges).max(1);
    let stride = (want as u128).next_power_of_two().min(1 << 62) as u64;
    let st = stride as i128;
    let fits = |v: i128| i64::try_from(v.div_euclid(st)).is_ok();
    if !fits(lo) || !fits(hi) {
        return Ok(whole);
    }
    Ok(Plan {
        stride,
        first: lo.div_euclid(st) as i64,
        last: hi.div_euclid(st) as i64,
        cut_bits,
        bytes: t.data_length,
    })
}

/// About how many bytes a row of `t` takes as text, from its first rows
/// (the server's statistics are often missing for a new table).
fn sample_row_bytes(s: &mut Session, db: &str, t: &Table) -> Result<u64> {
    let cols: Vec<String> = t.stored_columns().map(|c| quote(&c.name)).collect();
    if cols.is_empty() {
        return Ok(16);
    }
    // Lengths summed, not one CONCAT: columns in several character sets
    // cannot be concatenated.
    let lengths: Vec<String> = cols
        .iter()
        .map(|c| format!("IFNULL(LENGTH({c}), 2)"))
        .collect();
    let sql = format!(
        "SELECT AVG({}) + {} FROM (SELECT {} FROM {} LIMIT 1000) AS sample",
        lengths.join(" + "),
        cols.len(),
        cols.join(", "),
        qualified(db, &t.name)
    );
    Ok(s.one(&sql)?
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(t.avg_row_length, |v| v as u64))
}

/// What one range's reading produced.
#[derive(Debug, Clone, Copy, Default)]
pub struct Read {
    pub rows: u64,
    pub bytes: u64,
}

/// Reads range `range` of `t` (all of it when the plan is whole) in key
/// order at the session's snapshot, handing each block to `sink`. A block
/// is whole rows; it ends after a row whose key hashes to `cut_bits` zero
/// low bits, so an update leaves its neighbours' blocks as they were.
pub fn read_range(
    s: &mut Session,
    db: &str,
    t: &Table,
    plan: &Plan,
    range: i64,
    sink: &mut dyn FnMut(Vec<u8>) -> Result<()>,
) -> Result<Read> {
    let cols: Vec<_> = t.stored_columns().collect();
    let kinds: Vec<Kind> = cols.iter().map(|c| Kind::of(c)).collect();
    let key_idx: Vec<usize> = t
        .key
        .iter()
        .filter_map(|k| cols.iter().position(|c| &c.name == k))
        .collect();
    let list = cols
        .iter()
        .map(|c| quote(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let mut sql = format!("SELECT {list} FROM {}", qualified(db, &t.name));
    let mut params: Vec<Value> = Vec::new();
    if plan.stride > 0 {
        let k = quote(&t.key[0]);
        let st = plan.stride as i128;
        let lo = range as i128 * st;
        let bound = |v: i128| {
            if v >= i64::MIN as i128 && v <= i64::MAX as i128 {
                Value::Int(v as i64)
            } else {
                Value::UInt(v as u64)
            }
        };
        let mut conds = Vec::new();
        if range > plan.first {
            conds.push(format!("{k} >= ?"));
            params.push(bound(lo));
        }
        if range < plan.last {
            conds.push(format!("{k} < ?"));
            params.push(bound(lo + st));
        }
        if !conds.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
    }
    if !t.key.is_empty() {
        let order: Vec<String> = t.key.iter().map(|k| quote(k)).collect();
        sql.push_str(" ORDER BY ");
        sql.push_str(&order.join(", "));
    }
    let mask = (1u64 << plan.cut_bits) - 1;
    let label = s.label.clone();
    let what = format!("reading {db}.{}", t.name);
    // Strings as stored, in their own character sets, not converted.
    s.exec("SET SESSION character_set_results = NULL")?;
    let mut read = Read::default();
    let mut block: Vec<u8> = Vec::with_capacity(2 * BLOCK_BYTES as usize);
    let stmt = s
        .conn
        .prep(&sql)
        .map_err(|e| super::core::sql_error(&label, &what, e))?;
    let result = s
        .conn
        .exec_iter(&stmt, params)
        .map_err(|e| super::core::sql_error(&label, &what, e))?;
    for row in result {
        let row = row.map_err(|e| super::core::sql_error(&label, &what, e))?;
        let values = row.unwrap();
        let start = block.len();
        let mut h = KeyHash::new();
        let mut key_spans = [(0usize, 0usize); 4];
        for (i, (v, k)) in values.iter().zip(&kinds).enumerate() {
            if i > 0 {
                block.push(b'\t');
            }
            let from = block.len();
            encode::field(&mut block, v, *k);
            if let Some(p) = key_idx.iter().position(|&x| x == i) {
                if p < key_spans.len() {
                    key_spans[p] = (from, block.len());
                }
            }
        }
        block.push(b'\n');
        if key_idx.is_empty() {
            h.feed(&block[start..]);
        } else {
            for &(a, b) in key_spans.iter().take(key_idx.len()) {
                h.feed(&block[a..b]);
                h.feed(b"\t");
            }
        }
        read.rows += 1;
        let cut = (h.finish() & mask) == 0 && block.len() >= MIN_BLOCK;
        if cut || block.len() >= MAX_BLOCK {
            read.bytes += block.len() as u64;
            sink(std::mem::replace(
                &mut block,
                Vec::with_capacity(2 * BLOCK_BYTES as usize),
            ))?;
        }
    }
    if !block.is_empty() {
        read.bytes += block.len() as u64;
        sink(block)?;
    }
    release(s)?;
    Ok(read)
}

/// Ends what the session read since its snapshot opened: metadata locks
/// go, the snapshot stays; names come back as UTF-8 again.
pub fn release(s: &mut Session) -> Result<()> {
    if s.snapshot {
        s.exec("ROLLBACK TO SAVEPOINT arca")?;
    }
    s.exec("SET SESSION character_set_results = utf8mb4")
}

/// A block ends at a cut row only once it holds this much: a run of cut
/// rows would otherwise make blocks of one small row each.
const MIN_BLOCK: usize = 512;
/// A block ends here whatever its rows' keys (rows are never split).
const MAX_BLOCK: usize = 4 << 20;
