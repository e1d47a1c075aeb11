//! A record over the size limit is named for what it is: a line too long when it holds no quote,
//! an unterminated quote when a quote runs on.

use std::io::Cursor;

use opscom_csv::{ErrorKind, ImportFile, ReadOptions, RejectionKind};

const HEADER: &str = "unique_id,login_source,email\n";

/// The rejection of `csv` read with a 1 KiB record limit (every row is read).
fn rejection(csv: String) -> opscom_csv::Rejection {
    let options = ReadOptions::default().max_record_bytes(1024);
    let result = ImportFile::open(Cursor::new(csv.into_bytes()), "roster.csv", &options)
        .and_then(|file| file.collect::<Result<Vec<_>, _>>());
    match result {
        Err(e) => match e.kind() {
            ErrorKind::Rejected(r) => r.clone(),
            other => panic!("expected a rejection, got {other:?}"),
        },
        Ok(rows) => panic!("expected a rejection, read {} rows", rows.len()),
    }
}

#[test]
fn a_long_line_without_quotes_is_a_line_too_long_with_the_limit() {
    let long = format!(
        "{HEADER}u1,OPSCOM,a@example.org\nu2,OPSCOM,{}\n",
        "x".repeat(50_000)
    );
    let r = rejection(long);
    assert_eq!(r.kind, RejectionKind::LineTooLong, "{r}");
    let text = r.to_string();
    assert!(
        text.contains("Line 3 is longer than the limit of 1024 bytes"),
        "{text}"
    );
    assert!(!text.to_lowercase().contains("quote"), "{text}");
}

#[test]
fn a_line_of_very_many_columns_is_a_line_too_long() {
    let many = format!("{HEADER}u1,OPSCOM,a@example.org{}\n", ",".repeat(100_000));
    let r = rejection(many);
    assert_eq!(r.kind, RejectionKind::LineTooLong, "{r}");
}

#[test]
fn a_quote_that_runs_on_is_still_an_unterminated_quote() {
    let runaway = format!(
        "{HEADER}u1,OPSCOM,\"a@example.org\nu2,OPSCOM,b@example.org\n{}",
        "u3,OPSCOM,c@example.org\n".repeat(200)
    );
    let r = rejection(runaway);
    assert_eq!(r.kind, RejectionKind::UnterminatedQuote, "{r}");
    assert!(
        r.to_string()
            .contains("Unterminated quote starting at line 2"),
        "{r}"
    );
}
