use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rusqlite::Connection;

use super::common::*;

/// A writer keeps committing while `arca backup` runs: the restored file is
/// sound and holds exactly a prefix of the writer's transactions.
fn consistent_while_written(journal: &str) {
    let env = Env::new();
    let db = env.path("live.db");
    make_db(&db, 16, journal);
    {
        let c = Connection::open(&db).unwrap();
        c.execute_batch("CREATE TABLE log(n INTEGER PRIMARY KEY, pad TEXT); CREATE TABLE total(s INTEGER); INSERT INTO total VALUES (0);").unwrap();
    }
    let repo = env.init_local("repo");
    let stop = Arc::new(AtomicBool::new(false));
    let (flag, path) = (stop.clone(), db.clone());
    let writer = std::thread::spawn(move || {
        let mut c = Connection::open(&path).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(30)).unwrap();
        let mut n = 0i64;
        while !flag.load(Ordering::SeqCst) {
            n += 1;
            let tx = c.transaction().unwrap();
            tx.execute(
                "INSERT INTO log VALUES (?1, ?2)",
                rusqlite::params![n, "x".repeat(500)],
            )
            .unwrap();
            tx.execute("UPDATE total SET s = s + ?1", [n]).unwrap();
            // Touch pages all over the file, as OLTP writes do.
            tx.execute(
                "UPDATE t SET v = v + 1 WHERE id = ?1",
                [(n * 7919) % 80_000],
            )
            .unwrap();
            tx.commit().unwrap();
        }
        n
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    let snap = env.backup(&repo, &db);
    std::thread::sleep(std::time::Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().unwrap();

    let out = env.path("out.db");
    restore(&repo, snap["id"].as_str().unwrap(), &out);
    integrity_ok(&out);
    let c = Connection::open(&out).unwrap();
    let (count, max, sum): (i64, i64, i64) = c
        .query_row(
            "SELECT count(*), coalesce(max(n),0), coalesce(sum(n),0) FROM log",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let total: i64 = c
        .query_row("SELECT s FROM total", [], |r| r.get(0))
        .unwrap();
    assert!(count > 0, "the writer had committed before the backup");
    assert!(
        count < written,
        "the writer went on committing after the image ({count} of {written})"
    );
    assert_eq!(
        count, max,
        "committed transactions form a prefix with no gaps"
    );
    assert_eq!(sum, total, "each transaction is whole");
}

#[test]
fn consistent_backup_while_writing_wal() {
    consistent_while_written("WAL");
}

#[test]
fn consistent_backup_while_writing_rollback_journal() {
    consistent_while_written("DELETE");
}
