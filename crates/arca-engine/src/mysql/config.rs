//! Parsing of a `mysql://` source or target and finding its password.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::Error;

/// What a MySQL `--source` looks like, for messages.
pub const EXPECTED: &str =
    "mysql://USER[:PASSWORD]@HOST[:PORT][/DB] or mysql://USER@/DB?socket=/PATH/TO/SOCKET";

/// A MySQL-protocol server (MySQL, MariaDB, or a database speaking their
/// protocol), as given by `--source` or `--to`.
#[derive(Clone)]
pub struct MysqlSource {
    pub user: String,
    password: Option<String>,
    pub host: String,
    pub port: u16,
    pub socket: Option<PathBuf>,
    /// The database named in the URL's path, if any.
    pub database: Option<String>,
}

impl MysqlSource {
    /// Parses `mysql://USER[:PASSWORD]@HOST[:PORT][/DB][?socket=PATH]` (or
    /// `mariadb://`). A password missing from the URL comes from
    /// `password_file` (its first line), then `MYSQL_PWD`.
    pub fn parse(input: &str, password_file: Option<&Path>) -> Result<MysqlSource, Error> {
        let invalid = |reason: String| Error::InvalidSource {
            input: crate::redact_url(input),
            reason,
            expected: EXPECTED,
        };
        // `USER@/DB?socket=…` names no host, which URL parsers refuse.
        let fixed = match input.split_once("://") {
            Some((scheme, rest)) => {
                let cut = rest.find(['/', '?']).unwrap_or(rest.len());
                let (auth, tail) = rest.split_at(cut);
                match auth.strip_suffix('@') {
                    Some(user) => format!("{scheme}://{user}@localhost{tail}"),
                    None => input.to_string(),
                }
            }
            None => input.to_string(),
        };
        let url = url::Url::parse(&fixed).map_err(|e| invalid(e.to_string()))?;
        if !matches!(url.scheme(), "mysql" | "mariadb") {
            return Err(invalid(format!(
                "the {}:// scheme is not a MySQL source",
                url.scheme()
            )));
        }
        let decode = |s: &str| {
            percent_decode(s)
                .ok_or_else(|| invalid("the user or password is not valid UTF-8".into()))
        };
        let user = match url.username() {
            "" => std::env::var("USER").unwrap_or_else(|_| "root".into()),
            u => decode(u)?,
        };
        let mut password = url.password().map(decode).transpose()?;
        let mut socket = None;
        for (k, v) in url.query_pairs() {
            match &*k {
                "socket" => socket = Some(PathBuf::from(v.into_owned())),
                other => {
                    return Err(invalid(format!(
                        "unknown parameter {other:?} (only socket=PATH is known)"
                    )))
                }
            }
        }
        let host = url.host_str().unwrap_or("").to_string();
        if host.is_empty() && socket.is_none() {
            return Err(invalid("it names no host and no socket".into()));
        }
        let database = url
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .filter(|d| !d.is_empty())
            .map(decode)
            .transpose()?;
        if password.is_none() {
            if let Some(path) = password_file {
                let text = std::fs::read_to_string(path).map_err(|e| Error::InvalidSource {
                    input: path.display().to_string(),
                    reason: format!("the password file cannot be read ({e})"),
                    expected: "a file holding the password on its first line",
                })?;
                password = Some(text.lines().next().unwrap_or("").to_string());
            } else if let Ok(pw) = std::env::var("MYSQL_PWD") {
                password = Some(pw);
            }
        }
        Ok(MysqlSource {
            user,
            password,
            host: if host.is_empty() {
                "localhost".into()
            } else {
                host
            },
            port: url.port().unwrap_or(3306),
            socket,
            database,
        })
    }

    pub(crate) fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The source as a URL without its password: what manifests record.
    pub fn url(&self) -> String {
        match &self.socket {
            Some(s) => format!("mysql://{}@/?socket={}", self.user, s.display()),
            None => format!("mysql://{}@{}:{}", self.user, self.host, self.port),
        }
    }

    /// Where the server is, for messages ("127.0.0.1:3306").
    pub fn server(&self) -> String {
        match &self.socket {
            Some(s) => s.display().to_string(),
            None => format!("{}:{}", self.host, self.port),
        }
    }
}

impl fmt::Display for MysqlSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url())
    }
}

impl fmt::Debug for MysqlSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url())
    }
}

fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|d| d.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms() {
        let s = MysqlSource::parse("mysql://bob:p%40ss@127.0.0.1:3307/shop", None).unwrap();
        assert_eq!(
            (s.user.as_str(), s.password(), s.host.as_str(), s.port),
            ("bob", Some("p@ss"), "127.0.0.1", 3307)
        );
        assert_eq!(s.database.as_deref(), Some("shop"));
        assert_eq!(s.to_string(), "mysql://bob@127.0.0.1:3307");
        let s = MysqlSource::parse("mysql://root@/?socket=/tmp/x/sock", None).unwrap();
        assert_eq!(s.socket.as_deref(), Some(Path::new("/tmp/x/sock")));
        assert_eq!(s.port, 3306);
    }

    #[test]
    fn bad_forms_are_one_line_without_the_password() {
        for bad in [
            "mysql://bob:hunter2@:1",
            "postgres://bob:hunter2@h/db",
            "mysql://bob:hunter2@h/db?sock=1",
        ] {
            let e = MysqlSource::parse(bad, None).unwrap_err().to_string();
            assert!(!e.contains("hunter2"), "{e}");
            assert!(e.contains("expected mysql://"), "{e}");
        }
    }

    #[test]
    fn password_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret\n").unwrap();
        let s = MysqlSource::parse("mysql://bob@h", Some(&p)).unwrap();
        assert_eq!(s.password(), Some("s3cret"));
    }
}
