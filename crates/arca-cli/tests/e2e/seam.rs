//! The engine seam as a user meets it: a backup a newer arca wrote with an
//! engine this one does not know, a repository holding two engines, and a
//! recovery target asked of an engine without a log.

use arca_repo::{BackupKind, EngineName};

use super::common::*;
use super::restore_target::{forge, only_manifest};

#[test]
fn a_backup_of_an_unknown_engine_is_shown_and_refused_as_such_not_as_damage() {
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 1, "WAL");
    let repo = env.init_local("repo");
    env.backup(&repo, &db);
    let good = only_manifest(&repo);
    let id = forge(&repo, &good, |m| {
        m.engine = EngineName::from("oracle");
        m.kind = BackupKind::from("columnar");
    });

    // Listed and checked as the newer arca wrote it: nothing is damaged.
    let listed = ok(&["list", "--repo", &repo]);
    assert!(listed.contains("oracle"), "{listed}");
    assert!(!listed.contains("damaged"), "{listed}");
    let shown = ok(&["list", "--repo", &repo, &id[..10]]);
    assert!(shown.contains("columnar"), "{shown}");
    ok(&["check", "--repo", &repo, "--read-data"]);

    // Restoring it names the engine and says to upgrade; nothing is written.
    let target = env.path("out.db");
    let (out, _) = fails(&[
        "restore",
        &id,
        "--repo",
        &repo,
        "--to",
        &target.to_string_lossy(),
    ]);
    let line = error_line(&out);
    assert!(
        line.contains(r#"engine "oracle""#) && line.contains("upgrade arca"),
        "{line}"
    );
    assert!(!target.exists());

    // Without an id, arca cannot tell which engine is meant.
    let (out, _) = fails(&[
        "restore",
        "--repo",
        &repo,
        "--to",
        &target.to_string_lossy(),
    ]);
    let line = error_line(&out);
    assert!(
        line.contains("backups of 2 engines (oracle, sqlite)") && line.contains("name the backup"),
        "{line}"
    );

    // The SQLite backup beside it restores as before.
    ok(&[
        "restore",
        &good.id.to_hex(),
        "--repo",
        &repo,
        "--to",
        &target.to_string_lossy(),
    ]);
    integrity_ok(&target);
}

#[test]
fn a_recovery_target_asked_of_sqlite_is_refused_in_one_line() {
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 1, "WAL");
    let repo = env.init_local("repo");
    env.backup(&repo, &db);
    let target = env.path("out.db");
    let to = target.to_string_lossy().into_owned();
    for flags in [
        &["--target-time", "2026-01-01 00:00:00"][..],
        &["--target-lsn", "0/3000028"][..],
        &["--start"][..],
    ] {
        let args = [
            &["restore", "latest", "--repo", &repo, "--to", &to][..],
            flags,
        ]
        .concat();
        let (out, _) = fails(&args);
        let line = error_line(&out);
        assert!(line.contains("is a SQLite backup"), "{flags:?}: {line}");
        assert!(!target.exists());
    }
}
