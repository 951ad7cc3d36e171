//! Check: the structure (every index and manifest parses, every referenced
//! pack exists at its indexed size, every block is indexed) and, with
//! `read_data`, every byte (pack hashes, frames, every blob's id).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::cancel::Op;
use crate::error::{Error, Result};
use crate::frames::{Frames, DEFAULT_CACHED_FRAMES};
use crate::id::{BlobId, Id};
use crate::index::{Damaged, Index};
use crate::manifest::Manifest;
use crate::pack::{pack_path, verify_frame};
use crate::repository::Repository;
use crate::Progress;

#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    pub read_data: bool,
    /// Check only this backup (its files and the packs it uses).
    pub backup: Option<String>,
    pub parallelism: usize,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct CheckReport {
    pub backups: usize,
    pub packs: usize,
    pub blobs_read: u64,
    pub bytes_read: u64,
    /// Archived log segments read and verified (with `read_data`).
    pub logs: usize,
    /// One line per problem, naming the damaged backup and file where known.
    pub errors: Vec<String>,
    /// Backups that cannot be restored whole, and the first reason.
    pub damaged_backups: Vec<(Id, String)>,
    /// Manifests that cannot be read.
    pub damaged_manifests: Vec<Damaged>,
    /// Index files that cannot be read.
    pub damaged_index_files: Vec<Damaged>,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

pub fn check(
    repo: &Repository,
    opts: &CheckOptions,
    progress: &dyn Progress,
) -> Result<CheckReport> {
    let _lock = repo.lock_for_reading("check")?;
    let mut report = CheckReport::default();

    // A damaged index file is named and left out; the rest still count.
    let index = repo.read_index(false)?;
    for d in &index.damaged {
        report
            .errors
            .push(format!("{}: run `arca repair index`", d.problem));
    }
    report.damaged_index_files = index.damaged.clone();

    // Snapshots to check.
    let snaps: Vec<Manifest> = match &opts.backup {
        Some(spec) => vec![repo.find_manifest(spec)?],
        None => {
            let (snaps, damaged) = repo.manifests_and_damage()?;
            for d in &damaged {
                report.errors.push(format!(
                    "{}: `arca delete` or `arca repair backups` removes it",
                    d.problem
                ));
            }
            report.damaged_manifests = damaged;
            snaps
        }
    };
    report.backups = snaps.len();

    // Packs: present, and at the size the index gives.
    let on_disk: HashMap<Id, u64> = repo.stored_packs()?.into_iter().collect();
    let mut bad_packs: HashMap<u32, String> = HashMap::new();
    for (p, pack) in index.packs.iter().enumerate() {
        match on_disk.get(&pack.id) {
            None => {
                bad_packs.insert(p as u32, format!("pack {} is missing", pack.id.short()));
            }
            Some(&size) if size != pack.size => {
                bad_packs.insert(
                    p as u32,
                    format!(
                        "pack {} is {size} bytes, the index says {} (truncated or overwritten)",
                        pack.id.short(),
                        pack.size
                    ),
                );
            }
            _ => {}
        }
    }

    // Which packs to read: all of them, or the ones one backup uses.
    let mut bad_blobs: HashMap<BlobId, String> = HashMap::new();
    let wanted: Option<HashSet<u32>> = match &opts.backup {
        Some(_) => {
            let mut set = HashSet::new();
            for s in &snaps {
                for_each_block(repo, &index, s, |_, _, id| {
                    if let Some(loc) = index.get(id) {
                        set.insert(loc.pack);
                    }
                });
            }
            Some(set)
        }
        None => None,
    };
    report.packs = wanted.as_ref().map_or(index.packs.len(), |w| w.len());

    if opts.read_data {
        let todo: Vec<u32> = (0..index.packs.len() as u32)
            .filter(|p| wanted.as_ref().is_none_or(|w| w.contains(p)))
            .filter(|p| !bad_packs.contains_key(p))
            .collect();
        progress.set_total(todo.iter().map(|&p| index.packs[p as usize].size).sum());
        let next = AtomicUsize::new(0);
        let found = Mutex::new((Vec::new(), Vec::new(), 0u64, 0u64));
        std::thread::scope(|s| {
            for _ in 0..opts.parallelism.max(1) {
                s.spawn(|| {
                    let frames = Frames::new(repo, &index, DEFAULT_CACHED_FRAMES);
                    loop {
                        if repo.cancel.is_cancelled() {
                            return;
                        }
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(&p) = todo.get(i) else { return };
                        let (pack_errors, blobs, blobs_read) = read_pack(repo, &index, &frames, p);
                        let size = index.packs[p as usize].size;
                        progress.inc(size);
                        let mut f = found.lock().unwrap();
                        f.0.extend(pack_errors.into_iter().map(|e| (p, e)));
                        f.1.extend(blobs);
                        f.2 += blobs_read;
                        f.3 += size;
                    }
                });
            }
        });
        repo.cancel.check(Op::Check)?;
        let (pack_errors, blobs, blobs_read, bytes_read) = found.into_inner().unwrap();
        // A pack whose hash fails still has its readable blobs; the blobs
        // that fail are named through `bad_blobs`.
        report
            .errors
            .extend(pack_errors.into_iter().map(|(_, e)| e));
        bad_blobs.extend(blobs);
        report.blobs_read = blobs_read;
        report.bytes_read = bytes_read;
    }
    for msg in bad_packs.values() {
        report.errors.push(msg.clone());
    }

    // Every file of every backup: all blocks indexed and not damaged.
    for s in &snaps {
        repo.cancel.check(Op::Check)?;
        // A path a restore would refuse (outside its target).
        for f in &s.files {
            if let Err(e) = f.checked_path(&s.id) {
                report.errors.push(e.to_string());
            }
        }
        let mut per_file: HashMap<String, (u64, String)> = HashMap::new();
        let list_errors = for_each_block(repo, &index, s, |file, _block, id| {
            let problem = match index.get(id) {
                None => Some(format!("blob {id} is not in any index")),
                Some(loc) => bad_packs
                    .get(&loc.pack)
                    .cloned()
                    .or_else(|| bad_blobs.get(id).cloned()),
            };
            if let Some(problem) = problem {
                let e = per_file.entry(file.to_string()).or_insert((0, problem));
                e.0 += 1;
            }
        });
        for (file, e) in list_errors {
            per_file.entry(file).or_insert((0, e));
        }
        let mut files: Vec<_> = per_file.into_iter().collect();
        files.sort();
        if let Some((file, (_, problem))) = files.first() {
            report
                .damaged_backups
                .push((s.id, format!("file {file}: {problem}")));
        }
        for (file, (n, problem)) in files {
            report.errors.push(format!(
                "backup {} file {file} is damaged: {n} blocks unreadable ({problem})",
                s.id.short()
            ));
        }
    }
    // Archived logs: with read_data, every segment read and its hash checked.
    if opts.read_data && opts.backup.is_none() {
        for stream in repo.log_streams()? {
            for entry in repo.list_logs(&stream)? {
                repo.cancel.check(Op::Check)?;
                match repo.get_log(&stream, &entry.name) {
                    Ok(_) => {
                        report.logs += 1;
                        report.bytes_read += entry.stored_bytes;
                    }
                    Err(e) => report
                        .errors
                        .push(format!("archived log {stream}/{}: {e}", entry.name)),
                }
            }
        }
    }
    Ok(report)
}

/// Calls `f(file, block_number, id)` for every block of every file of `s`.
/// Returns (file, error) for block lists that cannot be read.
fn for_each_block(
    repo: &Repository,
    index: &Index,
    s: &Manifest,
    mut f: impl FnMut(&str, u64, &BlobId),
) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    for file in &s.files {
        let mut block = 0u64;
        for list in &file.lists {
            f(&file.path, block, list);
            match repo.read_list(index, list) {
                Ok(ids) => {
                    for id in &ids {
                        f(&file.path, block, id);
                        block += 1;
                    }
                }
                Err(e) => {
                    errors.push((file.path.clone(), format!("block list {list}: {e}")));
                    block += crate::manifest::LIST_IDS as u64;
                }
            }
        }
    }
    errors
}

/// Reads one whole pack and verifies its hash, every frame and every blob
/// (a delta frame through its bases, so a damaged base shows as damage in
/// every frame that needs it). Returns pack-level problems, damaged blobs,
/// and the number of blobs read.
fn read_pack(
    repo: &Repository,
    index: &Index,
    frames: &Frames<'_>,
    p: u32,
) -> (Vec<String>, Vec<(BlobId, String)>, u64) {
    let pack = &index.packs[p as usize];
    let name = pack.id.short();
    let bytes = match repo.backend.read(&pack_path(&pack.id)) {
        Ok(b) => b,
        Err(e) => return (vec![format!("pack {name} cannot be read: {e}")], vec![], 0),
    };
    let mut errors = Vec::new();
    if *blake3::hash(&bytes).as_bytes() != pack.hash {
        errors.push(format!("pack {name} does not match its hash (damaged)"));
    }
    let mut bad = Vec::new();
    let mut n = 0u64;
    for frame in &pack.frames {
        let end = frame.offset as usize + frame.len as usize;
        let result = if end > bytes.len() {
            Err(Error::corrupt("frame lies past the end of the pack"))
        } else {
            frames.open(frame, &bytes[frame.offset as usize..end])
        };
        match result {
            Ok(raw) => {
                n += frame.blobs.len() as u64;
                for id in verify_frame(&repo.hasher, frame, &raw) {
                    bad.push((id, format!("blob {id} in pack {name} fails its hash")));
                }
            }
            Err(e) => {
                for b in &frame.blobs {
                    bad.push((b.id, format!("pack {name}: {e}")));
                }
            }
        }
    }
    (errors, bad, n)
}
