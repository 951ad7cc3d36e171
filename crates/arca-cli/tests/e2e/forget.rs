//! `arca forget`: a retention policy applied to real backups.

use std::path::Path;

use super::common::*;

/// The ids `arca list --json` shows, oldest first (damaged: last).
fn listed(repo: &str) -> Vec<String> {
    json(&["list", "--repo", repo, "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

/// Four backups of a database rewritten between them; returns the ids,
/// oldest first, and a copy of the database as each backup took it.
fn four_backups(env: &Env, repo: &str, db: &Path) -> (Vec<String>, Vec<std::path::PathBuf>) {
    let mut ids = Vec::new();
    let mut copies = Vec::new();
    for i in 0..4 {
        if i > 0 {
            touch_rows(db, 1);
        }
        ids.push(env.backup(repo, db)["id"].as_str().unwrap().to_string());
        let copy = env.path(&format!("as-of-{i}.db"));
        std::fs::copy(db, &copy).unwrap();
        copies.push(copy);
    }
    (ids, copies)
}

#[test]
fn forget_keeps_the_newest_and_prunes_the_rest() {
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 2, "DELETE");
    let repo = env.init("repo");
    let (ids, copies) = four_backups(&env, &repo, &db);
    assert_eq!(listed(&repo), ids);

    // A dry run: every decision, nothing deleted.
    let out = ok(&["forget", "--repo", &repo, "--keep-last", "2", "--dry-run"]);
    let line = |id: &str| {
        out.lines()
            .find(|l| l.contains(&id[..8]))
            .unwrap_or_else(|| panic!("no line for {id}: {out}"))
            .to_string()
    };
    for old in &ids[..2] {
        assert!(line(old).contains("| forget"), "{out}");
    }
    assert!(line(&ids[2]).contains("keep: last 2 "), "{out}");
    assert!(
        line(&ids[3]).contains("keep: last 2, newest, minimum 1"),
        "{out}"
    );
    assert!(
        out.contains("dry run: would forget 2 of 4 backups and keep 2; nothing was deleted"),
        "{out}"
    );
    assert_eq!(listed(&repo), ids);

    let plan = json(&[
        "forget",
        "--repo",
        &repo,
        "--keep-last",
        "2",
        "--dry-run",
        "--json",
    ]);
    let decisions = plan["decisions"].as_array().unwrap();
    let decided: Vec<(&str, bool)> = decisions
        .iter()
        .map(|d| (d["id"].as_str().unwrap(), d["keep"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        decided,
        [
            (ids[0].as_str(), false),
            (ids[1].as_str(), false),
            (ids[2].as_str(), true),
            (ids[3].as_str(), true),
        ]
    );
    assert_eq!(decisions[3]["reasons"][1], "newest", "{plan}");
    assert_eq!(plan["deleted"].as_array().unwrap().len(), 0, "{plan}");
    assert_eq!(listed(&repo), ids);

    // For real, then prune.
    let before = repo_size(&repo);
    let done = json(&[
        "forget",
        "--repo",
        &repo,
        "--keep-last",
        "2",
        "--prune",
        "--json",
    ]);
    assert_eq!(
        done["deleted"],
        serde_json::json!([ids[0], ids[1]]),
        "{done}"
    );
    assert!(
        done["pruned"]["bytes_freed"].as_u64().unwrap() > 0,
        "{done}"
    );
    assert_eq!(listed(&repo), ids[2..]);
    assert!(repo_size(&repo) < before);
    ok(&["check", "--repo", &repo, "--read-data"]);
    for (id, copy) in ids[2..].iter().zip(&copies[2..]) {
        let out = env.path(&format!("restored-{}.db", &id[..8]));
        restore(&repo, id, &out);
        assert!(same_file(&out, copy));
        integrity_ok(&out);
    }

    // Once more: nothing left to forget.
    let out = ok(&["forget", "--repo", &repo, "--keep-last", "2"]);
    assert!(out.contains("forgot 0 of 2 backups, kept 2"), "{out}");
    assert_eq!(listed(&repo), ids[2..]);
}

#[test]
fn forget_refuses_a_bad_policy_and_deletes_nothing() {
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 1, "DELETE");
    let repo = env.init("repo");
    let (ids, _) = four_backups(&env, &repo, &db);
    for days in ["6", "366", "0"] {
        let o = arca()
            .args(["forget", "--repo", &repo, "--purge-after-days", days])
            .output()
            .unwrap();
        let e = error_line(&o);
        assert!(
            e.contains("--purge-after-days") && e.contains("7 to 365"),
            "{e}"
        );
    }
    // No rule at all, or only rules that keep nothing.
    for args in [&[][..], &["--keep-last", "0"][..], &["--keep-min", "3"][..]] {
        let o = arca()
            .args(["forget", "--repo", &repo])
            .args(args)
            .output()
            .unwrap();
        let e = error_line(&o);
        assert!(
            e.contains("give at least one of --purge-after-days, --keep-last"),
            "{e}"
        );
    }
    let o = arca()
        .args(["forget", "--repo", &repo, "--keep-last", "1"])
        .args(["--timezone", "Mars/Olympus_Mons"])
        .output()
        .unwrap();
    assert!(error_line(&o).contains("--timezone Mars/Olympus_Mons"));
    let o = arca()
        .args(["forget", "--repo", &repo, "--keep-last", "1"])
        .args(["--source", "sqlite:///no/such.db"])
        .output()
        .unwrap();
    assert!(error_line(&o).contains("no backup of sqlite:///no/such.db"));
    assert_eq!(listed(&repo), ids);
    // A purge period that holds every backup keeps them all.
    let out = ok(&["forget", "--repo", &repo, "--purge-after-days", "7"]);
    assert!(out.contains("forgot 0 of 4 backups, kept 4"), "{out}");
    assert_eq!(listed(&repo), ids);
}

/// `--source` takes the policy to one source; without it every source
/// gets it on its own.
#[test]
fn forget_applies_the_policy_per_source() {
    let env = Env::new();
    let (a, b) = (env.path("a.db"), env.path("b.db"));
    make_db(&a, 1, "DELETE");
    make_db(&b, 1, "DELETE");
    let repo = env.init("repo");
    let mut a_ids = Vec::new();
    let mut b_ids = Vec::new();
    for _ in 0..3 {
        a_ids.push(env.backup(&repo, &a)["id"].as_str().unwrap().to_string());
        b_ids.push(env.backup(&repo, &b)["id"].as_str().unwrap().to_string());
    }
    // As given to `arca backup --source`, or as a path.
    ok(&[
        "forget",
        "--repo",
        &repo,
        "--keep-last",
        "1",
        "--source",
        &a.to_string_lossy(),
    ]);
    let left = listed(&repo);
    assert!(left.contains(&a_ids[2]) && !left.contains(&a_ids[0]) && !left.contains(&a_ids[1]));
    assert!(b_ids.iter().all(|id| left.contains(id)), "{left:?}");
    // Every source: b keeps its newest too.
    let out = ok(&["forget", "--repo", &repo, "--keep-last", "1"]);
    assert!(
        out.contains(&format!(
            "source sqlite://{}: 3 backups, keep 1, forget 2",
            b.display()
        )),
        "{out}"
    );
    assert_eq!(listed(&repo), [a_ids[2].clone(), b_ids[2].clone()]);
}

/// A damaged manifest is reported, never deleted.
#[test]
fn forget_leaves_a_damaged_backup() {
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 1, "DELETE");
    let repo = env.init_local("repo");
    let (ids, _) = four_backups(&env, &repo, &db);
    let manifest = Path::new(&repo).join("snapshots").join(&ids[0]);
    let bytes = std::fs::read(&manifest).unwrap();
    std::fs::write(&manifest, &bytes[..bytes.len() / 2]).unwrap();
    let out = ok(&["forget", "--repo", &repo, "--keep-last", "1"]);
    assert!(
        out.lines().any(
            |l| l.starts_with(&format!("damaged: backup {}", &ids[0][..8]))
                && l.contains("forget leaves it")
        ),
        "{out}"
    );
    assert!(out.contains("forgot 2 of 3 backups, kept 1"), "{out}");
    assert_eq!(std::fs::read(&manifest).unwrap(), &bytes[..bytes.len() / 2]);
    assert_eq!(listed(&repo), [ids[3].clone(), ids[0].clone()]);
}
