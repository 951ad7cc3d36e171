//! Whether the configuration's repositories and sources answer, checked at
//! start, by `--check-config` and before a reload is taken.

use std::net::ToSocketAddrs;
use std::time::Duration;

use crate::config::Config;

/// One line per repository or source that does not answer.
pub fn probe(cfg: &Config) -> Vec<String> {
    let p = cfg.path.display();
    let mut problems = Vec::new();
    for r in &cfg.repositories {
        if let Err(e) = crate::work::open(cfg, &r.name) {
            problems.push(format!(
                "{p}: {e} (create it with `arca init --repo {}` or fix url)",
                r.entry.url
            ));
        }
    }
    for s in &cfg.sources {
        if let Err(e) = source(&s.url) {
            problems.push(format!("{p}: source {}: {e}", s.name));
        }
    }
    problems
}

fn source(url: &str) -> Result<(), String> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    if scheme == "sqlite" || scheme.is_empty() {
        let path = rest.split('?').next().unwrap_or(rest);
        return match std::fs::metadata(path) {
            Ok(m) if m.is_file() => Ok(()),
            Ok(_) => Err(format!(
                "{path} is not a file: url must name the database file"
            )),
            Err(e) => Err(format!("{path}: {e}")),
        };
    }
    let port = match scheme {
        "postgres" | "postgresql" => 5432,
        "mysql" | "mariadb" => 3306,
        _ => return Ok(()),
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostport.is_empty() {
        return Ok(()); // a Unix socket: the backup says if it is not there
    }
    let addr = if hostport.starts_with('[')
        || hostport
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        hostport.to_string()
    } else {
        format!("{hostport}:{port}")
    };
    let addrs: Vec<_> = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr} does not resolve: {e}"))?
        .collect();
    let mut last = None;
    for a in addrs {
        match std::net::TcpStream::connect_timeout(&a, Duration::from_secs(3)) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(format!(
        "{addr} does not answer ({}): is the server running?",
        last.map_or("no address".into(), |e| e.to_string())
    ))
}
