//! A tenant's reports: composed with its addresses, written to its spool before any sending,
//! delivered from the spool by every pass until the mail server accepts them.
//!
//! Every report is dated with the `now` its caller read from the tenant's
//! [`Clock`](opscom_scheduler::Clock): this module never reads the system clock.

use std::sync::Arc;
use std::time::SystemTime;

use opscom_csv::{InvalidRow, RowProblem};
use opscom_mail::{
    ComposeOptions, DelayedReport, DeliveryStats, DkimSigner, FolderProblemReport, Mailer, Report,
    ReportEnvelope, Spool, SpoolError, TokenRejectedReport, compose,
};

use crate::config::{Config, FromMode, Tenant};

/// Who every tenant's reports come from, beyond the tenant's own addresses: the operator's
/// sender (`[mail] from`, for `from_mode = "on_behalf"`), its DKIM key, and the operator's
/// address (`[operator] email`), which gets a copy of a held import's report.
#[derive(Debug, Clone, Default)]
pub struct Sender {
    /// `[mail] from`.
    pub mail_from: Option<String>,
    /// The loaded DKIM key of `[mail]`.
    pub dkim: Option<Arc<DkimSigner>>,
    /// `[operator] email`.
    pub operator_email: Option<String>,
}

impl Sender {
    /// The sender of `config`: loads its DKIM key (the error names the file and the fix).
    pub fn from_config(config: &Config) -> Result<Sender, String> {
        let dkim = match &config.dkim {
            Some(d) => Some(Arc::new(
                DkimSigner::from_pem_file(&d.key_file, &d.selector, &d.domain)
                    .map_err(|e| e.to_string())?,
            )),
            None => None,
        };
        Ok(Sender {
            mail_from: config.mail_from.clone(),
            dkim,
            operator_email: config.operator.as_ref().map(|o| o.email.clone()),
        })
    }
}

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
    /// The envelope of the operator's copy, when there is an operator.
    operator: Option<ReportEnvelope>,
    dkim: Option<Arc<DkimSigner>>,
    spool: Spool,
    /// Reports made sendable through this sink (spooled or released).
    spooled: std::sync::atomic::AtomicUsize,
}

fn timestamp(t: SystemTime) -> jiff::Timestamp {
    jiff::Timestamp::try_from(t).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

impl ReportSink {
    /// The sink of `tenant`, spooling under its work folder, its reports sent as `sender` and
    /// the tenant's `from_mode` say.
    pub fn open(tenant: &Tenant, sender: &Sender) -> Result<ReportSink, ReportError> {
        let envelope = match (tenant.from_mode, &sender.mail_from) {
            (FromMode::OnBehalf, Some(from)) => ReportEnvelope::on_behalf(
                &tenant.name,
                tenant.display_name.as_deref().unwrap_or(&tenant.name),
                from,
                &tenant.reply_to_admin_email,
                &tenant.failed_import_email,
            )?,
            // `Config::load` refuses "on_behalf" without `[mail] from`; a program that builds
            // its configuration gets the default.
            _ => ReportEnvelope::new(
                &tenant.name,
                &tenant.reply_to_admin_email,
                &tenant.failed_import_email,
            )?,
        };
        let operator = match &sender.operator_email {
            Some(to) => Some(envelope.clone().with_to(to)?),
            None => None,
        };
        Ok(ReportSink {
            envelope,
            operator,
            dkim: sender.dkim.clone(),
            spool: Spool::open(tenant.work_dir.join("outbox"))?,
            spooled: Default::default(),
        })
    }

    /// Spools `report` about `subject_id`, to be sent by the next delivery.
    pub fn send(
        &self,
        report: &Report,
        subject_id: &str,
        now: SystemTime,
    ) -> Result<(), ReportError> {
        self.enqueue(report, subject_id, now)
    }

    /// Spools a copy of `report` for the operator (`[operator] email`), if there is one.
    pub fn to_operator(
        &self,
        report: &Report,
        subject_id: &str,
        now: SystemTime,
    ) -> Result<(), ReportError> {
        let Some(envelope) = &self.operator else {
            return Ok(());
        };
        let message = compose(report, envelope, subject_id, &self.options(now))?;
        self.spool.enqueue(&message)?;
        self.count_spooled();
        Ok(())
    }

    /// Spools a file's `report` held back until [`ReportSink::release`]: it is on disk before
    /// the file is committed (to `.bak` or `held/`), and sent only after.
    pub fn hold(
        &self,
        report: &Report,
        claim_id: &str,
        now: SystemTime,
    ) -> Result<(), ReportError> {
        self.enqueue_held(report, claim_id, now)
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
            &self.options(now),
        )?)
    }

    fn options(&self, now: SystemTime) -> ComposeOptions {
        let mut options = ComposeOptions::at(timestamp(now));
        options.dkim = self.dkim.clone();
        options
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
            imports_paused: true,
        });
        let at = timestamp(now).as_second();
        self.enqueue(&report, &format!("bak-fault-{at}"), now)
    }

    /// Spools the report that `results/`, `preview/` or `held/` in the drop folder is not a
    /// folder (a file or a link of that name), dated `now`. Imports go on, but for `held/`.
    pub fn subfolder_not_a_folder(&self, name: &str, now: SystemTime) -> Result<(), ReportError> {
        let (what, paused) = match name {
            opscom_scheduler::PREVIEW_DIR => ("files dropped there cannot be checked", false),
            opscom_scheduler::HELD_DIR => (
                "a file that changes many users cannot be held there for your approval: it \
                 waits, and so do the files after it",
                true,
            ),
            _ => (
                "the importer cannot put the results of your files there (they are still \
                 e-mailed)",
                false,
            ),
        };
        let goes_on = if paused { "" } else { " Your imports go on." };
        let report = Report::FolderProblem(FolderProblemReport {
            problem: format!(
                "`{name}` in your upload folder is not a folder (it is a file or a link named \
                 `{name}`), so {what}.{goes_on}"
            ),
            fix: format!(
                "Delete `{name}` from your upload folder (for example `rm {name}` in sftp). The \
                 importer creates the folder again on its next pass."
            ),
            imports_paused: paused,
        });
        let at = timestamp(now).as_second();
        self.enqueue(&report, &format!("{name}-fault-{at}"), now)
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
