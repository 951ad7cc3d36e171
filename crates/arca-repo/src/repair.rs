//! Repair: the way back from damage that `check` names.
//!
//! - [`repair_index`] rebuilds the index from the packs themselves. Every
//!   pack is read whole and every frame decompressed; each blob's id is its
//!   keyed hash, computed from the bytes found, so the new index can only
//!   name blobs that are really there. A pack whose own header is damaged is
//!   read through what an intact index file said of it.
//! - [`repair_backups`] removes the backups that can no longer be restored
//!   (a damaged manifest, or blobs that are missing or damaged), so the rest
//!   stay usable and `prune` can run again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::cancel::Op;
use crate::check::{check, CheckOptions};
use crate::error::{Error, Result};
use crate::frames::{Frames, DEFAULT_CACHED_FRAMES};
use crate::id::{BlobId, Id};
use crate::index::{Index, IndexFile, IndexPack};
use crate::pack::{
    decompress_frame, pack_path, read_header, BlobEntry, FrameEntry, FrameKind, MAX_DELTA_DEPTH,
};
use crate::repository::{parse_name, Repository};
use crate::Progress;

#[derive(Debug, Default, serde::Serialize)]
pub struct RepairIndexReport {
    pub packs_read: usize,
    pub packs_indexed: usize,
    pub blobs: usize,
    /// Frames that could not be read: their blobs are not indexed.
    pub frames_dropped: usize,
    pub index_files_replaced: usize,
    /// One line per pack or frame that could not be read, and why.
    pub problems: Vec<String>,
}

/// A pack as read: its size, hash, and frames (blob lengths known; ids
/// filled in once the frame is read).
struct ReadPack {
    id: Id,
    size: u64,
    hash: [u8; 32],
    frames: Vec<FrameEntry>,
    /// Delta frames, read once their bases are indexed.
    deltas: Vec<FrameEntry>,
}

/// Rebuilds the index from the packs and replaces every index file with
/// one new one. Runs under the exclusive lock: nothing may be written or
/// pruned meanwhile.
pub fn repair_index(
    repo: &Repository,
    parallelism: usize,
    progress: &dyn Progress,
) -> Result<RepairIndexReport> {
    let _lock = repo.lock_exclusive("repair index")?;
    let old = repo.read_index(false)?;
    let known: HashMap<Id, &IndexPack> = old.packs.iter().map(|p| (p.id, p)).collect();
    let mut report = RepairIndexReport::default();

    let stored = repo.stored_packs()?;
    progress.set_total(stored.iter().map(|(_, size)| size).sum());

    // Every pack read whole, its plain frames hashed into ids.
    let next = AtomicUsize::new(0);
    let found = Mutex::new((Vec::new(), Vec::new()));
    let failure = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..parallelism.max(1) {
            s.spawn(|| loop {
                if repo.cancel.is_cancelled() {
                    return;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(&(id, size)) = stored.get(i) else {
                    return;
                };
                let result = read_pack(repo, id, known.get(&id).copied());
                progress.inc(size);
                match result {
                    Ok((pack, problems)) => {
                        let mut f = found.lock().unwrap();
                        f.0.push(pack);
                        f.1.extend(problems);
                    }
                    Err(e) => {
                        *failure.lock().unwrap() = Some(e);
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap() {
        return Err(e);
    }
    repo.cancel.check(Op::Repair)?;
    let (mut packs, problems) = found.into_inner().unwrap();
    report.problems = problems;
    report.packs_read = packs.len();

    // Delta frames, shallowest first: each needs its bases indexed.
    for depth in 1..=MAX_DELTA_DEPTH {
        let index = index_of(&packs);
        let frames = Frames::new(repo, &index, DEFAULT_CACHED_FRAMES);
        let mut done: Vec<(usize, FrameEntry)> = Vec::new();
        for (p, pack) in packs.iter().enumerate() {
            repo.cancel.check(Op::Repair)?;
            for f in pack.deltas.iter().filter(|f| f.kind.depth() == depth) {
                let read = repo
                    .read_frame(&pack.id, f.offset, f.len)
                    .and_then(|sealed| frames.open(f, &sealed));
                match read {
                    Ok(raw) => done.push((p, with_ids(repo, f, &raw))),
                    Err(e) => {
                        report.frames_dropped += 1;
                        report.problems.push(format!(
                            "pack {}: delta frame at offset {}: {}",
                            pack.id.short(),
                            f.offset,
                            e.detail()
                        ));
                    }
                }
            }
        }
        for (p, f) in done {
            packs[p].frames.push(f);
        }
    }
    for pack in &mut packs {
        let left = pack
            .deltas
            .iter()
            .filter(|f| f.kind.depth() == 0 || f.kind.depth() > MAX_DELTA_DEPTH)
            .count();
        report.frames_dropped += left;
        pack.frames.sort_by_key(|f| f.offset);
    }

    let kept: Vec<IndexPack> = packs
        .into_iter()
        .filter(|p| !p.frames.is_empty())
        .map(|p| IndexPack {
            id: p.id,
            size: p.size,
            hash: p.hash,
            frames: p.frames,
        })
        .collect();
    report.packs_indexed = kept.len();
    report.blobs = kept
        .iter()
        .flat_map(|p| &p.frames)
        .map(|f| f.blobs.len())
        .sum();
    // The new index first, then the old files (damaged ones too) go: the
    // last point to stop is before them.
    repo.cancel.check(Op::Repair)?;
    let files = repo.index_files()?;
    repo.write_index_file(&IndexFile { packs: kept })?;
    for id in &files {
        repo.delete_index_file(id)?;
    }
    report.index_files_replaced = files.len();
    Ok(report)
}

/// Reads one pack whole: its frames from its header, or from what an
/// intact index file said of it when the header is damaged. Plain frames
/// are decompressed and their blobs hashed now; delta frames wait.
fn read_pack(
    repo: &Repository,
    id: Id,
    known: Option<&IndexPack>,
) -> Result<(ReadPack, Vec<String>)> {
    let bytes = repo.backend.read(&pack_path(&id))?;
    let mut problems = Vec::new();
    let listed: Vec<FrameEntry> = match read_header(&repo.env, &bytes) {
        Ok(h) => h
            .frames
            .into_iter()
            .map(|f| FrameEntry {
                offset: f.offset,
                len: f.len,
                kind: f.kind,
                blobs: f
                    .blob_lens
                    .into_iter()
                    .map(|len| BlobEntry {
                        id: BlobId([0; 16]),
                        len,
                    })
                    .collect(),
            })
            .collect(),
        Err(e) => match known {
            Some(p) => p.frames.clone(),
            None => {
                problems.push(format!(
                    "pack {}: {}, and no intact index file describes it: its blobs cannot be indexed (`arca prune` removes it)",
                    id.short(),
                    e.detail()
                ));
                Vec::new()
            }
        },
    };
    let mut pack = ReadPack {
        id,
        size: bytes.len() as u64,
        hash: *blake3::hash(&bytes).as_bytes(),
        frames: Vec::new(),
        deltas: Vec::new(),
    };
    for f in listed {
        if matches!(f.kind, FrameKind::Delta { .. }) {
            pack.deltas.push(f);
            continue;
        }
        let end = f.offset + f.len as u64;
        let read = match bytes.get(f.offset as usize..end as usize) {
            Some(sealed) => decompress_frame(&repo.env, &f, sealed),
            None => Err(Error::corrupt("it lies past the end of the pack")),
        };
        match read {
            Ok(raw) => pack.frames.push(with_ids(repo, &f, &raw)),
            Err(e) => problems.push(format!(
                "pack {}: frame at offset {}: {}",
                id.short(),
                f.offset,
                e.detail()
            )),
        }
    }
    Ok((pack, problems))
}

/// The frame with each blob named by the hash of the bytes found.
fn with_ids(repo: &Repository, f: &FrameEntry, raw: &[u8]) -> FrameEntry {
    let mut at = 0usize;
    let blobs = f
        .blobs
        .iter()
        .map(|b| {
            let end = at + b.len as usize;
            let id = repo.hasher.blob_id(&raw[at..end]);
            at = end;
            BlobEntry { id, len: b.len }
        })
        .collect();
    FrameEntry { blobs, ..f.clone() }
}

/// An index of the frames read so far.
fn index_of(packs: &[ReadPack]) -> Index {
    let mut index = Index::default();
    index.add_file(IndexFile {
        packs: packs
            .iter()
            .map(|p| IndexPack {
                id: p.id,
                size: p.size,
                hash: p.hash,
                frames: p.frames.clone(),
            })
            .collect(),
    });
    index.seal();
    index
}

#[derive(Debug, Default, serde::Serialize)]
pub struct RepairBackupsReport {
    /// Backups removed (or, on a dry run, to remove): id and why.
    pub removed: Vec<(String, String)>,
    /// Backups that restore as they are.
    pub kept: usize,
}

/// Removes every backup that cannot be restored whole: damaged manifests,
/// and backups with a block or block list that is missing (or, with
/// `read_data`, damaged). Run `repair index` first: a blob only a damaged
/// index file named counts as missing.
pub fn repair_backups(
    repo: &Repository,
    read_data: bool,
    dry_run: bool,
    parallelism: usize,
    progress: &dyn Progress,
) -> Result<RepairBackupsReport> {
    let found = check(
        repo,
        &CheckOptions {
            read_data,
            backup: None,
            parallelism,
        },
        progress,
    )?;
    let _lock = repo.lock_shared("repair backups")?;
    let mut report = RepairBackupsReport {
        kept: found.backups - found.damaged_backups.len(),
        ..Default::default()
    };
    let mut gone: Vec<(Id, String)> = found
        .damaged_manifests
        .iter()
        .filter_map(|d| parse_name(&d.path).ok().map(|id| (id, d.problem.clone())))
        .collect();
    gone.extend(found.damaged_backups.iter().cloned());
    for (id, why) in gone {
        repo.cancel.check(Op::Repair)?;
        if !dry_run {
            repo.delete_manifest(&id)?;
        }
        report.removed.push((id.to_hex(), why));
    }
    Ok(report)
}
