//! A reader written from docs/design/repository.md alone: it decodes the
//! golden repositories (crates/arca-cli/tests/golden) with BLAKE3, zstd and
//! JSON, none of arca-repo's types, and must get back the databases each
//! backup holds. When the format and its document part, this fails.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

type BlobId = [u8; 16];

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../arca-cli/tests/golden")
        .join(name)
}

/// Postcard's encoding: unsigned integers wider than a byte as LEB128
/// varints, a `u8` and fixed arrays as raw bytes, a sequence as its length
/// then its items, an enum as its variant's number then its fields.
struct Postcard<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Postcard<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Postcard { bytes, at: 0 }
    }

    fn raw(&mut self, n: usize) -> &'a [u8] {
        let b = &self.bytes[self.at..self.at + n];
        self.at += n;
        b
    }

    fn varint(&mut self) -> u64 {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let b = self.raw(1)[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    }

    fn blob_id(&mut self) -> BlobId {
        self.raw(16).try_into().unwrap()
    }

    fn kind(&mut self) -> Kind {
        match self.varint() {
            0 => Kind::Data,
            1 => Kind::List,
            2 => {
                let depth = self.raw(1)[0];
                let bases = (0..self.varint()).map(|_| self.blob_id()).collect();
                Kind::Delta { depth, bases }
            }
            t => panic!("unknown frame kind {t}"),
        }
    }

    fn end(&self) {
        assert_eq!(self.at, self.bytes.len(), "bytes left over");
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Data,
    List,
    Delta { depth: u8, bases: Vec<BlobId> },
}

/// A frame as a pack header lists it.
#[derive(Debug, Clone, PartialEq)]
struct Frame {
    offset: u64,
    len: u64,
    kind: Kind,
    blob_lens: Vec<u64>,
}

struct Pack {
    bytes: Vec<u8>,
    frames: Vec<Frame>,
}

fn hex_name(path: &Path) -> String {
    path.file_name().unwrap().to_str().unwrap().to_string()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The config's checksum: BLAKE3 of its fields in this order, as compact
/// JSON, without `checksum` (and without `features` or
/// `compression.rows_level` where it has none).
fn config_checksum(c: &serde_json::Value) -> String {
    let mut canon = format!("{{\"version\":{}", c["version"]);
    if let Some(f) = c.get("features") {
        canon += &format!(",\"features\":{f}");
    }
    let (ch, co) = (&c["chunker"], &c["compression"]);
    canon += &format!(
        ",\"id\":{},\"created\":{},\"chunker\":{{\"block_size\":{},\"frame_size\":{},\"pack_size\":{}}},\"compression\":{{\"algorithm\":{},\"level\":{}{}}},\"encryption\":{{\"algorithm\":{}}},\"blob_key\":{}}}",
        c["id"],
        c["created"],
        ch["block_size"],
        ch["frame_size"],
        ch["pack_size"],
        co["algorithm"],
        co["level"],
        co.get("rows_level")
            .map(|l| format!(",\"rows_level\":{l}"))
            .unwrap_or_default(),
        c["encryption"]["algorithm"],
        c["blob_key"]
    );
    blake3::hash(canon.as_bytes()).to_hex().to_string()
}

/// A pack's header, checked against the BLAKE3 in its trailer.
fn pack_header(pack: &[u8]) -> Vec<Frame> {
    let n = pack.len();
    let magic = &pack[n - 8..];
    let hlen = u32::from_le_bytes(pack[n - 12..n - 8].try_into().unwrap()) as usize;
    let end = match magic {
        b"ARCAPCK2" => {
            let end = n - 12 - 32;
            let header = &pack[end - hlen..end];
            assert_eq!(blake3::hash(header).as_bytes(), &pack[end..n - 12]);
            end
        }
        b"ARCAPCK1" => n - 12,
        _ => panic!("not a pack"),
    };
    let header = zstd::stream::decode_all(&pack[end - hlen..end]).unwrap();
    let mut p = Postcard::new(&header);
    let frames = (0..p.varint())
        .map(|_| Frame {
            offset: p.varint(),
            len: p.varint(),
            kind: p.kind(),
            blob_lens: (0..p.varint()).map(|_| p.varint()).collect(),
        })
        .collect();
    p.end();
    frames
}

/// The sealed bytes inside a checked object, or an old object as it is.
fn unwrap_object(bytes: &[u8]) -> &[u8] {
    match bytes.strip_prefix(b"ARCAOBJ1") {
        Some(rest) => {
            let (hash, sealed) = rest.split_at(32);
            assert_eq!(blake3::hash(sealed).as_bytes(), hash);
            sealed
        }
        None => {
            assert!(bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) || bytes.starts_with(b"{"));
            bytes
        }
    }
}

/// Reads the repository at `root` whole, checking every hash, length and
/// cross-reference the document names; returns each backup's first file
/// block by block, by the backup's id.
fn read_repository_at(root: &Path) -> HashMap<String, Vec<Vec<u8>>> {
    let name = root.display();
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("config")).unwrap()).unwrap();
    assert_eq!(config["version"], 1);
    if let Some(sum) = config.get("checksum") {
        assert_eq!(sum.as_str().unwrap(), config_checksum(&config), "{name}");
    }
    let key: [u8; 32] = hex::decode(config["blob_key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let blob_id = |data: &[u8]| -> BlobId {
        blake3::keyed_hash(&key, data).as_bytes()[..16]
            .try_into()
            .unwrap()
    };

    // Packs: data/<first two hex digits>/<id>, each with its header.
    let mut packs: HashMap<String, Pack> = HashMap::new();
    for path in files(&root.join("data")) {
        let id = hex_name(&path);
        assert_eq!(hex_name(path.parent().unwrap()), id[..2]);
        let bytes = std::fs::read(&path).unwrap();
        let frames = pack_header(&bytes);
        packs.insert(id, Pack { bytes, frames });
    }

    // Every blob, by its keyed hash: plain frames first, then delta frames
    // shallowest first, each with its bases' bytes as zstd's prefix.
    let mut blobs: HashMap<BlobId, (Vec<u8>, bool)> = HashMap::new();
    let mut ids_of: HashMap<(String, u64), Vec<BlobId>> = HashMap::new();
    for depth in 0..=4u8 {
        for (pack_id, pack) in &packs {
            for f in &pack.frames {
                let sealed = &pack.bytes[f.offset as usize..(f.offset + f.len) as usize];
                let raw = match &f.kind {
                    Kind::Delta { depth: d, bases } if *d == depth => {
                        let prefix: Vec<u8> =
                            bases.iter().flat_map(|b| blobs[b].0.clone()).collect();
                        let mut dctx = zstd::zstd_safe::DCtx::create();
                        dctx.ref_prefix(&prefix[..]).unwrap();
                        let mut raw = Vec::with_capacity(f.blob_lens.iter().sum::<u64>() as usize);
                        dctx.decompress(&mut raw, sealed).unwrap();
                        raw
                    }
                    Kind::Data | Kind::List if depth == 0 => {
                        zstd::stream::decode_all(sealed).unwrap()
                    }
                    _ => continue,
                };
                assert_eq!(raw.len() as u64, f.blob_lens.iter().sum::<u64>());
                let mut at = 0;
                let mut ids = Vec::new();
                for &len in &f.blob_lens {
                    let blob = &raw[at..at + len as usize];
                    at += len as usize;
                    ids.push(blob_id(blob));
                    blobs.insert(blob_id(blob), (blob.to_vec(), f.kind == Kind::List));
                }
                ids_of.insert((pack_id.clone(), f.offset), ids);
            }
        }
    }
    assert_eq!(
        ids_of.len(),
        packs.values().map(|p| p.frames.len()).sum::<usize>(),
        "{name}: a delta frame deeper than 4"
    );

    // Index files say the same as the packs, with ids, sizes and hashes.
    let mut indexed = 0;
    for path in files(&root.join("index")) {
        let bytes = std::fs::read(&path).unwrap();
        let encoded = zstd::stream::decode_all(unwrap_object(&bytes)).unwrap();
        let mut p = Postcard::new(&encoded);
        for _ in 0..p.varint() {
            let id = hex::encode(p.raw(32));
            let pack = &packs[&id];
            assert_eq!(p.varint(), pack.bytes.len() as u64);
            assert_eq!(p.raw(32), blake3::hash(&pack.bytes).as_bytes());
            let frames: Vec<Frame> = (0..p.varint())
                .map(|_| {
                    let (offset, len, kind) = (p.varint(), p.varint(), p.kind());
                    let blobs: Vec<(BlobId, u64)> =
                        (0..p.varint()).map(|_| (p.blob_id(), p.varint())).collect();
                    let ids: Vec<BlobId> = blobs.iter().map(|b| b.0).collect();
                    assert_eq!(ids_of[&(id.clone(), offset)], ids);
                    let blob_lens = blobs.iter().map(|b| b.1).collect();
                    Frame {
                        offset,
                        len,
                        kind,
                        blob_lens,
                    }
                })
                .collect();
            assert_eq!(frames, pack.frames);
            indexed += 1;
        }
        p.end();
    }
    assert_eq!(indexed, packs.len());

    // Each manifest's files, block by block through their lists.
    let mut out = HashMap::new();
    for path in files(&root.join("snapshots")) {
        let bytes = std::fs::read(&path).unwrap();
        let m: serde_json::Value = serde_json::from_slice(unwrap_object(&bytes)).unwrap();
        let id = hex_name(&path);
        assert_eq!(m["id"], id.as_str());
        let file = &m["files"][0];
        let mut db = Vec::new();
        let mut blocks = Vec::new();
        for list in file["lists"].as_array().unwrap() {
            let list: BlobId = hex::decode(list.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap();
            let (ids, is_list) = &blobs[&list];
            assert!(*is_list);
            for block in ids.chunks_exact(16) {
                let (data, is_list) = &blobs[block];
                assert!(!*is_list);
                db.extend_from_slice(data);
                blocks.push(data.clone());
            }
        }
        assert_eq!(file["blocks"], blocks.len());
        assert_eq!(file["size"], db.len() as u64);
        // Fixed blocks: all of `block_size` but the last. Variable blocks
        // (0): any length but none.
        let bs = file["block_size"].as_u64().unwrap() as usize;
        if bs > 0 {
            assert_eq!(blocks.len(), db.len().div_ceil(bs));
            let (last, rest) = blocks.split_last().unwrap_or((&db, &[]));
            assert!(rest.iter().all(|b| b.len() == bs) && last.len() <= bs);
        } else {
            assert!(blocks.iter().all(|b| !b.is_empty()), "{name}");
        }
        out.insert(id, blocks);
    }
    out
}

/// A golden repository: every backup's database is the one expected.
fn read_repository(name: &str) {
    let expected: HashMap<String, String> =
        serde_json::from_slice(&std::fs::read(golden(&format!("{name}.expected.json"))).unwrap())
            .unwrap();
    let read = read_repository_at(&golden(name));
    assert_eq!(read.len(), expected.len());
    for (id, blocks) in read {
        let db = blocks.concat();
        assert_eq!(
            format!("{:x}", Sha256::digest(&db)),
            expected[&id],
            "{name}"
        );
    }
}

#[test]
fn the_golden_repositories_read_by_the_document_alone() {
    read_repository("v1-before-checksums");
    read_repository("v1-checksums");
}

/// A new repository's config, with its `features`, hashes as documented.
#[test]
fn a_new_config_checksum_is_the_documented_one() {
    let dir = tempfile::tempdir().unwrap();
    let loc = arca_repo::Location::parse(dir.path().join("r").to_str().unwrap()).unwrap();
    arca_repo::Repository::init(&loc, &arca_repo::InitOptions::default()).unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("r/config")).unwrap()).unwrap();
    assert_eq!(
        config["features"],
        serde_json::json!(["object-checksums", "delta-frames"])
    );
    assert_eq!(config["checksum"], config_checksum(&config).as_str());
}

/// Hands out its blocks whole.
struct Rows(std::vec::IntoIter<Vec<u8>>);

impl arca_repo::BlockSource for Rows {
    fn fill(&mut self, buf: &mut Vec<u8>, cuts: &mut Vec<u32>, want: usize) -> std::io::Result<()> {
        while buf.len() < want {
            let Some(block) = self.0.next() else { break };
            buf.extend_from_slice(&block);
            cuts.push(block.len() as u32);
        }
        Ok(())
    }
}

/// A file in variable blocks, backed up twice (the second time as deltas
/// against the first), reads block for block by the document alone.
#[test]
fn a_file_in_variable_blocks_reads_by_the_document_alone() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let loc = arca_repo::Location::parse(root.to_str().unwrap()).unwrap();
    let repo = arca_repo::Repository::init(&loc, &arca_repo::InitOptions::default()).unwrap();
    let row = |n: usize, v: usize| format!("{n}\t{v}\t{}\n", "row ".repeat(n % 50)).into_bytes();
    let mut v1: Vec<Vec<u8>> = (0..6000).map(|n| row(n, 0)).collect();
    v1.insert(100, vec![b'z'; (1 << 20) + 3]);
    let mut v2 = v1.clone();
    for n in [5, 700, 5000] {
        v2[n] = row(n, 1);
    }
    let mut ids = HashMap::new();
    let mut base: Option<arca_repo::FileEntry> = None;
    for blocks in [&v1, &v2] {
        let mut session = arca_repo::BackupSession::start(&repo, 2).unwrap();
        let mut rows = Rows(blocks.clone().into_iter());
        let null = serde_json::Value::Null;
        let entry = session
            .add_blocks("t", &mut rows, null, base.as_ref(), &arca_repo::NoProgress)
            .unwrap()
            .clone();
        let snap = session
            .commit(arca_repo::NewManifest {
                engine: "test".into(),
                source: "test://rows".into(),
                kind: "logical".into(),
                name: None,
                tags: vec![],
                start_time: jiff::Timestamp::now(),
                meta: serde_json::Value::Null,
            })
            .unwrap();
        ids.insert(snap.id.to_hex(), blocks);
        base = Some(entry);
    }
    let index = repo.load_index().unwrap();
    let delta = |f: &arca_repo::pack::FrameEntry| f.kind.depth() > 0;
    assert!(index.packs.iter().flat_map(|p| &p.frames).any(delta));

    let read = read_repository_at(&root);
    assert_eq!(read.len(), 2);
    for (id, blocks) in read {
        assert!(blocks == *ids[&id], "backup {id}");
    }
}
