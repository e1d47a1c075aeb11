//! Header mapping: each header cell to an attribute of the schema, the ignored `import_error`, or
//! an unnamed column (an empty header cell).

use crate::error::{Rejection, RejectionKind};
use opscom_schema::{Attribute, IMPORT_ERROR_COLUMN};
use std::fmt::Write as _;

/// What a column of the file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// Values of this attribute.
    Attribute(&'static Attribute),
    /// The `import_error` column of one of our failure reports: ignored.
    ImportError,
    /// A column whose header cell is empty (Excel exports formatted but unused columns so, often
    /// at the right end): ignored while its cells are empty; a row with a value in it fails.
    Unnamed,
}

/// The mapping of a file's columns, by position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    columns: Vec<Column>,
    names: Vec<String>,
}

/// At most this many header problems are listed in one rejection.
const MAX_LISTED: usize = 10;

impl HeaderMap {
    /// Maps header cells (as uploaded): exact match against the possible names after removing a
    /// byte-order mark and surrounding spaces; an empty cell is an [`Column::Unnamed`] column.
    /// `line` is the header's physical line, for the rejection. Every problem of the header is
    /// listed in one rejection.
    pub fn from_header<S: AsRef<str>>(cells: &[S], line: u64) -> Result<HeaderMap, Rejection> {
        let mut columns = Vec::with_capacity(cells.len());
        let mut names: Vec<String> = Vec::with_capacity(cells.len());
        // (kind, message) for each problem.
        let mut problems: Vec<(RejectionKind, String)> = Vec::new();
        let mut suggested: Vec<&'static str> = Vec::new();
        for (i, cell) in cells.iter().enumerate() {
            let name = clean(cell.as_ref());
            let number = i + 1;
            if name.is_empty() {
                columns.push(Column::Unnamed);
                names.push(String::new());
                continue;
            }
            if let Some(first) = names.iter().position(|n| n == name) {
                problems.push((
                    RejectionKind::DuplicateHeader,
                    format!(
                        "The column `{name}` appears twice (columns {} and {number}).",
                        first + 1
                    ),
                ));
            } else if name == IMPORT_ERROR_COLUMN {
                columns.push(Column::ImportError);
                names.push(name.to_owned());
                continue;
            } else if let Some(attr) = opscom_schema::lookup(name) {
                let other = columns
                    .iter()
                    .position(|c| matches!(c, Column::Attribute(a) if a.key == attr.key));
                if let Some(other) = other {
                    problems.push((
                        RejectionKind::AmbiguousHeader,
                        format!(
                            "`{}` (column {}) and `{name}` (column {number}) both name the attribute {}.",
                            names[other],
                            other + 1,
                            attr.name
                        ),
                    ));
                }
                columns.push(Column::Attribute(attr));
                names.push(name.to_owned());
                continue;
            } else {
                let mut msg = format!("`{name}` is not a column name");
                match opscom_schema::nearest(name) {
                    Some(near) => {
                        let _ = write!(msg, "; did you mean `{near}`?");
                        suggested.push(near);
                    }
                    None => {
                        // Nothing close: name every attribute's usual header, so that the
                        // client can pick one without any tool.
                        let accepted: Vec<&str> = opscom_schema::attributes()
                            .filter_map(|a| a.possible_names.first().copied())
                            .collect();
                        let _ =
                            write!(msg, "; the accepted names include {}.", accepted.join(", "));
                    }
                }
                problems.push((RejectionKind::UnknownHeader, msg));
            }
            columns.push(Column::ImportError);
            names.push(name.to_owned());
        }
        for attr in opscom_schema::attributes().filter(|a| a.required) {
            let present = columns
                .iter()
                .any(|c| matches!(c, Column::Attribute(a) if a.key == attr.key));
            let hinted = attr.possible_names.iter().any(|n| suggested.contains(n));
            if !present && !hinted {
                problems.push((
                    RejectionKind::MissingColumn,
                    format!("The required column `{}` is missing.", attr.key),
                ));
            }
        }
        let Some(&(kind, _)) = problems.first() else {
            return Ok(HeaderMap { columns, names });
        };
        let mut reason = problems
            .iter()
            .take(MAX_LISTED)
            .map(|(_, m)| m.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        if problems.len() > MAX_LISTED {
            let _ = write!(
                reason,
                " ({} more header problems not listed.)",
                problems.len() - MAX_LISTED
            );
        }
        Err(Rejection::new(kind, Some(line), reason, fix_for(kind)))
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// Whether the header has no column (never true for a mapped file).
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Every column, by position.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The attribute of column `i`, if it maps to one.
    pub fn attribute(&self, i: usize) -> Option<&'static Attribute> {
        match self.columns.get(i)? {
            Column::Attribute(a) => Some(a),
            Column::ImportError | Column::Unnamed => None,
        }
    }

    /// The header of column `i` as the file spells it (trimmed, BOM removed; empty for an
    /// unnamed column).
    pub fn name(&self, i: usize) -> Option<&str> {
        self.names.get(i).map(String::as_str)
    }

    /// The column holding the attribute with JSON key `key`.
    pub fn position(&self, key: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| matches!(c, Column::Attribute(a) if a.key == key))
    }

    /// The `import_error` column, when the file carries one (it came from a failure report).
    pub fn import_error_column(&self) -> Option<usize> {
        self.columns.iter().position(|c| *c == Column::ImportError)
    }

    /// The mapped attributes with their column, by position.
    pub fn attributes(&self) -> impl Iterator<Item = (usize, &'static Attribute)> + '_ {
        self.columns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c {
                Column::Attribute(a) => Some((i, *a)),
                Column::ImportError | Column::Unnamed => None,
            })
    }
}

fn clean(cell: &str) -> &str {
    cell.trim_start_matches('\u{feff}').trim()
}

fn fix_for(kind: RejectionKind) -> &'static str {
    match kind {
        RejectionKind::UnknownHeader => {
            "Rename each column to an accepted name exactly as written (names are case-sensitive; the closest accepted name is given for each), or delete the column."
        }
        RejectionKind::AmbiguousHeader => "Keep only one of the two columns.",
        RejectionKind::DuplicateHeader => "Delete one of the two columns.",
        RejectionKind::MissingColumn => "Add the column, with a value on every row.",
        RejectionKind::EmptyHeader => {
            "Give every column a header, or delete the columns without one (empty columns at the right end included)."
        }
        _ => "Correct the header row.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reject(cells: &[&str]) -> Rejection {
        HeaderMap::from_header(cells, 1).unwrap_err()
    }

    #[test]
    fn maps_exact_names_after_bom_and_spaces() {
        let map = HeaderMap::from_header(
            &[
                "\u{feff}unique_id",
                " login_source ",
                "state",
                "import_error",
            ],
            1,
        )
        .unwrap();
        assert_eq!(map.len(), 4);
        assert_eq!(map.attribute(2).unwrap().key, "province");
        assert_eq!(map.name(2), Some("state"));
        assert_eq!(map.position("login_source"), Some(1));
        assert_eq!(map.import_error_column(), Some(3));
        assert_eq!(map.attributes().count(), 3);
    }

    #[test]
    fn unknown_header_names_the_nearest() {
        let r = reject(&["unique_id", "login_source", "Email"]);
        assert_eq!(r.kind, RejectionKind::UnknownHeader);
        assert!(
            r.reason
                .contains("`Email` is not a column name; did you mean `email`?"),
            "{r}"
        );
        assert_eq!(r.line, Some(1));
    }

    #[test]
    fn two_names_of_one_attribute() {
        let r = reject(&["unique_id", "login_source", "province", "state"]);
        assert_eq!(r.kind, RejectionKind::AmbiguousHeader);
        assert!(
            r.reason
                .contains("`province` (column 3) and `state` (column 4)"),
            "{r}"
        );
    }

    #[test]
    fn duplicated_header() {
        let r = reject(&["unique_id", "login_source", "email", "email"]);
        assert_eq!(r.kind, RejectionKind::DuplicateHeader);
        assert!(r.reason.contains("(columns 3 and 4)"), "{r}");
    }

    #[test]
    fn missing_required() {
        let r = reject(&["unique_id", "email"]);
        assert_eq!(r.kind, RejectionKind::MissingColumn);
        assert!(r.reason.contains("`login_source` is missing"), "{r}");
        // An empty header cell does not stand for a missing column.
        let r = reject(&["unique_id", "", "email"]);
        assert_eq!(r.kind, RejectionKind::MissingColumn);
    }

    #[test]
    fn empty_header_cells_are_unnamed_columns() {
        let map = HeaderMap::from_header(
            &["unique_id", " ", "login_source", "email", "", "\u{feff}"],
            1,
        )
        .unwrap();
        assert_eq!(map.len(), 6);
        let unnamed: Vec<usize> = (0..map.len())
            .filter(|&i| map.columns()[i] == Column::Unnamed)
            .collect();
        assert_eq!(unnamed, [1, 4, 5]);
        assert_eq!(map.attribute(1), None);
        assert_eq!(map.name(1), Some(""));
        assert_eq!(map.position("login_source"), Some(2));
        // Not mistaken for our report's `import_error` column (whose cells are restored).
        assert_eq!(map.import_error_column(), None);
        assert_eq!(map.attributes().count(), 3);
        // Two empty cells are not a duplicated header.
        let r = reject(&["unique_id", "", "", "Email"]);
        assert_eq!(r.kind, RejectionKind::UnknownHeader);
        assert!(!r.reason.contains("twice"), "{r}");
    }

    #[test]
    fn a_suggested_name_is_not_also_reported_missing() {
        let r = reject(&["Unique ID", "login_source"]);
        assert!(r.reason.contains("did you mean `unique_id`?"), "{r}");
        assert!(!r.reason.contains("missing"), "{r}");
    }

    #[test]
    fn an_unknown_header_with_nothing_close_lists_the_accepted_names_and_no_command() {
        let r = reject(&["unique_id", "login_source", "zzqx"]);
        assert_eq!(r.kind, RejectionKind::UnknownHeader);
        let text = r.to_string();
        assert!(
            text.contains("`zzqx` is not a column name; the accepted names include unique_id, "),
            "{text}"
        );
        assert!(text.contains("email"), "{text}");
        assert!(
            !text.contains("opscom-import"),
            "no command for a client to run: {text}"
        );
    }
}
