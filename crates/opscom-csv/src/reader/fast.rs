//! The fast row path: the usual row (no `import_error` column, as many cells as the header, at
//! most 32 cells and 64 KiB) checked on the record's bytes, cell bounds inline, one copy.

use super::plan::{Mode, check_cell};
use super::{ImportFile, RowOutcome};
use crate::cells::{Cells, INLINE};
use crate::error::FileError;
use std::io::Read;

impl<R: Read> ImportFile<R> {
    /// The usual row (no `import_error` column, as many cells as the header), on the record's
    /// bytes: the text validated once, the cells' bounds taken in one tight pass, then each
    /// column checked as its [`Mode`] says, and the text copied once. `Ok(None)` for an
    /// all-empty row.
    pub(super) fn fast_outcome(&mut self, line: u64) -> Result<Option<RowOutcome>, FileError> {
        let (bytes, fields, gap) = self.rdr.record();
        let Ok(text) = simdutf8::basic::from_utf8(bytes) else {
            return Err(self.not_text(line));
        };
        let n = fields.len().min(INLINE);
        // `starts[i]..cuts[i + 1]` is cell `i`: `starts[i]` is `cuts[i]` after the gap.
        let (mut cuts, mut starts) = ([0u16; INLINE + 1], [0u16; INLINE + 1]);
        // A cell must start on a character boundary: not so only if the file changed under us
        // (the record's text is valid UTF-8, but a delimiter split a character).
        let mut split = false;
        let gap16 = gap as u16;
        for ((cut, start), &field_end) in cuts[1..].iter_mut().zip(&mut starts[1..]).zip(fields) {
            *cut = field_end as u16;
            *start = (field_end as u16).wrapping_add(gap16);
            split |= bytes.get(field_end).is_some_and(|&b| (b as i8) < -0x40);
        }
        if split {
            return Err(self.not_text(line));
        }
        // The CR of a CRLF line end stays out of the last cell.
        let last = n.min(INLINE);
        let (start, end) = (starts[last.saturating_sub(1)], cuts[last]);
        if end > start && bytes.get(usize::from(end) - 1) == Some(&b'\r') {
            cuts[last] -= 1;
        }
        let ends = &cuts[1..=last];
        let bounds = |col: usize| {
            let col = col & (INLINE - 1);
            (usize::from(starts[col]), usize::from(cuts[col + 1]))
        };
        let mut problems = Vec::new();
        // Whether a checked cell has a value; when none has, the row may be all empty.
        let mut any = false;
        // Trimming only shortens a value: free text that fits untrimmed needs nothing more.
        // The usual row: every such cell fits, and only the other columns need a look.
        if self.fits.iter().all(|&(col, max)| {
            let (s, e) = bounds(col);
            e.saturating_sub(s) <= max
        }) {
            for &col in &self.checked {
                let (Some(plan), (s, e)) = (self.plan.get(col), bounds(col)) else {
                    continue;
                };
                let range = trim_range(text, s, e);
                any |= range.0 < range.1;
                check_cell(plan, col, text, range, line, &mut self.seen, &mut problems);
            }
        } else {
            for (col, plan) in self.plan.iter().enumerate() {
                let (s, e) = bounds(col);
                match plan.mode {
                    Mode::Skip => {}
                    Mode::Fits if e.saturating_sub(s) <= plan.max => {}
                    Mode::Fits | Mode::Check => {
                        let range = trim_range(text, s, e);
                        any |= range.0 < range.1;
                        check_cell(plan, col, text, range, line, &mut self.seen, &mut problems);
                    }
                }
            }
        }
        if !any && !has_value(text, ends, gap) {
            return Ok(None);
        }
        self.records += 1;
        let (record, raw) = (
            self.records,
            Cells::from_inline(text.to_owned(), ends, gap as u8),
        );
        Ok(Some(RowOutcome::new(
            line, record, raw, &self.keys, problems,
        )))
    }
}

/// The range of `text[s..e]` without surrounding whitespace; the usual cell, starting and ending
/// with a printable ASCII character, is decided by two comparisons.
#[inline(always)]
fn trim_range(text: &str, s: usize, e: usize) -> (usize, usize) {
    let bytes = text.as_bytes();
    let printable = |i: usize| bytes.get(i).is_some_and(|b| b.wrapping_sub(b'!') < 0x5f);
    if s >= e || (printable(s) && printable(e - 1)) {
        return (s, e);
    }
    trim_range_slow(text, s, e)
}

#[inline(never)]
fn trim_range_slow(text: &str, s: usize, e: usize) -> (usize, usize) {
    let Some(cell) = text.get(s..e) else {
        return (s, e);
    };
    let start = cell.trim_start();
    let s = s + (cell.len() - start.len());
    (s, s + start.trim_end().len())
}

/// Whether any cell of `text` (cut at `ends`, `gap` bytes between cells) has a value once
/// trimmed.
#[cold]
fn has_value(text: &str, ends: &[u16], gap: usize) -> bool {
    let mut start = 0;
    ends.iter().any(|&end| {
        let end = usize::from(end);
        let (s, e) = trim_range(text, start, end);
        start = end + gap;
        s < e
    })
}
