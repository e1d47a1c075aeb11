//! Row problems and the value checks behind them.

use opscom_schema::{Attribute, Limit};
use serde::Serialize;
use std::fmt;

/// Keys whose values are identifiers: a value in scientific notation (`1.23E+11`) is Excel damage
/// (the real digits are lost), never a real id.
const ID_KEYS: &[&str] = &["unique_id", "employ_no", "student_no"];

/// Whether a value of the attribute with JSON key `key` is an identifier (see [`ID_KEYS`]).
pub(crate) fn is_id_key(key: &str) -> bool {
    ID_KEYS.contains(&key)
}

/// Trims surrounding whitespace, with a fast path for the usual value that has none.
#[inline]
pub(crate) fn trim(s: &str) -> &str {
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(&f), Some(&l)) if (b'!'..0x80).contains(&f) && (b'!'..0x80).contains(&l) => s,
        (None, _) => s,
        _ => s.trim(),
    }
}

/// One thing wrong with a row. A row may have several.
///
/// `Display` gives the reason in plain words, naming the column (as the file spells it) and the
/// limit; serialised, the `kind` tag groups reasons for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RowProblem {
    /// The row's number of values differs from the header's.
    FieldCount {
        /// The header's number of columns.
        expected: usize,
        /// The row's number of values.
        got: usize,
        /// The cells beyond the header's width (empty when the row is short).
        extra: Vec<String>,
    },
    /// A required column's value is empty.
    RequiredEmpty {
        /// The column's header.
        column: String,
    },
    /// A value is longer than its limit.
    TooLong {
        /// The column's header.
        column: String,
        /// The limit in characters.
        limit: usize,
        /// The value's length in characters.
        chars: usize,
    },
    /// Not a 2-letter province/state abbreviation.
    NotProvince {
        /// The column's header.
        column: String,
        /// The value, trimmed.
        value: String,
    },
    /// Not a `YYYY-MM-DD` date that exists.
    NotDate {
        /// The column's header.
        column: String,
        /// The value, trimmed.
        value: String,
        /// Whether it looks like a date Excel reformatted (`1/15/1990`).
        excel: bool,
    },
    /// Not a numeric id (1 to 10 ASCII digits).
    NotNumericId {
        /// The column's header.
        column: String,
        /// The value, trimmed.
        value: String,
        /// Whether it looks like a number Excel turned into scientific notation.
        excel: bool,
    },
    /// Not a valid e-mail address.
    NotEmail {
        /// The column's header.
        column: String,
        /// The value, trimmed.
        value: String,
    },
    /// An identifier in scientific notation (`1.23E+11`): Excel has lost its digits.
    ScientificNotation {
        /// The column's header.
        column: String,
        /// The value, trimmed.
        value: String,
    },
    /// A non-empty value in a column whose header cell is empty (Excel often exports such
    /// columns, empty, at the right end of a sheet).
    ValueWithoutHeader {
        /// The column's 1-based number.
        column: usize,
        /// The value, trimmed.
        value: String,
    },
    /// The `unique_id` already appeared on an earlier row of the file.
    DuplicateId {
        /// The column's header.
        column: String,
        /// The id.
        value: String,
        /// The physical line of the first occurrence.
        first_line: u64,
    },
}

impl RowProblem {
    /// A stable label for grouping reasons (the serialised `kind`).
    pub fn category(&self) -> &'static str {
        match self {
            RowProblem::FieldCount { .. } => "field_count",
            RowProblem::RequiredEmpty { .. } => "required_empty",
            RowProblem::TooLong { .. } => "too_long",
            RowProblem::NotProvince { .. } => "not_province",
            RowProblem::NotDate { .. } => "not_date",
            RowProblem::NotNumericId { .. } => "not_numeric_id",
            RowProblem::NotEmail { .. } => "not_email",
            RowProblem::ScientificNotation { .. } => "scientific_notation",
            RowProblem::ValueWithoutHeader { .. } => "value_without_header",
            RowProblem::DuplicateId { .. } => "duplicate_id",
        }
    }

    /// The column concerned, as the file's header spells it.
    pub fn column(&self) -> Option<&str> {
        match self {
            RowProblem::FieldCount { .. } | RowProblem::ValueWithoutHeader { .. } => None,
            RowProblem::RequiredEmpty { column }
            | RowProblem::TooLong { column, .. }
            | RowProblem::NotProvince { column, .. }
            | RowProblem::NotDate { column, .. }
            | RowProblem::NotNumericId { column, .. }
            | RowProblem::NotEmail { column, .. }
            | RowProblem::ScientificNotation { column, .. }
            | RowProblem::DuplicateId { column, .. } => Some(column),
        }
    }

    /// Whether this looks like damage done by saving the file from Excel (numbers in scientific
    /// notation, dates reformatted as `1/15/1990`), so the report should explain how to save
    /// "CSV UTF-8 (Comma delimited)" with text-formatted columns.
    pub fn looks_like_excel_damage(&self) -> bool {
        matches!(
            self,
            RowProblem::NotDate { excel: true, .. }
                | RowProblem::NotNumericId { excel: true, .. }
                | RowProblem::ScientificNotation { .. }
        )
    }
}

/// Quotes a client's value for a reason: backticks, control characters shown as spaces, at most
/// 40 characters.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 40;
        f.write_str("`")?;
        for (i, c) in self.0.chars().enumerate() {
            if i == MAX {
                f.write_str("…")?;
                break;
            }
            let c = if c.is_control() { ' ' } else { c };
            write!(f, "{c}")?;
        }
        f.write_str("`")
    }
}

impl fmt::Display for RowProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowProblem::FieldCount {
                expected,
                got,
                extra,
            } => {
                write!(
                    f,
                    "the row has {got} values but the header has {expected} columns"
                )?;
                if extra.is_empty() {
                    f.write_str(" (a value is missing, or a line break splits the row)")
                } else {
                    f.write_str("; extra values: ")?;
                    for (i, cell) in extra.iter().take(5).enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        write!(f, "{}", Quoted(cell))?;
                    }
                    if extra.len() > 5 {
                        write!(f, " and {} more", extra.len() - 5)?;
                    }
                    f.write_str(" (a value with a comma must be in double quotes)")
                }
            }
            RowProblem::RequiredEmpty { column } => {
                write!(f, "`{column}` is required but empty")
            }
            RowProblem::TooLong {
                column,
                limit,
                chars,
            } => write!(
                f,
                "`{column}` is {chars} characters long; the limit is {limit}"
            ),
            RowProblem::NotProvince { column, value } => write!(
                f,
                "`{column}` must be a 2-letter province/state abbreviation (like MA or BC), not {}",
                Quoted(value)
            ),
            RowProblem::NotDate {
                column,
                value,
                excel,
            } => {
                if *excel {
                    write!(
                        f,
                        "`{column}` must be a date written YYYY-MM-DD, not {} (Excel reformats dates: format the column as yyyy-mm-dd before saving)",
                        Quoted(value)
                    )
                } else if is_date_shape(value) {
                    write!(
                        f,
                        "`{column}` is {}, a date that does not exist",
                        Quoted(value)
                    )
                } else {
                    write!(
                        f,
                        "`{column}` must be a date written YYYY-MM-DD, not {}",
                        Quoted(value)
                    )
                }
            }
            RowProblem::NotNumericId {
                column,
                value,
                excel,
            } => {
                write!(
                    f,
                    "`{column}` must be a numeric id (1 to 10 digits), not {}",
                    Quoted(value)
                )?;
                if *excel {
                    f.write_str(" (Excel turned the number into scientific notation: format the column as text before saving)")?;
                }
                Ok(())
            }
            RowProblem::NotEmail { column, value } => write!(
                f,
                "`{column}` is not a valid e-mail address: {}",
                Quoted(value)
            ),
            RowProblem::ScientificNotation { column, value } => write!(
                f,
                "`{column}` is {}, a number Excel turned into scientific notation and the real digits are lost (format the column as text in Excel and export again)",
                Quoted(value)
            ),
            RowProblem::ValueWithoutHeader { column, value } => write!(
                f,
                "a value in column {column}, which has no header: {}",
                Quoted(value)
            ),
            RowProblem::DuplicateId {
                column,
                value,
                first_line,
            } => write!(
                f,
                "`{column}` {} already appears on line {first_line}; a user is taken from its first row only (and not at all when that row fails): merge this row into line {first_line}, or delete it",
                Quoted(value)
            ),
        }
    }
}

/// Validates one value of the attribute `attr` exactly as [`crate::ImportFile`] validates a cell
/// of its column: surrounding whitespace is trimmed; an empty value is a problem only when the
/// attribute is required; otherwise the attribute's [`Limit`] is checked (length, e-mail,
/// date, province, numeric id) and an identifier in scientific notation (`1.23E+11`) is refused.
///
/// `column` names the column in the problems' reasons: the header as the client spelled it, or
/// [`Attribute::key`] when there is no file. What needs more than one value is not checked
/// here: a row's number of cells and a `unique_id` repeated on another row.
///
/// An empty result means the value is valid.
///
/// ```
/// use opscom_csv::{RowProblem, validate_value};
///
/// let email = opscom_csv::schema::lookup("email").unwrap();
/// assert!(validate_value(email, "email", " ann@example.org ").is_empty());
/// let problems = validate_value(email, "E-mail", "ann@");
/// assert!(matches!(&problems[..], [RowProblem::NotEmail { .. }]));
/// assert_eq!(problems[0].to_string(), "`E-mail` is not a valid e-mail address: `ann@`");
///
/// let unique_id = opscom_csv::schema::lookup("unique_id").unwrap();
/// assert!(matches!(&validate_value(unique_id, "unique_id", "")[..], [RowProblem::RequiredEmpty { .. }]));
/// ```
pub fn validate_value(attr: &Attribute, column: &str, value: &str) -> Vec<RowProblem> {
    let mut problems = Vec::new();
    let value = value.trim();
    if value.is_empty() {
        if attr.required {
            problems.push(RowProblem::RequiredEmpty {
                column: column.to_owned(),
            });
        }
    } else {
        check_value(attr, column, value, is_id_key(attr.key), &mut problems);
    }
    problems
}

/// Checks one non-empty, trimmed value of `attr` (in column `column`) and pushes its problems.
pub(crate) fn check_value(
    attr: &Attribute,
    column: &str,
    value: &str,
    id_key: bool,
    problems: &mut Vec<RowProblem>,
) {
    let too_long = |limit: usize, problems: &mut Vec<RowProblem>| {
        // Byte length bounds the character count from above: skip counting short ASCII-ish values.
        if value.len() > limit {
            let chars = value.chars().count();
            if chars > limit {
                problems.push(RowProblem::TooLong {
                    column: column.to_owned(),
                    limit,
                    chars,
                });
                return true;
            }
        }
        false
    };
    match attr.limit {
        Limit::None => {}
        Limit::MaxChars { max } => {
            too_long(max, problems);
        }
        Limit::Email { max } => {
            if !too_long(max, problems) && !is_email(value) {
                problems.push(RowProblem::NotEmail {
                    column: column.to_owned(),
                    value: value.to_owned(),
                });
            }
        }
        Limit::Province => {
            if !(value.len() == 2 && value.bytes().all(|b| b.is_ascii_alphabetic())) {
                problems.push(RowProblem::NotProvince {
                    column: column.to_owned(),
                    value: value.to_owned(),
                });
            }
        }
        Limit::Date => {
            if !is_date(value) {
                problems.push(RowProblem::NotDate {
                    column: column.to_owned(),
                    value: value.to_owned(),
                    excel: is_excel_date(value),
                });
            }
        }
        Limit::NumericId => {
            if !(1..=10).contains(&value.len()) || !value.bytes().all(|b| b.is_ascii_digit()) {
                problems.push(RowProblem::NotNumericId {
                    column: column.to_owned(),
                    value: value.to_owned(),
                    excel: is_scientific(value),
                });
            }
        }
    }
    if id_key && is_scientific(value) {
        problems.push(RowProblem::ScientificNotation {
            column: column.to_owned(),
            value: value.to_owned(),
        });
    }
}

/// An e-mail address an OPSCOM site can use: RFC syntax, a dotted domain, no display name.
pub fn is_email(value: &str) -> bool {
    if is_plain_email(value.as_bytes()) {
        return true;
    }
    let options = email_address::Options {
        minimum_sub_domains: 2,
        allow_domain_literal: false,
        allow_display_text: false,
        allow_long_local_parts: false,
    };
    email_address::EmailAddress::parse_with_options(value, options).is_ok()
}

/// What a column's values must look like, precomputed from its attribute's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Not checked: the `import_error` column.
    Ignored,
    /// A column whose header cell is empty: any value is a problem.
    Unnamed,
    /// Free text, at most `max` characters.
    Text,
    /// An e-mail address of at most `max` characters.
    Email,
    /// Two ASCII letters.
    Province,
    /// `YYYY-MM-DD`, a date that exists.
    Date,
    /// 1 to 10 ASCII digits.
    NumericId,
}

impl Kind {
    /// The kind for a limit, with the byte length up to which a value certainly fits the
    /// character limit (`usize::MAX` when there is none).
    pub(crate) fn of(limit: Limit) -> (Kind, usize) {
        match limit {
            Limit::None => (Kind::Text, usize::MAX),
            Limit::MaxChars { max } => (Kind::Text, max),
            Limit::Email { max } => (Kind::Email, max),
            Limit::Province => (Kind::Province, 2),
            Limit::Date => (Kind::Date, 10),
            Limit::NumericId => (Kind::NumericId, 10),
        }
    }
}

/// Whether the non-empty, trimmed value `v` certainly passes every check of its column, decided
/// on its bytes without building a `&str`. When it is `false`, [`check_value`] decides (and may
/// still find nothing wrong); when it is `true`, [`check_value`] would find nothing.
#[inline(always)]
pub(crate) fn quick_ok(kind: Kind, max: usize, id_key: bool, v: &[u8]) -> bool {
    match kind {
        Kind::Ignored => true,
        Kind::Unnamed => false,
        // A value in scientific notation starts with a digit and has an `E`.
        Kind::Text => {
            v.len() <= max
                && !(id_key
                    && v.first().is_some_and(u8::is_ascii_digit)
                    && v.iter().any(|&b| b | 0x20 == b'e'))
        }
        Kind::Email => v.len() <= max && is_plain_email(v),
        Kind::Province => v.len() == 2 && v.iter().all(u8::is_ascii_alphabetic),
        Kind::Date => is_date_bytes(v),
        Kind::NumericId => (1..=10).contains(&v.len()) && v.iter().all(u8::is_ascii_digit),
    }
}

/// The usual address, checked without the full parser: `[A-Za-z0-9._%+-]` local part (no dot at
/// its ends, no `..`, at most 64 characters), and two or more domain labels of letters, digits
/// and inner hyphens (each at most 63, all at most 253). Every address it accepts, the full
/// parser accepts too (a property test checks this); it may refuse some the parser accepts.
fn is_plain_email(bytes: &[u8]) -> bool {
    /// Byte classes: 0 may not appear; the others are flags.
    const ALNUM: u8 = 1;
    const LOCAL: u8 = 2; // `_`, `%`, `+` (local part only)
    const HYPHEN: u8 = 4;
    const DOT: u8 = 8;
    const CLASS: [u8; 256] = {
        let mut t = [0u8; 256];
        let mut i = 0;
        while i < 256 {
            let b = i as u8;
            t[i] = if b.is_ascii_alphanumeric() {
                ALNUM
            } else if matches!(b, b'_' | b'%' | b'+') {
                LOCAL
            } else if b == b'-' {
                HYPHEN
            } else if b == b'.' {
                DOT
            } else {
                0
            };
            i += 1;
        }
        t
    };
    // Local part, up to the `@`: allowed bytes, no dot at either end, no two dots in a row.
    let mut at = None;
    let mut prev = DOT;
    for (i, &b) in bytes.iter().enumerate() {
        let c = CLASS[usize::from(b)];
        if c & (ALNUM | LOCAL | HYPHEN) != 0 {
            prev = c;
        } else if c == DOT && prev != DOT {
            prev = DOT;
        } else if b == b'@' && prev != DOT {
            at = Some(i);
            break;
        } else {
            return false;
        }
    }
    let Some(at) = at else {
        return false;
    };
    let domain = &bytes[at + 1..];
    if at > 64 || domain.len() > 253 {
        return false;
    }
    // Domain: labels of letters, digits and inner hyphens, 1 to 63 bytes, at least two.
    let (mut prev, mut run, mut dots) = (DOT, 0usize, 0usize);
    for &b in domain {
        let c = CLASS[usize::from(b)];
        if c == ALNUM {
            run += 1;
        } else if c == DOT && prev == ALNUM && run <= 63 {
            dots += 1;
            run = 0;
        } else if c == HYPHEN && prev != DOT {
            run += 1;
        } else {
            return false;
        }
        prev = c;
    }
    prev == ALNUM && run <= 63 && dots >= 1
}

fn is_date_shape(value: &str) -> bool {
    date_parts(value.as_bytes()).is_some()
}

/// `(year, month, day)` of a value shaped `DDDD-DD-DD`.
#[inline(always)]
fn date_parts(b: &[u8]) -> Option<(u32, u32, u32)> {
    let [y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1] = *b else {
        return None;
    };
    let digit = |c: u8| {
        let d = c.wrapping_sub(b'0');
        (d <= 9).then_some(u32::from(d))
    };
    let (y0, y1, y2, y3) = (digit(y0)?, digit(y1)?, digit(y2)?, digit(y3)?);
    let (m0, m1, d0, d1) = (digit(m0)?, digit(m1)?, digit(d0)?, digit(d1)?);
    Some((
        y0 * 1000 + y1 * 100 + y2 * 10 + y3,
        m0 * 10 + m1,
        d0 * 10 + d1,
    ))
}

/// A date that exists, written `YYYY-MM-DD` (year 0001 to 9999).
pub fn is_date(value: &str) -> bool {
    is_date_bytes(value.as_bytes())
}

#[inline(always)]
fn is_date_bytes(value: &[u8]) -> bool {
    let Some((year, month, day)) = date_parts(value) else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    year >= 1 && (1..=days).contains(&day)
}

/// A date as Excel shows it after reformatting: `1/15/1990`, `15.01.1990`, `1990/01/15`.
fn is_excel_date(value: &str) -> bool {
    let parts: Vec<&str> = value.split(['/', '.']).collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| (1..=4).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

/// A number in Excel's scientific notation: `1.23E+11`, `4E+15`, `1,23E+11`.
fn is_scientific(value: &str) -> bool {
    if !value.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return false;
    }
    let Some((mantissa, exponent)) = value.split_once(['E', 'e']) else {
        return false;
    };
    let exponent = exponent.strip_prefix('+').unwrap_or(exponent);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once(['.', ',']) {
        Some((int, frac)) => digits(int) && digits(frac),
        None => digits(mantissa),
    };
    mantissa_ok && digits(exponent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_that_exist() {
        for d in ["2000-02-29", "1990-01-15", "2024-12-31", "0001-01-01"] {
            assert!(is_date(d), "{d}");
        }
        for d in [
            "1900-02-29",
            "2023-02-29",
            "2024-13-01",
            "2024-04-31",
            "2024-00-10",
            "2024-01-00",
            "0000-01-01",
            "1990-1-15",
            "1/15/1990",
            "19900115",
            "",
            "2024-01-0a",
            "２０２４-01-01",
        ] {
            assert!(!is_date(d), "{d}");
        }
    }

    #[test]
    fn excel_damage_shapes() {
        assert!(is_scientific("1.23E+11"));
        assert!(is_scientific("4E+15"));
        assert!(is_scientific("1,23E+11"));
        assert!(!is_scientific("E12"));
        assert!(!is_scientific("12E"));
        assert!(!is_scientific("A1234"));
        assert!(is_excel_date("1/15/1990"));
        assert!(is_excel_date("15.01.1990"));
        assert!(!is_excel_date("1990-01-15"));
    }

    #[test]
    fn plain_email_fast_path_agrees_with_the_parser() {
        let options = email_address::Options {
            minimum_sub_domains: 2,
            allow_domain_literal: false,
            allow_display_text: false,
            allow_long_local_parts: false,
        };
        let samples = [
            "jane@acme.edu",
            "a.b-c+d%e_f@x-y.example.co.uk",
            "x@1.2",
            "j@a.b",
            &format!("{}@acme.edu", "a".repeat(64)),
            &format!("a@{}.com", "b".repeat(63)),
        ];
        for e in samples {
            assert!(is_plain_email(e.as_bytes()), "{e}");
            assert!(
                email_address::EmailAddress::parse_with_options(e, options).is_ok(),
                "{e}"
            );
        }
        for e in [
            ".a@acme.edu",
            "a.@acme.edu",
            "a..b@acme.edu",
            "a@-x.com",
            "a@x-.com",
            "a@x",
            "a@x..com",
            &format!("{}@acme.edu", "a".repeat(65)),
            &format!("a@{}.com", "b".repeat(64)),
        ] {
            assert!(!is_plain_email(e.as_bytes()), "{e}");
        }
    }

    proptest::proptest! {
        #[test]
        fn plain_email_accepts_only_what_the_parser_accepts(e in "[a-zA-Z0-9._%+@-]{1,12}(\\.[a-z0-9-]{0,5}){0,3}") {
            let options = email_address::Options {
                minimum_sub_domains: 2,
                allow_domain_literal: false,
                allow_display_text: false,
                allow_long_local_parts: false,
            };
            if is_plain_email(e.as_bytes()) {
                proptest::prop_assert!(email_address::EmailAddress::parse_with_options(&e, options).is_ok(), "{}", e);
            }
        }
    }

    proptest::proptest! {
        /// The byte-level shortcut never accepts what the full check refuses.
        #[test]
        fn quick_ok_accepts_only_what_check_value_accepts(
            value in proptest::prop_oneof![
                "[a-zA-Z0-9@.,E+é -]{1,14}",
                "[0-9]{1,12}(E\\+?[0-9]{1,3})?",
                "[0-9]{4}-[0-9]{2}-[0-9]{2}",
                "[a-z]{1,70}",
                "[a-z0-9.]{1,66}@[a-z0-9.-]{1,70}",
                "[a-z]{30,64}@[a-z]{10,40}\\.[a-z]{10,40}\\.com",
            ],
        ) {
            for attr in opscom_schema::attributes() {
                let (kind, max) = Kind::of(attr.limit);
                let id_key = is_id_key(attr.key);
                if quick_ok(kind, max, id_key, value.as_bytes()) {
                    let mut problems = Vec::new();
                    check_value(attr, attr.key, &value, id_key, &mut problems);
                    proptest::prop_assert!(problems.is_empty(), "{}: {:?}: {:?}", attr.key, value, problems);
                }
            }
        }
    }

    #[test]
    fn email_syntax() {
        for e in [
            "jane@acme.edu",
            "o'brien+tag@mail.example.org",
            "zoë@exämple.com",
        ] {
            assert!(is_email(e), "{e}");
        }
        for e in [
            "jane",
            "jane@",
            "@acme.edu",
            "jane@localhost",
            "Jane <jane@acme.edu>",
            "a b@c.de",
            "jane@@acme.edu",
        ] {
            assert!(!is_email(e), "{e}");
        }
    }
}
