//! A checksum around every stored metadata object (index files, snapshot
//! manifests): damage is found where it is, named by file, and never
//! decoded into wrong entries.
//!
//! ```text
//! "ARCAOBJ1" | BLAKE3 of the rest (32 bytes) | sealed bytes
//! ```
//! The checksum covers the sealed bytes, so it tells damage apart from a
//! wrong key once objects are encrypted. Objects written before the
//! checksum existed are read as they are: they start with their own format's
//! first bytes (`{` for a manifest, zstd's magic for an index file), which
//! no checked object does.

use crate::error::{Error, Result};

pub const OBJECT_MAGIC: &[u8; 8] = b"ARCAOBJ1";
const HASH_LEN: usize = 32;
const HEADER_LEN: usize = OBJECT_MAGIC.len() + HASH_LEN;

/// The first bytes of an index file written before checksums: zstd's magic.
pub const LEGACY_INDEX: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
/// The first byte of a manifest written before checksums: JSON.
pub const LEGACY_MANIFEST: &[u8] = b"{";

/// Puts the checksum in front of `sealed`.
pub fn wrap(sealed: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + sealed.len());
    out.extend_from_slice(OBJECT_MAGIC);
    out.extend_from_slice(blake3::hash(&sealed).as_bytes());
    out.extend_from_slice(&sealed);
    out
}

/// Verifies an object's checksum and returns the sealed bytes inside. An
/// object that starts with `legacy` (its format's first bytes before
/// checksums) is returned unchecked, as it is.
pub fn unwrap<'a>(bytes: &'a [u8], legacy: &[u8]) -> Result<&'a [u8]> {
    if let Some(rest) = bytes.strip_prefix(OBJECT_MAGIC.as_slice()) {
        if rest.len() < HASH_LEN {
            return Err(Error::corrupt(format!(
                "is {} bytes, shorter than its own header (truncated)",
                bytes.len()
            )));
        }
        let (hash, sealed) = rest.split_at(HASH_LEN);
        if blake3::hash(sealed).as_bytes() != hash {
            return Err(Error::corrupt(
                "does not match its checksum (damaged or truncated)",
            ));
        }
        return Ok(sealed);
    }
    if !legacy.is_empty() && bytes.starts_with(legacy) {
        return Ok(bytes);
    }
    Err(Error::corrupt(if bytes.is_empty() {
        "is empty (truncated)".to_string()
    } else {
        "does not start with Arca's object header (damaged, or not written by Arca)".to_string()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flipped_bit_and_every_truncation_is_found() {
        let obj = wrap(b"{\"some\": \"manifest\"}".to_vec());
        assert_eq!(
            unwrap(&obj, LEGACY_MANIFEST).unwrap(),
            b"{\"some\": \"manifest\"}"
        );
        for i in 0..obj.len() {
            for bit in 0..8 {
                let mut bad = obj.clone();
                bad[i] ^= 1 << bit;
                assert!(unwrap(&bad, LEGACY_MANIFEST).is_err(), "byte {i} bit {bit}");
            }
        }
        for n in 0..obj.len() {
            assert!(unwrap(&obj[..n], LEGACY_MANIFEST).is_err(), "cut at {n}");
        }
    }

    #[test]
    fn objects_from_before_checksums_still_read() {
        let old = b"{\"version\": 1}";
        // Returned as it is: nothing vouches for its bytes.
        assert_eq!(unwrap(old, LEGACY_MANIFEST).unwrap(), old);
        assert!(unwrap(b"garbage", LEGACY_MANIFEST).is_err());
        assert!(unwrap(old, LEGACY_INDEX).is_err());
    }
}
