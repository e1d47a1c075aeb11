//! What each report says, in plain words for parking-office staff: always what happened, to which
//! file, and what to do next; never a command to run.
//!
//! Each report's subject and body are built here once, from shared blocks (the counts, the WHY
//! list, the attached-file note, the next steps, the Excel advice). The e-mail ([`mail_text`])
//! adds the attachment notes and the footer; the results folder's summary ([`summary_text`]) adds
//! when the file was handled instead.

use jiff::Timestamp;

use crate::attachment::{self, AttachmentForm, PreparedAttachment};
use crate::failure_csv::{IMPORT_ERROR_COLUMN, failure_file_name};
use crate::report::{
    ChangeCounts, ComposeError, ComposeOptions, DelayedReport, EXCEL_SAVE_AS, FailureCsv,
    FailureReport, FolderProblemReport, HeldReport, ImportedReport, NotImportableReport,
    NotImportableWhat, PreviewReport, RejectedReport, Report, ReportEnvelope, SignalNotHeldReport,
    TokenRejectedReport, fixed_file_name, zip_date,
};
use crate::summary::{FailureSummary, shorten};

/// How many waiting files (or held files, or example ids) a message names before "and N more".
const MAX_FILES_LISTED: usize = 20;
/// How many example `unique_id`s a held import's message names.
const MAX_EXAMPLES: usize = 10;

/// Subject, body, and the attachment of an e-mail.
pub(crate) type Composed = (String, String, Option<PreparedAttachment>);

/// The subject, body (with footer) and attachment of `report`'s e-mail.
pub(crate) fn mail_text(
    report: &Report,
    envelope: &ReportEnvelope,
    options: &ComposeOptions,
) -> Result<Composed, ComposeError> {
    let tenant = Some(envelope.tenant());
    let (subject, mut body, attachment) = match report {
        Report::Failures(r) => {
            let a = prepare_csv(
                r.failure_csv.as_ref(),
                &failure_file_name(&r.file_name),
                options,
            )?;
            (
                failures_subject(r),
                failures_body(r, a.as_ref(), a.is_some()),
                a,
            )
        }
        Report::Rejected(r) => {
            let a = prepare_csv(
                r.fixed_csv.as_ref(),
                &fixed_file_name(&r.file_name),
                options,
            )?;
            // A cut file would lose users if uploaded: then it is not attached at all.
            let a = a.filter(|a| !matches!(a.form, AttachmentForm::Cut { .. }));
            let note = if r.fixed_csv.is_some() {
                FixedNote::Mail(a.as_ref())
            } else {
                FixedNote::None
            };
            (rejected_subject(r), rejected_body(r, note), a)
        }
        Report::ImportDelayed(r) => (delayed_subject(r), delayed_body(r), None),
        Report::TokenRejected(r) => (token_subject(tenant), token_body(r, tenant), None),
        Report::FolderProblem(r) => (folder_subject(r, tenant), folder_body(r), None),
        Report::Imported(r) => (imported_subject(r), imported_body(r), None),
        Report::Preview(r) => {
            let a = prepare_csv(
                r.failure_csv.as_ref(),
                &failure_file_name(&r.file_name),
                options,
            )?;
            (
                preview_subject(r),
                preview_body(r, a.as_ref(), a.is_some()),
                a,
            )
        }
        Report::NotImportable(r) => (not_importable_subject(r), not_importable_body(r), None),
        Report::Held(r) => (held_subject(r), held_body(r), None),
        Report::SignalNotHeld(r) => (signal_subject(r), signal_body(r), None),
    };
    body.push_str(&footer(envelope));
    Ok((subject, body, attachment))
}

/// The plain-text summary of `report` for the client's results folder (`results/NAME-summary.txt`):
/// when the file was handled (UTC), the outcome, the counts, every failure reason with its first
/// lines, and what to do next: the e-mail's own text, without its footer or attachment notes.
///
/// Meant for the reports about one file (failures, imported, rejected, preview, held, not
/// importable); the others give their message's text the same way.
///
/// ```
/// use opscom_mail::{ImportedReport, Report, summary_text};
///
/// let report = Report::Imported(ImportedReport {
///     file_name: "roster.csv".into(),
///     rows_total: 1204,
///     rows_sent: 1204,
///     rows_unchanged: 0,
///     after_delay: false,
/// });
/// let text = summary_text(&report, "2026-11-03T10:15:00Z".parse().unwrap());
/// assert!(text.contains("Handled:  2026-11-03 10:15 UTC"));
/// assert!(text.contains("roster.csv: all 1,204 users imported"));
/// ```
pub fn summary_text(report: &Report, handled_at: Timestamp) -> String {
    let (file, subject, body) = match report {
        Report::Failures(r) => (
            Some(&r.file_name),
            failures_subject(r),
            failures_body(r, None, r.failure_csv.is_some()),
        ),
        Report::Rejected(r) => (
            Some(&r.file_name),
            rejected_subject(r),
            rejected_body(r, FixedNote::None),
        ),
        Report::ImportDelayed(r) => (None, delayed_subject(r), delayed_body(r)),
        Report::TokenRejected(r) => (None, token_subject(None), token_body(r, None)),
        Report::FolderProblem(r) => (None, folder_subject(r, None), folder_body(r)),
        Report::Imported(r) => (Some(&r.file_name), imported_subject(r), imported_body(r)),
        Report::Preview(r) => (
            Some(&r.file_name),
            preview_subject(r),
            preview_body(r, None, r.failure_csv.is_some()),
        ),
        Report::NotImportable(r) => (
            Some(&r.file_name),
            not_importable_subject(r),
            not_importable_body(r),
        ),
        Report::Held(r) => (Some(&r.file_name), held_subject(r), held_body(r)),
        Report::SignalNotHeld(r) => (Some(&r.signal_name), signal_subject(r), signal_body(r)),
    };
    let mut b = String::from("OPSCOM IMPORT SUMMARY\n\n");
    if let Some(file) = file {
        b.push_str(&format!("File:     {}\n", display_name(file)));
    }
    b.push_str(&format!("Handled:  {}\n", human_time(handled_at)));
    b.push_str(&format!("Result:   {subject}\n\n"));
    b.push_str(&body);
    b
}

/// The failure CSV (or corrected file) `csv` as an attachment named `name`, fitting the limits.
fn prepare_csv(
    csv: Option<&FailureCsv>,
    name: &str,
    options: &ComposeOptions,
) -> Result<Option<PreparedAttachment>, ComposeError> {
    let modified = zip_date(options.date);
    Ok(match csv {
        Some(FailureCsv::File(path)) => Some(
            attachment::prepare(path, name, &options.limits, modified).map_err(|source| {
                ComposeError::Attachment {
                    path: path.clone(),
                    source,
                }
            })?,
        ),
        Some(FailureCsv::Bytes(bytes)) => Some(
            attachment::prepare_bytes(bytes, name, &options.limits, modified)
                .map_err(ComposeError::AttachmentInMemory)?,
        ),
        None => None,
    })
}

// ---------------------------------------------------------------------------------------------
// Shared blocks.

/// The counts block: `  Label:  value` lines, values aligned.
fn counts(rows: &[(&str, String)]) -> String {
    let width = rows
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0)
        + 1;
    let mut b = String::new();
    for (label, value) in rows {
        b.push_str(&format!("  {:<width$} {value}\n", format!("{label}:")));
    }
    b.push('\n');
    b
}

/// The list of reasons with counts and first lines, under `title`.
fn why_block(title: &str, summary: &FailureSummary) -> String {
    if summary.is_empty() {
        return String::new();
    }
    let mut b = format!("{title}\n\n");
    for c in summary.categories() {
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
    b
}

/// The note on the attached failure CSV; `which` says which users it lists ("that were not
/// imported", "that would fail").
fn attachment_block(a: &PreparedAttachment, csv_name: &str, rows: u64, which: &str) -> String {
    let mut b = String::from("THE ATTACHED FILE\n\n");
    b.push_str(&format!(
        "{csv_name} lists the users {which}: the values as you sent them, \
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
             holds the first {rows_kept} of the {rows} users {which}. The lines \
             above show what went wrong; after fixing the cause, upload the whole corrected \
             file again.\n",
            a.name
        )),
    }
    b.push('\n');
    b
}

/// The steps after failed rows: correct at the source, upload again (or the corrected CSV).
fn fix_rows_steps(csv_name: Option<&str>) -> String {
    let mut b = String::from(
        "1. Correct the values in the system you export from, so that the next export is right too.\n",
    );
    match csv_name {
        Some(csv_name) => b.push_str(&format!(
            "2. Then either upload a new complete export, or correct {csv_name} and upload it to the\n   \
             same folder: its {IMPORT_ERROR_COLUMN} column is ignored, and the users already imported are\n   \
             not affected.\n"
        )),
        None => b.push_str("2. Then upload a new complete export to the same folder.\n"),
    }
    b.push_str(&format!(
        "3. If you edit the file in Excel, save it with File > Save As > \"{EXCEL_SAVE_AS}\".\n\n"
    ));
    b
}

fn files_list(title: &str, files: &[String]) -> String {
    if files.is_empty() {
        return String::new();
    }
    let mut b = format!("{title}\n");
    b.push_str(&names_list(files));
    b.push('\n');
    b
}

fn names_list(names: &[String]) -> String {
    let mut b = String::new();
    for f in names.iter().take(MAX_FILES_LISTED) {
        b.push_str(&format!("  {}\n", display_name(f)));
    }
    if names.len() > MAX_FILES_LISTED {
        b.push_str(&format!(
            "  … and {} more\n",
            names.len() - MAX_FILES_LISTED
        ));
    }
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
        shorten(envelope.tenant(), 80),
        envelope.reply_to()
    )
}

// ---------------------------------------------------------------------------------------------
// Some rows failed.

fn failures_subject(r: &FailureReport) -> String {
    format!(
        "{}: {} of {} {} not imported",
        display_name(&r.file_name),
        r.rows_failed,
        r.rows_total,
        users(r.rows_total)
    )
}

fn failures_body(r: &FailureReport, a: Option<&PreparedAttachment>, csv_offered: bool) -> String {
    let file = display_name(&r.file_name);
    let csv_name = failure_file_name(&r.file_name);
    let mut b = format!(
        "{} of the {} {} in {file} {} not imported into OPSCOM.\n\n",
        r.rows_failed,
        r.rows_total,
        users(r.rows_total),
        if r.rows_failed == 1 { "was" } else { "were" }
    );
    if r.after_delay {
        b.push_str(&format!(
            "This is the file whose import was delayed earlier: {file} has now been imported, \
             except for the users below.\n\n"
        ));
    }
    let mut rows = vec![
        ("File", file.clone()),
        ("Users in file", r.rows_total.to_string()),
        ("Imported", r.rows_ok.to_string()),
    ];
    if r.rows_unchanged > 0 {
        rows.push(("Unchanged", unchanged_value(r.rows_unchanged)));
    }
    rows.push(("Not imported", r.rows_failed.to_string()));
    b.push_str(&counts(&rows));
    b.push_str(&why_block("WHY THEY WERE NOT IMPORTED", &r.summary));
    if let Some(a) = a {
        b.push_str(&attachment_block(
            a,
            &csv_name,
            r.rows_failed,
            "that were not imported",
        ));
    }
    b.push_str("WHAT TO DO NEXT\n\n");
    b.push_str(&fix_rows_steps(csv_offered.then_some(csv_name.as_str())));
    if r.summary.excel_damage() {
        b.push_str(&excel_advice(r.summary.excel_signs()));
    }
    b
}

fn unchanged_value(n: u64) -> String {
    format!(
        "{} (the same as in the last import, so not sent again)",
        num(n)
    )
}

// ---------------------------------------------------------------------------------------------
// Every row imported.

fn imported_subject(r: &ImportedReport) -> String {
    let file = display_name(&r.file_name);
    if r.after_delay {
        return format!("{file}: imported after the delay");
    }
    match r.rows_total {
        0 => format!("{file}: imported, the file has no users"),
        1 => format!("{file}: 1 user imported"),
        n => format!("{file}: all {} users imported", num(n)),
    }
}

fn imported_body(r: &ImportedReport) -> String {
    let file = display_name(&r.file_name);
    let mut b = String::new();
    if r.after_delay {
        b.push_str(&format!(
            "{file}, the file whose import was delayed earlier, has now been imported into OPSCOM.\n\n"
        ));
    }
    match (r.rows_total, r.rows_unchanged) {
        (0, _) => b.push_str(&format!(
            "{file} was read, but it holds no users, so nothing was changed in OPSCOM.\n\n"
        )),
        (1, 0) => b.push_str(&format!("The user in {file} was imported into OPSCOM.\n\n")),
        (n, 0) => b.push_str(&format!(
            "All {} users in {file} were imported into OPSCOM.\n\n",
            num(n)
        )),
        (n, unchanged) => b.push_str(&format!(
            "All {} users in {file} are now up to date in OPSCOM: {} {} imported, and {} \
             {} already up to date since the last import.\n\n",
            num(n),
            num(r.rows_sent),
            were(r.rows_sent),
            num(unchanged),
            were(unchanged),
        )),
    }
    let mut rows = vec![
        ("File", file.clone()),
        ("Users in file", num(r.rows_total)),
        ("Imported", num(r.rows_sent)),
    ];
    if r.rows_unchanged > 0 {
        rows.push(("Unchanged", unchanged_value(r.rows_unchanged)));
    }
    rows.push(("Not imported", "0".to_owned()));
    b.push_str(&counts(&rows));
    b.push_str("Nothing else is needed from you.\n\n");
    b
}

// ---------------------------------------------------------------------------------------------
// Rejected whole.

/// What a rejected file's message says about the corrected file.
enum FixedNote<'a> {
    /// No corrected file (or the summary file, which does not carry it).
    None,
    /// The e-mail: attached (plain or zipped), or too large to attach.
    Mail(Option<&'a PreparedAttachment>),
}

fn rejected_subject(r: &RejectedReport) -> String {
    if r.preview {
        return format!(
            "Preview of {}: the file would be rejected",
            display_name(&r.file_name)
        );
    }
    format!(
        "{}: file rejected, no users imported",
        display_name(&r.file_name)
    )
}

fn rejected_body(r: &RejectedReport, fixed: FixedNote<'_>) -> String {
    let file = display_name(&r.file_name);
    let mut b = if r.preview {
        format!(
            "This was a preview: nothing was sent to OPSCOM. Uploaded to the main folder, the file \
             {file} would be rejected as a whole, and no user in it would be imported.\n\n"
        )
    } else {
        format!(
            "The file {file} was not imported: it was rejected as a whole, and no user in it was sent to OPSCOM.\n\n"
        )
    };
    match r.line {
        Some(line) => b.push_str(&format!("Problem (line {line}): {}\n", r.reason)),
        None => b.push_str(&format!("Problem: {}\n", r.reason)),
    }
    if let Some(fix) = &r.fix {
        b.push_str(&format!("How to fix it: {fix}\n"));
    }
    if !r.header_fixes.is_empty() {
        b.push_str("\nColumn names that are not accepted:\n");
        for h in r.header_fixes.iter().take(MAX_FILES_LISTED) {
            let given = shorten(&h.given, 80);
            if h.closest.is_empty() {
                b.push_str(&format!("  \"{given}\" is not an accepted column name\n"));
            } else {
                let closest: Vec<String> = h.closest.iter().map(|c| shorten(c, 80)).collect();
                b.push_str(&format!(
                    "  \"{given}\" is not an accepted column name; closest: {}\n",
                    closest.join(", ")
                ));
            }
        }
        if r.header_fixes.len() > MAX_FILES_LISTED {
            b.push_str(&format!(
                "  … and {} more\n",
                r.header_fixes.len() - MAX_FILES_LISTED
            ));
        }
    }
    if let FixedNote::Mail(attached) = fixed {
        let fixed_name = fixed_file_name(&r.file_name);
        b.push_str("\nTHE ATTACHED FILE\n\n");
        match attached {
            Some(a) => {
                b.push_str(&format!(
                    "We attached {fixed_name}: your file with only the header line corrected. \
                     Check it and upload it to the same folder to import it.\n"
                ));
                if matches!(a.form, AttachmentForm::Zipped) {
                    b.push_str(&format!(
                        "It is compressed as {} to keep this e-mail small: open the zip and upload \
                         {fixed_name} itself, not the zip.\n",
                        a.name
                    ));
                }
            }
            None => b.push_str(
                "Your file is too large to send back by e-mail with the header line corrected: \
                 correct the column names as shown above and upload the file again.\n",
            ),
        }
    }
    let moved = if r.preview { "preview/.bak" } else { ".bak" };
    b.push_str(&format!(
        "\nWHAT TO DO NEXT\n\nFix the file and upload it again to the same folder. The rejected file \
         was moved, unchanged, to the {moved} folder inside your upload folder.\n\
         If you edit the file in Excel, save it with File > Save As > \"{EXCEL_SAVE_AS}\".\n\n"
    ));
    if r.excel_damage {
        b.push_str(&excel_advice(&[]));
    }
    b
}

// ---------------------------------------------------------------------------------------------
// Preview.

fn preview_subject(r: &PreviewReport) -> String {
    let file = display_name(&r.file_name);
    if r.rows_failed == 0 {
        return match r.rows_would_send {
            0 => format!("Preview of {file}: no users would be imported"),
            1 => format!("Preview of {file}: 1 user would be imported"),
            n => format!("Preview of {file}: all {} users would be imported", num(n)),
        };
    }
    format!(
        "Preview of {file}: {} {} would be imported, {} would fail",
        num(r.rows_would_send),
        users(r.rows_would_send),
        num(r.rows_failed)
    )
}

fn preview_body(r: &PreviewReport, a: Option<&PreparedAttachment>, csv_offered: bool) -> String {
    let file = display_name(&r.file_name);
    let csv_name = failure_file_name(&r.file_name);
    let mut b = format!(
        "This is only a preview: {file} was checked, but nothing was sent to OPSCOM and nothing \
         was changed in OPSCOM.\n\n"
    );
    b.push_str(&counts(&[
        ("File", file.clone()),
        ("Users in file", num(r.rows_total)),
        ("Would be imported", num(r.rows_would_send)),
        ("Would fail", num(r.rows_failed)),
    ]));
    if let Some(ChangeCounts {
        new,
        changed,
        unchanged,
    }) = r.change
    {
        b.push_str("COMPARED WITH THE LAST IMPORT\n\n");
        b.push_str(&counts(&[
            ("New users", num(new)),
            ("Changed", num(changed)),
            ("Unchanged", num(unchanged)),
        ]));
    }
    b.push_str(&why_block("WHY THEY WOULD FAIL", &r.summary));
    if let Some(a) = a {
        b.push_str(&attachment_block(
            a,
            &csv_name,
            r.rows_failed,
            "that would fail",
        ));
    }
    b.push_str("WHAT TO DO NEXT\n\n");
    if r.rows_failed > 0 {
        b.push_str(
            "1. Correct the users that would fail in the system you export from, and export the \
             file again.\n",
        );
        if csv_offered {
            b.push_str(&format!(
                "   The users that would fail are listed in {csv_name}.\n"
            ));
        }
        b.push_str(
            "2. To import the file, upload it to your main upload folder, not to the preview \
             folder. You may also upload it to the preview folder again first, to check it once \
             more.\n",
        );
    } else {
        b.push_str(
            "To import the file, upload it to your main upload folder, not to the preview folder.\n",
        );
    }
    b.push_str(&format!(
        "\nThe previewed file was moved, unchanged, to the .bak folder inside the preview folder \
         (preview/.bak). If you edit the file in Excel, save it with File > Save As > \
         \"{EXCEL_SAVE_AS}\".\n\n"
    ));
    if r.summary.excel_damage() {
        b.push_str(&excel_advice(r.summary.excel_signs()));
    }
    b
}

// ---------------------------------------------------------------------------------------------
// Not importable.

fn not_importable_subject(r: &NotImportableReport) -> String {
    let file = display_name(&r.file_name);
    let why = match r.what {
        NotImportableWhat::Spreadsheet
        | NotImportableWhat::Text
        | NotImportableWhat::OtherName
        | NotImportableWhat::Other => "it is not a CSV file",
        NotImportableWhat::TooLarge { .. } => "the file is too large",
        NotImportableWhat::Symlink => "it is a link, not a file",
        NotImportableWhat::Directory => "it is a folder, not a file",
        NotImportableWhat::Fifo => "it is not a regular file",
    };
    format!("{file}: not imported, {why}")
}

fn not_importable_body(r: &NotImportableReport) -> String {
    let file = display_name(&r.file_name);
    let save_as = format!(
        "open it in Excel and save it with File > Save As > \"{EXCEL_SAVE_AS}\", then upload \
         the .csv file"
    );
    let upload_itself = "Upload the CSV file itself. Some SFTP programs create a link or a \
                         folder by mistake, for example when a file is dropped onto another \
                         one or when a folder is copied instead of the file in it.";
    let (what, fix) = match &r.what {
        NotImportableWhat::Spreadsheet => (
            format!("{file} is a spreadsheet (such as an Excel workbook), not a CSV file."),
            format!("To import it, {save_as}."),
        ),
        NotImportableWhat::Text => (
            format!("{file} is a text file, but its name does not end in .csv."),
            format!(
                "If it is a CSV export, rename it (or export it again) so that its name ends in \
                 .csv, then upload it. Otherwise, {save_as}."
            ),
        ),
        NotImportableWhat::OtherName => (
            format!("The name of {file} does not end in .csv, so it is not read as a CSV file."),
            format!(
                "If it is a CSV file, rename it so that its name ends in .csv, then upload it. \
                 Otherwise, {save_as}."
            ),
        ),
        NotImportableWhat::Other => (
            format!("{file} is not a CSV file that the importer can read."),
            format!("To import it, {save_as}."),
        ),
        NotImportableWhat::TooLarge { size, limit } => (
            format!(
                "{file} is {}, more than the {} a file may have.",
                human_size(*size),
                human_size(*limit)
            ),
            format!(
                "Split it into several files of less than {} each, every one with the same \
                 header line as the first line, and upload them to the same folder.",
                human_size(*limit)
            ),
        ),
        NotImportableWhat::Symlink => (
            format!("{file} is a link (a shortcut) to another file, not a file itself."),
            upload_itself.to_owned(),
        ),
        NotImportableWhat::Directory => (
            format!("{file} is a folder, not a file."),
            upload_itself.to_owned(),
        ),
        NotImportableWhat::Fifo => (
            format!("{file} is a special system file, not a regular file."),
            upload_itself.to_owned(),
        ),
    };
    format!(
        "The upload {file} will not be imported: no user in it was sent to OPSCOM.\n\n\
         Problem: {what}\n\n\
         WHAT TO DO NEXT\n\n{fix}\n\n\
         It was moved, unchanged, to the .bak folder inside your upload folder, as {}.\n\n",
        display_name(&r.moved_to)
    )
}

// ---------------------------------------------------------------------------------------------
// Held for approval, and approvals for nothing held.

fn held_subject(r: &HeldReport) -> String {
    format!(
        "{}: import on hold, it would change {} of your users",
        display_name(&r.file_name),
        held_share(r)
    )
}

/// "62%" of the known users, or the count when there are none.
fn held_share(r: &HeldReport) -> String {
    if r.known_users == 0 {
        return num(r.would_change);
    }
    percent(r.would_change as f64 * 100.0 / r.known_users as f64)
}

fn held_body(r: &HeldReport) -> String {
    let file = display_name(&r.file_name);
    let held = display_name(&r.held_as);
    let mut b = format!(
        "The import of {file} is on hold: it would change {} of the {} {} already in OPSCOM \
         ({}), more than the {} that may change at once. Nothing was sent to OPSCOM and nothing \
         was changed.\n\n\
         So many changes at once can mean a broken export, for example a column shifted so that \
         first names went into the e-mail column. Please check the file before it is imported.\n\n",
        num(r.would_change),
        num(r.known_users),
        users(r.known_users),
        held_share(r),
        percent(r.percent_limit),
    );
    b.push_str(&counts(&[
        ("File", file.clone()),
        ("Users that would change", num(r.would_change)),
        ("Users now in OPSCOM", num(r.known_users)),
        ("Most allowed at once", percent(r.percent_limit)),
    ]));
    if !r.examples.is_empty() {
        b.push_str("Some of the users that would change (unique_id):\n");
        for id in r.examples.iter().take(MAX_EXAMPLES) {
            b.push_str(&format!("  {}\n", shorten(id, 80)));
        }
        b.push('\n');
    }
    b.push_str(&format!(
        "WHAT TO DO NEXT\n\n\
         - If the file is right: upload an empty file named {held}.approve to your upload \
         folder. The import then goes ahead.\n\
         - If the file is wrong: upload an empty file named {held}.discard to the same folder. \
         The file is then set aside, unchanged, in the .bak folder, and nothing in it is \
         imported; then upload a corrected file.\n\n"
    ));
    if r.files_waiting.is_empty() {
        b.push_str(&format!(
            "While {file} is on hold, the files you upload meanwhile wait behind it.\n\n"
        ));
    } else {
        b.push_str(&files_list(
            &format!("While {file} is on hold, these files wait behind it:"),
            &r.files_waiting,
        ));
    }
    b
}

fn signal_subject(r: &SignalNotHeldReport) -> String {
    format!(
        "{}: ignored, {} is not on hold",
        display_name(&r.signal_name),
        display_name(&r.target)
    )
}

fn signal_body(r: &SignalNotHeldReport) -> String {
    let signal = display_name(&r.signal_name);
    let target = display_name(&r.target);
    let mut b = format!(
        "You uploaded {signal}, but no import of {target} is on hold, so it had no effect. It \
         was removed.\n\n"
    );
    if r.held.is_empty() {
        b.push_str("No import is on hold at the moment, so nothing needs approving.\n\n");
    } else {
        b.push_str("The imports on hold now are:\n");
        b.push_str(&names_list(&r.held));
        b.push('\n');
        b.push_str(
            "To approve one, upload an empty file named exactly as it is listed above followed \
             by .approve; to discard it, followed by .discard. Check the spelling: the name must \
             match exactly.\n\n",
        );
    }
    b
}

// ---------------------------------------------------------------------------------------------
// Tenant-wide reports.

fn delayed_subject(r: &DelayedReport) -> String {
    let n = r.files_waiting.len();
    format!(
        "Import delayed: {n} {} waiting, OPSCOM cannot be reached",
        if n == 1 { "file" } else { "files" }
    )
}

fn delayed_body(r: &DelayedReport) -> String {
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
    b.push_str(&files_list("Files waiting:", &r.files_waiting));
    b.push_str(
        "If the delay lasts, contact OPSCOM support: the importer keeps retrying on its own.\n\n",
    );
    b
}

fn folder_subject(r: &FolderProblemReport, tenant: Option<&str>) -> String {
    if !r.imports_paused {
        return match tenant {
            Some(t) => format!(
                "Your upload folder for {} needs attention (imports go on)",
                shorten(t, 80)
            ),
            None => "Your upload folder needs attention (imports go on)".to_owned(),
        };
    }
    match tenant {
        Some(t) => format!(
            "Import paused for {}: your upload folder needs attention",
            shorten(t, 80)
        ),
        None => "Import paused: your upload folder needs attention".to_owned(),
    }
}

fn folder_body(r: &FolderProblemReport) -> String {
    if !r.imports_paused {
        return format!("{}\n\nWHAT TO DO NEXT\n\n{}\n\n", r.problem, r.fix);
    }
    format!(
        "{}\n\n\
         No file is imported until this is fixed. Your files are kept and will be imported \
         automatically once it is; you do not need to upload them again.\n\n\
         WHAT TO DO NEXT\n\n{}\n\n",
        r.problem, r.fix
    )
}

fn token_subject(tenant: Option<&str>) -> String {
    match tenant {
        Some(t) => format!(
            "Import stopped for {}: OPSCOM refused the API token",
            shorten(t, 80)
        ),
        None => "Import stopped: OPSCOM refused the API token".to_owned(),
    }
}

fn token_body(r: &TokenRejectedReport, tenant: Option<&str>) -> String {
    let code = match r.api_code {
        Some(code) => format!(" (error {code})"),
        None => String::new(),
    };
    let (uses, configured) = match tenant {
        Some(t) => {
            let t = shorten(t, 80);
            (format!(" for \"{t}\""), format!(" for \"{t}\""))
        }
        None => (String::new(), String::new()),
    };
    let mut b = format!(
        "Since {}, OPSCOM refuses the API token that the importer uses{uses}{code}.\n\n\
         No user is imported until this is fixed. Your files are kept and will be imported \
         automatically once the token is accepted again; you do not need to upload them again.\n\n\
         WHAT TO DO NEXT\n\n\
         Contact OPSCOM support (or your OPSCOM operations contact) and ask them to check the Push \
         API token configured in the importer{configured}. Never send the token itself by e-mail.\n\n",
        human_time(r.since),
    );
    b.push_str(&files_list("Files waiting:", &r.files_waiting));
    b
}

// ---------------------------------------------------------------------------------------------
// Words and numbers.

fn users(n: u64) -> &'static str {
    if n == 1 { "user" } else { "users" }
}

fn were(n: u64) -> &'static str {
    if n == 1 { "was" } else { "were" }
}

/// A client-given name, safe for a subject or a body line.
fn display_name(name: &str) -> String {
    shorten(name, 120)
}

pub(crate) fn human_time(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

/// `1204` → `1,204`.
fn num(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `20.0` → `20%`, `2.5` → `2.5%`.
fn percent(p: f64) -> String {
    if !p.is_finite() {
        return "?%".to_owned();
    }
    let rounded = (p * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 || rounded >= 10.0 {
        format!("{}%", rounded.round() as i64)
    } else {
        format!("{rounded:.1}%")
    }
}

/// A size as Windows shows it: `512 bytes`, `1.5 MB`, `200 MB`, `2 GB` (1 KB = 1,024 bytes).
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let rounded = (value * 10.0).round() / 10.0;
    if rounded >= 10.0 || rounded.fract() == 0.0 {
        format!("{} {}", value.round() as u64, UNITS[unit])
    } else {
        format!("{rounded:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_percentages_and_sizes_read_naturally() {
        assert_eq!(num(0), "0");
        assert_eq!(num(999), "999");
        assert_eq!(num(1204), "1,204");
        assert_eq!(num(1_234_567), "1,234,567");
        assert_eq!(percent(20.0), "20%");
        assert_eq!(percent(2.5), "2.5%");
        assert_eq!(percent(62.04), "62%");
        assert_eq!(human_size(900), "900 bytes");
        assert_eq!(human_size(1536), "1.5 KB");
        assert_eq!(human_size(200 * 1024 * 1024), "200 MB");
        assert_eq!(human_size(3 * 1024 * 1024 * 1024 + 1), "3 GB");
    }
}
