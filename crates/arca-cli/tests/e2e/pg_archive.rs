//! PostgreSQL: what the WAL archive accepts, and what a restored copy may
//! write into the repository it came from.

use std::time::{Duration, Instant};

use super::common::{error_line, Env};
use super::pg_pitr::{batch_cluster, batches, commit_batch, started_port, wal_files};
use super::postgres::free_port;
use super::postgres::{arca, as_server, bin_dir, ok, server_repo, Pg};

/// A push of a truncated segment is refused (it would block the whole one
/// for good); a truncated copy an older arca stored is replaced by the whole
/// segment; a real conflict is still refused; history files still go in.
#[test]
fn a_truncated_segment_is_refused_and_a_stored_one_is_replaced() {
    let env = Env::new();
    let repo = server_repo(&env);
    let pg = Pg::start(None);
    pg.sql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g");
    let name = pg.sql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    pg.sql("SELECT pg_switch_wal()");
    let cluster = pg.sql("SELECT system_identifier FROM pg_control_system()");
    let whole = std::fs::read(pg.data.join("pg_wal").join(&name)).unwrap();
    assert_eq!(whole.len(), 16 << 20);
    let pgdata = pg.data.to_str().unwrap();
    let push = |dir: &str, bytes: &[u8]| {
        let d = env.path(dir);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(&name), bytes).unwrap();
        arca()
            .args(["wal-push", "--repo", &repo, "--pgdata", pgdata])
            .arg(d.join(&name))
            .output()
            .unwrap()
    };
    let fetch = || {
        let dest = env.path("fetched");
        let _ = std::fs::remove_file(&dest);
        let out = arca()
            .args(["wal-fetch", "--repo", &repo, "--cluster", &cluster, &name])
            .arg(&dest)
            .output()
            .unwrap();
        (out, std::fs::read(&dest).ok())
    };

    let out = push("short", &whole[..1 << 20]);
    let line = error_line(&out);
    assert!(line.contains("1048576 bytes"), "{line}");
    assert!(line.contains("16777216"), "{line}");
    assert!(line.contains("truncated"), "{line}");
    let (out, got) = fetch();
    assert_eq!(out.status.code(), Some(1), "nothing archived: {out:?}");
    assert!(got.is_none());

    // What an older arca stored from the same push: recovery is refused it
    // clearly, and the whole segment replaces it.
    let r = arca_repo::Repository::open(&arca_repo::Location::parse(&repo).unwrap()).unwrap();
    let stream = format!("postgres/{cluster}");
    r.put_log(&stream, &name, &whole[..1 << 20], false).unwrap();
    let (out, got) = fetch();
    assert_eq!(out.status.code(), Some(126), "{out:?}");
    assert!(got.is_none());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("truncated") && err.contains("wal-push"),
        "{err}"
    );
    let out = push("whole", &whole);
    assert!(out.status.success(), "{out:?}");
    let (out, got) = fetch();
    assert!(out.status.success(), "{out:?}");
    assert!(
        got.unwrap() == whole,
        "wal-fetch hands back the whole segment"
    );

    // A whole segment with other content is a conflict, as before.
    let mut other = whole.clone();
    *other.last_mut().unwrap() ^= 1;
    let line = error_line(&push("other", &other));
    assert!(line.contains("different content"), "{line}");
    let (_, got) = fetch();
    assert!(got.unwrap() == whole);

    // Not segments: taken whatever their length.
    let history = env.path("hist/00000002.history");
    std::fs::create_dir_all(history.parent().unwrap()).unwrap();
    std::fs::write(&history, "1\t0/5000000\tno recovery target specified\n").unwrap();
    ok(&[
        "wal-push",
        "--repo",
        &repo,
        "--pgdata",
        pgdata,
        history.to_str().unwrap(),
    ]);
    let partial = env.path("part").join(format!("{name}.partial"));
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::fs::write(&partial, &whole[..1 << 20]).unwrap();
    ok(&[
        "wal-push",
        "--repo",
        &repo,
        "--pgdata",
        pgdata,
        partial.to_str().unwrap(),
    ]);
}

/// Restores the newest backup of `repo` to `name` without --start, on a new
/// port, and starts it as the output says; returns the output and the server.
fn restore_copy(env: &Env, repo: &str, name: &str, flags: &[&str]) -> (String, Pg) {
    let to = env.path(name);
    let port = free_port();
    let mut args = vec![
        "restore",
        "--repo",
        repo,
        "--to",
        to.to_str().unwrap(),
        "--port",
    ];
    let port_s = port.to_string();
    args.push(&port_s);
    args.extend_from_slice(flags);
    let out = ok(&args);
    assert!(
        out.contains(&format!("start it with: pg_ctl -D {} start", to.display())),
        "{out}"
    );
    let started = as_server(&bin_dir().join("pg_ctl"))
        .arg("-D")
        .arg(&to)
        .arg("-l")
        .arg(to.join("start.log"))
        .args(["-w", "-t", "120", "start"])
        .output()
        .unwrap();
    assert!(started.status.success(), "{started:?}");
    let pg = Pg::adopt(to, port);
    let deadline = Instant::now() + Duration::from_secs(120);
    while pg.sql("SELECT pg_is_in_recovery()") != "f" {
        assert!(Instant::now() < deadline, "the copy never left recovery");
        std::thread::sleep(Duration::from_millis(100));
    }
    (out, pg)
}

/// A copy restored without --start and started as the output says archives
/// nothing into the repository it came from, and a later restore of the
/// newest WAL holds production's data only.
#[test]
fn a_restored_copy_does_not_archive_into_the_production_repository() {
    let env = Env::new();
    let (repo, prod) = batch_cluster(&env);
    commit_batch(&prod, 1);
    ok(&["backup", "--repo", &repo, "--source", &prod.url()]);
    commit_batch(&prod, 2);
    prod.archive_now();
    let before = wal_files(&repo);

    let (out, copy) = restore_copy(&env, &repo, "copy", &[]);
    assert!(out.contains("archiving: off"), "{out}");
    assert!(out.contains("on timeline 1"), "{out}");
    assert_eq!(copy.sql("SHOW archive_mode"), "off");
    assert_eq!(batches(&copy), "1,2");
    commit_batch(&copy, 100);
    copy.sql("SELECT pg_switch_wal()");
    commit_batch(&copy, 101);
    copy.sql("SELECT pg_switch_wal()");
    copy.sql("CHECKPOINT");
    assert_eq!(
        copy.sql("SELECT archived_count || '/' || failed_count FROM pg_stat_archiver"),
        "0/0"
    );
    drop(copy);
    let after = wal_files(&repo);
    assert_eq!(
        before, after,
        "the copy archived into production's repository"
    );

    commit_batch(&prod, 3);
    prod.archive_now();
    let out = ok(&[
        "restore",
        "--repo",
        &repo,
        "--to",
        env.s("latest").as_str(),
        "--start",
    ]);
    let pg = Pg::adopt(env.path("latest"), started_port(&out));
    assert_eq!(batches(&pg), "1,2,3");
}

/// A copy restored with --keep-archiving archives its new timeline into the
/// repository; a restore of the newest WAL stays on the backup's timeline
/// and says which one it left alone; `list` shows the branch, and
/// --target-timeline follows it.
#[test]
fn a_restore_follows_the_backups_timeline_unless_another_is_named() {
    let env = Env::new();
    let (repo, prod) = batch_cluster(&env);
    commit_batch(&prod, 1);
    ok(&["backup", "--repo", &repo, "--source", &prod.url()]);
    commit_batch(&prod, 2);
    prod.archive_now();

    let (out, copy) = restore_copy(&env, &repo, "copy", &["--keep-archiving"]);
    assert!(out.contains("archiving: kept"), "{out}");
    assert_eq!(copy.sql("SHOW archive_mode"), "on");
    commit_batch(&copy, 100);
    copy.archive_now();
    drop(copy);
    assert!(wal_files(&repo).contains(&"00000002.history".to_string()));

    commit_batch(&prod, 3);
    prod.archive_now();
    let listed = ok(&["list", "--repo", &repo]);
    assert!(
        listed.contains("timeline 2 branched from timeline 1 at "),
        "{listed}"
    );
    let out = ok(&[
        "restore",
        "--repo",
        &repo,
        "--to",
        env.s("latest").as_str(),
        "--start",
    ]);
    assert!(out.contains("on timeline 1"), "{out}");
    assert!(out.contains("--target-timeline 2 follows it"), "{out}");
    let pg = Pg::adopt(env.path("latest"), started_port(&out));
    assert_eq!(batches(&pg), "1,2,3");
    drop(pg);

    let out = ok(&[
        "restore",
        "--repo",
        &repo,
        "--to",
        env.s("branch").as_str(),
        "--start",
        "--target-timeline",
        "2",
    ]);
    assert!(out.contains("on timeline 2"), "{out}");
    let pg = Pg::adopt(env.path("branch"), started_port(&out));
    assert_eq!(batches(&pg), "1,100,2");

    let out = ok(&[
        "restore",
        "--repo",
        &repo,
        "--to",
        env.s("newest").as_str(),
        "--target-timeline",
        "latest",
    ]);
    assert!(out.contains("on timeline 2 (the latest)"), "{out}");
    assert!(!out.contains("not followed"), "{out}");

    let out = arca()
        .args(["restore", "--repo", &repo, "--to", env.s("bad").as_str()])
        .args(["--target-timeline", "two"])
        .output()
        .unwrap();
    let line = error_line(&out);
    assert!(line.contains("--target-timeline"), "{line}");
    assert!(!env.path("bad").exists());
}
