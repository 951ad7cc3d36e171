//! Backup: files → fixed, page-aligned blocks → keyed ids → dedup → frames of
//! new blocks compressed together → packs; then index, then snapshot.
//!
//! Database pages change in place, so blocks are fixed and aligned to the
//! page size: a changed page costs one block. New blocks are compressed
//! together in frames of about 1 MiB, which keeps the ratio of whole-file
//! compression while the index still addresses single pages. Given the
//! file's entry in an earlier backup, a changed page is compressed against
//! its previous version (a delta frame): most updates change a few bytes of
//! a page.
//!
//! A logical engine cuts its own blocks (at row boundaries) and hands them
//! over whole ([`BlockSource`]): such a file has blocks of varied size
//! (`block_size` 0) and goes through the same pipeline, and its earlier
//! version gives bases by block number as a fixed file's does.
//!
//! Pipeline (bounded channels, so memory does not grow with the source):
//! reader (caller's thread) → hashers (N) → dedup (1, in order) →
//! compressors (N) → packer (shared; each full pack is written by a thread of
//! its own, up to N at a time, while compression goes on).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::Read;
use std::sync::{Arc, Mutex};

use crossbeam_channel::bounded;

use crate::cancel::Op;
use crate::error::{Error, Result};
use crate::frames::{Frames, DEFAULT_CACHED_FRAMES};
use crate::id::{BlobId, Id};
use crate::index::{Index, IndexFile, IndexPack};
use crate::lock::{hostname, LockGuard};
use crate::manifest::{encode_list, FileEntry, Manifest, LIST_IDS};
use crate::pack::{
    pack_path, seal_delta_frame, seal_frame, seal_frame_with, BlobEntry, BlobKind, FrameKind,
    PackBuilder, SealedFrame, MAX_DELTA_DEPTH,
};
use crate::repository::Repository;
use crate::Progress;

/// What the caller knows about a new snapshot; the session fills in the rest.
#[derive(Debug, Clone)]
pub struct NewManifest {
    pub engine: crate::EngineName,
    pub source: String,
    pub kind: crate::BackupKind,
    pub name: Option<String>,
    pub tags: Vec<String>,
    pub start_time: jiff::Timestamp,
    pub meta: serde_json::Value,
}

/// Where a caller's pre-cut blocks come from.
pub trait BlockSource {
    /// Appends whole blocks to `buf` and each one's length to `cuts`, until
    /// `buf` holds at least `want` bytes or the source ends. Appending
    /// nothing means the end. `buf` and `cuts` come empty; a block of no
    /// bytes fails the backup.
    fn fill(&mut self, buf: &mut Vec<u8>, cuts: &mut Vec<u32>, want: usize) -> std::io::Result<()>;
}

/// One backup in progress: holds a shared lock and the repository's index.
pub struct BackupSession<'r> {
    repo: &'r Repository,
    index: Index,
    seen: Mutex<HashSet<BlobId>>,
    packer: Packer<'r>,
    parallelism: usize,
    files: Vec<FileEntry>,
    lock: LockGuard,
}

impl<'r> BackupSession<'r> {
    pub fn start(repo: &'r Repository, parallelism: usize) -> Result<BackupSession<'r>> {
        let lock = repo.lock_shared("backup")?;
        let index = repo.load_index()?;
        Ok(BackupSession {
            repo,
            index,
            seen: Mutex::new(HashSet::new()),
            packer: Packer::new(repo, parallelism),
            parallelism: parallelism.max(1),
            files: Vec::new(),
            lock,
        })
    }

    /// Records a file unchanged since an earlier backup by that backup's
    /// entry: its block lists are in the repository already, and this
    /// session's lock keeps prune from removing them before the commit.
    /// Returns false, recording nothing, when the entry cannot be vouched
    /// for: a list is not indexed, or an index file is damaged (its blocks
    /// may be named only there). The caller then stores the file afresh, so
    /// damage never spreads into a new backup.
    pub fn add_unchanged(&mut self, entry: FileEntry) -> Result<bool> {
        if !self.index.damaged.is_empty() || !entry.lists.iter().all(|l| self.index.contains(l)) {
            return Ok(false);
        }
        self.files.push(entry);
        Ok(true)
    }

    /// Stores one file read from `reader` (exactly `len` bytes) in blocks of
    /// `page_size` (or the repository's configured block size). `base` is the
    /// same file in an earlier backup: a changed block is then compressed
    /// against the block at the same position there.
    #[allow(clippy::too_many_arguments)]
    pub fn add_file(
        &mut self,
        path: &str,
        reader: &mut (dyn Read + Send),
        len: u64,
        page_size: u32,
        meta: serde_json::Value,
        base: Option<&FileEntry>,
        progress: &dyn Progress,
    ) -> Result<&FileEntry> {
        let cfg = &self.repo.config;
        let block_size = match cfg.chunker.block_size {
            0 if page_size > 0 => page_size,
            0 => crate::config::DEFAULT_BLOCK_SIZE,
            n => n,
        } as usize;
        let frame_size = cfg.chunker.frame_size as usize;
        let seg_bytes = (frame_size / block_size).max(1) * block_size;
        let input = Input::Fixed {
            reader,
            block_size,
            seg_bytes,
            done: false,
        };
        let (read_bytes, lists, blocks) = self.store(path, input, base, progress)?;
        if read_bytes != len {
            return Err(Error::Source(std::io::Error::other(format!(
                "{path}: read {read_bytes} bytes, expected {len}: the source changed size while it was read"
            ))));
        }
        self.files.push(FileEntry {
            path: path.to_string(),
            size: read_bytes,
            block_size: block_size as u32,
            blocks,
            lists,
            meta,
        });
        Ok(self.files.last().unwrap())
    }

    /// Stores one file as the blocks `source` cuts, of whatever sizes (none
    /// empty). Its entry has `block_size` 0: each block's length is its
    /// blob's, and the file is read back block by block
    /// ([`BlockStream`](crate::BlockStream)), not restored as a file. `base`
    /// is the same file in an earlier backup, also in variable blocks: a
    /// new block is compressed against the block of the same number there.
    /// A block larger than a frame is a frame of its own.
    pub fn add_blocks(
        &mut self,
        path: &str,
        source: &mut dyn BlockSource,
        meta: serde_json::Value,
        base: Option<&FileEntry>,
        progress: &dyn Progress,
    ) -> Result<&FileEntry> {
        let (size, lists, blocks) = self.store(path, Input::Cut(source), base, progress)?;
        self.files.push(FileEntry {
            path: path.to_string(),
            size,
            block_size: 0,
            blocks,
            lists,
            meta,
        });
        Ok(self.files.last().unwrap())
    }

    /// The pipeline both kinds of file go through. Returns the bytes read,
    /// the block lists and the number of blocks.
    fn store(
        &mut self,
        path: &str,
        mut input: Input<'_>,
        base: Option<&FileEntry>,
        progress: &dyn Progress,
    ) -> Result<(u64, Vec<BlobId>, u64)> {
        let cfg = &self.repo.config;
        let frame_size = cfg.chunker.frame_size as usize;
        let block_size = input.block_size();
        // A frame's buffer holds this much more than a frame, so the block
        // that fills it fits without growing it.
        let slack = if block_size > 0 {
            block_size
        } else {
            frame_size
        };
        // Buffers that grew past this (a very large block) are not kept.
        let keep_at_most = 2 * (frame_size + slack);
        let level = cfg.compression.level_for(block_size == 0);
        let n = self.parallelism;
        let hasher = &self.repo.hasher;
        let env = &self.repo.env;
        let index = &self.index;
        let seen = &self.seen;
        let packer = &self.packer;
        let repo = self.repo;
        let frames = Frames::new(repo, index, DEFAULT_CACHED_FRAMES).verifying_bases();
        let frames = &frames;
        let bases = base.filter(|b| b.block_size as usize == block_size);
        let failure: Mutex<Option<Error>> = Mutex::new(None);
        let fail = |e: Error| {
            let mut f = failure.lock().unwrap();
            if f.is_none() {
                *f = Some(e);
            }
        };

        packer.start_sequence();
        let (seg_tx, seg_rx) = bounded::<Segment>(n * 2);
        let (hashed_tx, hashed_rx) = bounded::<(Segment, Vec<BlobId>)>(n * 2);
        let (frame_tx, frame_rx) = bounded::<NewFrame>(n * 2);
        // Buffers go round (reader → hashers → dedup → compressors → reader),
        // so a backup does not allocate and fault in a fresh megabyte per segment.
        let (pool_tx, pool_rx) = bounded::<Vec<u8>>(n * 8);
        let recycle = |buf: Vec<u8>| {
            if buf.capacity() <= keep_at_most {
                let _ = pool_tx.try_send(buf);
            }
        };
        let recycle = &recycle;

        let (read_bytes, lists, blocks) = std::thread::scope(|s| {
            for _ in 0..n {
                let (rx, tx) = (seg_rx.clone(), hashed_tx.clone());
                s.spawn(move || {
                    for seg in rx {
                        let ids = seg.blocks().map(|b| hasher.blob_id(b)).collect();
                        if tx.send((seg, ids)).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(hashed_tx);
            for _ in 0..n {
                let rx = frame_rx.clone();
                let fail = &fail;
                s.spawn(move || {
                    let mut compressor = match zstd::bulk::Compressor::new(level) {
                        Ok(c) => c,
                        Err(e) => return fail(Error::Format(format!("zstd compressor: {e}"))),
                    };
                    for NewFrame {
                        seq,
                        raw,
                        blobs,
                        bases,
                        depth,
                    } in rx
                    {
                        let sealed = if bases.is_empty() {
                            seal_frame_with(env, &mut compressor, BlobKind::Data, &raw, blobs)
                        } else {
                            seal_against(
                                frames,
                                env,
                                level,
                                &mut compressor,
                                raw.as_slice(),
                                blobs,
                                bases,
                                depth,
                            )
                        };
                        let r = sealed.and_then(|f| packer.add_in_order(seq, f));
                        if let Err(e) = r {
                            fail(e);
                            return;
                        }
                        recycle(raw);
                    }
                });
            }
            drop(frame_rx);

            // Dedup in file order: builds the block list and frames of new blocks.
            let dedup = s.spawn(move || -> Result<(Vec<BlobId>, u64)> {
                let ctx = ListCtx {
                    hasher,
                    env,
                    index,
                    seen,
                    packer,
                };
                let mut pending = BTreeMap::new();
                let mut next = 0u64;
                let mut list: Vec<BlobId> = Vec::with_capacity(LIST_IDS);
                let mut lists = Vec::new();
                let mut blocks = 0u64;
                let mut raw = Vec::with_capacity(frame_size + slack);
                let mut blobs = Vec::new();
                let mut base_of = BaseFinder::new(repo, index, bases);
                let mut delta = DeltaBases::default();
                for (seg, ids) in hashed_rx {
                    pending.insert(seg.seq, (seg, ids));
                    while let Some((seg, ids)) = pending.remove(&next) {
                        next += 1;
                        let first = blocks;
                        // A frame of deltas ends with its window (below);
                        // ended here, a new window's segment may still be
                        // a frame as it is.
                        let window = first / LIST_IDS as u64;
                        if delta.has_bases() && !raw.is_empty() && window != delta.window {
                            let next = Vec::with_capacity(frame_size + slack);
                            send_frame(&frame_tx, &mut delta, &mut raw, next, &mut blobs)?;
                        }
                        let mut new_blocks = Vec::new();
                        let mut at = 0usize;
                        for (&len, id) in seg.lens.iter().zip(ids) {
                            let number = blocks;
                            blocks += 1;
                            list.push(id);
                            if list.len() == LIST_IDS {
                                lists.push(store_list(&ctx, &list)?);
                                list.clear();
                            }
                            let start = at;
                            at += len as usize;
                            if index.contains(&id) {
                                continue;
                            }
                            new_blocks.push(Fresh {
                                id,
                                start,
                                len,
                                number,
                                base: None,
                            });
                        }
                        let mut fresh = Vec::with_capacity(new_blocks.len());
                        if !new_blocks.is_empty() {
                            let mut seen = seen.lock().unwrap();
                            fresh.extend(new_blocks.into_iter().filter(|b| seen.insert(b.id)));
                        }
                        for b in &mut fresh {
                            b.base = base_of.find(b.number);
                        }
                        // Every block of a full segment is new: it is the
                        // frame as it is, unless the rules below would cut
                        // it (the frame full before the last block, a block
                        // of a frame's size among others, deltas across a
                        // block-list window).
                        let last = *seg.lens.last().expect("a segment holds a block") as usize;
                        let one_window = first / LIST_IDS as u64 == (blocks - 1) / LIST_IDS as u64;
                        let whole = raw.is_empty()
                            && seg.full
                            && fresh.len() == seg.lens.len()
                            && seg.buf.len() - last < frame_size
                            && (last < frame_size || seg.lens.len() == 1)
                            && (one_window || fresh.iter().all(|b| b.base.is_none()));
                        if whole {
                            let entries = fresh
                                .iter()
                                .map(|b| {
                                    delta.add(b.base);
                                    BlobEntry {
                                        id: b.id,
                                        len: b.len,
                                    }
                                })
                                .collect();
                            if frame_tx.send(delta.frame(seg.buf, entries)).is_err() {
                                return Err(Error::Cancelled);
                            }
                            continue;
                        }
                        for b in &fresh {
                            // A delta frame stays within one block list's
                            // window: restore reads by window, and a frame
                            // spanning several would be decompressed, with
                            // its bases, once for each. A block of a frame's
                            // size or more is a frame of its own.
                            let window = b.number / LIST_IDS as u64;
                            let cut = (delta.has_bases() && window != delta.window)
                                || b.len as usize >= frame_size;
                            if cut && !raw.is_empty() {
                                let next = Vec::with_capacity(frame_size + slack);
                                send_frame(&frame_tx, &mut delta, &mut raw, next, &mut blobs)?;
                            }
                            if raw.is_empty() {
                                delta.window = window;
                            }
                            raw.extend_from_slice(&seg.buf[b.start..b.start + b.len as usize]);
                            blobs.push(BlobEntry {
                                id: b.id,
                                len: b.len,
                            });
                            delta.add(b.base);
                            if raw.len() >= frame_size {
                                let next = Vec::with_capacity(frame_size + slack);
                                send_frame(&frame_tx, &mut delta, &mut raw, next, &mut blobs)?;
                            }
                        }
                        recycle(seg.buf);
                    }
                }
                if !raw.is_empty() {
                    send_frame(&frame_tx, &mut delta, &mut raw, Vec::new(), &mut blobs)?;
                }
                if !list.is_empty() || lists.is_empty() {
                    lists.push(store_list(&ctx, &list)?);
                }
                Ok((lists, blocks))
            });

            // Read in segments on this thread.
            let mut seq = 0u64;
            let mut total = 0u64;
            let read_result: Result<()> = loop {
                // Stopping the reader stops the rest: the stages drain, the
                // packs being written finish, and nothing is committed.
                if let Err(e) = repo.cancel.check(Op::Backup) {
                    break Err(e);
                }
                let mut buf = pool_rx.try_recv().unwrap_or_default();
                let mut lens = Vec::new();
                let full = match input.read(path, &mut buf, &mut lens, frame_size) {
                    Ok(Some(full)) => full,
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                };
                let got = buf.len() as u64;
                total += got;
                progress.inc(got);
                let seg = Segment {
                    seq,
                    buf,
                    lens,
                    full,
                };
                if seg_tx.send(seg).is_err() {
                    break Ok(()); // a later stage failed; its error is reported below
                }
                seq += 1;
            };
            drop(seg_tx);
            let dedup_result = dedup.join().expect("dedup thread panicked");
            read_result?;
            let (lists, blocks) = match dedup_result {
                Ok(v) => v,
                Err(Error::Cancelled) => {
                    return Err(failure.lock().unwrap().take().unwrap_or(Error::Cancelled))
                }
                Err(e) => return Err(e),
            };
            Ok((total, lists, blocks))
        })?;
        if let Some(e) = failure.into_inner().unwrap() {
            return Err(e);
        }
        self.packer.end_sequence()?;
        Ok((read_bytes, lists, blocks))
    }

    /// Writes the last pack, the index, then the snapshot that references
    /// them; its parent is the newest snapshot of the same source and kind.
    pub fn commit(self, new: NewManifest) -> Result<Manifest> {
        let parent = self
            .repo
            .manifests()?
            .into_iter()
            .rev()
            .find(|s| s.source == new.source && s.kind == new.kind)
            .map(|s| s.id);
        self.commit_with_parent(new, parent)
    }

    /// [`Self::commit`] with the parent chosen by the caller.
    pub fn commit_with_parent(self, new: NewManifest, parent: Option<Id>) -> Result<Manifest> {
        self.packer.flush()?;
        // The last point to stop: from here index and manifest are written.
        self.repo.cancel.check(Op::Backup)?;
        self.lock.ensure_held()?;
        let state = self.packer.into_written()?;
        let mut stored = state.stored;
        if !state.written.is_empty() {
            stored += self.repo.write_index_file(&IndexFile {
                packs: state.written,
            })?;
        }
        let mut snap = Manifest {
            version: 1,
            id: Id::random(),
            engine: new.engine,
            source: new.source,
            kind: new.kind,
            name: new.name,
            tags: new.tags,
            hostname: hostname(),
            start_time: new.start_time,
            end_time: jiff::Timestamp::now(),
            size: self.files.iter().map(|f| f.size).sum(),
            stored_bytes: stored,
            parent,
            files: self.files,
            meta: new.meta,
        };
        let manifest_len = snap.encode(&self.repo.env)?.len() as u64;
        snap.stored_bytes = stored + manifest_len;
        self.repo.write_manifest(&snap)?;
        Ok(snap)
    }
}

/// A frame of new blocks on its way to a compressor.
struct NewFrame {
    /// Its place in the file's frames: packs take them in this order.
    seq: u64,
    raw: Vec<u8>,
    blobs: Vec<BlobEntry>,
    /// The blocks' previous versions (none: compress plainly).
    bases: Vec<BlobId>,
    depth: u8,
}

/// What a file is read from: a reader cut here into fixed blocks, or a
/// source that cuts its own.
enum Input<'a> {
    Fixed {
        reader: &'a mut (dyn Read + Send),
        block_size: usize,
        /// Bytes read at a time: whole blocks, about a frame.
        seg_bytes: usize,
        /// A short read was the end.
        done: bool,
    },
    Cut(&'a mut dyn BlockSource),
}

impl Input<'_> {
    /// The block size a file entry records: 0 for blocks of varied size.
    fn block_size(&self) -> usize {
        match self {
            Input::Fixed { block_size, .. } => *block_size,
            Input::Cut(_) => 0,
        }
    }

    /// Reads the next segment into `buf` (a spare buffer, perhaps holding
    /// old bytes) and its block lengths into `lens`. `None` at the end;
    /// otherwise whether the segment is a frame's worth.
    fn read(
        &mut self,
        path: &str,
        buf: &mut Vec<u8>,
        lens: &mut Vec<u32>,
        frame_size: usize,
    ) -> Result<Option<bool>> {
        match self {
            Input::Fixed {
                reader,
                block_size,
                seg_bytes,
                done,
            } => {
                if *done {
                    return Ok(None);
                }
                // Not cleared first: a spare buffer of the right length is
                // read into as it is, without zeroing a megabyte each time.
                buf.resize(*seg_bytes, 0);
                let got = fill(&mut **reader, buf).map_err(Error::Source)?;
                buf.truncate(got);
                *done = got < *seg_bytes;
                if got == 0 {
                    return Ok(None);
                }
                let bs = *block_size;
                lens.extend(std::iter::repeat_n(bs as u32, got / bs));
                if got % bs != 0 {
                    lens.push((got % bs) as u32);
                }
                Ok(Some(got == *seg_bytes))
            }
            Input::Cut(source) => {
                buf.clear();
                source.fill(buf, lens, frame_size).map_err(Error::Source)?;
                if buf.is_empty() && lens.is_empty() {
                    return Ok(None);
                }
                let bad = |what: String| {
                    Error::Source(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{path}: the block source {what}: it is a bug in the engine that cut them"),
                    ))
                };
                if lens.contains(&0) {
                    return Err(bad("cut a block of no bytes".into()));
                }
                let sum: u64 = lens.iter().map(|&l| u64::from(l)).sum();
                if sum != buf.len() as u64 {
                    return Err(bad(format!(
                        "appended {} bytes but blocks of {sum} bytes",
                        buf.len()
                    )));
                }
                Ok(Some(buf.len() >= frame_size))
            }
        }
    }
}

/// A run of a file's blocks, read in one go, on its way to the hashers and
/// dedup.
struct Segment {
    /// Its place in the file: dedup takes segments in this order.
    seq: u64,
    buf: Vec<u8>,
    /// Its blocks' lengths, in order; they add up to `buf.len()`.
    lens: Vec<u32>,
    /// A frame's worth: if all its blocks are new, it is a frame as it is.
    full: bool,
}

impl Segment {
    fn blocks(&self) -> impl Iterator<Item = &[u8]> {
        let mut at = 0;
        self.lens.iter().map(move |&len| {
            let block = &self.buf[at..at + len as usize];
            at += len as usize;
            block
        })
    }
}

/// A block new to the repository: its place in its segment, its number
/// in the file and its previous version, if any.
struct Fresh {
    id: BlobId,
    start: usize,
    len: u32,
    number: u64,
    base: Option<(BlobId, u8)>,
}

/// Hands the frame gathered in `raw` and `blobs` to the compressors and
/// starts the next one in `next`.
fn send_frame(
    tx: &crossbeam_channel::Sender<NewFrame>,
    delta: &mut DeltaBases,
    raw: &mut Vec<u8>,
    next: Vec<u8>,
    blobs: &mut Vec<BlobEntry>,
) -> Result<()> {
    let full = std::mem::replace(raw, next);
    tx.send(delta.frame(full, std::mem::take(blobs)))
        .map_err(|_| Error::Cancelled)
}

/// Collects the bases of the blocks going into the next frame.
#[derive(Default)]
struct DeltaBases {
    bases: Vec<BlobId>,
    unique: HashSet<BlobId>,
    depth: u8,
    /// The block list window the frame's first block is in.
    window: u64,
    /// Frames made so far.
    made: u64,
}

impl DeltaBases {
    fn has_bases(&self) -> bool {
        !self.bases.is_empty()
    }

    fn add(&mut self, base: Option<(BlobId, u8)>) {
        if let Some((id, depth)) = base {
            // A base shared by several blocks (an empty page) goes in once.
            if self.unique.insert(id) {
                self.bases.push(id);
                self.depth = self.depth.max(depth + 1);
            }
        }
    }

    fn frame(&mut self, raw: Vec<u8>, blobs: Vec<BlobEntry>) -> NewFrame {
        self.unique.clear();
        self.made += 1;
        NewFrame {
            seq: self.made - 1,
            raw,
            blobs,
            bases: std::mem::take(&mut self.bases),
            depth: std::mem::take(&mut self.depth),
        }
    }
}

/// Finds a block's previous version: the block at the same position in the
/// base file, if it is stored and not already at the deepest delta depth.
struct BaseFinder<'a> {
    repo: &'a Repository,
    index: &'a Index,
    base: Option<&'a FileEntry>,
    window: Option<usize>,
    ids: Vec<BlobId>,
}

impl<'a> BaseFinder<'a> {
    fn new(repo: &'a Repository, index: &'a Index, base: Option<&'a FileEntry>) -> Self {
        BaseFinder {
            repo,
            index,
            base,
            window: None,
            ids: Vec::new(),
        }
    }

    /// The base blob of block `number` and the depth of its frame.
    fn find(&mut self, number: u64) -> Option<(BlobId, u8)> {
        let base = self.base?;
        let window = (number / LIST_IDS as u64) as usize;
        let list = base.lists.get(window)?;
        if self.window != Some(window) {
            self.window = Some(window);
            // An unreadable list only costs the delta: the block is stored whole.
            self.ids = self.repo.read_list(self.index, list).unwrap_or_default();
        }
        let id = *self.ids.get((number % LIST_IDS as u64) as usize)?;
        let loc = self.index.get(&id)?;
        let kind = &self.index.frame(&loc).1.kind;
        (kind.blob_kind() == BlobKind::Data && kind.depth() < MAX_DELTA_DEPTH)
            .then_some((id, kind.depth()))
    }
}

/// Seals a frame as a delta against `bases`, or plainly when the bases
/// cannot be read: a damaged earlier backup must not stop this one.
#[allow(clippy::too_many_arguments)]
fn seal_against(
    frames: &Frames<'_>,
    env: &crate::config::Envelope,
    level: i32,
    compressor: &mut zstd::bulk::Compressor<'static>,
    raw: &[u8],
    blobs: Vec<BlobEntry>,
    bases: Vec<BlobId>,
    depth: u8,
) -> Result<SealedFrame> {
    match frames.prefix(&bases, depth) {
        Ok(prefix) => {
            let sealed = seal_delta_frame(env, level, &prefix, raw, blobs, depth, bases);
            frames.recycle(prefix);
            sealed
        }
        Err(e) => {
            tracing::warn!(
                "storing {} blocks without their previous versions: {e}",
                blobs.len()
            );
            seal_frame_with(env, compressor, BlobKind::Data, raw, blobs)
        }
    }
}

struct ListCtx<'a, 'r> {
    hasher: &'a crate::id::Hasher,
    env: &'a crate::config::Envelope,
    index: &'a Index,
    seen: &'a Mutex<HashSet<BlobId>>,
    packer: &'a Packer<'r>,
}

/// Stores a block list as a list blob unless an identical one is stored.
fn store_list(ctx: &ListCtx<'_, '_>, ids: &[BlobId]) -> Result<BlobId> {
    let bytes = encode_list(ids);
    let id = ctx.hasher.blob_id(&bytes);
    if ctx.index.contains(&id) || !ctx.seen.lock().unwrap().insert(id) {
        return Ok(id);
    }
    let blobs = vec![BlobEntry {
        id,
        len: bytes.len() as u32,
    }];
    // Ids are random bytes: the fastest level loses nothing.
    let frame = seal_frame(ctx.env, 1, BlobKind::List, &bytes, blobs)?;
    ctx.packer.add(frame)?;
    Ok(id)
}

/// Reads until `buf` is full or the source ends.
fn fill(reader: &mut (dyn Read + Send), buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Collects frames into packs and writes each full pack. A full pack is
/// written by a thread of its own while the caller goes on compressing, up
/// to `uploads` packs at a time: with one compressor (`--parallelism 1`) a
/// pack's upload would otherwise stop compression for as long as it takes.
///
/// Block lists go into packs of their own: a restore reads a file's lists
/// before its data, and lists packed side by side come in one request
/// rather than one each from among the data.
pub(crate) struct Packer<'r> {
    repo: &'r Repository,
    state: Mutex<PackerState>,
    in_flight: Mutex<VecDeque<Upload>>,
    uploads: usize,
    /// Buffers of packs written, for the next packs: a gigabyte backed up
    /// into fresh buffers took a page fault per 4 KiB of its packs.
    spare: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// A pack being written, and its index entry once it is.
struct Upload {
    thread: std::thread::JoinHandle<Result<()>>,
    pack: IndexPack,
}

pub(crate) struct PackerState {
    /// The packs being filled: data frames, and block lists.
    current: [PackBuilder; 2],
    pub(crate) written: Vec<IndexPack>,
    pub(crate) stored: u64,
    /// Data frames that finished compressing before an earlier one, by
    /// number, and the number of the next to go into a pack.
    waiting: BTreeMap<u64, SealedFrame>,
    next: u64,
}

impl PackerState {
    fn empty() -> PackerState {
        PackerState {
            current: [PackBuilder::new(0), PackBuilder::new(0)],
            written: Vec::new(),
            stored: 0,
            waiting: BTreeMap::new(),
            next: 0,
        }
    }
}

impl<'r> Packer<'r> {
    pub(crate) fn new(repo: &'r Repository, uploads: usize) -> Packer<'r> {
        Packer {
            repo,
            state: Mutex::new(PackerState::empty()),
            in_flight: Mutex::new(VecDeque::new()),
            uploads: uploads.max(1),
            spare: Arc::default(),
        }
    }

    pub(crate) fn add(&self, frame: SealedFrame) -> Result<()> {
        let full = {
            let mut st = self.state.lock().unwrap();
            self.push(&mut st, frame)
        };
        match full {
            Some(p) => self.write(p),
            None => Ok(()),
        }
    }

    /// Adds frame number `seq` of a file once every earlier one is in.
    /// Compressors finish out of order; taken in order, a block-list
    /// window's frames lie side by side in a pack, and a restore reads them
    /// in one request (with 16 compressors a 1 GiB file took 228 requests).
    pub(crate) fn add_in_order(&self, seq: u64, frame: SealedFrame) -> Result<()> {
        let mut full = Vec::new();
        {
            let mut st = self.state.lock().unwrap();
            st.waiting.insert(seq, frame);
            loop {
                let next = st.next;
                let Some(frame) = st.waiting.remove(&next) else {
                    break;
                };
                st.next += 1;
                full.extend(self.push(&mut st, frame));
            }
        }
        full.into_iter().try_for_each(|p| self.write(p))
    }

    /// The next file's frames are numbered from 0.
    fn start_sequence(&self) {
        let mut st = self.state.lock().unwrap();
        st.waiting.clear();
        st.next = 0;
    }

    /// Fails if a frame is still waiting for an earlier one that never came.
    fn end_sequence(&self) -> Result<()> {
        let st = self.state.lock().unwrap();
        match st.waiting.keys().next() {
            None => Ok(()),
            Some(seq) => Err(Error::Format(format!(
                "frame {seq} of a file was left out of its pack: frame {} never came",
                st.next
            ))),
        }
    }

    /// Adds `frame` to the pack being filled for its kind; the pack if full.
    fn push(&self, st: &mut PackerState, frame: SealedFrame) -> Option<PackBuilder> {
        let pack_size = self.repo.config.chunker.pack_size as usize;
        let slot = usize::from(frame.kind == FrameKind::List);
        let current = &mut st.current[slot];
        if current.is_empty() {
            let spare = self.spare.lock().unwrap().pop();
            let buf = spare.unwrap_or_else(|| Vec::with_capacity(pack_size + pack_size / 8));
            *current = PackBuilder::with_buffer(buf);
        }
        current.add(frame);
        (current.len() >= pack_size).then(|| std::mem::replace(current, PackBuilder::new(0)))
    }

    /// Starts writing a pack; waits for the oldest write while too many run.
    fn write(&self, builder: PackBuilder) -> Result<()> {
        let pack = builder.finish(&self.repo.env)?;
        let entry = IndexPack {
            id: pack.id,
            size: pack.bytes.len() as u64,
            hash: pack.hash,
            frames: pack.frames,
        };
        let backend = self.repo.backend.clone();
        let (path, bytes) = (pack_path(&pack.id), pack.bytes);
        // One pack fills while the last is written: two spares keep it going.
        let (spare, most) = (self.spare.clone(), 2);
        let thread = std::thread::spawn(move || {
            if let Some(buf) = backend.write_reclaim(&path, bytes)? {
                let mut spare = spare.lock().unwrap();
                if spare.len() < most {
                    spare.push(buf);
                }
            }
            Ok(())
        });
        let mut in_flight = self.in_flight.lock().unwrap();
        in_flight.push_back(Upload {
            thread,
            pack: entry,
        });
        while in_flight.len() > self.uploads {
            let oldest = in_flight.pop_front().expect("not empty");
            self.finish(oldest)?;
        }
        Ok(())
    }

    /// Waits for one pack's write; only a written pack goes into the index.
    fn finish(&self, upload: Upload) -> Result<()> {
        upload
            .thread
            .join()
            .unwrap_or_else(|_| Err(Error::Format("a pack upload panicked".into())))?;
        let mut st = self.state.lock().unwrap();
        st.stored += upload.pack.size;
        st.written.push(upload.pack);
        Ok(())
    }

    /// Waits for every pack being written; the first error, if any.
    fn wait_all(&self) -> Result<()> {
        let mut first = Ok(());
        loop {
            let Some(upload) = self.in_flight.lock().unwrap().pop_front() else {
                return first;
            };
            let r = self.finish(upload);
            if first.is_ok() {
                first = r;
            }
        }
    }

    /// Writes the last, partly filled packs and waits for every write.
    pub(crate) fn flush(&self) -> Result<()> {
        let last = std::mem::replace(
            &mut self.state.lock().unwrap().current,
            [PackBuilder::new(0), PackBuilder::new(0)],
        );
        let started = last
            .into_iter()
            .filter(|p| !p.is_empty())
            .try_for_each(|p| self.write(p));
        let waited = self.wait_all();
        started.and(waited)
    }

    pub(crate) fn into_written(self) -> Result<PackerState> {
        self.wait_all()?;
        let mut st = self.state.lock().unwrap();
        Ok(std::mem::replace(&mut *st, PackerState::empty()))
    }
}

/// A backup that fails still waits for its packs' writes, so none is left
/// running once its lock is released.
impl Drop for Packer<'_> {
    fn drop(&mut self) {
        let _ = self.wait_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Location;
    use crate::config::InitOptions;
    use crate::NoProgress;

    fn new_manifest() -> NewManifest {
        NewManifest {
            engine: "test".into(),
            source: "test://data".into(),
            kind: crate::BackupKind::Physical,
            name: None,
            tags: vec![],
            start_time: jiff::Timestamp::now(),
            meta: serde_json::Value::Null,
        }
    }

    fn back_up(session: &mut BackupSession<'_>, data: &[u8]) {
        let mut reader = std::io::Cursor::new(data.to_vec());
        session
            .add_file(
                "f",
                &mut reader,
                data.len() as u64,
                4096,
                serde_json::Value::Null,
                None,
                &NoProgress,
            )
            .unwrap();
    }

    /// A backup whose lock was removed as stale (while a prune could run)
    /// must not commit a snapshot that may reference deleted packs.
    #[test]
    fn a_backup_that_lost_its_lock_does_not_commit() {
        let dir = tempfile::tempdir().unwrap();
        let loc = Location::parse(&dir.path().join("repo").to_string_lossy()).unwrap();
        let repo = Repository::init(&loc, &InitOptions::default()).unwrap();
        let data: Vec<u8> = (0..64 * 4096u32)
            .map(|i| (i / 4096 * 7 + i % 251) as u8)
            .collect();

        let mut ok = BackupSession::start(&repo, 2).unwrap();
        back_up(&mut ok, &data);
        let snap = ok.commit(new_manifest()).unwrap();
        assert_eq!(snap.size, data.len() as u64);

        let mut lost = BackupSession::start(&repo, 2).unwrap();
        back_up(&mut lost, &data[..4096 * 3]);
        for entry in std::fs::read_dir(dir.path().join("repo/locks")).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        let err = lost.commit(new_manifest()).unwrap_err();
        assert!(err.to_string().contains("removed as stale"), "{err}");
        assert_eq!(repo.manifests().unwrap().len(), 1);
    }

    /// Incompressible bytes, so every MiB is about a MiB of pack.
    fn noise(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn small_packs(dir: &std::path::Path) -> Repository {
        let loc = Location::parse(&dir.join("repo").to_string_lossy()).unwrap();
        let opts = InitOptions {
            pack_size: 1 << 20,
            ..InitOptions::default()
        };
        Repository::init(&loc, &opts).unwrap()
    }

    /// Block lists go into packs of their own, side by side, so a restore
    /// reads them together.
    #[test]
    fn block_lists_are_packed_apart_from_data() {
        let data = noise(6 << 20);
        let dir = tempfile::tempdir().unwrap();
        let repo = small_packs(dir.path());
        let mut session = BackupSession::start(&repo, 3).unwrap();
        let mut reader = std::io::Cursor::new(data.clone());
        let len = data.len() as u64;
        // 512-byte pages: a list holds 2 MiB, so three lists.
        let null = serde_json::Value::Null;
        session
            .add_file("f", &mut reader, len, 512, null, None, &NoProgress)
            .unwrap();
        let snap = session.commit(new_manifest()).unwrap();
        assert_eq!(snap.files[0].lists.len(), 3);
        let index = repo.load_index().unwrap();
        let is_list = |f: &crate::pack::FrameEntry| f.kind == FrameKind::List;
        let list_packs: Vec<_> = index
            .packs
            .iter()
            .filter(|p| p.frames.iter().any(is_list))
            .collect();
        assert_eq!(list_packs.len(), 1);
        assert!(list_packs[0].frames.iter().all(is_list));
        assert_eq!(list_packs[0].frames.len(), 3);
        assert!(index.packs.len() >= 6, "{} packs", index.packs.len());
    }

    /// Frames go into packs in file order, however the compressors finish:
    /// a restore then reads a window's frames in one request.
    #[test]
    fn frames_are_packed_in_file_order() {
        let data = noise(4 << 20);
        let dir = tempfile::tempdir().unwrap();
        let loc = Location::parse(&dir.path().join("repo").to_string_lossy()).unwrap();
        let opts = InitOptions {
            pack_size: 1 << 20,
            frame_size: 16 << 10,
            ..InitOptions::default()
        };
        let repo = Repository::init(&loc, &opts).unwrap();
        let mut session = BackupSession::start(&repo, 4).unwrap();
        back_up(&mut session, &data);
        let snap = session.commit(new_manifest()).unwrap();
        let index = repo.load_index().unwrap();
        let ids = repo.read_list(&index, &snap.files[0].lists[0]).unwrap();
        let places: Vec<(u32, u32)> = ids
            .iter()
            .map(|id| index.get(id).unwrap())
            .map(|loc| (loc.pack, loc.frame))
            .collect();
        assert_eq!(places.len(), 1024);
        // Packs are numbered in the order they were written.
        assert!(places.windows(2).all(|w| w[0] <= w[1]), "{places:?}");
        let frames: std::collections::HashSet<_> = places.iter().collect();
        assert_eq!(frames.len(), 256);
    }

    /// A frame whose predecessor never came fails the file rather than being
    /// left out of every pack unnoticed; in order, nothing is left waiting.
    #[test]
    fn a_gap_in_the_frame_sequence_fails() {
        let dir = tempfile::tempdir().unwrap();
        let repo = small_packs(dir.path());
        let frame = |byte: u8| {
            let raw = vec![byte; 4096];
            let id = repo.hasher.blob_id(&raw);
            let blobs = vec![BlobEntry { id, len: 4096 }];
            seal_frame(&repo.env, 1, BlobKind::Data, &raw, blobs).unwrap()
        };
        let packer = Packer::new(&repo, 1);
        packer.start_sequence();
        packer.add_in_order(1, frame(1)).unwrap();
        packer.add_in_order(0, frame(0)).unwrap();
        packer.end_sequence().unwrap();
        packer.start_sequence();
        packer.add_in_order(1, frame(2)).unwrap();
        let e = packer.end_sequence().unwrap_err().to_string();
        assert!(e.contains("frame 0 never came"), "{e}");
    }

    /// Packs are written in the background, one or several at a time: every
    /// one is in the index, on disk at its recorded size, and restores.
    #[test]
    fn packs_written_in_the_background_all_reach_the_index() {
        let data = noise(6 << 20);
        for parallelism in [1, 3] {
            let dir = tempfile::tempdir().unwrap();
            let repo = small_packs(dir.path());
            let mut session = BackupSession::start(&repo, parallelism).unwrap();
            back_up(&mut session, &data);
            let snap = session.commit(new_manifest()).unwrap();
            let index = repo.load_index().unwrap();
            assert!(index.packs.len() >= 6, "{} packs", index.packs.len());
            for pack in &index.packs {
                let on_disk = dir.path().join("repo").join(pack_path(&pack.id));
                assert_eq!(std::fs::metadata(&on_disk).unwrap().len(), pack.size);
            }
            let out_path = dir.path().join("restored");
            let out = std::fs::File::create(&out_path).unwrap();
            crate::restore_file(&repo, &index, &snap.files[0], &out, 2, &NoProgress).unwrap();
            assert!(std::fs::read(&out_path).unwrap() == data);
        }
    }

    /// A pack that cannot be written fails the backup, whichever write it
    /// was, and no snapshot is committed.
    #[test]
    fn a_pack_write_that_fails_fails_the_backup() {
        let dir = tempfile::tempdir().unwrap();
        let repo = small_packs(dir.path());
        // Packs go under data/: a file in its place makes every write fail.
        let data_dir = dir.path().join("repo/data");
        std::fs::remove_dir_all(&data_dir).ok();
        std::fs::write(&data_dir, b"not a directory").unwrap();
        let mut session = BackupSession::start(&repo, 1).unwrap();
        let mut reader = std::io::Cursor::new(noise(4 << 20));
        let added = session.add_file(
            "f",
            &mut reader,
            4 << 20,
            4096,
            serde_json::Value::Null,
            None,
            &NoProgress,
        );
        let err = match added {
            Err(e) => e,
            Ok(_) => session.commit(new_manifest()).unwrap_err(),
        };
        // One line: the file in full and the system's reason.
        let msg = err.to_string();
        assert!(msg.starts_with("cannot write "), "{msg}");
        assert!(msg.contains("repo/data/"), "{msg}");
        assert!(msg.contains("Not a directory (os error 20)"), "{msg}");
        assert!(!msg.contains("context"), "{msg}");
        assert!(repo.manifests().unwrap().is_empty());
    }
}
