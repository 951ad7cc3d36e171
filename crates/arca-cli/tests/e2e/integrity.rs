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

/// A repository on the filesystem with two backups of a database; returns
/// the repository, the database, and the two ids.
fn two_backups(env: &Env) -> (String, PathBuf, String, String) {
    let on = On { s3: false };
    let db = env.path("app.db");
    make_db(&db, 1, "DELETE");
    let repo = on.repo(env);
    let first = on.backup(&repo, &db);
    touch_rows(&db, 3);
    let second = on.backup(&repo, &db);
    (repo, db, first, second)
}

fn cut_short(path: &std::path::Path) {
    let len = std::fs::metadata(path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
}

fn flip(path: &std::path::Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x08;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn one_damaged_manifest_stops_nothing() {
    let env = Env::new();
    let (repo, db, first, second) = two_backups(&env);
    let manifest = PathBuf::from(&repo).join("snapshots").join(&second);
    cut_short(&manifest);

    // list shows it as damaged and goes on.
    let out = ok(&["list", "--repo", &repo]);
    assert!(out.contains(&first[..8]), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("damaged:") && l.contains(&second[..8])),
        "{out}"
    );
    // check names the file.
    let (_, out) = fails(&["check", "--repo", &repo]);
    assert!(out.contains(&format!("snapshots/{second}")), "{out}");
    // A new backup, and restore latest (the new one).
    touch_rows(&db, 5);
    let third = env.backup(&repo, &db)["id"].as_str().unwrap().to_string();
    let out = env.path("latest.db");
    restore(&repo, "latest", &out);
    assert!(same_file(&out, &db));
    // Prune runs, deleting no pack while it cannot tell what the damaged
    // backup needs.
    let packs_before = packs(&repo);
    let o = arca().args(["prune", "--repo", &repo]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("deletes no pack"), "{}", text(&o));
    assert_eq!(packs(&repo), packs_before);
    // The damaged backup can be deleted like any other; then all is sound.
    ok(&["delete", &second[..8], "--repo", &repo]);
    ok(&["prune", "--repo", &repo]);
    ok(&["check", "--repo", &repo, "--read-data"]);
    restore(&repo, &third, &out);
    assert!(same_file(&out, &db));
    let _ = first;
}

#[test]
fn a_damaged_config_is_named_as_the_config() {
    let env = Env::new();
    let (repo, _db, _, _) = two_backups(&env);
    let config = PathBuf::from(&repo).join("config");
    let text_before = std::fs::read_to_string(&config).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text_before).unwrap();
    let key = v["blob_key"].as_str().unwrap();
    let other = if key.starts_with('a') { "b" } else { "a" };
    std::fs::write(
        &config,
        text_before.replacen(key, &format!("{other}{}", &key[1..]), 1),
    )
    .unwrap();
    for args in [
        vec!["check", "--repo", &repo, "--read-data"],
        vec!["list", "--repo", &repo],
    ] {
        let (o, _) = fails(&args);
        let line = error_line(&o);
        assert!(
            line.contains("config") && line.contains("damaged") && line.contains("checksum"),
            "{line}"
        );
    }
}

/// A config naming a format feature this arca does not know, sealed
/// properly (a newer arca's repository, not damage), is refused in one
/// line that names the feature, and nothing is written.
#[test]
fn an_unknown_format_feature_is_refused_as_newer_not_damaged() {
    let env = Env::new();
    let (repo, db, _, _) = two_backups(&env);
    let path = PathBuf::from(&repo).join("config");
    let mut config: arca_repo::config::Config =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(config.features.iter().any(|f| f == "delta-frames"));
    config.features.push("zstd-dictionaries".into());
    std::fs::write(&path, config.encode()).unwrap();
    let before = dir_size(&PathBuf::from(&repo));
    let source = format!("sqlite://{}", db.display());
    for args in [
        vec!["list", "--repo", &repo],
        vec!["backup", "--repo", &repo, "--source", &source],
    ] {
        let (o, _) = fails(&args);
        assert_ne!(o.status.code(), Some(0));
        let line = error_line(&o);
        assert!(
            line.contains(&format!(
                "repository {repo} uses format feature \"zstd-dictionaries\", which this arca ("
            )) && line.ends_with("does not know: upgrade arca to open it"),
            "{line}"
        );
        assert!(!line.contains("damaged"), "{line}");
    }
    assert_eq!(dir_size(&PathBuf::from(&repo)), before);
}

#[test]
fn prune_refuses_a_damaged_index_and_changes_nothing() {
    let env = Env::new();
    let (repo, _db, first, _) = two_backups(&env);
    ok(&["delete", &first[..8], "--repo", &repo]);
    let index_dir = PathBuf::from(&repo).join("index");
    let mut files: Vec<_> = std::fs::read_dir(&index_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    flip(&files[0], 100);
    let before: Vec<_> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let packs_before = packs(&repo);

    let (o, _) = fails(&["prune", "--repo", &repo]);
    let line = error_line(&o);
    assert!(
        line.contains(&files[0].file_name().unwrap().to_string_lossy().to_string())
            && line.contains("repair index"),
        "{line}"
    );
    let after: Vec<_> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert_eq!(
        before, after,
        "prune must leave the index files as they were"
    );
    assert_eq!(packs(&repo), packs_before, "prune must delete no pack");
}

/// What a reader without write access sees: `locks` is a file, so no lock
/// can be written (as on a read-only mount, with read-only credentials or
/// a full disk, which root cannot be made to see by file modes).
#[test]
fn reading_needs_no_write_access() {
    let env = Env::new();
    let (repo, db, _, second) = two_backups(&env);
    let locks = PathBuf::from(&repo).join("locks");
    let _ = std::fs::remove_dir_all(&locks);
    std::fs::write(&locks, b"").unwrap();

    let out = env.path("restored.db");
    for args in [
        vec![
            "restore",
            "latest",
            "--repo",
            &repo,
            "--to",
            out.to_str().unwrap(),
        ],
        vec!["check", "--repo", &repo, "--read-data"],
        vec!["list", "--repo", &repo, &second[..8]],
    ] {
        let o = arca().args(&args).output().unwrap();
        let t = text(&o);
        assert!(o.status.success(), "{args:?}: {t}");
        let warnings: Vec<_> = t
            .lines()
            .filter(|l| l.starts_with("warning: reading without a lock"))
            .collect();
        assert_eq!(warnings.len(), 1, "{args:?}: {t}");
    }
    assert!(same_file(&out, &db));
    // Writing still needs the lock.
    let (o, _) = fails(&[
        "backup",
        "--repo",
        &repo,
        "--source",
        &format!("sqlite://{}", db.display()),
    ]);
    assert!(error_line(&o).contains("locks"), "{}", text(&o));
}

/// A restore from a repository on a read-only mount.
#[test]
fn a_restore_from_a_read_only_mount_works() {
    let env = Env::new();
    let (repo, db, _, _) = two_backups(&env);
    let mount = Mount::new(env.path("mnt"), &["--bind", &repo]);
    mount.remount(&["-o", "remount,bind,ro"]);
    let mnt = &mount.0;
    assert!(
        std::fs::write(mnt.join("probe"), b"x").is_err(),
        "the mount is writable"
    );

    let out = env.path("restored.db");
    let o = arca()
        .args([
            "restore",
            "latest",
            "--repo",
            mnt.to_str().unwrap(),
            "--to",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("warning: reading without a lock"),
        "{}",
        text(&o)
    );
    assert!(same_file(&out, &db));
    ok(&["check", "--repo", mnt.to_str().unwrap(), "--read-data"]);
}

#[test]
fn files_arca_did_not_write_are_ignored_with_a_warning() {
    let env = Env::new();
    let (repo, db, _, _) = two_backups(&env);
    let root = PathBuf::from(&repo);
    let strays = [
        root.join("index/.DS_Store"),
        root.join("snapshots/notes.txt~"),
        root.join("data/README"),
        root.join("locks/.DS_Store"),
    ];
    for s in &strays {
        std::fs::write(s, b"not Arca's").unwrap();
    }
    for args in [
        vec!["list", "--repo", repo.as_str()],
        vec!["check", "--repo", repo.as_str(), "--read-data"],
        vec!["prune", "--repo", repo.as_str()],
    ] {
        let o = arca().args(&args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        assert!(
            text(&o).contains("warning: ignoring"),
            "{args:?}: {}",
            text(&o)
        );
    }
    env.backup(&repo, &db);
    for s in &strays {
        assert!(s.exists(), "{} was removed", s.display());
    }
}

/// A tmpfs of `size` mounted on `dir`, unmounted when dropped.
/// A file system mounted on a directory, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    /// `mount ARGS DIR`, creating DIR.
    fn new(dir: PathBuf, args: &[&str]) -> Mount {
        std::fs::create_dir_all(&dir).unwrap();
        let m = Mount(dir);
        m.remount(args);
        m
    }

    /// A tmpfs of `size` (e.g. `2m`).
    fn tmpfs(dir: PathBuf, size: &str) -> Mount {
        Mount::new(
            dir,
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
        )
    }

    /// `mount ARGS DIR` again on this mount's directory.
    fn remount(&self, args: &[&str]) {
        let o = std::process::Command::new("mount")
            .args(args)
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(o.status.success(), "mount {args:?}: {}", text(&o));
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A database of `mb` MiB that does not compress.
fn incompressible_db(path: &std::path::Path, mb: usize) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("CREATE TABLE b(x BLOB);").unwrap();
    for _ in 0..mb * 4 {
        conn.execute("INSERT INTO b VALUES (randomblob(262144))", [])
            .unwrap();
    }
}

/// A full disk: the OS error is printed once, naming the file being written
/// (the restore's target, not a name inside the backup); a backup says what
/// it leaves behind; a restore leaves no temporary file.
#[test]
fn a_full_disk_is_one_line_naming_the_file() {
    let env = Env::new();
    let db = env.path("big.db");
    incompressible_db(&db, 6);

    // A backup into a repository on a full disk.
    let small = Mount::tmpfs(env.path("small-repo"), "2m");
    let repo = small.0.join("repo").to_string_lossy().into_owned();
    ok(&["init", "--repo", &repo]);
    let (o, _) = fails(&[
        "backup",
        "--repo",
        &repo,
        "--source",
        &format!("sqlite://{}", db.display()),
    ]);
    let line = error_line(&o);
    assert_eq!(line.matches("No space left on device").count(), 1, "{line}");
    assert!(
        line.contains(&repo) && line.contains("arca prune"),
        "{line}"
    );

    // A restore onto a full disk.
    let repo = env.init_local("repo");
    env.backup(&repo, &db);
    let target_dir = Mount::tmpfs(env.path("small-target"), "2m");
    let target = target_dir.0.join("restored.db");
    let (o, _) = fails(&[
        "restore",
        "latest",
        "--repo",
        &repo,
        "--to",
        target.to_str().unwrap(),
    ]);
    let line = error_line(&o);
    assert_eq!(line.matches("No space left on device").count(), 1, "{line}");
    assert!(line.contains(target.to_str().unwrap()), "{line}");
    let left: Vec<_> = std::fs::read_dir(&target_dir.0).unwrap().collect();
    assert!(left.is_empty(), "a failed restore left {left:?}");
}

/// A source that fails `PRAGMA quick_check` is backed up (it may be the
/// best copy there is), with a warning, and marked in the manifest and in
/// `list`; without `--check-source` no check runs.
#[test]
fn backup_check_source_marks_a_damaged_source() {
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 2, "DELETE");
    // Zero one page in the middle of the table: SQLite still opens the file.
    let mut bytes = std::fs::read(&db).unwrap();
    let page = 4096 * 100;
    bytes[page..page + 4096].fill(0);
    std::fs::write(&db, &bytes).unwrap();
    let repo = env.init_local("repo");
    let src = format!("sqlite://{}", db.display());

    let o = arca()
        .args([
            "backup",
            "--repo",
            &repo,
            "--source",
            &src,
            "--check-source",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("warning:") && stderr.contains("quick_check"),
        "{stderr}"
    );
    let snap: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(snap["files"][0]["meta"]["quick_check"].is_array(), "{snap}");
    let out = ok(&["list", "--repo", &repo]);
    assert!(
        out.contains("source check: backup") && out.contains("quick_check"),
        "{out}"
    );
    // The copy is what the source holds, damage and all.
    let restored = env.path("restored.db");
    restore(&repo, "latest", &restored);
    assert!(same_file(&restored, &db));

    // Off by default; a sound source is marked ok.
    let plain = env.backup(&repo, &db);
    assert!(
        plain["files"][0]["meta"]["quick_check"].is_null(),
        "{plain}"
    );
    let sound = env.path("sound.db");
    make_db(&sound, 1, "WAL");
    let v = json(&[
        "backup",
        "--repo",
        &repo,
        "--source",
        &format!("sqlite://{}", sound.display()),
        "--check-source",
        "--json",
    ]);
    assert_eq!(v["files"][0]["meta"]["quick_check"], "ok", "{v}");
}
