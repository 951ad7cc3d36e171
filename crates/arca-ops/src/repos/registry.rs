//! The named-repository registry (StarRocks' CREATE/SHOW/DROP REPOSITORY):
//! [`add`] and [`remove`] (`arca repo add|remove`) keep one
//! `[repositories.NAME]` table per repository in a TOML file, [`Registry`]
//! reads it (`arca repo list`), and [`lookup`] resolves `--repo NAME`.
//!
//! ```toml
//! [repositories.prod]
//! url = "s3://backups/prod"
//! endpoint = "http://127.0.0.1:8333"
//! access_key_id = "AKIAEXAMPLE"
//! secret_access_key_env = "PROD_S3_SECRET"
//! ```
//!
//! A credential is stored as where to find it (`*_env`, `*_file`) and read
//! when the repository is used; a secret is written in clear only when the
//! user asks. The file is always written with mode 0600, atomically: a temp
//! file in the same directory, synced, then renamed over the old one.
//!
//! Which file: the one given (the CLI's `--config PATH` or `ARCA_CONFIG`),
//! else `$XDG_CONFIG_HOME/arca/arca.toml`, else `~/.config/arca/arca.toml`.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use arca_repo::{Location, Secret, StoreOptions};
use serde::{Deserialize, Serialize};

use super::{Error, Result};

/// `--repo repo:NAME` always means the registered repository NAME.
pub const PREFIX: &str = "repo:";

const HEADER: &str = "\
# Arca's named repositories. `arca repo add|remove` rewrite this file
# (comments are not kept); see `arca repo add --help`.

";

/// The registry file: `explicit` (the CLI's `--config` or `ARCA_CONFIG`), else
/// `$XDG_CONFIG_HOME/arca/arca.toml`, else `~/.config/arca/arca.toml`;
/// `None` when there is no home directory to look in.
pub fn config_path(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit.filter(|p| !p.as_os_str().is_empty()) {
        return Some(p.to_path_buf());
    }
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = xdg.or_else(|| {
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".config"))
    })?;
    Some(base.join("arca").join("arca.toml"))
}

/// [`config_path`], or an error saying how to give one.
pub fn require_config_path(explicit: Option<&Path>) -> Result<PathBuf> {
    config_path(explicit).ok_or(Error::NoConfigFile)
}

/// Whether `s` can be a repository name: letters, digits, `-`, `_` and `.`,
/// starting with a letter or digit, at most 64 bytes. So a name never holds
/// `/` or `://`, and `.` and `..` are not names.
pub fn is_name(s: &str) -> bool {
    s.len() <= 64
        && s.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

pub fn check_name(s: &str) -> Result<()> {
    if !is_name(s) {
        return Err(Error::BadName {
            name: s.to_string(),
        });
    }
    Ok(())
}

/// Where a credential comes from when the repository is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Stored in the config file (`--store-secret-in-config`, or an access key id).
    Value(Secret),
    /// Read from this environment variable.
    Env(String),
    /// Read from this file (trailing newline dropped).
    File(PathBuf),
}

impl fmt::Display for Source {
    /// `[SECRET]`, `env:VAR` or `file:PATH`: never the value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Value(v) => write!(f, "{v}"),
            Source::Env(v) => write!(f, "env:{v}"),
            Source::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

impl Source {
    /// Checks an environment variable's name; `flag` names where it was
    /// given, for the error.
    pub fn env(var: String, flag: &str) -> Result<Source> {
        if var.is_empty() || var.contains(['=', '\0']) {
            return Err(Error::BadEnvName {
                flag: flag.to_string(),
                var,
            });
        }
        Ok(Source::Env(var))
    }

    /// The value. `secret`: warn if the file holding it is readable by others.
    fn read(&self, what: &'static str, secret: bool, name: &str, config: &Path) -> Result<Secret> {
        let value = match self {
            Source::Value(v) => return Ok(v.clone()),
            Source::Env(var) => match std::env::var(var) {
                Ok(v) => v,
                Err(std::env::VarError::NotPresent) => {
                    return Err(Error::EnvNotSet {
                        name: name.to_string(),
                        what,
                        var: var.clone(),
                        config: config.to_path_buf(),
                    })
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(Error::EnvNotUnicode {
                        name: name.to_string(),
                        what,
                        var: var.clone(),
                    })
                }
            },
            Source::File(p) => {
                if secret {
                    warn_if_readable_by_others(p, &format!("the {what} of repository {name}"));
                }
                fs::read_to_string(p).map_err(|error| Error::CredentialFile {
                    name: name.to_string(),
                    what,
                    path: p.clone(),
                    config: config.to_path_buf(),
                    error,
                })?
            }
        };
        let value = value.trim_end_matches(['\n', '\r']);
        if value.is_empty() {
            return Err(Error::EmptyCredential {
                name: name.to_string(),
                what,
                from: self.to_string(),
            });
        }
        Ok(Secret::new(value))
    }
}

/// Warns that a file holding a credential can be read by other users.
pub fn warn_if_readable_by_others(p: &Path, what: &str) {
    if readable_by_others(p) {
        tracing::warn!(
            "{} ({what}) is readable by other users of this machine: chmod 600 {}",
            p.display(),
            p.display()
        );
    }
}

#[cfg(unix)]
pub fn readable_by_others(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o044 != 0)
}

#[cfg(not(unix))]
pub fn readable_by_others(_: &Path) -> bool {
    false
}

/// One registered repository: its location as `--repo` takes it, the store
/// options, and where its credentials come from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawEntry", into = "RawEntry")]
pub struct Entry {
    /// A URL, or an absolute path.
    pub url: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub path_style: bool,
    pub role_arn: Option<String>,
    pub access_key_id: Option<Source>,
    pub secret_access_key: Option<Source>,
}

/// [`Entry`] as the file spells it: one key per credential source. No
/// `Debug`: it holds secrets as plain strings.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    path_style: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_key_id_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_key_id_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_access_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_access_key_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_access_key_file: Option<PathBuf>,
}

fn one_source(
    key: &str,
    value: Option<String>,
    env: Option<String>,
    file: Option<PathBuf>,
) -> Result<Option<Source>, String> {
    match (value, env, file) {
        (None, None, None) => Ok(None),
        (Some(v), None, None) => Ok(Some(Source::Value(Secret::new(v)))),
        (None, Some(e), None) => Ok(Some(Source::Env(e))),
        (None, None, Some(f)) => Ok(Some(Source::File(f))),
        _ => Err(format!(
            "give one of {key}, {key}_env and {key}_file, not several"
        )),
    }
}

impl TryFrom<RawEntry> for Entry {
    type Error = String;

    fn try_from(r: RawEntry) -> Result<Entry, String> {
        Ok(Entry {
            access_key_id: one_source(
                "access_key_id",
                r.access_key_id,
                r.access_key_id_env,
                r.access_key_id_file,
            )?,
            secret_access_key: one_source(
                "secret_access_key",
                r.secret_access_key,
                r.secret_access_key_env,
                r.secret_access_key_file,
            )?,
            url: r.url,
            endpoint: r.endpoint,
            region: r.region,
            path_style: r.path_style,
            role_arn: r.role_arn,
        })
    }
}

impl From<Entry> for RawEntry {
    fn from(e: Entry) -> RawEntry {
        let mut r = RawEntry {
            url: e.url,
            endpoint: e.endpoint,
            region: e.region,
            path_style: e.path_style,
            role_arn: e.role_arn,
            ..RawEntry::default()
        };
        match e.access_key_id {
            Some(Source::Value(v)) => r.access_key_id = Some(v.expose().to_string()),
            Some(Source::Env(v)) => r.access_key_id_env = Some(v),
            Some(Source::File(p)) => r.access_key_id_file = Some(p),
            None => {}
        }
        match e.secret_access_key {
            Some(Source::Value(v)) => r.secret_access_key = Some(v.expose().to_string()),
            Some(Source::Env(v)) => r.secret_access_key_env = Some(v),
            Some(Source::File(p)) => r.secret_access_key_file = Some(p),
            None => {}
        }
        r
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    repositories: BTreeMap<String, Entry>,
}

/// The registry file, read whole; [`Registry::save`] writes it back.
#[derive(Debug)]
pub struct Registry {
    path: PathBuf,
    exists: bool,
    repos: BTreeMap<String, Entry>,
}

impl Registry {
    /// Reads the registry; a file that does not exist is an empty registry.
    pub fn load(path: &Path) -> Result<Registry> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Registry {
                    path: path.to_path_buf(),
                    exists: false,
                    repos: BTreeMap::new(),
                })
            }
            Err(error) => {
                return Err(Error::ReadConfig {
                    path: path.to_path_buf(),
                    error,
                })
            }
        };
        let file: File = toml::from_str(&text).map_err(|e| Error::InvalidConfig {
            path: path.to_path_buf(),
            line: e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1),
            message: e.message().trim().to_string(),
        })?;
        if let Some(bad) = file.repositories.keys().find(|n| !is_name(n)) {
            return Err(Error::ConfigBadName {
                path: path.to_path_buf(),
                name: bad.clone(),
            });
        }
        Ok(Registry {
            path: path.to_path_buf(),
            exists: true,
            repos: file.repositories,
        })
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.repos.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.repos.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.repos.is_empty()
    }

    /// Registers `name`; refuses a name already taken.
    pub fn insert(&mut self, name: &str, entry: Entry) -> Result<()> {
        check_name(name)?;
        if let Some(old) = self.repos.get(name) {
            return Err(Error::AlreadyRegistered {
                name: name.to_string(),
                config: self.path.clone(),
                url: old.url.clone(),
            });
        }
        self.repos.insert(name.to_string(), entry);
        Ok(())
    }

    /// Forgets `name`; fails if it is not registered.
    pub fn remove(&mut self, name: &str) -> Result<Entry> {
        self.repos
            .remove(name)
            .ok_or_else(|| Error::NothingToRemove {
                name: name.to_string(),
                config: self.path.clone(),
                file_exists: self.exists,
            })
    }

    /// Writes the registry atomically with mode 0600: a temp file in the same
    /// directory, synced, then renamed over the file. A crash leaves the old
    /// file or the new one, never a part; a failed write removes its temp
    /// file. A symlinked config file (dotfiles) is written through the link.
    pub fn save(&self) -> Result<()> {
        let fail = |detail: String| Error::WriteConfig {
            path: self.path.clone(),
            detail,
        };
        let target = match fs::symlink_metadata(&self.path) {
            Ok(m) if m.file_type().is_symlink() => {
                fs::canonicalize(&self.path).map_err(|e| fail(format!("{e}")))?
            }
            _ => self.path.clone(),
        };
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir)
            .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
        let body = toml::to_string(&File {
            repositories: self.repos.clone(),
        })
        .map_err(|e| fail(format!("{e}")))?;
        let name = target
            .file_name()
            .map_or_else(|| "arca.toml".into(), |n| n.to_string_lossy());
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(fs::Permissions::from_mode(0o600));
        }
        let mut tmp = builder.tempfile_in(&dir).map_err(|e| {
            fail(format!(
                "cannot create a temp file in {}: {e}",
                dir.display()
            ))
        })?;
        tmp.write_all(HEADER.as_bytes())
            .and_then(|()| tmp.write_all(body.as_bytes()))
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| fail(format!("{e}")))?;
        tmp.persist(&target)
            .map_err(|e| fail(format!("{}", e.error)))?;
        // The rename is durable once the directory is synced.
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// A repository to register, as `arca repo add` takes it: the location and
/// store options `--repo` takes, and where its credentials come from.
#[derive(Debug, Clone, Default)]
pub struct NewEntry {
    /// A path, or a URL; a relative path is stored as an absolute one.
    pub url: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub path_style: bool,
    pub role_arn: Option<String>,
    pub access_key_id: Option<Source>,
    pub secret_access_key: Option<Source>,
    /// Write a secret access key given as a value into the file, in clear;
    /// without it such a secret is refused.
    pub store_secret_in_config: bool,
}

/// Registers `name` in the registry file `config` and writes it; returns
/// the entry as stored. Does not contact the store: the location and
/// options are checked as `--repo` checks them, with a stand-in for each
/// credential that is read only when the repository is used.
pub fn add(config: &Path, name: &str, new: NewEntry) -> Result<Entry> {
    check_name(name)?;
    let in_clear = matches!(new.secret_access_key, Some(Source::Value(_)));
    match (in_clear, new.store_secret_in_config) {
        (true, false) => {
            return Err(Error::SecretInClear {
                config: config.to_path_buf(),
            })
        }
        (false, true) => return Err(Error::NoSecretToStore),
        _ => {}
    }
    let absolute_file = |s: Option<Source>| -> Result<Option<Source>> {
        Ok(match s {
            Some(Source::File(p)) => Some(Source::File(absolute(&p)?)),
            s => s,
        })
    };
    let id = absolute_file(new.access_key_id)?;
    let secret = absolute_file(new.secret_access_key)?;
    let stand_in = |s: &Option<Source>| {
        s.as_ref().map(|s| match s {
            Source::Value(v) => v.clone(),
            Source::Env(_) | Source::File(_) => Secret::new("stand-in"),
        })
    };
    let opts = StoreOptions {
        endpoint: new.endpoint,
        region: new.region,
        path_style: new.path_style,
        role_arn: new.role_arn,
        access_key_id: stand_in(&id),
        secret_access_key: stand_in(&secret),
    };
    let loc = Location::parse_with(&new.url, opts)?;
    let entry = match &loc {
        Location::Local(p) => Entry {
            url: absolute(p)?.to_string_lossy().into_owned(),
            ..Entry::default()
        },
        Location::Remote(r) => Entry {
            url: loc.to_string(),
            endpoint: r.options.endpoint.clone(),
            region: r.options.region.clone(),
            path_style: r.options.path_style,
            role_arn: r.options.role_arn.clone(),
            access_key_id: id,
            secret_access_key: secret,
        },
    };
    let mut reg = Registry::load(config)?;
    reg.insert(name, entry.clone())?;
    for (what, s) in [
        ("access key id", &entry.access_key_id),
        ("secret access key", &entry.secret_access_key),
    ] {
        match s {
            Some(Source::Env(var)) if std::env::var_os(var).is_none() => tracing::warn!(
                "the environment variable {var} is not set here; it must be wherever `--repo {name}` is used"
            ),
            Some(Source::File(p)) if !p.exists() => tracing::warn!(
                "{} does not exist yet; it is read wherever `--repo {name}` is used",
                p.display()
            ),
            Some(Source::File(p)) if what == "secret access key" => {
                warn_if_readable_by_others(p, &format!("the {what} of {name}"));
            }
            _ => {}
        }
    }
    reg.save()?;
    Ok(entry)
}

/// Forgets `name` in the registry file `config` and writes it; returns what
/// was registered. The repository's data is not touched.
pub fn remove(config: &Path, name: &str) -> Result<Entry> {
    let mut reg = Registry::load(config)?;
    let entry = reg.remove(name)?;
    reg.save()?;
    Ok(entry)
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|error| Error::Absolute {
        path: p.to_path_buf(),
        error,
    })
}

/// A registered repository that `--repo` named.
#[derive(Debug)]
pub struct Named {
    pub name: String,
    pub entry: Entry,
    pub config: PathBuf,
}

/// What a `--repo` value is to the registry.
#[derive(Debug)]
pub enum Lookup {
    /// A registered repository.
    Named(Named),
    /// A bare name nobody registered: a relative path, as before.
    Unregistered { name: String, config: PathBuf },
    /// A path or URL.
    NotAName,
}

/// Resolves `--repo VALUE`. `repo:NAME` must be registered. A bare name
/// (no `/`, no `://`) is the registered repository of that name unless a
/// file or directory of that name exists in the current directory: then it
/// is that path, as it was before the name was registered, with a warning.
/// Anything else is a path or URL and the config file is not read.
pub fn lookup(value: &str, config: Option<&Path>) -> Result<Lookup> {
    if let Some(name) = value.strip_prefix(PREFIX) {
        check_name(name)?;
        let path = require_config_path(config)?;
        let reg = Registry::load(&path)?;
        let Some(entry) = reg.get(name) else {
            return Err(Error::NotRegistered {
                name: name.to_string(),
                config: path,
            });
        };
        return Ok(Lookup::Named(Named {
            name: name.to_string(),
            entry: entry.clone(),
            config: path,
        }));
    }
    if !is_name(value) {
        return Ok(Lookup::NotAName);
    }
    let Some(path) = config_path(config) else {
        return Ok(Lookup::NotAName);
    };
    if fs::symlink_metadata(value).is_ok() {
        // An existing path wins; a broken config file does not stop it.
        if Registry::load(&path).is_ok_and(|r| r.get(value).is_some()) {
            tracing::warn!(
                "--repo {value} means ./{value}, which exists here; \
                 write --repo {PREFIX}{value} for the repository registered as {value} in {}",
                path.display()
            );
        }
        return Ok(Lookup::NotAName);
    }
    let reg = Registry::load(&path)?;
    Ok(match reg.get(value) {
        Some(entry) => Lookup::Named(Named {
            name: value.to_string(),
            entry: entry.clone(),
            config: path,
        }),
        None => Lookup::Unregistered {
            name: value.to_string(),
            config: path,
        },
    })
}

impl Named {
    /// The store options: the flags given on the command line (`cli`), and
    /// the registered ones where no flag was given. Credentials from the
    /// environment or a file are read here, and only if no flag replaced them.
    pub fn store_options(&self, cli: &StoreOptions) -> Result<StoreOptions> {
        let e = &self.entry;
        let cred = |flag: &Option<Secret>, stored: &Option<Source>, what: &'static str| {
            if flag.is_some() {
                return Ok(flag.clone());
            }
            let secret = what == "secret access key";
            if secret && matches!(stored, Some(Source::Value(_))) {
                warn_if_readable_by_others(&self.config, "it holds a secret access key");
            }
            stored
                .as_ref()
                .map(|s| s.read(what, secret, &self.name, &self.config))
                .transpose()
        };
        Ok(StoreOptions {
            endpoint: cli.endpoint.clone().or_else(|| e.endpoint.clone()),
            region: cli.region.clone().or_else(|| e.region.clone()),
            path_style: cli.path_style || e.path_style,
            role_arn: cli.role_arn.clone().or_else(|| e.role_arn.clone()),
            access_key_id: cred(&cli.access_key_id, &e.access_key_id, "access key id")?,
            secret_access_key: cred(
                &cli.secret_access_key,
                &e.secret_access_key,
                "secret access key",
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            url: "s3://backups/prod".into(),
            endpoint: Some("http://127.0.0.1:8333".into()),
            region: Some("eu-central-1".into()),
            path_style: true,
            role_arn: None,
            access_key_id: Some(Source::Value(Secret::new("AKIDEXAMPLE"))),
            secret_access_key: Some(Source::Env("PROD_SECRET".into())),
        }
    }

    #[test]
    fn names_are_plain_words() {
        for ok in ["prod", "prod-eu.2", "a", "9_x", &"n".repeat(64)] {
            assert!(is_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "-x",
            "a/b",
            "s3://b",
            "a b",
            "repo:x",
            &"n".repeat(65),
        ] {
            assert!(!is_name(bad), "{bad}");
        }
    }

    #[test]
    fn entries_round_trip_through_toml_with_flat_keys() {
        let mut repos = BTreeMap::new();
        repos.insert("prod".to_string(), entry());
        let text = toml::to_string(&File {
            repositories: repos,
        })
        .unwrap();
        assert!(text.contains("[repositories.prod]"), "{text}");
        assert!(
            text.contains("secret_access_key_env = \"PROD_SECRET\""),
            "{text}"
        );
        assert!(text.contains("path_style = true"), "{text}");
        assert!(!text.contains("role_arn"), "{text}");
        let back: File = toml::from_str(&text).unwrap();
        assert_eq!(back.repositories["prod"], entry());
    }

    #[test]
    fn two_sources_for_one_credential_or_unknown_keys_are_refused() {
        let both = "[repositories.x]\nurl = \"s3://b\"\nsecret_access_key_env = \"A\"\nsecret_access_key_file = \"/f\"\n";
        let e = toml::from_str::<File>(both).unwrap_err();
        assert!(e.message().contains("not several"), "{e}");
        let typo = "[repositories.x]\nurl = \"s3://b\"\nregoin = \"r\"\n";
        assert!(toml::from_str::<File>(typo).is_err());
    }

    #[test]
    fn debug_and_display_never_show_a_stored_secret() {
        let mut e = entry();
        e.secret_access_key = Some(Source::Value(Secret::new("wJalrXUtnFEMI")));
        let shown = format!("{e:?} {}", e.secret_access_key.as_ref().unwrap());
        assert!(!shown.contains("wJalrXUtnFEMI") && !shown.contains("AKIDEXAMPLE"));
        assert!(shown.contains("[SECRET]"));
    }

    #[test]
    fn command_line_flags_override_the_registry() {
        let n = Named {
            name: "prod".into(),
            entry: entry(),
            config: "/nonexistent/arca.toml".into(),
        };
        // PROD_SECRET is not set, but the flag replaces it, so it is not read.
        let cli = StoreOptions {
            region: Some("us-west-2".into()),
            secret_access_key: Some(Secret::new("from-flag")),
            ..StoreOptions::default()
        };
        let o = n.store_options(&cli).unwrap();
        assert_eq!(o.region.as_deref(), Some("us-west-2"));
        assert_eq!(o.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        assert!(o.path_style);
        assert_eq!(o.secret_access_key.unwrap().expose(), "from-flag");
        assert_eq!(o.access_key_id.unwrap().expose(), "AKIDEXAMPLE");
    }

    #[test]
    fn add_and_remove_rewrite_the_file_privately_and_refuse_a_secret_in_clear() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("conf/arca.toml");
        let e = add(
            &config,
            "local",
            NewEntry {
                url: "some/relative/dir".into(),
                ..NewEntry::default()
            },
        )
        .unwrap();
        let here = std::env::current_dir().unwrap();
        assert_eq!(e.url, here.join("some/relative/dir").to_string_lossy());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&config).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let in_clear = NewEntry {
            url: "s3://b/p".into(),
            access_key_id: Some(Source::Env("ARCA_TEST_UNSET_KEY_ID".into())),
            secret_access_key: Some(Source::Value(Secret::new("wJalrXUtnFEMI"))),
            ..NewEntry::default()
        };
        let err = add(&config, "prod", in_clear.clone())
            .unwrap_err()
            .to_string();
        assert!(err.contains("--store-secret-in-config"), "{err}");
        assert!(!err.contains("wJalrXUtnFEMI"), "{err}");
        let err = add(
            &config,
            "local",
            NewEntry {
                url: "s3://b/p".into(),
                ..NewEntry::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("already registered") && err.contains("arca repo remove local"),
            "{err}"
        );
        add(
            &config,
            "prod",
            NewEntry {
                store_secret_in_config: true,
                ..in_clear
            },
        )
        .unwrap();
        let reg = Registry::load(&config).unwrap();
        assert_eq!(
            reg.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["local", "prod"]
        );
        assert_eq!(remove(&config, "local").unwrap(), e);
        let err = remove(&config, "local").unwrap_err().to_string();
        assert!(err.starts_with("no repository named local in "), "{err}");
        let names: Vec<String> = Registry::load(&config)
            .unwrap()
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        assert_eq!(names, ["prod"]);
        // Only the file was ever written in its directory: no temp file left.
        assert_eq!(fs::read_dir(config.parent().unwrap()).unwrap().count(), 1);
    }
}
