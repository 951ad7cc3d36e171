//! Repositories written by earlier arcas, committed under tests/golden (see
//! make.sh there): today's arca must check and restore them byte for byte,
//! so a format change that breaks old repositories fails here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use arca_repo::pack::FrameKind;
use arca_repo::{Location, Repository};
use sha2::{Digest, Sha256};

use super::common::*;

/// Every golden repository: before the objects' checksums, and with them.
const GOLDEN: &[&str] = &["v1-before-checksums", "v1-checksums"];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// A copy of golden repository `name` (a reader writes locks) and the
/// SHA-256 of the database each backup holds.
fn copy_of(env: &Env, name: &str) -> (String, HashMap<String, String>) {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &to.join(e.file_name()));
            } else {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }
    let to = env.path(name);
    copy(&golden_dir().join(name), &to);
    let expected = std::fs::read(golden_dir().join(format!("{name}.expected.json"))).unwrap();
    (
        to.to_string_lossy().into_owned(),
        serde_json::from_slice(&expected).unwrap(),
    )
}

fn restores_known_bytes(env: &Env, repo: &str, expected: &HashMap<String, String>) {
    for (id, sha) in expected {
        let out = env.path("restored.db");
        restore(repo, id, &out);
        let got = format!("{:x}", Sha256::digest(std::fs::read(&out).unwrap()));
        assert_eq!(&got, sha, "backup {id} of {repo}");
    }
}

#[test]
fn repositories_of_every_format_still_check_and_restore() {
    for name in GOLDEN {
        let env = Env::new();
        let (repo, expected) = copy_of(&env, name);
        assert_eq!(expected.len(), 2);
        // The second backup holds delta frames: they are part of the format too.
        let r = Repository::open(&Location::parse(&repo).unwrap()).unwrap();
        let index = r.load_index().unwrap();
        assert!(
            index
                .packs
                .iter()
                .flat_map(|p| &p.frames)
                .any(|f| matches!(f.kind, FrameKind::Delta { .. })),
            "{name} holds no delta frame"
        );
        let out = ok(&["check", "--repo", &repo, "--read-data"]);
        assert!(out.contains("no errors: 2 backups"), "{name}: {out}");
        restores_known_bytes(&env, &repo, &expected);
    }
}

/// `repair index` rewrites an index from before the checksums in the
/// checked form, and the repository still restores whole.
#[test]
fn repair_index_brings_an_old_index_to_the_checked_form() {
    let env = Env::new();
    let (repo, expected) = copy_of(&env, "v1-before-checksums");
    ok(&["repair", "index", "--repo", &repo]);
    let files: Vec<_> = std::fs::read_dir(Path::new(&repo).join("index"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(files.len(), 1);
    assert!(files[0].starts_with(arca_repo::object::OBJECT_MAGIC));
    ok(&["check", "--repo", &repo, "--read-data"]);
    restores_known_bytes(&env, &repo, &expected);
}
