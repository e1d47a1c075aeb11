//! Fuzz target: any bytes through open (encoding sniff + header mapping) and every row's validation.
//!
//! Run with `RUSTC_BOOTSTRAP=1 cargo fuzz run read_map_validate` from `fuzz/` (or `cargo xtask fuzz`).
//! Invariants checked: nothing panics; a second read of the same bytes gives the same outcomes;
//! every invalid row has at least one problem and a non-empty reason; line numbers never go back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opscom_csv::{ImportFile, ReadOptions, RowOutcome};
use std::io::Cursor;

fn read(data: &[u8], options: &ReadOptions) -> Option<Vec<Result<RowOutcome, String>>> {
    let file = ImportFile::open(Cursor::new(data), "fuzz.csv", options).ok()?;
    Some(file.map(|r| r.map_err(|e| e.to_string())).collect())
}

fuzz_target!(|data: &[u8]| {
    // A small record limit too, so the runaway-record path is reached.
    let small = ReadOptions::default().max_record_bytes(64);
    for options in [ReadOptions::default(), small] {
        let first = read(data, &options);
        if let Some(rows) = &first {
            let mut last_line = 0;
            for row in rows.iter().flatten() {
                assert!(row.line() > last_line, "line numbers increase");
                last_line = row.line();
                if let RowOutcome::Invalid(i) = row {
                    assert!(!i.problems.is_empty());
                    assert!(!i.reason().is_empty());
                }
            }
        }
        assert_eq!(first, read(data, &options), "re-reading gives the same outcomes");
    }
});
