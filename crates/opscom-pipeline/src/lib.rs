//! One claimed file through mapping, validation, API pushes and report, generic over the API,
//! mailer and clock; plus the configuration and the multi-tenant pass that `opscom-import` runs.
//!
//! Other OPSCOM tools link this crate to import files without the binary:
//! [`config::Config`] (read from a file, or built with [`config::Config::new`]) → [`Service`] →
//! [`Service::once`] or [`Service::run`]; or a single [`TenantRunner`] built with their own
//! [`opscom_api::PushApi`] and [`opscom_mail::Mailer`], for a [`config::Tenant::new`] that needs
//! no API settings.

#![warn(missing_docs)]

pub mod alerts;
pub mod config;
mod file;
pub(crate) mod journal;
pub mod metrics;
mod private;
pub mod record;
mod report;
mod retention;
mod service;
pub mod status;
mod tenant;

pub use file::DeferReason;
pub use record::{FileRecord, Outcome, Records};
pub use service::{BUSY_RETRY, DynRunner, OnceReport, Reloaded, Service};
pub use tenant::{TenantPass, TenantRunner};

/// Receives progress of rows, for a terminal's progress bar. Every method defaults to nothing.
pub trait Progress: Send + Sync + std::fmt::Debug {
    /// A file with `rows` data rows is about to be pushed.
    fn file_started(&self, _name: &str, _rows: u64) {}
    /// One row finished (pushed or failed).
    fn row_done(&self) {}
    /// The file in hand is finished for this pass.
    fn file_finished(&self) {}
}

/// No progress display (the service).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Logs a summary of one tenant's pass.
pub fn log_pass(pass: &TenantPass) {
    for r in &pass.files {
        tracing::info!(
            tenant = %r.tenant,
            file = %r.file,
            outcome = %r.outcome,
            rows_total = r.rows_total,
            rows_ok = r.rows_ok,
            rows_failed = r.rows_failed,
            duration_ms = r.duration_ms,
            "file processed"
        );
    }
    // A fault is logged by the tenant's runner when it starts and when it clears, not here on
    // every pass.
}
