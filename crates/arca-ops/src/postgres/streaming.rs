//! `wal-stream`: WAL over a physical replication slot into the repository,
//! as pg_receivewal does, so the newest archived WAL is seconds behind the
//! server instead of one segment.
//!
//! Each segment is assembled whole in memory from its start. While it grows
//! it is stored as `<segment>.partial` (replaced each time, zero-padded to the
//! segment size as PostgreSQL's own partial files are, so `wal-fetch` can
//! hand it to recovery); once complete it is stored under its own name, like
//! a segment `archive_command` pushes, and the partial is deleted. The slot
//! is told only what the repository holds, so the server keeps any WAL the
//! repository does not have yet.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arca_engine::postgres::replication::{self, Event, Replication};
use arca_engine::postgres::wal::is_segment_name;
use arca_engine::postgres::{Lsn, PgSource, Segment};
use arca_repo::Repository;

use super::stream as log_stream;
use crate::{Error, ErrorKind, Result};

/// How `wal-stream` runs.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// The physical replication slot (created if missing).
    pub slot: String,
    /// How often the server gets a status update, and the longest a
    /// growing segment waits to be stored while WAL keeps arriving.
    pub status_interval: Duration,
}

/// Where a stream stopped.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StreamReport {
    pub system_identifier: String,
    pub slot: String,
    pub timeline: u32,
    /// Where streaming started.
    pub start: Lsn,
    /// Everything before this position is in the repository.
    pub stored_up_to: Lsn,
    /// Segments completed and stored under their own names.
    pub segments: u64,
    /// The growing segment, as stored (`<name>.partial`), if any.
    pub partial: Option<String>,
}

/// What the caller hears while streaming.
#[derive(Debug)]
pub enum StreamEvent<'a> {
    Started {
        system_identifier: &'a str,
        timeline: u32,
        start: Lsn,
        slot_created: bool,
    },
    SegmentStored {
        name: &'a str,
    },
    TimelineSwitch {
        from: u32,
        to: u32,
        at: Lsn,
    },
    /// The connection was lost; streaming resumes after `wait`.
    Reconnecting {
        error: &'a str,
        wait: Duration,
    },
}

/// How long to wait before connecting again after losing the server.
const RETRY: Duration = Duration::from_secs(5);

/// Streams until `stop` is set (then stores what it has and returns), or
/// until an error (after storing what it has). Once streaming has begun, a
/// lost connection (the server restarting, the network) is retried every
/// few seconds, resuming from what the repository holds; errors that
/// waiting cannot fix (passwords, permissions, the repository) end it.
pub fn wal_stream(
    repo: &Repository,
    source: &PgSource,
    opts: &StreamOptions,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(StreamEvent<'_>),
) -> Result<StreamReport> {
    replication::check_slot_name(&opts.slot)?;
    let mut last: Option<StreamReport> = None;
    loop {
        let err = match session(repo, source, opts, stop, on_event, &mut last) {
            Ok(report) => return Ok(report),
            Err(e) => e,
        };
        let transient = err.kind() == ErrorKind::Temporary;
        let Some(prev) = last.as_ref().filter(|_| transient) else {
            return Err(err);
        };
        on_event(StreamEvent::Reconnecting {
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

/// One connection's worth of streaming. `last` is the report of the
/// previous session, updated once this one has started streaming.
fn session(
    repo: &Repository,
    source: &PgSource,
    opts: &StreamOptions,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(StreamEvent<'_>),
    last: &mut Option<StreamReport>,
) -> Result<StreamReport> {
    let mut conn = Replication::connect(source)?;
    let sys = conn.identify_system()?;
    let seg_size = conn.wal_segment_size()?;
    let slot_created = conn.create_physical_slot(&opts.slot)?;
    let stream = log_stream(&sys.system_identifier);

    let (timeline, start) = match resume_point(repo, &stream, seg_size)? {
        Some((seg, partial)) => {
            let seg = if partial {
                seg
            } else {
                Segment {
                    timeline: seg.timeline,
                    number: seg.number + 1,
                }
            };
            let start = seg.start_lsn(seg_size);
            if seg.timeline > sys.timeline {
                return Err(Error::Unsupported(format!(
                    "the repository holds WAL of timeline {} for cluster {}, but the server is on timeline {}: is {} a restored copy of the cluster? Stream it into its own repository",
                    seg.timeline,
                    sys.system_identifier,
                    sys.timeline,
                    conn.server()
                )));
            }
            let timeline = if seg.timeline == sys.timeline {
                seg.timeline
            } else {
                let (_, text) = conn.timeline_history(sys.timeline)?;
                let history = replication::parse_history(&String::from_utf8_lossy(&text));
                replication::timeline_of(start, seg.timeline, sys.timeline, &history)
            };
            (timeline, start)
        }
        None => {
            let slot = conn.read_slot(&opts.slot)?;
            match slot.and_then(|s| s.restart_lsn) {
                Some(lsn) => (
                    slot.and_then(|s| s.restart_timeline)
                        .unwrap_or(sys.timeline),
                    lsn,
                ),
                None => (sys.timeline, sys.xlogpos),
            }
        }
    };
    let start = Segment::of(timeline, start, seg_size).start_lsn(seg_size);
    on_event(StreamEvent::Started {
        system_identifier: &sys.system_identifier,
        timeline,
        start,
        slot_created,
    });

    let mut s = Streamer {
        repo,
        stream,
        conn,
        seg_size,
        opts,
        seg: Segment::of(timeline, start, seg_size),
        buf: vec![0u8; seg_size as usize],
        filled: 0,
        stored: 0,
        partial_stored: false,
        flushed: start,
        segments: 0,
    };
    let result = s.run(stop, on_event);
    // Whatever happened, keep what arrived.
    let kept = s.store_partial();
    let _ = s.status(false);
    let report = StreamReport {
        system_identifier: sys.system_identifier.clone(),
        slot: opts.slot.clone(),
        timeline: s.seg.timeline,
        start: last.as_ref().map_or(start, |l| l.start),
        stored_up_to: s.flushed,
        segments: s.segments + last.as_ref().map_or(0, |l| l.segments),
        partial: s
            .partial_stored
            .then(|| format!("{}.partial", s.seg.name(seg_size))),
    };
    s.conn.close();
    *last = Some(report.clone());
    result?;
    kept?;
    Ok(report)
}

/// The newest WAL the repository holds for the cluster: a segment, and
/// whether only its partial form is there. A partial left beside its full
/// segment (a stream stopped between the two writes) is removed.
fn resume_point(repo: &Repository, stream: &str, seg_size: u64) -> Result<Option<(Segment, bool)>> {
    let logs = repo.list_logs(stream)?;
    let names: std::collections::BTreeSet<&str> = logs.iter().map(|l| l.name.as_str()).collect();
    let mut newest: Option<(Segment, bool)> = None;
    for name in &names {
        if !is_segment_name(name) {
            continue;
        }
        let (base, partial) = match name.strip_suffix(".partial") {
            Some(b) => (b, true),
            None if name.len() == 24 => (*name, false),
            None => continue,
        };
        let Some(seg) = Segment::parse(base, seg_size) else {
            continue;
        };
        if partial && names.contains(base) {
            repo.delete_log(stream, name)?;
            continue;
        }
        if newest.is_none_or(|(n, _)| seg > n) {
            newest = Some((seg, partial));
        }
    }
    Ok(newest)
}

struct Streamer<'a> {
    repo: &'a Repository,
    stream: String,
    conn: Replication,
    seg_size: u64,
    opts: &'a StreamOptions,
    /// The segment being assembled.
    seg: Segment,
    /// Its bytes, zero past `filled`.
    buf: Vec<u8>,
    filled: usize,
    /// How much of it the stored partial holds.
    stored: usize,
    partial_stored: bool,
    /// Everything before this is in the repository.
    flushed: Lsn,
    segments: u64,
}

impl Streamer<'_> {
    fn run(&mut self, stop: &AtomicBool, on_event: &mut dyn FnMut(StreamEvent<'_>)) -> Result<()> {
        let interval = self.opts.status_interval;
        // While WAL trickles in, a partial is stored at most this often.
        let min_gap = interval.min(Duration::from_secs(1));
        loop {
            self.history(self.seg.timeline)?;
            let start = self.position();
            self.conn
                .start_replication(Some(&self.opts.slot), start, self.seg.timeline)?;
            tracing::info!(
                "streaming WAL from {start} on timeline {} (slot {})",
                self.seg.timeline,
                self.opts.slot
            );
            let mut last_store = Instant::now();
            let mut next_status = Instant::now();
            loop {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let now = Instant::now();
                if now >= next_status {
                    self.status(false)?;
                    next_status = now + interval;
                }
                let dirty = self.filled > self.stored;
                let mut wait =
                    Duration::from_millis(250).min(next_status.saturating_duration_since(now));
                if dirty {
                    wait = wait.min((last_store + min_gap).saturating_duration_since(now));
                }
                let idle = match self.conn.recv(wait.max(Duration::from_millis(5)))? {
                    Event::Data { start, data, .. } => {
                        self.accept(start, &data, on_event)?;
                        false
                    }
                    Event::Keepalive {
                        reply_requested, ..
                    } => {
                        if reply_requested {
                            self.status(false)?;
                            next_status = Instant::now() + interval;
                        }
                        false
                    }
                    Event::EndOfTimeline { next, switch } => {
                        on_event(StreamEvent::TimelineSwitch {
                            from: self.seg.timeline,
                            to: next,
                            at: switch,
                        });
                        // The old timeline's last segment stays partial, as
                        // the server archives it.
                        self.store_partial()?;
                        self.seg = Segment::of(next, switch, self.seg_size);
                        self.buf.fill(0);
                        self.filled = 0;
                        self.stored = 0;
                        self.partial_stored = false;
                        break;
                    }
                    Event::Idle => true,
                };
                let now = Instant::now();
                if self.filled > self.stored
                    && ((idle && now >= last_store + min_gap) || now >= last_store + interval)
                {
                    self.store_partial()?;
                    last_store = now;
                    self.status(false)?;
                    next_status = now + interval;
                }
            }
        }
    }

    /// The next byte expected.
    fn position(&self) -> Lsn {
        Lsn(self.seg.start_lsn(self.seg_size).0 + self.filled as u64)
    }

    fn accept(
        &mut self,
        start: Lsn,
        data: &[u8],
        on_event: &mut dyn FnMut(StreamEvent<'_>),
    ) -> Result<()> {
        let expected = self.position();
        if start > expected {
            return Err(Error::Unsupported(format!(
                "the server sent WAL from {start} while {expected} was expected: refusing to store a gap"
            )));
        }
        let skip = (expected.0 - start.0) as usize;
        let mut data = data.get(skip..).unwrap_or_default();
        while !data.is_empty() {
            let n = data.len().min(self.buf.len() - self.filled);
            self.buf[self.filled..self.filled + n].copy_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
            if self.filled == self.buf.len() {
                self.complete(on_event)?;
            }
        }
        Ok(())
    }

    /// Stores a full segment under its own name (a segment `archive_command`
    /// stored already with the same bytes is fine) and drops its partial.
    fn complete(&mut self, on_event: &mut dyn FnMut(StreamEvent<'_>)) -> Result<()> {
        let name = self.seg.name(self.seg_size);
        self.repo.put_log(&self.stream, &name, &self.buf, false)?;
        if self.partial_stored {
            self.repo
                .delete_log(&self.stream, &format!("{name}.partial"))?;
        }
        on_event(StreamEvent::SegmentStored { name: &name });
        self.segments += 1;
        self.seg.number += 1;
        self.flushed = self.seg.start_lsn(self.seg_size);
        self.buf.fill(0);
        self.filled = 0;
        self.stored = 0;
        self.partial_stored = false;
        self.status(false)
    }

    /// Stores the growing segment as `<name>.partial` if it grew.
    fn store_partial(&mut self) -> Result<()> {
        if self.filled <= self.stored {
            return Ok(());
        }
        let name = format!("{}.partial", self.seg.name(self.seg_size));
        self.repo.put_log(&self.stream, &name, &self.buf, true)?;
        self.stored = self.filled;
        self.partial_stored = true;
        self.flushed = self.position();
        tracing::debug!("stored {name} up to {}", self.flushed);
        Ok(())
    }

    /// Tells the server what arrived and what the repository holds.
    fn status(&mut self, reply: bool) -> Result<()> {
        let write = self.position();
        self.conn.send_status(write, self.flushed, reply)?;
        Ok(())
    }

    /// Stores the history file of `timeline` (recovery needs it to follow
    /// the timeline), if there is one.
    fn history(&mut self, timeline: u32) -> Result<()> {
        if timeline <= 1 {
            return Ok(());
        }
        let (name, content) = self.conn.timeline_history(timeline)?;
        self.repo.put_log(&self.stream, &name, &content, false)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use arca_repo::{InitOptions, Location, Repository};

    use super::*;

    const MB16: u64 = 16 << 20;

    #[test]
    fn resumes_after_the_newest_segment_and_drops_stale_partials() {
        let dir = tempfile::tempdir().unwrap();
        let loc = Location::parse(dir.path().join("r").to_str().unwrap()).unwrap();
        let repo = Repository::init(&loc, &InitOptions::default()).unwrap();
        let s = "postgres/1";
        assert!(resume_point(&repo, s, MB16).unwrap().is_none());
        let seg = vec![0u8; 1024];
        repo.put_log(s, "000000010000000000000003", &seg, false)
            .unwrap();
        repo.put_log(s, "00000002.history", b"1\t0/5000000\tx\n", false)
            .unwrap();
        let full = Segment::parse("000000010000000000000003", MB16).unwrap();
        assert_eq!(resume_point(&repo, s, MB16).unwrap(), Some((full, false)));
        // A partial whose full segment is stored is a leftover: removed.
        repo.put_log(s, "000000010000000000000003.partial", &seg, true)
            .unwrap();
        assert_eq!(resume_point(&repo, s, MB16).unwrap(), Some((full, false)));
        assert!(repo
            .get_log(s, "000000010000000000000003.partial")
            .unwrap()
            .is_none());
        // A newer partial, on a later timeline, wins.
        repo.put_log(s, "000000020000000000000004.partial", &seg, true)
            .unwrap();
        let newer = Segment::parse("000000020000000000000004", MB16).unwrap();
        assert_eq!(resume_point(&repo, s, MB16).unwrap(), Some((newer, true)));
    }
}
