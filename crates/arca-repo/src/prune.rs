//! Prune: removes what no snapshot references, under an exclusive lock.
//!
//! Order: repacked packs → new index → old index files deleted → packs
//! deleted. A crash at any point leaves every snapshot's blobs indexed and
//! present; what it leaves behind is garbage the next prune removes.
//! Cancelled, it stops between packs read and between files deleted, never
//! between writing the new index and deleting the old ones.

use std::collections::HashSet;

use crate::archiver::Packer;
use crate::cancel::Op;
use crate::error::{Error, Result};
use crate::frames::{Frames, DEFAULT_CACHED_FRAMES};
use crate::id::{BlobId, Id};
use crate::index::{Index, IndexFile};
use crate::pack::{pack_path, seal_frame, BlobEntry, BlobKind};
use crate::repository::Repository;
use crate::Progress;

/// Packs whose unused share exceeds this are rewritten with only their used blobs.
const REPACK_UNUSED_RATIO: f64 = 0.25;

#[derive(Debug, Default, serde::Serialize)]
pub struct PruneReport {
    pub packs_deleted: usize,
    pub packs_repacked: usize,
    pub garbage_files: usize,
    pub bytes_freed: u64,
    pub bytes_written: u64,
    /// Why prune left something alone.
    pub warnings: Vec<String>,
}

pub fn prune(repo: &Repository) -> Result<PruneReport> {
    prune_with_progress(repo, &crate::NoProgress)
}

/// [`prune`], reporting the bytes of the packs read to be repacked and of
/// the packs deleted.
pub fn prune_with_progress(repo: &Repository, progress: &dyn Progress) -> Result<PruneReport> {
    let _lock = repo.lock_exclusive("prune")?;
    let index = repo.read_index(false)?;
    let mut report = PruneReport::default();
    // A damaged index file may name blobs the others do not: folding the
    // rest into a new index and deleting it would lose them for good.
    if let Some(d) = index.damaged.first() {
        return Err(Error::corrupt(format!(
            "{}; prune stops so nothing more is lost: run `arca repair index`, then prune",
            d.problem
        )));
    }
    let (snaps, damaged) = repo.manifests_and_damage()?;
    if !damaged.is_empty() {
        // What a damaged manifest needs cannot be known: keep every pack.
        for d in &damaged {
            report.warnings.push(format!(
                "{}: prune cannot tell which data it needs, so it deletes no pack; delete the backup (`arca delete ID`) or run `arca repair backups`, then prune",
                d.problem
            ));
        }
        report.garbage_files += remove_temp_files(repo)?;
        return Ok(report);
    }

    // Everything any snapshot references, block lists included. Every one
    // of them must be indexed: otherwise the index is incomplete (a lost
    // index file) and the packs it would name look like garbage.
    let mut used: HashSet<BlobId> = HashSet::new();
    for snap in &snaps {
        repo.cancel.check(Op::Prune)?;
        let stop = |what: String| {
            Error::corrupt(format!(
                "backup {} {what}; prune stops so nothing more is lost. Run `arca check`, then `arca repair index` (and `arca repair backups` if blobs stay missing)",
                snap.id.short()
            ))
        };
        for file in &snap.files {
            for list in &file.lists {
                used.insert(*list);
                let ids = repo
                    .read_list(&index, list)
                    .map_err(|e| stop(format!("file {}: {}", file.path, e.detail())))?;
                if let Some(missing) = ids.iter().find(|id| !index.contains(id)) {
                    return Err(stop(format!(
                        "file {}: block {missing} is not in the index",
                        file.path
                    )));
                }
                used.extend(ids);
            }
        }
    }
    // The bases of every delta frame that holds a used blob are needed to read it.
    for pack in &index.packs {
        for f in &pack.frames {
            if f.blobs.iter().any(|b| used.contains(&b.id)) {
                if let Some(base) = f.kind.bases().iter().find(|b| !index.contains(b)) {
                    return Err(Error::corrupt(format!(
                        "pack {} holds a delta frame whose base {base} is not in the index; prune stops so nothing more is lost. Run `arca repair index`",
                        pack.id.short()
                    )));
                }
            }
        }
    }

    // A delta frame whose bases no backup uses any more would keep a
    // deleted backup's pages alive: its pack is rewritten, plainly.
    let rebase = packs_with_dead_bases(&index, &used);

    // Classify indexed packs by how much of them is still used.
    let mut keep = Vec::new();
    let mut delete: Vec<(Id, u64)> = Vec::new();
    let mut repack = Vec::new();
    let mut claimed: HashSet<BlobId> = HashSet::new();
    let stored = repo.pack_files()?;
    let present: HashSet<Id> = stored.iter().map(|(id, _)| *id).collect();
    for (p, pack) in index.packs.iter().enumerate() {
        let mut total = 0u64;
        let mut live = 0u64;
        for f in &pack.frames {
            for b in &f.blobs {
                total += b.len as u64;
                // A blob stored twice (two concurrent backups) counts once.
                if used.contains(&b.id) && index.get(&b.id).is_some_and(|l| l.pack == p as u32) {
                    live += b.len as u64;
                }
            }
        }
        if live > 0 && !present.contains(&pack.id) {
            return Err(Error::corrupt(format!(
                "pack {} is missing, and backups still use it; prune stops so nothing more is lost. Run `arca check`; `arca repair index` and `arca repair backups` leave only backups whose data is there",
                pack.id.short()
            )));
        }
        if live == 0 {
            delete.push((pack.id, pack.size));
        } else if rebase.contains(&p) || (total - live) as f64 > REPACK_UNUSED_RATIO * total as f64
        {
            repack.push(p);
        } else {
            keep.push(pack.clone());
            for f in &pack.frames {
                claimed.extend(f.blobs.iter().map(|b| b.id));
            }
        }
    }

    let repacked: u64 = repack.iter().map(|&p| index.packs[p].size).sum();
    progress.set_total(2 * repacked + delete.iter().map(|(_, size)| size).sum::<u64>());

    // Rewrite partly used packs: read, verify, keep the used blobs.
    // Up to two packs written while the next fills.
    let packer = Packer::new(repo, 2);
    let level = repo.config.compression.level;
    let frames = Frames::new(repo, &index, DEFAULT_CACHED_FRAMES);
    for &p in &repack {
        // Stopped here, the packs written so far are garbage no index names.
        repo.cancel.check(Op::Prune)?;
        let pack = &index.packs[p];
        let bytes = repo.backend.read(&pack_path(&pack.id))?;
        for frame in &pack.frames {
            let end = frame.offset as usize + frame.len as usize;
            // A delta frame is rewritten plain: its bases may be going, and
            // the blobs it keeps may not be the ones they were chosen for.
            let raw = frames
                .open(
                    frame,
                    bytes.get(frame.offset as usize..end).unwrap_or_default(),
                )
                .map_err(|e| {
                    Error::corrupt(format!("pack {} cannot be repacked: {e}", pack.id.short()))
                })?;
            let mut keep_raw = Vec::new();
            let mut blobs = Vec::new();
            let mut at = 0usize;
            for b in &frame.blobs {
                let data = &raw[at..at + b.len as usize];
                at += b.len as usize;
                if !used.contains(&b.id) || !claimed.insert(b.id) {
                    continue;
                }
                if repo.hasher.blob_id(data) != b.id {
                    return Err(Error::corrupt(format!(
                        "blob {} in pack {} fails its hash; prune stops. Run `arca check --read-data`",
                        b.id,
                        pack.id.short()
                    )));
                }
                keep_raw.extend_from_slice(data);
                blobs.push(BlobEntry {
                    id: b.id,
                    len: b.len,
                });
            }
            if !blobs.is_empty() {
                let kind = frame.kind.blob_kind();
                let lvl = if kind == BlobKind::List { 1 } else { level };
                packer.add(seal_frame(&repo.env, lvl, kind, &keep_raw, blobs)?)?;
            }
        }
        delete.push((pack.id, pack.size));
        report.packs_repacked += 1;
        progress.inc(pack.size);
    }
    packer.flush()?;
    let written = packer.into_written()?;
    report.bytes_written = written.stored;
    repo.cancel.check(Op::Prune)?;

    // One new index for everything kept, then the old index files go.
    let changed = !delete.is_empty() || index.files.len() > 1;
    // The packs the index names once this prune is done.
    let indexed: HashSet<Id> = if changed {
        keep.iter().chain(&written.written).map(|p| p.id).collect()
    } else {
        index.packs.iter().map(|p| p.id).collect()
    };
    if changed {
        let mut packs = keep;
        packs.extend(written.written);
        report.bytes_written += repo.write_index_file(&IndexFile { packs })?;
        for id in &index.files {
            repo.delete_index_file(id)?;
        }
    }

    // Now nothing indexed points at the packs to delete.
    // Stopped between them, the packs left are garbage the next prune removes.
    for (id, size) in &delete {
        repo.cancel.check(Op::Prune)?;
        repo.backend.delete(&pack_path(id))?;
        report.packs_deleted += 1;
        report.bytes_freed += size;
        progress.inc(*size);
    }

    // Garbage: packs no index knows (from backups cut off mid-way) and temp
    // files. A file not named by an id is not Arca's: it stays.
    let deleted: HashSet<Id> = delete.iter().map(|(id, _)| *id).collect();
    for (id, entry) in stored {
        if !indexed.contains(&id) && !deleted.contains(&id) {
            repo.cancel.check(Op::Prune)?;
            repo.backend.delete(&entry.path)?;
            report.garbage_files += 1;
            report.bytes_freed += entry.size;
        }
    }
    report.garbage_files += remove_temp_files(repo)?;
    Ok(report)
}

fn remove_temp_files(repo: &Repository) -> Result<usize> {
    let paths = repo.temp_files()?;
    for path in &paths {
        repo.cancel.check(Op::Prune)?;
        repo.backend.delete(path)?;
    }
    Ok(paths.len())
}

/// Packs holding a delta frame that is still used but has a base no
/// backup uses. Every other kept delta frame has all its bases in `used`,
/// so they are kept with it.
fn packs_with_dead_bases(index: &Index, used: &HashSet<BlobId>) -> HashSet<usize> {
    let mut packs = HashSet::new();
    for (p, pack) in index.packs.iter().enumerate() {
        let dead_base = pack.frames.iter().any(|f| {
            let bases = f.kind.bases();
            !bases.is_empty()
                && f.blobs.iter().any(|b| used.contains(&b.id))
                && bases.iter().any(|b| !used.contains(b))
        });
        if dead_base {
            packs.insert(p);
        }
    }
    packs
}
