//! `arca repo add|list|remove`: the named-repository registry
//! ([`crate::registry`]). None of them contacts a store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use arca_repo::{Location, Secret, StoreOptions};
use comfy_table::{presets, Table};
use serde::Serialize;

use crate::args::{RepoAddArgs, RepoCommand, RepoListArgs, RepoRemoveArgs};
use crate::output::print_json;
use crate::registry::{self, Entry, Registry, Source, PREFIX};

pub fn run(c: RepoCommand, config: Option<&Path>) -> Result<ExitCode> {
    let path = registry::require_config_path(config)?;
    match c {
        RepoCommand::Add(a) => add(*a, &path),
        RepoCommand::List(a) => list(a, &path),
        RepoCommand::Remove(a) => remove(a, &path),
    }?;
    Ok(ExitCode::SUCCESS)
}

fn add(a: RepoAddArgs, path: &Path) -> Result<()> {
    registry::check_name(&a.name)?;
    match (a.secret_access_key.is_some(), a.store_secret_in_config) {
        (true, false) => bail!(
            "--secret_access_key would be written in clear into {}: give --secret-env VAR or \
             --secret-file PATH (read when the repository is used), or add --store-secret-in-config \
             to store it anyway",
            path.display()
        ),
        (false, true) => bail!(
            "--store-secret-in-config stores --secret_access_key, which was not given"
        ),
        (true, true) => eprintln!(
            "warning: --secret_access_key shows in the process list to every user of this machine; \
             prefer --secret-file PATH or --secret-env VAR"
        ),
        (false, false) => {}
    }
    let id = source(
        a.access_key_id,
        a.access_key_id_env,
        a.access_key_id_file,
        "--access-key-id-env",
    )?;
    let secret = source(
        a.secret_access_key,
        a.secret_env,
        a.secret_file,
        "--secret-env",
    )?;
    // Check the location and options exactly as `--repo` does, with a
    // stand-in for each credential that is read only when the repository is used.
    let stand_in = |s: &Option<Source>| {
        s.as_ref().map(|s| match s {
            Source::Value(v) => v.clone(),
            Source::Env(_) | Source::File(_) => Secret::new("stand-in"),
        })
    };
    let opts = StoreOptions {
        endpoint: a.endpoint,
        region: a.region,
        path_style: a.is_minio,
        role_arn: a.role_arn,
        access_key_id: stand_in(&id),
        secret_access_key: stand_in(&secret),
    };
    let loc = Location::parse_with(&a.url, opts)?;
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
    let mut reg = Registry::load(path)?;
    reg.insert(&a.name, entry.clone())?;
    for (what, s) in [
        ("access key id", &entry.access_key_id),
        ("secret access key", &entry.secret_access_key),
    ] {
        match s {
            Some(Source::Env(var)) if std::env::var_os(var).is_none() => eprintln!(
                "warning: the environment variable {var} is not set here; it must be wherever `--repo {}` is used",
                a.name
            ),
            Some(Source::File(p)) if !p.exists() => eprintln!(
                "warning: {} does not exist yet; it is read wherever `--repo {}` is used",
                p.display(),
                a.name
            ),
            Some(Source::File(p)) if what == "secret access key" => {
                registry::warn_if_readable_by_others(p, &format!("the {what} of {}", a.name));
            }
            _ => {}
        }
    }
    reg.save()?;
    println!(
        "added repository {}: {} (in {})",
        a.name,
        entry.url,
        path.display()
    );
    if Path::new(&a.name).exists() {
        eprintln!(
            "note: ./{} exists here, so `--repo {}` run from this directory means it; \
             `--repo {PREFIX}{}` always means the registered repository",
            a.name, a.name, a.name
        );
    }
    Ok(())
}

/// The one source of a credential among its three flags (clap refuses two).
fn source(
    value: Option<Secret>,
    env: Option<String>,
    file: Option<PathBuf>,
    env_flag: &str,
) -> Result<Option<Source>> {
    Ok(match (value, env, file) {
        (Some(v), _, _) => Some(Source::Value(v)),
        (None, Some(var), _) => Some(Source::env(var, env_flag)?),
        (None, None, Some(p)) => Some(Source::File(absolute(&p)?)),
        (None, None, None) => None,
    })
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| anyhow!("cannot make {} absolute: {e}", p.display()))
}

/// A registered repository as `repo list --json` prints it: credentials as
/// where they come from, never their values.
#[derive(Serialize)]
struct RepoJson<'a> {
    name: &'a str,
    url: &'a str,
    endpoint: &'a Option<String>,
    region: &'a Option<String>,
    path_style: bool,
    role_arn: &'a Option<String>,
    /// `[SECRET]`, `env:VAR`, `file:PATH`, or null (the store's defaults).
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
}

fn list(a: RepoListArgs, path: &Path) -> Result<()> {
    let reg = Registry::load(path)?;
    if a.json {
        let v: Vec<RepoJson> = reg
            .iter()
            .map(|(name, e)| RepoJson {
                name,
                url: &e.url,
                endpoint: &e.endpoint,
                region: &e.region,
                path_style: e.path_style,
                role_arn: &e.role_arn,
                access_key_id: e.access_key_id.as_ref().map(Source::to_string),
                secret_access_key: e.secret_access_key.as_ref().map(Source::to_string),
            })
            .collect();
        return print_json(&v);
    }
    if reg.is_empty() {
        println!(
            "no repositories registered in {}: add one with `arca repo add NAME URL`",
            path.display()
        );
        return Ok(());
    }
    let mut t = Table::new();
    t.load_preset(presets::ASCII_MARKDOWN);
    t.set_header(["NAME", "LOCATION", "OPTIONS", "CREDENTIALS"]);
    for (name, e) in reg.iter() {
        let mut opts = Vec::new();
        if let Some(v) = &e.endpoint {
            opts.push(format!("endpoint={v}"));
        }
        if let Some(v) = &e.region {
            opts.push(format!("region={v}"));
        }
        if e.path_style {
            opts.push("path-style".to_string());
        }
        if let Some(v) = &e.role_arn {
            opts.push(format!("role_arn={v}"));
        }
        let mut creds = Vec::new();
        if let Some(s) = &e.access_key_id {
            creds.push(format!("key id {s}"));
        }
        if let Some(s) = &e.secret_access_key {
            creds.push(format!("secret {s}"));
        }
        if creds.is_empty() && e.url.contains("://") {
            creds.push("store defaults".to_string());
        }
        t.add_row([
            name.clone(),
            e.url.clone(),
            opts.join(", "),
            creds.join(", "),
        ]);
    }
    println!("{t}");
    println!("registered in {}", path.display());
    Ok(())
}

fn remove(a: RepoRemoveArgs, path: &Path) -> Result<()> {
    let mut reg = Registry::load(path)?;
    let e = reg.remove(&a.name)?;
    reg.save()?;
    println!(
        "removed repository {} ({}) from {}; its data is untouched",
        a.name,
        e.url,
        path.display()
    );
    Ok(())
}
