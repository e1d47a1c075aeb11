//! Files held for the client's approval (`hold_changed_percent`): what releases or discards
//! them.
//!
//! A held file sits in `held/` in the client's folder. The client releases it by uploading an
//! empty `NAME.approve` beside it (in the drop folder), or drops it with `NAME.discard`; the
//! tenant's next pass acts on that control file under the tenant's lock, so two instances never
//! act twice. The operator's `opscom-import release`/`discard` write the same control file
//! ([`request`]), so there is one way in, whatever asks.

use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::status::UnknownTenant;

/// What is asked of a held file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Import it as it is (`NAME.approve`, `opscom-import release`).
    Release,
    /// Move it to `.bak` without importing it (`NAME.discard`, `opscom-import discard`).
    Discard,
}

impl Action {
    /// The control file's suffix: `approve` or `discard`.
    pub fn suffix(self) -> &'static str {
        match self {
            Action::Release => "approve",
            Action::Discard => "discard",
        }
    }
}

/// Why [`request`] could not ask.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No such tenant.
    #[error(transparent)]
    UnknownTenant(#[from] UnknownTenant),
    /// The file is not in the tenant's `held/`.
    #[error("`{file}` is not held for {tenant}; {}", held_list(.held))]
    NotHeld {
        /// The tenant.
        tenant: String,
        /// The name asked for.
        file: String,
        /// The files held now.
        held: Vec<String>,
    },
    /// The control file could not be written.
    #[error("cannot write {}: {source}", .path.display())]
    Io {
        /// The control file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
}

fn held_list(held: &[String]) -> String {
    if held.is_empty() {
        "no file is held".to_owned()
    } else {
        format!("held now: {}", held.join(", "))
    }
}

/// The regular files in `drop_dir/held/` (hidden names and links left out), oldest first:
/// their modification times and names. Read-only; none when `held/` does not exist.
pub fn held_files(drop_dir: &Path) -> io::Result<Vec<(std::time::SystemTime, String)>> {
    let dir = drop_dir.join(opscom_scheduler::HELD_DIR);
    let listing = match std::fs::read_dir(&dir) {
        Ok(l) => l,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    let mut found: Vec<(std::time::SystemTime, String)> = listing
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_owned();
            let meta = std::fs::symlink_metadata(entry.path()).ok()?;
            (!name.starts_with('.') && meta.is_file()).then(|| {
                (
                    meta.modified().unwrap_or(std::time::SystemTime::UNIX_EPOCH),
                    name,
                )
            })
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Asks the service to release or discard `file`, held for `tenant`: writes the control file
/// `NAME.approve` or `NAME.discard` into the tenant's drop folder, which the tenant's next pass
/// acts on (within seconds when `run` watches the folder). Returns the control file's path.
pub fn request(
    config: &Config,
    tenant: &str,
    file: &str,
    action: Action,
) -> Result<PathBuf, RequestError> {
    let Some(t) = config.tenants.iter().find(|t| t.name == tenant) else {
        return Err(UnknownTenant {
            name: tenant.to_owned(),
            known: config.tenants.iter().map(|t| t.name.clone()).collect(),
        }
        .into());
    };
    let held: Vec<String> = held_files(&t.drop_dir)
        .map_err(|source| RequestError::Io {
            path: t.drop_dir.join(opscom_scheduler::HELD_DIR),
            source,
        })?
        .into_iter()
        .map(|(_, name)| name)
        .collect();
    if !held.iter().any(|h| h == file) {
        return Err(RequestError::NotHeld {
            tenant: tenant.to_owned(),
            file: file.to_owned(),
            held,
        });
    }
    let path = t.drop_dir.join(format!("{file}.{}", action.suffix()));
    let io_err = |source| RequestError::Io {
        path: path.clone(),
        source,
    };
    let mut control = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .mode(0o660)
        .open(&path)
    {
        Ok(f) => f,
        // Asked already (by the client or the operator): the pass acts on it once.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(path),
        Err(e) => return Err(io_err(e)),
    };
    // The service (a member of the folder's group) must be able to read and remove it.
    if let Ok(folder) = std::fs::metadata(&t.drop_dir) {
        let _ = std::os::unix::fs::fchown(&control, None, Some(folder.gid()));
    }
    control.flush().map_err(io_err)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MailSettings, Tenant};

    fn config(drop: &Path, work: &Path) -> Config {
        let tenant = Tenant::new("acme", drop, work, "a@acme.edu", "b@acme.edu");
        Config::new(
            work,
            MailSettings::Outbox {
                dir: work.join("outbox"),
            },
            vec![tenant],
        )
    }

    #[test]
    fn a_request_writes_the_control_file_only_for_a_held_file() {
        let root = tempfile::tempdir().unwrap();
        let (drop, work) = (root.path().join("drop"), root.path().join("work"));
        std::fs::create_dir_all(drop.join(opscom_scheduler::HELD_DIR)).unwrap();
        std::fs::write(drop.join("held/roster.csv"), b"unique_id\n1\n").unwrap();
        let config = config(&drop, &work);

        let path = request(&config, "acme", "roster.csv", Action::Release).unwrap();
        assert_eq!(path, drop.join("roster.csv.approve"));
        assert!(path.is_file());
        // Asking twice is one request.
        request(&config, "acme", "roster.csv", Action::Release).unwrap();

        let e = request(&config, "acme", "other.csv", Action::Discard).unwrap_err();
        assert!(matches!(e, RequestError::NotHeld { .. }));
        assert!(e.to_string().contains("held now: roster.csv"), "{e}");
        assert!(!drop.join("other.csv.discard").exists());

        let e = request(&config, "nobody", "roster.csv", Action::Release).unwrap_err();
        assert!(matches!(e, RequestError::UnknownTenant(_)));
    }
}
