//! Entries of the drop folder that will never be imported ([`Unimportable`]), set aside into
//! `.bak` on request, and the control files of held imports ([`Signal`]).
//!
//! Nothing here follows a symlink: entries are `lstat`ed (`AT_SYMLINK_NOFOLLOW`), moved with
//! `renameat2(RENAME_NOREPLACE)` (which moves a link itself, never its target) and removed with
//! `unlinkat`.

use std::time::SystemTime;

use rustix::fs::{AtFlags, FileType, Gid, Mode, RenameFlags};
use rustix::io::Errno;

use super::{DropFolder, MAX_ARCHIVE_ATTEMPTS, Meta, file_read_flags, fstat_meta, statat_meta};
use crate::error::FolderError;
use crate::names::{self, NameClass, OtherName};

/// An entry of the drop folder that will never be imported, as listed by
/// [`DropFolder::scan`] once settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unimportable {
    /// Its name in the drop folder (valid UTF-8, no control characters).
    pub name: String,
    /// What it is.
    pub kind: UnimportableKind,
}

/// What an [`Unimportable`] entry is. The type of the entry comes first: a symlink, folder,
/// pipe, socket or device is listed as such whatever its name (`x.csv`, `notes`,
/// `x.csv.approve`); a regular file is sorted by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnimportableKind {
    /// A regular file named `.xlsx`, `.xls`, `.xlsm` or `.ods` (any case).
    Spreadsheet,
    /// A regular file named `.txt` or `.tsv` (any case).
    Text,
    /// A regular file with any other name than `.csv` (and not a control file).
    OtherName,
    /// A symbolic link: never followed.
    Symlink,
    /// A folder.
    Directory,
    /// A named pipe.
    Fifo,
    /// A socket.
    Socket,
    /// A character or block device.
    Device,
}

impl std::fmt::Display for UnimportableKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UnimportableKind::Spreadsheet => {
                "it is a spreadsheet: save it as CSV (comma-separated, UTF-8) and upload the .csv file"
            }
            UnimportableKind::Text => {
                "it is a text file: only comma-separated files named .csv are imported; save it as CSV and upload the .csv file"
            }
            UnimportableKind::OtherName => {
                "only files named .csv are imported; upload the users as a CSV file named .csv"
            }
            UnimportableKind::Symlink => {
                "it is a symbolic link, not a file (links are never followed)"
            }
            UnimportableKind::Directory => "it is a folder, not a file",
            UnimportableKind::Fifo => "it is a named pipe, not a file",
            UnimportableKind::Socket => "it is a socket, not a file",
            UnimportableKind::Device => "it is a device, not a file",
        })
    }
}

/// A control file for a held import: `NAME.approve` or `NAME.discard` (any case of the suffix),
/// a regular file of the drop folder. Its contents are never read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    /// The control file's name in the drop folder (`roster.csv.approve`).
    pub name: String,
    /// The name it is about (`roster.csv`), as written: matching it to a held file is the
    /// caller's.
    pub target: String,
    /// What the client asks.
    pub action: SignalAction,
}

/// What a [`Signal`] asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignalAction {
    /// `NAME.approve`: import the held file.
    Approve,
    /// `NAME.discard`: do not import it; move it to `.bak`.
    Discard,
}

/// What an entry named `name` with this `lstat` is, when it is never imported: `None` for a
/// regular `.csv` file or control file (not unimportable) and for an entry of unknown type.
pub(super) fn kind_of(name: &str, meta: &Meta) -> Option<UnimportableKind> {
    Some(match meta.kind {
        FileType::RegularFile => match names::classify(name.as_bytes()) {
            NameClass::Other(_) => match names::other_name(name) {
                OtherName::Spreadsheet => UnimportableKind::Spreadsheet,
                OtherName::Text => UnimportableKind::Text,
                OtherName::Other => UnimportableKind::OtherName,
            },
            _ => return None,
        },
        FileType::Symlink => UnimportableKind::Symlink,
        FileType::Directory => UnimportableKind::Directory,
        FileType::Fifo => UnimportableKind::Fifo,
        FileType::Socket => UnimportableKind::Socket,
        FileType::CharacterDevice | FileType::BlockDevice => UnimportableKind::Device,
        _ => return None,
    })
}

/// Whether a name may be one a scan lists (not hidden, not partial, not one of the importer's
/// sub-folders, valid): the only names the methods below touch.
fn scannable(name: &str) -> bool {
    matches!(
        names::classify(name.as_bytes()),
        NameClass::Csv(_) | NameClass::Other(_) | NameClass::Signal { .. }
    ) && names::is_plain_name(name)
}

impl DropFolder {
    /// Moves an [`Unimportable`] entry of the drop folder, whatever its type, into `.bak`
    /// (created as for [`archive`](Self::archive)) without following it: one
    /// `renameat2(RENAME_NOREPLACE)` under the archive names (its own name, then
    /// `NAME.YYYYMMDDTHHMMSSZ.ext`, `-2`…; nothing is ever overwritten). Returns its name in
    /// `.bak`.
    ///
    /// `Ok(None)` when the entry is gone or is no longer of the kind the scan saw (it is left,
    /// or put back, where it was), or when `entry.name` is not a name a scan lists. A regular
    /// file is then made mode 0640 and given the drop folder's group, like an archived file
    /// (best effort: only its owner may, and the client usually owns it); anything else is
    /// moved as it is. Moving a folder into another folder needs write permission on that
    /// folder itself (to update its `..`): a client's folder without group write permission
    /// cannot be set aside (a [`FolderError::Io`] with `EACCES`), only reported.
    pub fn set_aside(
        &self,
        entry: &Unimportable,
        now: SystemTime,
    ) -> Result<Option<String>, FolderError> {
        let name = entry.name.as_str();
        if !scannable(name) {
            return Ok(None);
        }
        match statat_meta(&self.drop, name) {
            Ok(m) if kind_of(name, &m) == Some(entry.kind) => {}
            Ok(_) | Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.io("cannot stat", self.drop_path.join(name), e)),
        }
        let bak = self.open_bak()?;
        for attempt in 0..MAX_ARCHIVE_ATTEMPTS {
            let target = names::archive_name(name, now, attempt);
            match rustix::fs::renameat_with(
                &self.drop,
                name,
                &bak,
                target.as_str(),
                RenameFlags::NOREPLACE,
            ) {
                Ok(()) => {}
                Err(Errno::EXIST) => continue,
                Err(Errno::NOENT) => return Ok(None),
                Err(e) => return Err(self.io("cannot set aside", self.drop_path.join(name), e)),
            }
            // The entry is in `.bak` now: check it is of the kind that was scanned (it may have
            // been replaced between the `lstat` and the rename).
            let moved = statat_meta(&bak, target.as_str());
            let same = matches!(&moved, Ok(m) if kind_of(name, m) == Some(entry.kind));
            if !same {
                if let Err(e) = rustix::fs::renameat_with(
                    &bak,
                    target.as_str(),
                    &self.drop,
                    name,
                    RenameFlags::NOREPLACE,
                ) {
                    tracing::warn!(drop_dir = %self.drop_path.display(), file = %name, bak_name = %target, error = %e,
                        "entry swapped while being set aside and cannot be put back; left in .bak");
                }
                self.sync_dirs([&bak, &self.drop]);
                return Ok(None);
            }
            if let Ok(m) = moved
                && m.kind == FileType::RegularFile
                && m.nlink == 1
            {
                self.make_client_readable(&bak, &target);
            }
            self.sync_dirs([&bak, &self.drop]);
            tracing::debug!(drop_dir = %self.drop_path.display(), file = %name, set_aside_as = %target, "set aside");
            return Ok(Some(target));
        }
        Err(FolderError::ArchiveNamesExhausted {
            drop_dir: self.drop_path.clone(),
            name: name.to_owned(),
        })
    }

    /// Removes a control file from the drop folder, only if it is still a regular file (a link
    /// or folder put in its place is left alone). A control file already gone is not an error.
    pub fn remove_signal(&self, signal: &Signal) -> Result<(), FolderError> {
        let name = signal.name.as_str();
        if !matches!(names::classify(name.as_bytes()), NameClass::Signal { .. }) {
            return Ok(());
        }
        match statat_meta(&self.drop, name) {
            Ok(m) if m.kind == FileType::RegularFile => {}
            Ok(_) | Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(self.io("cannot stat", self.drop_path.join(name), e)),
        }
        match rustix::fs::unlinkat(&self.drop, name, AtFlags::empty()) {
            Ok(()) => {
                self.sync_dirs([&self.drop]);
                Ok(())
            }
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(self.io("cannot remove", self.drop_path.join(name), e)),
        }
    }

    /// Mode 0640 and the drop folder's group for a regular file with no other link, opened
    /// relative to `dir` without following a link (best effort: only the owner or root may).
    pub(super) fn make_client_readable(&self, dir: &std::os::fd::OwnedFd, name: &str) {
        let Ok(fd) = rustix::fs::openat(dir, name, file_read_flags(), Mode::empty()) else {
            return;
        };
        if let Ok(m) = fstat_meta(&fd)
            && m.kind == FileType::RegularFile
            && m.nlink == 1
        {
            if let Err(e) = rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o640)) {
                tracing::debug!(file = %name, error = %e, "cannot chmod a file");
            }
            if m.gid != self.drop_gid {
                let _ = rustix::fs::fchown(&fd, None, Some(Gid::from_raw(self.drop_gid)));
            }
        }
    }
}
