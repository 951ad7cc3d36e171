//! Restoring many files with one set of workers: every file byte for byte
//! (empty ones, one-block ones, files of several block-list windows, files
//! with delta frames), each opened once, and a file that cannot be created
//! fails the restore with its own error.

use std::collections::HashMap;
use std::sync::Mutex;

use arca_repo::config::InitOptions;
use arca_repo::{restore_files, Error, FileEntry, Manifest, NoProgress, Repository};

mod common;

/// Small pages, so a few MiB make several block-list windows (4096 blocks).
const PAGE: usize = 512;

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(format!("{:>12}|", x % 1_000_003).as_bytes());
    }
    out.truncate(len);
    out
}

fn back_up(repo: &Repository, files: &[(String, Vec<u8>)], base: Option<&Manifest>) -> Manifest {
    let named: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), &b[..])).collect();
    common::back_up(repo, &named, PAGE as u32, base)
}

fn setup() -> (tempfile::TempDir, Repository, Vec<(String, Vec<u8>)>) {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::init(dir.path(), &InitOptions::default());
    let files = vec![
        ("big".to_string(), data(5 << 20, 1)), // three windows
        ("empty".to_string(), Vec::new()),
        ("one-byte".to_string(), vec![7]),
        ("one-page".to_string(), data(PAGE, 2)),
        ("odd".to_string(), data(3 * PAGE + 100, 3)),
        ("medium".to_string(), data(300_000, 4)),
    ];
    (dir, repo, files)
}

/// Restores `snap` into `to` in the given order; returns how often each
/// file was opened.
fn restore_all(
    repo: &Repository,
    snap: &Manifest,
    to: &std::path::Path,
    parallelism: usize,
) -> arca_repo::Result<HashMap<String, usize>> {
    std::fs::create_dir_all(to).unwrap();
    let index = repo.load_index()?;
    let mut entries: Vec<&FileEntry> = snap.files.iter().collect();
    entries.sort_by_key(|f| std::cmp::Reverse(f.size));
    let opened = Mutex::new(HashMap::new());
    let open = |f: &FileEntry| {
        *opened.lock().unwrap().entry(f.path.clone()).or_insert(0) += 1;
        let p = to.join(&f.path);
        std::fs::File::create(&p).map_err(|e| Error::io(&p, e))
    };
    restore_files(repo, &index, &entries, &open, parallelism, &NoProgress)?;
    Ok(opened.into_inner().unwrap())
}

#[test]
fn every_file_restores_byte_for_byte_and_is_opened_once() {
    let (dir, repo, mut files) = setup();
    let first = back_up(&repo, &files, None);
    // A second version with a few bytes changed in every page of "big": its
    // windows hold delta frames.
    for page in files[0].1.chunks_mut(PAGE) {
        page[10] ^= 0x5a;
    }
    files[4].1[5] ^= 1;
    let second = back_up(&repo, &files, Some(&first));
    let index = repo.load_index().unwrap();
    let frames = index.packs.iter().flat_map(|p| &p.frames);
    assert!(
        frames.clone().any(|f| f.kind.depth() > 0),
        "the second backup stores delta frames"
    );
    for parallelism in [1, 4] {
        let to = dir.path().join(format!("restored-{parallelism}"));
        let opened = restore_all(&repo, &second, &to, parallelism).unwrap();
        for (name, bytes) in &files {
            let got = std::fs::read(to.join(name)).unwrap();
            assert!(got == *bytes, "{name} differs after restore");
            assert_eq!(opened.get(name), Some(&1), "{name} opened once");
        }
    }
}

#[test]
fn a_file_that_cannot_be_created_fails_the_restore_with_its_error() {
    let (dir, repo, files) = setup();
    let snap = back_up(&repo, &files, None);
    let index = repo.load_index().unwrap();
    let entries: Vec<&FileEntry> = snap.files.iter().collect();
    let to = dir.path().join("restored");
    std::fs::create_dir_all(&to).unwrap();
    let open = |f: &FileEntry| {
        let p = to.join(&f.path);
        if f.path == "medium" {
            return Err(Error::io(
                &p,
                std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left"),
            ));
        }
        std::fs::File::create(&p).map_err(|e| Error::io(&p, e))
    };
    let err = restore_files(&repo, &index, &entries, &open, 2, &NoProgress).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("medium") && msg.contains("no space left"),
        "{msg}"
    );
}

/// Bytes that do not compress, so that the repository holds as many.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// More data than a restore holds in memory at first (two reads of 16 MiB):
/// the planner waits for workers to free reads, the reads gathered across
/// windows and packs all arrive, and every byte comes back.
#[test]
fn a_restore_larger_than_its_read_budget_completes() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::init(dir.path(), &InitOptions::default());
    let files = vec![
        ("large".to_string(), noise(72 << 20, 5)),
        ("small".to_string(), noise(100_000, 6)),
    ];
    let named: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), &b[..])).collect();
    let snap = common::back_up(&repo, &named, 4096, None);
    for parallelism in [1, 3] {
        let to = dir.path().join(format!("restored-{parallelism}"));
        restore_all(&repo, &snap, &to, parallelism).unwrap();
        for (name, bytes) in &files {
            let got = std::fs::read(to.join(name)).unwrap();
            assert!(got == *bytes, "{name} differs after restore");
        }
    }
}

/// A pack gone from the repository fails the restore with an error naming
/// a file and the pack, whichever thread meets it first, and no thread is
/// left waiting for it.
#[test]
fn a_missing_pack_fails_the_restore_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::init(dir.path(), &InitOptions::default());
    let files = [("large".to_string(), noise(40 << 20, 7))];
    let named: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), &b[..])).collect();
    let snap = common::back_up(&repo, &named, 4096, None);
    let index = repo.load_index().unwrap();
    let data_packs: Vec<_> = index
        .packs
        .iter()
        .filter(|p| p.frames.iter().all(|f| f.kind.depth() == 0) && p.size > 1 << 20)
        .collect();
    assert!(data_packs.len() >= 2, "the data spans several packs");
    let gone = data_packs[data_packs.len() / 2].id;
    let path = dir
        .path()
        .join("repo")
        .join(arca_repo::pack::pack_path(&gone));
    std::fs::remove_file(path).unwrap();
    for parallelism in [1, 4] {
        let to = dir.path().join(format!("restored-{parallelism}"));
        let err = restore_all(&repo, &snap, &to, parallelism).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("large") && msg.contains(&gone.short()),
            "{msg}"
        );
    }
}
