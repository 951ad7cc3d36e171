//! Read throughput of a SQLite image versus a plain sequential read of the file.
//!
//! ```text
//! cargo build --release -p arca-engine --example sqlite_image_bench
//! target/release/examples/sqlite_image_bench DB MODE [REPEAT]
//! ```
//!
//! MODE: `file` (plain 1 MiB reads of the file), `auto` (what `open_image` does),
//! `dbpage` (force `sqlite_dbpage`, default options: no mmap), `dbpage-mmap` (force
//! `sqlite_dbpage` with `mmap_size` at SQLite's 2 GiB cap). Each run reads into a 1 MiB buffer and folds every byte into a
//! checksum (set `NOFOLD=1` to skip that and measure the reader alone), and prints
//! MB/s (10^6 bytes per second) and CPU seconds; at the end the process's peak RSS and
//! anonymous RSS. Run each mode in its own process so peak memory is its own.
//! `OUT=FILE` also writes the (last) image to FILE, to check it with
//! `sqlite3 FILE 'PRAGMA integrity_check'`.

use std::io::Read;
use std::time::Instant;

use arca_engine::sqlite::{ImageOptions, ReadMethod, SqliteSource};

fn fold(sum: u64, bytes: &[u8]) -> u64 {
    bytes.chunks_exact(8).fold(sum, |acc, word| {
        (acc ^ u64::from_le_bytes(word.try_into().unwrap())).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    })
}

fn drain(mut reader: impl Read) -> (u64, u64) {
    let skip_fold = std::env::var_os("NOFOLD").is_some();
    let mut out = std::env::var_os("OUT").map(|path| std::fs::File::create(path).unwrap());
    let mut buf = vec![0u8; 1 << 20];
    let (mut total, mut sum) = (0u64, 0u64);
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            return (total, sum);
        }
        if !skip_fold {
            sum = fold(sum, &buf[..n]);
        }
        if let Some(out) = out.as_mut() {
            std::io::Write::write_all(out, &buf[..n]).unwrap();
        }
        total += n as u64;
    }
}

/// User + system CPU seconds of this process so far (Linux, 100 ticks per second).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .map(|l| l[field.len()..].trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(db), Some(mode)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: sqlite_image_bench DB file|auto|dbpage|dbpage-mmap [REPEAT]");
        std::process::exit(2);
    };
    let repeat: usize = args.get(3).map_or(1, |s| s.parse().unwrap());
    let source = SqliteSource::parse(db).unwrap();
    for _ in 0..repeat {
        let start = Instant::now();
        let cpu_start = cpu_secs();
        let (method, (bytes, sum)) = match mode.as_str() {
            "file" => (
                "file".to_string(),
                drain(std::fs::File::open(&source.path).unwrap()),
            ),
            "auto" | "dbpage" | "dbpage-mmap" => {
                let mut options = ImageOptions::default();
                if mode != "auto" {
                    options = options.method(ReadMethod::Dbpage);
                }
                if mode == "dbpage-mmap" {
                    options = options.mmap_size(1 << 40);
                }
                let image = source.open_image_with(&options).unwrap();
                let method = format!("{:?}/{}", image.method(), image.info().journal_mode);
                (method, drain(image))
            }
            other => panic!("unknown mode {other}"),
        };
        let secs = start.elapsed().as_secs_f64();
        let cpu = cpu_secs() - cpu_start;
        println!(
            "{mode:<14} {method:<14} {bytes} bytes in {secs:.3} s = {:>6.0} MB/s, cpu {cpu:.2} s, checksum {sum:016x}",
            bytes as f64 / secs / 1e6
        );
    }
    println!(
        "{mode:<14} peak RSS {}, anonymous RSS now {}",
        status("VmHWM:"),
        status("RssAnon:")
    );
}
