//! Folders and files that hold personal data, made private whatever the umask: created with
//! an explicit mode (folders 0700, files 0600), and a looser folder the importer owns is
//! tightened when it is first used, or refused with the fix when it cannot be.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and its missing parents) with `mode` (0700 or 0750), or, when it exists,
/// removes the bits `mode` does not allow (an info log says so). Fails, naming the folder and
/// the fix, when it exists looser and cannot be tightened (another user's folder).
pub fn ensure_private_dir(dir: &Path, mode: u32) -> io::Result<()> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => tighten(dir, m.permissions().mode(), mode),
        Ok(_) => Err(io::Error::other(format!(
            "{} is not a folder",
            dir.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new().recursive(true).mode(mode).create(dir)
        }
        Err(e) => Err(e),
    }
}

/// Removes from `dir`'s mode `current` the bits `allowed` does not have.
fn tighten(dir: &Path, current: u32, allowed: u32) -> io::Result<()> {
    let current = current & 0o7777;
    let loose = current & 0o777 & !allowed;
    if loose == 0 {
        return Ok(());
    }
    let tight = current & !loose;
    match fs::set_permissions(dir, fs::Permissions::from_mode(tight)) {
        Ok(()) => {
            tracing::info!(
                folder = %dir.display(),
                was = %format!("{current:04o}"),
                now = %format!("{tight:04o}"),
                "folder holding personal data tightened: other users may not read it"
            );
            Ok(())
        }
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!(
                "{} holds personal data but is mode {current:04o} (other users may read it), and \
                 cannot be tightened ({e}): run `chmod {allowed:o} {}` as its owner",
                dir.display(),
                dir.display()
            ),
        )),
    }
}

/// Creates `dir` and its missing parents, mode 0700 (an existing one is left as it is).
pub fn create_dir_all_private(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Writes `bytes` to `path` (created, mode 0600; an existing file is truncated).
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn folders_are_created_private_and_looser_ones_tightened() {
        let root = tempfile::tempdir().unwrap();
        let new = root.path().join("a/b");
        ensure_private_dir(&new, 0o700).unwrap();
        assert_eq!(mode(&new), 0o700);
        assert_eq!(mode(&root.path().join("a")), 0o700);

        let loose = root.path().join("loose");
        fs::create_dir(&loose).unwrap();
        fs::set_permissions(&loose, fs::Permissions::from_mode(0o2775)).unwrap();
        ensure_private_dir(&loose, 0o750).unwrap();
        assert_eq!(
            mode(&loose),
            0o2750,
            "setgid kept, group write and others dropped"
        );
        ensure_private_dir(&loose, 0o700).unwrap();
        assert_eq!(mode(&loose), 0o2700);

        let file = root.path().join("f");
        write_private(&file, b"x").unwrap();
        assert_eq!(mode(&file), 0o600);
        assert!(ensure_private_dir(&file, 0o700).is_err());
    }
}
