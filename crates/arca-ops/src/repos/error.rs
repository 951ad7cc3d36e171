//! What can go wrong naming, registering or opening a repository. Each
//! message is one line naming the problem and what to do; a cause is part
//! of the message, not a source, so a chain printed in full says it once.

use std::io;
use std::path::PathBuf;

use arca_repo::Scheme;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Repo(#[from] arca_repo::Error),

    // Which repository: the flags and the registry.
    #[error("no repository given: pass --repo PATH|URL or set ARCA_REPO")]
    NoRepositoryGiven,

    #[error("--backup_dir {kind} is not supported: use filesystem (with --path) or s3 (with --bucket and --filepath)")]
    BackupDirUnsupported { kind: String },

    #[error("--bucket and --filepath go with --backup_dir s3, not --backup_dir filesystem")]
    BucketWithFilesystem,

    #[error("--path goes with --backup_dir filesystem: for {scheme} give --bucket and --filepath")]
    PathWithBucket { scheme: Scheme },

    #[error("--backup_dir {scheme} needs --bucket NAME (and --filepath PREFIX)")]
    NoBucket { scheme: Scheme },

    #[error("--repo (or ARCA_REPO) and --bucket/--filepath name different repositories: give one")]
    RepoAndBucketDiffer,

    #[error("--repo and --path name different repositories: give one")]
    RepoAndPathDiffer,

    /// A registered repository's location or options do not parse.
    #[error("repository {name} (registered in {}): {error}", config.display())]
    Registered {
        name: String,
        config: PathBuf,
        error: arca_repo::Error,
    },

    /// A bare name nobody registered, taken as a path where there is none.
    #[error("{error}; {name} is not a registered repository name either (`arca repo list` shows those in {})", config.display())]
    NotRegisteredEither {
        name: String,
        config: PathBuf,
        error: arca_repo::Error,
    },

    #[error("no repository at {location} (registered as {name}): create one with `arca init --repo {name}`")]
    NoRegisteredRepository { name: String, location: String },

    // The registry file.
    #[error("no config file: HOME is not set; pass --config PATH or set ARCA_CONFIG")]
    NoConfigFile,

    #[error("cannot read config file {}: {error}", path.display())]
    ReadConfig { path: PathBuf, error: io::Error },

    #[error("config file {} is not valid{}: {message}", path.display(), at_line(*line))]
    InvalidConfig {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },

    #[error("config file {} registers {name:?}, which is not a valid repository name", path.display())]
    ConfigBadName { path: PathBuf, name: String },

    #[error("cannot write config file {}: {detail}", path.display())]
    WriteConfig { path: PathBuf, detail: String },

    #[error(
        "{name:?} is not a valid repository name: use letters, digits, `-`, `_` and `.`, \
         starting with a letter or digit (at most 64)"
    )]
    BadName { name: String },

    #[error("no repository named {name} in {}: `arca repo list` shows the registered ones, `arca repo add {name} URL` registers one", config.display())]
    NotRegistered { name: String, config: PathBuf },

    /// `remove` of a name that is not there.
    #[error("no repository named {name} in {}{}: `arca repo list` shows the registered ones",
        config.display(), if *file_exists { "" } else { ", which does not exist" })]
    NothingToRemove {
        name: String,
        config: PathBuf,
        file_exists: bool,
    },

    #[error("a repository named {name} is already registered in {} ({url}): remove it first with `arca repo remove {name}`", config.display())]
    AlreadyRegistered {
        name: String,
        config: PathBuf,
        url: String,
    },

    #[error("cannot make {} absolute: {error}", path.display())]
    Absolute { path: PathBuf, error: io::Error },

    // Credentials of a registered repository.
    #[error("{flag} takes the name of an environment variable, not {var:?}")]
    BadEnvName { flag: String, var: String },

    #[error(
        "--secret_access_key would be written in clear into {}: give --secret-env VAR or \
         --secret-file PATH (read when the repository is used), or add --store-secret-in-config \
         to store it anyway",
        config.display()
    )]
    SecretInClear { config: PathBuf },

    #[error("--store-secret-in-config stores --secret_access_key, which was not given")]
    NoSecretToStore,

    #[error("repository {name} takes its {what} from the environment variable {var}, which is not set (registered in {})", config.display())]
    EnvNotSet {
        name: String,
        what: &'static str,
        var: String,
        config: PathBuf,
    },

    #[error("the environment variable {var} (the {what} of repository {name}) is not valid UTF-8")]
    EnvNotUnicode {
        name: String,
        what: &'static str,
        var: String,
    },

    #[error("cannot read the {what} of repository {name} from {}: {error} (registered in {})",
        path.display(), config.display())]
    CredentialFile {
        name: String,
        what: &'static str,
        path: PathBuf,
        config: PathBuf,
        error: io::Error,
    },

    /// `from` is where it was read (`env:VAR`, `file:PATH`), never a value.
    #[error("the {what} of repository {name} ({from}) is empty")]
    EmptyCredential {
        name: String,
        what: &'static str,
        from: String,
    },
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(" at line {l}")).unwrap_or_default()
}
