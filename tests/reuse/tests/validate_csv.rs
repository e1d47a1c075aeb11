//! Reuse path 1: validate a CSV held in memory with `opscom-csv` alone (no runtime, no network).

use std::io::Cursor;

use opscom_csv::{
    ErrorKind, ImportFile, ReadOptions, RowOutcome, RowProblem, schema, validate_value,
};

const ROSTER: &str = "\
unique_id,login_source,email,date_of_birth
s1,OPSCOM,ann@example.org,1990-01-15
s2,OPSCOM,bob@,1990-01-15
s3,,carol@example.org,
s1,OPSCOM,ann2@example.org,1/15/1990
";

/// Every problem of `csv` as `LINE: reason`, and the number of valid rows.
fn problems(csv: &str) -> (Vec<String>, usize) {
    let file = ImportFile::open(Cursor::new(csv), "roster.csv", &ReadOptions::default())
        .expect("the file is a CSV");
    let mut lines = Vec::new();
    let mut valid = 0;
    for row in file {
        match row.expect("readable") {
            RowOutcome::Valid(_) => valid += 1,
            RowOutcome::Invalid(row) => lines.push(format!("{}: {}", row.line, row.reason())),
        }
    }
    (lines, valid)
}

#[test]
fn every_problem_of_an_in_memory_csv_is_listed_with_its_line() {
    let (lines, valid) = problems(ROSTER);
    assert_eq!(valid, 1);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_eq!(lines[0], "3: `email` is not a valid e-mail address: `bob@`");
    assert_eq!(lines[1], "4: `login_source` is required but empty");
    assert!(
        lines[2].starts_with("5: `unique_id` `s1` already appears on line 2"),
        "{}",
        lines[2]
    );
    assert!(lines[2].contains("not `1/15/1990`"), "{}", lines[2]);
}

#[test]
fn a_file_that_is_no_csv_of_users_is_refused_whole_with_a_fix() {
    let error = ImportFile::open(
        Cursor::new("unique_id;login_source\ns1;OPSCOM\n"),
        "roster.csv",
        &ReadOptions::default(),
    )
    .expect_err("a `;` file is refused");
    let ErrorKind::Rejected(rejection) = error.kind() else {
        panic!("expected a rejection, got {error:?}")
    };
    assert!(!rejection.fix.is_empty(), "{rejection:?}");
}

#[test]
fn one_value_is_validated_without_a_file() {
    let email = schema::lookup("email").expect("email is an attribute");
    assert!(validate_value(email, "email", "ann@example.org").is_empty());
    assert!(matches!(
        &validate_value(email, "Work e-mail", "ann@")[..],
        [RowProblem::NotEmail { column, .. }] if column == "Work e-mail"
    ));
    let unique_id = schema::lookup("unique_id").expect("unique_id is an attribute");
    assert!(matches!(
        &validate_value(unique_id, "unique_id", "1.23E+11")[..],
        [RowProblem::ScientificNotation { .. }]
    ));
}
