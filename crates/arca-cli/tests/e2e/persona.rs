//! A MySQL-protocol proxy that makes a real MariaDB answer as another
//! server: MySQL 8.0, MySQL 8.4, or a MySQL-protocol database without a
//! binary log or global read lock. Oracle's MySQL server is not packaged
//! for this machine, so the statements whose results differ between the
//! servers are answered from a fixture file (`tests/personas/*.txt`, the
//! results those servers give, as their reference manuals show them); every
//! other statement, every row and every lock goes to the real server
//! behind it.
//!
//! The proxy rewrites the version in the server's greeting, then reads the
//! client's packets: a text query (`COM_QUERY`, the first packet of a
//! command) the fixture names is answered by the proxy and never reaches
//! the server; everything else passes through untouched. The protocol is
//! request and response, so the server has nothing in flight while the
//! proxy answers. Every query the client sent is recorded, in order.
//!
//! Fixture format, one directive per line (`#` starts a comment):
//!   version 8.0.36                 the version in the greeting
//!   include <name>                 another fixture's lines
//!   query <SQL>                    a statement to answer (exact text, case aside)
//!   ok                             … with OK
//!   error <code> <sqlstate> <msg>  … with an error
//!   columns <a> | <b> | …          … with a result set of these columns
//!   row <v> | <v> | …              … and this row (`\N` is NULL)

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A canned answer.
#[derive(Debug, Clone)]
pub enum Reply {
    Ok,
    Error {
        code: u16,
        state: String,
        message: String,
    },
    Rows {
        columns: Vec<String>,
        rows: Vec<Vec<Option<String>>>,
    },
}

/// What a persona answers in place of the real server.
#[derive(Debug, Clone)]
pub struct Script {
    pub version: String,
    answers: Vec<(String, Reply)>,
}

impl Script {
    /// Reads a fixture from `tests/personas/NAME.txt`.
    pub fn load(name: &str) -> Script {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/personas")
            .join(format!("{name}.txt"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Script::parse(&text, &Script::load)
    }

    /// `include` reads another fixture through `load`.
    pub fn parse(text: &str, load: &dyn Fn(&str) -> Script) -> Script {
        let mut script = Script {
            version: String::new(),
            answers: Vec::new(),
        };
        let mut query: Option<String> = None;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
            let rest = rest.trim();
            let cells =
                || -> Vec<String> { rest.split('|').map(|c| c.trim().to_string()).collect() };
            match word {
                "version" => script.version = rest.to_string(),
                "include" => {
                    let base = load(rest);
                    script.version = base.version;
                    script.answers.extend(base.answers);
                }
                "query" => query = Some(rest.to_string()),
                "ok" => script.answer(query.take(), Reply::Ok),
                "error" => {
                    let mut p = rest.splitn(3, ' ');
                    let code = p.next().unwrap().parse().expect("error code");
                    let state = p.next().expect("sqlstate").to_string();
                    let message = p.next().unwrap_or("").to_string();
                    assert_eq!(state.len(), 5, "sqlstate {state}");
                    script.answer(
                        query.take(),
                        Reply::Error {
                            code,
                            state,
                            message,
                        },
                    );
                }
                "columns" => script.answer(
                    query.take(),
                    Reply::Rows {
                        columns: cells(),
                        rows: Vec::new(),
                    },
                ),
                "row" => match script.answers.last_mut() {
                    Some((_, Reply::Rows { columns, rows })) => {
                        let row: Vec<Option<String>> = cells()
                            .into_iter()
                            .map(|c| (c != "\\N").then_some(c))
                            .collect();
                        assert_eq!(row.len(), columns.len(), "{line}");
                        rows.push(row);
                    }
                    _ => panic!("`row` without `columns`: {line}"),
                },
                _ => panic!("unknown fixture line: {line}"),
            }
        }
        assert!(!script.version.is_empty(), "a fixture needs a version");
        script
    }

    fn answer(&mut self, query: Option<String>, reply: Reply) {
        let q = query.expect("an answer without a `query` line");
        self.answers.push((normalize(&q), reply));
    }

    fn reply_to(&self, query: &str) -> Option<&Reply> {
        let q = normalize(query);
        // A later answer (after an `include`) wins.
        self.answers
            .iter()
            .rev()
            .find(|(a, _)| *a == q)
            .map(|(_, r)| r)
    }
}

fn normalize(sql: &str) -> String {
    sql.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}

/// A running persona in front of a server on `127.0.0.1:upstream`.
pub struct Persona {
    pub port: u16,
    stop: Arc<AtomicBool>,
    queries: Arc<Mutex<Vec<String>>>,
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: Option<JoinHandle<()>>,
}

impl Persona {
    pub fn start(upstream: u16, script: Script) -> Persona {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(Mutex::new(Vec::new()));
        let sockets = Arc::new(Mutex::new(Vec::new()));
        let threads: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(script);
        let accept = {
            let (stop, queries, sockets, threads) = (
                stop.clone(),
                queries.clone(),
                sockets.clone(),
                threads.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let client = match listener.accept() {
                        Ok((c, _)) => c,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                        Err(e) => panic!("persona accept: {e}"),
                    };
                    client.set_nonblocking(false).unwrap();
                    let server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
                    for s in [&client, &server] {
                        s.set_nodelay(true).unwrap();
                        sockets.lock().unwrap().push(s.try_clone().unwrap());
                    }
                    let conn = Conn {
                        client_out: Arc::new(Mutex::new(client.try_clone().unwrap())),
                        script: script.clone(),
                        queries: queries.clone(),
                        deprecate_eof: Arc::new(AtomicBool::new(false)),
                    };
                    let down = {
                        let (conn, server, client) = (
                            conn.clone(),
                            server.try_clone().unwrap(),
                            client.try_clone().unwrap(),
                        );
                        std::thread::spawn(move || conn.server_to_client(server, client))
                    };
                    let up = std::thread::spawn(move || conn.client_to_server(client, server));
                    threads.lock().unwrap().extend([down, up]);
                }
            })
        };
        Persona {
            port,
            stop,
            queries,
            sockets,
            threads,
            accept: Some(accept),
        }
    }

    /// The queries clients sent so far, answered or passed on.
    pub fn queries(&self) -> Vec<String> {
        self.queries.lock().unwrap().clone()
    }
}

impl Drop for Persona {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for s in self.sockets.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        for t in self.threads.lock().unwrap().drain(..) {
            let _ = t.join();
        }
    }
}

#[derive(Clone)]
struct Conn {
    client_out: Arc<Mutex<TcpStream>>,
    script: Arc<Script>,
    queries: Arc<Mutex<Vec<String>>>,
    /// Whether the client asked for OK packets in place of EOF packets.
    deprecate_eof: Arc<AtomicBool>,
}

const COM_QUERY: u8 = 0x03;
const CLIENT_DEPRECATE_EOF: u32 = 1 << 24;

fn read_packet(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 4];
    s.read_exact(&mut head).ok()?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], 0]) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((head[3], body))
}

fn packet(seq: u8, body: &[u8]) -> Vec<u8> {
    let mut p = (body.len() as u32).to_le_bytes()[..3].to_vec();
    p.push(seq);
    p.extend_from_slice(body);
    p
}

fn lenenc(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=250 => out.push(n as u8),
        251..=0xFFFF => {
            out.push(0xFC);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x10000..=0xFF_FFFF => {
            out.push(0xFD);
            out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xFE);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

fn lenenc_str(out: &mut Vec<u8>, s: &str) {
    lenenc(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

impl Conn {
    /// The greeting with the persona's version, then every byte as it comes.
    fn server_to_client(self, mut server: TcpStream, _client: TcpStream) {
        let Some((seq, body)) = read_packet(&mut server) else {
            return;
        };
        // Protocol 10: one version byte, the NUL-ended version, the rest.
        let end = body[1..].iter().position(|&b| b == 0).unwrap() + 1;
        let mut greeting = vec![body[0]];
        greeting.extend_from_slice(self.script.version.as_bytes());
        greeting.extend_from_slice(&body[end..]);
        if self.send(&packet(seq, &greeting)).is_err() {
            return;
        }
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match server.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if self.send(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = self.client_out.lock().unwrap().shutdown(Shutdown::Write);
    }

    fn client_to_server(self, mut client: TcpStream, mut server: TcpStream) {
        let mut first = true;
        while let Some((seq, body)) = read_packet(&mut client) {
            if first {
                // The handshake response: the capabilities the client took.
                let caps = u32::from_le_bytes(body[..4].try_into().unwrap());
                self.deprecate_eof
                    .store(caps & CLIENT_DEPRECATE_EOF != 0, Ordering::SeqCst);
                first = false;
            } else if seq == 0 && body.first() == Some(&COM_QUERY) {
                let sql = String::from_utf8_lossy(&body[1..]).into_owned();
                self.queries.lock().unwrap().push(sql.clone());
                if let Some(reply) = self.script.reply_to(&sql) {
                    if self.answer(reply).is_err() {
                        break;
                    }
                    continue;
                }
            }
            if server.write_all(&packet(seq, &body)).is_err() {
                break;
            }
        }
        let _ = server.shutdown(Shutdown::Write);
    }

    fn send(&self, bytes: &[u8]) -> std::io::Result<()> {
        self.client_out.lock().unwrap().write_all(bytes)
    }

    fn answer(&self, reply: &Reply) -> std::io::Result<()> {
        // Autocommit on, no warnings.
        let status = 0x0002u16.to_le_bytes();
        let ok = |header: u8| {
            let mut b = vec![header, 0, 0];
            b.extend_from_slice(&status);
            b.extend_from_slice(&[0, 0]);
            // An empty info string (length-prefixed with session tracking).
            b.push(0);
            b
        };
        let mut out = Vec::new();
        match reply {
            Reply::Ok => out.extend(packet(1, &ok(0x00))),
            Reply::Error {
                code,
                state,
                message,
            } => {
                let mut b = vec![0xFF];
                b.extend_from_slice(&code.to_le_bytes());
                b.push(b'#');
                b.extend_from_slice(state.as_bytes());
                b.extend_from_slice(message.as_bytes());
                out.extend(packet(1, &b));
            }
            Reply::Rows { columns, rows } => {
                let mut seq = 1u8;
                let mut push = |out: &mut Vec<u8>, body: &[u8]| {
                    out.extend(packet(seq, body));
                    seq = seq.wrapping_add(1);
                };
                let mut count = Vec::new();
                lenenc(&mut count, columns.len() as u64);
                push(&mut out, &count);
                for c in columns {
                    let mut d = Vec::new();
                    for s in ["def", "", "", ""] {
                        lenenc_str(&mut d, s);
                    }
                    lenenc_str(&mut d, c);
                    lenenc_str(&mut d, c);
                    d.push(0x0C);
                    d.extend_from_slice(&33u16.to_le_bytes()); // utf8
                    d.extend_from_slice(&1024u32.to_le_bytes());
                    d.push(0xFD); // VAR_STRING
                    d.extend_from_slice(&0u16.to_le_bytes());
                    d.extend_from_slice(&[0, 0, 0]);
                    push(&mut out, &d);
                }
                let eof = {
                    let mut b = vec![0xFE, 0, 0];
                    b.extend_from_slice(&status);
                    b
                };
                let deprecate_eof = self.deprecate_eof.load(Ordering::SeqCst);
                if !deprecate_eof {
                    push(&mut out, &eof);
                }
                for r in rows {
                    let mut b = Vec::new();
                    for v in r {
                        match v {
                            Some(s) => lenenc_str(&mut b, s),
                            None => b.push(0xFB),
                        }
                    }
                    push(&mut out, &b);
                }
                if deprecate_eof {
                    push(&mut out, &ok(0xFE));
                } else {
                    push(&mut out, &eof);
                }
            }
        }
        self.send(&out)
    }
}
