//! What the client reads: the body of each report kind, decoded as a mail client would.

use opscom_mail::{
    AttachmentLimits, ComposeOptions, EXCEL_SAVE_AS, OutgoingMessage, RejectedReport, Report,
    compose,
};
use opscom_testkit::ReceivedMessage;

use crate::common::{date, envelope, roster_report};

fn parse(m: &OutgoingMessage) -> ReceivedMessage {
    ReceivedMessage::parse(m.raw().to_vec()).expect("a parseable message")
}

#[test]
fn excel_damage_brings_the_save_as_advice_and_names_the_signs() {
    let dir = tempfile::tempdir().unwrap();
    let (mut report, _) = roster_report(dir.path());
    report
        .summary
        .note_excel_damage("ids in scientific notation (1.23E+11)");
    let m = compose(
        &Report::Failures(report),
        &envelope(),
        "c",
        &ComposeOptions::at(date()),
    )
    .unwrap();
    let body = parse(&m).text_body();
    assert!(body.contains("EXCEL\n"), "{body}");
    assert!(body.contains("ids in scientific notation (1.23E+11)"));
    assert!(body.contains(&format!("\"{EXCEL_SAVE_AS}\"")));
    assert_eq!(
        parse(&m).header("X-OPSCOM-Report").as_deref(),
        Some("failures")
    );
    assert_eq!(
        parse(&m).header("Date").as_deref(),
        Some("Tue, 03 Nov 2026 10:15:00 +0000")
    );
}

#[test]
fn a_rejected_file_gets_reason_line_and_fix_without_attachment() {
    let report = Report::Rejected(RejectedReport {
        file_name: "roster.csv".into(),
        reason: "the delimiter is ';', not ','".into(),
        fix: Some(format!("in Excel, save as \"{EXCEL_SAVE_AS}\"")),
        line: Some(1),
        excel_damage: true,
        header_fixes: Vec::new(),
        fixed_csv: None,
        preview: false,
    });
    let m = compose(&report, &envelope(), "c", &ComposeOptions::at(date())).unwrap();
    let parsed = parse(&m);
    assert_eq!(
        parsed.subject(),
        Some("roster.csv: file rejected, no users imported")
    );
    let body = parsed.text_body();
    assert!(
        body.contains("Problem (line 1): the delimiter is ';', not ','"),
        "{body}"
    );
    assert!(body.contains("How to fix it: in Excel, save as"));
    assert!(body.contains(".bak"));
    assert!(body.contains("EXCEL\n"));
    assert!(parsed.attachments().is_empty());
}

#[test]
fn a_cut_attachment_is_announced_with_the_rows_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (report, path) = roster_report(dir.path());
    let full = std::fs::read(&path).unwrap();
    // The whole CSV zips to ~320 bytes: 290 holds the header and a row or two.
    let options = ComposeOptions {
        date: date(),
        limits: AttachmentLimits {
            compress_above: 10,
            max_attachment: 290,
        },
        dkim: None,
    };
    let m = compose(&Report::Failures(report), &envelope(), "c", &options).unwrap();
    let parsed = parse(&m);
    let body = parsed.text_body();
    let a = &parsed.attachments()[0];
    assert!(a.data.len() <= 290);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(a.data.clone())).unwrap();
    let mut csv = Vec::new();
    std::io::Read::read_to_end(&mut zip.by_index(0).unwrap(), &mut csv).unwrap();
    assert!(
        full.starts_with(&csv) && csv.len() < full.len(),
        "{} of {} bytes; zip {} bytes",
        csv.len(),
        full.len(),
        a.data.len()
    );
    let kept = csv.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count() - 1;
    assert!(
        body.contains(&format!("holds the first {kept} of the 3 users")),
        "kept {kept}:\n{body}"
    );
}
