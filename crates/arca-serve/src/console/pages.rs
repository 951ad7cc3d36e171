//! The console's pages and form actions. Each calls the API handler that
//! does the work, with the signed-in caller, and renders what it returns;
//! an API error on a form is shown beside the field it names.

use std::collections::HashMap;

use axum::extract::{Path, Query};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::session::{self, Posted, Signed};
use super::{body_json, error_page, render, render_plain, St};
use crate::api::{self, ApiError, J, Q};
use crate::config::Role;

type Fields = HashMap<String, String>;

fn field<'a>(f: &'a Fields, k: &str) -> Option<&'a str> {
    f.get(k).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// A form's error, for the template: the message and the field it names.
fn form_error(e: &ApiError) -> Value {
    json!({ "message": e.message, "field": e.field })
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

fn state(s: &St) -> St {
    axum::extract::State(s.0.clone())
}

// ---- sign-in --------------------------------------------------------------

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

pub async fn login_form(Query(q): Query<LoginQuery>) -> Response {
    render_plain("login.html", json!({ "next": q.next }), StatusCode::OK)
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

pub async fn login(s: St, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    if session::cross_site(&axum::http::Method::POST, &headers) {
        return (
            StatusCode::FORBIDDEN,
            "refused: sign-in from another site's page",
        )
            .into_response();
    }
    match s.sessions.start(&s, &f.token) {
        Some(id) => {
            let secure = s.config().tls.is_some();
            (
                [(header::SET_COOKIE, session::set_cookie(&id, secure))],
                Redirect::to("/"),
            )
                .into_response()
        }
        None => {
            // Logged, not recorded as an event: anyone can try, and the
            // event log is for what the daemon did.
            tracing::warn!("console: a sign-in with a token that is not valid");
            render_plain(
                "login.html",
                json!({ "error": "That token is not valid. Tokens are in the [[token]] tables of the daemon's configuration (their SHA-256)." }),
                StatusCode::UNAUTHORIZED,
            )
        }
    }
}

pub async fn logout(s: St, headers: HeaderMap, _: Posted) -> Response {
    if let Some(c) = session::cookie(&headers, session::COOKIE) {
        s.sessions.end(c);
    }
    (
        [(header::SET_COOKIE, session::clear_cookie())],
        Redirect::to("/login"),
    )
        .into_response()
}

// ---- overview -------------------------------------------------------------

pub async fn overview(s: St, who: Signed) -> Response {
    let sources = match api::sources_handler(who.caller(), state(&s)).await {
        Ok(Json(v)) => v,
        Err(e) => return error_page(&who, "overview", e),
    };
    let windows = api::windows_handler(who.caller(), state(&s))
        .await
        .map(|Json(v)| v)
        .unwrap_or(Value::Null);
    let stats = api::stats_handler(who.caller(), state(&s))
        .await
        .map(|Json(v)| v)
        .unwrap_or(Value::Null);
    let now = s.clock.now();
    let st = s.0.clone();
    let items = sources["items"].as_array().cloned().unwrap_or_default();
    let windows = windows["items"].as_array().cloned().unwrap_or_default();
    let stats = stats["items"].as_array().cloned().unwrap_or_default();
    let cards = tokio::task::spawn_blocking(move || {
        items
            .into_iter()
            .map(|src| source_card(&st, src, &windows, &stats, now))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    render(
        &who,
        "overview.html",
        "overview",
        json!({ "sources": cards }),
    )
}

/// Every named snapshot's time by source URL's repository, for the
fn source_card(
    s: &crate::State,
    mut src: Value,
    windows: &[Value],
    stats: &[Value],
    now: jiff::Timestamp,
) -> Value {
    let name = src["name"].as_str().unwrap_or_default().to_string();
    let window = windows.iter().find(|w| w["source"] == name.as_str());
    let stat = stats.iter().find(|w| w["source"] == name.as_str());
    let week = now - jiff::SignedDuration::from_hours(24 * 7);
    let span = |w: &Value| -> Option<(jiff::Timestamp, jiff::Timestamp)> {
        Some((
            w["from"].as_str()?.parse().ok()?,
            w["to"].as_str()?.parse().ok()?,
        ))
    };
    let win = window.and_then(span);
    // A week, or the whole window when it is longer, up to 30 days.
    let month = now - jiff::SignedDuration::from_hours(24 * 30);
    let from = win.map_or(week, |(a, _)| a.min(week).max(month));
    // Backups and named snapshots (points in the log) from the catalog.
    let rows = s
        .catalog
        .backups(&crate::catalog::BackupQuery {
            source: Some(name.clone()),
            from: Some(crate::stamp(from)),
            limit: 2000,
            ..Default::default()
        })
        .unwrap_or_default();
    let (points, backups): (Vec<_>, Vec<_>) = rows.iter().partition(|b| b.mode == "snapshot");
    let times = |v: &[&crate::catalog::BackupRow]| -> Vec<jiff::Timestamp> {
        v.iter().filter_map(|b| b.start_time.parse().ok()).collect()
    };
    let week_backups = backups
        .iter()
        .filter(|b| b.start_time.as_str() >= crate::stamp(week).as_str())
        .count();
    let timeline = super::charts::timeline(&super::charts::Timeline {
        from,
        now,
        window: win,
        backups: times(&backups),
        snapshots: times(&points),
    })
    .unwrap_or_else(|e| format!("<p>the timeline could not be drawn: {e}</p>"));
    let growth = stat.and_then(|st| {
        let days: Vec<(jiff::civil::Date, u64)> = st["growth_per_day"]
            .as_array()?
            .iter()
            .filter_map(|d| {
                Some((
                    d["day"].as_str()?.parse().ok()?,
                    d["stored_bytes"].as_u64()?,
                ))
            })
            .collect();
        let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
        super::charts::growth(&days, today).ok()
    });
    src["window"] = window.cloned().unwrap_or(Value::Null);
    src["stats"] = stat.cloned().unwrap_or(Value::Null);
    src["timeline_svg"] = timeline.into();
    src["growth_svg"] = growth.into();
    src["week_backups"] = week_backups.into();
    src
}

// ---- backups --------------------------------------------------------------

/// The browser's `datetime-local` value in its time zone (`tz`, an IANA
/// name the page's script fills in; UTC without it) as RFC 3339.
fn local_time(v: Option<&str>, tz: &str, name: &str) -> Result<Option<String>, ApiError> {
    let Some(v) = v else { return Ok(None) };
    if v.parse::<jiff::Timestamp>().is_ok() {
        return Ok(Some(v.to_string()));
    }
    // An unknown zone is refused: a silent fallback to UTC would move the
    // restore by hours.
    let zone = jiff::tz::TimeZone::get(tz).map_err(|_| {
        ApiError::bad(
            name,
            format!(
                "the browser's time zone {tz:?} is not known to the daemon's time zone database"
            ),
        )
    })?;
    let dt: jiff::civil::DateTime = v.parse().map_err(|_| {
        ApiError::bad(
            name,
            format!("{v:?} is not a date and time: pick one, e.g. 2026-12-01 09:30"),
        )
    })?;
    let z = dt
        .to_zoned(zone)
        .map_err(|e| ApiError::bad(name, format!("{v:?} in {tz}: {e}")))?;
    Ok(Some(z.timestamp().to_string()))
}

pub async fn backups(s: St, who: Signed, Query(f): Query<Fields>) -> Response {
    let tz = field(&f, "tz").unwrap_or("UTC").to_string();
    let mut q = serde_json::Map::new();
    let mut err = None;
    for k in ["source", "mode", "status", "order", "cursor"] {
        if let Some(v) = field(&f, k) {
            q.insert(k.into(), v.into());
        }
    }
    for k in ["from", "to"] {
        match local_time(field(&f, k), &tz, k) {
            Ok(Some(t)) => {
                q.insert(k.into(), t.into());
            }
            Ok(None) => {}
            Err(e) => err = Some(form_error(&e)),
        }
    }
    q.insert("limit".into(), 25.into());
    let listing = match serde_json::from_value(Value::Object(q)) {
        Ok(q) => api::backups_handler(who.caller(), state(&s), Q(q)).await,
        Err(e) => Err(ApiError::bad("query", e.to_string())),
    };
    let (items, next) = match listing {
        Ok(Json(p)) => (json!(p.items), json!(p.next)),
        Err(e) => {
            err = Some(form_error(&e));
            (json!([]), Value::Null)
        }
    };
    // The next page keeps the filters.
    let next_url = next.as_str().map(|c| page_url("/backups", &f, "cursor", c));
    let cfg = s.config();
    let sources: Vec<&str> = cfg.sources.iter().map(|s| s.name.as_str()).collect();
    render(
        &who,
        "backups.html",
        "backups",
        json!({
            "items": items, "next_url": next_url, "filters": f, "error": err,
            "sources": sources, "paged": f.contains_key("cursor"),
        }),
    )
}

/// The URL of the next page of a listing: the filters in `f`, with `key`
/// (the page's cursor) set to `value`.
fn page_url(path: &str, f: &Fields, key: &str, value: &str) -> String {
    let mut p: Vec<(&str, &str)> = f
        .iter()
        .filter(|(k, v)| *k != key && !v.is_empty())
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    p.push((key, value));
    p.sort();
    let query = serde_urlencoded::to_string(&p).expect("text pairs encode");
    format!("{path}?{query}")
}

pub async fn backup(s: St, who: Signed, Path(id): Path<String>) -> Response {
    let b = match api::backup_handler(who.caller(), state(&s), Path(id)).await {
        Ok(Json(v)) => v,
        Err(e) => return error_page(&who, "backups", e),
    };
    let cfg = s.config();
    let st = s.0.clone();
    let (repo_name, full) = (
        b["repository"].as_str().unwrap_or_default().to_string(),
        b["id"].as_str().unwrap_or_default().to_string(),
    );
    let detail = tokio::task::spawn_blocking(move || -> Result<Value, String> {
        let repo = crate::work::open(&cfg, &repo_name)?;
        let m = repo.find_manifest(&full).map_err(|e| e.to_string())?;
        let files: Vec<Value> = m
            .files
            .iter()
            .map(|f| json!({ "path": f.path, "size": f.size }))
            .collect();
        // What the engine recorded about the consistency point: its plain
        // values (positions, timelines, times).
        let point: Vec<Value> = m
            .meta
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, v)| v.is_string() || v.is_number() || v.is_boolean())
            .map(|(k, v)| json!({ "key": k, "value": v.to_string().trim_matches('"') }))
            .collect();
        let checks = st
            .catalog
            .jobs(None, None, None, 200)
            .unwrap_or_default()
            .into_iter()
            .filter(|j| j.kind == "check" && j.result["backup"] == full.as_str())
            .take(1)
            .collect::<Vec<_>>();
        Ok(json!({ "files": files, "point": point, "hostname": m.hostname, "last_check": checks.first() }))
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    let (detail, err) = match detail {
        Ok(d) => (d, None),
        Err(e) => (Value::Null, Some(e)),
    };
    render(
        &who,
        "backup.html",
        "backups",
        json!({ "b": b, "detail": detail, "detail_error": err }),
    )
}

pub async fn verify(s: St, Path(id): Path<String>, Posted { who, .. }: Posted) -> Response {
    let b = match api::backup_handler(who.caller(), state(&s), Path(id)).await {
        Ok(Json(v)) => v,
        Err(e) => return error_page(&who, "backups", e),
    };
    let body = json!({ "repository": b["repository"], "backup": b["id"], "read_data": true });
    let body = serde_json::from_value(body).expect("a check body");
    match api::check_handler(who.caller(), state(&s), J(body)).await {
        Ok(r) => to_job(r).await,
        Err(e) => error_page(&who, "backups", e),
    }
}

/// Sends the browser to the job an API call started.
async fn to_job(r: Response) -> Response {
    let v = body_json(r).await;
    match v["job"].as_str() {
        Some(id) => see_other(&format!("/jobs/{id}")),
        None => see_other("/jobs"),
    }
}

pub async fn backup_now(s: St, Posted { who, form: f }: Posted) -> Response {
    let mut body = json!({ "source": field(&f, "source").unwrap_or_default() });
    if let Some(p) = field(&f, "plan") {
        body["plan"] = p.into();
    }
    let body = match serde_json::from_value(body) {
        Ok(b) => b,
        Err(e) => return error_page(&who, "overview", ApiError::bad("source", e.to_string())),
    };
    match api::backup_now_handler(who.caller(), state(&s), J(body)).await {
        Ok(r) => to_job(r).await,
        Err(e) => error_page(&who, "overview", e),
    }
}

// ---- restore --------------------------------------------------------------

/// The restore page: choose the point and the target, then a summary to
/// confirm by typing the target's name.
pub async fn restore_form(s: St, who: Signed, Query(f): Query<Fields>) -> Response {
    restore_page(&s, &who, &f, None, None).await
}

async fn restore_page(
    s: &St,
    who: &Signed,
    f: &Fields,
    err: Option<ApiError>,
    review: Option<Value>,
) -> Response {
    if !who.can(Role::Operator) {
        return error_page(
            who,
            "restore",
            ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "token {} is a viewer: restores need an operator",
                    who.caller.name
                ),
            ),
        );
    }
    let cfg = s.config();
    let source = field(f, "source")
        .map(str::to_string)
        .or_else(|| cfg.sources.first().map(|s| s.name.clone()));
    let mut backups = json!([]);
    let mut window = Value::Null;
    let mut snapshots = json!([]);
    if let Some(src) = &source {
        let q = serde_json::from_value(json!({ "source": src, "limit": 100 })).expect("a query");
        if let Ok(Json(p)) = api::backups_handler(who.caller(), state(s), Q(q)).await {
            backups = json!(p.items);
        }
        // The backup a link names is offered even when it is older than the
        // newest 100: it is never replaced silently by "the newest".
        if let Some(id) = field(f, "backup") {
            let listed = backups
                .as_array()
                .is_some_and(|a| a.iter().any(|b| b["id"] == id));
            if !listed {
                match api::backup_handler(who.caller(), state(s), Path(id.to_string())).await {
                    Ok(Json(b)) if b["source"] == src.as_str() => {
                        if let Some(a) = backups.as_array_mut() {
                            a.insert(0, b);
                        }
                    }
                    Ok(_) => {
                        let e = ApiError::bad(
                            "backup",
                            format!("backup {id} is not a backup of {src}"),
                        );
                        return error_page(who, "restore", e);
                    }
                    Err(e) => return error_page(who, "restore", e),
                }
            }
        }
        if let Ok(Json(v)) = api::windows_handler(who.caller(), state(s)).await {
            window = v["items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|w| w["source"] == src.as_str())
                .cloned()
                .unwrap_or(Value::Null);
        }
        if let Some(r) = window["repository"]
            .as_str()
            .map(str::to_string)
            .or_else(|| cfg.plan_of(src).map(|p| p.repository.clone()))
        {
            let q = Q(serde_json::from_value(json!({ "repository": r })).expect("a query"));
            if let Ok(Json(v)) = api::snapshots_handler(who.caller(), state(s), q).await {
                snapshots = v["items"].clone();
            }
        }
    }
    let engine = source
        .as_deref()
        .and_then(|n| cfg.source(n))
        .and_then(|s| arca_ops::engine::for_source(&s.url).ok())
        .map(|e| e.title());
    let sources: Vec<&str> = cfg.sources.iter().map(|s| s.name.as_str()).collect();
    let status = match &err {
        Some(e) => e.status,
        None => StatusCode::OK,
    };
    let mut r = render(
        who,
        "restore.html",
        "restore",
        json!({
            "f": f, "source": source, "sources": sources, "engine": engine,
            "backups": backups, "window": window, "snapshots": snapshots,
            "error": err.as_ref().map(form_error), "review": review.is_some(), "summary": review,
        }),
    );
    *r.status_mut() = status;
    r
}

/// What a restore will do, in words, and the name to type to confirm.
fn summary(f: &Fields, body: &Value) -> Value {
    let point = match (field(f, "point"), body["time"].as_str()) {
        (Some("time"), Some(utc)) => format!(
            "the state at {} in {} ({utc})",
            field(f, "time").unwrap_or("?").replace('T', " "),
            field(f, "tz").unwrap_or("UTC")
        ),
        (Some("snapshot"), _) => {
            format!("named snapshot {}", field(f, "snapshot").unwrap_or("?"))
        }
        _ => match field(f, "backup") {
            Some(b) => format!("backup {}", b.chars().take(8).collect::<String>()),
            None => "the newest backup".into(),
        },
    };
    let to = field(f, "to").unwrap_or_default();
    let what = match field(f, "target") {
        Some("instance") => format!("into {to}, then started as a temporary instance"),
        Some("database") => format!("into {to}"),
        Some("in_place") => format!("over {to}, replacing what is there"),
        _ => format!("into the new path {to}"),
    };
    json!({ "point": point, "what": what, "confirm_name": to })
}

/// The restore API's body from the form.
fn restore_body(f: &Fields, now_tz: &str) -> Result<Value, ApiError> {
    let mut b = json!({ "source": field(f, "source"), "to": field(f, "to").unwrap_or_default() });
    match field(f, "point").unwrap_or("backup") {
        "time" => {
            let t = local_time(field(f, "time"), now_tz, "time")?
                .ok_or_else(|| ApiError::bad("time", "pick the time to restore to"))?;
            b["time"] = t.into();
        }
        "snapshot" => {
            b["snapshot"] = field(f, "snapshot")
                .ok_or_else(|| ApiError::bad("snapshot", "pick a named snapshot"))?
                .into();
        }
        _ => {
            if let Some(id) = field(f, "backup") {
                b["backup"] = id.into();
            }
        }
    }
    match field(f, "target").unwrap_or("path") {
        "instance" => {
            b["start"] = true.into();
            if let Some(p) = field(f, "port") {
                b["port"] = p
                    .parse::<u16>()
                    .map_err(|_| {
                        ApiError::bad(
                            "port",
                            format!("port {p:?} is not a port number (1 to 65535)"),
                        )
                    })?
                    .into();
            }
        }
        "database" => {
            if let Some(r) = field(f, "rename") {
                b["renames"] = json!([r]);
            }
        }
        "in_place" => {
            b["force"] = true.into();
        }
        _ => {}
    }
    Ok(b)
}

pub async fn restore(s: St, Posted { who, form: f }: Posted) -> Response {
    let tz = field(&f, "tz").unwrap_or("UTC").to_string();
    let body = match restore_body(&f, &tz) {
        Ok(b) => b,
        Err(e) => return restore_page(&s, &who, &f, Some(e), None).await,
    };
    if field(&f, "step") != Some("confirm") {
        // The first submit only reviews: the summary and the name to type.
        if field(&f, "to").is_none() {
            return restore_page(
                &s,
                &who,
                &f,
                Some(ApiError::bad(
                    "to",
                    "give the target: a new path, or a server for engines that restore into one",
                )),
                None,
            )
            .await;
        }
        let sum = summary(&f, &body);
        return restore_page(&s, &who, &f, None, Some(sum)).await;
    }
    let to = field(&f, "to").unwrap_or_default();
    if field(&f, "confirm") != Some(to) {
        return restore_page(
            &s,
            &who,
            &f,
            Some(ApiError::bad(
                "confirm",
                format!("type the target's name, {to}, to confirm"),
            )),
            Some(summary(&f, &body)),
        )
        .await;
    }
    let body = match serde_json::from_value(body) {
        Ok(b) => b,
        Err(e) => {
            return restore_page(&s, &who, &f, Some(ApiError::bad("to", e.to_string())), None).await
        }
    };
    match api::restore_handler(who.caller(), state(&s), J(body)).await {
        Ok(r) => to_job(r).await,
        Err(e) => restore_page(&s, &who, &f, Some(e), None).await,
    }
}

// ---- policies -------------------------------------------------------------

pub async fn policies(s: St, who: Signed) -> Response {
    policies_page(&s, &who, None, None, None).await
}

async fn policies_page(
    s: &St,
    who: &Signed,
    plan: Option<&str>,
    err: Option<ApiError>,
    saved: Option<&str>,
) -> Response {
    let plans = match api::plans_handler(who.caller(), state(s)).await {
        Ok(Json(v)) => v["items"].clone(),
        Err(e) => return error_page(who, "policies", e),
    };
    let status = err.as_ref().map_or(StatusCode::OK, |e| e.status);
    let mut r = render(
        who,
        "policies.html",
        "policies",
        json!({
            "plans": plans, "error_plan": plan, "error": err.as_ref().map(form_error),
            "saved": saved, "purge_min": arca_ops::retention::PURGE_DAYS.start(),
            "purge_max": arca_ops::retention::PURGE_DAYS.end(),
        }),
    );
    *r.status_mut() = status;
    r
}

/// The plan changes a policy form asks for: empty numbers remove the key.
fn plan_changes(f: &Fields) -> Result<serde_json::Map<String, Value>, ApiError> {
    let mut c = serde_json::Map::new();
    for k in ["schedule", "timezone", "kind"] {
        if let Some(v) = field(f, k) {
            c.insert(k.into(), v.into());
        }
    }
    c.insert(
        "drill".into(),
        field(f, "drill").map_or(Value::Null, |d| d.into()),
    );
    c.insert(
        "log_archiving".into(),
        (f.get("log_archiving").map(String::as_str) == Some("on")).into(),
    );
    let numbers = crate::edit::PLAN_KEYS
        .iter()
        .filter(|k| k.starts_with("keep_") || **k == "purge_after_days");
    for &k in numbers {
        let v = match field(f, k) {
            None => Value::Null,
            Some(v) => v
                .parse::<u32>()
                .map_err(|_| ApiError::bad(k, format!("{k} must be a whole number, or empty")))?
                .into(),
        };
        c.insert(k.into(), v);
    }
    Ok(c)
}

/// The inline check of one field while it is typed (htmx): the error
/// under the field, or nothing.
pub async fn policy_check(Path(_plan): Path<String>, Posted { form: f, .. }: Posted) -> Response {
    let message = match field(&f, "purge_after_days") {
        None => String::new(),
        Some(v) => match v.parse::<u32>() {
            Ok(d) => arca_ops::retention::Policy {
                purge_after_days: Some(d),
                ..Default::default()
            }
            .validate()
            .err()
            .unwrap_or_default(),
            Err(_) => "purge_after_days must be a whole number of days".into(),
        },
    };
    axum::response::Html(super::escape(&message)).into_response()
}

pub async fn policy_update(
    s: St,
    Path(plan): Path<String>,
    Posted { who, form: f }: Posted,
) -> Response {
    let changes = match plan_changes(&f) {
        Ok(c) => c,
        Err(e) => return policies_page(&s, &who, Some(&plan), Some(e), None).await,
    };
    // A purge period outside the consoles' 7–365 days names its field.
    if let Some(d) = changes.get("purge_after_days").and_then(Value::as_u64) {
        if !arca_ops::retention::PURGE_DAYS.contains(&(d as u32)) {
            let e = ApiError::bad(
                "purge_after_days",
                format!("purge_after_days is {d}: it must be from 7 to 365 days"),
            );
            return policies_page(&s, &who, Some(&plan), Some(e), None).await;
        }
    }
    match api::plan_update_handler(who.caller(), state(&s), Path(plan.clone()), J(changes)).await {
        Ok(_) => policies_page(&s, &who, None, None, Some(&plan)).await,
        Err(e) => policies_page(&s, &who, Some(&plan), Some(e), None).await,
    }
}

// ---- jobs and events ------------------------------------------------------

pub async fn jobs(s: St, who: Signed, Query(f): Query<Fields>) -> Response {
    let mut q = serde_json::Map::new();
    for k in ["source", "state", "before"] {
        if let Some(v) = field(&f, k) {
            q.insert(k.into(), v.into());
        }
    }
    q.insert("limit".into(), 50.into());
    let r = match serde_json::from_value(Value::Object(q)) {
        Ok(q) => api::jobs_handler(who.caller(), state(&s), Q(q)).await,
        Err(e) => Err(ApiError::bad("query", e.to_string())),
    };
    let (items, next, err) = match r {
        Ok(Json(p)) => (json!(p.items), json!(p.next), None),
        Err(e) => (json!([]), Value::Null, Some(form_error(&e))),
    };
    let live: Vec<Value> = s.jobs.live().into_iter().map(|j| json!(j)).collect();
    let next_url = next.as_str().map(|id| page_url("/jobs", &f, "before", id));
    render(
        &who,
        "jobs.html",
        "jobs",
        json!({ "items": items, "next_url": next_url, "live": live, "filters": f, "error": err }),
    )
}

pub async fn job(s: St, who: Signed, Path(id): Path<String>) -> Response {
    match api::job_handler(who.caller(), state(&s), Path(id)).await {
        Ok(Json(j)) => render(&who, "job.html", "jobs", json!({ "job": j })),
        Err(e) => error_page(&who, "jobs", e),
    }
}

pub async fn cancel(s: St, Path(id): Path<String>, Posted { who, .. }: Posted) -> Response {
    match api::cancel_handler(who.caller(), state(&s), Path(id.clone())).await {
        Ok(_) => see_other(&format!("/jobs/{id}")),
        Err(e) => error_page(&who, "jobs", e),
    }
}

/// The API's job stream, for the signed-in browser, for as long as its
/// session lasts.
pub async fn jobs_stream(s: St, who: Signed, headers: HeaderMap) -> Response {
    if !who.can(Role::Viewer) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let cookie = session::cookie(&headers, session::COOKIE)
        .unwrap_or_default()
        .to_string();
    let st = s.0.clone();
    api::job_events(s.0.clone(), move || st.sessions.is_live(&st, &cookie)).into_response()
}

pub async fn events(s: St, who: Signed, Query(f): Query<Fields>) -> Response {
    let mut q = serde_json::Map::new();
    for k in ["source", "kind"] {
        if let Some(v) = field(&f, k) {
            q.insert(k.into(), v.into());
        }
    }
    if let Some(b) = field(&f, "before").and_then(|b| b.parse::<i64>().ok()) {
        q.insert("before".into(), b.into());
    }
    q.insert("limit".into(), 100.into());
    let r = match serde_json::from_value(Value::Object(q)) {
        Ok(q) => api::events_handler(who.caller(), state(&s), Q(q)).await,
        Err(e) => Err(ApiError::bad("query", e.to_string())),
    };
    let (items, next, err) = match r {
        Ok(Json(p)) => (json!(p.items), json!(p.next), None),
        Err(e) => (json!([]), Value::Null, Some(form_error(&e))),
    };
    let cfg = s.config();
    let sources: Vec<&str> = cfg.sources.iter().map(|s| s.name.as_str()).collect();
    let next_url = next
        .as_i64()
        .map(|n| page_url("/events", &f, "before", &n.to_string()));
    render(
        &who,
        "events.html",
        "events",
        json!({ "items": items, "next_url": next_url, "filters": f, "error": err, "sources": sources }),
    )
}

// ---- repositories ---------------------------------------------------------

/// Runs a configuration edit (a file write and a reload) off the reactor.
async fn off_reactor<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        ))
    })
}

fn needs(who: &Signed, role: Role, what: &str) -> Result<(), ApiError> {
    if who.can(role) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        format!("{what} needs an {} token", role.as_str()),
    ))
}

pub async fn repositories(s: St, who: Signed) -> Response {
    repositories_page(&s, &who, None, None, None).await
}

async fn repositories_page(
    s: &St,
    who: &Signed,
    err: Option<ApiError>,
    notice: Option<String>,
    form: Option<&Fields>,
) -> Response {
    let items = match api::repositories_handler(who.caller(), state(s)).await {
        Ok(Json(v)) => v["items"].clone(),
        Err(e) => return error_page(who, "repositories", e),
    };
    let status = err.as_ref().map_or(StatusCode::OK, |e| e.status);
    // The form comes back after an error, without its secret.
    let form = form.map(|f| {
        let mut f = f.clone();
        f.remove("secret_key");
        f.remove("csrf");
        f
    });
    let mut r = render(
        who,
        "repositories.html",
        "repositories",
        json!({ "items": items, "error": err.as_ref().map(form_error), "notice": notice, "f": form }),
    );
    *r.status_mut() = status;
    r
}

pub async fn repository_add(s: St, Posted { who, form: f }: Posted) -> Response {
    if let Err(e) = needs(&who, Role::Admin, "adding a repository") {
        return repositories_page(&s, &who, Some(e), None, Some(&f)).await;
    }
    let (Some(name), Some(url)) = (field(&f, "name"), field(&f, "url")) else {
        let e = ApiError::bad(
            if field(&f, "name").is_none() {
                "name"
            } else {
                "url"
            },
            "give the repository's name and location",
        );
        return repositories_page(&s, &who, Some(e), None, Some(&f)).await;
    };
    let mut props = Vec::new();
    for (k, p) in [
        ("access_key", "aws.s3.access_key"),
        ("secret_key", "aws.s3.secret_key"),
        ("endpoint", "aws.s3.endpoint"),
        ("region", "aws.s3.region"),
    ] {
        if let Some(v) = field(&f, k) {
            props.push((p.to_string(), v.to_string()));
        }
    }
    if f.get("path_style").map(String::as_str) == Some("on") {
        props.push(("aws.s3.enable_path_style_access".into(), "true".into()));
    }
    let (st, n, u) = (s.0.clone(), name.to_string(), url.to_string());
    let r = off_reactor(move || crate::edit::add_repository(&st, &n, &u, &props)).await;
    match r {
        Ok(()) => {
            s.event(
                "repository_added",
                None,
                None,
                &format!(
                    "repository {name} added by token {} (console)",
                    who.caller.name
                ),
            );
            repositories_page(
                &s,
                &who,
                None,
                Some(format!("Repository {name} added.")),
                None,
            )
            .await
        }
        Err(e) => {
            let e = ApiError {
                field: e.field.or(Some("url".into())),
                ..e
            };
            repositories_page(&s, &who, Some(e), None, Some(&f)).await
        }
    }
}

pub async fn repository_test(
    s: St,
    Path(name): Path<String>,
    Posted { who, .. }: Posted,
) -> Response {
    if let Err(e) = needs(&who, Role::Operator, "testing a repository") {
        return repositories_page(&s, &who, Some(e), None, None).await;
    }
    let cfg = s.config();
    let n = name.clone();
    let r = tokio::task::spawn_blocking(move || -> Result<usize, String> {
        let repo = crate::work::open(&cfg, &n)?;
        repo.manifest_ids()
            .map(|v| v.len())
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    match r {
        Ok(n) => {
            repositories_page(
                &s,
                &who,
                None,
                Some(format!("Repository {name} answers: {n} backups.")),
                None,
            )
            .await
        }
        Err(e) => {
            let e = ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("repository {name} does not answer: {e}"),
            );
            repositories_page(&s, &who, Some(e), None, None).await
        }
    }
}

pub async fn repository_remove(
    s: St,
    Path(name): Path<String>,
    Posted { who, form: f }: Posted,
) -> Response {
    if let Err(e) = needs(&who, Role::Admin, "removing a repository") {
        return repositories_page(&s, &who, Some(e), None, None).await;
    }
    if field(&f, "confirm") != Some(name.as_str()) {
        let e = ApiError::bad(
            "confirm",
            format!("type the repository's name, {name}, to remove it"),
        );
        return repositories_page(&s, &who, Some(e), None, None).await;
    }
    let (st, n) = (s.0.clone(), name.clone());
    let r = off_reactor(move || crate::edit::remove_repository(&st, &n)).await;
    match r {
        Ok(()) => {
            s.event(
                "repository_removed",
                None,
                None,
                &format!("repository {name} removed from the configuration by token {} (console); its data is kept", who.caller.name),
            );
            repositories_page(
                &s,
                &who,
                None,
                Some(format!(
                    "Repository {name} removed from the configuration; its data was not touched."
                )),
                None,
            )
            .await
        }
        Err(e) => repositories_page(&s, &who, Some(e), None, None).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_time_is_read_in_the_browsers_zone_and_an_unknown_zone_is_refused() {
        let t = local_time(Some("2026-07-01T09:30"), "Europe/Berlin", "time").unwrap();
        assert_eq!(t.as_deref(), Some("2026-07-01T07:30:00Z"));
        // RFC 3339 passes as it is.
        let t = local_time(Some("2026-07-01T09:30:00Z"), "Nowhere/Else", "time").unwrap();
        assert_eq!(t.as_deref(), Some("2026-07-01T09:30:00Z"));
        let e = local_time(Some("2026-07-01T09:30"), "Nowhere/Else", "time").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("time"));
        assert!(e.message.contains("Nowhere/Else"), "{}", e.message);
        let e = local_time(Some("yesterday"), "UTC", "from").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("from"));
    }

    #[test]
    fn the_next_page_keeps_the_filters_and_replaces_the_cursor() {
        let f: Fields = [
            ("source", "app"),
            ("tz", "America/New_York"),
            ("cursor", "old"),
            ("mode", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            page_url("/backups", &f, "cursor", "2026-12-08T01:00:00Z~ab"),
            "/backups?cursor=2026-12-08T01%3A00%3A00Z%7Eab&source=app&tz=America%2FNew_York"
        );
    }

    #[test]
    fn the_summary_names_the_resolved_time_and_survives_any_backup_text() {
        let f: Fields = [
            ("point", "time"),
            ("time", "2026-07-01T09:30"),
            ("tz", "Europe/Berlin"),
            ("to", "/r/x.db"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let body = restore_body(&f, "Europe/Berlin").unwrap();
        let s = summary(&f, &body);
        let point = s["point"].as_str().unwrap();
        assert!(
            point.contains("Europe/Berlin") && point.contains("2026-07-01T07:30:00Z"),
            "{point}"
        );
        assert_eq!(s["confirm_name"], "/r/x.db");
        let f: Fields = [("backup", "aéééééééé"), ("to", "/r")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(summary(&f, &json!({}))["point"], "backup aééééééé");
    }
}
