//! The failure CSV round trip: whatever the client's values, reading the report back with a CSV
//! reader and `restore` gives them exactly, and no cell can start a formula.

use opscom_csv::formula::restore;
use opscom_mail::FailureCsvWriter;
use proptest::prelude::*;

/// Values a client's export can hold, biased toward the troublesome ones.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[=+\\-@\t\r'\"]{0,3}[a-zA-Z0-9 ,;\"'\n\r\t=+@-]{0,12}",
        "\\PC{0,10}",
        any::<String>(),
        Just(String::new()),
    ]
}

fn read_back(bytes: &[u8]) -> Vec<Vec<String>> {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").expect("UTF-8 BOM");
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body)
        .records()
        .map(|r| r.unwrap().iter().map(|c| restore(c).into_owned()).collect())
        .collect()
}

fn is_formula_start(cell: &str) -> bool {
    cell.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn values_survive_the_round_trip(
        header in proptest::collection::vec("[a-z_]{1,8}", 1..5),
        rows in proptest::collection::vec(
            (1u64..100_000, proptest::collection::vec(value(), 0..7), value()),
            0..8,
        ),
    ) {
        let mut w = FailureCsvWriter::new(Vec::new(), &header).unwrap();
        for (line, values, reason) in &rows {
            w.write_failure(*line, values, reason).unwrap();
        }
        let bytes = w.finish().unwrap();

        // Excel safety: no raw cell starts like a formula.
        let raw_body = &bytes[3..];
        for record in csv::ReaderBuilder::new().has_headers(false).from_reader(raw_body).records() {
            for cell in record.unwrap().iter() {
                prop_assert!(!is_formula_start(cell), "cell {cell:?} could run as a formula");
            }
        }
        // CRLF everywhere outside quoted values: every record ends with CRLF.
        prop_assert!(bytes.ends_with(b"\r\n"));

        let table = read_back(&bytes);
        let width = header.len() + 1;
        let mut expected_header = header.clone();
        expected_header.push("import_error".into());
        prop_assert_eq!(&table[0], &expected_header);
        prop_assert_eq!(table.len(), rows.len() + 1);
        for ((line, values, reason), got) in rows.iter().zip(&table[1..]) {
            prop_assert_eq!(got.len(), width);
            for (i, cell) in got[..header.len()].iter().enumerate() {
                let want = values.get(i).map(String::as_str).unwrap_or("");
                prop_assert_eq!(cell, want);
            }
            prop_assert_eq!(&got[header.len()], &format!("line {line}: {reason}"));
        }
    }
}

#[test]
fn a_dropped_back_report_reuses_its_import_error_column() {
    let header: Vec<String> = ["unique_id", "email", "import_error"]
        .map(String::from)
        .to_vec();
    let mut w = FailureCsvWriter::new(Vec::new(), &header).unwrap();
    w.write_failure(
        2,
        &["7".into(), "-x@y".into(), "line 9: old reason".into()],
        "email: still wrong",
    )
    .unwrap();
    let table = read_back(&w.finish().unwrap());
    assert_eq!(table[0], header);
    assert_eq!(table[1], vec!["7", "-x@y", "line 2: email: still wrong"]);
}
