use std::collections::HashSet;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;

use super::common::*;

/// Two backups where the second wrote packs of its own; returns the new packs.
fn two_backups(env: &Env) -> (String, serde_json::Value, serde_json::Value, Vec<PathBuf>) {
    let db = env.path("app.db");
    make_db(&db, 6, "DELETE");
    let repo = env.init_local("repo");
    let first = env.backup(&repo, &db);
    std::fs::copy(&db, env.path("first.db")).unwrap();
    let old: HashSet<PathBuf> = packs(&repo).into_iter().collect();
    touch_rows(&db, 3);
    let second = env.backup(&repo, &db);
    let new: Vec<PathBuf> = packs(&repo)
        .into_iter()
        .filter(|p| !old.contains(p))
        .collect();
    assert!(!new.is_empty());
    (repo, first, second, new)
}

fn restore_first_still_works(env: &Env, repo: &str, first: &serde_json::Value) {
    let out = env.path("restored-first.db");
    restore(repo, first["id"].as_str().unwrap(), &out);
    assert!(same_file(&env.path("first.db"), &out));
}

#[test]
fn flipped_byte_in_a_pack_is_found_and_refused() {
    let env = Env::new();
    let (repo, first, second, new_packs) = two_backups(&env);
    let pack = &new_packs[0];
    let len = std::fs::metadata(pack).unwrap().len();
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(pack)
        .unwrap();
    let at = len / 3;
    let mut b = [0u8; 1];
    use std::io::Read;
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[b[0] ^ 0x40]).unwrap();
    drop(f);

    let (_, out) = fails(&["check", "--repo", &repo, "--read-data"]);
    let sid = &second["id"].as_str().unwrap()[..8];
    assert!(
        out.lines()
            .any(|l| l.contains(sid) && l.contains("app.db") && l.contains("damaged")),
        "check must name the damaged backup and file: {out}"
    );
    let target = env.path("second.db");
    let (_, err) = fails(&[
        "restore",
        second["id"].as_str().unwrap(),
        "--repo",
        &repo,
        "--to",
        &target.to_string_lossy(),
    ]);
    assert!(err.contains("damaged"), "{err}");
    assert!(
        !target.exists(),
        "a refused restore must leave no file behind"
    );
    let leftovers: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("arca-restore"))
        .collect();
    assert!(leftovers.is_empty());

    restore_first_still_works(&env, &repo, &first);
    // Dropping the damaged backup and pruning makes the repository sound again.
    ok(&["delete", second["id"].as_str().unwrap(), "--repo", &repo]);
    ok(&["prune", "--repo", &repo]);
    ok(&["check", "--repo", &repo, "--read-data"]);
    restore_first_still_works(&env, &repo, &first);
}

#[test]
fn truncated_pack_is_found_without_reading_data() {
    let env = Env::new();
    let (repo, first, second, new_packs) = two_backups(&env);
    let pack = &new_packs[0];
    let len = std::fs::metadata(pack).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(pack).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);

    let (_, out) = fails(&["check", "--repo", &repo]);
    let sid = &second["id"].as_str().unwrap()[..8];
    assert!(out.contains("truncated"), "{out}");
    assert!(
        out.lines().any(|l| l.contains(sid) && l.contains("app.db")),
        "{out}"
    );
    let (_, out) = fails(&["list", "--repo", &repo, sid]);
    assert!(out.contains("missing"), "{out}");
    let target = env.path("second.db");
    fails(&[
        "restore",
        sid,
        "--repo",
        &repo,
        "--to",
        &target.to_string_lossy(),
    ]);
    assert!(!target.exists());

    restore_first_still_works(&env, &repo, &first);
    ok(&["delete", sid, "--repo", &repo]);
    ok(&["prune", "--repo", &repo]);
    ok(&["check", "--repo", &repo, "--read-data"]);
}
