//! The engine contract: the same behaviour tests, through the same `arca`
//! commands, for every engine Arca backs up.
//!
//! To add an engine: implement [`Source`] for a fixture (make a source
//! holding the contract's tables, connect to it, read what it or a restored
//! copy holds, name a source that is not there), then add one line to the
//! `contract!` invocation at the end of this file. The tests then run as
//! `e2e::contract::<engine>::<test>`.
//!
//! Every source holds three tables: `t(id, v, pad)`, the bulk, with pads of
//! 1000 random bytes (incompressible, so stored bytes measure what changed);
//! `acct(id, bal)`, [`ACCOUNTS`] accounts of [`BALANCE`] each; and
//! `moves(n, amount)`, the writer's log. Each writer transaction moves an
//! amount between two accounts, adds 1 to the `v` of one row of `t` and logs
//! itself as move `n`: in a copy taken at one transaction-consistent point the
//! balances sum to `ACCOUNTS * BALANCE`, the moves are 1..=count, and
//! `sum(v)` is that count.
//!
//! Each PostgreSQL test starts its own cluster: a cluster archives into one
//! repository, and the cost tests need the cluster's first backup to be the
//! first in a fresh repository.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use sha2::{Digest, Sha256};

use super::common::{error_line, integrity_ok, run_ok, Env};
use super::mariadb::Maria;
use super::pg_bad_input::backups;
use super::pg_pitr::started_port;
use super::postgres::{arca, arca_bin, free_port, server_repo, Pg};

pub const ACCOUNTS: i64 = 100;
pub const BALANCE: i64 = 1000;
/// Rows of `t` in a MiB (each pad is 1000 bytes).
const ROWS_PER_MIB: i64 = 1024;
/// The size of `t` in every test but the kill test.
const MIB: i64 = 16;

/// An engine's fixture: everything the contract's tests need to know of it.
pub trait Source: Sized {
    /// SQL for 1000 random bytes, a new value on every row.
    const RANDOM_PAD: &'static str;
    /// MiB of `t` that make a backup long enough to kill midway (several
    /// packs of the default 32 MiB).
    const KILL_MIB: i64;

    /// A new local repository in `env`, and a source whose backups go into
    /// it, holding the contract's tables with `mib` MiB of `t`.
    fn create(env: &Env, mib: i64) -> Self;
    fn repo(&self) -> &str;
    /// The source's `--source` URL.
    fn url(&self) -> String;
    /// A new connection to the source; it runs a batch of SQL statements.
    fn connect(&self) -> Box<dyn FnMut(&str) + Send>;
    /// What the source holds now.
    fn content(&self) -> Content;
    /// Restores backup `id` of [`Source::repo`] into `env` and reads what
    /// the copy holds.
    fn restored(&self, env: &Env, id: &str) -> Content;
    /// A `--source` URL of this engine that reaches nothing, and the text
    /// the error line must name it by.
    fn bad_source(&self, env: &Env) -> (String, String);

    /// Rewrites the pads of `fraction` of the rows of `t`, in runs of
    /// neighbouring rows all through the table.
    fn change(&self, fraction: f64) {
        let k = (fraction * 1000.0).round() as i64;
        let pad = Self::RANDOM_PAD;
        (self.connect())(&format!("UPDATE t SET pad = {pad} WHERE id % 1000 < {k}"));
    }
}

/// What a database holds: a digest of every row of the three tables, and
/// the figures the writer's invariant ties together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    pub digest: String,
    /// `sum(bal)` of `acct`.
    pub balance: i64,
    /// `count(*)` and `max(n)` of `moves`.
    pub moves: i64,
    pub last_move: i64,
    /// `sum(v)` of `t`.
    pub counted: i64,
}

/// The figures of [`Content`], in that order, as one row of plain SQL.
pub const FIGURES: &str = "SELECT (SELECT sum(bal) FROM acct), (SELECT count(*) FROM moves), \
     (SELECT coalesce(max(n), 0) FROM moves), (SELECT sum(v) FROM t)";

impl Content {
    pub fn new(digest: String, figures: [i64; 4]) -> Content {
        let [balance, moves, last_move, counted] = figures;
        Content {
            digest,
            balance,
            moves,
            last_move,
            counted,
        }
    }

    fn assert_consistent(&self) {
        assert_eq!(
            self.balance,
            ACCOUNTS * BALANCE,
            "a torn transfer: {self:?}"
        );
        assert_eq!(
            self.moves, self.last_move,
            "the writer's transactions are not a prefix without gaps: {self:?}"
        );
        assert_eq!(self.counted, self.moves, "t and the log disagree: {self:?}");
    }
}

/// Writer transaction `n` on a source whose `t` has `rows` rows.
fn transfer(n: i64, rows: i64) -> String {
    let (from, to, amount) = (n % ACCOUNTS + 1, (n * 7 + 3) % ACCOUNTS + 1, n % 10 + 1);
    let row = (n * 7919) % rows + 1;
    format!(
        "BEGIN; UPDATE acct SET bal = bal - {amount} WHERE id = {from}; \
         UPDATE acct SET bal = bal + {amount} WHERE id = {to}; \
         UPDATE t SET v = v + 1 WHERE id = {row}; \
         INSERT INTO moves VALUES ({n}, {amount}); COMMIT;"
    )
}

/// Runs `during` while a writer commits transfers on `src` (whose `t` has
/// `mib` MiB). Returns its result, how many transactions were committed
/// when it started, and how many in all once the writer stopped.
fn while_writing<S: Source, R>(src: &S, mib: i64, during: impl FnOnce() -> R) -> (R, i64, i64) {
    let mut session = src.connect();
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicI64::new(0));
    let (flag, count) = (stop.clone(), committed.clone());
    let writer = std::thread::spawn(move || {
        while !flag.load(Ordering::SeqCst) {
            let n = count.load(Ordering::SeqCst) + 1;
            session(&transfer(n, mib * ROWS_PER_MIB));
            count.store(n, Ordering::SeqCst);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while committed.load(Ordering::SeqCst) < 20 {
        assert!(
            !writer.is_finished() && Instant::now() < deadline,
            "the writer did not get going"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let before = committed.load(Ordering::SeqCst);
    let r = during();
    let meanwhile = committed.load(Ordering::SeqCst) - before;
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("the writer failed");
    assert!(meanwhile > 0, "the writer committed nothing meanwhile");
    (r, before, committed.load(Ordering::SeqCst))
}

fn backup<S: Source>(src: &S) -> serde_json::Value {
    let out = run_ok(
        arca(),
        &[
            "backup",
            "--repo",
            src.repo(),
            "--source",
            &src.url(),
            "--json",
        ],
    );
    serde_json::from_str(&out).unwrap()
}

fn id(backup: &serde_json::Value) -> &str {
    backup["id"].as_str().unwrap()
}

fn stored(backup: &serde_json::Value) -> u64 {
    backup["stored_bytes"].as_u64().unwrap()
}

fn check_read_data(repo: &str) {
    run_ok(arca(), &["check", "--repo", repo, "--read-data"]);
}

fn round_trip<S: Source>() {
    let env = Env::new();
    let src = S::create(&env, MIB);
    let b = backup(&src);
    assert_eq!(src.restored(&env, id(&b)), src.content());
}

fn consistent_while_written<S: Source>() {
    let env = Env::new();
    let src = S::create(&env, MIB);
    let (b, before, after) = while_writing(&src, MIB, || backup(&src));
    let source = src.content();
    source.assert_consistent();
    assert_eq!(source.moves, after, "every commit is in the source");
    let copy = src.restored(&env, id(&b));
    copy.assert_consistent();
    assert!(
        (before..=after).contains(&copy.moves),
        "the copy holds {} moves; {before} were committed before the backup, {after} in all",
        copy.moves
    );
}

fn incremental_stores_about_the_change<S: Source>() {
    let env = Env::new();
    let src = S::create(&env, MIB);
    let first = backup(&src);
    src.change(0.05);
    let second = backup(&src);
    let (full, incr) = (stored(&first), stored(&second));
    assert!(
        incr * 2 < full,
        "a 5% change stored {incr} B after a first backup of {full} B"
    );
    // The new pads are random: they cannot have deduplicated away.
    assert!(
        incr * 100 > full,
        "a 5% change stored only {incr} B of {full} B"
    );
    assert_eq!(src.restored(&env, id(&second)), src.content());
}

fn unchanged_stores_almost_nothing<S: Source>() {
    let env = Env::new();
    let src = S::create(&env, MIB);
    let first = backup(&src);
    let again = backup(&src);
    let (full, more) = (stored(&first), stored(&again));
    // Every backup writes its manifest anew (PostgreSQL: ~240 B for each
    // of the cluster's ~1000 files), so not nothing at all.
    assert!(
        more * 50 < full,
        "an unchanged source stored {more} B after a first backup of {full} B"
    );
    assert_eq!(src.restored(&env, id(&again)), src.content());
}

fn bad_source_fails_cleanly<S: Source>() {
    let env = Env::new();
    let src = S::create(&env, 1);
    backup(&src);
    let (url, named) = src.bad_source(&env);
    let out = arca()
        .args(["backup", "--repo", src.repo(), "--source", &url])
        .output()
        .unwrap();
    assert!(out.stdout.is_empty(), "{out:?}");
    let line = error_line(&out);
    assert!(
        line.contains(&named),
        "the error does not name {named}: {line}"
    );
    assert_eq!(backups(src.repo()), 1, "a failed backup recorded nothing");
    check_read_data(src.repo());
}

fn killed_backup_leaves_a_sound_repository<S: Source>() {
    let env = Env::new();
    let src = S::create(&env, S::KILL_MIB);
    let repo = src.repo();
    let mut child = std::process::Command::new(arca_bin())
        .env_remove("ARCA_REPO")
        .args(["backup", "--repo", repo, "--source", &src.url()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Packs are renamed into data/ once whole: kill once one is there.
    let deadline = Instant::now() + Duration::from_secs(120);
    while pack_count(repo) == 0 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backup ended before it wrote a pack: make KILL_MIB bigger"
        );
        assert!(Instant::now() < deadline, "no pack written in 120 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "killed after it finished: make KILL_MIB bigger"
    );
    let locks = || {
        std::fs::read_dir(Path::new(repo).join("locks"))
            .unwrap()
            .count()
    };
    assert_eq!(locks(), 1, "the killed backup left its lock");

    // At once, beside the dead process's lock: it makes no one wait.
    let out = arca()
        .args(["-v", "backup", "--repo", repo, "--source", &src.url()])
        .args(["--json", "--lock-wait", "5"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("waiting for"), "{stderr}");
    assert_eq!(locks(), 0, "the dead process's lock is gone");
    let b: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(backups(repo), 1, "the killed backup recorded nothing");
    check_read_data(repo);
    assert_eq!(src.restored(&env, id(&b)), src.content());
}

/// The pack files in a local repository's data/ (none before the first).
fn pack_count(repo: &str) -> usize {
    let Ok(dirs) = std::fs::read_dir(Path::new(repo).join("data")) else {
        return 0;
    };
    dirs.filter_map(|d| std::fs::read_dir(d.ok()?.path()).ok())
        .map(|files| files.count())
        .sum()
}

/// A SQLite database file.
pub struct Sqlite {
    repo: String,
    path: std::path::PathBuf,
}

impl Sqlite {
    fn read(path: &Path) -> Content {
        let c = Connection::open(path).unwrap();
        let mut h = Sha256::new();
        for sql in [
            "SELECT id, v, pad FROM t ORDER BY id",
            "SELECT id, bal, NULL FROM acct ORDER BY id",
            "SELECT n, amount, NULL FROM moves ORDER BY n",
        ] {
            h.update(sql.as_bytes());
            let mut st = c.prepare(sql).unwrap();
            let mut rows = st.query([]).unwrap();
            while let Some(r) = rows.next().unwrap() {
                h.update(r.get::<_, i64>(0).unwrap().to_le_bytes());
                h.update(r.get::<_, i64>(1).unwrap().to_le_bytes());
                if let Some(pad) = r.get::<_, Option<Vec<u8>>>(2).unwrap() {
                    h.update(pad);
                }
            }
        }
        let figures = c
            .query_row(FIGURES, [], |r| {
                Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?])
            })
            .unwrap();
        Content::new(format!("{:x}", h.finalize()), figures)
    }
}

impl Source for Sqlite {
    const RANDOM_PAD: &'static str = "randomblob(1000)";
    const KILL_MIB: i64 = 256;

    fn create(env: &Env, mib: i64) -> Sqlite {
        let repo = env.init_local("repo");
        let path = env.path("source.db");
        let rows = mib * ROWS_PER_MIB;
        Connection::open(&path)
            .unwrap()
            .execute_batch(&format!(
                "PRAGMA synchronous = OFF;
                 CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER NOT NULL, pad BLOB NOT NULL);
                 CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INTEGER NOT NULL);
                 CREATE TABLE moves(n INTEGER PRIMARY KEY, amount INTEGER NOT NULL);
                 WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {rows})
                   INSERT INTO t SELECT i, 0, randomblob(1000) FROM g;
                 WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {ACCOUNTS})
                   INSERT INTO acct SELECT i, {BALANCE} FROM g;
                 PRAGMA journal_mode = WAL;"
            ))
            .unwrap();
        Sqlite { repo, path }
    }

    fn repo(&self) -> &str {
        &self.repo
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    fn connect(&self) -> Box<dyn FnMut(&str) + Send> {
        let c = Connection::open(&self.path).unwrap();
        c.busy_timeout(Duration::from_secs(30)).unwrap();
        Box::new(move |sql| c.execute_batch(sql).unwrap())
    }

    fn content(&self) -> Content {
        Sqlite::read(&self.path)
    }

    fn restored(&self, env: &Env, id: &str) -> Content {
        let to = env.path(&format!("restored-{id}.db"));
        let to = to.to_str().unwrap();
        run_ok(arca(), &["restore", id, "--repo", &self.repo, "--to", to]);
        integrity_ok(Path::new(to));
        Sqlite::read(Path::new(to))
    }

    fn bad_source(&self, env: &Env) -> (String, String) {
        let path = env.path("missing/app.db").display().to_string();
        (format!("sqlite://{path}"), path)
    }
}

/// A PostgreSQL cluster archiving into the repository.
pub struct Postgres {
    repo: String,
    pg: Pg,
}

impl Postgres {
    fn read(pg: &Pg) -> Content {
        let digest = pg.sql(
            "SELECT concat_ws(' ',
               (SELECT md5(string_agg(id || ':' || v || ':' || md5(pad), ',' ORDER BY id)) FROM t),
               (SELECT md5(string_agg(id || ':' || bal, ',' ORDER BY id)) FROM acct),
               (SELECT md5(string_agg(n || ':' || amount, ',' ORDER BY n)) FROM moves))",
        );
        let figures: Vec<i64> = pg
            .sql(FIGURES)
            .split('|')
            .map(|f| f.parse().unwrap())
            .collect();
        Content::new(digest, figures.try_into().unwrap())
    }
}

impl Source for Postgres {
    const RANDOM_PAD: &'static str = "gen_random_bytes(1000)";
    const KILL_MIB: i64 = 128;

    fn create(env: &Env, mib: i64) -> Postgres {
        let repo = server_repo(env);
        let pg = Pg::start(Some(&repo));
        let rows = mib * ROWS_PER_MIB;
        pg.sql(&format!(
            "CREATE EXTENSION pgcrypto;
             CREATE TABLE t(id int PRIMARY KEY, v bigint NOT NULL, pad bytea NOT NULL);
             CREATE TABLE acct(id int PRIMARY KEY, bal bigint NOT NULL);
             CREATE TABLE moves(n bigint PRIMARY KEY, amount int NOT NULL);
             INSERT INTO t SELECT g, 0, gen_random_bytes(1000) FROM generate_series(1, {rows}) g;
             INSERT INTO acct SELECT g, {BALANCE} FROM generate_series(1, {ACCOUNTS}) g;"
        ));
        // Hint bits and the visibility map set now, not by the next reader:
        // the cost tests measure what a change stores.
        pg.sql("VACUUM FREEZE");
        pg.sql("CHECKPOINT");
        Postgres { repo, pg }
    }

    fn repo(&self) -> &str {
        &self.repo
    }

    fn url(&self) -> String {
        self.pg.url()
    }

    fn connect(&self) -> Box<dyn FnMut(&str) + Send> {
        let mut c = ::postgres::Client::connect(&self.pg.url(), ::postgres::NoTls).unwrap();
        Box::new(move |sql| c.batch_execute(sql).unwrap())
    }

    fn content(&self) -> Content {
        Postgres::read(&self.pg)
    }

    fn restored(&self, env: &Env, id: &str) -> Content {
        let to = env.path(&format!("restored-{id}"));
        let to = to.to_str().unwrap();
        let out = run_ok(
            arca(),
            &["restore", id, "--repo", &self.repo, "--to", to, "--start"],
        );
        let copy = Pg::adopt(to.into(), started_port(&out));
        Postgres::read(&copy)
    }

    fn bad_source(&self, _env: &Env) -> (String, String) {
        let url = format!("postgres://postgres@127.0.0.1:{}/postgres", free_port());
        (url.clone(), url)
    }
}

/// A MariaDB server; the contract's tables are in database `app`, and a
/// backup is restored into the same server as database `r_<id>`.
pub struct Mariadb {
    repo: String,
    db: Maria,
}

impl Mariadb {
    fn read(m: &Maria, db: &str) -> Content {
        let digest = m.root(&format!(
            "SET SESSION group_concat_max_len = 1 << 30; SELECT CONCAT_WS(' ',
               (SELECT MD5(GROUP_CONCAT(id, ':', v, ':', MD5(pad) ORDER BY id SEPARATOR ',')) FROM {db}.t),
               (SELECT MD5(GROUP_CONCAT(id, ':', bal ORDER BY id SEPARATOR ',')) FROM {db}.acct),
               (SELECT IFNULL(MD5(GROUP_CONCAT(n, ':', amount ORDER BY n SEPARATOR ',')), '') FROM {db}.moves))"
        ));
        let figures: Vec<i64> = m
            .root(&format!("USE {db}; {FIGURES}"))
            .split('\t')
            .map(|f| f.parse().unwrap())
            .collect();
        Content::new(digest, figures.try_into().unwrap())
    }
}

impl Source for Mariadb {
    const RANDOM_PAD: &'static str = "RANDOM_BYTES(1000)";
    const KILL_MIB: i64 = 128;

    fn create(env: &Env, mib: i64) -> Mariadb {
        let repo = env.init_local("repo");
        let db = Maria::start();
        let rows = mib * ROWS_PER_MIB;
        db.root(&format!(
            "CREATE DATABASE app; USE app;
             CREATE TABLE t(id int PRIMARY KEY, v bigint NOT NULL, pad blob NOT NULL);
             CREATE TABLE acct(id int PRIMARY KEY, bal bigint NOT NULL);
             CREATE TABLE moves(n bigint PRIMARY KEY, amount int NOT NULL);
             INSERT INTO t SELECT seq, 0, RANDOM_BYTES(1000) FROM seq_1_to_{rows};
             INSERT INTO acct SELECT seq, {BALANCE} FROM seq_1_to_{ACCOUNTS};
             ANALYZE TABLE t;"
        ));
        Mariadb { repo, db }
    }

    fn repo(&self) -> &str {
        &self.repo
    }

    fn url(&self) -> String {
        format!("{}/app", self.db.url())
    }

    fn connect(&self) -> Box<dyn FnMut(&str) + Send> {
        use mysql::prelude::Queryable;
        let mut c = self.db.connect();
        c.query_drop("USE app").unwrap();
        Box::new(move |sql| c.query_drop(sql).unwrap())
    }

    fn content(&self) -> Content {
        Mariadb::read(&self.db, "app")
    }

    fn restored(&self, _env: &Env, id: &str) -> Content {
        let copy = format!("r_{}", &id[..12]);
        run_ok(
            arca(),
            &[
                "restore",
                id,
                "--repo",
                &self.repo,
                "--to",
                &self.db.url(),
                "--rename",
                &format!("app:{copy}"),
            ],
        );
        Mariadb::read(&self.db, &copy)
    }

    fn bad_source(&self, _env: &Env) -> (String, String) {
        let port = free_port();
        (
            format!(
                "mysql://arca:{}@127.0.0.1:{port}/app",
                super::mariadb::PASSWORD
            ),
            format!("127.0.0.1:{port}"),
        )
    }
}

/// Generates the contract's tests for each `engine: Fixture`.
macro_rules! contract {
    ($($engine:ident: $fixture:ty),* $(,)?) => {$(
        mod $engine {
            use super::*;

            #[test]
            fn round_trip() {
                super::round_trip::<$fixture>()
            }

            #[test]
            fn consistent_while_written() {
                super::consistent_while_written::<$fixture>()
            }

            #[test]
            fn incremental_stores_about_the_change() {
                super::incremental_stores_about_the_change::<$fixture>()
            }

            #[test]
            fn unchanged_stores_almost_nothing() {
                super::unchanged_stores_almost_nothing::<$fixture>()
            }

            #[test]
            fn bad_source_fails_cleanly() {
                super::bad_source_fails_cleanly::<$fixture>()
            }

            #[test]
            fn killed_backup_leaves_a_sound_repository() {
                super::killed_backup_leaves_a_sound_repository::<$fixture>()
            }
        }
    )*};
}

contract! {
    sqlite: Sqlite,
    postgres: Postgres,
    mariadb: Mariadb,
}
