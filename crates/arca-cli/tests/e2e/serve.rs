//! `arca serve`: a real daemon on a free loopback port, over a real SQLite
//! source and a local repository, driven through its HTTP API.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::common::*;
use super::postgres::free_port;

pub const ADMIN: &str = "admin-token-for-tests";
pub const OPERATOR: &str = "operator-token-for-tests";
pub const VIEWER: &str = "viewer-token-for-tests";

fn sha(t: &str) -> String {
    hex(&Sha256::digest(t.as_bytes()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The configuration's token section for the three test tokens.
pub fn tokens() -> String {
    format!(
        "[[token]]\nname = \"root\"\nrole = \"admin\"\nsha256 = \"{}\"\n\n\
         [[token]]\nname = \"ops\"\nrole = \"operator\"\nsha256 = \"{}\"\n\n\
         [[token]]\nname = \"watch\"\nrole = \"viewer\"\nsha256 = \"{}\"\n",
        sha(ADMIN),
        sha(OPERATOR),
        sha(VIEWER)
    )
}

/// A running `arca serve`; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Daemon {
    pub child: Child,
    /// Started through runuser: signals go to its child, the daemon.
    via_runuser: bool,
    pub addr: String,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

pub fn arca_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("arca")
}

impl Daemon {
    /// Starts `arca serve --config CONFIG --listen 127.0.0.1:0 EXTRA…` and
    /// waits for the address it prints.
    pub fn start(config: &Path, extra: &[&str]) -> Daemon {
        Daemon::start_with(Command::new(arca_bin()), config, extra, false)
    }

    /// As PostgreSQL's own user (root runs it through runuser), as a
    /// daemon sharing a repository with the server's archive_command runs.
    pub fn start_as_postgres(config: &Path, extra: &[&str]) -> Daemon {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(arca_bin());
        Daemon::start_with(c, config, extra, true)
    }

    fn start_with(mut cmd: Command, config: &Path, extra: &[&str], via_runuser: bool) -> Daemon {
        let mut child = cmd
            .args(["serve", "--config"])
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("ARCA_REPO")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        {
            let mut err = BufReader::new(child.stderr.take().unwrap());
            let sink = stderr.clone();
            std::thread::spawn(move || {
                let mut line = String::new();
                while err.read_line(&mut line).unwrap_or(0) > 0 {
                    sink.lock().unwrap().push_str(&line);
                    line.clear();
                }
            });
        }
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let addr = match line.trim().strip_prefix("listening on ") {
            Some(a) => a.to_string(),
            None => {
                let _ = child.wait();
                panic!(
                    "arca serve did not start: {line:?} {}",
                    stderr.lock().unwrap()
                );
            }
        };
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = out.read_to_string(&mut rest);
        });
        Daemon {
            child,
            via_runuser,
            addr,
            stderr,
        }
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        http(&self.addr, method, path, token, body)
    }

    pub fn get(&self, path: &str, token: &str) -> Answer {
        self.request("GET", path, Some(token), None)
    }

    pub fn post(&self, path: &str, token: &str, body: &Value) -> Answer {
        self.request("POST", path, Some(token), Some(&body.to_string()))
    }

    /// Waits for a job to end; answers it.
    pub fn wait_job(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let j = self.get(&format!("/api/v1/jobs/{id}"), VIEWER);
            assert_eq!(j.status, 200, "{}", j.body);
            let j = j.json();
            if !matches!(j["state"].as_str(), Some("queued" | "running")) {
                return j;
            }
            assert!(Instant::now() < deadline, "job {id} did not end: {j}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `f` holds of the job.
    pub fn wait_job_until(&self, id: &str, f: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let j = self.get(&format!("/api/v1/jobs/{id}"), VIEWER).json();
            if f(&j) {
                return j;
            }
            assert!(Instant::now() < deadline, "job {id}: {j}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Moves the test clock; answers once the scheduler has acted on it.
    pub fn set_clock(&self, t: &str) {
        let a = self.post("/api/v1/test/clock", ADMIN, &json!({ "now": t }));
        assert_eq!(a.status, 200, "{}", a.body);
    }

    pub fn jobs(&self) -> Vec<Value> {
        let a = self.get("/api/v1/jobs?limit=1000", VIEWER);
        assert_eq!(a.status, 200, "{}", a.body);
        a.json()["items"].as_array().unwrap().clone()
    }

    pub fn signal(&self, sig: i32) {
        if self.via_runuser {
            let _ = Command::new("pkill")
                .arg(format!("-{sig}"))
                .args(["-P", &self.child.id().to_string()])
                .status();
        } else {
            unsafe_free_kill(self.child.id(), sig);
        }
    }

    /// SIGTERM; answers how long the daemon took to exit and its status.
    pub fn stop(mut self) -> (Duration, std::process::ExitStatus, String) {
        let t = Instant::now();
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "arca serve did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let took = t.elapsed();
        std::thread::sleep(Duration::from_millis(100));
        let err = self.stderr.lock().unwrap().clone();
        (took, status, err)
    }
}

fn unsafe_free_kill(pid: u32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if self.via_runuser {
                self.signal(libc::SIGKILL);
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One HTTP/1.1 request with `Connection: close`.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req += &format!("Authorization: Bearer {t}\r\n");
    }
    let body = body.unwrap_or("");
    if method != "GET" {
        req += &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    req += "\r\n";
    req += body;
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Answer {
        status,
        headers: head.to_string(),
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out += &rest[..n];
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A SQLite source, a repository, and a configuration naming them.
pub struct Setup {
    pub env: Env,
    pub db: PathBuf,
    pub repo: String,
    pub config: PathBuf,
}

pub fn setup(plan_extra: &str) -> Setup {
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 2, "WAL");
    let repo = env.init_local("repo");
    let config = env.path("arca.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:7070\"\ncatalog = \"{}\"\n\n\
             [[repository]]\nname = \"local\"\nurl = \"{repo}\"\n\n\
             [[source]]\nname = \"app\"\nurl = \"sqlite://{}\"\n\n\
             [[plan]]\nname = \"app-daily\"\nsource = \"app\"\nrepository = \"local\"\n\
             schedule = \"daily 01:00\"\ntimezone = \"Europe/Berlin\"\n{plan_extra}\n\n{}",
            env.s("catalog.db"),
            db.display(),
            tokens()
        ),
    )
    .unwrap();
    Setup {
        env,
        db,
        repo,
        config,
    }
}

/// An exclusive lock of another host in the repository: a backup waits
/// for it (running, cancellable) until it is removed.
pub fn foreign_lock(repo: &str) -> PathBuf {
    let now = jiff::Timestamp::now().to_string();
    let p = Path::new(repo).join("locks").join("ab".repeat(32));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(
        &p,
        json!({"hostname": "another-host", "pid": 1, "exclusive": true,
               "command": "prune", "time": now, "refreshed": now})
        .to_string(),
    )
    .unwrap();
    p
}

fn list_ids(repo: &str) -> Vec<String> {
    json(&["list", "--repo", repo, "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_backup_through_the_api_is_a_job_and_appears_in_the_listing() {
    let s = setup("purge_after_days = 30");
    let d = Daemon::start(&s.config, &[]);
    let a = d.post("/api/v1/backups", OPERATOR, &json!({"source": "app"}));
    assert_eq!(a.status, 202, "{}", a.body);
    let job = a.json()["job"].as_str().unwrap().to_string();
    let j = d.wait_job(&job);
    assert_eq!(j["state"], "succeeded", "{j}");
    for k in [
        "id",
        "kind",
        "source",
        "state",
        "phase",
        "progress",
        "backup",
        "error",
        "started_at",
        "finished_at",
    ] {
        assert!(j.get(k).is_some(), "job lacks {k}: {j}");
    }
    assert_eq!(j["kind"], "backup");
    assert_eq!(j["source"], "app");
    assert!(j["progress"]["bytes_done"].as_u64().unwrap() > 0, "{j}");
    let backup = j["backup"].as_str().unwrap();
    assert_eq!(list_ids(&s.repo), vec![backup.to_string()]);

    let b = d.get("/api/v1/backups?source=app", VIEWER);
    assert_eq!(b.status, 200, "{}", b.body);
    let b = b.json();
    assert_eq!(b["items"][0]["id"], backup, "{b}");
    assert_eq!(b["items"][0]["source"], "app");
    assert!(b["items"][0]["size"].as_u64().unwrap() > 0);
    assert!(b["next"].is_null());
    for k in ["stored_bytes", "start_time", "end_time", "kind"] {
        assert!(b["items"][0].get(k).is_some(), "{k}: {b}");
    }

    // A backup made with the CLI shows after a scan (here: the next job's).
    let cli = s.env.backup(&s.repo, &s.db)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let a = d.post("/api/v1/backups", OPERATOR, &json!({"source": "app"}));
    let third = d.wait_job(a.json()["job"].as_str().unwrap());
    let b = d.get("/api/v1/backups?source=app&limit=2", VIEWER).json();
    let ids: Vec<&str> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![third["backup"].as_str().unwrap(), cli.as_str()],
        "{b}"
    );
    // Paging: the next page holds the first backup.
    let next = b["next"].as_str().unwrap();
    let p2 = d
        .get(
            &format!("/api/v1/backups?source=app&limit=2&cursor={next}"),
            VIEWER,
        )
        .json();
    assert_eq!(p2["items"].as_array().unwrap().len(), 1, "{p2}");
    assert_eq!(p2["items"][0]["id"], backup);

    // Restore through the API to a new path: a job, and the file is whole.
    let to = s.env.path("restored.db");
    let r = d.post(
        "/api/v1/restores",
        OPERATOR,
        &json!({"source": "app", "backup": backup, "to": to}),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let rj = d.wait_job(r.json()["job"].as_str().unwrap());
    assert_eq!(rj["state"], "succeeded", "{rj}");
    integrity_ok(&to);

    // Events recorded the jobs.
    let ev = d.get("/api/v1/events?source=app", VIEWER).json();
    let kinds: Vec<&str> = ev["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"job_succeeded"), "{ev}");

    // Statistics and metrics.
    let st = d.get("/api/v1/stats", VIEWER).json();
    assert_eq!(st["items"][0]["source"], "app");
    assert_eq!(st["items"][0]["backups"], 3, "{st}");
    assert!(
        st["items"][0]["dedup_ratio"].as_f64().unwrap() > 1.0,
        "{st}"
    );
    let m = d.get("/metrics", VIEWER);
    assert_eq!(m.status, 200);
    assert!(
        m.body
            .contains("arca_backup_last_success_timestamp_seconds{source=\"app\"}"),
        "{}",
        m.body
    );
    assert!(m.body.contains("arca_jobs_total{"), "{}", m.body);
    let (took, status, _) = d.stop();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn tokens_and_roles_guard_every_call() {
    let s = setup("");
    let d = Daemon::start(&s.config, &[]);
    for (path, token, want) in [
        ("/healthz", None, 200),
        ("/api/v1/openapi.json", None, 200),
        ("/api/v1/backups", None, 401),
        ("/api/v1/jobs", Some("not-a-token"), 401),
        ("/metrics", None, 401),
        ("/api/v1/backups", Some(VIEWER), 200),
        ("/api/v1/sources", Some(VIEWER), 200),
    ] {
        let a = d.request("GET", path, token, None);
        assert_eq!(a.status, want, "GET {path} with {token:?}: {}", a.body);
        if want == 401 {
            assert!(
                a.headers.contains("www-authenticate: Bearer"),
                "{}",
                a.headers
            );
            assert!(
                a.json()["error"].as_str().unwrap().contains("token"),
                "{}",
                a.body
            );
        }
    }
    let a = d.post("/api/v1/backups", VIEWER, &json!({"source": "app"}));
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(
        a.body.contains("viewer") && a.body.contains("operator"),
        "{}",
        a.body
    );
    // Restoring over existing data is for admins.
    let a = d.post(
        "/api/v1/restores",
        OPERATOR,
        &json!({"source": "app", "to": s.db, "force": true}),
    );
    assert_eq!(a.status, 403, "{}", a.body);
    // The source's URL is shown, never a token or secret.
    let src = d.get("/api/v1/sources", VIEWER);
    assert!(src.body.contains("sqlite://"), "{}", src.body);
    assert!(!src.body.contains(ADMIN) && !src.body.contains(&sha(ADMIN)));
}

#[test]
fn bad_input_gets_a_4xx_naming_the_field() {
    let s = setup("");
    let d = Daemon::start(&s.config, &[]);
    let a = d.request(
        "POST",
        "/api/v1/backups",
        Some(OPERATOR),
        Some("{\"source\": "),
    );
    assert_eq!(a.status, 400, "{}", a.body);
    let a = d.post(
        "/api/v1/backups",
        OPERATOR,
        &json!({"source": "app", "colour": "red"}),
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.json()["field"], "colour", "{}", a.body);
    let a = d.post("/api/v1/backups", OPERATOR, &json!({}));
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.json()["field"], "source", "{}", a.body);
    let a = d.post("/api/v1/backups", OPERATOR, &json!({"source": "nope"}));
    assert_eq!(a.status, 422, "{}", a.body);
    assert_eq!(a.json()["field"], "source");
    // A restore target that exists.
    let a = d.post(
        "/api/v1/restores",
        OPERATOR,
        &json!({"source": "app", "to": s.db}),
    );
    assert_eq!(a.status, 409, "{}", a.body);
    assert_eq!(a.json()["field"], "to");
    assert!(a.body.contains("exists"), "{}", a.body);
    // A time outside the recoverable window: SQLite keeps no log.
    let a = d.post(
        "/api/v1/restores",
        OPERATOR,
        &json!({"source": "app", "time": "2020-01-01T00:00:00Z", "to": s.env.path("x.db")}),
    );
    assert_eq!(a.status, 422, "{}", a.body);
    assert_eq!(a.json()["field"], "time");
    let a = d.post(
        "/api/v1/restores",
        OPERATOR,
        &json!({"source": "app", "time": "yesterday", "to": s.env.path("x.db")}),
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.json()["field"], "time");
    let a = d.get("/api/v1/backups?from=notatime", VIEWER);
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.json()["field"], "from");
    let a = d.get("/api/v1/backups?colour=red", VIEWER);
    assert_eq!(a.status, 400, "{}", a.body);
    let a = d.get("/api/v1/jobs/nope", VIEWER);
    assert_eq!(a.status, 404, "{}", a.body);
    let a = d.get("/api/v1/nothing-here", VIEWER);
    assert_eq!(a.status, 404, "{}", a.body);
}

#[test]
fn one_job_per_database_and_cancel_releases_everything() {
    let s = setup("");
    let d = Daemon::start(&s.config, &[]);
    let lock = foreign_lock(&s.repo);
    let a = d.post("/api/v1/backups", OPERATOR, &json!({"source": "app"}));
    assert_eq!(a.status, 202, "{}", a.body);
    let job = a.json()["job"].as_str().unwrap().to_string();
    d.wait_job_until(&job, |j| j["state"] == "running");
    // A second job for the same source: 409 naming the first.
    let b = d.post("/api/v1/backups", OPERATOR, &json!({"source": "app"}));
    assert_eq!(b.status, 409, "{}", b.body);
    assert_eq!(b.json()["job"], job.as_str());
    // Cancel while it waits for the lock.
    let c = d.request(
        "POST",
        &format!("/api/v1/jobs/{job}/cancel"),
        Some(OPERATOR),
        None,
    );
    assert_eq!(c.status, 202, "{}", c.body);
    let j = d.wait_job(&job);
    assert_eq!(j["state"], "cancelled", "{j}");
    assert!(j["backup"].is_null());
    // Cancelling again: it has ended.
    let c = d.request(
        "POST",
        &format!("/api/v1/jobs/{job}/cancel"),
        Some(OPERATOR),
        None,
    );
    assert_eq!(c.status, 409, "{}", c.body);
    std::fs::remove_file(&lock).unwrap();
    // Nothing was committed and no lock of ours is left.
    assert!(list_ids(&s.repo).is_empty());
    let locks: Vec<_> = std::fs::read_dir(Path::new(&s.repo).join("locks"))
        .unwrap()
        .collect();
    assert!(locks.is_empty(), "{locks:?}");
    // The source is free again.
    let a = d.post("/api/v1/backups", OPERATOR, &json!({"source": "app"}));
    assert_eq!(a.status, 202, "{}", a.body);
    let j = d.wait_job(a.json()["job"].as_str().unwrap());
    assert_eq!(j["state"], "succeeded", "{j}");
    ok(&["check", "--repo", &s.repo, "--read-data"]);
}

#[test]
fn sigterm_mid_backup_cancels_cleanly_and_a_restart_keeps_the_history() {
    let s = setup("");
    let d = Daemon::start(&s.config, &[]);
    let lock = foreign_lock(&s.repo);
    let a = d.post("/api/v1/backups", OPERATOR, &json!({"source": "app"}));
    let job = a.json()["job"].as_str().unwrap().to_string();
    d.wait_job_until(&job, |j| j["state"] == "running");
    let (took, status, err) = d.stop();
    assert!(status.success(), "{status:?}: {err}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    std::fs::remove_file(&lock).unwrap();
    let locks: Vec<_> = std::fs::read_dir(Path::new(&s.repo).join("locks"))
        .unwrap()
        .collect();
    assert!(locks.is_empty(), "{locks:?}");
    assert!(list_ids(&s.repo).is_empty());

    let d = Daemon::start(&s.config, &[]);
    let j = d.get(&format!("/api/v1/jobs/{job}"), VIEWER).json();
    assert_eq!(j["state"], "cancelled", "{j}");
    // A daemon killed outright: its running job is marked interrupted.
    let lock = foreign_lock(&s.repo);
    let a = d.post("/api/v1/backups", OPERATOR, &json!({"source": "app"}));
    let job2 = a.json()["job"].as_str().unwrap().to_string();
    d.wait_job_until(&job2, |j| j["state"] == "running");
    d.signal(libc::SIGKILL);
    std::thread::sleep(Duration::from_millis(300));
    drop(d);
    std::fs::remove_file(&lock).unwrap();
    let d = Daemon::start(&s.config, &[]);
    let j = d.get(&format!("/api/v1/jobs/{job2}"), VIEWER).json();
    assert_eq!(j["state"], "interrupted", "{j}");
    let ev = d.get("/api/v1/events?kind=jobs_interrupted", VIEWER).json();
    assert_eq!(ev["items"].as_array().unwrap().len(), 1, "{ev}");
}

#[test]
fn the_schedule_fires_at_one_in_berlin_across_the_spring_change() {
    let s = setup("");
    // Saturday 28 March 2026, noon UTC; Berlin moves to summer time at
    // 02:00 local on Sunday 29 March.
    let d = Daemon::start(&s.config, &["--test-clock", "2026-03-28T12:00:00Z"]);
    let backups = |d: &Daemon| {
        d.jobs()
            .into_iter()
            .filter(|j| j["kind"] == "backup")
            .collect::<Vec<_>>()
    };
    d.set_clock("2026-03-28T23:59:00Z"); // 00:59 CET
    assert!(backups(&d).is_empty());
    d.set_clock("2026-03-29T00:00:01Z"); // 01:00:01 CET
    let b = backups(&d);
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0]["plan"], "app-daily");
    d.wait_job(b[0]["id"].as_str().unwrap());
    d.set_clock("2026-03-29T22:59:00Z"); // 00:59 CEST on the 30th
    assert_eq!(backups(&d).len(), 1);
    d.set_clock("2026-03-29T23:00:01Z"); // 01:00:01 CEST
    assert_eq!(backups(&d).len(), 2);
    let ev = d.get("/api/v1/events?kind=schedule_fired", VIEWER).json();
    assert_eq!(ev["items"].as_array().unwrap().len(), 2, "{ev}");
    // A day the daemon was down: runs once at start.
    let last = backups(&d)[0]["id"].as_str().unwrap().to_string();
    d.wait_job(&last);
    drop(d);
    let d = Daemon::start(&s.config, &["--test-clock", "2026-04-02T12:00:00Z"]);
    std::thread::sleep(Duration::from_millis(500));
    d.set_clock("2026-04-02T12:00:01Z");
    let b = backups(&d);
    assert_eq!(b.len(), 3, "{b:?}");
    let ev = d.get("/api/v1/events?kind=schedule_fired", VIEWER).json();
    assert!(
        ev["items"][0]["message"]
            .as_str()
            .unwrap()
            .contains("3 runs were due"),
        "{ev}"
    );
}

#[test]
fn a_plan_keeps_what_its_retention_says() {
    let s = setup("keep_last = 2");
    let d = Daemon::start(&s.config, &[]);
    let mut made = Vec::new();
    for _ in 0..4 {
        touch_rows(&s.db, 7);
        let a = d.post("/api/v1/backups", OPERATOR, &json!({"source": "app"}));
        let j = d.wait_job(a.json()["job"].as_str().unwrap());
        assert_eq!(j["state"], "succeeded", "{j}");
        made.push(j["backup"].as_str().unwrap().to_string());
        // The plan's retention runs after each of its backups, as a job.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let f: Vec<Value> = d
                .jobs()
                .into_iter()
                .filter(|j| j["kind"] == "forget")
                .collect();
            if f.len() == made.len() && f.iter().all(|j| j["state"] == "succeeded") {
                break;
            }
            assert!(Instant::now() < deadline, "{f:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let mut kept = list_ids(&s.repo);
    kept.sort();
    let mut want = made[2..].to_vec();
    want.sort();
    assert_eq!(kept, want);
    ok(&["check", "--repo", &s.repo, "--read-data"]);
}

#[test]
fn check_config_names_every_problem() {
    let env = Env::new();
    let cfg = env.path("bad.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[repository]]\nname = \"local\"\nurl = \"{}\"\n\n\
             [[source]]\nname = \"app\"\nurl = \"sqlite://{}\"\n\n\
             [[plan]]\nname = \"p\"\nsource = \"app\"\nrepository = \"local\"\n\
             schedule = \"0 0 30 2 *\"\ntimezone = \"Mars/Olympus\"\npurge_after_days = 6\n",
            env.s("no-repo"),
            env.s("no.db")
        ),
    )
    .unwrap();
    let out = Command::new(arca_bin())
        .args(["serve", "--check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("purge_after_days"), "{err}");
    assert!(err.contains("7") && err.contains("365"), "{err}");
    assert!(
        err.contains("Mars/Olympus") || err.contains("0 0 30 2 *"),
        "{err}"
    );
    // Unknown keys are named, every one, with the other problems.
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:0\"\ncolour = \"red\"\nmax_jobs = 0\n\n\
         [[plan]]\nname = \"p\"\nsource = \"app\"\nrepository = \"local\"\npurge_after_day = 30\n",
    )
    .unwrap();
    let out = Command::new(arca_bin())
        .args(["serve", "--check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for want in [
        "unknown key colour",
        "unknown key plan.0.purge_after_day",
        "max_jobs = 0",
    ] {
        assert!(err.lines().any(|l| l.contains(want)), "{want}: {err}");
    }
    // A repository and a source that do not answer, after a good parse.
    let s = setup("");
    std::fs::remove_file(&s.db).unwrap();
    let out = Command::new(arca_bin())
        .args(["serve", "--check-config", "--config"])
        .arg(&s.config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("source app"), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.contains("error")).count(),
        1,
        "{err}"
    );
}

/// `arca sql` as StarRocks users write it, end to end.
#[test]
fn starrocks_statements_drive_backups_and_restores() {
    let s = setup("");
    let d = Daemon::start(&s.config, &[]);
    let server = format!("http://{}", d.addr);
    let sql = |token: &str, stmt: &str| {
        Command::new(arca_bin())
            .args(["sql", "--server", &server, stmt])
            .env("ARCA_TOKEN", token)
            .output()
            .unwrap()
    };
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let o = sql(VIEWER, "SHOW REPOSITORIES");
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("RepoName") && out.contains("| local"), "{out}");

    // A viewer cannot back up; an operator can.
    let o = sql(VIEWER, "BACKUP SNAPSHOT app.nightly_1 TO local");
    assert!(!o.status.success());
    assert!(text(&o).contains("operator"), "{}", text(&o));
    let o = sql(OPERATOR, "BACKUP SNAPSHOT app.nightly_1 TO local");
    assert!(o.status.success(), "{}", text(&o));
    let job = text(&o).split_whitespace().nth(2).unwrap().to_string();
    let j = d.wait_job(&job);
    assert_eq!(j["state"], "succeeded", "{j}");
    let a = d.post(
        "/api/v1/sql",
        VIEWER,
        &json!({"sql": "SHOW BACKUP FROM app"}),
    );
    let v = a.json();
    assert_eq!(v["columns"][0], "JobId", "{v}");
    assert_eq!(v["columns"].as_array().unwrap().len(), 14);
    assert_eq!(v["rows"][0][0], job.as_str());
    assert_eq!(v["rows"][0][1], "nightly_1");
    assert_eq!(v["rows"][0][3], "FINISHED");

    // SHOW SNAPSHOT gives the timestamp RESTORE takes.
    let a = d.post(
        "/api/v1/sql",
        VIEWER,
        &json!({"sql": "SHOW SNAPSHOT ON local WHERE SNAPSHOT = 'nightly_1'"}),
    );
    let v = a.json();
    assert_eq!(
        v["columns"],
        json!(["Snapshot", "Timestamp", "Database", "Details", "Status"])
    );
    let ts = v["rows"][0][1].as_str().unwrap().to_string();
    assert_eq!(ts.len(), "2026-12-07-22-00-10".len(), "{ts}");
    assert_eq!(v["rows"][0][2], "app");

    // Into a new path: an operator may; in place needs an admin.
    let to = s.env.path("copy.db");
    let stmt = format!(
        "RESTORE SNAPSHOT app.nightly_1 FROM local PROPERTIES (\"backup_timestamp\" = \"{ts}\", \"arca.to\" = \"{}\")",
        to.display()
    );
    let o = sql(OPERATOR, &stmt);
    assert!(o.status.success(), "{}", text(&o));
    let job = text(&o).split_whitespace().nth(2).unwrap().to_string();
    assert_eq!(d.wait_job(&job)["state"], "succeeded");
    assert!(same_file(&s.db, &to));
    let in_place = format!(
        "RESTORE SNAPSHOT app.nightly_1 FROM local PROPERTIES (\"backup_timestamp\" = \"{ts}\")"
    );
    let o = sql(OPERATOR, &in_place);
    assert!(!o.status.success());
    assert!(text(&o).contains("admin"), "{}", text(&o));
    let a = d.post("/api/v1/sql", VIEWER, &json!({"sql": "SHOW RESTORE"}));
    let v = a.json();
    assert_eq!(v["columns"].as_array().unwrap().len(), 18, "{v}");
    assert_eq!(v["rows"][0][1], "nightly_1");
    assert_eq!(v["rows"][0][4], "FINISHED");

    // A wrong timestamp, an unknown database, a statement arca does not take.
    let o = sql(
        OPERATOR,
        "RESTORE SNAPSHOT app.nightly_1 FROM local PROPERTIES (\"backup_timestamp\" = \"2001-01-01-00-00-00\", \"arca.to\" = \"/nonexistent-dir/x.db\")",
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("SHOW SNAPSHOT ON local"), "{}", text(&o));
    let o = sql(OPERATOR, "BACKUP SNAPSHOT shop.x TO local");
    assert!(
        text(&o).contains("unknown database \"shop\""),
        "{}",
        text(&o)
    );
    let a = d.post(
        "/api/v1/sql",
        VIEWER,
        &json!({"sql": "BACKUP SNAPSHOT app.x INTO local"}),
    );
    assert_eq!(a.status, 400);
    let v = a.json();
    assert_eq!(
        (v["line"].as_u64(), v["column"].as_u64()),
        (Some(1), Some(23)),
        "{v}"
    );
    let o = sql(VIEWER, "SELECT 1");
    assert!(!o.status.success());
    let e = text(&o);
    assert!(
        e.contains("line 1, column 1: unknown statement \"SELECT\""),
        "{e}"
    );
    assert!(e.contains("  ^"), "{e}");

    // CANCEL BACKUP stops a running one.
    let lock = foreign_lock(&s.repo);
    let o = sql(OPERATOR, "BACKUP SNAPSHOT app.nightly_2 TO local");
    let job = text(&o).split_whitespace().nth(2).unwrap().to_string();
    d.wait_job_until(&job, |j| j["state"] == "running");
    let v = d
        .post("/api/v1/sql", VIEWER, &json!({"sql": "SHOW BACKUP"}))
        .json();
    assert_eq!(v["rows"][0][3], "SNAPSHOTING", "{v}");
    let o = sql(OPERATOR, "CANCEL BACKUP FROM app");
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(d.wait_job(&job)["state"], "cancelled");
    let v = d
        .post("/api/v1/sql", VIEWER, &json!({"sql": "SHOW BACKUP"}))
        .json();
    assert_eq!(v["rows"][0][3], "CANCELLED", "{v}");
    std::fs::remove_file(lock).unwrap();

    // CREATE REPOSITORY writes the configuration (its secret in a file of
    // its own), DROP REPOSITORY takes it out; a restart keeps the change.
    let second = s.env.s("second");
    let o = sql(
        ADMIN,
        &format!("CREATE REPOSITORY second WITH BROKER ON LOCATION \"{second}\""),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(Path::new(&second).join("config").exists());
    let cfg = std::fs::read_to_string(&s.config).unwrap();
    assert!(cfg.contains("name = \"second\""), "{cfg}");
    assert!(
        cfg.contains("[[token]]") && cfg.contains("schedule = \"daily 01:00\""),
        "{cfg}"
    );
    let o = sql(OPERATOR, "BACKUP SNAPSHOT app.into_second TO second");
    let job = text(&o).split_whitespace().nth(2).unwrap().to_string();
    assert_eq!(d.wait_job(&job)["state"], "succeeded");
    assert_eq!(list_ids(&second).len(), 1);
    let o = sql(OPERATOR, "DROP REPOSITORY second");
    assert!(text(&o).contains("admin"), "{}", text(&o));
    let o = sql(ADMIN, "DROP REPOSITORY second");
    assert!(o.status.success(), "{}", text(&o));
    let cfg = std::fs::read_to_string(&s.config).unwrap();
    assert!(!cfg.contains("second"), "{cfg}");
    assert_eq!(list_ids(&second).len(), 1, "DROP REPOSITORY keeps the data");
    let o = sql(ADMIN, "DROP REPOSITORY local");
    assert!(text(&o).contains("plan app-daily"), "{}", text(&o));
}

/// An S3 repository made with CREATE REPOSITORY keeps its secret key out
/// of the configuration and out of every answer.
#[test]
fn create_repository_keeps_the_secret_out_of_the_configuration() {
    let s = setup("");
    let d = Daemon::start(&s.config, &[]);
    let a = d.post(
        "/api/v1/sql",
        ADMIN,
        &json!({"sql": "CREATE REPOSITORY s3r WITH BROKER ON LOCATION \"s3://no-such-bucket/p\" PROPERTIES (\"aws.s3.access_key\" = \"AKIAEXAMPLE\", \"aws.s3.secret_key\" = \"very-secret-key-123\", \"aws.s3.endpoint\" = \"http://127.0.0.1:1\", \"aws.s3.region\" = \"us-east-1\")"}),
    );
    // Nothing answers at that endpoint: refused, and the file is as it was.
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(!a.body.contains("very-secret-key-123"), "{}", a.body);
    let cfg = std::fs::read_to_string(&s.config).unwrap();
    assert!(!cfg.contains("s3r"), "{cfg}");
    assert!(!cfg.contains("very-secret-key-123"), "{cfg}");
    let secrets = s.env.path("arca-secrets");
    let left: Vec<_> = std::fs::read_dir(&secrets)
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    let a = d.post(
        "/api/v1/sql",
        ADMIN,
        &json!({"sql": "CREATE REPOSITORY x WITH BROKER ON LOCATION \"/tmp/x\" PROPERTIES (\"colour\" = \"red\")"}),
    );
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(
        a.body.contains("colour") && a.body.contains("aws.s3.access_key"),
        "{}",
        a.body
    );
    assert!(!d.stderr.lock().unwrap().contains("very-secret-key-123"));
}

/// The daemon's OpenAPI document validates (openapi-spec-validator).
#[test]
fn the_openapi_document_validates() {
    let s = setup("");
    let d = Daemon::start(&s.config, &[]);
    let a = d.request("GET", "/api/v1/openapi.json", None, None);
    assert_eq!(a.status, 200);
    let f = s.env.path("openapi.json");
    std::fs::write(&f, &a.body).unwrap();
    let o = Command::new(test_python())
        .args([
            "-c",
            "import json, sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(open(sys.argv[1])))\nprint('valid')",
        ])
        .arg(&f)
        .output()
        .expect("python with openapi-spec-validator (scripts/test.sh installs it)");
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The Python that scripts/test.sh installs test tools into.
fn test_python() -> PathBuf {
    std::env::var_os("ARCA_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-test/bin/python")
        })
}

/// A real Prometheus scrapes `/metrics` with a token and answers a query.
#[test]
fn prometheus_scrapes_the_metrics() {
    let s = setup("");
    let d = Daemon::start(&s.config, &[]);
    let a = d.post("/api/v1/backups", OPERATOR, &json!({"source": "app"}));
    let j = d.wait_job(a.json()["job"].as_str().unwrap());
    let backup = j["backup"].as_str().unwrap().to_string();
    let b = d.get(&format!("/api/v1/backups/{backup}"), VIEWER).json();
    let end: jiff::Timestamp = b["end_time"].as_str().unwrap().parse().unwrap();

    let dir = s.env.path("prometheus");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: arca\n    metrics_path: /metrics\n    authorization:\n      type: Bearer\n      credentials: {VIEWER}\n    static_configs:\n      - targets: ['{}']\n",
            d.addr
        ),
    )
    .unwrap();
    let port = free_port();
    let prom = Command::new("prometheus")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian's package; scripts/test.sh installs it)");
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _prom = Kill(prom);
    let addr = format!("127.0.0.1:{port}");
    let query =
        "/api/v1/query?query=arca_backup_last_success_timestamp_seconds%7Bsource%3D%22app%22%7D";
    let deadline = Instant::now() + Duration::from_secs(60);
    let value = loop {
        if TcpStream::connect(&addr).is_ok() {
            let a = http(&addr, "GET", query, None, None);
            if a.status == 200 {
                let v = a.json();
                if let Some(x) = v["data"]["result"][0]["value"][1].as_str() {
                    break x.parse::<f64>().unwrap();
                }
            }
        }
        assert!(Instant::now() < deadline, "Prometheus never had the metric");
        std::thread::sleep(Duration::from_millis(250));
    };
    let want = end.as_millisecond() as f64 / 1000.0;
    assert!((value - want).abs() < 0.01, "{value} vs {want}");
    // The scrape target is up, with the token.
    let up = http(
        &addr,
        "GET",
        "/api/v1/query?query=up%7Bjob%3D%22arca%22%7D",
        None,
        None,
    )
    .json();
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
}

/// A small HTTP server that keeps the bodies POSTed to it.
fn hook_server() -> (String, std::sync::mpsc::Receiver<Value>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { return };
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut len = 0usize;
            let mut line = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let _ = c.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            let _ = tx.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
        }
    });
    (addr, rx)
}

#[test]
fn a_failed_job_is_posted_to_the_webhook() {
    let s = setup("");
    let (addr, hooks) = hook_server();
    let cfg = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        format!("{cfg}\n[webhook]\nurl = \"http://{addr}/arca?token=hook-secret\"\n"),
    )
    .unwrap();
    let d = Daemon::start(&s.config, &[]);
    // A success sends nothing (on = "failure" by default) ...
    let a = d.post("/api/v1/backups", OPERATOR, &json!({"source": "app"}));
    assert_eq!(
        d.wait_job(a.json()["job"].as_str().unwrap())["state"],
        "succeeded"
    );
    // ... a failure does.
    std::fs::remove_file(&s.db).unwrap();
    let a = d.post("/api/v1/backups", OPERATOR, &json!({"source": "app"}));
    let job = a.json()["job"].as_str().unwrap().to_string();
    let j = d.wait_job(&job);
    assert_eq!(j["state"], "failed", "{j}");
    assert!(j["error"].as_str().unwrap().contains("app.db"), "{j}");
    let hook = hooks.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(hook["event"], "job_failed", "{hook}");
    assert_eq!(hook["job"]["id"], job.as_str());
    assert_eq!(hook["job"]["source"], "app");
    assert!(
        hooks.recv_timeout(Duration::from_millis(500)).is_err(),
        "one post only"
    );
}

#[test]
fn sighup_reloads_and_a_bad_file_keeps_the_old_configuration() {
    let s = setup("");
    let d = Daemon::start(&s.config, &[]);
    let plans = |d: &Daemon| d.get("/api/v1/plans", VIEWER).json()["items"].clone();
    assert_eq!(plans(&d)[0]["schedule"], "daily 01:00");
    let good = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace("schedule = \"daily 01:00\"", "schedule = \"every 6h\"");
    std::fs::write(&s.config, &good).unwrap();
    d.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(20);
    while plans(&d)[0]["schedule"] != "every 6h" {
        assert!(Instant::now() < deadline, "{}", plans(&d));
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::write(&s.config, good.replace("every 6h", "every 5h")).unwrap();
    d.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ev = d.get("/api/v1/events?kind=config_rejected", VIEWER).json();
        if let Some(m) = ev["items"][0]["message"].as_str() {
            assert!(m.contains("every 5h"), "{m}");
            break;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(plans(&d)[0]["schedule"], "every 6h");
    assert!(
        d.stderr.lock().unwrap().contains("<6>"),
        "journal priority prefixes"
    );
}

#[test]
fn a_plan_changed_through_the_api_is_written_to_the_file() {
    let s = setup("purge_after_days = 30");
    let d = Daemon::start(&s.config, &[]);
    let put = |token: &str, body: Value| {
        d.request(
            "PUT",
            "/api/v1/plans/app-daily",
            Some(token),
            Some(&body.to_string()),
        )
    };
    let a = put(OPERATOR, json!({"schedule": "hourly"}));
    assert_eq!(a.status, 403, "{}", a.body);
    let a = put(ADMIN, json!({"purge_after_days": 6}));
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(a.body.contains("purge_after_days"), "{}", a.body);
    let a = put(ADMIN, json!({"colour": "red"}));
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.json()["field"], "colour");
    let a = put(
        ADMIN,
        json!({"schedule": "30 2 * * 1-5", "timezone": "America/New_York", "keep_last": 5, "purge_after_days": null}),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let v = a.json();
    assert_eq!(v["schedule"], "30 2 * * 1-5", "{v}");
    assert_eq!(v["timezone"], "America/New_York");
    let cfg = std::fs::read_to_string(&s.config).unwrap();
    assert!(cfg.contains("schedule = \"30 2 * * 1-5\""), "{cfg}");
    assert!(cfg.contains("keep_last = 5"), "{cfg}");
    assert!(!cfg.contains("purge_after_days"), "{cfg}");
    assert!(cfg.contains("[[token]]"), "{cfg}");
    // The daemon checks the file it wrote as it checks any.
    let o = Command::new(arca_bin())
        .args(["serve", "--check-config", "--config"])
        .arg(&s.config)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a = d.request("PUT", "/api/v1/plans/nope", Some(ADMIN), Some("{}"));
    assert_eq!(a.status, 404, "{}", a.body);
}

#[test]
fn run_missed_false_skips_what_was_due_while_down() {
    let s = setup("");
    let cfg = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(&s.config, format!("run_missed = false\n{cfg}")).unwrap();
    let d = Daemon::start(&s.config, &["--test-clock", "2026-06-01T12:00:00Z"]);
    d.set_clock("2026-06-01T12:00:01Z");
    drop(d);
    let d = Daemon::start(&s.config, &["--test-clock", "2026-06-05T12:00:00Z"]);
    d.set_clock("2026-06-05T12:00:01Z");
    assert!(d.jobs().is_empty(), "{:?}", d.jobs());
    let ev = d.get("/api/v1/events?kind=schedule_missed", VIEWER).json();
    let m = ev["items"][0]["message"].as_str().unwrap();
    assert!(m.contains("4 run(s) missed"), "{m}");
    // The next one runs as scheduled: 01:00 in Berlin is 23:00 UTC in June.
    d.set_clock("2026-06-05T23:00:01Z");
    assert_eq!(d.jobs().len(), 1);
}

/// A PostgreSQL source: a backup job, its recoverable window, a restore to
/// a time inside it, and one outside it refused.
#[test]
fn a_postgresql_source_backs_up_and_restores_to_a_time_through_the_api() {
    use super::postgres::{server_repo, Pg};
    let env = Env::new();
    let repo = server_repo(&env);
    let pg = Pg::start(Some(&repo));
    pg.sql("CREATE TABLE t (id int primary key, v text)");
    pg.sql("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g");
    let config = env.path("arca.toml");
    std::fs::write(
        &config,
        format!(
            "catalog = \"{}\"\n\n[[repository]]\nname = \"local\"\nurl = \"{repo}\"\n\n\
             [[source]]\nname = \"pg\"\nurl = \"{}\"\n\n\
             [[plan]]\nname = \"pg-nightly\"\nsource = \"pg\"\nrepository = \"local\"\n\n{}",
            env.s("catalog.db"),
            pg.url(),
            tokens()
        ),
    )
    .unwrap();
    let d = Daemon::start(&config, &[]);
    let a = d.post("/api/v1/backups", OPERATOR, &json!({"source": "pg"}));
    assert_eq!(a.status, 202, "{}", a.body);
    let j = d.wait_job(a.json()["job"].as_str().unwrap());
    assert_eq!(j["state"], "succeeded", "{j}");
    pg.sql("INSERT INTO t SELECT g, 'after' FROM generate_series(1001, 1100) g");
    let mid = jiff::Timestamp::now();
    std::thread::sleep(Duration::from_millis(1100));
    pg.sql("INSERT INTO t SELECT g, 'later' FROM generate_series(1101, 1200) g");
    pg.archive_now();
    let b = d.get("/api/v1/backups?source=pg", VIEWER).json();
    assert_eq!(b["items"][0]["id"], j["backup"], "{b}");
    assert_eq!(b["items"][0]["engine"], "postgres", "{b}");
    // The window reaches past `mid` once the WAL is archived.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let w = d.get("/api/v1/windows", VIEWER).json();
        let to = w["items"][0]["to"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        if w["items"][0]["source"] == "pg" && to.is_some_and(|to| to > mid) {
            break;
        }
        assert!(Instant::now() < deadline, "{w}");
        std::thread::sleep(Duration::from_secs(1));
    }
    let to = env.path("restored");
    let r = d.post(
        "/api/v1/restores",
        OPERATOR,
        &json!({"source": "pg", "time": mid.to_string(), "to": to}),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let rj = d.wait_job(r.json()["job"].as_str().unwrap());
    assert_eq!(rj["state"], "succeeded", "{rj}");
    assert!(to.join("PG_VERSION").exists());
    let r = d.post(
        "/api/v1/restores",
        OPERATOR,
        &json!({"source": "pg", "time": "2001-01-01T00:00:00Z", "to": env.path("r2")}),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["field"], "time");
    assert!(
        r.body.contains("outside the recoverable window"),
        "{}",
        r.body
    );
    let m = d.get("/metrics", VIEWER).body;
    assert!(
        m.contains("arca_recoverable_window_end_timestamp_seconds{source=\"pg\"}"),
        "{m}"
    );
    assert!(
        m.contains("arca_log_archive_lag_seconds{source=\"pg\"}"),
        "{m}"
    );
}

/// Cancel works whatever the job and wherever it is: queued behind the
/// job limit, and restores and checks waiting for the repository.
#[test]
fn cancel_works_queued_and_for_every_kind_of_job() {
    let s = setup("keep_last = 1");
    let cfg = std::fs::read_to_string(&s.config).unwrap();
    let db2 = s.env.path("two.db");
    make_db(&db2, 1, "WAL");
    std::fs::write(
        &s.config,
        format!(
            "max_jobs = 1\n{cfg}\n[[source]]\nname = \"two\"\nurl = \"sqlite://{}\"\n",
            db2.display()
        ),
    )
    .unwrap();
    let d = Daemon::start(&s.config, &[]);
    let a = d.post("/api/v1/backups", OPERATOR, &json!({"source": "app"}));
    let first = d.wait_job(a.json()["job"].as_str().unwrap());
    let backup = first["backup"].as_str().unwrap().to_string();
    // Let the plan's retention job finish before locking the repository.
    let deadline = Instant::now() + Duration::from_secs(30);
    while d
        .jobs()
        .iter()
        .any(|j| j["state"] == "queued" || j["state"] == "running")
    {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let lock = foreign_lock(&s.repo);
    // A restore waits for the lock; with max_jobs = 1 a backup of another
    // source queues behind it.
    let to = s.env.path("r.db");
    let r = d.post(
        "/api/v1/restores",
        OPERATOR,
        &json!({"source": "app", "backup": backup, "to": to}),
    );
    let restore = r.json()["job"].as_str().unwrap().to_string();
    d.wait_job_until(&restore, |j| j["state"] == "running");
    let b = d.post(
        "/api/v1/backups",
        OPERATOR,
        &json!({"source": "two", "repository": "local"}),
    );
    assert_eq!(b.status, 202, "{}", b.body);
    let queued = b.json()["job"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        d.get(&format!("/api/v1/jobs/{queued}"), VIEWER).json()["state"],
        "queued"
    );
    let c = d.request(
        "DELETE",
        &format!("/api/v1/jobs/{queued}"),
        Some(OPERATOR),
        None,
    );
    assert_eq!(c.status, 202, "{}", c.body);
    let q = d.wait_job(&queued);
    assert_eq!(q["state"], "cancelled", "{q}");
    assert!(q["started_at"].is_null(), "it never ran: {q}");
    let c = d.request(
        "POST",
        &format!("/api/v1/jobs/{restore}/cancel"),
        Some(OPERATOR),
        None,
    );
    assert_eq!(c.status, 202);
    let r = d.wait_job(&restore);
    assert_eq!(r["state"], "cancelled", "{r}");
    assert!(!to.exists(), "a cancelled restore leaves no target");
    // A check waiting for the lock.
    let c = d.post(
        "/api/v1/checks",
        OPERATOR,
        &json!({"repository": "local", "read_data": true}),
    );
    let check = c.json()["job"].as_str().unwrap().to_string();
    d.wait_job_until(&check, |j| j["state"] == "running");
    d.request(
        "POST",
        &format!("/api/v1/jobs/{check}/cancel"),
        Some(OPERATOR),
        None,
    );
    assert_eq!(d.wait_job(&check)["state"], "cancelled");
    // Retention waiting for the lock.
    let f = d.post("/api/v1/forget", ADMIN, &json!({"plan": "app-daily"}));
    assert_eq!(f.status, 202, "{}", f.body);
    let forget = f.json()["job"].as_str().unwrap().to_string();
    d.wait_job_until(&forget, |j| j["state"] == "running");
    d.request(
        "POST",
        &format!("/api/v1/jobs/{forget}/cancel"),
        Some(OPERATOR),
        None,
    );
    assert_eq!(d.wait_job(&forget)["state"], "cancelled");
    std::fs::remove_file(lock).unwrap();
    assert_eq!(list_ids(&s.repo), vec![backup]);
    let locks: Vec<_> = std::fs::read_dir(Path::new(&s.repo).join("locks"))
        .unwrap()
        .collect();
    assert!(locks.is_empty(), "{locks:?}");
    // Once the lock is gone, a check passes.
    let c = d.post(
        "/api/v1/checks",
        OPERATOR,
        &json!({"repository": "local", "read_data": true}),
    );
    let j = d.wait_job(c.json()["job"].as_str().unwrap());
    assert_eq!(j["state"], "succeeded", "{j}");
    assert!(j["result"]["packs"].as_u64().unwrap() > 0, "{j}");
}

/// With `[tls]`, the daemon answers HTTPS with the configured certificate.
#[test]
fn tls_from_a_certificate_and_key_in_the_configuration() {
    let s = setup("");
    let (cert, key) = (s.env.path("cert.pem"), s.env.path("key.pem"));
    let o = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cfg = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        format!(
            "{cfg}\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let d = Daemon::start(&s.config, &[]);
    let curl = |args: &[&str]| {
        let o = Command::new("curl")
            .args(["-sS", "--max-time", "20", "--cacert"])
            .arg(&cert)
            .args(args)
            .output()
            .expect("curl");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let (ok, out) = curl(&[&format!("https://{}/healthz", d.addr)]);
    assert!(ok, "{out}");
    assert!(out.contains("\"ok\""), "{out}");
    let (ok, out) = curl(&[
        "-H",
        &format!("Authorization: Bearer {VIEWER}"),
        &format!("https://{}/api/v1/sources", d.addr),
    ]);
    assert!(ok && out.contains("\"app\""), "{out}");
    // Plain HTTP is not answered as HTTP.
    let (_, out) = curl(&[&format!("http://{}/healthz", d.addr)]);
    assert!(!out.contains("\"ok\""), "{out}");
    let (took, status, err) = d.stop();
    assert!(status.success(), "{err}");
    assert!(took < Duration::from_secs(10));
    // A key that does not match: refused at start, naming tls.
    std::fs::write(&key, "not a key").unwrap();
    let o = Command::new(arca_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&s.config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("tls"), "{err}");
}

/// A plan's restore drill runs on its schedule, and a drill of a damaged
/// repository fails and says so in the metrics.
#[test]
fn restore_drills_run_on_their_schedule_and_catch_damage() {
    let s = setup(&format!(
        "drill = \"daily 03:00\"\ndrill_scratch = \"{}\"",
        "DRILL_SCRATCH"
    ));
    let scratch = s.env.path("scratch");
    let cfg = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace("DRILL_SCRATCH", &scratch.display().to_string());
    std::fs::write(&s.config, cfg).unwrap();
    let d = Daemon::start(&s.config, &["--test-clock", "2026-07-01T12:00:00Z"]);
    let a = d.post("/api/v1/backups", OPERATOR, &json!({"source": "app"}));
    d.wait_job(a.json()["job"].as_str().unwrap());
    // 03:00 in Berlin is 01:00 UTC in July.
    // The plan's backup fires at 01:00 Berlin (23:00 UTC) first.
    d.set_clock("2026-07-02T00:59:00Z");
    assert!(d.jobs().iter().all(|j| j["kind"] != "drill"));
    for j in d.jobs() {
        d.wait_job(j["id"].as_str().unwrap());
    }
    let newest = d.get("/api/v1/backups?source=app&limit=1", VIEWER).json();
    let backup = newest["items"][0]["id"].clone();
    d.set_clock("2026-07-02T01:00:01Z");
    let drill = d
        .jobs()
        .into_iter()
        .find(|j| j["kind"] == "drill")
        .expect("a drill job");
    let j = d.wait_job(drill["id"].as_str().unwrap());
    assert_eq!(j["state"], "succeeded", "{j}");
    assert_eq!(j["backup"], backup);
    let checks: Vec<&str> = j["result"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        checks.iter().any(|c| c.contains("integrity_check: ok")),
        "{checks:?}"
    );
    assert_eq!(
        std::fs::read_dir(&scratch).unwrap().count(),
        0,
        "scratch left as found"
    );
    let m = d.get("/metrics", VIEWER).body;
    assert!(
        m.contains("arca_drill_last_success{source=\"app\"} 1"),
        "{m}"
    );

    // Damage every pack: the next drill fails, naming the backup.
    for p in packs(&s.repo) {
        let mut b = std::fs::read(&p).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0xff;
        std::fs::write(&p, b).unwrap();
    }
    let a = d.post("/api/v1/drills", OPERATOR, &json!({"plan": "app-daily"}));
    assert_eq!(a.status, 202, "{}", a.body);
    let j = d.wait_job(a.json()["job"].as_str().unwrap());
    assert_eq!(j["state"], "failed", "{j}");
    let short = &backup.as_str().unwrap()[..8];
    assert!(j["error"].as_str().unwrap().contains(short), "{j}");
    let m = d.get("/metrics", VIEWER).body;
    assert!(
        m.contains("arca_drill_last_success{source=\"app\"} 0"),
        "{m}"
    );
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);
}

/// A MariaDB source whose URL holds a password: tables backed up and
/// restored under new names through StarRocks' statements, and the
/// password in no answer, event or log line.
#[test]
fn a_mariadb_source_through_starrocks_statements_keeps_its_password_secret() {
    use super::mariadb::{Maria, PASSWORD};
    let m = Maria::start();
    m.root("CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, v VARCHAR(20)); CREATE TABLE shop.other (id INT PRIMARY KEY)");
    m.root("INSERT INTO shop.orders SELECT seq, CONCAT('o', seq) FROM shop.seq_1_to_500; INSERT INTO shop.other VALUES (1)");
    let env = Env::new();
    let repo = env.init_local("repo");
    let config = env.path("arca.toml");
    std::fs::write(
        &config,
        format!(
            "catalog = \"{}\"\n\n[[repository]]\nname = \"local\"\nurl = \"{repo}\"\n\n\
             [[source]]\nname = \"shop\"\nurl = \"{}/shop\"\n\n{}",
            env.s("catalog.db"),
            m.url(),
            tokens()
        ),
    )
    .unwrap();
    let d = Daemon::start(&config, &[]);
    let sql = |token: &str, stmt: &str| d.post("/api/v1/sql", token, &json!({ "sql": stmt }));
    let a = sql(
        OPERATOR,
        "BACKUP SNAPSHOT shop.orders_only TO local ON (TABLE orders)",
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let job = a.json()["message"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_string();
    let j = d.wait_job(&job);
    assert_eq!(j["state"], "succeeded", "{j}");
    let v = sql(VIEWER, "SHOW BACKUP FROM shop").json();
    assert_eq!(v["rows"][0][4], "orders", "{v}");
    let v = sql(
        VIEWER,
        "SHOW SNAPSHOT ON local WHERE SNAPSHOT = 'orders_only'",
    )
    .json();
    let ts = v["rows"][0][1].as_str().unwrap().to_string();
    // In place (admin), under a new name.
    let a = sql(
        ADMIN,
        &format!("RESTORE SNAPSHOT shop.orders_only FROM local ON (TABLE orders AS orders_copy) PROPERTIES (\"backup_timestamp\" = \"{ts}\")"),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let job = a.json()["message"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_string();
    let j = d.wait_job(&job);
    assert_eq!(j["state"], "succeeded", "{j}");
    assert_eq!(
        m.root("SELECT COUNT(*), SUM(id) FROM shop.orders_copy"),
        "500\t125250"
    );
    assert_eq!(m.root("SELECT COUNT(*) FROM shop.orders"), "500");
    // Through the REST API: the whole backup into a new database.
    let a = sql(OPERATOR, "BACKUP SNAPSHOT shop.whole TO local");
    let job = a.json()["message"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_string();
    let whole = d.wait_job(&job)["backup"].as_str().unwrap().to_string();
    let r = d.post(
        "/api/v1/restores",
        OPERATOR,
        &json!({"source": "shop", "backup": whole, "to": m.url(), "renames": ["shop:shop_copy"]}),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let rj = d.wait_job(r.json()["job"].as_str().unwrap());
    assert_eq!(rj["state"], "succeeded", "{rj}");
    assert_eq!(m.root("SELECT COUNT(*) FROM shop_copy.orders"), "500");
    assert_eq!(m.root("SELECT COUNT(*) FROM shop_copy.other"), "1");
    let r = d.post(
        "/api/v1/restores",
        OPERATOR,
        &json!({"source": "shop", "backup": whole, "to": m.url(), "replace": true}),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // The password shows nowhere.
    for path in [
        "/api/v1/sources",
        "/api/v1/jobs?limit=100",
        "/api/v1/events?limit=100",
        "/api/v1/backups",
    ] {
        let a = d.get(path, VIEWER);
        assert!(!a.body.contains(PASSWORD), "{path}: {}", a.body);
    }
    let src = d.get("/api/v1/sources", VIEWER).body;
    assert!(src.contains("arca:[SECRET]@127.0.0.1"), "{src}");
    let v = sql(VIEWER, "SHOW RESTORE").json();
    assert!(!v.to_string().contains(PASSWORD), "{v}");
    let (_, _, log) = d.stop();
    assert!(!log.contains(PASSWORD), "{log}");
}

/// A plan with log_archiving streams the server's WAL from the daemon: the
/// window keeps up with commits, a server restart is ridden out, and the
/// daemon still stops within 10 s.
#[test]
fn log_archiving_streams_wal_and_survives_a_server_restart() {
    use super::postgres::{server_repo, Pg};
    let env = Env::new();
    let repo = server_repo(&env);
    // Backups need the archive_command (pg_backup_stop waits for it); the
    // stream brings the window to the newest commit in between.
    let mut pg = Pg::start(Some(&repo));
    pg.sql("CREATE TABLE t (id int primary key)");
    // The daemon runs as the server's user, as the archive_command does,
    // so both may write the repository's WAL.
    let home = env.path("daemon");
    std::fs::create_dir_all(&home).unwrap();
    super::postgres::give_to_server(&home);
    let config = home.join("arca.toml");
    std::fs::write(
        &config,
        format!(
            "catalog = \"{}\"\n\n[[repository]]\nname = \"local\"\nurl = \"{repo}\"\n\n\
             [[source]]\nname = \"pg\"\nurl = \"{}\"\n\n\
             [[plan]]\nname = \"pg-nightly\"\nsource = \"pg\"\nrepository = \"local\"\nlog_archiving = true\n\n{}",
            home.join("catalog.db").display(),
            pg.url(),
            tokens()
        ),
    )
    .unwrap();
    super::postgres::give_to_server(&config);
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata("/proc/self").unwrap().uid();
    let d = if super::postgres::server_owner().0 == me {
        Daemon::start(&config, &[])
    } else {
        Daemon::start_as_postgres(&config, &[])
    };
    let streaming = |d: &Daemon| {
        let s = d.get("/api/v1/sources", VIEWER).json();
        s["items"][0]["log_archiving"]["state"] == "streaming"
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !streaming(&d) {
        assert!(
            Instant::now() < deadline,
            "{}",
            d.get("/api/v1/sources", VIEWER).body
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let a = d.post("/api/v1/backups", OPERATOR, &json!({"source": "pg"}));
    let j = d.wait_job(a.json()["job"].as_str().unwrap());
    assert_eq!(j["state"], "succeeded", "{j}");
    // Commits after the backup reach the window within seconds.
    pg.sql("INSERT INTO t SELECT COALESCE(max(id), 0) + 1 FROM t");
    let t1 = jiff::Timestamp::now();
    pg.sql("INSERT INTO t SELECT COALESCE(max(id), 0) + 1 FROM t");
    window_past(&d, &pg, t1);
    // The server restarts: the stream reconnects and carries on.
    pg.stop();
    std::thread::sleep(Duration::from_secs(2));
    pg.start_again();
    pg.sql("INSERT INTO t SELECT COALESCE(max(id), 0) + 1 FROM t");
    let t2 = jiff::Timestamp::now();
    pg.sql("INSERT INTO t SELECT COALESCE(max(id), 0) + 1 FROM t");
    window_past(&d, &pg, t2);
    let ev = d.get("/api/v1/events?source=pg&limit=200", VIEWER).json();
    let kinds: Vec<&str> = ev["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"log_archiving_started"), "{kinds:?}");
    assert!(
        kinds.contains(&"log_archiving_reconnecting") || kinds.contains(&"log_archiving_failed"),
        "{kinds:?}"
    );
    let (took, status, err) = d.stop();
    assert!(status.success(), "{err}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

/// Waits until the source's window reaches past `t`, committing meanwhile
/// so there is WAL to send.
fn window_past(d: &Daemon, pg: &super::postgres::Pg, t: jiff::Timestamp) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        pg.sql("INSERT INTO t SELECT COALESCE(max(id), 0) + 1 FROM t");
        let w = d.get("/api/v1/windows", VIEWER).json();
        let to = w["items"][0]["to"]
            .as_str()
            .and_then(|x| x.parse::<jiff::Timestamp>().ok());
        if to.is_some_and(|to| to > t) {
            return;
        }
        assert!(Instant::now() < deadline, "{w}");
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The job stream: server-sent events as a job changes state.
#[test]
fn the_job_stream_sends_each_change_as_it_happens() {
    let s = setup("");
    let d = Daemon::start(&s.config, &[]);
    let mut c = TcpStream::connect(&d.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        c,
        "GET /api/v1/jobs/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {VIEWER}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(c);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.contains("200"), "{line}");
    let a = d.post("/api/v1/backups", OPERATOR, &json!({"source": "app"}));
    let job = a.json()["job"].as_str().unwrap().to_string();
    // `event: job` then `data: {…}` for queued, running and succeeded.
    let mut states = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last_event = String::new();
    while !states.contains(&"succeeded".to_string()) {
        assert!(Instant::now() < deadline, "{states:?}");
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim();
        if let Some(e) = l.strip_prefix("event: ") {
            last_event = e.to_string();
        } else if let Some(data) = l.strip_prefix("data: ") {
            if last_event == "job" {
                let v: Value = serde_json::from_str(data).unwrap();
                if v["id"] == job.as_str() {
                    states.push(v["state"].as_str().unwrap().to_string());
                }
            }
        }
    }
    assert_eq!(
        states.first().map(String::as_str),
        Some("queued"),
        "{states:?}"
    );
    assert!(states.contains(&"running".to_string()), "{states:?}");
}
