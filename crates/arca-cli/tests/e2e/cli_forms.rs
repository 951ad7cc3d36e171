//! The command-line forms a repository can be given in: `--repo`,
//! `ARCA_REPO`, and mo_br's `--backup_dir filesystem|s3 …` spellings.

use std::path::Path;

use super::common::*;
use super::seaweed::{self, BUCKET, SECRET_KEY};

/// mo_br restores a backup named by its location alone: without an id, a
/// repository holding one backup restores it; one holding more asks for an id.
#[test]
fn mo_br_restore_by_location_without_an_id() {
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 1, "DELETE");
    let repo = env.init("repo");
    env.backup(&repo, &db);
    let restore = |out: &str| {
        arca_plain()
            .args([
                "restore",
                "--backup_dir",
                "filesystem",
                "--path",
                &repo,
                "--restore_dir",
                "filesystem",
                "--restore_path",
                out,
            ])
            .output()
            .unwrap()
    };
    let out = env.s("one.db");
    assert!(restore(&out).status.success());
    assert!(same_file(&db, Path::new(&out)));

    touch_rows(&db, 5);
    env.backup(&repo, &db);
    let again = env.s("two.db");
    let o = restore(&again);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("holds 2 backups") && err.contains("latest"),
        "{err}"
    );
    assert!(!Path::new(&again).exists());
}

#[test]
fn mo_br_flags_and_arca_repo_env_work() {
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 1, "DELETE");
    let repo = env.s("repo");
    ok(&["init", "--backup_dir", "filesystem", "--path", &repo]);
    let src = format!("sqlite://{}", db.display());
    ok(&[
        "backup",
        "--backup_dir",
        "filesystem",
        "--path",
        &repo,
        "--source",
        &src,
        "--parallelism",
        "3",
    ]);
    let out = env.s("out.db");
    ok(&[
        "restore",
        "latest",
        "--backup_dir",
        "filesystem",
        "--path",
        &repo,
        "--restore_dir",
        "filesystem",
        "--restore_path",
        &out,
        "--parallelism",
        "2",
    ]);
    assert!(same_file(&db, std::path::Path::new(&out)));
    ok(&[
        "check",
        "--path",
        &repo,
        "--backup_dir",
        "filesystem",
        "--parallelism",
        "2",
    ]);
    let o = arca_plain()
        .env("ARCA_REPO", &repo)
        .args(["list", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
}

/// mo_br's object-storage form, flags and all, drives every verb; the
/// repository it makes is the same one `--repo s3://BUCKET/FILEPATH` names.
#[test]
fn mo_br_backup_dir_s3_form_works_for_every_verb() {
    let sw = seaweed::server();
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 2, "DELETE");
    let prefix = format!("mobr/{}", env.id());
    let endpoint = sw.endpoint.clone();
    let mo_br = |verb: &[&str]| -> String {
        let out = arca_plain()
            .args(verb)
            .args(["--backup_dir", "s3", "--endpoint", &endpoint])
            .args(["--bucket", BUCKET, "--filepath", &prefix, "--is_minio"])
            .args(["--access_key_id", seaweed::ACCESS_KEY])
            .args(["--secret_access_key", SECRET_KEY])
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(
            out.status.success(),
            "arca {verb:?} failed: {stdout}{stderr}"
        );
        assert!(
            stderr.contains("warning:") && stderr.contains("process list"),
            "flags with credentials must warn: {stderr}"
        );
        assert!(
            !stdout.contains(SECRET_KEY) && !stderr.contains(SECRET_KEY),
            "the secret was printed"
        );
        stdout
    };
    let src = format!("sqlite://{}", db.display());
    mo_br(&["init"]);
    let first: serde_json::Value =
        serde_json::from_str(&mo_br(&["backup", "--source", &src, "--json"])).unwrap();
    touch_rows(&db, 5);
    mo_br(&["backup", "--source", &src]);
    let listed: serde_json::Value = serde_json::from_str(&mo_br(&["list", "--json"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    mo_br(&["check", "--read-data"]);
    let out = env.s("restored.db");
    mo_br(&[
        "restore",
        "latest",
        "--restore_dir",
        "filesystem",
        "--restore_path",
        &out,
    ]);
    assert!(same_file(&db, Path::new(&out)));
    mo_br(&["delete", first["id"].as_str().unwrap()]);
    mo_br(&["prune"]);
    mo_br(&["check", "--read-data"]);

    // The URL form and ARCA_REPO reach the same repository.
    let url = sw.url(&prefix);
    let o = seaweed::arca_s3()
        .args(["list", "--json", "--repo", &url])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    let o = seaweed::arca_s3()
        .env("ARCA_REPO", &url)
        .args(["check"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // mo_br's form and a different --repo conflict.
    let (_, err) = fails(&[
        "list",
        "--repo",
        "s3://other-bucket/x",
        "--bucket",
        BUCKET,
        "--filepath",
        &prefix,
        "--endpoint",
        &endpoint,
    ]);
    assert!(err.contains("different repositories"), "{err}");
}
