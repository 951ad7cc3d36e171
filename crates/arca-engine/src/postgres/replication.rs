//! A client for PostgreSQL's physical streaming replication protocol, the
//! one `pg_receivewal` speaks: synchronous, over a plain TCP or Unix socket,
//! with `postgres-protocol` encoding the messages and doing the SCRAM-SHA-256,
//! MD5 and cleartext password exchanges.
//!
//! ```no_run
//! # use arca_engine::postgres::{replication::{Event, Replication}, PgSource, Lsn};
//! # fn main() -> Result<(), arca_engine::Error> {
//! let source = PgSource::parse("postgres://postgres@127.0.0.1:5432/postgres", None)?;
//! let mut conn = Replication::connect(&source)?;
//! let sys = conn.identify_system()?;
//! conn.create_physical_slot("arca")?;
//! conn.start_replication(Some("arca"), Lsn(0x300_0000), sys.timeline)?;
//! if let Event::Data { start, data, .. } = conn.recv(std::time::Duration::from_secs(1))? {
//!     conn.send_status(Lsn(start.0 + data.len() as u64), Lsn(0), false)?;
//! }
//! # Ok(()) }
//! ```

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::backend::{ErrorFields, Message};
use postgres_protocol::message::frontend;

use super::config::PgSource;
use super::core::{is_connection_io, PgCause};
use super::wal::Lsn;
use crate::Error;

/// What to do about a connection that broke or went silent.
const RECONNECT: &str = "retry when the server is up again";

/// How long a command (not the stream itself) may wait for the server.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// What `IDENTIFY_SYSTEM` answers.
#[derive(Debug, Clone)]
pub struct SystemInfo {
    pub system_identifier: String,
    pub timeline: u32,
    /// The server's current WAL flush position.
    pub xlogpos: Lsn,
}

/// What `READ_REPLICATION_SLOT` answers for an existing slot.
#[derive(Debug, Clone, Copy)]
pub struct SlotInfo {
    pub restart_lsn: Option<Lsn>,
    pub restart_timeline: Option<u32>,
}

/// One thing the server sent while streaming.
#[derive(Debug)]
pub enum Event {
    /// WAL bytes from `start`; the server's WAL ends at `server_end`.
    Data {
        start: Lsn,
        server_end: Lsn,
        data: Bytes,
    },
    /// A keepalive; answer at once with a status update if `reply_requested`.
    Keepalive {
        server_end: Lsn,
        reply_requested: bool,
    },
    /// The timeline streamed ended at `switch`; timeline `next` follows. The
    /// connection is ready for the next command.
    EndOfTimeline { next: u32, switch: Lsn },
    /// Nothing arrived within the wait.
    Idle,
}

enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Socket {
    fn set_read_timeout(&self, d: Duration) -> io::Result<()> {
        let d = Some(d.max(Duration::from_millis(1)));
        match self {
            Socket::Tcp(s) => s.set_read_timeout(d),
            Socket::Unix(s) => s.set_read_timeout(d),
        }
    }

    fn set_write_timeout(&self, d: Duration) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.set_write_timeout(Some(d)),
            Socket::Unix(s) => s.set_write_timeout(Some(d)),
        }
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.read(buf),
            Socket::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.write(buf),
            Socket::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.flush(),
            Socket::Unix(s) => s.flush(),
        }
    }
}

/// A backend message, or the CopyBothResponse `postgres-protocol` does not parse.
enum Msg {
    Pg(Message),
    CopyBoth,
}

/// An error the server sent.
#[derive(Debug, Default)]
struct DbError {
    code: String,
    message: String,
    detail: Option<String>,
    hint: Option<String>,
}

impl DbError {
    fn parse(mut fields: ErrorFields<'_>) -> DbError {
        let mut e = DbError::default();
        while let Ok(Some(f)) = fields.next() {
            let v = String::from_utf8_lossy(f.value_bytes()).into_owned();
            match f.type_() {
                b'C' => e.code = v,
                b'M' => e.message = v,
                b'D' => e.detail = Some(v),
                b'H' => e.hint = Some(v),
                _ => {}
            }
        }
        e
    }
}

/// A replication connection (`replication=true`: physical, no database).
pub struct Replication {
    sock: Socket,
    rbuf: BytesMut,
    wbuf: BytesMut,
    server: String,
    user: String,
}

impl Replication {
    /// Connects and logs in with the source's user and password.
    pub fn connect(source: &PgSource) -> Result<Replication, Error> {
        let config = source.config();
        let server = source.to_string();
        // The socket's failure, not the server's answer: refused, timed out
        // or no socket yet is cured by a server coming back, a permission not.
        let connect_err = |reason: String, kind: Option<io::ErrorKind>| Error::Connect {
            server: server.clone(),
            reason,
            cause: match kind {
                Some(k) if !is_connection_io(k) => PgCause::Other,
                _ => PgCause::Connection,
            },
        };
        let timeout = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(Duration::from_secs(10));
        let port = source.port();
        let sock = match config.get_hosts().first() {
            Some(postgres::config::Host::Unix(dir)) => {
                let path = dir.join(format!(".s.PGSQL.{port}"));
                UnixStream::connect(&path).map(Socket::Unix).map_err(|e| {
                    connect_err(
                        format!("{}: {}", path.display(), io_reason(&e)),
                        Some(e.kind()),
                    )
                })?
            }
            other => {
                let host = match other {
                    Some(postgres::config::Host::Tcp(h)) => h.as_str(),
                    _ => "localhost",
                };
                let addrs = (host, port)
                    .to_socket_addrs()
                    .map_err(|e| connect_err(format!("cannot resolve {host}: {e}"), None))?;
                let mut last = None;
                let mut sock = None;
                for addr in addrs {
                    match TcpStream::connect_timeout(&addr, timeout) {
                        Ok(s) => {
                            sock = Some(s);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                let sock = sock.ok_or_else(|| match last {
                    Some(e) => connect_err(io_reason(&e), Some(e.kind())),
                    None => connect_err(format!("{host} has no address"), None),
                })?;
                let _ = sock.set_nodelay(true);
                Socket::Tcp(sock)
            }
        };
        let user = source.user().to_string();
        let mut conn = Replication {
            sock,
            rbuf: BytesMut::with_capacity(1 << 17),
            wbuf: BytesMut::with_capacity(1 << 10),
            server,
            user,
        };
        conn.sock
            .set_write_timeout(COMMAND_TIMEOUT)
            .map_err(|e| conn.lost(e))?;
        conn.startup(config.get_password())?;
        Ok(conn)
    }

    /// The server, for messages: `postgres://user@host:port/db`.
    pub fn server(&self) -> &str {
        &self.server
    }

    fn startup(&mut self, password: Option<&[u8]>) -> Result<(), Error> {
        let params = [
            ("user", self.user.as_str()),
            ("replication", "true"),
            ("application_name", "arca"),
        ];
        frontend::startup_message(params.iter().copied(), &mut self.wbuf)
            .map_err(|e| self.protocol(e.to_string()))?;
        self.send()?;
        let need_password = |s: &Self| {
            password.ok_or_else(|| Error::Connect {
                server: s.server.clone(),
                reason: "the server asks for a password and none was given".into(),
                cause: PgCause::Other,
            })
        };
        loop {
            match self.expect_message(COMMAND_TIMEOUT)? {
                Message::AuthenticationOk => break,
                Message::AuthenticationCleartextPassword => {
                    let pw = need_password(self)?;
                    frontend::password_message(pw, &mut self.wbuf)
                        .map_err(|e| self.protocol(e.to_string()))?;
                    self.send()?;
                }
                Message::AuthenticationMd5Password(body) => {
                    let pw = need_password(self)?;
                    let hash = md5_hash(self.user.as_bytes(), pw, body.salt());
                    frontend::password_message(hash.as_bytes(), &mut self.wbuf)
                        .map_err(|e| self.protocol(e.to_string()))?;
                    self.send()?;
                }
                Message::AuthenticationSasl(body) => {
                    let mut offered = Vec::new();
                    let mut mechanisms = body.mechanisms();
                    while let Ok(Some(m)) = mechanisms.next() {
                        offered.push(m.to_string());
                    }
                    if !offered.iter().any(|m| m == sasl::SCRAM_SHA_256) {
                        return Err(Error::Connect {
                            server: self.server.clone(),
                            reason: format!(
                                "the server offers only SASL mechanisms {} (without TLS Arca does SCRAM-SHA-256)",
                                offered.join(", ")
                            ),
                            cause: PgCause::Other,
                        });
                    }
                    let pw = need_password(self)?;
                    self.scram(pw)?;
                }
                Message::ErrorResponse(body) => return Err(self.db_error(DbError::parse(body.fields()))),
                _ => {
                    return Err(Error::Connect {
                        server: self.server.clone(),
                        reason: "the server asks for an authentication method Arca does not support (use scram-sha-256, md5, password or trust in pg_hba.conf)".into(),
                        cause: PgCause::Other,
                    })
                }
            }
        }
        // Parameters and the key data, then ready.
        loop {
            match self.expect_message(COMMAND_TIMEOUT)? {
                Message::ReadyForQuery(_) => return Ok(()),
                Message::ErrorResponse(body) => {
                    return Err(self.db_error(DbError::parse(body.fields())))
                }
                _ => {}
            }
        }
    }

    fn scram(&mut self, password: &[u8]) -> Result<(), Error> {
        let mut scram = sasl::ScramSha256::new(password, sasl::ChannelBinding::unsupported());
        frontend::sasl_initial_response(sasl::SCRAM_SHA_256, scram.message(), &mut self.wbuf)
            .map_err(|e| self.protocol(e.to_string()))?;
        self.send()?;
        match self.expect_message(COMMAND_TIMEOUT)? {
            Message::AuthenticationSaslContinue(body) => scram
                .update(body.data())
                .map_err(|e| self.protocol(format!("SCRAM: {e}")))?,
            Message::ErrorResponse(body) => {
                return Err(self.db_error(DbError::parse(body.fields())))
            }
            _ => return Err(self.protocol("unexpected message during SCRAM authentication".into())),
        }
        frontend::sasl_response(scram.message(), &mut self.wbuf)
            .map_err(|e| self.protocol(e.to_string()))?;
        self.send()?;
        match self.expect_message(COMMAND_TIMEOUT)? {
            Message::AuthenticationSaslFinal(body) => scram.finish(body.data()).map_err(|e| Error::Connect {
                server: self.server.clone(),
                reason: format!("the server's SCRAM signature does not verify ({e}): is this the right server?"),
                cause: PgCause::Other,
            }),
            Message::ErrorResponse(body) => Err(self.db_error(DbError::parse(body.fields()))),
            _ => Err(self.protocol("unexpected message during SCRAM authentication".into())),
        }
    }

    /// `IDENTIFY_SYSTEM`.
    pub fn identify_system(&mut self) -> Result<SystemInfo, Error> {
        let rows = self.query("IDENTIFY_SYSTEM")?;
        let row = rows
            .first()
            .ok_or_else(|| self.protocol("IDENTIFY_SYSTEM returned no row".into()))?;
        let sysid = self.text(row, 0)?;
        let timeline = self
            .text(row, 1)?
            .parse()
            .map_err(|_| self.protocol("IDENTIFY_SYSTEM: bad timeline".into()))?;
        let xlogpos = self
            .text(row, 2)?
            .parse()
            .map_err(|e: String| self.protocol(e))?;
        Ok(SystemInfo {
            system_identifier: sysid,
            timeline,
            xlogpos,
        })
    }

    /// The server's WAL segment size in bytes (`SHOW wal_segment_size`).
    pub fn wal_segment_size(&mut self) -> Result<u64, Error> {
        let rows = self.query("SHOW wal_segment_size")?;
        let text = match rows.first() {
            Some(row) => self.text(row, 0)?,
            None => return Err(self.protocol("SHOW wal_segment_size returned no row".into())),
        };
        parse_size(&text)
            .ok_or_else(|| self.protocol(format!("wal_segment_size {text:?} is not a size")))
    }

    /// Creates a physical slot that reserves WAL at once; `false` if a slot
    /// of that name exists.
    pub fn create_physical_slot(&mut self, name: &str) -> Result<bool, Error> {
        check_slot_name(name)?;
        match self.query_raw(&format!(
            "CREATE_REPLICATION_SLOT \"{name}\" PHYSICAL RESERVE_WAL"
        )) {
            Ok(_) => Ok(true),
            Err(QueryError::Db(e)) if e.code == "42710" => Ok(false),
            Err(e) => Err(self.query_error(e)),
        }
    }

    /// `READ_REPLICATION_SLOT` (PostgreSQL 15 and later): `None` if the slot
    /// does not exist or the server is older.
    pub fn read_slot(&mut self, name: &str) -> Result<Option<SlotInfo>, Error> {
        check_slot_name(name)?;
        let rows = match self.query_raw(&format!("READ_REPLICATION_SLOT \"{name}\"")) {
            Ok(rows) => rows,
            // A syntax error: a server before 15.
            Err(QueryError::Db(e)) if e.code == "42601" => return Ok(None),
            Err(e) => return Err(self.query_error(e)),
        };
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let col = |i: usize| -> Option<String> {
            row.get(i)
                .and_then(|c| c.as_ref())
                .map(|b| String::from_utf8_lossy(b).into_owned())
        };
        if col(0).is_none() {
            return Ok(None);
        }
        Ok(Some(SlotInfo {
            restart_lsn: col(1).and_then(|s| s.parse().ok()),
            restart_timeline: col(2).and_then(|s| s.parse().ok()),
        }))
    }

    /// `TIMELINE_HISTORY`: the history file's name and content.
    pub fn timeline_history(&mut self, timeline: u32) -> Result<(String, Vec<u8>), Error> {
        let rows = self.query(&format!("TIMELINE_HISTORY {timeline}"))?;
        let row = rows
            .into_iter()
            .next()
            .ok_or_else(|| self.protocol("TIMELINE_HISTORY returned no row".into()))?;
        let mut cols = row.into_iter();
        let name = cols.next().flatten();
        let content = cols.next().flatten();
        match (name, content) {
            (Some(n), Some(c)) => Ok((String::from_utf8_lossy(&n).into_owned(), c.to_vec())),
            _ => Err(self.protocol("TIMELINE_HISTORY returned NULL".into())),
        }
    }

    /// `START_REPLICATION [SLOT name] PHYSICAL start TIMELINE tli`; the
    /// connection then streams ([`Replication::recv`]).
    pub fn start_replication(
        &mut self,
        slot: Option<&str>,
        start: Lsn,
        timeline: u32,
    ) -> Result<(), Error> {
        let slot = match slot {
            Some(s) => {
                check_slot_name(s)?;
                format!("SLOT \"{s}\" ")
            }
            None => String::new(),
        };
        let sql = format!("START_REPLICATION {slot}PHYSICAL {start} TIMELINE {timeline}");
        frontend::query(&sql, &mut self.wbuf).map_err(|e| self.protocol(e.to_string()))?;
        self.send()?;
        let mut error = None;
        loop {
            match self.read_msg(COMMAND_TIMEOUT)? {
                Msg::CopyBoth => return Ok(()),
                Msg::Pg(Message::ErrorResponse(body)) => {
                    error = Some(DbError::parse(body.fields()))
                }
                Msg::Pg(Message::ReadyForQuery(_)) => {
                    return Err(match error {
                        Some(e) => self.db_error(e),
                        None => self.protocol(format!("{sql} did not start streaming")),
                    })
                }
                Msg::Pg(_) => {}
            }
        }
    }

    /// Waits up to `wait` for the next message of the stream.
    pub fn recv(&mut self, wait: Duration) -> Result<Event, Error> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(msg) = self.parse()? {
                match msg {
                    Msg::Pg(Message::CopyData(body)) => {
                        if let Some(ev) = self.copy_data(body.into_bytes())? {
                            return Ok(ev);
                        }
                    }
                    Msg::Pg(Message::CopyDone) => return self.end_of_timeline(),
                    Msg::Pg(Message::ErrorResponse(body)) => {
                        return Err(self.db_error(DbError::parse(body.fields())))
                    }
                    Msg::Pg(Message::NoticeResponse(body)) => {
                        let n = DbError::parse(body.fields());
                        tracing::info!("{}: {}", self.server, n.message);
                    }
                    Msg::Pg(Message::ParameterStatus(_)) => {}
                    _ => return Err(self.protocol("unexpected message while streaming".into())),
                }
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.fill(left)? {
                return Ok(Event::Idle);
            }
        }
    }

    fn copy_data(&self, d: Bytes) -> Result<Option<Event>, Error> {
        let mut b = &d[..];
        if b.is_empty() {
            return Ok(None);
        }
        match b.get_u8() {
            b'w' if b.len() >= 24 => {
                let start = Lsn(b.get_u64());
                let server_end = Lsn(b.get_u64());
                let _sent = b.get_i64();
                Ok(Some(Event::Data {
                    start,
                    server_end,
                    data: d.slice(25..),
                }))
            }
            b'k' if b.len() >= 17 => {
                let server_end = Lsn(b.get_u64());
                let _sent = b.get_i64();
                Ok(Some(Event::Keepalive {
                    server_end,
                    reply_requested: b.get_u8() != 0,
                }))
            }
            b'w' | b'k' => Err(self.protocol("a short message in the WAL stream".into())),
            _ => Ok(None),
        }
    }

    /// The server ended the timeline: acknowledge, then read the next
    /// timeline and where it forked.
    fn end_of_timeline(&mut self) -> Result<Event, Error> {
        frontend::copy_done(&mut self.wbuf);
        self.send()?;
        let mut row = None;
        let mut error = None;
        loop {
            match self.read_msg(COMMAND_TIMEOUT)? {
                Msg::Pg(Message::DataRow(body)) => {
                    row = Some(data_row(&body).map_err(|e| self.protocol(e))?)
                }
                Msg::Pg(Message::ErrorResponse(body)) => {
                    error = Some(DbError::parse(body.fields()))
                }
                Msg::Pg(Message::ReadyForQuery(_)) => break,
                _ => {}
            }
        }
        if let Some(e) = error {
            return Err(self.db_error(e));
        }
        let Some(row) = row else {
            return Err(
                self.protocol("the server ended streaming without naming the next timeline".into())
            );
        };
        let next = self
            .text(&row, 0)?
            .parse()
            .map_err(|_| self.protocol("bad next timeline".into()))?;
        let switch = self
            .text(&row, 1)?
            .parse()
            .map_err(|e: String| self.protocol(e))?;
        Ok(Event::EndOfTimeline { next, switch })
    }

    /// A standby status update: WAL received up to `write`, safe up to `flush`.
    pub fn send_status(
        &mut self,
        write: Lsn,
        flush: Lsn,
        reply_requested: bool,
    ) -> Result<(), Error> {
        let now_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64)
            - PG_EPOCH_OFFSET_US;
        let mut b = BytesMut::with_capacity(34);
        b.put_u8(b'r');
        b.put_u64(write.0);
        b.put_u64(flush.0);
        // Applied: nothing (InvalidXLogRecPtr), as pg_receivewal says.
        b.put_u64(0);
        b.put_i64(now_us);
        b.put_u8(u8::from(reply_requested));
        frontend::CopyData::new(b.freeze())
            .map_err(|e| self.protocol(e.to_string()))?
            .write(&mut self.wbuf);
        self.send()
    }

    /// Ends the session politely (best effort).
    pub fn close(mut self) {
        frontend::terminate(&mut self.wbuf);
        let _ = self.send();
    }

    // --- plumbing ---

    fn query(&mut self, sql: &str) -> Result<Vec<Vec<Option<Bytes>>>, Error> {
        self.query_raw(sql).map_err(|e| self.query_error(e))
    }

    /// Runs one simple query; the rows of its last result set, as raw text.
    fn query_raw(&mut self, sql: &str) -> Result<Vec<Vec<Option<Bytes>>>, QueryError> {
        frontend::query(sql, &mut self.wbuf)
            .map_err(|e| QueryError::Other(self.protocol(e.to_string())))?;
        self.send().map_err(QueryError::Other)?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            match self.read_msg(COMMAND_TIMEOUT).map_err(QueryError::Other)? {
                Msg::Pg(Message::RowDescription(_)) => rows.clear(),
                Msg::Pg(Message::DataRow(body)) => {
                    rows.push(data_row(&body).map_err(|e| QueryError::Other(self.protocol(e)))?)
                }
                Msg::Pg(Message::ErrorResponse(body)) => {
                    error = Some(DbError::parse(body.fields()))
                }
                Msg::Pg(Message::ReadyForQuery(_)) => break,
                Msg::CopyBoth => {
                    return Err(QueryError::Other(
                        self.protocol(format!("{sql} started a copy")),
                    ))
                }
                Msg::Pg(_) => {}
            }
        }
        match error {
            Some(e) => Err(QueryError::Db(e)),
            None => Ok(rows),
        }
    }

    fn query_error(&self, e: QueryError) -> Error {
        match e {
            QueryError::Db(e) => self.db_error(e),
            QueryError::Other(e) => e,
        }
    }

    fn text(&self, row: &[Option<Bytes>], i: usize) -> Result<String, Error> {
        row.get(i)
            .and_then(|c| c.as_ref())
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .ok_or_else(|| self.protocol(format!("column {i} is missing or NULL")))
    }

    fn send(&mut self) -> Result<(), Error> {
        let buf = self.wbuf.split();
        self.sock
            .write_all(&buf)
            .and_then(|()| self.sock.flush())
            .map_err(|e| self.lost(e))
    }

    /// Reads more bytes, waiting up to `wait`; `false` if none came.
    fn fill(&mut self, wait: Duration) -> Result<bool, Error> {
        self.sock.set_read_timeout(wait).map_err(|e| self.lost(e))?;
        let n = self.rbuf.len();
        self.rbuf.resize(n + (1 << 16), 0);
        match self.sock.read(&mut self.rbuf[n..]) {
            Ok(0) => {
                self.rbuf.truncate(n);
                Err(Error::Server {
                    server: self.server.clone(),
                    reason: format!("the server closed the connection; {RECONNECT}"),
                    cause: PgCause::Connection,
                })
            }
            Ok(k) => {
                self.rbuf.truncate(n + k);
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                self.rbuf.truncate(n);
                Ok(false)
            }
            Err(e) => {
                self.rbuf.truncate(n);
                Err(self.lost(e))
            }
        }
    }

    /// One whole message from the buffer, if there is one.
    fn parse(&mut self) -> Result<Option<Msg>, Error> {
        if self.rbuf.len() >= 5 && self.rbuf[0] == b'W' {
            let len = u32::from_be_bytes([self.rbuf[1], self.rbuf[2], self.rbuf[3], self.rbuf[4]])
                as usize;
            if self.rbuf.len() < len + 1 {
                return Ok(None);
            }
            self.rbuf.advance(len + 1);
            return Ok(Some(Msg::CopyBoth));
        }
        Message::parse(&mut self.rbuf)
            .map(|m| m.map(Msg::Pg))
            .map_err(|e| self.protocol(e.to_string()))
    }

    fn read_msg(&mut self, timeout: Duration) -> Result<Msg, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.parse()? {
                return Ok(m);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || (!self.fill(left)? && Instant::now() >= deadline) {
                return Err(Error::Server {
                    server: self.server.clone(),
                    reason: format!("no answer within {} s; {RECONNECT}", timeout.as_secs()),
                    cause: PgCause::Connection,
                });
            }
        }
    }

    fn expect_message(&mut self, timeout: Duration) -> Result<Message, Error> {
        match self.read_msg(timeout)? {
            Msg::Pg(m) => Ok(m),
            Msg::CopyBoth => Err(self.protocol("unexpected CopyBothResponse".into())),
        }
    }

    fn lost(&self, e: io::Error) -> Error {
        Error::Server {
            server: self.server.clone(),
            reason: format!("connection lost: {}; {RECONNECT}", io_reason(&e)),
            cause: PgCause::Connection,
        }
    }

    /// The server said something this client does not understand.
    fn protocol(&self, what: String) -> Error {
        Error::Server {
            server: self.server.clone(),
            reason: format!(
                "replication protocol: {what}; check that --source names a PostgreSQL server"
            ),
            cause: PgCause::Other,
        }
    }

    /// One line for an error the server sent, with what to do about the
    /// usual ones.
    fn db_error(&self, e: DbError) -> Error {
        let mut reason = format!("{} ({})", e.message, e.code);
        if let Some(d) = &e.detail {
            reason.push_str(&format!(": {d}"));
        }
        let cause = PgCause::Sql(postgres::error::SqlState::from_code(&e.code));
        // The server's message picks the advice among errors that share a
        // code; whether to retry is decided on the code alone (the cause).
        let msg = e.message.as_str();
        let advice = match e.code.as_str() {
            // Wrong password: Error::Connect says to check it.
            "28P01" => {
                return Error::Connect {
                    server: self.server.clone(),
                    reason,
                    cause,
                }
            }
            "28000" if msg.contains("pg_hba.conf") => Some(format!(
                "allow replication connections for user {} in pg_hba.conf (a line with database \"replication\") and reload",
                self.user
            )),
            "42501" if msg.contains("replication") => Some(format!(
                "give the role the REPLICATION attribute (ALTER ROLE {} REPLICATION) or connect as a superuser",
                self.user
            )),
            "53300" if msg.contains("max_wal_senders") => Some(
                "set max_wal_senders above 0 (and wal_level = replica) in postgresql.conf and restart the server".into(),
            ),
            "58P01" if msg.contains("removed") => Some(
                "the server no longer has WAL the repository lacks, so the archive has a gap here: take a new backup, and keep the slot so the server holds WAL until it is streamed".into(),
            ),
            "55000" if msg.contains("wal_level") => {
                Some("set wal_level = replica in postgresql.conf and restart the server".into())
            }
            _ => e.hint.clone(),
        };
        if let Some(a) = advice {
            reason.push_str(&format!("; {a}"));
        }
        Error::Server {
            server: self.server.clone(),
            reason,
            cause,
        }
    }
}

enum QueryError {
    Db(DbError),
    Other(Error),
}

/// A DataRow's columns as raw bytes (text format), `None` for NULL.
fn data_row(
    body: &postgres_protocol::message::backend::DataRowBody,
) -> Result<Vec<Option<Bytes>>, String> {
    let buf = body.buffer_bytes();
    let mut out = Vec::new();
    let mut ranges = body.ranges();
    loop {
        match ranges.next() {
            Ok(Some(r)) => out.push(r.map(|r| buf.slice(r))),
            Ok(None) => return Ok(out),
            Err(e) => return Err(format!("bad data row: {e}")),
        }
    }
}

fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed out".into(),
        io::ErrorKind::NotFound => "no such socket".into(),
        _ => e.to_string(),
    }
}

/// Slot names are what PostgreSQL allows: lower-case letters, digits and
/// underscores, at most 63.
pub fn check_slot_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::Unsupported(format!(
            "{name:?} is not a replication slot name: use 1 to 63 lower-case letters, digits and underscores"
        )))
    }
}

/// A size as `SHOW` prints it: `16MB`, `1GB`, `8kB`, `8192`.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let n: u64 = s[..digits].parse().ok()?;
    let mult = match s[digits..].trim() {
        "" | "B" => 1,
        "kB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        _ => return None,
    };
    Some(n * mult)
}

/// The entries of a timeline history file: each earlier timeline and the
/// position where the next one forked from it, oldest first.
pub fn parse_history(text: &str) -> Vec<(u32, Lsn)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let tli = f.next()?.parse().ok()?;
            let at = f.next()?.parse().ok()?;
            Some((tli, at))
        })
        .collect()
}

/// The timeline that holds `pos`, for a server on `current` with history
/// `history`, starting the search at timeline `from`.
pub fn timeline_of(pos: Lsn, from: u32, current: u32, history: &[(u32, Lsn)]) -> u32 {
    history
        .iter()
        .filter(|(tli, _)| *tli >= from)
        .find(|(_, switch)| pos < *switch)
        .map_or(current, |(tli, _)| *tli)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_histories_parse() {
        assert_eq!(parse_size("16MB"), Some(16 << 20));
        assert_eq!(parse_size("1GB"), Some(1 << 30));
        assert_eq!(parse_size("x"), None);
        let h = parse_history(
            "1\t0/50000A8\tno recovery target specified\n\n2\t0/9000000\tat restore point \"p\"\n",
        );
        assert_eq!(h, [(1, Lsn(0x500_00A8)), (2, Lsn(0x900_0000))]);
        assert_eq!(timeline_of(Lsn(0x400_0000), 1, 3, &h), 1);
        assert_eq!(timeline_of(Lsn(0x500_0000), 1, 3, &h), 1);
        assert_eq!(timeline_of(Lsn(0x600_0000), 1, 3, &h), 2);
        assert_eq!(timeline_of(Lsn(0x400_0000), 2, 3, &h), 2);
        assert_eq!(timeline_of(Lsn(0x900_0000), 1, 3, &h), 3);
    }

    /// A port nothing listens on.
    fn closed_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    #[test]
    fn a_refused_connection_is_temporary_and_says_what_to_check() {
        let port = closed_port();
        let source =
            PgSource::parse(&format!("postgres://u:pw@127.0.0.1:{port}/db"), None).unwrap();
        let e = Replication::connect(&source).err().unwrap();
        assert_eq!(e.kind(), crate::ErrorKind::Temporary, "{e}");
        assert_eq!(e.sqlstate(), None);
        assert_eq!(
            e.to_string(),
            format!("cannot connect to postgres://u@127.0.0.1:{port}/db: connection refused; check the host and port and that the server is running")
        );
        // The same through the `postgres` client that backups use.
        let e = source.connect().err().unwrap();
        assert_eq!(e.kind(), crate::ErrorKind::Temporary, "{e}");
        assert!(e.to_string().contains("Connection refused"), "{e}");
    }

    #[test]
    fn a_missing_unix_socket_is_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "postgres://u@{}:5432/db",
            dir.path().display().to_string().replace('/', "%2F")
        );
        let source = PgSource::parse(&url, None).unwrap();
        let e = Replication::connect(&source).err().unwrap();
        assert_eq!(e.kind(), crate::ErrorKind::Temporary, "{e}");
        assert!(e.to_string().contains("no such socket"), "{e}");
    }

    #[test]
    fn slot_names_are_checked() {
        assert!(check_slot_name("arca_1").is_ok());
        assert!(check_slot_name("Arca").is_err());
        assert!(check_slot_name("a\"b").is_err());
        assert!(check_slot_name("").is_err());
    }
}
