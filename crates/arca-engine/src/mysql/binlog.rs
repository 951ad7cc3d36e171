//! The binary log as a replica reads it, archived in segments of whole
//! transactions.
//!
//! A segment is one log object (`logs/mysql/<server>/<name>`): a header
//! naming the binary log file and the positions it covers, its first and
//! last GTID and commit times, then the file's format description event
//! (which a replay needs first), then the transactions' events exactly as
//! the server sent them, checksums included. A segment ends at a
//! transaction's end, so the archive resumes, and a replay stops, at a
//! transaction boundary.

use serde::{Deserialize, Serialize};

use super::core::Session;
use crate::Error;

const MAGIC: &[u8; 8] = b"ARCABLG1";
/// An event's common header: timestamp, type, server id, size, end
/// position, flags.
pub const HEADER_LEN: usize = 19;
/// No header or event in a segment is larger (a server's events are at
/// most 1 GiB, its `max_allowed_packet`).
const MAX_PART: usize = 1 << 30;

/// Event types this module reads.
pub mod kind {
    pub const QUERY: u8 = 2;
    pub const STOP: u8 = 3;
    pub const ROTATE: u8 = 4;
    pub const FORMAT_DESCRIPTION: u8 = 15;
    pub const XID: u8 = 16;
    pub const TABLE_MAP: u8 = 19;
    pub const XA_PREPARE: u8 = 38;
    pub const HEARTBEAT: u8 = 27;
    pub const MYSQL_GTID: u8 = 33;
    pub const MYSQL_ANONYMOUS_GTID: u8 = 34;
    pub const MYSQL_PREVIOUS_GTIDS: u8 = 35;
    pub const MARIADB_BINLOG_CHECKPOINT: u8 = 161;
    pub const MARIADB_GTID: u8 = 162;
    pub const MARIADB_GTID_LIST: u8 = 163;
}

/// The name a server's archive is kept under: MySQL's `server_uuid`, or
/// MariaDB's host name and server id (it has no UUID), so that a second
/// server, or a new primary after a failover, never writes into another's.
pub fn server_identity(s: &mut Session) -> Result<String, Error> {
    let id = s.one("SELECT @@server_id")?.unwrap_or_default();
    let name = match s.one("SELECT @@server_uuid") {
        Ok(Some(uuid)) if !uuid.is_empty() => uuid,
        _ => {
            let host = s.one("SELECT @@hostname")?.unwrap_or_default();
            format!("{host}-{id}")
        }
    };
    Ok(name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect())
}

/// A server's binary log position as `SHOW MASTER STATUS` (MySQL 8.4:
/// `SHOW BINARY LOG STATUS`) gives it.
pub struct LogStatus {
    pub file: Option<String>,
    pub position: Option<u64>,
    /// MySQL's executed GTID set (its fifth column; MariaDB has none).
    pub gtid_set: Option<String>,
}

/// The server's current binary log position; None when it reports none.
pub fn log_status(s: &mut Session) -> Result<Option<LogStatus>, Error> {
    let rows = s
        .texts("SHOW MASTER STATUS")
        .or_else(|_| s.texts("SHOW BINARY LOG STATUS"))?;
    Ok(rows.into_iter().next().map(|r| LogStatus {
        file: r.first().cloned().flatten(),
        position: r.get(1).cloned().flatten().and_then(|p| p.parse().ok()),
        gtid_set: r.get(4).cloned().flatten(),
    }))
}

/// The server's clock, to the microsecond (the log's times are its).
pub fn server_time(s: &mut Session) -> Result<Option<jiff::Timestamp>, Error> {
    Ok(s.one("SELECT UNIX_TIMESTAMP(NOW(6))")?
        .and_then(|t| t.parse::<f64>().ok())
        .and_then(|t| jiff::Timestamp::from_microsecond((t * 1e6) as i64).ok()))
}

/// Refuses a server whose binary log cannot be replayed row by row.
pub fn check_settings(s: &mut Session) -> Result<(), Error> {
    if s.one("SELECT @@log_bin")?.as_deref() != Some("1") {
        return Err(s.error(
            "it writes no binary log: start it with log_bin (and binlog_format = ROW) to archive its log",
        ));
    }
    let format = s.one("SELECT @@binlog_format")?.unwrap_or_default();
    if !format.eq_ignore_ascii_case("ROW") {
        return Err(s.error(format!(
            "binlog_format is {format}: replaying a log exactly needs ROW; SET GLOBAL binlog_format = 'ROW' (and in the server's configuration)"
        )));
    }
    // MySQL 8's compressed transactions hide their events in one payload
    // event, which this archive does not unpack.
    if let Ok(Some(v)) = s.one("SELECT @@binlog_transaction_compression") {
        if v == "1" || v.eq_ignore_ascii_case("ON") {
            return Err(s.error(
                "binlog_transaction_compression is ON: arca archives uncompressed transactions only; SET GLOBAL binlog_transaction_compression = OFF",
            ));
        }
    }
    let image = s.one("SELECT @@binlog_row_image")?.unwrap_or_default();
    if !image.eq_ignore_ascii_case("FULL") {
        return Err(s.error(format!(
            "binlog_row_image is {image}: replaying a log exactly needs FULL; SET GLOBAL binlog_row_image = 'FULL' (and in the server's configuration)"
        )));
    }
    Ok(())
}

/// What a segment covers, stored ahead of its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentInfo {
    /// The binary log file and the positions of the first event's start
    /// and the last event's end.
    pub file: String,
    pub start: u64,
    pub end: u64,
    /// Set when the file ended here (the server rotated): the next segment
    /// starts at position 4 of this file.
    pub next_file: Option<String>,
    pub first_gtid: Option<String>,
    pub last_gtid: Option<String>,
    /// Commit times of the first and last transaction (the server's event
    /// timestamps, whole seconds since 1970).
    pub first_time: Option<u32>,
    pub last_time: Option<u32>,
    pub transactions: u64,
}

impl SegmentInfo {
    /// Where the segment after this one starts.
    pub fn resume_at(&self) -> (String, u64) {
        match &self.next_file {
            Some(f) => (f.clone(), 4),
            None => (self.file.clone(), self.end),
        }
    }
}

/// The object name of a segment: the file, then the position where it
/// ends in 20 digits, then `-next` if the file ends with it. Names are
/// unique: a segment ends past the one before it, or (an empty one that
/// only says that the file ended) carries the suffix the one before lacks.
pub fn segment_name(file: &str, end: u64, ends_file: bool) -> String {
    format!("{file}.{end:020}{}", if ends_file { "-next" } else { "" })
}

/// A segment's place in the log: the file's base name and number, the end
/// position, and whether the file ends there.
pub type Order = (String, u64, u64, bool);

/// Orders segment names as the log runs: by the file's number, then by
/// position, the file's end last (names sort wrongly as text once a file
/// number grows a digit).
pub fn segment_order(name: &str) -> Option<Order> {
    let (name, ends_file) = match name.strip_suffix("-next") {
        Some(n) => (n, true),
        None => (name, false),
    };
    let (file, pos) = name.rsplit_once('.')?;
    let (base, number) = file.rsplit_once('.')?;
    Some((
        base.to_string(),
        number.parse().ok()?,
        pos.parse().ok()?,
        ends_file,
    ))
}

/// A segment's bytes: magic, the header's length and JSON, the format
/// description event's length and bytes, then the events.
pub fn encode_segment(info: &SegmentInfo, fde: &[u8], events: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(info).expect("segment info encodes");
    let mut out = Vec::with_capacity(MAGIC.len() + 8 + json.len() + fde.len() + events.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&(fde.len() as u32).to_le_bytes());
    out.extend_from_slice(fde);
    out.extend_from_slice(events);
    out
}

/// A decoded segment, borrowing its bytes.
pub struct Segment<'a> {
    pub info: SegmentInfo,
    pub fde: &'a [u8],
    pub events: &'a [u8],
}

/// Reads a segment; `name` is for messages. Everything is checked against
/// the bytes' length before it is used: a segment is untrusted.
pub fn decode_segment<'a>(name: &str, bytes: &'a [u8]) -> Result<Segment<'a>, Error> {
    let bad = |why: &str| Error::Unsupported(format!("binlog segment {name} is damaged: {why}"));
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("no segment header"))?;
    let (json, rest) = take_part(rest).ok_or_else(|| bad("header cut short"))?;
    let info: SegmentInfo =
        serde_json::from_slice(json).map_err(|e| bad(&format!("header: {e}")))?;
    let (fde, events) = take_part(rest).ok_or_else(|| bad("format description cut short"))?;
    let mut at = events;
    while !at.is_empty() {
        let h = Header::read(at).ok_or_else(|| bad("an event is cut short"))?;
        at = &at[h.size as usize..];
    }
    Ok(Segment { info, fde, events })
}

fn take_part(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize;
    if len > MAX_PART {
        return None;
    }
    let part = b.get(4..4 + len)?;
    Some((part, &b[4 + len..]))
}

/// An event's common header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub timestamp: u32,
    pub kind: u8,
    pub server_id: u32,
    pub size: u32,
    /// Where the event ends in its file; 0 for events the server makes up
    /// for a replica (the first rotate and format description).
    pub log_pos: u32,
    pub flags: u16,
}

impl Header {
    /// The header of the event at the start of `b`, if all of it is there.
    pub fn read(b: &[u8]) -> Option<Header> {
        let h = b.get(..HEADER_LEN)?;
        let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().unwrap());
        let header = Header {
            timestamp: u32_at(0),
            kind: h[4],
            server_id: u32_at(5),
            size: u32_at(9),
            log_pos: u32_at(13),
            flags: u16::from_le_bytes([h[17], h[18]]),
        };
        ((header.size as usize) >= HEADER_LEN && b.len() >= header.size as usize).then_some(header)
    }
}

/// The events of `b`, each with its header.
pub fn events(b: &[u8]) -> impl Iterator<Item = (Header, &[u8])> {
    let mut at = b;
    std::iter::from_fn(move || {
        let h = Header::read(at)?;
        let (ev, rest) = at.split_at(h.size as usize);
        at = rest;
        Some((h, ev))
    })
}

/// The GTID a transaction's first event names, if it is one: MariaDB's
/// `domain-server-sequence`, MySQL's `uuid:number`.
pub fn gtid(h: &Header, ev: &[u8]) -> Option<String> {
    let body = ev.get(HEADER_LEN..)?;
    match h.kind {
        kind::MARIADB_GTID => {
            let seq = u64::from_le_bytes(body.get(..8)?.try_into().ok()?);
            let domain = u32::from_le_bytes(body.get(8..12)?.try_into().ok()?);
            Some(format!("{domain}-{}-{seq}", h.server_id))
        }
        kind::MYSQL_GTID => {
            let sid = body.get(1..17)?;
            let gno = i64::from_le_bytes(body.get(17..25)?.try_into().ok()?);
            let hex: String = sid.iter().map(|b| format!("{b:02x}")).collect();
            Some(format!(
                "{}-{}-{}-{}-{}:{gno}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            ))
        }
        _ => None,
    }
}

/// A GTID as its stream and number: MariaDB's `domain-server-n` as
/// (domain, n), MySQL's `uuid:n` as (uuid, n).
pub fn gtid_key(g: &str) -> Option<(String, u64)> {
    let g = g.trim();
    if let Some((uuid, n)) = g.split_once(':') {
        let n = n.parse().ok()?;
        let ok = uuid.len() == 36 && uuid.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
        return ok.then(|| (uuid.to_ascii_lowercase(), n));
    }
    let mut p = g.split('-');
    let d: u64 = p.next()?.parse().ok()?;
    let _server: u64 = p.next()?.parse().ok()?;
    let n = p.next()?.parse().ok()?;
    p.next().is_none().then(|| (d.to_string(), n))
}

/// The highest number per stream of a GTID position (MariaDB's
/// `0-1-20,1-2-5`) or executed set (MySQL's `uuid:1-77:80-90,uuid2:1-5`).
pub fn gtid_set_max(set: &str) -> Vec<(String, u64)> {
    set.split(',')
        .filter_map(|part| {
            let part = part.trim();
            match part.split_once(':') {
                Some((uuid, ranges)) => {
                    let max = ranges
                        .split(':')
                        .filter_map(|r| r.rsplit('-').next()?.parse::<u64>().ok())
                        .max()?;
                    Some((uuid.to_ascii_lowercase(), max))
                }
                None => gtid_key(part),
            }
        })
        .collect()
}

/// The statement of a query event, without the checksum (`checksum`:
/// whether events end in 4 checksum bytes).
pub fn query_text(ev: &[u8], checksum: bool) -> Option<&[u8]> {
    let body = ev.get(HEADER_LEN..ev.len().checked_sub(if checksum { 4 } else { 0 })?)?;
    // thread id (4), exec time (4), db length (1), error code (2),
    // status variables' length (2), the variables, db, NUL, statement.
    let db_len = *body.get(8)? as usize;
    let vars_len = u16::from_le_bytes(body.get(11..13)?.try_into().ok()?) as usize;
    body.get(13 + vars_len + db_len + 1..)
}

/// Where transactions end, fed one event at a time.
#[derive(Debug, Default)]
pub struct Transactions {
    /// Inside a transaction (after its GTID event).
    open: bool,
    /// Its statements have begun: `BEGIN` was seen, or MariaDB's GTID event
    /// said so. Until then a statement other than `BEGIN` is a DDL, which
    /// is the whole transaction.
    begun: bool,
}

/// What an event is to the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Part of a transaction that goes on.
    Inside,
    /// The last event of a transaction.
    End,
    /// Not part of any transaction (rotations, heartbeats, GTID lists):
    /// not archived.
    Outside,
    /// An event the archive cannot store faithfully: why, and what to do.
    Refuse(&'static str),
}

/// Event types whose transactions this archive cannot store faithfully,
/// with the setting that makes the server write them.
fn refused(k: u8) -> Option<&'static str> {
    match k {
        39 => Some("the server writes partial JSON updates (binlog_row_value_options = PARTIAL_JSON): SET GLOBAL binlog_row_value_options = ''"),
        40 => Some("the server compresses transactions (binlog_transaction_compression = ON): SET GLOBAL binlog_transaction_compression = OFF"),
        42 => Some("the server writes tagged GTIDs (MySQL 8.4), which arca does not archive yet"),
        165..=171 => Some("the server compresses its binary log (log_bin_compress = ON): SET GLOBAL log_bin_compress = OFF"),
        _ => None,
    }
}

/// A query event's statement, trimmed, in capitals.
fn upper_query(ev: &[u8], checksum: bool) -> String {
    let text = query_text(ev, checksum).unwrap_or_default();
    String::from_utf8_lossy(text).trim().to_ascii_uppercase()
}

/// MariaDB's GTID event flag for a group of one statement (a DDL).
const FL_STANDALONE: u8 = 1;

impl Transactions {
    pub fn step(&mut self, h: &Header, ev: &[u8], checksum: bool) -> Step {
        if let Some(why) = refused(h.kind) {
            return Step::Refuse(why);
        }
        match h.kind {
            kind::MARIADB_GTID | kind::MYSQL_GTID | kind::MYSQL_ANONYMOUS_GTID if self.open => {
                Step::Refuse("a transaction began before the one before it ended")
            }
            kind::MARIADB_GTID => {
                let flags = ev.get(HEADER_LEN + 12).copied().unwrap_or(0);
                self.open = true;
                // MariaDB logs no BEGIN: its GTID event starts the group.
                self.begun = flags & FL_STANDALONE == 0;
                Step::Inside
            }
            kind::MYSQL_GTID | kind::MYSQL_ANONYMOUS_GTID => {
                self.open = true;
                self.begun = false;
                Step::Inside
            }
            kind::QUERY if !self.open => {
                // A server without GTIDs: BEGIN starts the group.
                if upper_query(ev, checksum) == "BEGIN" {
                    self.open = true;
                    self.begun = true;
                    return Step::Inside;
                }
                Step::Outside
            }
            _ if !self.open => Step::Outside,
            kind::XID | kind::XA_PREPARE => {
                self.open = false;
                Step::End
            }
            kind::QUERY => {
                let text = upper_query(ev, checksum);
                if !self.begun {
                    // MySQL 8.0.21+ logs CREATE TABLE … SELECT as one
                    // transaction: the statement, then its rows.
                    if text == "BEGIN"
                        || text.starts_with("XA START")
                        || text.ends_with("START TRANSACTION")
                    {
                        self.begun = true;
                        return Step::Inside;
                    }
                    self.open = false;
                    return Step::End;
                }
                if text == "COMMIT"
                    || text == "ROLLBACK"
                    || text.starts_with("XA COMMIT")
                    || text.starts_with("XA ROLLBACK")
                {
                    self.open = false;
                    return Step::End;
                }
                Step::Inside
            }
            _ => Step::Inside,
        }
    }

    pub fn open(&self) -> bool {
        self.open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: u8, server_id: u32, log_pos: u32, body: &[u8]) -> Vec<u8> {
        let size = (HEADER_LEN + body.len() + 4) as u32;
        let mut e = Vec::new();
        e.extend_from_slice(&1_700_000_000u32.to_le_bytes());
        e.push(kind);
        e.extend_from_slice(&server_id.to_le_bytes());
        e.extend_from_slice(&size.to_le_bytes());
        e.extend_from_slice(&log_pos.to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        e.extend_from_slice(body);
        e.extend_from_slice(&[0xAA; 4]); // checksum
        e
    }

    fn query(sql: &str) -> Vec<u8> {
        let mut b = vec![0u8; 13];
        b[8] = 1; // db "d"
        b.extend_from_slice(b"d\0");
        b.extend_from_slice(sql.as_bytes());
        event(kind::QUERY, 1, 0, &b)
    }

    fn mariadb_gtid(seq: u64, standalone: bool) -> Vec<u8> {
        let mut b = seq.to_le_bytes().to_vec();
        b.extend_from_slice(&0u32.to_le_bytes());
        b.push(standalone as u8);
        event(kind::MARIADB_GTID, 7, 0, &b)
    }

    #[test]
    fn transactions_end_at_xid_commit_or_their_ddl() {
        let mut t = Transactions::default();
        let steps = |t: &mut Transactions, evs: &[Vec<u8>]| -> Vec<Step> {
            evs.iter()
                .map(|e| t.step(&Header::read(e).unwrap(), e, true))
                .collect()
        };
        let xid = event(kind::XID, 1, 0, &5u64.to_le_bytes());
        let rows = event(23, 1, 0, &[1, 2, 3]);
        assert_eq!(
            steps(
                &mut t,
                &[
                    event(kind::MARIADB_GTID_LIST, 1, 0, &[]),
                    mariadb_gtid(1, false),
                    query("BEGIN"),
                    rows.clone(),
                    xid
                ]
            ),
            [
                Step::Outside,
                Step::Inside,
                Step::Inside,
                Step::Inside,
                Step::End
            ]
        );
        assert_eq!(
            steps(
                &mut t,
                &[mariadb_gtid(2, true), query("CREATE TABLE d.t (a int)")]
            ),
            [Step::Inside, Step::End]
        );
        // Savepoints inside; a rollback to one does not end it.
        let xid = event(kind::XID, 1, 0, &6u64.to_le_bytes());
        assert_eq!(
            steps(
                &mut t,
                &[
                    mariadb_gtid(4, false),
                    query("SAVEPOINT a"),
                    query("ROLLBACK TO a"),
                    xid
                ]
            ),
            [Step::Inside, Step::Inside, Step::Inside, Step::End]
        );
        // A non-transactional table's changes end with COMMIT.
        assert_eq!(
            steps(
                &mut t,
                &[
                    mariadb_gtid(3, false),
                    query("BEGIN"),
                    rows,
                    query("COMMIT")
                ]
            ),
            [Step::Inside, Step::Inside, Step::Inside, Step::End]
        );
        let g = mariadb_gtid(42, false);
        assert_eq!(
            gtid(&Header::read(&g).unwrap(), &g).as_deref(),
            Some("0-7-42")
        );
    }

    #[test]
    fn a_segment_round_trips_and_a_damaged_one_is_refused() {
        let info = SegmentInfo {
            file: "binlog.000003".into(),
            start: 4,
            end: 1234,
            next_file: None,
            first_gtid: Some("0-1-5".into()),
            last_gtid: Some("0-1-9".into()),
            first_time: Some(1),
            last_time: Some(2),
            transactions: 5,
        };
        let evs = [mariadb_gtid(5, true), query("DROP TABLE d.t")].concat();
        let bytes = encode_segment(&info, b"fde", &evs);
        let s = decode_segment("x", &bytes).unwrap();
        assert_eq!(s.info, info);
        assert_eq!(s.fde, b"fde");
        assert_eq!(events(s.events).count(), 2);
        for cut in [3, 10, bytes.len() - 1] {
            assert!(decode_segment("x", &bytes[..cut]).is_err(), "{cut}");
        }
        assert_eq!(
            segment_order(&segment_name("mysql-bin.1000000", 4, false)),
            Some(("mysql-bin".into(), 1_000_000, 4, false))
        );
        let order = |n: &str| segment_order(n).unwrap();
        // File numbers grow a digit; a file's end comes after its last data.
        assert!(
            order(&segment_name("binlog.999999", 900, true))
                < order(&segment_name("binlog.1000000", 4, false))
        );
        assert!(
            order(&segment_name("binlog.000009", 900, false))
                < order(&segment_name("binlog.000009", 900, true))
        );
    }
}
