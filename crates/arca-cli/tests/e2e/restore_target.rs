//! A restore writes only where it was told to: paths inside a backup stay
//! under the target, only a regular file (or a data directory) is replaced,
//! and no temporary file is left beside the target.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use arca_repo::{Id, Location, Manifest, Repository};

use super::common::*;

/// Writes a copy of `snap` under a new id, changed by `edit`, through the
/// repository's own API; returns the new id.
pub(super) fn forge(repo: &str, snap: &Manifest, edit: impl FnOnce(&mut Manifest)) -> String {
    let r = Repository::open(&Location::parse(repo).unwrap()).unwrap();
    let mut s = snap.clone();
    s.id = Id::random();
    edit(&mut s);
    r.write_manifest(&s).unwrap();
    s.id.to_hex()
}

pub(super) fn only_manifest(repo: &str) -> Manifest {
    Repository::open(&Location::parse(repo).unwrap())
        .unwrap()
        .find_manifest("latest")
        .unwrap()
}

/// `snap` made to look like a PostgreSQL backup whose directories are `dirs`.
fn as_postgres(s: &mut Manifest, dirs: &[&str]) {
    s.engine = "postgres".into();
    s.meta = serde_json::to_value(arca_ops::postgres::PgBackupMeta {
        system_identifier: "7000000000000000001".into(),
        timeline: 1,
        start_lsn: arca_engine::postgres::Lsn(0x0300_0028),
        stop_lsn: arca_engine::postgres::Lsn(0x0300_0100),
        stop_time: s.end_time,
        wal_segment_size: 16 << 20,
        server_version_num: 160000,
        dirs: dirs.iter().map(|d| d.to_string()).collect(),
        uid: 0,
        gid: 0,
    })
    .unwrap();
}

/// Every file under `dir` whose name holds `.arca-restore-`.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if e.file_name().to_string_lossy().contains(".arca-restore-") {
            out.push(p.clone());
        }
        if e.file_type().unwrap().is_dir() {
            out.extend(leftovers(&p));
        }
    }
    out
}

#[allow(unsafe_code)]
fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

fn is_fifo(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

#[test]
fn paths_outside_the_target_are_refused_and_checked() {
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 1, "DELETE");
    let repo = env.init_local("repo");
    env.backup(&repo, &db);
    let good = only_manifest(&repo);
    let abs = env.path("abs.db");
    let escapes = [
        ("../escape.db".to_string(), env.path("escape.db")),
        (abs.to_string_lossy().into_owned(), abs.clone()),
    ];
    let target = env.path("target");
    std::fs::create_dir(&target).unwrap();
    for (path, outside) in &escapes {
        let id = forge(&repo, &good, |s| s.files[0].path = path.clone());
        // Into a directory, and to a file named in full: both refused.
        for to in [target.clone(), target.join("named.db")] {
            let (out, _) = fails(&[
                "restore",
                &id,
                "--repo",
                &repo,
                "--to",
                &to.to_string_lossy(),
                "--force",
            ]);
            let line = error_line(&out);
            assert!(
                line.contains(&format!("backup {} names file {path:?}", &id[..8])),
                "{line}"
            );
            assert!(!outside.exists(), "nothing written outside the target");
            assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
        }
        let out = arca().args(["check", "--repo", &repo]).output().unwrap();
        assert!(!out.status.success());
        let t = text(&out);
        assert!(
            t.contains(&format!("backup {} names file {path:?}", &id[..8])),
            "{t}"
        );
        std::fs::remove_file(Path::new(&repo).join("snapshots").join(&id)).unwrap();
    }

    // A PostgreSQL restore checks its files and its directories.
    let pg_target = env.path("pgdata");
    for (files, dirs) in [
        ("../escape.db", vec!["base"]),
        ("base/1", vec!["base", "../escape"]),
    ] {
        let id = forge(&repo, &good, |s| {
            s.files[0].path = files.into();
            as_postgres(s, &dirs);
        });
        let (out, _) = fails(&[
            "restore",
            &id,
            "--repo",
            &repo,
            "--to",
            &pg_target.to_string_lossy(),
        ]);
        let line = error_line(&out);
        assert!(line.contains("names file \"../escape"), "{line}");
        assert!(!env.path("escape").exists() && !env.path("escape.db").exists());
        assert!(!pg_target.exists());
        std::fs::remove_file(Path::new(&repo).join("snapshots").join(&id)).unwrap();
    }
    assert!(leftovers(env.dir.path()).is_empty());
    ok(&["check", "--repo", &repo, "--read-data"]);
}

#[test]
fn only_a_regular_file_or_a_directory_is_replaced() {
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 1, "DELETE");
    let repo = env.init_local("repo");
    env.backup(&repo, &db);
    let fifo = env.path("fifo");
    mkfifo(&fifo);
    let link = env.path("link");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    let dir = env.path("dir");
    std::fs::create_dir(&dir).unwrap();
    std::fs::create_dir(dir.join("app.db")).unwrap();
    for (to, what) in [
        (&fifo, "a FIFO"),
        (&link, "a symbolic link"),
        (&dir, "a directory"),
    ] {
        for force in [true, false] {
            let mut args = vec!["restore", "--repo", &repo];
            let to_s = to.to_string_lossy();
            args.extend(["--to", &to_s]);
            if force {
                args.push("--force");
            }
            let (out, _) = fails(&args);
            let line = error_line(&out);
            let named = if to == &dir {
                dir.join("app.db")
            } else {
                to.clone()
            };
            assert_eq!(
                line,
                format!(
                    "error: cannot restore to {}: it is {what}, not a regular file; choose a file path",
                    named.display()
                )
            );
        }
    }
    assert!(is_fifo(&fifo) && dir.join("app.db").is_dir());
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    // A stale -wal beside the target that is not a regular file stays too.
    let target = env.path("t.db");
    let wal = env.path("t.db-wal");
    mkfifo(&wal);
    let (out, _) = fails(&[
        "restore",
        "--repo",
        &repo,
        "--to",
        &target.to_string_lossy(),
        "--force",
    ]);
    assert!(error_line(&out).contains("t.db-wal: it is a FIFO"));
    assert!(is_fifo(&wal) && !target.exists());

    // A PostgreSQL data directory: only a directory.
    let good = only_manifest(&repo);
    let id = forge(&repo, &good, |s| as_postgres(s, &["base"]));
    let (out, _) = fails(&[
        "restore",
        &id,
        "--repo",
        &repo,
        "--to",
        &fifo.to_string_lossy(),
        "--force",
    ]);
    assert_eq!(
        error_line(&out),
        format!(
            "error: cannot restore to {}: it is a FIFO, not a directory; choose a directory path",
            fifo.display()
        )
    );
    assert!(is_fifo(&fifo));
    assert!(leftovers(env.dir.path()).is_empty());
}

#[allow(unsafe_code)]
fn signal(child: &std::process::Child, sig: i32) {
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

/// Starts `arca restore` of `repo`'s only backup to `to` and stops it
/// (SIGSTOP) once its temporary file beside `to` holds data.
fn start_restore(repo: &str, to: &Path) -> (std::process::Child, PathBuf) {
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("arca"))
        .args(["restore", "--repo", repo, "--to"])
        .arg(to)
        .args(["--force", "--parallelism", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tmp = to.with_file_name(format!(
        ".{}.arca-restore-{}",
        to.file_name().unwrap().to_string_lossy(),
        child.id()
    ));
    let t = Instant::now();
    while std::fs::metadata(&tmp).map_or(0, |m| m.len()) == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no temp file appeared"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    signal(&child, libc::SIGSTOP);
    assert!(tmp.exists(), "stopped midway");
    (child, tmp)
}

#[test]
fn killed_or_failed_restores_leave_no_temporary_file() {
    let env = Env::new();
    let db = env.path("big.db");
    make_db(&db, 64, "DELETE");
    let repo = env.init_local("repo");
    env.backup(&repo, &db);
    let to = env.path("out.db");

    // SIGKILL: the file stays until the next restore to the target.
    let (mut child, tmp) = start_restore(&repo, &to);
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(tmp.exists(), "a killed restore cannot clean up itself");
    // A live process's file is left alone (this test's own pid).
    let live = env.path(&format!(".out.db.arca-restore-{}", std::process::id()));
    std::fs::write(&live, b"in use").unwrap();
    restore(&repo, "latest", &to);
    assert!(same_file(&db, &to));
    assert_eq!(leftovers(env.dir.path()), vec![live.clone()]);
    std::fs::remove_file(&live).unwrap();

    // SIGTERM and SIGINT: removed before the process exits.
    std::fs::remove_file(&to).unwrap();
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let (child, tmp) = start_restore(&repo, &to);
        signal(&child, sig);
        signal(&child, libc::SIGCONT);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(130), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim(),
            "error: restore interrupted: its partial files were removed"
        );
        assert!(!tmp.exists() && !to.exists());
        assert!(leftovers(env.dir.path()).is_empty());
    }

    // A damaged pack: the restore fails and leaves nothing.
    for p in packs(&repo) {
        let mut bytes = std::fs::read(&p).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&p, bytes).unwrap();
    }
    let (out, _) = fails(&[
        "restore",
        "--repo",
        &repo,
        "--to",
        &to.to_string_lossy(),
        "--force",
    ]);
    error_line(&out);
    assert!(!to.exists());
    assert!(leftovers(env.dir.path()).is_empty());
}
