//! `validate_value` (one value of one attribute) agrees with the reader's validation of a cell.

use std::io::Cursor;

use opscom_csv::{ImportFile, ReadOptions, RowOutcome, RowProblem, schema, validate_value};

const VALUES: &[&str] = &[
    "",
    "   ",
    "x",
    " padded ",
    "ann@example.org",
    "ann@",
    "ann@localhost",
    "MA",
    "Mass",
    "m1",
    "1990-01-15",
    "1990-02-30",
    "1/15/1990",
    "12345",
    "12345678901",
    "1.23E+11",
    "4E+15",
    "OPSCOM",
    "Zoë, \"the\" 2nd",
];

/// The problems the reader finds in the column `key` of a row whose `key` cell is `value`.
fn reader_problems(key: &str, value: &str) -> Vec<RowProblem> {
    let mut header = vec!["unique_id", "login_source"];
    if !header.contains(&key) {
        header.push(key);
    }
    let cells: Vec<&str> = header
        .iter()
        .map(|column| match *column {
            c if c == key => value,
            "unique_id" => "u1",
            _ => "OPSCOM",
        })
        .collect();
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(&header).unwrap();
    writer.write_record(&cells).unwrap();
    let bytes = writer.into_inner().unwrap();
    let mut file = ImportFile::open(Cursor::new(bytes), "t.csv", &ReadOptions::default())
        .unwrap_or_else(|e| panic!("{key}={value:?}: {e}"));
    match file.next_row() {
        Some(Ok(RowOutcome::Valid(_))) => Vec::new(),
        Some(Ok(RowOutcome::Invalid(row))) => row
            .problems
            .into_iter()
            .filter(|p| p.column() == Some(key))
            .collect(),
        other => panic!("{key}={value:?}: {other:?}"),
    }
}

#[test]
fn one_value_is_judged_as_the_reader_judges_its_cell() {
    let mut checked = 0;
    for attr in schema::ATTRIBUTES {
        for value in VALUES {
            assert_eq!(
                validate_value(attr, attr.key, value),
                reader_problems(attr.key, value),
                "{}={value:?}",
                attr.key
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked}");
}

#[test]
fn problems_name_the_column_given() {
    let birth = schema::lookup("date_of_birth").expect("date_of_birth is an attribute");
    let problems = validate_value(birth, "Date of birth", "1/15/1990");
    assert!(
        matches!(&problems[..], [RowProblem::NotDate { column, excel: true, .. }] if column == "Date of birth"),
        "{problems:?}"
    );
    let optional = schema::ATTRIBUTES
        .iter()
        .find(|a| !a.required)
        .expect("an optional attribute");
    assert!(validate_value(optional, optional.key, "  ").is_empty());
}
