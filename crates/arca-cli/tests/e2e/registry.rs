//! The named-repository registry: `arca repo add|list|remove`, `--repo NAME`,
//! and where credentials of registered repositories come from. Every test
//! points `--config` (or the variables that stand for it) into a temp dir.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

use super::common::*;
use super::seaweed::{self, ACCESS_KEY, SECRET_KEY};

/// `arca --config CFG`, with nothing from the caller's registry, repository
/// or AWS settings.
fn arca_cfg(cfg: &Path) -> Command {
    let mut c = arca_plain();
    c.env_remove("ARCA_CONFIG")
        .env_remove("XDG_CONFIG_HOME")
        .arg("--config")
        .arg(cfg);
    c
}

fn stdout_ok(o: Output) -> String {
    assert!(o.status.success(), "should have succeeded: {}", text(&o));
    String::from_utf8(o.stdout).unwrap()
}

/// Runs `arca --config CFG ARGS`, asserting success; returns stdout.
fn ok_cfg(cfg: &Path, args: &[&str]) -> String {
    stdout_ok(arca_cfg(cfg).args(args).output().unwrap())
}

fn json_cfg(cfg: &Path, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok_cfg(cfg, args)).unwrap()
}

fn err_cfg(cfg: &Path, args: &[&str]) -> String {
    error_line(&arca_cfg(cfg).args(args).output().unwrap())
}

fn snapshot_names(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
fn chmod(p: &Path, m: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
}

fn dir_names(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn add_list_remove_round_trip() {
    let env = Env::new();
    let cfg = env.path("conf/arca.toml");
    let local = env.init_local("local-repo");
    ok_cfg(&cfg, &["repo", "add", "local", &local]);
    let out = ok_cfg(
        &cfg,
        &[
            "repo",
            "add",
            "prod.eu",
            "s3://backups/db/prod/",
            "--endpoint",
            "127.0.0.1:8333",
            "--region",
            "eu-central-1",
            "--is_minio",
            "--role_arn",
            "arn:aws:iam::123456789012:role/backup",
        ],
    );
    assert!(out.contains("added repository prod.eu"), "{out}");
    assert!(out.contains(&*cfg.to_string_lossy()), "{out}");

    let table = ok_cfg(&cfg, &["repo", "list"]);
    for s in [
        "local",
        local.as_str(),
        "prod.eu",
        "s3://backups/db/prod",
        "endpoint=https://127.0.0.1:8333",
        "region=eu-central-1",
        "path-style",
        "role_arn=arn:aws:iam::123456789012:role/backup",
        &*cfg.to_string_lossy(),
    ] {
        assert!(table.contains(s), "{s} missing from:\n{table}");
    }

    let v = json_cfg(&cfg, &["repo", "list", "--json"]);
    let repos = v.as_array().unwrap();
    assert_eq!(repos.len(), 2, "{v}");
    assert_eq!(repos[0]["name"], "local");
    assert_eq!(repos[0]["url"], local.as_str());
    assert_eq!(repos[0]["endpoint"], serde_json::Value::Null);
    assert_eq!(repos[1]["name"], "prod.eu");
    assert_eq!(repos[1]["url"], "s3://backups/db/prod");
    assert_eq!(repos[1]["endpoint"], "https://127.0.0.1:8333");
    assert_eq!(repos[1]["region"], "eu-central-1");
    assert_eq!(repos[1]["path_style"], true);
    assert_eq!(
        repos[1]["role_arn"],
        "arn:aws:iam::123456789012:role/backup"
    );
    assert_eq!(repos[1]["secret_access_key"], serde_json::Value::Null);

    // --config may come after the verb, too.
    let out = stdout_ok(
        arca_plain()
            .args(["repo", "remove", "local", "--config"])
            .arg(&cfg)
            .output()
            .unwrap(),
    );
    assert!(out.contains("removed repository local"), "{out}");
    assert!(
        Path::new(&local).join("config").exists(),
        "remove must not touch the repository"
    );
    let v = json_cfg(&cfg, &["repo", "list", "--json"]);
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    ok_cfg(&cfg, &["repo", "remove", "prod.eu"]);
    assert_eq!(
        json_cfg(&cfg, &["repo", "list", "--json"]),
        serde_json::json!([])
    );
    let out = ok_cfg(&cfg, &["repo", "list"]);
    assert!(out.contains("no repositories registered"), "{out}");
}

#[test]
fn duplicate_unknown_and_invalid_names_fail_with_one_line_naming_the_config() {
    let env = Env::new();
    let cfg = env.path("arca.toml");
    let c = cfg.to_string_lossy().into_owned();

    // Nothing registered yet, no file yet.
    let line = err_cfg(&cfg, &["repo", "remove", "nope"]);
    assert!(
        line.contains("no repository named nope") && line.contains(&c),
        "{line}"
    );
    assert!(!cfg.exists());

    ok_cfg(&cfg, &["repo", "add", "prod", &env.s("r1")]);
    let before = fs::read(&cfg).unwrap();

    let line = err_cfg(&cfg, &["repo", "add", "prod", &env.s("r2")]);
    assert!(line.contains("already registered"), "{line}");
    assert!(line.contains(&c), "{line}");
    assert!(line.contains("arca repo remove prod"), "{line}");

    let line = err_cfg(&cfg, &["repo", "remove", "nope"]);
    assert!(
        line.contains("no repository named nope") && line.contains(&c),
        "{line}"
    );
    let line = err_cfg(&cfg, &["list", "--repo", "repo:nope"]);
    assert!(
        line.contains("no repository named nope") && line.contains(&c),
        "{line}"
    );

    for bad in ["a/b", ".x", "a b", "x:y", "s3://b"] {
        let line = err_cfg(&cfg, &["repo", "add", bad, "s3://b/p"]);
        assert!(line.contains("not a valid repository name"), "{line}");
    }

    // The URL and options are checked as --repo checks them.
    for (url, flags) in [
        ("gs://b/p", &["--region", "r"][..]),
        ("/srv/arca", &["--endpoint", "http://h"][..]),
        ("ftp://h/x", &[][..]),
        ("s3://b/p?region=x", &[][..]),
        ("s3://b/p", &["--access_key_id", "AKIDONLY"][..]),
    ] {
        let add = err_cfg(&cfg, &[&["repo", "add", "x", url][..], flags].concat());
        let repo = err_cfg(&cfg, &[&["list", "--repo", url][..], flags].concat());
        assert_eq!(add, repo, "{url} {flags:?}");
    }
    // Credentials read at use time are checked as if they had been given.
    let line = err_cfg(
        &cfg,
        &[
            "repo",
            "add",
            "x",
            "gs://b/p",
            "--access-key-id-env",
            "I",
            "--secret-env",
            "S",
        ],
    );
    assert!(line.contains("does not apply to gs://"), "{line}");
    // --secret_access_key alone is refused before anything is written.
    let line = err_cfg(
        &cfg,
        &["repo", "add", "x", "s3://b", "--secret_access_key", "s"],
    );
    assert!(line.contains("--store-secret-in-config"), "{line}");

    assert_eq!(
        fs::read(&cfg).unwrap(),
        before,
        "failures changed the config"
    );
}

#[test]
fn a_broken_config_file_fails_clearly_but_does_not_stop_paths_and_urls() {
    let env = Env::new();
    let cfg = env.path("arca.toml");
    let repo = env.init_local("repo");
    fs::write(&cfg, "[repositories.x]\nurl = \"/srv\"\nregoin = \"eu\"\n").unwrap();
    let c = cfg.to_string_lossy().into_owned();

    let line = err_cfg(&cfg, &["repo", "list"]);
    assert!(line.contains(&c) && line.contains("line 3"), "{line}");
    let line = err_cfg(&cfg, &["list", "--repo", "x"]);
    assert!(line.contains(&c), "{line}");
    // A path is a path: the config file is not read.
    ok_cfg(&cfg, &["list", "--repo", &repo]);
}

#[test]
fn backup_list_restore_through_a_registered_name() {
    let env = Env::new();
    let cfg = env.path("arca.toml");
    let db = env.path("app.db");
    make_db(&db, 2, "WAL");
    let repo = env.path("repo");
    let elsewhere = env.path("elsewhere");
    fs::create_dir(&elsewhere).unwrap();

    // A relative path is registered as an absolute one.
    stdout_ok(
        arca_cfg(&cfg)
            .current_dir(env.dir.path())
            .args(["repo", "add", "local", "repo"])
            .output()
            .unwrap(),
    );
    let v = json_cfg(&cfg, &["repo", "list", "--json"]);
    assert_eq!(v[0]["url"], repo.to_string_lossy().as_ref());

    let run = |args: &[&str]| {
        stdout_ok(
            arca_cfg(&cfg)
                .current_dir(&elsewhere)
                .args(args)
                .output()
                .unwrap(),
        )
    };
    let line = error_line(
        &arca_cfg(&cfg)
            .args(["list", "--repo", "local"])
            .output()
            .unwrap(),
    );
    assert!(line.contains("arca init --repo local"), "{line}");
    run(&["init", "--repo", "local"]);
    assert!(repo.join("config").exists());
    assert!(!elsewhere.join("local").exists());

    let src = format!("sqlite://{}", db.display());
    let b: serde_json::Value = serde_json::from_str(&run(&[
        "backup", "--repo", "local", "--source", &src, "--name", "first", "--json",
    ]))
    .unwrap();
    let id = b["id"].as_str().unwrap().to_string();

    let by_name: serde_json::Value =
        serde_json::from_str(&run(&["list", "--repo", "local", "--json"])).unwrap();
    assert_eq!(by_name[0]["id"], id.as_str());
    assert_eq!(by_name[0]["path"], repo.to_string_lossy().as_ref());
    let by_path = json(&["list", "--repo", &repo.to_string_lossy(), "--json"]);
    assert_eq!(by_path[0]["id"], id.as_str());

    // ARCA_REPO takes a name as well.
    let out = stdout_ok(
        arca_cfg(&cfg)
            .env("ARCA_REPO", "local")
            .current_dir(&elsewhere)
            .args(["list", "--json"])
            .output()
            .unwrap(),
    );
    assert!(out.contains(&id), "{out}");

    run(&["check", "--repo", "repo:local", "--read-data"]);
    let to = env.path("restored.db");
    run(&[
        "restore",
        "latest",
        "--repo",
        "local",
        "--to",
        &to.to_string_lossy(),
    ]);
    assert!(same_file(&db, &to));
    integrity_ok(&to);
}

#[test]
fn an_existing_directory_of_the_same_name_wins_and_repo_prefix_always_means_the_registry() {
    let env = Env::new();
    let cfg = env.path("arca.toml");
    let db = env.path("app.db");
    make_db(&db, 1, "DELETE");
    let src = format!("sqlite://{}", db.display());
    let work = env.path("work");
    fs::create_dir(&work).unwrap();
    let registered = env.path("registered");
    let run = |dir: &Path, args: &[&str]| -> Output {
        arca_cfg(&cfg).current_dir(dir).args(args).output().unwrap()
    };

    ok_cfg(
        &cfg,
        &["repo", "add", "prod", &registered.to_string_lossy()],
    );
    // No ./prod in `work`: the name is the registered repository.
    stdout_ok(run(&work, &["init", "--repo", "prod"]));
    stdout_ok(run(
        &work,
        &[
            "backup",
            "--repo",
            "prod",
            "--source",
            &src,
            "--name",
            "registered",
        ],
    ));
    assert!(registered.join("config").exists() && !work.join("prod").exists());

    // A ./prod made by hand: from `work`, `--repo prod` is that directory, as
    // it was before the name was registered, and a warning says so.
    stdout_ok(run(&work, &["init", "--repo", "./prod"]));
    stdout_ok(run(
        &work,
        &[
            "backup", "--repo", "./prod", "--source", &src, "--name", "local",
        ],
    ));
    let o = run(&work, &["list", "--repo", "prod", "--json"]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let v: serde_json::Value = serde_json::from_str(&stdout_ok(o)).unwrap();
    assert_eq!(snapshot_names(&v), ["local"]);
    assert!(
        err.contains("warning:") && err.contains("repo:prod"),
        "{err}"
    );

    // repo:prod is always the registered one; elsewhere the bare name is too.
    let o = run(&work, &["list", "--repo", "repo:prod", "--json"]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("warning"));
    let v: serde_json::Value = serde_json::from_str(&stdout_ok(o)).unwrap();
    assert_eq!(snapshot_names(&v), ["registered"]);
    let v: serde_json::Value = serde_json::from_str(&stdout_ok(run(
        env.dir.path(),
        &["list", "--repo", "prod", "--json"],
    )))
    .unwrap();
    assert_eq!(snapshot_names(&v), ["registered"]);

    // Adding a name that a directory here shadows says so.
    fs::create_dir(work.join("other")).unwrap();
    let o = run(&work, &["repo", "add", "other", "s3://b/q"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("repo:other"),
        "{}",
        text(&o)
    );

    // A bare name that is neither registered nor a directory is a path that
    // does not exist, and the error says it is no registered name either.
    let line = error_line(&run(&work, &["list", "--repo", "nothere"]));
    assert!(
        line.contains("no repository at nothere") && line.contains("not a registered repository"),
        "{line}"
    );
}

#[test]
fn a_secret_from_env_or_file_never_lands_in_the_config_or_the_listing() {
    let sw = seaweed::server();
    let env = Env::new();
    let cfg = env.path("arca.toml");
    let db = env.path("app.db");
    make_db(&db, 1, "WAL");
    let src = format!("sqlite://{}", db.display());
    let url = sw.url(&format!("registry/{}", env.id()));
    const VAR: &str = "ARCA_TEST_REGISTRY_SECRET";

    let out = stdout_ok(
        arca_cfg(&cfg)
            .env(VAR, SECRET_KEY)
            .args(["repo", "add", "s3env", &url, "--endpoint", &sw.endpoint])
            .args(["--access_key_id", ACCESS_KEY, "--secret-env", VAR])
            .output()
            .unwrap(),
    );
    assert!(!out.contains(SECRET_KEY));
    let file = fs::read_to_string(&cfg).unwrap();
    assert!(!file.contains(SECRET_KEY), "{file}");
    assert!(
        file.contains(&format!("secret_access_key_env = \"{VAR}\"")),
        "{file}"
    );
    for args in [&["repo", "list"][..], &["repo", "list", "--json"][..]] {
        let out = ok_cfg(&cfg, args);
        assert!(
            !out.contains(SECRET_KEY) && !out.contains(ACCESS_KEY),
            "{out}"
        );
        assert!(out.contains(&format!("env:{VAR}")), "{out}");
    }

    // Used: the only credentials are the registry's (no AWS_* variables).
    let with_secret = |args: &[&str]| -> Output {
        arca_cfg(&cfg)
            .env(VAR, SECRET_KEY)
            .args(args)
            .output()
            .unwrap()
    };
    for args in [
        &["init", "--repo", "s3env"][..],
        &["backup", "--repo", "s3env", "--source", &src],
    ] {
        let o = with_secret(args);
        assert!(!text(&o).contains(SECRET_KEY));
        stdout_ok(o);
    }
    let v: serde_json::Value = serde_json::from_str(&stdout_ok(with_secret(&[
        "list", "--repo", "s3env", "--json",
    ])))
    .unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["path"], url.as_str());
    let to = env.path("restored.db");
    stdout_ok(with_secret(&[
        "restore",
        "latest",
        "--repo",
        "s3env",
        "--to",
        &to.to_string_lossy(),
    ]));
    assert!(same_file(&db, &to));

    // The variable unset: one line naming it and the config file.
    let line = err_cfg(&cfg, &["list", "--repo", "s3env"]);
    assert!(
        line.contains(VAR) && line.contains(&*cfg.to_string_lossy()),
        "{line}"
    );
    // A flag overrides the registry: a wrong secret on the command line wins.
    let wrong = "wrong-secret-3c9d1e";
    let o = with_secret(&["list", "--repo", "s3env", "--secret_access_key", wrong]);
    let line = error_line(&o);
    assert!(line.contains("access denied"), "{line}");
    assert!(!text(&o).contains(wrong) && !text(&o).contains(SECRET_KEY));

    // From files: the id and the secret, with a warning while the secret
    // file is readable by others.
    let id_file = env.path("key-id");
    let secret_file = env.path("secret");
    fs::write(&id_file, format!("{ACCESS_KEY}\n")).unwrap();
    fs::write(&secret_file, format!("{SECRET_KEY}\n")).unwrap();
    chmod(&secret_file, 0o644);
    let o = arca_cfg(&cfg)
        .args(["repo", "add", "s3file", &url, "--endpoint", &sw.endpoint])
        .args(["--access-key-id-file", &id_file.to_string_lossy()])
        .args(["--secret-file", &secret_file.to_string_lossy()])
        .output()
        .unwrap();
    assert!(text(&o).contains("readable by other users"), "{}", text(&o));
    stdout_ok(o);
    let file = fs::read_to_string(&cfg).unwrap();
    assert!(!file.contains(SECRET_KEY), "{file}");
    assert!(
        file.contains(&format!(
            "secret_access_key_file = \"{}\"",
            secret_file.display()
        )),
        "{file}"
    );
    let o = arca_cfg(&cfg)
        .args(["list", "--repo", "s3file"])
        .output()
        .unwrap();
    assert!(text(&o).contains("readable by other users"), "{}", text(&o));
    stdout_ok(o);
    chmod(&secret_file, 0o600);
    let o = arca_cfg(&cfg)
        .args(["check", "--repo", "s3file"])
        .output()
        .unwrap();
    assert!(!text(&o).contains("warning"), "{}", text(&o));
    assert!(!text(&o).contains(SECRET_KEY));
    stdout_ok(o);
    let out = ok_cfg(&cfg, &["repo", "list"]);
    assert!(
        out.contains(&format!("file:{}", secret_file.display())) && !out.contains(SECRET_KEY),
        "{out}"
    );
}

#[test]
fn store_secret_in_config_is_needed_to_write_a_secret_and_makes_the_file_0600() {
    let env = Env::new();
    let cfg = env.path("arca.toml");
    let secret = "wJalrXUtnFEMI-K7MDENG-stored";

    let line = err_cfg(
        &cfg,
        &[
            "repo",
            "add",
            "s",
            "s3://b/p",
            "--access_key_id",
            "AKIDSTORED",
        ],
    );
    assert!(line.contains("give both"), "{line}");
    let line = err_cfg(
        &cfg,
        &[
            "repo",
            "add",
            "s",
            "s3://b/p",
            "--access_key_id",
            "AKIDSTORED",
            "--secret_access_key",
            secret,
        ],
    );
    assert!(
        line.contains("--store-secret-in-config")
            && line.contains("--secret-env")
            && line.contains(&*cfg.to_string_lossy()),
        "{line}"
    );
    assert!(!line.contains(secret));
    assert!(!cfg.exists(), "nothing may be written");

    // A config file the user made world-readable becomes 0600 as well.
    ok_cfg(&cfg, &["repo", "add", "first", "s3://b/q"]);
    chmod(&cfg, 0o644);
    let o = arca_cfg(&cfg)
        .args([
            "repo",
            "add",
            "s",
            "s3://b/p",
            "--access_key_id",
            "AKIDSTORED",
        ])
        .args(["--secret_access_key", secret, "--store-secret-in-config"])
        .output()
        .unwrap();
    assert!(text(&o).contains("process list"), "{}", text(&o));
    assert!(!text(&o).contains(secret));
    stdout_ok(o);
    assert_eq!(mode(&cfg), 0o600);
    let file = fs::read_to_string(&cfg).unwrap();
    assert!(
        file.contains(&format!("secret_access_key = \"{secret}\"")),
        "{file}"
    );
    for args in [&["repo", "list"][..], &["repo", "list", "--json"][..]] {
        let out = ok_cfg(&cfg, args);
        assert!(
            !out.contains(secret) && !out.contains("AKIDSTORED"),
            "{out}"
        );
        assert!(out.contains("[SECRET]"), "{out}");
    }
    // Nor does an error while using it show it.
    let o = arca_cfg(&cfg)
        .args(["list", "--repo", "s", "--endpoint", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    error_line(&o);
    assert!(!text(&o).contains(secret), "{}", text(&o));
}

#[cfg(unix)]
#[test]
fn config_writes_are_atomic_renames_that_leave_no_temp_file() {
    use std::os::unix::fs::MetadataExt;

    let env = Env::new();
    let dir = env.path("conf");
    let cfg = dir.join("arca.toml");
    ok_cfg(&cfg, &["repo", "add", "a", "s3://b/a"]);
    assert_eq!(mode(&cfg), 0o600);
    let ino = fs::metadata(&cfg).unwrap().ino();
    ok_cfg(&cfg, &["repo", "add", "b", "s3://b/b"]);
    // A new file renamed into place, not the old one rewritten.
    assert_ne!(fs::metadata(&cfg).unwrap().ino(), ino);
    ok_cfg(&cfg, &["repo", "remove", "a"]);
    assert_eq!(dir_names(&dir), ["arca.toml"]);
    let v = json_cfg(&cfg, &["repo", "list", "--json"]);
    assert_eq!(v[0]["name"], "b");

    // A symlinked config file (dotfiles) stays a link; the file it points to
    // is replaced, and no temp file is left beside it.
    let dotfiles = env.path("dotfiles");
    fs::create_dir(&dotfiles).unwrap();
    let real = dotfiles.join("arca.toml");
    fs::copy(&cfg, &real).unwrap();
    let link = env.path("link.toml");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    ok_cfg(&link, &["repo", "add", "c", "s3://b/c"]);
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(fs::read_to_string(&real)
        .unwrap()
        .contains("[repositories.c]"));
    assert_eq!(dir_names(&dotfiles), ["arca.toml"]);

    // A write that cannot happen (a read-only directory) leaves the file as
    // it was, and no temp file. Root writes anyway: then this part is skipped.
    let before = fs::read(&cfg).unwrap();
    chmod(&dir, 0o500);
    if fs::write(dir.join("probe"), "").is_err() {
        let line = err_cfg(&cfg, &["repo", "add", "d", "s3://b/d"]);
        assert!(
            line.contains("cannot write config file") && line.contains(&*cfg.to_string_lossy()),
            "{line}"
        );
        assert_eq!(fs::read(&cfg).unwrap(), before);
        assert_eq!(dir_names(&dir), ["arca.toml"]);
    }
    chmod(&dir, 0o700);
}

#[test]
fn the_config_file_is_config_flag_then_arca_config_then_xdg_then_home() {
    let env = Env::new();
    let home = env.path("home");
    let xdg = env.path("xdg");
    let add = |name: &str, vars: &[(&str, &PathBuf)], flag: Option<&PathBuf>| {
        let mut c = arca_plain();
        c.env_remove("ARCA_CONFIG")
            .env_remove("XDG_CONFIG_HOME")
            .env("HOME", &home);
        for (k, v) in vars {
            c.env(k, v);
        }
        if let Some(f) = flag {
            c.arg("--config").arg(f);
        }
        stdout_ok(c.args(["repo", "add", name, "s3://b/p"]).output().unwrap())
    };
    add("h", &[], None);
    assert!(home.join(".config/arca/arca.toml").exists());
    add("x", &[("XDG_CONFIG_HOME", &xdg)], None);
    assert!(xdg.join("arca/arca.toml").exists());
    let a = env.path("a.toml");
    add("a", &[("XDG_CONFIG_HOME", &xdg), ("ARCA_CONFIG", &a)], None);
    assert!(a.exists());
    let b = env.path("b.toml");
    add(
        "b",
        &[("XDG_CONFIG_HOME", &xdg), ("ARCA_CONFIG", &a)],
        Some(&b),
    );
    assert!(fs::read_to_string(&b).unwrap().contains("[repositories.b]"));
    // Each file holds only its own entry.
    for (f, name) in [
        (home.join(".config/arca/arca.toml"), "h"),
        (xdg.join("arca/arca.toml"), "x"),
        (a, "a"),
        (b, "b"),
    ] {
        let v = json_cfg(&f, &["repo", "list", "--json"]);
        assert_eq!(v.as_array().unwrap().len(), 1, "{}", f.display());
        assert_eq!(v[0]["name"], name);
    }
}
