//! The reason given for a repeated `unique_id` must hold whether or not its first row is valid.

use std::io::Cursor;

use opscom_csv::{ImportFile, ReadOptions, RowOutcome};

#[test]
fn a_repeated_id_never_claims_that_a_failed_first_row_was_imported() {
    // Line 2 fails on its own (a bad e-mail); line 3 repeats its id.
    let csv = "unique_id,login_source,email\n\
               u1,OPSCOM,not-an-address\n\
               u1,OPSCOM,u1@example.org\n";
    let file =
        ImportFile::open(Cursor::new(csv), "roster.csv", &ReadOptions::default()).expect("a CSV");
    let reasons: Vec<(u64, String)> = file
        .map(|row| match row.expect("readable") {
            RowOutcome::Invalid(row) => (row.line, row.reason()),
            RowOutcome::Valid(v) => panic!("line {} should not be valid", v.line),
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    let (line, reason) = &reasons[1];
    assert_eq!(*line, 3);
    assert!(reason.contains("already appears on line 2"), "{reason}");
    assert!(
        !reason.contains("only the first occurrence is imported"),
        "the first row failed, so it was not imported: {reason}"
    );
    assert!(
        reason.contains("not at all when that row fails") && reason.contains("merge this row"),
        "{reason}"
    );
}
