//! The repository config: format version, repository id, keys and tuning.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::Id;

pub const FORMAT_VERSION: u32 = 1;
pub const CONFIG_FILE: &str = "config";

/// Index files and manifests behind `ARCAOBJ1` and a BLAKE3 checksum, pack
/// headers with a checksum of their own (`ARCAPCK2` packs).
pub const FEATURE_OBJECT_CHECKSUMS: &str = "object-checksums";
/// Frames compressed against earlier versions of their blocks
/// (`FrameKind::Delta`, tag 2 in pack headers and index files).
pub const FEATURE_DELTA_FRAMES: &str = "delta-frames";

/// The format features this arca reads, and records in every repository
/// it creates. A later change to the files within format version 1 adds a
/// name here; an arca that meets a name it does not know refuses the
/// repository rather than take the new files for damage.
pub const KNOWN_FEATURES: &[&str] = &[FEATURE_OBJECT_CHECKSUMS, FEATURE_DELTA_FRAMES];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub version: u32,
    /// Format features the repository's files may use ([`KNOWN_FEATURES`]).
    /// Configs written before the list have none and are read as before;
    /// left out when empty, so their checksums still verify.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    pub id: Id,
    pub created: String,
    pub chunker: ChunkerConfig,
    pub compression: CompressionConfig,
    pub encryption: EncryptionConfig,
    /// The BLAKE3 key for blob ids, hex. With encryption on, it will live inside
    /// the wrapped key material instead of in clear.
    pub blob_key: String,
    /// BLAKE3 (hex) of this config's JSON without this field: a damaged key
    /// is named as a damaged config, not as hash failures in every pack.
    /// Configs written before it have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChunkerConfig {
    /// Fixed block size in bytes; 0 means the source's own page size.
    pub block_size: u32,
    /// Raw bytes of new blocks compressed together as one frame.
    pub frame_size: u32,
    /// Target size of a pack file.
    pub pack_size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompressionConfig {
    pub algorithm: String,
    pub level: i32,
    /// The level for files of caller-cut blocks (a logical backup's rows);
    /// absent in repositories from before it: `level`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_level: Option<i32>,
}

impl CompressionConfig {
    /// The zstd level of a file's frames: rows (caller-cut blocks) or pages.
    pub fn level_for(&self, rows: bool) -> i32 {
        match self.rows_level {
            Some(l) if rows => l,
            _ => self.level,
        }
    }
}

/// How blobs and metadata files are sealed. Format v1 defines the envelope
/// (`none`: the bytes as they are; an AEAD: nonce, ciphertext, tag) so that
/// encryption needs no format change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EncryptionConfig {
    pub algorithm: String,
}

/// Defaults chosen by the measurements in docs/design/repository.md.
pub const DEFAULT_FRAME_SIZE: u32 = 1024 * 1024;
pub const DEFAULT_PACK_SIZE: u64 = 32 * 1024 * 1024;
pub const DEFAULT_COMPRESSION_LEVEL: i32 = 3;
/// Rows as text (digits, dates, short strings) come out smaller at zstd's
/// fast strategy than at level 3, whose shorter matches cost more than the
/// literals they replace, and compress three times as fast.
pub const DEFAULT_ROWS_COMPRESSION_LEVEL: i32 = 1;
/// Block size for sources that have no page size of their own.
pub const DEFAULT_BLOCK_SIZE: u32 = 64 * 1024;

#[derive(Debug, Clone)]
pub struct InitOptions {
    pub block_size: u32,
    pub frame_size: u32,
    pub pack_size: u64,
    pub compression_level: i32,
    pub rows_compression_level: i32,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            block_size: 0,
            frame_size: DEFAULT_FRAME_SIZE,
            pack_size: DEFAULT_PACK_SIZE,
            compression_level: DEFAULT_COMPRESSION_LEVEL,
            rows_compression_level: DEFAULT_ROWS_COMPRESSION_LEVEL,
        }
    }
}

impl Config {
    pub fn new(opts: &InitOptions) -> Result<Config> {
        if opts.block_size != 0 && !(512..=1 << 20).contains(&opts.block_size) {
            return Err(Error::Format(format!(
                "block size {} is out of range: choose 0 (the source's page size) or 512 to 1048576 bytes",
                opts.block_size
            )));
        }
        if !(4096..=16 << 20).contains(&opts.frame_size) {
            return Err(Error::Format(format!(
                "frame size {} is out of range: choose 4096 to 16777216 bytes",
                opts.frame_size
            )));
        }
        if !(1 << 20..=1 << 30).contains(&opts.pack_size) {
            return Err(Error::Format(format!(
                "pack size {} is out of range: choose 1 MiB to 1 GiB",
                opts.pack_size
            )));
        }
        for level in [opts.compression_level, opts.rows_compression_level] {
            if !(-7..=22).contains(&level) {
                return Err(Error::Format(format!(
                    "compression level {level} is out of range: choose -7 (fastest) to 22 (smallest)"
                )));
            }
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the operating system's random source failed");
        Ok(Config {
            version: FORMAT_VERSION,
            features: KNOWN_FEATURES.iter().map(|f| f.to_string()).collect(),
            id: Id::random(),
            created: jiff::Timestamp::now().to_string(),
            chunker: ChunkerConfig {
                block_size: opts.block_size,
                frame_size: opts.frame_size,
                pack_size: opts.pack_size,
            },
            compression: CompressionConfig {
                algorithm: "zstd".into(),
                level: opts.compression_level,
                rows_level: Some(opts.rows_compression_level),
            },
            encryption: EncryptionConfig {
                algorithm: "none".into(),
            },
            blob_key: hex::encode(key),
            checksum: None,
        }
        .with_checksum())
    }

    fn content_hash(&self) -> String {
        let plain = Config {
            checksum: None,
            ..self.clone()
        };
        let json = serde_json::to_vec(&plain).expect("config encodes");
        blake3::hash(&json).to_hex().to_string()
    }

    fn with_checksum(mut self) -> Config {
        self.checksum = Some(self.content_hash());
        self
    }

    /// The config as stored: pretty JSON with its checksum sealed over its
    /// contents as they are now.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(&self.clone().with_checksum()).expect("config encodes")
    }

    /// Parses a stored config and verifies its checksum.
    pub fn decode(bytes: &[u8]) -> Result<Config> {
        let config: Config = serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt(format!("it does not parse ({e})")))?;
        match &config.checksum {
            Some(sum) if *sum != config.content_hash() => {
                Err(Error::corrupt("its contents do not match its checksum"))
            }
            _ => Ok(config),
        }
    }

    pub fn blob_key(&self) -> Result<[u8; 32]> {
        let mut key = [0u8; 32];
        hex::decode_to_slice(&self.blob_key, &mut key).map_err(|_| {
            Error::corrupt("the config is damaged: its blob_key is not 64 hex digits")
        })?;
        Ok(key)
    }
}

/// What a stored config asks of its reader that this arca cannot give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsupported {
    Version(u32),
    Feature(String),
}

/// Reads a stored config's `version` and `features` alone, before anything
/// else: a config written by a newer arca may hold fields this one cannot
/// re-serialize for the checksum, or no longer parse as this version's, and
/// must be refused as newer, not reported as damaged. `None` when this arca
/// reads both (or they do not parse: [`Config::decode`] names that damage).
pub fn unsupported(bytes: &[u8]) -> Option<Unsupported> {
    #[derive(Deserialize)]
    struct Gate {
        version: u32,
        #[serde(default)]
        features: Vec<String>,
    }
    let gate: Gate = serde_json::from_slice(bytes).ok()?;
    if gate.version != FORMAT_VERSION {
        return Some(Unsupported::Version(gate.version));
    }
    gate.features
        .into_iter()
        .find(|f| !KNOWN_FEATURES.contains(&f.as_str()))
        .map(Unsupported::Feature)
}

/// Seals and opens stored objects according to the config's encryption.
#[derive(Clone)]
pub struct Envelope;

impl Envelope {
    pub fn from_config(cfg: &Config) -> Result<Envelope> {
        match cfg.encryption.algorithm.as_str() {
            "none" => Ok(Envelope),
            other => Err(Error::Format(format!(
                "repository uses encryption {other:?}, which this arca cannot open: upgrade arca"
            ))),
        }
    }

    pub fn seal(&self, plain: Vec<u8>) -> Vec<u8> {
        plain
    }

    pub fn open<'a>(&self, sealed: &'a [u8]) -> Result<std::borrow::Cow<'a, [u8]>> {
        Ok(std::borrow::Cow::Borrowed(sealed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_key_or_setting_is_found() {
        let json =
            serde_json::to_vec_pretty(&Config::new(&InitOptions::default()).unwrap()).unwrap();
        let config = Config::decode(&json).unwrap();
        assert!(config.checksum.is_some());
        let text = String::from_utf8(json.clone()).unwrap();
        let key = &config.blob_key;
        let flipped = if key.starts_with('0') { "1" } else { "0" };
        let bad = text.replacen(key, &format!("{flipped}{}", &key[1..]), 1);
        assert!(Config::decode(bad.as_bytes()).is_err());
        let bad = text.replacen("\"zstd\"", "\"zstx\"", 1);
        assert!(Config::decode(bad.as_bytes()).is_err());
        // Whitespace is not content.
        assert!(Config::decode(text.replace("  ", "   ").as_bytes()).is_ok());
    }

    /// The config of tests/golden/v1-checksums, written before the
    /// features list.
    const BEFORE_FEATURES: &str = r#"{
  "version": 1,
  "id": "eeaceb16133b2d0c9623fc4d9233c26be7f6b7f4e4bf631a7430deb2aef99ff2",
  "created": "2026-12-07T06:34:17.753787856Z",
  "chunker": {
    "block_size": 0,
    "frame_size": 1048576,
    "pack_size": 33554432
  },
  "compression": {
    "algorithm": "zstd",
    "level": 3
  },
  "encryption": {
    "algorithm": "none"
  },
  "blob_key": "fb2e7ccdd178d9c0a6b9181312e6c6cb4c03fdf3630c32c4d1ad74e7e1ad0c2f",
  "checksum": "96d54383062be0ba36db07c84c853bf8ef38bea996e3b154aa75462694708804"
}"#;

    #[test]
    fn configs_from_before_the_features_list_read_as_before() {
        let config = Config::decode(BEFORE_FEATURES.as_bytes()).unwrap();
        assert!(config.features.is_empty());
        assert_eq!(unsupported(BEFORE_FEATURES.as_bytes()), None);
        // Sealed again, it is the same config byte for byte.
        assert_eq!(String::from_utf8(config.encode()).unwrap(), BEFORE_FEATURES);
        // The checksum still covers it.
        let bad = BEFORE_FEATURES.replacen("33554432", "33554433", 1);
        assert!(Config::decode(bad.as_bytes()).is_err());
    }

    #[test]
    fn new_configs_record_the_features_under_their_checksum() {
        let stored = Config::new(&InitOptions::default()).unwrap().encode();
        let config = Config::decode(&stored).unwrap();
        assert_eq!(config.features, KNOWN_FEATURES);
        assert_eq!(unsupported(&stored), None);
        let text = String::from_utf8(stored).unwrap();
        assert!(text.contains("\"delta-frames\""), "{text}");
        // Dropping a feature is a change to the config like any other.
        let bad = text.replacen("\"delta-frames\"", "\"object-checksums\"", 1);
        assert!(Config::decode(bad.as_bytes()).is_err());
    }

    #[test]
    fn an_unknown_feature_or_version_is_found_before_the_checksum() {
        let mut config = Config::decode(BEFORE_FEATURES.as_bytes()).unwrap();
        config.features = vec!["delta-frames".into(), "zstd-dictionaries".into()];
        let sealed = config.encode();
        // Sealed properly: a sound config of a newer format.
        assert!(Config::decode(&sealed).is_ok());
        assert_eq!(
            unsupported(&sealed),
            Some(Unsupported::Feature("zstd-dictionaries".into()))
        );
        // A newer arca's checksum covers fields this arca drops, so here
        // it does not verify: still refused as newer, not as damaged.
        let text = String::from_utf8(sealed).unwrap();
        let sum = Config::decode(text.as_bytes()).unwrap().checksum.unwrap();
        let newer = text
            .replacen("{", "{\n  \"wrapped_keys\": [],", 1)
            .replacen(&sum, &blake3::hash(b"newer").to_hex(), 1);
        assert!(Config::decode(newer.as_bytes()).is_err());
        assert_eq!(
            unsupported(newer.as_bytes()),
            Some(Unsupported::Feature("zstd-dictionaries".into()))
        );
        let v2 = BEFORE_FEATURES.replacen("\"version\": 1", "\"version\": 2", 1);
        assert_eq!(unsupported(v2.as_bytes()), Some(Unsupported::Version(2)));
        // What does not parse is left to decode, which names the damage.
        assert_eq!(unsupported(b"{\"version\": 1, \"features\": 7}"), None);
        assert_eq!(unsupported(b"garbage"), None);
    }
}
