//! Retention of a tenant's archived uploads: the files in its drop folder's `.bak` are deleted
//! `bak_retention` after their archive ([`opscom_scheduler::DropFolder::sweep_bak`] says how the
//! time of the archive is known).
//!
//! A sweep lists `.bak`, so it runs at most once per [`SWEEP_EVERY`] per tenant: the time of the
//! last sweep is kept in memory, and in the work folder's state file `bak-swept` (seconds since
//! the epoch) so that a new process (every `once` from cron) does not sweep again before it is
//! due. An idle pass between two sweeps costs nothing; the first pass of a process reads the
//! state file once.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opscom_scheduler::DropFolder;
use tracing::{info, warn};

/// How often a tenant's `.bak` is swept, at most.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// The state file remembering the last sweep.
const SWEPT_STATE: &str = "bak-swept";

/// One tenant's `.bak` retention and when its next sweep is due.
#[derive(Debug)]
pub(crate) struct BakRetention {
    retention: Option<Duration>,
    /// When the next sweep is due; `None` until the state file was read.
    next: Mutex<Option<SystemTime>>,
}

impl BakRetention {
    /// Archived files are deleted `retention` after their archive; `None`: kept.
    pub fn new(retention: Option<Duration>) -> Self {
        BakRetention {
            retention,
            next: Mutex::new(None),
        }
    }

    /// Sweeps `folder`'s `.bak` when a sweep is due at `now`, logging every deletion with the
    /// tenant and the archived name. The caller holds the tenant's lock.
    pub fn sweep_if_due(&self, tenant: &str, folder: &DropFolder, now: SystemTime) {
        let Some(retention) = self.retention else {
            return;
        };
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let due = *next.get_or_insert_with(|| last_sweep(folder).map_or(now, |t| t + SWEEP_EVERY));
        // A clock set back by more than the period counts as due, not as a long wait.
        if now < due && due <= now + SWEEP_EVERY {
            return;
        }
        *next = Some(now + SWEEP_EVERY);
        match folder.sweep_bak(now, retention) {
            Ok(sweep) => {
                for name in &sweep.deleted {
                    info!(tenant = %tenant, archived_as = %name, "archived file deleted (bak_retention)");
                }
                for (name, error) in &sweep.failed {
                    warn!(tenant = %tenant, archived_as = %name, error = %error, "cannot delete an archived file past bak_retention");
                }
            }
            Err(e) => {
                warn!(tenant = %tenant, error = %e, "cannot sweep .bak; tried again within the hour");
            }
        }
        let stamp = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .to_string();
        if let Err(e) = folder.write_state_atomic(SWEPT_STATE, stamp.as_bytes()) {
            warn!(tenant = %tenant, error = %e, "cannot remember the .bak sweep");
        }
    }
}

/// The last sweep's time from the state file, if it holds one.
fn last_sweep(folder: &DropFolder) -> Option<SystemTime> {
    let bytes = folder.read_state(SWEPT_STATE).ok()??;
    let secs: u64 = std::str::from_utf8(&bytes).ok()?.trim().parse().ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_runs_at_most_hourly_across_processes_and_only_with_a_retention() {
        let root = tempfile::tempdir().unwrap();
        let drop = root.path().join("drop");
        std::fs::create_dir_all(drop.join(".bak")).unwrap();
        let folder = DropFolder::open(&drop, &root.path().join("work")).unwrap();
        let bak = drop.join(".bak");
        let now = SystemTime::now();
        let later = |secs| now + Duration::from_secs(secs);

        std::fs::write(bak.join("a.csv"), b"x").unwrap();
        BakRetention::new(None).sweep_if_due("acme", &folder, later(7200));
        assert!(bak.join("a.csv").exists(), "no retention: kept");
        assert!(folder.read_state(SWEPT_STATE).unwrap().is_none());

        let first = BakRetention::new(Some(Duration::from_secs(60)));
        first.sweep_if_due("acme", &folder, later(120));
        assert!(!bak.join("a.csv").exists(), "due: deleted");

        std::fs::write(bak.join("b.csv"), b"x").unwrap();
        first.sweep_if_due("acme", &folder, later(120 + 1800));
        // Another process (a later `once`) reads when the last sweep was.
        let second = BakRetention::new(Some(Duration::from_secs(60)));
        second.sweep_if_due("acme", &folder, later(120 + 1800));
        assert!(bak.join("b.csv").exists(), "swept less than an hour ago");
        second.sweep_if_due("acme", &folder, later(120 + 3600));
        assert!(!bak.join("b.csv").exists(), "an hour later: swept again");
    }
}
