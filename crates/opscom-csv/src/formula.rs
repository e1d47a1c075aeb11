//! CSV-injection neutralisation for cells the importer writes back to clients, and its inverse.
//!
//! OWASP's guidance: a cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return may be
//! executed by a spreadsheet as a formula, so it is written with a leading `'`. To keep the round
//! trip exact (a corrected report dropped back imports the client's own values), a value that is
//! already a run of `'` followed by such a character gets one more `'`: [`neutralise`] is
//! injective and [`restore`] undoes it exactly. [`restore`] is applied only to files that carry the
//! `import_error` column, i.e. files that came from one of our reports.

use std::borrow::Cow;

/// The characters that make a spreadsheet treat a cell as a formula.
const TRIGGERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Whether `value` is `'`* followed by a trigger character.
fn needs_guard(value: &str) -> bool {
    value
        .trim_start_matches('\'')
        .starts_with(|c: char| TRIGGERS.contains(&c))
}

/// Returns `value` safe to put in a spreadsheet cell: prefixed with `'` where a spreadsheet could
/// run it as a formula.
pub fn neutralise(value: &str) -> Cow<'_, str> {
    if needs_guard(value) {
        Cow::Owned(format!("'{value}"))
    } else {
        Cow::Borrowed(value)
    }
}

/// Undoes [`neutralise`]: `restore(&neutralise(v)) == v` for every `v`.
pub fn restore(value: &str) -> Cow<'_, str> {
    match value.strip_prefix('\'') {
        Some(rest) if needs_guard(rest) => Cow::Borrowed(rest),
        _ => Cow::Borrowed(value),
    }
}

#[cfg(test)]
mod tests {
    use super::{neutralise, restore};

    #[test]
    fn formula_triggers_are_guarded() {
        for v in ["=SUM(A1)", "+1", "-2", "@cmd", "\tx", "\rx", "'=x", "''+1"] {
            let n = neutralise(v);
            assert_eq!(n, format!("'{v}"), "{v:?}");
            assert_eq!(restore(&n), v);
        }
    }

    #[test]
    fn ordinary_values_are_untouched() {
        for v in [
            "",
            "O'Brien",
            "'quoted'",
            "a=b",
            "1-2",
            "jane@acme.edu",
            "''",
        ] {
            assert_eq!(neutralise(v), v);
            assert_eq!(restore(v), v);
        }
    }
}
