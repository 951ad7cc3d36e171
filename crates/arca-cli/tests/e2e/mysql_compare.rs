//! `arca compare` against real MariaDB servers: a primary and its replica
//! (identical, then changed behind replication's back, then while the
//! primary keeps writing), a copy without replication, and a target that
//! cannot be reached.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use mysql::prelude::Queryable;

use super::common::error_line;
use super::mariadb::{Maria, PASSWORD};
use super::postgres::{arca, free_port};

/// Exit status of `arca compare` when the servers differ.
const DIFFERENT: i32 = 1;

/// Tables of every kind of key, with NULLs next to empty strings.
const SHOP: &str = "
CREATE DATABASE shop CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci; USE shop;
CREATE TABLE items (id int PRIMARY KEY, name varchar(20), note varchar(20), data varbinary(8));
INSERT INTO items SELECT seq, CONCAT('item ', seq), IF(seq % 3 = 0, NULL, ''), IF(seq % 5 = 0, x'00ff', NULL)
  FROM seq_1_to_300;
CREATE TABLE pairs (a int, b varchar(10), x varchar(10), y varchar(10), PRIMARY KEY (a, b));
INSERT INTO pairs SELECT seq % 4, CONCAT('k', seq), 'ab', 'c' FROM seq_1_to_200;
CREATE TABLE names (name varchar(20) COLLATE utf8mb4_general_ci PRIMARY KEY,
  title varchar(20) COLLATE utf8mb4_general_ci, n int);
INSERT INTO names VALUES ('alice', 'alice', 1), ('Bob', 'bob', 2), ('carol', '', 3), ('dave', NULL, NULL), ('', '', 0);
CREATE TABLE log (at int, what varchar(10));
INSERT INTO log VALUES (1, 'a'), (1, 'a'), (2, NULL), (3, '');
CREATE TABLE wide (id int PRIMARY KEY, v varchar(10));
INSERT INTO wide VALUES (1, 'x');
";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn compare(source: &str, target: &str, extra: &[&str]) -> Run {
    let mut args = vec!["compare", "--source", source, "--target", target];
    args.extend_from_slice(extra);
    let out = arca().args(&args).output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Run {
    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    fn last(&self) -> &str {
        self.stdout.lines().last().unwrap_or("")
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}{}", self.stdout, self.stderr))
    }
}

/// A primary with the shop database and a replica that has caught up.
fn pair() -> (Maria, Maria) {
    let primary = Maria::start();
    let replica = Maria::start_with(2, &[]);
    primary.root(SHOP);
    replica.replicate_from(&primary);
    (primary, replica)
}

/// The key range `arca compare --chunk-rows n` gives the chunk holding
/// `pairs` row (a, b), as it prints it: the same walk of the key on the
/// server, done here with plain SQL.
fn pairs_range(m: &Maria, a: i32, b: &str, n: u64) -> String {
    let before: u64 = m
        .root(&format!(
            "SELECT COUNT(*) FROM shop.pairs WHERE a < {a} OR (a = {a} AND b < '{b}')"
        ))
        .parse()
        .unwrap();
    let chunk = before / n;
    let at = |i: u64| {
        let row = m.root(&format!(
            "SELECT a, b FROM shop.pairs ORDER BY a, b LIMIT 1 OFFSET {}",
            i * n
        ));
        let (a, b) = row.split_once('\t').unwrap();
        format!("({a}, '{b}')")
    };
    let total: u64 = m.root("SELECT COUNT(*) FROM shop.pairs").parse().unwrap();
    let lo = (chunk > 0).then(|| at(chunk));
    let hi = ((chunk + 1) * n < total).then(|| at(chunk + 1));
    match (lo, hi) {
        (Some(lo), Some(hi)) => format!("(`a`, `b`) >= {lo} AND (`a`, `b`) < {hi}"),
        (Some(lo), None) => format!("(`a`, `b`) >= {lo}"),
        (None, Some(hi)) => format!("(`a`, `b`) < {hi}"),
        (None, None) => "all rows".into(),
    }
}

#[test]
fn a_replica_changed_behind_replications_back_is_named_by_range_and_key() {
    let (primary, replica) = pair();
    let (p, r) = (primary.url(), replica.url());

    let same = compare(&p, &r, &["--chunk-rows", "50"]);
    assert_eq!(same.code, 0, "{}{}", same.stdout, same.stderr);
    assert!(
        same.lines()[0].contains("the target replicates from the source: read once it had applied the source's position GTID 0-1-"),
        "{}",
        same.stdout
    );
    assert!(
        same.last()
            .starts_with("identical: compared 5 tables, 13 chunks, 510 rows in "),
        "{}",
        same.stdout
    );

    // Behind replication's back: NULL for an empty string, a value moved
    // across a column boundary ('ab','c' → 'a','bc'), a case change a
    // case-insensitive collation calls equal, a row deleted, a row added
    // below the primary's lowest key, two duplicate rows of a table
    // without a key changed alike, a table only on the replica, a column
    // widened.
    let range = pairs_range(&primary, 1, "k13", 50);
    replica.root(
        "SET sql_log_bin = 0; USE shop;
         UPDATE items SET note = NULL WHERE id = 58;
         DELETE FROM items WHERE id = 290;
         INSERT INTO items VALUES (0, 'zero', '', NULL);
         UPDATE pairs SET x = 'a', y = 'bc' WHERE a = 1 AND b = 'k13';
         UPDATE names SET title = 'ALICE' WHERE name = 'alice';
         UPDATE log SET what = 'b' WHERE at = 1;
         CREATE TABLE extra (id int PRIMARY KEY);
         ALTER TABLE wide MODIFY v varchar(30);",
    );
    let differ = compare(&p, &r, &["--chunk-rows", "50"]);
    assert_eq!(differ.code, DIFFERENT, "{}{}", differ.stdout, differ.stderr);
    assert_eq!(differ.stderr, "", "{}", differ.stderr);
    let expected = [
        "shop.extra: only on the target".to_string(),
        "shop.items: rows differ in 3 chunks: 1 missing on the target, 1 only on the target, 1 different".into(),
        "  `id` < 51: 50 rows on the source, 51 on the target".into(),
        "  `id` >= 51 AND `id` < 101: 50 rows on the source, 50 on the target".into(),
        "  `id` >= 251: 50 rows on the source, 49 on the target".into(),
        "    only on the target: `id`=0".into(),
        "    different: `id`=58".into(),
        "    missing on the target: `id`=290".into(),
        "shop.log: rows differ in 1 chunk: 2 missing on the target, 2 only on the target, 0 different".into(),
        "  all rows: 4 rows on the source, 4 on the target".into(),
        "    missing on the target: row (`at`=1, `what`='a'), 2 times".into(),
        "    only on the target: row (`at`=1, `what`='b'), 2 times".into(),
        "shop.names: rows differ in 1 chunk: 0 missing on the target, 0 only on the target, 1 different".into(),
        "  all rows: 5 rows on the source, 5 on the target".into(),
        "    different: `name`='alice'".into(),
        "shop.pairs: rows differ in 1 chunk: 0 missing on the target, 0 only on the target, 1 different".into(),
        format!("  {range}: 50 rows on the source, 50 on the target"),
        "    different: `a`=1, `b`='k13'".into(),
        "shop.wide: column `v` differs: source varchar(10) COLLATE utf8mb4_general_ci, target varchar(30) COLLATE utf8mb4_general_ci; rows not compared".into(),
    ];
    let lines = differ.lines();
    assert_eq!(
        &lines[1..lines.len() - 1],
        &expected[..],
        "{}",
        differ.stdout
    );
    assert!(
        differ.last().starts_with(
            "differ: 6 tables, 6 chunks; rows: 3 missing on the target, 3 only on the target, 3 different; compared 4 tables, 12 chunks, 509 rows in "
        ),
        "{}",
        differ.stdout
    );

    // The same as JSON, for scripts.
    let j = compare(&p, &r, &["--chunk-rows", "50", "--json"]);
    assert_eq!(j.code, DIFFERENT);
    let v = j.json();
    assert_eq!(v["identical"], false);
    assert_eq!(v["mode"], "replica");
    let items = v["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["table"] == "items")
        .unwrap();
    assert_eq!(items["problem"], "rows");
    assert_eq!(items["key"], serde_json::json!(["id"]));
    assert_eq!(items["rows"][1]["kind"], "different");
    assert_eq!(items["rows"][1]["key"], "`id`=58");
    assert_eq!(items["chunks"][2]["range"], "`id` >= 251");

    // Tables chosen, tables left out, and the listing's limit.
    let some = compare(
        &p,
        &r,
        &[
            "--chunk-rows",
            "50",
            "--tables",
            "shop.items,shop.log",
            "--ignore-tables",
            "shop.log",
            "--max-rows",
            "1",
        ],
    );
    assert_eq!(some.code, DIFFERENT, "{}{}", some.stdout, some.stderr);
    let lines = some.lines();
    assert_eq!(lines[1], expected[1], "{}", some.stdout);
    assert_eq!(
        lines[5], "    only on the target: `id`=0",
        "{}",
        some.stdout
    );
    assert_eq!(
        lines[6], "    and 2 more rows (--max-rows lists more)",
        "{}",
        some.stdout
    );
    assert!(
        some.last().contains("compared 1 table, 6 chunks, 300 rows"),
        "{}",
        some.stdout
    );
    let left_out = compare(
        &p,
        &r,
        &[
            "--databases",
            "shop",
            "--ignore-tables",
            "shop.extra,shop.items,shop.pairs,shop.names,shop.log,shop.wide",
        ],
    );
    assert_eq!(left_out.code, 0, "{}{}", left_out.stdout, left_out.stderr);
}

#[test]
fn a_primary_that_keeps_writing_shows_no_false_differences() {
    let (primary, replica) = pair();
    primary.root(
        "USE shop; CREATE TABLE hot (id int PRIMARY KEY, n int, s varchar(20));
         INSERT INTO hot SELECT seq, 0, '' FROM seq_1_to_2000;",
    );
    replica.caught_up(&primary);

    // Updates all over `hot`, rows added at its end and removed from its
    // middle, and a transaction that moves a row between two tables.
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, writes) = (stop.clone(), writes.clone());
        let mut conn = primary.connect();
        std::thread::spawn(move || {
            conn.query_drop("USE shop").unwrap();
            let mut i: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let id = 1 + (i * 7919) % 2000;
                conn.query_drop(format!(
                    "UPDATE hot SET n = n + 1, s = IF(s = '', NULL, '') WHERE id = {id}"
                ))
                .unwrap();
                conn.query_drop(format!(
                    "INSERT INTO hot VALUES ({}, {i}, 'new')",
                    10_000 + i
                ))
                .unwrap();
                conn.query_drop(format!("DELETE FROM hot WHERE id = {}", 500 + i % 1000))
                    .unwrap();
                conn.query_drop(format!(
                    "START TRANSACTION; DELETE FROM items WHERE id = {0}; \
                     INSERT INTO items VALUES ({0} + 1000, 'moved', '', NULL); \
                     UPDATE items SET id = {0} WHERE id = {0} + 1000; COMMIT",
                    1 + i % 300
                ))
                .unwrap();
                writes.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    while writes.load(Ordering::Relaxed) < 20 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (p, r) = (primary.url(), replica.url());
    let mut rechecked = 0;
    for threads in ["1", "2", "2"] {
        let before = writes.load(Ordering::Relaxed);
        let run = compare(
            &p,
            &r,
            &["--chunk-rows", "100", "--threads", threads, "--json"],
        );
        let after = writes.load(Ordering::Relaxed);
        assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
        let v = run.json();
        assert_eq!(v["identical"], true);
        assert_eq!(v["mode"], "replica");
        assert_eq!(v["tables"], 6);
        rechecked += v["rechecked"].as_u64().unwrap();
        assert!(after > before, "the primary wrote nothing while compared");
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    eprintln!("chunks rechecked because the primary changed them: {rechecked}");

    // A change the replica alone has is still found while the primary writes.
    replica.caught_up(&primary);
    replica.root("SET sql_log_bin = 0; UPDATE shop.hot SET s = 'replica only' WHERE id = 1");
    let run = compare(&p, &r, &["--chunk-rows", "100"]);
    assert_eq!(run.code, DIFFERENT, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("    different: `id`=1\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_copy_without_replication_is_compared_at_a_snapshot_of_each() {
    let original = Maria::start();
    let copy = Maria::start_with(2, &[]);
    original.root(SHOP);
    copy.root(SHOP);
    let run = compare(&original.url(), &copy.url(), &["--threads", "2"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.lines()[0].ends_with(
            "the target does not replicate from the source: each read at its own snapshot"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.last()
            .starts_with("identical: compared 5 tables, 5 chunks, 510 rows"),
        "{}",
        run.stdout
    );

    copy.root("DELETE FROM shop.items WHERE id = 7");
    let run = compare(&original.url(), &copy.url(), &[]);
    assert_eq!(run.code, DIFFERENT, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(
            "shop.items: rows differ in 1 chunk: 1 missing on the target, 0 only on the target, 0 different\n  all rows: 300 rows on the source, 299 on the target\n    missing on the target: `id`=7\n"
        ),
        "{}",
        run.stdout
    );

    // A password from a file, for a URL without one.
    let pw = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pw.path(), format!("{PASSWORD}\n")).unwrap();
    let run = compare(
        &original.url_without_password(),
        &copy.url_without_password(),
        &[
            "--password-file",
            &pw.path().to_string_lossy(),
            "--tables",
            "shop.wide",
        ],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);

    // A target that is not there: one line naming it, exit 2, no password.
    let port = free_port();
    let out = arca()
        .args([
            "compare",
            "--source",
            &original.url(),
            "--target",
            &format!("mysql://arca:{PASSWORD}@127.0.0.1:{port}"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let line = error_line(&out);
    assert!(
        line.starts_with(&format!(
            "error: target server at 127.0.0.1:{port}: cannot connect"
        )),
        "{line}"
    );
    assert!(!line.contains(PASSWORD), "{line}");

    // A database neither has: an error, not a difference.
    let out = arca()
        .args([
            "compare",
            "--source",
            &original.url(),
            "--target",
            &copy.url(),
            "--databases",
            "nosuch",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(error_line(&out).contains("neither server has database nosuch"));
}
