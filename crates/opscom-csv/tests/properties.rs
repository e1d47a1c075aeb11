//! Property tests: generated valid rows validate, mapping ignores column order, our failure
//! reports round-trip, and no input panics.

use opscom_csv::{ImportFile, ReadOptions, RowOutcome, formula};
use opscom_schema::{Attribute, Limit};
use proptest::prelude::*;
use std::io::Cursor;

/// The same shape as the library's scientific-notation check (`1.23E+11`).
fn looks_scientific(s: &str) -> bool {
    let Some((m, e)) = s.split_once(['E', 'e']) else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let e = e.strip_prefix('+').unwrap_or(e);
    let m_ok = match m.split_once(['.', ',']) {
        Some((a, b)) => digits(a) && digits(b),
        None => digits(m),
    };
    m_ok && digits(e)
}

/// Free text: any character but NUL (commas, quotes, line breaks, non-ASCII included).
fn text(max: usize) -> BoxedStrategy<String> {
    proptest::collection::vec(any::<char>().prop_filter("no NUL", |c| *c != '\0'), 0..=max)
        .prop_map(|v| v.into_iter().collect::<String>())
        .prop_filter("not scientific notation", |s| !looks_scientific(s.trim()))
        .boxed()
}

fn date() -> impl Strategy<Value = String> {
    (1u32..=9999, 1u32..=12, 1u32..=31).prop_map(|(y, m, d)| {
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let days = match m {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        format!("{y:04}-{m:02}-{:02}", d.min(days))
    })
}

/// A valid value for `attr` (maybe empty when optional).
fn valid_value(attr: &'static Attribute) -> BoxedStrategy<String> {
    let value = match (attr.key, attr.limit) {
        ("unique_id", _) => "[A-Za-z0-9_.-]{1,40}".prop_map(|s| s).boxed(),
        ("login_source", _) => "[A-Z]{1,20}".prop_map(|s| s).boxed(),
        (_, Limit::MaxChars { max }) => text(max),
        (_, Limit::None) => text(60),
        (_, Limit::Province) => "[A-Za-z]{2}".prop_map(|s| s).boxed(),
        (_, Limit::Date) => date().boxed(),
        (_, Limit::NumericId) => "[0-9]{1,10}".prop_map(|s| s).boxed(),
        (_, Limit::Email { .. }) => "[a-z0-9._%+-]{1,30}@[a-z0-9]{1,20}\\.[a-z]{2,6}"
            .prop_filter("no dot at the ends of the local part", |s| {
                let local = s.split('@').next().unwrap_or_default();
                !local.starts_with('.') && !local.ends_with('.') && !local.contains("..")
            })
            .boxed(),
    };
    if attr.required {
        value
    } else {
        prop_oneof![1 => Just(String::new()), 3 => value].boxed()
    }
}

fn to_csv(header: &[&str], rows: &[Vec<String>]) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    w.write_record(header).unwrap();
    for row in rows {
        w.write_record(row).unwrap();
    }
    w.into_inner().unwrap()
}

fn read_all(bytes: Vec<u8>) -> Vec<RowOutcome> {
    let mut file = ImportFile::open(Cursor::new(bytes), "p.csv", &ReadOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    file.by_ref()
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The columns of a file: the required ones and a random subset of the others, shuffled.
fn columns() -> impl Strategy<Value = Vec<&'static Attribute>> {
    let optional: Vec<&'static Attribute> = opscom_schema::attributes()
        .filter(|a| !a.required)
        .collect();
    proptest::sample::subsequence(optional.clone(), 0..=optional.len())
        .prop_map(|mut cols| {
            let mut all: Vec<&'static Attribute> =
                opscom_schema::attributes().filter(|a| a.required).collect();
            all.append(&mut cols);
            all
        })
        .prop_shuffle()
}

fn rows_for(cols: &[&'static Attribute], n: usize) -> BoxedStrategy<Vec<Vec<String>>> {
    let row: Vec<BoxedStrategy<String>> = cols.iter().map(|a| valid_value(a)).collect();
    proptest::collection::vec(row, 1..=n).boxed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_generated_valid_row_always_validates(
        (cols, rows) in columns().prop_flat_map(|c| { let r = rows_for(&c, 8); (Just(c), r) })
    ) {
        // Distinct ids: a repeat is (rightly) a failure.
        let rows: Vec<Vec<String>> = rows.into_iter().enumerate().map(|(i, mut r)| {
            let id = cols.iter().position(|a| a.key == "unique_id").unwrap();
            r[id] = format!("{i}x{}", r[id]);
            r
        }).collect();
        let header: Vec<&str> = cols.iter().map(|a| a.key).collect();
        let got = read_all(to_csv(&header, &rows));
        prop_assert_eq!(got.len(), rows.len());
        for (row, outcome) in rows.iter().zip(&got) {
            match outcome {
                RowOutcome::Valid(v) => {
                    let want: Vec<(&str, &str)> = cols.iter().zip(row)
                        .filter(|(_, v)| !v.trim().is_empty())
                        .map(|(a, v)| (a.key, v.trim()))
                        .collect();
                    prop_assert_eq!(v.fields().collect::<Vec<_>>(), want);
                }
                RowOutcome::Invalid(i) => prop_assert!(false, "line {}: {}", i.line, i.reason()),
            }
        }
    }

    #[test]
    fn mapping_is_independent_of_column_order(
        (cols, rows, perm) in columns().prop_flat_map(|c| {
            let n = c.len();
            let rows = proptest::collection::vec(proptest::collection::vec(
                prop_oneof![3 => "[A-Za-z0-9@. ]{0,12}", 1 => Just("1".to_owned())], n), 1..=6);
            let perm = Just((0..n).collect::<Vec<usize>>()).prop_shuffle();
            (Just(c), rows, perm)
        })
    ) {
        let header: Vec<&str> = cols.iter().map(|a| a.key).collect();
        let a = read_all(to_csv(&header, &rows));
        let header_b: Vec<&str> = perm.iter().map(|&i| header[i]).collect();
        let rows_b: Vec<Vec<String>> =
            rows.iter().map(|r| perm.iter().map(|&i| r[i].clone()).collect()).collect();
        let b = read_all(to_csv(&header_b, &rows_b));
        prop_assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            prop_assert_eq!(x.line(), y.line());
            match (x, y) {
                (RowOutcome::Valid(x), RowOutcome::Valid(y)) => {
                    let mut fx: Vec<_> = x.fields().collect();
                    let mut fy: Vec<_> = y.fields().collect();
                    fx.sort();
                    fy.sort();
                    prop_assert_eq!(fx, fy);
                }
                (RowOutcome::Invalid(x), RowOutcome::Invalid(y)) => {
                    let mut px: Vec<String> = x.problems.iter().map(|p| format!("{p:?}")).collect();
                    let mut py: Vec<String> = y.problems.iter().map(|p| format!("{p:?}")).collect();
                    px.sort();
                    py.sort();
                    prop_assert_eq!(px, py);
                }
                _ => prop_assert!(false, "{x:?} vs {y:?}"),
            }
        }
    }

    /// The usual row is checked on its bytes in one pass; a file with `import_error` takes the
    /// general path over owned cells. Both must give the same verdicts, problems and cells, for
    /// valid and invalid values, duplicate ids, padding spaces, non-ASCII text and columns
    /// without a header.
    #[test]
    fn the_fast_path_and_the_general_path_agree(
        (cols, rows) in columns().prop_flat_map(|c| {
            // Up to two unnamed columns, anywhere.
            let n = c.len();
            (Just(c), proptest::collection::vec(0..=n, 0..=2))
        }).prop_flat_map(|(c, unnamed)| {
            let mut cols: Vec<Option<&'static Attribute>> = c.into_iter().map(Some).collect();
            for at in unnamed {
                cols.insert(at.min(cols.len()), None);
            }
            let cell = |a: Option<&'static Attribute>| -> BoxedStrategy<String> {
                let junk = "[ a-zA-Z0-9@.,éÉ\t\u{a0}-]{0,14}";
                match a {
                    Some(a) => prop_oneof![
                        4 => valid_value(a),
                        2 => junk,
                        1 => Just(String::new()),
                        1 => prop_oneof![Just("1.5E+9"), Just(" 7 "), Just("x@y.z"), Just("2024-02-30"), Just("ab"), Just("a..b@c.de")].prop_map(str::to_owned),
                        1 => "[12]".prop_map(|s| s), // repeated ids
                    ].boxed(),
                    None => prop_oneof![4 => Just(String::new()), 1 => Just("  ".to_owned()), 2 => junk.boxed()].boxed(),
                }
            };
            let row: Vec<BoxedStrategy<String>> = cols.iter().map(|&a| cell(a)).collect();
            (Just(cols), proptest::collection::vec(row, 1..=8))
        })
    ) {
        // A CR ending the last cell is taken for a CRLF line end's (in both paths): keep it out.
        let rows: Vec<Vec<String>> = rows.into_iter().map(|mut r| {
            if let Some(last) = r.last_mut() {
                *last = last.trim_end_matches('\r').to_owned();
            }
            r
        }).collect();
        let header: Vec<&str> = cols.iter().map(|a| a.map_or("", |a| a.key)).collect();
        let fast = read_all(to_csv(&header, &rows));
        let mut header_slow = header.clone();
        header_slow.push("import_error");
        // Written as our failure report writes cells (neutralised), so that restoring gives back
        // the very same values.
        let rows_slow: Vec<Vec<String>> = rows.iter().map(|r| {
            let mut r: Vec<String> = r.iter().map(|c| formula::neutralise(c).into_owned()).collect();
            r.push(String::new());
            r
        }).collect();
        let slow = read_all(to_csv(&header_slow, &rows_slow));
        prop_assert_eq!(fast.len(), slow.len());
        for (f, s) in fast.iter().zip(&slow) {
            prop_assert_eq!((f.line(), f.record()), (s.line(), s.record()));
            let mut cells = s.raw().to_vec();
            cells.pop();
            prop_assert_eq!(f.raw().to_vec(), cells);
            match (f, s) {
                (RowOutcome::Valid(f), RowOutcome::Valid(s)) => {
                    prop_assert_eq!(f.fields().collect::<Vec<_>>(), s.fields().collect::<Vec<_>>());
                }
                (RowOutcome::Invalid(f), RowOutcome::Invalid(s)) => {
                    prop_assert_eq!(&f.problems, &s.problems);
                }
                _ => prop_assert!(false, "{f:?} vs {s:?}"),
            }
        }
    }

    #[test]
    fn a_failure_report_with_neutralised_cells_reads_back_the_originals(
        cells in proptest::collection::vec((text(30), text(30)), 1..=6)
    ) {
        let header = ["unique_id", "login_source", "first_name", "street", "import_error"];
        let originals: Vec<Vec<String>> = cells.into_iter().enumerate().map(|(i, (a, b))| {
            vec![format!("-{i}"), "=OPSCOM".to_owned(), a, b, "some reason".to_owned()]
        }).collect();
        let neutralised: Vec<Vec<String>> = originals.iter()
            .map(|r| r.iter().map(|c| formula::neutralise(c).into_owned()).collect())
            .collect();
        let got = read_all(to_csv(&header, &neutralised));
        prop_assert_eq!(got.len(), originals.len());
        for (outcome, want) in got.iter().zip(&originals) {
            prop_assert_eq!(outcome.raw().to_vec(), want.clone());
        }
    }

    #[test]
    fn no_input_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400), small in any::<bool>()) {
        let options = if small { ReadOptions::default().max_record_bytes(16) } else { ReadOptions::default() };
        if let Ok(mut file) = ImportFile::open(Cursor::new(bytes), "x.csv", &options) {
            let mut last = 0;
            for outcome in file.by_ref().flatten() {
                prop_assert!(outcome.line() > last);
                last = outcome.line();
                if let RowOutcome::Invalid(i) = outcome {
                    prop_assert!(!i.reason().is_empty());
                }
            }
        }
    }

    #[test]
    fn csv_like_input_never_panics(lines in proptest::collection::vec("[a-z_,\"\r\n ;0-9@.=-]{0,40}", 0..12)) {
        let data = format!("unique_id,login_source,email,state\n{}", lines.concat());
        if let Ok(file) = ImportFile::open(Cursor::new(data), "x.csv", &ReadOptions::default()) {
            let mut last = 1; // the header's line
            for outcome in file.flatten() {
                prop_assert!(outcome.line() > last, "line {} after {}", outcome.line(), last);
                last = outcome.line();
            }
        }
    }
}
