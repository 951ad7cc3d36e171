//! Reading frames whose decompression needs other frames: a delta frame is
//! compressed against its base blobs, which live in other frames (perhaps
//! deltas themselves, at most `MAX_DELTA_DEPTH` deep).
//!
//! A [`Frames`] keeps the last few decompressed frames. A delta frame's bases
//! are the previous versions of pages near each other in one file, so they
//! sit in a handful of frames, and the frames a restore reads next are
//! usually the ones the bases came from. Buffers of evicted frames and of
//! prefixes are reused: a fresh megabyte per frame costs page faults.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::index::Index;
use crate::pack::{decompress_delta_frame_into, decompress_frame_into, FrameEntry, FrameKind};
use crate::repository::Repository;

/// Frames kept decompressed by default: a few MiB per reader.
pub const DEFAULT_CACHED_FRAMES: usize = 8;

type Key = (u32, u32);

/// Decompresses frames, fetching delta frames' bases, with a small cache.
pub struct Frames<'a> {
    repo: &'a Repository,
    index: &'a Index,
    cache: Mutex<VecDeque<(Key, Arc<Vec<u8>>)>>,
    capacity: usize,
    spare: Mutex<Vec<Vec<u8>>>,
    dec: Mutex<zstd::bulk::Decompressor<'static>>,
    verify_bases: bool,
}

/// Buffers kept for reuse.
const SPARE_BUFFERS: usize = 4;

impl<'a> Frames<'a> {
    pub fn new(repo: &'a Repository, index: &'a Index, capacity: usize) -> Frames<'a> {
        Frames {
            repo,
            index,
            cache: Mutex::new(VecDeque::new()),
            capacity,
            spare: Mutex::new(Vec::new()),
            dec: Mutex::new(zstd::bulk::Decompressor::new().expect("zstd decompressor")),
            verify_bases: false,
        }
    }

    /// Verifies every base against its id before using it. A reader need
    /// not: wrong bases give wrong blobs, which fail their own ids. A backup
    /// does, to store plainly rather than against damaged bases.
    pub fn verifying_bases(mut self) -> Frames<'a> {
        self.verify_bases = true;
        self
    }

    /// Decompresses `frame` from its sealed bytes; a delta frame's bases are
    /// read (and verified) first. The caller verifies the blobs it uses.
    pub fn open(&self, frame: &FrameEntry, sealed: &[u8]) -> Result<Vec<u8>> {
        self.open_with(frame, sealed, &HashMap::new())
    }

    /// Like [`Frames::open`], taking the bases found in `have` from there.
    pub fn open_with(
        &self,
        frame: &FrameEntry,
        sealed: &[u8],
        have: &HashMap<BlobId, Vec<u8>>,
    ) -> Result<Vec<u8>> {
        let mut raw = self.buffer(frame.raw_len());
        match &frame.kind {
            FrameKind::Delta { bases, depth } => {
                let prefix = self.prefix_with(bases, *depth, have)?;
                let r =
                    decompress_delta_frame_into(&self.repo.env, frame, sealed, &prefix, &mut raw);
                self.recycle(prefix);
                r?;
            }
            _ => {
                let mut dec = self.dec.lock().unwrap();
                decompress_frame_into(&self.repo.env, frame, sealed, &mut dec, &mut raw)?;
            }
        }
        Ok(raw)
    }

    /// An empty buffer for `len` bytes, reused if a spare one is large
    /// enough. Never grown in place: a realloc copies the old capacity
    /// into fresh pages. New ones are rounded up to a power of two, so a
    /// frame a few blocks longer than the last still fits (capacity never
    /// written to costs no memory).
    fn buffer(&self, len: usize) -> Vec<u8> {
        let mut spare = self.spare.lock().unwrap();
        match spare.iter().position(|b| b.capacity() >= len) {
            Some(i) => spare.swap_remove(i),
            None => Vec::with_capacity(len.next_power_of_two()),
        }
    }

    /// Takes back a buffer (a prefix, or a frame no longer needed).
    pub fn recycle(&self, mut buf: Vec<u8>) {
        buf.clear();
        let mut spare = self.spare.lock().unwrap();
        spare.push(buf);
        if spare.len() > SPARE_BUFFERS {
            // Keep the largest: they serve every request.
            let smallest = (0..spare.len())
                .min_by_key(|&i| spare[i].capacity())
                .expect("not empty");
            spare.swap_remove(smallest);
        }
    }

    /// The decompressed contents of frame `frame` of pack number `pack`.
    pub fn get(&self, pack: u32, frame: u32) -> Result<Arc<Vec<u8>>> {
        let key = (pack, frame);
        {
            let mut cache = self.cache.lock().unwrap();
            if let Some(i) = cache.iter().position(|(k, _)| *k == key) {
                let hit = cache.remove(i).expect("position is in range");
                let raw = hit.1.clone();
                cache.push_back(hit);
                return Ok(raw);
            }
        }
        let raw = Arc::new(self.read(pack, frame)?);
        self.keep(key, raw.clone());
        Ok(raw)
    }

    /// Reads and decompresses a frame without keeping it.
    pub fn read(&self, pack: u32, frame: u32) -> Result<Vec<u8>> {
        let p = &self.index.packs[pack as usize];
        let f = &p.frames[frame as usize];
        let sealed = self.repo.read_frame(&p.id, f.offset, f.len)?;
        self.open(f, &sealed)
            .map_err(|e| Error::corrupt(format!("pack {}: {e}", p.id.short())))
    }

    /// Offers an already decompressed frame to the cache.
    pub fn keep(&self, key: (u32, u32), raw: Arc<Vec<u8>>) {
        if self.capacity == 0 {
            return;
        }
        let mut cache = self.cache.lock().unwrap();
        if cache.iter().any(|(k, _)| *k == key) {
            return;
        }
        let evicted = if cache.len() == self.capacity {
            cache.pop_front()
        } else {
            None
        };
        cache.push_back((key, raw));
        drop(cache);
        if let Some(Ok(buf)) = evicted.map(|(_, raw)| Arc::try_unwrap(raw)) {
            self.recycle(buf);
        }
    }

    /// The bases' bytes back to back (verified if asked). Every base must
    /// sit in a frame shallower than `depth`, so a damaged index cannot send
    /// a reader round in circles.
    pub fn prefix(&self, bases: &[BlobId], depth: u8) -> Result<Vec<u8>> {
        self.prefix_with(bases, depth, &HashMap::new())
    }

    fn prefix_with(
        &self,
        bases: &[BlobId],
        depth: u8,
        have: &HashMap<BlobId, Vec<u8>>,
    ) -> Result<Vec<u8>> {
        // Sized once: grown base by base, a megabyte prefix is reallocated
        // (and its fresh pages faulted in) a dozen times.
        let mut locs = Vec::with_capacity(bases.len());
        let mut len = 0;
        for id in bases {
            let loc = match have.get(id) {
                Some(blob) => {
                    len += blob.len();
                    None
                }
                None => {
                    let loc = self.index.get(id).ok_or_else(|| {
                        Error::corrupt(format!(
                            "base blob {id} of a delta frame is not in the index"
                        ))
                    })?;
                    len += loc.len as usize;
                    Some(loc)
                }
            };
            locs.push(loc);
        }
        let mut prefix = self.buffer(len);
        for (id, loc) in bases.iter().zip(locs) {
            let Some(loc) = loc else {
                prefix.extend_from_slice(&have[id]);
                continue;
            };
            if self.index.frame(&loc).1.kind.depth() >= depth {
                return Err(Error::corrupt(format!(
                    "base blob {id} of a delta frame of depth {depth} is in a frame as deep"
                )));
            }
            let raw = self.get(loc.pack, loc.frame)?;
            let blob = &raw[loc.offset as usize..(loc.offset + loc.len) as usize];
            if self.verify_bases && self.repo.hasher.blob_id(blob) != *id {
                return Err(Error::corrupt(format!(
                    "base blob {id} of a delta frame fails its hash"
                )));
            }
            prefix.extend_from_slice(blob);
        }
        Ok(prefix)
    }
}
