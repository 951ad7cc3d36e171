//! Restore: block lists → frames grouped and read once → verify every block
//! against its id → write each block at its offset, in parallel and out of
//! order.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::index::{BlobLoc, Index};
use crate::pack::decompress_frame;
use crate::repository::Repository;
use crate::snapshot::{FileEntry, LIST_IDS};
use crate::Progress;

/// Adjacent frames are fetched with one read up to this size.
const MAX_READ: u64 = 8 << 20;

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
    out.set_len(file.size)
        .map_err(|e| Error::io(&file.path, e))?;
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..parallelism.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= file.lists.len() || failure.lock().unwrap().is_some() {
                    return;
                }
                if let Err(e) = restore_window(repo, index, file, i, out, progress) {
                    let mut f = failure.lock().unwrap();
                    if f.is_none() {
                        *f = Some(e);
                    }
                    return;
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap() {
        return Err(e);
    }
    Ok(())
}

/// Restores the blocks of list blob `i`.
fn restore_window(
    repo: &Repository,
    index: &Index,
    file: &FileEntry,
    i: usize,
    out: &File,
    progress: &dyn Progress,
) -> Result<()> {
    let ids = repo.read_list(index, &file.lists[i])?;
    let first_block = (i * LIST_IDS) as u64;
    // Group the blocks by the frame that holds them.
    let mut by_frame: HashMap<(u32, u32), Vec<(u64, BlobId, BlobLoc)>> = HashMap::new();
    for (j, id) in ids.iter().enumerate() {
        let loc = index.get(id).ok_or_else(|| {
            Error::corrupt(format!(
                "block {} of {} (blob {id}) is not in the repository",
                first_block + j as u64,
                file.path
            ))
        })?;
        by_frame
            .entry((loc.pack, loc.frame))
            .or_default()
            .push((first_block + j as u64, *id, loc));
    }
    let mut frames: Vec<(u32, u32)> = by_frame.keys().copied().collect();
    frames.sort_unstable();
    for (k, last) in read_spans(index, &frames) {
        let (pack_no, first_frame) = frames[k];
        let pack = &index.packs[pack_no as usize];
        let start = pack.frames[first_frame as usize].offset;
        let last_frame = &pack.frames[frames[last].1 as usize];
        let end = last_frame.offset + last_frame.len as u64;
        let bytes = repo
            .backend
            .read_range(&crate::pack::pack_path(&pack.id), start, end - start)
            .map_err(|e| damaged(file, &pack.id, e))?;
        for &(p, f) in &frames[k..=last] {
            let fr = &pack.frames[f as usize];
            let at = (fr.offset - start) as usize;
            let sealed = bytes[at..at + fr.len as usize].to_vec();
            let raw = decompress_frame(&repo.env, fr, sealed).map_err(|e| damaged(file, &pack.id, e))?;
            for (block, id, loc) in &by_frame[&(p, f)] {
                let data = &raw[loc.offset as usize..(loc.offset + loc.len) as usize];
                if repo.hasher.blob_id(data) != *id {
                    return Err(damaged(
                        file,
                        &pack.id,
                        Error::corrupt(format!("block {block} (blob {id}) fails its hash")),
                    ));
                }
                out.write_at(data, block * file.block_size as u64)
                    .map_err(|e| Error::io(&file.path, e))?;
                progress.inc(data.len() as u64);
            }
        }
    }
    Ok(())
}

/// Splits sorted (pack, frame) pairs into spans `(first, last)` that one
/// range read can fetch: frames adjacent in the same pack, up to MAX_READ.
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
            if fr.offset != end || end + fr.len as u64 - start > MAX_READ {
                break;
            }
            end += fr.len as u64;
            last += 1;
        }
        spans.push((k, last));
        k = last + 1;
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;
    use crate::index::{IndexFile, IndexPack};
    use crate::pack::{BlobKind, FrameEntry};

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
                    kind: BlobKind::Data,
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
        // A gap (frame 1 not needed) starts a new read.
        assert_eq!(read_spans(&index, &[(1, 0), (1, 2)]), vec![(0, 0), (1, 1)]);
    }

    #[test]
    fn spans_stop_at_the_read_limit() {
        let big = (MAX_READ / 2 + 1) as u32;
        let mut index = Index::default();
        index.add_file(IndexFile {
            packs: vec![pack(1, &[(0, big), (big as u64, big), (2 * big as u64, 10)])],
        });
        assert_eq!(read_spans(&index, &[(0, 0), (0, 1), (0, 2)]), vec![(0, 0), (1, 2)]);
    }
}

fn damaged(file: &FileEntry, pack: &crate::id::Id, e: Error) -> Error {
    Error::corrupt(format!(
        "cannot restore {}: pack {} is damaged or missing ({e}). Run `arca check --read-data` to see every damaged backup",
        file.path,
        pack.short()
    ))
}
