//! The drop-folder lifecycle (ready, claim, archive) and the periodic task (interval, file events, tenant lock, shutdown).
//!
//! Architecture invariant: this crate knows no HTTP, no SMTP and no CSV content; it moves files
//! and decides when a tenant's pass runs.
//!
//! - [`DropFolder`]: scan a tenant's drop folder for ready files, [`claim`](DropFolder::claim)
//!   one atomically out of the client's reach, [`archive`](DropFolder::archive) it into `.bak`,
//!   and keep the pipeline's small state files; all relative to directory handles, never
//!   following a symlink. Linux only (`renameat2`). Beyond uploads: entries never imported
//!   ([`Scan::unimportable`], [`set_aside`](DropFolder::set_aside)), control files
//!   ([`Scan::signals`]), files for the client in `results/`
//!   ([`write_result`](DropFolder::write_result)), files waiting for approval in `held/`
//!   ([`hold`](DropFolder::hold), [`release`](DropFolder::release)) and the `preview/` folder
//!   as a drop folder of its own ([`preview`](DropFolder::preview)).
//! - [`TenantLock`]: one process per tenant at a time.
//! - [`run`]: passes at start, every interval and after file-system events
//!   ([`FolderWatcher`]), never overlapping per tenant, stopped by an injected shutdown future.
//! - [`Clock`]: the injected wall clock.
//!
//! The feature `folders` (on by default) brings the drop-folder lifecycle and the file watcher
//! (Linux only: `rustix`, `notify`). A tool that needs only the clock and the periodic runner
//! depends on this crate with `default-features = false`.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use opscom_scheduler::{Clock, ManualClock, ScheduleConfig};
//!
//! // Time is injected: tests move it by hand.
//! let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
//! let clock = ManualClock::new(start);
//! clock.advance(Duration::from_secs(90));
//! assert_eq!(clock.now(), start + Duration::from_secs(90));
//!
//! // A file event is followed by a pass once the upload has had `settle` to finish.
//! let cfg = ScheduleConfig { interval: Duration::from_secs(300), settle: Duration::from_secs(10) };
//! assert!(cfg.event_delay() > cfg.settle);
//! ```

#![warn(missing_docs)]

mod clock;
#[cfg(feature = "folders")]
mod error;
#[cfg(feature = "folders")]
mod folder;
#[cfg(feature = "folders")]
mod names;
mod schedule;
#[cfg(feature = "folders")]
mod watch;

pub use clock::{Clock, ManualClock, SystemClock};
#[cfg(feature = "folders")]
pub use error::{FolderError, WatchError};
#[cfg(feature = "folders")]
pub use folder::{
    BakSweep, Candidate, ClaimedFile, ClientDir, DropFolder, HELD_DIR, HeldFile, PREVIEW_DIR,
    RESULTS_DIR, Scan, Signal, SignalAction, SkipReason, Skipped, TenantLock, Unimportable,
    UnimportableKind,
};
#[cfg(feature = "folders")]
pub use names::{escape_name, has_csv_extension, is_control_file, is_importer_folder, is_partial};
pub use schedule::{Control, EVENT_MARGIN, ScheduleConfig, run, run_dynamic};
#[cfg(feature = "folders")]
pub use watch::FolderWatcher;

#[cfg(feature = "folders")]
/// Runs [`run`] with a [`FolderWatcher`] on `drop_dirs` as the event source (tenant `i` is
/// `drop_dirs[i]`). Fails only when the watcher cannot start; a caller that wants to go on
/// without events can call [`run`] with a channel of its own.
pub async fn run_watched<F, Fut, S>(
    drop_dirs: &[std::path::PathBuf],
    cfg: ScheduleConfig,
    pass: F,
    shutdown: S,
) -> Result<(), WatchError>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
    S: std::future::Future<Output = ()>,
{
    let (watcher, events) = FolderWatcher::start(drop_dirs)?;
    run(drop_dirs.len(), cfg, events, pass, shutdown).await;
    drop(watcher);
    Ok(())
}
