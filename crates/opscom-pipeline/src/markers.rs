//! Report markers: empty state files of a tenant's work folder (through `DropFolder`'s state
//! API) that remember a condition was told to the client, so that it is told once, across
//! passes and processes, and again only after it cleared.

use std::time::SystemTime;

use opscom_scheduler::DropFolder;
use tracing::warn;

use crate::report::ReportSink;

/// Whether the marker `name` is set. One that cannot be read counts as set: at worst a report
/// is not repeated, never sent on every pass.
pub(crate) fn has(folder: &DropFolder, name: &str) -> bool {
    !matches!(folder.read_state(name), Ok(None))
}

/// Sets the marker `name` (an empty state file, written atomically).
pub(crate) fn set(tenant: &str, folder: &DropFolder, name: &str) {
    if let Err(e) = folder.write_state_atomic(name, b"") {
        warn!(tenant = %tenant, error = %e, "cannot remember that a report was sent");
    }
}

/// Clears the marker `name`, if set: the condition it reported is over.
pub(crate) fn clear(tenant: &str, folder: &DropFolder, name: &str) {
    if let Err(e) = folder.remove_state(name) {
        warn!(tenant = %tenant, error = %e, "cannot clear a report marker");
    }
}

/// The marker of the client's subfolder `name` (`results`, `preview`, `held`) not being a
/// folder.
fn subfolder(name: &str) -> String {
    format!("{name}-fault-reported")
}

/// Tells the client once that its subfolder `name` must be a folder (a file or a link of that
/// name is in the way), until [`subfolder_fixed`] says it is one again.
pub(crate) fn tell_subfolder_once(
    folder: &DropFolder,
    reports: &ReportSink,
    tenant: &str,
    name: &str,
    now: SystemTime,
) {
    let marker = subfolder(name);
    if has(folder, &marker) {
        return;
    }
    warn!(tenant = %tenant, folder = %name, "not a folder in the drop folder (a file or a link): the client is told");
    match reports.subfolder_not_a_folder(name, now) {
        Ok(()) => set(tenant, folder, &marker),
        Err(e) => warn!(tenant = %tenant, error = %e, "cannot spool a report"),
    }
}

/// The client's subfolder `name` is a folder (again): a later fault is told again.
pub(crate) fn subfolder_fixed(folder: &DropFolder, tenant: &str, name: &str) {
    clear(tenant, folder, &subfolder(name));
}
