//! Planning a restore's reads ahead of its workers. One thread takes the
//! windows in order, reads their block lists, finds the frames each needs,
//! and gathers the frames of neighbouring windows into range reads of up to
//! [`MAX_READ`]; reader threads fetch them, `parallelism` at a time, while
//! the workers decompress. On object storage a request costs the store
//! milliseconds of CPU whatever its size (SeaweedFS: 3–5 ms), and a window's
//! frames are a few MiB: read window by window, a gigabyte took 87 requests.
//!
//! Reads are held in memory until every window using them is done, within
//! a budget: the planner stops while more than that is read and not yet
//! restored.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::reads::{stretched, Added, Gather, InRead, Lists, Permits, Span, MAX_READ};
use super::{damaged, Key, Wanted};
use crate::error::{Error, Result};
use crate::frames::Frames;
use crate::index::{Index, Lookup};
use crate::manifest::{FileEntry, LIST_IDS};
use crate::repository::Repository;

/// A window, planned: its blocks by frame, and where each frame's sealed
/// bytes will be.
pub(super) struct Planned<'s> {
    /// The file's number.
    pub n: usize,
    /// The window's blocks by frame; none for an empty file.
    pub by_frame: HashMap<Key, Vec<Wanted>>,
    /// Its frames: the read holding each, and its offset there.
    frames: HashMap<Key, (Arc<Read<'s>>, usize)>,
    /// Its frames in the read not yet sent to the readers, and their
    /// offsets in it.
    pending: InRead,
}

impl<'s> Planned<'s> {
    /// Its frames waiting for `read` are in it.
    fn resolve(&mut self, read: &Arc<Read<'s>>) {
        for (k, at) in self.pending.drain(..) {
            self.frames.insert(k, (read.clone(), at));
        }
    }

    /// The sealed bytes of frame `key`, once its read is done.
    pub fn sealed(&self, index: &Index, key: Key) -> Result<&[u8]> {
        let (read, at) = &self.frames[&key];
        if read.bytes.get().is_none() && !read.waited.swap(true, Ordering::Relaxed) {
            read.budget.starved();
        }
        // A failed read's error is already recorded.
        let bytes = read.bytes.wait().as_deref().ok_or(Error::Cancelled)?;
        let pack = &index.packs[key.0 as usize];
        let len = pack.frames[key.1 as usize].len as usize;
        bytes.get(*at..*at + len).ok_or_else(|| {
            Error::corrupt(format!(
                "pack {} is shorter than the index says",
                pack.id.short()
            ))
        })
    }
}

/// A range read of a pack, shared by the windows whose frames it holds.
/// Its buffer goes back for reuse, and its size to the budget, when the
/// last of them drops it.
pub(super) struct Read<'s> {
    budget: &'s Budget,
    span: Span,
    /// The bytes once read; None if the read failed.
    bytes: OnceLock<Option<Vec<u8>>>,
    /// Whether a worker had to wait for it.
    waited: AtomicBool,
}

impl Drop for Read<'_> {
    fn drop(&mut self) {
        let buf = self.bytes.take().flatten();
        self.budget.give_back(self.span.end - self.span.start, buf);
    }
}

/// Reads smaller than this get buffers of their own size.
const SMALL_READ: usize = 1 << 20;

/// Bytes read (or being read) and not yet restored, within a limit of so
/// many reads of the largest size, and the buffers of reads done with.
///
/// The limit starts at two reads (one being restored, one coming), and
/// grows by one read, up to one per worker and `parallelism` more, each
/// time a worker has to wait for a read: where the store is slow, reads run `parallelism` at a time; where
/// decompression is the bottleneck, memory stays low (on a VM, fresh memory
/// costs a page fault per 4 KiB, and 16 reads ahead cost a second of CPU).
pub(super) struct Budget {
    state: Mutex<BudgetState>,
    freed: Condvar,
    most: usize,
}

struct BudgetState {
    held: u64,
    reads: usize,
    /// Whether a read has come in: waits before that fill the pipeline.
    warm: bool,
    spare: Vec<Vec<u8>>,
}

impl BudgetState {
    fn over(&self) -> bool {
        self.held > self.reads as u64 * MAX_READ
    }
}

impl Budget {
    pub fn new(workers: usize, parallelism: usize) -> Budget {
        Budget {
            state: Mutex::new(BudgetState {
                held: 0,
                reads: 2,
                warm: false,
                spare: Vec::new(),
            }),
            freed: Condvar::new(),
            most: workers + parallelism.max(1),
        }
    }

    /// A buffer for `len` bytes. Large reads take a spare buffer, and new
    /// ones are made large enough for any read, so that each serves every
    /// later one (capacity never written to costs no memory). Small reads
    /// (a data directory's small files) take memory the allocator reuses.
    fn buffer(&self, len: usize) -> Vec<u8> {
        if len < SMALL_READ {
            return Vec::with_capacity(len);
        }
        let spare = &mut self.state.lock().unwrap().spare;
        match spare.pop() {
            Some(buf) => buf,
            None => Vec::with_capacity(len.max(stretched(MAX_READ) as usize)),
        }
    }

    fn take(&self, len: u64) {
        self.state.lock().unwrap().held += len;
    }

    fn give_back(&self, len: u64, buf: Option<Vec<u8>>) {
        let mut state = self.state.lock().unwrap();
        state.held -= len;
        // As many as reads may be held; a spare is never grown.
        if let Some(buf) = buf.filter(|b| b.capacity() >= MAX_READ as usize) {
            if state.spare.len() < self.most {
                state.spare.push(buf);
            }
        }
        self.freed.notify_all();
    }

    /// A read came in.
    fn arrived(&self) {
        self.state.lock().unwrap().warm = true;
    }

    /// A worker is about to wait for a read: allow one more ahead.
    fn starved(&self) {
        let mut state = self.state.lock().unwrap();
        if state.warm && state.reads < self.most {
            state.reads += 1;
        }
    }

    fn over(&self) -> bool {
        self.state.lock().unwrap().over()
    }

    /// Waits until the bytes held are within the limit, or no more than
    /// `pinned` (bytes that cannot be freed while the caller waits), or the
    /// restore failed.
    fn wait(&self, pinned: u64, failed: &dyn Fn() -> bool) {
        let mut state = self.state.lock().unwrap();
        while state.over() && state.held > pinned && !failed() {
            // With a timeout: a failure elsewhere does not notify.
            state = self
                .freed
                .wait_timeout(state, Duration::from_millis(50))
                .unwrap()
                .0;
        }
    }
}

/// Plans the windows of `jobs`, in order, and sends each to the workers
/// once the reads it needs are on their way.
pub(super) struct Planner<'a> {
    pub index: &'a Index,
    pub files: &'a [&'a FileEntry],
    pub jobs: &'a [(usize, usize)],
    pub lists: Lists<'a>,
    pub frames: Frames<'a>,
    pub reads: &'a Permits,
    pub budget: &'a Budget,
    pub fetch: Sender<Arc<Read<'a>>>,
    pub planned: Sender<Planned<'a>>,
}

impl<'a> Planner<'a> {
    /// Plans every window; stops early (without an error of its own) when
    /// the restore failed elsewhere.
    pub fn run(mut self, failed: &dyn Fn() -> bool) -> Result<()> {
        let mut gather = Gather::new(self.index, MAX_READ);
        let mut held: Vec<Planned<'a>> = Vec::new();
        for j in 0..self.jobs.len() {
            if failed() {
                return Ok(());
            }
            if self.budget.over() {
                // Wait for the workers to free reads. The windows held back
                // keep the reads they use (and which the workers cannot
                // have) until the open read is sent: if those are all that
                // is held, send it, cut short, and wait again.
                self.budget.wait(pinned(&held), failed);
                if self.budget.over() {
                    self.dispatch(gather.finish(), &mut held, None)?;
                    self.budget.wait(0, failed);
                }
                if failed() {
                    return Ok(());
                }
            }
            let mut planned = self.plan(j)?;
            // In pack order, so that neighbouring frames join one read.
            let mut keys: Vec<Key> = planned.by_frame.keys().copied().collect();
            keys.sort_unstable();
            for k in keys {
                match gather.add(planned.n, k) {
                    Added::Joined(at) => planned.pending.push((k, at)),
                    Added::Started(closed) => {
                        self.dispatch(closed, &mut held, Some(&mut planned))?;
                        planned.pending.push((k, 0));
                    }
                }
            }
            if planned.pending.is_empty() {
                self.planned.send(planned).map_err(|_| Error::Cancelled)?;
            } else {
                held.push(planned);
            }
        }
        self.dispatch(gather.finish(), &mut held, None)
    }

    /// Window `j`: its block list read, its blocks found in the index.
    fn plan(&mut self, j: usize) -> Result<Planned<'a>> {
        let (n, w) = self.jobs[j];
        let file = self.files[n];
        let mut by_frame: HashMap<Key, Vec<Wanted>> = HashMap::new();
        if let Some(ids) = self.lists.take(&self.frames, self.reads, j)? {
            let first_block = (w * LIST_IDS) as u64;
            let mut lookup = Lookup::new(self.index);
            for (k, id) in ids.iter().enumerate() {
                let block = first_block + k as u64;
                let loc = lookup.get(id).ok_or_else(|| {
                    Error::corrupt(format!(
                        "block {block} of {} (blob {id}) cannot be read: {}",
                        file.path,
                        self.index.why_absent(id)
                    ))
                })?;
                by_frame
                    .entry((loc.pack, loc.frame))
                    .or_default()
                    .push((block, *id, loc));
            }
        }
        Ok(Planned {
            n,
            by_frame,
            frames: HashMap::new(),
            pending: Vec::new(),
        })
    }

    /// Sends the read `span` to the readers, and the windows waiting for it
    /// to the workers; `current`, the window being planned, may be waiting
    /// for it too, and goes on waiting for later reads.
    fn dispatch(
        &self,
        span: Option<Span>,
        held: &mut Vec<Planned<'a>>,
        current: Option<&mut Planned<'a>>,
    ) -> Result<()> {
        let Some(span) = span else { return Ok(()) };
        self.budget.take(span.end - span.start);
        let read = Arc::new(Read {
            budget: self.budget,
            span,
            bytes: OnceLock::new(),
            waited: AtomicBool::new(false),
        });
        self.fetch
            .send(read.clone())
            .map_err(|_| Error::Cancelled)?;
        if let Some(planned) = current {
            planned.resolve(&read);
        }
        for mut planned in held.drain(..) {
            planned.resolve(&read);
            self.planned.send(planned).map_err(|_| Error::Cancelled)?;
        }
        Ok(())
    }
}

/// The bytes of the reads that the windows `held` use.
fn pinned(held: &[Planned<'_>]) -> u64 {
    let mut seen = HashSet::new();
    held.iter()
        .flat_map(|w| w.frames.values())
        .filter(|(read, _)| seen.insert(Arc::as_ptr(read)))
        .map(|(read, _)| read.span.end - read.span.start)
        .sum()
}

/// A reader thread: fetches reads until the planner is done. After a
/// failure it only marks the rest failed, so no worker waits for them.
pub(super) fn fetch(
    repo: &Repository,
    index: &Index,
    files: &[&FileEntry],
    reads: &Permits,
    queue: Receiver<Arc<Read<'_>>>,
    fail: &dyn Fn(Error),
    failed: &dyn Fn() -> bool,
) {
    for read in queue {
        let mut bytes = None;
        if !failed() {
            let span = &read.span;
            let pack = &index.packs[span.pack as usize];
            let len = span.end - span.start;
            let mut buf = read.budget.buffer(len as usize);
            let permit = reads.take();
            let path = crate::pack::pack_path(&pack.id);
            let r = repo
                .backend
                .read_range_into(&path, span.start, len, &mut buf);
            drop(permit);
            match r {
                Ok(()) => bytes = Some(buf),
                Err(e) => fail(damaged(files[span.file], &pack.id, e)),
            }
        }
        let _ = read.bytes.set(bytes);
        read.budget.arrived();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The budget starts at two reads, grows a read per wait once a read
    /// has come in (waits before that fill the pipeline), never past one
    /// per worker and `parallelism` more, and frees what is given back.
    #[test]
    fn the_budget_grows_with_waits_up_to_its_most() {
        let budget = Budget::new(2, 3);
        budget.take(2 * MAX_READ);
        assert!(!budget.over());
        budget.take(1);
        assert!(budget.over());
        budget.starved();
        assert!(budget.over(), "a wait before any read came in");
        budget.arrived();
        budget.starved();
        assert!(!budget.over(), "room for three reads");
        for _ in 0..10 {
            budget.starved();
        }
        budget.take(2 * MAX_READ);
        assert!(!budget.over(), "five reads at most");
        budget.take(MAX_READ);
        assert!(budget.over());
        budget.give_back(MAX_READ, Some(Vec::with_capacity(MAX_READ as usize)));
        assert!(!budget.over());
        budget.wait(0, &|| false);
        assert_eq!(budget.buffer(100).capacity(), 100, "small reads: their own");
        let spare = budget.buffer(SMALL_READ);
        assert_eq!(spare.capacity(), MAX_READ as usize, "the one given back");
    }

    /// The reads held-back windows use are counted once each.
    #[test]
    fn pinned_counts_each_read_once() {
        let budget = Budget::new(2, 2);
        let read = |start, end| {
            budget.take(end - start);
            Arc::new(Read {
                budget: &budget,
                span: Span {
                    file: 0,
                    pack: 0,
                    start,
                    end,
                },
                bytes: OnceLock::new(),
                waited: AtomicBool::new(false),
            })
        };
        let (a, b) = (read(0, 100), read(100, 130));
        fn window<'s>(reads: &[&Arc<Read<'s>>]) -> Planned<'s> {
            let mut w = Planned {
                n: 0,
                by_frame: HashMap::new(),
                frames: HashMap::new(),
                pending: Vec::new(),
            };
            for (f, r) in reads.iter().enumerate() {
                w.frames.insert((0, f as u32), (Arc::clone(r), 0));
            }
            w
        }
        assert_eq!(pinned(&[]), 0);
        assert_eq!(pinned(&[window(&[&a, &a])]), 100);
        assert_eq!(pinned(&[window(&[&a]), window(&[&a, &b])]), 130);
    }
}
