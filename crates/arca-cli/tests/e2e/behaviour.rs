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
fn mo_br_flags_and_arca_repo_env_work() {
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 1, "DELETE");
    let repo = env.s("repo");
    ok(&["init", "--backup_dir", "filesystem", "--path", &repo]);
    let src = format!("sqlite://{}", db.display());
    ok(&[
        "backup",
        "--backup_dir",
        "filesystem",
        "--path",
        &repo,
        "--source",
        &src,
        "--parallelism",
        "3",
    ]);
    let out = env.s("out.db");
    ok(&[
        "restore",
        "latest",
        "--backup_dir",
        "filesystem",
        "--path",
        &repo,
        "--restore_dir",
        "filesystem",
        "--restore_path",
        &out,
        "--parallelism",
        "2",
    ]);
    assert!(same_file(&db, std::path::Path::new(&out)));
    ok(&[
        "check",
        "--path",
        &repo,
        "--backup_dir",
        "filesystem",
        "--parallelism",
        "2",
    ]);
    let o = arca()
        .env("ARCA_REPO", &repo)
        .args(["list", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
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
    let before = dir_size(std::path::Path::new(&repo));
    ok(&["delete", a["id"].as_str().unwrap(), "--repo", &repo]);
    let listed = json(&["list", "--repo", &repo, "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let report: serde_json::Value = json(&["prune", "--repo", &repo, "--json"]);
    assert!(report["bytes_freed"].as_u64().unwrap() > 0, "{report}");
    let after = dir_size(std::path::Path::new(&repo));
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
    let repo = env.s("repo");
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
