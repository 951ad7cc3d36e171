//! Rows as `LOAD DATA` reads them back: tab-separated fields, newline-ended
//! rows, `\`-escapes, `\N` for NULL, bytes exactly as stored (the file is
//! loaded `CHARACTER SET binary`). A backup's blocks are this text, so a
//! restore streams them into the server without converting anything.

use mysql::Value;

use super::schema::Column;

/// How a column's value is written, beyond its protocol type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Plain,
    Date,
    Year,
    /// Written as an unsigned number; loaded through a variable.
    Bit,
    /// Loaded through a variable converted from UTF-8 (MySQL refuses JSON
    /// in a binary character set).
    Json,
}

impl Kind {
    pub fn of(c: &Column) -> Kind {
        match c.data_type.as_str() {
            "date" => Kind::Date,
            "year" => Kind::Year,
            "bit" => Kind::Bit,
            "json" => Kind::Json,
            _ => Kind::Plain,
        }
    }
}

/// Appends one field.
pub fn field(out: &mut Vec<u8>, v: &Value, kind: Kind) {
    match v {
        Value::NULL => out.extend_from_slice(b"\\N"),
        Value::Bytes(b) if kind == Kind::Bit => {
            let n = b.iter().fold(0u64, |n, &x| (n << 8) | x as u64);
            number(out, n);
        }
        Value::Bytes(b) => escape(out, b),
        Value::Int(i) if kind == Kind::Year => {
            out.extend_from_slice(format!("{i:04}").as_bytes());
        }
        Value::Int(i) => {
            let mut buf = itoa::Buffer::new();
            out.extend_from_slice(buf.format(*i).as_bytes());
        }
        Value::UInt(u) => number(out, *u),
        // Shortest digits that read back as the same bits; a FLOAT is
        // written as the double it widens to exactly, so the server's
        // decimal → double → float conversion cannot round it twice.
        Value::Float(f) => out.extend_from_slice(format!("{:e}", *f as f64).as_bytes()),
        Value::Double(d) => out.extend_from_slice(format!("{d:e}").as_bytes()),
        Value::Date(y, m, d, h, mi, s, us) => {
            if kind == Kind::Date {
                out.extend_from_slice(format!("{y:04}-{m:02}-{d:02}").as_bytes());
            } else {
                out.extend_from_slice(
                    format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}").as_bytes(),
                );
                if *us > 0 {
                    out.extend_from_slice(format!(".{us:06}").as_bytes());
                }
            }
        }
        Value::Time(neg, days, h, mi, s, us) => {
            let hours = *days * 24 + *h as u32;
            let sign = if *neg { "-" } else { "" };
            out.extend_from_slice(format!("{sign}{hours:02}:{mi:02}:{s:02}").as_bytes());
            if *us > 0 {
                out.extend_from_slice(format!(".{us:06}").as_bytes());
            }
        }
    }
}

fn number(out: &mut Vec<u8>, n: u64) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(n).as_bytes());
}

/// Escapes what `LOAD DATA … ESCAPED BY '\\'` would read as syntax. Most
/// values have none of those bytes: they are found by a vectorised search
/// and the runs between them copied whole.
pub fn escape(out: &mut Vec<u8>, b: &[u8]) {
    let mut start = 0;
    // The next NUL at or after `start`, searched for only once passed.
    let mut nul = memchr::memchr(0, b);
    while start < b.len() {
        if nul.is_some_and(|n| n < start) {
            nul = memchr::memchr(0, &b[start..]).map(|n| start + n);
        }
        let other = memchr::memchr3(b'\\', b'\t', b'\n', &b[start..]).map(|n| start + n);
        let Some(i) = [other, nul].into_iter().flatten().min() else {
            break;
        };
        out.extend_from_slice(&b[start..i]);
        out.extend_from_slice(match b[i] {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            _ => b"\\0",
        });
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
}

/// The `LOAD DATA` clause that reads these rows into `columns` (the
/// table's stored columns, in the backup's order).
pub fn load_columns(columns: &[&Column]) -> String {
    let mut names = Vec::new();
    let mut sets = Vec::new();
    for (i, c) in columns.iter().enumerate() {
        let q = super::core::quote(&c.name);
        match Kind::of(c) {
            Kind::Bit => {
                names.push(format!("@v{i}"));
                sets.push(format!("{q} = CAST(@v{i} AS UNSIGNED)"));
            }
            Kind::Json => {
                names.push(format!("@v{i}"));
                sets.push(format!("{q} = CONVERT(@v{i} USING utf8mb4)"));
            }
            _ => names.push(q),
        }
    }
    let mut s = format!("({})", names.join(", "));
    if !sets.is_empty() {
        s.push_str(" SET ");
        s.push_str(&sets.join(", "));
    }
    s
}

/// A 64-bit FNV-1a, mixed: cut decisions need a fast, stable hash of a
/// row's key, not a cryptographic one.
#[derive(Clone, Copy)]
pub struct KeyHash(u64);

impl KeyHash {
    pub fn new() -> KeyHash {
        KeyHash(0xcbf2_9ce4_8422_2325)
    }

    pub fn feed(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= x as u64;
            self.0 = self.0.wrapping_mul(0x100_0000_01b3);
        }
    }

    pub fn finish(self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Default for KeyHash {
    fn default() -> Self {
        KeyHash::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: Value, k: Kind) -> String {
        let mut out = Vec::new();
        field(&mut out, &v, k);
        String::from_utf8(out).unwrap()
    }

    /// Byte by byte, as LOAD DATA reads it back.
    fn naive(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &c in b {
            match c {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'\n' => out.extend_from_slice(b"\\n"),
                0 => out.extend_from_slice(b"\\0"),
                c => out.push(c),
            }
        }
        out
    }

    #[test]
    fn escaping_matches_byte_by_byte_on_every_mix() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..300 {
            for round in 0..20 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        // Mostly plain bytes, some of each special one.
                        match (x % 16, round % 2) {
                            (0, _) => 0,
                            (1, _) => b'\\',
                            (2, _) => b'\t',
                            (3, 0) => b'\n',
                            _ => (x >> 8) as u8,
                        }
                    })
                    .collect();
                let mut out = Vec::new();
                escape(&mut out, &bytes);
                assert_eq!(out, naive(&bytes), "{bytes:?}");
            }
        }
    }

    #[test]
    fn fields_read_back_as_written() {
        assert_eq!(enc(Value::NULL, Kind::Plain), "\\N");
        assert_eq!(
            enc(Value::Bytes(b"a\tb\\c\nd\0".to_vec()), Kind::Plain),
            "a\\tb\\\\c\\nd\\0"
        );
        assert_eq!(enc(Value::Bytes(b"\\N".to_vec()), Kind::Plain), "\\\\N");
        assert_eq!(enc(Value::Bytes(vec![1, 2]), Kind::Bit), "258");
        assert_eq!(enc(Value::Int(0), Kind::Year), "0000");
        assert_eq!(enc(Value::Double(0.1), Kind::Plain), "1e-1");
        assert_eq!(enc(Value::Float(0.1), Kind::Plain), "1.0000000149011612e-1");
        assert_eq!(
            enc(Value::Date(0, 0, 0, 0, 0, 0, 0), Kind::Date),
            "0000-00-00"
        );
        assert_eq!(
            enc(Value::Date(2024, 2, 29, 23, 59, 58, 120), Kind::Plain),
            "2024-02-29 23:59:58.000120"
        );
        assert_eq!(
            enc(Value::Time(true, 34, 22, 59, 59, 0), Kind::Plain),
            "-838:59:59"
        );
    }
}
