//! The repository layer alone, on two versions of a directory (say a
//! PostgreSQL data directory before and after a pgbench run): backs up A,
//! then B with A's files as delta bases (`NO_DELTA=1`: without), then
//! restores B's files into OUT, printing time, CPU and stored bytes.
//!
//! `cargo run --release -p arca-repo --example dirbench -- REPO A B OUT`
//! (`PAGE_SIZE=4096` for SQLite's pages).
use std::collections::HashMap;
use std::time::Instant;

use arca_repo::config::InitOptions;
use arca_repo::{
    restore_file, BackupSession, FileEntry, Location, NewManifest, NoProgress, Repository,
};

fn files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.is_file() {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

fn backup(
    repo: &Repository,
    dir: &std::path::Path,
    bases: &HashMap<String, FileEntry>,
) -> arca_repo::Manifest {
    let mut s = BackupSession::start(repo, 2).unwrap();
    for f in files(dir) {
        if f.contains("pg_wal") {
            continue;
        }
        let data = std::fs::read(dir.join(&f)).unwrap();
        let mut r: &[u8] = &data;
        s.add_file(
            &f,
            &mut r,
            data.len() as u64,
            page_size(),
            serde_json::Value::Null,
            bases.get(&f),
            &NoProgress,
        )
        .unwrap();
    }
    s.commit(NewManifest {
        engine: "test".into(),
        source: "dir".into(),
        kind: arca_repo::BackupKind::Physical,
        name: None,
        tags: vec![],
        start_time: jiff::Timestamp::now(),
        meta: serde_json::Value::Null,
    })
    .unwrap()
}

/// Block size: `PAGE_SIZE` (default 8192, PostgreSQL's page).
fn page_size() -> u32 {
    std::env::var("PAGE_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8192)
}

/// User and system CPU seconds of this process so far.
fn cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    (
        f[11].parse::<f64>().unwrap() / 100.0,
        f[12].parse::<f64>().unwrap() / 100.0,
    )
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let loc = Location::parse(&a[1]).unwrap();
    let repo = Repository::init(&loc, &InitOptions::default()).unwrap();
    let t = Instant::now();
    let first = backup(&repo, a[2].as_ref(), &HashMap::new());
    eprintln!(
        "full: {:.2}s stored {}",
        t.elapsed().as_secs_f64(),
        first.stored_bytes
    );
    let bases: HashMap<String, FileEntry> = if std::env::var("NO_DELTA").is_ok() {
        HashMap::new()
    } else {
        first
            .files
            .iter()
            .map(|f| (f.path.clone(), f.clone()))
            .collect()
    };
    let (t, c) = (Instant::now(), cpu());
    let second = backup(&repo, a[3].as_ref(), &bases);
    let c2 = cpu();
    eprintln!(
        "incr: {:.2}s stored {} cpu user {:.2} sys {:.2}",
        t.elapsed().as_secs_f64(),
        second.stored_bytes,
        c2.0 - c.0,
        c2.1 - c.1
    );
    let (t, c) = (Instant::now(), cpu());
    let index = repo.load_index().unwrap();
    let out = std::path::Path::new(&a[4]);
    for f in &second.files {
        let p = out.join(f.path.replace('/', "_"));
        let file = std::fs::File::create(&p).unwrap();
        restore_file(&repo, &index, f, &file, 2, &NoProgress).unwrap();
    }
    let c2 = cpu();
    eprintln!(
        "restore: {:.2}s cpu user {:.2} sys {:.2}",
        t.elapsed().as_secs_f64(),
        c2.0 - c.0,
        c2.1 - c.1
    );
}
