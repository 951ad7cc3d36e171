//! Cancellation: a token tripped from a progress callback after a set
//! number of bytes stops backup, restore, check and prune at their next
//! step, with nothing half-committed, no lock left, and the next run of
//! the same operation whole.

use std::sync::atomic::{AtomicU64, Ordering};

use arca_repo::check::{check, CheckOptions};
use arca_repo::config::InitOptions;
use arca_repo::{
    prune, prune_with_progress, restore_file, BackupSession, Cancel, Error, Manifest, NewManifest,
    NoProgress, Progress, Repository,
};

mod common;

const PAGE: u32 = 4096;

/// Trips `token` once `after` bytes have been reported; counts every byte
/// reported, before and after.
struct TripAfter {
    token: Cancel,
    after: u64,
    seen: AtomicU64,
}

impl TripAfter {
    fn new(repo: &Repository, after: u64) -> TripAfter {
        TripAfter {
            token: repo.cancel.clone(),
            after,
            seen: AtomicU64::new(0),
        }
    }

    fn seen(&self) -> u64 {
        self.seen.load(Ordering::SeqCst)
    }
}

impl Progress for TripAfter {
    fn inc(&self, bytes: u64) {
        if self.seen.fetch_add(bytes, Ordering::SeqCst) + bytes >= self.after {
            self.token.cancel();
        }
    }
}

/// Incompressible bytes, so a MiB of data is a MiB of packs.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d ^ seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A repository with 1 MiB packs, so every operation has many steps.
fn small_packs(dir: &std::path::Path) -> Repository {
    common::init(
        dir,
        &InitOptions {
            pack_size: 1 << 20,
            ..InitOptions::default()
        },
    )
}

fn new_manifest() -> NewManifest {
    NewManifest {
        engine: "test".into(),
        source: "test://files".into(),
        kind: "physical".into(),
        name: None,
        tags: vec![],
        start_time: jiff::Timestamp::now(),
        meta: serde_json::Value::Null,
    }
}

fn interrupted(e: &Error, what: &str) -> String {
    assert!(e.is_interrupted(), "{e}");
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("{what} interrupted: ")), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
    msg
}

fn files_in(dir: &std::path::Path, sub: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("repo").join(sub))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn no_locks(dir: &std::path::Path) {
    assert_eq!(
        files_in(dir, "locks"),
        Vec::<String>::new(),
        "a lock was left"
    );
}

fn read_data_ok(repo: &Repository) {
    let opts = CheckOptions {
        read_data: true,
        backup: None,
        parallelism: 2,
    };
    let report = check(repo, &opts, &NoProgress).unwrap();
    assert!(report.is_ok(), "{:?}", report.errors);
}

fn restored(repo: &Repository, snap: &Manifest, dir: &std::path::Path) -> Vec<u8> {
    let index = repo.load_index().unwrap();
    let path = dir.join("restored");
    let out = std::fs::File::create(&path).unwrap();
    restore_file(repo, &index, &snap.files[0], &out, 2, &NoProgress).unwrap();
    std::fs::read(&path).unwrap()
}

#[test]
fn a_cancelled_backup_commits_nothing_and_the_next_one_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut repo = small_packs(dir.path());
    let data = noise(8 << 20, 1);
    for after in [1u64, 3 << 20, 8 << 20] {
        let trip = TripAfter::new(&repo, after);
        let mut session = BackupSession::start(&repo, 2).unwrap();
        let mut reader = &data[..];
        let len = data.len() as u64;
        let null = serde_json::Value::Null;
        let e = session
            .add_file("f", &mut reader, len, PAGE, null, None, &trip)
            .expect_err("cancelled");
        interrupted(&e, "backup");
        // The token is checked before each 1 MiB segment is read: not a
        // byte is read after it is tripped.
        assert_eq!(trip.seen(), after.div_ceil(1 << 20) << 20);
        drop(session);
        assert!(repo.manifests().unwrap().is_empty());
        assert!(repo.index_files().unwrap().is_empty(), "nothing indexed");
        no_locks(dir.path());
        repo.cancel = Cancel::new();
    }

    // Tripped once the data is in, the commit writes no index or manifest.
    let mut session = BackupSession::start(&repo, 2).unwrap();
    let mut reader = &data[..];
    let null = serde_json::Value::Null;
    session
        .add_file(
            "f",
            &mut reader,
            data.len() as u64,
            PAGE,
            null,
            None,
            &NoProgress,
        )
        .unwrap();
    repo.cancel.cancel();
    let e = session.commit(new_manifest()).unwrap_err();
    assert_eq!(
        interrupted(&e, "backup"),
        "backup interrupted: nothing was committed; the packs it wrote stay until `arca prune` removes them"
    );
    assert!(repo.manifests().unwrap().is_empty());
    assert!(repo.index_files().unwrap().is_empty());
    assert!(
        !repo.stored_packs().unwrap().is_empty(),
        "packs were written"
    );
    no_locks(dir.path());

    repo.cancel = Cancel::new();
    read_data_ok(&repo);
    let snap = common::back_up(&repo, &[("f", &data)], PAGE, None);
    assert!(restored(&repo, &snap, dir.path()) == data);
    let report = prune(&repo).unwrap();
    assert!(report.garbage_files > 0, "the cancelled backups' packs go");
    read_data_ok(&repo);
    assert!(restored(&repo, &snap, dir.path()) == data);
}

#[test]
fn a_cancelled_restore_stops_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut repo = small_packs(dir.path());
    let data = noise(16 << 20, 2);
    let snap = common::back_up(&repo, &[("f", &data)], PAGE, None);
    let index = repo.load_index().unwrap();
    let path = dir.path().join("out");
    for after in [1u64, 5 << 20, 15 << 20] {
        let trip = TripAfter::new(&repo, after);
        let out = std::fs::File::create(&path).unwrap();
        let e = restore_file(&repo, &index, &snap.files[0], &out, 2, &trip).unwrap_err();
        assert_eq!(
            interrupted(&e, "restore"),
            "restore interrupted: its partial files were removed"
        );
        // The writer stops before the next frame: at most the rest of the
        // one it was writing (1 MiB) goes out after the token is tripped.
        assert!(trip.seen() >= after, "{}", trip.seen());
        assert!(trip.seen() < after + (1 << 20), "{}", trip.seen());
        repo.cancel = Cancel::new();
    }
    assert!(restored(&repo, &snap, dir.path()) == data);
}

#[test]
fn a_cancelled_check_reads_no_further_pack() {
    let dir = tempfile::tempdir().unwrap();
    let mut repo = small_packs(dir.path());
    let data = noise(8 << 20, 3);
    common::back_up(&repo, &[("f", &data)], PAGE, None);
    let index = repo.load_index().unwrap();
    let first = index.packs[0].size;
    for after in [1, first + 1] {
        let trip = TripAfter::new(&repo, after);
        let opts = CheckOptions {
            read_data: true,
            backup: None,
            parallelism: 1,
        };
        let e = check(&repo, &opts, &trip).unwrap_err();
        assert_eq!(
            interrupted(&e, "check"),
            "check interrupted: the repository was not changed"
        );
        // One reader: it stops before the next pack.
        let packs_read = if after == 1 { 1 } else { 2 };
        let sizes: u64 = index.packs[..packs_read].iter().map(|p| p.size).sum();
        assert_eq!(trip.seen(), sizes);
        no_locks(dir.path());
        repo.cancel = Cancel::new();
    }
    read_data_ok(&repo);
}

/// Prune, cancelled while it repacks (before the new index) and while it
/// deletes (after the index is replaced): every backup stays whole and the
/// next prune finishes the work.
#[test]
fn a_cancelled_prune_leaves_a_whole_repository() {
    let dir = tempfile::tempdir().unwrap();
    let mut repo = small_packs(dir.path());
    // Every other block changes, so once the first backup is deleted its
    // packs are half used: prune repacks them.
    let first = noise(8 << 20, 4);
    let mut second = first.clone();
    for (n, block) in second.chunks_mut(PAGE as usize).enumerate() {
        if n % 2 == 1 {
            block.copy_from_slice(&noise(PAGE as usize, n as u64));
        }
    }
    let old = common::back_up(&repo, &[("f", &first)], PAGE, None);
    let snap = common::back_up(&repo, &[("f", &second)], PAGE, None);
    repo.delete_manifest(&old.id).unwrap();

    let indexes = repo.index_files().unwrap();
    let trip = TripAfter::new(&repo, 1);
    let e = prune_with_progress(&repo, &trip).unwrap_err();
    interrupted(&e, "prune");
    // Stopped after the first pack was repacked, before the new index.
    let index = repo.load_index().unwrap();
    assert!(
        index.packs.iter().any(|p| p.size == trip.seen()),
        "one pack"
    );
    assert_eq!(
        repo.index_files().unwrap(),
        indexes,
        "the index is as it was"
    );
    no_locks(dir.path());
    repo.cancel = Cancel::new();
    read_data_ok(&repo);
    assert!(restored(&repo, &snap, dir.path()) == second);

    let report = prune(&repo).unwrap();
    assert!(report.packs_repacked >= 8, "{report:?}");
    read_data_ok(&repo);
    assert!(restored(&repo, &snap, dir.path()) == second);

    // Only deletions: a backup of other data, deleted. Stopped after the
    // first pack is deleted, the index is the new one already.
    let other = common::back_up(&repo, &[("g", &noise(6 << 20, 5))], PAGE, None);
    repo.delete_manifest(&other.id).unwrap();
    let before = repo.stored_packs().unwrap().len();
    let trip = TripAfter::new(&repo, 1);
    let e = prune_with_progress(&repo, &trip).unwrap_err();
    assert_eq!(
        interrupted(&e, "prune"),
        "prune interrupted: the repository is whole; run `arca prune` again to finish"
    );
    assert_eq!(
        repo.stored_packs().unwrap().len(),
        before - 1,
        "one deleted"
    );
    assert_eq!(repo.index_files().unwrap().len(), 1);
    no_locks(dir.path());
    repo.cancel = Cancel::new();
    read_data_ok(&repo);
    assert!(restored(&repo, &snap, dir.path()) == second);
    let report = prune(&repo).unwrap();
    assert!(report.garbage_files >= 5, "{report:?}");
    assert_eq!(report.packs_deleted, 0, "{report:?}");
    read_data_ok(&repo);
    assert!(restored(&repo, &snap, dir.path()) == second);
}

/// A lock wait ends at once when the token is tripped, having taken no lock.
#[test]
fn a_lock_wait_ends_when_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let mut repo = small_packs(dir.path());
    let held = repo.lock_exclusive("prune").unwrap();
    repo.lock_wait = std::time::Duration::from_secs(600);
    let token = repo.cancel.clone();
    let t = std::time::Instant::now();
    let tripper = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        token.cancel();
    });
    let e = repo.lock_shared("backup").err().expect("cancelled");
    tripper.join().unwrap();
    assert!(t.elapsed() < std::time::Duration::from_secs(30));
    interrupted(&e, "backup");
    assert_eq!(files_in(dir.path(), "locks").len(), 1, "only the holder's");
    drop(held);
    no_locks(dir.path());
}
