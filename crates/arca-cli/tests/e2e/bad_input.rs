use super::common::*;

fn one_line(text: &str) -> &str {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {text}");
    lines[0]
}

#[test]
fn no_repository_at_the_path() {
    let env = Env::new();
    let repo = env.s("nothing-here");
    let (_, err) = fails(&["list", "--repo", &repo]);
    let line = one_line(&err);
    assert!(
        line.contains("no repository at") && line.contains("arca init"),
        "{line}"
    );
}

#[test]
fn uninitialized_directory() {
    let env = Env::new();
    let dir = env.path("plain");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "keep me").unwrap();
    let d = dir.to_string_lossy();
    let (_, err) = fails(&[
        "backup",
        "--repo",
        &d,
        "--source",
        "sqlite:///nonexistent.db",
    ]);
    let line = one_line(&err);
    assert!(line.contains("not an Arca repository"), "{line}");
    // init refuses a non-empty directory that is not a repository, and keeps its files.
    let (_, err) = fails(&["init", "--repo", &d]);
    assert!(one_line(&err).contains("not empty"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "keep me"
    );
    // init refuses an existing repository.
    let repo = env.init_local("repo");
    let (_, err) = fails(&["init", "--repo", &repo]);
    assert!(
        one_line(&err).contains("already holds a repository"),
        "{err}"
    );
}

#[test]
fn source_that_does_not_exist() {
    let env = Env::new();
    let repo = env.init_local("repo");
    let src = format!("sqlite://{}", env.path("missing.db").display());
    let (_, err) = fails(&["backup", "--repo", &repo, "--source", &src]);
    let line = one_line(&err);
    assert!(
        line.contains("missing.db") && line.contains("does not exist"),
        "{line}"
    );
    assert!(
        !env.path("missing.db").exists(),
        "backup must not create the source"
    );
    ok(&["check", "--repo", &repo]);
}

#[test]
fn source_that_is_not_sqlite() {
    let env = Env::new();
    let repo = env.init_local("repo");
    let txt = env.path("notes.txt");
    std::fs::write(
        &txt,
        "this is not a database, it is a text file with some words\n".repeat(200),
    )
    .unwrap();
    let src = format!("sqlite://{}", txt.display());
    let (_, err) = fails(&["backup", "--repo", &repo, "--source", &src]);
    let line = one_line(&err);
    assert!(line.contains("not a SQLite database"), "{line}");
    let list = json(&["list", "--repo", &repo, "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 0);
    ok(&["check", "--repo", &repo]);
}

#[test]
fn unknown_backup_id_and_unsupported_source() {
    let env = Env::new();
    let repo = env.init_local("repo");
    let (_, err) = fails(&[
        "restore",
        "deadbeef",
        "--repo",
        &repo,
        "--to",
        &env.s("x.db"),
    ]);
    assert!(one_line(&err).contains("no backup matches"), "{err}");
    let (_, err) = fails(&["restore", "latest", "--repo", &repo, "--to", &env.s("x.db")]);
    assert!(one_line(&err).contains("no backup yet"), "{err}");
    let (_, err) = fails(&[
        "backup",
        "--repo",
        &repo,
        "--source",
        "oracle://u@127.0.0.1/db",
    ]);
    assert!(
        one_line(&err).contains("unknown source scheme oracle://"),
        "{err}"
    );
}
