//! Console sign-in: a token typed once becomes a session cookie
//! (HttpOnly, SameSite=Strict). Sessions live in memory, so a restart
//! signs everyone out; each request re-checks that the session's token is
//! still in the configuration, so removing a token ends its sessions at the
//! next reload. Every form carries the session's CSRF token, and a POST
//! whose Origin is another site is refused before that.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use sha2::{Digest, Sha256};

use crate::api::Caller;
use crate::config::Role;
use crate::State;

pub const COOKIE: &str = "arca_session";
/// A session ends this long after sign-in.
const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// At most this many sessions; the oldest goes first.
const MAX_SESSIONS: usize = 1000;

#[derive(Clone)]
struct Session {
    token_sha256: [u8; 32],
    csrf: String,
    created: Instant,
}

#[derive(Default)]
pub struct Sessions {
    // Keyed by the SHA-256 of the cookie's value, so a memory dump or a
    // debug print does not hand out live cookies.
    map: Mutex<HashMap<[u8; 32], Session>>,
}

/// A signed-in caller of the console.
pub struct Signed {
    pub caller: Caller,
    pub csrf: String,
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the system's random source");
    hex::encode(b)
}

fn sha(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

impl Sessions {
    /// Starts a session for a valid token: the cookie's value.
    pub fn start(&self, state: &State, token: &str) -> Option<String> {
        let token_sha256 = sha(token.trim());
        Caller::of_token(state, &token_sha256)?;
        let id = random_hex();
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, s| s.created.elapsed() < LIFETIME);
        if m.len() >= MAX_SESSIONS {
            if let Some(k) = m.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k) {
                m.remove(&k);
            }
        }
        m.insert(
            sha(&id),
            Session {
                token_sha256,
                csrf: random_hex(),
                created: Instant::now(),
            },
        );
        Some(id)
    }

    pub fn end(&self, cookie: &str) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        m.remove(&sha(cookie));
    }

    /// The session of this cookie is still signed in.
    pub fn is_live(&self, state: &State, cookie: &str) -> bool {
        self.find(state, cookie).is_some()
    }

    fn find(&self, state: &State, cookie: &str) -> Option<Signed> {
        let s = {
            let m = self.map.lock().unwrap_or_else(|p| p.into_inner());
            m.get(&sha(cookie)).cloned()?
        };
        if s.created.elapsed() >= LIFETIME {
            self.end(cookie);
            return None;
        }
        let caller = Caller::of_token(state, &s.token_sha256)?;
        Some(Signed {
            caller,
            csrf: s.csrf,
        })
    }
}

/// The value of one cookie in the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The Set-Cookie header of a new session.
pub fn set_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// A POST from another site's page: its Origin (or Referer) names
/// another host than the one the request was sent to.
pub fn cross_site(method: &Method, headers: &HeaderMap) -> bool {
    if method != Method::POST {
        return false;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let origin = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|h| h.to_str().ok());
    match origin {
        // A browser that sends neither is not a cross-site form post
        // (browsers send Origin on every cross-site POST).
        None => false,
        Some(o) => {
            let rest = o.split_once("://").map_or(o, |(_, r)| r);
            let authority = rest.split('/').next().unwrap_or_default();
            !authority.eq_ignore_ascii_case(host)
        }
    }
}

/// Not signed in: every page sends the browser to `/login`; a request
/// from htmx is told to go there too.
pub struct ToLogin(bool);

impl IntoResponse for ToLogin {
    fn into_response(self) -> Response {
        if self.0 {
            return (StatusCode::UNAUTHORIZED, [("HX-Redirect", "/login")]).into_response();
        }
        Redirect::to("/login").into_response()
    }
}

impl FromRequestParts<Arc<State>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<State>) -> Result<Self, Response> {
        if cross_site(&parts.method, &parts.headers) {
            return Err((
                StatusCode::FORBIDDEN,
                "refused: this form was sent from another site's page",
            )
                .into_response());
        }
        let htmx = parts.headers.contains_key("HX-Request");
        let id = cookie(&parts.headers, COOKIE).ok_or(ToLogin(htmx).into_response())?;
        state
            .sessions
            .find(state, id)
            .ok_or(ToLogin(htmx).into_response())
    }
}

/// A form posted by a signed-in caller, its CSRF token checked: every
/// console action takes one, so no action can leave the check out.
pub struct Posted {
    pub who: Signed,
    pub form: HashMap<String, String>,
}

impl FromRequest<Arc<State>> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, state: &Arc<State>) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let who = Signed::from_request_parts(&mut parts, state).await?;
        let req = Request::from_parts(parts, body);
        let axum::Form(form) = axum::Form::<HashMap<String, String>>::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let given = form.get("csrf").map_or("", String::as_str);
        if !same(given.as_bytes(), who.csrf.as_bytes()) {
            return Err(StaleForm.into_response());
        }
        Ok(Posted { who, form })
    }
}

/// A form without this session's CSRF token.
pub struct StaleForm;

impl IntoResponse for StaleForm {
    fn into_response(self) -> Response {
        (
            StatusCode::FORBIDDEN,
            "refused: the form is stale or from elsewhere; reload the page and try again",
        )
            .into_response()
    }
}

impl Signed {
    pub fn can(&self, role: Role) -> bool {
        self.caller.role >= role
    }

    /// A copy of the caller, for calling an API handler.
    pub fn caller(&self) -> Caller {
        Caller {
            name: self.caller.name.clone(),
            role: self.caller.role,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; arca_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn cross_site_posts_are_recognised() {
        let post = |origin: Option<&str>| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, "127.0.0.1:7070".parse().unwrap());
            if let Some(o) = origin {
                h.insert(header::ORIGIN, o.parse().unwrap());
            }
            cross_site(&Method::POST, &h)
        };
        assert!(!post(None));
        assert!(!post(Some("http://127.0.0.1:7070")));
        assert!(post(Some("http://evil.example")));
        assert!(post(Some("http://127.0.0.1:7071")));
    }
}
