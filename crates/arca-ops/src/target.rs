//! Where a restore writes: files and directories are created under the
//! target without following symlinks.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

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
}
