//! Files stored in blocks the caller cuts (a logical engine cuts at row
//! boundaries): read back block for block through `BlockStream`, stored
//! again as little more than the changed blocks (as deltas against the
//! same block numbers of the earlier backup), checked, refused by the file
//! restorer, and stopped by damage and by cancellation. `BlockStream` also
//! reads fixed-size files.

use std::collections::HashSet;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

use arca_repo::check::{check, CheckOptions};
use arca_repo::config::InitOptions;
use arca_repo::pack::FrameKind;
use arca_repo::{
    restore_file, restore_files, BackupSession, BlockSource, BlockStream, Error, FileEntry, Id,
    Manifest, NewManifest, NoProgress, Progress, Repository,
};

mod common;

/// Hands out `blocks` whole, as a logical engine hands out rows.
struct Rows<'b> {
    blocks: &'b [Vec<u8>],
    next: usize,
}

impl BlockSource for Rows<'_> {
    fn fill(&mut self, buf: &mut Vec<u8>, cuts: &mut Vec<u32>, want: usize) -> std::io::Result<()> {
        while buf.len() < want {
            let Some(block) = self.blocks.get(self.next) else {
                break;
            };
            self.next += 1;
            buf.extend_from_slice(block);
            cuts.push(block.len() as u32);
        }
        Ok(())
    }
}

/// Counts the bytes reported.
#[derive(Default)]
struct Count(AtomicU64);

impl Progress for Count {
    fn inc(&self, bytes: u64) {
        self.0.fetch_add(bytes, Ordering::SeqCst);
    }
}

fn manifest() -> NewManifest {
    NewManifest {
        engine: "test".into(),
        source: "test://rows".into(),
        kind: "logical".into(),
        name: None,
        tags: vec![],
        start_time: jiff::Timestamp::now(),
        meta: serde_json::Value::Null,
    }
}

fn back_up(repo: &Repository, blocks: &[Vec<u8>], base: Option<&Manifest>) -> Manifest {
    let mut session = BackupSession::start(repo, 2).unwrap();
    let mut rows = Rows { blocks, next: 0 };
    let base = base.map(|m| &m.files[0]);
    let progress = Count::default();
    let entry = session
        .add_blocks("db/t1", &mut rows, serde_json::Value::Null, base, &progress)
        .unwrap();
    let total: usize = blocks.iter().map(Vec::len).sum();
    assert_eq!(entry.block_size, 0);
    assert_eq!(entry.blocks, blocks.len() as u64);
    assert_eq!(entry.size, total as u64);
    assert_eq!(progress.0.load(Ordering::SeqCst), total as u64);
    session.commit(manifest()).unwrap()
}

fn blocks_of(repo: &Repository, entry: &FileEntry) -> arca_repo::Result<Vec<Vec<u8>>> {
    let index = repo.load_index()?;
    BlockStream::new(repo, &index, entry).collect()
}

fn bytes_of(repo: &Repository, entry: &FileEntry) -> std::io::Result<Vec<u8>> {
    let index = repo.load_index().unwrap();
    let mut out = Vec::new();
    BlockStream::new(repo, &index, entry)
        .into_reader()
        .read_to_end(&mut out)?;
    Ok(out)
}

/// A row of text, of a length that varies with `n`.
fn row(n: u64, version: u64) -> Vec<u8> {
    let width = 20 + (n * 37 % 180) as usize;
    let mut r = format!("{n:>8}\t{version}\tname-{:x}\t", n * 2_654_435_761);
    while r.len() < width {
        r.push_str("lorem ipsum ");
    }
    r.truncate(width);
    r.push('\n');
    r.into_bytes()
}

/// Incompressible bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d ^ seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Blocks of one byte, 3 KiB, 2 MiB (twice a frame) and thousands of small
/// rows: more than one block list's 4096 ids.
fn table() -> Vec<Vec<u8>> {
    let mut blocks = vec![b"x".to_vec(), row(1, 0).repeat(3 << 10)[..3 << 10].to_vec()];
    blocks.extend((0..3000).map(|n| row(n, 0)));
    blocks.push(noise(2 << 20, 1));
    blocks.extend((3000..9000).map(|n| row(n, 0)));
    blocks.push(b"y".to_vec());
    blocks
}

fn read_data(repo: &Repository) -> Vec<String> {
    let opts = CheckOptions {
        read_data: true,
        backup: None,
        parallelism: 2,
    };
    check(repo, &opts, &NoProgress).unwrap().errors
}

#[test]
fn blocks_of_every_size_come_back_block_for_block() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::init(dir.path(), &InitOptions::default());
    let blocks = table();
    let snap = back_up(&repo, &blocks, None);
    let entry = &snap.files[0];
    assert_eq!(entry.lists.len(), 3);

    let back = blocks_of(&repo, entry).unwrap();
    assert_eq!(back.len(), blocks.len());
    assert!(back == blocks, "blocks differ");
    assert!(bytes_of(&repo, entry).unwrap() == blocks.concat());

    // The block larger than a frame is a frame of its own.
    let index = repo.load_index().unwrap();
    let big = repo.hasher().blob_id(&blocks[3002]);
    let loc = index.get(&big).unwrap();
    let (_, frame) = index.frame(&loc);
    assert_eq!(frame.blobs.len(), 1);
    assert_eq!(frame.blobs[0].len, 2 << 20);
    // Each block is a blob of its own length.
    let one = index.get(&repo.hasher().blob_id(b"x")).unwrap();
    assert_eq!(one.len, 1);

    assert_eq!(read_data(&repo), Vec::<String>::new());
}

#[test]
fn an_empty_source_is_a_file_of_no_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::init(dir.path(), &InitOptions::default());
    let snap = back_up(&repo, &[], None);
    assert_eq!(snap.files[0].lists.len(), 1);
    assert!(blocks_of(&repo, &snap.files[0]).unwrap().is_empty());
    assert!(bytes_of(&repo, &snap.files[0]).unwrap().is_empty());
}

/// The packs `after` has that `before` had not.
fn new_packs(repo: &Repository, before: &HashSet<Id>) -> Vec<arca_repo::index::IndexPack> {
    let index = repo.load_index().unwrap();
    index
        .packs
        .into_iter()
        .filter(|p| !before.contains(&p.id))
        .collect()
}

fn pack_ids(repo: &Repository) -> HashSet<Id> {
    let index = repo.load_index().unwrap();
    index.packs.iter().map(|p| p.id).collect()
}

#[test]
fn a_few_changed_rows_store_about_their_bytes_as_deltas() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::init(dir.path(), &InitOptions::default());
    let v1 = table();
    let first = back_up(&repo, &v1, None);

    // Six rows updated, one of them longer than it was: the same count of
    // blocks, so each block's base is its own earlier version.
    let mut v2 = v1.clone();
    let changed = [10usize, 11, 500, 4100, 7000, 9001];
    for &i in &changed {
        v2[i] = row(i as u64, 1);
    }
    v2[4100].extend_from_slice(b"and a longer comment\n");
    let changed_bytes: usize = changed.iter().map(|&i| v2[i].len()).sum();
    let before = pack_ids(&repo);
    let second = back_up(&repo, &v2, Some(&first));

    let added = new_packs(&repo, &before);
    let data: Vec<_> = added
        .iter()
        .flat_map(|p| &p.frames)
        .filter(|f| f.kind != FrameKind::List)
        .collect();
    let new_blobs: usize = data.iter().map(|f| f.blobs.len()).sum();
    assert_eq!(new_blobs, changed.len());
    assert!(
        data.iter()
            .all(|f| matches!(f.kind, FrameKind::Delta { .. })),
        "{:?}",
        data.iter().map(|f| &f.kind).collect::<Vec<_>>()
    );
    let data_bytes: u64 = data.iter().map(|f| f.len as u64).sum();
    assert!(
        data_bytes < changed_bytes as u64,
        "{data_bytes} bytes stored for {changed_bytes} bytes of changed rows"
    );
    // The rest is the changed windows' block lists (16 bytes a block),
    // the index file and the manifest: a small part of the first backup.
    assert!(
        second.stored_bytes * 10 < first.stored_bytes,
        "{} bytes then {}",
        first.stored_bytes,
        second.stored_bytes
    );

    assert!(blocks_of(&repo, &second.files[0]).unwrap() == v2);
    assert!(blocks_of(&repo, &first.files[0]).unwrap() == v1);
    assert_eq!(read_data(&repo), Vec::<String>::new());

    // A base of fixed blocks gives no bases: stored whole, still exact.
    let fixed = common::back_up(&repo, &[("db/t1", &v2.concat())], 4096, None);
    let mut session = BackupSession::start(&repo, 2).unwrap();
    let mut rows = Rows {
        blocks: &v1,
        next: 0,
    };
    let null = serde_json::Value::Null;
    let base = Some(&fixed.files[0]);
    session
        .add_blocks("db/t1", &mut rows, null, base, &NoProgress)
        .unwrap();
    let third = session.commit(manifest()).unwrap();
    assert!(blocks_of(&repo, &third.files[0]).unwrap() == v1);
}

/// Flips the byte in the middle of the frame holding `id`; returns the
/// pack's id.
fn damage(dir: &std::path::Path, repo: &Repository, id: &arca_repo::BlobId) -> Id {
    let index = repo.load_index().unwrap();
    let loc = index.get(id).unwrap();
    let (pack, frame) = index.frame(&loc);
    let hex = pack.id.to_hex();
    let path = dir.join("repo/data").join(&hex[..2]).join(&hex);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(frame.offset + frame.len as u64 / 2) as usize] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    pack.id
}

#[test]
fn a_damaged_block_stops_the_stream_naming_blob_and_pack() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::init(dir.path(), &InitOptions::default());
    let blocks = table();
    let snap = back_up(&repo, &blocks, None);
    // Noise is stored as it is: the flipped byte decompresses, wrong.
    let big = repo.hasher().blob_id(&blocks[3002]);
    let pack = damage(dir.path(), &repo, &big);

    let index = repo.load_index().unwrap();
    let mut stream = BlockStream::new(&repo, &index, &snap.files[0]);
    let mut good = 0;
    let err = loop {
        match stream.next_block() {
            Ok(Some(_)) => good += 1,
            Ok(None) => panic!("the damaged block was read"),
            Err(e) => break e,
        }
    };
    assert_eq!(good, 3002, "the blocks before it are read");
    let msg = err.to_string();
    assert!(matches!(err, Error::Corrupt(_)), "{msg}");
    assert!(msg.contains(&big.to_hex()), "{msg}");
    assert!(msg.contains(&pack.to_hex()), "{msg}");
    // Over after an error.
    assert!(stream.next_block().is_err());
    // The bytes reader says the same, as an io::Error around it.
    let err = bytes_of(&repo, &snap.files[0]).unwrap_err();
    let inner = err.get_ref().unwrap().downcast_ref::<Error>().unwrap();
    assert!(matches!(inner, Error::Corrupt(_)), "{inner}");
    // As an iterator: the blocks before it, then the error, then the end.
    let mut it = BlockStream::new(&repo, &index, &snap.files[0]);
    assert_eq!(it.by_ref().take_while(Result::is_ok).count(), 3002);
    assert!(it.next().is_none());

    // Damage that stops decompression (compressed rows) names the pack too.
    let dir = tempfile::tempdir().unwrap();
    let repo = common::init(dir.path(), &InitOptions::default());
    let rows: Vec<Vec<u8>> = (0..5000).map(|n| row(n, 0)).collect();
    let snap = back_up(&repo, &rows, None);
    let pack = damage(dir.path(), &repo, &repo.hasher().blob_id(&rows[0]));
    let err = blocks_of(&repo, &snap.files[0]).unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err}");
    assert!(err.to_string().contains(&pack.short()), "{err}");
}

#[test]
fn the_file_restorer_refuses_blocks_of_varied_size_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::init(dir.path(), &InitOptions::default());
    let blocks: Vec<Vec<u8>> = (0..100).map(|n| row(n, 0)).collect();
    let snap = back_up(&repo, &blocks, None);
    let fixed = common::back_up(&repo, &[("plain", b"some bytes")], 4096, None);
    let index = repo.load_index().unwrap();

    let path = dir.path().join("out");
    std::fs::write(&path, b"untouched").unwrap();
    let out = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let err = restore_file(&repo, &index, &snap.files[0], &out, 2, &NoProgress).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("cannot restore db/t1 as a file"), "{msg}");
    assert!(msg.contains("varied size"), "{msg}");
    assert_eq!(std::fs::read(&path).unwrap(), b"untouched");

    // Among other files: none is opened.
    let opened = AtomicU64::new(0);
    let open = |_: &FileEntry| -> arca_repo::Result<std::fs::File> {
        opened.fetch_add(1, Ordering::SeqCst);
        Ok(std::fs::File::create(dir.path().join("other")).unwrap())
    };
    let files = [&fixed.files[0], &snap.files[0]];
    assert!(restore_files(&repo, &index, &files, &open, 2, &NoProgress).is_err());
    assert_eq!(opened.load(Ordering::SeqCst), 0);
}

/// A source that cuts what it is told to, right or wrong.
struct Cuts(Vec<(Vec<u8>, Vec<u32>)>);

impl BlockSource for Cuts {
    fn fill(&mut self, buf: &mut Vec<u8>, cuts: &mut Vec<u32>, _: usize) -> std::io::Result<()> {
        if let Some((b, c)) = self.0.pop() {
            buf.extend_from_slice(&b);
            cuts.extend_from_slice(&c);
        }
        Ok(())
    }
}

#[test]
fn an_empty_block_or_cuts_that_miss_the_bytes_fail_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::init(dir.path(), &InitOptions::default());
    let mut session = BackupSession::start(&repo, 2).unwrap();
    for (source, says) in [
        (vec![(b"abc".to_vec(), vec![3, 0])], "a block of no bytes"),
        (vec![(Vec::new(), vec![0])], "a block of no bytes"),
        (
            vec![(b"abcd".to_vec(), vec![3])],
            "appended 4 bytes but blocks of 3",
        ),
    ] {
        let mut cuts = Cuts(source);
        let null = serde_json::Value::Null;
        let err = session
            .add_blocks("t", &mut cuts, null, None, &NoProgress)
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{err}");
        assert!(err.starts_with("t: "), "{err}");
    }
}

#[test]
fn block_stream_reads_a_fixed_size_file_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::init(dir.path(), &InitOptions::default());
    // 512-byte pages: three block lists, the last block short.
    let v1: Vec<u8> = (0..)
        .flat_map(|n| row(n, 0))
        .take((5 << 20) - 300)
        .chain(noise(300, 2))
        .collect();
    let first = common::back_up(&repo, &[("f", &v1)], 512, None);
    let mut v2 = v1.clone();
    for at in (0..v2.len()).step_by(7000) {
        v2[at] ^= 0x21;
    }
    let second = common::back_up(&repo, &[("f", &v2)], 512, Some(&first));
    assert_eq!(second.files[0].lists.len(), 3);

    for (snap, data) in [(&first, &v1), (&second, &v2)] {
        assert!(bytes_of(&repo, &snap.files[0]).unwrap() == *data);
        let blocks = blocks_of(&repo, &snap.files[0]).unwrap();
        assert!(blocks
            .iter()
            .map(Vec::len)
            .eq(data.chunks(512).map(<[u8]>::len)));
    }
    // Small reads, across blocks.
    let index = repo.load_index().unwrap();
    let mut stream = BlockStream::new(&repo, &index, &second.files[0]).into_reader();
    let mut out = Vec::new();
    let mut buf = [0u8; 333];
    loop {
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    assert!(out == v2);
}

#[test]
fn a_cancelled_stream_stops_as_a_restore_and_a_cancelled_backup_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::init(dir.path(), &InitOptions::default());
    let blocks = table();
    let snap = back_up(&repo, &blocks, None);
    let index = repo.load_index().unwrap();
    let mut stream = BlockStream::new(&repo, &index, &snap.files[0]);
    assert!(stream.next_block().unwrap().is_some());
    repo.cancel.cancel();
    let err = stream.next_block().unwrap_err();
    assert!(matches!(err, Error::Interrupted { .. }), "{err}");
    assert!(err.to_string().starts_with("restore interrupted"), "{err}");

    let mut session = BackupSession::start(&repo, 2).unwrap();
    let mut rows = Rows {
        blocks: &blocks,
        next: 0,
    };
    let null = serde_json::Value::Null;
    let err = session
        .add_blocks("t", &mut rows, null, None, &NoProgress)
        .unwrap_err();
    assert!(err.to_string().starts_with("backup interrupted"), "{err}");
    assert_eq!(rows.next, 0, "nothing was read");
    drop(session);
    assert_eq!(repo.manifests().unwrap().len(), 1);
}
