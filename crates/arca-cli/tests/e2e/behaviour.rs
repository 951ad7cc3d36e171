//! The behaviour suite: what every store must do, run against the store
//! `ARCA_TEST_BACKEND` names (`fs`, the default, or `s3` on SeaweedFS), as
//! OpenDAL's own behaviour tests do. `scripts/test.sh` runs it for both.

use rusqlite::Connection;

use super::common::*;

#[test]
fn backup_list_check_restore_round_trip() {
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 8, "DELETE");
    let repo = env.init("repo");
    let first = env.backup(&repo, &db);
    let id = first["id"].as_str().unwrap().to_string();
    assert_eq!(
        first["size"].as_u64().unwrap(),
        std::fs::metadata(&db).unwrap().len()
    );
    assert!(first["stored_bytes"].as_u64().unwrap() > 0);
    assert!(first["duration_ms"].as_i64().is_some());

    let list = json(&["list", "--repo", &repo, "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], first["id"]);
    assert_eq!(list[0]["engine"], "sqlite");

    let table = ok(&["list", "--repo", &repo]);
    for col in [
        "ID",
        "SIZE",
        "PATH",
        "AT TIME",
        "DURATION",
        "COMPLETE TIME",
        "ENGINE",
        "NAME",
    ] {
        assert!(table.contains(col), "table lacks {col}: {table}");
    }
    assert!(table.contains(&id[..8]));

    let one = json(&["list", "--repo", &repo, &id[..10], "--json"]);
    assert_eq!(one["complete"], true);

    ok(&["check", "--repo", &repo]);
    ok(&["check", "--repo", &repo, "--read-data"]);
    ok(&["check", "--repo", &repo, &id, "--read-data"]);

    let out = env.path("out.db");
    restore(&repo, &id, &out);
    assert!(same_file(&db, &out));
    integrity_ok(&out);
}

#[test]
fn restore_refuses_to_overwrite_without_force() {
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 1, "DELETE");
    let repo = env.init("repo");
    env.backup(&repo, &db);
    let out = env.path("out.db");
    std::fs::write(&out, b"precious").unwrap();
    let (_, err) = fails(&[
        "restore",
        "latest",
        "--repo",
        &repo,
        "--to",
        &out.to_string_lossy(),
    ]);
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    // A stale WAL beside the target must not be replayed onto the restore.
    std::fs::write(env.path("out.db-wal"), b"stale wal").unwrap();
    restore(&repo, "latest", &out);
    assert!(same_file(&db, &out));
    assert!(!env.path("out.db-wal").exists());
}

#[test]
fn incremental_backup_stores_little_and_unchanged_backup_almost_nothing() {
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 16, "DELETE");
    let repo = env.init("repo");
    let first = env.backup(&repo, &db);
    let size = first["size"].as_u64().unwrap();

    let same = env.backup(&repo, &db);
    let stored = same["stored_bytes"].as_u64().unwrap();
    assert!(
        stored * 1000 < size,
        "unchanged backup stored {stored} of {size}"
    );

    let before = std::fs::read(&db).unwrap();
    let n = touch_rows(&db, 500);
    assert!(n > 100);
    let after = std::fs::read(&db).unwrap();
    let changed_pages = before
        .chunks(4096)
        .zip(after.chunks(4096))
        .filter(|(a, b)| a != b)
        .count()
        + after.len().saturating_sub(before.len()) / 4096;
    let inc = env.backup(&repo, &db);
    let added = inc["stored_bytes"].as_u64().unwrap();
    let changed = (changed_pages * 4096) as u64;
    assert!(
        added <= changed,
        "incremental stored {added} bytes for {changed} bytes of changed pages"
    );

    // Every backup restores to its own version.
    let out = env.path("inc.db");
    restore(&repo, inc["id"].as_str().unwrap(), &out);
    assert_eq!(std::fs::read(&out).unwrap(), after);
    let out1 = env.path("first.db");
    restore(&repo, first["id"].as_str().unwrap(), &out1);
    assert_eq!(std::fs::read(&out1).unwrap(), before);
}

#[test]
fn restored_database_keeps_page_size_encoding_and_header_fields() {
    let env = Env::new();
    let db = env.path("u16.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA page_size=8192; PRAGMA encoding='UTF-16le'; PRAGMA user_version=42;
             PRAGMA application_id=1234567; CREATE TABLE x(a TEXT); INSERT INTO x VALUES ('héllo');",
        )
        .unwrap();
    }
    let repo = env.init("repo");
    env.backup(&repo, &db);
    let out = env.path("out.db");
    restore(&repo, "latest", &out);
    let conn = rusqlite::Connection::open(&out).unwrap();
    let q = |sql: &str| -> String {
        conn.query_row(sql, [], |r| r.get::<_, rusqlite::types::Value>(0))
            .map(|v| format!("{v:?}"))
            .unwrap()
    };
    assert_eq!(q("PRAGMA page_size"), "Integer(8192)");
    assert_eq!(q("PRAGMA encoding"), "Text(\"UTF-16le\")");
    assert_eq!(q("PRAGMA user_version"), "Integer(42)");
    assert_eq!(q("PRAGMA application_id"), "Integer(1234567)");
    assert_eq!(q("SELECT a FROM x"), "Text(\"héllo\")");
}

#[test]
fn delete_then_prune_frees_space_and_keeps_other_backups() {
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 8, "DELETE");
    let repo = env.init("repo");
    let a = env.backup(&repo, &db);
    // Rewrite most rows so the second backup shares little with the first.
    touch_rows(&db, 1);
    let b = env.backup(&repo, &db);
    let before = repo_size(&repo);
    ok(&["delete", a["id"].as_str().unwrap(), "--repo", &repo]);
    let listed = json(&["list", "--repo", &repo, "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let report: serde_json::Value = json(&["prune", "--repo", &repo, "--json"]);
    assert!(report["bytes_freed"].as_u64().unwrap() > 0, "{report}");
    let after = repo_size(&repo);
    assert!(after < before, "prune freed nothing: {before} -> {after}");
    ok(&["check", "--repo", &repo, "--read-data"]);
    let out = env.path("b.db");
    restore(&repo, b["id"].as_str().unwrap(), &out);
    assert!(same_file(&db, &out));
}

/// Regression: restore coalesced reads across frames of different packs and
/// indexed the wrong pack's frame table.
#[test]
fn restore_reads_blocks_spread_over_many_small_packs() {
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 12, "DELETE");
    let repo = env.repo("repo");
    ok(&[
        "init",
        "--repo",
        &repo,
        "--pack-size",
        "1048576",
        "--frame-size",
        "65536",
    ]);
    env.backup(&repo, &db);
    for nth in [3, 11, 29] {
        touch_rows(&db, nth);
        env.backup(&repo, &db);
    }
    let out = env.path("out.db");
    restore(&repo, "latest", &out);
    assert!(same_file(&db, &out));
}

#[test]
fn two_backups_at_once_both_succeed() {
    let env = Env::new();
    let (a, b) = (env.path("a.db"), env.path("b.db"));
    make_db(&a, 12, "DELETE");
    make_db(&b, 12, "WAL");
    touch_rows(&b, 2);
    let repo = env.init("repo");
    let (ra, rb) = (repo.clone(), repo.clone());
    let (pa, pb) = (a.clone(), b.clone());
    let ta = std::thread::spawn(move || Env::new().backup(&ra, &pa));
    let tb = std::thread::spawn(move || Env::new().backup(&rb, &pb));
    let (sa, sb) = (ta.join().unwrap(), tb.join().unwrap());
    assert_ne!(sa["id"], sb["id"]);
    ok(&["check", "--repo", &repo, "--read-data"]);
    for (s, src) in [(&sa, &a), (&sb, &b)] {
        let out = env.path("out.db");
        restore(&repo, s["id"].as_str().unwrap(), &out);
        integrity_ok(&out);
        let n = |p: &std::path::Path| -> i64 {
            Connection::open(p)
                .unwrap()
                .query_row("SELECT sum(v) FROM t", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(n(&out), n(src));
    }
}

#[test]
fn prune_beside_a_backup_never_deletes_what_the_backup_uses() {
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 24, "DELETE");
    let repo = env.init("repo");
    let old = env.backup(&repo, &db);
    touch_rows(&db, 7);
    // Deleting the old backup makes most of its blocks prunable, while the
    // next backup dedups against exactly those blocks.
    ok(&["delete", old["id"].as_str().unwrap(), "--repo", &repo]);
    let (r, p) = (repo.clone(), db.clone());
    let backup = std::thread::spawn(move || Env::new().backup(&r, &p));
    std::thread::sleep(std::time::Duration::from_millis(50));
    ok(&["prune", "--repo", &repo]);
    let snap = backup.join().unwrap();
    ok(&["check", "--repo", &repo, "--read-data"]);
    let out = env.path("out.db");
    restore(&repo, snap["id"].as_str().unwrap(), &out);
    assert!(same_file(&db, &out));
}
