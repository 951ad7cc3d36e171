//! `binlog-stream`: a server's binary log read as a replica reads it and
//! archived in segments of whole transactions, sealed at every rotation and
//! every few seconds, so the archive is seconds behind the server.
//!
//! It resumes where the repository's archive of the server ends: the last
//! segment names the file and position after its last transaction, and
//! each file's last segment says that the file ended. A first run starts at
//! the oldest backup of the server whose binary log file the server still
//! has, otherwise at the server's current position.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use arca_engine::mysql::binlog::{self, kind, Header, SegmentInfo, Step, Transactions};
use arca_engine::mysql::{MysqlSource, Session};
use arca_repo::Repository;
use mysql::prelude::Queryable;

use crate::{Error, ErrorKind, Result};

/// How `binlog-stream` runs.
#[derive(Debug, Clone)]
pub struct BinlogOptions {
    /// `mysql://USER@HOST:PORT`.
    pub source: String,
    /// A file whose first line is the password.
    pub password_file: Option<std::path::PathBuf>,
    /// Archive up to the server's position at the start, then return.
    pub until_now: bool,
    /// Start at the server's current position, whatever the archive holds.
    pub from_now: bool,
    /// The longest a finished transaction waits to be stored.
    pub seal_every: Duration,
    /// The server id this replica announces (unique among the server's
    /// replicas).
    pub replica_id: u32,
}

/// Where a stream stopped.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BinlogReport {
    /// The archive's name in the repository (`mysql/<server>`).
    pub stream: String,
    /// Where this run started: `file:position`.
    pub start: String,
    /// Everything before this point is in the repository.
    pub stored_up_to: String,
    pub last_gtid: Option<String>,
    /// The commit time of the newest archived transaction.
    pub last_time: Option<jiff::Timestamp>,
    pub segments: u64,
    pub transactions: u64,
}

/// What the caller hears while streaming.
#[derive(Debug)]
pub enum BinlogEvent<'a> {
    Started {
        /// "MariaDB at 127.0.0.1:3306".
        server: &'a str,
        stream: &'a str,
        start: &'a str,
        /// Why it starts there.
        reason: &'a str,
    },
    SegmentStored {
        name: &'a str,
        transactions: u64,
    },
    Reconnecting {
        error: &'a str,
        wait: Duration,
    },
}

/// How long to wait before connecting again after losing the server.
const RETRY: Duration = Duration::from_secs(5);
/// The largest transaction archived (held whole in memory meanwhile).
const MAX_TRANSACTION: usize = 2 << 30;
/// A segment is sealed at a transaction's end once it holds this much.
const SEGMENT_BYTES: usize = 16 << 20;

pub fn stream_name(identity: &str) -> String {
    format!("mysql/{identity}")
}

/// Streams until `stop` is set or, with `until_now`, until the server's
/// position at the start is archived. What has arrived is stored whatever
/// ends it. A lost connection is retried every few seconds once streaming
/// has begun (not with `until_now`); errors waiting cannot fix end it.
pub fn binlog_stream(
    repo: &Repository,
    opts: &BinlogOptions,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(BinlogEvent<'_>),
) -> Result<BinlogReport> {
    let src = &MysqlSource::parse(&opts.source, opts.password_file.as_deref())?;
    let mut last: Option<BinlogReport> = None;
    let mut from_now = opts.from_now;
    loop {
        let err = match session(repo, src, opts, from_now, stop, on_event, &mut last) {
            Ok(report) => return Ok(report),
            Err(e) => e,
        };
        from_now = false;
        let transient = err.kind() == ErrorKind::Temporary && !opts.until_now;
        let Some(prev) = last.as_ref().filter(|_| transient) else {
            return Err(err);
        };
        on_event(BinlogEvent::Reconnecting {
            error: &err.to_string(),
            wait: RETRY,
        });
        let until = Instant::now() + RETRY;
        while Instant::now() < until {
            if stop.load(Ordering::Relaxed) {
                return Ok(prev.clone());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Listed log objects that are segments, in log order.
pub fn in_log_order(listed: Vec<arca_repo::LogEntry>) -> Vec<(binlog::Order, arca_repo::LogEntry)> {
    let mut v: Vec<_> = listed
        .into_iter()
        .filter_map(|l| binlog::segment_order(&l.name).map(|o| (o, l)))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The name of the newest segment of `stream`, if any.
fn newest_name(repo: &Repository, stream: &str) -> Result<Option<String>> {
    Ok(in_log_order(repo.list_logs(stream)?)
        .pop()
        .map(|(_, l)| l.name))
}

/// The last segment of `stream`, if any.
pub fn last_segment(repo: &Repository, stream: &str) -> Result<Option<SegmentInfo>> {
    let Some(name) = newest_name(repo, stream)? else {
        return Ok(None);
    };
    let bytes = repo.get_log(stream, &name)?.ok_or_else(|| {
        Error::Unsupported(format!(
            "binlog segment {stream}/{name} vanished while it was read"
        ))
    })?;
    Ok(Some(binlog::decode_segment(&name, &bytes)?.info))
}

/// Where to start, and why.
fn start_point(
    repo: &Repository,
    ctl: &mut Session,
    stream: &str,
    identity: &str,
    from_now: bool,
) -> Result<(String, u64, String, bool)> {
    let files: Vec<String> = ctl
        .texts("SHOW BINARY LOGS")?
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect();
    if from_now {
        let (f, p) = ctl_status(ctl)?;
        // A log that starts over (RESET MASTER, a rebuilt server with the
        // same name) would mix with the archive's old segments of the same
        // names: refused.
        if let Some(newest) = newest_name(repo, stream)? {
            let at = binlog::segment_order(&binlog::segment_name(&f, p, false));
            if at <= binlog::segment_order(&newest) {
                return Err(Error::Engine(ctl.error(format!(
                    "its binary log ({f}:{p}) is behind the archive's newest segment {newest}: the log started over (RESET MASTER, or a rebuilt server under the same name); archive it into a new repository"
                ))));
            }
        }
        return Ok((
            f,
            p,
            "the server's current position (--from-now)".into(),
            false,
        ));
    }
    if let Some(info) = last_segment(repo, stream)? {
        let (file, pos) = info.resume_at();
        if !files.contains(&file) {
            return Err(Error::Engine(ctl.error(format!(
                "it no longer has binary log {file}, where the archive {stream} ends ({file}:{pos}): the server purged it before it was archived, so a point-in-time restore cannot pass that point. Take a new backup, then run binlog-stream --from-now to archive from the server's current position"
            ))));
        }
        return Ok((file, pos, "where the archive ends".into(), true));
    }
    // The oldest backup of this server whose file the server still has.
    let mut points: Vec<(String, u64)> = Vec::new();
    for m in repo.manifests()? {
        if m.engine != arca_repo::EngineName::Mysql || m.meta["server"].as_str() != Some(identity) {
            continue;
        }
        let c = &m.meta["consistency"];
        if let (Some(f), Some(p)) = (c["binlog_file"].as_str(), c["binlog_position"].as_u64()) {
            points.push((f.to_string(), p));
        }
    }
    points.sort_by_key(|(f, p)| {
        (
            binlog::segment_order(&binlog::segment_name(f, *p, false)),
            f.clone(),
            *p,
        )
    });
    if let Some((f, p)) = points.iter().find(|(f, _)| files.contains(f)) {
        return Ok((f.clone(), *p, "the oldest backup's position".into(), false));
    }
    let (f, p) = ctl_status(ctl)?;
    let why = if points.is_empty() {
        "the server's current position (no backup of it yet)"
    } else {
        "the server's current position (it purged the binary logs of every backup)"
    };
    Ok((f, p, why.into(), false))
}

/// The server's current binary log file and position.
fn ctl_status(ctl: &mut Session) -> Result<(String, u64)> {
    let st = binlog::log_status(ctl)?.ok_or_else(|| {
        ctl.error("it reports no binary log position (SHOW MASTER STATUS is empty)")
    })?;
    Ok((st.file.unwrap_or_default(), st.position.unwrap_or(4)))
}

/// Each event as the server sent it, and whether it ends in a CRC32.
type Events = Receiver<Result<(Vec<u8>, bool)>>;

/// Raw events from a replica connection, read on a thread of their own so
/// that sealing does not wait for the next event.
fn read_events(
    src: &MysqlSource,
    replica_id: u32,
    file: &str,
    pos: u64,
    until_now: bool,
) -> Result<Events> {
    Ok(read_events_engine(src, replica_id, file, pos, until_now)?)
}

fn read_events_engine(
    src: &MysqlSource,
    replica_id: u32,
    file: &str,
    pos: u64,
    until_now: bool,
) -> std::result::Result<Events, arca_engine::Error> {
    let mut s = Session::open(src)?;
    let label = s.label.clone();
    let setup = [
        // GTID events as MariaDB writes them, not as old replicas read them.
        "SET @mariadb_slave_capability = 4".to_string(),
        // A heartbeat each second while the log is idle, so a dead
        // connection is noticed and a stop is not held up.
        "SET @master_heartbeat_period = 1000000000".to_string(),
    ];
    for sql in &setup {
        s.conn
            .query_drop(sql)
            .map_err(|e| s.sql_error("preparing the replica connection", e))?;
    }
    let mut req = mysql::BinlogRequest::new(replica_id)
        .with_filename(file.as_bytes().to_vec())
        .with_pos(pos);
    if until_now {
        req = req.with_flags(mysql::BinlogDumpFlags::BINLOG_DUMP_NON_BLOCK);
    }
    let stream = s
        .conn
        .get_binlog_stream(req)
        .map_err(|e| arca_engine::mysql::sql_error(&label, "starting the binary log stream", e))?;
    let (tx, rx) = sync_channel(4096);
    std::thread::spawn(move || {
        let mut stream = stream;
        loop {
            // The protocol library panics on some malformed events: one is
            // an error here, not a stream that ended.
            let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| stream.next()));
            let ev = match next {
                Ok(Some(ev)) => ev,
                Ok(None) => return,
                Err(_) => {
                    let _ = tx.send(Err(Error::Unsupported(format!(
                        "{label}: the server sent a malformed binary log event"
                    ))));
                    return;
                }
            };
            let item = ev
                .map_err(|e| {
                    Error::Engine(arca_engine::mysql::sql_error(
                        &label,
                        "reading the binary log",
                        e,
                    ))
                })
                .and_then(|ev| {
                    let mut raw = Vec::with_capacity(ev.header().event_size() as usize);
                    ev.write(mysql::binlog::BinlogVersion::Version4, &mut raw)
                        .map_err(|e| {
                            Error::Unsupported(format!(
                                "{label}: an event could not be encoded: {e}"
                            ))
                        })?;
                    let crc = matches!(
                        ev.footer().get_checksum_alg(),
                        Ok(Some(
                            mysql::binlog::BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32
                        ))
                    );
                    // The event as rebuilt must carry the checksum the
                    // server sent: what is archived is what it wrote.
                    if let (true, Some(sent)) = (crc, ev.checksum()) {
                        if raw.len() < 4 || raw[raw.len() - 4..] != sent {
                            return Err(Error::Unsupported(format!(
                                "{label}: the binary log event ending at {} failed its checksum",
                                ev.header().log_pos()
                            )));
                        }
                    }
                    Ok((raw, crc))
                });
            let failed = item.is_err();
            if tx.send(item).is_err() || failed {
                return;
            }
        }
    });
    Ok(rx)
}

/// The archive being written: complete transactions wait in `pending`
/// until they are sealed into a segment; the open one in `open`.
struct Archive<'r> {
    repo: &'r Repository,
    stream: String,
    file: String,
    fde: Vec<u8>,
    /// Where the pending segment starts.
    start: u64,
    /// Where the last complete transaction ends.
    end: u64,
    pending: Vec<u8>,
    info: SegmentInfo,
    since: Option<Instant>,
    open: Vec<u8>,
    open_gtid: Option<String>,
    trx: Transactions,
    segments: u64,
    transactions: u64,
    last_gtid: Option<String>,
    last_time: Option<u32>,
    /// The newest segment in the repository, as this stream last saw it.
    prev: Option<String>,
    /// Whether the archive has a segment ending where this one starts: a
    /// first run stores one even without transactions, so the next run
    /// resumes from its start rather than from wherever the server is.
    anchored: bool,
}

impl Archive<'_> {
    fn fresh_info(&self) -> SegmentInfo {
        SegmentInfo {
            file: self.file.clone(),
            start: self.start,
            end: self.start,
            next_file: None,
            first_gtid: None,
            last_gtid: None,
            first_time: None,
            last_time: None,
            transactions: 0,
        }
    }

    /// Stores the pending transactions as one segment; `next_file` when
    /// the file ended (stored even without transactions, so the archive
    /// knows the file is whole).
    fn seal(
        &mut self,
        next_file: Option<String>,
        on_event: &mut dyn FnMut(BinlogEvent<'_>),
    ) -> Result<()> {
        if self.pending.is_empty() && next_file.is_none() && self.anchored {
            return Ok(());
        }
        self.anchored = true;
        // Two streams of one server would write overlapping segments: the
        // newest segment must still be the one this stream knows.
        let newest = newest_name(self.repo, &self.stream)?;
        if newest != self.prev {
            return Err(Error::Unsupported(format!(
                "another binlog-stream is archiving {} into this repository (segment {} appeared): run one per server",
                self.stream,
                newest.unwrap_or_default()
            )));
        }
        let fresh = self.fresh_info();
        let mut info = std::mem::replace(&mut self.info, fresh);
        info.end = self.end;
        info.next_file = next_file;
        let name = binlog::segment_name(&info.file, info.end, info.next_file.is_some());
        let bytes = binlog::encode_segment(&info, &self.fde, &self.pending);
        self.repo.put_log(&self.stream, &name, &bytes, false)?;
        self.prev = Some(name.clone());
        self.segments += 1;
        on_event(BinlogEvent::SegmentStored {
            name: &name,
            transactions: info.transactions,
        });
        self.pending.clear();
        self.since = None;
        match &info.next_file {
            Some(f) => {
                self.file = f.clone();
                self.start = 4;
                self.end = 4;
            }
            None => self.start = self.end,
        }
        self.info = self.fresh_info();
        Ok(())
    }

    fn stored_up_to(&self) -> String {
        format!("{}:{}", self.file, self.start)
    }

    /// Takes one event. Returns whether it ended a transaction.
    fn take(
        &mut self,
        raw: &[u8],
        crc: bool,
        first: bool,
        on_event: &mut dyn FnMut(BinlogEvent<'_>),
    ) -> Result<bool> {
        let h = Header::read(raw).ok_or_else(|| {
            Error::Unsupported(format!("{}: a binary log event is cut short", self.stream))
        })?;
        match h.kind {
            kind::ROTATE => {
                // The first rotation names the file asked for (and, sent
                // before the server's checksum setting is known, cannot be
                // read reliably).
                if first {
                    return Ok(false);
                }
                let body = &raw[binlog::HEADER_LEN..raw.len() - if crc { 4 } else { 0 }];
                let name = String::from_utf8_lossy(body.get(8..).unwrap_or_default()).into_owned();
                // The name becomes part of object names: only what binary
                // log names are made of.
                let valid = name.len() <= 200
                    && binlog::segment_order(&binlog::segment_name(&name, 4, false)).is_some()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
                if !valid {
                    return Err(Error::Unsupported(format!(
                        "{}: the server rotated to a binary log named {name:?}, which arca does not take as a file name",
                        self.stream
                    )));
                }
                if name != self.file && !name.is_empty() {
                    // What was open cannot continue into another file.
                    self.open.clear();
                    self.trx = Transactions::default();
                    if h.log_pos != 0 {
                        self.end = self.end.max(h.log_pos as u64);
                    }
                    self.seal(Some(name), on_event)?;
                }
                Ok(false)
            }
            kind::FORMAT_DESCRIPTION => {
                self.fde = raw.to_vec();
                Ok(false)
            }
            kind::HEARTBEAT | kind::STOP => Ok(false),
            _ => match self.trx.step(&h, raw, crc) {
                Step::Refuse(why) => Err(Error::Unsupported(format!(
                    "{}: the binary log event ending at {}:{}: {why}",
                    self.stream, self.file, h.log_pos
                ))),
                Step::Outside => Ok(false),
                Step::Inside => {
                    if self.open.is_empty() {
                        self.open_gtid = binlog::gtid(&h, raw);
                    }
                    if self.open.len() + raw.len() > MAX_TRANSACTION {
                        return Err(Error::Unsupported(format!(
                            "{}: a transaction starting in {} is larger than {} GiB: arca holds a transaction in memory while it archives it",
                            self.stream,
                            self.file,
                            MAX_TRANSACTION >> 30
                        )));
                    }
                    self.open.extend_from_slice(raw);
                    Ok(false)
                }
                Step::End => {
                    self.open.extend_from_slice(raw);
                    self.pending.append(&mut self.open);
                    if h.log_pos != 0 {
                        self.end = h.log_pos as u64;
                    }
                    let gtid = self.open_gtid.take();
                    if self.info.transactions == 0 {
                        self.info.first_gtid = gtid.clone();
                        self.info.first_time = Some(h.timestamp);
                    }
                    self.info.last_gtid = gtid.clone();
                    self.info.last_time = Some(h.timestamp);
                    self.info.transactions += 1;
                    self.transactions += 1;
                    self.last_gtid = gtid.or(self.last_gtid.take());
                    self.last_time = Some(h.timestamp);
                    self.since.get_or_insert_with(Instant::now);
                    Ok(true)
                }
            },
        }
    }
}

fn session(
    repo: &Repository,
    src: &MysqlSource,
    opts: &BinlogOptions,
    from_now: bool,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(BinlogEvent<'_>),
    last: &mut Option<BinlogReport>,
) -> Result<BinlogReport> {
    let mut ctl = Session::open(src)?;
    binlog::check_settings(&mut ctl)?;
    let identity = binlog::server_identity(&mut ctl)?;
    let stream = stream_name(&identity);
    let (file, pos, reason, resumed) = start_point(repo, &mut ctl, &stream, &identity, from_now)?;
    let server = ctl.label.clone();
    let target = if opts.until_now {
        Some(ctl_status(&mut ctl)?)
    } else {
        None
    };
    drop(ctl);
    let start = format!("{file}:{pos}");
    let rx = read_events(src, opts.replica_id, &file, pos, opts.until_now)?;
    on_event(BinlogEvent::Started {
        server: &server,
        stream: &stream,
        start: &start,
        reason: &reason,
    });
    let mut a = Archive {
        repo,
        stream: stream.clone(),
        file,
        fde: Vec::new(),
        start: pos,
        end: pos,
        pending: Vec::new(),
        info: SegmentInfo {
            file: String::new(),
            start: pos,
            end: pos,
            next_file: None,
            first_gtid: None,
            last_gtid: None,
            first_time: None,
            last_time: None,
            transactions: 0,
        },
        since: None,
        open: Vec::new(),
        open_gtid: None,
        trx: Transactions::default(),
        segments: 0,
        transactions: 0,
        last_gtid: last.as_ref().and_then(|l| l.last_gtid.clone()),
        last_time: None,
        anchored: resumed,
        prev: newest_name(repo, &stream)?,
    };
    a.info = a.fresh_info();
    let report = |a: &Archive<'_>| BinlogReport {
        stream: stream.clone(),
        start: start.clone(),
        stored_up_to: a.stored_up_to(),
        last_gtid: a.last_gtid.clone(),
        last_time: a
            .last_time
            .and_then(|t| jiff::Timestamp::from_second(t as i64).ok()),
        segments: a.segments,
        transactions: a.transactions,
    };
    let mut first = true;
    let result: Result<()> = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        let (raw, crc) = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Ok(ev)) => ev,
            Ok(Err(e)) => break Err(e),
            Err(RecvTimeoutError::Timeout) => {
                if a.since.is_some_and(|t| t.elapsed() >= opts.seal_every) {
                    if let Err(e) = a.seal(None, on_event) {
                        break Err(e);
                    }
                    *last = Some(report(&a));
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) if opts.until_now => break Ok(()),
            Err(RecvTimeoutError::Disconnected) => {
                break Err(Error::Engine(arca_engine::Error::Mysql {
                    server: src.server(),
                    reason: "the server ended the binary log stream".into(),
                    kind: ErrorKind::Temporary,
                    code: None,
                }))
            }
        };
        let ended = match a.take(&raw, crc, first, on_event) {
            Ok(e) => e,
            Err(e) => break Err(e),
        };
        first = false;
        let due = a.since.is_some_and(|t| t.elapsed() >= opts.seal_every)
            || a.pending.len() >= SEGMENT_BYTES;
        if ended && due {
            if let Err(e) = a.seal(None, on_event) {
                break Err(e);
            }
            *last = Some(report(&a));
        }
        if let (true, Some((tf, tp))) = (ended || a.open.is_empty(), &target) {
            if reached(&a.file, a.end, tf, *tp) {
                break Ok(());
            }
        }
    };
    // Whatever ended it, keep what arrived whole.
    let kept = a.seal(None, on_event);
    *last = Some(report(&a));
    result?;
    kept?;
    Ok(report(&a))
}

/// Whether `file:pos` is at or past `target_file:target_pos`.
fn reached(file: &str, pos: u64, target_file: &str, target_pos: u64) -> bool {
    let order = |f: &str, p: u64| binlog::segment_order(&binlog::segment_name(f, p, false));
    match (order(file, pos), order(target_file, target_pos)) {
        (Some(a), Some(b)) => a >= b,
        _ => file == target_file && pos >= target_pos,
    }
}

/// The servers whose binary log the repository holds (their identities).
fn archived_servers(repo: &Repository) -> Result<Vec<String>> {
    Ok(repo
        .log_streams()?
        .into_iter()
        .filter_map(|s| s.strip_prefix("mysql/").map(str::to_string))
        .collect())
}

/// The segments of `stream` in log order: names and stored sizes.
fn sorted_segments(repo: &Repository, stream: &str) -> Result<Vec<(String, u64)>> {
    Ok(in_log_order(repo.list_logs(stream)?)
        .into_iter()
        .map(|(_, l)| (l.name, l.stored_bytes))
        .collect())
}

/// One server's recoverable window: from its oldest backup's point to the
/// newest archived transaction.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServerWindow {
    pub server: String,
    pub from: Option<jiff::Timestamp>,
    pub to: Option<jiff::Timestamp>,
    pub last_gtid: Option<String>,
    /// Where the archive ends: `file:position`.
    pub archived_up_to: Option<String>,
    /// How old the newest archived transaction is, in seconds.
    pub lag_seconds: Option<i64>,
    pub segments: usize,
}

pub fn windows(repo: &Repository, manifests: &[arca_repo::Manifest]) -> Result<Vec<ServerWindow>> {
    let mut out = Vec::new();
    for server in archived_servers(repo)? {
        let stream = stream_name(&server);
        let segs = sorted_segments(repo, &stream)?;
        let mut last = None;
        // The newest segment with a transaction names the window's end.
        for (name, _) in segs.iter().rev() {
            let Some(bytes) = repo.get_log(&stream, name)? else {
                continue;
            };
            let info = binlog::decode_segment(name, &bytes)?.info;
            let ends = info.resume_at();
            if info.transactions > 0 {
                last = Some((info, ends));
                break;
            }
            if last.is_none() {
                last = Some((info, ends));
            }
        }
        let from = manifests
            .iter()
            .filter(|m| m.kind != arca_repo::BackupKind::Point)
            .filter(|m| m.meta["server"].as_str() == Some(server.as_str()))
            .map(|m| m.start_time)
            .min();
        let to = last
            .as_ref()
            .and_then(|(i, _)| i.last_time)
            .and_then(|t| jiff::Timestamp::from_second(t as i64).ok());
        out.push(ServerWindow {
            server: server.clone(),
            from,
            to,
            last_gtid: last.as_ref().and_then(|(i, _)| i.last_gtid.clone()),
            archived_up_to: last.as_ref().map(|(_, (f, p))| format!("{f}:{p}")),
            lag_seconds: to.map(|t| jiff::Timestamp::now().as_second() - t.as_second()),
            segments: segs.len(),
        });
    }
    Ok(out)
}

/// Deletes the segments no remaining backup of their server needs: those
/// that end at or before the oldest kept backup's point. A server without
/// a kept backup keeps its archive, and the newest segment always stays
/// (the next `binlog-stream` resumes from it).
pub fn expire(repo: &Repository, manifests: &[arca_repo::Manifest]) -> Result<(usize, u64)> {
    let (mut files, mut bytes) = (0, 0);
    for server in archived_servers(repo)? {
        let oldest = manifests
            .iter()
            .filter(|m| m.meta["server"].as_str() == Some(server.as_str()))
            .filter_map(|m| {
                let c = &m.meta["consistency"];
                let name = binlog::segment_name(
                    c["binlog_file"].as_str()?,
                    c["binlog_position"].as_u64()?,
                    false,
                );
                binlog::segment_order(&name)
            })
            .min();
        let Some(oldest) = oldest else {
            continue;
        };
        let stream = stream_name(&server);
        let segs = sorted_segments(repo, &stream)?;
        let keep_last = segs.len().saturating_sub(1);
        for (name, stored) in segs.into_iter().take(keep_last) {
            let Some(o) = binlog::segment_order(&name) else {
                continue;
            };
            // A segment ending at the point is not needed, unless it says
            // the file ended there: a replay's chain starts with it.
            let before =
                (o.1, o.2) < (oldest.1, oldest.2) || (o.1, o.2) == (oldest.1, oldest.2) && !o.3;
            if o.0 == oldest.0 && before {
                repo.delete_log(&stream, &name)?;
                files += 1;
                bytes += stored;
            }
        }
    }
    Ok((files, bytes))
}
