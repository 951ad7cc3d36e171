//! `arca repo add|list|remove`: the named-repository registry
//! ([`arca_ops::repos::registry`]). None of them contacts a store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use arca_ops::repos::registry::{self, NewEntry, Registry, Source, PREFIX};
use arca_repo::Secret;
use comfy_table::{presets, Table};
use serde::Serialize;

use crate::args::{RepoAddArgs, RepoCommand, RepoListArgs, RepoRemoveArgs};
use crate::output::print_json;

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
    if a.secret_access_key.is_some() && a.store_secret_in_config {
        eprintln!(
            "warning: --secret_access_key shows in the process list to every user of this machine; \
             prefer --secret-file PATH or --secret-env VAR"
        );
    }
    let new = NewEntry {
        url: a.url,
        endpoint: a.endpoint,
        region: a.region,
        path_style: a.is_minio,
        role_arn: a.role_arn,
        access_key_id: source(
            a.access_key_id,
            a.access_key_id_env,
            a.access_key_id_file,
            "--access-key-id-env",
        )?,
        secret_access_key: source(
            a.secret_access_key,
            a.secret_env,
            a.secret_file,
            "--secret-env",
        )?,
        store_secret_in_config: a.store_secret_in_config,
    };
    let entry = registry::add(path, &a.name, new)?;
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
        (None, None, Some(p)) => Some(Source::File(p)),
        (None, None, None) => None,
    })
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
    let e = registry::remove(path, &a.name)?;
    println!(
        "removed repository {} ({}) from {}; its data is untouched",
        a.name,
        e.url,
        path.display()
    );
    Ok(())
}
