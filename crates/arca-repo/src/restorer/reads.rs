//! The reads under a restore: block lists a batch at a time, frames
//! gathered into spans, and the permits that bound reads in flight.

use std::collections::HashMap;

use crossbeam_channel::{bounded, Receiver, Sender};

use super::{damaged, Key};
use crate::error::{Error, Result};
use crate::frames::Frames;
use crate::id::BlobId;
use crate::index::{BlobLoc, Index};
use crate::manifest::FileEntry;
use crate::repository::Repository;

/// Frames near each other are fetched with one read up to this size.
pub(super) const MAX_READ: u64 = 16 << 20;
/// Frames this close are read with one request, gap and all: on object
/// storage a request costs more than reading a megabyte more.
pub(super) const MAX_GAP: u64 = 1 << 20;

/// The jobs' block lists, read a batch at a time: lists that sit side by
/// side in a pack (backups pack them apart from data) come in one request
/// rather than one each.
pub(super) struct Lists<'a> {
    repo: &'a Repository,
    index: &'a Index,
    files: &'a [&'a FileEntry],
    jobs: &'a [(usize, usize)],
    /// For each job with a list, its batch.
    batch_of: Vec<Option<usize>>,
    /// The first and last job of each batch.
    batches: Vec<(usize, usize)>,
    /// The lists of the batch read last, by job, each taken by its job.
    read: HashMap<usize, Vec<BlobId>>,
}

/// A list to read: its job, file, id and location.
type WantedList<'f> = (usize, &'f FileEntry, BlobId, BlobLoc);

/// The most bytes of lists one batch reads.
const LIST_BATCH: u64 = 2 << 20;

impl<'a> Lists<'a> {
    pub fn new(
        repo: &'a Repository,
        index: &'a Index,
        files: &'a [&'a FileEntry],
        jobs: &'a [(usize, usize)],
    ) -> Lists<'a> {
        let (batch_of, batches) = list_batches(index, files, jobs);
        Lists {
            repo,
            index,
            files,
            jobs,
            batch_of,
            batches,
            read: HashMap::new(),
        }
    }

    /// The block ids of job `job`'s window; None for an empty file. Jobs
    /// are taken in order.
    pub fn take(
        &mut self,
        frames: &Frames<'_>,
        reads: &Permits,
        job: usize,
    ) -> Result<Option<Vec<BlobId>>> {
        let Some(b) = self.batch_of[job] else {
            return Ok(None);
        };
        if !self.read.contains_key(&job) {
            let (first, last) = self.batches[b];
            self.read = self.read_batch(frames, reads, first..=last)?;
        }
        Ok(self.read.remove(&job))
    }

    /// Reads the lists of jobs `range`, verifying each against its id.
    fn read_batch(
        &self,
        frames: &Frames<'_>,
        reads: &Permits,
        range: std::ops::RangeInclusive<usize>,
    ) -> Result<HashMap<usize, Vec<BlobId>>> {
        let (repo, index) = (self.repo, self.index);
        let mut wanted: Vec<WantedList> = Vec::new();
        for j in range {
            let (n, w) = self.jobs[j];
            let file = self.files[n];
            let Some(id) = file.lists.get(w) else {
                continue;
            };
            let loc = index.get(id).ok_or_else(|| {
                Error::corrupt(format!(
                    "block list {w} of {} (blob {id}) cannot be read: {}",
                    file.path,
                    index.why_absent(id)
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
        let mut keys: Vec<(u32, u32)> = by_frame.keys().copied().collect();
        keys.sort_unstable();
        // The reads, each with its frames and their offsets in it.
        let mut spans: Vec<(Span, InRead)> = Vec::new();
        let mut gather = Gather::new(index, MAX_READ);
        let mut frames_of_open = Vec::new();
        for key in keys {
            match gather.add(0, key) {
                Added::Joined(at) => frames_of_open.push((key, at)),
                Added::Started(closed) => {
                    if let Some(span) = closed {
                        spans.push((span, std::mem::take(&mut frames_of_open)));
                    }
                    frames_of_open.push((key, 0));
                }
            }
        }
        spans.extend(gather.finish().map(|span| (span, frames_of_open)));
        let mut out = HashMap::new();
        for (span, in_span) in spans {
            let pack = &index.packs[span.pack as usize];
            let first_file = by_frame[&in_span[0].0][0].1;
            let permit = reads.take();
            let bytes = repo
                .backend
                .read_range(
                    &crate::pack::pack_path(&pack.id),
                    span.start,
                    span.end - span.start,
                )
                .map_err(|e| damaged(first_file, &pack.id, e))?;
            drop(permit);
            for (key, at) in in_span {
                let fr = &pack.frames[key.1 as usize];
                let lists = &by_frame[&key];
                let raw = frames
                    .open(fr, &bytes[at..at + fr.len as usize])
                    .map_err(|e| damaged(lists[0].1, &pack.id, e))?;
                for &(j, file, id, loc) in lists {
                    let blob = raw
                        .get(loc.offset as usize..(loc.offset + loc.len) as usize)
                        .filter(|b| repo.hasher.blob_id(b) == id)
                        .ok_or_else(|| {
                            let e = Error::corrupt(format!("block list {id} fails its hash"));
                            damaged(file, &pack.id, e)
                        })?;
                    out.insert(j, crate::manifest::decode_list(blob)?);
                }
                frames.recycle(raw);
            }
        }
        Ok(out)
    }
}

/// Groups the jobs' lists into batches: for each job its batch (None for
/// an empty file), and each batch's first and last job.
fn list_batches(
    index: &Index,
    files: &[&FileEntry],
    jobs: &[(usize, usize)],
) -> (Vec<Option<usize>>, Vec<(usize, usize)>) {
    let mut batch_of = Vec::with_capacity(jobs.len());
    let mut batches: Vec<(usize, usize)> = Vec::new();
    let mut gather = Gather::new(index, LIST_BATCH);
    for (j, &(n, w)) in jobs.iter().enumerate() {
        let Some(id) = files[n].lists.get(w) else {
            batch_of.push(None);
            continue;
        };
        // A list missing from the index is a batch of its own; reading it
        // says what is wrong.
        let added = index
            .get(id)
            .map(|loc| gather.add(n, (loc.pack, loc.frame)));
        match (added, batches.last_mut()) {
            (Some(Added::Joined(_)), Some(batch)) => batch.1 = j,
            (added, _) => {
                if added.is_none() {
                    gather.finish();
                }
                batches.push((j, j));
            }
        }
        batch_of.push(Some(batches.len() - 1));
    }
    (batch_of, batches)
}

/// Reads of the repository allowed at once: a permit is taken for each
/// and given back when it is dropped.
pub(super) struct Permits {
    give: Sender<()>,
    take: Receiver<()>,
}

impl Permits {
    pub fn new(n: usize) -> Permits {
        let (give, take) = bounded(n);
        for _ in 0..n {
            give.send(()).expect("room for every permit");
        }
        Permits { give, take }
    }

    pub fn take(&self) -> Permit<'_> {
        self.take.recv().expect("the sender lives in self");
        Permit(self)
    }
}

pub(super) struct Permit<'a>(&'a Permits);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let _ = self.0.give.send(());
    }
}

/// Bytes `start..end` of pack number `pack` to read, for file number
/// `file` first (to name in errors).
pub(super) struct Span {
    pub file: usize,
    pub pack: u32,
    pub start: u64,
    pub end: u64,
}

/// Frames in one read, and their offsets in it.
pub(super) type InRead = Vec<(Key, usize)>;

/// Where [`Gather::add`] put a frame.
pub(super) enum Added {
    /// Into the open read, at this offset in it.
    Joined(usize),
    /// At the start of a new read, closing this one.
    Started(Option<Span>),
}

/// The most a read gathered within `limit` may take: see [`Gather`].
pub(super) const fn stretched(limit: u64) -> u64 {
    limit + limit / 4
}

/// Gathers frames, in the order they come, into reads: a frame joins the
/// open read if it is in the same pack, after it and at most MAX_GAP past
/// its end, and the read stays within `limit` bytes. Frames of neighbouring
/// windows sit side by side, and a request costs the store more than
/// reading a megabyte more.
///
/// A read may run on to the end of its pack's frames when that is at most a
/// quarter over the limit: packs are a little over their nominal size, and
/// one of twice the limit would otherwise take a third, small read.
pub(super) struct Gather<'i> {
    index: &'i Index,
    open: Option<Span>,
    limit: u64,
}

impl<'i> Gather<'i> {
    pub fn new(index: &'i Index, limit: u64) -> Gather<'i> {
        Gather {
            index,
            open: None,
            limit,
        }
    }

    pub fn add(&mut self, file: usize, (p, f): Key) -> Added {
        let pack = &self.index.packs[p as usize];
        let fr = &pack.frames[f as usize];
        let (from, to) = (fr.offset, fr.offset + fr.len as u64);
        if let Some(o) = self.open.as_mut() {
            // Packs are written frame after frame: the last ends them.
            let rest = pack.frames.last().map_or(0, |l| l.offset + l.len as u64);
            let stretch = stretched(self.limit);
            let limit = if rest.saturating_sub(o.start) <= stretch {
                stretch
            } else {
                self.limit
            };
            let joins =
                o.pack == p && from >= o.end && from - o.end <= MAX_GAP && to - o.start <= limit;
            if joins {
                o.end = to;
                return Added::Joined((from - o.start) as usize);
            }
        }
        let span = Span {
            file,
            pack: p,
            start: from,
            end: to,
        };
        Added::Started(self.open.replace(span))
    }

    /// Closes the open read.
    pub fn finish(&mut self) -> Option<Span> {
        self.open.take()
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

    /// The frames `keys` gathered into reads of at most MAX_READ: the
    /// frames of each read, and their offsets in it.
    fn gathered(index: &Index, keys: &[(u32, u32)]) -> Vec<Vec<((u32, u32), usize)>> {
        let mut gather = Gather::new(index, MAX_READ);
        let mut reads: Vec<Vec<((u32, u32), usize)>> = Vec::new();
        for &k in keys {
            match gather.add(0, k) {
                Added::Joined(at) => reads.last_mut().unwrap().push((k, at)),
                Added::Started(closed) => {
                    assert_eq!(closed.is_some(), !reads.is_empty());
                    reads.push(vec![(k, 0)]);
                }
            }
        }
        let last = gather.finish().expect("a read open at the end");
        let (k, _) = *reads.last().unwrap().last().unwrap();
        let fr = &index.packs[k.0 as usize].frames[k.1 as usize];
        assert_eq!(last.end, fr.offset + fr.len as u64);
        reads
    }

    /// Regression: a span crossing into the next pack looked the next frame
    /// up in the previous pack's frame table (out of bounds when it was shorter).
    #[test]
    fn reads_never_cross_packs() {
        let mut index = Index::default();
        index.add_file(IndexFile {
            packs: vec![pack(1, &[(0, 10)]), pack(2, &[(0, 10), (10, 10), (20, 10)])],
        });
        assert_eq!(
            gathered(&index, &[(0, 0), (1, 2)]),
            vec![vec![((0, 0), 0)], vec![((1, 2), 0)]]
        );
        assert_eq!(
            gathered(&index, &[(1, 0), (1, 1), (1, 2)]),
            vec![vec![((1, 0), 0), ((1, 1), 10), ((1, 2), 20)]]
        );
        // A small gap (frame 1 not needed) is read through.
        assert_eq!(
            gathered(&index, &[(1, 0), (1, 2)]),
            vec![vec![((1, 0), 0), ((1, 2), 20)]]
        );
        // Going back starts a new read.
        assert_eq!(
            gathered(&index, &[(1, 1), (1, 0)]),
            vec![vec![((1, 1), 0)], vec![((1, 0), 0)]]
        );
    }

    #[test]
    fn reads_go_through_small_gaps_only() {
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
            gathered(&index, &[(0, 0), (0, 2), (0, 4)]),
            vec![
                vec![((0, 0), 0), ((0, 2), 10 + MAX_GAP as usize)],
                vec![((0, 4), 0)]
            ]
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
            .flat_map(|(n, f)| (0..super::super::windows(f)).map(move |w| (n, w)))
            .collect();
        let (batch_of, batches) = list_batches(&index, &files, &jobs);
        assert_eq!(
            batch_of,
            vec![Some(0), Some(0), Some(0), None, Some(1), Some(2), Some(3)]
        );
        assert_eq!(batches, vec![(0, 2), (4, 4), (5, 5), (6, 6)]);
    }

    #[test]
    fn reads_stop_at_the_size_limit() {
        let big = (MAX_READ / 2 + 1) as u32;
        let mut index = Index::default();
        // The pack goes on well past a quarter over the limit.
        let frames = [
            (0, big),
            (big as u64, big),
            (2 * big as u64, 10),
            (2 * big as u64 + 10, big),
        ];
        index.add_file(IndexFile {
            packs: vec![pack(1, &frames)],
        });
        assert_eq!(
            gathered(&index, &[(0, 0), (0, 1), (0, 2)]),
            vec![vec![((0, 0), 0)], vec![((0, 1), 0), ((0, 2), big as usize)]]
        );
    }

    /// A pack a little over twice the limit is read in two, not three.
    #[test]
    fn reads_run_on_to_the_end_of_a_pack_a_little_over_the_limit() {
        let half = (MAX_READ / 2) as u32;
        let mut index = Index::default();
        let mut frames: Vec<(u64, u32)> = (0..4).map(|i| (i * half as u64, half)).collect();
        frames.push((4 * half as u64, 1 << 20));
        index.add_file(IndexFile {
            packs: vec![pack(1, &frames)],
        });
        let h = half as usize;
        assert_eq!(
            gathered(&index, &[(0, 0), (0, 1), (0, 2), (0, 3), (0, 4)]),
            vec![
                vec![((0, 0), 0), ((0, 1), h)],
                vec![((0, 2), 0), ((0, 3), h), ((0, 4), 2 * h)]
            ]
        );
    }
}
