//! Restore: block lists → frames grouped and read once → every block
//! verified against its id → written at its offset. A file of blocks of
//! varied size has no offsets: it is read as a stream ([`BlockStream`]).
//!
//! A planner thread takes the windows (one block list each) of all the
//! files to restore, largest files first, and gathers the frames of
//! neighbouring windows into large range reads ([`plan`]); reader threads
//! fetch them, `parallelism` at a time. Workers, one per core, decompress
//! and verify the windows' frames; one writer thread writes the verified
//! runs, gathered into regions ([`write`]), into files another thread
//! creates ahead of it. Writes to one file take turns on its lock in
//! the kernel, and writers to several files were measured no faster than
//! one. One set of threads serves every file: a data directory holds about
//! a thousand small files, and threads, decompressors and buffers made for
//! each would cost more than restoring them.
//!
//! A window of blocks that uses delta frames is decompressed frame by frame
//! in file order ([`Frames`]); the earlier versions its delta frames need
//! are kept from the frames the window reads anyway, so none is
//! decompressed twice.

mod plan;
mod reads;
mod stream;
mod write;

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Mutex};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};

use crate::cancel::Op;
use crate::error::{Error, Result};
use crate::frames::{Frames, DEFAULT_CACHED_FRAMES};
use crate::id::{BlobId, Id};
use crate::index::{BlobLoc, Index};
use crate::manifest::FileEntry;
use crate::repository::Repository;
use crate::Progress;
use plan::{Budget, Planned, Planner};
use reads::{Lists, Permits};
pub use stream::{BlockReader, BlockStream};
use write::{create_all, write_all};

/// A frame: its pack's and its own number in the index.
type Key = (u32, u32);
/// A block to restore: its number in the file, id and location.
type Wanted = (u64, BlobId, BlobLoc);

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
/// `parallelism` is how many reads of the repository may run at once.
pub fn restore_files(
    repo: &Repository,
    index: &Index,
    files: &[&FileEntry],
    open: &(dyn Fn(&FileEntry) -> Result<File> + Sync),
    parallelism: usize,
    progress: &dyn Progress,
) -> Result<()> {
    // Block `i` goes at `i × block_size`: blocks of varied size have no
    // such place. Their engine loads them into its server instead.
    if let Some(f) = files.iter().find(|f| f.block_size == 0) {
        return Err(Error::Format(format!(
            "cannot restore {} as a file: it is stored in blocks of varied size (block_size 0), which only its engine's restore reads back; restore the backup with the engine that made it",
            f.path
        )));
    }
    let jobs: Vec<(usize, usize)> = files
        .iter()
        .enumerate()
        .flat_map(|(n, f)| (0..windows(f)).map(move |w| (n, w)))
        .collect();
    let parallelism = parallelism.max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = cores.min(jobs.len()).max(1);
    let reads = Permits::new(parallelism);
    let budget = Budget::new(workers, parallelism);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let fail = |e: Error| {
        failure.lock().unwrap().get_or_insert(e);
    };
    // A tripped token fails the restore like an error would: every thread
    // stops at its next step, and the caller removes what was written.
    let failed = || {
        if let Err(e) = repo.cancel.check(Op::Restore) {
            fail(e);
        }
        failure.lock().unwrap().is_some()
    };
    // Frame buffers go round: workers → writer → back to the workers.
    let (write_tx, write_rx) = bounded::<Verified>(workers * 2);
    let (pool_tx, pool_rx) = bounded::<Vec<u8>>(workers * 4);
    // Both bounded by the budget.
    let (fetch_tx, fetch_rx) = unbounded();
    let (planned_tx, planned_rx) = unbounded::<Planned>();
    // Files created ahead of the writer, at most this many.
    let (created_tx, created_rx) = bounded(64);
    std::thread::scope(|s| {
        s.spawn(|| create_all(files, open, created_tx, &failed));
        s.spawn(|| {
            // The error is recorded before the channel closes: the workers
            // then fail with "cancelled", which must not be what is reported.
            let written = write_all(
                files, created_rx, &write_rx, pool_tx, workers, progress, &failed,
            );
            if let Err(e) = written {
                fail(e);
            }
            drop(write_rx);
        });
        let planner = Planner {
            index,
            files,
            jobs: &jobs,
            lists: Lists::new(repo, index, files, &jobs),
            frames: Frames::new(repo, index, 0),
            reads: &reads,
            budget: &budget,
            fetch: fetch_tx,
            planned: planned_tx,
        };
        let (fail, failed) = (&fail, &failed);
        s.spawn(move || {
            if let Err(e) = planner.run(failed) {
                fail(e);
            }
        });
        for _ in 0..parallelism {
            let (queue, reads) = (fetch_rx.clone(), &reads);
            s.spawn(move || plan::fetch(repo, index, files, reads, queue, fail, failed));
        }
        drop(fetch_rx);
        for _ in 0..workers {
            let (write_tx, pool_rx) = (write_tx.clone(), pool_rx.clone());
            let planned = planned_rx.clone();
            s.spawn(move || {
                let mut worker = Worker::new(repo, index, write_tx, pool_rx);
                for window in planned {
                    if failed() {
                        return;
                    }
                    if let Err(e) = worker.restore_window(files[window.n], window) {
                        return fail(e);
                    }
                }
            });
        }
        drop(planned_rx);
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

/// One restore thread: its frames (decompressor, buffers, and a cache for
/// delta frames) and channels to the writer.
struct Worker<'a> {
    repo: &'a Repository,
    index: &'a Index,
    frames: Frames<'a>,
    write: Sender<Verified>,
    pool: Receiver<Vec<u8>>,
    /// The number of the file being restored.
    file: usize,
}

impl<'a> Worker<'a> {
    fn new(
        repo: &'a Repository,
        index: &'a Index,
        write: Sender<Verified>,
        pool: Receiver<Vec<u8>>,
    ) -> Worker<'a> {
        Worker {
            repo,
            index,
            frames: Frames::new(repo, index, DEFAULT_CACHED_FRAMES),
            write,
            pool,
            file: 0,
        }
    }

    /// Takes back the buffers of frames the writer has written, for reuse.
    fn take_back_buffers(&mut self) {
        while let Ok(buf) = self.pool.try_recv() {
            self.frames.recycle(buf);
        }
    }

    /// Restores the blocks of a planned window of `file`, then tells the
    /// writer the window is done.
    fn restore_window(&mut self, file: &FileEntry, mut window: Planned<'_>) -> Result<()> {
        self.file = window.n;
        let index = self.index;
        let delta = window
            .by_frame
            .keys()
            .any(|&(p, f)| index.packs[p as usize].frames[f as usize].kind.depth() > 0);
        if delta {
            self.restore_in_file_order(file, &mut window)?;
        } else {
            // In pack order, as they were read.
            let mut keys: Vec<Key> = window.by_frame.keys().copied().collect();
            keys.sort_unstable();
            for (p, f) in keys {
                self.take_back_buffers();
                let pack = &index.packs[p as usize];
                let fr = &pack.frames[f as usize];
                let raw = window
                    .sealed(index, (p, f))
                    .and_then(|sealed| self.frames.open(fr, sealed))
                    .map_err(|e| damaged(file, &pack.id, e))?;
                let blocks = window.by_frame.get_mut(&(p, f)).expect("planned");
                self.send(file, &pack.id, Arc::new(raw), blocks)?;
            }
        }
        let done = Verified {
            file: window.n,
            raw: None,
            runs: Vec::new(),
        };
        self.write.send(done).map_err(|_| Error::Cancelled)
    }

    /// Restores a window that uses delta frames. Plain frames go in the
    /// order of their first block, a delta frame after the frames holding
    /// its blocks' earlier versions (by its last block); the bases the
    /// window's delta frames need are copied out of frames as they pass and
    /// dropped once used, so no frame is decompressed twice for them.
    fn restore_in_file_order(&mut self, file: &FileEntry, window: &mut Planned<'_>) -> Result<()> {
        let index = self.index;
        let frame_of = |(p, f): Key| &index.packs[p as usize].frames[f as usize];
        let mut order: Vec<(u64, bool, Key)> = window
            .by_frame
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
        for (_, _, (p, f)) in order {
            let pack_id = index.packs[p as usize].id;
            let fr = frame_of((p, f));
            self.take_back_buffers();
            // Read once each: what later frames need of it goes into `have`.
            // A plain frame has no bases and takes none from `have`.
            let raw = window
                .sealed(index, (p, f))
                .and_then(|sealed| self.frames.open_with(fr, sealed, &have))
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
            let raw = Arc::new(raw);
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
            let blocks = window.by_frame.get_mut(&(p, f)).expect("planned");
            self.send(file, &pack_id, raw, blocks)?;
        }
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

fn damaged(file: &FileEntry, pack: &Id, e: Error) -> Error {
    match e {
        // Another thread failed, and its error is the one reported.
        Error::Cancelled => e,
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
