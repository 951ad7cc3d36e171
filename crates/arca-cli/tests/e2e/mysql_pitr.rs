//! Point-in-time restores of a MariaDB against a model of its table: a
//! writer commits small transactions every 10–50 ms for a minute while
//! `binlog-stream` runs (among them a multi-statement transaction, one of
//! 8 MiB, one fed from a temporary table and a DDL); restores to random
//! times and GTIDs each hold exactly the transactions committed up to the
//! target.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;

use super::cancel::signal;
use super::common::{run_ok, Env};
use super::mariadb::Maria;
use super::mysql::fails;
use super::mysql_binlog::{archived, streaming};
use super::postgres::arca;
use super::proxy::XorShift;

/// (trx, j) → (v, payload length, payload letter)
type Rows = BTreeMap<(u64, u64), (i64, u64, char)>;

fn digest(rows: &Rows) -> String {
    rows.iter()
        .map(|((k, j), (v, n, c))| format!("{k},{j},{v},{n},{c}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// What the restored table holds, in the model's form.
fn restored(m: &Maria, table: &str) -> String {
    let mut c = m.connect();
    let rows: Vec<(u64, u64, i64, u64, String)> = c
        .query(format!(
            "SELECT trx, j, v, COALESCE(LENGTH(payload), 0), COALESCE(LEFT(payload, 1), '') FROM {table} ORDER BY trx, j"
        ))
        .unwrap();
    rows.into_iter()
        .map(|(k, j, v, n, c)| format!("{k},{j},{v},{n},{}", c.chars().next().unwrap_or('-')))
        .collect::<Vec<_>>()
        .join(";")
}

/// One committed transaction, as the writer saw it.
struct Committed {
    gtid: String,
    /// The server's clock just before and just after the commit (µs).
    before: i64,
    after: i64,
    digest: String,
    /// After the DDL.
    after_ddl: bool,
}

fn now_us(c: &mut mysql::Conn) -> i64 {
    c.query_first::<i64, _>("SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)")
        .unwrap()
        .unwrap()
}

/// Commits transactions for `run`, keeping the model in step.
fn write(m: &Maria, run: Duration, seed: u64) -> Vec<Committed> {
    let mut c = m.connect();
    c.query_drop("USE shop").unwrap();
    let mut rng = XorShift::new(seed);
    let mut rows = Rows::new();
    let mut done = Vec::new();
    let start = Instant::now();
    let mut k = 0u64;
    let mut after_ddl = false;
    while start.elapsed() < run {
        k += 1;
        let before = now_us(&mut c);
        match k {
            // A multi-statement transaction.
            _ if k.is_multiple_of(25) => {
                c.query_drop("BEGIN").unwrap();
                c.query_drop(format!("UPDATE ledger SET v = v + 1 WHERE trx = {}", k - 1))
                    .unwrap();
                c.query_drop(format!(
                    "DELETE FROM ledger WHERE trx = {} AND j = 0",
                    k - 2
                ))
                .unwrap();
                c.query_drop(format!(
                    "INSERT INTO ledger (trx, j, v) VALUES ({k}, 0, {k})"
                ))
                .unwrap();
                c.query_drop("COMMIT").unwrap();
                for ((t, _), (v, _, _)) in rows.iter_mut() {
                    if *t == k - 1 {
                        *v += 1;
                    }
                }
                rows.remove(&(k - 2, 0));
                rows.insert((k, 0), (k as i64, 0, '-'));
            }
            // 8 MiB in one transaction.
            40 => {
                c.query_drop("BEGIN").unwrap();
                for j in 0..4u64 {
                    c.query_drop(format!(
                        "INSERT INTO ledger (trx, j, v, payload) VALUES ({k}, {j}, 0, REPEAT('L', 2097152))"
                    ))
                    .unwrap();
                    rows.insert((k, j), (0, 2_097_152, 'L'));
                }
                c.query_drop("COMMIT").unwrap();
            }
            // Rows fed from a temporary table, over several statements.
            60 => {
                c.query_drop("CREATE TEMPORARY TABLE feed (j int)").unwrap();
                c.query_drop("INSERT INTO feed VALUES (0), (1), (2)")
                    .unwrap();
                c.query_drop(format!(
                    "INSERT INTO ledger (trx, j, v) SELECT {k}, j, j * 10 FROM feed"
                ))
                .unwrap();
                c.query_drop("DROP TEMPORARY TABLE feed").unwrap();
                for j in 0..3u64 {
                    rows.insert((k, j), (j as i64 * 10, 0, '-'));
                }
            }
            // A DDL.
            120 => {
                c.query_drop("ALTER TABLE ledger ADD COLUMN extra int NOT NULL DEFAULT 7")
                    .unwrap();
                after_ddl = true;
            }
            _ => {
                let n = 1 + rng.below(3);
                let values: Vec<String> = (0..n)
                    .map(|j| {
                        let v = rng.below(1_000_000) as i64;
                        rows.insert((k, j), (v, 0, '-'));
                        format!("({k}, {j}, {v})")
                    })
                    .collect();
                c.query_drop(format!(
                    "INSERT INTO ledger (trx, j, v) VALUES {}",
                    values.join(", ")
                ))
                .unwrap();
            }
        }
        let gtid: String = c.query_first("SELECT @@last_gtid").unwrap().unwrap();
        let after = now_us(&mut c);
        done.push(Committed {
            gtid,
            before,
            after,
            digest: digest(&rows),
            after_ddl,
        });
        std::thread::sleep(Duration::from_millis(10 + rng.below(41)));
    }
    done
}

fn restore(repo: &str, to: &Maria, extra: &[&str]) -> String {
    let mut args = vec!["restore", "latest", "--repo", repo, "--to"];
    let url = to.url();
    args.push(&url);
    args.extend_from_slice(extra);
    run_ok(arca(), &args)
}

#[test]
fn restores_to_random_times_and_gtids_hold_exactly_the_transactions_before_them() {
    let env = Env::new();
    let repo = env.init_local("r");
    let m = Maria::start();
    m.root(
        "CREATE DATABASE shop; CREATE TABLE shop.ledger (trx bigint, j bigint, v bigint, \
         payload longblob, PRIMARY KEY (trx, j));",
    );
    run_ok(
        arca(),
        &[
            "backup",
            "--repo",
            &repo,
            "--source",
            &m.url(),
            "--databases",
            "shop",
        ],
    );
    let mut stream = streaming(&repo, &m);
    let seed = std::env::var("ARCA_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64);
    let done = write(&m, Duration::from_secs(60), seed);
    assert!(done.len() > 150, "only {} transactions", done.len());
    // The archive catches up within a few seconds.
    let last = m.root("SELECT @@gtid_binlog_pos");
    let seq: u64 = last.rsplit('-').next().unwrap().parse().unwrap();
    archived(&repo, seq);
    signal(&stream, libc::SIGTERM);
    assert!(stream.wait().unwrap().success());
    let _ = stream.stderr.take();

    let mut rng = XorShift::new(seed ^ 0x5eed);
    let mut n = 0;
    // Random GTIDs.
    for _ in 0..5 {
        let i = rng.below(done.len() as u64) as usize;
        let c = &done[i];
        n += 1;
        let db = format!("g{n}");
        let out = restore(
            &repo,
            &m,
            &["--target-gtid", &c.gtid, "--rename", &format!("shop:{db}")],
        );
        assert!(out.contains(&format!("up to GTID {}", c.gtid)), "{out}");
        assert_eq!(
            restored(&m, &format!("{db}.ledger")),
            c.digest,
            "at {}",
            c.gtid
        );
    }
    // Random seconds inside the window, where no commit straddles the
    // second's end (the log's commit times are whole seconds), from the
    // second after the first commit: the backup's point, just before it,
    // may be in the same second, and no backup precedes that second. Up to
    // the second before the last commit's: in that second the archive may
    // have stopped being written, and a time in it is rightly refused as
    // possibly past the archive's end (the end is restored below).
    let (lo, hi) = (
        done[0].after / 1_000_000 + 1,
        done[done.len() - 1].before / 1_000_000 - 1,
    );
    let mut tried = 0;
    while tried < 10 {
        let t = lo + rng.below((hi - lo + 1) as u64) as i64;
        if done
            .iter()
            .any(|c| c.before / 1_000_000 <= t && c.after / 1_000_000 > t)
        {
            continue;
        }
        tried += 1;
        let upto = done.iter().rfind(|c| c.after / 1_000_000 <= t);
        let want = upto.map(|c| c.digest.clone()).unwrap_or_default();
        n += 1;
        let db = format!("t{n}");
        let when = jiff::Timestamp::from_second(t).unwrap().to_string();
        restore(
            &repo,
            &m,
            &["--target-time", &when, "--rename", &format!("shop:{db}")],
        );
        assert_eq!(restored(&m, &format!("{db}.ledger")), want, "at {when}");
    }
    // The end of the archive, into a server with gtid_strict_mode on.
    let strict = Maria::start_with(2, &["--gtid-strict-mode=ON"]);
    let out = restore(&repo, &strict, &[]);
    assert!(out.contains(&format!("up to GTID {last}")), "{out}");
    assert_eq!(
        restored(&strict, "shop.ledger"),
        done.last().unwrap().digest
    );

    // One table under a new name, to a point before the DDL; past it, a
    // clear refusal naming the statement.
    let before_ddl = done.iter().rfind(|c| !c.after_ddl).unwrap();
    restore(
        &repo,
        &m,
        &[
            "--tables",
            "shop.ledger",
            "--rename",
            "shop.ledger:shop.ledger_back",
            "--target-gtid",
            &before_ddl.gtid,
        ],
    );
    assert_eq!(restored(&m, "shop.ledger_back"), before_ddl.digest);
    let line = fails(&[
        "restore",
        "latest",
        "--repo",
        &repo,
        "--to",
        &m.url(),
        "--tables",
        "shop.ledger",
        "--rename",
        "shop.ledger:shop.ledger_late",
    ]);
    assert!(
        line.contains("ALTER TABLE ledger ADD COLUMN extra")
            && line.contains("pick a target time before it"),
        "{line}"
    );
    // Refused before anything was written.
    assert_eq!(m.root("SHOW TABLES FROM shop LIKE 'ledger_late'"), "");
    // A GTID the archive never saw: refused before anything is written.
    let line = fails(&[
        "restore",
        "latest",
        "--repo",
        &repo,
        "--to",
        &m.url(),
        "--rename",
        "shop:never",
        "--target-gtid",
        "0-1-999999",
    ]);
    assert!(line.contains("has no transaction 0-1-999999"), "{line}");
    assert_eq!(m.root("SHOW DATABASES LIKE 'never'"), "");
}

/// The recovery point: the server is killed while a writer commits as fast
/// as it can; a restore of the end of the archive holds a prefix of the
/// acknowledged commits, short of the last ones by about the seal interval.
#[test]
fn a_server_killed_mid_write_loses_only_the_last_moment() {
    let env = Env::new();
    let repo = env.init_local("r");
    let mut m = Maria::start();
    m.root("CREATE DATABASE shop; CREATE TABLE shop.acks (k bigint PRIMARY KEY);");
    run_ok(
        arca(),
        &[
            "backup",
            "--repo",
            &repo,
            "--source",
            &m.url(),
            "--databases",
            "shop",
        ],
    );
    let mut stream = streaming(&repo, &m);
    std::thread::sleep(Duration::from_millis(500));
    let mut c = m.connect();
    let writer = std::thread::spawn(move || {
        let mut acked = Vec::new();
        for k in 1u64.. {
            if c.query_drop(format!("INSERT INTO shop.acks VALUES ({k})"))
                .is_err()
            {
                break;
            }
            acked.push(Instant::now());
        }
        acked
    });
    std::thread::sleep(Duration::from_secs(4));
    m.kill();
    let acked = writer.join().unwrap();
    // The stream keeps what it received when the connection broke.
    std::thread::sleep(Duration::from_secs(2));
    signal(&stream, libc::SIGTERM);
    assert!(stream.wait().unwrap().success());
    let _ = stream.stderr.take();

    let fresh = Maria::start_with(3, &[]);
    restore(&repo, &fresh, &[]);
    let ks: Vec<u64> = fresh
        .connect()
        .query("SELECT k FROM shop.acks ORDER BY k")
        .unwrap();
    let n = ks.len() as u64;
    // A prefix: nothing torn, nothing out of order; at most one commit the
    // writer never heard acknowledged.
    assert_eq!(ks, (1..=n).collect::<Vec<_>>());
    assert!(n <= acked.len() as u64 + 1, "{n} > {}", acked.len());
    let lost = acked.len().saturating_sub(n as usize);
    let lost_time = if lost == 0 {
        Duration::ZERO
    } else {
        acked[acked.len() - 1] - acked[n as usize - 1]
    };
    eprintln!(
        "recovery point: {} of {} acknowledged commits restored; the last {lost} lost, {} ms of commits",
        n,
        acked.len(),
        lost_time.as_millis()
    );
    assert!(acked.len() > 100, "{} commits", acked.len());
    // Sealed at least every second: far less than this is lost.
    assert!(lost_time < Duration::from_secs(5), "{lost_time:?}");
}
