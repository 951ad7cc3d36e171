//! Identifiers: 256-bit names for repository files and 128-bit keyed ids for blobs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// The name of a repository file (pack, index, snapshot, lock): 32 random bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub [u8; 32]);

impl Id {
    pub fn random() -> Id {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).expect("the operating system's random source failed");
        Id(b)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first eight hex digits, as listings show them.
    pub fn short(&self) -> String {
        self.to_hex()[..8].to_string()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

impl FromStr for Id {
    type Err = Error;
    fn from_str(s: &str) -> Result<Id> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s, &mut b)
            .map_err(|_| Error::Format(format!("{s:?} is not a 64-digit hex id")))?;
        Ok(Id(b))
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Id, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            Ok(Id(<[u8; 32]>::deserialize(d)?))
        }
    }
}

/// A blob's id: the keyed BLAKE3 hash of its plaintext, truncated to 128 bits.
///
/// 128 bits keep the per-block index and block lists small (a 1 GiB database is
/// 262,144 blocks of 4 KiB); with a secret per-repository key nobody can aim for
/// a collision, and the chance of an accidental one stays below 2^-50 up to
/// petabytes of distinct blocks.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct BlobId(pub [u8; 16]);

pub const BLOB_ID_LEN: usize = 16;

impl BlobId {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_slice(b: &[u8]) -> BlobId {
        let mut id = [0u8; 16];
        id.copy_from_slice(&b[..16]);
        BlobId(id)
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({})", &self.to_hex()[..8])
    }
}

impl Serialize for BlobId {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for BlobId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<BlobId, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            let mut b = [0u8; 16];
            hex::decode_to_slice(&s, &mut b).map_err(serde::de::Error::custom)?;
            Ok(BlobId(b))
        } else {
            Ok(BlobId(<[u8; 16]>::deserialize(d)?))
        }
    }
}

/// Computes blob ids with the repository's secret key.
#[derive(Clone)]
pub struct Hasher {
    key: [u8; 32],
}

impl Hasher {
    pub fn new(key: [u8; 32]) -> Hasher {
        Hasher { key }
    }

    pub fn blob_id(&self, data: &[u8]) -> BlobId {
        let h = blake3::keyed_hash(&self.key, data);
        BlobId::from_slice(h.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_json_and_postcard() {
        let id = Id::random();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<Id>(&json).unwrap(), id);
        let bin = postcard::to_stdvec(&id).unwrap();
        assert_eq!(postcard::from_bytes::<Id>(&bin).unwrap(), id);
        let b = BlobId([7; 16]);
        let bin = postcard::to_stdvec(&b).unwrap();
        assert_eq!(bin.len(), 16);
        assert_eq!(postcard::from_bytes::<BlobId>(&bin).unwrap(), b);
    }

    #[test]
    fn keyed_ids_depend_on_the_key() {
        let a = Hasher::new([1; 32]).blob_id(b"page");
        let b = Hasher::new([2; 32]).blob_id(b"page");
        assert_ne!(a, b);
        assert_eq!(a, Hasher::new([1; 32]).blob_id(b"page"));
    }
}
