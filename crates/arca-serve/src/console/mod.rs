//! The web console: server-rendered pages over the same handlers as the
//! HTTP API. A page calls the API's handler with the signed-in caller and
//! renders its JSON, so the console can show and do exactly what the API
//! allows that caller, no more. Templates, htmx and the stylesheet are
//! embedded in the binary.

pub mod charts;
mod pages;
pub mod session;

use std::sync::{Arc, OnceLock};

use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::Environment;
use serde_json::{json, Value};

use crate::api::{ApiError, S};
use crate::config::Role;
use session::Signed;

pub fn routes() -> Router<S> {
    Router::new()
        .route("/", get(pages::overview))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/backups", get(pages::backups).post(pages::backup_now))
        .route("/backups/{id}", get(pages::backup))
        .route("/backups/{id}/verify", post(pages::verify))
        .route("/restore", get(pages::restore_form).post(pages::restore))
        .route("/policies", get(pages::policies))
        .route("/policies/{plan}", post(pages::policy_update))
        .route("/policies/{plan}/check", post(pages::policy_check))
        .route("/jobs", get(pages::jobs))
        .route("/jobs/stream", get(pages::jobs_stream))
        .route("/jobs/{id}", get(pages::job))
        .route("/jobs/{id}/cancel", post(pages::cancel))
        .route("/events", get(pages::events))
        .route(
            "/repositories",
            get(pages::repositories).post(pages::repository_add),
        )
        .route("/repositories/{name}/test", post(pages::repository_test))
        .route(
            "/repositories/{name}/remove",
            post(pages::repository_remove),
        )
        .route("/assets/{file}", get(asset))
}

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("backups.html", include_str!("templates/backups.html")),
    ("backup.html", include_str!("templates/backup.html")),
    ("restore.html", include_str!("templates/restore.html")),
    ("policies.html", include_str!("templates/policies.html")),
    ("jobs.html", include_str!("templates/jobs.html")),
    ("job.html", include_str!("templates/job.html")),
    ("events.html", include_str!("templates/events.html")),
    (
        "repositories.html",
        include_str!("templates/repositories.html"),
    ),
    ("macros.html", include_str!("templates/macros.html")),
];

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut e = Environment::new();
        for (name, src) in TEMPLATES {
            e.add_template(name, src)
                .expect("the console's templates parse");
        }
        e.add_filter("bytes", |v: Option<u64>| {
            v.map(arca_ops::bytes).unwrap_or_default()
        });
        e.add_filter("duration_ms", |ms: Option<i64>| {
            ms.map(|ms| duration(ms.max(0) as u64 / 1000))
                .unwrap_or_default()
        });
        // A lag can read below zero when clocks differ: shown as 0 s.
        e.add_filter("seconds", |s: Option<i64>| {
            s.map(|s| duration(s.max(0) as u64)).unwrap_or_default()
        });
        e.add_filter("ratio", |r: f64| format!("{r:.1}×"));
        e
    })
}

/// Text for HTML built outside a template (an htmx fragment).
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// `1 h 02 min`, `3 min 05 s`, `12 s`.
pub fn duration(s: u64) -> String {
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

/// Renders a page for a signed-in caller; `page` names the active tab.
fn render(who: &Signed, template: &str, page: &str, mut ctx: Value) -> Response {
    ctx["me"] = json!({
        "name": who.caller.name,
        "role": who.caller.role.as_str(),
        "operator": who.can(Role::Operator),
        "admin": who.can(Role::Admin),
    });
    ctx["csrf"] = who.csrf.clone().into();
    ctx["page"] = page.into();
    render_plain(template, ctx, StatusCode::OK)
}

fn render_plain(template: &str, ctx: Value, status: StatusCode) -> Response {
    let t = env().get_template(template).expect("a known template");
    match t.render(minijinja::value::Serde(&ctx)) {
        Ok(html) => (status, no_store(), Html(html)).into_response(),
        Err(e) => {
            tracing::error!("console: template {template}: {e:#}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the page could not be drawn: {e}"),
            )
                .into_response()
        }
    }
}

/// Pages show live state and secrets-adjacent forms: never cached.
fn no_store() -> [(header::HeaderName, &'static str); 2] {
    [
        (header::CACHE_CONTROL, "no-store"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'; form-action 'self'",
        ),
    ]
}

/// An API error shown on a page of its own (a failed lookup, a refusal).
fn error_page(who: &Signed, page: &str, e: ApiError) -> Response {
    let status = e.status;
    let mut r = render(
        who,
        "base.html",
        page,
        json!({ "page_error": e.message, "title": "Error" }),
    );
    *r.status_mut() = status;
    r
}

/// The JSON body of an API handler's response.
async fn body_json(r: Response) -> Value {
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "htmx.min.js",
        mime: "text/javascript",
        body: include_bytes!("assets/htmx.min.js"),
    },
    Asset {
        name: "app.js",
        mime: "text/javascript",
        body: include_bytes!("assets/app.js"),
    },
    Asset {
        name: "style.css",
        mime: "text/css",
        body: include_bytes!("assets/style.css"),
    },
];

async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(a) => (
            [
                (header::CONTENT_TYPE, a.mime),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            a.body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

/// The state, for handlers that take it from axum.
type St = axum::extract::State<Arc<crate::State>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        let e = env();
        for (name, _) in TEMPLATES {
            e.get_template(name).unwrap();
        }
    }

    #[test]
    fn a_negative_log_lag_renders_as_zero() {
        let out = env()
            .render_str("{{ lag|seconds }}", minijinja::context! { lag => -3 })
            .unwrap();
        assert_eq!(out, "0 s");
    }

    #[test]
    fn sizes_and_durations_read_as_people_write_them() {
        assert_eq!(arca_ops::bytes(512), "512 B");
        assert_eq!(arca_ops::bytes(1536), "1.5 KiB");
        assert_eq!(arca_ops::bytes(3 << 30), "3.0 GiB");
        assert_eq!(duration(5), "5 s");
        assert_eq!(duration(185), "3 min 05 s");
        assert_eq!(duration(3720), "1 h 02 min");
    }
}
