//! The reports a tenant receives, and [`compose`], which turns one into a fully formatted
//! message with a stable Message-ID.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use jiff::Timestamp;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};

use crate::attachment::{self, AttachmentForm, AttachmentLimits};
use crate::failure_csv::{IMPORT_ERROR_COLUMN, failure_file_name};
use crate::mailer::{MessageMeta, OutgoingMessage, ReportKind};
use crate::summary::{FailureSummary, shorten};

/// The advice for saving from Excel, given when failures look like Excel damage.
pub const EXCEL_SAVE_AS: &str = "CSV UTF-8 (Comma delimited)";

/// Display name of the sender (the address is the tenant's own).
const SENDER_NAME: &str = "OPSCOM import";
/// How many waiting files a message names before "and N more".
const MAX_FILES_LISTED: usize = 20;

/// An address in the configuration is not a valid e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} = {value:?} is not a valid e-mail address: {reason}")]
pub struct AddressError {
    /// The configuration key (`reply_to_admin_email`, `failed_import_email`).
    pub field: &'static str,
    /// The value given.
    pub value: String,
    /// Why it was refused.
    pub reason: String,
}

/// A report could not be composed.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// The failure CSV could not be read.
    #[error("cannot attach the failure CSV {path}: {source}")]
    Attachment {
        /// The failure CSV.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The failure CSV held in memory could not be attached (too large for the attachment
    /// limits even when cut to its header).
    #[error("cannot attach the failure CSV: {0}")]
    AttachmentInMemory(#[source] std::io::Error),
    /// The message could not be built (should not happen with validated addresses).
    #[error("cannot build the report message: {0}")]
    Build(String),
}

/// Who a tenant's reports go from and to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportEnvelope {
    tenant: String,
    from: lettre::Address,
    to: lettre::Address,
}

/// `value` as an e-mail address (surrounding spaces ignored); the error names `field`.
pub(crate) fn parse_address(
    field: &'static str,
    value: &str,
) -> Result<lettre::Address, AddressError> {
    value
        .trim()
        .parse::<lettre::Address>()
        .map_err(|e| AddressError {
            field,
            value: value.to_owned(),
            reason: e.to_string(),
        })
}

impl ReportEnvelope {
    /// Validates the tenant's `reply_to_admin_email` (sender, Reply-To) and `failed_import_email`
    /// (recipient).
    pub fn new(
        tenant: &str,
        reply_to_admin_email: &str,
        failed_import_email: &str,
    ) -> Result<Self, AddressError> {
        Ok(ReportEnvelope {
            tenant: tenant.to_owned(),
            from: parse_address("reply_to_admin_email", reply_to_admin_email)?,
            to: parse_address("failed_import_email", failed_import_email)?,
        })
    }

    /// The tenant's name.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The sender and Reply-To address.
    pub fn from(&self) -> &str {
        self.from.as_ref()
    }

    /// The recipient address.
    pub fn to(&self) -> &str {
        self.to.as_ref()
    }
}

/// Some rows of a file were not imported.
#[derive(Debug, Clone)]
pub struct FailureReport {
    /// The file's name as uploaded (`roster.csv`).
    pub file_name: String,
    /// Data rows in the file (all-empty rows excluded).
    pub rows_total: u64,
    /// Rows imported.
    pub rows_ok: u64,
    /// Rows not imported.
    pub rows_failed: u64,
    /// Counts per reason and first lines.
    pub summary: FailureSummary,
    /// The failure CSV written by [`crate::FailureCsvWriter`], attached as `NAME-failed.csv`:
    /// a file on disk (`PathBuf` converts with `.into()`) or bytes in memory.
    pub failure_csv: Option<FailureCsv>,
}

/// Where the failure CSV of a [`FailureReport`] is: the importer streams it to disk (memory does
/// not grow with the failures); a tool with a handful of failed rows may keep it in memory.
///
/// ```
/// use opscom_mail::{FailureCsv, FailureCsvWriter};
///
/// let header = ["unique_id".to_owned(), "email".to_owned()];
/// let mut csv = FailureCsvWriter::new(Vec::new(), &header)?;
/// csv.write_failure(2, &["s1".to_owned(), "not-an-address".to_owned()], "invalid e-mail")?;
/// let in_memory = FailureCsv::Bytes(csv.finish()?);
/// let on_disk: FailureCsv = std::path::PathBuf::from("/var/lib/x/reports/1.csv").into();
/// # drop((in_memory, on_disk));
/// # Ok::<(), opscom_mail::FailureCsvError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureCsv {
    /// A file, read (streamed) when the report is composed.
    File(PathBuf),
    /// The whole CSV, as written by [`crate::FailureCsvWriter`] into a `Vec<u8>`.
    Bytes(Vec<u8>),
}

impl From<PathBuf> for FailureCsv {
    fn from(path: PathBuf) -> Self {
        FailureCsv::File(path)
    }
}

impl From<&Path> for FailureCsv {
    fn from(path: &Path) -> Self {
        FailureCsv::File(path.to_owned())
    }
}

impl From<Vec<u8>> for FailureCsv {
    fn from(bytes: Vec<u8>) -> Self {
        FailureCsv::Bytes(bytes)
    }
}

/// A whole file was rejected before any row was sent.
#[derive(Debug, Clone)]
pub struct RejectedReport {
    /// The file's name as uploaded.
    pub file_name: String,
    /// Why, in plain words.
    pub reason: String,
    /// How to fix it, when known.
    pub fix: Option<String>,
    /// The line the problem is on, when there is one.
    pub line: Option<u64>,
    /// Whether the problem looks like Excel damage (`;` delimiter…): adds the Excel advice.
    pub excel_damage: bool,
}

/// Files wait because the OPSCOM API cannot be reached (sent once per outage).
#[derive(Debug, Clone)]
pub struct DelayedReport {
    /// The files waiting, oldest first.
    pub files_waiting: Vec<String>,
    /// When the outage was first seen.
    pub since: Timestamp,
    /// What was seen (`connection refused`, `HTTP 503`…), without secrets.
    pub cause: String,
}

/// The tenant's API token was refused (9001/9002). Never carries the token.
#[derive(Debug, Clone)]
pub struct TokenRejectedReport {
    /// The files waiting, oldest first.
    pub files_waiting: Vec<String>,
    /// When the refusal was first seen.
    pub since: Timestamp,
    /// The API's error code (9001, 9002).
    pub api_code: Option<i64>,
}

/// The drop folder itself stops the imports (a `.bak` that is not a folder), and the client can
/// fix it.
#[derive(Debug, Clone)]
pub struct FolderProblemReport {
    /// What is wrong, in plain words.
    pub problem: String,
    /// What the client should do.
    pub fix: String,
}

/// Every report a tenant can receive.
#[derive(Debug, Clone)]
pub enum Report {
    /// Some rows were not imported.
    Failures(FailureReport),
    /// The file was rejected whole.
    Rejected(RejectedReport),
    /// The API is unreachable; files wait.
    ImportDelayed(DelayedReport),
    /// The API token was refused; files wait.
    TokenRejected(TokenRejectedReport),
    /// The drop folder needs the client's attention; files wait.
    FolderProblem(FolderProblemReport),
}

impl Report {
    /// Which report this is.
    pub fn kind(&self) -> ReportKind {
        match self {
            Report::Failures(_) => ReportKind::Failures,
            Report::Rejected(_) => ReportKind::Rejected,
            Report::ImportDelayed(_) => ReportKind::ImportDelayed,
            Report::TokenRejected(_) => ReportKind::TokenRejected,
            Report::FolderProblem(_) => ReportKind::FolderProblem,
        }
    }
}

/// Everything [`compose`] needs besides the report.
#[derive(Debug, Clone)]
pub struct ComposeOptions {
    /// The message's Date.
    pub date: Timestamp,
    /// Attachment size limits.
    pub limits: AttachmentLimits,
}

impl ComposeOptions {
    /// Default limits, dated `date`.
    pub fn at(date: Timestamp) -> Self {
        ComposeOptions {
            date,
            limits: AttachmentLimits::default(),
        }
    }
}

/// The stable key of a report: the same tenant, subject and kind give the same key, hence the
/// same Message-ID and the same spool entry.
pub fn report_key(tenant: &str, subject_id: &str, kind: ReportKind) -> String {
    let digest =
        fnv1a_128(format!("opscom-import\0{tenant}\0{subject_id}\0{}", kind.as_str()).as_bytes());
    format!("{digest:032x}")
}

/// Formats `report` for `envelope`.
///
/// `subject_id` identifies what the report is about, stable across retries: the claimed file's
/// id for a file's report, the outage's start for a delayed import. With the tenant and the
/// report kind it makes the Message-ID, so a resend after a crash is recognisable.
pub fn compose(
    report: &Report,
    envelope: &ReportEnvelope,
    subject_id: &str,
    options: &ComposeOptions,
) -> Result<OutgoingMessage, ComposeError> {
    let kind = report.kind();
    let key = report_key(&envelope.tenant, subject_id, kind);
    let domain = envelope.from.domain().to_owned();
    let message_id = format!("opscom-import.{key}@{domain}");

    let (subject, body, attachment) = match report {
        Report::Failures(r) => failures_text(r, envelope, options)?,
        Report::Rejected(r) => (rejected_subject(r), rejected_body(r, envelope), None),
        Report::ImportDelayed(r) => (delayed_subject(r), delayed_body(r, envelope), None),
        Report::TokenRejected(r) => (token_subject(envelope), token_body(r, envelope), None),
        Report::FolderProblem(r) => (folder_subject(envelope), folder_body(r, envelope), None),
    };

    let sender = Mailbox::new(Some(SENDER_NAME.to_owned()), envelope.from.clone());
    let builder = lettre::Message::builder()
        .from(sender.clone())
        .reply_to(sender)
        .to(Mailbox::new(None, envelope.to.clone()))
        .subject(subject.clone())
        .message_id(Some(format!("<{message_id}>")))
        .date(SystemTime::try_from(options.date).unwrap_or(SystemTime::UNIX_EPOCH))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_owned(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-OPSCOM-Report"),
            kind.as_str().to_owned(),
        ));
    let text = SinglePart::plain(body);
    let message = match attachment {
        None => builder.singlepart(text),
        Some(a) => {
            let content_type = ContentType::parse(a.content_type)
                .map_err(|e| ComposeError::Build(e.to_string()))?;
            builder.multipart(
                MultiPart::mixed()
                    .singlepart(text)
                    .singlepart(Attachment::new(a.name).body(a.bytes, content_type)),
            )
        }
    }
    .map_err(|e| ComposeError::Build(e.to_string()))?;

    let meta = MessageMeta {
        key,
        message_id,
        tenant: envelope.tenant.clone(),
        kind,
        subject,
        envelope_from: envelope.from.to_string(),
        envelope_to: vec![envelope.to.to_string()],
    };
    Ok(OutgoingMessage::new(meta, message.formatted()))
}

type Composed = (String, String, Option<attachment::PreparedAttachment>);

fn failures_text(
    r: &FailureReport,
    envelope: &ReportEnvelope,
    options: &ComposeOptions,
) -> Result<Composed, ComposeError> {
    let file = display_name(&r.file_name);
    let subject = format!(
        "{file}: {} of {} {} not imported",
        r.rows_failed,
        r.rows_total,
        users(r.rows_total)
    );
    let csv_name = failure_file_name(&r.file_name);
    let prepared = match &r.failure_csv {
        Some(FailureCsv::File(path)) => Some(
            attachment::prepare(path, &csv_name, &options.limits, zip_date(options.date)).map_err(
                |source| ComposeError::Attachment {
                    path: path.clone(),
                    source,
                },
            )?,
        ),
        Some(FailureCsv::Bytes(bytes)) => Some(
            attachment::prepare_bytes(bytes, &csv_name, &options.limits, zip_date(options.date))
                .map_err(ComposeError::AttachmentInMemory)?,
        ),
        None => None,
    };

    let mut b = String::new();
    b.push_str(&format!(
        "{} of the {} {} in {file} {} not imported into OPSCOM.\n\n",
        r.rows_failed,
        r.rows_total,
        users(r.rows_total),
        if r.rows_failed == 1 { "was" } else { "were" }
    ));
    b.push_str(&format!("  File:          {file}\n"));
    b.push_str(&format!("  Users in file: {}\n", r.rows_total));
    b.push_str(&format!("  Imported:      {}\n", r.rows_ok));
    b.push_str(&format!("  Not imported:  {}\n\n", r.rows_failed));

    if !r.summary.is_empty() {
        b.push_str("WHY THEY WERE NOT IMPORTED\n\n");
        for c in r.summary.categories() {
            b.push_str(&format!("{}: {} {}\n", c.category, c.count, users(c.count)));
            for s in &c.samples {
                b.push_str(&format!("  line {}: {}\n", s.line, s.reason));
            }
            let more = c.count.saturating_sub(c.samples.len() as u64);
            if more > 0 {
                b.push_str(&format!("  … and {more} more\n"));
            }
            b.push('\n');
        }
    }

    if let Some(a) = &prepared {
        b.push_str("THE ATTACHED FILE\n\n");
        b.push_str(&format!(
            "{csv_name} lists the users that were not imported: the values as you sent them, \
             and the reason in the last column, {IMPORT_ERROR_COLUMN}.\n"
        ));
        match a.form {
            AttachmentForm::Plain => {}
            AttachmentForm::Zipped => b.push_str(&format!(
                "It is compressed as {} to keep this e-mail small: open the zip to find {csv_name}.\n",
                a.name
            )),
            AttachmentForm::Cut { rows_kept } => b.push_str(&format!(
                "The full list is too large to send by e-mail, so it was cut: {} (compressed) \
                 holds the first {rows_kept} of the {} users that were not imported. The lines \
                 above show what went wrong; after fixing the cause, upload the whole corrected \
                 file again.\n",
                a.name, r.rows_failed
            )),
        }
        b.push('\n');
    }

    b.push_str("WHAT TO DO NEXT\n\n");
    b.push_str(
        "1. Correct the values in the system you export from, so that the next export is right too.\n",
    );
    if prepared.is_some() {
        b.push_str(&format!(
            "2. Then either upload a new complete export, or correct {csv_name} and upload it to the\n   \
             same folder: its {IMPORT_ERROR_COLUMN} column is ignored, and the users already imported are\n   \
             not affected.\n"
        ));
    } else {
        b.push_str("2. Then upload a new complete export to the same folder.\n");
    }
    b.push_str(&format!(
        "3. If you edit the file in Excel, save it with File > Save As > \"{EXCEL_SAVE_AS}\".\n\n"
    ));
    if r.summary.excel_damage() {
        b.push_str(&excel_advice(r.summary.excel_signs()));
    }
    b.push_str(&footer(envelope));
    Ok((subject, b, prepared))
}

fn rejected_subject(r: &RejectedReport) -> String {
    format!(
        "{}: file rejected, no users imported",
        display_name(&r.file_name)
    )
}

fn rejected_body(r: &RejectedReport, envelope: &ReportEnvelope) -> String {
    let file = display_name(&r.file_name);
    let mut b = format!(
        "The file {file} was not imported: it was rejected as a whole, and no user in it was sent to OPSCOM.\n\n"
    );
    match r.line {
        Some(line) => b.push_str(&format!("Problem (line {line}): {}\n", r.reason)),
        None => b.push_str(&format!("Problem: {}\n", r.reason)),
    }
    if let Some(fix) = &r.fix {
        b.push_str(&format!("How to fix it: {fix}\n"));
    }
    b.push_str(&format!(
        "\nWHAT TO DO NEXT\n\nFix the file and upload it again to the same folder. The rejected file \
         was moved, unchanged, to the .bak folder inside your upload folder.\n\
         If you edit the file in Excel, save it with File > Save As > \"{EXCEL_SAVE_AS}\".\n\n"
    ));
    if r.excel_damage {
        b.push_str(&excel_advice(&[]));
    }
    b.push_str(&footer(envelope));
    b
}

fn delayed_subject(r: &DelayedReport) -> String {
    let n = r.files_waiting.len();
    format!(
        "Import delayed: {n} {} waiting, OPSCOM cannot be reached",
        if n == 1 { "file" } else { "files" }
    )
}

fn delayed_body(r: &DelayedReport, envelope: &ReportEnvelope) -> String {
    // Plain words for a parking office: the technical cause (attempt counts, durations, system
    // errors) stays in the operator's logs and records.
    let mut b = format!(
        "Since {}, OPSCOM has not been answering the importer, so your users cannot be updated \
         right now. Nothing is wrong with your file.\n\n\
         Your files are safe: they wait in the import queue and will be imported automatically as \
         soon as OPSCOM answers again. You do not need to upload them again, and you will not \
         receive another message about this outage.\n\n",
        human_time(r.since),
    );
    b.push_str(&files_list(&r.files_waiting));
    b.push_str(
        "If the delay lasts, contact OPSCOM support: the importer keeps retrying on its own.\n\n",
    );
    b.push_str(&footer(envelope));
    b
}

fn folder_subject(envelope: &ReportEnvelope) -> String {
    format!(
        "Import paused for {}: your upload folder needs attention",
        shorten(&envelope.tenant, 80)
    )
}

fn folder_body(r: &FolderProblemReport, envelope: &ReportEnvelope) -> String {
    let mut b = format!(
        "{}\n\n\
         No file is imported until this is fixed. Your files are kept and will be imported \
         automatically once it is; you do not need to upload them again.\n\n\
         WHAT TO DO NEXT\n\n{}\n\n",
        r.problem, r.fix
    );
    b.push_str(&footer(envelope));
    b
}

fn token_subject(envelope: &ReportEnvelope) -> String {
    format!(
        "Import stopped for {}: OPSCOM refused the API token",
        shorten(&envelope.tenant, 80)
    )
}

fn token_body(r: &TokenRejectedReport, envelope: &ReportEnvelope) -> String {
    let code = match r.api_code {
        Some(code) => format!(" (error {code})"),
        None => String::new(),
    };
    let mut b = format!(
        "Since {}, OPSCOM refuses the API token that the importer uses for \"{}\"{code}.\n\n\
         No user is imported until this is fixed. Your files are kept and will be imported \
         automatically once the token is accepted again; you do not need to upload them again.\n\n\
         WHAT TO DO NEXT\n\n\
         Contact OPSCOM support (or your OPSCOM operations contact) and ask them to check the Push \
         API token configured in the importer for \"{}\". Never send the token itself by e-mail.\n\n",
        human_time(r.since),
        shorten(&envelope.tenant, 80),
        shorten(&envelope.tenant, 80),
    );
    b.push_str(&files_list(&r.files_waiting));
    b.push_str(&footer(envelope));
    b
}

fn files_list(files: &[String]) -> String {
    if files.is_empty() {
        return String::new();
    }
    let mut b = String::from("Files waiting:\n");
    for f in files.iter().take(MAX_FILES_LISTED) {
        b.push_str(&format!("  {}\n", display_name(f)));
    }
    if files.len() > MAX_FILES_LISTED {
        b.push_str(&format!(
            "  … and {} more\n",
            files.len() - MAX_FILES_LISTED
        ));
    }
    b.push('\n');
    b
}

fn excel_advice(signs: &[String]) -> String {
    let mut b = String::from("EXCEL\n\n");
    b.push_str("Some problems look like the file was changed by Excel");
    if !signs.is_empty() {
        b.push_str(&format!(" ({})", signs.join("; ")));
    }
    b.push_str(&format!(
        ". Excel may save with ';' instead of ',', turn long ids into numbers like 1.23E+11, and \
         rewrite dates as 1/15/1990. To avoid it:\n\
         - save with File > Save As > \"{EXCEL_SAVE_AS}\" (not \"CSV (Comma delimited)\" or \"CSV (MS-DOS)\");\n\
         - format id and date columns as Text before typing or pasting them, and dates as YYYY-MM-DD;\n\
         - or upload the export of your source system directly, without opening it in Excel.\n\n"
    ));
    b
}

fn footer(envelope: &ReportEnvelope) -> String {
    format!(
        "-- \nThis message was sent automatically by the OPSCOM importer for \"{}\". \
         Replies go to {}.\n",
        shorten(&envelope.tenant, 80),
        envelope.from
    )
}

fn users(n: u64) -> &'static str {
    if n == 1 { "user" } else { "users" }
}

/// A client-given name, safe for a subject or a body line.
fn display_name(name: &str) -> String {
    shorten(name, 120)
}

fn human_time(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

fn zip_date(ts: Timestamp) -> zip::DateTime {
    let dt = ts.to_zoned_datetime(jiff::tz::TimeZone::UTC).datetime();
    let parts = (
        u16::try_from(dt.year()),
        u8::try_from(dt.month()),
        u8::try_from(dt.day()),
        u8::try_from(dt.hour()),
        u8::try_from(dt.minute()),
        u8::try_from(dt.second()),
    );
    match parts {
        (Ok(y), Ok(mo), Ok(d), Ok(h), Ok(mi), Ok(s)) => {
            zip::DateTime::from_date_and_time(y, mo, d, h, mi, s).unwrap_or_default()
        }
        _ => zip::DateTime::default(),
    }
}

/// FNV-1a, 128 bits: a stable digest (unlike std's hasher, which may change between releases).
fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u128::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> ReportEnvelope {
        ReportEnvelope::new("acme", "parking@acme.edu", "it@acme.edu").unwrap()
    }

    fn date() -> Timestamp {
        "2026-11-03T10:15:00Z".parse().unwrap()
    }

    fn raw_text(m: &OutgoingMessage) -> String {
        String::from_utf8_lossy(m.raw()).into_owned()
    }

    #[test]
    fn addresses_are_validated() {
        let e = ReportEnvelope::new("acme", "not an address", "it@acme.edu").unwrap_err();
        assert_eq!(e.field, "reply_to_admin_email");
        let e = ReportEnvelope::new("acme", "a@b.org", "it@").unwrap_err();
        assert_eq!(e.field, "failed_import_email");
    }

    #[test]
    fn message_id_is_stable_per_key_and_differs_between_keys() {
        let report = Report::Rejected(RejectedReport {
            file_name: "roster.csv".into(),
            reason: "the delimiter is ';', not ','".into(),
            fix: Some("save as CSV UTF-8 (Comma delimited)".into()),
            line: Some(1),
            excel_damage: true,
        });
        let a = compose(&report, &envelope(), "claim-1", &ComposeOptions::at(date())).unwrap();
        let later = ComposeOptions::at("2026-11-04T00:00:00Z".parse().unwrap());
        let b = compose(&report, &envelope(), "claim-1", &later).unwrap();
        let c = compose(&report, &envelope(), "claim-2", &later).unwrap();
        assert_eq!(a.message_id(), b.message_id());
        assert_ne!(a.message_id(), c.message_id());
        assert!(a.message_id().ends_with("@acme.edu"), "{}", a.message_id());
        assert!(raw_text(&a).contains(&format!("Message-ID: <{}>", a.message_id())));
        assert_eq!(
            report_key("acme", "claim-1", ReportKind::Rejected),
            a.meta().key
        );
        assert_ne!(
            report_key("acme", "claim-1", ReportKind::Failures),
            a.meta().key
        );
    }

    #[test]
    fn token_report_names_the_tenant_and_support() {
        let report = Report::TokenRejected(TokenRejectedReport {
            files_waiting: vec!["roster.csv".into()],
            since: date(),
            api_code: Some(9001),
        });
        let m = compose(
            &report,
            &envelope(),
            "outage-1",
            &ComposeOptions::at(date()),
        )
        .unwrap();
        assert_eq!(
            m.subject(),
            "Import stopped for acme: OPSCOM refused the API token"
        );
        let text = raw_text(&m);
        assert!(text.contains("OPSCOM support"), "{text}");
        assert!(text.contains("9001"));
        assert!(text.contains("roster.csv"));
    }

    #[test]
    fn delayed_report_says_since_when_and_which_files() {
        let report = Report::ImportDelayed(DelayedReport {
            files_waiting: (0..25).map(|i| format!("f{i}.csv")).collect(),
            since: date(),
            cause: "connection refused".into(),
        });
        let m = compose(&report, &envelope(), "since", &ComposeOptions::at(date())).unwrap();
        assert_eq!(
            m.subject(),
            "Import delayed: 25 files waiting, OPSCOM cannot be reached"
        );
        let text = raw_text(&m);
        assert!(text.contains("2026-11-03 10:15 UTC"), "{text}");
        assert!(text.contains("f19.csv") && !text.contains("f20.csv"));
        assert!(text.contains("and 5 more"));
    }

    #[test]
    fn fnv_reference_value() {
        // FNV-1a 128 of the empty input is the offset basis; of "a", the published value.
        assert_eq!(fnv1a_128(b""), 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d);
        assert_eq!(fnv1a_128(b"a"), 0xd228_cb69_6f1a_8caf_7891_2b70_4e4a_8964);
    }
}
