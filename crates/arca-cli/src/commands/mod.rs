//! One module per verb.

mod backup;
mod check;
mod delete;
pub mod demo;
mod init;
mod list;
mod prune;
mod repair;
mod repo;
mod restore;
mod snapshot;
mod wal;
mod wal_stream;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use arca_repo::{Location, Repository, Scheme, StoreOptions};

use crate::args::{Cli, Command, RepoArgs};
use crate::registry::{self, Lookup};

pub fn run(mut cli: Cli) -> Result<ExitCode> {
    if let Some(r) = cli.command.repo_args_mut() {
        r.config.clone_from(&cli.config);
    }
    match cli.command {
        Command::Init(a) => init::run(a),
        Command::Backup(a) => backup::run(a),
        Command::List(a) => list::run(a),
        Command::Check(a) => check::run(a),
        Command::Restore(a) => restore::run(a),
        Command::Delete(a) => delete::run(a),
        Command::Prune(a) => prune::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Repo(c) => repo::run(c, cli.config.as_deref()),
        Command::WalPush(a) => wal::push(a),
        Command::WalFetch(a) => wal::fetch(a),
        Command::WalStream(a) => wal_stream::run(a),
        Command::Snapshot(c) => snapshot::run(c),
        Command::Repair(c) => repair::run(c),
    }
}

/// How `--repo` was resolved.
enum Origin {
    /// A path or URL.
    Given,
    /// A registered repository.
    Registered { name: String },
    /// A bare name that is not registered, taken as a relative path.
    Unregistered { name: String, config: PathBuf },
}

/// Resolves `--repo`, `ARCA_REPO`, or mo_br's `--backup_dir filesystem --path P`
/// and `--backup_dir s3 --bucket B --filepath P`, with the object-store flags.
/// `--repo NAME` (or `repo:NAME`) is a registered repository
/// ([`registry::lookup`] says when a bare name is one); the flags given
/// override its stored options.
pub fn location(a: &RepoArgs) -> Result<Location> {
    Ok(resolve(a)?.0)
}

fn resolve(a: &RepoArgs) -> Result<(Location, Origin)> {
    let mut opts = StoreOptions {
        endpoint: a.endpoint.clone(),
        region: a.region.clone(),
        path_style: a.is_minio,
        role_arn: a.role_arn.clone(),
        access_key_id: a.access_key_id.clone(),
        secret_access_key: a.secret_access_key.clone(),
    };
    let mut repo = a.repo.clone();
    let mut origin = Origin::Given;
    let mut named = None;
    if let Some(r) = &a.repo {
        match registry::lookup(r, a.config.as_deref())? {
            Lookup::Named(n) => {
                tracing::info!(
                    "repository {} is {} (registered in {})",
                    n.name,
                    n.entry.url,
                    n.config.display()
                );
                opts = n.store_options(&opts)?;
                repo = Some(n.entry.url.clone());
                named = Some(format!(
                    "repository {} (registered in {})",
                    n.name,
                    n.config.display()
                ));
                origin = Origin::Registered { name: n.name };
            }
            Lookup::Unregistered { name, config } => origin = Origin::Unregistered { name, config },
            Lookup::NotAName => {}
        }
    }
    let parse = |r: &str, opts: StoreOptions| match &named {
        Some(what) => Location::parse_with(r, opts).with_context(|| what.clone()),
        None => Ok(Location::parse_with(r, opts)?),
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
        if let Some(r) = &repo {
            if parse(r, opts)? != loc {
                bail!("--repo (or ARCA_REPO) and --bucket/--filepath name different repositories: give one");
            }
        }
        loc
    } else {
        let given = match (&repo, &a.path) {
            (Some(r), None) => r.clone(),
            (None, Some(p)) => p.clone(),
            (Some(r), Some(p)) if r == p => r.clone(),
            (Some(_), Some(_)) => {
                bail!("--repo and --path name different repositories: give one")
            }
            (None, None) => bail!("no repository given: pass --repo PATH|URL or set ARCA_REPO"),
        };
        parse(&given, opts)?
    };
    if a.access_key_id.is_some() || a.secret_access_key.is_some() {
        eprintln!(
            "warning: --access_key_id/--secret_access_key show in the process list to every user of this machine; \
             prefer AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws/credentials"
        );
    }
    Ok((loc, origin))
}

/// The flags that reach the same repository from another process (the
/// restore_command of a restored PostgreSQL): never a secret.
pub fn repo_flags(a: &RepoArgs) -> Result<Vec<String>> {
    let (loc, origin) = resolve(a)?;
    let mut v = vec!["--repo".to_string()];
    match origin {
        Origin::Registered { name } => v.push(format!("repo:{name}")),
        _ => v.push(match loc.local_path() {
            Some(p) => std::path::absolute(p)?.display().to_string(),
            None => loc.to_string(),
        }),
    }
    if let Some(c) = &a.config {
        v.extend([
            "--config".into(),
            std::path::absolute(c)?.display().to_string(),
        ]);
    }
    for (flag, val) in [
        ("--endpoint", &a.endpoint),
        ("--region", &a.region),
        ("--role_arn", &a.role_arn),
    ] {
        if let Some(val) = val {
            v.extend([flag.to_string(), val.clone()]);
        }
    }
    if a.is_minio {
        v.push("--is_minio".into());
    }
    Ok(v)
}

/// A time as users write it: "YYYY-MM-DD HH:MM:SS[.ffffff][+TZ]", RFC 3339,
/// or without a zone in this machine's zone.
pub fn parse_time(s: &str) -> Result<jiff::Timestamp> {
    let t = s.trim();
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts);
    }
    // PostgreSQL's own "+00" offset form.
    let padded = match t.rfind(['+', '-']) {
        Some(i) if i > 10 && t.len() - i == 3 => format!("{t}:00"),
        _ => t.to_string(),
    };
    if let Ok(ts) = padded.parse::<jiff::Timestamp>() {
        return Ok(ts);
    }
    let civil: jiff::civil::DateTime = t.parse().map_err(|_| {
        anyhow!("{s:?} is not a time: write YYYY-MM-DD HH:MM:SS, optionally with .ffffff and a zone such as +00:00")
    })?;
    Ok(civil.to_zoned(jiff::tz::TimeZone::system())?.timestamp())
}

pub fn open(a: &RepoArgs) -> Result<Repository> {
    let (loc, origin) = resolve(a)?;
    let mut repo = Repository::open(&loc).map_err(|e| match (&e, origin) {
        (arca_repo::Error::NoRepository { .. }, Origin::Unregistered { name, config }) => anyhow!(
            "{e}; {name} is not a registered repository name either (`arca repo list` shows those in {})",
            config.display()
        ),
        (arca_repo::Error::NoRepository { location }, Origin::Registered { name }) => anyhow!(
            "no repository at {location} (registered as {name}): create one with `arca init --repo {name}`"
        ),
        _ => e.into(),
    })?;
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
