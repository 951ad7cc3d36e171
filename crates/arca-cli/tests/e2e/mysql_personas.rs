//! The paths for servers other than MariaDB — MySQL 8.0, MySQL 8.4 and a
//! MySQL-protocol database without a global read lock, binary log or
//! snapshots — against a real MariaDB behind a persona proxy
//! (persona.rs): the statements whose answers differ come from fixtures
//! (`tests/personas/`), the rows and the locks from the real server.

use super::common::{run_ok, Env};
use super::mariadb::{Maria, PASSWORD};
use super::mysql::{backup, fails, restore};
use super::persona::{Persona, Script};
use super::postgres::arca;

const GTID_8_0: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-77";

/// A server with a few rows in `shop.items`.
fn seeded() -> Maria {
    let m = Maria::start();
    m.root(
        "CREATE DATABASE shop; \
         CREATE TABLE shop.items (id int PRIMARY KEY, name varchar(20), price decimal(10,2)); \
         INSERT INTO shop.items VALUES (1, 'tea', 3.50), (2, 'cups', 12.00), (3, 'pot', NULL);",
    );
    m
}

fn url(p: &Persona) -> String {
    format!("mysql://arca:{PASSWORD}@127.0.0.1:{}", p.port)
}

fn rows(m: &Maria, table: &str) -> String {
    m.root(&format!(
        "SELECT GROUP_CONCAT(CONCAT_WS(',', id, name, price) ORDER BY id SEPARATOR ';') FROM {table}"
    ))
}

/// `arca backup`: its `list ID --json` and its stderr, where it says which
/// server it read and which consistency it got.
fn backup_out(repo: &str, source: &str, extra: &[&str]) -> (serde_json::Value, String) {
    let mut args = vec!["backup", "--repo", repo, "--source", source];
    args.extend_from_slice(extra);
    let out = arca().args(&args).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let shown = run_ok(arca(), &["list", "--repo", repo, &id, "--json"]);
    (
        serde_json::from_str(&shown).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Where `q` first appears among the queries, case aside.
fn at(queries: &[String], q: &str) -> usize {
    queries
        .iter()
        .position(|s| s.eq_ignore_ascii_case(q))
        .unwrap_or_else(|| panic!("{q} was not sent: {queries:#?}"))
}

#[test]
fn mysql_8_0_holds_commits_with_a_global_read_lock_and_records_its_gtid_set() {
    let env = Env::new();
    let repo = env.init_local("r");
    let m = seeded();
    let p = Persona::start(m.port, Script::load("mysql-8.0"));

    let (b, stderr) = backup_out(&repo, &url(&p), &["--parallelism", "2"]);
    let c = &b["consistency"];
    assert_eq!(c["method"], "FLUSH TABLES WITH READ LOCK", "{b}");
    assert_eq!(c["connections"], 2, "{b}");
    assert_eq!(c["binlog_file"], "binlog.000007", "{b}");
    assert_eq!(c["binlog_position"], 1949, "{b}");
    assert_eq!(c["gtid"], GTID_8_0, "{b}");
    assert!(
        stderr.contains(&format!(
            "commits held {} ms by FLUSH TABLES WITH READ LOCK at binlog.000007:1949 (GTID {GTID_8_0})",
            c["lock_ms"]
        )),
        "{stderr}"
    );
    // Both snapshots open, and the position is read, under the lock.
    let q = p.queries();
    let lock = at(&q, "FLUSH TABLES WITH READ LOCK");
    let unlock = at(&q, "UNLOCK TABLES");
    let snapshots: Vec<usize> = q
        .iter()
        .enumerate()
        .filter(|(_, s)| s.eq_ignore_ascii_case("START TRANSACTION WITH CONSISTENT SNAPSHOT"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(snapshots.len(), 2, "{q:#?}");
    assert!(snapshots.iter().all(|&i| lock < i && i < unlock), "{q:#?}");
    assert!(lock < at(&q, "SHOW MASTER STATUS") && at(&q, "SHOW MASTER STATUS") < unlock);
    assert!(
        !q.iter()
            .any(|s| s.to_ascii_uppercase().starts_with("BACKUP STAGE")),
        "{q:#?}"
    );

    assert!(stderr.contains("server:       MySQL 8.0.36"), "{stderr}");
    // The rows come back, into the persona (a MySQL target) and into the
    // MariaDB directly.
    let id = b["id"].as_str().unwrap();
    restore(&repo, id, &url(&p), &["--rename", "shop:via_mysql"]);
    restore(&repo, id, &m.url(), &["--rename", "shop:direct"]);
    let want = rows(&m, "shop.items");
    assert_eq!(want, "1,tea,3.50;2,cups,12.00;3,pot");
    assert_eq!(rows(&m, "via_mysql.items"), want);
    assert_eq!(rows(&m, "direct.items"), want);
}

#[test]
fn mysql_8_4_reads_the_position_from_show_binary_log_status() {
    let env = Env::new();
    let repo = env.init_local("r");
    let m = seeded();
    let p = Persona::start(m.port, Script::load("mysql-8.4"));
    let b = backup(&repo, &url(&p), &["--parallelism", "2"]);
    let c = &b["consistency"];
    assert_eq!(c["method"], "FLUSH TABLES WITH READ LOCK", "{b}");
    assert_eq!(c["binlog_file"], "binlog.000012", "{b}");
    assert_eq!(c["binlog_position"], 4711, "{b}");
    assert_eq!(
        c["gtid"],
        "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,7c1d9f56-0a3b-11ef-8f22-0242ac120002:1-31",
        "{b}"
    );
    let q = p.queries();
    assert!(
        at(&q, "SHOW BINARY LOG STATUS") < at(&q, "UNLOCK TABLES"),
        "{q:#?}"
    );
}

#[test]
fn mysql_without_reload_offers_one_snapshot_and_says_what_is_missing() {
    let env = Env::new();
    let repo = env.init_local("r");
    let m = seeded();
    let p = Persona::start(m.port, Script::load("mysql-8.0-no-reload"));
    let source = url(&p);
    let line = fails(&[
        "backup",
        "--repo",
        &repo,
        "--source",
        &source,
        "--parallelism",
        "2",
    ]);
    assert!(
        line.contains("lacks the RELOAD privilege")
            && line.contains("FLUSH TABLES WITH READ LOCK")
            && line.contains("--parallelism 1"),
        "{line}"
    );
    assert!(!line.contains(PASSWORD), "{line}");
    let (b, stderr) = backup_out(&repo, &source, &["--parallelism", "1"]);
    let c = &b["consistency"];
    assert_eq!(c["method"], "one snapshot", "{b}");
    assert_eq!(c["connections"], 1, "{b}");
    assert!(c["binlog_file"].is_null() && c["gtid"].is_null(), "{b}");
    assert!(
        stderr.contains(
            "consistent: one snapshot read by one connection (no binary log position recorded)"
        ),
        "{stderr}"
    );
    restore(
        &repo,
        b["id"].as_str().unwrap(),
        &m.url(),
        &["--rename", "shop:back"],
    );
    assert_eq!(rows(&m, "back.items"), rows(&m, "shop.items"));
}

#[test]
fn a_protocol_server_without_lock_log_or_snapshots_gets_what_it_allows_and_says_so() {
    let env = Env::new();
    let repo = env.init_local("r");
    let m = seeded();

    // No global read lock, no binary log: one connection at one snapshot.
    let p = Persona::start(m.port, Script::load("other"));
    let (b, stderr) = backup_out(&repo, &url(&p), &["--parallelism", "2"]);
    let c = &b["consistency"];
    assert!(
        stderr.contains("server:       MySQL-protocol server 8.0.11-Proto-v1.0.0"),
        "{stderr}"
    );
    assert_eq!(c["method"], "one snapshot", "{b}");
    assert_eq!(c["connections"], 1, "{b}");
    assert!(
        stderr.contains(
            "consistent: one snapshot read by one connection (no binary log position recorded)"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("FLUSH TABLES WITH READ LOCK"), "{stderr}");
    restore(
        &repo,
        b["id"].as_str().unwrap(),
        &m.url(),
        &["--rename", "shop:one"],
    );
    assert_eq!(rows(&m, "one.items"), rows(&m, "shop.items"));
    drop(p);

    // Without snapshots either: every table at its own moment, and it says so.
    let p = Persona::start(m.port, Script::load("other-no-snapshot"));
    let (b, stderr) = backup_out(&repo, &url(&p), &["--parallelism", "2"]);
    assert_eq!(b["consistency"]["method"], "none", "{b}");
    assert!(
        stderr.contains("not consistent: the server offers no snapshot"),
        "{stderr}"
    );
    let q = p.queries();
    assert!(
        !q.iter().any(|s| s.eq_ignore_ascii_case("SAVEPOINT arca")
            || s.eq_ignore_ascii_case("ROLLBACK TO SAVEPOINT arca")),
        "{q:#?}"
    );
    restore(
        &repo,
        b["id"].as_str().unwrap(),
        &m.url(),
        // The server has `one` now too: only shop comes back.
        &["--databases", "shop", "--rename", "shop:none"],
    );
    assert_eq!(rows(&m, "none.items"), rows(&m, "shop.items"));
}

#[test]
fn compare_waits_for_a_mysql_replica_by_its_executed_gtid_set() {
    let primary = seeded();
    let replica = Maria::start_with(2, &[]);
    replica.replicate_from(&primary);
    let src = Persona::start(primary.port, Script::load("mysql-8.0"));
    let dst = Persona::start(replica.port, Script::load("mysql-8.0-replica"));
    let out = arca()
        .args(["compare", "--source", &url(&src), "--target", &url(&dst)])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        stdout.contains(&format!(
            "the target replicates from the source: read once it had applied the source's position GTID {GTID_8_0}"
        )),
        "{stdout}"
    );
    let q = dst.queries();
    at(
        &q,
        &format!("SELECT WAIT_FOR_EXECUTED_GTID_SET('{GTID_8_0}', 1) = 0"),
    );
    assert!(!q.iter().any(|s| s.contains("MASTER_GTID_WAIT")), "{q:#?}");
}
