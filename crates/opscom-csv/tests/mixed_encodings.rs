//! A file mostly in UTF-8 with some lines in Windows-1252 is refused with the fix, never read
//! with garbled names; a file wholly in one encoding still reads.

use std::io::Cursor;

use opscom_csv::{ErrorKind, ImportFile, ReadOptions, RejectionKind, RowOutcome};

const HEADER: &[u8] = b"unique_id,login_source,email,first_name\n";

fn open(bytes: Vec<u8>) -> Result<Vec<String>, opscom_csv::Rejection> {
    let file = match ImportFile::open(Cursor::new(bytes), "roster.csv", &ReadOptions::default()) {
        Ok(f) => f,
        Err(e) => match e.kind() {
            ErrorKind::Rejected(r) => return Err(r.clone()),
            other => panic!("{other:?}"),
        },
    };
    Ok(file
        .map(|row| match row.expect("readable") {
            RowOutcome::Valid(v) => format!("{:?}", v),
            RowOutcome::Invalid(r) => r.reason(),
        })
        .collect())
}

#[test]
fn utf8_lines_beside_windows_1252_lines_are_refused_with_the_fix() {
    let mut bytes = HEADER.to_vec();
    bytes.extend_from_slice("u1,OPSCOM,a@example.org,José\n".as_bytes());
    bytes.extend_from_slice(b"u2,OPSCOM,b@example.org,Jos\xe9\n");
    let r = open(bytes).expect_err("a mixed file is refused");
    assert_eq!(r.kind, RejectionKind::Encoding, "{r}");
    let text = r.to_string();
    assert!(
        text.contains("line 2 is UTF-8, but line 3 is not"),
        "names both lines: {text}"
    );
    assert!(text.contains("CSV UTF-8"), "gives the fix: {text}");
}

#[test]
fn a_file_wholly_in_windows_1252_or_in_utf8_still_reads() {
    let mut w1252 = HEADER.to_vec();
    w1252.extend_from_slice(b"u1,OPSCOM,a@example.org,Jos\xe9\nu2,OPSCOM,b@example.org,Ren\xe9e\n");
    assert_eq!(open(w1252).expect("Windows-1252 reads").len(), 2);
    let mut utf8 = HEADER.to_vec();
    utf8.extend_from_slice(
        "u1,OPSCOM,a@example.org,José\nu2,OPSCOM,b@example.org,Renée\n".as_bytes(),
    );
    let rows = open(utf8).expect("UTF-8 reads");
    assert_eq!(rows.len(), 2);
    assert!(rows[0].contains("José"), "{rows:?}");
}
