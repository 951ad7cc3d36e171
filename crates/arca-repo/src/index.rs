//! Index files map every blob to its pack and frame; the in-memory index
//! answers "is this blob stored?" and "where?" for a whole repository.
//!
//! An index file is `seal(zstd(postcard(IndexFile)))` behind a checksum
//! ([`crate::object`]) at `index/<id>`. In memory, each blob costs one
//! 32-byte entry in a sorted vector: a 1 GiB database of 4 KiB pages is
//! 8 MiB of index.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::config::Envelope;
use crate::error::{Error, Result};
use crate::id::{BlobId, Id};
use crate::pack::{BlobKind, FrameEntry};

pub const INDEX_DIR: &str = "index";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexPack {
    pub id: Id,
    pub size: u64,
    /// BLAKE3 of the whole pack file, checked by `check --read-data`.
    pub hash: [u8; 32],
    pub frames: Vec<FrameEntry>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IndexFile {
    pub packs: Vec<IndexPack>,
}

impl IndexFile {
    pub fn encode(&self, env: &Envelope) -> Result<Vec<u8>> {
        let encoded = postcard::to_stdvec(self)
            .map_err(|e| Error::Format(format!("index encoding failed: {e}")))?;
        let compressed = zstd::bulk::compress(&encoded, 3)
            .map_err(|e| Error::Format(format!("zstd compression failed: {e}")))?;
        Ok(crate::object::wrap(env.seal(compressed)))
    }

    /// Verifies the file's checksum, then decodes it.
    pub fn decode(env: &Envelope, bytes: Vec<u8>) -> Result<IndexFile> {
        let checked = crate::object::unwrap(&bytes, crate::object::LEGACY_INDEX)?;
        let compressed = env.open(checked)?;
        let encoded = zstd::stream::decode_all(&compressed[..])
            .map_err(|e| Error::corrupt(format!("does not decompress: {e}")))?;
        postcard::from_bytes(&encoded).map_err(|e| Error::corrupt(format!("does not parse: {e}")))
    }
}

/// Where one blob is: pack and frame (indexes into [`Index`]'s tables) and
/// its byte range inside the frame's decompressed contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLoc {
    pub pack: u32,
    pub frame: u32,
    pub offset: u32,
    pub len: u32,
}

/// Interpolation guesses before [`Index::get`] falls back to bisection.
const INTERPOLATION_STEPS: usize = 8;

/// The first eight bytes of an id as a number, in the ids' sort order.
fn prefix_of(id: &BlobId) -> u64 {
    u64::from_be_bytes(id.0[..8].try_into().expect("ids are 16 bytes"))
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    id: BlobId,
    loc: BlobLoc,
}

/// Everything the repository's index files say, loaded for lookups.
#[derive(Default)]
pub struct Index {
    pub packs: Vec<IndexPack>,
    pack_pos: HashMap<Id, u32>,
    entries: Vec<Entry>,
    /// The index files this was loaded from.
    pub files: Vec<Id>,
    /// Index files left out because they are damaged.
    pub damaged: Vec<Damaged>,
    /// Packs left out because they are missing or truncated, to name them
    /// when a blob they held is asked for.
    pub absent: Option<Box<Index>>,
}

/// A repository file that cannot be trusted, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Damaged {
    pub path: String,
    pub problem: String,
}

impl Index {
    /// Adds the packs of one index file. A pack listed twice (after an
    /// interrupted prune) is kept once.
    pub fn add_file(&mut self, file: IndexFile) {
        for pack in file.packs {
            if self.pack_pos.contains_key(&pack.id) {
                continue;
            }
            let p = self.packs.len() as u32;
            for (f, frame) in pack.frames.iter().enumerate() {
                let mut offset = 0u32;
                for b in &frame.blobs {
                    self.entries.push(Entry {
                        id: b.id,
                        loc: BlobLoc {
                            pack: p,
                            frame: f as u32,
                            offset,
                            len: b.len,
                        },
                    });
                    offset += b.len;
                }
            }
            self.pack_pos.insert(pack.id, p);
            self.packs.push(pack);
        }
    }

    /// Sorts for lookups; call once after the last `add_file`.
    pub fn seal(&mut self) {
        self.entries.sort_unstable_by_key(|e| e.id);
        self.entries.dedup_by_key(|e| e.id);
        self.entries.shrink_to_fit();
    }

    /// Finds a blob by interpolation: ids are keyed hashes, spread evenly
    /// over their range, so guessing a position from the id's value lands
    /// within a few hundred entries of it in a few probes, where a binary
    /// search of a large index takes twenty scattered reads. A bounded number
    /// of guesses, then a binary search, so no order of ids makes it slow.
    pub fn get(&self, id: &BlobId) -> Option<BlobLoc> {
        let key = prefix_of(id);
        let (mut lo, mut hi) = (0usize, self.entries.len());
        for _ in 0..INTERPOLATION_STEPS {
            if hi - lo <= 32 {
                break;
            }
            let (lk, hk) = (
                prefix_of(&self.entries[lo].id),
                prefix_of(&self.entries[hi - 1].id),
            );
            if key < lk || key > hk {
                return None;
            }
            let span = (hk - lk).max(1) as u128;
            let at = lo + ((key - lk) as u128 * (hi - 1 - lo) as u128 / span) as usize;
            match self.entries[at].id.cmp(id) {
                std::cmp::Ordering::Equal => return Some(self.entries[at].loc),
                std::cmp::Ordering::Less => lo = at + 1,
                std::cmp::Ordering::Greater => hi = at,
            }
        }
        self.entries[lo..hi]
            .binary_search_by_key(id, |e| e.id)
            .ok()
            .map(|i| self.entries[lo + i].loc)
    }

    /// The pack, missing or truncated, that held a blob not in this index.
    pub fn absent_pack(&self, id: &BlobId) -> Option<Id> {
        let absent = self.absent.as_ref()?;
        absent.get(id).map(|loc| absent.packs[loc.pack as usize].id)
    }

    /// Why a blob is not here, for an error message.
    pub fn why_absent(&self, id: &BlobId) -> String {
        match self.absent_pack(id) {
            Some(pack) => format!(
                "pack {} is missing or truncated: run `arca check`",
                pack.short()
            ),
            None => "it is not in the repository: run `arca check`".to_string(),
        }
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        self.get(id).is_some()
    }

    pub fn frame(&self, loc: &BlobLoc) -> (&IndexPack, &FrameEntry) {
        let pack = &self.packs[loc.pack as usize];
        (pack, &pack.frames[loc.frame as usize])
    }

    pub fn blob_count(&self) -> usize {
        self.entries.len()
    }

    pub fn blob_ids(&self) -> impl Iterator<Item = (BlobId, BlobLoc)> + '_ {
        self.entries.iter().map(|e| (e.id, e.loc))
    }

    pub fn kind(&self, loc: &BlobLoc) -> BlobKind {
        self.frame(loc).1.kind.blob_kind()
    }
}

/// Lookups of blobs in the order a file's blocks come: a backup stores
/// them in that order, so the blob after the last one found is tried
/// first, and the index is searched (a few scattered reads of a large
/// table) only where the run breaks.
pub struct Lookup<'a> {
    index: &'a Index,
    /// The blob after the last one found: its location and number in its frame.
    next: Option<(BlobLoc, usize)>,
}

impl<'a> Lookup<'a> {
    pub fn new(index: &'a Index) -> Lookup<'a> {
        Lookup { index, next: None }
    }

    pub fn get(&mut self, id: &BlobId) -> Option<BlobLoc> {
        let (loc, k) = match self.next {
            Some((loc, k)) if self.index.frame(&loc).1.blobs[k].id == *id => (loc, k),
            _ => {
                let loc = self.index.get(id)?;
                let frame = self.index.frame(&loc).1;
                let mut at = 0;
                let k = frame
                    .blobs
                    .iter()
                    .position(|b| {
                        at += b.len;
                        at - b.len == loc.offset && b.id == *id
                    })
                    .expect("an index entry is a blob of its frame");
                (loc, k)
            }
        };
        let blobs = &self.index.frame(&loc).1.blobs;
        self.next = blobs.get(k + 1).map(|b| {
            let after = BlobLoc {
                offset: loc.offset + loc.len,
                len: b.len,
                ..loc
            };
            (after, k + 1)
        });
        Some(loc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::BlobEntry;

    /// An index file of one pack holding one frame of `blobs`.
    fn one_frame(blobs: Vec<BlobEntry>) -> IndexFile {
        IndexFile {
            packs: vec![IndexPack {
                id: Id([1; 32]),
                size: 5000,
                hash: [0; 32],
                frames: vec![FrameEntry {
                    offset: 0,
                    len: 999,
                    kind: crate::pack::FrameKind::Data,
                    blobs,
                }],
            }],
        }
    }

    #[test]
    fn lookups_find_every_blob_and_its_offset() {
        let mut index = Index::default();
        let blobs: Vec<BlobEntry> = (0..10u8)
            .map(|i| BlobEntry {
                id: BlobId([i; 16]),
                len: 100 + i as u32,
            })
            .collect();
        let file = one_frame(blobs);
        let bytes = file.encode(&Envelope).unwrap();
        index.add_file(IndexFile::decode(&Envelope, bytes).unwrap());
        index.seal();
        let loc = index.get(&BlobId([3; 16])).unwrap();
        assert_eq!(loc.offset, 100 + 101 + 102);
        assert_eq!(loc.len, 103);
        assert!(index.get(&BlobId([42; 16])).is_none());
    }

    /// Lookups by interpolation find every id and no other, whether ids
    /// are spread evenly (hashes) or bunched (the worst case for guessing).
    #[test]
    fn interpolated_lookups_agree_with_a_plain_search() {
        let hasher = crate::id::Hasher::new([7; 32]);
        let even: Vec<BlobId> = (0..20_000u32)
            .map(|i| hasher.blob_id(&i.to_le_bytes()))
            .collect();
        let bunched: Vec<BlobId> = (0..20_000u32)
            .map(|i| {
                let mut id = [0u8; 16];
                id[0] = if i % 2 == 0 { 0 } else { 0xff };
                id[12..].copy_from_slice(&(i * i).to_be_bytes());
                BlobId(id)
            })
            .collect();
        for ids in [even, bunched] {
            let blobs: Vec<BlobEntry> =
                ids.iter().map(|id| BlobEntry { id: *id, len: 1 }).collect();
            let mut index = Index::default();
            index.add_file(one_frame(blobs));
            index.seal();
            for (i, id) in ids.iter().enumerate() {
                assert_eq!(index.get(id).map(|l| l.offset), Some(i as u32), "{id}");
                let mut other = *id;
                other.0[15] ^= 0x5a;
                if !ids.contains(&other) {
                    assert!(index.get(&other).is_none(), "{other}");
                }
            }
        }
    }

    /// Lookups in a run agree with single lookups however the ids come:
    /// in stored order, backwards, repeated, across frames and packs, and
    /// past an empty blob (which shares its offset with the next).
    #[test]
    fn lookups_in_a_run_agree_with_single_lookups() {
        let hasher = crate::id::Hasher::new([9; 32]);
        let id = |i: u32| hasher.blob_id(&i.to_le_bytes());
        let frame = |ids: std::ops::Range<u32>| FrameEntry {
            offset: 0,
            len: 1,
            kind: crate::pack::FrameKind::Data,
            blobs: ids
                .map(|i| BlobEntry {
                    id: id(i),
                    len: if i == 5 { 0 } else { 10 + i },
                })
                .collect(),
        };
        let pack = |n: u8, frames: Vec<FrameEntry>| IndexPack {
            id: Id([n; 32]),
            size: 1,
            hash: [0; 32],
            frames,
        };
        let mut index = Index::default();
        index.add_file(IndexFile {
            packs: vec![
                pack(1, vec![frame(0..8), frame(8..20)]),
                pack(2, vec![frame(20..30)]),
            ],
        });
        index.seal();
        let forwards: Vec<u32> = (0..30).collect();
        let backwards: Vec<u32> = (0..30).rev().collect();
        let repeats = vec![3, 4, 5, 6, 6, 5, 5, 6, 7, 8, 8, 19, 20, 21, 0, 1, 1];
        for order in [forwards, backwards, repeats] {
            let mut run = Lookup::new(&index);
            for i in order {
                assert_eq!(run.get(&id(i)), index.get(&id(i)), "blob {i}");
            }
        }
        let mut run = Lookup::new(&index);
        run.get(&id(29));
        assert_eq!(run.get(&id(99)), None);
    }
}
