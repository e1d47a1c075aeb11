//! Held files: claimed files whose import waits for the client's approval, kept in
//! `drop_dir/held/` (mode 0750: the client reads them, only the importer moves them).
//!
//! [`DropFolder::hold`] moves a claimed file there (a commit point, like an archive);
//! [`DropFolder::release`] claims it again for the import, [`DropFolder::discard_held`] moves it
//! to `.bak`. Each move is one `renameat2(RENAME_NOREPLACE)`, so of two processes releasing or
//! discarding the same held file exactly one gets it; the other gets `Ok(None)`.

use std::time::SystemTime;

use rustix::fs::{Dir, FileType, Mode, RenameFlags};
use rustix::io::Errno;

use super::{
    ClaimedFile, ClientDir, DropFolder, HELD_DIR, MAX_ARCHIVE_ATTEMPTS, new_claim_id, statat_meta,
};
use crate::error::FolderError;
use crate::names;

/// A file of `held/`, as listed by [`DropFolder::held`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldFile {
    /// Its name in `held/` (valid UTF-8, not hidden).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time (the client's, kept since the upload).
    pub mtime: SystemTime,
    /// Inode number.
    pub ino: u64,
}

impl DropFolder {
    /// Moves a claimed file into `held/` (created, mode 0750, on first use) under its own name,
    /// or `NAME.YYYYMMDDTHHMMSSZ.ext`, then `-2`… when taken (nothing is ever overwritten); the
    /// file is made mode 0640 with the drop folder's group, like an archived file. Removes the
    /// claim folder and syncs both folders. Returns the name in `held/`. This rename is a commit
    /// point, like [`archive`](Self::archive).
    pub fn hold(&self, c: &ClaimedFile, now: SystemTime) -> Result<String, FolderError> {
        let held = self.client_dir(ClientDir::Held)?;
        let dir = self.claim_dir(&c.id, false)?;
        match statat_meta(&dir, c.original_name.as_str()) {
            Ok(m) if m.kind == FileType::RegularFile => {}
            Ok(_) | Err(Errno::NOENT) => return Err(c.gone(self)),
            Err(e) => return Err(self.io("cannot stat claimed file", c.display_path(self), e)),
        }
        self.make_client_readable(&dir, &c.original_name);
        for attempt in 0..MAX_ARCHIVE_ATTEMPTS {
            let target = names::archive_name(&c.original_name, now, attempt);
            match rustix::fs::renameat_with(
                &dir,
                c.original_name.as_str(),
                &held,
                target.as_str(),
                RenameFlags::NOREPLACE,
            ) {
                Ok(()) => {
                    self.sync_dirs([&held, &dir]);
                    self.remove_claim_dir(&c.id);
                    tracing::debug!(drop_dir = %self.drop_path.display(), file = %c.original_name, held_as = %target, "held");
                    return Ok(target);
                }
                Err(Errno::EXIST) => continue,
                Err(Errno::NOENT) => return Err(c.gone(self)),
                Err(e) => return Err(self.io("cannot hold", c.display_path(self), e)),
            }
        }
        Err(FolderError::ArchiveNamesExhausted {
            drop_dir: self.drop_path.join(HELD_DIR),
            name: c.original_name.clone(),
        })
    }

    /// The regular files of `held/` (with no other hard link; hidden and other entries are
    /// ignored), oldest first (mtime, then name). Empty, at the cost of one failed `openat`,
    /// when `held/` does not exist; [`FolderError::NotAFolder`] when `held` is a link or a file.
    pub fn held(&self) -> Result<Vec<HeldFile>, FolderError> {
        let Some(dir) = self.open_client_dir(ClientDir::Held, false)? else {
            return Ok(Vec::new());
        };
        let path = self.drop_path.join(HELD_DIR);
        let mut found = Vec::new();
        let listing = Dir::read_from(&dir).map_err(|e| self.io("cannot list", path.clone(), e))?;
        for entry in listing {
            let entry = entry.map_err(|e| self.io("cannot list", path.clone(), e))?;
            let raw = entry.file_name().to_bytes();
            let Ok(name) = std::str::from_utf8(raw) else {
                continue;
            };
            if !names::is_plain_name(name) {
                continue;
            }
            match statat_meta(&dir, entry.file_name()) {
                Ok(m) if m.kind == FileType::RegularFile && m.nlink == 1 => found.push(HeldFile {
                    name: name.to_owned(),
                    size: m.size,
                    mtime: m.mtime,
                    ino: m.ino,
                }),
                Ok(_) | Err(Errno::NOENT) => {}
                Err(e) => return Err(self.io("cannot stat", path.join(name), e)),
            }
        }
        found.sort_by(|a, b| a.mtime.cmp(&b.mtime).then_with(|| a.name.cmp(&b.name)));
        Ok(found)
    }

    /// Moves `held/NAME` into a new claim (`work_dir/claimed/<claim-id>/NAME`), exactly as
    /// [`claim`](Self::claim) does from the drop folder: one atomic rename that never replaces
    /// anything. `Ok(None)` when it is not there (another process released or discarded it),
    /// or is not a regular file with no other link: so a released file is imported once.
    pub fn release(&self, name: &str) -> Result<Option<ClaimedFile>, FolderError> {
        if !names::is_plain_name(name) {
            return Ok(None);
        }
        let Some(held) = self.open_client_dir(ClientDir::Held, false)? else {
            return Ok(None);
        };
        let path = self.drop_path.join(HELD_DIR).join(name);
        match statat_meta(&held, name) {
            Ok(m) if m.kind == FileType::RegularFile && m.nlink == 1 => {}
            Ok(_) | Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.io("cannot stat", path, e)),
        }
        // An identity, not a time: see `new_claim_id`.
        let id = new_claim_id(SystemTime::now());
        rustix::fs::mkdirat(&self.claimed, id.as_str(), Mode::from_raw_mode(0o700))
            .map_err(|e| self.io("cannot create", self.claimed_path().join(&id), e))?;
        let dir = self.claim_dir(&id, false)?;
        if let Err(e) = rustix::fs::renameat_with(&held, name, &dir, name, RenameFlags::NOREPLACE) {
            self.remove_claim_dir(&id);
            return match e {
                Errno::NOENT => Ok(None),
                e => Err(self.io("cannot claim", path, e)),
            };
        }
        let meta = statat_meta(&dir, name)
            .map_err(|e| self.io("cannot stat claimed file", self.claimed_path().join(&id), e))?;
        self.sync_dirs([&dir, &self.claimed, &held]);
        tracing::debug!(drop_dir = %self.drop_path.display(), file = %name, claim = %id, "released");
        Ok(Some(ClaimedFile {
            id,
            original_name: name.to_owned(),
            size: meta.size,
            mtime: meta.mtime,
            ino: meta.ino,
        }))
    }

    /// Moves `held/NAME` into `.bak` (created as for [`archive`](Self::archive)) under the
    /// archive names; returns its name in `.bak`. `Ok(None)` when it is not there (another
    /// process released or discarded it) or is not a regular file.
    pub fn discard_held(&self, name: &str, now: SystemTime) -> Result<Option<String>, FolderError> {
        if !names::is_plain_name(name) {
            return Ok(None);
        }
        let Some(held) = self.open_client_dir(ClientDir::Held, false)? else {
            return Ok(None);
        };
        let path = self.drop_path.join(HELD_DIR).join(name);
        match statat_meta(&held, name) {
            Ok(m) if m.kind == FileType::RegularFile => {}
            Ok(_) | Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.io("cannot stat", path, e)),
        }
        let bak = self.open_bak()?;
        for attempt in 0..MAX_ARCHIVE_ATTEMPTS {
            let target = names::archive_name(name, now, attempt);
            match rustix::fs::renameat_with(
                &held,
                name,
                &bak,
                target.as_str(),
                RenameFlags::NOREPLACE,
            ) {
                Ok(()) => {
                    self.sync_dirs([&bak, &held]);
                    tracing::debug!(drop_dir = %self.drop_path.display(), file = %name, archived_as = %target, "held file discarded");
                    return Ok(Some(target));
                }
                Err(Errno::EXIST) => continue,
                Err(Errno::NOENT) => return Ok(None),
                Err(e) => return Err(self.io("cannot discard", path, e)),
            }
        }
        Err(FolderError::ArchiveNamesExhausted {
            drop_dir: self.drop_path.clone(),
            name: name.to_owned(),
        })
    }
}
