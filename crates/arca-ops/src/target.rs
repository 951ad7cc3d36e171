//! Where a restore writes. Files and directories are created under the
//! target without following symlinks, and the temporary file or directory
//! beside the target (`.NAME.arca-restore-PID`) is removed on failure, on
//! cancellation ([`remove_temps`]) and, once its process is gone, by the
//! next restore to the same target.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use arca_repo::lock::process_alive;

const TEMP_MARK: &str = ".arca-restore-";

/// The temporary paths of restores in progress in this process.
static TEMPS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn temps() -> MutexGuard<'static, Vec<PathBuf>> {
    TEMPS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes the temporary files and directories of every restore in
/// progress: for a signal handler, just before the process exits. Returns
/// how many there were.
pub fn remove_temps() -> usize {
    let temps = temps();
    for p in temps.iter() {
        remove(p);
    }
    temps.len()
}

/// A restore's temporary file or directory beside its target, named for
/// this process; removed when dropped unless [`Temp::done`] was called.
pub(crate) struct Temp {
    path: PathBuf,
    done: bool,
}

impl Temp {
    /// Reserves the temporary name for `target`, first removing leftovers of
    /// restores to it whose process is gone.
    pub(crate) fn new(target: &Path) -> Temp {
        remove_stale(target);
        let path = target.with_file_name(format!("{}{}", prefix(target), std::process::id()));
        temps().push(path.clone());
        Temp { path, done: false }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary was renamed into place: nothing is left to remove.
    pub(crate) fn done(mut self) {
        self.done = true;
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let mut temps = temps();
        if !self.done {
            remove(&self.path);
        }
        temps.retain(|p| p != &self.path);
    }
}

/// `.NAME.arca-restore-`: the temporary names beside `target` start so.
fn prefix(target: &Path) -> String {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}{TEMP_MARK}")
}

/// Removes `.NAME.arca-restore-PID` beside `target` where no process `PID`
/// runs (a restore that was killed), or where it is this process (a
/// leftover of an earlier process with the same id). A live process's
/// temporary is left alone.
fn remove_stale(target: &Path) {
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = prefix(target);
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        // pid 0 is no process a restore ran as: leave its file alone.
        if pid != std::process::id() && (pid == 0 || process_alive(pid)) {
            continue;
        }
        let path = e.path();
        remove(&path);
        tracing::info!(path = %path.display(), "removed the leftover of an interrupted restore");
    }
}

/// Removes a file or a whole directory, not following a symlink.
fn remove(path: &Path) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if !meta.is_dir() {
        let _ = std::fs::remove_file(path);
        return;
    }
    // Writers still running may add a file while the tree goes: retry.
    for _ in 0..10 {
        match std::fs::remove_dir_all(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => continue,
            _ => return,
        }
    }
}

/// Creates directory `rel` (a path checked by [`arca_repo::checked_path`])
/// and its missing parents under `root`, one component at a time; refuses a
/// component that exists as anything but a directory, a symlink included,
/// so nothing is created outside `root`.
pub(crate) fn create_dirs_under(root: &Path, rel: &Path) -> io::Result<()> {
    let mut p = root.to_path_buf();
    for c in rel.components() {
        p.push(c);
        match std::fs::create_dir(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let t = std::fs::symlink_metadata(&p)?.file_type();
                if !t.is_dir() {
                    return Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        format!(
                            "{} is {}, not a directory: a restore does not write through it",
                            p.display(),
                            arca_engine::file_kind(t)
                        ),
                    ));
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Creates `path` as a new file (mode 0600): never an existing file, nor
/// through a symlink.
pub(crate) fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

/// A free loopback port for a server a restore starts.
pub fn free_port() -> crate::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| crate::Error::Unsupported(format!("cannot find a free port: {e}")))?;
    Ok(l.local_addr()
        .map_err(|e| crate::Error::Unsupported(format!("cannot find a free port: {e}")))?
        .port())
}

/// Whether this process runs as root (servers refuse to: they are run
/// as their own user).
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The first `name` that is a file in `first`, then in PATH's
/// directories, then in `then`.
pub fn find_program(name: &str, first: &[&Path], then: &[&Path]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH");
    first
        .iter()
        .map(|d| d.to_path_buf())
        .chain(path.iter().flat_map(std::env::split_paths))
        .chain(then.iter().map(|d| d.to_path_buf()))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirs_are_not_created_through_a_symlink() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let outside = d.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("base")).unwrap();
        let e = create_dirs_under(&root, Path::new("base/1")).unwrap_err();
        assert!(e.to_string().contains("is a symbolic link"), "{e}");
        assert!(!outside.join("1").exists());
        create_dirs_under(&root, Path::new("global/x")).unwrap();
        assert!(root.join("global/x").is_dir());
        std::os::unix::fs::symlink(outside.join("f"), root.join("link")).unwrap();
        assert!(create_new(&root.join("link")).is_err());
        assert!(!outside.join("f").exists());
    }

    #[test]
    fn leftovers_of_gone_processes_are_removed_live_ones_kept() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("app.db");
        // No process has a pid this large (pid_max is at most 2^22).
        let gone = d.path().join(".app.db.arca-restore-99999999");
        let live = d
            .path()
            .join(format!(".app.db.arca-restore-{}", std::process::id()));
        let parent = d.path().join(format!(
            ".app.db.arca-restore-{}",
            std::os::unix::process::parent_id()
        ));
        let other = d.path().join(".other.db.arca-restore-99999999");
        std::fs::write(&gone, b"x").unwrap();
        std::fs::create_dir(&live).unwrap();
        std::fs::write(live.join("f"), b"x").unwrap();
        std::fs::write(&parent, b"x").unwrap();
        std::fs::write(&other, b"x").unwrap();
        let t = Temp::new(&target);
        assert!(!gone.exists(), "a dead process's leftover goes");
        assert!(!live.exists(), "this process's own name is free for it");
        assert!(parent.exists(), "a live process's file stays");
        assert!(other.exists(), "another target's file stays");
        std::fs::write(t.path(), b"partial").unwrap();
        drop(t);
        assert!(!live.exists(), "dropped unfinished: removed");
    }
}
