//! PostgreSQL: physical backup, WAL archiving, and restores to a time, an LSN,
//! a named snapshot and the newest WAL, each checked on the started cluster.

use std::path::Path;
use std::time::Duration;

use super::common::{error_line, Env};
use super::postgres::{arca, ok, server_repo, Pg};

/// Commits batch `n` (three rows) and returns the server's time after the commit.
pub(super) fn commit_batch(pg: &Pg, n: i32) -> String {
    pg.sql(&format!(
        "INSERT INTO t(batch, k) SELECT {n}, g FROM generate_series(1, 3) g"
    ));
    let t = pg.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00:00'");
    // A pause, so a target time between two batches is well apart from both.
    std::thread::sleep(Duration::from_millis(1100));
    t
}

/// A cluster archiving into a new repository, with the batch table `t`.
pub(super) fn batch_cluster(env: &Env) -> (String, Pg) {
    let repo = server_repo(env);
    let pg = Pg::start(Some(&repo));
    pg.sql("CREATE TABLE t(batch int, k int, at timestamptz DEFAULT clock_timestamp())");
    (repo, pg)
}

/// The port `restore --start` says the restored cluster listens on.
pub(super) fn started_port(out: &str) -> u16 {
    out.split("on port ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {out:?}"))
}

/// The repository's archive of the one cluster that archives into it.
pub(super) fn wal_dir(repo: &str) -> std::path::PathBuf {
    std::fs::read_dir(Path::new(repo).join("logs/postgres"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

/// The names in [`wal_dir`], sorted.
pub(super) fn wal_files(repo: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(wal_dir(repo))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

pub(super) fn batches(pg: &Pg) -> String {
    pg.sql("SELECT string_agg(DISTINCT batch::text, ',' ORDER BY batch::text) FROM t")
}

/// Restores with `flags` and --start, and returns the batches the cluster holds.
fn restore_and_read(env: &Env, repo: &str, name: &str, flags: &[&str]) -> String {
    let to = env.path(name);
    let mut args = vec![
        "restore",
        "--repo",
        repo,
        "--to",
        to.to_str().unwrap(),
        "--start",
    ];
    args.extend_from_slice(flags);
    let port = started_port(&ok(&args));
    // Prefetched WAL is gone once recovery is over.
    assert!(!to.join("arca-wal-spool").exists());
    let pg = Pg::adopt(to, port);
    let got = batches(&pg);
    // The restored cluster is a new timeline that archives nothing.
    assert_eq!(pg.sql("SELECT pg_is_in_recovery()"), "f");
    assert_eq!(pg.sql("SHOW archive_mode"), "off");
    got
}

#[test]
fn point_in_time_restores_hold_exactly_the_batches_before_the_target() {
    let env = Env::new();
    let (repo, pg) = batch_cluster(&env);
    commit_batch(&pg, 1);
    commit_batch(&pg, 2);
    let backup = ok(&[
        "backup",
        "--repo",
        &repo,
        "--source",
        &pg.url(),
        "--pgdata",
        pg.data.to_str().unwrap(),
    ]);
    assert_eq!(backup.trim().len(), 64, "{backup}");
    let after3 = commit_batch(&pg, 3);
    let lsn_after3 = pg.sql("SELECT pg_current_wal_insert_lsn()");
    let after4 = commit_batch(&pg, 4);
    ok(&[
        "snapshot",
        "create",
        "--repo",
        &repo,
        "--source",
        &pg.url(),
        "--sname",
        "after4",
    ]);
    commit_batch(&pg, 5);
    pg.archive_now();
    let listed = ok(&["list", "--repo", &repo]);
    let window = listed
        .lines()
        .find(|l| l.starts_with("PostgreSQL cluster "))
        .unwrap_or_else(|| panic!("no cluster window in {listed}"));
    assert!(window.contains("recoverable from "), "{window}");
    assert!(window.contains("archive lag "), "{window}");
    assert!(window.contains("1 backups"), "{window}");

    // Between batch 3 and batch 4: the midpoint of their commit times is
    // after 3's commit (+0.55 s) and before 4's (-0.55 s).
    let between = |a: &str| {
        let t: jiff::Timestamp = a.parse().unwrap();
        (t + jiff::SignedDuration::from_millis(550)).to_string()
    };
    assert_eq!(
        restore_and_read(
            &env,
            &repo,
            "at-time",
            &["--target-time", &between(&after3)]
        ),
        "1,2,3"
    );
    assert_eq!(
        restore_and_read(
            &env,
            &repo,
            "at-time4",
            &["--target-time", &between(&after4)]
        ),
        "1,2,3,4"
    );
    assert_eq!(
        restore_and_read(&env, &repo, "at-lsn", &["--target-lsn", &lsn_after3]),
        "1,2,3"
    );
    assert_eq!(
        restore_and_read(&env, &repo, "at-snap", &["--target-snapshot", "after4"]),
        "1,2,3,4"
    );
    assert_eq!(restore_and_read(&env, &repo, "latest", &[]), "1,2,3,4,5");

    // The snapshot verbs.
    let shown = ok(&["snapshot", "show", "--repo", &repo]);
    assert!(shown.contains("after4"), "{shown}");
    let to = env.path("snap-restore");
    ok(&[
        "snapshot",
        "restore",
        "--repo",
        &repo,
        "--sname",
        "after4",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert!(to.join("recovery.signal").exists());
    let conf = std::fs::read_to_string(to.join("postgresql.auto.conf")).unwrap();
    assert!(conf.contains("recovery_target_name = 'after4'"), "{conf}");
    // `latest` means the newest backup, recovering to the newest WAL.
    let to = env.path("latest-id");
    ok(&[
        "restore",
        "latest",
        "--repo",
        &repo,
        "--to",
        to.to_str().unwrap(),
    ]);
    let conf = std::fs::read_to_string(to.join("postgresql.auto.conf")).unwrap();
    assert!(conf.contains("restore_command = '"), "{conf}");
    assert!(conf.contains("recovery_target_timeline = '1'"), "{conf}");
    assert!(!conf.contains("recovery_target_action"), "{conf}");
    assert!(to.join("backup_label").exists() && to.join("recovery.signal").exists());
    // The WAL recovery starts with is fetched ahead, beside the files.
    let spooled = std::fs::read_dir(to.join("arca-wal-spool"))
        .unwrap()
        .count();
    assert!(spooled >= 1, "no WAL prefetched");
    ok(&["snapshot", "drop", "--repo", &repo, "--sname", "after4"]);
    let shown = ok(&["snapshot", "show", "--repo", &repo]);
    assert!(!shown.contains("after4"), "{shown}");

    // A target before the backup ended cannot be reached from it.
    let out = arca()
        .args([
            "restore",
            "--repo",
            &repo,
            "--to",
            env.s("too-early").as_str(),
        ])
        .args(["--target-lsn", "0/1000000"])
        .output()
        .unwrap();
    let line = error_line(&out);
    assert!(line.contains("ends before the recovery target"), "{line}");
}

#[test]
fn a_missing_wal_segment_fails_the_restore_naming_the_gap() {
    let env = Env::new();
    let (repo, pg) = batch_cluster(&env);
    ok(&["backup", "--repo", &repo, "--source", &pg.url()]);
    for n in 1..=3 {
        commit_batch(&pg, n);
        pg.archive_now();
    }
    let stream = wal_dir(&repo);
    let segs: Vec<String> = wal_files(&repo)
        .into_iter()
        .filter(|n| n.len() == 24)
        .collect();
    let victim = segs[segs.len() - 2].clone();
    std::fs::remove_file(stream.join(&victim)).unwrap();

    let out = arca()
        .args(["restore", "--repo", &repo, "--to", env.s("gap").as_str()])
        .output()
        .unwrap();
    let line = error_line(&out);
    assert!(line.contains(&victim), "{line}");
    assert!(line.contains("missing"), "{line}");
    assert!(
        !env.path("gap").exists(),
        "a failed restore leaves no data directory"
    );

    // A damaged archived segment is found by check --read-data, by name.
    let damaged = segs[0].clone();
    let path = stream.join(&damaged);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let out = arca()
        .args(["check", "--repo", &repo, "--read-data"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("archived log postgres/"), "{text}");
    assert!(text.contains(&damaged), "{text}");

    // wal-fetch itself refuses to end recovery at the gap: exit 126 makes
    // PostgreSQL abort recovery instead of promoting a shorter history.
    let cluster = stream.file_name().unwrap().to_string_lossy().into_owned();
    let out = arca()
        .args(["wal-fetch", "--repo", &repo, "--cluster", &cluster, &victim])
        .arg(env.path("seg"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(126), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&victim));
    // The end of the archive is the normal end of recovery: exit 1.
    let out = arca()
        .args([
            "wal-fetch",
            "--repo",
            &repo,
            "--cluster",
            &cluster,
            "00000001FFFFFFFF000000FF",
        ])
        .arg(env.path("seg"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn archiving_into_an_unreachable_repository_fails_and_catches_up_without_loss() {
    let env = Env::new();
    let (repo, pg) = batch_cluster(&env);
    ok(&["backup", "--repo", &repo, "--source", &pg.url()]);
    commit_batch(&pg, 1);
    pg.archive_now();

    // The repository goes away: archive_command fails, PostgreSQL keeps the
    // segment in pg_wal and retries.
    let away = env.path("repo-away");
    std::fs::rename(&repo, &away).unwrap();
    let failures = || -> u64 {
        pg.sql("SELECT failed_count FROM pg_stat_archiver")
            .parse()
            .unwrap()
    };
    let before = failures();
    commit_batch(&pg, 2);
    let pending = pg.sql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    pg.sql("SELECT pg_switch_wal()");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while failures() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "archive_command never failed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let last = pg.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
    assert!(
        last < pending,
        "{pending} archived while the repository was away"
    );
    assert!(pg.data.join("pg_wal").join(&pending).exists());

    // Back again: the archiver catches up and nothing is lost.
    std::fs::rename(&away, &repo).unwrap();
    commit_batch(&pg, 3);
    pg.archive_now();
    assert_eq!(restore_and_read(&env, &repo, "after-outage", &[]), "1,2,3");
}

#[test]
fn an_incremental_backup_stores_about_the_changed_pages_and_restores_checked() {
    let env = Env::new();
    let repo = server_repo(&env);
    let pg = Pg::start(Some(&repo));
    pg.sql("CREATE TABLE big(id int PRIMARY KEY, v text)");
    pg.sql("INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 200000) g");
    // Hint bits and the visibility map set now, not by the next reader.
    pg.sql("VACUUM FREEZE big");
    pg.sql("CHECKPOINT");
    // A backup, and the count of files it did not read again (from its log).
    let backup_counting_skipped = || {
        let out = arca()
            .args([
                "-v",
                "backup",
                "--repo",
                &repo,
                "--source",
                &pg.url(),
                "--json",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        let skipped: u64 = log
            .split(" files (")
            .next()
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count of unchanged files in {log}"));
        (json, skipped, log)
    };
    let (first, _, _) = backup_counting_skipped();
    // Change 1% of the rows, then back up again.
    pg.sql("UPDATE big SET v = upper(v) WHERE id <= 2000");
    pg.sql("CHECKPOINT");
    let (second, mut skipped, mut log) = backup_counting_skipped();
    if skipped <= 100 {
        // The rule compares modification times with the last backup's
        // start, so a clock stepped back between initdb and the first
        // backup (seen once on a freshly started machine) makes every file
        // look newer than that backup. The next backup, whose parent is the
        // second, shows the rule itself.
        eprintln!("only {skipped} files skipped; backing up once more: {log}");
        (_, skipped, log) = backup_counting_skipped();
    }
    assert!(
        skipped > 100,
        "unchanged catalog files are not read again: {log}"
    );
    let size = first["size"].as_u64().unwrap();
    let full = first["stored_bytes"].as_u64().unwrap();
    let incr = second["stored_bytes"].as_u64().unwrap();
    // 2,000 updated rows touch a few dozen 8 KiB heap pages, the pages
    // their new versions go to, and index pages: far below the first backup.
    assert!(
        incr * 10 < full,
        "incremental {incr} B vs full {full} B of {size} B"
    );

    pg.sql("UPDATE big SET v = 'after' WHERE id = 1");
    pg.archive_now();
    let expected = pg.sql("SELECT md5(string_agg(v, ',' ORDER BY id)) FROM big");
    let to = env.path("restored");
    let port = started_port(&ok(&[
        "restore",
        "--repo",
        &repo,
        "--to",
        to.to_str().unwrap(),
        "--start",
    ]));
    let restored = Pg::adopt(to, port);
    assert_eq!(
        restored.sql("SELECT md5(string_agg(v, ',' ORDER BY id)) FROM big"),
        expected
    );
    let check = std::process::Command::new(super::postgres::bin_dir().join("pg_amcheck"))
        .args([
            "--install-missing",
            "--heapallindexed",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
        ])
        .args(["-p", &port.to_string(), "-d", "postgres"])
        .output()
        .unwrap();
    assert!(check.status.success(), "pg_amcheck: {check:?}");
    drop(restored);

    // Without the first backup, the WAL before the second one is of no use:
    // prune expires it, and the second backup still restores.
    let before = wal_files(&repo);
    ok(&["delete", "--repo", &repo, first["id"].as_str().unwrap()]);
    let pruned: serde_json::Value =
        serde_json::from_str(&ok(&["prune", "--repo", &repo, "--json"])).unwrap();
    let after = wal_files(&repo);
    assert!(
        pruned["wal_files_deleted"].as_u64().unwrap() > 0,
        "{pruned}"
    );
    assert_eq!(
        before.len() - after.len(),
        pruned["wal_files_deleted"].as_u64().unwrap() as usize
    );
    assert!(after.first() > before.first(), "{before:?} -> {after:?}");
    let to = env.path("after-expire");
    ok(&["restore", "--repo", &repo, "--to", to.to_str().unwrap()]);
}

/// `restore --start` returns once the server is out of recovery (writable),
/// or, with --target-action pause, says it is paused at the target.
#[test]
fn restore_start_returns_a_writable_server_or_says_it_paused() {
    let env = Env::new();
    let (repo, pg) = batch_cluster(&env);
    commit_batch(&pg, 1);
    ok(&["backup", "--repo", &repo, "--source", &pg.url()]);
    commit_batch(&pg, 2);
    let lsn = pg.sql("SELECT pg_current_wal_insert_lsn()");
    commit_batch(&pg, 3);
    pg.archive_now();
    let restore = |name: &str, flags: &[&str]| {
        let to = env.path(name);
        let mut args = vec!["restore", "--repo", &repo, "--to", to.to_str().unwrap()];
        args.extend_from_slice(&["--start", "--target-lsn", &lsn]);
        args.extend_from_slice(flags);
        let out = ok(&args);
        (out.clone(), Pg::adopt(to, started_port(&out)))
    };

    let (out, copy) = restore("promoted", &[]);
    assert!(out.contains("recovery is over"), "{out}");
    assert_eq!(copy.sql("SELECT pg_is_in_recovery()"), "f");
    copy.sql("CREATE TABLE written(x int)");
    assert_eq!(batches(&copy), "1,2");
    drop(copy);

    let (out, copy) = restore("paused", &["--target-action", "pause"]);
    assert!(
        out.contains("paused at the recovery target, still in recovery"),
        "{out}"
    );
    assert!(!out.contains("recovery is over"), "{out}");
    assert_eq!(copy.sql("SELECT pg_is_in_recovery()"), "t");
    assert_eq!(batches(&copy), "1,2");
    drop(copy);

    let out = arca()
        .args([
            "restore",
            "--repo",
            &repo,
            "--to",
            env.s("no-target").as_str(),
        ])
        .args(["--start", "--target-action", "pause"])
        .output()
        .unwrap();
    let line = error_line(&out);
    assert!(
        line.contains("--target-action pause needs a target"),
        "{line}"
    );
    assert!(!env.path("no-target").exists());
}

/// `list` ends the recoverable window at the last archived transaction (not
/// when the newest segment was archived), in text and in --json; a
/// --target-time after it is refused before anything is written; the gap
/// error suggests a --target-lsn that restores; `list` into a closed pipe
/// exits quietly.
#[test]
fn the_window_ends_at_the_last_archived_transaction() {
    let env = Env::new();
    let (repo, pg) = batch_cluster(&env);
    commit_batch(&pg, 1);
    ok(&["backup", "--repo", &repo, "--source", &pg.url()]);
    let after2: jiff::Timestamp = commit_batch(&pg, 2).parse().unwrap();
    let switched: jiff::Timestamp = pg
        .sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00:00'")
        .parse()
        .unwrap();
    pg.archive_now();

    let listed: serde_json::Value =
        serde_json::from_str(&ok(&["list", "--repo", &repo, "--json"])).unwrap();
    let w = &listed[0]["cluster_window"];
    let to: jiff::Timestamp = w["to"].as_str().unwrap().parse().unwrap();
    assert!(to <= after2 && after2 < switched, "{w}");
    assert!(w["lag_seconds"].is_number(), "{w}");
    assert!(w["from"].is_string(), "{w}");
    let text = ok(&["list", "--repo", &repo]);
    assert!(text.contains("(the last archived transaction)"), "{text}");

    let out = arca()
        .args(["restore", "--repo", &repo, "--to", env.s("late").as_str()])
        .args(["--target-time", &after2.to_string()])
        .output()
        .unwrap();
    let line = error_line(&out);
    assert!(line.contains("not before the last transaction"), "{line}");
    assert!(!env.path("late").exists());

    // A gap: the suggested --target-lsn restores what lies before it.
    commit_batch(&pg, 3);
    pg.archive_now();
    commit_batch(&pg, 4);
    pg.archive_now();
    let segs: Vec<String> = wal_files(&repo)
        .into_iter()
        .filter(|n| n.len() == 24)
        .collect();
    let victim = segs[segs.len() - 2].clone();
    std::fs::remove_file(wal_dir(&repo).join(&victim)).unwrap();
    let out = arca()
        .args(["restore", "--repo", &repo, "--to", env.s("gap").as_str()])
        .output()
        .unwrap();
    let line = error_line(&out);
    let lsn = line
        .split("--target-lsn ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap_or_else(|| panic!("no --target-lsn in {line}"))
        .to_string();
    assert_eq!(
        restore_and_read(&env, &repo, "before-gap", &["--target-lsn", &lsn]),
        "1,2"
    );

    // `arca list | head`: the reader has gone.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(super::postgres::arca_bin())
        .args(["list", "--repo", &repo])
        .stdout(writer)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
}

/// Backs up the cluster and returns the backup's id.
fn backup(repo: &str, pg: &Pg) -> String {
    let out = ok(&[
        "backup",
        "--repo",
        repo,
        "--source",
        &pg.url(),
        "--pgdata",
        pg.data.to_str().unwrap(),
    ]);
    out.trim().to_string()
}

fn create_point(repo: &str, pg: &Pg, name: &str) {
    ok(&[
        "snapshot",
        "create",
        "--repo",
        repo,
        "--source",
        &pg.url(),
        "--sname",
        name,
    ]);
}

#[test]
fn a_backups_parent_is_the_previous_backup_not_a_named_snapshot() {
    let env = Env::new();
    let (repo, pg) = batch_cluster(&env);
    let first = backup(&repo, &pg);
    commit_batch(&pg, 1);
    create_point(&repo, &pg, "before-migration");
    let second = backup(&repo, &pg);
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&["list", "--repo", &repo, &second, "--json"])).unwrap();
    assert_eq!(shown["parent"], first.as_str(), "not the first backup");
}

#[test]
fn a_named_snapshots_only_base_is_deleted_only_with_force_and_then_shown_unrestorable() {
    let env = Env::new();
    let (repo, pg) = batch_cluster(&env);
    commit_batch(&pg, 1);
    let base = backup(&repo, &pg);
    commit_batch(&pg, 2);
    create_point(&repo, &pg, "before-migration");
    commit_batch(&pg, 3);
    let later = backup(&repo, &pg);
    pg.archive_now();

    // The later backup ends after the point: only the first reaches it.
    let out = arca()
        .args(["delete", "--repo", &repo, &base])
        .output()
        .unwrap();
    let line = error_line(&out);
    assert!(
        line.contains("base of named snapshot(s) before-migration")
            && line.contains("arca snapshot drop --sname before-migration")
            && line.contains("--force"),
        "{line}"
    );
    // The later backup is no point's base; prune then keeps the WAL from the
    // first backup to the point.
    ok(&["delete", "--repo", &repo, &later]);
    ok(&["prune", "--repo", &repo]);
    assert_eq!(
        restore_and_read(
            &env,
            &repo,
            "at-snap",
            &["--target-snapshot", "before-migration"]
        ),
        "1,2"
    );

    let out = arca()
        .args(["delete", "--repo", &repo, &base, "--force"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let shown = ok(&["snapshot", "show", "--repo", &repo]);
    assert!(shown.contains("no: no base backup"), "{shown}");
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&["snapshot", "show", "--repo", &repo, "--json"])).unwrap();
    assert_eq!(shown[0]["name"], "before-migration", "{shown}");
    assert_eq!(shown[0]["restorable"], false, "{shown}");
    assert!(shown[0]["problem"].as_str().is_some(), "{shown}");
    let listed = ok(&["list", "--repo", &repo]);
    assert!(
        listed.contains("unrestorable: named snapshot before-migration"),
        "{listed}"
    );
    // Refused before anything is written.
    let to = env.path("orphan");
    let out = arca()
        .args(["snapshot", "restore", "--repo", &repo])
        .args(["--sname", "before-migration", "--to", to.to_str().unwrap()])
        .output()
        .unwrap();
    let line = error_line(&out);
    assert!(
        line.contains("snapshot before-migration cannot be restored"),
        "{line}"
    );
    let written: Vec<_> = std::fs::read_dir(to.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("orphan"))
        .collect();
    assert!(written.is_empty(), "{written:?}");
}
