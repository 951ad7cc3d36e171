//! Helpers shared by the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use rusqlite::Connection;

/// Where the behaviour suite keeps its repositories: `ARCA_TEST_BACKEND=fs`
/// (the default) or `s3` (a SeaweedFS the tests start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Fs,
    S3,
}

pub fn store() -> Store {
    match std::env::var("ARCA_TEST_BACKEND").as_deref() {
        Err(_) | Ok("") | Ok("fs") => Store::Fs,
        Ok("s3") => Store::S3,
        Ok(other) => panic!("ARCA_TEST_BACKEND={other}: use fs or s3"),
    }
}

/// The `arca` binary, with no repository or AWS settings from the caller's
/// environment; with `ARCA_TEST_BACKEND=s3`, set up for the test SeaweedFS.
pub fn arca() -> Command {
    let mut c = arca_plain();
    if store() == Store::S3 {
        super::seaweed::server().set_env(&mut c);
    }
    c
}

/// The `arca` binary, with no repository or AWS settings at all.
pub fn arca_plain() -> Command {
    without_caller_settings(Command::cargo_bin("arca").unwrap())
}

/// `c` without the caller's repository and AWS settings.
pub fn without_caller_settings(mut c: Command) -> Command {
    c.env_remove("ARCA_REPO");
    for v in super::seaweed::AWS_VARS {
        c.env_remove(v);
    }
    c
}

/// Runs arca and returns its output, asserting success.
pub fn ok(args: &[&str]) -> String {
    run_ok(arca(), args)
}

/// Runs `c` with `args` and returns its output, asserting success.
pub fn run_ok(mut c: Command, args: &[&str]) -> String {
    let out = c.args(args).output().unwrap();
    assert!(
        out.status.success(),
        "arca {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs arca expecting failure; returns stdout+stderr.
pub fn fails(args: &[&str]) -> (Output, String) {
    let out = arca().args(args).output().unwrap();
    assert!(!out.status.success(), "arca {args:?} should have failed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

pub fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(args)).unwrap()
}

pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn s(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }

    /// A name unique to this Env (its temp directory's), for bucket prefixes.
    pub fn id(&self) -> String {
        let name = self.dir.path().file_name().unwrap().to_string_lossy();
        name.trim_start_matches('.').to_string()
    }

    /// A new repository location named `name` on the store under test: a
    /// directory in this Env, or a prefix of the test bucket unique to it.
    pub fn repo(&self, name: &str) -> String {
        match store() {
            Store::Fs => self.s(name),
            Store::S3 => super::seaweed::server().url(&format!("{}/{name}", self.id())),
        }
    }

    /// Creates a repository named `name` on the store under test.
    pub fn init(&self, name: &str) -> String {
        let r = self.repo(name);
        ok(&["init", "--repo", &r]);
        r
    }

    /// Creates a repository in a local directory, whatever the store under test.
    pub fn init_local(&self, name: &str) -> String {
        let r = self.s(name);
        ok(&["init", "--repo", &r]);
        r
    }

    /// Backs up `db` and returns the JSON report.
    pub fn backup(&self, repo: &str, db: &Path) -> serde_json::Value {
        json(&[
            "backup",
            "--repo",
            repo,
            "--source",
            &format!("sqlite://{}", db.display()),
            "--json",
        ])
    }
}

/// Creates a SQLite database of about `mb` MiB with a table `t(id, v, pad)`
/// whose rows are spread over many pages.
pub fn make_db(path: &Path, mb: u64, journal: &str) {
    let mut conn = Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA journal_mode={journal}; PRAGMA synchronous=OFF;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER, pad TEXT);
         CREATE INDEX t_v ON t(v);"
    ))
    .unwrap();
    let rows = mb * 1024 * 1024 / 200;
    let tx = conn.transaction().unwrap();
    {
        let mut st = tx.prepare("INSERT INTO t VALUES (?1, ?2, ?3)").unwrap();
        let mut x = 88172645463325252u64;
        for i in 0..rows {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            st.execute(rusqlite::params![
                i as i64,
                (x % 1_000_000) as i64,
                format!(
                    "row {i} {:x} {}",
                    x,
                    "lorem ipsum dolor sit amet ".repeat((x % 5) as usize + 1)
                )
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// Updates every `nth` row.
pub fn touch_rows(path: &Path, nth: i64) -> usize {
    let conn = Connection::open(path).unwrap();
    conn.execute("UPDATE t SET v = v + 1 WHERE id % ?1 = 0", [nth])
        .unwrap()
}

pub fn integrity_ok(path: &Path) {
    let conn = Connection::open(path).unwrap();
    let r: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(r, "ok");
}

pub fn same_file(a: &Path, b: &Path) -> bool {
    std::fs::read(a).unwrap() == std::fs::read(b).unwrap()
}

/// All pack files of a local repository.
pub fn packs(repo: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let data = Path::new(repo).join("data");
    for d in std::fs::read_dir(data).unwrap() {
        for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out.sort();
    out
}

/// Bytes a repository holds, on either store.
pub fn repo_size(repo: &str) -> u64 {
    if repo.starts_with("s3://") {
        super::seaweed::server().size(repo)
    } else {
        dir_size(Path::new(repo))
    }
}

pub fn dir_size(p: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        n += if m.is_dir() {
            dir_size(&e.path())
        } else {
            m.len()
        };
    }
    n
}

/// Restores backup `id` (or `latest`) of `repo` to `to`, overwriting it.
pub fn restore(repo: &str, id: &str, to: &Path) {
    ok(&[
        "restore",
        id,
        "--repo",
        repo,
        "--to",
        &to.to_string_lossy(),
        "--force",
    ]);
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The single `error:` line of a failed run.
pub fn error_line(o: &Output) -> String {
    assert!(!o.status.success(), "should have failed: {}", text(o));
    let t = text(o);
    let errors: Vec<&str> = t.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "expected one error line: {t}");
    let other: Vec<&str> = t
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("error:") && !l.starts_with("warning:"))
        .collect();
    assert!(
        other.is_empty(),
        "only the error line (and warnings) expected: {t}"
    );
    errors[0].to_string()
}
