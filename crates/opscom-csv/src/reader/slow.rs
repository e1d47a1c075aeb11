//! The general row path: any row the fast path does not take (a field count that differs from
//! the header's, a file with `import_error` whose neutralisation is undone, a very wide or long
//! record) becomes owned [`Cells`] first, then each cell is trimmed and checked.

use super::plan::check_cell;
use super::{ImportFile, InvalidRow, RowOutcome};
use crate::cells::Cells;
use crate::error::FileError;
use crate::formula;
use crate::validate::{RowProblem, trim};
use std::io::Read;

impl<R: Read> ImportFile<R> {
    /// The cells of the current record: a trailing CR of the last cell removed (CRLF files),
    /// and our neutralisation undone in files carrying `import_error`.
    pub(super) fn cells(&self, line: u64) -> Result<Cells, FileError> {
        let (text, ends, gap) = self.rdr.record();
        let Some(cells) = Cells::from_fields(text, ends, gap) else {
            return Err(self.not_text(line));
        };
        if !self.restore {
            return Ok(cells);
        }
        let mut restored = Cells::with_capacity(text.len());
        for cell in cells.iter() {
            restored.push(&formula::restore(cell));
        }
        Ok(restored)
    }

    pub(super) fn outcome(&mut self, line: u64, raw: Cells) -> RowOutcome {
        let record = self.records;
        let expected = self.map.len();
        if raw.len() != expected {
            let extra = raw.iter().skip(expected).map(str::to_owned).collect();
            let got = raw.len();
            return RowOutcome::Invalid(InvalidRow {
                line,
                record,
                raw,
                problems: vec![RowProblem::FieldCount {
                    expected,
                    got,
                    extra,
                }],
            });
        }
        let mut problems = Vec::new();
        for (col, (plan, cell)) in self.plan.iter().zip(raw.iter()).enumerate() {
            let value = trim(cell);
            check_cell(
                plan,
                col,
                value,
                (0, value.len()),
                line,
                &mut self.seen,
                &mut problems,
            );
        }
        RowOutcome::new(line, record, raw, &self.keys, problems)
    }
}
