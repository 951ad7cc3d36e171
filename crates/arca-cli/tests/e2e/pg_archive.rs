//! PostgreSQL: what the WAL archive accepts, and what a restored copy may
//! write into the repository it came from.

use super::common::{error_line, Env};
use super::postgres::{arca, ok, server_repo, Pg};

/// A push of a truncated segment is refused (it would block the whole one
/// for good); a truncated copy an older arca stored is replaced by the whole
/// segment; a real conflict is still refused; history files still go in.
#[test]
fn a_truncated_segment_is_refused_and_a_stored_one_is_replaced() {
    let env = Env::new();
    let repo = server_repo(&env);
    let pg = Pg::start(None);
    pg.sql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g");
    let name = pg.sql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    pg.sql("SELECT pg_switch_wal()");
    let cluster = pg.sql("SELECT system_identifier FROM pg_control_system()");
    let whole = std::fs::read(pg.data.join("pg_wal").join(&name)).unwrap();
    assert_eq!(whole.len(), 16 << 20);
    let pgdata = pg.data.to_str().unwrap();
    let push = |dir: &str, bytes: &[u8]| {
        let d = env.path(dir);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(&name), bytes).unwrap();
        arca()
            .args(["wal-push", "--repo", &repo, "--pgdata", pgdata])
            .arg(d.join(&name))
            .output()
            .unwrap()
    };
    let fetch = || {
        let dest = env.path("fetched");
        let _ = std::fs::remove_file(&dest);
        let out = arca()
            .args(["wal-fetch", "--repo", &repo, "--cluster", &cluster, &name])
            .arg(&dest)
            .output()
            .unwrap();
        (out, std::fs::read(&dest).ok())
    };

    let out = push("short", &whole[..1 << 20]);
    let line = error_line(&out);
    assert!(line.contains("1048576 bytes"), "{line}");
    assert!(line.contains("16777216"), "{line}");
    assert!(line.contains("truncated"), "{line}");
    let (out, got) = fetch();
    assert_eq!(out.status.code(), Some(1), "nothing archived: {out:?}");
    assert!(got.is_none());

    // What an older arca stored from the same push: recovery is refused it
    // clearly, and the whole segment replaces it.
    let r = arca_repo::Repository::open(&arca_repo::Location::parse(&repo).unwrap()).unwrap();
    let stream = format!("postgres/{cluster}");
    r.put_log(&stream, &name, &whole[..1 << 20], false).unwrap();
    let (out, got) = fetch();
    assert_eq!(out.status.code(), Some(126), "{out:?}");
    assert!(got.is_none());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("truncated") && err.contains("wal-push"),
        "{err}"
    );
    let out = push("whole", &whole);
    assert!(out.status.success(), "{out:?}");
    let (out, got) = fetch();
    assert!(out.status.success(), "{out:?}");
    assert!(
        got.unwrap() == whole,
        "wal-fetch hands back the whole segment"
    );

    // A whole segment with other content is a conflict, as before.
    let mut other = whole.clone();
    *other.last_mut().unwrap() ^= 1;
    let line = error_line(&push("other", &other));
    assert!(line.contains("different content"), "{line}");
    let (_, got) = fetch();
    assert!(got.unwrap() == whole);

    // Not segments: taken whatever their length.
    let history = env.path("hist/00000002.history");
    std::fs::create_dir_all(history.parent().unwrap()).unwrap();
    std::fs::write(&history, "1\t0/5000000\tno recovery target specified\n").unwrap();
    ok(&[
        "wal-push",
        "--repo",
        &repo,
        "--pgdata",
        pgdata,
        history.to_str().unwrap(),
    ]);
    let partial = env.path("part").join(format!("{name}.partial"));
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::fs::write(&partial, &whole[..1 << 20]).unwrap();
    ok(&[
        "wal-push",
        "--repo",
        &repo,
        "--pgdata",
        pgdata,
        partial.to_str().unwrap(),
    ]);
}
