//! The row types [`ImportFile`](super::ImportFile) hands out: [`RowOutcome`] (a [`ValidRow`] or
//! an [`InvalidRow`] with its problems) and [`ColumnKeys`], the mapped columns every row shares.

use crate::cells::Cells;
use crate::validate::{RowProblem, trim};
use serde::Serialize;
use std::sync::Arc;

/// The verdict on one data row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RowOutcome {
    /// The row can be pushed.
    Valid(ValidRow),
    /// The row fails; the rest of the file goes on.
    Invalid(InvalidRow),
}

impl RowOutcome {
    /// A valid row when `problems` is empty, else an invalid one.
    pub(super) fn new(
        line: u64,
        record: u64,
        raw: Cells,
        keys: &Arc<ColumnKeys>,
        problems: Vec<RowProblem>,
    ) -> RowOutcome {
        if problems.is_empty() {
            RowOutcome::Valid(ValidRow {
                line,
                record,
                raw,
                keys: Arc::clone(keys),
            })
        } else {
            RowOutcome::Invalid(InvalidRow {
                line,
                record,
                raw,
                problems,
            })
        }
    }

    /// The physical line (1-based) where the row starts.
    pub fn line(&self) -> u64 {
        match self {
            RowOutcome::Valid(r) => r.line,
            RowOutcome::Invalid(r) => r.line,
        }
    }

    /// The 1-based index of the row among the file's data rows (all-empty rows not counted).
    pub fn record(&self) -> u64 {
        match self {
            RowOutcome::Valid(r) => r.record,
            RowOutcome::Invalid(r) => r.record,
        }
    }

    /// The cells as uploaded.
    pub fn raw(&self) -> &Cells {
        match self {
            RowOutcome::Valid(r) => &r.raw,
            RowOutcome::Invalid(r) => &r.raw,
        }
    }
}

/// The attribute of each column of a file (none for the ignored `import_error` column and columns
/// without a header): a small copyable table of the mapped columns only, so that a row carries it
/// without an allocation, however many ignored columns the file has.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ColumnKeys {
    /// Column index of each mapped column, in column order.
    columns: [u32; KEYS],
    /// Index into [`opscom_schema::ATTRIBUTES`] of each mapped column.
    attributes: [u8; KEYS],
    /// How many mapped columns.
    mapped: u8,
    /// How many columns in all.
    len: u32,
}

/// At most this many mapped columns: a valid header maps each attribute once.
const KEYS: usize = 32;

impl ColumnKeys {
    /// The table for columns holding the attributes with these JSON keys (`None`, or a key
    /// the schema does not know, for an ignored column).
    pub fn new(keys: &[Option<&str>]) -> Self {
        let mut table = ColumnKeys {
            columns: [0; KEYS],
            attributes: [0; KEYS],
            mapped: 0,
            len: u32::try_from(keys.len()).unwrap_or(u32::MAX),
        };
        for (column, key) in keys.iter().enumerate() {
            let attribute = key
                .and_then(|k| opscom_schema::ATTRIBUTES.iter().position(|a| a.key == k))
                .and_then(|i| u8::try_from(i).ok());
            let (Some(attribute), Ok(column)) = (attribute, u32::try_from(column)) else {
                continue;
            };
            let n = usize::from(table.mapped);
            if n == KEYS {
                break;
            }
            table.columns[n] = column;
            table.attributes[n] = attribute;
            table.mapped += 1;
        }
        table
    }

    /// The mapped columns, in column order: `(column index, JSON key)`.
    pub fn mapped(&self) -> impl Iterator<Item = (usize, &'static str)> + '_ {
        let n = usize::from(self.mapped);
        self.columns[..n]
            .iter()
            .zip(&self.attributes[..n])
            .filter_map(|(&column, &attribute)| {
                let key = opscom_schema::ATTRIBUTES.get(usize::from(attribute))?.key;
                Some((usize::try_from(column).ok()?, key))
            })
    }

    /// The JSON key of column `i`.
    pub fn key(&self, i: usize) -> Option<&'static str> {
        self.mapped()
            .find(|&(column, _)| column == i)
            .map(|(_, k)| k)
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there are no columns.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for ColumnKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries((0..self.len()).map(|i| self.key(i)))
            .finish()
    }
}

/// A row that passed every check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidRow {
    /// The physical line (1-based) where the row starts, as an editor shows it.
    pub line: u64,
    /// The 1-based index among the file's data rows (all-empty rows not counted); stable across
    /// re-reads of the same file, so usable as a checkpoint.
    pub record: u64,
    /// The cells as uploaded (after undoing our neutralisation in files with `import_error`).
    pub raw: Cells,
    /// The JSON key of each column, shared by every row of the file.
    #[serde(skip)]
    keys: Arc<ColumnKeys>,
}

impl ValidRow {
    /// A row from its parts (for tests and tools): `keys[i]` is the JSON key of `raw[i]`.
    pub fn new(line: u64, record: u64, raw: Cells, keys: ColumnKeys) -> Self {
        ValidRow {
            line,
            record,
            raw,
            keys: Arc::new(keys),
        }
    }

    /// The mapped, non-empty values to send: `(JSON key, trimmed value)`, in column order.
    /// Empty cells are left out: they never clear a value OPSCOM holds.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        self.keys.mapped().filter_map(|(i, key)| {
            let value = trim(self.raw.get(i)?);
            (!value.is_empty()).then_some((key, value))
        })
    }

    /// The trimmed value of the attribute with JSON key `key`, if the row has one.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.fields().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The row's `unique_id` (never empty in a valid row).
    pub fn unique_id(&self) -> &str {
        self.value("unique_id").unwrap_or_default()
    }
}

/// A row that fails, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidRow {
    /// The physical line (1-based) where the row starts.
    pub line: u64,
    /// The 1-based index among the file's data rows (see [`ValidRow::record`]).
    pub record: u64,
    /// The cells as uploaded (after undoing our neutralisation in files with `import_error`).
    pub raw: Cells,
    /// Every problem, in column order (never empty).
    pub problems: Vec<RowProblem>,
}

impl InvalidRow {
    /// The reason in plain words: every problem, separated by `; `.
    pub fn reason(&self) -> String {
        self.problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Whether any problem looks like damage done by Excel.
    pub fn looks_like_excel_damage(&self) -> bool {
        self.problems
            .iter()
            .any(RowProblem::looks_like_excel_damage)
    }
}
