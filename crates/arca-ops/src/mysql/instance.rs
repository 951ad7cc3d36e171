//! A new server to restore into (`restore --to-instance DIR`): TDSQL's
//! rollback into a temporary instance, leaving the source untouched.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arca_engine::mysql::{MysqlSource, Session};

use crate::target::running_as_root;

use crate::{Error, Result};

/// A server this restore started.
pub struct Instance {
    pub dir: PathBuf,
    pub port: u16,
    pub socket: PathBuf,
    /// The file holding root's password (once it is set).
    password_file: Option<PathBuf>,
}

impl Instance {
    /// The server as a restore target: root over its socket.
    pub fn target(&self) -> Result<MysqlSource> {
        Ok(MysqlSource::parse(
            &format!("mysql://root@/?socket={}", self.socket.display()),
            self.password_file.as_deref(),
        )?)
    }

    /// Gives every root account a random password, kept in a file only
    /// the caller can read: the copy of production data is not open to
    /// every local user.
    fn lock_root(&mut self) -> Result<()> {
        let mut bytes = [0u8; 18];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
            .map_err(|e| arca_repo::Error::io(Path::new("/dev/urandom"), e))?;
        let password: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let file = self.dir.join("root-password");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&file)
                .map_err(|e| arca_repo::Error::io(&file, e))?;
            writeln!(f, "{password}").map_err(|e| arca_repo::Error::io(&file, e))?;
        }
        let mut s = Session::open(&self.target()?)?;
        for row in s.texts("SELECT Host FROM mysql.user WHERE User = 'root'")? {
            let host = row.into_iter().next().flatten().unwrap_or_default();
            s.exec(&format!(
                "ALTER USER 'root'@{} IDENTIFIED BY '{password}'",
                arca_engine::mysql::literal(&host)
            ))?;
        }
        self.password_file = Some(file);
        Ok(())
    }

    /// How to reach and stop it, for a person.
    pub fn lines(&self) -> Vec<String> {
        let s = self.socket.display();
        let pw = self.password_file.as_ref().map_or(String::new(), |f| {
            format!("MYSQL_PWD=\"$(cat {})\" ", f.display())
        });
        vec![
            format!(
                "started MariaDB in {} on 127.0.0.1:{}; it keeps running; root's password is in {}/root-password",
                self.dir.display(),
                self.port,
                self.dir.display()
            ),
            format!(
                "connect: {pw}mariadb --socket={s} -uroot   (or -h 127.0.0.1 -P {} -uroot)",
                self.port
            ),
            format!("stop:    {pw}mariadb-admin --socket={s} -uroot shutdown"),
        ]
    }

    /// Stops it (a restore into it failed).
    pub fn stop(&self) {
        let mut cmd =
            Command::new(find("mariadb-admin").unwrap_or_else(|_| "mariadb-admin".into()));
        cmd.arg(format!("--socket={}", self.socket.display()));
        if let Some(pw) = self
            .password_file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
        {
            // Through the environment, not the command line `ps` shows.
            cmd.env("MYSQL_PWD", pw.trim());
        }
        let _ = cmd
            .args(["-uroot", "shutdown"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn find(name: &str) -> Result<PathBuf> {
    let then = [
        Path::new("/usr/sbin"),
        Path::new("/usr/bin"),
        Path::new("/usr/local/mysql/bin"),
    ];
    crate::target::find_program(name, &[], &then).ok_or_else(|| {
            Error::Unsupported(format!(
                "{name} not found (PATH, /usr/sbin): --to-instance needs MariaDB's server on this host (Debian: apt-get install mariadb-server)"
            ))
        })
}

/// Initialises a server in `dir` (which must not exist, or be empty) and
/// starts it on loopback at `port`, with `lower_case` as its
/// lower_case_table_names (the backup's server's).
pub fn create(dir: &Path, port: u16, lower_case: u32) -> Result<Instance> {
    let install = find("mariadb-install-db")?;
    let server = find("mariadbd")?;
    let empty = std::fs::read_dir(dir).map(|mut d| d.next().is_none());
    match empty {
        Ok(false) => {
            return Err(Error::Unsupported(format!(
            "{} is not empty: --to-instance initialises a new server in a new (or empty) directory",
            dir.display()
        )))
        }
        Ok(true) => {}
        Err(_) => std::fs::create_dir_all(dir).map_err(|e| arca_repo::Error::io(dir, e))?,
    }
    let dir = std::path::absolute(dir).map_err(|e| arca_repo::Error::io(dir, e))?;
    let socket = dir.join("mysqld.sock");
    if socket.as_os_str().len() > 100 {
        return Err(Error::Unsupported(format!(
            "{} is too long a path for the server's socket (at most about 100 bytes): choose a shorter directory",
            socket.display()
        )));
    }
    if running_as_root() {
        // The server refuses to run as root: it runs as mysql.
        let out = Command::new("chown")
            .args(["-R", "mysql:mysql"])
            .arg(&dir)
            .output()
            .map_err(|e| arca_repo::Error::io(&dir, e))?;
        if !out.status.success() {
            return Err(Error::Unsupported(format!(
                "cannot give {} to the mysql user: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    let data = dir.join("data");
    // Its own temporary directory: servers bootstrapping side by side in
    // a shared /tmp trip over each other's temporary tables.
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| arca_repo::Error::io(&tmp, e))?;
    if running_as_root() {
        let _ = Command::new("chown")
            .args(["mysql:mysql"])
            .arg(&tmp)
            .output();
    }
    let mut cmd = Command::new(&install);
    cmd.args([
        "--no-defaults",
        "--auth-root-authentication-method=normal",
        "--skip-test-db",
    ])
    .arg(format!("--datadir={}", data.display()))
    .arg(format!("--tmpdir={}", tmp.display()));
    if running_as_root() {
        cmd.arg("--user=mysql");
    }
    let out = cmd
        .output()
        .map_err(|e| arca_repo::Error::io(&install, e))?;
    if !out.status.success() {
        return Err(Error::Unsupported(format!(
            "mariadb-install-db could not initialise {}: {}",
            data.display(),
            last_lines(&String::from_utf8_lossy(&out.stderr))
        )));
    }
    let log = dir.join("error.log");
    let mut cmd = Command::new(&server);
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", socket.display()))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--pid-file={}", dir.join("mariadbd.pid").display()))
        .arg(format!("--log-error={}", log.display()))
        .arg(format!("--lower-case-table-names={lower_case}"))
        .arg(format!("--tmpdir={}", tmp.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C to arca does not stop it.
        .process_group(0);
    if running_as_root() {
        cmd.arg("--user=mysql");
    }
    let mut child = cmd.spawn().map_err(|e| arca_repo::Error::io(&server, e))?;
    let mut instance = Instance {
        dir,
        port,
        socket,
        password_file: None,
    };
    let target = instance.target()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if Session::open(&target).is_ok() {
            if let Err(e) = instance.lock_root() {
                instance.stop();
                return Err(e);
            }
            return Ok(instance);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::Unsupported(format!(
                "the new server in {} exited ({status}): {}",
                instance.dir.display(),
                last_lines(&std::fs::read_to_string(&log).unwrap_or_default())
            )));
        }
        if Instant::now() > deadline {
            instance.stop();
            return Err(Error::Unsupported(format!(
                "the new server in {} did not accept connections within 120 s: {}",
                instance.dir.display(),
                last_lines(&std::fs::read_to_string(&log).unwrap_or_default())
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().rev().take(3).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" / ")
}
