//! Reading a stored file back as a stream of verified blocks, for engines
//! that load blocks into a server rather than write files (a logical
//! backup cut at row boundaries, `block_size` 0), or to read any file's
//! bytes in order.
//!
//! One block list and a few decompressed frames are held at a time
//! ([`Frames`], whose cache also serves delta frames' bases), so memory
//! stays bounded whatever the file's size. Blocks come in file order, and a
//! file's new blocks lie in its frames in that order, so each frame is read
//! once; blocks shared with older backups come from those backups' frames,
//! which the cache keeps while they are used.

use std::io;
use std::ops::Range;
use std::sync::Arc;

use crate::cancel::Op;
use crate::error::{Error, Result};
use crate::frames::{Frames, DEFAULT_CACHED_FRAMES};
use crate::id::BlobId;
use crate::index::Index;
use crate::manifest::FileEntry;
use crate::repository::Repository;

/// A frame: its pack's and its own number in the index.
type Key = (u32, u32);

/// A file's blocks, in order, each verified against its id before it is
/// handed out.
///
/// Three ways to read it:
/// - [`BlockStream::next_block`] lends each block without a copy;
/// - as an [`Iterator`] it yields each block as a `Vec<u8>`, and stops
///   after the first error;
/// - [`BlockStream::into_reader`] gives an [`io::Read`] of the file's
///   bytes; an error is an [`io::Error`] wrapping the [`Error`]
///   (`get_ref()` and downcast).
///
/// A damaged block is [`Error::Corrupt`] naming the blob and its pack; the
/// repository's cancellation token stops it as a restore.
///
/// ```no_run
/// # fn f(repo: &arca_repo::Repository, snap: &arca_repo::Manifest) -> arca_repo::Result<()> {
/// let index = repo.load_index()?;
/// let mut blocks = arca_repo::BlockStream::new(repo, &index, &snap.files[0]);
/// while let Some(block) = blocks.next_block()? {
///     println!("{} bytes", block.len());
/// }
/// # Ok(()) }
/// ```
pub struct BlockStream<'a> {
    repo: &'a Repository,
    index: &'a Index,
    entry: &'a FileEntry,
    frames: Frames<'a>,
    /// The next block list to read.
    next_list: usize,
    /// The ids of the block list being read, and the next one's place.
    ids: Vec<BlobId>,
    at: usize,
    /// Blocks and bytes handed out so far.
    blocks: u64,
    bytes: u64,
    /// The frame of the last block handed out (pack and frame number), and
    /// where the block lies in it.
    frame: Option<(Key, Arc<Vec<u8>>)>,
    block: Range<usize>,
    state: State,
}

#[derive(PartialEq)]
enum State {
    Reading,
    Done,
    Failed,
}

impl<'a> BlockStream<'a> {
    /// A stream of `entry`'s blocks; nothing is read until the first block
    /// is asked for.
    pub fn new(repo: &'a Repository, index: &'a Index, entry: &'a FileEntry) -> BlockStream<'a> {
        BlockStream {
            repo,
            index,
            entry,
            frames: Frames::new(repo, index, DEFAULT_CACHED_FRAMES),
            next_list: 0,
            ids: Vec::new(),
            at: 0,
            blocks: 0,
            bytes: 0,
            frame: None,
            block: 0..0,
            state: State::Reading,
        }
    }

    /// The next block, verified; `None` once the file is read whole. After
    /// an error the stream is over: every later call fails.
    pub fn next_block(&mut self) -> Result<Option<&[u8]>> {
        if !self.advance()? {
            return Ok(None);
        }
        let (_, raw) = self.frame.as_ref().expect("a block was read");
        Ok(Some(&raw[self.block.clone()]))
    }

    /// The file's bytes, read block by block from here on.
    pub fn into_reader(self) -> BlockReader<'a> {
        BlockReader {
            blocks: self,
            read: None,
        }
    }

    /// Moves to the next block; false at the end.
    fn advance(&mut self) -> Result<bool> {
        match self.state {
            State::Reading => {}
            State::Done => return Ok(false),
            State::Failed => {
                return Err(Error::Format(format!(
                    "reading {} stopped at an earlier error",
                    self.entry.path
                )))
            }
        }
        match self.step() {
            Ok(more) => {
                if !more {
                    self.state = State::Done;
                }
                Ok(more)
            }
            Err(e) => {
                self.state = State::Failed;
                self.frame = None;
                Err(e)
            }
        }
    }

    fn step(&mut self) -> Result<bool> {
        self.repo.cancel.check(Op::Restore)?;
        let entry = self.entry;
        while self.at == self.ids.len() {
            let Some(list) = entry.lists.get(self.next_list) else {
                return self.finish();
            };
            self.ids = self.repo.read_list(self.index, list)?;
            self.next_list += 1;
            self.at = 0;
        }
        let id = self.ids[self.at];
        self.at += 1;
        let number = self.blocks;
        if number >= entry.blocks {
            return Err(self.mismatch());
        }
        let loc = self.index.get(&id).ok_or_else(|| {
            Error::corrupt(format!(
                "block {number} of {} (blob {id}) cannot be read: {}",
                entry.path,
                self.index.why_absent(&id)
            ))
        })?;
        let key = (loc.pack, loc.frame);
        if self.frame.as_ref().map(|f| f.0) != Some(key) {
            // Let go of the last frame first, so the cache can reuse its buffer.
            self.frame = None;
            let raw = self.frames.get(loc.pack, loc.frame)?;
            self.frame = Some((key, raw));
        }
        let pack = &self.index.packs[loc.pack as usize].id;
        let raw = &self.frame.as_ref().expect("just read").1;
        let range = loc.offset as usize..(loc.offset + loc.len) as usize;
        let block = raw.get(range.clone()).ok_or_else(|| {
            Error::corrupt(format!(
                "blob {id} lies past the end of its frame in pack {pack}"
            ))
        })?;
        if self.repo.hasher.blob_id(block) != id {
            return Err(Error::corrupt(format!(
                "block {number} of {}: blob {id} in pack {pack} fails its hash",
                entry.path
            )));
        }
        // A fixed-size file's blocks are all of its size but the last.
        let bs = u64::from(entry.block_size);
        let len = block.len() as u64;
        if bs > 0 && (len > bs || (len < bs && number + 1 != entry.blocks)) {
            return Err(Error::corrupt(format!(
                "block {number} of {} is {len} bytes, not the file's block size {bs}",
                entry.path
            )));
        }
        self.blocks += 1;
        self.bytes += len;
        self.block = range;
        Ok(true)
    }

    /// At the end of the lists: they must have held the file whole.
    fn finish(&mut self) -> Result<bool> {
        self.frame = None;
        if self.blocks != self.entry.blocks || self.bytes != self.entry.size {
            return Err(self.mismatch());
        }
        Ok(false)
    }

    fn mismatch(&self) -> Error {
        let e = self.entry;
        Error::corrupt(format!(
            "the block lists of {} do not hold its {} blocks of {} bytes in all: its backup is damaged",
            e.path, e.blocks, e.size
        ))
    }
}

impl Iterator for BlockStream<'_> {
    type Item = Result<Vec<u8>>;

    fn next(&mut self) -> Option<Result<Vec<u8>>> {
        if self.state == State::Failed {
            return None;
        }
        self.next_block().map(|b| b.map(<[u8]>::to_vec)).transpose()
    }
}

/// A file's bytes, from [`BlockStream::into_reader`].
pub struct BlockReader<'a> {
    blocks: BlockStream<'a>,
    /// Where the rest of the current block starts in its frame.
    read: Option<usize>,
}

impl io::Read for BlockReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if let (Some(at), Some((_, raw))) = (self.read, &self.blocks.frame) {
                let left = &raw[at..self.blocks.block.end];
                if !left.is_empty() {
                    let n = left.len().min(out.len());
                    out[..n].copy_from_slice(&left[..n]);
                    self.read = Some(at + n);
                    return Ok(n);
                }
            }
            if out.is_empty() || !self.blocks.advance().map_err(io::Error::other)? {
                return Ok(0);
            }
            self.read = Some(self.blocks.block.start);
        }
    }
}
