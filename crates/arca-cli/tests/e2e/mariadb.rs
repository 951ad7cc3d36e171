//! A real MariaDB for the tests, from Debian's packages: one server per
//! test in a temp directory on a free loopback port, run as the `mysql`
//! user when the tests run as root, with the binary log on (ROW format,
//! GTIDs). A user `arca` with password [`PASSWORD`] may do everything over
//! TCP; root, without a password, over the socket. Shut down when the
//! handle drops. A test that needs MariaDB and cannot find it fails.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::postgres::free_port;

pub const PASSWORD: &str = "arca-test-pw";

pub struct Maria {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
    server_id: u32,
    extra: Vec<String>,
    _tmp: tempfile::TempDir,
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

fn chown_mysql(path: &Path) {
    if is_root() {
        let out = Command::new("chown")
            .args(["-R", "mysql:mysql"])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "no mysql user: install mariadb-server"
        );
    }
}

impl Maria {
    /// A new server with the binary log on, server id 1.
    pub fn start() -> Maria {
        Maria::start_with(1, &[])
    }

    /// A new server with `server_id` and more `mariadbd` options.
    pub fn start_with(server_id: u32, extra: &[&str]) -> Maria {
        let tmp = tempfile::Builder::new()
            .prefix("arca-test-maria-")
            .tempdir()
            .unwrap();
        let dir = tmp.path().to_path_buf();
        let data = dir.join("data");
        // A temp dir of its own: servers bootstrapping at once in the
        // shared /tmp sometimes lose each other's temporary tables.
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        chown_mysql(&dir);
        let mut install = Command::new("mariadb-install-db");
        install
            .args([
                "--no-defaults",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", dir.join("tmp").display()));
        if is_root() {
            install.arg("--user=mysql");
        }
        let out = install
            .output()
            .expect("mariadb-install-db is not installed: scripts/test.sh installs mariadb-server");
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut m = Maria {
            port: free_port(),
            dir,
            child: None,
            server_id,
            extra: extra.iter().map(|e| e.to_string()).collect(),
            _tmp: tmp,
        };
        m.launch(server_id, extra);
        m.root(&format!(
            "SET sql_log_bin = 0; CREATE USER arca@'%' IDENTIFIED BY '{PASSWORD}'; \
             GRANT ALL ON *.* TO arca@'%' WITH GRANT OPTION;"
        ));
        m
    }

    fn launch(&mut self, server_id: u32, extra: &[&str]) {
        let d = &self.dir;
        let mut c = Command::new("mariadbd");
        c.arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--tmpdir={}", d.join("tmp").display()))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--log-bin={}", d.join("binlog").display()))
            .arg(format!("--server-id={server_id}"))
            .args([
                "--binlog-format=ROW",
                "--innodb-buffer-pool-size=128M",
                "--innodb-log-file-size=96M",
                "--innodb-flush-log-at-trx-commit=2",
                "--skip-name-resolve",
                "--max-allowed-packet=64M",
            ])
            .arg(format!("--log-error={}", d.join("error.log").display()))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if is_root() {
            c.arg("--user=mysql");
        }
        self.child = Some(
            c.spawn()
                .expect("mariadbd is not installed: scripts/test.sh installs mariadb-server"),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = Command::new("mariadb-admin")
                .arg(format!("--socket={}", self.socket().display()))
                .args(["-uroot", "ping"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "mariadbd exited ({status}): {}",
                    std::fs::read_to_string(d.join("error.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "mariadbd did not answer within 60 s: {}",
                std::fs::read_to_string(d.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("sock")
    }

    /// `mysql://arca:PASSWORD@127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("mysql://arca:{PASSWORD}@127.0.0.1:{}", self.port)
    }

    /// The same without the password (it then comes from MYSQL_PWD or a file).
    pub fn url_without_password(&self) -> String {
        format!("mysql://arca@127.0.0.1:{}", self.port)
    }

    /// Runs SQL as root over the socket; returns the rows, tab-separated.
    pub fn root(&self, sql: &str) -> String {
        let out = self.try_root(sql);
        assert!(
            out.status.success(),
            "mariadb {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    pub fn try_root(&self, sql: &str) -> std::process::Output {
        Command::new("mariadb")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-uroot", "-N", "-B", "--max-allowed-packet=64M", "-e", sql])
            .output()
            .unwrap()
    }

    /// A connection for a test's own statements (several per batch).
    pub fn connect(&self) -> mysql::Conn {
        let opts = mysql::OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(self.port)
            .user(Some("arca"))
            .pass(Some(PASSWORD));
        mysql::Conn::new(opts).unwrap()
    }

    /// Makes this server a replica of `primary` (GTID, from the start of
    /// its binary log) and waits until it has caught up.
    pub fn replicate_from(&self, primary: &Maria) {
        self.root(&format!(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='arca', \
             MASTER_PASSWORD='{PASSWORD}', MASTER_USE_GTID=slave_pos; START SLAVE;",
            primary.port
        ));
        self.caught_up(primary);
    }

    /// Waits until this replica has applied everything `primary` has logged.
    pub fn caught_up(&self, primary: &Maria) {
        let pos = primary.root("SELECT @@gtid_binlog_pos");
        let r = self.root(&format!("SELECT MASTER_GTID_WAIT('{pos}', 60)"));
        assert_eq!(
            r,
            "0",
            "the replica did not reach {pos}: {}",
            self.root("SHOW SLAVE STATUS\\G")
        );
    }

    /// Kills the server at once (SIGKILL), as a power cut would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Shuts the server down cleanly and starts it again on its port.
    pub fn restart(&mut self) {
        self.stop();
        let extra = self.extra.clone();
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        self.launch(self.server_id, &extra);
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("mariadb-admin")
                .arg(format!("--socket={}", self.socket().display()))
                .args(["-uroot", "shutdown"])
                .output();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Maria {
    fn drop(&mut self) {
        self.stop();
    }
}
