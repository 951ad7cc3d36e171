//! A PostgreSQL restore drill: the base backup restored into
//! `scratch/pgdata` with the WAL from its start to its end in `pg_wal`,
//! started on a free loopback port (crash recovery from `backup_label` to
//! the backup's end), checked with `pg_amcheck --all --heapallindexed`,
//! then stopped and removed.
//!
//! The copy recovers from `pg_wal` without `recovery.signal`, as a
//! `pg_basebackup -X fetch` copy does: it needs no `restore_command`, so
//! no arca binary the server's user can run, and it stays on the backup's
//! timeline with archiving off, so it writes nothing into the repository.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arca_engine::postgres::{PgSource, Segment};
use arca_repo::{Error as RepoError, Manifest, Progress, Repository};

use super::commands::restore_command;
use super::restore::{restore_postgres, PgRestoreOptions, PgTarget};
use super::start::{start, stop};
use super::wal::{clear_spool, take_spooled, wal_fetch, Fetched};
use super::PgBackupMeta;
use crate::drill::{check_cancel, count, seconds, DrillOptions, Drilled, Scratch};
use crate::target::{find_program, free_port, running_as_root};
use crate::{Error, Result};

pub fn drill(
    repo: &Repository,
    m: &Manifest,
    opts: &DrillOptions,
    scratch: &Scratch,
    progress: &dyn Progress,
) -> Result<Drilled> {
    let meta = PgBackupMeta::of(m).ok_or_else(|| {
        Error::Unsupported(format!(
            "{} is not a PostgreSQL physical backup, the kind a drill restores",
            m.id.short()
        ))
    })?;
    let login = Login::of(opts)?;
    // The server runs as the data directory's owner (never root): the
    // drill's directory is given to it, and it must reach it.
    let owner = (running_as_root() && meta.uid != 0).then_some((meta.uid, meta.gid));
    if let Some((uid, gid)) = owner {
        if let Some(parent) = scratch.dir.parent() {
            reachable(parent, uid, gid)?;
        }
        std::os::unix::fs::chown(&scratch.dir, Some(uid), Some(gid))
            .map_err(|e| RepoError::io(&scratch.dir, e))?;
    }
    let pgdata = scratch.dir.join("pgdata");
    let port = free_port()?;

    let t = Instant::now();
    let restored = restore_postgres(
        repo,
        m,
        &meta,
        None,
        &PgRestoreOptions {
            to: pgdata.clone(),
            force: false,
            parallelism: opts.parallelism.max(1),
            // Only the WAL up to the backup's end is checked and fetched.
            target: PgTarget::Lsn(meta.stop_lsn),
            // Not run: the copy recovers without recovery.signal.
            restore_command: restore_command(repo, &[], &meta.system_identifier, false),
            port: Some(port),
            archive_off: true,
            timeline: None,
            pause_at_target: false,
        },
        progress,
    )?;
    check_cancel(repo)?;
    let segments = place_wal(repo, &meta, &pgdata, owner)?;
    configure(&pgdata, &meta, owner)?;
    check_cancel(repo)?;
    let mut server = Running {
        dir: &pgdata,
        version: meta.server_version_num,
        up: true,
    };
    start(&pgdata, meta.server_version_num, port, &login.user)?;
    let restore_seconds = seconds(t);
    check_cancel(repo)?;

    let t = Instant::now();
    let mut checks = vec![format!(
        "recovery: {} replayed to the backup's end ({}); PostgreSQL {} started on 127.0.0.1:{port}",
        count(segments, "WAL segment"),
        meta.stop_lsn,
        version_text(meta.server_version_num)
    )];
    let mut client = login.connect(port, "postgres")?;
    let in_recovery: bool = client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .map_err(|e| server_error(port, "asking whether recovery is over", e))?
        .get(0);
    if in_recovery {
        return Err(Error::Unsupported(
            "the restored cluster is still in recovery after it started".into(),
        ));
    }
    let databases: Vec<String> = client
        .query(
            "SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname",
            &[],
        )
        .map_err(|e| server_error(port, "listing databases", e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let checksums: String = client
        .query_one("SHOW data_checksums", &[])
        .map_err(|e| server_error(port, "reading data_checksums", e))?
        .get(0);
    drop(client);
    let amcheck = find_amcheck(meta.server_version_num);
    match &amcheck {
        Some(bin) => {
            let a = run_amcheck(repo, bin, port, &login, opts.parallelism.max(1))?;
            checks.push(format!(
                "pg_amcheck --all --heapallindexed: {} ({}, {}) in {}, no corruption",
                count(a.tables + a.indexes, "relation"),
                count(a.tables, "table"),
                count(a.indexes, "index"),
                count(a.databases, "database")
            ));
        }
        None => checks.push(format!(
            "pg_amcheck: not found for PostgreSQL {} (it comes with 14 and later); every table read instead",
            version_text(meta.server_version_num)
        )),
    }
    checks.push(format!("data_checksums: {checksums}"));
    for db in &databases {
        check_cancel(repo)?;
        checks.push(tables_of(&login, port, db, amcheck.is_none())?);
    }
    let verify_seconds = seconds(t);

    server.stop()?;
    Ok(Drilled {
        restored_bytes: restored.bytes,
        checks,
        restore_seconds,
        verify_seconds,
    })
}

/// Who the drill connects to the restored cluster as: the source's user,
/// with the source's password (the URL's, the password file's, or
/// libpq's environment and ~/.pgpass).
struct Login {
    user: String,
    password: Option<String>,
}

impl Login {
    fn of(opts: &DrillOptions) -> Result<Login> {
        let src = PgSource::parse(&opts.source, None)?;
        let mut password = src
            .config()
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        if password.is_none() {
            if let Some(path) = &opts.password_file {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Error::Unsupported(format!(
                        "the password file {} cannot be read ({e})",
                        path.display()
                    ))
                })?;
                password = Some(text.lines().next().unwrap_or("").to_string());
            }
        }
        Ok(Login {
            user: src.user().to_string(),
            password,
        })
    }

    fn connect(&self, port: u16, db: &str) -> Result<postgres::Client> {
        let mut config = postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(port)
            .user(&self.user)
            .dbname(db)
            .application_name("arca drill")
            .connect_timeout(Duration::from_secs(10));
        if let Some(pw) = &self.password {
            config.password(pw);
        }
        config
            .connect(postgres::NoTls)
            .map_err(|e| server_error(port, &format!("connecting to database {db}"), e))
    }
}

fn server_error(port: u16, what: &str, e: postgres::Error) -> Error {
    let reason = match e.as_db_error() {
        Some(d) => d.message().to_string(),
        None => e.to_string(),
    };
    Error::Unsupported(format!(
        "the restored cluster on 127.0.0.1:{port}: {what}: {reason}"
    ))
}

/// Stops the drill's server when dropped (immediately: on an error or a
/// cancellation nothing of it is kept).
struct Running<'a> {
    dir: &'a Path,
    version: u32,
    up: bool,
}

impl Running<'_> {
    /// Stops it cleanly, saying whether that worked.
    fn stop(&mut self) -> Result<()> {
        self.up = false;
        stop(self.dir, self.version, "fast").or_else(|e| {
            stop(self.dir, self.version, "immediate").map_err(|_| e)?;
            Ok(())
        })
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        // A start that failed half way may have left it running.
        if self.up && self.dir.join("postmaster.pid").exists() {
            if let Err(e) = stop(self.dir, self.version, "immediate") {
                tracing::warn!(
                    "the drill's PostgreSQL in {} could not be stopped ({e}): stop it with pg_ctl -D {} stop",
                    self.dir.display(),
                    self.dir.display()
                );
            }
        }
    }
}

/// Puts the WAL from the backup's start to its end into `pg_wal` (from the
/// restore's spool, the rest from the repository); returns how many
/// segments.
fn place_wal(
    repo: &Repository,
    meta: &PgBackupMeta,
    pgdata: &Path,
    owner: Option<(u32, u32)>,
) -> Result<usize> {
    let seg = meta.wal_segment_size;
    let first = Segment::of(meta.timeline, meta.start_lsn, seg);
    let last = Segment::of(meta.timeline, meta.stop_lsn, seg);
    let wal = pgdata.join("pg_wal");
    if !wal.is_dir() {
        std::fs::create_dir(&wal).map_err(|e| RepoError::io(&wal, e))?;
        give(&wal, owner)?;
    }
    let cluster = &meta.system_identifier;
    if meta.timeline > 1 {
        let history = format!("{:08X}.history", meta.timeline);
        let dest = wal.join(&history);
        if let Fetched::Found = wal_fetch(repo, cluster, &history, &dest)? {
            give(&dest, owner)?;
        }
    }
    let mut n = 0;
    for s in first.through(last) {
        check_cancel(repo)?;
        let name = s.name(seg);
        let dest = wal.join(&name);
        if !take_spooled(pgdata, &name, &dest)? {
            match wal_fetch(repo, cluster, &name, &dest)? {
                Fetched::Found => {}
                Fetched::Missing | Fetched::Gap(_) => {
                    return Err(Error::Unsupported(format!(
                        "WAL segment {name}, which the backup needs to become consistent, is missing from {}",
                        repo.location()
                    )))
                }
            }
        }
        give(&dest, owner)?;
        n += 1;
    }
    clear_spool(pgdata);
    Ok(n)
}

/// Settings that make the restored copy a scratch instance: crash recovery
/// from `pg_wal` (no recovery.signal), loopback only, no Unix socket, no
/// archiving, no waiting for a synchronous standby, a log of its own, and
/// little memory beside the server it may share the host with.
fn configure(pgdata: &Path, meta: &PgBackupMeta, owner: Option<(u32, u32)>) -> Result<()> {
    let signal = pgdata.join("recovery.signal");
    match std::fs::remove_file(&signal) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(RepoError::io(&signal, e).into())
        }
        _ => {}
    }
    // A cluster whose configuration lives elsewhere (Debian's /etc) has
    // none in its data directory: the server needs the files to start.
    for (name, text) in [
        ("postgresql.conf", ""),
        ("pg_hba.conf", "host all all 127.0.0.1/32 md5\n"),
        ("pg_ident.conf", ""),
    ] {
        let p = pgdata.join(name);
        if !p.exists() {
            std::fs::write(&p, text).map_err(|e| RepoError::io(&p, e))?;
            give(&p, owner)?;
        }
    }
    let mut conf = String::from(
        "\n# Added by arca drill: a scratch copy, removed when the drill ends\n\
         listen_addresses = '127.0.0.1'\n\
         unix_socket_directories = ''\n\
         archive_mode = off\n\
         synchronous_standby_names = ''\n\
         logging_collector = off\n\
         shared_buffers = '128MB'\n\
         huge_pages = 'try'\n",
    );
    if meta.server_version_num < 150000 {
        conf.push_str("stats_temp_directory = 'pg_stat_tmp'\n");
    }
    let auto = pgdata.join("postgresql.auto.conf");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&auto)
        .map_err(|e| RepoError::io(&auto, e))?;
    std::io::Write::write_all(&mut f, conf.as_bytes()).map_err(|e| RepoError::io(&auto, e))?;
    give(&auto, owner)?;
    Ok(())
}

/// Gives a file the drill made to the server's user.
fn give(path: &Path, owner: Option<(u32, u32)>) -> Result<()> {
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| RepoError::io(path, e))?;
    }
    Ok(())
}

/// Refuses a scratch directory the server's user cannot enter (a
/// directory of mode 0700 on the way to it), before anything is restored.
fn reachable(dir: &Path, uid: u32, gid: u32) -> Result<()> {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    for d in dir.ancestors() {
        let m = std::fs::metadata(d).map_err(|e| RepoError::io(d, e))?;
        let mode = m.mode();
        let bit = if m.uid() == uid {
            0o100
        } else if m.gid() == gid {
            0o010
        } else {
            0o001
        };
        if mode & bit == 0 {
            return Err(Error::Unsupported(format!(
                "the restored PostgreSQL runs as its data directory's owner (uid {uid}), who cannot enter {} (mode {:04o}): give the drill a scratch directory that user can reach (every directory on the way searchable by it, e.g. mode 0755)",
                d.display(),
                mode & 0o7777
            )));
        }
    }
    Ok(())
}

fn version_text(num: u32) -> String {
    if num >= 100000 {
        format!("{}.{}", num / 10000, num % 10000)
    } else {
        format!("{}.{}.{}", num / 10000, num / 100 % 100, num % 100)
    }
}

/// `pg_amcheck` of the cluster's version (14 on), from Debian's place or
/// PATH.
fn find_amcheck(version_num: u32) -> Option<PathBuf> {
    let major = version_num / 10000;
    if major < 14 {
        return None;
    }
    let debian = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
    find_program("pg_amcheck", &[&debian], &[])
}

struct Amchecked {
    databases: usize,
    tables: usize,
    indexes: usize,
}

/// Runs `pg_amcheck` on every database; stopped (killed) when the drill is
/// cancelled.
fn run_amcheck(
    repo: &Repository,
    bin: &Path,
    port: u16,
    login: &Login,
    jobs: usize,
) -> Result<Amchecked> {
    let mut cmd = Command::new(bin);
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-U",
        &login.user,
    ])
    .args([
        "--no-password",
        "--all",
        "--install-missing",
        "--heapallindexed",
        "--verbose",
    ])
    .arg(format!("--jobs={jobs}"))
    .env("PGCONNECT_TIMEOUT", "10")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    // The password through the environment, never the command line.
    match &login.password {
        Some(pw) => cmd.env("PGPASSWORD", pw),
        None => cmd.env_remove("PGPASSWORD"),
    };
    let mut child = cmd.spawn().map_err(|e| RepoError::io(bin, e))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let (out, err, status) = std::thread::scope(|s| {
        let out = s.spawn(move || {
            let mut b = String::new();
            let _ = std::io::Read::read_to_string(&mut stdout, &mut b);
            b
        });
        let err = s.spawn(move || {
            let mut b = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut b);
            b
        });
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) => {}
                Err(e) => break Err(e),
            }
            if repo.cancel.sleep(Duration::from_millis(100)) {
                let _ = child.kill();
                let _ = child.wait();
                break Err(std::io::Error::other("cancelled"));
            }
        };
        (
            out.join().unwrap_or_default(),
            err.join().unwrap_or_default(),
            status,
        )
    });
    check_cancel(repo)?;
    let status = status.map_err(|e| RepoError::io(bin, e))?;
    let count = |what: &str| err.lines().filter(|l| l.contains(what)).count();
    let checked = Amchecked {
        databases: count(": including database "),
        tables: count(": checking heap table "),
        indexes: count(": checking btree index "),
    };
    if status.success() {
        return Ok(checked);
    }
    let first = |text: &str| -> String {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| {
                !l.trim().is_empty()
                    && !l.contains(": checking ")
                    && !l.contains(": including database ")
                    && !l.contains(": using amcheck version ")
                    && !l.starts_with("NOTICE:")
            })
            .take(5)
            .collect();
        lines.join("; ")
    };
    Err(Error::Unsupported(if out.trim().is_empty() {
        format!("pg_amcheck failed ({status}): {}", first(&err))
    } else {
        format!("pg_amcheck found corruption: {}", first(&out))
    }))
}

/// A database's tables, for the report; without pg_amcheck, every one of
/// them is read to its end (`count(*)`), which reads every heap page.
fn tables_of(login: &Login, port: u16, db: &str, read: bool) -> Result<String> {
    let mut c = login.connect(port, db)?;
    let tables: Vec<String> = c
        .query(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'm') AND c.relpersistence = 'p' \
             AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1",
            &[],
        )
        .map_err(|e| server_error(port, &format!("listing the tables of {db}"), e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !read {
        return Ok(format!("database {db}: {}", count(tables.len(), "table")));
    }
    let mut rows = 0i64;
    for t in &tables {
        let n: i64 = c
            .query_one(&format!("SELECT count(*) FROM ONLY {t}"), &[])
            .map_err(|e| server_error(port, &format!("reading {db}.{t}"), e))?
            .get(0);
        rows += n;
    }
    Ok(format!(
        "database {db}: {} read to their end, {rows} rows",
        count(tables.len(), "table")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_as_people_write_them() {
        assert_eq!(version_text(150004), "15.4");
        assert_eq!(version_text(90624), "9.6.24");
    }

    #[test]
    fn a_directory_closed_to_the_server_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let closed = d.path().join("closed");
        std::fs::create_dir(&closed).unwrap();
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        // Neither its owner nor in its group.
        let m = std::fs::metadata(&closed).unwrap();
        let e = reachable(&closed, m.uid() + 4242, m.gid() + 4242).unwrap_err();
        assert!(e.to_string().contains("mode 0700"), "{e}");
        // Its owner enters (every directory above it is searchable).
        reachable(&closed, m.uid(), m.gid()).unwrap();
    }
}
