//! The production event source: a `notify` watcher on every drop folder that sends the index of
//! the tenant whose folder saw a finished write, a rename into place, or another change to a CSV
//! name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::error::WatchError;
use crate::names::has_csv_extension;

/// Watches drop folders (not recursively) while alive.
pub struct FolderWatcher {
    _watcher: notify::RecommendedWatcher,
    dirs: usize,
}

impl std::fmt::Debug for FolderWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FolderWatcher")
            .field("dirs", &self.dirs)
            .finish_non_exhaustive()
    }
}

impl FolderWatcher {
    /// Starts watching `drop_dirs`; the receiver yields the index (in `drop_dirs`) of a tenant
    /// whose folder changed, to be given to [`run`](crate::run). Dropping the watcher closes it.
    pub fn start(
        drop_dirs: &[PathBuf],
    ) -> Result<(FolderWatcher, mpsc::UnboundedReceiver<usize>), WatchError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut by_dir: HashMap<PathBuf, Vec<usize>> = HashMap::new();
        for (i, d) in drop_dirs.iter().enumerate() {
            by_dir.entry(d.clone()).or_default().push(i);
        }
        let all: Vec<usize> = (0..drop_dirs.len()).collect();
        let handler = move |res: notify::Result<Event>| match res {
            Ok(event) => {
                if event.need_rescan() {
                    all.iter().for_each(|&i| {
                        let _ = tx.send(i);
                    });
                    return;
                }
                for path in relevant_paths(&event) {
                    if let Some(tenants) = path.parent().and_then(|p| by_dir.get(p)) {
                        for &i in tenants {
                            let _ = tx.send(i);
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "file watcher error"),
        };
        let mut watcher =
            notify::recommended_watcher(handler).map_err(|source| WatchError::Watch {
                path: PathBuf::new(),
                source,
            })?;
        for d in drop_dirs {
            watcher
                .watch(d, RecursiveMode::NonRecursive)
                .map_err(|source| WatchError::Watch {
                    path: d.clone(),
                    source,
                })?;
        }
        Ok((
            FolderWatcher {
                _watcher: watcher,
                dirs: drop_dirs.len(),
            },
            rx,
        ))
    }
}

/// The paths of an event that may make a file ready: a finished write, a creation, a change of
/// content or metadata, a rename into place, on a visible `.csv` name. Renames away (our own
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
                .is_some_and(|n| !n.starts_with('.') && has_csv_extension(n))
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
                &["/d/a.csv", "/d/b.txt"],
            ),
        ] {
            assert!(relevant_paths(&e).is_empty(), "{e:?}");
        }
    }
}
