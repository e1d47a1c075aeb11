//! The drop-folder lifecycle: scan for ready files, claim one atomically, archive it into `.bak`;
//! and the importer's other folders for the client (results, previews, held files).
//!
//! Every operation works relative to directory handles opened once in [`DropFolder::open`]; no
//! path inside the drop folder is ever re-resolved and no symlink is ever followed there
//! (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`, `O_DIRECTORY`, `renameat2(RENAME_NOREPLACE)`). Layout of
//! the drop folder (the client's) as the importer uses it:
//!
//! ```text
//! drop_dir/NAME.csv                    an upload: ready once settled (scan, claim)
//! drop_dir/NAME.approve, NAME.discard  control files for a held file (Scan::signals, remove_signal)
//! drop_dir/<anything else>             never imported: listed once settled (Scan::unimportable),
//!                                      moved to .bak on request (set_aside)
//! drop_dir/.bak/                       0750, the drop folder's group: archived and set-aside
//!                                      entries, never overwritten (archive, set_aside, discard_held)
//! drop_dir/results/                    2770: files written for the client (write_result)
//! drop_dir/preview/                    2770: a drop folder of its own (preview), with its own .bak/
//! drop_dir/held/                       0750: files waiting for the client's approval
//!                                      (hold, held, release, discard_held)
//! ```
//!
//! Hidden names, partial uploads (`*.filepart`, `*.part`, `*.tmp`, `~*`) and the importer's
//! folders above are never listed. Layout of the work directory (private to the importer, on the
//! drop folder's filesystem):
//!
//! ```text
//! work_dir/lock                        the tenant lock (see TenantLock)
//! work_dir/claimed/<claim-id>/<name>   a claimed file, out of the client's reach
//! work_dir/<state file>                small state files: the pipeline's report markers, `bak-swept`,
//!                                      `folders-checked` (read_state, write_state_atomic, remove_state)
//! work_dir/preview/                    the work directory of the preview folder (same layout)
//! ```
//!
//! The code is split by job: `aside` (unimportable entries and control files), `client` (the
//! client's folders, results, the preview folder), `held` (held files), `retention` (`.bak`).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, CWD, Dir, FileType, Gid, Mode, OFlags, RenameFlags, Stat};
use rustix::io::Errno;

use crate::error::FolderError;
use crate::names::{self, NameClass};

mod aside;
mod client;
mod held;
mod retention;
pub use aside::{Signal, SignalAction, Unimportable, UnimportableKind};
pub use client::{ClientDir, HELD_DIR, PREVIEW_DIR, RESULTS_DIR};
pub use held::HeldFile;
pub use retention::BakSweep;

const CLAIMED_DIR: &str = "claimed";
const LOCK_FILE: &str = "lock";
const BAK_DIR: &str = ".bak";
/// The state file in which [`DropFolder::check_once`] remembers its checks.
const CHECKED_STATE: &str = "folders-checked";
/// How many archive names are tried before giving up (`NAME.STAMP-9999.csv`).
const MAX_ARCHIVE_ATTEMPTS: u32 = 10_000;

static SEQ: AtomicU64 = AtomicU64::new(0);

/// One tenant's drop folder and the importer's private work directory, both held open.
#[derive(Debug)]
pub struct DropFolder {
    drop: OwnedFd,
    work: OwnedFd,
    claimed: OwnedFd,
    drop_path: PathBuf,
    work_path: PathBuf,
    drop_gid: u32,
}

/// A file that is ready to be claimed, as seen by [`DropFolder::scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its name in the drop folder (valid UTF-8, no control characters).
    pub name: String,
    /// Size in bytes at scan time.
    pub size: u64,
    /// Modification time at scan time (as the client set it).
    pub mtime: SystemTime,
    /// Inode number at scan time.
    pub ino: u64,
}

/// Why an entry of the drop folder was skipped and reported.
///
/// [`DropFolder::scan`] no longer gives `Symlink`, `Directory`, `Fifo`, `Socket` or `Device`:
/// such entries are [`Unimportable`] (listed once settled). The variants stay for other callers
/// that sort entries themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// A symbolic link named like a CSV file: never followed.
    Symlink,
    /// A directory named like a CSV file.
    Directory,
    /// A named pipe.
    Fifo,
    /// A socket.
    Socket,
    /// A character or block device.
    Device,
    /// A regular file with other hard links (it may be someone else's file).
    HardLinked,
    /// Any other kind of entry.
    NotRegular,
    /// The name contains a control character (a newline, an escape…).
    ControlCharacter,
    /// The name is not valid UTF-8.
    InvalidUtf8,
    /// The importer is not allowed to read it (uploaded without group read permission).
    Unreadable,
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SkipReason::Symlink => "it is a symbolic link, not a file (links are never followed)",
            SkipReason::Directory => "it is a folder, not a file",
            SkipReason::Fifo => "it is a named pipe, not a file",
            SkipReason::Socket => "it is a socket, not a file",
            SkipReason::Device => "it is a device, not a file",
            SkipReason::HardLinked => "it has other hard links; upload it as a plain file",
            SkipReason::NotRegular => "it is not a regular file",
            SkipReason::ControlCharacter => {
                "its name contains a control character; rename it with letters, digits, spaces, '-' or '_'"
            }
            SkipReason::InvalidUtf8 => {
                "its name is not valid UTF-8; rename it with letters, digits, spaces, '-' or '_'"
            }
            SkipReason::Unreadable => {
                "the importer may not read it (permission denied); upload it again readable by the group, or have the folder's permissions fixed"
            }
        })
    }
}

/// An entry skipped by a scan, to be reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The name, escaped so that it is safe to print (`\n`, `\xe9`).
    pub name: String,
    /// Why it was skipped.
    pub reason: SkipReason,
}

/// The outcome of one scan of a drop folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Files ready to be claimed, oldest first (mtime, then name).
    pub ready: Vec<Candidate>,
    /// Entries that changed less than `settle` ago (still being uploaded, perhaps): CSV files,
    /// and entries that will be [`unimportable`](Self::unimportable) once settled. Another scan
    /// is due `settle` later when it is not zero.
    pub settling: usize,
    /// Entries skipped and to be reported: odd names (invalid UTF-8, control characters),
    /// hard-linked CSV files, CSV files the importer may not read.
    pub skipped: Vec<Skipped>,
    /// Settled entries that will never be imported (another name than `.csv`, or not a regular
    /// file), by name; to be reported, and perhaps [set aside](DropFolder::set_aside).
    pub unimportable: Vec<Unimportable>,
    /// Control files (`NAME.approve`, `NAME.discard`) that are regular files, by name; listed
    /// at once, without waiting for `settle` (their contents are never read).
    pub signals: Vec<Signal>,
}

/// A file moved out of the drop folder into the private work directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedFile {
    id: String,
    original_name: String,
    size: u64,
    mtime: SystemTime,
    ino: u64,
}

impl ClaimedFile {
    /// The claim id: stable across restarts, unique, sorts in claim order; safe as part of a
    /// state file name (ASCII letters, digits, `.` and `-`).
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The name the client gave the file.
    pub fn original_name(&self) -> &str {
        &self.original_name
    }
    /// Size in bytes when claimed (or when found after a restart).
    pub fn size(&self) -> u64 {
        self.size
    }
    /// Modification time when claimed (or when found after a restart).
    pub fn mtime(&self) -> SystemTime {
        self.mtime
    }
    /// Inode number.
    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// Opens the claimed file for reading (relative to the claimed directory, never following a
    /// symlink) and checks that it is still the same regular file.
    pub fn open(&self, folder: &DropFolder) -> Result<File, FolderError> {
        let dir = folder.claim_dir(&self.id, false)?;
        let fd = rustix::fs::openat(
            &dir,
            self.original_name.as_str(),
            file_read_flags(),
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::NOENT | Errno::LOOP | Errno::NXIO => self.gone(folder),
            e => folder.io("cannot open claimed file", self.display_path(folder), e),
        })?;
        let meta = fstat_meta(&fd)
            .map_err(|e| folder.io("cannot stat claimed file", self.display_path(folder), e))?;
        if meta.kind != FileType::RegularFile || meta.ino != self.ino {
            return Err(self.gone(folder));
        }
        Ok(File::from(fd))
    }

    /// Whether the file's size or mtime differ from those recorded at the claim: an upload that
    /// was still being written through a handle the client kept open.
    pub fn changed_since_claim(&self, folder: &DropFolder) -> Result<bool, FolderError> {
        let meta = self.current(folder)?;
        Ok(meta.ino != self.ino || meta.size != self.size || meta.mtime != self.mtime)
    }

    fn current(&self, folder: &DropFolder) -> Result<Meta, FolderError> {
        let dir = folder.claim_dir(&self.id, false)?;
        match statat_meta(&dir, self.original_name.as_str()) {
            Ok(m) if m.kind == FileType::RegularFile => Ok(m),
            Ok(_) | Err(Errno::NOENT) => Err(self.gone(folder)),
            Err(e) => Err(folder.io("cannot stat claimed file", self.display_path(folder), e)),
        }
    }

    fn display_path(&self, folder: &DropFolder) -> PathBuf {
        folder
            .work_path
            .join(CLAIMED_DIR)
            .join(&self.id)
            .join(&self.original_name)
    }

    fn gone(&self, folder: &DropFolder) -> FolderError {
        FolderError::ClaimedFileGone {
            path: self.display_path(folder),
        }
    }
}

impl DropFolder {
    /// Opens the drop folder and the work directory (created, mode 0700, if missing) as handles,
    /// creates `work_dir/claimed`, and refuses a work directory on another filesystem or inside
    /// the drop folder. The two configured paths are the operator's and may go through symlinks;
    /// nothing inside the drop folder is ever followed. Opening is cheap: a long-running service
    /// may open the folder once per pass, so that a drop folder re-created by an operator is seen.
    pub fn open(drop_dir: &Path, work_dir: &Path) -> Result<DropFolder, FolderError> {
        DropFolder::open_with(drop_dir, work_dir, true)
    }

    /// [`open`](Self::open) for a caller that opened these folders successfully before (a
    /// service's later passes): the same, but without resolving both paths again to check that
    /// they do not overlap, which costs a `readlink` per path component.
    pub fn reopen(drop_dir: &Path, work_dir: &Path) -> Result<DropFolder, FolderError> {
        DropFolder::open_with(drop_dir, work_dir, false)
    }

    fn open_with(
        drop_dir: &Path,
        work_dir: &Path,
        check_overlap: bool,
    ) -> Result<DropFolder, FolderError> {
        let err = |key: &'static str, path: &Path, e: io::Error| FolderError::OpenDir {
            key,
            path: path.to_owned(),
            source: e,
        };
        let drop = rustix::fs::openat(
            CWD,
            drop_dir,
            dir_flags() & !OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .map_err(|e| err("drop_dir", drop_dir, e.into()))?;
        let open_work = || {
            rustix::fs::openat(
                CWD,
                work_dir,
                dir_flags() & !OFlags::NOFOLLOW,
                Mode::empty(),
            )
        };
        let work = match open_work() {
            Err(Errno::NOENT) => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(work_dir)
                    .map_err(|e| err("state_dir", work_dir, e))?;
                open_work()
            }
            opened => opened,
        }
        .map_err(|e| err("state_dir", work_dir, e.into()))?;
        let drop_meta = fstat_meta(&drop).map_err(|e| err("drop_dir", drop_dir, e.into()))?;
        let work_meta = fstat_meta(&work).map_err(|e| err("state_dir", work_dir, e.into()))?;
        if drop_meta.dev != work_meta.dev {
            return Err(FolderError::CrossDevice {
                drop_dir: drop_dir.to_owned(),
                work_dir: work_dir.to_owned(),
            });
        }
        let claimed = open_or_make_dir(&work, CLAIMED_DIR, 0o700).map_err(|e| FolderError::Io {
            op: "cannot create",
            path: work_dir.join(CLAIMED_DIR),
            source: e.into(),
        })?;
        let folder = DropFolder {
            drop,
            work,
            claimed,
            drop_path: drop_dir.to_owned(),
            work_path: work_dir.to_owned(),
            drop_gid: drop_meta.gid,
        };
        if check_overlap {
            folder.check_overlap()?;
        }
        Ok(folder)
    }

    /// Refuses a work directory inside the drop folder or around it: it must be out of the
    /// client's reach. Resolves both paths (a `readlink` per component).
    fn check_overlap(&self) -> Result<(), FolderError> {
        if let (Ok(d), Ok(w)) = (self.drop_path.canonicalize(), self.work_path.canonicalize())
            && (w.starts_with(&d) || d.starts_with(&w))
        {
            return Err(FolderError::OpenDir {
                key: "state_dir",
                path: self.work_path.clone(),
                source: io::Error::other(format!(
                    "it overlaps the drop folder {}: put `state_dir` outside every `drop_dir`",
                    self.drop_path.display()
                )),
            });
        }
        Ok(())
    }

    /// The start-up checks of [`open`](Self::open) and [`probe_claim`](Self::probe_claim),
    /// made once for these two folders and remembered in the work directory (by the folders'
    /// device and inode numbers), so that a process starting over thousands of tenants does
    /// not rename a probe file in each again. A claim that later fails with `EXDEV` forgets it.
    pub fn check_once(&self) -> Result<(), FolderError> {
        let identity = self.identity()?;
        if self.read_state(CHECKED_STATE)?.as_deref() == Some(identity.as_bytes()) {
            return Ok(());
        }
        self.check_overlap()?;
        self.probe_claim()?;
        // A cache, not a commitment: written without fsync; a torn or lost copy only means the
        // checks run once more.
        let written = (|| -> io::Result<()> {
            let fd = rustix::fs::openat(
                &self.work,
                CHECKED_STATE,
                OFlags::WRONLY
                    | OFlags::CREATE
                    | OFlags::TRUNC
                    | OFlags::NOFOLLOW
                    | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )?;
            File::from(fd).write_all(identity.as_bytes())
        })();
        if let Err(e) = written {
            tracing::debug!(work_dir = %self.work_path.display(), error = %e, "cannot remember the folder checks");
        }
        Ok(())
    }

    /// The two folders' device and inode numbers, as `check_once` remembers them.
    fn identity(&self) -> Result<String, FolderError> {
        let d = fstat_meta(&self.drop)
            .map_err(|e| self.io("cannot stat", self.drop_path.clone(), e))?;
        let w = fstat_meta(&self.work)
            .map_err(|e| self.io("cannot stat", self.work_path.clone(), e))?;
        Ok(format!("{}:{} {}:{}\n", d.dev, d.ino, w.dev, w.ino))
    }

    /// Checks at start that a file can be claimed: renames a hidden probe file from the work
    /// directory into the drop folder and back. `st_dev` alone misses bind mounts (systemd's
    /// `ReadWritePaths=` makes one per path), across which a rename fails with `EXDEV`.
    pub fn probe_claim(&self) -> Result<(), FolderError> {
        // An identity, not a time: see `new_claim_id`.
        let name = format!(".opscom-import-probe-{}", new_claim_id(SystemTime::now()));
        let io = |op, e: Errno| FolderError::Io {
            op,
            path: self.drop_path.join(&name),
            source: e.into(),
        };
        drop(
            rustix::fs::openat(
                &self.claimed,
                name.as_str(),
                OFlags::CREATE
                    | OFlags::WRONLY
                    | OFlags::TRUNC
                    | OFlags::NOFOLLOW
                    | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .map_err(|e| io("cannot create a probe file", e))?,
        );
        let there = rustix::fs::renameat(&self.claimed, name.as_str(), &self.drop, name.as_str());
        let back = there.and_then(|()| {
            rustix::fs::renameat(&self.drop, name.as_str(), &self.claimed, name.as_str())
        });
        let _ = rustix::fs::unlinkat(&self.claimed, name.as_str(), AtFlags::empty());
        let _ = rustix::fs::unlinkat(&self.drop, name.as_str(), AtFlags::empty());
        match back {
            Ok(()) => Ok(()),
            Err(Errno::XDEV) => Err(FolderError::CrossDevice {
                drop_dir: self.drop_path.clone(),
                work_dir: self.work_path.clone(),
            }),
            Err(e) => Err(io(
                "cannot move files between the drop folder and the work folder",
                e,
            )),
        }
    }

    /// The drop folder as configured (for messages).
    pub fn drop_path(&self) -> &Path {
        &self.drop_path
    }

    /// The work directory as configured (for messages).
    pub fn work_path(&self) -> &Path {
        &self.work_path
    }

    /// Fails with [`FolderError::BakNotDirectory`] when `.bak` exists and is not a real directory.
    pub fn check_bak(&self) -> Result<(), FolderError> {
        match statat_meta(&self.drop, BAK_DIR) {
            Ok(m) if m.kind == FileType::Directory => Ok(()),
            Ok(_) => Err(self.bak_not_dir()),
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(self.io("cannot stat", self.drop_path.join(BAK_DIR), e)),
        }
    }

    /// The drop folder's own modification time. It changes whenever an entry is created,
    /// removed or renamed in the folder, so a caller that noted it after its own last change can
    /// tell whether a listing it holds is still complete (and list again only then).
    pub fn modified(&self) -> Result<SystemTime, FolderError> {
        let st = rustix::fs::fstat(&self.drop)
            .map_err(|e| self.io("cannot stat", self.drop_path.clone(), e))?;
        Ok(Meta::from_stat(&st).mtime)
    }

    /// Lists the drop folder: files ready to claim (oldest first), how many entries are still
    /// settling, the entries skipped, the entries that will never be imported, and the control
    /// files. A file is ready when it is a regular file with a `.csv` name (any case), not
    /// hidden, not a partial upload, and unchanged for `settle` (a modification time in the
    /// future counts as the time of its last change on this server). The same settling applies
    /// to [`unimportable`](Scan::unimportable) entries, by their own `lstat` times (a folder's
    /// own mtime). Ignored silently: hidden names (`.bak` among them), the importer's
    /// sub-folders (`results`, `preview`, `held`, whatever they are), partial uploads
    /// (`*.filepart`, `*.part`, `*.tmp`, `~*`). Fails when `.bak` is not a real directory: the
    /// tenant must stop (a bad `results`, `preview` or `held` does not stop the scan).
    pub fn scan(&self, now: SystemTime, settle: Duration) -> Result<Scan, FolderError> {
        self.check_bak()?;
        let mut scan = Scan::default();
        let dir = Dir::read_from(&self.drop)
            .map_err(|e| self.io("cannot list", self.drop_path.clone(), e))?;
        for entry in dir {
            let entry = entry.map_err(|e| self.io("cannot list", self.drop_path.clone(), e))?;
            let raw = entry.file_name().to_bytes();
            let class = names::classify(raw);
            let name = match &class {
                NameClass::Ignored => continue,
                NameClass::InvalidUtf8 => {
                    scan.skipped.push(Skipped {
                        name: names::escape_name(raw),
                        reason: SkipReason::InvalidUtf8,
                    });
                    continue;
                }
                NameClass::ControlCharacter => {
                    scan.skipped.push(Skipped {
                        name: names::escape_name(raw),
                        reason: SkipReason::ControlCharacter,
                    });
                    continue;
                }
                NameClass::Csv(name) | NameClass::Other(name) => name.clone(),
                NameClass::Signal { name, .. } => name.clone(),
            };
            let meta = match statat_meta(&self.drop, entry.file_name()) {
                Ok(m) => m,
                Err(Errno::NOENT) => continue, // gone meanwhile
                Err(e) => return Err(self.io("cannot stat", self.drop_path.join(&name), e)),
            };
            if let NameClass::Signal {
                name,
                target,
                approve,
            } = class
                && meta.kind == FileType::RegularFile
            {
                scan.signals.push(Signal {
                    name,
                    target,
                    action: if approve {
                        SignalAction::Approve
                    } else {
                        SignalAction::Discard
                    },
                });
                continue;
            }
            let csv_file = names::has_csv_extension(&name) && meta.kind == FileType::RegularFile;
            let unimportable = if csv_file {
                if let Some(reason) = meta.skip_reason() {
                    scan.skipped.push(Skipped { name, reason });
                    continue;
                }
                None
            } else {
                match aside::kind_of(&name, &meta) {
                    Some(kind) => Some(kind),
                    None => {
                        scan.skipped.push(Skipped {
                            name,
                            reason: SkipReason::NotRegular,
                        });
                        continue;
                    }
                }
            };
            if !meta.settled(now, settle) {
                scan.settling += 1;
                continue;
            }
            if let Some(kind) = unimportable {
                scan.unimportable.push(Unimportable { name, kind });
                continue;
            }
            // Claiming a file the importer cannot read would hide it from the client and block
            // the tenant: leave it, and report it.
            if let Err(Errno::ACCESS | Errno::PERM) = rustix::fs::openat(
                &self.drop,
                name.as_str(),
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                scan.skipped.push(Skipped {
                    name,
                    reason: SkipReason::Unreadable,
                });
                continue;
            }
            scan.ready.push(Candidate {
                name,
                size: meta.size,
                mtime: meta.mtime,
                ino: meta.ino,
            });
        }
        scan.ready
            .sort_by(|a, b| a.mtime.cmp(&b.mtime).then_with(|| a.name.cmp(&b.name)));
        scan.unimportable.sort_by(|a, b| a.name.cmp(&b.name));
        scan.signals.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(scan)
    }

    /// Moves a candidate out of the drop folder into `work_dir/claimed/<claim-id>/` with one
    /// atomic rename that never replaces anything. `Ok(None)` when the file vanished (another
    /// importer took it) or changed since the scan (it is left, or put back, where it was).
    pub fn claim(&self, c: &Candidate) -> Result<Option<ClaimedFile>, FolderError> {
        match statat_meta(&self.drop, c.name.as_str()) {
            Ok(m) if m.matches(c) && m.skip_reason().is_none() => {}
            Ok(_) | Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.io("cannot stat", self.drop_path.join(&c.name), e)),
        }
        // An identity, not a time: see `new_claim_id`.
        let id = new_claim_id(SystemTime::now());
        rustix::fs::mkdirat(&self.claimed, id.as_str(), Mode::from_raw_mode(0o700))
            .map_err(|e| self.io("cannot create", self.claimed_path().join(&id), e))?;
        let dir = self.claim_dir(&id, false)?;
        match rustix::fs::renameat_with(
            &self.drop,
            c.name.as_str(),
            &dir,
            c.name.as_str(),
            RenameFlags::NOREPLACE,
        ) {
            Ok(()) => {}
            Err(e) => {
                self.remove_claim_dir(&id);
                return match e {
                    Errno::NOENT => Ok(None),
                    Errno::XDEV => Err({
                        // Whatever made the check pass no longer holds: check again next time.
                        let _ = self.remove_state(CHECKED_STATE);
                        FolderError::CrossDevice {
                            drop_dir: self.drop_path.clone(),
                            work_dir: self.work_path.clone(),
                        }
                    }),
                    e => Err(self.io("cannot claim", self.drop_path.join(&c.name), e)),
                };
            }
        }
        // The entry is ours now: check it is the very file that was scanned.
        let meta = statat_meta(&dir, c.name.as_str())
            .map_err(|e| self.io("cannot stat claimed file", self.claimed_path().join(&id), e))?;
        if !meta.matches(c) || meta.skip_reason().is_some() {
            return self.put_back(&dir, &id, c, &meta);
        }
        self.sync_dirs([&dir, &self.claimed, &self.drop]);
        tracing::debug!(drop_dir = %self.drop_path.display(), file = %c.name, claim = %id, "claimed");
        Ok(Some(ClaimedFile {
            id,
            original_name: c.name.clone(),
            size: meta.size,
            mtime: meta.mtime,
            ino: meta.ino,
        }))
    }

    /// Something else than the scanned file was renamed: give it back to the client.
    fn put_back(
        &self,
        dir: &OwnedFd,
        id: &str,
        c: &Candidate,
        meta: &Meta,
    ) -> Result<Option<ClaimedFile>, FolderError> {
        match rustix::fs::renameat_with(
            dir,
            c.name.as_str(),
            &self.drop,
            c.name.as_str(),
            RenameFlags::NOREPLACE,
        ) {
            Ok(()) => {
                self.remove_claim_dir(id);
                Ok(None)
            }
            Err(e) if meta.kind == FileType::RegularFile && meta.nlink == 1 => {
                // The name was taken again meanwhile: keep this regular file claimed; the pipeline
                // checks it like any claimed file (it changed, so it is deferred).
                tracing::warn!(drop_dir = %self.drop_path.display(), file = %c.name, error = %e,
                    "file changed while being claimed and cannot be put back; kept claimed");
                Ok(Some(ClaimedFile {
                    id: id.to_owned(),
                    original_name: c.name.clone(),
                    size: meta.size,
                    mtime: meta.mtime,
                    ino: meta.ino,
                }))
            }
            Err(e) => {
                tracing::warn!(drop_dir = %self.drop_path.display(), file = %c.name, error = %e,
                    "entry swapped while being claimed and cannot be put back; left in the claimed folder");
                Ok(None)
            }
        }
    }

    /// Files left claimed by an earlier run (a crash), oldest claim first, for resuming.
    /// Empty claim folders (a crash between their creation and the rename, or after the archive)
    /// are removed.
    pub fn claimed(&self) -> Result<Vec<ClaimedFile>, FolderError> {
        let mut found = Vec::new();
        // Each claim is a sub-folder, and a folder's link count is 2 plus its sub-folders on
        // ext4, xfs and tmpfs: 2 means no claim, without listing (other filesystems list).
        if fstat_meta(&self.claimed).is_ok_and(|m| m.nlink == 2) {
            return Ok(found);
        }
        let dir = Dir::read_from(&self.claimed)
            .map_err(|e| self.io("cannot list", self.claimed_path(), e))?;
        for entry in dir {
            let entry = entry.map_err(|e| self.io("cannot list", self.claimed_path(), e))?;
            let Ok(id) = entry.file_name().to_str() else {
                continue;
            };
            if id.starts_with('.') {
                continue;
            }
            let id = id.to_owned();
            let sub = match self.claim_dir(&id, true) {
                Ok(sub) => sub,
                Err(_) => {
                    tracing::warn!(path = %self.claimed_path().join(&id).display(), "unexpected entry in the claimed folder; ignored");
                    continue;
                }
            };
            let mut files = Vec::new();
            let listing = Dir::read_from(&sub)
                .map_err(|e| self.io("cannot list", self.claimed_path().join(&id), e))?;
            for e in listing {
                let e = e.map_err(|e| self.io("cannot list", self.claimed_path().join(&id), e))?;
                let raw = e.file_name().to_bytes();
                if raw == b"." || raw == b".." {
                    continue;
                }
                match (std::str::from_utf8(raw), statat_meta(&sub, e.file_name())) {
                    (Ok(name), Ok(m)) if m.kind == FileType::RegularFile => {
                        files.push((name.to_owned(), m))
                    }
                    _ => {
                        tracing::warn!(path = %self.claimed_path().join(&id).display(), name = %names::escape_name(raw),
                        "unexpected entry in a claim folder; ignored")
                    }
                }
            }
            match files.len() {
                0 => self.remove_claim_dir(&id),
                1 => {
                    if let Some((name, m)) = files.pop() {
                        found.push(ClaimedFile {
                            id,
                            original_name: name,
                            size: m.size,
                            mtime: m.mtime,
                            ino: m.ino,
                        });
                    }
                }
                _ => {
                    tracing::warn!(path = %self.claimed_path().join(&id).display(), "claim folder holds several files; ignored")
                }
            }
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found)
    }

    /// Moves a claimed file into `.bak` in the drop folder (created, mode 0750, on first use),
    /// under its own name, or `NAME.YYYYMMDDTHHMMSSZ.csv`, then `-2`, `-3`… when taken; nothing
    /// is ever overwritten. Returns the name in `.bak`. This rename is the commit point.
    pub fn archive(&self, c: &ClaimedFile, now: SystemTime) -> Result<String, FolderError> {
        let bak = self.open_bak()?;
        let dir = self.claim_dir(&c.id, false)?;
        // Make it the client's to read, never anyone else's (best effort: only the owner or root may).
        match rustix::fs::openat(
            &dir,
            c.original_name.as_str(),
            file_read_flags(),
            Mode::empty(),
        ) {
            Ok(fd) => {
                if let Ok(m) = fstat_meta(&fd)
                    && m.kind == FileType::RegularFile
                    && m.nlink == 1
                {
                    if let Err(e) = rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o640)) {
                        tracing::debug!(file = %c.original_name, error = %e, "cannot chmod archived file");
                    }
                    if m.gid != self.drop_gid {
                        let _ = rustix::fs::fchown(&fd, None, Some(Gid::from_raw(self.drop_gid)));
                    }
                }
            }
            Err(Errno::NOENT) => return Err(c.gone(self)),
            Err(e) => return Err(self.io("cannot open claimed file", c.display_path(self), e)),
        }
        for attempt in 0..MAX_ARCHIVE_ATTEMPTS {
            let target = names::archive_name(&c.original_name, now, attempt);
            match rustix::fs::renameat_with(
                &dir,
                c.original_name.as_str(),
                &bak,
                target.as_str(),
                RenameFlags::NOREPLACE,
            ) {
                Ok(()) => {
                    self.sync_dirs([&bak, &dir]);
                    self.remove_claim_dir(&c.id);
                    tracing::debug!(drop_dir = %self.drop_path.display(), file = %c.original_name, archived_as = %target, "archived");
                    return Ok(target);
                }
                Err(Errno::EXIST) => continue,
                Err(Errno::NOENT) => return Err(c.gone(self)),
                Err(e) => return Err(self.io("cannot archive", c.display_path(self), e)),
            }
        }
        Err(FolderError::ArchiveNamesExhausted {
            drop_dir: self.drop_path.clone(),
            name: c.original_name.clone(),
        })
    }

    /// Reads a state file of the work directory; `None` when it does not exist.
    pub fn read_state(&self, name: &str) -> Result<Option<Vec<u8>>, FolderError> {
        check_state_name(name)?;
        let fd = match rustix::fs::openat(&self.work, name, file_read_flags(), Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.io("cannot open", self.work_path.join(name), e)),
        };
        let mut bytes = Vec::new();
        File::from(fd)
            .read_to_end(&mut bytes)
            .map_err(|e| FolderError::Io {
                op: "cannot read",
                path: self.work_path.join(name),
                source: e,
            })?;
        Ok(Some(bytes))
    }

    /// Replaces a state file atomically and durably (temporary file, fsync, rename, fsync of the
    /// directory): after a crash it holds either the old or the new bytes.
    pub fn write_state_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), FolderError> {
        check_state_name(name)?;
        let tmp = format!(
            ".{name}.tmp-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let result = (|| {
            let fd = rustix::fs::openat(
                &self.work,
                tmp.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )?;
            let mut file = File::from(fd);
            file.write_all(bytes)?;
            file.sync_all()?;
            rustix::fs::renameat(&self.work, tmp.as_str(), &self.work, name)?;
            rustix::fs::fsync(&self.work)?;
            Ok::<(), io::Error>(())
        })();
        result.map_err(|e| {
            let _ = rustix::fs::unlinkat(&self.work, tmp.as_str(), AtFlags::empty());
            FolderError::Io {
                op: "cannot write",
                path: self.work_path.join(name),
                source: e,
            }
        })
    }

    /// Removes a state file (durably: the directory is synced after a removal); a missing one is
    /// not an error, and costs one system call.
    pub fn remove_state(&self, name: &str) -> Result<(), FolderError> {
        check_state_name(name)?;
        match rustix::fs::unlinkat(&self.work, name, AtFlags::empty()) {
            Ok(()) => {
                let _ = rustix::fs::fsync(&self.work);
                Ok(())
            }
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(self.io("cannot remove", self.work_path.join(name), e)),
        }
    }

    /// Tries to take this tenant's lock (`work_dir/lock`); `None` when another process holds it.
    pub fn try_lock(&self) -> Result<Option<TenantLock>, FolderError> {
        let fd = rustix::fs::openat(
            &self.work,
            LOCK_FILE,
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| self.io("cannot open", self.work_path.join(LOCK_FILE), e))?;
        TenantLock::lock(File::from(fd), self.work_path.join(LOCK_FILE))
    }

    fn open_bak(&self) -> Result<OwnedFd, FolderError> {
        match rustix::fs::openat(&self.drop, BAK_DIR, dir_flags(), Mode::empty()) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) => {}
            Err(Errno::LOOP | Errno::NOTDIR) => return Err(self.bak_not_dir()),
            Err(e) => return Err(self.io("cannot open", self.drop_path.join(BAK_DIR), e)),
        }
        match rustix::fs::mkdirat(&self.drop, BAK_DIR, Mode::from_raw_mode(0o750)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(self.io("cannot create", self.drop_path.join(BAK_DIR), e)),
        }
        let fd = match rustix::fs::openat(&self.drop, BAK_DIR, dir_flags(), Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::LOOP | Errno::NOTDIR) => return Err(self.bak_not_dir()),
            Err(e) => return Err(self.io("cannot open", self.drop_path.join(BAK_DIR), e)),
        };
        // The client (the drop folder's group) may list and read it; no one else. Best effort:
        // only root or a member of that group may set it.
        let _ = rustix::fs::fchown(&fd, None, Some(Gid::from_raw(self.drop_gid)));
        let _ = rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o750));
        let _ = rustix::fs::fsync(&self.drop);
        Ok(fd)
    }

    fn claim_dir(&self, id: &str, quiet: bool) -> Result<OwnedFd, FolderError> {
        rustix::fs::openat(&self.claimed, id, dir_flags(), Mode::empty()).map_err(|e| {
            if !quiet {
                tracing::debug!(claim = %id, error = %e, "cannot open claim folder");
            }
            match e {
                Errno::NOENT | Errno::NOTDIR | Errno::LOOP => FolderError::ClaimedFileGone {
                    path: self.claimed_path().join(id),
                },
                e => self.io("cannot open", self.claimed_path().join(id), e),
            }
        })
    }

    fn remove_claim_dir(&self, id: &str) {
        if let Err(e) = rustix::fs::unlinkat(&self.claimed, id, AtFlags::REMOVEDIR) {
            tracing::debug!(claim = %id, error = %e, "cannot remove claim folder");
        }
    }

    fn sync_dirs<const N: usize>(&self, dirs: [&OwnedFd; N]) {
        for d in dirs {
            if let Err(e) = rustix::fs::fsync(d) {
                tracing::warn!(drop_dir = %self.drop_path.display(), error = %e, "cannot sync a directory");
            }
        }
    }

    fn claimed_path(&self) -> PathBuf {
        self.work_path.join(CLAIMED_DIR)
    }

    fn bak_not_dir(&self) -> FolderError {
        FolderError::BakNotDirectory {
            drop_dir: self.drop_path.clone(),
        }
    }

    fn io(&self, op: &'static str, path: PathBuf, e: Errno) -> FolderError {
        FolderError::Io {
            op,
            path,
            source: e.into(),
        }
    }
}

/// Exclusive hold on one tenant, across processes: released when dropped.
#[derive(Debug)]
pub struct TenantLock {
    _file: File,
    path: PathBuf,
}

impl TenantLock {
    /// Tries to take the lock file `work_dir/lock` (the work directory is created if missing);
    /// `Ok(None)` when another process (or another handle) holds it: skip the tenant this pass.
    pub fn try_acquire(work_dir: &Path) -> Result<Option<TenantLock>, FolderError> {
        let open_err = |e: io::Error| FolderError::OpenDir {
            key: "state_dir",
            path: work_dir.to_owned(),
            source: e,
        };
        let path = work_dir.join(LOCK_FILE);
        let open = || {
            rustix::fs::openat(
                CWD,
                &path,
                OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
        };
        let fd = match open() {
            // The work directory is created on first use only.
            Err(Errno::NOENT) => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(work_dir)
                    .map_err(open_err)?;
                open()
            }
            opened => opened,
        }
        .map_err(|e| FolderError::Io {
            op: "cannot open",
            path: path.clone(),
            source: e.into(),
        })?;
        TenantLock::lock(File::from(fd), path)
    }

    fn lock(file: File, path: PathBuf) -> Result<Option<TenantLock>, FolderError> {
        match file.try_lock() {
            Ok(()) => Ok(Some(TenantLock { _file: file, path })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(FolderError::Io {
                op: "cannot lock",
                path,
                source: e,
            }),
        }
    }

    /// The lock file (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn check_state_name(name: &str) -> Result<(), FolderError> {
    let bad = name.is_empty()
        || name.starts_with('.')
        || name.contains(['/', '\0'])
        || name == CLAIMED_DIR
        || name == LOCK_FILE
        || name == PREVIEW_DIR
        || name.len() > 200;
    if bad {
        Err(FolderError::InvalidStateName {
            name: name.to_owned(),
        })
    } else {
        Ok(())
    }
}

/// A claim id: UTC time to the nanosecond, process id and a counter, e.g.
/// `20250115T120000.123456789Z-4242-7`. Sorts in claim order; unique across processes.
///
/// Its callers pass the system clock on purpose, not the injected [`crate::Clock`]: the id is
/// an identity (the name of a claim folder, of its journal and report, of a probe file) that
/// must not repeat, and must sort in claim order (claims are resumed oldest first), across
/// processes sharing the folder and across restarts; a manual clock (frozen, or set back) would
/// break both. Its time is read back only by `status`, to show since when a file is claimed.
/// Everything the time decides (settling, archive names, records, report dates, retention,
/// alerts) takes the caller's `now`, read from its `Clock`, instead.
fn new_claim_id(now: SystemTime) -> String {
    let stamp = names::utc_stamp(now);
    let nanos = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let base = stamp.strip_suffix('Z').unwrap_or(&stamp);
    format!(
        "{base}.{nanos:09}Z-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Read-only, never following a symlink, never blocking on a FIFO, never a controlling tty.
fn file_read_flags() -> OFlags {
    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY
}

fn open_or_make_dir(parent: &OwnedFd, name: &str, mode: u32) -> Result<OwnedFd, Errno> {
    // Open first: the folder exists on every pass but the first.
    match rustix::fs::openat(parent, name, dir_flags(), Mode::empty()) {
        Err(Errno::NOENT) => {}
        opened => return opened,
    }
    match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(mode)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(e),
    }
    rustix::fs::openat(parent, name, dir_flags(), Mode::empty())
}

/// What the lifecycle needs from a `stat`.
#[derive(Debug, Clone, Copy)]
struct Meta {
    kind: FileType,
    size: u64,
    mtime: SystemTime,
    ctime: SystemTime,
    ino: u64,
    dev: u64,
    nlink: u64,
    gid: u32,
}

impl Meta {
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
    fn from_stat(st: &Stat) -> Meta {
        Meta {
            kind: FileType::from_raw_mode(st.st_mode as _),
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime: system_time(
                i64::from(st.st_mtime),
                u32::try_from(st.st_mtime_nsec).unwrap_or(0),
            ),
            ctime: system_time(
                i64::from(st.st_ctime),
                u32::try_from(st.st_ctime_nsec).unwrap_or(0),
            ),
            ino: u64::from(st.st_ino),
            dev: u64::from(st.st_dev),
            nlink: u64::from(st.st_nlink),
            gid: st.st_gid as u32,
        }
    }

    /// Unchanged for `settle` at `now` (a modification time in the future counts as the time
    /// of its last change on this server: its `ctime`).
    fn settled(&self, now: SystemTime, settle: Duration) -> bool {
        let last_change = if self.mtime > now {
            self.ctime.min(now)
        } else {
            self.mtime
        };
        now.duration_since(last_change).unwrap_or(Duration::ZERO) >= settle
    }

    fn matches(&self, c: &Candidate) -> bool {
        self.ino == c.ino && self.size == c.size && self.mtime == c.mtime
    }

    fn skip_reason(&self) -> Option<SkipReason> {
        match self.kind {
            FileType::RegularFile if self.nlink > 1 => Some(SkipReason::HardLinked),
            FileType::RegularFile => None,
            FileType::Symlink => Some(SkipReason::Symlink),
            FileType::Directory => Some(SkipReason::Directory),
            FileType::Fifo => Some(SkipReason::Fifo),
            FileType::Socket => Some(SkipReason::Socket),
            FileType::CharacterDevice | FileType::BlockDevice => Some(SkipReason::Device),
            _ => Some(SkipReason::NotRegular),
        }
    }
}

fn system_time(secs: i64, nanos: u32) -> SystemTime {
    let t = if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    };
    t.and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nanos))))
        .unwrap_or(UNIX_EPOCH)
}

fn statat_meta<P: rustix::path::Arg>(dir: &OwnedFd, name: P) -> Result<Meta, Errno> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map(|st| Meta::from_stat(&st))
}

fn fstat_meta<Fd: AsFd>(fd: Fd) -> Result<Meta, Errno> {
    rustix::fs::fstat(fd).map(|st| Meta::from_stat(&st))
}
