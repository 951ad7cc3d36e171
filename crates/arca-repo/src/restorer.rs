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
    // Coalesce frames that sit next to each other in one pack into one read.
    let mut k = 0;
    while k < frames.len() {
        let (pack_no, first_frame) = frames[k];
        let pack = &index.packs[pack_no as usize];
        let start = pack.frames[first_frame as usize].offset;
        let mut end = start + pack.frames[first_frame as usize].len as u64;
        let mut last = k;
        while last + 1 < frames.len() {
            let (p2, f2) = frames[last + 1];
            let fr = &pack.frames[f2 as usize];
            if p2 != pack_no || fr.offset != end || end + fr.len as u64 - start > MAX_READ {
                break;
            }
            end += fr.len as u64;
            last += 1;
        }
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
        k = last + 1;
    }
    Ok(())
}

fn damaged(file: &FileEntry, pack: &crate::id::Id, e: Error) -> Error {
    Error::corrupt(format!(
        "cannot restore {}: pack {} is damaged or missing ({e}). Run `arca check --read-data` to see every damaged backup",
        file.path,
        pack.short()
    ))
}
