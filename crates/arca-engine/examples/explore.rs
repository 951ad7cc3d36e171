use rusqlite::{Connection, OpenFlags};
use std::io::Read;
use std::time::Instant;

fn open(path: &str, mmap: bool) -> Connection {
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX).unwrap();
    c.execute_batch("PRAGMA cache_size=-2048").unwrap();
    if mmap { c.execute_batch("PRAGMA mmap_size=1099511627776").unwrap(); }
    c.execute_batch("BEGIN; SELECT count(*) FROM sqlite_master;").unwrap();
    c
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let path = &a[1];
    let mode = a[2].as_str();
    let mmap = a.get(3).map(|s| s == "mmap").unwrap_or(false);
    let t = Instant::now();
    let mut h: u64 = 0;
    let mut total: u64 = 0;
    let mut sink = |d: &[u8]| { total += d.len() as u64; h = h.wrapping_add(d[0] as u64 + d[d.len()-1] as u64); };
    match mode {
        "file" => {
            let mut f = std::fs::File::open(path).unwrap();
            let mut buf = vec![0u8; 1 << 20];
            loop { let n = f.read(&mut buf).unwrap(); if n == 0 { break; } sink(&buf[..n]); }
        }
        "scan" => {
            let c = open(path, mmap);
            let mut s = c.prepare("SELECT data FROM sqlite_dbpage").unwrap();
            let mut rows = s.query([]).unwrap();
            while let Some(r) = rows.next().unwrap() { sink(r.get_ref(0).unwrap().as_blob().unwrap()); }
        }
        "eq" => {
            let c = open(path, mmap);
            let n: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
            let mut s = c.prepare("SELECT data FROM sqlite_dbpage WHERE pgno=?1").unwrap();
            for p in 1..=n { let mut rows = s.query([p]).unwrap(); let r = rows.next().unwrap().unwrap(); sink(r.get_ref(0).unwrap().as_blob().unwrap()); }
        }
        "cte" | "between" => {
            let c = open(path, mmap);
            let n: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
            let batch: i64 = a.get(4).map(|s| s.parse().unwrap()).unwrap_or(256);
            let sql = if mode == "cte" {
                "WITH RECURSIVE p(n) AS (SELECT ?1 UNION ALL SELECT n+1 FROM p WHERE n<?2) SELECT pgno, data FROM p JOIN sqlite_dbpage ON pgno=n"
            } else { "SELECT pgno, data FROM sqlite_dbpage WHERE pgno BETWEEN ?1 AND ?2" };
            let mut s = c.prepare(sql).unwrap();
            let mut p = 1;
            let mut expect = 1i64;
            while p <= n {
                let e = (p + batch - 1).min(n);
                let mut rows = s.query([p, e]).unwrap();
                while let Some(r) = rows.next().unwrap() { let g: i64 = r.get(0).unwrap(); assert_eq!(g, expect); expect += 1; sink(r.get_ref(1).unwrap().as_blob().unwrap()); }
                p = e + 1;
            }
        }
        _ => panic!(),
    }
    let el = t.elapsed().as_secs_f64();
    println!("{mode} mmap={mmap}: {} bytes in {:.3}s = {:.0} MB/s (h={h})", total, el, total as f64 / el / 1e6);
}
