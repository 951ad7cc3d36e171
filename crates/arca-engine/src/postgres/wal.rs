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
