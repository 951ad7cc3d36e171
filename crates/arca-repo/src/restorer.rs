//! Restore: block lists → frames grouped and read once → every block
//! verified against its id → written at its offset.
//!
//! Workers (N) take windows (one block list each) of all the files to
//! restore, largest files first, and read, decompress and verify their
//! frames out of order; one writer thread opens the files and writes the
//! verified runs. Writes to one file take turns on its lock in the kernel,
//! and writers to several files were measured no faster than one. One set
//! of threads serves every file: a data directory holds about a thousand
//! small files, and threads, decompressors and buffers made for each would
//! cost more than restoring them.
//!
//! A window of blocks that uses delta frames is read frame by frame in file
//! order ([`Frames`]); the earlier versions its delta frames need are kept
//! from the frames the window reads anyway, so none is decompressed twice.

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::direct::{Output, Stage};
use crate::error::{Error, Result};
use crate::frames::{Frames, DEFAULT_CACHED_FRAMES};
use crate::id::{BlobId, Id};
use crate::index::{BlobLoc, Index, Lookup};
use crate::repository::Repository;
use crate::snapshot::{FileEntry, LIST_IDS};
use crate::Progress;

/// Adjacent frames are fetched with one read up to this size.
const MAX_READ: u64 = 8 << 20;
/// Frames this close are read with one request, gap and all: on object
/// storage a request costs more than reading a megabyte more.
const MAX_GAP: u64 = 1 << 20;

/// For the writer: a decompressed, verified frame of file number `file` and
/// the runs of it to write: (file offset, start in the frame, length). A
/// message without a frame says one of the file's windows is done.
struct Verified {
    file: usize,
    raw: Option<Arc<Vec<u8>>>,
    runs: Vec<(u64, usize, usize)>,
}

/// Writes `file`'s contents into `out` (already open for writing; its length
/// is set here). Every block is verified before it is written.
pub fn restore_file(
    repo: &Repository,
    index: &Index,
    file: &FileEntry,
    out: &File,
    parallelism: usize,
    progress: &dyn Progress,
) -> Result<()> {
    let open = |_: &FileEntry| out.try_clone().map_err(|e| Error::io(&file.path, e));
    restore_files(repo, index, &[file], &open, parallelism, progress)
}

/// Restores `files`, in that order (put the largest first, so the last to
/// finish is a small one). `open` creates the file to write an entry into;
/// it is called once per entry, from the writer thread, and the file is
/// closed as soon as its last block is written.
///
/// `parallelism` is how many reads of the repository run at once; there
/// are at least as many workers as cores, so that with one read at a time
/// the next read still runs while the last one is decompressed.
pub fn restore_files(
    repo: &Repository,
    index: &Index,
    files: &[&FileEntry],
    open: &(dyn Fn(&FileEntry) -> Result<File> + Sync),
    parallelism: usize,
    progress: &dyn Progress,
) -> Result<()> {
    let jobs: Vec<(usize, usize)> = files
        .iter()
        .enumerate()
        .flat_map(|(n, f)| (0..windows(f)).map(move |w| (n, w)))
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = parallelism.max(cores).min(jobs.len()).max(1);
    let reads = Permits::new(parallelism.max(1));
    let lists = Lists::new(index, files, &jobs);
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let fail = |e: Error| {
        failure.lock().unwrap().get_or_insert(e);
    };
    // Frame buffers go round: workers → writer → back to the workers.
    let (write_tx, write_rx) = bounded::<Verified>(workers * 2);
    let (pool_tx, pool_rx) = bounded::<Vec<u8>>(workers * 4);
    std::thread::scope(|s| {
        s.spawn(|| {
            // The error is recorded before the channel closes: the workers
            // then fail with "cancelled", which must not be what is reported.
            if let Err(e) = write_all(files, open, &write_rx, pool_tx, progress) {
                fail(e);
            }
            drop(write_rx);
        });
        for _ in 0..workers {
            let (write_tx, pool_rx) = (write_tx.clone(), pool_rx.clone());
            let (next, failure, fail, jobs) = (&next, &failure, &fail, &jobs);
            let (reads, lists) = (&reads, &lists);
            s.spawn(move || {
                let mut worker = Worker::new(repo, index, reads, write_tx, pool_rx);
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(&(n, w)) = jobs.get(i) else { return };
                    if failure.lock().unwrap().is_some() {
                        return;
                    }
                    let r = lists
                        .take(&worker, i)
                        .and_then(|ids| worker.restore_window(n, files[n], w, ids));
                    if let Err(e) = r {
                        return fail(e);
                    }
                }
            });
        }
        drop(write_tx);
    });
    if let Some(e) = failure.into_inner().unwrap() {
        return Err(e);
    }
    Ok(())
}

/// The jobs of a file: one per block list, and one for an empty file (it
/// is created too).
fn windows(f: &FileEntry) -> usize {
    f.lists.len().max(1)
}

/// The writer: opens each file at its first message, writes the runs, and
/// closes it once all its windows are done.
fn write_all(
    files: &[&FileEntry],
    open: &(dyn Fn(&FileEntry) -> Result<File> + Sync),
    verified: &Receiver<Verified>,
    pool: Sender<Vec<u8>>,
    progress: &dyn Progress,
) -> Result<()> {
    // Open files and the windows each still waits for.
    let mut open_files: HashMap<usize, (Output, usize)> = HashMap::new();
    let mut stage = Stage::new();
    for v in verified.iter() {
        let entry = files[v.file];
        let (out, left) = match open_files.entry(v.file) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                let out = open(entry)?;
                out.set_len(entry.size)
                    .map_err(|e| Error::io(&entry.path, e))?;
                slot.insert((Output::new(out, entry.size), windows(entry)))
            }
        };
        let Some(raw) = v.raw else {
            *left -= 1;
            if *left == 0 {
                open_files.remove(&v.file);
            }
            continue;
        };
        for &(pos, off, len) in &v.runs {
            out.write_at(&raw[off..off + len], pos, &mut stage)
                .map_err(|e| Error::io(&entry.path, e))?;
            progress.inc(len as u64);
        }
        if let Ok(raw) = Arc::try_unwrap(raw) {
            let _ = pool.try_send(raw);
        }
    }
    Ok(())
}

/// A block to restore: its number in the file, id and location.
type Wanted = (u64, BlobId, BlobLoc);

/// One restore thread: its frames (decompressor, buffers, and a cache for
/// delta frames) and channels to the writer.
struct Worker<'a> {
    repo: &'a Repository,
    index: &'a Index,
    reads: &'a Permits,
    frames: Frames<'a>,
    write: Sender<Verified>,
    pool: Receiver<Vec<u8>>,
    /// Buffers for reads of frame spans, kept from window to window.
    spans: Vec<Vec<u8>>,
    /// The number of the file being restored.
    file: usize,
}

impl<'a> Worker<'a> {
    fn new(
        repo: &'a Repository,
        index: &'a Index,
        reads: &'a Permits,
        write: Sender<Verified>,
        pool: Receiver<Vec<u8>>,
    ) -> Worker<'a> {
        Worker {
            repo,
            index,
            reads,
            frames: Frames::new(repo, index, DEFAULT_CACHED_FRAMES),
            write,
            pool,
            spans: Vec::new(),
            file: 0,
        }
    }

    /// Takes back the buffers of frames the writer has written, for reuse.
    fn take_back_buffers(&mut self) {
        while let Ok(buf) = self.pool.try_recv() {
            self.frames.recycle(buf);
        }
    }

    /// Restores the blocks `ids` of window `i` of `file` (file number `n`),
    /// then tells the writer the window is done.
    fn restore_window(
        &mut self,
        n: usize,
        file: &FileEntry,
        i: usize,
        ids: Option<Vec<BlobId>>,
    ) -> Result<()> {
        self.file = n;
        if let Some(ids) = ids {
            self.restore_list(file, i, &ids)?;
        }
        let done = Verified {
            file: n,
            raw: None,
            runs: Vec::new(),
        };
        self.write.send(done).map_err(|_| Error::Cancelled)
    }

    fn restore_list(&mut self, file: &FileEntry, i: usize, ids: &[BlobId]) -> Result<()> {
        let (repo, index) = (self.repo, self.index);
        let first_block = (i * LIST_IDS) as u64;
        // Group the blocks by the frame that holds them.
        let mut by_frame: HashMap<(u32, u32), Vec<Wanted>> = HashMap::new();
        let mut lookup = Lookup::new(index);
        for (j, id) in ids.iter().enumerate() {
            let loc = lookup.get(id).ok_or_else(|| {
                Error::corrupt(format!(
                    "block {} of {} (blob {id}) is not in the repository",
                    first_block + j as u64,
                    file.path
                ))
            })?;
            by_frame.entry((loc.pack, loc.frame)).or_default().push((
                first_block + j as u64,
                *id,
                loc,
            ));
        }
        let delta = by_frame
            .keys()
            .any(|&(p, f)| index.packs[p as usize].frames[f as usize].kind.depth() > 0);
        if delta {
            return self.restore_in_file_order(file, by_frame);
        }
        // In pack order, so adjacent frames are read together.
        let spans = std::mem::take(&mut self.spans);
        let mut plain = PlainReads::new(index, by_frame.keys().copied(), spans);
        for (p, f) in plain.frames.clone() {
            self.take_back_buffers();
            let pack = &index.packs[p as usize];
            let fr = &pack.frames[f as usize];
            let raw = plain
                .sealed(repo, self.reads, (p, f))
                .and_then(|sealed| self.frames.open(fr, sealed))
                .map_err(|e| damaged(file, &pack.id, e))?;
            let blocks = by_frame.get_mut(&(p, f)).expect("grouped above");
            self.send(file, &pack.id, Arc::new(raw), blocks)?;
        }
        self.spans = plain.into_spare();
        Ok(())
    }

    /// Restores a window that uses delta frames. Plain frames go in the
    /// order of their first block, a delta frame after the frames holding
    /// its blocks' earlier versions (by its last block); the bases the
    /// window's delta frames need are copied out of frames as they pass and
    /// dropped once used, so no frame is decompressed twice for them.
    fn restore_in_file_order(
        &mut self,
        file: &FileEntry,
        mut by_frame: HashMap<(u32, u32), Vec<Wanted>>,
    ) -> Result<()> {
        let index = self.index;
        let frame_of = |(p, f): (u32, u32)| &index.packs[p as usize].frames[f as usize];
        let mut order: Vec<(u64, bool, (u32, u32))> = by_frame
            .iter()
            .map(|(k, blocks)| {
                let delta = frame_of(*k).kind.depth() > 0;
                let numbers = blocks.iter().map(|b| b.0);
                let at = if delta { numbers.max() } else { numbers.min() };
                (at.unwrap_or(0), delta, *k)
            })
            .collect();
        order.sort_unstable();
        let mut pending: HashMap<BlobId, u32> = HashMap::new();
        for (_, _, k) in &order {
            for b in frame_of(*k).kind.bases() {
                *pending.entry(*b).or_default() += 1;
            }
        }
        let mut have: HashMap<BlobId, Vec<u8>> = HashMap::new();
        let mut plain = PlainReads::new(
            index,
            order
                .iter()
                .filter(|(_, delta, _)| !delta)
                .map(|(_, _, k)| *k),
            std::mem::take(&mut self.spans),
        );
        for (_, delta, (p, f)) in order {
            let pack_id = index.packs[p as usize].id;
            let fr = frame_of((p, f));
            self.take_back_buffers();
            // Read once each: what later frames need of it goes into `have`.
            let raw = if delta {
                let read = self.reads.take();
                let sealed = self
                    .repo
                    .read_frame(&pack_id, fr.offset, fr.len)
                    .map_err(|e| damaged(file, &pack_id, e))?;
                drop(read);
                let raw = self
                    .frames
                    .open_with(fr, &sealed, &have)
                    .map_err(|e| damaged(file, &pack_id, e))?;
                for b in fr.kind.bases() {
                    if let Some(n) = pending.get_mut(b) {
                        *n -= 1;
                        if *n == 0 {
                            pending.remove(b);
                            have.remove(b);
                        }
                    }
                }
                Arc::new(raw)
            } else {
                let raw = plain
                    .sealed(self.repo, self.reads, (p, f))
                    .and_then(|sealed| self.frames.open(fr, sealed))
                    .map_err(|e| damaged(file, &pack_id, e))?;
                Arc::new(raw)
            };
            if !pending.is_empty() {
                let mut at = 0usize;
                for b in &fr.blobs {
                    let end = at + b.len as usize;
                    if pending.contains_key(&b.id) && !have.contains_key(&b.id) {
                        have.insert(b.id, raw[at..end].to_vec());
                    }
                    at = end;
                }
            }
            let blocks = by_frame.get_mut(&(p, f)).expect("grouped above");
            self.send(file, &pack_id, raw, blocks)?;
        }
        self.spans = plain.into_spare();
        Ok(())
    }

    /// Verifies the wanted blocks of one decompressed frame and hands the
    /// runs to write to the writer.
    fn send(
        &self,
        file: &FileEntry,
        pack: &Id,
        raw: Arc<Vec<u8>>,
        blocks: &mut [Wanted],
    ) -> Result<()> {
        blocks.sort_unstable_by_key(|b| b.0);
        let bs = file.block_size as u64;
        let mut runs: Vec<(u64, usize, usize)> = Vec::new();
        for (block, id, loc) in blocks.iter() {
            let (off, len) = (loc.offset as usize, loc.len as usize);
            if self.repo.hasher.blob_id(&raw[off..off + len]) != *id {
                return Err(damaged(
                    file,
                    pack,
                    Error::corrupt(format!("block {block} (blob {id}) fails its hash")),
                ));
            }
            // Blocks contiguous in the frame and in the file: one write.
            let pos = block * bs;
            match runs.last_mut() {
                Some((p0, o0, l0)) if *p0 + *l0 as u64 == pos && *o0 + *l0 == off => *l0 += len,
                _ => runs.push((pos, off, len)),
            }
        }
        let v = Verified {
            file: self.file,
            raw: Some(raw),
            runs,
        };
        if self.write.send(v).is_err() {
            return Err(Error::Cancelled); // the writer failed; its error is reported
        }
        Ok(())
    }
}

/// Plain frames of a window, fetched in coalesced ranges (one request per
/// span of frames near each other, not per frame: it matters on object
/// storage), each span dropped once its last frame is used. Span buffers
/// are reused, window after window.
struct PlainReads<'a> {
    index: &'a Index,
    frames: Vec<(u32, u32)>,
    spans: Vec<(usize, usize)>,
    span_of: HashMap<(u32, u32), usize>,
    left: Vec<usize>,
    loaded: HashMap<usize, (u64, Vec<u8>)>,
    /// A span whose last frame was handed out, to drop at the next call.
    used_up: Option<usize>,
    spare: Vec<Vec<u8>>,
}

/// Span buffers a worker keeps between windows: a window of plain frames
/// reads one span at a time.
const SPARE_SPANS: usize = 2;

impl<'a> PlainReads<'a> {
    fn new(
        index: &'a Index,
        frames: impl Iterator<Item = (u32, u32)>,
        spare: Vec<Vec<u8>>,
    ) -> PlainReads<'a> {
        let mut frames: Vec<(u32, u32)> = frames.collect();
        frames.sort_unstable();
        let spans = read_spans(index, &frames);
        let mut span_of = HashMap::new();
        let mut left = Vec::with_capacity(spans.len());
        for (s, &(first, last)) in spans.iter().enumerate() {
            for k in &frames[first..=last] {
                span_of.insert(*k, s);
            }
            left.push(last - first + 1);
        }
        PlainReads {
            index,
            frames,
            spans,
            span_of,
            left,
            loaded: HashMap::new(),
            used_up: None,
            spare,
        }
    }

    /// The sealed bytes of plain frame `key`, reading its span if needed.
    fn sealed(&mut self, repo: &Repository, reads: &Permits, key: (u32, u32)) -> Result<&[u8]> {
        if let Some((_, buf)) = self.used_up.take().and_then(|s| self.loaded.remove(&s)) {
            self.spare.push(buf);
        }
        let s = self.span_of[&key];
        let pack = &self.index.packs[key.0 as usize];
        if !self.loaded.contains_key(&s) {
            let (first, last) = self.spans[s];
            let start = pack.frames[self.frames[first].1 as usize].offset;
            let end_frame = &pack.frames[self.frames[last].1 as usize];
            let end = end_frame.offset + end_frame.len as u64;
            // A new buffer is rounded up, so that it serves later spans too.
            let len = (end - start) as usize;
            let mut buf = match self.spare.iter().position(|b| b.capacity() >= len) {
                Some(i) => self.spare.swap_remove(i),
                None => Vec::with_capacity(len.next_power_of_two()),
            };
            let _read = reads.take();
            repo.backend.read_range_into(
                &crate::pack::pack_path(&pack.id),
                start,
                end - start,
                &mut buf,
            )?;
            self.loaded.insert(s, (start, buf));
        }
        self.left[s] -= 1;
        if self.left[s] == 0 {
            self.used_up = Some(s);
        }
        let (start, bytes) = &self.loaded[&s];
        let fr = &pack.frames[key.1 as usize];
        let at = (fr.offset - start) as usize;
        bytes.get(at..at + fr.len as usize).ok_or_else(|| {
            Error::corrupt(format!(
                "pack {} is shorter than the index says",
                pack.id.short()
            ))
        })
    }

    /// The span buffers, for the next window: the largest few.
    fn into_spare(mut self) -> Vec<Vec<u8>> {
        self.spare
            .extend(self.loaded.into_values().map(|(_, buf)| buf));
        self.spare
            .sort_unstable_by_key(|b| std::cmp::Reverse(b.capacity()));
        self.spare.truncate(SPARE_SPANS);
        self.spare
    }
}

/// The jobs' block lists, read a batch at a time: lists that sit side by
/// side in a pack (backups pack them apart from data) come in one request
/// rather than one each. A batch is read by the first worker to need it.
struct Lists<'a> {
    files: &'a [&'a FileEntry],
    jobs: &'a [(usize, usize)],
    /// For each job with a list, its batch.
    batch_of: Vec<Option<usize>>,
    /// The first and last job of each batch, and its lists once read (by
    /// job, each taken by its job).
    batches: Vec<(usize, usize, ListBatch)>,
}

type ListBatch = Mutex<Option<HashMap<usize, Vec<BlobId>>>>;

/// A list to read: its job, file, id and location.
type WantedList<'f> = (usize, &'f FileEntry, BlobId, BlobLoc);

/// The most bytes of lists one batch reads.
const LIST_BATCH: u64 = 2 << 20;

impl<'a> Lists<'a> {
    fn new(index: &Index, files: &'a [&'a FileEntry], jobs: &'a [(usize, usize)]) -> Lists<'a> {
        let mut batch_of = Vec::with_capacity(jobs.len());
        let mut batches: Vec<(usize, usize, ListBatch)> = Vec::new();
        // The batch being formed: its pack, first byte and end.
        let mut open: Option<(u32, u64, u64)> = None;
        for (j, &(n, w)) in jobs.iter().enumerate() {
            let Some(id) = files[n].lists.get(w) else {
                batch_of.push(None);
                continue;
            };
            let at = index.get(id).map(|loc| {
                let fr = &index.packs[loc.pack as usize].frames[loc.frame as usize];
                (loc.pack, fr.offset, fr.offset + fr.len as u64)
            });
            let joins = |(p, start, end): (u32, u64, u64)| {
                at.is_some_and(|(p2, s2, e2)| p == p2 && extends(start, end, s2, e2, LIST_BATCH))
            };
            match (open, at) {
                (Some(batch), Some((_, _, e2))) if joins(batch) => {
                    open = Some((batch.0, batch.1, e2));
                    batches.last_mut().expect("an open batch").1 = j;
                }
                _ => {
                    open = at;
                    batches.push((j, j, Mutex::new(None)));
                }
            }
            batch_of.push(Some(batches.len() - 1));
        }
        Lists {
            files,
            jobs,
            batch_of,
            batches,
        }
    }

    /// The block ids of job `job`'s window; None for an empty file.
    fn take(&self, worker: &Worker<'_>, job: usize) -> Result<Option<Vec<BlobId>>> {
        let Some(b) = self.batch_of[job] else {
            return Ok(None);
        };
        let (first, last, slot) = &self.batches[b];
        let mut slot = slot.lock().unwrap();
        if slot.is_none() {
            *slot = Some(self.read(worker, *first..=*last)?);
        }
        let lists = slot.as_mut().expect("read above");
        Ok(lists.remove(&job))
    }

    /// Reads the lists of jobs `range`, verifying each against its id.
    fn read(
        &self,
        worker: &Worker<'_>,
        range: std::ops::RangeInclusive<usize>,
    ) -> Result<HashMap<usize, Vec<BlobId>>> {
        let (repo, index) = (worker.repo, worker.index);
        let mut wanted: Vec<WantedList> = Vec::new();
        for j in range {
            let (n, w) = self.jobs[j];
            let file = self.files[n];
            let Some(id) = file.lists.get(w) else {
                continue;
            };
            let loc = index.get(id).ok_or_else(|| {
                Error::corrupt(format!(
                    "block list {w} of {} (blob {id}) is not in the repository",
                    file.path
                ))
            })?;
            if index.kind(&loc) != crate::pack::BlobKind::List {
                return Err(Error::corrupt(format!("blob {id} is not a block list")));
            }
            wanted.push((j, file, *id, loc));
        }
        // By frame: a frame may hold several lists (prune packs them together).
        let mut by_frame: HashMap<(u32, u32), Vec<WantedList>> = HashMap::new();
        for w in wanted {
            by_frame.entry((w.3.pack, w.3.frame)).or_default().push(w);
        }
        let mut plain = PlainReads::new(index, by_frame.keys().copied(), Vec::new());
        let mut out = HashMap::new();
        for key in plain.frames.clone() {
            let pack = &index.packs[key.0 as usize];
            let fr = &pack.frames[key.1 as usize];
            let lists = &by_frame[&key];
            let raw = plain
                .sealed(repo, worker.reads, key)
                .and_then(|sealed| worker.frames.open(fr, sealed))
                .map_err(|e| damaged(lists[0].1, &pack.id, e))?;
            for &(j, file, id, loc) in lists {
                let blob = raw
                    .get(loc.offset as usize..(loc.offset + loc.len) as usize)
                    .filter(|b| repo.hasher.blob_id(b) == id)
                    .ok_or_else(|| {
                        let e = Error::corrupt(format!("block list {id} fails its hash"));
                        damaged(file, &pack.id, e)
                    })?;
                out.insert(j, crate::snapshot::decode_list(blob)?);
            }
            worker.frames.recycle(raw);
        }
        Ok(out)
    }
}

/// Reads of the repository allowed at once: a permit is taken for each
/// and given back when it is dropped.
struct Permits {
    give: Sender<()>,
    take: Receiver<()>,
}

impl Permits {
    fn new(n: usize) -> Permits {
        let (give, take) = bounded(n);
        for _ in 0..n {
            give.send(()).expect("room for every permit");
        }
        Permits { give, take }
    }

    fn take(&self) -> Permit<'_> {
        self.take.recv().expect("the sender lives in self");
        Permit(self)
    }
}

struct Permit<'a>(&'a Permits);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let _ = self.0.give.send(());
    }
}

/// Splits sorted (pack, frame) pairs into spans `(first, last)` that one
/// range read can fetch: frames of one pack at most MAX_GAP apart, up to
/// MAX_READ in all. Frames of neighbouring windows interleave in a pack
/// (compressors finish out of order), and a window's block list sits among
/// its frames: without the gaps a window took three or four requests.
fn read_spans(index: &Index, frames: &[(u32, u32)]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut k = 0;
    while k < frames.len() {
        let (pack_no, first) = frames[k];
        let pack = &index.packs[pack_no as usize];
        let start = pack.frames[first as usize].offset;
        let mut end = start + pack.frames[first as usize].len as u64;
        let mut last = k;
        while let Some(&(p2, f2)) = frames.get(last + 1) {
            if p2 != pack_no {
                break;
            }
            let fr = &pack.frames[f2 as usize];
            let fr_end = fr.offset + fr.len as u64;
            if !extends(start, end, fr.offset, fr_end, MAX_READ) {
                break;
            }
            end = fr_end;
            last += 1;
        }
        spans.push((k, last));
        k = last + 1;
    }
    spans
}

/// Whether bytes `from..to` of a pack can join a read of `start..end` of
/// it: after it, at most MAX_GAP past its end, and the whole read at most
/// `limit` bytes.
fn extends(start: u64, end: u64, from: u64, to: u64, limit: u64) -> bool {
    from >= end && from - end <= MAX_GAP && to - start <= limit
}

fn damaged(file: &FileEntry, pack: &Id, e: Error) -> Error {
    match e {
        // The store failed to answer: say so, not that the data is damaged.
        Error::Remote { .. } | Error::Storage { .. } if !e.is_not_found() => Error::Format(format!(
            "cannot restore {}: reading pack {} failed: {e}",
            file.path,
            pack.short()
        )),
        e => Error::corrupt(format!(
            "cannot restore {}: pack {} is damaged or missing ({e}). Run `arca check --read-data` to see every damaged backup",
            file.path,
            pack.short()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;
    use crate::index::{IndexFile, IndexPack};
    use crate::pack::{FrameEntry, FrameKind};

    fn pack(id: u8, frames: &[(u64, u32)]) -> IndexPack {
        IndexPack {
            id: Id([id; 32]),
            size: 0,
            hash: [0; 32],
            frames: frames
                .iter()
                .map(|&(offset, len)| FrameEntry {
                    offset,
                    len,
                    kind: FrameKind::Data,
                    blobs: vec![],
                })
                .collect(),
        }
    }

    /// Regression: a span crossing into the next pack looked the next frame
    /// up in the previous pack's frame table (out of bounds when it was shorter).
    #[test]
    fn spans_never_cross_packs() {
        let mut index = Index::default();
        index.add_file(IndexFile {
            packs: vec![pack(1, &[(0, 10)]), pack(2, &[(0, 10), (10, 10), (20, 10)])],
        });
        assert_eq!(read_spans(&index, &[(0, 0), (1, 2)]), vec![(0, 0), (1, 1)]);
        assert_eq!(read_spans(&index, &[(1, 0), (1, 1), (1, 2)]), vec![(0, 2)]);
        // A small gap (frame 1 not needed) is read through.
        assert_eq!(read_spans(&index, &[(1, 0), (1, 2)]), vec![(0, 1)]);
    }

    #[test]
    fn spans_read_through_small_gaps_only() {
        let gap = MAX_GAP + 1;
        let mut index = Index::default();
        index.add_file(IndexFile {
            packs: vec![pack(
                1,
                &[
                    (0, 10),
                    (10, MAX_GAP as u32),
                    (10 + MAX_GAP, 10),
                    (20 + MAX_GAP, gap as u32),
                    (20 + MAX_GAP + gap, 10),
                ],
            )],
        });
        // Frames 0 and 2 are MAX_GAP apart: one read; 2 and 4 are further.
        assert_eq!(
            read_spans(&index, &[(0, 0), (0, 2), (0, 4)]),
            vec![(0, 1), (2, 2)]
        );
    }

    fn list_frame(offset: u64, len: u32, id: u8) -> FrameEntry {
        FrameEntry {
            offset,
            len,
            kind: FrameKind::List,
            blobs: vec![crate::pack::BlobEntry {
                id: BlobId([id; 16]),
                len: 16,
            }],
        }
    }

    fn file_with_lists(ids: &[u8]) -> FileEntry {
        FileEntry {
            path: format!("f{ids:?}"),
            size: 0,
            block_size: 4096,
            blocks: 0,
            lists: ids.iter().map(|&i| BlobId([i; 16])).collect(),
            meta: serde_json::Value::Null,
        }
    }

    /// Lists side by side in a pack are read as one batch; a list in
    /// another pack, far away or behind the last starts a new one, and an
    /// empty file has none.
    #[test]
    fn lists_side_by_side_are_read_in_one_batch() {
        let far = 100 + MAX_GAP + 1;
        let mut index = Index::default();
        let mut lists = IndexPack {
            frames: vec![
                list_frame(0, 50, 1),
                list_frame(60, 40, 2),
                list_frame(100, 50, 3),
                list_frame(far, 50, 4),
            ],
            ..pack(1, &[])
        };
        lists.size = far + 50;
        let other = IndexPack {
            frames: vec![list_frame(0, 50, 5)],
            ..pack(2, &[])
        };
        index.add_file(IndexFile {
            packs: vec![lists, other],
        });
        let files = [
            file_with_lists(&[1, 2]),
            file_with_lists(&[3]),
            file_with_lists(&[]),
            file_with_lists(&[5, 4, 1]),
        ];
        let files: Vec<&FileEntry> = files.iter().collect();
        let jobs: Vec<(usize, usize)> = files
            .iter()
            .enumerate()
            .flat_map(|(n, f)| (0..windows(f)).map(move |w| (n, w)))
            .collect();
        let batches = Lists::new(&index, &files, &jobs);
        assert_eq!(
            batches.batch_of,
            vec![Some(0), Some(0), Some(0), None, Some(1), Some(2), Some(3)]
        );
        let ranges: Vec<(usize, usize)> = batches.batches.iter().map(|b| (b.0, b.1)).collect();
        assert_eq!(ranges, vec![(0, 2), (4, 4), (5, 5), (6, 6)]);
    }

    #[test]
    fn spans_stop_at_the_read_limit() {
        let big = (MAX_READ / 2 + 1) as u32;
        let mut index = Index::default();
        index.add_file(IndexFile {
            packs: vec![pack(
                1,
                &[(0, big), (big as u64, big), (2 * big as u64, 10)],
            )],
        });
        assert_eq!(
            read_spans(&index, &[(0, 0), (0, 1), (0, 2)]),
            vec![(0, 0), (1, 2)]
        );
    }
}
