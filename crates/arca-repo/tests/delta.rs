//! Changed blocks stored as deltas against their previous versions: smaller,
//! restored byte for byte, checked, rewritten plainly by prune once their
//! bases' backup is deleted, bounded in depth, and never restored wrong when
//! a base is damaged.

use std::io::Read;

use arca_repo::check::{check, CheckOptions};
use arca_repo::config::InitOptions;
use arca_repo::pack::{FrameKind, MAX_DELTA_DEPTH};
use arca_repo::{prune, restore_file, Manifest, NoProgress, Repository};

mod common;

const PAGE: usize = 8192;
const PAGES: usize = 600;

/// Pages that compress like a table's: rows of text and numbers.
fn pages() -> Vec<u8> {
    let mut data = Vec::with_capacity(PAGE * PAGES);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while data.len() < PAGE * PAGES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let row = format!(
            "|{:>10}|{:>8}|row {:>16x}|        ",
            x % 100_000,
            x % 977,
            x
        );
        data.extend_from_slice(row.as_bytes());
    }
    data.truncate(PAGE * PAGES);
    data
}

/// An update of a few rows in most pages, as a busy OLTP table sees.
fn update(data: &mut [u8], round: u64) {
    for (p, page) in data.chunks_mut(PAGE).enumerate() {
        if (p as u64 + round).is_multiple_of(7) {
            continue;
        }
        for k in 0..3 {
            let at = ((p * 131 + k * 2011 + round as usize * 17) % (PAGE - 8)) & !7;
            page[at..at + 8].copy_from_slice(&(round * 1000 + p as u64).to_le_bytes());
        }
    }
}

fn init(dir: &std::path::Path) -> Repository {
    common::init(dir, &InitOptions::default())
}

fn back_up(repo: &Repository, data: &[u8], base: Option<&Manifest>) -> Manifest {
    common::back_up(repo, &[("table", data)], PAGE as u32, base)
}

fn restore(
    repo: &Repository,
    snap: &Manifest,
    dir: &std::path::Path,
) -> arca_repo::Result<Vec<u8>> {
    let index = repo.load_index()?;
    let path = dir.join(format!("restored-{}", snap.id.short()));
    let out = std::fs::File::create(&path).unwrap();
    restore_file(repo, &index, &snap.files[0], &out, 2, &NoProgress)?;
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    Ok(bytes)
}

fn read_data_ok(repo: &Repository) -> Vec<String> {
    let opts = CheckOptions {
        read_data: true,
        backup: None,
        parallelism: 2,
    };
    check(repo, &opts, &NoProgress).unwrap().errors
}

fn max_depth(repo: &Repository) -> u8 {
    let index = repo.load_index().unwrap();
    index
        .packs
        .iter()
        .flat_map(|p| &p.frames)
        .map(|f| f.kind.depth())
        .max()
        .unwrap_or(0)
}

#[test]
fn changed_pages_are_stored_as_small_deltas_and_restore_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let repo = init(dir.path());
    let v1 = pages();
    let first = back_up(&repo, &v1, None);
    let mut v2 = v1.clone();
    update(&mut v2, 1);
    let second = back_up(&repo, &v2, Some(&first));

    // The same change without a base, in a repository of its own.
    let plain_dir = tempfile::tempdir().unwrap();
    let plain_repo = init(plain_dir.path());
    back_up(&plain_repo, &v1, None);
    let plain = back_up(&plain_repo, &v2, None);
    assert!(
        second.stored_bytes * 10 < plain.stored_bytes,
        "delta {} bytes vs plain {} bytes",
        second.stored_bytes,
        plain.stored_bytes
    );
    assert_eq!(max_depth(&repo), 1);

    assert_eq!(restore(&repo, &second, dir.path()).unwrap(), v2);
    assert_eq!(restore(&repo, &first, dir.path()).unwrap(), v1);
    assert_eq!(read_data_ok(&repo), Vec::<String>::new());

    // Deleting the first backup frees its pages: prune rewrites the
    // second's delta frames plainly instead of keeping their bases.
    repo.delete_manifest(&first.id).unwrap();
    let report = prune(&repo).unwrap();
    assert!(report.bytes_freed > 0, "{report:?}");
    assert_eq!(max_depth(&repo), 0);
    assert_eq!(read_data_ok(&repo), Vec::<String>::new());
    assert_eq!(restore(&repo, &second, dir.path()).unwrap(), v2);
}

#[test]
fn delta_chains_stop_at_the_depth_limit_and_every_version_restores() {
    let dir = tempfile::tempdir().unwrap();
    let repo = init(dir.path());
    let mut data = pages();
    let mut versions = vec![(back_up(&repo, &data, None), data.clone())];
    for round in 1..=(MAX_DELTA_DEPTH as u64 + 3) {
        update(&mut data, round);
        let base = versions.last().unwrap().0.clone();
        versions.push((back_up(&repo, &data, Some(&base)), data.clone()));
    }
    assert_eq!(max_depth(&repo), MAX_DELTA_DEPTH);
    for (snap, bytes) in &versions {
        assert!(restore(&repo, snap, dir.path()).unwrap() == *bytes);
    }
    // A backup in the middle of the chain goes: the rest still restore.
    let (middle, _) = versions.remove(2);
    repo.delete_manifest(&middle.id).unwrap();
    prune(&repo).unwrap();
    assert_eq!(read_data_ok(&repo), Vec::<String>::new());
    for (snap, bytes) in &versions {
        assert!(restore(&repo, snap, dir.path()).unwrap() == *bytes);
    }
    // Prune after deleting all but the newest: it still restores and checks.
    for (snap, _) in &versions[..versions.len() - 1] {
        repo.delete_manifest(&snap.id).unwrap();
    }
    prune(&repo).unwrap();
    assert_eq!(max_depth(&repo), 0);
    assert_eq!(read_data_ok(&repo), Vec::<String>::new());
    let (last, bytes) = versions.last().unwrap();
    assert!(restore(&repo, last, dir.path()).unwrap() == *bytes);
}

#[test]
fn a_damaged_base_fails_the_delta_restore_and_check_names_both_backups() {
    let dir = tempfile::tempdir().unwrap();
    let repo = init(dir.path());
    let v1 = pages();
    let first = back_up(&repo, &v1, None);
    let first_packs: Vec<_> = {
        let index = repo.load_index().unwrap();
        index
            .packs
            .iter()
            .map(|p| (p.id, p.frames.clone()))
            .collect()
    };
    let mut v2 = v1.clone();
    update(&mut v2, 1);
    let second = back_up(&repo, &v2, Some(&first));

    // Flip one byte inside a data frame of the first backup.
    let (pack, frames) = first_packs
        .iter()
        .find(|(_, f)| f.iter().any(|f| f.kind == FrameKind::Data))
        .unwrap();
    let frame = frames.iter().find(|f| f.kind == FrameKind::Data).unwrap();
    let hex = pack.to_hex();
    let path = dir.path().join("repo/data").join(&hex[..2]).join(&hex);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(frame.offset + frame.len as u64 / 2) as usize] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();

    let err = restore(&repo, &second, dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("damaged") || err.contains("fails its hash"),
        "{err}"
    );
    let errors = read_data_ok(&repo);
    for snap in [&first, &second] {
        assert!(
            errors
                .iter()
                .any(|e| e.contains(&format!("backup {} file table is damaged", snap.id.short()))),
            "{errors:?}"
        );
    }
}
