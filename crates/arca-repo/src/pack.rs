//! Pack files: compressed frames of blobs, with the pack's own directory at the end.
//!
//! ```text
//! frame 0 | frame 1 | … | header | BLAKE3(header) | header length (u32 LE) | "ARCAPCK2"
//! ```
//! Packs written before the header's checksum end `header | length | "ARCAPCK1"`.
//! A frame is `seal(zstd(blob ‖ blob ‖ …))`; the header is
//! `seal(zstd(postcard(PackHeader)))`: the frames and their blobs' lengths,
//! so indexes can be rebuilt from packs alone (ids by hashing the blobs).
//!
//! A delta frame is compressed against its base blobs (earlier versions of
//! the same pages), concatenated, as zstd's reference prefix: a page that
//! changed in a few places costs tens of bytes instead of a whole
//! compressed page. Reading it needs the bases first ([`crate::frames`]).

use serde::{Deserialize, Serialize};

use crate::config::Envelope;
use crate::error::{Error, Result};
use crate::id::{BlobId, Hasher, Id};

pub const PACK_MAGIC: &[u8; 8] = b"ARCAPCK2";
/// Packs whose header has no checksum of its own.
pub const PACK_MAGIC_V1: &[u8; 8] = b"ARCAPCK1";
pub const DATA_DIR: &str = "data";

/// What a frame's blobs are: database blocks, or block lists (metadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlobKind {
    Data,
    List,
}

/// How a frame is compressed. `Delta` was added after `Data` and `List`, so
/// frames written before it still decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FrameKind {
    Data,
    List,
    /// Data blobs compressed with `bases` (concatenated) as the reference
    /// prefix. `depth` is 1 + the deepest base's frame depth (plain = 0), so
    /// a reader never follows more than [`MAX_DELTA_DEPTH`] frames.
    Delta {
        depth: u8,
        bases: Vec<BlobId>,
    },
}

/// The longest chain of delta frames a backup builds; a page whose base is
/// this deep is stored whole. Bounds what a restore decompresses per page.
pub const MAX_DELTA_DEPTH: u8 = 4;

impl FrameKind {
    pub fn blob_kind(&self) -> BlobKind {
        match self {
            FrameKind::List => BlobKind::List,
            FrameKind::Data | FrameKind::Delta { .. } => BlobKind::Data,
        }
    }

    pub fn depth(&self) -> u8 {
        match self {
            FrameKind::Delta { depth, .. } => *depth,
            _ => 0,
        }
    }

    pub fn bases(&self) -> &[BlobId] {
        match self {
            FrameKind::Delta { bases, .. } => bases,
            _ => &[],
        }
    }
}

impl From<BlobKind> for FrameKind {
    fn from(k: BlobKind) -> FrameKind {
        match k {
            BlobKind::Data => FrameKind::Data,
            BlobKind::List => FrameKind::List,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobEntry {
    pub id: BlobId,
    pub len: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameEntry {
    pub offset: u64,
    pub len: u32,
    pub kind: FrameKind,
    pub blobs: Vec<BlobEntry>,
}

impl FrameEntry {
    pub fn raw_len(&self) -> usize {
        self.blobs.iter().map(|b| b.len as usize).sum()
    }
}

/// The directory at the end of a pack. It leaves out blob ids: they are
/// the keyed hashes of the blobs, so an index can be rebuilt from packs by
/// hashing, and each pack stays 16 bytes a block smaller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackHeader {
    pub frames: Vec<HeaderFrame>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderFrame {
    pub offset: u64,
    pub len: u32,
    pub kind: FrameKind,
    pub blob_lens: Vec<u32>,
}

/// Where a pack lives in the repository: `data/ab/abcdef…`.
pub fn pack_path(id: &Id) -> String {
    let hex = id.to_hex();
    format!("{DATA_DIR}/{}/{hex}", &hex[..2])
}

/// A frame ready for a pack: sealed bytes and the blobs inside.
pub struct SealedFrame {
    pub kind: FrameKind,
    pub bytes: Vec<u8>,
    pub blobs: Vec<BlobEntry>,
}

/// Compresses and seals raw blob bytes (concatenated in `blobs` order).
pub fn seal_frame(
    env: &Envelope,
    level: i32,
    kind: BlobKind,
    raw: &[u8],
    blobs: Vec<BlobEntry>,
) -> Result<SealedFrame> {
    let mut c = zstd::bulk::Compressor::new(level)
        .map_err(|e| Error::Format(format!("zstd compressor: {e}")))?;
    seal_frame_with(env, &mut c, kind, raw, blobs)
}

/// Like [`seal_frame`] with a compressor the caller keeps: a fresh zstd
/// context per frame allocates and clears its tables every time.
pub fn seal_frame_with(
    env: &Envelope,
    compressor: &mut zstd::bulk::Compressor<'static>,
    kind: BlobKind,
    raw: &[u8],
    blobs: Vec<BlobEntry>,
) -> Result<SealedFrame> {
    let compressed = compressor
        .compress(raw)
        .map_err(|e| Error::Format(format!("zstd compression failed: {e}")))?;
    Ok(SealedFrame {
        kind: kind.into(),
        bytes: env.seal(compressed),
        blobs,
    })
}

/// Compresses data blobs against `prefix` (the bases' bytes, in `bases`
/// order) and seals them as a delta frame of the given depth.
pub fn seal_delta_frame(
    env: &Envelope,
    level: i32,
    prefix: &[u8],
    raw: &[u8],
    blobs: Vec<BlobEntry>,
    depth: u8,
    bases: Vec<BlobId>,
) -> Result<SealedFrame> {
    use zstd::zstd_safe::{CCtx, CParameter};
    let zerr = |e: usize| Error::Format(format!("zstd: {}", zstd::zstd_safe::get_error_name(e)));
    let mut cctx = CCtx::try_create().ok_or_else(|| Error::Format("zstd: out of memory".into()))?;
    // The window must reach from the end of the frame back to the start of
    // the prefix, and zstd indexes only the last 2^(hashLog + 3) bytes of a
    // prefix: both must cover all of it, or early bases are not found.
    let window_log = ceil_log2(prefix.len() + raw.len()).clamp(10, 27);
    let hash_log = ceil_log2(prefix.len()).saturating_sub(3).max(17);
    for p in [
        CParameter::CompressionLevel(level),
        CParameter::WindowLog(window_log),
        CParameter::HashLog(hash_log),
    ] {
        cctx.set_parameter(p).map_err(zerr)?;
    }
    // A prefix, not a dictionary: zstd always takes it as raw content and
    // indexes it straight into this context's tables, with no copy.
    cctx.ref_prefix(prefix).map_err(zerr)?;
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(raw.len()));
    cctx.compress2(&mut out, raw).map_err(zerr)?;
    Ok(SealedFrame {
        kind: FrameKind::Delta { depth, bases },
        bytes: env.seal(out),
        blobs,
    })
}

/// Opens and decompresses a frame read from a pack. Blob `i` starts at the
/// sum of the lengths before it; the caller verifies the blobs it uses.
pub fn decompress_frame(env: &Envelope, frame: &FrameEntry, sealed: &[u8]) -> Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut dec = zstd::bulk::Decompressor::new()
        .map_err(|e| Error::Format(format!("zstd decompressor: {e}")))?;
    decompress_frame_into(env, frame, sealed, &mut dec, &mut raw)?;
    Ok(raw)
}

/// Like [`decompress_frame`], reusing a decompressor and output buffer:
/// restore calls this for every frame, and fresh 1 MiB buffers cost page faults.
pub fn decompress_frame_into(
    env: &Envelope,
    frame: &FrameEntry,
    sealed: &[u8],
    dec: &mut zstd::bulk::Decompressor<'static>,
    raw: &mut Vec<u8>,
) -> Result<()> {
    if matches!(frame.kind, FrameKind::Delta { .. }) {
        return Err(Error::Format(format!(
            "frame at offset {} is a delta frame: it needs its bases to decompress",
            frame.offset
        )));
    }
    let compressed = env.open(sealed)?;
    let raw_len = frame.raw_len();
    raw.clear();
    raw.reserve(raw_len);
    dec.decompress_to_buffer(&compressed[..], raw)
        .map_err(|e| {
            Error::corrupt(format!(
                "frame at offset {} does not decompress: {e}",
                frame.offset
            ))
        })?;
    check_raw_len(frame, raw)
}

/// Opens and decompresses a delta frame into `raw`, with its bases' bytes
/// as `prefix`.
pub fn decompress_delta_frame_into(
    env: &Envelope,
    frame: &FrameEntry,
    sealed: &[u8],
    prefix: &[u8],
    raw: &mut Vec<u8>,
) -> Result<()> {
    let compressed = env.open(sealed)?;
    let mut dctx = zstd::zstd_safe::DCtx::try_create()
        .ok_or_else(|| Error::Format("zstd: out of memory".into()))?;
    raw.clear();
    raw.reserve(frame.raw_len());
    let decoded = dctx
        .ref_prefix(prefix)
        .and_then(|_| dctx.decompress(raw, &compressed[..]));
    if let Err(e) = decoded {
        return Err(Error::corrupt(format!(
            "delta frame at offset {} does not decompress: {}",
            frame.offset,
            zstd::zstd_safe::get_error_name(e)
        )));
    }
    check_raw_len(frame, raw)
}

fn ceil_log2(n: usize) -> u32 {
    usize::BITS - n.max(2).saturating_sub(1).leading_zeros()
}

fn check_raw_len(frame: &FrameEntry, raw: &[u8]) -> Result<()> {
    let raw_len = frame.raw_len();
    if raw.len() != raw_len {
        return Err(Error::corrupt(format!(
            "frame at offset {} holds {} bytes, the index says {raw_len}",
            frame.offset,
            raw.len()
        )));
    }
    Ok(())
}

/// Checks every blob of a decompressed frame; returns the ones that fail.
pub fn verify_frame(hasher: &Hasher, frame: &FrameEntry, raw: &[u8]) -> Vec<BlobId> {
    let mut bad = Vec::new();
    let mut at = 0usize;
    for b in &frame.blobs {
        let end = at + b.len as usize;
        if hasher.blob_id(&raw[at..end]) != b.id {
            bad.push(b.id);
        }
        at = end;
    }
    bad
}

/// A pack being filled in memory.
pub struct PackBuilder {
    buf: Vec<u8>,
    frames: Vec<FrameEntry>,
}

/// A finished pack: its name, bytes, content hash and directory.
pub struct FinishedPack {
    pub id: Id,
    pub bytes: Vec<u8>,
    pub hash: [u8; 32],
    pub frames: Vec<FrameEntry>,
}

impl PackBuilder {
    pub fn new(capacity: usize) -> PackBuilder {
        PackBuilder {
            buf: Vec::with_capacity(capacity),
            frames: Vec::new(),
        }
    }

    /// A pack filled into `buf` (cleared), a buffer reused from an
    /// earlier pack.
    pub fn with_buffer(mut buf: Vec<u8>) -> PackBuilder {
        buf.clear();
        PackBuilder {
            buf,
            frames: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn add(&mut self, frame: SealedFrame) {
        self.frames.push(FrameEntry {
            offset: self.buf.len() as u64,
            len: frame.bytes.len() as u32,
            kind: frame.kind,
            blobs: frame.blobs,
        });
        self.buf.extend_from_slice(&frame.bytes);
    }

    pub fn finish(mut self, env: &Envelope) -> Result<FinishedPack> {
        let header = PackHeader {
            frames: self
                .frames
                .iter()
                .map(|f| HeaderFrame {
                    offset: f.offset,
                    len: f.len,
                    kind: f.kind.clone(),
                    blob_lens: f.blobs.iter().map(|b| b.len).collect(),
                })
                .collect(),
        };
        let encoded = postcard::to_stdvec(&header)
            .map_err(|e| Error::Format(format!("pack header encoding failed: {e}")))?;
        let compressed = zstd::bulk::compress(&encoded, 3)
            .map_err(|e| Error::Format(format!("zstd compression failed: {e}")))?;
        let sealed = env.seal(compressed);
        self.buf.extend_from_slice(&sealed);
        self.buf.extend_from_slice(blake3::hash(&sealed).as_bytes());
        self.buf
            .extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(PACK_MAGIC);
        let hash = *blake3::hash(&self.buf).as_bytes();
        Ok(FinishedPack {
            id: Id::random(),
            bytes: self.buf,
            hash,
            frames: self.frames,
        })
    }
}

/// Reads the directory at the end of a whole pack's bytes, verifying its
/// checksum.
pub fn read_header(env: &Envelope, pack: &[u8]) -> Result<PackHeader> {
    let n = pack.len();
    let hash_len = match pack.get(n.saturating_sub(8)..) {
        Some(m) if m == PACK_MAGIC => 32,
        Some(m) if m == PACK_MAGIC_V1 => 0,
        _ => return Err(Error::corrupt("pack does not end with the pack magic")),
    };
    if n < 12 + hash_len {
        return Err(Error::corrupt(
            "pack is shorter than its trailer (truncated)",
        ));
    }
    let hlen = u32::from_le_bytes(pack[n - 12..n - 8].try_into().unwrap()) as usize;
    if hlen + 12 + hash_len > n {
        return Err(Error::corrupt("pack header length is out of range"));
    }
    let end = n - 12 - hash_len;
    let sealed = &pack[end - hlen..end];
    if hash_len > 0 && blake3::hash(sealed).as_bytes()[..] != pack[end..n - 12] {
        return Err(Error::corrupt(
            "pack header does not match its checksum (damaged)",
        ));
    }
    let compressed = env.open(sealed)?;
    let encoded = zstd::stream::decode_all(&compressed[..])
        .map_err(|e| Error::corrupt(format!("pack header does not decompress: {e}")))?;
    let header: PackHeader = postcard::from_bytes(&encoded)
        .map_err(|e| Error::corrupt(format!("pack header does not parse: {e}")))?;
    if let Some(f) = header
        .frames
        .iter()
        .find(|f| f.offset + f.len as u64 > (end - hlen) as u64)
    {
        return Err(Error::corrupt(format!(
            "pack header places a frame at {}..{}, past the frames' end",
            f.offset,
            f.offset + f.len as u64
        )));
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pack_round_trips_its_frames_and_header() {
        let env = Envelope;
        let hasher = Hasher::new([9; 32]);
        let mut builder = PackBuilder::new(0);
        let mut frames = Vec::new();
        for n in 0..3u8 {
            let blocks: Vec<Vec<u8>> = (0..4).map(|i| vec![n * 10 + i; 4096]).collect();
            let raw: Vec<u8> = blocks.concat();
            let blobs = blocks
                .iter()
                .map(|b| BlobEntry {
                    id: hasher.blob_id(b),
                    len: b.len() as u32,
                })
                .collect();
            builder.add(seal_frame(&env, 3, BlobKind::Data, &raw, blobs).unwrap());
            frames.push(raw);
        }
        let pack = builder.finish(&env).unwrap();
        let header = read_header(&env, &pack.bytes).unwrap();
        assert_eq!(header.frames.len(), 3);
        // Every byte of the header and trailer is covered.
        let tail = pack.bytes.len()
            - pack
                .frames
                .last()
                .map_or(0, |f| (f.offset + f.len as u64) as usize);
        for back in 1..=tail {
            let mut bad = pack.bytes.clone();
            let at = bad.len() - back;
            bad[at] ^= 0x10;
            assert!(read_header(&env, &bad).is_err(), "byte {back} from the end");
        }
        for (i, f) in pack.frames.iter().enumerate() {
            assert_eq!(header.frames[i].offset, f.offset);
            assert_eq!(header.frames[i].blob_lens, vec![4096; 4]);
            let sealed = pack.bytes[f.offset as usize..(f.offset + f.len as u64) as usize].to_vec();
            let raw = decompress_frame(&env, f, &sealed).unwrap();
            assert_eq!(raw, frames[i]);
            assert!(verify_frame(&hasher, f, &raw).is_empty());
        }
        // A flipped byte inside a frame is caught.
        let f = &pack.frames[1];
        let mut sealed = pack.bytes[f.offset as usize..(f.offset + f.len as u64) as usize].to_vec();
        sealed[f.len as usize / 2] ^= 1;
        let bad = decompress_frame(&env, f, &sealed).map(|raw| verify_frame(&hasher, f, &raw));
        assert!(bad.is_err() || !bad.unwrap().is_empty());
    }

    /// Index files and pack headers written before delta frames existed
    /// stored a `BlobKind`; a `FrameKind` must read them the same.
    #[test]
    fn frame_kinds_encode_as_the_blob_kinds_before_them() {
        for (old, new) in [
            (BlobKind::Data, FrameKind::Data),
            (BlobKind::List, FrameKind::List),
        ] {
            let bytes = postcard::to_stdvec(&old).unwrap();
            assert_eq!(postcard::from_bytes::<FrameKind>(&bytes).unwrap(), new);
        }
    }
}
