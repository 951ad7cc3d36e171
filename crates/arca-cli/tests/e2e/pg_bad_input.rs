//! PostgreSQL backups given bad input or an unfit server: one clear line,
//! a non-zero exit, no password shown, and no backup recorded.
use super::common::{error_line, Env};
use super::postgres::{arca, ok, server_repo, Pg};

pub(super) fn backups(repo: &str) -> usize {
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["list", "--repo", repo, "--json"])).unwrap();
    v.as_array().unwrap().len()
}

#[test]
fn passwords_come_from_pgpassword_or_pgpass_and_never_show() {
    let env = Env::new();
    let repo = server_repo(&env);
    let pg = Pg::start(Some(&repo));
    pg.sql("CREATE ROLE backup LOGIN SUPERUSER PASSWORD 'right-secret-7'");
    pg.hba_first("host all backup 127.0.0.1/32 scram-sha-256");
    let url = |auth: &str| format!("postgres://{auth}@127.0.0.1:{}/postgres", pg.port);

    let out = arca()
        .args([
            "backup",
            "--repo",
            &repo,
            "--source",
            &url("backup:wrong-secret-9"),
        ])
        .env_remove("PGPASSWORD")
        .output()
        .unwrap();
    let line = error_line(&out);
    assert!(line.contains("password authentication failed"), "{line}");
    assert!(!format!("{out:?}").contains("wrong-secret-9"), "{line}");

    let out = arca()
        .args(["backup", "--repo", &repo, "--source", &url("backup")])
        .env("PGPASSWORD", "right-secret-7")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!format!("{out:?}").contains("right-secret-7"));

    let pgpass = env.path("pgpass");
    std::fs::write(
        &pgpass,
        format!("127.0.0.1:{}:*:backup:right-secret-7\n", pg.port),
    )
    .unwrap();
    let out = arca()
        .args(["backup", "--repo", &repo, "--source", &url("backup")])
        .env_remove("PGPASSWORD")
        .env("PGPASSFILE", &pgpass)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(backups(&repo), 2);
}

#[test]
fn a_server_that_is_down_or_does_not_archive_is_refused() {
    let env = Env::new();
    let repo = server_repo(&env);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = arca()
        .args(["backup", "--repo", &repo, "--source"])
        .arg(format!(
            "postgres://postgres:s3cr3t-x@127.0.0.1:{port}/postgres"
        ))
        .output()
        .unwrap();
    let line = error_line(&out);
    assert!(
        line.contains("cannot connect to postgres://postgres@127.0.0.1"),
        "{line}"
    );
    assert!(!format!("{out:?}").contains("s3cr3t-x"));

    // No archive_command: the backup could never be restored.
    let pg = Pg::start(None);
    let out = arca()
        .args(["backup", "--repo", &repo, "--source", &pg.url()])
        .output()
        .unwrap();
    let line = error_line(&out);
    // The exact line, with arca's absolute path: the server's PATH need not hold it.
    let command = format!(
        "archive_command = '{} wal-push --repo {repo} %p' in postgresql.conf",
        super::postgres::arca_bin().display()
    );
    assert!(line.contains(&command), "{line}");
    assert_eq!(backups(&repo), 0);

    // A data directory that is not the server's.
    let out = arca()
        .args(["backup", "--repo", &repo, "--source", &pg.url(), "--pgdata"])
        .arg(env.path("nowhere"))
        .output()
        .unwrap();
    let line = error_line(&out);
    assert!(line.contains("--pgdata"), "{line}");
    // Another cluster's data directory.
    let other = Pg::start(None);
    let out = arca()
        .args(["backup", "--repo", &repo, "--source", &pg.url(), "--pgdata"])
        .arg(&other.data)
        .output()
        .unwrap();
    let line = error_line(&out);
    assert!(line.contains("another cluster's data directory"), "{line}");
    assert_eq!(backups(&repo), 0);
}

#[test]
fn a_bad_postgres_url_says_what_one_looks_like() {
    let env = Env::new();
    let repo = env.init_local("repo");
    let expected = "; expected postgres://USER[:PASSWORD]@HOST[:PORT]/DB";
    let bad = "postgres://alice:s3cr3t-u@127.0.0.1:notaport/db";
    for args in [
        vec!["backup", "--repo", &repo, "--source", bad],
        vec!["wal-stream", "--repo", &repo, "--source", bad],
        vec![
            "snapshot", "create", "--repo", &repo, "--source", bad, "--sname", "p",
        ],
    ] {
        let out = arca().args(&args).output().unwrap();
        let line = error_line(&out);
        assert_eq!(
            line,
            format!("error: invalid source \"postgres://alice:[SECRET]@127.0.0.1:notaport/db\": invalid connection string: invalid value for option `port`{expected}"),
            "{}",
            args[0]
        );
        assert!(!format!("{out:?}").contains("s3cr3t-u"), "{}", args[0]);
    }
    // An option libpq does not know, and a URL of another engine where
    // PostgreSQL is expected.
    let out = arca()
        .args(["backup", "--repo", &repo, "--source"])
        .arg("postgresql://u@127.0.0.1:5432/db?colour=blue")
        .output()
        .unwrap();
    let line = error_line(&out);
    assert!(line.contains("unknown option `colour`"), "{line}");
    assert!(line.ends_with(expected), "{line}");
    let out = arca()
        .args([
            "wal-stream",
            "--repo",
            &repo,
            "--source",
            "sqlite://./app.db",
        ])
        .output()
        .unwrap();
    let line = error_line(&out);
    assert!(
        line.contains("the sqlite:// scheme is not a PostgreSQL source"),
        "{line}"
    );
    assert!(line.ends_with(expected), "{line}");
    assert_eq!(backups(&repo), 0);
}
