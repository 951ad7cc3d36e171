//! Which repository: `--repo PATH|URL|NAME` and mo_br's location flags
//! resolved to a [`Location`], and opened, the same way for the CLI and for
//! a daemon. A [`RepoSpec`] holds what was given; [`open`] opens it,
//! [`location`] only resolves it, and [`reopen_args`] gives the flags that
//! reach the same repository from another process.
//!
//! ```no_run
//! # fn main() -> arca_ops::repos::Result<()> {
//! use arca_ops::repos::{self, RepoSpec};
//!
//! let spec = RepoSpec {
//!     repo: Some("prod".into()), // registered with `arca repo add prod URL`
//!     ..RepoSpec::default()
//! };
//! let repo = repos::open(&spec)?;
//! # Ok(()) }
//! ```

mod error;
pub mod registry;

use std::path::PathBuf;
use std::time::Duration;

use arca_repo::{Location, Repository, Scheme, Secret, StoreOptions};

pub use error::{Error, Result};
use registry::Lookup;

/// How long to wait for another arca holding a conflicting lock, unless told.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(300);

/// Where a repository is, as it was given: `repo` (a path, a URL, or the
/// name of a registered repository), or mo_br's `backup_dir` with `path`,
/// or with `bucket` and `filepath`; and the store options, which override a
/// registered repository's. `Debug` never shows a credential.
#[derive(Debug, Clone)]
pub struct RepoSpec {
    pub repo: Option<String>,
    /// The registry file; `None` is the default one ([`registry::config_path`]).
    pub config: Option<PathBuf>,
    /// mo_br: `filesystem`, `s3`, or another store's scheme name.
    pub backup_dir: Option<String>,
    /// mo_br: the location for `backup_dir` filesystem.
    pub path: Option<String>,
    pub bucket: Option<String>,
    /// The prefix inside `bucket`.
    pub filepath: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// S3 path-style addressing (mo_br's `--is_minio`).
    pub is_minio: bool,
    pub role_arn: Option<String>,
    pub access_key_id: Option<Secret>,
    pub secret_access_key: Option<Secret>,
    pub lock_wait: Duration,
}

impl Default for RepoSpec {
    fn default() -> RepoSpec {
        RepoSpec {
            repo: None,
            config: None,
            backup_dir: None,
            path: None,
            bucket: None,
            filepath: None,
            endpoint: None,
            region: None,
            is_minio: false,
            role_arn: None,
            access_key_id: None,
            secret_access_key: None,
            lock_wait: DEFAULT_LOCK_WAIT,
        }
    }
}

/// A [`RepoSpec`] resolved: the location, and how it was named.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub location: Location,
    pub origin: Origin,
}

/// How `repo` was resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A path or URL, or mo_br's flags.
    Given,
    /// A registered repository.
    Registered { name: String },
    /// A bare name that is not registered, taken as a relative path.
    Unregistered { name: String, config: PathBuf },
}

/// Resolves `repo`, or mo_br's `backup_dir filesystem` with `path` and
/// `backup_dir s3` with `bucket` and `filepath`, with the store options.
/// A name (or `repo:NAME`) is a registered repository ([`registry::lookup`]
/// says when a bare name is one); the options given override its stored
/// ones. Reads the registry file only for a name.
pub fn resolve(a: &RepoSpec) -> Result<Resolved> {
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
                named = Some((n.name.clone(), n.config));
                origin = Origin::Registered { name: n.name };
            }
            Lookup::Unregistered { name, config } => origin = Origin::Unregistered { name, config },
            Lookup::NotAName => {}
        }
    }
    let parse = |r: &str, opts: StoreOptions| {
        Location::parse_with(r, opts).map_err(|error| match &named {
            Some((name, config)) => Error::Registered {
                name: name.clone(),
                config: config.clone(),
                error,
            },
            None => Error::Repo(error),
        })
    };
    let kind = a.backup_dir.as_deref().map(str::to_ascii_lowercase);
    let store = match kind.as_deref() {
        None | Some("filesystem") => None,
        Some(k) => Some(
            Scheme::from_name(k).ok_or_else(|| Error::BackupDirUnsupported { kind: k.into() })?,
        ),
    };
    let bucket_form = a.bucket.is_some() || a.filepath.is_some();
    if kind.as_deref() == Some("filesystem") && bucket_form {
        return Err(Error::BucketWithFilesystem);
    }
    let location = if store.is_some() || bucket_form {
        let scheme = store.unwrap_or(Scheme::S3);
        if a.path.is_some() {
            return Err(Error::PathWithBucket { scheme });
        }
        let Some(bucket) = &a.bucket else {
            return Err(Error::NoBucket { scheme });
        };
        let prefix = a.filepath.as_deref().unwrap_or("");
        let loc = Location::remote(scheme, bucket, prefix, opts.clone())?;
        if let Some(r) = &repo {
            if parse(r, opts)? != loc {
                return Err(Error::RepoAndBucketDiffer);
            }
        }
        loc
    } else {
        let given = match (&repo, &a.path) {
            (Some(r), None) => r.clone(),
            (None, Some(p)) => p.clone(),
            (Some(r), Some(p)) if r == p => r.clone(),
            (Some(_), Some(_)) => return Err(Error::RepoAndPathDiffer),
            (None, None) => return Err(Error::NoRepositoryGiven),
        };
        parse(&given, opts)?
    };
    Ok(Resolved { location, origin })
}

/// Where the repository of `a` is; see [`resolve`].
pub fn location(a: &RepoSpec) -> Result<Location> {
    Ok(resolve(a)?.location)
}

/// Opens the repository of `a`, with its `lock_wait`. A missing repository's
/// error says how it was named.
pub fn open(a: &RepoSpec) -> Result<Repository> {
    let Resolved { location, origin } = resolve(a)?;
    let mut repo = Repository::open(&location).map_err(|e| match (e, origin) {
        (error @ arca_repo::Error::NoRepository { .. }, Origin::Unregistered { name, config }) => {
            Error::NotRegisteredEither {
                name,
                config,
                error,
            }
        }
        (arca_repo::Error::NoRepository { location }, Origin::Registered { name }) => {
            Error::NoRegisteredRepository { name, location }
        }
        (e, _) => Error::Repo(e),
    })?;
    repo.lock_wait = a.lock_wait;
    Ok(repo)
}

/// The arguments that reach the same repository from another process (the
/// restore_command of a restored PostgreSQL): a registered repository by
/// its name, a local one by its absolute path; the registry file and store
/// options given. Never a credential: the other process finds those where
/// this one did, or in the registry.
pub fn reopen_args(a: &RepoSpec) -> Result<Vec<String>> {
    let Resolved { location, origin } = resolve(a)?;
    let absolute = |p: &std::path::Path| {
        std::path::absolute(p)
            .map(|p| p.display().to_string())
            .map_err(|error| Error::Absolute {
                path: p.to_path_buf(),
                error,
            })
    };
    let mut v = vec!["--repo".to_string()];
    match origin {
        Origin::Registered { name } => v.push(format!("{}{name}", registry::PREFIX)),
        _ => v.push(match location.local_path() {
            Some(p) => absolute(p)?,
            None => location.to_string(),
        }),
    }
    if let Some(c) = &a.config {
        v.extend(["--config".into(), absolute(c)?]);
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

#[cfg(test)]
mod tests;
