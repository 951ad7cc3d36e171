//! Replays archived binary log segments into a server, in one session,
//! transaction by transaction, as `mariadb-binlog | mariadb` would but
//! stopping exactly at a target: row events go in as `BINLOG` statements
//! (after the file's format description), statements as themselves under
//! the settings they were logged with.
//!
//! With a selection of tables, only their row events are replayed (a table
//! map names its table, a row event its table map), under their new names
//! when renamed; a statement that names a selected table stops the replay,
//! since a DDL cannot be replayed into a renamed copy safely.

use std::collections::HashMap;

use base64::Engine as _;
use mysql::prelude::Queryable;

use super::binlog::{self, kind, Header, Segment, Step, Transactions, HEADER_LEN};
use super::core::{literal, quote, Session};
use super::rename::Renames;
use crate::Error;

/// Where a replay stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// At the end of the archive.
    End,
    /// After the last transaction committed at or before this second
    /// (seconds since 1970: the log's commit times are whole seconds).
    Time(i64),
    /// After the transaction with this GTID.
    Gtid(String),
    /// After the last transaction that ends at or before this binary log
    /// position (a named snapshot's): the file and position.
    Position(String, u64),
}

/// Which tables are replayed: those of the restored databases, or the
/// chosen tables of them, under their new names.
pub struct Filter<'a> {
    /// The databases restored (their names in the backup).
    pub databases: Vec<String>,
    /// (database, table) pairs chosen with `--tables`; empty: every table
    /// of `databases`.
    pub tables: Vec<(String, String)>,
    /// Tables whose rows the backup read after its point (engines without
    /// snapshots): their logged changes may be in the backup already.
    pub skip: Vec<(String, String)>,
    pub renames: &'a Renames,
}

impl Filter<'_> {
    fn selects(&self, db: &str, table: &str) -> bool {
        !self.skip.iter().any(|(d, t)| d == db && t == table)
            && self.databases.iter().any(|d| d == db)
            && (self.tables.is_empty() || self.tables.iter().any(|(d, t)| d == db && t == table))
    }
}

/// What a replay did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Replayed {
    pub transactions: u64,
    pub last_gtid: Option<String>,
    /// The commit time of the last replayed transaction (seconds).
    pub last_time: Option<i64>,
    /// Whether the target was reached (always, for [`Stop::End`]).
    pub reached: bool,
}

/// One replay session.
pub struct Replayer<'a> {
    /// None: a dry run, which only finds what would stop the replay.
    s: Option<&'a mut Session>,
    filter: Filter<'a>,
    stop: Stop,
    /// The format description last given to the server.
    fde: Vec<u8>,
    /// table id → the table map as replayed (renamed), or None: not selected.
    maps: HashMap<u64, Option<Vec<u8>>>,
    pub done: Replayed,
}

impl<'a> Replayer<'a> {
    pub fn new(s: &'a mut Session, filter: Filter<'a>, stop: Stop) -> Replayer<'a> {
        Replayer::with(Some(s), filter, stop)
    }

    /// A replay that writes nothing: it fails where the real one would
    /// refuse a statement, so a restore can refuse before it writes.
    pub fn dry(filter: Filter<'a>, stop: Stop) -> Replayer<'a> {
        Replayer::with(None, filter, stop)
    }

    fn with(s: Option<&'a mut Session>, filter: Filter<'a>, stop: Stop) -> Replayer<'a> {
        Replayer {
            s,
            filter,
            stop,
            fde: Vec::new(),
            maps: HashMap::new(),
            done: Replayed::default(),
        }
    }

    /// Replays the transactions of `seg` that end after `after` (a
    /// position in `seg.info.file`; 0 for all). Returns false once the
    /// target is reached.
    pub fn segment(&mut self, name: &str, seg: &Segment<'_>, after: u64) -> Result<bool, Error> {
        let crc = checksummed(seg.fde);
        let mut trx = Transactions::default();
        let mut events: Vec<(Header, &[u8])> = Vec::new();
        for (h, ev) in binlog::events(seg.events) {
            match trx.step(&h, ev, crc) {
                Step::Outside => continue,
                Step::Refuse(why) => {
                    return Err(Error::Unsupported(format!(
                        "binlog segment {name} holds an event arca cannot replay: {why}"
                    )))
                }
                Step::Inside => events.push((h, ev)),
                Step::End => {
                    events.push((h, ev));
                    let group = std::mem::take(&mut events);
                    if (h.log_pos as u64) <= after {
                        continue;
                    }
                    if let Stop::Position(f, p) = &self.stop {
                        let here = binlog::segment_order(&binlog::segment_name(
                            &seg.info.file,
                            h.log_pos as u64,
                            false,
                        ));
                        if here > binlog::segment_order(&binlog::segment_name(f, *p, false)) {
                            self.done.reached = true;
                            return Ok(false);
                        }
                    }
                    if !self.transaction(name, seg.fde, crc, &group)? {
                        return Ok(false);
                    }
                }
            }
        }
        Ok(true)
    }

    /// Replays one transaction unless the target says stop first.
    fn transaction(
        &mut self,
        segment: &str,
        fde: &[u8],
        crc: bool,
        events: &[(Header, &[u8])],
    ) -> Result<bool, Error> {
        let (first, end) = (events[0], events[events.len() - 1]);
        let gtid = binlog::gtid(&first.0, first.1);
        let commit = end.0.timestamp as i64;
        match &self.stop {
            Stop::Time(t) if commit > *t => {
                self.done.reached = true;
                return Ok(false);
            }
            Stop::Gtid(g) => {
                if let (Some(have), Some(want)) = (
                    gtid.as_deref().and_then(binlog::gtid_key),
                    binlog::gtid_key(g),
                ) {
                    if have.0 == want.0 && have.1 > want.1 {
                        return Err(Error::Unsupported(format!(
                            "the archive has no transaction {g}: it goes from {} to {} in {segment} without it; name a GTID the server logged (arca list shows the archive's range)",
                            self.done.last_gtid.as_deref().unwrap_or("the backup's point"),
                            gtid.as_deref().unwrap_or_default()
                        )));
                    }
                }
            }
            _ => {}
        }
        if self.fde != fde {
            self.binlog(&[fde], crc)?;
            self.fde = fde.to_vec();
        }
        let mut batch: Vec<Vec<u8>> = Vec::new();
        let mut began = false;
        let mut rolled_back = false;
        for (h, ev) in events {
            match h.kind {
                kind::TABLE_MAP => {
                    let replayed = self.table_map(ev, crc)?;
                    if let Some(map) = replayed {
                        batch.push(map);
                    }
                }
                k if is_rows(k) => {
                    let id = table_id(ev).unwrap_or(u64::MAX);
                    if let Some(Some(_)) = self.maps.get(&id) {
                        if !began {
                            self.exec("BEGIN")?;
                            began = true;
                        }
                        batch.push(ev.to_vec());
                        // A statement's rows end with this flag, and the
                        // server forgets its table maps there: a large
                        // transaction goes in several BINLOG statements, cut
                        // there, each far below max_allowed_packet.
                        let end = ev.get(HEADER_LEN + 6).is_some_and(|f| f & STMT_END_F != 0);
                        if end && batch.iter().map(Vec::len).sum::<usize>() >= BATCH_BYTES {
                            self.flush(&mut batch, crc)?;
                        }
                    }
                }
                kind::QUERY => {
                    let q = binlog::query_text(ev, crc).unwrap_or_default();
                    let text = String::from_utf8_lossy(q).into_owned();
                    let word = text.trim().to_ascii_uppercase();
                    if word == "BEGIN" {
                        continue;
                    }
                    if word == "COMMIT" {
                        break;
                    }
                    if word == "ROLLBACK" {
                        rolled_back = true;
                        break;
                    }
                    self.flush(&mut batch, crc)?;
                    self.statement(h, ev, &text, crc)?;
                }
                _ => {}
            }
        }
        if rolled_back {
            batch.clear();
            if began {
                self.exec("ROLLBACK")?;
            }
        } else {
            self.flush(&mut batch, crc)?;
            if began {
                self.exec("COMMIT")?;
            }
        }
        // Table ids are per transaction group in practice; a new map
        // replaces an old one of the same id.
        self.done.transactions += 1;
        self.done.last_gtid = gtid.clone().or(self.done.last_gtid.take());
        self.done.last_time = Some(commit);
        if let (Stop::Gtid(g), Some(have)) = (&self.stop, &gtid) {
            if binlog::gtid_key(g).is_some() && binlog::gtid_key(g) == binlog::gtid_key(have) {
                self.done.reached = true;
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Records a table map; returns it as the server gets it (renamed), or
    /// None for a table that is not replayed.
    fn table_map(&mut self, ev: &[u8], crc: bool) -> Result<Option<Vec<u8>>, Error> {
        let bad = || Error::Unsupported("a table map event in the archive is damaged".into());
        let id = table_id(ev).ok_or_else(bad)?;
        let (db, table) = map_names(ev).ok_or_else(bad)?;
        if !self.filter.selects(&db, &table) {
            self.maps.insert(id, None);
            return Ok(None);
        }
        let (db2, table2) = self.filter.renames.table(&db, &table);
        let map = if (db2.as_str(), table2.as_str()) == (db.as_str(), table.as_str()) {
            ev.to_vec()
        } else {
            rename_map(ev, &db2, &table2, crc).ok_or_else(bad)?
        };
        self.maps.insert(id, Some(map.clone()));
        Ok(Some(map))
    }

    /// A statement logged as text: replayed under its logged settings, or
    /// for a selection, refused if it names a selected table.
    fn statement(&mut self, h: &Header, ev: &[u8], text: &str, crc: bool) -> Result<(), Error> {
        let db = query_db(ev).unwrap_or_default();
        let when = jiff::Timestamp::from_second(h.timestamp as i64)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let f = &self.filter;
        let upper = text.to_ascii_uppercase();
        let words: Vec<&str> = upper.split_whitespace().take(2).collect();
        match words.as_slice() {
            // Accounts are the server's, not the databases': a restore
            // brings them back only with --users, from the backup.
            ["GRANT" | "REVOKE", ..]
            | ["SET", "PASSWORD"]
            | ["CREATE" | "DROP" | "ALTER" | "RENAME", "USER"]
            | ["CREATE" | "DROP", "ROLE"] => {
                tracing::warn!("not replayed: an account statement logged at {when}");
                return Ok(());
            }
            // A whole database: replayed only into the database itself.
            ["CREATE" | "DROP" | "ALTER", "DATABASE" | "SCHEMA"] => {
                if !f.databases.iter().any(|d| mentions(text, d)) {
                    return Ok(());
                }
                if !f.renames.is_empty() || !f.tables.is_empty() {
                    return Err(Error::Unsupported(format!(
                        "the log changes a restored database as a whole at {when} ({}): a point-in-time restore under new names cannot replay it; pick a target time before it",
                        first_line(text)
                    )));
                }
            }
            _ => {}
        }
        let concerned = f.databases.iter().any(|d| *d == db || mentions(text, d));
        if !concerned {
            // Another database's: it was not restored.
            return Ok(());
        }
        let refuse = |why: &str| {
            Err(Error::Unsupported(format!(
                "the log changes {why} at {when} ({}): a point-in-time restore {}; pick a target time before it",
                first_line(text),
                if f.tables.is_empty() {
                    "under a new table name replays rows only, not definitions"
                } else {
                    "of chosen tables replays their rows only, not definitions; restore their whole database"
                }
            )))
        };
        if !f.tables.is_empty() {
            if f.tables.iter().any(|(_, t)| mentions(text, t)) {
                return refuse("a chosen table's definition");
            }
            return Ok(());
        }
        if f.renames
            .tables
            .iter()
            .any(|((d, t), _)| (*d == db || mentions(text, d)) && mentions(text, t))
        {
            return refuse("a renamed table's definition");
        }
        // A renamed database's statement runs in its new name.
        let text = &f.renames.rewrite(text);
        let db = f.renames.database(&db);
        let mut set = vec![format!("SET TIMESTAMP = {}", h.timestamp)];
        if let Some(v) = query_vars(ev, crc) {
            if let Some(mode) = v.sql_mode {
                set.push(format!("SET SESSION sql_mode = {mode}"));
            }
            if let Some((client, conn, server)) = v.charset {
                set.push(format!(
                    "SET SESSION character_set_client = {client}, SESSION collation_connection = {conn}, SESSION collation_server = {server}"
                ));
            }
            if let Some(tz) = v.time_zone {
                set.push(format!("SET SESSION time_zone = {}", literal(&tz)));
            }
        }
        if !db.is_empty() {
            set.push(format!("USE {}", quote(&db)));
        }
        for sql in &set {
            self.exec(sql)?;
        }
        if let Some(s) = self.s.as_deref_mut() {
            s.conn.query_drop(text).map_err(|e| {
                s.sql_error(
                    &format!(
                        "replaying the statement logged at {when} ({})",
                        first_line(text)
                    ),
                    e,
                )
            })?;
        }
        // Back to the session's own settings for the row events.
        self.exec("SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION', NAMES utf8mb4, time_zone = '+00:00', TIMESTAMP = DEFAULT")
    }

    fn flush(&mut self, batch: &mut Vec<Vec<u8>>, crc: bool) -> Result<(), Error> {
        if batch
            .iter()
            .any(|e| Header::read(e).is_some_and(|h| is_rows(h.kind)))
        {
            let parts: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            self.binlog(&parts, crc)?;
        }
        batch.clear();
        Ok(())
    }

    /// Applies raw events with a `BINLOG` statement.
    fn binlog(&mut self, events: &[&[u8]], _crc: bool) -> Result<(), Error> {
        if self.s.is_none() {
            return Ok(());
        }
        let raw: Vec<u8> = events.concat();
        let sql = format!(
            "BINLOG '{}'",
            base64::engine::general_purpose::STANDARD.encode(raw)
        );
        match self.s.as_deref_mut() {
            Some(s) => s
                .conn
                .query_drop(&sql)
                .map_err(|e| s.sql_error("replaying row events (BINLOG)", e)),
            None => Ok(()),
        }
    }

    fn exec(&mut self, sql: &str) -> Result<(), Error> {
        match self.s.as_deref_mut() {
            Some(s) => s.exec(sql),
            None => Ok(()),
        }
    }
}

/// Row events sent in one BINLOG statement, at most about (base64 makes
/// it a third larger).
const BATCH_BYTES: usize = 4 << 20;

/// A row event's flag on the last event of a statement.
const STMT_END_F: u8 = 1;

/// Whether events after this format description end in a CRC32.
fn checksummed(fde: &[u8]) -> bool {
    // The format description's own last 5 bytes: the algorithm (1 = CRC32)
    // and its checksum.
    fde.len() > HEADER_LEN + 5 && fde[fde.len() - 5] == 1
}

fn is_rows(k: u8) -> bool {
    // v1 (MariaDB) and v2 (MySQL) write, update, delete.
    matches!(k, 23..=25 | 30..=32)
}

/// The table id of a table map or row event (6 bytes after the header).
fn table_id(ev: &[u8]) -> Option<u64> {
    let b = ev.get(HEADER_LEN..HEADER_LEN + 6)?;
    let mut id = [0u8; 8];
    id[..6].copy_from_slice(b);
    Some(u64::from_le_bytes(id))
}

/// A table map's database and table names.
fn map_names(ev: &[u8]) -> Option<(String, String)> {
    // table id (6), flags (2), db length (1), db, NUL, table length (1), table, NUL.
    let at = HEADER_LEN + 8;
    let db_len = *ev.get(at)? as usize;
    let db = ev.get(at + 1..at + 1 + db_len)?;
    let t_at = at + 1 + db_len + 1;
    let t_len = *ev.get(t_at)? as usize;
    let t = ev.get(t_at + 1..t_at + 1 + t_len)?;
    Some((
        String::from_utf8_lossy(db).into_owned(),
        String::from_utf8_lossy(t).into_owned(),
    ))
}

/// A table map naming `db.table` instead, with its size and checksum made
/// right.
fn rename_map(ev: &[u8], db: &str, table: &str, crc: bool) -> Option<Vec<u8>> {
    if db.len() > 255 || table.len() > 255 {
        return None;
    }
    let at = HEADER_LEN + 8;
    let db_len = *ev.get(at)? as usize;
    let t_at = at + 1 + db_len + 1;
    let t_len = *ev.get(t_at)? as usize;
    let rest_at = t_at + 1 + t_len + 1;
    let end = ev.len().checked_sub(if crc { 4 } else { 0 })?;
    let mut out = ev.get(..at)?.to_vec();
    out.push(db.len() as u8);
    out.extend_from_slice(db.as_bytes());
    out.push(0);
    out.push(table.len() as u8);
    out.extend_from_slice(table.as_bytes());
    out.push(0);
    out.extend_from_slice(ev.get(rest_at..end)?);
    let size = (out.len() + if crc { 4 } else { 0 }) as u32;
    out[9..13].copy_from_slice(&size.to_le_bytes());
    if crc {
        let sum = crc32fast::hash(&out);
        out.extend_from_slice(&sum.to_le_bytes());
    }
    Some(out)
}

/// The default database of a query event.
fn query_db(ev: &[u8]) -> Option<String> {
    let body = ev.get(HEADER_LEN..)?;
    let db_len = *body.get(8)? as usize;
    let vars_len = u16::from_le_bytes(body.get(11..13)?.try_into().ok()?) as usize;
    let db = body.get(13 + vars_len..13 + vars_len + db_len)?;
    Some(String::from_utf8_lossy(db).into_owned())
}

/// The settings a query event was logged with.
#[derive(Debug, Default)]
struct QueryVars {
    sql_mode: Option<u64>,
    charset: Option<(u16, u16, u16)>,
    time_zone: Option<String>,
}

/// Reads the status variables a replay needs; stops at one it does not
/// know (their layouts differ by code), keeping what it read.
fn query_vars(ev: &[u8], _crc: bool) -> Option<QueryVars> {
    let body = ev.get(HEADER_LEN..)?;
    let vars_len = u16::from_le_bytes(body.get(11..13)?.try_into().ok()?) as usize;
    let vars = body.get(13..13 + vars_len)?;
    let mut v = QueryVars::default();
    let mut i = 0;
    let u16_at = |i: usize| vars.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    while i < vars.len() {
        let code = vars[i];
        i += 1;
        match code {
            0 => i += 4, // flags2
            1 => {
                v.sql_mode = vars
                    .get(i..i + 8)
                    .map(|b| u64::from_le_bytes(b.try_into().unwrap()));
                i += 8;
            }
            2 => i += 1 + *vars.get(i)? as usize + 1, // catalog (old form)
            3 => i += 4,                              // auto_increment
            4 => {
                v.charset = Some((u16_at(i)?, u16_at(i + 2)?, u16_at(i + 4)?));
                i += 6;
            }
            5 => {
                let n = *vars.get(i)? as usize;
                v.time_zone = vars
                    .get(i + 1..i + 1 + n)
                    .map(|b| String::from_utf8_lossy(b).into_owned());
                i += 1 + n;
            }
            6 => i += 1 + *vars.get(i)? as usize, // catalog
            7 | 8 => i += 2,                      // lc_time_names, database charset
            9 => i += 8,                          // table map for update
            10 => i += 4,                         // master data written
            11 => {
                // invoker: user, host
                let u = *vars.get(i)? as usize;
                let h = *vars.get(i + 1 + u)? as usize;
                i += 1 + u + 1 + h;
            }
            12 => {
                // updated databases: a count, then NUL-ended names
                let n = *vars.get(i)? as usize;
                i += 1;
                if n < 254 {
                    for _ in 0..n {
                        let end = vars.get(i..)?.iter().position(|&b| b == 0)?;
                        i += end + 1;
                    }
                }
            }
            13 => i += 3,  // microseconds
            128 => i += 3, // MariaDB: high-resolution start time
            129 => i += 8, // MariaDB: XID
            _ => break,
        }
    }
    Some(v)
}

/// Whether `sql` names `name` as a word (a table or database).
fn mentions(sql: &str, name: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    let name = name.to_ascii_lowercase();
    let word =
        |c: Option<char>| c.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'));
    lower.match_indices(&name).any(|(i, _)| {
        word(lower[..i].chars().next_back()) && word(lower[i + name.len()..].chars().next())
    })
}

fn first_line(sql: &str) -> String {
    let one: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > 80 {
        format!("{}…", one.chars().take(80).collect::<String>())
    } else {
        one
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_as_words_only() {
        assert!(mentions("ALTER TABLE `shop`.`t` ADD c int", "t"));
        assert!(mentions("drop table shop.items", "items"));
        assert!(!mentions("ALTER TABLE shop.items2 ADD c int", "items"));
        assert!(!mentions("CREATE TABLE ab (x int)", "a"));
    }
}
