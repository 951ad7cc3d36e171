//! The HTTP API under `/api/v1`, `/healthz` and `/metrics`.
//!
//! Handlers are small and named `*_handler`; errors are mapped to HTTP in
//! one place ([`ApiError`]). Every call but `/healthz` and the OpenAPI
//! document needs `Authorization: Bearer TOKEN`; what each role may do is
//! [`Role`]'s order: viewer < operator < admin.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::{header, request::Parts, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::catalog::BackupQuery;
use crate::config::Role;
use crate::jobs::{Spec, SubmitError};
use crate::{stamp, State};

pub(crate) type S = Arc<State>;

/// A page of a listing, serialized straight from its rows: building a
/// `serde_json::Value` tree of them first took most of a listing's CPU
/// under load (allocation, in `perf`).
#[derive(serde::Serialize)]
pub(crate) struct Page<T, N> {
    pub items: Vec<T>,
    pub next: Option<N>,
}

/// The OpenAPI document, kept beside the code it describes.
pub const OPENAPI: &str = include_str!("openapi.json");

pub fn router(state: S, test_clock: bool) -> Router {
    let mut r = Router::new()
        .route("/healthz", get(healthz_handler))
        .route("/metrics", get(metrics_handler))
        .route("/api/v1/openapi.json", get(openapi_handler))
        .route("/api/v1/sources", get(sources_handler))
        .route("/api/v1/repositories", get(repositories_handler))
        .route("/api/v1/plans", get(plans_handler))
        .route(
            "/api/v1/plans/{name}",
            axum::routing::put(plan_update_handler),
        )
        .route(
            "/api/v1/backups",
            get(backups_handler).post(backup_now_handler),
        )
        .route("/api/v1/backups/{id}", get(backup_handler))
        .route("/api/v1/restores", post(restore_handler))
        .route(
            "/api/v1/snapshots",
            get(snapshots_handler).post(snapshot_create_handler),
        )
        .route(
            "/api/v1/snapshots/{name}",
            axum::routing::delete(snapshot_drop_handler),
        )
        .route("/api/v1/checks", post(check_handler))
        .route("/api/v1/drills", post(drill_handler))
        .route("/api/v1/forget", post(forget_handler))
        .route("/api/v1/jobs", get(jobs_handler))
        .route("/api/v1/jobs/stream", get(jobs_stream_handler))
        .route("/api/v1/jobs/{id}", get(job_handler).delete(cancel_handler))
        .route("/api/v1/jobs/{id}/cancel", post(cancel_handler))
        .route("/api/v1/events", get(events_handler))
        .route("/api/v1/windows", get(windows_handler))
        .route("/api/v1/stats", get(stats_handler))
        .route("/api/v1/sql", post(sql_handler));
    if test_clock {
        r = r.route("/api/v1/test/clock", post(clock_handler));
    }
    r.merge(crate::console::routes())
        .fallback(not_found_handler)
        .with_state(state)
}

// ---- errors -------------------------------------------------------------

/// An error answer: `{"error": "...", "field": "..."}` and more.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub field: Option<String>,
    pub extra: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            field: None,
            extra: Value::Null,
        }
    }

    pub fn bad(field: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            field: Some(field.into()),
            ..ApiError::new(StatusCode::BAD_REQUEST, message)
        }
    }

    fn unprocessable(field: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            field: Some(field.into()),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
        }
    }

    fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, what)
    }

    fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(f) = self.field {
            body["field"] = f.into();
        }
        if let Value::Object(m) = self.extra {
            for (k, v) in m {
                body[k] = v;
            }
        }
        let mut r = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        r
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> ApiError {
        match e {
            SubmitError::Busy(job) => ApiError {
                extra: json!({ "job": job }),
                ..ApiError::new(
                    StatusCode::CONFLICT,
                    format!("job {job} is running on this source: one job per database at a time; wait for it or cancel it"),
                )
            },
            SubmitError::ShuttingDown => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping")
            }
        }
    }
}

/// serde's "unknown field `x`" / "missing field `x`" / "invalid type ... at
/// line" as a message and the field it names.
fn body_error(what: &str, text: &str) -> ApiError {
    let text = text
        .trim_start_matches("Failed to deserialize the JSON body into the target type: ")
        .trim_start_matches("Failed to deserialize query string: ")
        .trim_start_matches("Failed to parse the request body as JSON: ");
    let field = text
        .split('`')
        .nth(1)
        .filter(|_| text.contains("field `"))
        .map(str::to_string);
    let field = field.or_else(|| {
        // serde_path_to_error prefixes the path: "to: invalid type: ..."
        text.split_once(": ")
            .map(|(p, _)| p)
            .filter(|p| {
                p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            })
            .map(str::to_string)
    });
    ApiError {
        field,
        ..ApiError::new(StatusCode::BAD_REQUEST, format!("invalid {what}: {text}"))
    }
}

/// A JSON body whose errors name the field.
pub struct J<T>(pub T);

impl<T: DeserializeOwned, St: Send + Sync> FromRequest<St> for J<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &St) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(J(v)),
            Err(e) => Err(body_error("request body", &e.body_text())),
        }
    }
}

/// A query string whose errors name the parameter.
pub struct Q<T>(pub T);

impl<T: DeserializeOwned, St: Send + Sync> FromRequestParts<St> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Q(v)),
            Err(e) => Err(body_error("query", &e.body_text())),
        }
    }
}

// ---- authentication -----------------------------------------------------

/// The caller's token: its name and role.
pub struct Caller {
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// The configured token whose SHA-256 this is. Every token is
    /// compared, each in constant time, so timing tells nothing.
    pub fn of_token(state: &State, sha256: &[u8; 32]) -> Option<Caller> {
        let cfg = state.config();
        let mut found = None;
        for t in &cfg.tokens {
            let diff = t
                .sha256
                .iter()
                .zip(sha256)
                .fold(0u8, |d, (a, b)| d | (a ^ b));
            if diff == 0 {
                found = Some(Caller {
                    name: t.name.clone(),
                    role: t.role,
                });
            }
        }
        found
    }

    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "token {} has role {}; this needs {}",
                self.name,
                self.role.as_str(),
                role.as_str()
            ),
        ))
    }
}

impl FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "no token: send Authorization: Bearer TOKEN",
                )
            })?;
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        Caller::of_token(state, &hash)
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "the token is not valid"))
    }
}

// ---- handlers -----------------------------------------------------------

pub(crate) async fn healthz_handler() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub(crate) async fn openapi_handler() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub(crate) async fn not_found_handler() -> ApiError {
    ApiError::not_found("no such endpoint: see /api/v1/openapi.json")
}

pub(crate) async fn metrics_handler(
    caller: Caller,
    axum::extract::State(s): axum::extract::State<S>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let text = blocking(move || Ok(crate::metrics::render(&s))).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// Runs a short blocking call (the catalog, a repository listing) off the
/// reactor.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

pub(crate) type St = axum::extract::State<S>;

/// A source URL without its password.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:[SECRET]")
            } else {
                user.to_string()
            };
            let tail = redact_query(tail);
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => format!("{scheme}://{authority}{}", redact_query(tail)),
    }
}

fn redact_query(tail: &str) -> String {
    let Some((path, q)) = tail.split_once('?') else {
        return tail.to_string();
    };
    let q: Vec<String> = q
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=[SECRET]"),
            _ => kv.to_string(),
        })
        .collect();
    format!("{path}?{}", q.join("&"))
}

pub(crate) async fn sources_handler(
    caller: Caller,
    axum::extract::State(s): St,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let cfg = s.config();
    let st = s.clone();
    let last: Vec<Option<crate::catalog::BackupRow>> = blocking(move || {
        let cfg = st.config();
        Ok(cfg
            .sources
            .iter()
            .map(|src| {
                st.catalog
                    .backups(&BackupQuery {
                        source: Some(src.name.clone()),
                        status: Some("ok".into()),
                        limit: 1,
                        ..BackupQuery::default()
                    })
                    .ok()
                    .and_then(|mut v| v.pop())
            })
            .collect())
    })
    .await?;
    let items: Vec<Value> = cfg
        .sources
        .iter()
        .zip(last)
        .map(|(src, last)| {
            let engine = arca_ops::engine::for_source(&src.url)
                .map(|e| e.title())
                .unwrap_or("unknown");
            let plans: Vec<&str> = cfg
                .plans
                .iter()
                .filter(|p| p.source == src.name)
                .map(|p| p.name.as_str())
                .collect();
            let next = cfg
                .plans
                .iter()
                .filter(|p| p.source == src.name)
                .filter_map(|p| next_run(&s, p))
                .min();
            json!({
                "name": src.name,
                "url": redact(&src.url),
                "engine": engine,
                "plans": plans,
                "last_backup": last,
                "next_run": next.map(|t: jiff::Timestamp| t.to_string()),
                "running_job": s.jobs.holder(&src.name),
                "log_archiving": s.archivers.statuses().into_iter().find(|a| a.source == src.name),
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// When a plan fires next, after its last firing.
fn next_run(s: &State, p: &crate::config::PlanConfig) -> Option<jiff::Timestamp> {
    let last = s
        .catalog
        .last_fire(&p.name)
        .ok()
        .flatten()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| s.clock.now());
    p.schedule.next_after(last)
}

pub(crate) async fn repositories_handler(
    caller: Caller,
    axum::extract::State(s): St,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let cfg = s.config();
    let items: Vec<Value> = cfg
        .repositories
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "url": r.entry.url,
                "endpoint": r.entry.endpoint,
                "region": r.entry.region,
                "credentials": r.entry.access_key_id.is_some() || r.entry.secret_access_key.is_some(),
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

pub(crate) async fn plans_handler(
    caller: Caller,
    axum::extract::State(s): St,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let cfg = s.config();
    let st = s.clone();
    let nexts: Vec<Option<jiff::Timestamp>> = blocking(move || {
        let cfg = st.config();
        Ok(cfg.plans.iter().map(|p| next_run(&st, p)).collect())
    })
    .await?;
    let items: Vec<Value> = cfg
        .plans
        .iter()
        .zip(nexts)
        .map(|(p, next)| {
            json!({
                "name": p.name,
                "source": p.source,
                "repository": p.repository,
                "schedule": p.schedule.to_string(),
                "timezone": p.schedule.timezone(),
                "kind": if p.full { "full" } else { "incremental" },
                "log_archiving": p.log_archiving,
                "retention": p.retention,
                "next_run": next.map(|t| t.to_string()),
                "drill": p.drill.as_ref().map(|d| d.to_string()),
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// Changes a plan and writes it to the configuration file (admin).
pub(crate) async fn plan_update_handler(
    caller: Caller,
    axum::extract::State(s): St,
    Path(name): Path<String>,
    J(changes): J<serde_json::Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let st = s.clone();
    let n = name.clone();
    blocking(move || crate::edit::update_plan(&st, &n, &changes)).await?;
    s.event(
        "plan_changed",
        None,
        None,
        &format!("plan {name} changed by token {}", caller.name),
    );
    let cfg = s.config();
    let p = cfg
        .plan(&name)
        .ok_or_else(|| ApiError::not_found(format!("no plan {name}")))?;
    Ok(Json(json!({
        "name": p.name,
        "schedule": p.schedule.to_string(),
        "timezone": p.schedule.timezone(),
        "kind": if p.full { "full" } else { "incremental" },
        "retention": p.retention,
        "next_run": next_run(&s, p).map(|t| t.to_string()),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackupsQuery {
    source: Option<String>,
    repository: Option<String>,
    kind: Option<String>,
    mode: Option<String>,
    status: Option<String>,
    from: Option<String>,
    to: Option<String>,
    order: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

fn time_param(field: &str, v: Option<String>) -> Result<Option<String>, ApiError> {
    v.map(|t| {
        t.parse::<jiff::Timestamp>().map(stamp).map_err(|_| {
            ApiError::bad(
                field,
                format!("{field} = {t:?} is not a time: write RFC 3339, e.g. 2026-12-01T00:00:00Z"),
            )
        })
    })
    .transpose()
}

fn limit(v: Option<usize>) -> Result<usize, ApiError> {
    match v.unwrap_or(50) {
        0 => Err(ApiError::bad("limit", "limit must be 1 to 1000")),
        n if n > 1000 => Err(ApiError::bad("limit", "limit must be 1 to 1000")),
        n => Ok(n),
    }
}

pub(crate) async fn backups_handler(
    caller: Caller,
    axum::extract::State(s): St,
    Q(q): Q<BackupsQuery>,
) -> Result<Json<Page<crate::catalog::BackupRow, String>>, ApiError> {
    caller.require(Role::Viewer)?;
    let cursor = match q.cursor {
        Some(c) => Some(
            c.split_once('~')
                .map(|(t, id)| (t.to_string(), id.to_string()))
                .ok_or_else(|| {
                    ApiError::bad(
                        "cursor",
                        "cursor is not one this API gave: use the `next` of the previous page",
                    )
                })?,
        ),
        None => None,
    };
    if let Some(k) = &q.kind {
        if !matches!(k.as_str(), "physical" | "logical" | "file" | "snapshot") {
            // Kinds are what manifests record; an unknown one matches nothing,
            // which is fine, but a typo deserves a word.
            tracing::debug!("backups listing asked for kind {k}");
        }
    }
    if let Some(m) = &q.mode {
        if !matches!(m.as_str(), "full" | "incremental" | "snapshot") {
            return Err(ApiError::bad(
                "mode",
                "mode is one of full, incremental, snapshot",
            ));
        }
    }
    let oldest_first = match q.order.as_deref() {
        None | Some("newest") => false,
        Some("oldest") => true,
        Some(_) => return Err(ApiError::bad("order", "order is newest or oldest")),
    };
    let limit = limit(q.limit)?;
    let query = BackupQuery {
        source: q.source,
        repository: q.repository,
        kind: q.kind,
        mode: q.mode,
        status: q.status,
        from: time_param("from", q.from)?,
        to: time_param("to", q.to)?,
        cursor,
        oldest_first,
        limit: limit + 1,
    };
    let mut rows = blocking(move || s.catalog.backups(&query).map_err(ApiError::internal)).await?;
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|b| format!("{}~{}", b.start_time, b.id))
    } else {
        None
    };
    Ok(Json(Page { items: rows, next }))
}

pub(crate) async fn backup_handler(
    caller: Caller,
    axum::extract::State(s): St,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    if id.len() < 4 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiError::bad(
            "id",
            "a backup id is hex digits (at least 4) as `arca list` shows",
        ));
    }
    let id = id.to_ascii_lowercase();
    let row = blocking(move || {
        let found = s
            .catalog
            .backups_by_prefix(&id, 2)
            .map_err(ApiError::internal)?;
        match found.len() {
            0 => Err(ApiError::not_found(format!("no backup {id}"))),
            1 => Ok(found.into_iter().next().expect("one")),
            _ => Err(ApiError::bad(
                "id",
                format!("{id} names more than one backup: give more digits"),
            )),
        }
    })
    .await?;
    Ok(Json(serde_json::to_value(row).map_err(ApiError::internal)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackupNow {
    source: String,
    #[serde(default)]
    plan: Option<String>,
    #[serde(default)]
    repository: Option<String>,
    #[serde(default)]
    full: Option<bool>,
    #[serde(default)]
    name: Option<String>,
}

pub(crate) async fn backup_now_handler(
    caller: Caller,
    axum::extract::State(s): St,
    J(b): J<BackupNow>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    let cfg = s.config();
    if cfg.source(&b.source).is_none() {
        return Err(ApiError::unprocessable(
            "source",
            format!("no source named {:?}: see GET /api/v1/sources", b.source),
        ));
    }
    let mut plan = match &b.plan {
        Some(p) => cfg
            .plan(p)
            .filter(|p| p.source == b.source)
            .cloned()
            .ok_or_else(|| {
                ApiError::unprocessable("plan", format!("no plan {p:?} of source {:?}", b.source))
            })?,
        None => match cfg.plan_of(&b.source) {
            Some(p) => p.clone(),
            None => {
                let repository = match &b.repository {
                    Some(r) => r.clone(),
                    None => source_repository(&cfg, &b.source)?,
                };
                crate::config::PlanConfig {
                    name: String::new(),
                    source: b.source.clone(),
                    repository,
                    schedule: arca_ops::schedule::Schedule::parse(
                        crate::config::DEFAULT_SCHEDULE,
                        "UTC",
                    )
                    .map_err(ApiError::internal)?,
                    full: false,
                    log_archiving: false,
                    retention: Default::default(),
                    drill: None,
                    drill_scratch: std::env::temp_dir().join("arca-drills"),
                }
            }
        },
    };
    if let Some(r) = &b.repository {
        if cfg.repository(r).is_none() {
            return Err(ApiError::unprocessable(
                "repository",
                format!("no repository named {r:?}: see GET /api/v1/repositories"),
            ));
        }
        plan.repository = r.clone();
    }
    if let Some(f) = b.full {
        plan.full = f;
    }
    let job = crate::scheduler::submit_backup(&s, &cfg, &plan, b.name)?;
    s.event(
        "backup_requested",
        Some(&b.source),
        Some(&job),
        &format!("backup of {} requested by token {}", b.source, caller.name),
    );
    Ok((StatusCode::ACCEPTED, Json(json!({ "job": job }))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RestoreBody {
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    repository: Option<String>,
    /// A backup id, or `latest`.
    #[serde(default)]
    backup: Option<String>,
    /// A time inside the recoverable window (RFC 3339).
    #[serde(default)]
    time: Option<String>,
    /// A named snapshot.
    #[serde(default)]
    snapshot: Option<String>,
    /// Where: a new path (or a server URL for engines restoring into one).
    to: String,
    /// Over existing data: admins only.
    #[serde(default)]
    force: bool,
    /// Only these tables (`DB.TABLE`), for engines restoring into a server.
    #[serde(default)]
    tables: Vec<String>,
    /// `OLD:NEW` database or `DB.T:DB.T2` table renames.
    #[serde(default)]
    renames: Vec<String>,
    /// Drop and restore tables the target has: admins only.
    #[serde(default)]
    replace: bool,
    /// Start the restored copy as a temporary instance (PostgreSQL).
    #[serde(default)]
    start: bool,
    #[serde(default)]
    port: Option<u16>,
}

pub(crate) async fn restore_handler(
    caller: Caller,
    axum::extract::State(s): St,
    J(b): J<RestoreBody>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    if b.force || b.replace {
        caller.require(Role::Admin)?;
    }
    let cfg = s.config();
    let source = match &b.source {
        Some(n) => Some(cfg.source(n).cloned().ok_or_else(|| {
            ApiError::unprocessable(
                "source",
                format!("no source named {n:?}: see GET /api/v1/sources"),
            )
        })?),
        None => None,
    };
    let repository = match (&b.repository, &source) {
        (Some(r), _) => r.clone(),
        (None, Some(src)) => source_repository(&cfg, &src.name)?,
        (None, None) => {
            return Err(ApiError::unprocessable(
                "source",
                "name the source (or the repository) to restore from",
            ))
        }
    };
    if cfg.repository(&repository).is_none() {
        return Err(ApiError::unprocessable(
            "repository",
            format!("no repository named {repository:?}: see GET /api/v1/repositories"),
        ));
    }
    let given = [b.backup.is_some(), b.time.is_some(), b.snapshot.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(ApiError::bad(
            "time",
            "give one of backup, time and snapshot",
        ));
    }
    let target = match (&b.time, &b.snapshot) {
        (Some(t), _) => arca_ops::Target::Time(t.parse().map_err(|_| {
            ApiError::bad(
                "time",
                format!("time = {t:?} is not a time: write RFC 3339, e.g. 2026-12-01T00:00:00Z"),
            )
        })?),
        (None, Some(n)) => arca_ops::Target::Named(n.clone()),
        _ => arca_ops::Target::Latest,
    };
    if b.to.trim().is_empty() {
        return Err(ApiError::bad(
            "to",
            "to is empty: give a new path to restore into",
        ));
    }
    let is_path = !b.to.contains("://");
    let to = std::path::PathBuf::from(&b.to);
    if is_path {
        if !to.is_absolute() {
            return Err(ApiError::bad(
                "to",
                format!("to = {:?} is relative: give an absolute path", b.to),
            ));
        }
        if to.exists() && !b.force {
            return Err(ApiError {
                field: Some("to".into()),
                ..ApiError::new(
                    StatusCode::CONFLICT,
                    format!("to = {:?} exists: restore to a new path, or (admin) set force to replace it", b.to),
                )
            });
        }
    }
    if let (arca_ops::Target::Time(t), Some(src)) = (&target, &source) {
        let (cfg2, repo, src2, t) = (cfg.clone(), repository.clone(), src.clone(), *t);
        let st = s.clone();
        blocking(move || {
            let keys = st.catalog.source_keys().unwrap_or_default();
            check_in_window(&cfg2, &keys, &repo, &src2, t)
        })
        .await?;
    }
    let job = crate::work::RestoreJob {
        repository: repository.clone(),
        backup: b.backup.clone(),
        target,
        to,
        force: b.force,
        source: source.clone(),
        tables: b.tables.clone(),
        renames: b.renames.clone(),
        replace: b.replace,
        start: b.start,
        port: b.port,
    };
    let holder = source
        .as_ref()
        .map_or(format!("repo:{repository}"), |s| s.name.clone());
    let cfg2 = cfg.clone();
    let id = s.jobs.submit(
        Spec {
            kind: "restore",
            source: source.as_ref().map(|s| s.name.clone()),
            plan: None,
            holder,
            detail: json!({ "repository": repository, "to": redact(&b.to), "backup": b.backup, "time": b.time, "snapshot": b.snapshot }),
        },
        Box::new(move |ctx| crate::work::restore(&cfg2, &job, ctx)),
    )?;
    s.event(
        "restore_requested",
        b.source.as_deref(),
        Some(&id),
        &format!(
            "restore to {} requested by token {}",
            redact(&b.to),
            caller.name
        ),
    );
    Ok((StatusCode::ACCEPTED, Json(json!({ "job": id }))).into_response())
}

/// The repository of a source: its plan's, or the only one configured.
fn source_repository(cfg: &crate::config::Config, source: &str) -> Result<String, ApiError> {
    match (cfg.plan_of(source), cfg.repositories.as_slice()) {
        (Some(p), _) => Ok(p.repository.clone()),
        (None, [only]) => Ok(only.name.clone()),
        (None, _) => Err(ApiError::unprocessable(
            "repository",
            format!("source {source} has no plan and several repositories are configured: name the repository"),
        )),
    }
}

/// Refuses a time outside the source's recoverable window.
fn check_in_window(
    cfg: &crate::config::Config,
    keys: &[(String, String)],
    repository: &str,
    src: &crate::config::SourceConfig,
    t: jiff::Timestamp,
) -> Result<(), ApiError> {
    let repo = crate::work::open(cfg, repository).map_err(ApiError::internal)?;
    let manifests = repo.manifests().map_err(ApiError::internal)?;
    let mine: Vec<_> = manifests
        .iter()
        .filter(|m| crate::scan::source_of(cfg, keys, m).as_deref() == Some(src.name.as_str()))
        .collect();
    let windows = arca_ops::windows(&repo, &manifests).map_err(ApiError::internal)?;
    let w = windows.iter().find(|w| mine.iter().any(|m| w.covers(m)));
    match w {
        Some(w) => {
            let (Some(from), Some(to)) = (w.from, w.to) else {
                return Err(ApiError::unprocessable("time", "the source's recoverable window is empty: restore a backup instead"));
            };
            if t < from || t > to {
                return Err(ApiError::unprocessable(
                    "time",
                    format!("time {t} is outside the recoverable window of {} ({from} to {to})", src.name),
                ));
            }
            Ok(())
        }
        None => Err(ApiError::unprocessable(
            "time",
            format!(
                "source {} has no archived log in repository {repository}, so there is no window to restore a time from: restore a backup (field backup) instead",
                src.name
            ),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SnapshotsQuery {
    repository: Option<String>,
}

/// The repository a snapshot call is about: the one named, or the only one.
fn snapshot_repository(
    cfg: &crate::config::Config,
    given: Option<String>,
) -> Result<String, ApiError> {
    match given {
        Some(r) if cfg.repository(&r).is_some() => Ok(r),
        Some(r) => Err(ApiError::unprocessable(
            "repository",
            format!("no repository named {r:?}"),
        )),
        None => match cfg.repositories.as_slice() {
            [one] => Ok(one.name.clone()),
            _ => Err(ApiError::bad(
                "repository",
                "name the repository (several are configured)",
            )),
        },
    }
}

/// Named snapshots (restore points) in a repository, oldest first.
pub(crate) async fn snapshots_handler(
    caller: Caller,
    axum::extract::State(s): St,
    Q(q): Q<SnapshotsQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let cfg = s.config();
    let repository = snapshot_repository(&cfg, q.repository)?;
    let items = blocking(move || {
        let repo = crate::work::open(&cfg, &repository).map_err(ApiError::internal)?;
        let snaps = repo.manifests().map_err(ApiError::internal)?;
        let mut items = Vec::new();
        for p in arca_ops::points_in(&snaps) {
            let problem = arca_ops::unrestorable(&p, &snaps);
            items.push(json!({
                "name": p.name, "time": p.time.to_string(), "engine": "postgres",
                "position": p.lsn.to_string(), "timeline": p.timeline,
                "cluster": p.system_identifier, "repository": repository,
                "restorable": problem.is_none(), "problem": problem,
            }));
        }
        for p in arca_ops::mysql::points_in(&snaps) {
            let problem = arca_ops::mysql::unrestorable(&p, &snaps);
            items.push(json!({
                "name": p.name, "time": p.time.to_string(), "engine": "mysql",
                "position": p.position(), "server": p.server, "repository": repository,
                "restorable": problem.is_none(), "problem": problem,
            }));
        }
        Ok(items)
    })
    .await?;
    Ok(Json(json!({ "items": items })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SnapshotBody {
    source: String,
    name: String,
    #[serde(default)]
    repository: Option<String>,
}

/// Names the source's current point in its archived log (operator).
pub(crate) async fn snapshot_create_handler(
    caller: Caller,
    axum::extract::State(s): St,
    J(b): J<SnapshotBody>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    let cfg = s.config();
    let src = cfg.source(&b.source).cloned().ok_or_else(|| {
        ApiError::unprocessable("source", format!("no source named {:?}", b.source))
    })?;
    let repository = match b.repository {
        Some(r) => snapshot_repository(&cfg, Some(r))?,
        None => source_repository(&cfg, &src.name)?,
    };
    let name = b.name.clone();
    let point = blocking(move || {
        let repo = crate::work::open(&cfg, &repository).map_err(ApiError::internal)?;
        arca_ops::create_point(&repo, &src.url, &name)
            .map_err(|e| ApiError::unprocessable("name", e.to_string()))
    })
    .await?;
    s.event(
        "snapshot_created",
        Some(&b.source),
        None,
        &format!(
            "snapshot {} at {} ({}) by token {}",
            point.name, point.time, point.position, caller.name
        ),
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({ "name": point.name, "time": point.time.to_string(), "position": point.position, "detail": point.json })),
    )
        .into_response())
}

/// Drops a named snapshot (admin).
pub(crate) async fn snapshot_drop_handler(
    caller: Caller,
    axum::extract::State(s): St,
    Path(name): Path<String>,
    Q(q): Q<SnapshotsQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let cfg = s.config();
    let repository = snapshot_repository(&cfg, q.repository)?;
    let n = name.clone();
    blocking(move || {
        let repo = crate::work::open(&cfg, &repository).map_err(ApiError::internal)?;
        match arca_ops::mysql::drop_point(&repo, &n) {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => {}
            Err(e) => return Err(ApiError::internal(e)),
        }
        arca_ops::drop_point(&repo, &n)
            .map(|_| ())
            .map_err(|e| ApiError::not_found(e.to_string()))
    })
    .await?;
    s.event(
        "snapshot_dropped",
        None,
        None,
        &format!("snapshot {name} dropped by token {}", caller.name),
    );
    Ok(Json(json!({ "dropped": name })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckBody {
    repository: String,
    #[serde(default)]
    backup: Option<String>,
    #[serde(default)]
    read_data: bool,
}

pub(crate) async fn check_handler(
    caller: Caller,
    axum::extract::State(s): St,
    J(b): J<CheckBody>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    let cfg = s.config();
    if cfg.repository(&b.repository).is_none() {
        return Err(ApiError::unprocessable(
            "repository",
            format!("no repository named {:?}", b.repository),
        ));
    }
    let (repo, backup, read_data) = (b.repository.clone(), b.backup.clone(), b.read_data);
    let id = s.jobs.submit(
        Spec {
            kind: "check",
            source: None,
            plan: None,
            holder: format!("repo:{}", b.repository),
            detail: json!({ "repository": b.repository, "backup": b.backup }),
        },
        Box::new(move |ctx| {
            let mut o = crate::work::check(&cfg, &repo, backup, read_data, ctx)?;
            o.result["repository"] = repo.clone().into();
            Ok(o)
        }),
    )?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "job": id }))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DrillBody {
    plan: String,
}

/// A restore drill of a plan's source now (operator).
pub(crate) async fn drill_handler(
    caller: Caller,
    axum::extract::State(s): St,
    J(b): J<DrillBody>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    let cfg = s.config();
    let plan = cfg
        .plan(&b.plan)
        .ok_or_else(|| ApiError::unprocessable("plan", format!("no plan named {:?}", b.plan)))?;
    let id = crate::scheduler::submit_drill(&s, &cfg, plan)?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "job": id }))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForgetBody {
    plan: String,
    #[serde(default)]
    dry_run: bool,
    #[serde(default = "yes")]
    prune: bool,
}

fn yes() -> bool {
    true
}

pub(crate) async fn forget_handler(
    caller: Caller,
    axum::extract::State(s): St,
    J(b): J<ForgetBody>,
) -> Result<Response, ApiError> {
    caller.require(if b.dry_run {
        Role::Operator
    } else {
        Role::Admin
    })?;
    let cfg = s.config();
    let plan = cfg
        .plan(&b.plan)
        .ok_or_else(|| ApiError::unprocessable("plan", format!("no plan named {:?}", b.plan)))?;
    if !plan.has_retention() {
        return Err(ApiError::unprocessable(
            "plan",
            format!(
                "plan {} has no retention: set purge_after_days or keep_* in it",
                plan.name
            ),
        ));
    }
    let now = s.clock.now();
    let id = crate::scheduler::submit_forget(&s, &cfg, plan, now, b.dry_run, b.prune)?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "job": id }))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JobsQuery {
    source: Option<String>,
    state: Option<String>,
    before: Option<String>,
    limit: Option<usize>,
}

pub(crate) async fn jobs_handler(
    caller: Caller,
    axum::extract::State(s): St,
    Q(q): Q<JobsQuery>,
) -> Result<Json<Page<crate::catalog::JobRow, String>>, ApiError> {
    caller.require(Role::Viewer)?;
    if let Some(st) = &q.state {
        if !matches!(
            st.as_str(),
            "queued" | "running" | "succeeded" | "failed" | "cancelled" | "interrupted"
        ) {
            return Err(ApiError::bad(
                "state",
                "state is one of queued, running, succeeded, failed, cancelled, interrupted",
            ));
        }
    }
    let limit = limit(q.limit)?;
    let st = s.clone();
    let mut rows = blocking(move || {
        st.catalog
            .jobs(
                q.source.as_deref(),
                q.state.as_deref(),
                q.before.as_deref(),
                limit + 1,
            )
            .map_err(ApiError::internal)
    })
    .await?;
    let live = s.jobs.live();
    for r in rows.iter_mut() {
        if let Some(l) = live.iter().find(|l| l.id == r.id) {
            *r = l.clone();
        }
    }
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|r| r.id.clone())
    } else {
        None
    };
    Ok(Json(Page { items: rows, next }))
}

pub(crate) async fn job_handler(
    caller: Caller,
    axum::extract::State(s): St,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let job = blocking(move || {
        s.jobs
            .get(&id)
            .ok_or_else(|| ApiError::not_found(format!("no job {id}")))
    })
    .await?;
    Ok(Json(serde_json::to_value(job).map_err(ApiError::internal)?))
}

pub(crate) async fn cancel_handler(
    caller: Caller,
    axum::extract::State(s): St,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    match s.jobs.cancel(&id) {
        Some(row) => {
            s.event(
                "job_cancel_requested",
                row.source.as_deref(),
                Some(&id),
                &format!("cancel of job {id} requested by token {}", caller.name),
            );
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "job": id, "state": "cancelling" })),
            )
                .into_response())
        }
        None => {
            let st = s.clone();
            let id2 = id.clone();
            let known = blocking(move || Ok(st.catalog.job(&id2).ok().flatten())).await?;
            match known {
                Some(j) => Err(ApiError {
                    extra: json!({ "state": j.state }),
                    ..ApiError::new(
                        StatusCode::CONFLICT,
                        format!("job {id} has ended ({}): nothing to cancel", j.state),
                    )
                }),
                None => Err(ApiError::not_found(format!("no job {id}"))),
            }
        }
    }
}

pub(crate) async fn jobs_stream_handler(
    caller: Caller,
    axum::extract::State(s): St,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError>
{
    caller.require(Role::Viewer)?;
    Ok(job_events(s, || true))
}

/// Every change of a job as it happens (`job`), and each second the live
/// jobs' progress (`progress`), for as long as `alive` says (the console's
/// session: a signed-out browser's stream ends at the next tick).
pub(crate) fn job_events(
    s: S,
    alive: impl Fn() -> bool + Send + Sync + 'static,
) -> Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let rx = s.jobs.subscribe();
    let stream = futures_util::stream::unfold((rx, s.clone()), |(mut rx, s)| async move {
        loop {
            match rx.recv().await {
                Ok(j) => return Some((Ok(Event::default().event("job").data(j)), (rx, s))),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let alive = Arc::new(alive);
    let progress = futures_util::stream::unfold(s.clone(), |s| async move {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let live = s.jobs.live();
        let data = serde_json::to_string(&live).unwrap_or_default();
        Some((Ok(Event::default().event("progress").data(data)), s))
    });
    let merged = futures_util::stream::select(stream, progress);
    let gated = futures_util::StreamExt::take_while(merged, move |_| {
        let ok = alive();
        async move { ok }
    });
    Sse::new(gated).keep_alive(KeepAlive::default())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    source: Option<String>,
    kind: Option<String>,
    before: Option<i64>,
    limit: Option<usize>,
}

pub(crate) async fn events_handler(
    caller: Caller,
    axum::extract::State(s): St,
    Q(q): Q<EventsQuery>,
) -> Result<Json<Page<crate::catalog::EventRow, i64>>, ApiError> {
    caller.require(Role::Viewer)?;
    let limit = limit(q.limit)?;
    let mut rows = blocking(move || {
        s.catalog
            .events(q.source.as_deref(), q.kind.as_deref(), q.before, limit + 1)
            .map_err(ApiError::internal)
    })
    .await?;
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|e| e.id)
    } else {
        None
    };
    Ok(Json(Page { items: rows, next }))
}

pub(crate) async fn windows_handler(
    caller: Caller,
    axum::extract::State(s): St,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let items = blocking(move || Ok(crate::metrics::windows(&s))).await?;
    let items: Vec<Value> = items
        .into_iter()
        .map(|w| {
            json!({
                "source": w.source,
                "repository": w.repository,
                "from": w.from.map(|t| t.to_string()),
                "to": w.to.map(|t| t.to_string()),
                "lag_seconds": w.lag_seconds,
                "lines": w.lines,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

pub(crate) async fn stats_handler(
    caller: Caller,
    axum::extract::State(s): St,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let now = s.clock.now();
    let items = blocking(move || Ok(crate::metrics::stats(&s, now))).await?;
    Ok(Json(json!({ "items": items })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SqlBody {
    sql: String,
}

pub(crate) async fn sql_handler(
    caller: Caller,
    axum::extract::State(s): St,
    J(b): J<SqlBody>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let out = crate::sql::execute(&s, &caller, &b.sql).await?;
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClockBody {
    now: String,
}

/// Tests only (`--test-clock`): moves the schedule clock and answers once
/// the scheduler has acted on the new time.
pub(crate) async fn clock_handler(
    caller: Caller,
    axum::extract::State(s): St,
    J(b): J<ClockBody>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let t: jiff::Timestamp = b
        .now
        .parse()
        .map_err(|_| ApiError::bad("now", "now must be an RFC 3339 time"))?;
    if let crate::Clock::Test(c) = &s.clock {
        *c.lock().unwrap_or_else(|p| p.into_inner()) = t;
    }
    let mut rx = s.ticked.subscribe();
    s.wake.notify_one();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        rx.wait_for(|seen| *seen >= t),
    )
    .await;
    Ok(Json(json!({ "now": t.to_string() })))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route the router serves is in the OpenAPI document, with the
    /// same methods, and the document names no route that is not served.
    #[test]
    fn the_openapi_document_describes_every_route() {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let src = include_str!("api.rs");
        let src = &src[..src.find("#[cfg(test)]").unwrap()];
        let mut served = std::collections::BTreeMap::new();
        for chunk in src.split(".route(").skip(1) {
            let Some(chunk) = chunk.trim_start().strip_prefix('"') else {
                continue;
            };
            let (path, rest) = chunk.split_once('"').unwrap();
            if path == "/api/v1/test/clock" {
                continue; // tests only, behind --test-clock
            }
            let call = &rest[..rest.find("))").unwrap_or(rest.len())];
            let mut methods: Vec<&str> = ["get", "post", "delete", "put", "patch"]
                .into_iter()
                .filter(|m| call.contains(&format!("{m}(")))
                .collect();
            methods.sort();
            served.insert(path.to_string(), methods);
        }
        assert!(served.len() > 15, "{served:?}");
        let mut documented = std::collections::BTreeMap::new();
        for (p, ops) in paths {
            let mut m: Vec<&str> = ops
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            m.sort();
            documented.insert(p.clone(), m);
        }
        assert_eq!(served, documented);
    }

    #[test]
    fn passwords_are_taken_out_of_source_urls() {
        assert_eq!(
            redact("postgresql://backup:hunter2@db:5432/app?sslmode=require"),
            "postgresql://backup:[SECRET]@db:5432/app?sslmode=require"
        );
        assert_eq!(
            redact("mysql://root@127.0.0.1:3306/?password=hunter2&x=1"),
            "mysql://root@127.0.0.1:3306/?password=[SECRET]&x=1"
        );
        assert_eq!(
            redact("sqlite:///var/lib/app.db"),
            "sqlite:///var/lib/app.db"
        );
    }

    #[test]
    fn body_errors_name_the_field() {
        let e = body_error(
            "request body",
            "Failed to deserialize the JSON body into the target type: unknown field `colour`, expected one of `source`, `plan` at line 1 column 9",
        );
        assert_eq!(e.field.as_deref(), Some("colour"));
        let e = body_error(
            "request body",
            "Failed to deserialize the JSON body into the target type: to: invalid type: integer `3`, expected a string at line 1 column 7",
        );
        assert_eq!(e.field.as_deref(), Some("to"));
    }
}
