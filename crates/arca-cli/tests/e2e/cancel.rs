//! Interrupting long operations: SIGINT or SIGTERM sent to `arca` early, midway
//! and near the end of a backup (SQLite and PostgreSQL), a restore, a
//! `check --read-data` and a prune. Each run fails with exit code 130 and
//! one line saying what was interrupted, commits nothing, leaves no lock
//! and no partial restore, the repository passes `check --read-data`, and
//! the next run of the same operation succeeds at once.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use super::common::*;

const BACKUP_LEFT: &str =
    "nothing was committed; the packs it wrote stay until `arca prune` removes them";

/// Starts `bin` with `args`, without the caller's repository and AWS
/// settings, at the lowest priority (`nice` execs it, so the pid is its
/// own): on a busy machine the test's polling then runs first and signals
/// at the point it means, not after the operation has finished.
fn spawn(bin: &Path, args: &[&str]) -> Child {
    let mut c = std::process::Command::new("nice");
    c.args(["-n", "19"]).arg(bin);
    c.env_remove("ARCA_REPO");
    for v in super::seaweed::AWS_VARS {
        c.env_remove(v);
    }
    c.args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn arca_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("arca")
}

#[allow(unsafe_code)]
pub(super) fn signal(child: &Child, sig: i32) {
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

/// Sends `sig` to `child` once `ready()`, and returns its output.
fn interrupt_when(mut child: Child, sig: i32, mut ready: impl FnMut(u32) -> bool) -> Output {
    let t = Instant::now();
    while !ready(child.id()) {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("it ended ({status}) before the point to interrupt it: {err}");
        }
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "the point never came"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    signal(&child, sig);
    child.wait_with_output().unwrap()
}

/// Exit code 130 and one line: `error: OP interrupted: LEFT`.
fn assert_interrupted(out: &Output, op: &str, left: &str) {
    assert_eq!(out.status.code(), Some(130), "{}", text(out));
    assert_eq!(error_line(out), format!("error: {op} interrupted: {left}"));
}

/// Files under `dir`, recursively; none if it does not exist.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(files_under(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out.sort();
    out
}

fn pack_files(repo: &str) -> Vec<PathBuf> {
    files_under(&Path::new(repo).join("data"))
}

fn manifests(repo: &str) -> usize {
    files_under(&Path::new(repo).join("snapshots")).len()
}

fn no_locks(repo: &str) {
    let locks = files_under(&Path::new(repo).join("locks"));
    assert!(locks.is_empty(), "locks left: {locks:?}");
}

/// Bytes process `pid` has read so far.
fn bytes_read(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Runs an operation again after an interrupted one: it succeeds at once,
/// with no lock to wait for or to remove as stale.
fn again(bin: &Path, args: &[&str]) -> String {
    let out = without_caller_settings(assert_cmd::Command::new(bin))
        .args(args)
        .args(["--lock-wait", "1", "-v"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "arca {args:?} failed: {}", text(&out));
    assert!(!err.contains("waiting for"), "{err}");
    assert!(!err.contains("stale lock"), "{err}");
    assert!(!err.contains("interrupted restore"), "{err}");
    String::from_utf8(out.stdout).unwrap()
}

fn init_small_packs(repo: &str) {
    ok(&["init", "--repo", repo, "--pack-size", "1048576"]);
}

#[test]
fn an_interrupted_backup_commits_nothing() {
    let env = Env::new();
    let db = env.path("big.db");
    make_db(&db, 64, "DELETE");
    let src = format!("sqlite://{}", db.display());
    // How many packs an uninterrupted backup writes.
    let probe = env.s("probe");
    init_small_packs(&probe);
    env.backup(&probe, &db);
    let total = pack_files(&probe).len();
    assert!(total >= 8, "{total} packs");

    let repo = env.s("repo");
    init_small_packs(&repo);
    let args = [
        "backup",
        "--repo",
        &repo,
        "--source",
        &src,
        "--parallelism",
        "1",
    ];
    // The first pack, half of them, three in four.
    for (sig, at) in [
        (libc::SIGINT, 1),
        (libc::SIGTERM, total / 2),
        (libc::SIGINT, total * 3 / 4),
    ] {
        let before = pack_files(&repo).len();
        let child = spawn(&arca_bin(), &args);
        let out = interrupt_when(child, sig, |_| pack_files(&repo).len() >= before + at);
        assert_interrupted(&out, "backup", BACKUP_LEFT);
        assert_eq!(manifests(&repo), 0);
        no_locks(&repo);
        ok(&["check", "--repo", &repo, "--read-data"]);
    }
    again(&arca_bin(), &args);
    assert_eq!(manifests(&repo), 1);
    let out = env.path("restored.db");
    restore(&repo, "latest", &out);
    assert!(same_file(&db, &out));
    let pruned = json(&["prune", "--repo", &repo, "--json"]);
    assert!(pruned["garbage_files"].as_u64().unwrap() > 0, "{pruned}");
    ok(&["check", "--repo", &repo, "--read-data"]);
}

#[test]
fn an_interrupted_restore_leaves_no_partial_target() {
    let env = Env::new();
    let db = env.path("big.db");
    make_db(&db, 64, "DELETE");
    let repo = env.init_local("repo");
    env.backup(&repo, &db);
    let size = std::fs::metadata(&db).unwrap().len();
    let to = env.path("out.db");
    let to_s = to.to_string_lossy().into_owned();
    let args = [
        "restore",
        "--repo",
        &repo,
        "--to",
        &to_s,
        "--parallelism",
        "1",
    ];
    // Its temporary beside the target: first blocks written, half, most.
    for (sig, frac) in [
        (libc::SIGINT, 0.0),
        (libc::SIGTERM, 0.5),
        (libc::SIGINT, 0.75),
    ] {
        let child = spawn(&arca_bin(), &args);
        let out = interrupt_when(child, sig, |pid| {
            let tmp = env.path(&format!(".out.db.arca-restore-{pid}"));
            let written = std::fs::metadata(tmp).map_or(0, |m| m.blocks() * 512);
            written > (size as f64 * frac) as u64
        });
        assert_interrupted(&out, "restore", "its partial files were removed");
        assert!(!to.exists());
        assert!(leftovers(env.dir.path()).is_empty());
        no_locks(&repo);
        ok(&["check", "--repo", &repo, "--read-data"]);
    }

    // A second signal ends it at once, and still removes the partial file.
    let child = spawn(&arca_bin(), &args);
    let pid = child.id();
    let tmp = env.path(&format!(".out.db.arca-restore-{pid}"));
    let t = Instant::now();
    while std::fs::metadata(&tmp).map_or(0, |m| m.blocks()) == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "no temp file appeared"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // Both pending while it is stopped, so both arrive at once.
    signal(&child, libc::SIGSTOP);
    signal(&child, libc::SIGINT);
    signal(&child, libc::SIGTERM);
    signal(&child, libc::SIGCONT);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(
        error_line_of(&out).contains(" interrupted"),
        "{}",
        text(&out)
    );
    assert!(!to.exists());
    assert!(leftovers(env.dir.path()).is_empty());

    // Its lock, if it left one, belongs to a process that is gone: no wait.
    let out = without_caller_settings(assert_cmd::Command::new(arca_bin()))
        .args(args)
        .args(["--lock-wait", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(same_file(&db, &to));
    no_locks(&repo);
    std::fs::remove_file(&to).unwrap();
    again(&arca_bin(), &args);
    assert!(same_file(&db, &to));
    assert!(leftovers(env.dir.path()).is_empty());
}

/// The first `error:` line: with two signals, the process may end while
/// its main thread reports the first.
fn error_line_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default()
        .to_string()
}

/// Every file under `dir` whose name holds `.arca-restore-`.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".arca-restore-"))
        .collect()
}

#[test]
fn an_interrupted_check_stops_and_the_next_one_passes() {
    let env = Env::new();
    let db = env.path("big.db");
    make_db(&db, 64, "DELETE");
    let repo = env.s("repo");
    init_small_packs(&repo);
    env.backup(&repo, &db);
    let stored: u64 = pack_files(&repo)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    let args = [
        "check",
        "--repo",
        &repo,
        "--read-data",
        "--parallelism",
        "1",
    ];
    // The first pack read, half of them, most.
    for (sig, at) in [
        (libc::SIGINT, 1 << 20),
        (libc::SIGTERM, stored / 2),
        (libc::SIGINT, stored * 3 / 4),
    ] {
        let child = spawn(&arca_bin(), &args);
        let out = interrupt_when(child, sig, |pid| bytes_read(pid) >= at);
        assert_interrupted(&out, "check", "the repository was not changed");
        no_locks(&repo);
    }
    let report = again(&arca_bin(), &args);
    assert!(report.starts_with("no errors"), "{report}");
}

#[test]
fn an_interrupted_prune_leaves_a_whole_repository() {
    let env = Env::new();
    let db = env.path("big.db");
    make_db(&db, 64, "DELETE");
    // A repository where prune repacks: half the table's pages change in
    // runs, so once the first backup is deleted its packs are partly used.
    let template = env.s("template");
    init_small_packs(&template);
    let first = env.backup(&template, &db);
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE t SET pad = pad || 'x' WHERE (id / 3000) % 2 = 0",
        [],
    )
    .unwrap();
    drop(conn);
    env.backup(&template, &db);
    ok(&["delete", first["id"].as_str().unwrap(), "--repo", &template]);
    let kept = pack_files(&template);

    // How many packs an uninterrupted prune writes.
    let copy = |name: &str| {
        let to = env.s(name);
        let status = std::process::Command::new("cp")
            .args(["-a", &template, &to])
            .status()
            .unwrap();
        assert!(status.success());
        to
    };
    let probe = copy("probe");
    let report = json(&["prune", "--repo", &probe, "--json"]);
    assert!(report["packs_repacked"].as_u64().unwrap() >= 4, "{report}");
    let written = pack_files(&probe)
        .iter()
        .filter(|p| !kept.contains(&Path::new(&template).join(p.strip_prefix(&probe).unwrap())))
        .count();
    assert!(written >= 2, "{written} packs written");

    // The first new pack, half of them, most.
    for (n, (sig, at)) in [
        (libc::SIGINT, 1),
        (libc::SIGTERM, written / 2),
        (libc::SIGINT, written * 3 / 4),
    ]
    .into_iter()
    .enumerate()
    {
        let repo = copy(&format!("repo{n}"));
        let old = pack_files(&repo);
        let child = spawn(&arca_bin(), &["prune", "--repo", &repo]);
        let out = interrupt_when(child, sig, |_| {
            pack_files(&repo)
                .iter()
                .filter(|p| !old.contains(p))
                .count()
                >= at.max(1)
        });
        assert_interrupted(
            &out,
            "prune",
            "the repository is whole; run `arca prune` again to finish",
        );
        assert_eq!(manifests(&repo), 1);
        no_locks(&repo);
        ok(&["check", "--repo", &repo, "--read-data"]);
        let out = env.path("restored.db");
        restore(&repo, "latest", &out);
        assert!(same_file(&db, &out));
        again(&arca_bin(), &["prune", "--repo", &repo]);
        ok(&["check", "--repo", &repo, "--read-data"]);
        restore(&repo, "latest", &out);
        assert!(same_file(&db, &out));
        // Nothing left for a third prune: the second finished the work.
        let report = json(&["prune", "--repo", &repo, "--json"]);
        assert_eq!(report["packs_deleted"], 0, "{report}");
        assert_eq!(report["garbage_files"], 0, "{report}");
    }
}

/// A PostgreSQL backup interrupted as it writes its first packs: the
/// server's backup ends with the connection, nothing is committed, and the
/// next backup runs at once.
#[test]
fn an_interrupted_postgres_backup_commits_nothing() {
    use super::postgres::{arca_bin, give_to_server, Pg};
    use std::os::unix::fs::PermissionsExt;

    let env = Env::new();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let repo = env.s("repo");
    init_small_packs(&repo);
    give_to_server(Path::new(&repo));
    let pg = Pg::start(Some(&repo));
    pg.sql(
        "CREATE TABLE big AS SELECT g, md5(g::text) || md5((g * 7)::text) AS pad \
         FROM generate_series(1, 600000) g",
    );
    let args = [
        "backup",
        "--repo",
        &repo,
        "--source",
        &pg.url(),
        "--parallelism",
        "1",
    ];
    let child = spawn(arca_bin(), &args);
    let out = interrupt_when(child, libc::SIGINT, |_| !pack_files(&repo).is_empty());
    assert_interrupted(&out, "backup", BACKUP_LEFT);
    assert_eq!(manifests(&repo), 0);
    no_locks(&repo);
    ok(&["check", "--repo", &repo, "--read-data"]);
    again(arca_bin(), &args);
    assert_eq!(manifests(&repo), 1);
    ok(&["check", "--repo", &repo, "--read-data"]);
}
