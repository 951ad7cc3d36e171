//! What only an object store can get wrong: credentials, buckets, endpoints,
//! and telling a repository from a prefix that holds something else. Always
//! run against the test SeaweedFS, whatever `ARCA_TEST_BACKEND` says.

use std::time::{Duration, Instant};

use super::common::*;
use super::seaweed::{self, arca_s3, ACCESS_KEY, BUCKET, SECRET_KEY};

/// A permanent error must not wait out the retry budget.
const AT_ONCE: Duration = Duration::from_secs(10);

#[test]
fn wrong_secret_fails_at_once_naming_bucket_and_endpoint_never_the_secret() {
    let sw = seaweed::server();
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 1, "DELETE");
    let url = sw.url(&format!("wrong-secret/{}", env.id()));
    let o = arca_s3().args(["init", "--repo", &url]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));

    let wrong = "wrong-secret-7d3e91ab0c";
    let src = format!("sqlite://{}", db.display());
    let verbs: [&[&str]; 4] = [
        &["list"],
        &["check", "--read-data"],
        &["backup", "--source", &src],
        &["prune"],
    ];
    for verb in verbs {
        let t = Instant::now();
        let o = arca_s3()
            .env("AWS_SECRET_ACCESS_KEY", wrong)
            .args(verb)
            .args(["--repo", &url])
            .output()
            .unwrap();
        let line = error_line(&o);
        assert!(t.elapsed() < AT_ONCE, "{verb:?} took {:?}", t.elapsed());
        assert!(line.contains("access denied"), "{line}");
        assert!(line.contains("SignatureDoesNotMatch"), "{line}");
        assert!(
            line.contains(BUCKET) && line.contains(&sw.endpoint),
            "{line}"
        );
        assert!(
            !text(&o).contains(wrong) && !text(&o).contains(SECRET_KEY),
            "{line}"
        );
    }

    // The same through mo_br's flags: a warning about the process list,
    // one error line, and still no secret.
    let o = arca_plain()
        .args(["list", "--repo", &url, "--endpoint", &sw.endpoint])
        .args(["--access_key_id", ACCESS_KEY, "--secret_access_key", wrong])
        .output()
        .unwrap();
    let line = error_line(&o);
    assert!(
        line.contains(BUCKET) && line.contains(&sw.endpoint),
        "{line}"
    );
    assert!(text(&o).contains("warning:") && text(&o).contains("process list"));
    assert!(!text(&o).contains(wrong), "{}", text(&o));

    // Not even the debug log shows a secret.
    let o = arca_s3()
        .env("AWS_SECRET_ACCESS_KEY", wrong)
        .env("ARCA_LOG", "debug")
        .args(["list", "--repo", &url])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("debug:"), "debug logging was on: {t}");
    assert!(!t.contains(wrong) && !t.contains(SECRET_KEY), "{t}");

    // The right secret still works: nothing was damaged.
    let o = arca_s3().args(["check", "--repo", &url]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn missing_bucket_wrong_endpoint_and_missing_credentials_fail_cleanly() {
    let sw = seaweed::server();
    let env = Env::new();

    let o = arca_s3()
        .args(["list", "--repo", "s3://no-such-bucket-arca/x"])
        .output()
        .unwrap();
    let line = error_line(&o);
    assert!(line.contains("bucket does not exist"), "{line}");
    assert!(
        line.contains("no-such-bucket-arca") && line.contains(&sw.endpoint),
        "{line}"
    );

    // Nothing listens on a port we just bound and released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let t = Instant::now();
    let o = arca_s3()
        .args(["list", "--repo", &sw.url("x"), "--endpoint", &endpoint])
        .output()
        .unwrap();
    let line = error_line(&o);
    assert!(t.elapsed() < AT_ONCE, "took {:?}", t.elapsed());
    assert!(
        line.contains("cannot connect") && line.contains(&endpoint),
        "{line}"
    );
    assert!(line.contains(BUCKET), "{line}");

    // No key anywhere: not in the environment, no ~/.aws, no instance metadata.
    let home = env.path("home");
    std::fs::create_dir(&home).unwrap();
    let o = arca_plain()
        .env("HOME", &home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args(["list", "--repo", &sw.url("x"), "--endpoint", &sw.endpoint])
        .output()
        .unwrap();
    let line = error_line(&o);
    assert!(line.contains("no credentials"), "{line}");
    assert!(line.contains("AWS_ACCESS_KEY_ID"), "{line}");
}

/// A bucket name S3 refuses ("b1" is too short) is an error no retry can
/// fix, whatever HTTP status the store sends it with: `init` fails with one
/// line naming the problem, without a retry and without claiming any.
#[test]
fn invalid_bucket_name_fails_without_retries() {
    let sw = seaweed::server();
    let env = Env::new();
    let url = format!("s3://b1/{}", env.id());
    let o = arca_s3()
        .args(["init", "--repo", &url, "--endpoint", &sw.endpoint])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    // One error line and nothing else: a retry would have logged a warning.
    let line = error_line(&o);
    assert!(
        line.contains("invalid bucket name") && line.contains("InvalidBucketName"),
        "{line}"
    );
    assert!(
        line.contains("bucket b1 at endpoint") && line.contains(&sw.endpoint),
        "{line}"
    );
    assert!(!text(&o).contains("retr"), "{}", text(&o));
    assert!(!text(&o).contains(SECRET_KEY), "{}", text(&o));
}

/// Standard AWS files are read: ~/.aws/credentials with a profile.
#[test]
fn credentials_come_from_the_aws_credentials_file() {
    let sw = seaweed::server();
    let env = Env::new();
    let home = env.path("home");
    std::fs::create_dir_all(home.join(".aws")).unwrap();
    std::fs::write(
        home.join(".aws/credentials"),
        format!(
            "[default]\naws_access_key_id = nobody\naws_secret_access_key = nothing-here\n\n\
             [arca]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
        ),
    )
    .unwrap();
    let url = sw.url(&format!("aws-files/{}", env.id()));
    for verb in ["init", "list"] {
        let o = arca_plain()
            .env("HOME", &home)
            .env("AWS_PROFILE", "arca")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .args([verb, "--repo", &url, "--endpoint", &sw.endpoint])
            .output()
            .unwrap();
        assert!(o.status.success(), "{verb}: {}", text(&o));
        assert!(!text(&o).contains("warning:"), "{}", text(&o));
    }
}

#[test]
fn no_repository_not_a_repository_and_init_on_a_used_prefix() {
    let sw = seaweed::server();
    let env = Env::new();
    let base = format!("detect/{}", env.id());

    // An empty prefix: no repository.
    let empty = sw.url(&format!("{base}/empty"));
    let line = error_line(&arca_s3().args(["list", "--repo", &empty]).output().unwrap());
    assert!(
        line.contains("no repository at") && line.contains("arca init"),
        "{line}"
    );

    // A prefix holding other objects: not a repository, and init keeps off it.
    let other = format!("{base}/other");
    sw.backend(&other)
        .unwrap()
        .write("notes.txt", b"keep me".to_vec())
        .unwrap();
    let url = sw.url(&other);
    let line = error_line(&arca_s3().args(["list", "--repo", &url]).output().unwrap());
    assert!(line.contains("not an Arca repository"), "{line}");
    let line = error_line(&arca_s3().args(["init", "--repo", &url]).output().unwrap());
    assert!(line.contains("not empty"), "{line}");
    let b = sw.backend(&other).unwrap();
    assert_eq!(b.read("notes.txt").unwrap(), b"keep me");
    assert!(
        !b.exists("config").unwrap(),
        "init wrote into a used prefix"
    );

    // An existing repository: init refuses it; a prefix inside it is not one.
    let repo = sw.url(&format!("{base}/repo"));
    assert!(arca_s3()
        .args(["init", "--repo", &repo])
        .output()
        .unwrap()
        .status
        .success());
    let line = error_line(&arca_s3().args(["init", "--repo", &repo]).output().unwrap());
    assert!(line.contains("already holds a repository"), "{line}");
    let inner = format!("{repo}/config-is-not-a-folder");
    let line = error_line(&arca_s3().args(["list", "--repo", &inner]).output().unwrap());
    assert!(line.contains("no repository at"), "{line}");
}

/// A snapshot on object storage is visible only once whole: the store holds
/// no temp objects, and every object a snapshot needs is there.
#[test]
fn object_store_repository_has_no_temp_objects() {
    let sw = seaweed::server();
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 2, "WAL");
    let prefix = format!("layout/{}", env.id());
    let url = sw.url(&prefix);
    assert!(arca_s3()
        .args(["init", "--repo", &url])
        .output()
        .unwrap()
        .status
        .success());
    let o = arca_s3()
        .args([
            "backup",
            "--repo",
            &url,
            "--source",
            &format!("sqlite://{}", db.display()),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let names: Vec<String> = sw
        .backend(&prefix)
        .unwrap()
        .list("")
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert!(names.iter().any(|n| n == "config"), "{names:?}");
    for dir in ["data/", "index/", "snapshots/"] {
        assert!(
            names.iter().any(|n| n.starts_with(dir)),
            "no {dir} in {names:?}"
        );
    }
    assert!(
        names
            .iter()
            .all(|n| !n.starts_with(".tmp") && !n.starts_with("locks/")),
        "temp objects or a lock left behind: {names:?}"
    );
}
