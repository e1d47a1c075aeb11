//! Header mapping: each header cell to an attribute of the schema, the ignored `import_error`, or
//! an unnamed column (an empty header cell).

use crate::error::{Rejection, RejectionKind, UnknownHeader};
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
        // (index in `problems`, the header) for each unknown header.
        let mut unknown: Vec<(usize, UnknownHeader)> = Vec::new();
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
                // The message is written once every column is known (see `unknown_message`).
                let closest = closest_names(name);
                if let Some(&near) = closest.first() {
                    suggested.push(near);
                }
                unknown.push((
                    problems.len(),
                    UnknownHeader {
                        column: i,
                        given: name.to_owned(),
                        closest,
                        exact_fix: respelling_of(name),
                    },
                ));
                problems.push((RejectionKind::UnknownHeader, String::new()));
            }
            columns.push(Column::ImportError);
            names.push(name.to_owned());
        }
        let conflicts = settle_exact_fixes(&names, &mut unknown);
        for ((problem, header), conflict) in unknown.iter().zip(&conflicts) {
            problems[*problem].1 = unknown_message(header, *conflict);
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
        let headers = unknown.into_iter().map(|(_, h)| h).collect();
        Err(Rejection::new(kind, Some(line), reason, fix_for(kind)).with_headers(headers))
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

/// At most this many closest names per unknown header.
const MAX_CLOSEST: usize = 3;

/// Every accepted header name: each attribute's possible names, then `import_error`.
fn accepted_names() -> impl Iterator<Item = &'static str> {
    opscom_schema::attributes()
        .flat_map(|a| a.possible_names.iter().copied())
        .chain([IMPORT_ERROR_COLUMN])
}

/// Up to [`MAX_CLOSEST`] accepted names close to `header`, best first: the ranking of
/// `opscom_schema::closest` (so the first name is always `nearest(header)`), with a
/// respelling (see [`respelling_of`]) put first.
pub(crate) fn closest_names(header: &str) -> Vec<&'static str> {
    let mut closest = opscom_schema::closest(header);
    if let Some(fix) = respelling_of(header) {
        closest.retain(|&n| n != fix);
        closest.insert(0, fix);
    }
    closest.truncate(MAX_CLOSEST);
    closest
}

/// The one accepted name `header` equals once case, white space, dashes and underscores are
/// ignored; `None` when there is none or more than one.
pub(crate) fn respelling_of(header: &str) -> Option<&'static str> {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace() && !matches!(c, '-' | '_'))
            .flat_map(char::to_lowercase)
            .collect()
    };
    let wanted = squash(header);
    if wanted.is_empty() {
        return None;
    }
    let mut found = accepted_names().filter(|n| squash(n) == wanted);
    match (found.next(), found.next()) {
        (Some(name), None) => Some(name),
        _ => None,
    }
}

/// What an accepted name stands for, to find two columns naming one thing.
#[derive(PartialEq, Eq, Clone, Copy)]
enum Target {
    Attribute(&'static str),
    ImportError,
}

fn target_of(name: &str) -> Option<Target> {
    if name == IMPORT_ERROR_COLUMN {
        Some(Target::ImportError)
    } else {
        opscom_schema::lookup(name).map(|a| Target::Attribute(a.key))
    }
}

/// Drops each exact fix that would make its column a duplicate, or a second name of an
/// attribute, of another column. Returns, per unknown header, the other column (0-based) a
/// dropped fix clashed with.
///
/// What each column would name once the fixes are made: an unknown column its fix's attribute
/// (nothing without a fix); any other column what its name names, a repeat of an unknown
/// header what that header's fix would name.
fn settle_exact_fixes(
    names: &[String],
    unknown: &mut [(usize, UnknownHeader)],
) -> Vec<Option<usize>> {
    let proposed = |header: &UnknownHeader| header.exact_fix.and_then(target_of);
    let would_name: Vec<Option<Target>> = names
        .iter()
        .enumerate()
        .map(|(j, name)| {
            if let Some((_, h)) = unknown.iter().find(|(_, h)| h.column == j) {
                proposed(h)
            } else if let Some(target) = target_of(name) {
                Some(target)
            } else {
                (unknown.iter().find(|(_, h)| h.given == *name)).and_then(|(_, h)| proposed(h))
            }
        })
        .collect();
    let mut conflicts = Vec::with_capacity(unknown.len());
    for (_, header) in unknown.iter_mut() {
        let clash = proposed(header).and_then(|target| {
            (would_name.iter().enumerate())
                .find(|&(j, t)| j != header.column && *t == Some(target))
                .map(|(j, _)| j)
        });
        if clash.is_some() {
            header.exact_fix = None;
        }
        conflicts.push(clash);
    }
    conflicts
}

/// The sentence for one unknown header; `clash` is the column its respelling would clash with.
fn unknown_message(header: &UnknownHeader, clash: Option<usize>) -> String {
    let given = &header.given;
    let number = header.column + 1;
    let mut msg = format!("Column {number}: `{given}` is not a column name");
    match header.closest.split_first() {
        Some((first, rest)) => {
            let _ = write!(msg, "; did you mean `{first}`?");
            if let Some(other) = clash {
                let _ = write!(
                    msg,
                    " (Column {} already names that attribute: keep one of the two.)",
                    other + 1
                );
            } else if header.exact_fix.is_none() && !rest.is_empty() {
                let others: Vec<String> = rest.iter().map(|n| format!("`{n}`")).collect();
                let _ = write!(msg, " Other close names: {}.", others.join(", "));
            }
        }
        None => {
            // Nothing close: name every attribute's usual header, so that the client can pick
            // one without any tool.
            let accepted: Vec<&str> = opscom_schema::attributes()
                .filter_map(|a| a.possible_names.first().copied())
                .collect();
            let _ = write!(msg, "; the accepted names include {}.", accepted.join(", "));
        }
    }
    msg
}

pub(crate) fn clean(cell: &str) -> &str {
    cell.trim_start_matches('\u{feff}').trim()
}

fn fix_for(kind: RejectionKind) -> &'static str {
    match kind {
        RejectionKind::UnknownHeader => {
            "Rename each column to one of the accepted names given for it, written exactly as shown (names are case-sensitive: lower case, words joined by `_`), or delete the column."
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
                .contains("Column 3: `Email` is not a column name; did you mean `email`?"),
            "{r}"
        );
        assert_eq!(r.line, Some(1));
        assert_eq!(r.headers.len(), 1);
        let h = &r.headers[0];
        assert_eq!((h.column, h.given.as_str()), (2, "Email"));
        assert_eq!(h.closest.first(), Some(&"email"));
        assert_eq!(h.exact_fix, Some("email"));
        assert_eq!(r.header_fixes().map(<[_]>::len), Some(1));
    }

    #[test]
    fn exact_fixes_ignore_case_spaces_dashes_and_underscores() {
        for given in [
            "First Name",
            "FIRST-NAME",
            "firstname",
            " first_name_ ",
            "First_-_Name",
        ] {
            assert_eq!(respelling_of(clean(given)), Some("first_name"), "{given}");
        }
        assert_eq!(respelling_of("Zip 2"), Some("zip2"));
        assert_eq!(respelling_of("Import Error"), Some("import_error"));
        // Not a respelling: a letter differs, or a dot (not ignored).
        assert_eq!(respelling_of("Frist Name"), None);
        assert_eq!(respelling_of("first.name"), None);
        assert_eq!(respelling_of(""), None);
        let r = reject(&["unique_id", "login_source", "  FIRST-NAME "]);
        assert_eq!(r.headers[0].given, "FIRST-NAME");
        assert_eq!(r.headers[0].exact_fix, Some("first_name"));
        assert_eq!(r.headers[0].closest[0], "first_name");
    }

    #[test]
    fn closest_names_rank_like_nearest_and_stop_at_three() {
        for given in [
            "Email",
            "Frist Name",
            "zipcode",
            "Postal",
            "State 2",
            "usr",
            "LoginSrc",
            "e",
        ] {
            let closest = closest_names(given);
            assert!(closest.len() <= 3, "{given}: {closest:?}");
            assert_eq!(
                closest.first().copied(),
                opscom_schema::nearest(given),
                "{given}"
            );
        }
        assert_eq!(closest_names("zzqx"), Vec::<&str>::new());
        let frist = closest_names("Frist Name");
        assert_eq!(frist[0], "first_name");
        assert!(frist.len() > 1, "{frist:?}");
    }

    #[test]
    fn every_unknown_header_lists_its_closest_names() {
        let r = reject(&["unique_id", "login_source", "Frist Name", "zzqx", "E-Mail"]);
        assert_eq!(r.kind, RejectionKind::UnknownHeader);
        let given: Vec<(usize, &str)> = r
            .headers
            .iter()
            .map(|h| (h.column, h.given.as_str()))
            .collect();
        assert_eq!(given, [(2, "Frist Name"), (3, "zzqx"), (4, "E-Mail")]);
        assert_eq!(r.headers[0].exact_fix, None);
        assert!(r.headers[1].closest.is_empty());
        assert_eq!(r.headers[2].exact_fix, Some("email"));
        assert_eq!(r.header_fixes(), None, "not every header has a fix");
        let others: Vec<String> = r.headers[0].closest[1..]
            .iter()
            .map(|n| format!("`{n}`"))
            .collect();
        let expected = format!(
            "Column 3: `Frist Name` is not a column name; did you mean `first_name`? Other close names: {}.",
            others.join(", ")
        );
        assert!(r.reason.contains(&expected), "{r}");
        assert!(
            r.reason
                .contains("Column 4: `zzqx` is not a column name; the accepted names include"),
            "{r}"
        );
        assert!(
            r.reason
                .contains("Column 5: `E-Mail` is not a column name; did you mean `email`?"),
            "{r}"
        );
        assert!(!r.to_string().contains("opscom-import"), "no command: {r}");
        assert!(r.fix.contains("accepted names given for it"), "{r}");
    }

    #[test]
    fn no_exact_fix_that_would_clash_with_another_column() {
        // The name is already a column.
        let r = reject(&["unique_id", "login_source", "email", "Email"]);
        assert_eq!(r.headers[0].exact_fix, None);
        assert!(
            r.reason
                .contains("did you mean `email`? (Column 3 already names that attribute"),
            "{r}"
        );
        // Another name of the attribute is a column.
        let r = reject(&["unique_id", "login_source", "state", "Province"]);
        assert_eq!(r.headers[0].exact_fix, None);
        // Two columns respell one name, or two names of one attribute.
        let r = reject(&["unique_id", "login_source", "First Name", "FIRSTNAME"]);
        assert!(
            r.headers.iter().all(|h| h.exact_fix.is_none()),
            "{:?}",
            r.headers
        );
        let r = reject(&["unique_id", "login_source", "State", "PROVINCE"]);
        assert!(
            r.headers.iter().all(|h| h.exact_fix.is_none()),
            "{:?}",
            r.headers
        );
        // The same unknown header twice.
        let r = reject(&["unique_id", "login_source", "Email", "Email"]);
        assert_eq!(r.headers.len(), 1);
        assert_eq!(r.headers[0].exact_fix, None);
        // A real `import_error` column.
        let r = reject(&["unique_id", "login_source", "import_error", "Import Error"]);
        assert_eq!(r.headers[0].exact_fix, None);
        // Different attributes are no clash.
        let r = reject(&[
            "unique_id",
            "login_source",
            "First Name",
            "Last Name",
            "Zip",
        ]);
        let fixes: Vec<_> = r.headers.iter().map(|h| h.exact_fix).collect();
        assert_eq!(fixes, [Some("first_name"), Some("last_name"), Some("zip")]);
    }

    #[test]
    fn other_rejections_have_no_headers() {
        let r = reject(&["unique_id", "email"]);
        assert!(r.headers.is_empty());
        assert_eq!(r.header_fixes(), None);
        let json = serde_json::to_string(&r).unwrap_or_default();
        assert!(!json.contains("headers"), "{json}");
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
