//! WAL positions and segment file names.

use std::fmt;
use std::str::FromStr;

/// A WAL position (`XLogRecPtr`), written `X/Y` as PostgreSQL does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

impl FromStr for Lsn {
    type Err = String;
    fn from_str(s: &str) -> Result<Lsn, String> {
        let bad = || format!("{s:?} is not a WAL position: expected the form 0/16B3748");
        let (hi, lo) = s.trim().split_once('/').ok_or_else(bad)?;
        let hi = u32::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| bad())?;
        Ok(Lsn(((hi as u64) << 32) | lo as u64))
    }
}

impl serde::Serialize for Lsn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Lsn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Lsn, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A WAL segment: its timeline and number, for a given segment size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Segment {
    pub timeline: u32,
    pub number: u64,
}

impl Segment {
    /// The segment that holds `lsn`.
    pub fn of(timeline: u32, lsn: Lsn, seg_size: u64) -> Segment {
        Segment {
            timeline,
            number: lsn.0 / seg_size,
        }
    }

    /// The file name PostgreSQL gives it (`000000010000000000000003`).
    pub fn name(&self, seg_size: u64) -> String {
        let per_id = 0x1_0000_0000 / seg_size;
        format!(
            "{:08X}{:08X}{:08X}",
            self.timeline,
            self.number / per_id,
            self.number % per_id
        )
    }

    /// Parses a segment file name; `None` for history, backup and other files.
    pub fn parse(name: &str, seg_size: u64) -> Option<Segment> {
        if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let timeline = u32::from_str_radix(&name[0..8], 16).ok()?;
        let log = u64::from_str_radix(&name[8..16], 16).ok()?;
        let seg = u64::from_str_radix(&name[16..24], 16).ok()?;
        let per_id = 0x1_0000_0000 / seg_size;
        (seg < per_id).then_some(Segment {
            timeline,
            number: log * per_id + seg,
        })
    }

    /// The segments from this one to `last` on this one's timeline, in order.
    pub fn through(self, last: Segment) -> impl Iterator<Item = Segment> {
        let timeline = self.timeline;
        (self.number..=last.number).map(move |number| Segment { timeline, number })
    }

    pub fn start_lsn(&self, seg_size: u64) -> Lsn {
        Lsn(self.number * seg_size)
    }
}

/// Whether a name is a segment's (24 hex digits), or a partial segment's
/// (`.partial`); not a backup history file's (`…00000028.backup`).
pub fn is_segment_name(name: &str) -> bool {
    let base = name.strip_suffix(".partial").unwrap_or(name);
    base.len() == 24 && base.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The cluster's system identifier in a segment's first page (its long
/// header: `xlp_sysid` at byte 24), with the segment size at byte 32.
pub fn segment_sysid(data: &[u8]) -> Option<(u64, u32)> {
    const XLP_LONG_HEADER: u16 = 0x0002;
    if data.len() < 40 {
        return None;
    }
    let info = u16::from_le_bytes([data[2], data[3]]);
    if info & XLP_LONG_HEADER == 0 {
        return None;
    }
    let sysid = u64::from_le_bytes(data[24..32].try_into().ok()?);
    let seg_size = u32::from_le_bytes(data[32..36].try_into().ok()?);
    Some((sysid, seg_size))
}

/// A record in a WAL segment: where it starts and ends, and for a
/// transaction's commit or abort its time, which is what
/// `recovery_target_time` stops at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalRecord {
    pub start: Lsn,
    pub end: Lsn,
    pub xact_time: Option<jiff::Timestamp>,
}

/// The records that start and end inside one segment (whole or partial), in
/// order: not one continued from the segment before or into the one after.
/// Reading stops at the end of the WAL written into it (a zero length, or a
/// page left from the file's previous use).
pub fn segment_records(data: &[u8]) -> Vec<WalRecord> {
    const RM_XACT_ID: u8 = 1;
    const XLP_FIRST_IS_CONTRECORD: u16 = 0x0001;
    const XLP_LONG_HEADER: u16 = 0x0002;
    // Seconds from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
    const PG_EPOCH: i64 = 946_684_800;
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    let u64_at = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
    let align = |n: usize| (n + 7) & !7;
    if data.len() < 40 || u16_at(data, 2) & XLP_LONG_HEADER == 0 {
        return Vec::new();
    }
    let page = u32_at(data, 36) as usize;
    if !page.is_power_of_two() || !(1024..=65536).contains(&page) {
        return Vec::new();
    }
    let magic = u16_at(data, 0);
    let seg_start = u64_at(data, 8);
    // The pages' contents back to back; page headers are multiples of 8
    // bytes, so a record's alignment is the same here as in the WAL.
    let mut payload = Vec::with_capacity(data.len());
    let mut page_starts: Vec<(usize, u64)> = Vec::new();
    let mut skip = 0;
    for (i, p) in data.chunks(page).enumerate() {
        if p.len() < 24 || u16_at(p, 0) != magic || u64_at(p, 8) != seg_start + (i * page) as u64 {
            break;
        }
        let info = u16_at(p, 2);
        let header = if info & XLP_LONG_HEADER != 0 { 40 } else { 24 };
        if i == 0 && info & XLP_FIRST_IS_CONTRECORD != 0 {
            skip = align(u32_at(p, 16) as usize);
        }
        page_starts.push((payload.len(), seg_start + (i * page + header) as u64));
        payload.extend_from_slice(&p[header.min(p.len())..]);
    }
    let lsn_of = |off: usize| {
        let i = page_starts.partition_point(|&(o, _)| o <= off) - 1;
        Lsn(page_starts[i].1 + (off - page_starts[i].0) as u64)
    };
    let mut out = Vec::new();
    let mut pos = skip;
    while pos + 24 <= payload.len() {
        let len = u32_at(&payload, pos) as usize;
        if len < 24 || pos + len > payload.len() {
            break;
        }
        let rec = &payload[pos..pos + len];
        let (info, rmid) = (rec[16], rec[17]);
        // Commit, abort, commit prepared, abort prepared: their main data
        // (the end of the record) starts with the time, microseconds since 2000.
        let xact_time = (rmid == RM_XACT_ID && matches!(info & 0x70, 0x00 | 0x20 | 0x30 | 0x40))
            .then(|| main_data(rec))
            .flatten()
            .and_then(|d| d.get(..8))
            .map(|t| i64::from_le_bytes(t.try_into().unwrap()))
            .and_then(|us| {
                jiff::Timestamp::from_microsecond(us.checked_add(PG_EPOCH * 1_000_000)?).ok()
            });
        out.push(WalRecord {
            start: lsn_of(pos),
            end: Lsn(lsn_of(pos + len - 1).0 + 1),
            xact_time,
        });
        pos = align(pos + len);
    }
    out
}

/// A record's main data, for a record without block references.
fn main_data(rec: &[u8]) -> Option<&[u8]> {
    let mut p = 24;
    loop {
        let len = match *rec.get(p)? {
            // XLR_BLOCK_ID_DATA_SHORT, XLR_BLOCK_ID_DATA_LONG
            255 => *rec.get(p + 1)? as usize,
            254 => u32::from_le_bytes(rec.get(p + 1..p + 5)?.try_into().ok()?) as usize,
            // XLR_BLOCK_ID_ORIGIN, XLR_BLOCK_ID_TOPLEVEL_XID
            253 => {
                p += 3;
                continue;
            }
            252 => {
                p += 5;
                continue;
            }
            _ => return None,
        };
        return rec.get(rec.len().checked_sub(len)?..);
    }
}

/// The system identifier at the start of `global/pg_control`.
pub fn control_sysid(pg_control: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(pg_control.get(0..8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB16: u64 = 16 << 20;

    #[test]
    fn lsn_round_trips() {
        let l: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(l.0, 0x16_B374_D848);
        assert_eq!(l.to_string(), "16/B374D848");
        assert!("x".parse::<Lsn>().is_err());
    }

    /// A WAL page header: long on the segment's first page.
    fn page_header(addr: u64, first: bool, rem_len: u32) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(&0xD110u16.to_le_bytes());
        let info = (u16::from(first) * 2) | u16::from(rem_len > 0);
        h.extend_from_slice(&info.to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes());
        h.extend_from_slice(&addr.to_le_bytes());
        h.extend_from_slice(&rem_len.to_le_bytes());
        h.extend_from_slice(&[0; 4]);
        if first {
            h.extend_from_slice(&7u64.to_le_bytes());
            h.extend_from_slice(&(16u32 << 20).to_le_bytes());
            h.extend_from_slice(&8192u32.to_le_bytes());
        }
        h
    }

    /// A record of `rmid`/`info` whose main data is `main`.
    fn record(rmid: u8, info: u8, main: &[u8]) -> Vec<u8> {
        let mut r = vec![0; 24];
        r.extend_from_slice(&[254]);
        r.extend_from_slice(&(main.len() as u32).to_le_bytes());
        r.extend_from_slice(main);
        let len = r.len() as u32;
        r[0..4].copy_from_slice(&len.to_le_bytes());
        r[16] = info;
        r[17] = rmid;
        r
    }

    #[test]
    fn records_and_commit_times_are_read_across_pages() {
        const PAGE: usize = 8192;
        let start = 0x300_0000u64;
        // 2026-01-01 00:00:00 UTC, in microseconds since 2000-01-01.
        let t = (1_767_225_600i64 - 946_684_800) * 1_000_000;
        let commit = record(1, 0x00, &t.to_le_bytes());
        let big = record(0, 0x10, &vec![9; 10_000]);
        let mut stream = Vec::new();
        let mut at = Vec::new();
        for r in [&commit, &big, &commit] {
            at.push(stream.len());
            stream.extend_from_slice(r);
            stream.resize(stream.len().div_ceil(8) * 8, 0);
        }
        // The stream into pages: 40 bytes of header, then 24 on each next page.
        let mut seg = page_header(start, true, 0);
        let mut off = 0;
        let mut page = 0;
        while off < stream.len() {
            if page > 0 {
                let rem = (at[2] as u32).saturating_sub(off as u32);
                let rem = if off > at[1] && off < at[2] { rem } else { 0 };
                seg.extend_from_slice(&page_header(start + (page * PAGE) as u64, false, rem));
            }
            let room = PAGE * (page + 1) - seg.len();
            let n = room.min(stream.len() - off);
            seg.extend_from_slice(&stream[off..off + n]);
            off += n;
            page += 1;
        }
        seg.resize(PAGE * page, 0);
        let recs = segment_records(&seg);
        assert_eq!(recs.len(), 3, "{recs:?}");
        assert_eq!(recs[0].start, Lsn(start + 40));
        assert_eq!(recs[1].xact_time, None);
        // The big record crosses a page header: its end lies 24 bytes later.
        assert_eq!(
            recs[1].end,
            Lsn(start + 40 + at[1] as u64 + big.len() as u64 + 24)
        );
        let when = jiff::Timestamp::from_second(1_767_225_600).unwrap();
        assert_eq!(recs[2].xact_time, Some(when));
        // Cut inside the last record: it is not read.
        let cut = &seg[..recs[2].end.0 as usize - start as usize - 1];
        assert_eq!(segment_records(cut).len(), 2);
    }

    #[test]
    fn segment_names_match_postgres() {
        // pg_walfile_name('0/3000028') on timeline 1 with 16 MiB segments
        let s = Segment::of(1, "0/3000028".parse().unwrap(), MB16);
        assert_eq!(s.name(MB16), "000000010000000000000003");
        let s = Segment::of(2, "1/2000000".parse().unwrap(), MB16);
        assert_eq!(s.name(MB16), "000000020000000100000002");
        assert_eq!(Segment::parse("000000020000000100000002", MB16), Some(s));
        let names: Vec<String> = Segment::of(1, Lsn(0xFF00_0000), MB16)
            .through(Segment::of(1, Lsn(0x1_0100_0000), MB16))
            .map(|s| s.name(MB16))
            .collect();
        assert_eq!(
            names,
            [
                "0000000100000000000000FF",
                "000000010000000100000000",
                "000000010000000100000001"
            ]
        );
        assert_eq!(Segment::parse("00000002.history", MB16), None);
        assert!(is_segment_name("000000010000000000000003.partial"));
        assert!(!is_segment_name("00000002.history"));
        assert!(!is_segment_name("000000010000000000000002.00000028.backup"));
    }
}
