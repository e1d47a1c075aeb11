//! The importer's folders for the client, next to `.bak` in the drop folder: `results/` (files
//! written for the client), `preview/` (a drop folder of its own, see
//! [`DropFolder::preview`]) and `held/` (files waiting for the client's approval, see
//! `held.rs`).
//!
//! Each is opened relative to the drop folder's handle without following a symlink
//! (`O_NOFOLLOW | O_DIRECTORY`) and created when missing; a link, a file or anything else under
//! one of these names is never followed, replaced or removed: it is
//! [`FolderError::NotAFolder`] until the client deletes it.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use rustix::fs::{AtFlags, Gid, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

use super::{
    CLAIMED_DIR, DropFolder, MAX_ARCHIVE_ATTEMPTS, SEQ, dir_flags, fstat_meta, open_or_make_dir,
};
use crate::error::FolderError;
use crate::names;

/// The folder of the drop folder where the importer writes files for the client
/// ([`DropFolder::write_result`]); mode 2770: the client may read, write and delete there.
pub const RESULTS_DIR: &str = "results";
/// The folder of the drop folder where the client uploads files to preview
/// ([`DropFolder::preview`]); mode 2770.
pub const PREVIEW_DIR: &str = "preview";
/// The folder of the drop folder holding files that wait for the client's approval
/// ([`DropFolder::hold`]); mode 0750: the client may only read there.
pub const HELD_DIR: &str = "held";

/// One of the importer's folders for the client in the drop folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientDir {
    /// [`RESULTS_DIR`].
    Results,
    /// [`PREVIEW_DIR`].
    Preview,
    /// [`HELD_DIR`].
    Held,
}

impl ClientDir {
    /// Its name in the drop folder.
    pub fn name(self) -> &'static str {
        match self {
            ClientDir::Results => RESULTS_DIR,
            ClientDir::Preview => PREVIEW_DIR,
            ClientDir::Held => HELD_DIR,
        }
    }

    /// The mode it is created with (and set to, best effort, on every open).
    pub fn mode(self) -> u32 {
        match self {
            ClientDir::Results | ClientDir::Preview => 0o2770,
            ClientDir::Held => 0o750,
        }
    }
}

impl DropFolder {
    /// Opens `drop_dir/<which>` (never following a symlink), creating it when missing with
    /// [`ClientDir::mode`]; its group is set to the drop folder's and its mode to
    /// [`ClientDir::mode`] on every open (best effort, like `.bak`: only its owner or root may).
    /// [`FolderError::NotAFolder`] when the name is taken by a symlink, a file or anything else
    /// than a real folder: it is never followed, replaced or removed.
    pub fn client_dir(&self, which: ClientDir) -> Result<OwnedFd, FolderError> {
        self.open_client_dir(which, true)?
            .ok_or_else(|| self.not_a_folder(which))
    }

    /// [`client_dir`](Self::client_dir), or, with `create` false, `Ok(None)` when it does not
    /// exist (one failed `openat`).
    pub(super) fn open_client_dir(
        &self,
        which: ClientDir,
        create: bool,
    ) -> Result<Option<OwnedFd>, FolderError> {
        let name = which.name();
        let path = || self.drop_path.join(name);
        match rustix::fs::openat(&self.drop, name, dir_flags(), Mode::empty()) {
            Ok(fd) => {
                self.tighten(&fd, which);
                return Ok(Some(fd));
            }
            Err(Errno::NOENT) if create => {}
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP | Errno::NOTDIR) => return Err(self.not_a_folder(which)),
            Err(e) => return Err(self.io("cannot open", path(), e)),
        }
        match rustix::fs::mkdirat(&self.drop, name, Mode::from_raw_mode(which.mode())) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(self.io("cannot create", path(), e)),
        }
        let fd = match rustix::fs::openat(&self.drop, name, dir_flags(), Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::LOOP | Errno::NOTDIR) => return Err(self.not_a_folder(which)),
            Err(e) => return Err(self.io("cannot open", path(), e)),
        };
        self.tighten(&fd, which);
        let _ = rustix::fs::fsync(&self.drop);
        Ok(Some(fd))
    }

    /// The drop folder's group and the folder's mode (best effort).
    fn tighten(&self, fd: &OwnedFd, which: ClientDir) {
        if let Ok(m) = fstat_meta(fd)
            && m.gid != self.drop_gid
        {
            let _ = rustix::fs::fchown(fd, None, Some(Gid::from_raw(self.drop_gid)));
        }
        let _ = rustix::fs::fchmod(fd, Mode::from_raw_mode(which.mode()));
    }

    pub(super) fn not_a_folder(&self, which: ClientDir) -> FolderError {
        FolderError::NotAFolder {
            drop_dir: self.drop_path.clone(),
            name: which.name(),
        }
    }

    /// Writes a new file `name` into `results/` (created as by [`client_dir`](Self::client_dir))
    /// and returns its final name: written under a hidden temporary name (created with
    /// `O_CREAT | O_EXCL | O_NOFOLLOW`, mode 0640, the drop folder's group), synced, then renamed
    /// into place with `RENAME_NOREPLACE`, so that the client never sees half a file. When
    /// `name` is taken, the archive names are tried (`NAME.YYYYMMDDTHHMMSSZ.ext` at `now`,
    /// then `-2`…): nothing is ever overwritten. `name` must be one plain file name (not hidden,
    /// no `/`, no control character): else [`FolderError::InvalidStateName`]. On any failure the
    /// temporary file is removed.
    pub fn write_result(
        &self,
        name: &str,
        contents: &mut dyn Read,
        now: SystemTime,
    ) -> Result<String, FolderError> {
        if !names::is_plain_name(name) {
            return Err(FolderError::InvalidStateName {
                name: name.to_owned(),
            });
        }
        let dir = self.client_dir(ClientDir::Results)?;
        let dir_path = self.drop_path.join(RESULTS_DIR);
        let tmp = format!(
            ".opscom-result-{}-{}.tmp",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let written = (|| -> io::Result<()> {
            let fd = rustix::fs::openat(
                &dir,
                tmp.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o640),
            )?;
            // The umask may have taken bits away; the group must read it.
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o640))?;
            if fstat_meta(&fd).is_ok_and(|m| m.gid != self.drop_gid) {
                let _ = rustix::fs::fchown(&fd, None, Some(Gid::from_raw(self.drop_gid)));
            }
            let mut file = File::from(fd);
            io::copy(contents, &mut file)?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
            return Err(FolderError::Io {
                op: "cannot write",
                path: dir_path.join(name),
                source: e,
            });
        }
        for attempt in 0..MAX_ARCHIVE_ATTEMPTS {
            let target = names::archive_name(name, now, attempt);
            match rustix::fs::renameat_with(
                &dir,
                tmp.as_str(),
                &dir,
                target.as_str(),
                RenameFlags::NOREPLACE,
            ) {
                Ok(()) => {
                    self.sync_dirs([&dir]);
                    return Ok(target);
                }
                Err(Errno::EXIST) => continue,
                Err(e) => {
                    let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
                    return Err(self.io("cannot write", dir_path.join(name), e));
                }
            }
        }
        let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
        Err(FolderError::ArchiveNamesExhausted {
            drop_dir: dir_path,
            name: name.to_owned(),
        })
    }

    /// The preview folder as a drop folder of its own: `drop_dir/preview` (opened and created as
    /// by [`client_dir`](Self::client_dir); [`FolderError::NotAFolder`] when it is a link or a
    /// file) with the work directory `work_dir/preview` (created, mode 0700, with its own
    /// `claimed/`). [`scan`](Self::scan), [`claim`](Self::claim), [`archive`](Self::archive)…
    /// work on it unchanged: a previewed file ends in `preview/.bak/`. The drop folder's group
    /// stays this tenant's. It is on this folder's filesystem: no further checks are needed
    /// (`check_once`, `probe_claim`). Its state files and lock are under `work_dir/preview`.
    pub fn preview(&self) -> Result<DropFolder, FolderError> {
        let drop = self.client_dir(ClientDir::Preview)?;
        self.preview_with(drop)
    }

    /// [`preview`](Self::preview) when `drop_dir/preview` exists, without creating it: `None`,
    /// at the cost of one failed `openat`, when it does not (a tenant that never previews).
    pub fn existing_preview(&self) -> Result<Option<DropFolder>, FolderError> {
        match self.open_client_dir(ClientDir::Preview, false)? {
            Some(drop) => self.preview_with(drop).map(Some),
            None => Ok(None),
        }
    }

    fn preview_with(&self, drop: OwnedFd) -> Result<DropFolder, FolderError> {
        let work_path = self.work_path.join(PREVIEW_DIR);
        let work = open_or_make_dir(&self.work, PREVIEW_DIR, 0o700)
            .map_err(|e| self.io("cannot create", work_path.clone(), e))?;
        let claimed = open_or_make_dir(&work, CLAIMED_DIR, 0o700)
            .map_err(|e| self.io("cannot create", work_path.join(CLAIMED_DIR), e))?;
        Ok(DropFolder {
            drop,
            work,
            claimed,
            drop_path: self.drop_path.join(PREVIEW_DIR),
            work_path,
            drop_gid: self.drop_gid,
        })
    }
}
