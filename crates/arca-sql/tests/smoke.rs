//! Arbitrary input never panics, and every error points inside the input.
//! A cheap stand-in for the fuzzing to come: a xorshift generator, no
//! dependencies.

use arca_sql::parse;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// How many inputs each random test tries: `ARCA_SQL_SMOKE_ITERS`, or 5000.
fn iterations() -> usize {
    std::env::var("ARCA_SQL_SMOKE_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000)
}

/// Parses `sql`, checking what can be checked without knowing the answer.
fn check(sql: &str) {
    if let Err(e) = parse(sql) {
        assert!(e.offset <= sql.len(), "{sql:?}: {e}");
        assert!(sql.is_char_boundary(e.offset), "{sql:?}: {e}");
        assert!(e.line >= 1 && e.column >= 1, "{sql:?}: {e}");
        assert_eq!(e.line, 1 + sql[..e.offset].matches('\n').count(), "{sql:?}");
        assert!(!e.message.is_empty());
        let rendered = e.render(sql);
        assert!(rendered.starts_with(&e.to_string()));
        assert!(rendered.ends_with('^'));
    }
}

const VALID: &[&str] = &[
    r#"CREATE READ ONLY REPOSITORY `s3-repo` WITH BROKER b ON LOCATION "s3://bucket/backup" PROPERTIES ("k" = "v", "k2" = 'v\'2')"#,
    "SHOW REPOSITORIES;",
    "DROP REPOSITORY r",
    r#"BACKUP SNAPSHOT db.snap TO repo ON (TABLE t PARTITION (p1, p2), u) PROPERTIES ("type" = "full")"#,
    "SHOW BACKUP FROM db",
    "CANCEL BACKUP",
    "SHOW SNAPSHOT ON repo WHERE SNAPSHOT = 'name' AND TIMESTAMP = '2024-01-01-00-00-00'",
    r#"RESTORE SNAPSHOT db.snap FROM repo ON (t PARTITION (p1) AS t2, u) PROPERTIES ("backup_timestamp" = "2024")"#,
    "SHOW RESTORE IN db",
    "CANCEL RESTORE FROM db;",
];

const PIECES: &[&str] = &[
    "CREATE",
    "READ",
    "ONLY",
    "REPOSITORY",
    "WITH",
    "BROKER",
    "ON",
    "LOCATION",
    "PROPERTIES",
    "SHOW",
    "REPOSITORIES",
    "DROP",
    "BACKUP",
    "SNAPSHOT",
    "TO",
    "TABLE",
    "PARTITION",
    "FROM",
    "IN",
    "CANCEL",
    "WHERE",
    "AND",
    "TIMESTAMP",
    "RESTORE",
    "AS",
    "DATABASE",
    "ALL",
    "VIEW",
    "TEMPORARY",
    "EXTERNAL",
    "(",
    ")",
    ",",
    ".",
    "=",
    ";",
    "'s'",
    "\"s\"",
    "`q`",
    "'",
    "\"",
    "`",
    "--",
    "/*",
    "*/",
    "\\",
    "\n",
    " ",
    "\t",
    "x",
    "db",
    "42",
    "é",
    "数",
    "\u{0}",
    "\u{feff}",
    "'\\",
    "``",
    "''",
    "backup_timestamp",
    "\"backup_timestamp\"",
];

#[test]
fn valid_statements_parse() {
    for sql in VALID {
        if let Err(e) = parse(sql) {
            panic!("{}", e.render(sql));
        }
    }
}

#[test]
fn every_prefix_of_a_valid_statement() {
    for sql in VALID {
        for (i, _) in sql.char_indices() {
            check(&sql[..i]);
            check(&sql[i..]);
        }
    }
}

#[test]
fn random_bytes() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..iterations() {
        let len = rng.below(80);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        check(&String::from_utf8_lossy(&bytes));
        // Mostly-ASCII printable input reaches further into the grammar.
        let ascii: String = (0..len)
            .map(|_| (b' ' + rng.below(95) as u8) as char)
            .collect();
        check(&ascii);
    }
}

#[test]
fn random_token_soup() {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    for _ in 0..iterations() {
        let n = 1 + rng.below(30);
        let mut sql = String::new();
        for _ in 0..n {
            sql.push_str(PIECES[rng.below(PIECES.len())]);
            if rng.below(3) > 0 {
                sql.push(' ');
            }
        }
        check(&sql);
    }
}

#[test]
fn mutated_valid_statements() {
    let mut rng = XorShift(0xdead_beef_cafe_f00d);
    for _ in 0..iterations() {
        let mut sql = VALID[rng.below(VALID.len())].to_string();
        for _ in 0..1 + rng.below(3) {
            let mut at = rng.below(sql.len() + 1);
            while !sql.is_char_boundary(at) {
                at -= 1;
            }
            match rng.below(3) {
                0 => sql.insert_str(at, PIECES[rng.below(PIECES.len())]),
                1 => {
                    let mut end = (at + 1 + rng.below(8)).min(sql.len());
                    while !sql.is_char_boundary(end) {
                        end -= 1;
                    }
                    sql.replace_range(at..end, "");
                }
                _ => {
                    let mut end = (at + rng.below(8)).min(sql.len());
                    while !sql.is_char_boundary(end) {
                        end -= 1;
                    }
                    let copy = sql[at..end].to_string();
                    sql.insert_str(end, &copy);
                }
            }
        }
        check(&sql);
    }
}

#[test]
fn deep_nesting_and_long_input() {
    let start = std::time::Instant::now();
    let deep = "(".repeat(100_000);
    check(&deep);
    check(&format!("BACKUP SNAPSHOT d.s TO r ON {deep}"));
    check(&format!("BACKUP SNAPSHOT d.s TO r ON (t PARTITION {deep}"));
    check(&format!("RESTORE SNAPSHOT d.s FROM r PROPERTIES {deep}"));
    check(&format!("SHOW SNAPSHOT ON r WHERE {deep}"));
    check(&format!("{}{}", deep, ")".repeat(100_000)));
    check(&"/*".repeat(100_000));
    check(&"'".repeat(100_001));
    check(&"`".repeat(100_001));
    check(&"\\".repeat(100_000));
    check(&"-- \n".repeat(100_000));

    // A long but valid list costs linear time and works.
    let tables: Vec<String> = (0..20_000).map(|i| format!("t{i}")).collect();
    let sql = format!("BACKUP SNAPSHOT d.s TO r ON ({})", tables.join(", "));
    match parse(&sql) {
        Ok(arca_sql::Statement::Backup { tables, .. }) => assert_eq!(tables.len(), 20_000),
        other => panic!("{other:?}"),
    }

    // Inputs at the size limit, of the kinds that could be slow.
    let max = arca_sql::MAX_STATEMENT_BYTES;
    for unit in ["(", "'", "`", "/*", "-- \n", "x,", "a.", "\\", "é"] {
        check(&unit.repeat(max / unit.len()));
        check(&format!(
            "BACKUP SNAPSHOT d.s TO r ON ({}",
            unit.repeat((max - 40) / unit.len())
        ));
    }
    // Linear work: all of the above in well under a minute even unoptimized.
    assert!(start.elapsed() < std::time::Duration::from_secs(60));
}
