//! PostgreSQL: `arca wal-stream` over a replication slot, against a real
//! server that archives nothing itself, so every byte in the repository came
//! through the stream.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::common::{error_line, Env};
use super::postgres::{arca, arca_bin, as_server, bin_dir, give_to_server, Pg};

const SEG: u64 = 16 << 20;

/// A running `arca wal-stream`, its output going to files.
struct Streamer {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Streamer {
    fn start(env: &Env, tag: &str, args: &[&str], envs: &[(&str, &str)]) -> Streamer {
        let stdout = env.path(&format!("{tag}.out"));
        let stderr = env.path(&format!("{tag}.err"));
        let mut cmd = Command::new(arca_bin());
        cmd.arg("wal-stream")
            .args(args)
            .env_remove("ARCA_REPO")
            .env_remove("PGPASSWORD")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        Streamer {
            child: cmd.spawn().unwrap(),
            stdout,
            stderr,
        }
    }

    fn output(&self) -> String {
        format!(
            "{}{}",
            std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    /// Waits until stdout has a line containing `what`; returns that line.
    fn wait_for_line(&mut self, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = std::fs::read_to_string(&self.stdout).unwrap_or_default();
            if let Some(l) = out.lines().find(|l| l.contains(what)) {
                return l.to_string();
            }
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!(
                    "wal-stream exited ({st}) before printing {what:?}: {}",
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "wal-stream printed no {what:?} within 30 s: {}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGINT, then the exit status within 30 s.
    fn interrupt(mut self) -> (std::process::ExitStatus, String) {
        let st = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let out = self.output();
                return (st, out);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "wal-stream did not stop within 30 s of SIGINT: {}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Streamer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sysid(pg: &Pg) -> String {
    pg.sql("SELECT system_identifier FROM pg_control_system()")
}

/// The segment holding the byte before `lsn`, and `lsn`'s offset in it.
fn segment_of(pg: &Pg, lsn: &str) -> (String, usize) {
    let row = pg.sql(&format!(
        "SELECT file_name || ' ' || file_offset FROM pg_walfile_name_offset('{lsn}')"
    ));
    let (name, off) = row.split_once(' ').unwrap();
    (name.to_string(), off.parse().unwrap())
}

/// The next segment's name and its start position (16 MiB segments).
fn next_segment(name: &str) -> (String, String) {
    let tli = &name[..8];
    let number = u64::from_str_radix(&name[8..16], 16).unwrap() * 256
        + u64::from_str_radix(&name[16..24], 16).unwrap()
        + 1;
    let start = number * SEG;
    (
        format!("{tli}{:08X}{:08X}", number / 256, number % 256),
        format!("{:X}/{:X}", start >> 32, start & 0xffff_ffff),
    )
}

/// `arca wal-fetch` of `name` (which serves `<name>.partial` when the full
/// segment is not there yet); `None` if it is not archived.
fn fetch(env: &Env, repo: &str, cluster: &str, name: &str) -> Option<Vec<u8>> {
    let dest = env.path("fetched");
    let _ = std::fs::remove_file(&dest);
    let out = arca()
        .args(["wal-fetch", "--repo", repo, "--cluster", cluster, name])
        .arg(&dest)
        .output()
        .unwrap();
    match out.status.code() {
        Some(0) => Some(std::fs::read(&dest).unwrap()),
        Some(1) => None,
        _ => panic!(
            "wal-fetch {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn archived(repo: &str, cluster: &str, name: &str) -> bool {
    Path::new(repo)
        .join("logs/postgres")
        .join(cluster)
        .join(name)
        .is_file()
}

/// Waits until the repository serves `name` with the same first `upto`
/// bytes as the server's pg_wal file; returns how long that took.
fn wait_streamed(
    env: &Env,
    pg: &Pg,
    repo: &str,
    cluster: &str,
    name: &str,
    upto: usize,
) -> Duration {
    let t0 = Instant::now();
    let server = pg.data.join("pg_wal").join(name);
    loop {
        if let Some(got) = fetch(env, repo, cluster, name) {
            assert_eq!(
                got.len() as u64,
                SEG,
                "{name} is stored at the segment size"
            );
            let want = std::fs::read(&server).unwrap();
            if got[..upto] == want[..upto] {
                return t0.elapsed();
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{name} up to offset {upto} did not reach the repository within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn slot_restart_lsn_reaches(pg: &Pg, slot: &str, lsn: &str) {
    let t0 = Instant::now();
    loop {
        let reached = pg.sql(&format!(
            "SELECT coalesce(restart_lsn >= '{lsn}', false) FROM pg_replication_slots WHERE slot_name = '{slot}'"
        ));
        if reached == "t" {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "slot {slot} did not advance to {lsn} within 30 s: {}",
            pg.sql("SELECT restart_lsn FROM pg_replication_slots")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn wal_stream_keeps_the_archive_seconds_behind_and_resumes_where_it_stopped() {
    let env = Env::new();
    let repo = env.init_local("repo");
    let pg = Pg::start(None);
    let cluster = sysid(&pg);
    let args = [
        "--repo",
        &repo,
        "--source",
        &pg.url(),
        "--slot",
        "arca_test",
        "--status-interval",
        "1",
    ];
    let mut s = Streamer::start(&env, "run1", &args, &[]);
    let started = s.wait_for_line("streaming WAL");
    assert!(
        started.contains(&cluster) && started.contains("created"),
        "{started}"
    );

    pg.sql("CREATE TABLE t(k int, v text)");
    pg.sql("INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 2000) g");
    let lsn = pg.sql("SELECT pg_current_wal_flush_lsn()");
    let (name, offset) = segment_of(&pg, &lsn);
    // The last commit is in the repository within seconds, in the growing
    // segment, byte for byte what the server wrote.
    let lag = wait_streamed(&env, &pg, &repo, &cluster, &name, offset);
    eprintln!("{name} up to {lsn} stored {lag:?} after the commit");
    assert!(lag < Duration::from_secs(20), "took {lag:?}");
    assert!(archived(&repo, &cluster, &format!("{name}.partial")));
    assert!(!archived(&repo, &cluster, &name));
    // The slot advances only as far as the repository holds.
    slot_restart_lsn_reaches(&pg, "arca_test", &lsn);

    // A switch completes the segment: stored under its own name, whole and
    // equal to the server's file, and its partial is gone.
    pg.sql("SELECT pg_switch_wal()");
    let server_file = std::fs::read(pg.data.join("pg_wal").join(&name)).unwrap();
    let t0 = Instant::now();
    let partial = format!("{name}.partial");
    while !archived(&repo, &cluster, &name) || archived(&repo, &cluster, &partial) {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{name} not completed: {}",
            s.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let got = fetch(&env, &repo, &cluster, &name).unwrap();
    assert_eq!(got.len(), server_file.len());
    assert!(
        got == server_file,
        "{name} differs from the server's pg_wal/{name}"
    );

    let (status, out) = s.interrupt();
    assert!(
        status.success(),
        "SIGINT should stop it cleanly: {status}: {out}"
    );
    assert!(out.contains("stopped: WAL of cluster"), "{out}");
    assert_eq!(
        pg.sql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'arca_test'"),
        "1",
        "the slot stays, holding WAL for the next run"
    );

    // Written while nothing streams; the next run resumes after the newest
    // complete segment, with no gap.
    pg.sql("INSERT INTO t SELECT g, repeat('y', 100) FROM generate_series(1, 2000) g");
    let lsn2 = pg.sql("SELECT pg_current_wal_flush_lsn()");
    let (name2, offset2) = segment_of(&pg, &lsn2);
    let (next, next_start) = next_segment(&name);
    assert_eq!(
        name2, next,
        "the inserts fit in the segment after the switch"
    );
    let mut s = Streamer::start(&env, "run2", &args, &[]);
    let started = s.wait_for_line("streaming WAL");
    assert!(
        started.contains(&format!("from {next_start} ")) && !started.contains("created"),
        "should resume at {next_start}: {started}"
    );
    wait_streamed(&env, &pg, &repo, &cluster, &name2, offset2);

    // The server restarts under it: it connects again and carries on.
    let mut pg = pg;
    pg.stop();
    pg.start_again();
    pg.sql("INSERT INTO t SELECT g, repeat('z', 100) FROM generate_series(1, 2000) g");
    let lsn3 = pg.sql("SELECT pg_current_wal_flush_lsn()");
    let (name3, offset3) = segment_of(&pg, &lsn3);
    let lag = wait_streamed(&env, &pg, &repo, &cluster, &name3, offset3);
    eprintln!("{name3} up to {lsn3} stored {lag:?} after the commit, across a restart");

    let (status, out) = s.interrupt();
    assert!(status.success(), "{status}: {out}");
    assert!(out.contains("connecting again in"), "{out}");
    assert!(out.contains(&format!("{name3}.partial growing")), "{out}");
}

fn stream_output(repo: &str, source: &str, envs: &[(&str, &str)]) -> Output {
    let mut c = arca();
    c.args(["wal-stream", "--repo", repo, "--source", source])
        .env_remove("PGPASSWORD")
        .timeout(Duration::from_secs(60));
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn wal_stream_errors_are_one_clear_line_and_never_show_the_password() {
    let env = Env::new();
    let repo = env.init_local("repo");

    // Nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = stream_output(
        &repo,
        &format!("postgres://postgres:no-such-secret@127.0.0.1:{port}/postgres"),
        &[],
    );
    let line = error_line(&out);
    assert!(line.contains("connection refused"), "{line}");
    assert!(!line.contains("no-such-secret"), "{line}");

    let mut pg = Pg::start(None);
    pg.sql("CREATE ROLE streamer LOGIN REPLICATION PASSWORD 'right-secret-1'");
    pg.sql("CREATE ROLE plain LOGIN");
    pg.sql("SET password_encryption = 'md5'; CREATE ROLE md5er LOGIN REPLICATION PASSWORD 'md5-secret-3'");
    pg.hba_first(
        "host replication streamer 127.0.0.1/32 scram-sha-256\n\
         host replication md5er 127.0.0.1/32 md5",
    );
    let at = |user: &str, pw: &str| {
        let auth = if pw.is_empty() {
            user.to_string()
        } else {
            format!("{user}:{pw}")
        };
        format!("postgres://{auth}@127.0.0.1:{}/postgres", pg.port)
    };

    // A wrong password: one line, without it.
    let out = stream_output(&repo, &at("streamer", "wrong-secret-2"), &[]);
    let line = error_line(&out);
    assert!(line.contains("password authentication failed"), "{line}");
    assert!(!line.contains("wrong-secret-2"), "{line}");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("wrong-secret-2"), "{all}");

    // No password at all where one is needed.
    let out = stream_output(
        &repo,
        &at("streamer", ""),
        &[("PGPASSFILE", "/nonexistent")],
    );
    let line = error_line(&out);
    assert!(line.contains("password"), "{line}");

    // The right ones, by SCRAM (from PGPASSWORD) and by MD5, start streaming.
    for (user, pw, slot) in [
        ("streamer", "right-secret-1", "scram_slot"),
        ("md5er", "md5-secret-3", "md5_slot"),
    ] {
        let s = Streamer::start(
            &env,
            slot,
            &["--repo", &repo, "--source", &at(user, ""), "--slot", slot],
            &[("PGPASSWORD", pw)],
        );
        let mut s = s;
        s.wait_for_line("streaming WAL");
        let (status, out) = s.interrupt();
        assert!(status.success(), "{user}: {status}: {out}");
        assert!(!out.contains(pw), "{out}");
    }

    // A role without REPLICATION.
    let out = stream_output(&repo, &at("plain", ""), &[]);
    let line = error_line(&out);
    assert!(line.contains("REPLICATION"), "{line}");

    // A server with no WAL senders.
    pg.sql("ALTER SYSTEM SET max_wal_senders = 0");
    pg.stop();
    pg.start_again();
    let out = stream_output(&repo, &pg.url(), &[]);
    let line = error_line(&out);
    assert!(line.contains("max_wal_senders"), "{line}");
}

#[test]
fn wal_stream_follows_a_promotion_onto_the_next_timeline() {
    let env = Env::new();
    let repo = env.init_local("repo");
    let primary = Pg::start(None);
    primary.sql("CREATE TABLE t(k int)");
    // A standby of it, streamed from (a cascading walsender), then promoted.
    let dir = tempfile::Builder::new()
        .prefix("arca-test-pg-standby-")
        .tempdir()
        .unwrap();
    give_to_server(dir.path());
    let data = dir.path().join("data");
    let out = as_server(&bin_dir().join("pg_basebackup"))
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-R",
            "-X",
            "stream",
            "-D",
        ])
        .arg(&data)
        .args(["-p", &primary.port.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_basebackup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = data.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str(&format!(
        "port = {port}\nunix_socket_directories = '{}'\n",
        dir.path().display()
    ));
    std::fs::write(&conf, text).unwrap();
    let mut standby = Pg::adopt(data.clone(), port);
    standby.start_again();
    let cluster = sysid(&standby);

    let mut s = Streamer::start(
        &env,
        "cascade",
        &[
            "--repo",
            &repo,
            "--source",
            &standby.url(),
            "--slot",
            "cascade",
            "--status-interval",
            "1",
        ],
        &[],
    );
    s.wait_for_line("streaming WAL");
    primary.sql("INSERT INTO t SELECT generate_series(1, 1000)");
    let out = as_server(&bin_dir().join("pg_ctl"))
        .arg("-D")
        .arg(&data)
        .args(["-w", "promote"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promote: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = s.wait_for_line("following timeline");
    assert!(line.starts_with("timeline 1 ended at "), "{line}");
    assert!(line.ends_with("following timeline 2"), "{line}");

    standby.sql("INSERT INTO t SELECT generate_series(1, 1000)");
    let lsn = standby.sql("SELECT pg_current_wal_flush_lsn()");
    let (name, offset) = segment_of(&standby, &lsn);
    assert!(name.starts_with("00000002"), "{name}");
    wait_streamed(&env, &standby, &repo, &cluster, &name, offset);
    assert!(archived(&repo, &cluster, "00000002.history"));
    let (status, out) = s.interrupt();
    assert!(status.success(), "{status}: {out}");
    drop(standby);
}
