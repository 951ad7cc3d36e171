//! Parsing of a `postgres://` source and finding its password.

use std::fmt;
use std::path::{Path, PathBuf};

use super::core::PgCause;
use crate::Error;

/// What a PostgreSQL `--source` looks like, for messages.
pub const EXPECTED: &str = "postgres://USER[:PASSWORD]@HOST[:PORT]/DB";

/// A PostgreSQL cluster to back up, as given by `--source` (and `--pgdata`).
#[derive(Clone)]
pub struct PgSource {
    config: postgres::Config,
    /// Where the data directory is on this host, if the user said so;
    /// otherwise the server's own `data_directory`.
    pub pgdata: Option<PathBuf>,
}

impl PgSource {
    /// Parses `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` (or `postgresql://`,
    /// or libpq's `key=value` form). A password missing from the URL comes from
    /// `PGPASSWORD`, then `PGPASSFILE` or `~/.pgpass`, as with libpq.
    pub fn parse(input: &str, pgdata: Option<PathBuf>) -> Result<PgSource, Error> {
        let invalid = |reason: String| Error::InvalidSource {
            input: redact(input),
            reason,
            expected: EXPECTED,
        };
        if let Some((scheme, _)) = input.split_once("://") {
            if !matches!(
                scheme.to_ascii_lowercase().as_str(),
                "postgres" | "postgresql"
            ) {
                return Err(invalid(format!(
                    "the {scheme}:// scheme is not a PostgreSQL source"
                )));
            }
        }
        let mut config: postgres::Config = input.parse().map_err(|e| invalid(describe(&e)))?;
        if config.get_user().is_none() {
            let user = std::env::var("PGUSER").unwrap_or_else(|_| "postgres".into());
            config.user(&user);
        }
        if config.get_hosts().is_empty() {
            config.host("localhost");
        }
        if config.get_dbname().is_none() {
            config.dbname("postgres");
        }
        if config.get_password().is_none() {
            if let Ok(pw) = std::env::var("PGPASSWORD") {
                config.password(pw);
            } else if let Some(pw) = pgpass_lookup(&config) {
                config.password(pw);
            }
        }
        config.application_name("arca");
        config.connect_timeout(std::time::Duration::from_secs(10));
        Ok(PgSource { config, pgdata })
    }

    pub fn connect(&self) -> Result<postgres::Client, Error> {
        self.config
            .connect(postgres::NoTls)
            .map_err(|e| Error::Connect {
                server: self.to_string(),
                reason: describe(&e),
                cause: PgCause::of(&e),
            })
    }

    /// The same server, for the replication protocol.
    pub fn replication_config(&self) -> postgres::Config {
        self.config.clone()
    }

    pub fn config(&self) -> &postgres::Config {
        &self.config
    }

    pub fn user(&self) -> &str {
        self.config.get_user().unwrap_or("postgres")
    }

    pub fn port(&self) -> u16 {
        self.config.get_ports().first().copied().unwrap_or(5432)
    }

    pub fn host(&self) -> String {
        match self.config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        }
    }
}

/// `postgres://user@host:port/db`, never the password.
impl fmt::Display for PgSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = self.host();
        let host = if host.starts_with('/') {
            host.replace('/', "%2F")
        } else {
            host
        };
        write!(
            f,
            "postgres://{}@{}:{}/{}",
            self.user(),
            host,
            self.port(),
            self.config.get_dbname().unwrap_or("postgres")
        )
    }
}

impl fmt::Debug for PgSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgSource({self})")
    }
}

/// One line for a client error: the server's message if it sent one.
pub(crate) fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut s = e.to_string();
            let mut cur = std::error::Error::source(e);
            while let Some(c) = cur {
                s = format!("{s}: {c}");
                cur = c.source();
            }
            s
        }
    }
}

/// Drops a password from a source string before it goes into a message.
pub(crate) fn redact(input: &str) -> String {
    if input.contains("://") {
        return crate::redact_url(input);
    }
    // key=value form
    input
        .split_whitespace()
        .map(|kv| match kv.split_once('=') {
            Some(("password", _)) => "password=[SECRET]".to_string(),
            _ => kv.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn pgpass_lookup(config: &postgres::Config) -> Option<String> {
    let path = match std::env::var_os("PGPASSFILE") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".pgpass"),
    };
    let text = std::fs::read_to_string(&path).ok()?;
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        // libpq matches a socket connection as "localhost".
        _ => "localhost".into(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let db = config.get_dbname().unwrap_or("postgres");
    let user = config.get_user().unwrap_or("postgres");
    pgpass_match(&text, &path, [&host, &port, db, user])
}

/// The password of the first `host:port:db:user:password` line that matches
/// (`*` matches anything; `\:` and `\\` are escapes).
fn pgpass_match(text: &str, path: &Path, want: [&str; 4]) -> Option<String> {
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_pgpass(line);
        if fields.len() != 5 {
            tracing::warn!(
                "{}: skipping a line that is not host:port:db:user:password",
                path.display()
            );
            continue;
        }
        if fields[..4]
            .iter()
            .zip(want)
            .all(|(f, w)| f == "*" || f == w)
        {
            return Some(fields[4].clone());
        }
    }
    None
}

fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    fields.last_mut().unwrap().push(n);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_never_shows_the_password() {
        let s = PgSource::parse("postgres://alice:s3cret@db.example:6543/app", None).unwrap();
        assert_eq!(s.to_string(), "postgres://alice@db.example:6543/app");
        assert!(!format!("{s:?}").contains("s3cret"));
        assert_eq!(
            redact("postgres://alice:s3cret@h/db"),
            "postgres://alice:[SECRET]@h/db"
        );
        assert_eq!(
            redact("host=h password=s3cret user=a"),
            "host=h password=[SECRET] user=a"
        );
    }

    #[test]
    fn bad_sources_are_refused_without_the_password() {
        let e = PgSource::parse("postgres://alice:s3cret@h:notaport/db", None).unwrap_err();
        let msg = e.to_string();
        assert!(!msg.contains("s3cret"), "{msg}");
        assert_eq!(
            msg,
            "invalid source \"postgres://alice:[SECRET]@h:notaport/db\": invalid connection string: invalid value for option `port`; expected postgres://USER[:PASSWORD]@HOST[:PORT]/DB"
        );
        assert_eq!(e.kind(), crate::ErrorKind::Permanent);
        let e = PgSource::parse("sqlite://./app.db", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid source \"sqlite://./app.db\": the sqlite:// scheme is not a PostgreSQL source; expected postgres://USER[:PASSWORD]@HOST[:PORT]/DB"
        );
        for bad in [
            "postgres://u@h/db?nosuchoption=1",
            "postgresql://u@h:5432/db?sslmode=sometimes",
        ] {
            let msg = PgSource::parse(bad, None).unwrap_err().to_string();
            assert!(msg.ends_with(&format!("; expected {EXPECTED}")), "{msg}");
            assert!(!msg.contains("sqlite"), "{msg}");
        }
    }

    #[test]
    fn pgpass_lines_match_with_wildcards_and_escapes() {
        let text = "# comment\nother:5432:*:*:no\nh:5432:app:alice:pa\\:ss\n*:*:*:*:fallback\n";
        let p = Path::new("/x");
        assert_eq!(
            pgpass_match(text, p, ["h", "5432", "app", "alice"]).as_deref(),
            Some("pa:ss")
        );
        assert_eq!(
            pgpass_match(text, p, ["z", "1", "d", "u"]).as_deref(),
            Some("fallback")
        );
    }
}
