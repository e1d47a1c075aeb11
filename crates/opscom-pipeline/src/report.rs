//! A tenant's reports: composed with its addresses, written to its spool before any sending,
//! delivered from the spool by every pass until the mail server accepts them.

use std::path::Path;
use std::time::SystemTime;

use opscom_csv::{InvalidRow, Rejection};
use opscom_mail::{
    ComposeOptions, DelayedReport, DeliveryStats, FailureReport, FailureSummary, Mailer,
    RejectedReport, Report, ReportEnvelope, Spool, SpoolError, TokenRejectedReport, compose,
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
        })
    }

    fn enqueue(&self, report: &Report, subject_id: &str) -> Result<(), ReportError> {
        let message = compose(
            report,
            &self.envelope,
            subject_id,
            &ComposeOptions::at(jiff::Timestamp::now()),
        )?;
        self.spool.enqueue(&message)?;
        Ok(())
    }

    /// Spools the report of a file with failed rows, attaching the failure CSV at `csv`.
    pub fn failures(
        &self,
        claim_id: &str,
        file_name: &str,
        rows_total: u64,
        rows_ok: u64,
        summary: &FailureSummary,
        csv: &Path,
    ) -> Result<(), ReportError> {
        let report = Report::Failures(FailureReport {
            file_name: file_name.to_owned(),
            rows_total,
            rows_ok,
            rows_failed: rows_total - rows_ok,
            summary: summary.clone(),
            failure_csv: Some(csv.to_owned()),
        });
        self.enqueue(&report, claim_id)
    }

    /// Spools the report of a file rejected whole.
    pub fn rejected(
        &self,
        claim_id: &str,
        file_name: &str,
        rejection: &Rejection,
    ) -> Result<(), ReportError> {
        let report = Report::Rejected(RejectedReport {
            file_name: file_name.to_owned(),
            reason: rejection.reason.clone(),
            fix: Some(rejection.fix.clone()),
            line: rejection.line,
            excel_damage: rejection.kind.looks_like_excel_damage(),
        });
        self.enqueue(&report, claim_id)
    }

    /// Spools the "import delayed" report of an outage first seen at `since`.
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
        self.enqueue(&report, &format!("outage-{claim_id}"))
    }

    /// Spools the report that the tenant's token was refused.
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
        self.enqueue(&report, &format!("token-{claim_id}"))
    }

    /// Sends what waits in the spool, oldest first.
    pub async fn deliver<M: Mailer + ?Sized>(&self, mailer: &M) -> Result<DeliveryStats, SpoolError> {
        let mailer = &mailer;
        self.spool.deliver_pending(&mailer).await
    }
}

/// The grouping key of an invalid row's reason: its first problem's category.
pub fn category_of(row: &InvalidRow) -> String {
    row.problems
        .first()
        .map_or("invalid row", |p| p.category())
        .to_owned()
}

/// What makes an invalid row look like Excel damage, for the e-mail's advice.
pub fn excel_sign(row: &InvalidRow) -> Option<String> {
    row.problems
        .iter()
        .find(|p| p.looks_like_excel_damage())
        .map(|p| p.to_string())
}
