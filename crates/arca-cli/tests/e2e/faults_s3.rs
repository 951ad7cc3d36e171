//! Faults between arca and its object store: a TCP proxy ([`super::proxy`])
//! in front of the test SeaweedFS drops and stalls connections while arca
//! backs up and restores through it, or refuses connections altogether.
//! Whatever happens, a command either succeeds with the right result or
//! fails with one clear error line; the repository stays valid; a restore is
//! byte-identical or leaves no file. Always run against SeaweedFS.
//!
//! Faults are drawn from seeds, so a failing seed can be replayed (how arca
//! spreads its requests over connections still varies from run to run).
//! Stalls are short (1.5 s, far below arca's 60 s request timeout) so the
//! tests stay quick; only the test of faults that outlast the retry budget
//! waits that budget out (about 70 s).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use super::common::*;
use super::proxy::{Faults, Mode, Proxy, Stats};
use super::seaweed::{self, arca_s3, ACCESS_KEY, BUCKET, SECRET_KEY};

/// Longer than any run here may take: arca's retry budget (8 retries from
/// 250 ms doubling to 16 s, each plus up to as much again in jitter: 48–96 s)
/// plus the work. A run still going then is a hang.
const HANG: Duration = Duration::from_secs(150);
const PACK_SIZE: &str = "1048576";
const MIB: u64 = 1 << 20;

/// One arca run and how long it took.
struct Run {
    out: Output,
    took: Duration,
}

impl Run {
    fn text(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.out.stdout),
            String::from_utf8_lossy(&self.out.stderr)
        )
    }

    fn ok(&self) -> bool {
        self.out.status.success()
    }

    /// How it ended, and what the proxy did to it between two readings.
    fn summary(&self, before: &Stats, after: &Stats) -> String {
        format!(
            "{} in {:.1}s; {} connections, {} dropped, {} stalled",
            if self.ok() { "completed" } else { "failed" },
            self.took.as_secs_f64(),
            after.connections - before.connections,
            after.drops - before.drops,
            after.stalls - before.stalls,
        )
    }
}

/// Runs arca on the test SeaweedFS, through `proxy` if given (path-style, on
/// the proxy's endpoint), else directly; kills it and fails the test if it
/// hangs.
fn run(args: &[&str], proxy: Option<&Proxy>) -> Run {
    let mut c = arca_s3();
    c.args(args);
    if let Some(p) = proxy {
        c.args(["--endpoint", &p.endpoint(), "--is_minio"]);
    }
    c.timeout(HANG);
    let t = Instant::now();
    let out = c.output().unwrap();
    let run = Run {
        out,
        took: t.elapsed(),
    };
    assert!(
        run.took < HANG,
        "arca {args:?} hung: killed after {:?}; output so far:\n{}",
        run.took,
        run.text()
    );
    no_secret(&run);
    run
}

/// Runs arca directly on SeaweedFS and asserts success.
fn clean(args: &[&str]) -> String {
    let r = run(args, None);
    assert!(r.ok(), "arca {args:?} failed: {}", r.text());
    String::from_utf8_lossy(&r.out.stdout).into_owned()
}

fn no_secret(r: &Run) {
    let t = r.text();
    assert!(
        !t.contains(SECRET_KEY) && !t.contains(ACCESS_KEY),
        "a credential in the output: {t}"
    );
}

/// A failure as users should see one: exit code 1 (no signal, no panic), one
/// `error:` line naming the bucket and `endpoint`, and besides it only
/// warnings (the retries).
fn assert_clean_failure(r: &Run, endpoint: &str) -> String {
    let t = r.text();
    assert_eq!(r.out.status.code(), Some(1), "exit status: {t}");
    assert!(!t.contains("panicked"), "a panic: {t}");
    let errors: Vec<&str> = t.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "expected one error line: {t}");
    for line in t.lines() {
        assert!(
            line.trim().is_empty()
                || line.starts_with("error:")
                || line.starts_with("warning:")
                || line.starts_with("info:"),
            "only the error line and warnings expected, got {line:?} in: {t}"
        );
    }
    let line = errors[0];
    assert!(
        line.contains(BUCKET) && line.contains(endpoint),
        "the error names neither bucket nor endpoint: {line}"
    );
    line.to_string()
}

fn src(db: &Path) -> String {
    format!("sqlite://{}", db.display())
}

/// A repository with 1 MiB packs on a fresh prefix of the test bucket.
fn init(env: &Env, name: &str) -> String {
    let url = seaweed::server().url(&format!("faults/{}/{name}", env.id()));
    clean(&["init", "--repo", &url, "--pack-size", PACK_SIZE]);
    url
}

fn backup_id(stdout: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(stdout).unwrap();
    v["id"].as_str().unwrap().to_string()
}

/// Every object under `data/` is a whole pack: a PUT cut off by a dropped
/// connection must leave no partial object behind.
fn packs_are_whole(url: &str) {
    let sw = seaweed::server();
    let prefix = url.strip_prefix(&format!("s3://{BUCKET}/")).unwrap();
    let b = sw.backend(prefix).unwrap();
    for e in b.list("data").unwrap() {
        let bytes = b.read(&e.path).unwrap();
        assert!(
            bytes.ends_with(arca_repo::pack::PACK_MAGIC),
            "{} ({} bytes) is not a whole pack",
            e.path,
            bytes.len()
        );
    }
}

/// Backups through a proxy that drops and stalls connections: each completes
/// or fails cleanly; the repository stays valid; a backup through a clean
/// path then completes and restores byte for byte.
#[test]
fn backup_through_dropped_and_stalled_connections() {
    let sw = seaweed::server();
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 16, "DELETE");
    let url = init(&env, "backup");
    let proxy = Proxy::start(&sw.endpoint);

    let mut completed = 0;
    for seed in 1..=5u64 {
        // New pages for every run, so each one uploads packs.
        touch_rows(&db, 2 + seed as i64);
        proxy.set_mode(Mode::Faulty(Faults::random(seed, 0.7, 0.5, 2 * MIB)));
        let before = proxy.stats();
        let r = run(
            &["backup", "--repo", &url, "--source", &src(&db), "--json"],
            Some(&proxy),
        );
        let after = proxy.stats();
        eprintln!("seed {seed}: backup {}", r.summary(&before, &after));
        if r.ok() {
            completed += 1;
        } else {
            let line = assert_clean_failure(&r, &proxy.endpoint());
            eprintln!("  {line}");
        }
        packs_are_whole(&url);
        // Through the proxy, faults off.
        proxy.set_mode(Mode::Pass);
        let c = run(&["check", "--repo", &url, "--read-data"], Some(&proxy));
        assert!(c.ok(), "check after seed {seed}: {}", c.text());
    }
    let s = proxy.stats();
    assert!(s.drops > 0 && s.stalls > 0, "no fault happened: {s:?}");
    eprintln!("{completed} of 5 faulty backups completed; {s:?}");

    // The clean path: a second backup completes and restores byte for byte.
    touch_rows(&db, 7);
    let id = backup_id(&clean(&[
        "backup",
        "--repo",
        &url,
        "--source",
        &src(&db),
        "--json",
    ]));
    clean(&["check", "--repo", &url, "--read-data"]);
    let out = env.path("restored.db");
    clean(&[
        "restore",
        &id,
        "--repo",
        &url,
        "--to",
        &out.to_string_lossy(),
    ]);
    assert!(same_file(&db, &out), "the restore differs from the source");
    integrity_ok(&out);
}

/// Restores through a proxy that drops and stalls connections, with several
/// seeds, and through one that cuts every connection after 300 kB (so every
/// ranged read of a pack is resumed part way): each restore is
/// byte-identical to the source or fails cleanly leaving no file behind.
#[test]
fn restore_through_dropped_and_stalled_connections() {
    let sw = seaweed::server();
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 16, "DELETE");
    let url = init(&env, "restore");
    let id = backup_id(&clean(&[
        "backup",
        "--repo",
        &url,
        "--source",
        &src(&db),
        "--json",
    ]));
    let proxy = Proxy::start(&sw.endpoint);
    let out_dir = env.path("out");
    std::fs::create_dir(&out_dir).unwrap();

    let modes = [11u64, 12, 13, 14, 15]
        .map(|seed| (format!("seed {seed}"), Faults::random(seed, 0.8, 0.5, MIB)));
    let cut = (
        "every connection cut at 300 kB".to_string(),
        Faults::drop_after(300_000),
    );
    let mut identical = 0;
    for (what, faults) in modes.into_iter().chain([cut]) {
        proxy.set_mode(Mode::Faulty(faults));
        let before = proxy.stats();
        let target = out_dir.join(format!("{}.db", what.replace(' ', "-")));
        let r = run(
            &[
                "restore",
                &id,
                "--repo",
                &url,
                "--to",
                &target.to_string_lossy(),
            ],
            Some(&proxy),
        );
        let after = proxy.stats();
        eprintln!("{what}: restore {}", r.summary(&before, &after));
        if r.ok() {
            assert!(
                same_file(&db, &target),
                "{what}: arca reported success but the restore differs from the source"
            );
            identical += 1;
        } else {
            let line = assert_clean_failure(&r, &proxy.endpoint());
            eprintln!("  {line}");
            assert!(!target.exists(), "{what}: a failed restore left {target:?}");
        }
        // No partial file under any name.
        let names: Vec<String> = std::fs::read_dir(&out_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| !n.starts_with('.')),
            "{what}: a temporary file left behind: {names:?}"
        );
    }
    let s = proxy.stats();
    assert!(s.drops > 0 && s.stalls > 0, "no fault happened: {s:?}");
    eprintln!("{identical} of 6 faulty restores completed; {s:?}");
}

/// A store that refuses connections: a backup fails within seconds (not
/// after the whole retry budget) with one line naming the endpoint and the
/// bucket; once the store is back the same command succeeds. An outage of a
/// few seconds in the middle of a backup is ridden out by the retries.
#[test]
fn unreachable_store_fails_fast_then_the_same_backup_succeeds() {
    let sw = seaweed::server();
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 16, "DELETE");
    let url = init(&env, "unreachable");
    let proxy = Proxy::start(&sw.endpoint);
    let backup = ["backup", "--repo", &url, "--source", &src(&db), "--json"];

    proxy.set_mode(Mode::Refuse);
    let r = run(&backup, Some(&proxy));
    assert!(!r.ok(), "a backup to a store that is down succeeded");
    let line = assert_clean_failure(&r, &proxy.endpoint());
    assert!(line.contains("cannot connect"), "{line}");
    assert!(
        r.took < Duration::from_secs(10),
        "took {:?} to report an unreachable store",
        r.took
    );
    eprintln!("refused: failed in {:.1}s: {line}", r.took.as_secs_f64());

    proxy.set_mode(Mode::Pass);
    let r = run(&backup, Some(&proxy));
    assert!(r.ok(), "the store is back: {}", r.text());
    let first = backup_id(&String::from_utf8_lossy(&r.out.stdout));

    // Mid-backup: the store goes away for 3 s once 1 MB has gone through
    // (slowed to 2 MB/s so there is a middle to hit), then comes back.
    touch_rows(&db, 2);
    proxy.set_mode(Mode::Faulty(Faults::slow(2_000_000)));
    let start = proxy.stats().bytes;
    let second = std::thread::scope(|s| {
        let job = s.spawn(|| run(&backup, Some(&proxy)));
        let t = Instant::now();
        while proxy.stats().bytes < start + 1_000_000 && !job.is_finished() {
            assert!(t.elapsed() < HANG, "the backup made no progress");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!job.is_finished(), "the backup ended before the outage");
        proxy.set_mode(Mode::Refuse);
        std::thread::sleep(Duration::from_secs(3));
        proxy.set_mode(Mode::Pass);
        job.join().unwrap()
    });
    eprintln!(
        "3 s outage mid-backup: {} in {:.1}s",
        if second.ok() { "completed" } else { "failed" },
        second.took.as_secs_f64()
    );
    assert!(
        second.ok(),
        "a 3 s outage was not ridden out: {}",
        second.text()
    );
    assert!(
        second.text().contains("retry"),
        "the outage left no retry warning: {}",
        second.text()
    );
    let second = backup_id(&String::from_utf8_lossy(&second.out.stdout));

    clean(&["check", "--repo", &url, "--read-data"]);
    let out = env.path("restored.db");
    clean(&[
        "restore",
        &second,
        "--repo",
        &url,
        "--to",
        &out.to_string_lossy(),
    ]);
    assert!(same_file(&db, &out), "the restore differs from the source");
    assert_ne!(first, second);
}

/// Faults that outlast arca's retry budget (8 retries, 250 ms doubling to
/// 16 s, plus up to as much again in jitter: 48–96 s), for a backup and a
/// restore at once, each through its own proxy:
/// - the backup's proxy cuts every connection after 100 kB, so no pack PUT
///   ever finishes (the changed pages are stored as deltas: a few hundred
///   kB): the store answers, yet nothing gets through;
/// - the restore's store goes down once the restore has begun writing its
///   file, and stays down until the restore has given up.
///
/// Both give up within the budget with one clear error line; the restore
/// leaves no file; the repository stays valid (the backup's leftovers are
/// garbage no snapshot references, which prune removes); once the store is
/// reachable again a backup completes and restores byte for byte.
#[test]
fn faults_longer_than_the_retry_budget_fail_cleanly_and_leave_a_valid_repository() {
    let sw = seaweed::server();
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 16, "DELETE");
    let url = init(&env, "give-up");
    let backup = ["backup", "--repo", &url, "--source", &src(&db), "--json"];
    let first = backup_id(&clean(&backup));
    let first_db = env.path("first.db");
    std::fs::copy(&db, &first_db).unwrap();
    touch_rows(&db, 2);

    let cutting = Proxy::start(&sw.endpoint);
    cutting.set_mode(Mode::Faulty(Faults::drop_after(100_000)));
    let going_down = Proxy::start(&sw.endpoint);
    // Slow enough that the restore is still reading when the store goes.
    going_down.set_mode(Mode::Faulty(Faults::slow(2_000_000)));
    let out_dir = env.path("out");
    std::fs::create_dir(&out_dir).unwrap();
    let target = out_dir.join("restored.db");
    let restore = [
        "restore",
        &first,
        "--repo",
        &url,
        "--to",
        &target.to_string_lossy(),
    ];
    let (b, r) = std::thread::scope(|s| {
        let b = s.spawn(|| run(&backup, Some(&cutting)));
        let r = s.spawn(|| run(&restore, Some(&going_down)));
        // The restore writes into a temporary file beside the target.
        let t = Instant::now();
        while std::fs::read_dir(&out_dir).unwrap().next().is_none() && !r.is_finished() {
            assert!(t.elapsed() < HANG, "the restore never began writing");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!r.is_finished(), "the restore ended before the outage");
        going_down.set_mode(Mode::Refuse);
        // Once the restore has given up it removes its temporary file, then
        // releases its lock, which is one more request: the store comes
        // back for it. (Were it to stay down, releasing the lock would
        // spend a second whole retry budget before arca reports the error.)
        while std::fs::read_dir(&out_dir).unwrap().next().is_some() && !r.is_finished() {
            std::thread::sleep(Duration::from_millis(5));
        }
        going_down.set_mode(Mode::Pass);
        (b.join().unwrap(), r.join().unwrap())
    });
    for (what, run, proxy) in [("backup", &b, &cutting), ("restore", &r, &going_down)] {
        eprintln!(
            "{what}: {} in {:.1}s; {:?}",
            if run.ok() { "completed" } else { "failed" },
            run.took.as_secs_f64(),
            proxy.stats()
        );
        assert!(
            !run.ok(),
            "{what} succeeded through a dead store: {}",
            run.text()
        );
        let line = assert_clean_failure(run, &proxy.endpoint());
        eprintln!("  {line}");
        // The budget at most, and the work.
        assert!(
            run.took < Duration::from_secs(110),
            "{what} gave up only after {:?}",
            run.took
        );
    }
    let line = assert_clean_failure(&b, &cutting.endpoint());
    assert!(line.contains("/data/"), "a pack write failed: {line}");
    assert!(line.contains("failed after retries"), "{line}");
    // The store did answer: "cannot connect … check --endpoint" would mislead.
    assert!(!line.contains("cannot connect"), "{line}");
    let line = assert_clean_failure(&r, &going_down.endpoint());
    assert!(line.contains("cannot connect"), "{line}");
    let left: Vec<_> = std::fs::read_dir(&out_dir).unwrap().collect();
    assert!(left.is_empty(), "a failed restore left {left:?}");

    // Through the proxies, faults off: only the first backup is there, and
    // the repository is sound.
    cutting.set_mode(Mode::Pass);
    going_down.set_mode(Mode::Pass);
    let l = run(&["list", "--repo", &url, "--json"], Some(&going_down));
    let listed: serde_json::Value = serde_json::from_slice(&l.out.stdout).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{}", l.text());
    let c = run(&["check", "--repo", &url, "--read-data"], Some(&going_down));
    assert!(c.ok(), "{}", c.text());
    clean(&["prune", "--repo", &url, "--lock-wait", "5"]);
    clean(&["check", "--repo", &url, "--read-data"]);

    let again = run(&backup, Some(&cutting));
    assert!(again.ok(), "{}", again.text());
    let id = backup_id(&String::from_utf8_lossy(&again.out.stdout));
    for (id, source) in [(&id, &db), (&first, &first_db)] {
        let out = env.path("check.db");
        clean(&[
            "restore",
            id,
            "--repo",
            &url,
            "--to",
            &out.to_string_lossy(),
            "--force",
        ]);
        assert!(
            same_file(source, &out),
            "the restore differs from the source"
        );
    }
}

/// The proxy itself, against a local echo server: it passes bytes, cuts a
/// connection at its byte count, stalls, refuses and comes back on the same
/// port, and stops at once when dropped, even with a stalled connection open.
#[test]
fn the_proxy_passes_cuts_stalls_refuses_and_stops_promptly() {
    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = echo.local_addr().unwrap().to_string();
    // Five connections reach the echo server in this test.
    let server = std::thread::spawn(move || {
        for s in echo.incoming().take(5) {
            let mut s = s.unwrap();
            let mut r = s.try_clone().unwrap();
            std::thread::spawn(move || std::io::copy(&mut r, &mut s));
        }
    });
    let proxy = Proxy::start(&upstream);
    let port = proxy.endpoint().rsplit(':').next().unwrap().to_string();
    let connect = || TcpStream::connect(format!("127.0.0.1:{port}"));
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();

    // Pass: what goes in comes back.
    let mut c = connect().unwrap();
    c.write_all(&data).unwrap();
    let mut back = vec![0; data.len()];
    c.read_exact(&mut back).unwrap();
    assert_eq!(back, data);
    drop(c);

    // Cut after 10 000 bytes, counting both directions.
    proxy.set_mode(Mode::Faulty(Faults::drop_after(10_000)));
    let mut c = connect().unwrap();
    let _ = c.write_all(&data);
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    assert!(got.len() < 10_000, "{} bytes came back", got.len());
    assert_eq!(proxy.stats().drops, 1);

    // A stall at the first byte.
    proxy.set_mode(Mode::Faulty(Faults {
        stall: Duration::from_millis(300),
        ..Faults::random(1, 0.0, 1.0, 1)
    }));
    let t = Instant::now();
    let mut c = connect().unwrap();
    c.write_all(b"ping").unwrap();
    let mut pong = [0u8; 4];
    c.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"ping");
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(proxy.stats().stalls, 1);

    // Refused, then back on the same port.
    proxy.set_mode(Mode::Refuse);
    let t = Instant::now();
    loop {
        match connect() {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => break,
            _ => assert!(t.elapsed() < Duration::from_secs(2), "still accepting"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    proxy.set_mode(Mode::Pass);
    let t = Instant::now();
    let mut c = loop {
        match connect() {
            Ok(c) => break c,
            Err(_) => assert!(t.elapsed() < Duration::from_secs(2), "not back"),
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    c.write_all(b"back").unwrap();
    c.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"back");

    // Dropping the proxy ends a connection stalled for a minute, at once.
    proxy.set_mode(Mode::Faulty(Faults {
        stall: Duration::from_secs(60),
        ..Faults::random(2, 0.0, 1.0, 1)
    }));
    let mut stalled = connect().unwrap();
    stalled.write_all(b"wait").unwrap();
    let t = Instant::now();
    while proxy.stats().stalls < 2 {
        assert!(t.elapsed() < Duration::from_secs(2), "no stall");
        std::thread::sleep(Duration::from_millis(5));
    }
    let t = Instant::now();
    drop(proxy);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "drop took {:?}",
        t.elapsed()
    );
    let mut rest = Vec::new();
    let _ = stalled.read_to_end(&mut rest);
    assert!(rest.is_empty(), "a stalled connection passed {rest:?}");
    server.join().unwrap();
}
