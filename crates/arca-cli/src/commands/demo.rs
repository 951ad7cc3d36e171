//! `arca demo`: Arca's main job on a sample SQLite database, step by step,
//! printing the `arca` command for each step so the user can go on by hand.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use arca_ops::{BackupOptions, RestoreRequest};
use arca_repo::{check, CheckOptions, InitOptions, Location, NoProgress, Repository};

use crate::args::DemoArgs;
use crate::output::{backup_table, bytes, duration_ms};

const MARKER: &str = ".arca-demo";

pub fn run(a: DemoArgs) -> Result<ExitCode> {
    let dir = a.dir;
    prepare_dir(&dir)?;
    let db = dir.join("shop.db");
    let repo_dir = dir.join("repo");
    let restored = dir.join("restored.db");
    let (d, r, x) = (db.display(), repo_dir.display(), restored.display());
    let par = std::thread::available_parallelism().map_or(2, |n| n.get());

    step(
        1,
        "create a sample SQLite database",
        &format!(
            "(sample data: customers and orders, about {} MiB)",
            a.size_mb
        ),
    );
    let t = Instant::now();
    let rows = create_sample(&db, a.size_mb)?;
    println!(
        "   {d}: {} orders, {} in {}",
        rows,
        bytes(file_len(&db)?),
        since(t)
    );

    step(2, "create a repository", &format!("arca init --repo {r}"));
    let repo = Repository::init(
        &Location::parse(&repo_dir.to_string_lossy())?,
        &InitOptions::default(),
    )?;
    println!("   created repository {}", repo.config.id.short());

    let source = format!("sqlite://{d}");
    step(
        3,
        "back up the database",
        &format!("arca backup --repo {r} --source {source} --name first"),
    );
    let first = backup(&repo, &source, "first", par)?;

    step(
        4,
        "change about 1% of the rows",
        "(UPDATE orders … on every 100th order)",
    );
    let before = std::fs::read(&db)?;
    let changed = change_rows(&db)?;
    let after = std::fs::read(&db)?;
    let changed_bytes = changed_page_bytes(&before, &after);
    println!(
        "   updated {changed} orders, scattered over the table: {} of {} pages changed ({})",
        changed_bytes / 4096,
        after.len() / 4096,
        bytes(changed_bytes)
    );

    step(
        5,
        "back up again: only changed pages are stored",
        &format!("arca backup --repo {r} --source {source} --name second"),
    );
    let second = backup(&repo, &source, "second", par)?;
    println!(
        "   the second backup added {} for {} of changed pages ({:.2}x, compressed); the first added {}",
        bytes(second.stored_bytes),
        bytes(changed_bytes),
        second.stored_bytes as f64 / changed_bytes.max(1) as f64,
        bytes(first.stored_bytes)
    );

    step(6, "list the backups", &format!("arca list --repo {r}"));
    println!(
        "{}",
        backup_table(&repo.manifests()?, &repo_dir.to_string_lossy())
    );

    step(
        7,
        "check the repository, reading every byte",
        &format!("arca check --repo {r} --read-data"),
    );
    let report = check(
        &repo,
        &CheckOptions {
            read_data: true,
            backup: None,
            parallelism: par,
        },
        &NoProgress,
    )?;
    if !report.is_ok() {
        for e in &report.errors {
            println!("   error: {e}");
        }
        bail!("the demo repository failed its check");
    }
    println!(
        "   no errors: {} backups, {} packs, {} blobs verified",
        report.backups, report.packs, report.blobs_read
    );

    step(
        8,
        "restore the latest backup",
        &format!("arca restore latest --repo {r} --to {x}"),
    );
    let t = Instant::now();
    let done = arca_ops::restore(
        &repo,
        &RestoreRequest {
            id: Some("latest".into()),
            force: true,
            parallelism: par,
            ..RestoreRequest::new(restored.clone())
        },
        &NoProgress,
    )?;
    println!("   restored {} to {x} in {}", &done.backup[..8], since(t));

    step(
        9,
        "compare the restored database with the source",
        &format!("cmp {d} {x}"),
    );
    let same_bytes = std::fs::read(&db)? == std::fs::read(&restored)?;
    arca_ops::sqlite::integrity_check(&restored)?;
    let (a_rows, b_rows) = (count_rows(&db)?, count_rows(&restored)?);
    if !same_bytes || a_rows != b_rows {
        bail!("the restored database differs from the source");
    }
    println!(
        "   identical: byte for byte, {} orders in both, PRAGMA integrity_check ok",
        a_rows
    );
    println!(
        "\nDone. Everything is under {}; go on by hand with the commands above.",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn step(n: u32, what: &str, cmd: &str) {
    println!("\n{n}. {what}\n   $ {cmd}");
}

fn since(t: Instant) -> String {
    duration_ms(t.elapsed().as_millis() as i64)
}

fn file_len(p: &Path) -> Result<u64> {
    Ok(std::fs::metadata(p)
        .with_context(|| p.display().to_string())?
        .len())
}

/// Starts from an empty demo directory; removes only a directory a demo made.
fn prepare_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        if !dir.join(MARKER).exists() {
            bail!(
                "{} exists and was not made by `arca demo`: pass --dir NEW_DIR",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("removing the old demo in {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    std::fs::write(dir.join(MARKER), "made by arca demo\n")?;
    Ok(())
}

fn backup(repo: &Repository, source: &str, name: &str, par: usize) -> Result<arca_repo::Manifest> {
    let snap = arca_ops::backup(
        repo,
        &BackupOptions {
            source: source.to_string(),
            name: Some(name.to_string()),
            tags: vec!["demo".into()],
            parallelism: par,
            ..BackupOptions::default()
        },
        &NoProgress,
    )?;
    let secs = snap.duration_ms().max(1) as f64 / 1000.0;
    println!(
        "   backup {}: {} read in {} ({:.0} MB/s), {} added to the repository",
        snap.id.short(),
        bytes(snap.size),
        duration_ms(snap.duration_ms()),
        snap.size as f64 / 1e6 / secs,
        bytes(snap.stored_bytes)
    );
    Ok(snap)
}

/// A deterministic shop database of roughly `size_mb` MiB.
fn create_sample(db: &Path, size_mb: u64) -> Result<u64> {
    let mut conn = rusqlite::Connection::open(db)?;
    conn.execute_batch(
        "PRAGMA journal_mode=DELETE; PRAGMA synchronous=OFF;
         CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, email TEXT, city TEXT, created_at TEXT);
         CREATE TABLE orders(id INTEGER PRIMARY KEY, customer_id INTEGER, status TEXT, total_cents INTEGER, created_at TEXT, note TEXT);
         CREATE INDEX orders_customer ON orders(customer_id);
         CREATE INDEX orders_created ON orders(created_at);",
    )?;
    const CITIES: [&str; 8] = [
        "Lisbon", "Osaka", "Lagos", "Quito", "Oslo", "Perth", "Pune", "Tunis",
    ];
    const STATUS: [&str; 4] = ["new", "paid", "shipped", "returned"];
    const WORDS: [&str; 12] = [
        "gift", "express", "fragile", "bulk", "repeat", "promo", "weekend", "office", "sample",
        "refill", "large", "blue",
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let customers = 20_000u64;
    // About 107 bytes (measured) per order with its index entries.
    let orders = size_mb * 1024 * 1024 / 107;
    let tx = conn.transaction()?;
    {
        let mut c = tx.prepare("INSERT INTO customers VALUES (?1, ?2, ?3, ?4, ?5)")?;
        for i in 1..=customers {
            let city = CITIES[(rnd() % 8) as usize];
            c.execute(rusqlite::params![
                i as i64,
                format!("Customer {i}"),
                format!("c{i}@example.com"),
                city,
                format!("2024-{:02}-{:02}", rnd() % 12 + 1, rnd() % 28 + 1)
            ])?;
        }
        let mut o = tx.prepare("INSERT INTO orders VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
        for i in 1..=orders {
            let note = format!(
                "{} {} {}",
                WORDS[(rnd() % 12) as usize],
                WORDS[(rnd() % 12) as usize],
                rnd() % 100_000
            );
            o.execute(rusqlite::params![
                i as i64,
                (rnd() % customers + 1) as i64,
                STATUS[(rnd() % 4) as usize],
                (rnd() % 50_000) as i64,
                format!(
                    "2025-{:02}-{:02} {:02}:{:02}:{:02}",
                    rnd() % 12 + 1,
                    rnd() % 28 + 1,
                    rnd() % 24,
                    rnd() % 60,
                    rnd() % 60
                ),
                note
            ])?;
        }
    }
    tx.commit()?;
    Ok(orders)
}

/// Bytes of the 4 KiB pages that differ between two versions of a file.
fn changed_page_bytes(before: &[u8], after: &[u8]) -> u64 {
    let differ = before
        .chunks(4096)
        .zip(after.chunks(4096))
        .filter(|(a, b)| a != b)
        .count();
    let grown = after.len().saturating_sub(before.len()).div_ceil(4096);
    ((differ + grown) * 4096) as u64
}

fn change_rows(db: &Path) -> Result<usize> {
    let conn = rusqlite::Connection::open(db)?;
    Ok(conn.execute(
        "UPDATE orders SET status = 'shipped', total_cents = total_cents + 1 WHERE id % 100 = 7",
        [],
    )?)
}

fn count_rows(db: &Path) -> Result<i64> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    Ok(conn.query_row("SELECT count(*) FROM orders", [], |r| r.get(0))?)
}
