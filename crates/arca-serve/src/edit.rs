//! Changes to the configuration file made through the daemon (`CREATE
//! REPOSITORY`, `DROP REPOSITORY`): the file is edited in place with its
//! comments and layout kept, written whole to a temporary and renamed,
//! then read back and checked as a reload is; a file that does not check
//! is put back as it was. A secret is never written into the file: it goes
//! to a file of its own (mode 0600) that the configuration names.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::http::StatusCode;
use toml_edit::{value, ArrayOfTables, DocumentMut, Item, Table};

use crate::api::ApiError;
use crate::State;

/// One edit at a time.
static EDITING: Mutex<()> = Mutex::new(());

fn refused(m: impl Into<String>) -> ApiError {
    ApiError {
        field: Some("sql".into()),
        ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m)
    }
}

fn internal(m: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, m.to_string())
}

/// The StarRocks properties a repository takes, and the configuration
/// keys they become.
const PROPERTIES: &[(&str, &str)] = &[
    ("aws.s3.access_key", "access_key_id"),
    ("aws.s3.secret_key", "secret_access_key"),
    ("aws.s3.endpoint", "endpoint"),
    ("aws.s3.region", "region"),
    ("aws.s3.enable_path_style_access", "path_style"),
];

pub fn add_repository(
    state: &State,
    name: &str,
    location: &str,
    properties: &[(String, String)],
) -> Result<(), ApiError> {
    let _g = EDITING.lock().unwrap_or_else(|p| p.into_inner());
    let cfg = state.config();
    if !arca_ops::repos::registry::is_name(name) {
        return Err(refused(format!(
            "repository name {name:?}: use letters, digits, '-', '_' or '.', up to 64"
        )));
    }
    if cfg.repository(name).is_some() {
        return Err(refused(format!(
            "repository {name} exists: DROP REPOSITORY {name} first, or choose another name"
        )));
    }
    let mut t = Table::new();
    t.insert("name", value(name));
    t.insert("url", value(location));
    let mut secret = None;
    for (k, v) in properties {
        let Some((_, key)) = PROPERTIES.iter().find(|(p, _)| p.eq_ignore_ascii_case(k)) else {
            let known: Vec<&str> = PROPERTIES.iter().map(|(p, _)| *p).collect();
            return Err(refused(format!(
                "unknown property {k:?}: a repository takes {}",
                known.join(", ")
            )));
        };
        match *key {
            "secret_access_key" => secret = Some(v.clone()),
            "path_style" => {
                let on = match v.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(refused(format!("{k} must be \"true\" or \"false\""))),
                };
                t.insert("path_style", value(on));
            }
            key => {
                t.insert(key, value(v.as_str()));
            }
        }
    }
    let secret_file = match &secret {
        Some(s) => {
            let f = secret_path(&cfg.path, name);
            write_private(&f, s).map_err(|e| {
                internal(format!(
                    "cannot write the secret key file {}: {e}",
                    f.display()
                ))
            })?;
            t.insert("secret_access_key_file", value(f.display().to_string()));
            Some(f)
        }
        None => None,
    };
    let old = std::fs::read_to_string(&cfg.path).map_err(internal)?;
    let mut doc: DocumentMut = old.parse().map_err(internal)?;
    match doc.get_mut("repository") {
        Some(Item::ArrayOfTables(a)) => a.push(t),
        Some(_) => {
            return Err(internal(
                "the configuration's `repository` is not [[repository]]",
            ))
        }
        None => {
            let mut a = ArrayOfTables::new();
            a.push(t);
            doc.insert("repository", Item::ArrayOfTables(a));
        }
    }
    let result = apply(
        state,
        &cfg.path,
        &old,
        &doc.to_string(),
        Some((name, location)),
    );
    if result.is_err() {
        if let Some(f) = secret_file {
            let _ = std::fs::remove_file(f);
        }
    }
    result
}

pub fn remove_repository(state: &State, name: &str) -> Result<(), ApiError> {
    let _g = EDITING.lock().unwrap_or_else(|p| p.into_inner());
    let cfg = state.config();
    let old = std::fs::read_to_string(&cfg.path).map_err(internal)?;
    let mut doc: DocumentMut = old.parse().map_err(internal)?;
    let Some(Item::ArrayOfTables(a)) = doc.get_mut("repository") else {
        return Err(refused(format!(
            "no repository {name} in {}",
            cfg.path.display()
        )));
    };
    let before = a.len();
    a.retain(|t| t.get("name").and_then(|n| n.as_str()) != Some(name));
    if a.len() == before {
        return Err(refused(format!(
            "no repository {name} in {}",
            cfg.path.display()
        )));
    }
    if a.is_empty() {
        doc.remove("repository");
    }
    apply(state, &cfg.path, &old, &doc.to_string(), None)?;
    let _ = std::fs::remove_file(secret_path(&cfg.path, name));
    Ok(())
}

/// Writes `new`, creates a new repository at its location if none is
/// there, and takes the file as a reload would; on any failure the old
/// file is put back.
fn apply(
    state: &State,
    path: &Path,
    old: &str,
    new: &str,
    created: Option<(&str, &str)>,
) -> Result<(), ApiError> {
    write_atomic(path, new).map_err(internal)?;
    let undo = |e: ApiError| {
        let _ = write_atomic(path, old);
        e
    };
    let listen = state.config().listen.to_string();
    let parsed = crate::config::Config::load(path, Some(&listen))
        .map_err(|p| undo(refused(p.to_string().replace('\n', "; "))))?;
    if let Some((name, location)) = created {
        let r = parsed.repository(name).expect("just added");
        let spec = crate::work::repo_spec(&parsed, r).map_err(|e| undo(refused(e)))?;
        let loc = arca_ops::repos::location(&spec).map_err(|e| undo(refused(e.to_string())))?;
        match arca_repo::Repository::open(&loc) {
            Ok(_) => {}
            Err(arca_repo::Error::NoRepository { .. }) => {
                arca_repo::Repository::init(&loc, &arca_repo::InitOptions::default()).map_err(
                    |e| {
                        undo(refused(format!(
                            "cannot create a repository at {location}: {e}"
                        )))
                    },
                )?;
            }
            Err(e) => {
                return Err(undo(refused(format!(
                    "repository {name} at {location}: {e}"
                ))))
            }
        }
    }
    let checked = crate::check_config(path, Some(&listen))
        .map_err(|e| undo(refused(e.to_string().replace('\n', "; "))))?;
    state.set_config(checked);
    state.wake.notify_one();
    Ok(())
}

fn secret_path(config: &Path, name: &str) -> PathBuf {
    let dir = config
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    dir.join("arca-secrets")
        .join(format!("{name}.secret_access_key"))
}

fn write_private(p: &Path, s: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(d) = p.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(d)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(p)?;
    f.write_all(s.as_bytes())?;
    f.sync_all()
}

fn write_atomic(p: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = p.with_extension("toml.arca-tmp");
    let mut f = std::fs::File::create(&tmp)?;
    if let Ok(m) = std::fs::metadata(p) {
        let _ = f.set_permissions(m.permissions());
    }
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, p)
}

/// The keys of a plan `PUT /api/v1/plans/NAME` may change.
pub const PLAN_KEYS: &[&str] = &[
    "schedule",
    "timezone",
    "kind",
    "purge_after_days",
    "keep_last",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_min",
    "drill",
    "log_archiving",
];

/// Changes a plan's keys in the file (`null` removes a key, leaving its
/// default); the whole file is checked as a reload is before it is taken.
pub fn update_plan(
    state: &State,
    name: &str,
    changes: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), ApiError> {
    let _g = EDITING.lock().unwrap_or_else(|p| p.into_inner());
    for k in changes.keys() {
        if !PLAN_KEYS.contains(&k.as_str()) {
            return Err(ApiError::bad(
                k,
                format!(
                    "a plan's {k} cannot be changed here: change one of {}",
                    PLAN_KEYS.join(", ")
                ),
            ));
        }
    }
    let cfg = state.config();
    let old = std::fs::read_to_string(&cfg.path).map_err(internal)?;
    let mut doc: DocumentMut = old.parse().map_err(internal)?;
    let Some(Item::ArrayOfTables(plans)) = doc.get_mut("plan") else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no plan {name}"),
        ));
    };
    let Some(t) = plans
        .iter_mut()
        .find(|t| t.get("name").and_then(|n| n.as_str()) == Some(name))
    else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no plan {name}"),
        ));
    };
    for (k, v) in changes {
        match v {
            serde_json::Value::Null => {
                t.remove(k);
            }
            serde_json::Value::String(s)
                if matches!(k.as_str(), "schedule" | "timezone" | "kind" | "drill") =>
            {
                t.insert(k, value(s.as_str()));
            }
            serde_json::Value::Bool(b) if k == "log_archiving" => {
                t.insert(k, value(*b));
            }
            serde_json::Value::Number(n) if k.starts_with("keep_") || k == "purge_after_days" => {
                let Some(n) = n.as_u64().filter(|n| *n <= u32::MAX as u64) else {
                    return Err(ApiError::bad(k, format!("{k} must be a whole number of 0 or more")));
                };
                t.insert(k, value(n as i64));
            }
            _ => {
                return Err(ApiError::bad(
                    k,
                    format!("{k} has the wrong type: schedule, timezone, kind and drill are strings, log_archiving true or false, the others numbers (null removes)"),
                ))
            }
        }
    }
    // A bad value is refused with the configuration's own message.
    let listen = state.config().listen.to_string();
    crate::config::Config::parse(&cfg.path, &doc.to_string(), Some(&listen)).map_err(|p| {
        let text = p.to_string();
        // The field is the changed key the problem names.
        let field = changes
            .keys()
            .find(|k| text.contains(k.as_str()))
            .or_else(|| changes.keys().next())
            .cloned();
        ApiError {
            field,
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, text.replace('\n', "; "))
        }
    })?;
    apply(state, &cfg.path, &old, &doc.to_string(), None)
}
