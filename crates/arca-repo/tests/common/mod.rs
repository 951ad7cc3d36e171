//! Helpers shared by the repository's integration tests.

use arca_repo::config::InitOptions;
use arca_repo::{BackupSession, Location, Manifest, NewManifest, NoProgress, Repository};

/// A new repository under `dir/repo`, with `opts`.
pub fn init(dir: &std::path::Path, opts: &InitOptions) -> Repository {
    let loc = Location::parse(&dir.join("repo").to_string_lossy()).unwrap();
    Repository::init(&loc, opts).unwrap()
}

/// Backs up `files` (name, bytes) in blocks of `page` bytes, each against
/// the file of the same name in `base` if there is one, and commits.
pub fn back_up(
    repo: &Repository,
    files: &[(&str, &[u8])],
    page: u32,
    base: Option<&Manifest>,
) -> Manifest {
    let mut session = BackupSession::start(repo, 2).unwrap();
    for (name, bytes) in files {
        let mut reader: &[u8] = bytes;
        let prev = base.and_then(|b| b.files.iter().find(|f| f.path == *name));
        session
            .add_file(
                name,
                &mut reader,
                bytes.len() as u64,
                page,
                serde_json::Value::Null,
                prev,
                &NoProgress,
            )
            .unwrap();
    }
    session
        .commit(NewManifest {
            engine: "test".into(),
            source: "test://files".into(),
            kind: "physical".into(),
            name: None,
            tags: vec![],
            start_time: jiff::Timestamp::now(),
            meta: serde_json::Value::Null,
        })
        .unwrap()
}
