//! One claimed file through mapping, validation, API pushes and report, generic over the API,
//! mailer and clock; plus the configuration and the multi-tenant pass that `opscom-import` runs.
//!
//! Other OPSCOM tools link this crate to import files without the binary:
//! [`config::Config`] (read from a file, or built with [`config::Config::new`]) → [`Service`] →
//! [`Service::once`] or [`Service::run`]; or a single [`TenantRunner`] built with their own
//! [`opscom_api::PushApi`] and [`opscom_mail::Mailer`], for a [`config::Tenant::new`] that needs
//! no API settings.
//!
//! ```
//! use std::sync::Arc;
//! use opscom_pipeline::Service;
//! use opscom_pipeline::config::{Config, MailSettings, Tenant};
//! use opscom_scheduler::SystemClock;
//! use opscom_testkit::{ApiMode, RecordingApi, RecordingMailer};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let root = tempfile::tempdir().unwrap();
//! let drop_dir = root.path().join("upload");
//! std::fs::create_dir(&drop_dir).unwrap();
//! std::fs::write(drop_dir.join("roster.csv"), "unique_id,login_source,first_name,last_name,email\n\
//!     1001,OPSCOM,Ada,Lovelace,ada@example.edu\n").unwrap();
//! // Settled: changed a minute ago.
//! std::fs::File::options().write(true).open(drop_dir.join("roster.csv")).unwrap()
//!     .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(60)).unwrap();
//!
//! let tenant = Tenant::new("acme", &drop_dir, root.path().join("work/acme"),
//!     "parking@acme.example", "it@acme.example");
//! let mail = MailSettings::Outbox { dir: root.path().join("outbox") };
//! let config = Config::new(root.path().join("state"), mail, vec![tenant]);
//! // Your own API and mailer: here the recording doubles of opscom-testkit.
//! let api = RecordingApi::new(ApiMode::Accept);
//! let service = Service::with_parts(config, vec![("acme".into(), api.clone() as _)],
//!     RecordingMailer::new(), Arc::new(SystemClock)).unwrap();
//!
//! let (_stop, shutdown) = tokio::sync::watch::channel(false);
//! let report = service.once(shutdown).await;
//! assert!(!report.waits());
//! assert_eq!(api.ids(), ["1001"]);
//! assert!(drop_dir.join(".bak/roster.csv").exists());
//! # }
//! ```

#![warn(missing_docs)]

pub mod alerts;
pub mod config;
pub mod delta;
mod file;
pub mod held;
pub(crate) mod journal;
mod markers;
pub mod metrics;
mod private;
pub mod record;
mod report;
mod results;
mod retention;
mod service;
pub mod status;
mod tenant;

pub use file::DeferReason;
pub use record::{FileRecord, Outcome, Records};
pub use report::Sender;
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
