//! A real PostgreSQL for the tests, from Debian's packages: one cluster per
//! test in a temp directory on a free loopback port, run as the `postgres`
//! user when the tests run as root (the server refuses root), with
//! `wal_level = replica` and `archive_command` pushing into a test repository.
//! Autovacuum is off: its visits rewrite catalog files at times a test cannot
//! know, and tests assert which files changed.
//! Stopped (immediate mode) when the handle drops. A test that needs
//! PostgreSQL and cannot find it fails.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The server binaries: `ARCA_PG_BIN`, else the newest /usr/lib/postgresql/*/bin.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ARCA_PG_BIN") {
        return PathBuf::from(d);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (/usr/lib/postgresql missing): scripts/test.sh installs it")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    dirs.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop()
        .expect("no PostgreSQL server under /usr/lib/postgresql: scripts/test.sh installs it")
}

/// The arca binary at a path the server's user can run (the build tree may
/// be in a directory it cannot enter): a copy in /tmp/arca-test-bin.
pub fn arca_bin() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join("arca-test-bin");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let tmp = dir.join(format!(".arca-{}", std::process::id()));
        std::fs::copy(assert_cmd::cargo::cargo_bin("arca"), &tmp).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = dir.join("arca");
        std::fs::rename(&tmp, &bin).unwrap();
        bin
    })
}

/// `arca` from [`arca_bin`], with no repository or AWS settings from the
/// caller's environment.
pub fn arca() -> assert_cmd::Command {
    super::common::without_caller_settings(assert_cmd::Command::new(arca_bin()))
}

/// Runs arca, asserting success; returns stdout.
pub fn ok(args: &[&str]) -> String {
    super::common::run_ok(arca(), args)
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

/// The uid and gid the server runs as.
pub fn server_owner() -> (u32, u32) {
    if !is_root() {
        let m = std::fs::metadata("/proc/self").unwrap();
        return (m.uid(), m.gid());
    }
    let id = |flag: &str| {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .unwrap();
        assert!(out.status.success(), "no postgres user: install postgresql");
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    (id("-u"), id("-g"))
}

/// Gives `path` (recursively) to the server's user, so the server can write
/// its data directory and archive into a test repository.
pub fn give_to_server(path: &Path) {
    let (uid, gid) = server_owner();
    fn walk(p: &Path, uid: u32, gid: u32) {
        std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
        if p.is_dir() && !p.is_symlink() {
            for e in std::fs::read_dir(p).unwrap() {
                walk(&e.unwrap().path(), uid, gid);
            }
        }
    }
    walk(path, uid, gid);
}

/// A local repository in `env` that the server's archive_command can write
/// into (the Env's directory opened for the server's user to pass through).
pub fn server_repo(env: &super::common::Env) -> String {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let repo = env.init_local("repo");
    give_to_server(Path::new(&repo));
    repo
}

/// Runs a server binary as the server's user.
pub fn as_server(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn check(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub struct Pg {
    pub data: PathBuf,
    pub port: u16,
    bin: PathBuf,
    running: bool,
    _dir: tempfile::TempDir,
}

impl Pg {
    /// A new cluster archiving into `repo` (a local repository path), started.
    pub fn start(repo: Option<&str>) -> Pg {
        let dir = tempfile::Builder::new()
            .prefix("arca-test-pg-")
            .tempdir()
            .unwrap();
        let bin = bin_dir();
        let data = dir.path().join("data");
        give_to_server(dir.path());
        check(
            "initdb",
            as_server(&bin.join("initdb"))
                .args(["--auth=trust", "-U", "postgres", "--no-sync", "-D"])
                .arg(&data)
                .output()
                .unwrap(),
        );
        let port = free_port();
        let archive = match repo {
            Some(r) => format!(
                "archive_mode = on\narchive_command = '{} wal-push --repo {r} %p'\narchive_timeout = 0\n",
                arca_bin().display()
            ),
            None => String::new(),
        };
        let conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             wal_level = replica\nmax_wal_senders = 4\nfsync = off\nshared_buffers = 32MB\n\
             max_connections = 20\nlog_min_messages = warning\n\
             autovacuum = off\n{archive}",
            dir.path().display()
        );
        let conf_path = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).unwrap();
        text.push_str(&conf);
        std::fs::write(&conf_path, text).unwrap();
        let mut pg = Pg {
            data,
            port,
            bin,
            running: false,
            _dir: dir,
        };
        pg.start_again();
        pg
    }

    /// A cluster in an existing (restored) data directory, on a new port.
    pub fn adopt(data: PathBuf, port: u16) -> Pg {
        Pg {
            data,
            port,
            bin: bin_dir(),
            running: true,
            _dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn start_again(&mut self) {
        let log = self.data.parent().unwrap().join("server.log");
        let out = as_server(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "120", "start"])
            .output()
            .unwrap();
        if !out.status.success() {
            panic!(
                "pg_ctl start failed: {}{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        self.running = true;
    }

    pub fn stop(&mut self) {
        if self.running {
            let _ = as_server(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "stop"])
                .output();
            self.running = false;
        }
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs SQL with psql; returns its unaligned output.
    pub fn sql(&self, sql: &str) -> String {
        let out = self.try_sql(sql);
        check(&format!("psql {sql:?}"), out).trim().to_string()
    }

    pub fn try_sql(&self, sql: &str) -> Output {
        Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
            ])
            .args(["-p", &self.port.to_string(), "-d", "postgres", "-c", sql])
            .output()
            .unwrap()
    }

    /// Puts `lines` at the top of pg_hba.conf (the first match wins) and reloads.
    pub fn hba_first(&self, lines: &str) {
        let path = self.data.join("pg_hba.conf");
        let old = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{lines}\n{old}")).unwrap();
        assert_eq!(self.sql("SELECT pg_reload_conf()"), "t");
        // The postmaster reloads asynchronously.
        std::thread::sleep(Duration::from_millis(500));
    }

    /// Switches WAL and waits until the archiver has sent everything so far.
    pub fn archive_now(&self) {
        let seg = self.sql("SELECT pg_walfile_name(pg_current_wal_lsn())");
        self.sql("SELECT pg_switch_wal()");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let last = self.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
            if last.as_str() >= seg.as_str() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "archiver did not archive {seg} within 60 s (last: {last}; {})",
                self.sql("SELECT failed_count || ' failures, last ' || coalesce(last_failed_wal, '-') FROM pg_stat_archiver")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        self.stop();
    }
}
