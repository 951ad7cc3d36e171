//! The daemon's TOML file: repositories, sources, plans and tokens.
//!
//! [`Config::load`] reads and checks it whole, collecting every problem as
//! one line that names the key and what to write, so a bad file is fixed in
//! one pass. What needs the network (a repository or source that does not
//! answer) is checked by [`crate::probe`] after this.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use arca_ops::repos::registry::Entry;
use arca_ops::retention::Policy;
use arca_ops::schedule::Schedule;
use serde::Deserialize;

/// Where the daemon listens unless told.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";
/// When a plan runs unless told (in its time zone).
pub const DEFAULT_SCHEDULE: &str = "daily 01:00";

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub listen: SocketAddr,
    /// The job history and events (SQLite).
    pub catalog: PathBuf,
    /// Jobs running at once, across sources.
    pub max_jobs: usize,
    /// A run missed while the daemon was down runs once at start.
    pub run_missed: bool,
    pub webhook: Option<Webhook>,
    pub tls: Option<Tls>,
    pub repositories: Vec<RepositoryConfig>,
    pub sources: Vec<SourceConfig>,
    pub plans: Vec<PlanConfig>,
    pub tokens: Vec<TokenConfig>,
}

#[derive(Debug, Clone)]
pub struct RepositoryConfig {
    pub name: String,
    /// Any `--repo` form, with the credential sources of `arca repo add`.
    pub entry: Entry,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SourceConfig {
    pub name: String,
    pub url: String,
    /// A file holding the source's password (its first line).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Backup threads.
    #[serde(default = "default_parallelism")]
    pub parallelism: usize,
}

fn default_parallelism() -> usize {
    2
}

#[derive(Debug, Clone)]
pub struct PlanConfig {
    pub name: String,
    pub source: String,
    pub repository: String,
    pub schedule: Schedule,
    pub full: bool,
    pub log_archiving: bool,
    pub retention: Policy,
    /// When to run a restore drill of the newest backup, if ever.
    pub drill: Option<Schedule>,
    /// Where drills restore to (created if missing; left empty).
    pub drill_scratch: PathBuf,
}

impl PlanConfig {
    pub fn has_retention(&self) -> bool {
        self.retention != Policy::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone)]
pub struct TokenConfig {
    pub name: String,
    pub role: Role,
    pub sha256: [u8; 32],
}

#[derive(Debug, Clone, Deserialize)]
pub struct Webhook {
    pub url: String,
    /// `failure` (the default) or `all`.
    #[serde(default = "default_webhook_on")]
    pub on: String,
}

/// HTTPS: a certificate chain and its key, PEM files.
#[derive(Debug, Clone, Deserialize)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn default_webhook_on() -> String {
    "failure".into()
}

/// The file as written; checked into a [`Config`].
#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    listen: Option<String>,
    #[serde(default)]
    catalog: Option<PathBuf>,
    #[serde(default)]
    max_jobs: Option<usize>,
    #[serde(default)]
    run_missed: Option<bool>,
    #[serde(default)]
    webhook: Option<Webhook>,
    #[serde(default)]
    tls: Option<Tls>,
    #[serde(default)]
    repository: Vec<toml::Table>,
    #[serde(default)]
    source: Vec<SourceConfig>,
    #[serde(default)]
    plan: Vec<RawPlan>,
    #[serde(default)]
    token: Vec<RawToken>,
}

#[derive(Deserialize)]
struct RawPlan {
    name: String,
    source: String,
    repository: String,
    #[serde(default)]
    schedule: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
    /// `incremental` (the default) or `full`.
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    log_archiving: bool,
    #[serde(default)]
    purge_after_days: Option<u32>,
    #[serde(default)]
    keep_last: Option<u32>,
    #[serde(default)]
    keep_daily: Option<u32>,
    #[serde(default)]
    keep_weekly: Option<u32>,
    #[serde(default)]
    keep_monthly: Option<u32>,
    #[serde(default)]
    keep_min: Option<u32>,
    /// A schedule for restore drills, in the plan's time zone.
    #[serde(default)]
    drill: Option<String>,
    #[serde(default)]
    drill_scratch: Option<PathBuf>,
}

#[derive(Deserialize)]
struct RawToken {
    name: String,
    role: Role,
    sha256: String,
}

/// Every problem found, a line each.
#[derive(Debug)]
pub struct Problems(pub Vec<String>);

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl Config {
    /// Reads and checks the file. `listen` overrides the file's.
    pub fn load(path: &Path, listen: Option<&str>) -> Result<Config, Problems> {
        let p = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Problems(vec![format!("{p}: cannot read the configuration: {e}")]))?;
        Config::parse(path, &text, listen)
    }

    pub fn parse(path: &Path, text: &str, listen: Option<&str>) -> Result<Config, Problems> {
        let p = path.display();
        let one_line = |e: toml::de::Error| {
            // toml's message spans lines (a snippet of the file): keep the
            // reason and where, on one line.
            let msg = e.message().trim().replace('\n', " ");
            let at = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            Problems(vec![format!("{p}{at}: {msg}")])
        };
        // Unknown keys are collected, not fatal one by one: each gets its
        // line with the others' problems.
        let mut unknown = Vec::new();
        let de = toml::Deserializer::parse(text).map_err(one_line)?;
        let raw: RawConfig = serde_ignored::deserialize(de, |path| unknown.push(path.to_string()))
            .map_err(one_line)?;
        let mut problems = Vec::new();
        let mut bad = |s: String| problems.push(format!("{p}: {s}"));
        for key in &unknown {
            bad(format!(
                "unknown key {key}: remove it or correct its spelling (docs/serve.md lists every key)"
            ));
        }

        let listen_text = listen
            .map(str::to_string)
            .or(raw.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen = match listen_text.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                bad(format!(
                    "listen = {listen_text:?} is not an address: write e.g. \"{DEFAULT_LISTEN}\""
                ));
                DEFAULT_LISTEN.parse().expect("default address")
            }
        };
        let max_jobs = raw.max_jobs.unwrap_or(2);
        if max_jobs == 0 {
            bad("max_jobs = 0 would never run a job: write 1 or more".into());
        }
        if let Some(w) = &raw.webhook {
            if !w.url.starts_with("http://") && !w.url.starts_with("https://") {
                bad(format!(
                    "webhook.url = {:?}: write an http:// or https:// URL",
                    w.url
                ));
            }
            if !matches!(w.on.as_str(), "failure" | "all") {
                bad(format!(
                    "webhook.on = {:?}: write \"failure\" or \"all\"",
                    w.on
                ));
            }
        }

        if let Some(t) = &raw.tls {
            for (key, f) in [("tls.cert", &t.cert), ("tls.key", &t.key)] {
                if let Err(e) = std::fs::File::open(f) {
                    bad(format!(
                        "{key} = {:?}: {e}: give a readable PEM file",
                        f.display().to_string()
                    ));
                }
            }
        }

        let mut repositories = Vec::new();
        let mut names = BTreeSet::new();
        for (i, mut t) in raw.repository.into_iter().enumerate() {
            let name = match t.remove("name") {
                Some(toml::Value::String(n)) => n,
                _ => {
                    bad(format!(
                        "repository #{}: name is missing: write name = \"local\"",
                        i + 1
                    ));
                    continue;
                }
            };
            if !arca_ops::repos::registry::is_name(&name) {
                bad(format!("repository {name:?}: the name must be letters, digits, '-', '_' or '.', up to 64"));
            }
            if !names.insert(name.clone()) {
                bad(format!("repository {name:?} is defined twice"));
            }
            match toml::Value::Table(t).try_into::<Entry>() {
                Ok(entry) => repositories.push(RepositoryConfig { name, entry }),
                Err(e) => bad(format!(
                    "repository {name}: {}",
                    e.message().trim().replace('\n', " ")
                )),
            }
        }

        let mut snames = BTreeSet::new();
        for s in &raw.source {
            if !snames.insert(s.name.clone()) {
                bad(format!("source {:?} is defined twice", s.name));
            }
            if let Err(e) = arca_ops::engine::for_source(&s.url) {
                bad(format!("source {}: url: {e}", s.name));
            }
            if s.parallelism == 0 {
                bad(format!(
                    "source {}: parallelism = 0: write 1 or more",
                    s.name
                ));
            }
        }

        let zone_default = jiff::tz::TimeZone::system()
            .iana_name()
            .unwrap_or("UTC")
            .to_string();
        let mut plans = Vec::new();
        let mut pnames = BTreeSet::new();
        for r in raw.plan {
            let n = &r.name;
            if !pnames.insert(n.clone()) {
                bad(format!("plan {n:?} is defined twice"));
            }
            if !snames.contains(&r.source) {
                bad(format!(
                    "plan {n}: source = {:?} is not a [[source]] of this file: write one of {}",
                    r.source,
                    list(&snames)
                ));
            }
            if !names.contains(&r.repository) {
                bad(format!(
                    "plan {n}: repository = {:?} is not a [[repository]] of this file: write one of {}",
                    r.repository,
                    list(&names)
                ));
            }
            let text = r.schedule.as_deref().unwrap_or(DEFAULT_SCHEDULE);
            let zone = r.timezone.as_deref().unwrap_or(&zone_default);
            let schedule = match Schedule::parse(text, zone) {
                Ok(s) => Some(s),
                Err(e) => {
                    bad(format!("plan {n}: {e}"));
                    None
                }
            };
            let full = match r.kind.as_deref() {
                None | Some("incremental") => false,
                Some("full") => true,
                Some(k) => {
                    bad(format!(
                        "plan {n}: kind = {k:?}: write \"incremental\" or \"full\""
                    ));
                    false
                }
            };
            if r.log_archiving {
                let url = raw
                    .source
                    .iter()
                    .find(|s| s.name == r.source)
                    .map(|s| s.url.as_str());
                if let Some(e) = url.and_then(|u| arca_ops::engine::for_source(u).ok()) {
                    if e.name() == arca_repo::EngineName::Sqlite {
                        bad(format!(
                            "plan {n}: log_archiving = true: {} keeps no log to archive; leave it out",
                            e.title()
                        ));
                    }
                }
            }
            let retention = Policy {
                purge_after_days: r.purge_after_days,
                keep_last: r.keep_last,
                keep_daily: r.keep_daily,
                keep_weekly: r.keep_weekly,
                keep_monthly: r.keep_monthly,
                keep_min: r.keep_min.unwrap_or(Policy::default().keep_min),
            };
            // A plan without retention keeps everything; one with any rule
            // is checked as `arca forget` checks it.
            if retention != Policy::default() {
                if let Err(e) = retention.validate() {
                    bad(format!("plan {n}: {e}"));
                }
            }
            let drill = match r.drill.as_deref() {
                None => None,
                Some(d) => match Schedule::parse(d, zone) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        bad(format!("plan {n}: drill: {e}"));
                        None
                    }
                },
            };
            if r.drill_scratch.is_some() && r.drill.is_none() {
                bad(format!(
                    "plan {n}: drill_scratch without drill: add drill = \"daily 03:00\" (when drills run) or leave drill_scratch out"
                ));
            }
            let drill_scratch = r
                .drill_scratch
                .unwrap_or_else(|| std::env::temp_dir().join("arca-drills"));
            if let Some(schedule) = schedule {
                plans.push(PlanConfig {
                    name: r.name,
                    source: r.source,
                    repository: r.repository,
                    schedule,
                    full,
                    log_archiving: r.log_archiving,
                    retention,
                    drill,
                    drill_scratch,
                });
            }
        }

        let mut tokens = Vec::new();
        for t in raw.token {
            let mut sha = [0u8; 32];
            match hex::decode_to_slice(t.sha256.trim(), &mut sha) {
                Ok(()) => tokens.push(TokenConfig {
                    name: t.name,
                    role: t.role,
                    sha256: sha,
                }),
                Err(_) => bad(format!(
                    "token {}: sha256 must be 64 hex digits: write the output of `printf %s TOKEN | sha256sum`",
                    t.name
                )),
            }
        }

        let catalog = raw.catalog.unwrap_or_else(|| {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            dir.unwrap_or(Path::new(".")).join("arca-catalog.db")
        });
        if !problems.is_empty() {
            return Err(Problems(problems));
        }
        Ok(Config {
            path: path.to_path_buf(),
            listen,
            catalog,
            max_jobs,
            run_missed: raw.run_missed.unwrap_or(true),
            webhook: raw.webhook,
            tls: raw.tls,
            repositories,
            sources: raw.source,
            plans,
            tokens,
        })
    }

    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name == name)
    }

    pub fn repository(&self, name: &str) -> Option<&RepositoryConfig> {
        self.repositories.iter().find(|r| r.name == name)
    }

    pub fn plan(&self, name: &str) -> Option<&PlanConfig> {
        self.plans.iter().find(|p| p.name == name)
    }

    /// The plan that backs a source up: the first naming it.
    pub fn plan_of(&self, source: &str) -> Option<&PlanConfig> {
        self.plans.iter().find(|p| p.source == source)
    }
}

fn list(names: &BTreeSet<String>) -> String {
    if names.is_empty() {
        return "(none defined)".into();
    }
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}
