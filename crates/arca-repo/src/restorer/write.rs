//! The restore's writer, the one thread every restored byte passes through.
//!
//! Files are created ahead of it by a thread of their own. The runs of a
//! file written directly are gathered into aligned regions, each written
//! with one direct write once all its blocks are in: a frame's runs can be
//! a page each (an incremental backup's frames hold the pages that changed,
//! between pages kept in older frames), and a direct write of a page waits
//! for the device as long as one of megabytes. A data directory restored
//! run by run took 22 thousand writes, most of them 8 KiB.

use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use super::{windows, Verified};
use crate::direct::{Aligned, Output, Stage};
use crate::error::{Error, Result};
use crate::manifest::FileEntry;
use crate::Progress;

/// Runs are gathered into regions of this size, at offsets that are
/// multiples of it.
const REGION: usize = 4 << 20;

/// Creates the files, in order, each at its full length, ahead of the
/// writer. Creating a file can cost the file system more than writing a
/// small one (ext4 searches its inode table for a free inode), and the
/// writer has work enough.
pub(super) fn create_all(
    files: &[&FileEntry],
    open: &(dyn Fn(&FileEntry) -> Result<File> + Sync),
    created: Sender<(usize, Result<File>)>,
    failed: &dyn Fn() -> bool,
) {
    for (n, entry) in files.iter().enumerate() {
        if failed() {
            return;
        }
        let file = open(entry).and_then(|f| {
            f.set_len(entry.size)
                .map_err(|e| Error::io(&entry.path, e))?;
            Ok(f)
        });
        if created.send((n, file)).is_err() {
            return; // the writer is gone
        }
    }
}

/// The writer: takes each file, created, at its first message, writes the
/// runs, and closes it once all its windows are done; stops once `failed`.
/// At most `workers` times four regions are held; past that the oldest is
/// written as it is.
pub(super) fn write_all(
    files: &[&FileEntry],
    created: Receiver<(usize, Result<File>)>,
    verified: &Receiver<Verified>,
    pool: Sender<Vec<u8>>,
    workers: usize,
    progress: &dyn Progress,
    failed: &dyn Fn() -> bool,
) -> Result<()> {
    let mut open_files: HashMap<usize, OpenFile> = HashMap::new();
    // Files created and not yet written to.
    let mut ready: HashMap<usize, Result<File>> = HashMap::new();
    let mut take = |n: usize| loop {
        if let Some(file) = ready.remove(&n) {
            return file;
        }
        // Closed early only when the restore failed elsewhere.
        let (k, file) = created.recv().map_err(|_| Error::Cancelled)?;
        ready.insert(k, file);
    };
    let mut regions = Regions {
        most: (workers * 4).min(32),
        ..Regions::default()
    };
    for v in verified.iter() {
        // Every byte passes here: a cancelled restore writes no more.
        if failed() {
            return Err(Error::Cancelled); // the first failure is reported
        }
        let entry = files[v.file];
        if let std::collections::hash_map::Entry::Vacant(slot) = open_files.entry(v.file) {
            slot.insert(OpenFile {
                out: Output::new(take(v.file)?, entry.size),
                entry,
                left: windows(entry),
                held: Vec::new(),
            });
        }
        let Some(raw) = v.raw else {
            let f = open_files.get_mut(&v.file).expect("opened above");
            f.left -= 1;
            if f.left == 0 {
                let mut f = open_files.remove(&v.file).expect("opened above");
                regions.write_all_of(&mut f)?;
            }
            continue;
        };
        for &(pos, off, len) in &v.runs {
            regions.put(&mut open_files, v.file, &raw[off..off + len], pos)?;
            progress.inc(len as u64);
        }
        if let Ok(raw) = Arc::try_unwrap(raw) {
            let _ = pool.try_send(raw);
        }
    }
    Ok(())
}

struct OpenFile<'f> {
    out: Output,
    /// Its entry: its size, and its path for errors.
    entry: &'f FileEntry,
    /// Windows still to come.
    left: usize,
    /// Its regions being gathered.
    held: Vec<Region>,
}

/// Part of a file being gathered: `len` bytes from `base`, of which
/// `filled` are in, as `runs` (offset in the region, length).
struct Region {
    base: u64,
    len: usize,
    filled: usize,
    runs: Vec<(usize, usize)>,
    buf: Aligned,
    /// When it was started, to write the oldest first when too many are held.
    stamp: u64,
}

#[derive(Default)]
struct Regions {
    held: usize,
    most: usize,
    stamp: u64,
    spare: Vec<Aligned>,
    stage: Option<Stage>,
}

impl Regions {
    /// Puts `data`, for `pos` in file `n`, into its regions, writing each
    /// region it completes; written at once if the file is not written
    /// directly.
    fn put(
        &mut self,
        files: &mut HashMap<usize, OpenFile<'_>>,
        n: usize,
        mut data: &[u8],
        mut pos: u64,
    ) -> Result<()> {
        while !data.is_empty() {
            let f = files.get_mut(&n).expect("open");
            if !f.out.writes_directly() {
                let stage = self.stage.get_or_insert_with(Stage::new);
                let path = &f.entry.path;
                return f
                    .out
                    .write_at(data, pos, stage)
                    .map_err(|e| Error::io(path, e));
            }
            let base = pos - pos % REGION as u64;
            let take = data.len().min((base + REGION as u64 - pos) as usize);
            let at = match f.held.iter().position(|r| r.base == base) {
                Some(at) => at,
                None => {
                    if self.held >= self.most {
                        self.write_oldest(files)?;
                    }
                    let f = files.get_mut(&n).expect("open");
                    let len = REGION.min((f.entry.size - base) as usize);
                    let buf = self.spare.pop().unwrap_or_else(|| Aligned::new(REGION));
                    f.held.push(Region {
                        base,
                        len,
                        filled: 0,
                        runs: Vec::new(),
                        buf,
                        stamp: self.stamp,
                    });
                    self.stamp += 1;
                    self.held += 1;
                    f.held.len() - 1
                }
            };
            let f = files.get_mut(&n).expect("open");
            let r = &mut f.held[at];
            let off = (pos - base) as usize;
            r.buf.as_mut_slice()[off..off + take].copy_from_slice(&data[..take]);
            r.runs.push((off, take));
            r.filled += take;
            if r.filled == r.len {
                let r = f.held.swap_remove(at);
                self.write(f, r)?;
            }
            data = &data[take..];
            pos += take as u64;
        }
        Ok(())
    }

    /// Writes what is in `r`, a region of `f`: all of it in one write once
    /// it is full.
    fn write(&mut self, f: &mut OpenFile<'_>, mut r: Region) -> Result<()> {
        self.held -= 1;
        let stage = self.stage.get_or_insert_with(Stage::new);
        r.runs.sort_unstable();
        let mut i = 0;
        while i < r.runs.len() {
            // Runs side by side go in one write.
            let (start, mut end) = (r.runs[i].0, r.runs[i].0 + r.runs[i].1);
            i += 1;
            while i < r.runs.len() && r.runs[i].0 == end {
                end += r.runs[i].1;
                i += 1;
            }
            f.out
                .write_at(&r.buf.as_slice()[start..end], r.base + start as u64, stage)
                .map_err(|e| Error::io(&f.entry.path, e))?;
        }
        if self.spare.len() < self.most {
            self.spare.push(r.buf);
        }
        Ok(())
    }

    /// Writes the region held longest, as it is, to make room.
    fn write_oldest(&mut self, files: &mut HashMap<usize, OpenFile<'_>>) -> Result<()> {
        let oldest = files
            .iter()
            .flat_map(|(n, f)| {
                f.held
                    .iter()
                    .enumerate()
                    .map(move |(i, r)| (r.stamp, *n, i))
            })
            .min();
        if let Some((_, n, i)) = oldest {
            let f = files.get_mut(&n).expect("open");
            let r = f.held.swap_remove(i);
            self.write(f, r)?;
        }
        Ok(())
    }

    /// Writes every region of a file done with.
    fn write_all_of(&mut self, f: &mut OpenFile<'_>) -> Result<()> {
        for r in std::mem::take(&mut f.held) {
            self.write(f, r)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages put in a scattered order, with room for only two regions (so
    /// some are written part by part), make the file, its unaligned end
    /// included, whether or not the file system takes direct writes.
    #[test]
    fn scattered_runs_make_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let size = 3 * REGION + 5000;
        let data: Vec<u8> = (0..size)
            .map(|i| (i % 251) as u8 ^ (i / 8192) as u8)
            .collect();
        let file = File::create(&path).unwrap();
        file.set_len(size as u64).unwrap();
        let pages = size.div_ceil(8192);
        let entry = FileEntry {
            path: "f".into(),
            size: size as u64,
            block_size: 8192,
            blocks: pages as u64,
            lists: Vec::new(),
            meta: serde_json::Value::Null,
        };
        let mut files = HashMap::new();
        files.insert(
            7,
            OpenFile {
                out: Output::new(file, size as u64),
                entry: &entry,
                left: 1,
                held: Vec::new(),
            },
        );
        let mut regions = Regions {
            most: 2,
            ..Regions::default()
        };
        // Every 8 KiB page once, in the order a stride of 37 visits them.
        for k in 0..pages {
            let p = k * 37 % pages;
            let (from, to) = (p * 8192, ((p + 1) * 8192).min(size));
            regions
                .put(&mut files, 7, &data[from..to], from as u64)
                .unwrap();
            assert!(regions.held <= 2);
        }
        let mut f = files.remove(&7).unwrap();
        regions.write_all_of(&mut f).unwrap();
        assert_eq!(regions.held, 0);
        drop(f);
        assert!(std::fs::read(&path).unwrap() == data);
    }
}
