//! [`Cells`]: the cells of one record as uploaded, in one allocation.

use serde::Serialize;
use std::fmt;
use std::ops::Index;

/// The cells of one record, as uploaded (decoded, untrimmed), stored in one string.
///
/// Build one with [`FromIterator`] (`["a", "b"].into_iter().collect::<Cells>()`) or [`Cells::push`].
/// A record holds at most 4 GiB of text.
#[derive(Clone, Default)]
pub struct Cells {
    text: String,
    ends: Vec<u32>,
}

impl Cells {
    /// An empty record with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> Self {
        Cells {
            text: String::with_capacity(bytes),
            ends: Vec::new(),
        }
    }

    /// The cells of a parsed record, `None` when it is not valid UTF-8 (or over 4 GiB). A
    /// trailing CR of the last cell (a CRLF line end) is left out.
    pub(crate) fn from_record(record: &csv::ByteRecord) -> Option<Self> {
        let text = simdutf8::basic::from_utf8(record.as_slice()).ok()?;
        u32::try_from(text.len()).ok()?;
        let mut ends = Vec::with_capacity(record.len());
        let mut end = 0;
        for field in record {
            end += field.len();
            // Fields are split at ASCII delimiters, so this holds for valid UTF-8; checked anyway.
            if !text.is_char_boundary(end) {
                return None;
            }
            ends.push(end as u32);
        }
        let n = ends.len();
        if n > 0 {
            let start = if n == 1 { 0 } else { ends[n - 2] };
            let last = ends[n - 1];
            if last > start && text.as_bytes().get(last as usize - 1) == Some(&b'\r') {
                ends[n - 1] = last - 1;
            }
        }
        Some(Cells {
            text: text.to_owned(),
            ends,
        })
    }

    /// Cells from their text and the end of each cell in it (increasing, at char boundaries).
    pub(crate) fn from_parts(text: String, ends: Vec<u32>) -> Self {
        Cells { text, ends }
    }

    /// Appends a cell.
    pub fn push(&mut self, cell: &str) {
        self.text.push_str(cell);
        self.ends
            .push(u32::try_from(self.text.len()).unwrap_or(u32::MAX));
    }

    /// The number of cells.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no cells.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The cell at `i`.
    pub fn get(&self, i: usize) -> Option<&str> {
        let ends = &self.ends;
        let end = *ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { ends[i - 1] as usize };
        self.text.get(start..end)
    }

    /// The cells in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let end = end as usize;
            let cell = self.text.get(start..end).unwrap_or_default();
            start = end;
            cell
        })
    }

    /// The cells as owned strings.
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_owned).collect()
    }
}

impl Index<usize> for Cells {
    type Output = str;

    /// The cell at `i`; panics when `i >= len()`, like a slice.
    fn index(&self, i: usize) -> &str {
        match self.get(i) {
            Some(cell) => cell,
            None => panic!("cell index {i} out of range for {} cells", self.len()),
        }
    }
}

impl<S: AsRef<str>> FromIterator<S> for Cells {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut cells = Cells::default();
        for s in iter {
            cells.push(s.as_ref());
        }
        cells
    }
}

impl PartialEq for Cells {
    fn eq(&self, other: &Cells) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Cells {}

impl std::hash::Hash for Cells {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.len().hash(state);
        for cell in self.iter() {
            cell.hash(state);
        }
    }
}

impl<S: AsRef<str>> PartialEq<[S]> for Cells {
    fn eq(&self, other: &[S]) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(a, b)| a == b.as_ref())
    }
}

impl<S: AsRef<str>> PartialEq<Vec<S>> for Cells {
    fn eq(&self, other: &Vec<S>) -> bool {
        *self == other[..]
    }
}

impl fmt::Debug for Cells {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Cells {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::Cells;

    #[test]
    fn cells_round_trip() {
        let cells: Cells = ["a", "", "ßé,\n"].into_iter().collect();
        assert_eq!(cells.len(), 3);
        assert_eq!(cells.get(1), Some(""));
        assert_eq!(&cells[2], "ßé,\n");
        assert_eq!(cells.get(3), None);
        assert_eq!(cells, vec!["a", "", "ßé,\n"]);
        assert_eq!(format!("{cells:?}"), r#"["a", "", "ßé,\n"]"#);
        let wide: Cells = (0..40).map(|i| i.to_string()).collect();
        assert_eq!(wide.len(), 40);
        assert_eq!(wide.get(39), Some("39"));
        assert_eq!(wide.iter().nth(35), Some("35"));
        assert_eq!(wide, (0..40).map(|i| i.to_string()).collect::<Vec<_>>());
    }
}
