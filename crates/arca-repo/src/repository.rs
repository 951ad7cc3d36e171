//! An opened repository: config, keys, and the operations on its files.

use std::collections::HashMap;
use std::time::Duration;

use crate::backend::{file_name, Backend, ListEntry, Location, TMP_DIR};
use crate::cancel::Cancel;
use crate::config::{
    self, Config, Envelope, InitOptions, Unsupported, CONFIG_FILE, FORMAT_VERSION,
};
use crate::error::{Error, Result};
use crate::id::{BlobId, Hasher, Id};
use crate::index::{Damaged, Index, IndexFile, INDEX_DIR};
use crate::lock::{self, LockGuard};
use crate::manifest::{decode_list, Manifest, MANIFEST_DIR};
use crate::pack::{pack_path, BlobKind, DATA_DIR};

pub struct Repository {
    pub(crate) backend: Backend,
    pub config: Config,
    pub(crate) env: Envelope,
    pub(crate) hasher: Hasher,
    /// How long to wait for a conflicting lock.
    pub lock_wait: Duration,
    /// Tripped, every long operation on this handle stops at its next step
    /// (see [`crate::cancel`]).
    pub cancel: Cancel,
}

impl Repository {
    /// Creates a repository. Refuses a non-empty directory (or bucket
    /// prefix) that is not one.
    pub fn init(location: &Location, opts: &InitOptions) -> Result<Repository> {
        let loc = location.to_string();
        if location.remote_store().is_some() {
            return Repository::init_remote(location, opts);
        }
        if let Some(path) = location.local_path() {
            if path.join(CONFIG_FILE).exists() {
                return Err(Error::AlreadyExists { location: loc });
            }
            if path.exists() {
                if !path.is_dir() {
                    return Err(Error::NotEmpty { location: loc });
                }
                let mut entries = std::fs::read_dir(path).map_err(|e| Error::io(path, e))?;
                if entries.next().is_some() {
                    return Err(Error::NotEmpty { location: loc });
                }
            }
        }
        let config = Config::new(opts)?;
        let backend = Backend::open(location, true)?;
        if backend.exists(CONFIG_FILE)? {
            return Err(Error::AlreadyExists { location: loc });
        }
        backend.write(CONFIG_FILE, config.encode())?;
        Repository::from_parts(backend, config)
    }

    /// On an object store: a prefix can hold objects without being a
    /// repository, and a PUT is atomic, so the `config` object alone says
    /// whether one is there.
    fn init_remote(location: &Location, opts: &InitOptions) -> Result<Repository> {
        let loc = location.to_string();
        let config = Config::new(opts)?;
        let backend = Backend::open(location, true)?;
        // A bucket that does not exist yet is empty; some stores (SeaweedFS,
        // MinIO with auto-create) make it on the first PUT, the others fail
        // that PUT with a message naming the bucket.
        match backend.probe_read(CONFIG_FILE) {
            Ok(Some(_)) => return Err(Error::AlreadyExists { location: loc }),
            Ok(None) => {}
            Err(e) if e.is_missing_bucket() => {}
            Err(e) => return Err(e),
        }
        match backend.is_empty() {
            Ok(true) => {}
            Ok(false) => return Err(Error::NotEmpty { location: loc }),
            Err(e) if e.is_missing_bucket() => {}
            Err(e) => return Err(e),
        }
        backend.write(CONFIG_FILE, config.encode())?;
        Repository::from_parts(backend, config)
    }

    pub fn open(location: &Location) -> Result<Repository> {
        let loc = location.to_string();
        if location.remote_store().is_some() {
            let backend = Backend::open(location, false)?;
            let Some(bytes) = backend.probe_read(CONFIG_FILE)? else {
                return Err(if backend.is_empty()? {
                    Error::NoRepository { location: loc }
                } else {
                    Error::NotARepository { location: loc }
                });
            };
            return Repository::from_config_bytes(backend, &loc, &bytes);
        }
        if let Some(path) = location.local_path() {
            if !path.exists() {
                return Err(Error::NoRepository { location: loc });
            }
            if !path.join(CONFIG_FILE).is_file() {
                return Err(Error::NotARepository { location: loc });
            }
        }
        let backend = Backend::open(location, false)?;
        let bytes = match backend.read(CONFIG_FILE) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Err(Error::NotARepository { location: loc }),
            Err(e) => return Err(e),
        };
        Repository::from_config_bytes(backend, &loc, &bytes)
    }

    fn from_config_bytes(backend: Backend, loc: &str, bytes: &[u8]) -> Result<Repository> {
        let loc = loc.to_string();
        // Version and features before the checksum: a newer arca's config
        // is refused as newer, never reported as damaged.
        match config::unsupported(bytes) {
            Some(Unsupported::Version(found)) => {
                return Err(Error::UnsupportedVersion {
                    location: loc,
                    found,
                    supported: FORMAT_VERSION,
                })
            }
            Some(Unsupported::Feature(feature)) => {
                return Err(Error::UnknownFeature {
                    location: loc,
                    feature,
                })
            }
            None => {}
        }
        let config = Config::decode(bytes).map_err(|e| {
            Error::corrupt(format!(
                "the repository's config file {loc}/config is damaged: {}; put back a copy of it (it never changes after `arca init`)",
                e.detail()
            ))
        })?;
        Repository::from_parts(backend, config)
    }

    fn from_parts(backend: Backend, config: Config) -> Result<Repository> {
        let env = Envelope::from_config(&config)?;
        let hasher = Hasher::new(config.blob_key()?);
        Ok(Repository {
            backend,
            config,
            env,
            hasher,
            lock_wait: Duration::from_secs(300),
            cancel: Cancel::new(),
        })
    }

    pub fn location(&self) -> &Location {
        self.backend.location()
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub fn lock_shared(&self, command: &str) -> Result<LockGuard> {
        lock::acquire(&self.backend, false, command, self.lock_wait, &self.cancel)
    }

    /// A shared lock for a command that only reads. Where no lock can be
    /// written (a read-only mount or credentials, a full disk) the read goes
    /// on without one and says so: restoring from storage this host cannot
    /// write is the commonest disaster recovery. Every block is verified, so
    /// a prune running meanwhile can make such a read fail, never return
    /// wrong data.
    pub fn lock_for_reading(&self, command: &str) -> Result<Option<LockGuard>> {
        match self.lock_shared(command) {
            Ok(guard) => Ok(Some(guard)),
            Err(Error::LockUnwritable(e)) => {
                tracing::warn!(
                    "reading without a lock: {e}; a prune started meanwhile would make this {command} fail, not return wrong data"
                );
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub fn lock_exclusive(&self, command: &str) -> Result<LockGuard> {
        lock::acquire(&self.backend, true, command, self.lock_wait, &self.cancel)
    }

    /// Loads the index for a backup or restore. A damaged index file is
    /// left out (its blobs count as not stored, so a backup stores them
    /// again rather than trust it) and recorded in [`Index::damaged`]. Packs that are missing or not at their indexed size are left out
    /// too: a backup stores their blocks again instead of depending on
    /// them, and a restore reads the copies it stored. That costs one
    /// listing of `data/`; damage inside a pack is for `check --read-data`.
    pub fn load_index(&self) -> Result<Index> {
        let present: HashMap<Id, u64> = self.stored_packs()?.into_iter().collect();
        self.read_index_of(true, Some(&present))
    }

    /// [`Repository::load_index`], warning of damaged files or not (check
    /// and repair report them themselves).
    pub(crate) fn read_index(&self, warn: bool) -> Result<Index> {
        self.read_index_of(warn, None)
    }

    fn read_index_of(&self, warn: bool, present: Option<&HashMap<Id, u64>>) -> Result<Index> {
        let mut index = Index::default();
        let mut absent = IndexFile::default();
        for id in self.index_files()? {
            match self.read_index_file(&id) {
                Ok(mut file) => {
                    if let Some(present) = present {
                        let (kept, gone) = std::mem::take(&mut file.packs)
                            .into_iter()
                            .partition(|p| present.get(&p.id) == Some(&p.size));
                        file.packs = kept;
                        absent.packs.extend::<Vec<_>>(gone);
                    }
                    index.add_file(file);
                    index.files.push(id);
                }
                Err(Error::Corrupt(e)) => {
                    if warn {
                        tracing::warn!("{e}; it is left out: run `arca repair index`");
                    }
                    index.damaged.push(Damaged {
                        path: format!("{INDEX_DIR}/{}", id.to_hex()),
                        problem: e,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        if !absent.packs.is_empty() {
            tracing::warn!(
                "{} packs the index names are missing or truncated: a backup stores their blocks again; run `arca check`",
                absent.packs.len()
            );
            let mut gone = Index::default();
            gone.add_file(absent);
            gone.seal();
            index.absent = Some(Box::new(gone));
        }
        index.seal();
        Ok(index)
    }

    /// The packs in `data/` and their sizes.
    pub fn stored_packs(&self) -> Result<Vec<(Id, u64)>> {
        Ok(self
            .pack_files()?
            .into_iter()
            .map(|(id, e)| (id, e.size))
            .collect())
    }

    /// The pack files in `data/`, as listed.
    pub(crate) fn pack_files(&self) -> Result<Vec<(Id, ListEntry)>> {
        self.named_in(DATA_DIR)
    }

    pub fn index_files(&self) -> Result<Vec<Id>> {
        self.ids_in(INDEX_DIR)
    }

    /// The ids of the files in `dir`.
    fn ids_in(&self, dir: &str) -> Result<Vec<Id>> {
        Ok(self.named_in(dir)?.into_iter().map(|(id, _)| id).collect())
    }

    /// The files in `dir` by id. Files Arca did not write (their name is
    /// not an id: `.DS_Store`, an editor's backup) are passed over with a
    /// warning.
    fn named_in(&self, dir: &str) -> Result<Vec<(Id, ListEntry)>> {
        let mut files = Vec::new();
        for entry in self.backend.list(dir)? {
            match parse_name(&entry.path) {
                Ok(id) => files.push((id, entry)),
                Err(_) => tracing::warn!(
                    "ignoring {}: Arca did not write it (its name is not an id)",
                    entry.path
                ),
            }
        }
        Ok(files)
    }

    pub fn read_index_file(&self, id: &Id) -> Result<IndexFile> {
        let path = format!("{INDEX_DIR}/{}", id.to_hex());
        let bytes = self.backend.read(&path)?;
        IndexFile::decode(&self.env, bytes)
            .map_err(|e| Error::corrupt(format!("index file {path} {}", e.detail())))
    }

    /// Writes an index file; returns its size in bytes.
    pub fn write_index_file(&self, file: &IndexFile) -> Result<u64> {
        let bytes = file.encode(&self.env)?;
        let n = bytes.len() as u64;
        self.backend
            .write(&format!("{INDEX_DIR}/{}", Id::random().to_hex()), bytes)?;
        Ok(n)
    }

    pub fn delete_index_file(&self, id: &Id) -> Result<()> {
        self.backend.delete(&format!("{INDEX_DIR}/{}", id.to_hex()))
    }

    pub fn manifest_ids(&self) -> Result<Vec<Id>> {
        self.ids_in(MANIFEST_DIR)
    }

    pub fn read_manifest(&self, id: &Id) -> Result<Manifest> {
        let path = Manifest::path(id);
        let bytes = self.backend.read(&path)?;
        let snap = Manifest::decode(&self.env, bytes)
            .map_err(|e| Error::corrupt(format!("backup manifest {path} {}", e.detail())))?;
        if snap.id != *id {
            return Err(Error::corrupt(format!(
                "backup manifest {path} holds backup {}, not the one its name says",
                snap.id
            )));
        }
        Ok(snap)
    }

    /// All snapshots, oldest first. Damaged manifests are passed over with
    /// a warning: one bad file must not stop every backup and restore.
    pub fn manifests(&self) -> Result<Vec<Manifest>> {
        let (snaps, damaged) = self.manifests_and_damage()?;
        for d in &damaged {
            tracing::warn!("{}; passed over (`arca delete` removes it)", d.problem);
        }
        Ok(snaps)
    }

    /// All readable snapshots, oldest first, and the manifests that cannot
    /// be read for damage.
    pub fn manifests_and_damage(&self) -> Result<(Vec<Manifest>, Vec<Damaged>)> {
        let mut snaps = Vec::new();
        let mut damaged = Vec::new();
        for id in self.manifest_ids()? {
            match self.read_manifest(&id) {
                Ok(s) => snaps.push(s),
                Err(Error::Corrupt(problem)) => damaged.push(Damaged {
                    path: Manifest::path(&id),
                    problem,
                }),
                Err(e) if e.is_not_found() => {} // deleted meanwhile
                Err(e) => return Err(e),
            }
        }
        snaps.sort_by_key(|s| s.start_time);
        Ok((snaps, damaged))
    }

    /// Finds a snapshot by `latest` (the newest readable one), a full id,
    /// or a unique id prefix.
    pub fn find_manifest(&self, spec: &str) -> Result<Manifest> {
        if spec == "latest" {
            return self.manifests()?.pop().ok_or(Error::NoBackups);
        }
        self.read_manifest(&self.resolve_id(spec)?)
    }

    /// The id of the one snapshot `spec` (a full id or a unique prefix)
    /// names, without reading its manifest, so a damaged one can be deleted.
    pub fn resolve_id(&self, spec: &str) -> Result<Id> {
        let spec_lc = spec.to_ascii_lowercase();
        if spec_lc.is_empty() || !spec_lc.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::BackupNotFound(spec.to_string()));
        }
        let matches: Vec<Id> = self
            .manifest_ids()?
            .into_iter()
            .filter(|id| id.to_hex().starts_with(&spec_lc))
            .collect();
        match matches.as_slice() {
            [id] => Ok(*id),
            [] => Err(Error::BackupNotFound(spec.to_string())),
            _ => Err(Error::AmbiguousId(spec.to_string())),
        }
    }

    pub fn write_manifest(&self, snap: &Manifest) -> Result<u64> {
        let bytes = snap.encode(&self.env)?;
        let n = bytes.len() as u64;
        self.backend.write(&Manifest::path(&snap.id), bytes)?;
        Ok(n)
    }

    pub fn delete_manifest(&self, id: &Id) -> Result<()> {
        self.backend.delete(&Manifest::path(id))
    }

    /// Reads one frame's sealed bytes from its pack.
    pub fn read_frame(&self, pack_id: &Id, offset: u64, len: u32) -> Result<bytes::Bytes> {
        self.backend
            .read_range(&pack_path(pack_id), offset, len as u64)
    }

    /// Reads one blob, verifying it.
    pub fn read_blob(&self, index: &Index, id: &BlobId) -> Result<Vec<u8>> {
        let loc = index
            .get(id)
            .ok_or_else(|| Error::corrupt(format!("blob {id} is not in the index")))?;
        let (pack, frame) = index.frame(&loc);
        let sealed = self.read_frame(&pack.id, frame.offset, frame.len)?;
        let raw = crate::frames::Frames::new(self, index, 0)
            .open(frame, &sealed)
            .map_err(|e| Error::corrupt(format!("pack {}: {e}", pack.id)))?;
        let blob = raw[loc.offset as usize..(loc.offset + loc.len) as usize].to_vec();
        if self.hasher.blob_id(&blob) != *id {
            return Err(Error::corrupt(format!(
                "blob {id} in pack {} fails its hash",
                pack.id
            )));
        }
        Ok(blob)
    }

    /// Reads a list blob: the block ids it holds.
    pub fn read_list(&self, index: &Index, id: &BlobId) -> Result<Vec<BlobId>> {
        if let Some(loc) = index.get(id) {
            if index.kind(&loc) != BlobKind::List {
                return Err(Error::corrupt(format!("blob {id} is not a block list")));
            }
        }
        decode_list(&self.read_blob(index, id)?)
    }

    /// Names of leftover temporary files (from writes cut off by a crash).
    pub fn temp_files(&self) -> Result<Vec<String>> {
        Ok(self
            .backend
            .list(TMP_DIR)?
            .into_iter()
            .map(|e| e.path)
            .collect())
    }

    pub fn hasher(&self) -> &Hasher {
        &self.hasher
    }

    pub fn envelope(&self) -> &Envelope {
        &self.env
    }
}

/// Parses the id in a repository file's name.
pub(crate) fn parse_name(path: &str) -> Result<Id> {
    file_name(path)
        .parse()
        .map_err(|_| Error::corrupt(format!("{path} is not named by an id")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repository_with_an_unknown_feature_is_refused_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("r");
        let loc = Location::parse(root.to_str().unwrap()).unwrap();
        let repo = Repository::init(&loc, &InitOptions::default()).unwrap();
        assert_eq!(repo.config.features, config::KNOWN_FEATURES);
        drop(repo);
        let mut config = Repository::open(&loc).unwrap().config;
        config.features.push("zstd-dictionaries".into());
        std::fs::write(root.join(CONFIG_FILE), config.encode()).unwrap();
        let err = Repository::open(&loc).err().expect("refused");
        assert!(matches!(err, Error::UnknownFeature { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "repository {} uses format feature \"zstd-dictionaries\", which this arca ({}) does not know: upgrade arca to open it",
                root.display(),
                env!("CARGO_PKG_VERSION")
            )
        );
    }
}
