//! The reports about one file beyond failures and rejections (imported, preview, not importable,
//! held, approval for nothing held), rejected files' header fixes and corrected file, and the
//! results folder's summary: subjects, key lines, and plain words only.

use opscom_mail::{
    ChangeCounts, ComposeOptions, FailureCsv, FailureCsvWriter, FailureSummary, HeaderSuggestion,
    HeldReport, ImportedReport, NotImportableReport, NotImportableWhat, OutgoingMessage,
    PreviewReport, RejectedReport, Report, SignalNotHeldReport, compose, fixed_file_name,
    summary_text,
};
use opscom_testkit::ReceivedMessage;

use crate::common::{date, envelope, roster_report, strings};

fn mail(report: &Report) -> (OutgoingMessage, ReceivedMessage) {
    let m = compose(report, &envelope(), "claim-1", &ComposeOptions::at(date())).unwrap();
    let parsed = ReceivedMessage::parse(m.raw().to_vec()).unwrap();
    (m, parsed)
}

/// The text a client reads: no command to run, no jargon.
fn assert_plain(text: &str) {
    for word in [
        "`", "$ ", "sudo", "cargo", "command", "terminal", "shell", "chmod", "touch ", "mv ",
        "rm ", "errno", "EACCES", "symlink", "FIFO", "stack", "panic",
    ] {
        assert!(!text.contains(word), "{word:?} in:\n{text}");
    }
}

fn imported(after_delay: bool, unchanged: u64) -> Report {
    Report::Imported(ImportedReport {
        file_name: "roster.csv".into(),
        rows_total: 1204,
        rows_sent: 1204 - unchanged,
        rows_unchanged: unchanged,
        after_delay,
    })
}

fn preview(change: Option<ChangeCounts>) -> Report {
    let header = strings(&["unique_id", "email"]);
    let mut csv = FailureCsvWriter::new(Vec::new(), &header).unwrap();
    let mut summary = FailureSummary::new();
    for line in 2..26 {
        let reason = "email \"x@\": not a valid e-mail address";
        csv.write_failure(line, &strings(&["s", "x@"]), reason)
            .unwrap();
        summary.add("invalid e-mail address", line, reason);
    }
    Report::Preview(PreviewReport {
        file_name: "roster.csv".into(),
        rows_total: 1204,
        rows_would_send: 1180,
        rows_failed: 24,
        summary,
        failure_csv: Some(FailureCsv::Bytes(csv.finish().unwrap())),
        change,
    })
}

fn held(files_waiting: Vec<String>) -> Report {
    Report::Held(HeldReport {
        file_name: "roster.csv".into(),
        would_change: 3100,
        known_users: 5000,
        percent_limit: 20.0,
        examples: strings(&["1001", "1002"]),
        held_as: "roster.csv".into(),
        files_waiting,
    })
}

fn not_importable(what: NotImportableWhat) -> Report {
    Report::NotImportable(NotImportableReport {
        file_name: "roster.xlsx".into(),
        what,
        moved_to: "roster.20261103T101500Z.xlsx".into(),
    })
}

fn rejected_with_fixes(fixed: Option<FailureCsv>) -> Report {
    Report::Rejected(RejectedReport {
        file_name: "roster.csv".into(),
        reason: "the header line has column names that are not accepted".into(),
        fix: Some("rename the columns as shown below".into()),
        line: Some(1),
        excel_damage: false,
        header_fixes: vec![
            HeaderSuggestion {
                given: "First Name".into(),
                closest: strings(&["first_name"]),
            },
            HeaderSuggestion {
                given: "Colour".into(),
                closest: Vec::new(),
            },
        ],
        fixed_csv: fixed,
        preview: false,
    })
}

#[test]
fn imported_says_all_users_were_imported_with_the_counts() {
    let (m, p) = mail(&imported(false, 0));
    assert_eq!(m.subject(), "roster.csv: all 1,204 users imported");
    assert_eq!(p.header("X-OPSCOM-Report").as_deref(), Some("imported"));
    let body = p.text_body();
    assert!(
        body.contains("All 1,204 users in roster.csv were imported into OPSCOM."),
        "{body}"
    );
    assert!(body.contains("  Imported:      1,204\n"), "{body}");
    assert!(!body.contains("Unchanged"), "{body}");
    assert!(!body.contains("delayed"), "{body}");
    assert!(p.attachments().is_empty());
    assert_plain(&body);

    let (_, p) = mail(&imported(false, 24));
    let body = p.text_body();
    assert!(
        body.contains("1,180 were imported, and 24 were already up to date"),
        "{body}"
    );
    assert!(
        body.contains("Unchanged:     24 (the same as in the last import"),
        "{body}"
    );
}

#[test]
fn imported_after_a_delay_says_the_delayed_file_is_now_imported() {
    let (m, p) = mail(&imported(true, 0));
    assert_eq!(m.subject(), "roster.csv: imported after the delay");
    let body = p.text_body();
    assert!(
        body.starts_with(
            "roster.csv, the file whose import was delayed earlier, has now been imported into OPSCOM."
        ),
        "{body}"
    );
    assert_plain(&body);
}

#[test]
fn failures_show_unchanged_rows_and_the_delay_only_when_there_are_some() {
    let dir = tempfile::tempdir().unwrap();
    let (report, _) = roster_report(dir.path());
    let (_, p) = mail(&Report::Failures(report.clone()));
    let body = p.text_body();
    assert!(
        !body.contains("Unchanged") && !body.contains("delayed"),
        "{body}"
    );

    let mut later = report;
    later.rows_unchanged = 40;
    later.after_delay = true;
    let (m, p) = mail(&Report::Failures(later));
    assert_eq!(m.subject(), "roster.csv: 3 of 120 users not imported");
    let body = p.text_body();
    assert!(
        body.contains("  Unchanged:     40 (the same as in the last import, so not sent again)\n"),
        "{body}"
    );
    assert!(
        body.contains("This is the file whose import was delayed earlier"),
        "{body}"
    );
    assert_plain(&body);
}

#[test]
fn a_preview_is_clearly_not_an_import() {
    let change = ChangeCounts {
        new: 10,
        changed: 30,
        unchanged: 1140,
    };
    let (m, p) = mail(&preview(Some(change)));
    assert_eq!(
        m.subject(),
        "Preview of roster.csv: 1,180 users would be imported, 24 would fail"
    );
    assert!(m.subject().starts_with("Preview"));
    assert_eq!(p.header("X-OPSCOM-Report").as_deref(), Some("preview"));
    let body = p.text_body();
    for line in [
        "nothing was sent to OPSCOM and nothing was changed in OPSCOM",
        "  Users in file:     1,204\n",
        "  Would be imported: 1,180\n",
        "  Would fail:        24\n",
        "COMPARED WITH THE LAST IMPORT",
        "  New users: 10\n",
        "  Changed:   30\n",
        "  Unchanged: 1,140\n",
        "WHY THEY WOULD FAIL",
        "invalid e-mail address: 24 users",
        "roster-failed.csv lists the users that would fail",
        "upload it to your main upload folder, not to the preview folder",
        "preview/.bak",
    ] {
        assert!(body.contains(line), "{line:?} missing:\n{body}");
    }
    assert!(!body.contains("were not imported"), "{body}");
    let attachments = p.attachments();
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0].name.as_deref(), Some("roster-failed.csv"));
    assert_plain(&body);

    // Without a comparison, no such section; the subject still differs from any import's.
    let (m2, p2) = mail(&preview(None));
    assert!(!p2.text_body().contains("COMPARED WITH"));
    let dir = tempfile::tempdir().unwrap();
    let (failures, _) = roster_report(dir.path());
    let (import, _) = mail(&Report::Failures(failures));
    let (ok, _) = mail(&imported(false, 0));
    for other in [import.subject(), ok.subject()] {
        assert_ne!(m2.subject(), other);
        assert!(!other.starts_with("Preview"));
    }
    assert_ne!(m.message_id(), import.message_id());
}

#[test]
fn a_clean_preview_says_all_would_be_imported() {
    let report = Report::Preview(PreviewReport {
        file_name: "roster.csv".into(),
        rows_total: 1204,
        rows_would_send: 1204,
        rows_failed: 0,
        summary: FailureSummary::new(),
        failure_csv: None,
        change: None,
    });
    let (m, p) = mail(&report);
    assert_eq!(
        m.subject(),
        "Preview of roster.csv: all 1,204 users would be imported"
    );
    assert!(p.attachments().is_empty());
    assert!(!p.text_body().contains("WHY"));
}

#[test]
fn files_that_cannot_be_imported_get_the_fix_for_their_kind() {
    let save_as = "File > Save As > \"CSV UTF-8 (Comma delimited)\"";
    let cases = [
        (
            NotImportableWhat::Spreadsheet,
            "roster.xlsx: not imported, it is not a CSV file",
            vec!["is a spreadsheet", save_as, "then upload the .csv file"],
        ),
        (
            NotImportableWhat::Text,
            "roster.xlsx: not imported, it is not a CSV file",
            vec!["is a text file", "rename it", save_as],
        ),
        (
            NotImportableWhat::OtherName,
            "roster.xlsx: not imported, it is not a CSV file",
            vec!["does not end in .csv", save_as],
        ),
        (
            NotImportableWhat::Other,
            "roster.xlsx: not imported, it is not a CSV file",
            vec![save_as],
        ),
        (
            NotImportableWhat::TooLarge {
                size: 300 * 1024 * 1024,
                limit: 200 * 1024 * 1024,
            },
            "roster.xlsx: not imported, the file is too large",
            vec![
                "is 300 MB, more than the 200 MB",
                "Split it into several files of less than 200 MB",
            ],
        ),
        (
            NotImportableWhat::Symlink,
            "roster.xlsx: not imported, it is a link, not a file",
            vec![
                "a link (a shortcut)",
                "Upload the CSV file itself",
                "by mistake",
            ],
        ),
        (
            NotImportableWhat::Directory,
            "roster.xlsx: not imported, it is a folder, not a file",
            vec!["is a folder", "Upload the CSV file itself"],
        ),
        (
            NotImportableWhat::Fifo,
            "roster.xlsx: not imported, it is not a regular file",
            vec!["not a regular file", "Upload the CSV file itself"],
        ),
    ];
    for (what, subject, lines) in cases {
        let (m, p) = mail(&not_importable(what.clone()));
        assert_eq!(m.subject(), subject, "{what:?}");
        assert_eq!(
            p.header("X-OPSCOM-Report").as_deref(),
            Some("not-importable")
        );
        let body = p.text_body();
        for line in lines {
            assert!(body.contains(line), "{what:?}: {line:?} missing:\n{body}");
        }
        assert!(
            body.contains("moved, unchanged, to the .bak folder inside your upload folder, as roster.20261103T101500Z.xlsx"),
            "{body}"
        );
        assert_plain(&body);
    }
}

#[test]
fn a_held_import_says_why_and_how_to_release_or_drop_it() {
    let (m, p) = mail(&held(strings(&["later.csv", "later2.csv"])));
    assert_eq!(
        m.subject(),
        "roster.csv: import on hold, it would change 62% of your users"
    );
    assert_eq!(p.header("X-OPSCOM-Report").as_deref(), Some("held"));
    let body = p.text_body();
    for line in [
        "it would change 3,100 of the 5,000 users already in OPSCOM (62%), more than the 20%",
        "Nothing was sent to OPSCOM",
        "a column shifted",
        "  1001\n  1002\n",
        "upload an empty file named roster.csv.approve to your upload folder",
        "upload an empty file named roster.csv.discard",
        "these files wait behind it:\n  later.csv\n  later2.csv\n",
    ] {
        assert!(body.contains(line), "{line:?} missing:\n{body}");
    }
    assert_plain(&body);

    let (_, p) = mail(&held(Vec::new()));
    assert!(
        p.text_body()
            .contains("the files you upload meanwhile wait behind it"),
        "{}",
        p.text_body()
    );
}

#[test]
fn an_approval_for_nothing_held_is_reported_as_ignored() {
    let report = Report::SignalNotHeld(SignalNotHeldReport {
        signal_name: "rooster.csv.approve".into(),
        target: "rooster.csv".into(),
        held: strings(&["roster.csv"]),
    });
    let (m, p) = mail(&report);
    assert_eq!(
        m.subject(),
        "rooster.csv.approve: ignored, rooster.csv is not on hold"
    );
    assert_eq!(
        p.header("X-OPSCOM-Report").as_deref(),
        Some("signal-not-held")
    );
    let body = p.text_body();
    assert!(body.contains("it had no effect. It was removed."), "{body}");
    assert!(
        body.contains("The imports on hold now are:\n  roster.csv\n"),
        "{body}"
    );
    assert_plain(&body);

    let report = Report::SignalNotHeld(SignalNotHeldReport {
        signal_name: "roster.csv.discard".into(),
        target: "roster.csv".into(),
        held: Vec::new(),
    });
    let (_, p) = mail(&report);
    assert!(p.text_body().contains("No import is on hold at the moment"));
}

#[test]
fn a_rejected_header_gets_the_closest_names_and_the_corrected_file() {
    let fixed = b"\xEF\xBB\xBFfirst_name,colour\r\nAnn,red\r\n".to_vec();
    let (m, p) = mail(&rejected_with_fixes(Some(FailureCsv::Bytes(fixed.clone()))));
    assert_eq!(m.subject(), "roster.csv: file rejected, no users imported");
    let body = p.text_body();
    assert!(
        body.contains("  \"First Name\" is not an accepted column name; closest: first_name\n"),
        "{body}"
    );
    assert!(
        body.contains("  \"Colour\" is not an accepted column name\n"),
        "{body}"
    );
    assert!(
        body.contains(
            "We attached roster-fixed.csv: your file with only the header line corrected. \
             Check it and upload it to the same folder to import it."
        ),
        "{body}"
    );
    let attachments = p.attachments();
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0].name.as_deref(), Some("roster-fixed.csv"));
    assert_eq!(attachments[0].data, fixed);
    assert_eq!(fixed_file_name("Roster.CSV"), "Roster-fixed.csv");
    assert_plain(&body);

    // Too large to attach whole: not attached (a cut file would lose users), fix by hand.
    let big: Vec<u8> = (0..20_000)
        .flat_map(|i| format!("user{i},{}\r\n", i * 7919 % 10007).into_bytes())
        .collect();
    let options = ComposeOptions {
        limits: opscom_mail::AttachmentLimits {
            compress_above: 1000,
            max_attachment: 2000,
        },
        ..ComposeOptions::at(date())
    };
    let m = compose(
        &rejected_with_fixes(Some(FailureCsv::Bytes(big))),
        &envelope(),
        "c",
        &options,
    )
    .unwrap();
    let p = ReceivedMessage::parse(m.raw().to_vec()).unwrap();
    assert!(p.attachments().is_empty());
    assert!(p.text_body().contains("too large to send back by e-mail"));
    assert!(!p.text_body().contains("We attached"));
}

#[test]
fn summaries_give_the_time_counts_reasons_and_fix_without_the_mail_footer() {
    let handled: jiff::Timestamp = "2026-11-03T10:15:42Z".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (failures, _) = roster_report(dir.path());
    let cases: Vec<(Report, Vec<&str>)> = vec![
        (
            Report::Failures(failures),
            vec![
                "Result:   roster.csv: 3 of 120 users not imported",
                "  Users in file: 120\n",
                "  Imported:      117\n",
                "  Not imported:  3\n",
                "invalid e-mail address: 2 users",
                "  line 14: email \"jane@\": not a valid e-mail address",
                "WHAT TO DO NEXT",
            ],
        ),
        (
            imported(false, 24),
            vec![
                "Result:   roster.csv: all 1,204 users imported",
                "  Imported:      1,180\n",
                "  Unchanged:     24",
            ],
        ),
        (
            rejected_with_fixes(None),
            vec![
                "Problem (line 1): the header line has column names",
                "How to fix it: rename the columns",
                "\"First Name\" is not an accepted column name; closest: first_name",
            ],
        ),
        (
            preview(None),
            vec![
                "Result:   Preview of roster.csv",
                "Would fail:        24",
                "WHY THEY WOULD FAIL",
                "main upload folder",
            ],
        ),
        (
            held(Vec::new()),
            vec!["import on hold", "roster.csv.approve", "roster.csv.discard"],
        ),
        (
            not_importable(NotImportableWhat::Spreadsheet),
            vec!["is a spreadsheet", "CSV UTF-8 (Comma delimited)"],
        ),
    ];
    for (report, lines) in cases {
        let text = summary_text(&report, handled);
        assert!(
            text.starts_with("OPSCOM IMPORT SUMMARY\n\nFile:     "),
            "{text}"
        );
        assert!(text.contains("Handled:  2026-11-03 10:15 UTC\n"), "{text}");
        for line in lines {
            assert!(text.contains(line), "{line:?} missing:\n{text}");
        }
        assert!(
            !text.contains("-- \n") && !text.contains("sent automatically"),
            "{text}"
        );
        assert!(
            !text.contains("THE ATTACHED FILE") && !text.contains("We attached"),
            "{text}"
        );
        assert_plain(&text);
    }
}
