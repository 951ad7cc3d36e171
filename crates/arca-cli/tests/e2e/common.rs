//! Helpers shared by the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use rusqlite::Connection;

pub fn arca() -> Command {
    let mut c = Command::cargo_bin("arca").unwrap();
    c.env_remove("ARCA_REPO");
    c
}

/// Runs arca and returns its output, asserting success.
pub fn ok(args: &[&str]) -> String {
    let out = arca().args(args).output().unwrap();
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

    /// Creates a repository at `repo`.
    pub fn init(&self, repo: &str) -> String {
        let r = self.s(repo);
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
