//! Data-driven tests: one fixture file per rule under `tests/fixtures/`, its expected outcome in
//! the tables below.

use opscom_csv::{Encoding, FileError, ImportFile, ReadOptions, RejectionKind, RowOutcome};
use std::fs::File;
use std::path::PathBuf;

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Everything reading a fixture gives: the open error, or the rows and the error at the end.
struct Read {
    file: Option<(Encoding, Vec<String>, Option<bool>)>,
    rows: Vec<RowOutcome>,
    error: Option<FileError>,
}

fn read(name: &str, options: &ReadOptions) -> Read {
    let f = File::open(path(name)).expect("fixture exists");
    let mut file = match ImportFile::open(f, name, options) {
        Ok(file) => file,
        Err(e) => {
            return Read {
                file: None,
                rows: Vec::new(),
                error: Some(e),
            };
        }
    };
    let mut rows = Vec::new();
    let mut error = None;
    for outcome in file.by_ref() {
        match outcome {
            Ok(row) => rows.push(row),
            Err(e) => error = Some(e),
        }
    }
    assert!(file.next_row().is_none(), "fused after the end");
    Read {
        file: Some((
            file.encoding(),
            file.header_raw().to_vec(),
            file.ended_with_line_terminator(),
        )),
        rows,
        error,
    }
}

/// A row's expected outcome: its line, and `None` when valid or the substrings of its reason.
type RowExpect = (u64, Option<&'static [&'static str]>);

fn check_rows(name: &str, got: &[RowOutcome], want: &[RowExpect]) {
    let summary: Vec<(u64, Option<String>)> = got
        .iter()
        .map(|r| match r {
            RowOutcome::Valid(v) => (v.line, None),
            RowOutcome::Invalid(i) => (i.line, Some(i.reason())),
        })
        .collect();
    assert_eq!(got.len(), want.len(), "{name}: {summary:#?}");
    for (i, ((line, reason), (want_line, want_reason))) in summary.iter().zip(want).enumerate() {
        assert_eq!(line, want_line, "{name} row {i}: {summary:#?}");
        assert_eq!(got[i].record(), i as u64 + 1, "{name}: record index");
        match (reason, want_reason) {
            (None, None) => {}
            (Some(reason), Some(parts)) => {
                for part in *parts {
                    assert!(
                        reason.contains(part),
                        "{name} line {line}: {reason:?} lacks {part:?}"
                    );
                }
            }
            _ => panic!("{name} line {line}: got {reason:?}, want {want_reason:?}"),
        }
    }
}

#[test]
fn files_that_read() {
    #[rustfmt::skip]
    let table: &[(&str, Encoding, &[RowExpect])] = &[
        ("valid_lf.csv", Encoding::Utf8, &[(2, None), (3, None), (4, None)]),
        ("utf8_bom_excel.csv", Encoding::Utf8Bom, &[(2, None), (3, None)]),
        ("crlf_quoted_newlines.csv", Encoding::Utf8, &[
            (2, None), (3, None), (6, None),
            (8, Some(&["`unique_id` is required but empty"])),
            (10, None),
        ]),
        ("windows1252_late.csv", Encoding::Windows1252, &[]),
        ("utf16le_bom.csv", Encoding::Utf16Le, &[(2, None), (3, None)]),
        ("utf16be_bom.csv", Encoding::Utf16Be, &[(2, None), (3, None)]),
        ("row_rules.csv", Encoding::Utf8, &[
            (2, None),
            (3, Some(&["`first_name` is 51 characters long; the limit is 50"])),
            (4, Some(&["`state` must be a 2-letter province/state abbreviation", "`Mass.`"])),
            (5, Some(&["`date_of_birth` is `2023-02-29`, a date that does not exist"])),
            (6, Some(&["`date_of_birth` must be a date written YYYY-MM-DD, not `1/15/1990`", "Excel"])),
            (7, Some(&["`user_type_id` must be a numeric id (1 to 10 digits), not `abc`"])),
            (8, Some(&["`user_type_id`", "scientific notation"])),
            (9, Some(&["`email` is not a valid e-mail address: `jane@`"])),
            (10, Some(&["`unique_id` is `1.23E+11`", "scientific notation"])),
            (11, Some(&["`unique_id` `1` already appears on line 2"])),
            (13, Some(&["the row has 10 values but the header has 8 columns; extra values: `extra`, `more`"])),
            (14, Some(&["the row has 3 values but the header has 8 columns"])),
            (15, Some(&[
                "`unique_id` is required but empty",
                "`login_source` is required but empty",
                "`state` must be a 2-letter",
                "`date_of_birth` is `1990-13-01`",
                "`user_type_id` must be a numeric id",
                "`email` is not a valid e-mail address: `x@y`",
            ])),
            (16, None),
            (17, Some(&["`unique_id` `1` already appears on line 2"])),
        ]),
        ("import_error_roundtrip.csv", Encoding::Utf8, &[(2, None), (3, None)]),
        ("cr_only.csv", Encoding::Utf8, &[(2, None), (4, None), (6, Some(&["`unique_id` is required"]))]),
        ("sep_hint.csv", Encoding::Utf8, &[(3, None), (4, Some(&["`unique_id` is required"]))]),
        ("no_final_newline.csv", Encoding::Utf8, &[(2, None), (3, None)]),
        // Empty header cells are columns without a header: ignored while empty.
        ("empty_header_cell.csv", Encoding::Utf8, &[(2, None)]),
        ("empty_header_cells_excel.csv", Encoding::Utf8, &[(2, None), (3, None), (4, None)]),
        ("value_under_empty_header.csv", Encoding::Utf8, &[
            (2, None),
            (3, Some(&["a value in column 7, which has no header: `xyz`"])),
            (4, None),
            (5, Some(&["a value in column 3, which has no header: `note`"])),
            (7, Some(&["the row has 6 values but the header has 7 columns"])),
            (8, Some(&[
                "`email` is not a valid e-mail address: `f@`",
                "a value in column 6, which has no header: `two lines`",
            ])),
            (10, None),
        ]),
        ("import_error_and_empty_header.csv", Encoding::Utf8, &[
            (2, None),
            (3, Some(&["a value in column 4, which has no header: `oops`"])),
        ]),
    ];
    for (name, encoding, rows) in table {
        let got = read(name, &ReadOptions::default());
        assert!(
            got.error.is_none(),
            "{name}: {:?}",
            got.error.map(|e| e.to_string())
        );
        let (enc, _, _) = got.file.as_ref().unwrap();
        assert_eq!(enc, encoding, "{name}");
        if !rows.is_empty() {
            check_rows(name, &got.rows, rows);
        }
    }
}

fn valid(row: &RowOutcome) -> &opscom_csv::ValidRow {
    match row {
        RowOutcome::Valid(v) => v,
        RowOutcome::Invalid(i) => panic!("line {} invalid: {}", i.line, i.reason()),
    }
}

#[test]
fn values_are_decoded_trimmed_and_sent_only_when_not_empty() {
    let got = read("valid_lf.csv", &ReadOptions::default());
    let row = valid(&got.rows[1]);
    assert_eq!(&row.raw[2], "  John  ");
    let fields: Vec<_> = row.fields().collect();
    assert_eq!(
        fields,
        [
            ("unique_id", "1002"),
            ("login_source", "OPSCOM"),
            ("first_name", "John"),
            ("last_name", "Smith"),
            ("province", "ON")
        ]
    );
    assert_eq!(row.unique_id(), "1002");
    assert_eq!(valid(&got.rows[2]).value("first_name"), Some("Zoë"));
    assert_eq!(got.file.unwrap().2, Some(true));
}

#[test]
fn windows_1252_bytes_late_in_the_file_are_read_correctly() {
    let got = read("windows1252_late.csv", &ReadOptions::default());
    assert_eq!(got.rows.len(), 3002);
    assert!(got.rows.iter().all(|r| matches!(r, RowOutcome::Valid(_))));
    let obrien = valid(&got.rows[3000]);
    assert_eq!(
        (obrien.line, obrien.value("last_name")),
        (3002, Some("O’Brien"))
    );
    let zoe = valid(&got.rows[3001]);
    assert_eq!(zoe.value("first_name"), Some("Zoë"));
    assert_eq!(zoe.value("last_name"), Some("Café"));
    // CRLF: the last cell carries no CR.
    assert_eq!(zoe.raw.iter().last(), Some("1"));
}

#[test]
fn utf16_and_bom_files_decode_to_the_same_text() {
    for name in ["utf16le_bom.csv", "utf16be_bom.csv"] {
        let got = read(name, &ReadOptions::default());
        assert_eq!(
            got.file.as_ref().unwrap().1,
            ["unique_id", "login_source", "first_name", "city"]
        );
        assert_eq!(
            valid(&got.rows[0]).value("city"),
            Some("Montréal"),
            "{name}"
        );
        assert_eq!(
            valid(&got.rows[1]).value("first_name"),
            Some("日本"),
            "{name}"
        );
        assert_eq!(
            valid(&got.rows[1]).value("city"),
            Some("Québec, QC"),
            "{name}"
        );
    }
    let got = read("utf8_bom_excel.csv", &ReadOptions::default());
    // BOM removed, spaces kept: the failure CSV repeats the header as uploaded.
    assert_eq!(
        got.file.unwrap().1,
        [" unique_id ", " login_source ", "first_name", "email"]
    );
    assert_eq!(valid(&got.rows[1]).value("first_name"), Some("O’Brien"));
}

#[test]
fn quoted_commas_quotes_and_newlines() {
    let got = read("crlf_quoted_newlines.csv", &ReadOptions::default());
    assert_eq!(
        valid(&got.rows[0]).value("street"),
        Some("12 Main St, Apt 4")
    );
    let bob = valid(&got.rows[1]);
    assert_eq!(
        bob.value("street"),
        Some("line one\r\nline two\r\nline three")
    );
    assert_eq!(bob.value("first_name"), Some("Bob \"Bobby\" Jr"));
}

#[test]
fn import_error_column_is_ignored_and_neutralised_cells_restored() {
    let got = read("import_error_roundtrip.csv", &ReadOptions::default());
    let first = valid(&got.rows[0]);
    assert_eq!(first.value("first_name"), Some("=SUM(A1)"));
    assert_eq!(first.value("last_name"), Some("-Smith"));
    assert!(first.fields().all(|(k, _)| k != "import_error"));
    let second = valid(&got.rows[1]);
    assert_eq!(second.value("first_name"), Some("''+x"));
    assert_eq!(second.value("last_name"), Some("O'Brien"));
}

#[test]
fn columns_without_a_header_are_ignored_until_a_row_fills_one() {
    let got = read("empty_header_cells_excel.csv", &ReadOptions::default());
    // The failure CSV repeats the header as uploaded, empty cells included.
    assert_eq!(
        got.file.unwrap().1,
        ["unique_id", "login_source", "email", "", ""]
    );
    let row = valid(&got.rows[1]);
    assert_eq!(row.raw, vec!["2", "OPSCOM", "john@acme.edu", " ", ""]);
    assert_eq!(
        row.fields().collect::<Vec<_>>(),
        [
            ("unique_id", "2"),
            ("login_source", "OPSCOM"),
            ("email", "john@acme.edu")
        ]
    );

    let got = read("value_under_empty_header.csv", &ReadOptions::default());
    assert!(got.error.is_none());
    let RowOutcome::Invalid(row) = &got.rows[1] else {
        panic!("{:?}", got.rows[1])
    };
    // The one problem of the row, in plain words; the row's cells are kept as uploaded.
    assert_eq!(
        row.reason(),
        "a value in column 7, which has no header: `xyz`"
    );
    assert_eq!(
        row.raw,
        vec!["2", "OPSCOM", "", "b@acme.edu", "", "", "xyz"]
    );
    assert_eq!(row.problems[0].category(), "value_without_header");
    assert_eq!(row.problems[0].column(), None);
    assert!(!row.looks_like_excel_damage());
    let json = serde_json::to_value(&row.problems[0]).unwrap();
    assert_eq!(json["kind"], "value_without_header");
    assert_eq!(json["column"], 7);
    assert_eq!(json["value"], "xyz");
    let valid_ids: Vec<&str> = got
        .rows
        .iter()
        .filter_map(|r| match r {
            RowOutcome::Valid(v) => Some(v.unique_id()),
            RowOutcome::Invalid(_) => None,
        })
        .collect();
    assert_eq!(valid_ids, ["1", "3", "7"]);
}

#[test]
fn a_file_cut_off_without_its_line_end_is_flagged() {
    let got = read("no_final_newline.csv", &ReadOptions::default());
    assert_eq!(got.file.unwrap().2, Some(false));
    let got = read("header_only.csv", &ReadOptions::default());
    assert_eq!(got.file.unwrap().2, Some(true));
}

/// A fixture rejected whole: file, options, kind, line, substrings of the message.
type Rejected<'a> = (
    &'a str,
    &'a ReadOptions,
    RejectionKind,
    Option<u64>,
    &'a [&'a str],
);

#[test]
fn files_rejected_whole() {
    let small = ReadOptions::default().max_record_bytes(1024);
    let limited = ReadOptions::default().max_file_bytes(Some(1000));
    #[rustfmt::skip]
    let table: &[Rejected<'_>] = &[
        ("semicolon.csv", &ReadOptions::default(), RejectionKind::Delimiter, Some(1), &["semicolons (`;`)", "CSV UTF-8 (Comma delimited)"]),
        ("tab.csv", &ReadOptions::default(), RejectionKind::Delimiter, Some(1), &["tabs"]),
        ("sep_semicolon_hint.csv", &ReadOptions::default(), RejectionKind::Delimiter, Some(1), &["semicolons"]),
        ("xlsx_renamed.csv", &ReadOptions::default(), RejectionKind::Spreadsheet, None, &[".xlsx", "CSV UTF-8 (Comma delimited)"]),
        ("xls_renamed.csv", &ReadOptions::default(), RejectionKind::Spreadsheet, None, &[".xls"]),
        ("binary_nul.csv", &ReadOptions::default(), RejectionKind::Binary, Some(3), &["NUL"]),
        ("stray_quote_runaway.csv", &small, RejectionKind::UnterminatedQuote, Some(3), &["Unterminated quote starting at line 3"]),
        ("stray_quote_eof.csv", &ReadOptions::default(), RejectionKind::UnterminatedQuote, Some(3), &["Unterminated quote starting at line 3"]),
        ("unknown_header.csv", &ReadOptions::default(), RejectionKind::UnknownHeader, Some(1), &[
            "Column 3: `Email` is not a column name; did you mean `email`?",
            "Column 4: `First Name` is not a column name; did you mean `first_name`?",
        ]),
        ("province_and_state.csv", &ReadOptions::default(), RejectionKind::AmbiguousHeader, Some(1), &["`province` (column 3) and `state` (column 4)"]),
        ("duplicate_header.csv", &ReadOptions::default(), RejectionKind::DuplicateHeader, Some(1), &["`email` appears twice"]),
        ("missing_required.csv", &ReadOptions::default(), RejectionKind::MissingColumn, Some(1), &["required column `login_source` is missing"]),
        ("semicolon_trailing_empty_cells.csv", &ReadOptions::default(), RejectionKind::Delimiter, Some(1), &["semicolons (`;`)"]),
        ("empty.csv", &ReadOptions::default(), RejectionKind::Empty, None, &["empty"]),
        ("bom_only.csv", &ReadOptions::default(), RejectionKind::Empty, None, &["empty"]),
        ("blank_header_line.csv", &ReadOptions::default(), RejectionKind::Empty, Some(1), &["no header row"]),
        ("header_only.csv", &ReadOptions::default(), RejectionKind::NoDataRows, None, &["no users' rows"]),
        ("only_blank_rows.csv", &ReadOptions::default(), RejectionKind::NoDataRows, None, &["no users' rows"]),
        ("too_large.csv", &limited, RejectionKind::TooLarge, None, &["the limit for this folder is 1000 bytes"]),
    ];
    for (name, options, kind, line, parts) in table {
        let got = read(name, options);
        let err = got
            .error
            .unwrap_or_else(|| panic!("{name} was not rejected"));
        assert!(!err.is_io(), "{name}: {err}");
        let rejection = err.rejection().unwrap();
        assert_eq!(rejection.kind, *kind, "{name}: {err}");
        assert_eq!(rejection.line, *line, "{name}: {err}");
        let text = err.to_string();
        assert!(text.starts_with(&format!("{name}: ")), "{text}");
        assert!(text.contains("Fix: "), "{text}");
        for part in *parts {
            assert!(text.contains(part), "{name}: {text:?} lacks {part:?}");
        }
        assert!(
            got.rows.iter().all(|r| matches!(r, RowOutcome::Valid(_))),
            "{name}"
        );
    }
}

#[test]
fn rereading_gives_identical_outcomes() {
    for name in [
        "row_rules.csv",
        "value_under_empty_header.csv",
        "windows1252_late.csv",
        "crlf_quoted_newlines.csv",
    ] {
        let a = read(name, &ReadOptions::default()).rows;
        let b = read(name, &ReadOptions::default()).rows;
        assert_eq!(a, b, "{name}");
    }
}

#[test]
fn excel_damage_is_flagged_and_summaries_serialise() {
    let got = read("row_rules.csv", &ReadOptions::default());
    let damaged: Vec<u64> = got
        .rows
        .iter()
        .filter_map(|r| match r {
            RowOutcome::Invalid(i) if i.looks_like_excel_damage() => Some(i.line),
            _ => None,
        })
        .collect();
    assert_eq!(damaged, [6, 8, 10]);
    let RowOutcome::Invalid(row) = &got.rows[1] else {
        panic!()
    };
    let json = serde_json::to_value(&row.problems[0]).unwrap();
    assert_eq!(json["kind"], "too_long");
    assert_eq!(json["column"], "first_name");
    let err = read("semicolon.csv", &ReadOptions::default())
        .error
        .unwrap();
    let json = serde_json::to_value(err.summary()).unwrap();
    assert_eq!(json["kind"], "rejected");
    assert_eq!(json["category"], "delimiter");
    assert_eq!(json["line"], 1);
    assert!(RejectionKind::Delimiter.looks_like_excel_damage());
}

#[test]
fn an_unreadable_file_is_an_io_error_naming_the_file() {
    #[derive(Debug)]
    struct Broken;
    impl std::io::Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
    impl std::io::Seek for Broken {
        fn seek(&mut self, _: std::io::SeekFrom) -> std::io::Result<u64> {
            Ok(10)
        }
    }
    let err = ImportFile::open(Broken, "x.csv", &ReadOptions::default()).unwrap_err();
    assert!(err.is_io());
    assert_eq!(err.to_string(), "x.csv: cannot read the file: disk on fire");
    assert_eq!(err.summary().kind, "io");
}

#[test]
fn reader_rows_and_errors_can_move_to_another_thread() {
    fn send<T: Send + 'static>() {}
    send::<ImportFile<File>>();
    send::<RowOutcome>();
    send::<FileError>();
}

/// Many columns without a header (Excel keeps formatted but empty columns) before and between
/// the mapped ones: every mapped value is still sent, whatever its column index.
#[test]
fn mapped_columns_after_many_unnamed_ones_are_all_sent() {
    let empties = vec![""; 40].join(",");
    let text = format!(
        "{empties},unique_id,{empties},login_source,email\r\n{empties},U1,{empties},OPSCOM,u1@example.edu\r\n"
    );
    let mut file = ImportFile::open(
        std::io::Cursor::new(text.into_bytes()),
        "wide.csv",
        &ReadOptions::default(),
    )
    .expect("opens");
    match file.next_row() {
        Some(Ok(RowOutcome::Valid(row))) => assert_eq!(
            row.fields().collect::<Vec<_>>(),
            [
                ("unique_id", "U1"),
                ("login_source", "OPSCOM"),
                ("email", "u1@example.edu")
            ]
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_headers_with_exact_fixes_give_a_corrected_copy() {
    let got = read("unknown_header.csv", &ReadOptions::default());
    let err = got.error.expect("rejected");
    let rejection = err.rejection().expect("a content rejection");
    let fixes = rejection
        .header_fixes()
        .expect("`Email` and `First Name` have exact fixes");
    let given: Vec<(usize, &str, Option<&str>)> = fixes
        .iter()
        .map(|h| (h.column, h.given.as_str(), h.exact_fix))
        .collect();
    assert_eq!(
        given,
        [
            (2, "Email", Some("email")),
            (3, "First Name", Some("first_name"))
        ]
    );
    let original = std::fs::read(path("unknown_header.csv")).unwrap();
    let mut copy = Vec::new();
    opscom_csv::fixed_header_copy(
        File::open(path("unknown_header.csv")).unwrap(),
        &mut copy,
        fixes,
    )
    .unwrap();
    let header_end = |b: &[u8]| b.iter().position(|&c| c == b'\n').unwrap() + 1;
    assert_eq!(
        &copy[..header_end(&copy)],
        b"unique_id,login_source,email,first_name\n"
    );
    assert_eq!(
        &copy[header_end(&copy)..],
        &original[header_end(&original)..],
        "every byte after the header line is the upload's"
    );
    let file = ImportFile::open(
        std::io::Cursor::new(copy),
        "fixed.csv",
        &ReadOptions::default(),
    )
    .unwrap();
    let rows: Vec<Vec<(&'static str, String)>> = file
        .map(|row| match row.unwrap() {
            RowOutcome::Valid(row) => row.fields().map(|(k, v)| (k, v.to_owned())).collect(),
            RowOutcome::Invalid(row) => panic!("{}", row.reason()),
        })
        .collect();
    assert_eq!(
        rows,
        [vec![
            ("unique_id", "1".to_owned()),
            ("login_source", "OPSCOM".to_owned()),
            ("email", "a@b.cd".to_owned()),
            ("first_name", "Ann".to_owned()),
        ]]
    );
}
