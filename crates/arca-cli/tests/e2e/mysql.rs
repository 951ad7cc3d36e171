//! MySQL engine behaviour against a real MariaDB: every type round-trips,
//! selection and renames, definitions, consistency with the recorded log
//! position, and bad input.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use mysql::prelude::Queryable;

use super::common::{error_line, run_ok, Env};
use super::mariadb::{Maria, PASSWORD};
use super::postgres::arca;

pub(super) fn backup(repo: &str, source: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["backup", "--repo", repo, "--source", source, "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&run_ok(arca(), &args)).unwrap()
}

pub(super) fn restore(repo: &str, id: &str, to: &str, extra: &[&str]) -> String {
    let mut args = vec!["restore", id, "--repo", repo, "--to", to];
    args.extend_from_slice(extra);
    run_ok(arca(), &args)
}

pub(super) fn fails(args: &[&str]) -> String {
    let out = arca().args(args).output().unwrap();
    assert!(!out.status.success(), "{out:?}");
    error_line(&out)
}

/// Every column type with its edge values.
const TYPES: &str = r#"
CREATE DATABASE ty CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; USE ty;
CREATE TABLE every (
  id int PRIMARY KEY,
  ti tinyint, tiu tinyint unsigned, si smallint, siu smallint unsigned,
  mi mediumint, miu mediumint unsigned, i int, iu int unsigned,
  bi bigint, biu bigint unsigned,
  de decimal(65,30), de0 decimal(10,0),
  fl float, db double,
  d date, dt datetime(6), dt0 datetime, ts timestamp(6) NULL DEFAULT NULL,
  tm time(6), y year,
  c char(10), vc varchar(100), tx text, lat varchar(50) CHARACTER SET latin1,
  u2 varchar(10) CHARACTER SET ucs2, cp varchar(10) CHARACTER SET cp1251,
  bin binary(4), vb varbinary(100), bl longblob,
  bt bit(64), b1 bit(1),
  en enum('a','b','c d'), st set('x','y','z'),
  js json, g geometry,
  gen bigint AS (i * 2) VIRTUAL, gst bigint AS (i + 1) PERSISTENT,
  inv int INVISIBLE
) ENGINE=InnoDB;
SET SESSION sql_mode = '';
INSERT INTO every (id, ti, tiu, si, siu, mi, miu, i, iu, bi, biu, de, de0, fl, db, d, dt, dt0, ts, tm, y,
  c, vc, tx, lat, bin, vb, bl, bt, b1, en, st, js, g, inv) VALUES
 (1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
  -9223372036854775808, 18446744073709551615,
  '-99999999999999999999999999999999999.999999999999999999999999999999', 9999999999,
  3.4028235e38, 2.2250738585072014e-308,
  '0000-00-00', '0000-00-00 00:00:00.000000', '9999-12-31 23:59:59', '1970-01-01 00:00:01.000001',
  '-838:59:59.000000', 0,
  '', '', '', '', x'00000000', '', '', b'0', b'0', 'a', '', '{}', ST_GeomFromText('POINT(0 0)'), -1),
 (2, 127, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, 0,
  '0.000000000000000000000000000001', -1,
  1.1754944e-38, 1.7976931348623157e308,
  '2024-02-29', '2038-01-19 03:14:08.123456', '1000-01-01 00:00:00', '2038-01-19 03:14:07.999999',
  '838:59:59.999999', 2155,
  'ab', 'tab\there\nnewline\\back', '😀 four-byte ✓', 'caf\xe9', x'00ff0aff', x'5c4e', x'000102ff5c0a09',
  b'1111111111111111111111111111111111111111111111111111111111111111', b'1',
  'c d', 'x,z', '{"k": [1, 2.5, "s\\u00e9", null]}', ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0))'), 7),
 (3, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 0.1, 0.1,
  '1000-01-01', '2000-01-01 00:00:00', '2000-01-01 00:00:00', '2001-01-01 00:00:00',
  '00:00:00.5', 1901,
  'x', '\\N', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, -0.0, -1e-300,
  NULL, NULL, NULL, NULL, '-00:00:00.000001', NULL,
  NULL, 'N', 'NULL', 'a\\Nb', NULL, x'', NULL, NULL, NULL, 'a', '', 'null', NULL, NULL);
INSERT INTO every (id, bl) VALUES (5, REPEAT(x'00ff5c0a09', 3355443));
UPDATE every SET lat = x'636166E95C', u2 = '日本語', cp = x'CFF0E8E2E5F2' WHERE id = 2;
"#;

fn rows(m: &Maria, db: &str) -> String {
    m.root(&format!(
        "SELECT id, ti, tiu, si, siu, mi, miu, i, iu, bi, biu, de, de0, HEX(fl), HEX(db), \
         CAST(fl AS DOUBLE), db, d, dt, dt0, ts, tm, y, HEX(c), HEX(vc), HEX(tx), HEX(lat), HEX(u2), HEX(cp), lat, u2, HEX(bin), \
         HEX(vb), MD5(bl), LENGTH(bl), HEX(bt), HEX(b1), en, st, js, HEX(g), gen, gst, inv \
         FROM {db}.every ORDER BY id"
    ))
}

fn checksum(m: &Maria, table: &str) -> String {
    m.root(&format!("CHECKSUM TABLE {table} EXTENDED"))
        .split('\t')
        .nth(1)
        .unwrap()
        .to_string()
}

#[test]
fn every_type_round_trips_exactly() {
    let env = Env::new();
    let repo = env.init_local("repo");
    let m = Maria::start();
    m.root(TYPES);
    let b = backup(&repo, &format!("{}/ty", m.url()), &[]);
    let id = b["id"].as_str().unwrap();
    restore(&repo, id, &m.url(), &["--rename", "ty:ty2"]);
    let (a, c) = (rows(&m, "ty"), rows(&m, "ty2"));
    assert_eq!(a.lines().count(), 5, "{a}");
    // Text in other character sets is stored as the server holds it.
    assert!(a.contains("636166E95C\t65E5672C8A9E\tCFF0E8E2E5F2"), "{a}");
    assert_eq!(a, c);
    assert_eq!(checksum(&m, "ty.every"), checksum(&m, "ty2.every"));
    // Definitions as the server gives them, under the new name.
    let def = |db: &str| {
        m.root(&format!("SHOW CREATE TABLE {db}.every"))
            .replace(db, "DB")
    };
    assert_eq!(def("ty"), def("ty2"));
    // A second server restores it too (a fresh target, same bytes).
    let other = Maria::start_with(2, &[]);
    restore(&repo, id, &other.url(), &[]);
    assert_eq!(rows(&other, "ty"), a);
    run_ok(arca(), &["check", "--repo", &repo, "--read-data"]);
}

const SHOP: &str = r#"
CREATE DATABASE shop; USE shop;
CREATE TABLE customers (id int AUTO_INCREMENT PRIMARY KEY, name varchar(50), email varchar(80), KEY by_name (name), UNIQUE KEY by_email (email)) AUTO_INCREMENT=1000;
CREATE TABLE orders (id bigint AUTO_INCREMENT PRIMARY KEY, customer int NOT NULL, total decimal(10,2),
  KEY (customer), CONSTRAINT fk_c FOREIGN KEY (customer) REFERENCES customers (id));
CREATE TABLE history (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE COLUMNS (at)
  (PARTITION p2020 VALUES LESS THAN ('2021-01-01'), PARTITION pmax VALUES LESS THAN (MAXVALUE));
INSERT INTO history VALUES (1, '2020-05-01'), (2, '2024-01-01');
CREATE TABLE audit (n int AUTO_INCREMENT PRIMARY KEY, what varchar(100));
CREATE TABLE nokey (a int, b varchar(10));
INSERT INTO customers (name, email) SELECT CONCAT('c', seq), CONCAT('c', seq, '@x') FROM seq_1_to_300;
INSERT INTO orders (customer, total) SELECT 1000 + seq % 300, seq / 7 FROM seq_1_to_5000;
INSERT INTO nokey SELECT seq % 10, 'x' FROM seq_1_to_100;
CREATE SEQUENCE tickets START WITH 100 INCREMENT BY 5;
SELECT NEXTVAL(tickets), NEXTVAL(tickets);
CREATE DEFINER=`arca`@`%` SQL SECURITY DEFINER VIEW big_orders AS SELECT o.id, c.name FROM shop.orders o JOIN shop.customers c ON c.id = o.customer WHERE o.total > 500;
CREATE VIEW biggest AS SELECT MAX(id) AS id FROM big_orders;
DELIMITER ;;
CREATE DEFINER=`arca`@`%` PROCEDURE count_orders(OUT n int) BEGIN SELECT COUNT(*) INTO n FROM shop.orders; END;;
CREATE FUNCTION twice(x int) RETURNS int DETERMINISTIC RETURN x * 2;;
CREATE TRIGGER log_order AFTER INSERT ON orders FOR EACH ROW INSERT INTO shop.audit (what) VALUES (CONCAT('order ', NEW.id));;
CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE DO DELETE FROM shop.audit;;
DELIMITER ;
CREATE DATABASE other; CREATE TABLE other.t (id int PRIMARY KEY); INSERT INTO other.t VALUES (1), (2);
"#;

#[test]
fn definitions_selection_renames_and_replace() {
    let env = Env::new();
    let repo = env.init_local("repo");
    let m = Maria::start();
    let out = Command::new("mariadb")
        .arg(format!("--socket={}", m.socket().display()))
        .args(["-uroot"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(SHOP.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b = backup(&repo, &m.url(), &["--databases", "shop,other"]);
    let id = b["id"].as_str().unwrap();
    let counts = |db: &str| {
        m.root(&format!(
            "SELECT (SELECT COUNT(*) FROM {db}.customers), (SELECT COUNT(*) FROM {db}.orders), (SELECT SUM(total) FROM {db}.orders), (SELECT COUNT(*) FROM {db}.nokey)"
        ))
    };

    let original = counts("shop");

    // Into the same server it is refused: the tables exist; nothing written.
    let line = fails(&["restore", id, "--repo", &repo, "--to", &m.url()]);
    assert!(
        line.contains("already has") && line.contains("shop.orders") && line.contains("--replace"),
        "{line}"
    );

    // The whole database under a new name: rows, keys, views, routines,
    // triggers, events, sequence and AUTO_INCREMENT.
    restore(
        &repo,
        id,
        &m.url(),
        &["--databases", "shop", "--rename", "shop:shop2"],
    );
    assert_eq!(counts("shop"), counts("shop2"));
    assert_eq!(
        m.root("SELECT COUNT(*) FROM shop2.audit"),
        "0",
        "the trigger fired on restored rows"
    );
    let keys = m.root("SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = 'shop2' AND TABLE_NAME = 'customers' ORDER BY INDEX_NAME");
    assert_eq!(keys, "by_email\nby_name\nPRIMARY");
    // The view names the renamed database, not the source's.
    let v = m.root("SHOW CREATE VIEW shop2.big_orders");
    assert!(
        v.contains("`shop2`.`orders`") && !v.contains("`shop`."),
        "{v}"
    );
    assert!(v.contains("DEFINER=`arca`@`%`"), "{v}");
    assert_eq!(m.root("SELECT COUNT(*) FROM shop2.biggest"), "1");
    m.root("CALL shop2.count_orders(@n)");
    assert_eq!(
        m.root("CALL shop2.count_orders(@n); SELECT @n, shop2.twice(21)"),
        "5000\t42"
    );
    // AUTO_INCREMENT goes on where the source's would.
    let next = |t: &str| {
        m.root(&format!(
            "SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop' AND TABLE_NAME = '{t}'"
        ))
    };
    let (next_order, next_customer) = (next("orders"), next("customers"));
    m.root("INSERT INTO shop2.orders (customer, total) VALUES (1000, 1)");
    assert_eq!(
        m.root("SELECT what FROM shop2.audit"),
        format!("order {next_order}")
    );
    // A sequence goes on past every value the source may have handed out
    // (as after the source's own restart: from its uncached value).
    let uncached = m.root("SELECT next_not_cached_value FROM shop.tickets");
    assert!(uncached.parse::<i64>().unwrap() >= 110, "{uncached}");
    assert_eq!(m.root("SELECT NEXTVAL(shop2.tickets)"), uncached);
    assert_eq!(
        m.root("INSERT INTO shop2.customers (name) VALUES ('new'); SELECT MAX(id) FROM shop2.customers"),
        next_customer
    );
    assert_eq!(
        m.root("SELECT STATUS FROM information_schema.EVENTS WHERE EVENT_SCHEMA = 'shop2'"),
        "DISABLED"
    );
    assert_eq!(m.root("SELECT PARTITION_NAME, TABLE_ROWS FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = 'shop2' AND TABLE_NAME = 'history' ORDER BY 1"), "p2020\t1\npmax\t1");

    // Tables and a view under other names in another database: the
    // foreign key, the trigger and the view follow them.
    restore(
        &repo,
        id,
        &m.url(),
        &[
            "--tables",
            "shop.customers,shop.orders,shop.big_orders",
            "--rename",
            "shop.customers:other.people",
            "--rename",
            "shop.orders:other.orders2",
            "--rename",
            "shop.big_orders:other.bo",
        ],
    );
    assert_eq!(m.root("SELECT COUNT(*) FROM other.people"), "300");
    assert_eq!(
        m.root("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'other'"),
        "4"
    );
    let fk = m.root(
        "SELECT UNIQUE_CONSTRAINT_SCHEMA, REFERENCED_TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = 'other'",
    );
    assert_eq!(fk, "other\tpeople");
    assert_eq!(
        m.root("SELECT EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'other'"),
        "orders2"
    );
    let v = m.root("SHOW CREATE VIEW other.bo");
    assert!(
        v.contains("`other`.`orders2`") && v.contains("`other`.`people`"),
        "{v}"
    );
    assert_eq!(
        m.root("SELECT COUNT(*) FROM other.bo"),
        m.root("SELECT COUNT(*) FROM shop.big_orders")
    );

    // --replace puts back what was changed.
    m.root("DELETE FROM shop.orders WHERE id > 10; DROP VIEW shop.biggest");
    restore(&repo, id, &m.url(), &["--databases", "shop", "--replace"]);
    assert_eq!(counts("shop"), original);
    assert_eq!(m.root("SELECT COUNT(*) FROM shop.biggest"), "1");

    // Names that are not in the backup are refused, naming them.
    let line = fails(&[
        "restore",
        id,
        "--repo",
        &repo,
        "--to",
        &m.url(),
        "--tables",
        "shop.nope",
    ]);
    assert!(line.contains("nope"), "{line}");
}

#[test]
fn consistent_point_matches_the_recorded_gtid() {
    let env = Env::new();
    let repo = env.init_local("repo");
    let m = Maria::start();
    m.root(
        "CREATE DATABASE bank; USE bank; CREATE TABLE acct (id int PRIMARY KEY, bal bigint);
         CREATE TABLE moves (n bigint PRIMARY KEY);
         CREATE TABLE fill (id int PRIMARY KEY, pad blob);
         INSERT INTO acct SELECT seq, 1000 FROM seq_1_to_100;
         INSERT INTO fill SELECT seq, RANDOM_BYTES(1000) FROM seq_1_to_30000;",
    );
    let start: i64 = m
        .root("SELECT @@gtid_binlog_pos")
        .rsplit('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicI64::new(0));
    let mut conn = m.connect();
    let (flag, done) = (stop.clone(), count.clone());
    let writer = std::thread::spawn(move || {
        let mut n = 0i64;
        while !flag.load(Ordering::SeqCst) {
            n += 1;
            let (a, b) = (n % 100 + 1, (n * 7) % 100 + 1);
            conn.query_drop(format!(
                "BEGIN; UPDATE bank.acct SET bal = bal - 3 WHERE id = {a}; UPDATE bank.acct SET bal = bal + 3 WHERE id = {b}; INSERT INTO bank.moves VALUES ({n}); COMMIT"
            ))
            .unwrap();
            done.store(n, Ordering::SeqCst);
        }
    });
    while count.load(Ordering::SeqCst) < 50 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let b = backup(&repo, &format!("{}/bank", m.url()), &["--parallelism", "3"]);
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let id = b["id"].as_str().unwrap();
    restore(&repo, id, &m.url(), &["--rename", "bank:copy"]);
    assert_eq!(
        m.root("SELECT SUM(bal) FROM copy.acct"),
        "100000",
        "a torn transfer"
    );
    let moves: i64 = m.root("SELECT COUNT(*) FROM copy.moves").parse().unwrap();
    assert_eq!(
        m.root("SELECT COALESCE(MAX(n), 0) FROM copy.moves"),
        moves.to_string()
    );
    assert!(moves >= 50, "{moves}");
    // Each transfer is one GTID: the copy's point is the recorded one.
    let shown = run_ok(arca(), &["list", "--repo", &repo, id, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let c = &v["consistency"];
    assert_eq!(c["method"], "BACKUP STAGE BLOCK_COMMIT", "{c}");
    assert_eq!(c["connections"], 3, "{c}");
    assert_eq!(
        c["gtid"].as_str().unwrap(),
        format!("0-1-{}", start + moves),
        "{c}"
    );
    assert!(
        c["binlog_file"].as_str().unwrap().starts_with("binlog."),
        "{c}"
    );
}

#[test]
fn bad_input_is_one_clear_line() {
    let env = Env::new();
    let repo = env.init_local("repo");
    let m = Maria::start();
    m.root(
        "CREATE DATABASE d; CREATE TABLE d.t (id int PRIMARY KEY); \
         CREATE USER weak@'%' IDENTIFIED BY 'weakpw'; GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON *.* TO weak@'%';",
    );
    let port = m.port;
    // A wrong password: named as such, and never printed.
    let line = fails(&[
        "backup",
        "--repo",
        &repo,
        "--source",
        &format!("mysql://arca:wrongpw@127.0.0.1:{port}"),
    ]);
    assert!(
        line.contains("access denied") && !line.contains("wrongpw"),
        "{line}"
    );
    // A missing table or database.
    let src = m.url();
    let line = fails(&[
        "backup", "--repo", &repo, "--source", &src, "--tables", "d.nope",
    ]);
    assert!(line.contains("no table d.nope"), "{line}");
    let line = fails(&[
        "backup",
        "--repo",
        &repo,
        "--source",
        &src,
        "--databases",
        "nodb",
    ]);
    assert!(line.contains("no database nodb"), "{line}");
    let line = fails(&[
        "backup",
        "--repo",
        &repo,
        "--source",
        &src,
        "--tables",
        "justatable",
    ]);
    assert!(line.contains("DATABASE.TABLE"), "{line}");
    // Without RELOAD several connections cannot share a point; one can.
    let weak = format!("mysql://weak:weakpw@127.0.0.1:{port}/d");
    let line = fails(&[
        "backup",
        "--repo",
        &repo,
        "--source",
        &weak,
        "--parallelism",
        "2",
    ]);
    assert!(
        line.contains("RELOAD") && line.contains("--parallelism 1"),
        "{line}"
    );
    let b = backup(&repo, &weak, &["--parallelism", "1"]);
    assert_eq!(b["consistency"]["method"], "one snapshot");
    assert!(!serde_json::to_string(&b).unwrap().contains("weakpw"));
    // The password from MYSQL_PWD or a file.
    let pw = env.path("pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    run_ok(
        arca(),
        &[
            "backup",
            "--repo",
            &repo,
            "--source",
            &m.url_without_password(),
            "--databases",
            "d",
            "--password-file",
            pw.to_str().unwrap(),
        ],
    );
    let out = arca()
        .env("MYSQL_PWD", PASSWORD)
        .args([
            "backup",
            "--repo",
            &repo,
            "--source",
            &m.url_without_password(),
            "--databases",
            "d",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // Over the server's socket.
    let sock = format!("mysql://root@/d?socket={}", m.socket().display());
    let b2 = backup(&repo, &sock, &[]);
    assert_eq!(
        b2["source"],
        format!("mysql://root@/?socket={}", m.socket().display())
    );
    // A target that refuses LOAD DATA LOCAL INFILE says how to allow it.
    let strict = Maria::start_with(2, &["--local-infile=0"]);
    let line = fails(&[
        "restore",
        b["id"].as_str().unwrap(),
        "--repo",
        &repo,
        "--to",
        &strict.url(),
    ]);
    assert!(line.contains("SET GLOBAL local_infile = 1"), "{line}");
    // A target that is not a server, and options other engines refuse.
    let id = b["id"].as_str().unwrap();
    let line = fails(&[
        "restore",
        id,
        "--repo",
        &repo,
        "--to",
        env.path("x").to_str().unwrap(),
    ]);
    assert!(line.contains("--to mysql://"), "{line}");
    let db = env.path("a.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE x(a)")
        .unwrap();
    let line = fails(&[
        "backup",
        "--repo",
        &repo,
        "--source",
        db.to_str().unwrap(),
        "--databases",
        "d",
    ]);
    assert!(line.contains("whole database"), "{line}");
}

use std::process::Command;

/// Shuts a server down when dropped: its socket and root's password.
struct Shutdown(String, String);

impl Drop for Shutdown {
    fn drop(&mut self) {
        let _ = Command::new("mariadb-admin")
            .env("MYSQL_PWD", &self.1)
            .arg(format!("--socket={}", self.0))
            .args(["-uroot", "shutdown"])
            .output();
    }
}

#[test]
fn restores_into_a_new_instance() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    // The new server runs as the mysql user: it must reach its directory.
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let repo = env.init_local("repo");
    let m = Maria::start();
    m.root("CREATE DATABASE app; CREATE TABLE app.t (id int PRIMARY KEY, s varchar(10)); INSERT INTO app.t VALUES (1, 'a'), (2, 'b');");
    let b = backup(&repo, &format!("{}/app", m.url()), &[]);
    let id = b["id"].as_str().unwrap();
    let dir = env.path("instance");
    let out = run_ok(
        arca(),
        &[
            "restore",
            id,
            "--repo",
            &repo,
            "--to-instance",
            dir.to_str().unwrap(),
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let socket = v["socket"].as_str().unwrap().to_string();
    // Root has a password only the caller can read.
    let pw_file = dir.join("root-password");
    let password = std::fs::read_to_string(&pw_file)
        .unwrap()
        .trim()
        .to_string();
    let _stop = Shutdown(socket.clone(), password.clone());
    assert_eq!(
        std::fs::metadata(&pw_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(v["port"].as_u64().unwrap() > 0, "{v}");
    let open = Command::new("mariadb")
        .arg(format!("--socket={socket}"))
        .args(["-uroot", "-N", "-B", "-e", "SELECT 1"])
        .output()
        .unwrap();
    assert!(!open.status.success(), "root without a password got in");
    let copy = Command::new("mariadb")
        .env("MYSQL_PWD", &password)
        .arg(format!("--socket={socket}"))
        .args([
            "-uroot",
            "-N",
            "-B",
            "-e",
            "SELECT id, s FROM app.t ORDER BY id",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&copy.stdout), "1\ta\n2\tb\n");
    assert_eq!(
        m.root("SELECT COUNT(*) FROM app.t"),
        "2",
        "the source is untouched"
    );
    // Its directory is taken now.
    let line = fails(&[
        "restore",
        id,
        "--repo",
        &repo,
        "--to-instance",
        dir.to_str().unwrap(),
    ]);
    assert!(line.contains("not empty"), "{line}");
}

#[test]
fn a_target_that_cannot_take_the_backup_is_refused_before_anything_is_written() {
    let env = Env::new();
    let repo = env.init_local("repo");
    let m = Maria::start();
    m.root(
        "CREATE DATABASE App; CREATE TABLE App.Orders (id int PRIMARY KEY); INSERT INTO App.Orders VALUES (1);
         CREATE USER shopper@'%' IDENTIFIED BY 'shop-pw'; GRANT SELECT ON App.* TO shopper@'%';",
    );
    let b = backup(&repo, &m.url(), &["--databases", "App", "--users"]);
    let id = b["id"].as_str().unwrap();

    // Other letter-case rules for names.
    let folding = Maria::start_with(2, &["--lower-case-table-names=1"]);
    let line = fails(&["restore", id, "--repo", &repo, "--to", &folding.url()]);
    assert!(line.contains("lower_case_table_names"), "{line}");
    assert_eq!(
        folding.root("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'app'"),
        "0"
    );

    // A collation the target does not have (the backup made to use one).
    let good = super::restore_target::only_manifest(&repo);
    let forged = super::restore_target::forge(&repo, &good, |m| {
        m.meta["schema"]["collations"] = serde_json::json!(["utf8mb4_klingon_ci"]);
    });
    let fresh = Maria::start_with(3, &[]);
    let line = fails(&["restore", &forged, "--repo", &repo, "--to", &fresh.url()]);
    assert!(line.contains("utf8mb4_klingon_ci"), "{line}");
    assert_eq!(
        fresh.root("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'App'"),
        "0"
    );

    // Users and grants come back with --users only.
    restore(&repo, id, &fresh.url(), &[]);
    assert_eq!(
        fresh.root("SELECT COUNT(*) FROM mysql.user WHERE User = 'shopper'"),
        "0"
    );
    restore(&repo, id, &fresh.url(), &["--users", "--replace"]);
    assert_eq!(fresh.root("SHOW GRANTS FOR shopper@'%'").lines().count(), 2);
    let login = Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-P",
            &fresh.port.to_string(),
            "-ushopper",
            "-pshop-pw",
            "-N",
            "-B",
        ])
        .args(["-e", "SELECT id FROM App.Orders"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&login.stdout), "1\n", "{login:?}");
}

#[test]
fn large_tables_are_read_and_loaded_in_key_ranges() {
    let env = Env::new();
    let repo = env.init_local("repo");
    let m = Maria::start();
    m.root(
        "CREATE DATABASE big; USE big;
         CREATE TABLE r (id bigint PRIMARY KEY, k int, pad varbinary(200), KEY (k));
         INSERT INTO r SELECT CAST(seq AS SIGNED) - 50000, seq % 97, RANDOM_BYTES(150) FROM seq_1_to_100000;
         CREATE TABLE u (id bigint unsigned PRIMARY KEY, v int);
         INSERT INTO u SELECT 18446744073709551615 - seq * 1000000000, seq FROM seq_0_to_30000;
         ANALYZE TABLE r, u;",
    );
    let with_ranges = |args: &[&str]| {
        let out = arca()
            .env("ARCA_MYSQL_RANGE_MIB", "1")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let src = format!("{}/big", m.url());
    let b = with_ranges(&[
        "backup",
        "--repo",
        &repo,
        "--source",
        &src,
        "--json",
        "--parallelism",
        "3",
    ]);
    let files = b["files"].as_array().unwrap();
    let ranges = files
        .iter()
        .filter(|f| f["path"].as_str().unwrap().starts_with("big/r/"))
        .count();
    assert!(ranges >= 4, "{files:?}");
    let id = b["id"].as_str().unwrap();
    restore(
        &repo,
        id,
        &m.url(),
        &["--rename", "big:big2", "--parallelism", "3"],
    );
    for t in ["r", "u"] {
        assert_eq!(
            checksum(&m, &format!("big.{t}")),
            checksum(&m, &format!("big2.{t}")),
            "{t}"
        );
        assert_eq!(
            m.root(&format!("SELECT COUNT(*) FROM big.{t}")),
            m.root(&format!("SELECT COUNT(*) FROM big2.{t}"))
        );
    }
    // Rows added past both ends land in the open-ended first and last ranges.
    m.root("INSERT INTO big.r VALUES (-9000000, 1, 'low'), (9000000, 2, 'high')");
    let b2 = with_ranges(&["backup", "--repo", &repo, "--source", &src, "--json"]);
    let paths = |b: &serde_json::Value| -> Vec<String> {
        b["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap().to_string())
            .collect()
    };
    let (before, after) = (paths(&b), paths(&b2));
    assert!(
        before.iter().all(|p| after.contains(p)),
        "the ranges moved: {before:?} → {after:?}"
    );
    restore(
        &repo,
        b2["id"].as_str().unwrap(),
        &m.url(),
        &["--rename", "big:big3"],
    );
    assert_eq!(checksum(&m, "big.r"), checksum(&m, "big3.r"));
}

#[test]
fn an_interrupted_parallel_backup_stops_at_once_and_records_nothing() {
    let env = Env::new();
    let repo = env.init_local("repo");
    let m = Maria::start();
    // Several ranges per table, so workers wait with ranges read ahead
    // when the backup is interrupted.
    m.root(
        "CREATE DATABASE big; USE big;
         CREATE TABLE a (id int PRIMARY KEY, pad blob);
         CREATE TABLE b (id int PRIMARY KEY, pad blob);
         INSERT INTO a SELECT seq, RANDOM_BYTES(1000) FROM seq_1_to_60000;
         INSERT INTO b SELECT seq, RANDOM_BYTES(1000) FROM seq_1_to_60000;
         ANALYZE TABLE a, b;",
    );
    let mut child = std::process::Command::new(super::postgres::arca_bin())
        .env("ARCA_MYSQL_RANGE_MIB", "4")
        .args([
            "backup",
            "--repo",
            &repo,
            "--source",
            &format!("{}/big", m.url()),
        ])
        .args(["--parallelism", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let data = std::path::Path::new(&repo).join("data");
    let packs = || walk(&data);
    fn walk(p: &std::path::Path) -> usize {
        std::fs::read_dir(p).map_or(0, |d| {
            d.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while packs() == 0 && child.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "no pack in 60 s");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the backup ended before it could be interrupted"
    );
    super::cancel::signal(&child, libc::SIGINT);
    let stopped = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(130));
            break;
        }
        assert!(
            stopped.elapsed().as_secs() < 30,
            "the interrupted backup hangs"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let listed = run_ok(arca(), &["list", "--repo", &repo, "--json"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&listed)
            .unwrap()
            .as_array()
            .map(|a| a.len()),
        Some(0),
        "{listed}"
    );
    run_ok(arca(), &["check", "--repo", &repo, "--read-data"]);
}
