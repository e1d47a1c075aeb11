//! The production event source: a `notify` watcher on every drop folder (and, once it exists,
//! its `preview/`) that sends the index of the tenant whose folder saw a finished write, a
//! rename into place, or another change to a visible name that is not a partial upload: a CSV
//! file, a control file (`NAME.approve`), or an upload that will be reported and set aside.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::error::WatchError;
use crate::names::{is_importer_folder, is_partial};

/// Watches drop folders (not recursively) while alive; folders can be added and removed.
pub struct FolderWatcher {
    watcher: notify::RecommendedWatcher,
    /// Which keys a folder's events go to (shared with the event handler).
    routes: Routes,
    /// The folders each key watches (its drop folder, and maybe its `preview/`).
    watched: HashMap<usize, Vec<PathBuf>>,
}

type Routes = Arc<Mutex<HashMap<PathBuf, Vec<usize>>>>;

impl std::fmt::Debug for FolderWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FolderWatcher")
            .field("dirs", &self.watched.len())
            .finish_non_exhaustive()
    }
}

impl FolderWatcher {
    /// Starts a watcher that watches nothing yet; the receiver yields the key (see
    /// [`watch`](Self::watch)) of a folder that changed. Dropping the watcher closes it. Fails
    /// when the kernel refuses a new watcher ([`WatchError::Limit`] when its limit on watcher
    /// instances is reached).
    pub fn new() -> Result<(FolderWatcher, mpsc::UnboundedReceiver<usize>), WatchError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let routes: Routes = Arc::default();
        let handler_routes = Arc::clone(&routes);
        let handler = move |res: notify::Result<Event>| match res {
            Ok(event) => {
                let routes = handler_routes.lock().unwrap_or_else(|e| e.into_inner());
                if event.need_rescan() {
                    for &key in routes.values().flatten() {
                        let _ = tx.send(key);
                    }
                    return;
                }
                for path in relevant_paths(&event) {
                    if let Some(keys) = path.parent().and_then(|p| routes.get(p)) {
                        for &key in keys {
                            let _ = tx.send(key);
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "file watcher error"),
        };
        let watcher = notify::recommended_watcher(handler)
            .map_err(|source| WatchError::from_notify(PathBuf::new(), source))?;
        Ok((
            FolderWatcher {
                watcher,
                routes,
                watched: HashMap::new(),
            },
            rx,
        ))
    }

    /// Starts watching `drop_dirs`, keyed by their index; fails at the first folder that cannot
    /// be watched.
    pub fn start(
        drop_dirs: &[PathBuf],
    ) -> Result<(FolderWatcher, mpsc::UnboundedReceiver<usize>), WatchError> {
        let (mut watcher, rx) = FolderWatcher::new()?;
        for (i, d) in drop_dirs.iter().enumerate() {
            watcher.watch(i, d)?;
        }
        Ok((watcher, rx))
    }

    /// Sends `key` on the receiver whenever `dir` sees a change that may make a file ready. A key
    /// watches one folder (and what [`watch_also`](Self::watch_also) adds): watching another
    /// replaces them. [`WatchError::Limit`] when the kernel's limit on watches is reached: the
    /// folder is then not watched.
    pub fn watch(&mut self, key: usize, dir: &Path) -> Result<(), WatchError> {
        if self
            .watched
            .get(&key)
            .is_some_and(|dirs| dirs.first().is_some_and(|d| d == dir))
        {
            return Ok(());
        }
        self.unwatch(key);
        self.add(key, dir)
    }

    /// Also sends `key` for changes in `dir` (a tenant's `preview/`), besides the folder given
    /// to [`watch`](Self::watch). Watching a folder twice for a key is one watch.
    pub fn watch_also(&mut self, key: usize, dir: &Path) -> Result<(), WatchError> {
        if self
            .watched
            .get(&key)
            .is_some_and(|dirs| dirs.iter().any(|d| d == dir))
        {
            return Ok(());
        }
        self.add(key, dir)
    }

    fn add(&mut self, key: usize, dir: &Path) -> Result<(), WatchError> {
        let already = self.lock_routes().contains_key(dir);
        if !already {
            self.watcher
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(|source| WatchError::from_notify(dir.to_owned(), source))?;
        }
        self.lock_routes()
            .entry(dir.to_owned())
            .or_default()
            .push(key);
        self.watched.entry(key).or_default().push(dir.to_owned());
        Ok(())
    }

    /// Stops sending `key`; a folder is unwatched when no other key watches it.
    pub fn unwatch(&mut self, key: usize) {
        let Some(dirs) = self.watched.remove(&key) else {
            return;
        };
        for dir in dirs {
            let last = {
                let mut routes = self.lock_routes();
                let keys = routes.entry(dir.clone()).or_default();
                keys.retain(|&k| k != key);
                let last = keys.is_empty();
                if last {
                    routes.remove(&dir);
                }
                last
            };
            if last {
                let _ = self.watcher.unwatch(&dir);
            }
        }
    }

    /// How many keys are watched.
    pub fn len(&self) -> usize {
        self.watched.len()
    }

    /// Whether no key is watched.
    pub fn is_empty(&self) -> bool {
        self.watched.is_empty()
    }

    fn lock_routes(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Vec<usize>>> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The paths of an event that may make a file ready: a finished write, a creation, a change of
/// content or metadata, a rename into place, on a visible name that is not a partial upload nor
/// one of the importer's own folders (`results`, `preview`, `held`). Renames away (our own
/// claims among them), removals and reads are not.
pub(crate) fn relevant_paths(event: &Event) -> Vec<&Path> {
    let paths: Vec<&Path> = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write))
        | EventKind::Create(_)
        | EventKind::Modify(
            ModifyKind::Data(_)
            | ModifyKind::Metadata(_)
            | ModifyKind::Any
            | ModifyKind::Other
            | ModifyKind::Name(RenameMode::To | RenameMode::Any),
        ) => event.paths.iter().map(PathBuf::as_path).collect(),
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => event
            .paths
            .get(1)
            .map(PathBuf::as_path)
            .into_iter()
            .collect(),
        _ => Vec::new(),
    };
    paths
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.') && !is_partial(n) && !is_importer_folder(n))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, RemoveKind};

    fn ev(kind: EventKind, paths: &[&str]) -> Event {
        let mut e = Event::new(kind);
        for p in paths {
            e = e.add_path(PathBuf::from(p));
        }
        e
    }

    #[test]
    fn keeps_events_that_can_make_a_file_ready() {
        let close = ev(
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            &["/d/a.csv"],
        );
        assert_eq!(relevant_paths(&close), vec![Path::new("/d/a.csv")]);
        let into_place = ev(
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            &["/d/a.csv.filepart", "/d/a.CSV"],
        );
        assert_eq!(relevant_paths(&into_place), vec![Path::new("/d/a.CSV")]);
        let to = ev(
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            &["/d/a.csv"],
        );
        assert_eq!(relevant_paths(&to).len(), 1);
        let data = ev(
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            &["/d/a.csv"],
        );
        assert_eq!(relevant_paths(&data).len(), 1);
        // A control file, and an upload the pass will report and set aside.
        for name in ["/d/roster.csv.approve", "/d/roster.xlsx"] {
            let e = ev(
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                &[name],
            );
            assert_eq!(relevant_paths(&e), vec![Path::new(name)]);
        }
    }

    #[test]
    fn drops_events_that_cannot() {
        for e in [
            ev(
                EventKind::Modify(ModifyKind::Name(RenameMode::From)),
                &["/d/a.csv"],
            ),
            ev(EventKind::Remove(RemoveKind::File), &["/d/a.csv"]),
            ev(
                EventKind::Access(AccessKind::Close(AccessMode::Read)),
                &["/d/a.csv"],
            ),
            ev(
                EventKind::Access(AccessKind::Open(AccessMode::Any)),
                &["/d/a.csv"],
            ),
            ev(EventKind::Create(CreateKind::Folder), &["/d/.bak"]),
            ev(
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                &["/d/a.csv.filepart"],
            ),
            ev(
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
                &["/d/a.csv", "/d/b.csv.part"],
            ),
            ev(EventKind::Create(CreateKind::Folder), &["/d/results"]),
        ] {
            assert!(relevant_paths(&e).is_empty(), "{e:?}");
        }
    }
}
