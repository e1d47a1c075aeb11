//! The reports a tenant receives, and [`compose`], which turns one into a fully formatted
//! message with a stable Message-ID.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use std::sync::Arc;

use jiff::Timestamp;
use lettre::message::header::{
    ContentTransferEncoding, ContentType, HeaderName, HeaderValue, MIME_VERSION_1_0,
};
use lettre::message::{Attachment, Body, Mailbox, MultiPart, SinglePart};

use crate::attachment::AttachmentLimits;
use crate::dkim::DkimSigner;
use crate::encoding::{encoded_words, subject_needs_encoding};
use crate::failure_csv::failure_file_name;
use crate::mailer::{MessageMeta, OutgoingMessage, ReportKind};
use crate::summary::{FailureSummary, shorten};
use crate::text;

/// The advice for saving from Excel, given when failures look like Excel damage.
pub const EXCEL_SAVE_AS: &str = "CSV UTF-8 (Comma delimited)";

/// Display name of the sender (the address is the tenant's own).
const SENDER_NAME: &str = "OPSCOM import";

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

/// Who a report says it is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromMode {
    /// The default: From and Reply-To are the tenant's `reply_to_admin_email`, display name
    /// "OPSCOM import"; the SMTP envelope sender and the Message-ID's domain are that address's.
    Own,
    /// Sent by the operator for the client: From is `operator_from` with the display name
    /// "`display` via OPSCOM", Reply-To the client's `reply_to_admin_email`; the SMTP envelope
    /// sender and the Message-ID's domain are the operator's (so the operator's SPF and DKIM
    /// apply).
    OnBehalf {
        /// The operator's sending address.
        operator_from: lettre::Address,
        /// The client's name as shown before " via OPSCOM" (`Acme Parking`).
        display: String,
    },
}

/// Who a tenant's reports go from and to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportEnvelope {
    tenant: String,
    reply_to: lettre::Address,
    to: lettre::Address,
    mode: FromMode,
    /// Whether [`ReportEnvelope::with_to`] replaced the tenant's recipient.
    to_replaced: bool,
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
    /// (recipient). The reports are sent in [`FromMode::Own`].
    pub fn new(
        tenant: &str,
        reply_to_admin_email: &str,
        failed_import_email: &str,
    ) -> Result<Self, AddressError> {
        Ok(ReportEnvelope {
            tenant: tenant.to_owned(),
            reply_to: parse_address("reply_to_admin_email", reply_to_admin_email)?,
            to: parse_address("failed_import_email", failed_import_email)?,
            mode: FromMode::Own,
            to_replaced: false,
        })
    }

    /// Reports sent by the operator on the client's behalf ([`FromMode::OnBehalf`]): From is
    /// `operator_from` shown as "`display_name` via OPSCOM" (the tenant's name when
    /// `display_name` is blank), Reply-To is `reply_to_admin_email`, the recipient
    /// `failed_import_email`. An invalid `operator_from` is an [`AddressError`] whose field is
    /// `operator_from`.
    pub fn on_behalf(
        tenant: &str,
        display_name: &str,
        operator_from: &str,
        reply_to_admin_email: &str,
        failed_import_email: &str,
    ) -> Result<Self, AddressError> {
        let display = match display_name.trim() {
            "" => tenant.trim(),
            name => name,
        };
        Ok(ReportEnvelope {
            tenant: tenant.to_owned(),
            reply_to: parse_address("reply_to_admin_email", reply_to_admin_email)?,
            to: parse_address("failed_import_email", failed_import_email)?,
            mode: FromMode::OnBehalf {
                operator_from: parse_address("operator_from", operator_from)?,
                display: shorten(display, 80),
            },
            to_replaced: false,
        })
    }

    /// The same envelope addressed to `to` instead (an operator's copy of a report). The copy
    /// gets its own Message-ID and spool entry: the recipient is part of its key, so it does not
    /// replace the client's message waiting in the spool. An invalid `to` is an [`AddressError`]
    /// whose field is `to`.
    pub fn with_to(mut self, to: &str) -> Result<Self, AddressError> {
        self.to = parse_address("to", to)?;
        self.to_replaced = true;
        Ok(self)
    }

    /// The tenant's name.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The From address (and SMTP envelope sender): the tenant's `reply_to_admin_email`, or the
    /// operator's address in [`FromMode::OnBehalf`].
    pub fn from(&self) -> &str {
        self.sender_address().as_ref()
    }

    /// The Reply-To address: always the tenant's `reply_to_admin_email`.
    pub fn reply_to(&self) -> &str {
        self.reply_to.as_ref()
    }

    /// The recipient address.
    pub fn to(&self) -> &str {
        self.to.as_ref()
    }

    /// Who the reports say they are from.
    pub fn mode(&self) -> &FromMode {
        &self.mode
    }

    fn sender_address(&self) -> &lettre::Address {
        match &self.mode {
            FromMode::Own => &self.reply_to,
            FromMode::OnBehalf { operator_from, .. } => operator_from,
        }
    }

    fn sender_mailbox(&self) -> Mailbox {
        match &self.mode {
            FromMode::Own => Mailbox::new(Some(SENDER_NAME.to_owned()), self.reply_to.clone()),
            FromMode::OnBehalf {
                operator_from,
                display,
            } => Mailbox::new(Some(format!("{display} via OPSCOM")), operator_from.clone()),
        }
    }

    fn reply_to_mailbox(&self) -> Mailbox {
        match &self.mode {
            FromMode::Own => self.sender_mailbox(),
            FromMode::OnBehalf { .. } => Mailbox::new(None, self.reply_to.clone()),
        }
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
    /// Rows not sent because they are the same as in the last import (delta mode); shown only
    /// when more than 0.
    pub rows_unchanged: u64,
    /// Whether this file's import was delayed earlier ("Import delayed" was sent): the message
    /// then says this is that file.
    pub after_delay: bool,
}

/// Every row of a file was imported (or was already up to date).
#[derive(Debug, Clone)]
pub struct ImportedReport {
    /// The file's name as uploaded.
    pub file_name: String,
    /// Data rows in the file.
    pub rows_total: u64,
    /// Rows sent to and accepted by OPSCOM.
    pub rows_sent: u64,
    /// Rows not sent because they are the same as in the last import (delta mode).
    pub rows_unchanged: u64,
    /// Whether this is the follow-up to an earlier "Import delayed" message for the file.
    pub after_delay: bool,
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
    /// For each header the importer does not know, the closest accepted names.
    pub header_fixes: Vec<HeaderSuggestion>,
    /// The client's file with only its header line corrected, attached as `NAME-fixed.csv`
    /// ([`fixed_file_name`]). Not attached when it would have to be cut to fit the attachment
    /// limit (the message then asks for the header to be corrected by hand).
    pub fixed_csv: Option<FailureCsv>,
    /// The file was dropped in `preview/`: it would be rejected (nothing was imported anyway).
    pub preview: bool,
}

/// A column name the importer does not accept, and the accepted names closest to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderSuggestion {
    /// The header as written in the file (`First Name`).
    pub given: String,
    /// The closest accepted names, best first (`first_name`); may be empty.
    pub closest: Vec<String>,
}

/// The name of the corrected file attached to a [`RejectedReport`]: `roster.csv` →
/// `roster-fixed.csv` (the same stem rules as [`crate::failure_file_name`]).
pub fn fixed_file_name(upload_name: &str) -> String {
    let failed = failure_file_name(upload_name);
    let stem = failed.strip_suffix("-failed.csv").unwrap_or(&failed);
    format!("{stem}-fixed.csv")
}

/// A file dropped in the `preview/` folder was checked; nothing was sent or changed.
#[derive(Debug, Clone)]
pub struct PreviewReport {
    /// The file's name as uploaded.
    pub file_name: String,
    /// Data rows in the file.
    pub rows_total: u64,
    /// Rows that would be sent to OPSCOM.
    pub rows_would_send: u64,
    /// Rows that would fail.
    pub rows_failed: u64,
    /// Counts per reason and first lines of the rows that would fail.
    pub summary: FailureSummary,
    /// The rows that would fail, attached as `NAME-failed.csv`.
    pub failure_csv: Option<FailureCsv>,
    /// How the file compares with the last import, when known.
    pub change: Option<ChangeCounts>,
}

/// How a file's rows compare with the last import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeCounts {
    /// Users not in the last import.
    pub new: u64,
    /// Users whose values differ from the last import.
    pub changed: u64,
    /// Users the same as in the last import.
    pub unchanged: u64,
}

/// Why an uploaded file cannot be imported at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotImportableWhat {
    /// A spreadsheet (`.xlsx`, `.xls`, `.ods`…), not a CSV file.
    Spreadsheet,
    /// A text file whose name does not end in `.csv` (`.txt`, `.tsv`…).
    Text,
    /// Another name that does not end in `.csv`.
    OtherName,
    /// Larger than the importer accepts.
    TooLarge {
        /// The file's size in bytes.
        size: u64,
        /// The largest size accepted, in bytes.
        limit: u64,
    },
    /// A symbolic link, not a file.
    Symlink,
    /// A folder.
    Directory,
    /// A named pipe.
    Fifo,
    /// Anything else that is not a CSV file the importer can read.
    Other,
}

/// An uploaded file will not be imported; it was moved, unchanged, to `.bak`.
#[derive(Debug, Clone)]
pub struct NotImportableReport {
    /// The file's name as uploaded.
    pub file_name: String,
    /// What kind of file it is.
    pub what: NotImportableWhat,
    /// Its name in `.bak`.
    pub moved_to: String,
}

/// An import is held: it would change more users than allowed at once. Nothing was sent.
#[derive(Debug, Clone)]
pub struct HeldReport {
    /// The file's name as uploaded.
    pub file_name: String,
    /// Users already in OPSCOM that the file would change.
    pub would_change: u64,
    /// Users already in OPSCOM.
    pub known_users: u64,
    /// The most that may change at once, in percent (`20.0`).
    pub percent_limit: f64,
    /// A few `unique_id`s of users that would change.
    pub examples: Vec<String>,
    /// The name the approval refers to: the client uploads `HELD_AS.approve` or
    /// `HELD_AS.discard` (usually the file's name).
    pub held_as: String,
    /// Files uploaded after it, waiting behind it, oldest first.
    pub files_waiting: Vec<String>,
}

/// An `X.approve` or `X.discard` arrived but `X` is not held: it was ignored and removed.
#[derive(Debug, Clone)]
pub struct SignalNotHeldReport {
    /// The signal file's name (`roster.csv.approve`).
    pub signal_name: String,
    /// The name it refers to (`roster.csv`).
    pub target: String,
    /// What is held now (the names to approve or discard), if anything.
    pub held: Vec<String>,
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
    /// Whether imports wait until it is fixed (`.bak` not a folder), or go on (`results/` or
    /// `preview/` not a folder: only that feature is off).
    pub imports_paused: bool,
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
    /// Every row was imported (or already up to date).
    Imported(ImportedReport),
    /// A file in `preview/` was checked; nothing was sent.
    Preview(PreviewReport),
    /// The upload is not a file that can be imported.
    NotImportable(NotImportableReport),
    /// An import is held for the client's approval.
    Held(HeldReport),
    /// An approval or discard named a file that is not held.
    SignalNotHeld(SignalNotHeldReport),
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
            Report::Imported(_) => ReportKind::Imported,
            Report::Preview(_) => ReportKind::Preview,
            Report::NotImportable(_) => ReportKind::NotImportable,
            Report::Held(_) => ReportKind::Held,
            Report::SignalNotHeld(_) => ReportKind::SignalNotHeld,
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
    /// Signs each message with DKIM when set.
    pub dkim: Option<Arc<DkimSigner>>,
}

impl ComposeOptions {
    /// Default limits, dated `date`.
    pub fn at(date: Timestamp) -> Self {
        ComposeOptions {
            date,
            limits: AttachmentLimits::default(),
            dkim: None,
        }
    }

    /// The same options, signing with `signer`.
    pub fn with_dkim(mut self, signer: Arc<DkimSigner>) -> Self {
        self.dkim = Some(signer);
        self
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
    let key = if envelope.to_replaced {
        // A copy to another recipient must not replace the tenant's message in the spool.
        report_key(
            &envelope.tenant,
            &format!("{subject_id}\0to:{}", envelope.to),
            kind,
        )
    } else {
        report_key(&envelope.tenant, subject_id, kind)
    };
    let from = envelope.sender_address().clone();
    let message_id = format!("opscom-import.{key}@{}", from.domain());

    let (subject, body, attachment) = text::mail_text(report, envelope, options)?;

    let mut builder = lettre::Message::builder()
        .from(envelope.sender_mailbox())
        .reply_to(envelope.reply_to_mailbox())
        .to(Mailbox::new(None, envelope.to.clone()));
    builder = if subject_needs_encoding(&subject) {
        // Encoded by us so that text looking like an encoded-word (`=?utf-8?q?x?=.csv`) is
        // shown as written instead of decoded by the reader.
        builder.raw_header(HeaderValue::dangerous_new_pre_encoded(
            HeaderName::new_from_ascii_str("Subject"),
            subject.clone(),
            encoded_words(&subject),
        ))
    } else {
        builder.subject(subject.clone())
    };
    builder = builder
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
    let part = match attachment {
        None => text.formatted(),
        Some(a) => {
            let content_type = ContentType::parse(a.content_type)
                .map_err(|e| ComposeError::Build(e.to_string()))?;
            MultiPart::mixed()
                .singlepart(text)
                .singlepart(Attachment::new(a.name).body(a.bytes, content_type))
                .formatted()
        }
    };
    // The part's own headers (Content-Type, Content-Transfer-Encoding) become the message's, so
    // that a DKIM signature covers them (lettre signs only the message's headers).
    let (part_headers, part_body) = split_part(&part)?;
    let mut encoding = ContentTransferEncoding::SevenBit;
    for (name, value) in part_headers {
        if name.eq_ignore_ascii_case("Content-Transfer-Encoding") {
            encoding = transfer_encoding(&value)?;
            continue;
        }
        let name =
            HeaderName::new_from_ascii(name).map_err(|e| ComposeError::Build(e.to_string()))?;
        let raw = value.replace("\r\n", "");
        builder = builder.raw_header(HeaderValue::dangerous_new_pre_encoded(name, raw, value));
    }
    let mut message = builder
        .header(MIME_VERSION_1_0)
        .body(Body::dangerous_pre_encoded(part_body, encoding))
        .map_err(|e| ComposeError::Build(e.to_string()))?;
    if let Some(signer) = &options.dkim {
        signer.sign(&mut message);
    }

    let meta = MessageMeta {
        key,
        message_id,
        tenant: envelope.tenant.clone(),
        kind,
        subject,
        envelope_from: from.to_string(),
        envelope_to: vec![envelope.to.to_string()],
    };
    Ok(OutgoingMessage::new(meta, message.formatted()))
}

/// A MIME part's headers: name, and value as written (folds kept).
type PartHeaders = Vec<(String, String)>;

/// A formatted MIME part's headers and its body.
fn split_part(part: &[u8]) -> Result<(PartHeaders, Vec<u8>), ComposeError> {
    let broken = || ComposeError::Build("the MIME part has no header section".to_owned());
    let end = part
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(broken)?;
    let head = std::str::from_utf8(&part[..end]).map_err(|_| broken())?;
    let mut headers: PartHeaders = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            let (_, value) = headers.last_mut().ok_or_else(broken)?;
            value.push_str("\r\n");
            value.push_str(line);
        } else {
            let (name, value) = line.split_once(':').ok_or_else(broken)?;
            headers.push((name.to_owned(), value.trim_start().to_owned()));
        }
    }
    Ok((headers, part[end + 4..].to_vec()))
}

fn transfer_encoding(value: &str) -> Result<ContentTransferEncoding, ComposeError> {
    Ok(match value.trim().to_ascii_lowercase().as_str() {
        "7bit" => ContentTransferEncoding::SevenBit,
        "8bit" => ContentTransferEncoding::EightBit,
        "quoted-printable" => ContentTransferEncoding::QuotedPrintable,
        "base64" => ContentTransferEncoding::Base64,
        "binary" => ContentTransferEncoding::Binary,
        other => {
            return Err(ComposeError::Build(format!(
                "unknown Content-Transfer-Encoding {other:?}"
            )));
        }
    })
}

pub(crate) fn zip_date(ts: Timestamp) -> zip::DateTime {
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
            header_fixes: Vec::new(),
            fixed_csv: None,
            preview: false,
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

    fn imported() -> Report {
        Report::Imported(ImportedReport {
            file_name: "roster.csv".into(),
            rows_total: 3,
            rows_sent: 3,
            rows_unchanged: 0,
            after_delay: false,
        })
    }

    /// The raw header `name`, folds kept, from a formatted message.
    fn raw_header(m: &OutgoingMessage, name: &str) -> String {
        let text = raw_text(m);
        let head = text.split("\r\n\r\n").next().unwrap();
        let start = head
            .find(&format!("\r\n{name}: "))
            .map(|i| i + 2)
            .or_else(|| head.starts_with(&format!("{name}: ")).then_some(0))
            .unwrap();
        let value = &head[start + name.len() + 2..];
        let mut end = 0;
        for line in value.split_inclusive("\r\n") {
            if end > 0 && !line.starts_with([' ', '\t']) {
                break;
            }
            end += line.len();
        }
        value[..end].trim_end().to_owned()
    }

    #[test]
    fn on_behalf_sends_from_the_operator_with_the_clients_reply_to() {
        let envelope = ReportEnvelope::on_behalf(
            "acme",
            "Acme Parking",
            "reports@ops.example",
            "parking@acme.edu",
            "it@acme.edu",
        )
        .unwrap();
        assert_eq!(envelope.from(), "reports@ops.example");
        assert_eq!(envelope.reply_to(), "parking@acme.edu");
        let m = compose(&imported(), &envelope, "c", &ComposeOptions::at(date())).unwrap();
        assert_eq!(
            raw_header(&m, "From"),
            "\"Acme Parking via OPSCOM\" <reports@ops.example>"
        );
        assert_eq!(raw_header(&m, "Reply-To"), "parking@acme.edu");
        assert_eq!(raw_header(&m, "To"), "it@acme.edu");
        assert_eq!(m.meta().envelope_from, "reports@ops.example");
        assert_eq!(m.meta().envelope_to, vec!["it@acme.edu".to_owned()]);
        assert!(
            m.message_id().ends_with("@ops.example"),
            "{}",
            m.message_id()
        );
        assert!(
            raw_text(&m)
                .replace("=\r\n", "")
                .contains("Replies go to parking@acme.edu.")
        );

        // No display name: the tenant's name.
        let envelope = ReportEnvelope::on_behalf(
            "acme",
            " ",
            "reports@ops.example",
            "p@acme.edu",
            "it@acme.edu",
        )
        .unwrap();
        let m = compose(&imported(), &envelope, "c", &ComposeOptions::at(date())).unwrap();
        assert_eq!(
            raw_header(&m, "From"),
            "\"acme via OPSCOM\" <reports@ops.example>"
        );

        let e = ReportEnvelope::on_behalf("acme", "A", "nope", "p@acme.edu", "it@acme.edu")
            .unwrap_err();
        assert_eq!(e.field, "operator_from");
    }

    #[test]
    fn the_default_sender_is_the_tenant_itself() {
        let m = compose(&imported(), &envelope(), "c", &ComposeOptions::at(date())).unwrap();
        assert_eq!(
            raw_header(&m, "From"),
            "\"OPSCOM import\" <parking@acme.edu>"
        );
        assert_eq!(
            raw_header(&m, "Reply-To"),
            "\"OPSCOM import\" <parking@acme.edu>"
        );
        assert_eq!(m.meta().envelope_from, "parking@acme.edu");
        assert_eq!(*envelope().mode(), FromMode::Own);
    }

    #[test]
    fn a_copy_to_another_recipient_has_its_own_key() {
        let client = compose(&imported(), &envelope(), "c", &ComposeOptions::at(date())).unwrap();
        let operator = envelope().with_to("ops@ops.example").unwrap();
        let copy = compose(&imported(), &operator, "c", &ComposeOptions::at(date())).unwrap();
        assert_eq!(copy.meta().envelope_to, vec!["ops@ops.example".to_owned()]);
        assert_eq!(raw_header(&copy, "To"), "ops@ops.example");
        assert_ne!(copy.meta().key, client.meta().key);
        assert_ne!(copy.message_id(), client.message_id());
        assert_eq!(envelope().with_to("x@").unwrap_err().field, "to");
    }

    #[test]
    fn subjects_are_shown_exactly_as_written() {
        for name in [
            "=?utf-8?q?Payroll?=.csv",
            "Zoë's roster — été 2026, a rather long name that needs folding.csv",
        ] {
            let report = Report::Imported(ImportedReport {
                file_name: name.to_owned(),
                rows_total: 1204,
                rows_sent: 1204,
                rows_unchanged: 0,
                after_delay: false,
            });
            let m = compose(&report, &envelope(), "c", &ComposeOptions::at(date())).unwrap();
            assert_eq!(m.subject(), format!("{name}: all 1,204 users imported"));
            let raw = raw_header(&m, "Subject");
            assert!(raw.is_ascii(), "{raw}");
            for line in raw.split("\r\n") {
                assert!(line.trim_start().len() <= 75, "{line}");
            }
            assert_eq!(
                crate::encoding::tests::decode_encoded_words(&raw),
                m.subject()
            );
        }
        // Plain ASCII stays readable as it is.
        let m = compose(&imported(), &envelope(), "c", &ComposeOptions::at(date())).unwrap();
        assert_eq!(
            raw_header(&m, "Subject"),
            "roster.csv: all 3 users imported"
        );
    }

    #[test]
    fn fnv_reference_value() {
        // FNV-1a 128 of the empty input is the offset basis; of "a", the published value.
        assert_eq!(fnv1a_128(b""), 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d);
        assert_eq!(fnv1a_128(b"a"), 0xd228_cb69_6f1a_8caf_7891_2b70_4e4a_8964);
    }
}
