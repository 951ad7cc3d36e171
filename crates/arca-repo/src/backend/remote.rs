//! What the backend adds for object stores: OpenDAL's layers in a fixed
//! order, and error messages that name the bucket and endpoint and never a
//! credential.
//!
//! Layers, innermost first:
//! 1. timeout: each attempt of a request (60 s; 120 s per I/O step, enough
//!    to PUT a 32 MiB pack at 0.3 MB/s);
//! 2. concurrent limit: at most [`MAX_REQUESTS`] requests in flight, so a
//!    retry waiting out its backoff holds no slot;
//! 3. classify: errors whose S3 code no retry can fix (an invalid bucket
//!    name, a bad signature…) are made permanent even when the store sends
//!    them with a 5xx (see [`super::classify`]);
//! 4. retry: errors OpenDAL marks temporary (timeouts, 5xx, throttling,
//!    connection resets) are retried with exponential backoff and jitter;
//!    permanent ones (403, 404, a missing bucket) return at once;
//! 5. logging: each operation as a tracing event (debug), never a secret.
//!
//! A second operator with the same service and short retries makes the
//! first request of a command, so a wrong endpoint fails in a second rather
//! than after the full retry budget.

use std::sync::Arc;
use std::time::Duration;

use opendal::layers::{
    ConcurrentLimitLayer, LoggingInterceptor, LoggingLayer, RetryLayer, TimeoutLayer,
};
use opendal::raw::Operation;
use opendal::{ErrorKind, Operator};

use super::classify::{self, ClassifyLayer};
use super::location::{Remote, Scheme};
use crate::error::{Error, Result};

/// Requests in flight at once, per process.
const MAX_REQUESTS: usize = 32;
const TIMEOUT: Duration = Duration::from_secs(60);
const IO_TIMEOUT: Duration = Duration::from_secs(120);

/// Environment variables whose values are credentials, to scrub from messages.
const SECRET_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZBLOB_ACCOUNT_KEY",
    "AZURE_CLIENT_SECRET",
    "AZURE_STORAGE_SAS_TOKEN",
    "TENCENTCLOUD_SECRET_ID",
    "TENCENTCLOUD_SECRET_KEY",
    "TENCENTCLOUD_SECURITY_TOKEN",
    "ALIBABA_CLOUD_ACCESS_KEY_ID",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "ALIBABA_CLOUD_SECURITY_TOKEN",
];

/// How to talk about one store in messages.
#[derive(Clone)]
pub(super) struct Describe {
    url: String,
    scheme: Scheme,
    /// "bucket arca at endpoint http://127.0.0.1:8333"
    place: String,
    secrets: Arc<Vec<String>>,
}

/// The operators for one store: `main` for the work, `quick` for the first
/// request.
pub(super) struct Store {
    pub main: Operator,
    pub quick: Operator,
    pub describe: Describe,
}

pub(super) fn open(r: &Remote) -> Result<Store> {
    let (base, endpoint) = super::stores::service(r)?;
    let mut secrets: Vec<String> = [&r.options.access_key_id, &r.options.secret_access_key]
        .into_iter()
        .flatten()
        .map(|s| s.expose().to_string())
        .collect();
    secrets.extend(SECRET_VARS.iter().filter_map(|v| std::env::var(v).ok()));
    secrets.retain(|s| s.len() >= 4);
    let describe = Describe {
        url: match r.prefix.as_str() {
            "" => format!("{}://{}", r.scheme, r.bucket),
            p => format!("{}://{}/{p}", r.scheme, r.bucket),
        },
        scheme: r.scheme,
        place: format!(
            "{} {} at endpoint {endpoint}",
            r.scheme.bucket_word(),
            r.bucket
        ),
        secrets: Arc::new(secrets),
    };
    let log = RetryLog(describe.clone());
    let main = layered(
        base.clone(),
        RetryLayer::new()
            .with_jitter()
            .with_factor(2.0)
            .with_min_delay(Duration::from_millis(250))
            .with_max_delay(Duration::from_secs(16))
            .with_max_times(8)
            .with_notify(log),
    );
    let quick = layered(
        base,
        RetryLayer::new()
            .with_jitter()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(1))
            .with_max_times(2)
            .with_notify(|_: opendal::layers::RetryEvent<'_>| {}),
    );
    Ok(Store {
        main,
        quick,
        describe,
    })
}

fn layered<I: opendal::layers::RetryInterceptor>(op: Operator, retry: RetryLayer<I>) -> Operator {
    op.layer(
        TimeoutLayer::new()
            .with_timeout(TIMEOUT)
            .with_io_timeout(IO_TIMEOUT),
    )
    .layer(ConcurrentLimitLayer::new(MAX_REQUESTS))
    .layer(ClassifyLayer)
    .layer(retry)
    .layer(LoggingLayer::new(TraceLog))
}

impl Describe {
    /// One line: what failed, why, where, and what to check.
    pub fn error(&self, op: &'static str, path: &str, e: &opendal::Error) -> Error {
        tracing::debug!(
            "{op} {path} on {}: {}",
            self.place,
            self.scrub(&format!("{e}"))
        );
        let (code, detail) = parse_detail(e);
        let connect = is_connect_failure(e);
        let no_credentials = e.kind() == ErrorKind::Unexpected
            && format!("{e}").contains("failed to load signing credential");
        // By their code: a store may send these with a 5xx, not a 403.
        let denied = e.kind() == ErrorKind::PermissionDenied
            || matches!(
                code.as_deref(),
                Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch")
            );
        let bad_name = code.as_deref() == Some("InvalidBucketName");
        let reason = match e.kind() {
            _ if no_credentials => "no credentials found",
            _ if denied => "access denied",
            _ if bad_name => "invalid bucket name",
            ErrorKind::NotFound => "not found",
            ErrorKind::ConfigInvalid if code.as_deref() == Some("NoSuchBucket") => {
                "the bucket does not exist"
            }
            ErrorKind::ConfigInvalid => "invalid configuration",
            ErrorKind::RateLimited => "the store kept throttling requests",
            _ if connect => "cannot connect",
            _ if classify::was_retried(e) => "failed after retries",
            _ => "failed",
        };
        let hint = match e.kind() {
            _ if no_credentials || denied => self.credentials_hint(),
            _ if bad_name => {
                ": bucket names are 3 to 63 lowercase letters, digits, dots and hyphens"
            }
            ErrorKind::ConfigInvalid if code.as_deref() == Some("NoSuchBucket") => {
                ": create it, or check --bucket and --endpoint"
            }
            _ if connect => ": check --endpoint and that the store is running",
            _ => "",
        };
        let path = path.trim_start_matches('/');
        let target = if path.is_empty() {
            self.url.clone()
        } else {
            format!("{}/{path}", self.url)
        };
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(" ({detail})")
        };
        let message = self.scrub(&format!(
            "cannot {op} {target}: {reason}{detail}; {}{hint}",
            self.place
        ));
        Error::Remote {
            request: crate::error::Request::new(op, path),
            kind: e.kind(),
            code,
            message,
        }
    }

    fn credentials_hint(&self) -> &'static str {
        match self.scheme {
            Scheme::S3 => ": check the access key id and secret access key (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/credentials, or --access_key_id/--secret_access_key) and the bucket's permissions",
            _ => ": check the credentials and the bucket's permissions",
        }
    }

    /// Replaces any credential value with `[SECRET]`.
    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in self.secrets.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "[SECRET]");
            }
        }
        out
    }
}

/// The store's error code and message (S3's `<Code>` and `<Message>`), or
/// the first line of OpenDAL's message and the root cause.
fn parse_detail(e: &opendal::Error) -> (Option<String>, String) {
    let msg = e.message();
    if let Some(code) = classify::error_field(msg, "code") {
        let detail = match classify::error_field(msg, "message") {
            Some(m) => format!("{code}: {m}"),
            None => code.to_string(),
        };
        return (Some(code.to_string()), detail);
    }
    let mut detail: String = msg.lines().next().unwrap_or("").chars().take(200).collect();
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut last = None;
    while let Some(c) = cause {
        last = Some(c.to_string());
        cause = c.source();
    }
    if let Some(root) = last {
        if !detail.is_empty() {
            detail.push_str(": ");
        }
        detail.push_str(&root);
    }
    (None, detail)
}

/// True if no connection to the store could be made (refused, timed out,
/// name not resolved). A connection the store accepted and then lost
/// ("connection closed before message completed", a reset) is not one: the
/// store is there, and "check --endpoint" would send the user the wrong way.
fn is_connect_failure(e: &opendal::Error) -> bool {
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(r) = c.downcast_ref::<reqwest::Error>() {
            return r.is_connect();
        }
        let text = c.to_string().to_ascii_lowercase();
        if text.contains("connection refused")
            || text.contains("dns")
            || text.contains("resolve")
            || text.contains("connect error")
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Logs each retry at warn level: the user sees the store is struggling.
struct RetryLog(Describe);

impl opendal::layers::RetryInterceptor for RetryLog {
    fn intercept(&self, ev: opendal::layers::RetryEvent<'_>) {
        let (_, detail) = parse_detail(ev.err);
        tracing::warn!(
            "{} on {}: {} {}; retry {} in {:.1}s",
            ev.op,
            self.0.place,
            ev.err.kind(),
            self.0.scrub(&detail),
            ev.attempt,
            ev.retry_after.as_secs_f64()
        );
    }
}

/// OpenDAL's logging layer, as tracing events.
#[derive(Debug, Clone, Copy)]
struct TraceLog;

impl LoggingInterceptor for TraceLog {
    fn log(
        &self,
        info: &opendal::raw::ServiceInfo,
        operation: Operation,
        context: &[(&str, &str)],
        message: &str,
        err: Option<&opendal::Error>,
    ) {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let ctx: Vec<String> = context.iter().map(|(k, v)| format!("{k}={v}")).collect();
        match err {
            Some(e) => tracing::debug!(
                "{} {operation} {message} {}: {}",
                info.scheme(),
                ctx.join(" "),
                e.kind()
            ),
            None => tracing::trace!("{} {operation} {message} {}", info.scheme(), ctx.join(" ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::LazyLock;
    use std::time::Instant;

    use crate::backend::{Backend, Location, StoreOptions};
    use crate::secret::Secret;

    /// Requests a fake S3 endpoint answered, by path.
    #[derive(Default)]
    struct Hits {
        transient: AtomicUsize,
        denied: AtomicUsize,
        bad_name: AtomicUsize,
        down: AtomicUsize,
    }

    /// A fake S3 endpoint: `transient` answers 503 SlowDown twice, then
    /// 200; `bad-name` answers 500 InvalidBucketName; `down` always answers
    /// 503 ServiceUnavailable; anything else 403 SignatureDoesNotMatch.
    fn fake_s3(hits: &'static Hits) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&req)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                let (status, body) = if line.contains("/transient") {
                    if hits.transient.fetch_add(1, Ordering::SeqCst) < 2 {
                        ("503 Service Unavailable", "<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>")
                    } else {
                        ("200 OK", "hello")
                    }
                } else if line.contains("/bad-name") {
                    hits.bad_name.fetch_add(1, Ordering::SeqCst);
                    ("500 Internal Server Error", "<Error><Code>InvalidBucketName</Code><Message>The specified bucket is not valid.</Message></Error>")
                } else if line.contains("/down") {
                    hits.down.fetch_add(1, Ordering::SeqCst);
                    ("503 Service Unavailable", "<Error><Code>ServiceUnavailable</Code><Message>Try again.</Message></Error>")
                } else {
                    hits.denied.fetch_add(1, Ordering::SeqCst);
                    ("403 Forbidden", "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match.</Message></Error>")
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        port
    }

    fn fake_backend(hits: &'static Hits, secret: &str) -> (Backend, String) {
        let endpoint = format!("http://127.0.0.1:{}", fake_s3(hits));
        let loc = Location::parse_with(
            "s3://bkt/pre",
            StoreOptions {
                endpoint: Some(endpoint.clone()),
                access_key_id: Some(Secret::new("fakeid")),
                secret_access_key: Some(Secret::new(secret)),
                ..Default::default()
            },
        )
        .unwrap();
        (Backend::open(&loc, false).unwrap(), endpoint)
    }

    #[test]
    fn transient_errors_are_retried_and_permanent_ones_fail_at_once() {
        static HITS: LazyLock<Hits> = LazyLock::new(Hits::default);
        let secret = "fake-secret-0a1b2c3d";
        let (b, endpoint) = fake_backend(&HITS, secret);

        assert_eq!(b.read("transient").unwrap(), b"hello");
        assert_eq!(
            HITS.transient.load(Ordering::SeqCst),
            3,
            "two 503s, then success"
        );

        let t = Instant::now();
        let e = b.read("denied").unwrap_err().to_string();
        assert!(t.elapsed().as_secs() < 2, "a 403 is not retried");
        assert_eq!(HITS.denied.load(Ordering::SeqCst), 1);
        assert!(
            e.contains("access denied") && e.contains("SignatureDoesNotMatch"),
            "{e}"
        );
        assert!(
            e.contains("bucket bkt at endpoint") && e.contains(&endpoint),
            "{e}"
        );
        assert!(!e.contains(secret), "{e}");
    }

    /// An invalid bucket name sent with a 5xx, which OpenDAL takes for
    /// temporary: one request, then one line that names the problem and
    /// does not claim retries.
    #[test]
    fn a_permanent_s3_code_with_a_5xx_fails_at_once() {
        static HITS: LazyLock<Hits> = LazyLock::new(Hits::default);
        let (b, endpoint) = fake_backend(&HITS, "fake-secret-4e5f6a7b");
        let e = b.read("bad-name").unwrap_err().to_string();
        assert_eq!(HITS.bad_name.load(Ordering::SeqCst), 1, "retried: {e}");
        assert!(
            e.contains("invalid bucket name") && e.contains("InvalidBucketName"),
            "{e}"
        );
        assert!(!e.contains("retries"), "{e}");
        assert!(
            e.contains("bucket bkt at endpoint") && e.contains(&endpoint),
            "{e}"
        );

        // A 5xx without such a code is still retried, and says so.
        let e = b.probe_read("down").unwrap_err().to_string();
        assert_eq!(HITS.down.load(Ordering::SeqCst), 3, "two retries: {e}");
        assert!(e.contains("failed after retries"), "{e}");
    }
}
