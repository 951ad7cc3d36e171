//! Damage is found, contained and repairable: every kind of repository file
//! damaged by hand (flipped bytes, truncation, deletion, stray files), then
//! `check` names it, new backups do not build on it, and `repair` leads back
//! to a repository where every backup whose data is intact restores whole.

use std::collections::HashMap;
use std::path::PathBuf;

use arca_repo::backend::Backend;
use arca_repo::Location;

use super::common::*;

/// A store-neutral handle on a repository's objects, to damage them.
fn objects(repo: &str) -> Backend {
    match repo.strip_prefix("s3://arca-test/") {
        Some(prefix) => super::seaweed::server().backend(prefix).unwrap(),
        None => Backend::open(&Location::parse(repo).unwrap(), false).unwrap(),
    }
}

fn names(b: &Backend, dir: &str) -> Vec<String> {
    let mut v: Vec<String> = b.list(dir).unwrap().into_iter().map(|e| e.path).collect();
    v.sort();
    v
}

/// Runs arca on the filesystem or on the test SeaweedFS, whatever
/// ARCA_TEST_BACKEND says.
#[derive(Clone, Copy)]
struct On {
    s3: bool,
}

impl On {
    fn cmd(self) -> assert_cmd::Command {
        let mut c = arca_plain();
        if self.s3 {
            super::seaweed::server().set_env(&mut c);
        }
        c
    }

    fn ok(self, args: &[&str]) -> String {
        run_ok(self.cmd(), args)
    }

    fn run(self, args: &[&str]) -> std::process::Output {
        self.cmd().args(args).output().unwrap()
    }

    fn repo(self, env: &Env) -> String {
        let repo = if self.s3 {
            super::seaweed::server().url(&format!("{}/repo", env.id()))
        } else {
            env.s("repo")
        };
        self.ok(&["init", "--repo", &repo]);
        repo
    }

    fn backup(self, repo: &str, db: &std::path::Path) -> String {
        let out = self.ok(&[
            "backup",
            "--repo",
            repo,
            "--source",
            &format!("sqlite://{}", db.display()),
            "--json",
        ]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["id"].as_str().unwrap().to_string()
    }

    fn ids(self, repo: &str) -> Vec<String> {
        let v: serde_json::Value =
            serde_json::from_str(&self.ok(&["list", "--repo", repo, "--json"])).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .filter(|s| s["damaged"].is_null())
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    }

    fn restores_whole(self, env: &Env, repo: &str, id: &str, want: &std::path::Path) {
        let out = env.path("restored.db");
        self.ok(&[
            "restore",
            id,
            "--repo",
            repo,
            "--to",
            &out.to_string_lossy(),
            "--force",
        ]);
        assert!(
            same_file(&out, want),
            "backup {id} restored different bytes"
        );
    }
}

/// A seeded source of numbers (splitmix64): the same trials every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Index,
    Manifest,
    Pack,
    Stray,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Harm {
    Flip,
    Truncate,
    Delete,
}

/// Two backups of a changing database; returns the repository, the
/// database, and for each backup id a copy of the database it holds.
fn repository_with_history(on: On, env: &Env) -> (String, PathBuf, HashMap<String, PathBuf>) {
    let db = env.path("app.db");
    make_db(&db, 2, "WAL");
    let repo = on.repo(env);
    let mut versions = HashMap::new();
    for v in 0..2 {
        let id = on.backup(&repo, &db);
        let copy = env.path(&format!("v{v}.db"));
        checkpoint_copy(&db, &copy);
        versions.insert(id, copy);
        touch_rows(&db, 7 + v);
    }
    (repo, db, versions)
}

/// The database's logical contents as a single file (WAL folded in).
fn checkpoint_copy(db: &std::path::Path, to: &std::path::Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    drop(conn);
    std::fs::copy(db, to).unwrap();
}

/// Damages one object; returns what check must name (None where nothing
/// can name it: a deleted index file, a deleted manifest), or the stray
/// file written.
fn damage(b: &Backend, rng: &mut Rng, kind: Kind, harm: Harm) -> (Option<String>, Option<String>) {
    let dir = match kind {
        Kind::Index => "index",
        Kind::Manifest => "snapshots",
        Kind::Pack => "data",
        Kind::Stray => {
            let dirs = ["index", "snapshots", "data", "data/ab", "locks"];
            let dir = dirs[rng.below(dirs.len() as u64) as usize];
            let files = [".DS_Store", "notes.txt~", "README"];
            let name = files[rng.below(files.len() as u64) as usize];
            let path = format!("{dir}/{name}");
            b.write(&path, b"not Arca's".to_vec()).unwrap();
            return (None, Some(path));
        }
    };
    let all = names(b, dir);
    let path = all[rng.below(all.len() as u64) as usize].clone();
    let mut bytes = b.read(&path).unwrap();
    match harm {
        Harm::Flip => {
            let at = rng.below(bytes.len() as u64) as usize;
            bytes[at] ^= 1 << rng.below(8);
        }
        Harm::Truncate => bytes.truncate(rng.below(bytes.len() as u64) as usize),
        Harm::Delete => {
            b.delete(&path).unwrap();
            return match kind {
                Kind::Pack => (Some(short(&path)), None),
                _ => (None, None),
            };
        }
    }
    b.delete(&path).unwrap();
    b.write(&path, bytes).unwrap();
    let named = match kind {
        Kind::Pack => short(&path),
        _ => path,
    };
    (Some(named), None)
}

/// A pack is named by the first eight digits of its id.
fn short(path: &str) -> String {
    path.rsplit('/').next().unwrap()[..8].to_string()
}

fn campaign(on: On, seed: u64, trials: usize) {
    let mut rng = Rng(seed);
    for trial in 0..trials {
        let kind = [Kind::Index, Kind::Manifest, Kind::Pack, Kind::Stray][trial % 4];
        let harm = [Harm::Flip, Harm::Flip, Harm::Truncate, Harm::Delete][rng.below(4) as usize];
        let what = format!("trial {trial} (seed {seed:#x}): {kind:?} {harm:?}");
        let env = Env::new();
        let (repo, db, mut versions) = repository_with_history(on, &env);
        let b = objects(&repo);
        let (named, stray) = damage(&b, &mut rng, kind, harm);

        // Named: check fails and says which file, or passes where the
        // repository is sound (stray files; a deleted manifest is a delete).
        let check = on.run(&["check", "--repo", &repo, "--read-data"]);
        let out = text(&check);
        assert!(!out.contains("panicked"), "{what}: {out}");
        match (kind, harm) {
            (Kind::Stray, _) | (Kind::Manifest, Harm::Delete) => {
                assert!(check.status.success(), "{what}: {out}")
            }
            _ => {
                assert!(
                    !check.status.success(),
                    "{what}: check found nothing: {out}"
                );
                if let Some(name) = &named {
                    assert!(
                        out.contains(name.as_str()),
                        "{what}: {name} not named: {out}"
                    );
                }
            }
        }

        // Contained: a new backup succeeds and does not depend on the damage.
        touch_rows(&db, 5);
        let id = on.backup(&repo, &db);
        let copy = env.path("v2.db");
        checkpoint_copy(&db, &copy);
        versions.insert(id.clone(), copy.clone());
        // Damage inside a pack is found by reading it (check --read-data);
        // anything else, a backup sees for itself and stores around.
        let inside_a_pack = kind == Kind::Pack && harm == Harm::Flip;
        if !inside_a_pack {
            on.restores_whole(&env, &repo, &id, &copy);
        }

        // Prune either runs or refuses; it never makes things worse.
        let prune = on.run(&["prune", "--repo", &repo]);
        assert!(
            !text(&prune).contains("panicked"),
            "{what}: {}",
            text(&prune)
        );

        // Repaired: check --read-data passes and every backup left restores whole.
        on.ok(&["repair", "index", "--repo", &repo]);
        on.ok(&["repair", "backups", "--repo", &repo, "--read-data"]);
        let out = on.ok(&["check", "--repo", &repo, "--read-data"]);
        assert!(out.contains("no errors"), "{what}: {out}");
        let left = on.ids(&repo);
        for id in &left {
            on.restores_whole(&env, &repo, id, &versions[id]);
        }
        let survivors = match (kind, harm) {
            (Kind::Index | Kind::Stray, _) => 3,
            (Kind::Manifest, _) => 2,
            (Kind::Pack, Harm::Flip) => 0,
            (Kind::Pack, _) => 1,
        };
        assert!(
            left.len() >= survivors,
            "{what}: {} backups left, expected at least {survivors}",
            left.len()
        );
        if !inside_a_pack {
            assert!(left.contains(&id), "{what}: the new backup was lost");
        }
        if let Some(path) = stray {
            assert!(b.exists(&path).unwrap(), "{what}: {path} was removed");
        }
    }
}

#[test]
fn seeded_damage_campaign_on_the_filesystem() {
    campaign(On { s3: false }, 0x5eed_0001, 40);
}

#[test]
fn seeded_damage_campaign_on_seaweedfs() {
    campaign(On { s3: true }, 0x5eed_0002, 8);
}
