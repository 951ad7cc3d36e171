//! Connections and what the backup and the restore share: errors, the
//! server's flavour, identifier quoting.

use std::time::Duration;

use mysql::prelude::Queryable;

use super::config::MysqlSource;
use crate::{Error, ErrorKind};

pub type Result<T> = std::result::Result<T, Error>;

/// Which server speaks the protocol: the statements for a consistent point
/// and its log coordinates differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    Mariadb,
    Mysql,
    /// Another database speaking the protocol (no BACKUP STAGE, perhaps no
    /// binary log): it gets what it allows.
    Other,
}

impl Flavor {
    /// Tells the servers apart by `@@version` and `@@version_comment`.
    /// Databases that only speak the protocol name themselves in the
    /// version (`8.0.11-TiDB-v7.5.0`, `5.7.25-OceanBase-v4.2.1`) and often
    /// say "MySQL 8.0 compatible" in the comment; MySQL's own suffixes
    /// (`-log`, `-0ubuntu0.22.04.1`, Percona's `-27`) are never capitalised.
    pub fn of(version: &str, comment: &str) -> Flavor {
        let product = version
            .split('-')
            .skip(1)
            .find(|p| p.starts_with(|c: char| c.is_ascii_uppercase()));
        if version.contains("MariaDB") || comment.contains("MariaDB") {
            Flavor::Mariadb
        } else if product.is_some() {
            Flavor::Other
        } else if [
            "MySQL",
            "Percona",
            "Source distribution",
            "(Ubuntu)",
            "(Debian)",
        ]
        .iter()
        .any(|w| comment.contains(w))
        {
            Flavor::Mysql
        } else {
            Flavor::Other
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Flavor::Mariadb => "MariaDB",
            Flavor::Mysql => "MySQL",
            Flavor::Other => "MySQL-protocol server",
        }
    }
}

/// One connection, with the name of its server for messages.
pub struct Session {
    pub conn: mysql::Conn,
    /// "MariaDB at 127.0.0.1:3306".
    pub label: String,
    pub flavor: Flavor,
    pub version: String,
    /// Whether the session reads in a snapshot with the savepoint `arca`.
    pub snapshot: bool,
}

impl Session {
    /// Connects; every session reads and writes times in UTC (TIMESTAMP
    /// values are converted by the session's time zone) and 4-byte UTF-8
    /// names.
    pub fn open(src: &MysqlSource) -> Result<Session> {
        let mut opts = mysql::OptsBuilder::new()
            .user(Some(&src.user))
            .pass(src.password())
            .ip_or_hostname(Some(&src.host))
            .tcp_port(src.port)
            .tcp_connect_timeout(Some(Duration::from_secs(10)))
            // A server that vanishes (power, network) is noticed.
            .tcp_keepalive_time_ms(Some(60_000))
            .prefer_socket(false)
            .stmt_cache_size(Some(64))
            .init(vec![
                // A fixed sql_mode: SHOW CREATE output depends on it
                // (ANSI_QUOTES). Long timeouts: a reader may wait while
                // another range is archived, and a restore's LOAD DATA
                // waits for AUTO_INCREMENT locks other ranges of its table
                // hold.
                "SET time_zone = '+00:00', NAMES utf8mb4, SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION', \
                 SESSION net_write_timeout = 31536000, SESSION net_read_timeout = 31536000, \
                 SESSION innodb_lock_wait_timeout = 31536000",
            ]);
        if let Some(s) = &src.socket {
            opts = opts.socket(Some(s.to_string_lossy()));
        }
        let label = format!("MySQL server at {}", src.server());
        let mut conn = mysql::Conn::new(opts).map_err(|e| connect_error(&label, src, e))?;
        let (version, comment): (String, String) = conn
            .query_first("SELECT @@version, @@version_comment")
            .map_err(|e| sql_error(&label, "reading the server's version", e))?
            .unwrap_or_default();
        let flavor = Flavor::of(&version, &comment);
        Ok(Session {
            conn,
            label: format!("{} at {}", flavor.title(), src.server()),
            flavor,
            version,
            snapshot: false,
        })
    }

    /// Runs statements that return nothing.
    pub fn exec(&mut self, sql: &str) -> Result<()> {
        self.conn
            .query_drop(sql)
            .map_err(|e| sql_error(&self.label, &first_words(sql), e))
    }

    /// The rows of a query, each column as text (NULL as None).
    pub fn texts(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        let rows: Vec<mysql::Row> = self
            .conn
            .query(sql)
            .map_err(|e| sql_error(&self.label, &first_words(sql), e))?;
        Ok(rows
            .into_iter()
            .map(|r| r.unwrap().into_iter().map(text).collect())
            .collect())
    }

    /// The first column of the first row, as text.
    pub fn one(&mut self, sql: &str) -> Result<Option<String>> {
        Ok(self
            .texts(sql)?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten()))
    }

    /// An error about this server.
    pub fn error(&self, reason: impl Into<String>) -> Error {
        Error::Mysql {
            server: self.label.clone(),
            reason: reason.into(),
            kind: ErrorKind::Permanent,
            code: None,
        }
    }

    /// A statement's error, saying what was being done.
    pub fn sql_error(&self, what: &str, e: mysql::Error) -> Error {
        sql_error(&self.label, what, e)
    }
}

/// A value read with the text protocol as a string (lossy for binary).
pub fn text(v: mysql::Value) -> Option<String> {
    match v {
        mysql::Value::NULL => None,
        mysql::Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        other => Some(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

fn first_words(sql: &str) -> String {
    let words: Vec<&str> = sql.split_whitespace().take(6).collect();
    words.join(" ")
}

/// Server error numbers the messages treat specially.
pub mod code {
    pub const ACCESS_DENIED: u16 = 1045;
    pub const DB_ACCESS_DENIED: u16 = 1044;
    pub const SPECIFIC_ACCESS_DENIED: u16 = 1227;
    pub const TABLE_ACCESS_DENIED: u16 = 1142;
    pub const LOCK_WAIT_TIMEOUT: u16 = 1205;
    pub const DEADLOCK: u16 = 1213;
    pub const SERVER_SHUTDOWN: u16 = 1053;
}

fn connect_error(label: &str, src: &MysqlSource, e: mysql::Error) -> Error {
    let (reason, kind, code) = match &e {
        mysql::Error::MySqlError(m) if m.code == code::ACCESS_DENIED => (
            format!(
                "cannot log in as {}: access denied; check the user and password (in the URL, MYSQL_PWD or --password-file)",
                src.user
            ),
            ErrorKind::Permanent,
            Some(m.code),
        ),
        mysql::Error::MySqlError(m) => (
            format!("cannot connect: {}", m.message),
            ErrorKind::Permanent,
            Some(m.code),
        ),
        mysql::Error::IoError(io) => (
            format!("cannot connect ({io}): check the host and port and that the server is running"),
            ErrorKind::Temporary,
            None,
        ),
        other => (
            format!("cannot connect ({other}): check the host and port and that the server is running"),
            ErrorKind::Temporary,
            None,
        ),
    };
    let label = label.replace("MySQL server", "server");
    Error::Mysql {
        server: label,
        reason,
        kind,
        code,
    }
}

/// A statement's error as one line: what was being done and what the
/// server said; temporary when waiting may help.
pub fn sql_error(label: &str, what: &str, e: mysql::Error) -> Error {
    let (reason, kind, code) = match &e {
        mysql::Error::MySqlError(m) => {
            let kind = match m.code {
                code::LOCK_WAIT_TIMEOUT | code::DEADLOCK | code::SERVER_SHUTDOWN => {
                    ErrorKind::Temporary
                }
                _ => ErrorKind::Permanent,
            };
            (
                format!("{what}: error {} ({}): {}", m.code, m.state, m.message),
                kind,
                Some(m.code),
            )
        }
        mysql::Error::IoError(io) => (
            format!("{what}: the connection broke ({io}); retry when the server is reachable"),
            ErrorKind::Temporary,
            None,
        ),
        other => (format!("{what}: {other}"), ErrorKind::Permanent, None),
    };
    Error::Mysql {
        server: label.to_string(),
        reason,
        kind,
        code,
    }
}

/// `name` quoted as an identifier.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `db`.`name`
pub fn qualified(db: &str, name: &str) -> String {
    format!("{}.{}", quote(db), quote(name))
}

/// `s` as a string literal.
pub fn literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::Flavor;

    #[test]
    fn servers_are_told_apart_by_version_and_comment() {
        for (version, comment, want) in [
            (
                "10.11.14-MariaDB-0+deb12u2-log",
                "Debian 12",
                Flavor::Mariadb,
            ),
            ("5.5.5-10.6.16-MariaDB", "MariaDB Server", Flavor::Mariadb),
            ("8.0.36", "MySQL Community Server - GPL", Flavor::Mysql),
            (
                "8.4.3-commercial",
                "MySQL Enterprise Server - Commercial",
                Flavor::Mysql,
            ),
            ("8.0.36-0ubuntu0.22.04.1", "(Ubuntu)", Flavor::Mysql),
            (
                "8.0.35-27",
                "Percona Server (GPL), Release 27, Revision 2f8eeab2",
                Flavor::Mysql,
            ),
            (
                "8.0.11-TiDB-v7.5.0",
                "TiDB Server (Apache License 2.0) Community Edition, MySQL 8.0 compatible",
                Flavor::Other,
            ),
            (
                "5.7.25-OceanBase-v4.2.1.0",
                "OceanBase 4.2.1.0 (r100000) (Built Oct 2023)",
                Flavor::Other,
            ),
            ("8.0.30-MatrixOne-v1.1.0", "MatrixOne", Flavor::Other),
            ("5.1.0", "StarRocks version 3.2.1", Flavor::Other),
        ] {
            assert_eq!(Flavor::of(version, comment), want, "{version} / {comment}");
        }
    }
}
