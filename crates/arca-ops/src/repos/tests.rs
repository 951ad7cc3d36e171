use std::path::Path;

use super::registry::{self, NewEntry, Source};
use super::*;

fn repo(r: &str) -> RepoSpec {
    RepoSpec {
        repo: Some(r.into()),
        ..RepoSpec::default()
    }
}

fn bucket(b: &str, prefix: &str) -> RepoSpec {
    RepoSpec {
        bucket: Some(b.into()),
        filepath: Some(prefix.into()),
        ..RepoSpec::default()
    }
}

fn err(a: RepoSpec) -> String {
    location(&a).unwrap_err().to_string()
}

/// A registry file in `dir` holding `name` for `url`.
fn registered(dir: &Path, name: &str, new: NewEntry) -> PathBuf {
    let config = dir.join("arca.toml");
    registry::add(&config, name, new).unwrap();
    config
}

#[test]
fn mo_br_s3_form_is_the_url_form() {
    let opts = RepoSpec {
        endpoint: Some("http://127.0.0.1:8333".into()),
        region: Some("eu-central-1".into()),
        is_minio: true,
        role_arn: Some("arn:aws:iam::123456789012:role/backup".into()),
        ..RepoSpec::default()
    };
    let mo_br = location(&RepoSpec {
        backup_dir: Some("s3".into()),
        ..bucket("backups", "db/prod")
    })
    .unwrap();
    let mo_br_opts = location(&RepoSpec {
        backup_dir: Some("S3".into()),
        bucket: Some("backups".into()),
        filepath: Some("db/prod".into()),
        ..opts.clone()
    })
    .unwrap();
    let url = location(&RepoSpec {
        repo: Some("s3://backups/db/prod".into()),
        ..opts
    })
    .unwrap();
    assert_eq!(mo_br_opts, url);
    assert_eq!(mo_br_opts.to_string(), "s3://backups/db/prod");
    let r = mo_br_opts.remote_store().unwrap();
    assert_eq!(r.options.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
    assert_eq!(r.options.region.as_deref(), Some("eu-central-1"));
    assert!(r.options.path_style);
    // --bucket alone means S3; --repo and --bucket may both name it.
    assert_eq!(mo_br, Location::parse("s3://backups/db/prod").unwrap());
    assert_eq!(location(&bucket("backups", "db/prod")).unwrap(), mo_br);
    location(&RepoSpec {
        repo: Some("s3://backups/db/prod".into()),
        ..bucket("backups", "/db/prod/")
    })
    .unwrap();
}

#[test]
fn every_scheme_is_accepted_by_repo() {
    for url in [
        "s3://b/p",
        "gs://b/p",
        "azblob://c/p",
        "webhdfs://namenode:9870/user/arca",
        "cos://b-1250000000/p",
        "oss://b/p",
        "file:///srv/arca",
        "/srv/arca",
    ] {
        let l = location(&repo(url)).unwrap();
        assert_eq!(l.to_string(), url.trim_start_matches("file://"), "{url}");
    }
    // The other stores by mo_br's kind as well.
    let l = location(&RepoSpec {
        backup_dir: Some("cos".into()),
        ..bucket("b-1", "p")
    })
    .unwrap();
    assert_eq!(l.to_string(), "cos://b-1/p");
}

#[test]
fn conflicting_or_misplaced_flags_are_refused() {
    let kind = |k: &str, a: RepoSpec| RepoSpec {
        backup_dir: Some(k.into()),
        ..a
    };
    assert!(err(RepoSpec {
        bucket: Some("b".into()),
        ..repo("s3://a/p")
    })
    .contains("different"));
    assert!(err(RepoSpec {
        path: Some("/y".into()),
        ..repo("/x")
    })
    .contains("different"));
    assert!(err(kind(
        "s3",
        RepoSpec {
            filepath: Some("p".into()),
            ..RepoSpec::default()
        }
    ))
    .contains("--bucket"));
    assert!(err(kind("filesystem", bucket("b", "p"))).contains("--backup_dir s3"));
    assert!(err(kind(
        "s3",
        RepoSpec {
            path: Some("/x".into()),
            ..bucket("b", "p")
        }
    ))
    .contains("--path"));
    assert!(err(kind("tape", RepoSpec::default())).contains("not supported"));
    assert!(err(RepoSpec::default()).contains("no repository given"));
    assert!(err(RepoSpec {
        endpoint: Some("http://h".into()),
        ..repo("/srv/arca")
    })
    .contains("object storage only"));
    assert!(err(RepoSpec {
        region: Some("x".into()),
        ..repo("gs://b/p")
    })
    .contains("--region"));
}

#[test]
fn secrets_never_show_in_debug_output_or_reopen_args() {
    let a = RepoSpec {
        access_key_id: Some(Secret::new("AKIAEXAMPLEID")),
        secret_access_key: Some(Secret::new("wJalrXUtnFEMIEXAMPLEKEY")),
        ..repo("s3://b/p")
    };
    let shown = format!(
        "{a:?} {:?} {:?}",
        location(&a).unwrap(),
        reopen_args(&a).unwrap()
    );
    assert!(!shown.contains("wJalrXUtnFEMIEXAMPLEKEY"), "{shown}");
    assert!(!shown.contains("AKIAEXAMPLEID"), "{shown}");
    assert!(shown.contains("[SECRET]"));
}

#[test]
fn reopen_args_name_a_local_repository_by_its_absolute_path() {
    let args = reopen_args(&RepoSpec {
        path: Some("some/dir".into()),
        ..RepoSpec::default()
    })
    .unwrap();
    let here = std::env::current_dir().unwrap();
    assert_eq!(
        args,
        ["--repo", &*here.join("some/dir").display().to_string()]
    );
    let args = reopen_args(&RepoSpec {
        endpoint: Some("http://127.0.0.1:8333".into()),
        is_minio: true,
        ..repo("s3://b/p")
    })
    .unwrap();
    assert_eq!(
        args,
        [
            "--repo",
            "s3://b/p",
            "--endpoint",
            "http://127.0.0.1:8333",
            "--is_minio"
        ]
    );
}

#[test]
fn a_registered_name_resolves_to_its_entry_and_reopens_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = registered(
        dir.path(),
        "arca-test-prod",
        NewEntry {
            url: "s3://backups/prod".into(),
            endpoint: Some("http://127.0.0.1:8333".into()),
            access_key_id: Some(Source::Value(Secret::new("AKIDEXAMPLE"))),
            secret_access_key: Some(Source::Value(Secret::new("from-config"))),
            store_secret_in_config: true,
            ..NewEntry::default()
        },
    );
    for name in ["arca-test-prod", "repo:arca-test-prod"] {
        let a = RepoSpec {
            config: Some(config.clone()),
            region: Some("eu-central-1".into()),
            ..repo(name)
        };
        let r = resolve(&a).unwrap();
        assert_eq!(
            r.origin,
            Origin::Registered {
                name: "arca-test-prod".into()
            }
        );
        assert_eq!(r.location.to_string(), "s3://backups/prod");
        let o = &r.location.remote_store().unwrap().options;
        assert_eq!(o.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        assert_eq!(o.region.as_deref(), Some("eu-central-1"));
        assert_eq!(
            o.secret_access_key.as_ref().unwrap().expose(),
            "from-config"
        );
        assert_eq!(
            reopen_args(&a).unwrap(),
            [
                "--repo",
                "repo:arca-test-prod",
                "--config",
                &*config.display().to_string(),
                "--region",
                "eu-central-1"
            ]
        );
    }
    let e = err(RepoSpec {
        config: Some(config.clone()),
        ..repo("repo:arca-test-other")
    });
    assert!(
        e.contains("no repository named arca-test-other")
            && e.contains("arca repo add arca-test-other URL"),
        "{e}"
    );
}

#[test]
fn a_missing_repository_says_how_it_was_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-initialised");
    let config = registered(
        dir.path(),
        "arca-test-gone",
        NewEntry {
            url: missing.display().to_string(),
            ..NewEntry::default()
        },
    );
    let e = open(&RepoSpec {
        config: Some(config.clone()),
        ..repo("arca-test-gone")
    })
    .err()
    .unwrap();
    assert!(
        matches!(&e, Error::NoRegisteredRepository { name, .. } if name == "arca-test-gone"),
        "{e:?}"
    );
    assert!(
        e.to_string().ends_with(
            "(registered as arca-test-gone): create one with `arca init --repo arca-test-gone`"
        ),
        "{e}"
    );
    // A bare name nobody registered is a relative path that is not there.
    let e = open(&RepoSpec {
        config: Some(config.clone()),
        ..repo("arca-test-nothere")
    })
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.starts_with("no repository at arca-test-nothere")
            && e.contains("arca-test-nothere is not a registered repository name either")
            && e.contains(&*config.display().to_string()),
        "{e}"
    );
}
