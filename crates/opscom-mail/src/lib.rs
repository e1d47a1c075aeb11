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

#![warn(missing_docs)]

mod alert;
mod atomic;
mod attachment;
mod failure_csv;
mod mailer;
mod outbox;
mod report;
mod smtp;
mod spool;
mod summary;

pub use alert::{AlertChange, OperatorAlert, OperatorEnvelope, compose_alert};
pub use attachment::{AttachmentForm, AttachmentLimits};
pub use failure_csv::{FailureCsvError, FailureCsvWriter, IMPORT_ERROR_COLUMN, failure_file_name};
pub use mailer::{MailError, Mailer, MessageMeta, OutgoingMessage, ReportKind};
pub use outbox::OutboxMailer;
pub use report::{
    AddressError, ComposeError, ComposeOptions, DelayedReport, EXCEL_SAVE_AS, FailureReport,
    FolderProblemReport, RejectedReport, Report, ReportEnvelope, TokenRejectedReport, compose,
    report_key,
};
pub use smtp::{
    DEFAULT_COMMAND_TIMEOUT, DEFAULT_SEND_TIMEOUT, SmtpMailer, SmtpSecurity, SmtpUrlError,
};
pub use spool::{DeliveryStats, PendingReport, Spool, SpoolError, SpoolId};
pub use summary::{
    CategorySummary, FailureSample, FailureSummary, MAX_CATEGORIES, OTHER_CATEGORY,
    SAMPLES_PER_CATEGORY,
};
