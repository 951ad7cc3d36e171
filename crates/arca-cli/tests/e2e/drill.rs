//! Restore drills (`arca_ops::drill::drill`, the call the daemon makes on a
//! schedule), against real SQLite, PostgreSQL and MariaDB: a drill passes
//! and says what it checked, a damaged backup fails naming the backup, and
//! nothing is left behind (the scratch directory empty, no server running,
//! no scratch database), also when the drill is cancelled.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arca_ops::drill::{drill, DrillOptions, DrillReport};
use arca_repo::{Cancel, Location, NoProgress, Progress, Repository};

use super::common::{make_db, packs, Env};
use super::mariadb::{Maria, PASSWORD};
use super::postgres::{server_repo, Pg};

fn open(repo: &str) -> Repository {
    Repository::open(&Location::parse(repo).unwrap()).unwrap()
}

/// A scratch directory in `env`, searchable by a server's own user.
fn scratch(env: &Env) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let d = env.path("scratch");
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

fn options(source: &str, scratch: &Path) -> DrillOptions {
    DrillOptions {
        source: source.to_string(),
        scratch: scratch.to_path_buf(),
        backup: None,
        password_file: None,
        parallelism: 2,
    }
}

fn assert_empty(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        left.is_empty(),
        "the drill left {left:?} in {}",
        dir.display()
    );
}

fn has_line(r: &DrillReport, line: &str) -> bool {
    r.checks.iter().any(|c| c == line)
}

fn line_starting<'a>(r: &'a DrillReport, start: &str) -> &'a str {
    r.checks
        .iter()
        .find(|c| c.starts_with(start))
        .unwrap_or_else(|| panic!("no check line starting {start:?}: {:#?}", r.checks))
}

fn sqlite_backup(env: &Env, db: &Path, repo: &str) -> String {
    env.backup(repo, db)["id"].as_str().unwrap().to_string()
}

/// Trips the token once the restore has written anything.
struct CancelOnProgress(Cancel);

impl Progress for CancelOnProgress {
    fn inc(&self, _bytes: u64) {
        self.0.cancel();
    }
}

#[test]
fn sqlite_drill_passes_and_leaves_nothing_in_scratch() {
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 3, "WAL");
    let repo = env.init_local("repo");
    let first = sqlite_backup(&env, &db, &repo);
    super::common::touch_rows(&db, 5);
    let second = sqlite_backup(&env, &db, &repo);
    let scratch = scratch(&env);
    let r = open(&repo);
    let source = format!("sqlite://{}", db.display());

    let report = drill(&r, &options(&source, &scratch), &NoProgress).unwrap();
    assert_eq!(report.backup, second, "the newest backup by default");
    assert_eq!(report.engine, "SQLite");
    let size = std::fs::metadata(&db).unwrap().len();
    assert_eq!(report.restored_bytes, size);
    assert!(
        has_line(&report, "PRAGMA integrity_check: ok"),
        "{report:#?}"
    );
    let pages = size / 4096;
    assert!(
        has_line(
            &report,
            &format!("pages: {pages} of 4096 bytes = {pages} in the backup")
        ),
        "{report:#?}"
    );
    assert!(
        has_line(
            &report,
            &format!("size: {size} bytes = {size} in the backup")
        ),
        "{report:#?}"
    );
    assert!(report.restore_seconds > 0.0 && report.verify_seconds > 0.0);
    assert_empty(&scratch);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["backup"], second);
    assert_eq!(json["engine"], "SQLite");
    assert!(json["checks"].as_array().unwrap().len() >= 3);
    for key in ["restored_bytes", "restore_seconds", "verify_seconds"] {
        assert!(json[key].is_number(), "{json}");
    }

    // A backup named by a prefix of its id; the source as given without
    // the scheme.
    let mut opts = options(db.to_str().unwrap(), &scratch);
    opts.backup = Some(first[..8].to_string());
    let report = drill(&r, &opts, &NoProgress).unwrap();
    assert_eq!(report.backup, first);
    assert_empty(&scratch);

    // No backup of another source.
    let other = env.path("other.db");
    make_db(&other, 1, "DELETE");
    let e = drill(&r, &options(other.to_str().unwrap(), &scratch), &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(e.contains("holds no backup of sqlite://"), "{e}");
    assert!(e.contains("other.db"), "{e}");
    // A scratch directory that is not there.
    let e = drill(&r, &options(&source, &env.path("nowhere")), &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nowhere"), "{e}");
    assert_empty(&scratch);
}

#[test]
fn sqlite_drill_of_a_damaged_pack_fails_naming_the_backup() {
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 3, "DELETE");
    let repo = env.init_local("repo");
    let id = sqlite_backup(&env, &db, &repo);
    let pack = packs(&repo).into_iter().next().unwrap();
    let len = std::fs::metadata(&pack).unwrap().len();
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&pack)
        .unwrap();
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(len / 3)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(len / 3)).unwrap();
    f.write_all(&[b[0] ^ 0x40]).unwrap();
    drop(f);

    let scratch = scratch(&env);
    let e = drill(
        &open(&repo),
        &options(db.to_str().unwrap(), &scratch),
        &NoProgress,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with(&format!("drill of backup {}: ", &id[..8])),
        "{e}"
    );
    assert!(e.contains("damaged"), "{e}");
    assert_empty(&scratch);
}

#[test]
fn sqlite_drill_of_a_damaged_database_fails_its_integrity_check() {
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 3, "DELETE");
    // A leaf page of the table overwritten: SQLite still opens the file
    // and the backup takes it as it is, as it takes any source.
    let pages = std::fs::metadata(&db).unwrap().len() / 4096;
    let mut f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    f.seek(SeekFrom::Start((pages / 2) * 4096)).unwrap();
    f.write_all(&[0xff; 4096]).unwrap();
    drop(f);
    let repo = env.init_local("repo");
    let id = sqlite_backup(&env, &db, &repo);

    let scratch = scratch(&env);
    let e = drill(
        &open(&repo),
        &options(db.to_str().unwrap(), &scratch),
        &NoProgress,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with(&format!(
            "drill of backup {}: PRAGMA integrity_check failed: ",
            &id[..8]
        )),
        "{e}"
    );
    assert_empty(&scratch);
}

#[test]
fn a_cancelled_drill_stops_and_leaves_nothing() {
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 8, "DELETE");
    let repo = env.init_local("repo");
    let id = sqlite_backup(&env, &db, &repo);
    let scratch = scratch(&env);
    let r = open(&repo);
    let e = drill(
        &r,
        &options(db.to_str().unwrap(), &scratch),
        &CancelOnProgress(r.cancel.clone()),
    )
    .unwrap_err();
    match &e {
        arca_ops::Error::Repo(inner) => assert!(inner.is_interrupted(), "{e}"),
        other => panic!("not an interruption: {other}"),
    }
    assert!(
        e.to_string()
            .starts_with(&format!("drill of backup {} interrupted", &id[..8])),
        "{e}"
    );
    assert_empty(&scratch);
}

/// The port in "… started on 127.0.0.1:PORT".
fn drill_port(r: &DrillReport) -> u16 {
    line_starting(r, "recovery: ")
        .rsplit_once("127.0.0.1:")
        .unwrap()
        .1
        .parse()
        .unwrap()
}

/// Whether a process's command line names `path`.
fn running_in(path: &Path) -> Vec<String> {
    let out = std::process::Command::new("pgrep")
        .arg("-af")
        .arg(path.to_str().unwrap())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("pgrep"))
        .map(str::to_string)
        .collect()
}

/// A cluster archiving into a repository, with a database `shop` beside
/// `postgres`, backed up once; returns the repository, the server and the
/// backup's id.
fn pg_backed_up(env: &Env) -> (String, Pg, String) {
    let repo = server_repo(env);
    let pg = Pg::start(Some(&repo));
    pg.sql("CREATE DATABASE shop");
    let shop = |sql: &str| {
        let out = std::process::Command::new(super::postgres::bin_dir().join("psql"))
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args(["-U", "postgres", "-p", &pg.port.to_string(), "-d", "shop"])
            .args(["-c", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    shop("CREATE TABLE orders(id int PRIMARY KEY, note text)");
    shop("INSERT INTO orders SELECT g, repeat('x', g % 50) FROM generate_series(1, 20000) g");
    shop("CREATE TABLE customers AS SELECT g AS id FROM generate_series(1, 500) g");
    shop("CREATE INDEX ON customers(id)");
    pg.sql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g");
    let out = super::postgres::ok(&["backup", "--repo", &repo, "--source", &pg.url(), "--json"]);
    let id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    (repo, pg, id)
}

#[test]
fn postgres_drill_passes_and_stops_its_server() {
    let env = Env::new();
    let (repo, pg, id) = pg_backed_up(&env);
    // Written after the backup: not in the drilled copy, and the source
    // goes on as it was.
    pg.sql("INSERT INTO t SELECT g FROM generate_series(1001, 1100) g");
    let scratch = scratch(&env);
    let r = open(&repo);
    let report = drill(&r, &options(&pg.url(), &scratch), &NoProgress).unwrap();
    assert_eq!(report.backup, id);
    assert_eq!(report.engine, "PostgreSQL");
    assert!(report.restored_bytes > 10 << 20, "{report:#?}");
    let recovery = line_starting(&report, "recovery: ");
    assert!(
        recovery.contains(" replayed to the backup's end ("),
        "{recovery}"
    );
    let amcheck = line_starting(&report, "pg_amcheck --all --heapallindexed: ");
    assert!(
        amcheck.ends_with(" in 3 databases, no corruption"),
        "{amcheck}"
    );
    assert!(has_line(&report, "database shop: 2 tables"), "{report:#?}");
    assert!(
        has_line(&report, "database postgres: 1 table"),
        "{report:#?}"
    );
    assert!(
        has_line(&report, "database template1: 0 tables"),
        "{report:#?}"
    );
    line_starting(&report, "data_checksums: ");

    // Nothing left: no server on its port or in its directory, nothing in
    // scratch; the source untouched and still archiving.
    let port = drill_port(&report);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the drill's server still listens on {port}"
    );
    assert_eq!(running_in(&scratch), Vec::<String>::new());
    assert_empty(&scratch);
    assert_eq!(pg.sql("SELECT count(*) FROM t"), "1100");
    pg.archive_now();

    // A scratch directory the server's user cannot enter is refused before
    // anything is restored.
    use std::os::unix::fs::PermissionsExt;
    let closed = env.path("closed");
    std::fs::create_dir(&closed).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    let inner = closed.join("scratch");
    std::fs::create_dir(&inner).unwrap();
    let e = drill(&r, &options(&pg.url(), &inner), &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!("drill of backup {}: ", &id[..8])),
        "{e}"
    );
    assert!(e.contains("cannot enter"), "{e}");
    assert_empty(&inner);
}

#[test]
fn a_postgres_drill_cancelled_while_its_server_runs_stops_it() {
    let env = Env::new();
    let (repo, pg, _id) = pg_backed_up(&env);
    let scratch = scratch(&env);
    let r = open(&repo);
    // Trips the token once the drill's server has written its pid file.
    let token = r.cancel.clone();
    let watched = scratch.clone();
    let watcher = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(300);
        while Instant::now() < deadline {
            let started = std::fs::read_dir(&watched)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.path().join("pgdata/postmaster.pid").exists());
            if started {
                token.cancel();
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    });
    let e = drill(&r, &options(&pg.url(), &scratch), &NoProgress).unwrap_err();
    assert!(watcher.join().unwrap(), "the drill's server never started");
    match &e {
        arca_ops::Error::Repo(inner) => assert!(inner.is_interrupted(), "{e}"),
        other => panic!("not an interruption: {other}"),
    }
    assert_eq!(running_in(&scratch), Vec::<String>::new());
    assert_empty(&scratch);
    assert_eq!(pg.sql("SELECT count(*) FROM t"), "1000");
}

/// The statements in the server's binary log that contain `needle`.
fn logged(m: &Maria, needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for log in m.root("SHOW BINARY LOGS").lines() {
        let file = log.split('\t').next().unwrap();
        let events = m.root(&format!("SHOW BINLOG EVENTS IN '{file}'"));
        out.extend(
            events
                .lines()
                .filter(|l| l.contains(needle))
                .map(str::to_string),
        );
    }
    out
}

fn databases(m: &Maria) -> String {
    m.root("SHOW DATABASES")
}

#[test]
fn mariadb_drill_passes_and_drops_its_scratch_databases() {
    let m = Maria::start();
    m.root(
        "CREATE DATABASE shop; USE shop; \
         CREATE TABLE orders (id int PRIMARY KEY, customer int, note varchar(40), KEY (customer)); \
         INSERT INTO orders SELECT seq, seq % 97, concat('order ', seq) FROM seq_1_to_5000; \
         CREATE TABLE empty_one (id int PRIMARY KEY); \
         CREATE TABLE log (at int) ENGINE=MyISAM; \
         INSERT INTO log SELECT seq FROM seq_1_to_30; \
         CREATE VIEW big AS SELECT * FROM orders WHERE id > 4000; \
         CREATE TRIGGER stamp BEFORE INSERT ON orders FOR EACH ROW SET NEW.note = 'new'; \
         CREATE EVENT tick ON SCHEDULE EVERY 1 SECOND DO DELETE FROM log; \
         CREATE DATABASE crm; USE crm; \
         CREATE TABLE people (id int PRIMARY KEY, name text); \
         INSERT INTO people SELECT seq, repeat('p', seq % 30) FROM seq_1_to_700;",
    );
    let env = Env::new();
    let repo = env.init_local("repo");
    let out = super::common::run_ok(
        super::postgres::arca(),
        &["backup", "--repo", &repo, "--source", &m.url(), "--json"],
    );
    let id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = databases(&m);
    let sums = m.root("CHECKSUM TABLE shop.orders, shop.log, crm.people");
    let scratch = scratch(&env);
    let r = open(&repo);

    let report = drill(&r, &options(&m.url(), &scratch), &NoProgress).unwrap();
    // The scratch copy's event was created disabled (the server's binary
    // log has the statement).
    let created: Vec<String> = logged(&m, "EVENT `tick`")
        .into_iter()
        .filter(|l| l.contains("arca_drill_"))
        .collect();
    assert_eq!(created.len(), 1, "{created:#?}");
    assert!(
        created[0].contains("ON COMPLETION NOT PRESERVE DISABLE DO DELETE FROM log"),
        "{created:#?}"
    );
    assert_eq!(report.backup, id);
    assert_eq!(report.engine, "MySQL");
    assert!(report.restored_bytes > 0);
    for line in [
        "CHECK TABLE shop.orders: OK",
        "rows shop.orders: 5000 = 5000 in the backup",
        "CHECK TABLE shop.empty_one: OK",
        "rows shop.empty_one: 0 = 0 in the backup",
        "CHECK TABLE shop.log: OK",
        "rows shop.log: 30 = 30 in the backup",
        "CHECK TABLE crm.people: OK",
        "rows crm.people: 700 = 700 in the backup",
        "objects shop: 1 view, 1 trigger, 1 event created",
        "events: 1 event created disabled (a copy's events would run on the source's server)",
    ] {
        assert!(
            has_line(&report, line),
            "no {line:?} in {:#?}",
            report.checks
        );
    }
    let first = line_starting(&report, "restored into MariaDB at 127.0.0.1:");
    assert!(
        first.contains(" as 2 scratch databases arca_drill_"),
        "{first}"
    );

    // The scratch databases are gone, the source's as they were.
    assert_eq!(databases(&m), before);
    assert_eq!(m.root("SHOW DATABASES LIKE 'arca\\_drill%'"), "");
    assert_eq!(
        m.root("CHECKSUM TABLE shop.orders, shop.log, crm.people"),
        sums,
        "the drill changed the source's tables"
    );
    assert_empty(&scratch);

    // A user who may not create databases is refused before anything is
    // restored; the backup named, the source only says where and as whom.
    m.root(&format!(
        "SET sql_log_bin = 0; CREATE USER weak@'%' IDENTIFIED BY '{PASSWORD}'; \
         GRANT SELECT ON *.* TO weak@'%';"
    ));
    let mut opts = options(
        &format!("mysql://weak:{PASSWORD}@127.0.0.1:{}", m.port),
        &scratch,
    );
    opts.backup = Some(id.clone());
    let e = drill(&r, &opts, &NoProgress).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("drill of backup {}: ", &id[..8])),
        "{e}"
    );
    assert!(e.contains("weak may not create and drop databases"), "{e}");
    assert!(!e.contains(PASSWORD), "{e}");
    assert_eq!(databases(&m), before);
    assert_empty(&scratch);
}

#[test]
fn a_mariadb_drill_cancelled_while_restoring_drops_what_it_made() {
    let m = Maria::start();
    m.root(
        "CREATE DATABASE shop; USE shop; \
         CREATE TABLE orders (id int PRIMARY KEY, note varchar(200)); \
         INSERT INTO orders SELECT seq, repeat('n', 150) FROM seq_1_to_60000;",
    );
    let env = Env::new();
    let repo = env.init_local("repo");
    super::common::run_ok(
        super::postgres::arca(),
        &["backup", "--repo", &repo, "--source", &m.url()],
    );
    let before = databases(&m);
    let scratch = scratch(&env);
    let r = open(&repo);
    let e = drill(
        &r,
        &options(&m.url(), &scratch),
        &CancelOnProgress(r.cancel.clone()),
    )
    .unwrap_err();
    match &e {
        arca_ops::Error::Repo(inner) => assert!(inner.is_interrupted(), "{e}"),
        other => panic!("not an interruption: {other}"),
    }
    assert_eq!(databases(&m), before);
    assert_empty(&scratch);
}
