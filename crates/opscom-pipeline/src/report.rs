//! A tenant's reports: composed with its addresses, written to its spool before any sending,
//! delivered from the spool by every pass until the mail server accepts them.
//!
//! Every report is dated with the `now` its caller read from the tenant's
//! [`Clock`](opscom_scheduler::Clock): this module never reads the system clock.

use std::path::Path;
use std::time::SystemTime;

use opscom_csv::{InvalidRow, Rejection, RowProblem};
use opscom_mail::{
    ComposeOptions, DelayedReport, DeliveryStats, FailureReport, FailureSummary,
    FolderProblemReport, Mailer, RejectedReport, Report, ReportEnvelope, Spool, SpoolError,
    TokenRejectedReport, compose,
};

use crate::config::Tenant;

/// A report could not be composed or spooled.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The tenant's addresses are not usable.
    #[error("{0}")]
    Address(#[from] opscom_mail::AddressError),
    /// The message could not be composed (the failure CSV could not be read…).
    #[error("{0}")]
    Compose(#[from] opscom_mail::ComposeError),
    /// The spool could not be written.
    #[error("{0}")]
    Spool(#[from] SpoolError),
}

/// The tenant's report spool and addresses.
#[derive(Debug)]
pub struct ReportSink {
    envelope: ReportEnvelope,
    spool: Spool,
    /// Reports made sendable through this sink (spooled or released).
    spooled: std::sync::atomic::AtomicUsize,
}

fn timestamp(t: SystemTime) -> jiff::Timestamp {
    jiff::Timestamp::try_from(t).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

impl ReportSink {
    /// The sink of `tenant`, spooling under its work folder.
    pub fn open(tenant: &Tenant) -> Result<ReportSink, ReportError> {
        Ok(ReportSink {
            envelope: ReportEnvelope::new(
                &tenant.name,
                &tenant.reply_to_admin_email,
                &tenant.failed_import_email,
            )?,
            spool: Spool::open(tenant.work_dir.join("outbox"))?,
            spooled: Default::default(),
        })
    }

    fn enqueue(
        &self,
        report: &Report,
        subject_id: &str,
        now: SystemTime,
    ) -> Result<(), ReportError> {
        self.spool
            .enqueue(&self.compose(report, subject_id, now)?)?;
        self.count_spooled();
        Ok(())
    }

    fn count_spooled(&self) {
        self.spooled
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many reports were made sendable through this sink (spooled, or released after
    /// their file's commit): none means a delivery already made finds nothing new.
    pub fn spooled(&self) -> usize {
        self.spooled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Spools a file's report held back until [`ReportSink::release`]: it is on disk before
    /// the file is committed to `.bak`, and sent only after.
    fn enqueue_held(
        &self,
        report: &Report,
        claim_id: &str,
        now: SystemTime,
    ) -> Result<(), ReportError> {
        self.spool
            .enqueue_held(&self.compose(report, claim_id, now)?, claim_id)?;
        Ok(())
    }

    fn compose(
        &self,
        report: &Report,
        subject_id: &str,
        now: SystemTime,
    ) -> Result<opscom_mail::OutgoingMessage, ReportError> {
        Ok(compose(
            report,
            &self.envelope,
            subject_id,
            &ComposeOptions::at(timestamp(now)),
        )?)
    }

    /// Lets the report of claim `claim_id` be sent: its file is in `.bak`.
    pub fn release(&self, claim_id: &str) -> Result<(), ReportError> {
        self.spool.release(claim_id)?;
        self.count_spooled();
        Ok(())
    }

    /// Claims whose report is held back.
    pub fn held(&self) -> Result<Vec<String>, ReportError> {
        Ok(self.spool.held()?)
    }

    /// Spools (held) the report of a file with failed rows, attaching the failure CSV at `csv`,
    /// dated `now`.
    #[allow(clippy::too_many_arguments)]
    pub fn failures(
        &self,
        claim_id: &str,
        file_name: &str,
        rows_total: u64,
        rows_ok: u64,
        summary: &FailureSummary,
        csv: &Path,
        now: SystemTime,
    ) -> Result<(), ReportError> {
        let report = Report::Failures(FailureReport {
            file_name: file_name.to_owned(),
            rows_total,
            rows_ok,
            rows_failed: rows_total - rows_ok,
            summary: summary.clone(),
            failure_csv: Some(csv.into()),
        });
        self.enqueue_held(&report, claim_id, now)
    }

    /// Spools (held) the report of a file rejected whole, dated `now`.
    pub fn rejected(
        &self,
        claim_id: &str,
        file_name: &str,
        rejection: &Rejection,
        now: SystemTime,
    ) -> Result<(), ReportError> {
        let report = Report::Rejected(RejectedReport {
            file_name: file_name.to_owned(),
            reason: rejection.reason.clone(),
            fix: Some(rejection.fix.clone()),
            line: rejection.line,
            excel_damage: rejection.kind.looks_like_excel_damage(),
        });
        self.enqueue_held(&report, claim_id, now)
    }

    /// Spools the "import delayed" report of an outage first seen at `since` (its date).
    pub fn delayed(
        &self,
        claim_id: &str,
        file_name: &str,
        cause: &str,
        since: SystemTime,
    ) -> Result<(), ReportError> {
        let report = Report::ImportDelayed(DelayedReport {
            files_waiting: vec![file_name.to_owned()],
            since: timestamp(since),
            cause: cause.to_owned(),
        });
        let started = timestamp(since).as_second();
        self.enqueue(&report, &format!("outage-{claim_id}-{started}"), since)
    }

    /// Spools the report that the tenant's token was refused, first seen at `since` (its date).
    pub fn token_rejected(
        &self,
        claim_id: &str,
        file_name: &str,
        since: SystemTime,
    ) -> Result<(), ReportError> {
        let report = Report::TokenRejected(TokenRejectedReport {
            files_waiting: vec![file_name.to_owned()],
            since: timestamp(since),
            api_code: None,
        });
        self.enqueue(&report, &format!("token-{claim_id}"), since)
    }

    /// Spools the report that `.bak` in the drop folder is not a folder, so imports are paused,
    /// dated `now`.
    pub fn bak_not_a_folder(&self, now: SystemTime) -> Result<(), ReportError> {
        let report = Report::FolderProblem(FolderProblemReport {
            problem: "`.bak` in your upload folder is not a folder (it is a file or a link named \
                      `.bak`), so imported files cannot be archived there, and imports are paused."
                .to_owned(),
            fix: "Delete `.bak` from your upload folder (for example `rm .bak` in sftp). The \
                  importer creates the folder again and imports the files that are waiting."
                .to_owned(),
        });
        let at = timestamp(now).as_second();
        self.enqueue(&report, &format!("bak-fault-{at}"), now)
    }

    /// Sends what waits in the spool, oldest first.
    pub async fn deliver<M: Mailer + ?Sized>(
        &self,
        mailer: &M,
    ) -> Result<DeliveryStats, SpoolError> {
        let mailer = &mailer;
        self.spool.deliver_pending(&mailer).await
    }
}

/// The heading under which an invalid row is grouped in the e-mail: its first problem, in
/// plain words, with the column (`` `email` is not a valid e-mail address``).
pub fn category_of(row: &InvalidRow) -> String {
    let Some(p) = row.problems.first() else {
        return "invalid row".to_owned();
    };
    let col = p.column().unwrap_or_default();
    match p {
        RowProblem::FieldCount { .. } => "wrong number of values for the header".to_owned(),
        RowProblem::RequiredEmpty { .. } => format!("`{col}` is required but empty"),
        RowProblem::TooLong { limit, .. } => format!("`{col}` is longer than {limit} characters"),
        RowProblem::NotProvince { .. } => {
            format!("`{col}` is not a 2-letter province/state abbreviation")
        }
        RowProblem::NotDate { .. } => format!("`{col}` is not a date written YYYY-MM-DD"),
        RowProblem::NotNumericId { .. } => format!("`{col}` is not a numeric id"),
        RowProblem::NotEmail { .. } => format!("`{col}` is not a valid e-mail address"),
        RowProblem::ScientificNotation { .. } => {
            format!("`{col}` is in scientific notation (its digits are lost)")
        }
        RowProblem::DuplicateId { .. } => format!("`{col}` repeats an earlier row of the file"),
        _ => p.category().replace('_', " "),
    }
}

/// The heading under which a row the API refused is grouped.
pub fn api_category(err: &opscom_api::ApiError) -> String {
    match err.code {
        Some(code) => format!("refused by OPSCOM: \"{}\" (error {code})", err.message),
        None => format!("refused by OPSCOM (HTTP {})", err.http_status),
    }
}

/// What makes an invalid row look like Excel damage (`dates like 1/15/1990`), if anything.
pub fn excel_sign(row: &InvalidRow) -> Option<String> {
    row.problems.iter().find_map(|p| match p {
        RowProblem::NotDate {
            value, excel: true, ..
        } => Some(format!("dates like `{value}`")),
        RowProblem::NotNumericId {
            value, excel: true, ..
        }
        | RowProblem::ScientificNotation { value, .. } => Some(format!("ids like `{value}`")),
        p if p.looks_like_excel_damage() => Some(p.to_string()),
        _ => None,
    })
}
