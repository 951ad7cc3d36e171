//! One module per verb.

mod backup;
mod check;
mod delete;
pub mod demo;
mod init;
mod list;
mod prune;
mod restore;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use arca_repo::{Location, Repository, Scheme, StoreOptions};

use crate::args::{Cli, Command, RepoArgs};

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Init(a) => init::run(a),
        Command::Backup(a) => backup::run(a),
        Command::List(a) => list::run(a),
        Command::Check(a) => check::run(a),
        Command::Restore(a) => restore::run(a),
        Command::Delete(a) => delete::run(a),
        Command::Prune(a) => prune::run(a),
        Command::Demo(a) => demo::run(a),
    }
}

/// Resolves `--repo`, `ARCA_REPO`, or mo_br's `--backup_dir filesystem --path P`
/// and `--backup_dir s3 --bucket B --filepath P`, with the object-store flags.
pub fn location(a: &RepoArgs) -> Result<Location> {
    let opts = StoreOptions {
        endpoint: a.endpoint.clone(),
        region: a.region.clone(),
        path_style: a.is_minio,
        role_arn: a.role_arn.clone(),
        access_key_id: a.access_key_id.clone(),
        secret_access_key: a.secret_access_key.clone(),
    };
    let kind = a.backup_dir.as_deref().map(str::to_ascii_lowercase);
    let store = match kind.as_deref() {
        None | Some("filesystem") => None,
        Some(k) => Some(Scheme::from_name(k).ok_or_else(|| {
            anyhow!("--backup_dir {k} is not supported: use filesystem (with --path) or s3 (with --bucket and --filepath)")
        })?),
    };
    let bucket_form = a.bucket.is_some() || a.filepath.is_some();
    if kind.as_deref() == Some("filesystem") && bucket_form {
        bail!("--bucket and --filepath go with --backup_dir s3, not --backup_dir filesystem");
    }
    let loc = if store.is_some() || bucket_form {
        let scheme = store.unwrap_or(Scheme::S3);
        if a.path.is_some() {
            bail!("--path goes with --backup_dir filesystem: for {scheme} give --bucket and --filepath");
        }
        let Some(bucket) = &a.bucket else {
            bail!("--backup_dir {scheme} needs --bucket NAME (and --filepath PREFIX)");
        };
        let prefix = a.filepath.as_deref().unwrap_or("");
        let loc = Location::remote(scheme, bucket, prefix, opts.clone())?;
        if let Some(r) = &a.repo {
            if Location::parse_with(r, opts)? != loc {
                bail!("--repo (or ARCA_REPO) and --bucket/--filepath name different repositories: give one");
            }
        }
        loc
    } else {
        let given = match (&a.repo, &a.path) {
            (Some(r), None) => r.clone(),
            (None, Some(p)) => p.clone(),
            (Some(r), Some(p)) if r == p => r.clone(),
            (Some(_), Some(_)) => {
                bail!("--repo and --path name different repositories: give one")
            }
            (None, None) => bail!("no repository given: pass --repo PATH|URL or set ARCA_REPO"),
        };
        Location::parse_with(&given, opts)?
    };
    if a.access_key_id.is_some() || a.secret_access_key.is_some() {
        eprintln!(
            "warning: --access_key_id/--secret_access_key show in the process list to every user of this machine; \
             prefer AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws/credentials"
        );
    }
    Ok(loc)
}

pub fn open(a: &RepoArgs) -> Result<Repository> {
    let mut repo = Repository::open(&location(a)?)?;
    repo.lock_wait = Duration::from_secs(a.lock_wait);
    Ok(repo)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> RepoArgs {
        let argv = [&["arca", "list"][..], args].concat();
        match Cli::try_parse_from(argv).unwrap().command {
            Command::List(a) => a.repo,
            _ => unreachable!(),
        }
    }

    fn loc(args: &[&str]) -> Result<Location> {
        location(&parse(args))
    }

    #[test]
    fn mo_br_s3_form_is_the_url_form() {
        let flags = [
            "--endpoint",
            "http://127.0.0.1:8333",
            "--region",
            "eu-central-1",
            "--is_minio",
            "--role_arn",
            "arn:aws:iam::123456789012:role/backup",
        ];
        let mo_br = loc(&[
            &[
                "--backup_dir",
                "s3",
                "--bucket",
                "backups",
                "--filepath",
                "db/prod",
            ][..],
            &flags[..],
        ]
        .concat())
        .unwrap();
        let url = loc(&[&["--repo", "s3://backups/db/prod"][..], &flags[..]].concat()).unwrap();
        assert_eq!(mo_br, url);
        assert_eq!(mo_br.to_string(), "s3://backups/db/prod");
        let r = mo_br.remote_store().unwrap();
        assert_eq!(r.options.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        assert_eq!(r.options.region.as_deref(), Some("eu-central-1"));
        assert!(r.options.path_style);
        // --bucket alone means S3; --repo and --bucket may both name it.
        assert_eq!(
            loc(&["--bucket", "backups", "--filepath", "db/prod"]).unwrap(),
            { Location::parse("s3://backups/db/prod").unwrap() }
        );
        loc(&[
            "--repo",
            "s3://backups/db/prod",
            "--bucket",
            "backups",
            "--filepath",
            "/db/prod/",
        ])
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
            let l = loc(&["--repo", url]).unwrap();
            assert_eq!(l.to_string(), url.trim_start_matches("file://"), "{url}");
        }
        // The other stores by mo_br's kind as well.
        let l = loc(&["--backup_dir", "cos", "--bucket", "b-1", "--filepath", "p"]).unwrap();
        assert_eq!(l.to_string(), "cos://b-1/p");
    }

    #[test]
    fn conflicting_or_misplaced_flags_are_refused() {
        let e = |args: &[&str]| loc(args).unwrap_err().to_string();
        assert!(e(&["--repo", "s3://a/p", "--bucket", "b"]).contains("different"));
        assert!(e(&["--backup_dir", "s3", "--filepath", "p"]).contains("--bucket"));
        assert!(e(&["--backup_dir", "filesystem", "--bucket", "b"]).contains("--backup_dir s3"));
        assert!(e(&["--backup_dir", "s3", "--bucket", "b", "--path", "/x"]).contains("--path"));
        assert!(e(&["--backup_dir", "tape"]).contains("not supported"));
        assert!(
            e(&["--repo", "/srv/arca", "--endpoint", "http://h"]).contains("object storage only")
        );
        assert!(e(&["--repo", "gs://b/p", "--region", "x"]).contains("--region"));
    }

    #[test]
    fn secrets_in_flags_never_show_in_debug_output() {
        let a = parse(&[
            "--repo",
            "s3://b/p",
            "--access_key_id",
            "AKIAEXAMPLEID",
            "--secret_access_key",
            "wJalrXUtnFEMIEXAMPLEKEY",
        ]);
        let shown = format!("{a:?} {:?}", location(&a).unwrap());
        assert!(!shown.contains("wJalrXUtnFEMIEXAMPLEKEY"), "{shown}");
        assert!(!shown.contains("AKIAEXAMPLEID"), "{shown}");
        assert!(shown.contains("[SECRET]"));
    }
}
