//! `binlog-stream` against a real MariaDB: every transaction archived
//! exactly once, across rotations, runs, a SIGKILL and a server restart;
//! settings and purged logs refused with a clear line.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use arca_engine::mysql::binlog;

use super::cancel::signal;
use super::common::{run_ok, Env};
use super::mariadb::{Maria, PASSWORD};
use super::mysql::fails;
use super::postgres::{arca, arca_bin};

fn source(m: &Maria) -> String {
    format!("mysql://arca@127.0.0.1:{}", m.port)
}

/// `binlog-stream --until-now --json`, with the password from MYSQL_PWD.
fn until_now(repo: &str, m: &Maria) -> serde_json::Value {
    let out = arca()
        .env("MYSQL_PWD", PASSWORD)
        .args(["binlog-stream", "--repo", repo, "--source", &source(m)])
        .args(["--until-now", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The archive's segments in log order: (name, info, GTIDs of its
/// transactions in order).
fn segments(repo: &str) -> Vec<(String, binlog::SegmentInfo, Vec<String>)> {
    let root = std::path::Path::new(repo).join("logs/mysql");
    let stream = std::fs::read_dir(&root)
        .unwrap()
        .next()
        .expect("an archive")
        .unwrap()
        .file_name()
        .to_string_lossy()
        .into_owned();
    let loc = arca_repo::Location::parse(repo).unwrap();
    let r = arca_repo::Repository::open(&loc).unwrap();
    let stream = format!("mysql/{stream}");
    let mut names: Vec<String> = r
        .list_logs(&stream)
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    names.sort_by_key(|n| binlog::segment_order(n).unwrap());
    names
        .into_iter()
        .map(|n| {
            let bytes = r.get_log(&stream, &n).unwrap().unwrap();
            let s = binlog::decode_segment(&n, &bytes).unwrap();
            let gtids = binlog::events(s.events)
                .filter_map(|(h, ev)| binlog::gtid(&h, ev))
                .collect();
            (n, s.info, gtids)
        })
        .collect()
}

/// Checks the archive is one unbroken chain and holds exactly the GTIDs
/// `0-1-(from+1)` to `0-1-to`, each once, in order.
fn assert_exact(repo: &str, from: u64, to: u64) {
    let segs = segments(repo);
    for w in segs.windows(2) {
        assert_eq!(
            w[0].1.resume_at(),
            (w[1].1.file.clone(), w[1].1.start),
            "a gap between {} and {}",
            w[0].0,
            w[1].0
        );
    }
    let got: Vec<String> = segs.iter().flat_map(|s| s.2.clone()).collect();
    let want: Vec<String> = (from + 1..=to).map(|n| format!("0-1-{n}")).collect();
    assert_eq!(got, want);
    for (name, info, gtids) in &segs {
        assert_eq!(info.transactions as usize, gtids.len(), "{name}");
        assert_eq!(info.first_gtid.as_ref(), gtids.first(), "{name}");
        assert_eq!(info.last_gtid.as_ref(), gtids.last(), "{name}");
    }
}

fn seq(m: &Maria) -> u64 {
    let pos = m.root("SELECT @@gtid_binlog_pos");
    pos.rsplit('-').next().unwrap().parse().unwrap()
}

#[test]
fn every_transaction_is_archived_once_across_rotations_and_runs() {
    let env = Env::new();
    let repo = env.init_local("r");
    let m = Maria::start();
    m.root("CREATE DATABASE shop; CREATE TABLE shop.t (id int PRIMARY KEY, v varchar(20));");
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
    let at_backup = seq(&m);
    for i in 0..10 {
        m.root(&format!("INSERT INTO shop.t VALUES ({i}, 'a')"));
    }
    m.root("FLUSH BINARY LOGS");
    m.root(
        "BEGIN; UPDATE shop.t SET v = 'b' WHERE id < 5; DELETE FROM shop.t WHERE id = 9; COMMIT; \
         ALTER TABLE shop.t ADD COLUMN w int;",
    );
    let r = until_now(&repo, &m);
    assert_eq!(r["transactions"], seq(&m) - at_backup, "{r}");
    assert_eq!(r["last_gtid"], m.root("SELECT @@gtid_binlog_pos"), "{r}");
    assert_exact(&repo, at_backup, seq(&m));

    // Nothing new: nothing stored. Then more, after another rotation.
    let again = until_now(&repo, &m);
    assert_eq!(again["transactions"], 0, "{again}");
    assert_eq!(again["start"], r["stored_up_to"], "{again}");
    m.root("FLUSH BINARY LOGS; FLUSH BINARY LOGS;");
    for i in 10..15 {
        m.root(&format!("INSERT INTO shop.t VALUES ({i}, 'c', 1)"));
    }
    let r = until_now(&repo, &m);
    assert_eq!(r["transactions"], 5, "{r}");
    assert_exact(&repo, at_backup, seq(&m));
}

/// Runs `binlog-stream` until stopped.
pub(super) fn streaming(repo: &str, m: &Maria) -> Child {
    std::process::Command::new(arca_bin())
        .env("MYSQL_PWD", PASSWORD)
        .env_remove("ARCA_REPO")
        .args(["binlog-stream", "--repo", repo, "--source", &source(m)])
        .args(["--seal-interval", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the archive holds GTID `0-1-n`.
pub(super) fn archived(repo: &str, n: u64) {
    let want = format!("0-1-{n}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let last = segments(repo)
            .iter()
            .rev()
            .find_map(|s| s.1.last_gtid.clone());
        if last.as_deref() == Some(want.as_str()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{want} was not archived: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_killed_stream_and_a_restarted_server_leave_no_gap_and_no_duplicate() {
    let env = Env::new();
    let repo = env.init_local("r");
    let mut m = Maria::start();
    m.root("CREATE DATABASE shop; CREATE TABLE shop.t (id int PRIMARY KEY, v int);");
    // Anchors the archive at the current position.
    until_now(&repo, &m);
    let from = seq(&m);

    let mut child = streaming(&repo, &m);
    for i in 0..30 {
        m.root(&format!("INSERT INTO shop.t VALUES ({i}, {i})"));
    }
    archived(&repo, seq(&m));
    // SIGKILL while transactions keep coming.
    for i in 30..40 {
        m.root(&format!("INSERT INTO shop.t VALUES ({i}, {i})"));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    for i in 40..50 {
        m.root(&format!("INSERT INTO shop.t VALUES ({i}, {i})"));
    }
    let child = streaming(&repo, &m);
    archived(&repo, seq(&m));

    // The server restarts under the stream: it reconnects and goes on in
    // the server's next file.
    m.restart();
    for i in 50..60 {
        m.root(&format!("INSERT INTO shop.t VALUES ({i}, {i})"));
    }
    archived(&repo, seq(&m));
    signal(&child, libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("connecting again"), "{stderr}");
    assert_exact(&repo, from, seq(&m));
}

#[test]
fn a_log_that_cannot_be_replayed_or_was_purged_is_refused_with_the_way_out() {
    let env = Env::new();
    let repo = env.init_local("r");
    let m = Maria::start();
    let src = source(&m);
    let url = m.url();

    m.root("SET GLOBAL binlog_format = 'STATEMENT'");
    let line = fails(&[
        "binlog-stream",
        "--repo",
        &repo,
        "--source",
        &url,
        "--until-now",
    ]);
    assert!(
        line.contains("binlog_format is STATEMENT") && line.contains("ROW"),
        "{line}"
    );
    assert!(!line.contains(PASSWORD), "{line}");
    m.root("SET GLOBAL binlog_format = 'ROW'; SET GLOBAL binlog_row_image = 'MINIMAL'");
    let line = fails(&[
        "binlog-stream",
        "--repo",
        &repo,
        "--source",
        &url,
        "--until-now",
    ]);
    assert!(line.contains("binlog_row_image is MINIMAL"), "{line}");
    m.root("SET GLOBAL binlog_row_image = 'FULL'");

    // A backup, archived up to a point, then the server purges past it.
    m.root("CREATE DATABASE keep; CREATE TABLE keep.t (id int PRIMARY KEY); INSERT INTO keep.t VALUES (1);");
    run_ok(
        arca(),
        &[
            "backup",
            "--repo",
            &repo,
            "--source",
            &url,
            "--databases",
            "keep",
        ],
    );
    until_now(&repo, &m);
    let file = m.root("SHOW MASTER STATUS");
    let file = file.split('\t').next().unwrap().to_string();
    m.root("CREATE DATABASE shop; INSERT INTO keep.t VALUES (2); FLUSH BINARY LOGS;");
    let current = m.root("SHOW MASTER STATUS");
    let current = current.split('\t').next().unwrap().to_string();
    // A file a replica connection still reads is not purged: the last
    // run's connection may take a moment to go.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        m.root(&format!("PURGE BINARY LOGS TO '{current}'"));
        if !m.root("SHOW BINARY LOGS").contains(&file) {
            break;
        }
        assert!(Instant::now() < deadline, "{file} was not purged");
        std::thread::sleep(Duration::from_millis(200));
    }
    let line = fails(&[
        "binlog-stream",
        "--repo",
        &repo,
        "--source",
        &url,
        "--until-now",
    ]);
    assert!(
        line.contains(&format!("no longer has binary log {file}")) && line.contains("--from-now"),
        "{line}"
    );
    // --from-now starts over at the server's position.
    let out = arca()
        .env("MYSQL_PWD", PASSWORD)
        .args(["binlog-stream", "--repo", &repo, "--source", &src])
        .args(["--until-now", "--from-now", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["start"].as_str().unwrap().starts_with(&current), "{r}");

    // The backup before the gap restores as it was taken, and says why.
    m.root("INSERT INTO keep.t VALUES (3)");
    until_now(&repo, &m);
    let out = run_ok(
        arca(),
        &[
            "restore",
            "latest",
            "--repo",
            &repo,
            "--to",
            &url,
            "--rename",
            "keep:back",
        ],
    );
    assert!(
        out.contains("has a gap") && out.contains("restored as it was taken"),
        "{out}"
    );
    assert_eq!(m.root("SELECT GROUP_CONCAT(id) FROM back.t"), "1");
    // A target past the gap is refused before anything is written.
    let now = m.root("SELECT UTC_TIMESTAMP() + INTERVAL 1 SECOND");
    let line = fails(&[
        "restore",
        "latest",
        "--repo",
        &repo,
        "--to",
        &url,
        "--rename",
        "keep:never",
        "--target-time",
        &format!("{now}+00:00"),
    ]);
    assert!(line.contains("has a gap"), "{line}");
    assert_eq!(m.root("SHOW DATABASES LIKE 'never'"), "");
}

#[test]
fn list_shows_the_window_and_prune_keeps_the_log_a_kept_backup_needs() {
    let env = Env::new();
    let repo = env.init_local("r");
    let m = Maria::start();
    m.root("CREATE DATABASE shop; CREATE TABLE shop.t (id int PRIMARY KEY);");
    let first = run_ok(
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
    )
    .trim()
    .to_string();
    until_now(&repo, &m);
    for i in 0..5 {
        m.root(&format!("INSERT INTO shop.t VALUES ({i})"));
    }
    m.root("FLUSH BINARY LOGS");
    until_now(&repo, &m);
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
    for i in 5..8 {
        m.root(&format!("INSERT INTO shop.t VALUES ({i})"));
    }
    until_now(&repo, &m);
    let gtid = m.root("SELECT @@gtid_binlog_pos");

    // The window: from the oldest backup to the newest transaction.
    let shown = run_ok(arca(), &["list", "--repo", &repo]);
    assert!(
        shown.contains("recoverable from") && shown.contains(&format!("(GTID {gtid})")),
        "{shown}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&run_ok(arca(), &["list", "--repo", &repo, "--json"])).unwrap();
    assert_eq!(v[0]["cluster_window"]["last_gtid"], gtid.as_str(), "{v}");

    // A time after everything archived, and after the archive was last
    // written, is refused: nothing says what came between.
    let line = fails(&[
        "restore",
        "latest",
        "--repo",
        &repo,
        "--to",
        &m.url(),
        "--rename",
        "shop:later",
        "--target-time",
        "2999-01-01 00:00:00+00:00",
    ]);
    assert!(line.contains("last written before the target"), "{line}");

    // Without the first backup, the log before the second one goes; the
    // second still restores to the end of the archive.
    let before = segments(&repo).len();
    run_ok(arca(), &["delete", &first, "--repo", &repo]);
    let pruned = run_ok(arca(), &["prune", "--repo", &repo]);
    let after = segments(&repo);
    assert!(after.len() < before, "{pruned}: {before} → {}", after.len());
    let restored = run_ok(
        arca(),
        &[
            "restore",
            "latest",
            "--repo",
            &repo,
            "--to",
            &m.url(),
            "--rename",
            "shop:back",
        ],
    );
    assert!(
        restored.contains(&format!("up to GTID {gtid}")),
        "{restored}"
    );
    assert_eq!(
        m.root("SELECT GROUP_CONCAT(id ORDER BY id) FROM back.t"),
        "0,1,2,3,4,5,6,7"
    );
}

#[test]
fn a_named_snapshot_restores_to_its_position() {
    let env = Env::new();
    let repo = env.init_local("r");
    let m = Maria::start();
    let url = m.url();
    m.root("CREATE DATABASE shop; CREATE TABLE shop.t (id int PRIMARY KEY);");
    run_ok(
        arca(),
        &[
            "backup",
            "--repo",
            &repo,
            "--source",
            &url,
            "--databases",
            "shop",
        ],
    );
    until_now(&repo, &m);
    m.root("INSERT INTO shop.t VALUES (1), (2); INSERT INTO shop.t VALUES (3);");
    let made = run_ok(
        arca(),
        &[
            "snapshot",
            "create",
            "--repo",
            &repo,
            "--source",
            &url,
            "--sname",
            "before-purge",
        ],
    );
    assert!(
        made.contains("snapshot before-purge at") && made.contains("binary log binlog."),
        "{made}"
    );
    m.root("DELETE FROM shop.t; INSERT INTO shop.t VALUES (9);");
    until_now(&repo, &m);
    let shown = run_ok(arca(), &["snapshot", "show", "--repo", &repo]);
    assert!(
        shown.contains("before-purge") && shown.contains("yes"),
        "{shown}"
    );
    let out = run_ok(
        arca(),
        &[
            "restore",
            "latest",
            "--repo",
            &repo,
            "--to",
            &url,
            "--rename",
            "shop:snap",
            "--target-snapshot",
            "before-purge",
        ],
    );
    assert!(out.contains("replayed the binary log"), "{out}");
    assert_eq!(
        m.root("SELECT GROUP_CONCAT(id ORDER BY id) FROM snap.t"),
        "1,2,3"
    );
    let dropped = run_ok(
        arca(),
        &[
            "snapshot",
            "drop",
            "--repo",
            &repo,
            "--sname",
            "before-purge",
        ],
    );
    assert!(
        dropped.contains("dropped snapshot before-purge"),
        "{dropped}"
    );
    let line = fails(&[
        "restore",
        "latest",
        "--repo",
        &repo,
        "--to",
        &url,
        "--rename",
        "shop:gone",
        "--target-snapshot",
        "before-purge",
    ]);
    assert!(line.contains("no snapshot named before-purge"), "{line}");
}
