//! The per-column plan ([`Plan`], [`Mode`]) precomputed from the header mapping, and
//! [`check_cell`], which checks one trimmed cell against it (and records a `unique_id`'s first
//! line): both row paths use it.

use super::id_hash::id_hash;
use super::seen_ids::SeenIds;
use crate::header::Column;
use crate::validate::{Kind, RowProblem, check_value, is_id_key, quick_ok};

/// Checks the cell `text[s..e]` (already trimmed) of column `col`, and records a `unique_id`'s
/// first line. The usual value is decided on its bytes in a few comparisons; the rest is out of
/// line.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn check_cell(
    plan: &Plan,
    col: usize,
    text: &str,
    (s, e): (usize, usize),
    line: u64,
    seen: &mut SeenIds,
    problems: &mut Vec<RowProblem>,
) {
    let Some(value) = text.as_bytes().get(s..e) else {
        return;
    };
    if value.is_empty() {
        if plan.required {
            required_empty(plan, problems);
        }
        return;
    }
    if !quick_ok(plan.kind, plan.max, plan.id_key, value) {
        check_slow(plan, col, text.get(s..e).unwrap_or_default(), problems);
    }
    if plan.unique_id {
        check_duplicate(plan, value, line, seen, problems);
    }
}

#[cold]
fn required_empty(plan: &Plan, problems: &mut Vec<RowProblem>) {
    problems.push(RowProblem::RequiredEmpty {
        column: plan.name.clone(),
    });
}

#[inline(never)]
fn check_slow(plan: &Plan, col: usize, value: &str, problems: &mut Vec<RowProblem>) {
    match (plan.kind, plan.attr) {
        (Kind::Ignored, _) => {}
        (Kind::Unnamed, _) | (_, None) => problems.push(RowProblem::ValueWithoutHeader {
            column: col + 1,
            value: value.to_owned(),
        }),
        (_, Some(attr)) => check_value(attr, &plan.name, value, plan.id_key, problems),
    }
}

#[inline(always)]
fn check_duplicate(
    plan: &Plan,
    value: &[u8],
    line: u64,
    seen: &mut SeenIds,
    problems: &mut Vec<RowProblem>,
) {
    if let Some(first_line) = seen.first_or_insert(id_hash(value), line) {
        duplicate(plan, value, first_line, problems);
    }
}

#[cold]
fn duplicate(plan: &Plan, value: &[u8], first_line: u64, problems: &mut Vec<RowProblem>) {
    problems.push(RowProblem::DuplicateId {
        column: plan.name.clone(),
        value: String::from_utf8_lossy(value).into_owned(),
        first_line,
    });
}

/// How the fast path treats a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Nothing to check (`import_error`).
    Skip,
    /// Optional free text that is not an id: a cell no longer than `max` bytes needs nothing.
    Fits,
    /// Trimmed and checked.
    Check,
}

/// What to check in one column, precomputed from the mapping.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) mode: Mode,
    kind: Kind,
    /// The byte length up to which a value certainly fits the column's character limit.
    pub(super) max: usize,
    attr: Option<&'static opscom_schema::Attribute>,
    /// The header as the file spells it, for reasons.
    name: String,
    required: bool,
    id_key: bool,
    unique_id: bool,
}

impl Plan {
    pub(super) fn new(column: Column, name: &str) -> Plan {
        let (kind, max, attr) = match column {
            Column::Attribute(attr) => {
                let (kind, max) = Kind::of(attr.limit);
                (kind, max, Some(attr))
            }
            Column::ImportError => (Kind::Ignored, usize::MAX, None),
            Column::Unnamed => (Kind::Unnamed, 0, None),
        };
        let (required, id_key) = (
            attr.is_some_and(|a| a.required),
            attr.is_some_and(|a| is_id_key(a.key)),
        );
        let mode = match kind {
            Kind::Ignored => Mode::Skip,
            Kind::Text if !required && !id_key => Mode::Fits,
            _ => Mode::Check,
        };
        Plan {
            mode,
            kind,
            max,
            attr,
            name: attr
                .map_or(name, |a| if name.is_empty() { a.key } else { name })
                .to_owned(),
            required,
            id_key,
            unique_id: attr.is_some_and(|a| a.key == "unique_id"),
        }
    }
}
