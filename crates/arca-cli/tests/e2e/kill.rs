use std::process::Stdio;
use std::time::Instant;

use super::common::*;

/// A backup killed with SIGKILL at several points leaves the repository
/// valid: check passes, prune removes the leftovers, and the earlier backup
/// restores byte for byte.
#[test]
fn backup_killed_midway_leaves_a_sound_repository() {
    let env = Env::new();
    let db = env.path("big.db");
    make_db(&db, 48, "DELETE");
    // Small packs so a kill lands between pack writes as well as inside them.
    let repo = env.s("repo");
    ok(&["init", "--repo", &repo, "--pack-size", "1048576"]);
    let first = env.backup(&repo, &db);
    std::fs::copy(&db, env.path("first.db")).unwrap();
    touch_rows(&db, 1);

    // How long an uninterrupted backup of the changed database takes.
    let probe = env.init_local("probe");
    let t = Instant::now();
    env.backup(&probe, &db);
    let full = t.elapsed();

    let src = format!("sqlite://{}", db.display());
    for frac in [0.05, 0.2, 0.4, 0.6, 0.8, 0.95] {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("arca"))
            .args([
                "backup",
                "--repo",
                &repo,
                "--source",
                &src,
                "--parallelism",
                "2",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(full.mul_f64(frac));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        ok(&["check", "--repo", &repo]);
        let n = json(&["list", "--repo", &repo, "--json"])
            .as_array()
            .unwrap()
            .len();
        assert!(n >= 1);
    }
    ok(&["prune", "--repo", &repo, "--lock-wait", "5"]);
    ok(&["check", "--repo", &repo, "--read-data"]);
    assert!(
        std::fs::read_dir(std::path::Path::new(&repo).join(".tmp"))
            .map_or(true, |mut d| d.next().is_none()),
        "prune leaves no temp files"
    );
    let out = env.path("restored.db");
    restore(&repo, first["id"].as_str().unwrap(), &out);
    assert!(same_file(&env.path("first.db"), &out));
    // Backups that completed before a kill restore as well.
    for s in json(&["list", "--repo", &repo, "--json"])
        .as_array()
        .unwrap()
    {
        let out = env.path("each.db");
        restore(&repo, s["id"].as_str().unwrap(), &out);
        integrity_ok(&out);
    }
}
