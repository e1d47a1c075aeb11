//! The failure report (CSV and message), the Mailer trait with SMTP and outbox implementations, and the durable report spool.
//!
//! The only crate of the workspace that knows SMTP. How a report reaches the client:
//!
//! 1. While a file is imported, each failed row goes to a [`FailureCsvWriter`] (streamed to
//!    disk; the client's header plus `import_error`, safe to open in Excel) and to a
//!    [`FailureSummary`] (bounded: counts per reason and the first lines of each).
//! 2. [`compose`] turns a [`Report`] and the tenant's [`ReportEnvelope`] into an
//!    [`OutgoingMessage`]: subject, plain-text body, the attachment (zipped or cut past a size
//!    limit) and a Message-ID derived from a stable key, so a resend is recognisable.
//! 3. [`Spool::enqueue`] writes it durably under the state folder *before* any sending;
//!    [`Spool::deliver_pending`] sends what waits, oldest first, through a [`Mailer`]
//!    ([`SmtpMailer`] or [`OutboxMailer`]), removing each only once the server accepted it.
//!
//! # The reports
//!
//! Every [`Report`] is written for parking-office staff: what happened, to which file, and what
//! to do next, in plain words and never a command to run. Its kind is in the `X-OPSCOM-Report`
//! header ([`ReportKind::as_str`]).
//!
//! | Report | When | `X-OPSCOM-Report` |
//! |---|---|---|
//! | [`Report::Failures`] | some rows were not imported (the failed rows attached as `NAME-failed.csv`) | `failures` |
//! | [`Report::Imported`] | every row was imported, or already up to date | `imported` |
//! | [`Report::Rejected`] | the file was rejected whole (with the closest column names, and `NAME-fixed.csv` when the header alone was wrong) | `rejected` |
//! | [`Report::Preview`] | a file in `preview/` was checked; nothing was sent | `preview` |
//! | [`Report::NotImportable`] | the upload is not a CSV file that can be imported (a spreadsheet, too large, a link…) | `not-importable` |
//! | [`Report::Held`] | an import would change too many users at once and waits for `NAME.approve` or `NAME.discard` | `held` |
//! | [`Report::SignalNotHeld`] | an `X.approve` or `X.discard` named a file that is not held | `signal-not-held` |
//! | [`Report::ImportDelayed`] | OPSCOM cannot be reached; files wait | `import-delayed` |
//! | [`Report::TokenRejected`] | OPSCOM refused the API token; files wait | `token-rejected` |
//! | [`Report::FolderProblem`] | the upload folder needs the client's attention | `folder-problem` |
//!
//! [`summary_text`] gives the same text (without the e-mail's footer) for the client's results
//! folder, headed with when the file was handled.
//!
//! # Sender, subject and signature
//!
//! By default a report is from the tenant's own `reply_to_admin_email` ([`ReportEnvelope::new`],
//! [`FromMode::Own`]); [`ReportEnvelope::on_behalf`] sends it from the operator's address as
//! "Client via OPSCOM" with the client's Reply-To, and [`ReportEnvelope::with_to`] addresses a
//! copy elsewhere. A subject holding non-ASCII text or `=?` is written as RFC 2047 encoded-words,
//! so a mail reader shows the file name exactly as uploaded. With [`ComposeOptions::dkim`] set
//! (a [`DkimSigner`]), every message is DKIM-signed when composed; the spool keeps the signed
//! bytes as they are.
//!
//! # Quick start
//!
//! A failure report for one failed row, its CSV kept in memory, "sent" into an outbox folder
//! (an [`SmtpMailer`] from [`SmtpMailer::from_url`] or [`SmtpMailer::builder`] sends it for real):
//!
//! ```
//! use opscom_mail::{
//!     ComposeOptions, FailureCsv, FailureCsvWriter, FailureReport, FailureSummary, Mailer,
//!     OutboxMailer, Report, ReportEnvelope, compose,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let header = ["unique_id".to_owned(), "email".to_owned()];
//! let mut csv = FailureCsvWriter::new(Vec::new(), &header)?;
//! let mut summary = FailureSummary::new();
//! let reason = "email `ann@`: not a valid e-mail address";
//! csv.write_failure(2, &["s1".to_owned(), "ann@".to_owned()], reason)?;
//! summary.add("invalid e-mail address", 2, reason);
//!
//! let report = Report::Failures(FailureReport {
//!     file_name: "roster.csv".into(),
//!     rows_total: 10,
//!     rows_ok: 9,
//!     rows_failed: 1,
//!     summary,
//!     failure_csv: Some(FailureCsv::Bytes(csv.finish()?)),
//!     rows_unchanged: 0,
//!     after_delay: false,
//! });
//! let envelope = ReportEnvelope::new("acme", "parking@acme.edu", "it@acme.edu")?;
//! let options = ComposeOptions::at(jiff::Timestamp::now());
//! let message = compose(&report, &envelope, "roster-2026-11-03", &options)?;
//! assert_eq!(message.subject(), "roster.csv: 1 of 10 users not imported");
//!
//! # let dir = tempfile::tempdir()?;
//! # let outbox_dir = dir.path().join("outbox");
//! let outbox = OutboxMailer::new(outbox_dir);
//! outbox.send(&message).await?;
//! println!("written to {}", outbox.path_for(&message).display());
//! # assert!(outbox.path_for(&message).exists());
//! # Ok(())
//! # }
//! ```
//!
//! `examples/report_to_outbox.rs` does the same for two failed rows
//! (`cargo run -p opscom-mail --example report_to_outbox`).

#![warn(missing_docs)]

mod alert;
mod atomic;
mod attachment;
mod dkim;
mod encoding;
mod failure_csv;
mod mailer;
mod outbox;
mod report;
mod smtp;
mod spool;
mod summary;
mod text;

pub use alert::{AlertChange, OperatorAlert, OperatorEnvelope, compose_alert};
pub use attachment::{AttachmentForm, AttachmentLimits};
pub use dkim::{DkimAlgorithm, DkimError, DkimSigner};
pub use failure_csv::{FailureCsvError, FailureCsvWriter, IMPORT_ERROR_COLUMN, failure_file_name};
pub use mailer::{MailError, Mailer, MessageMeta, OutgoingMessage, ReportKind};
pub use outbox::OutboxMailer;
pub use report::{
    AddressError, ChangeCounts, ComposeError, ComposeOptions, DelayedReport, EXCEL_SAVE_AS,
    FailureCsv, FailureReport, FolderProblemReport, FromMode, HeaderSuggestion, HeldReport,
    ImportedReport, NotImportableReport, NotImportableWhat, PreviewReport, RejectedReport, Report,
    ReportEnvelope, SignalNotHeldReport, TokenRejectedReport, compose, fixed_file_name, report_key,
};
pub use secrecy::SecretString;
pub use smtp::{
    DEFAULT_COMMAND_TIMEOUT, DEFAULT_SEND_TIMEOUT, SmtpMailer, SmtpMailerBuilder, SmtpSecurity,
    SmtpUrlError,
};
pub use spool::{DeliveryStats, PendingReport, Spool, SpoolError, SpoolId};
pub use summary::{
    CategorySummary, FailureSample, FailureSummary, MAX_CATEGORIES, OTHER_CATEGORY,
    SAMPLES_PER_CATEGORY,
};
pub use text::summary_text;
