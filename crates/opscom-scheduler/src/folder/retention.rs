//! Retention of archived uploads: [`DropFolder::sweep_bak`] deletes the files of `.bak` that
//! were archived longer ago than a tenant's retention.
//!
//! When a file was archived is read from its inode's change time (`ctime`), not its
//! modification time: `mtime` is the client's (sftp sets it from the local file), while the
//! rename into `.bak` (and the `chmod` just before it) sets `ctime` to the time of the archive.
//! No one can set `ctime` back short of changing the system clock, so it is never earlier than
//! the archive, and a file is never deleted early; whatever touches the inode later (the client
//! changing its own file's mode through sftp, a restore from a backup) only postpones its
//! deletion.
//!
//! Everything goes through the `.bak` directory handle: it is opened without following a
//! symlink, each entry is `stat`ed and removed relative to it (`unlinkat`) without following
//! one, and only regular files are removed: sub-folders, links and other entries are left alone.

use std::time::{Duration, SystemTime};

use rustix::fs::{AtFlags, Dir, FileType, Mode};
use rustix::io::Errno;

use super::{BAK_DIR, DropFolder, dir_flags, statat_meta};
use crate::error::FolderError;
use crate::names;

/// What one sweep of `.bak` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BakSweep {
    /// Names (escaped for display) of the archived files deleted, in listing order.
    pub deleted: Vec<String>,
    /// Archived files kept (not yet due).
    pub kept: usize,
    /// Files due that could not be deleted, with the reason (escaped name, error).
    pub failed: Vec<(String, String)>,
}

impl DropFolder {
    /// Deletes every regular, non-hidden file of `.bak` whose change time (the time it was
    /// archived, see the module's documentation) is more than `retention` before `now`. A
    /// missing `.bak` is an empty sweep; a `.bak` that is not a real directory is
    /// [`FolderError::BakNotDirectory`]. One listing and one `stat` per entry.
    pub fn sweep_bak(&self, now: SystemTime, retention: Duration) -> Result<BakSweep, FolderError> {
        let bak_path = self.drop_path.join(BAK_DIR);
        let bak = match rustix::fs::openat(&self.drop, BAK_DIR, dir_flags(), Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(BakSweep::default()),
            Err(Errno::LOOP | Errno::NOTDIR) => return Err(self.bak_not_dir()),
            Err(e) => return Err(self.io("cannot open", bak_path, e)),
        };
        let Some(cutoff) = now.checked_sub(retention) else {
            return Ok(BakSweep::default());
        };
        let mut sweep = BakSweep::default();
        let listing =
            Dir::read_from(&bak).map_err(|e| self.io("cannot list", bak_path.clone(), e))?;
        for entry in listing {
            let entry = entry.map_err(|e| self.io("cannot list", bak_path.clone(), e))?;
            let raw = entry.file_name().to_bytes();
            // `.`, `..` and hidden names: never an archived upload (hidden files are not taken).
            if raw.starts_with(b".") {
                continue;
            }
            let meta = match statat_meta(&bak, entry.file_name()) {
                Ok(m) => m,
                Err(Errno::NOENT) => continue,
                Err(e) => {
                    sweep.failed.push((names::escape_name(raw), e.to_string()));
                    continue;
                }
            };
            if meta.kind != FileType::RegularFile {
                continue;
            }
            if meta.ctime > cutoff {
                sweep.kept += 1;
                continue;
            }
            match rustix::fs::unlinkat(&bak, entry.file_name(), AtFlags::empty()) {
                Ok(()) => sweep.deleted.push(names::escape_name(raw)),
                Err(Errno::NOENT) => {}
                Err(e) => sweep.failed.push((names::escape_name(raw), e.to_string())),
            }
        }
        if !sweep.deleted.is_empty() {
            let _ = rustix::fs::fsync(&bak);
        }
        Ok(sweep)
    }
}
