//! Errors of the drop-folder lifecycle and of the file-system watcher.

use std::io;
use std::path::PathBuf;

/// A fault that stops work on a drop folder (never a problem with one client file: those are
/// [`Skipped`](crate::Skipped) entries of a scan, or `Ok(None)` from a claim).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FolderError {
    /// A configured directory could not be opened (missing, not a directory, no permission).
    #[error("cannot open {key} {path}: {source}")]
    OpenDir {
        /// The configuration key that names this directory (`drop_dir` or `state_dir`).
        key: &'static str,
        /// The directory as configured.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The work directory is on another filesystem than the drop folder, so a claim cannot be an
    /// atomic rename.
    #[error(
        "{work_dir} (under `state_dir`) and {drop_dir} (`drop_dir`) are on different filesystems; \
         a claim must be an atomic rename: set `state_dir` to a directory on the filesystem of `drop_dir`"
    )]
    CrossDevice {
        /// The drop folder.
        drop_dir: PathBuf,
        /// The work directory (under the configured `state_dir`).
        work_dir: PathBuf,
    },
    /// `.bak` in the drop folder exists but is not a real directory (a symlink or a file the
    /// client made). The tenant must stop until an operator removes it.
    #[error(
        "{drop_dir}/.bak is not a real directory (a symlink or a file): no file of this tenant is \
         taken until an operator removes it"
    )]
    BakNotDirectory {
        /// The drop folder.
        drop_dir: PathBuf,
    },
    /// One of the importer's folders for the client in the drop folder (`results`, `preview`,
    /// `held`) is taken by something else than a real folder (a symlink or a file the client
    /// made). It is never followed, replaced or removed; only the work that needs it stops.
    #[error(
        "{drop_dir}/{name} is not a real folder (a link or a file): delete `{name}` from your upload \
         folder; the importer creates the folder `{name}` itself"
    )]
    NotAFolder {
        /// The drop folder.
        drop_dir: PathBuf,
        /// The folder's name (`results`, `preview` or `held`).
        name: &'static str,
    },
    /// Every archive name for a file was taken (more than the bounded number of attempts).
    #[error("no free name in {drop_dir}/.bak for {name}")]
    ArchiveNamesExhausted {
        /// The drop folder.
        drop_dir: PathBuf,
        /// The original file name (escaped for display).
        name: String,
    },
    /// A state file name that is not a single plain path component.
    #[error("invalid state file name {name:?}: it must be one plain file name")]
    InvalidStateName {
        /// The name as given.
        name: String,
    },
    /// A claimed file is missing or is no longer a regular file.
    #[error("claimed file {path} is missing or not a regular file")]
    ClaimedFileGone {
        /// The claimed file's path (for display only; it is never re-resolved).
        path: PathBuf,
    },
    /// Any other I/O fault (disk full, permission denied, …).
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path concerned (for display only; it is never re-resolved).
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
}

impl FolderError {
    /// The underlying I/O error, if this fault came from the operating system.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            FolderError::OpenDir { source, .. } | FolderError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A fault of the file-system event source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The watcher could not be created or could not watch a drop folder.
    #[error("cannot watch {path}: {source}")]
    Watch {
        /// The drop folder (empty when the watcher itself failed).
        path: PathBuf,
        /// What notify said.
        #[source]
        source: notify::Error,
    },
    /// The kernel's limit on file watches (`fs.inotify.max_user_watches`) or on watchers
    /// (`fs.inotify.max_user_instances`) is reached.
    #[error(
        "cannot watch {path}: the kernel's limit on file watches is reached (raise it with `sysctl -w fs.inotify.max_user_watches=524288` and `fs.inotify.max_user_instances=1024`, kept in /etc/sysctl.d/)"
    )]
    Limit {
        /// The drop folder (empty when the watcher itself could not be created).
        path: PathBuf,
    },
}

impl WatchError {
    /// Sorts notify's error: a limit reached, or another fault.
    pub(crate) fn from_notify(path: PathBuf, source: notify::Error) -> WatchError {
        let limit = match &source.kind {
            notify::ErrorKind::MaxFilesWatch => true,
            notify::ErrorKind::Io(e) => {
                matches!(e.raw_os_error(), Some(code) if code == rustix::io::Errno::MFILE.raw_os_error() || code == rustix::io::Errno::NOSPC.raw_os_error())
            }
            _ => false,
        };
        if limit {
            WatchError::Limit { path }
        } else {
            WatchError::Watch { path, source }
        }
    }

    /// Whether the kernel's watch limit was reached (the folder is not watched; scan it by
    /// interval).
    pub fn is_limit(&self) -> bool {
        matches!(self, WatchError::Limit { .. })
    }
}
