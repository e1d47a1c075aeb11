//! Crash-safe file writes: a temp file in the same folder, fsync, rename, fsync the folder.
//!
//! Every folder and file is created with an explicit mode ([`Modes`]), whatever the umask: what
//! is written here holds personal data (rows of the failure CSV).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Prefix of temp files: hidden, so listings of the folder skip them.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

/// The modes of the folders and files a write creates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Modes {
    /// Folders (and missing parents).
    pub dir: u32,
    /// The file.
    pub file: u32,
}

impl Modes {
    /// The owner's alone (the spool): 0700 and 0600.
    pub const PRIVATE: Modes = Modes {
        dir: 0o700,
        file: 0o600,
    };
    /// Readable by the group too, never by others (the outbox, handed on by a group member):
    /// 0750 and 0640.
    pub const GROUP_READABLE: Modes = Modes {
        dir: 0o750,
        file: 0o640,
    };
}

/// Writes `bytes` to `path` (a file in `dir`): after a crash, `path` is either absent or whole.
pub(crate) fn write_atomically(
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    modes: Modes,
) -> std::io::Result<PathBuf> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(modes.dir)
        .create(dir)?;
    let (tmp_path, mut file) = create_temp(dir, modes.file)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            drop(file);
            fs::rename(&tmp_path, path)
        });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp_path);
        return Err(e);
    }
    sync_dir(dir)?;
    Ok(path.to_owned())
}

/// Makes renames and removals in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Creates a new temp file in `dir` (never an existing one) with `mode`.
fn create_temp(dir: &Path, mode: u32) -> std::io::Result<(PathBuf, fs::File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{TEMP_PREFIX}{}-{n}", std::process::id()));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
        {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}
