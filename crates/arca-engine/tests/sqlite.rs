//! The SQLite engine against real database files: consistency under concurrent
//! writers (in a thread and in another process), preserved header fields, errors,
//! restore-target preparation and source parsing.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arca_engine::sqlite::{
    inspect, integrity_check, prepare_target, ImageOptions, ReadMethod, SqliteImage, SqliteSource,
};
use arca_engine::Error;
use rusqlite::Connection;

const FILLER_ROWS: i64 = 2000;

// ---------------------------------------------------------------- helpers

fn source(path: &Path) -> SqliteSource {
    SqliteSource {
        path: path.to_path_buf(),
    }
}

/// A database of several MB: `filler` spreads data over ~2000 pages, `items` holds the
/// numbered rows, `totals` the running totals that must always match `items`/`filler`.
fn create_workload_db(path: &Path, journal_mode: &str) {
    let conn = Connection::open(path).unwrap();
    conn.pragma_update_and_check(None, "journal_mode", journal_mode, |r| {
        r.get::<_, String>(0)
    })
    .unwrap();
    conn.execute_batch(&format!(
        "BEGIN;
         CREATE TABLE items(n INTEGER PRIMARY KEY, payload BLOB NOT NULL);
         CREATE TABLE filler(id INTEGER PRIMARY KEY, version INTEGER NOT NULL, data BLOB NOT NULL);
         CREATE TABLE totals(id INTEGER PRIMARY KEY CHECK (id = 1), count INTEGER NOT NULL,
                             sum INTEGER NOT NULL, versions INTEGER NOT NULL);
         INSERT INTO totals VALUES (1, 0, 0, 0);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {FILLER_ROWS})
         INSERT INTO filler SELECT i, 0, randomblob(3000) FROM c;
         COMMIT;"
    ))
    .unwrap();
}

/// One writer transaction: row `n`, the totals, and four filler rows spread over the file.
fn commit_one(conn: &Connection, n: i64) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    tx.execute(
        "INSERT INTO items(n, payload) VALUES (?1, randomblob(700))",
        [n],
    )?;
    for k in 0..4 {
        let id = (n * 7919 + k * 503) % FILLER_ROWS + 1;
        tx.execute(
            "UPDATE filler SET version = version + 1, data = randomblob(3000) WHERE id = ?1",
            [id],
        )?;
    }
    tx.execute(
        "UPDATE totals SET count = count + 1, sum = sum + ?1, versions = versions + 4",
        [n],
    )?;
    tx.commit()
}

fn writer_connection(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(120)).unwrap();
    // Fast commits; locking is the same as with fsync.
    conn.pragma_update(None, "synchronous", "OFF").unwrap();
    conn
}

/// Checks the invariant on a database and returns k: its rows are exactly 1..=k.
fn check_invariant(path: &Path) -> i64 {
    let conn = Connection::open(path).unwrap();
    let (count, sum, versions): (i64, i64, i64) = conn
        .query_row("SELECT count, sum, versions FROM totals", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    let (rows, max, total): (i64, i64, i64) = conn
        .query_row(
            "SELECT count(*), coalesce(max(n), 0), coalesce(sum(n), 0) FROM items",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let filler_versions: i64 = conn
        .query_row("SELECT sum(version) FROM filler", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, count, "totals.count matches the rows in {path:?}");
    assert_eq!(total, sum, "totals.sum matches the rows in {path:?}");
    assert_eq!(max, count, "rows are 1..=k without gaps in {path:?}");
    assert_eq!(
        filler_versions, versions,
        "filler updates are all there in {path:?}"
    );
    count
}

fn committed_rows(path: &Path) -> i64 {
    let conn = Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(120)).unwrap();
    conn.query_row("SELECT count FROM totals", [], |r| r.get(0))
        .unwrap()
}

/// Reads the whole image into `out`, slowly (small reads with pauses) so that a
/// concurrent writer gets plenty of chances to interfere.
fn write_image_slowly(image: &mut SqliteImage, out: &Path, pause: Duration) -> u64 {
    let mut file = std::fs::File::create(out).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = image.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n]).unwrap();
        total += n as u64;
        std::thread::sleep(pause);
    }
    file.sync_all().unwrap();
    total
}

fn read_all(mut image: SqliteImage, buf_size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; buf_size];
    loop {
        let n = image.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(image.read(&mut buf).unwrap(), 0, "EOF stays EOF");
    out
}

fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ------------------------------------------- 1. consistency under a concurrent writer

fn consistent_with_writer_thread(journal_mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    create_workload_db(&db, journal_mode);
    let pages_before = inspect(&db).unwrap().page_count;
    assert!(
        pages_before > 1500,
        "a database of many pages ({pages_before})"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let writer = {
        let (db, stop, committed) = (db.clone(), stop.clone(), committed.clone());
        std::thread::spawn(move || {
            let conn = writer_connection(&db);
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                commit_one(&conn, n).unwrap();
                committed.store(n as u64, Ordering::SeqCst);
            }
            n
        })
    };
    wait_until("the writer to commit", Duration::from_secs(30), || {
        committed.load(Ordering::SeqCst) >= 50
    });

    let before = committed.load(Ordering::SeqCst);
    let mut image = source(&db).open_image().unwrap();
    let after_open = committed.load(Ordering::SeqCst);
    let expected_method = if journal_mode == "wal" {
        ReadMethod::Dbpage
    } else {
        ReadMethod::File
    };
    assert_eq!(image.method(), expected_method);
    assert_eq!(image.blocks_writers(), journal_mode != "wal");
    assert_eq!(image.info().journal_mode, journal_mode);

    let out = dir.path().join("image.db");
    let read_start = Instant::now();
    let len = write_image_slowly(&mut image, &out, Duration::from_millis(4));
    let read_time = read_start.elapsed();
    assert_eq!(len, image.len());
    assert_eq!(image.position(), image.len());
    let after_read = committed.load(Ordering::SeqCst);
    drop(image);

    integrity_check(&out).unwrap();
    let k = check_invariant(&out) as u64;
    eprintln!(
        "{journal_mode}: {} pages read in {read_time:?}; commits: {before} before open, \
         {k} in the image, {after_open} after open, {after_read} after the read",
        len / 4096
    );
    assert!(k > 0);
    assert!(
        // +1: the writer stores its counter just after its commit returns.
        before <= k && k <= after_open + 1,
        "the image holds the commits at its point in time: {before} <= {k} <= {after_open} + 1"
    );
    if journal_mode == "wal" {
        assert!(
            after_read > after_open,
            "in WAL mode the writer went on while the image was read ({after_open} -> {after_read})"
        );
    } else {
        assert!(
            after_read <= after_open + 1,
            "in rollback mode the writer waited for the image ({after_open} -> {after_read})"
        );
    }

    // The writer commits more after the image: it really was concurrent.
    wait_until("the writer to go on", Duration::from_secs(30), || {
        committed.load(Ordering::SeqCst) > k + 20
    });
    stop.store(true, Ordering::SeqCst);
    let last = writer.join().unwrap() as u64;
    assert!(last > k);
    assert_eq!(check_invariant(&db) as u64, last);
    assert!(
        inspect(&db).unwrap().page_count > pages_before,
        "the source kept growing"
    );
}

#[test]
fn consistent_image_with_concurrent_writer_wal() {
    consistent_with_writer_thread("wal");
}

#[test]
fn consistent_image_with_concurrent_writer_rollback_delete() {
    consistent_with_writer_thread("delete");
}

/// Run as a child process by `consistent_with_writer_process`: commits rows until the
/// stop file appears. SQLite's locks work differently within one process (shared
/// in-process lock state) and between processes (POSIX locks); the second case is the
/// one that matters in production.
#[test]
fn child_writer_process() {
    let Ok(db) = std::env::var("ARCA_TEST_CHILD_WRITER_DB") else {
        return; // only meaningful as a child
    };
    let db = PathBuf::from(db);
    let stop = PathBuf::from(std::env::var("ARCA_TEST_CHILD_WRITER_STOP").unwrap());
    let conn = writer_connection(&db);
    let mut n = 0;
    while !stop.exists() {
        n += 1;
        commit_one(&conn, n).unwrap();
    }
}

fn consistent_with_writer_process(journal_mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let stop = dir.path().join("stop");
    create_workload_db(&db, journal_mode);

    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_writer_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("ARCA_TEST_CHILD_WRITER_DB", &db)
        .env("ARCA_TEST_CHILD_WRITER_STOP", &stop)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        "the child writer to commit",
        Duration::from_secs(60),
        || committed_rows(&db) >= 50,
    );

    let before = committed_rows(&db) as u64;
    let mut image = source(&db).open_image().unwrap();
    let out = dir.path().join("image.db");
    write_image_slowly(&mut image, &out, Duration::from_millis(4));
    if journal_mode == "wal" {
        assert!(
            committed_rows(&db) as u64 > before,
            "in WAL mode the writer went on while the image was read"
        );
    }
    drop(image);

    integrity_check(&out).unwrap();
    let k = check_invariant(&out) as u64;
    assert!(
        k >= before,
        "the image has every commit before it ({before} <= {k})"
    );
    wait_until("the child writer to go on", Duration::from_secs(60), || {
        committed_rows(&db) as u64 > k + 20
    });
    std::fs::write(&stop, b"").unwrap();
    assert!(child.wait().unwrap().success(), "the child writer failed");
    check_invariant(&db);
}

#[test]
fn consistent_image_with_writer_process_wal() {
    consistent_with_writer_process("wal");
}

#[test]
fn consistent_image_with_writer_process_rollback_delete() {
    consistent_with_writer_process("delete");
}

/// Two images of one rollback-mode file in one process: dropping the first closes our
/// descriptor of the file, which must not drop the SHARED lock the second still
/// relies on (POSIX locks belong to the process, not the descriptor).
#[test]
fn dropping_one_image_keeps_the_lock_of_another() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let stop = dir.path().join("stop");
    create_workload_db(&db, "delete");

    let first = source(&db).open_image().unwrap();
    let mut second = source(&db).open_image().unwrap();
    assert_eq!(second.method(), ReadMethod::File);
    drop(first);

    // A writer in another process must still be unable to commit.
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_writer_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("ARCA_TEST_CHILD_WRITER_DB", &db)
        .env("ARCA_TEST_CHILD_WRITER_STOP", &stop)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let out = dir.path().join("image.db");
    write_image_slowly(&mut second, &out, Duration::ZERO);
    drop(second);
    std::fs::write(&stop, b"").unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(
        check_invariant(&out),
        0,
        "no commit slipped in while the second image was open"
    );
    assert!(
        check_invariant(&db) > 0,
        "the writer committed after the image"
    );
}

#[test]
fn wal_frames_not_yet_checkpointed_are_in_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wal.db");
    create_workload_db(&db, "wal");
    // A connection that stays open, with automatic checkpoints off: the last commits
    // exist only in the -wal file.
    let writer = writer_connection(&db);
    writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    writer
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    for n in 1..=300 {
        commit_one(&writer, n).unwrap();
    }
    let wal_len = std::fs::metadata(dir.path().join("wal.db-wal"))
        .unwrap()
        .len();
    assert!(
        wal_len > 1 << 20,
        "the commits are in the WAL ({wal_len} bytes)"
    );

    let image = source(&db).open_image().unwrap();
    assert_eq!(image.method(), ReadMethod::Dbpage);
    let bytes = read_all(image, 1 << 20);
    let out = dir.path().join("image.db");
    std::fs::write(&out, &bytes).unwrap();
    integrity_check(&out).unwrap();
    assert_eq!(check_invariant(&out), 300);
    drop(writer);
}

// ------------------------------------------------- 2. header fields are preserved

fn preserved(page_size: u32) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fields.db");
    {
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA page_size = {page_size};
             PRAGMA encoding = 'UTF-16le';
             PRAGMA user_version = 4242;
             PRAGMA application_id = 1095910209;
             CREATE TABLE t(id INTEGER PRIMARY KEY, s TEXT);
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 500)
             INSERT INTO t SELECT i, 'grüße ' || hex(randomblob(200)) FROM c;"
        ))
        .unwrap();
    }
    let image = source(&db).open_image().unwrap();
    let info = image.info().clone();
    assert_eq!(info.page_size, page_size);
    assert_eq!(image.page_size(), page_size);
    assert_eq!(info.encoding, "UTF-16le");
    assert_eq!(info.user_version, 4242);
    assert_eq!(info.application_id, 1095910209);
    assert_eq!(info.journal_mode, "delete");
    assert_eq!(image.len(), u64::from(page_size) * image.page_count());
    assert!(image.page_count() > 10);

    let bytes = read_all(image, 1 << 20);
    assert_eq!(bytes.len() as u64, info.len());
    // Quiescent, rollback mode: the image is the file, byte for byte.
    assert_eq!(bytes, std::fs::read(&db).unwrap());

    let out = dir.path().join("restored.db");
    std::fs::write(&out, &bytes).unwrap();
    assert_eq!(inspect(&out).unwrap(), info);
    integrity_check(&out).unwrap();
    let conn = Connection::open(&out).unwrap();
    let s: String = conn
        .query_row("SELECT s FROM t WHERE id = 7", [], |r| r.get(0))
        .unwrap();
    assert!(s.starts_with("grüße "));
}

#[test]
fn preserves_page_size_8192_encoding_and_ids() {
    preserved(8192);
}

#[test]
fn preserves_page_size_1024_encoding_and_ids() {
    preserved(1024);
}

/// Both read methods yield the same bytes, whatever the caller's buffer size
/// (including buffers smaller than a page and not a multiple of it).
#[test]
fn read_methods_and_buffer_sizes_agree() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("same.db");
    create_workload_db(&db, "delete");
    let file_bytes = std::fs::read(&db).unwrap();
    for method in [ReadMethod::Auto, ReadMethod::File, ReadMethod::Dbpage] {
        for buf_size in [1, 1000, 4096, 5000, 1 << 20, 64 << 20] {
            if buf_size == 1 && method != ReadMethod::Dbpage {
                continue; // slow and covered by the Dbpage case
            }
            let image = source(&db)
                .open_image_with(&ImageOptions::default().method(method))
                .unwrap();
            let bytes = if buf_size == 1 {
                // Byte by byte through the first pages.
                let mut image = image;
                let mut out = Vec::new();
                let mut byte = [0u8; 1];
                while out.len() < 3 * 4096 + 7 {
                    assert_eq!(image.read(&mut byte).unwrap(), 1);
                    out.push(byte[0]);
                }
                assert_eq!(image.position(), out.len() as u64);
                out
            } else {
                read_all(image, buf_size)
            };
            assert!(
                file_bytes.starts_with(&bytes)
                    && (buf_size == 1 || bytes.len() == file_bytes.len()),
                "{method:?} with a {buf_size}-byte buffer"
            );
        }
    }
    // WAL mode: a File request falls back to sqlite_dbpage.
    let wal = dir.path().join("wal.db");
    create_workload_db(&wal, "wal");
    let image = source(&wal)
        .open_image_with(
            &ImageOptions::default()
                .method(ReadMethod::File)
                .mmap_size(0),
        )
        .unwrap();
    assert_eq!(image.method(), ReadMethod::Dbpage);
    let bytes = read_all(image, 12345);
    let out = dir.path().join("wal-image.db");
    std::fs::write(&out, &bytes).unwrap();
    integrity_check(&out).unwrap();
    check_invariant(&out);
}

#[test]
fn image_is_send() {
    fn send<T: Send>() {}
    send::<SqliteImage>();
}

// ------------------------------------------------------------------- 3. errors

#[test]
fn missing_source_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.db");
    let err = source(&path).open_image().unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "source {} does not exist: check the path in --source sqlite://PATH",
            path.display()
        )
    );
    assert!(!err.is_temporary());
    assert!(!path.exists(), "opening must not create the file");
}

#[test]
fn text_files_are_not_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in [
        ("short.txt", "hello\n".to_string()),
        ("long.txt", "not a database\n".repeat(2000)),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &content).unwrap();
        let err = source(&path).open_image().unwrap_err();
        assert!(matches!(err, Error::NotSqlite { .. }), "{name}: {err:?}");
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("{} is not a SQLite database (", path.display())),
            "{msg}"
        );
        assert!(
            msg.ends_with("): point --source at a SQLite database file"),
            "{msg}"
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            content,
            "left untouched"
        );
    }
}

/// A 0-byte file is a valid empty database to SQLite, but backing it up is pointless
/// and it is almost always a wrong path: it is refused as NotSqlite.
#[test]
fn empty_file_is_not_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.db");
    std::fs::write(&path, b"").unwrap();
    let err = source(&path).open_image().unwrap_err();
    assert!(matches!(err, Error::NotSqlite { .. }), "{err:?}");
    assert!(
        err.to_string().contains("(an empty file of 0 bytes)"),
        "{err}"
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "left untouched");
}

#[test]
fn directory_is_not_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let err = source(dir.path()).open_image().unwrap_err();
    assert!(matches!(err, Error::NotSqlite { .. }), "{err:?}");
}

#[test]
fn exclusive_lock_beyond_busy_timeout_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("locked.db");
    create_workload_db(&db, "delete");
    let holder = Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let err = source(&db)
        .open_image_with(&ImageOptions::default().busy_timeout(Duration::from_millis(200)))
        .unwrap_err();
    assert!(matches!(err, Error::Busy { .. }), "{err:?}");
    assert!(err.is_temporary());
    holder.execute_batch("COMMIT").unwrap();
    source(&db).open_image().unwrap();
}

/// A writer that died mid-transaction leaves a hot journal; a read-only connection must
/// not roll it back and must not read the half-written file either.
#[test]
fn hot_journal_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    create_workload_db(&db, "delete");
    let writer = Connection::open(&db).unwrap();
    // A tiny cache forces the writer to spill changed pages into the database file
    // before it commits; copying the files now is what a crash leaves behind.
    writer
        .execute_batch("PRAGMA cache_size = 2; BEGIN")
        .unwrap();
    for n in 1..=50 {
        writer
            .execute("INSERT INTO items VALUES (?1, randomblob(3000))", [n])
            .unwrap();
    }
    writer
        .execute("UPDATE filler SET data = randomblob(3000)", [])
        .unwrap();
    let crashed = dir.path().join("crashed.db");
    std::fs::copy(&db, &crashed).unwrap();
    std::fs::copy(
        dir.path().join("crash.db-journal"),
        dir.path().join("crashed.db-journal"),
    )
    .unwrap();
    writer.execute_batch("ROLLBACK").unwrap();

    let err = source(&crashed).open_image().unwrap_err();
    assert!(matches!(err, Error::HotJournal { .. }), "{err:?}");
    assert!(
        dir.path().join("crashed.db-journal").exists(),
        "the journal is left for a read-write client"
    );
    // A read-write open rolls it back; then the image works and is consistent.
    Connection::open(&crashed)
        .unwrap()
        .query_row("SELECT count(*) FROM items", [], |r| r.get::<_, i64>(0))
        .unwrap();
    let out = dir.path().join("image.db");
    std::fs::write(
        &out,
        read_all(source(&crashed).open_image().unwrap(), 1 << 20),
    )
    .unwrap();
    integrity_check(&out).unwrap();
    assert_eq!(check_invariant(&out), 0);
}

#[test]
fn inspect_and_integrity_check_report_damage() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("good.db");
    create_workload_db(&db, "delete");
    integrity_check(&db).unwrap();

    // Page 1 intact, the rest overwritten: SQLite opens it, integrity_check fails.
    let mut bytes = std::fs::read(&db).unwrap();
    let half = bytes.len() / 2;
    for b in &mut bytes[4096 * 3..half] {
        *b = 0x5a;
    }
    let broken = dir.path().join("broken.db");
    std::fs::write(&broken, &bytes).unwrap();
    let err = integrity_check(&broken).unwrap_err();
    assert!(matches!(err, Error::Damaged { .. }), "{err:?}");

    // integrity_check speaks of a restored file, inspect of a source (ops uses it as
    // the early check of --source).
    let text = dir.path().join("text.db");
    std::fs::write(&text, "hello").unwrap();
    assert!(matches!(
        integrity_check(&text).unwrap_err(),
        Error::Damaged { .. }
    ));
    assert!(matches!(
        inspect(&text).unwrap_err(),
        Error::NotSqlite { .. }
    ));
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, "").unwrap();
    assert!(matches!(
        integrity_check(&empty).unwrap_err(),
        Error::Damaged { .. }
    ));
    assert!(matches!(
        inspect(&empty).unwrap_err(),
        Error::NotSqlite { .. }
    ));
    let missing = dir.path().join("missing.db");
    assert!(matches!(
        integrity_check(&missing).unwrap_err(),
        Error::Io(..)
    ));
    assert!(matches!(
        inspect(&missing).unwrap_err(),
        Error::NotFound { .. }
    ));
    assert!(!missing.exists(), "inspect must not create the file");
}

/// inspect is also the early check of a live source: with a writer connection open
/// (so the -wal exists) it reads through SQLite's locks and sees the WAL's commits.
#[test]
fn inspect_a_live_wal_source() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    create_workload_db(&db, "wal");
    let writer = writer_connection(&db);
    writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    writer
        .execute_batch("PRAGMA user_version = 7; PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    let before = inspect(&db).unwrap();
    for n in 1..=200 {
        commit_one(&writer, n).unwrap();
    }
    writer.pragma_update(None, "user_version", 8).unwrap();
    let info = inspect(&db).unwrap();
    assert_eq!(info.journal_mode, "wal");
    assert_eq!(info.user_version, 8, "read through the WAL");
    assert!(info.page_count > before.page_count);
    integrity_check(&db).unwrap();
}

/// Reading a WAL image back must not leave -wal / -shm files beside the restored file.
#[test]
fn inspecting_a_restored_wal_image_leaves_no_litter() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wal.db");
    create_workload_db(&db, "wal");
    let out = dir.path().join("restored.db");
    let image = source(&db).open_image().unwrap();
    let info = image.info().clone();
    std::fs::write(&out, read_all(image, 1 << 20)).unwrap();
    assert_eq!(info.journal_mode, "wal");
    assert_eq!(inspect(&out).unwrap(), info);
    integrity_check(&out).unwrap();
    for suffix in ["-wal", "-shm", "-journal"] {
        let sibling = dir.path().join(format!("restored.db{suffix}"));
        assert!(!sibling.exists(), "{} was left behind", sibling.display());
    }
}

#[test]
fn prepare_target_refuses_existing_files_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("restored.db");
    let sibling = |s: &str| dir.path().join(format!("restored.db{s}"));

    prepare_target(&target, false).unwrap();

    // Only a stale -wal beside a missing target: refused, naming the -wal.
    std::fs::write(sibling("-wal"), b"stale wal").unwrap();
    let err = prepare_target(&target, false).unwrap_err();
    match &err {
        Error::TargetExists { path } => assert_eq!(path, &sibling("-wal")),
        other => panic!("{other:?}"),
    }

    std::fs::write(&target, b"old database").unwrap();
    let err = prepare_target(&target, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "restore target {} exists: pass --force to overwrite it",
            target.display()
        )
    );
    assert!(sibling("-wal").exists(), "nothing removed without --force");

    std::fs::write(sibling("-shm"), b"stale shm").unwrap();
    std::fs::write(sibling("-journal"), b"stale journal").unwrap();
    prepare_target(&target, true).unwrap();
    for s in ["-wal", "-shm", "-journal"] {
        assert!(!sibling(s).exists(), "{s} removed with --force");
    }
    assert_eq!(
        std::fs::read(&target).unwrap(),
        b"old database",
        "the target itself is never deleted"
    );
    prepare_target(&target, true).unwrap(); // idempotent

    let err = prepare_target(&dir.path().join("no/such/dir/x.db"), true).unwrap_err();
    assert!(matches!(err, Error::Io(..)), "{err:?}");
    let err = prepare_target(dir.path(), true).unwrap_err();
    assert!(matches!(err, Error::TargetKind { .. }), "{err:?}");
}

/// Why the stale -wal must go: left beside a restored file, SQLite replays it.
#[test]
fn stale_wal_beside_restored_file_would_be_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    create_workload_db(&db, "wal");
    let image = read_all(source(&db).open_image().unwrap(), 1 << 20);

    // The application goes on writing; its WAL holds 100 more commits.
    let writer = writer_connection(&db);
    writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    for n in 1..=100 {
        commit_one(&writer, n).unwrap();
    }
    let stale_wal = std::fs::read(dir.path().join("app.db-wal")).unwrap();
    drop(writer);

    // Restore the image over app.db with the old -wal still there.
    let target = dir.path().join("target.db");
    std::fs::write(dir.path().join("target.db-wal"), &stale_wal).unwrap();
    prepare_target(&target, true).unwrap();
    std::fs::write(&target, &image).unwrap();
    assert_eq!(
        check_invariant(&target),
        0,
        "the restored image, not the stale WAL"
    );

    // Control: without prepare_target, SQLite applies the stale frames.
    let control = dir.path().join("control.db");
    std::fs::write(dir.path().join("control.db-wal"), &stale_wal).unwrap();
    std::fs::write(&control, &image).unwrap();
    assert_eq!(check_invariant(&control), 100);
}

// ------------------------------------------------------------------ 4. parsing

#[test]
fn parses_sqlite_sources() {
    let cases = [
        ("sqlite://./x.db", "./x.db"),
        ("sqlite://x.db", "x.db"),
        ("sqlite://dir/sub/x.db", "dir/sub/x.db"),
        ("sqlite:///abs/x.db", "/abs/x.db"),
        ("SQLite:///abs/x.db", "/abs/x.db"),
        ("sqlite://../up.db", "../up.db"),
        ("sqlite:///abs/with space.db", "/abs/with space.db"),
        ("x.db", "x.db"),
        ("./x.db", "./x.db"),
        ("/abs/x.db", "/abs/x.db"),
        ("dir/x.db", "dir/x.db"),
    ];
    for (input, path) in cases {
        let src = SqliteSource::parse(input).unwrap();
        assert_eq!(src.path, PathBuf::from(path), "{input}");
        let parsed: SqliteSource = input.parse().unwrap();
        assert_eq!(parsed, src);
    }
    for bad in ["sqlite://", "", "postgres://host/db", "mysql://u@h/db"] {
        let err = SqliteSource::parse(bad).unwrap_err();
        assert!(matches!(err, Error::InvalidSource { .. }), "{bad}: {err:?}");
    }
    assert_eq!(
        SqliteSource::parse("sqlite:///abs/x.db")
            .unwrap()
            .to_string(),
        "sqlite:///abs/x.db"
    );
}

#[test]
fn relative_source_opens_from_the_working_directory() {
    // Parsing does not touch the file system; a relative path resolves when opened.
    let src = SqliteSource::parse("sqlite://./definitely-missing-arca.db").unwrap();
    match src.open_image().unwrap_err() {
        Error::NotFound { path } => assert_eq!(path, PathBuf::from("./definitely-missing-arca.db")),
        other => panic!("{other:?}"),
    }
}
