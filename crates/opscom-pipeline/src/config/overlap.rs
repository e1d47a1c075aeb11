//! Folders that must not overlap: one tenant's claims must never be another's, and the
//! service's state never within a client's reach.
//!
//! Folders are compared as the filesystem resolves them, and found through an index of their
//! ancestors, so ten thousand tenants cost ten thousand look-ups per rule, not a hundred million
//! comparisons.

use std::collections::{BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};

use super::table::{Place, Problems};

/// One tenant's folders, with where each is written; `None` when it is missing or unusable
/// (that is reported elsewhere).
#[derive(Debug)]
pub(super) struct Folders {
    /// The tenant as messages name it: its name, or `#INDEX`.
    pub who: String,
    /// The drop folder.
    pub drop: Option<(PathBuf, Place)>,
    /// The work folder.
    pub work: Option<(PathBuf, Place)>,
}

/// Refuses folders that two tenants would share, or that sit inside a client's drop folder:
/// the state folder, the outbox, a work folder.
pub(super) fn check_overlaps(
    state_dir: Option<(&Path, &Place)>,
    outbox: Option<(&Path, &Place)>,
    tenants: &[Folders],
    problems: &mut Problems<'_>,
) {
    let mut resolver = Resolver::default();
    let drops = Index::new(tenants.iter().map(|t| t.drop.as_ref()), &mut resolver);
    let works = Index::new(tenants.iter().map(|t| t.work.as_ref()), &mut resolver);
    let who = |i: usize| &tenants[i].who;
    for (earlier, later) in drops.nested(&drops) {
        if earlier < later {
            problems.add(
                drops.place(later),
                format!(
                    "is, or is inside or around, tenant {}'s drop folder",
                    who(earlier)
                ),
            );
        }
    }
    for (drop, work) in drops.nested(&works) {
        problems.add(
            works.place(work),
            format!(
                "is inside or around tenant {}'s drop folder, where clients could reach it",
                who(drop)
            ),
        );
    }
    for (earlier, later) in works.nested(&works) {
        if earlier < later {
            problems.add(
                works.place(later),
                format!(
                    "is, or is inside or around, tenant {}'s work folder",
                    who(earlier)
                ),
            );
        }
    }
    if let Some((dir, place)) = state_dir {
        let around: BTreeSet<usize> = drops
            .around(dir)
            .chain(drops.around(&resolver.resolve(dir)))
            .collect();
        for drop in around {
            problems.add(
                place,
                format!("is inside tenant {}'s drop folder", who(drop)),
            );
        }
    }
    if let Some((dir, place)) = outbox {
        for drop in drops
            .around(&resolver.resolve(dir))
            .collect::<BTreeSet<_>>()
        {
            problems.add(
                place,
                format!("is inside tenant {}'s drop folder", who(drop)),
            );
        }
    }
}

/// One kind of folder of every tenant, resolved, and which tenants have each folder.
struct Index<'t> {
    /// Per tenant: the resolved folder and where it is written.
    folders: Vec<Option<(PathBuf, &'t Place)>>,
    /// Resolved folder → the tenants (in file order) that have it.
    by_path: HashMap<PathBuf, Vec<usize>>,
}

impl<'t> Index<'t> {
    fn new(
        folders: impl Iterator<Item = Option<&'t (PathBuf, Place)>>,
        resolver: &mut Resolver,
    ) -> Self {
        let folders: Vec<_> = folders
            .map(|f| f.map(|(path, place)| (resolver.resolve(path), place)))
            .collect();
        let mut by_path: HashMap<PathBuf, Vec<usize>> = HashMap::new();
        for (i, folder) in folders.iter().enumerate() {
            if let Some((path, _)) = folder {
                by_path.entry(path.clone()).or_default().push(i);
            }
        }
        Index { folders, by_path }
    }

    fn place(&self, tenant: usize) -> &'t Place {
        self.folders[tenant]
            .as_ref()
            .map(|(_, place)| *place)
            .expect("only tenants with this folder are indexed")
    }

    /// The tenants whose folder is `path` or one of its ancestors.
    fn around<'s>(&'s self, path: &'s Path) -> impl Iterator<Item = usize> + 's {
        path.ancestors()
            .filter_map(|a| self.by_path.get(a))
            .flatten()
            .copied()
    }

    /// Every pair (tenant in `self`, tenant in `other`) whose folders are equal or one inside
    /// the other, ordered.
    fn nested(&self, other: &Index<'_>) -> BTreeSet<(usize, usize)> {
        let mut pairs = BTreeSet::new();
        for (j, folder) in other.folders.iter().enumerate() {
            if let Some((path, _)) = folder {
                pairs.extend(self.around(path).map(|i| (i, j)));
            }
        }
        for (i, folder) in self.folders.iter().enumerate() {
            if let Some((path, _)) = folder {
                pairs.extend(other.around(path).map(|j| (i, j)));
            }
        }
        pairs
    }
}

/// Resolves paths as the filesystem does, remembering each folder it resolved: tenants' folders
/// share their parents (`/srv/sftp`, `state_dir/tenants`), so each costs one `lstat` instead of a
/// `readlink` per path component.
#[derive(Debug, Default)]
struct Resolver {
    known: HashMap<PathBuf, PathBuf>,
}

impl Resolver {
    fn resolve(&mut self, path: &Path) -> PathBuf {
        if let Some(real) = self.known.get(path) {
            return real.clone();
        }
        let plain = path.is_absolute()
            && path
                .components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        let real = match (plain, path.parent(), path.file_name()) {
            (true, Some(parent), Some(name)) if parent.parent().is_some() => {
                let parent = self.resolve(parent);
                let joined = parent.join(name);
                match std::fs::symlink_metadata(&joined) {
                    Ok(m) if m.file_type().is_symlink() => resolved(path),
                    Ok(_) => joined,
                    // Not there (yet): the rest is appended to what exists, as `resolved` does.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => joined,
                    Err(_) => resolved(path),
                }
            }
            _ => resolved(path),
        };
        self.known.insert(path.to_owned(), real.clone());
        real
    }
}

/// `path` as the filesystem resolves it: symlinks and `..` of its existing part resolved, the
/// rest appended, so that two spellings of one folder compare equal.
fn resolved(path: &Path) -> PathBuf {
    let mut existing = path;
    let mut rest = Vec::new();
    loop {
        if let Ok(mut real) = existing.canonicalize() {
            real.extend(rest.iter().rev());
            return real;
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}
