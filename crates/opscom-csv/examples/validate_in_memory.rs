//! Validates a CSV held in memory (`std::io::Cursor`) and prints each problem as `LINE: reason`.
//!
//! Run with `cargo run -p opscom-csv --example validate_in_memory`. Only `opscom-csv` is needed:
//! no runtime, no network, no file.

use std::io::Cursor;

use opscom_csv::{ImportFile, ReadOptions, RowOutcome, schema, validate_value};

const ROSTER: &str = "\
unique_id,login_source,first_name,email,date_of_birth
s1001,OPSCOM,Ann,ann@example.org,1990-01-15
s1002,OPSCOM,Bob,bob@,1991-02-30
s1003,,Carol,carol@example.org,
s1001,OPSCOM,Ann again,ann2@example.org,1/15/1990
";

fn main() -> Result<(), opscom_csv::FileError> {
    // A whole file refused (a spreadsheet, a `;` delimiter, an unknown header…) is an `Err`.
    let file = ImportFile::open(Cursor::new(ROSTER), "roster.csv", &ReadOptions::default())?;
    let (mut valid, mut invalid) = (0, 0);
    for row in file {
        match row? {
            RowOutcome::Valid(_) => valid += 1,
            RowOutcome::Invalid(row) => {
                invalid += 1;
                println!("{}: {}", row.line, row.reason());
            }
        }
    }
    println!("{valid} valid, {invalid} invalid");

    // One value, without a file: the same rules as a cell of the column.
    if let Some(email) = schema::lookup("email") {
        for problem in validate_value(email, "email", "dan@localhost") {
            println!("value `dan@localhost`: {problem}");
        }
    }
    Ok(())
}
