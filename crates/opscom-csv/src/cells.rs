//! [`Cells`]: the cells of one record as uploaded, in one allocation.

use serde::Serialize;
use std::fmt;
use std::ops::Index;

/// The cells of one record, as uploaded (decoded, untrimmed), stored in one string.
///
/// Build one with [`FromIterator`] (`["a", "b"].into_iter().collect::<Cells>()`) or [`Cells::push`].
/// A record holds at most 4 GiB of text. The usual record (at most 32 cells, at most 64 KiB) is
/// one allocation: the cells' bounds are kept inline.
#[derive(Clone, Default)]
pub struct Cells {
    text: String,
    ends: Ends,
    /// Bytes between one cell and the next in `text`: 0 (back to back) or 1 (a record's line as
    /// read, the commas between its cells kept): cell `i` starts `gap` bytes after cell `i - 1`
    /// ends.
    gap: u8,
}

/// How many cell ends a [`Cells`] keeps inline.
pub(crate) const INLINE: usize = 32;

/// The end of each cell in the text: inline while they are few and small, else on the heap.
#[derive(Clone)]
enum Ends {
    Inline { len: u8, ends: [u16; INLINE] },
    Heap(Vec<u32>),
}

impl Default for Ends {
    fn default() -> Self {
        Ends::Inline {
            len: 0,
            ends: [0; INLINE],
        }
    }
}

impl Ends {
    fn len(&self) -> usize {
        match self {
            Ends::Inline { len, .. } => usize::from(*len),
            Ends::Heap(v) => v.len(),
        }
    }

    fn get(&self, i: usize) -> Option<usize> {
        match self {
            Ends::Inline { len, ends } => ends[..usize::from(*len)].get(i).map(|&e| usize::from(e)),
            Ends::Heap(v) => v.get(i).map(|&e| e as usize),
        }
    }

    fn push(&mut self, end: usize) {
        let end = u32::try_from(end).unwrap_or(u32::MAX);
        match self {
            Ends::Inline { len, ends } => {
                let n = usize::from(*len);
                match u16::try_from(end) {
                    Ok(short) if n < INLINE => {
                        ends[n] = short;
                        *len += 1;
                    }
                    _ => {
                        let mut v: Vec<u32> = ends[..n].iter().map(|&e| u32::from(e)).collect();
                        v.push(end);
                        *self = Ends::Heap(v);
                    }
                }
            }
            Ends::Heap(v) => v.push(end),
        }
    }

    fn set_last(&mut self, end: usize) {
        match self {
            Ends::Inline { len, ends } => {
                if let (Some(last), Ok(end)) = (
                    usize::from(*len)
                        .checked_sub(1)
                        .and_then(|i| ends.get_mut(i)),
                    u16::try_from(end),
                ) {
                    *last = end;
                }
            }
            Ends::Heap(v) => {
                if let (Some(last), Ok(end)) = (v.last_mut(), u32::try_from(end)) {
                    *last = end;
                }
            }
        }
    }
}

impl Cells {
    /// An empty record with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> Self {
        Cells {
            text: String::with_capacity(bytes),
            ends: Ends::default(),
            gap: 0,
        }
    }

    /// The cells of a parsed record (field `i` is `text[field_ends[i - 1] + gap..field_ends[i]]`),
    /// `None` when it is not valid UTF-8 (or over 4 GiB). A trailing CR of the last cell (a CRLF
    /// line end) is left out. The cells are stored back to back.
    pub(crate) fn from_fields(text: &[u8], field_ends: &[usize], gap: usize) -> Option<Self> {
        let text = simdutf8::basic::from_utf8(text).ok()?;
        u32::try_from(text.len()).ok()?;
        if gap != 0 {
            let mut cells = Cells::with_capacity(text.len());
            let mut start = 0;
            for (i, &end) in field_ends.iter().enumerate() {
                let mut cell = text.get(start..end)?;
                if i + 1 == field_ends.len() {
                    cell = cell.strip_suffix('\r').unwrap_or(cell);
                }
                cells.push(cell);
                start = end + gap;
            }
            return Some(cells);
        }
        let mut ends = Ends::default();
        for &end in field_ends {
            // Fields are split at ASCII delimiters, so this holds for valid UTF-8; checked anyway.
            if !text.is_char_boundary(end) {
                return None;
            }
            ends.push(end);
        }
        let n = ends.len();
        if n > 0 {
            let start = if n == 1 { 0 } else { ends.get(n - 2)? };
            let last = ends.get(n - 1)?;
            if last > start && text.as_bytes().get(last - 1) == Some(&b'\r') {
                ends.set_last(last - 1);
            }
        }
        Some(Cells {
            text: text.to_owned(),
            ends,
            gap: 0,
        })
    }

    /// Cells from their text and `ends` (at most [`INLINE`]), the end of each cell in the text
    /// (increasing, at char boundaries), each cell starting `gap` (0 or 1) bytes after the end
    /// of the one before.
    #[inline]
    pub(crate) fn from_inline(text: String, ends: &[u16], gap: u8) -> Self {
        let mut inline = [0; INLINE];
        let len = ends.len().min(INLINE);
        inline[..len].copy_from_slice(&ends[..len]);
        Cells {
            text,
            ends: Ends::Inline {
                len: len as u8,
                ends: inline,
            },
            gap,
        }
    }

    /// The start of cell `i` (which exists).
    #[inline]
    fn start(&self, i: usize) -> Option<usize> {
        match i.checked_sub(1) {
            Some(before) => Some(self.ends.get(before)? + usize::from(self.gap)),
            None => Some(0),
        }
    }

    /// Appends a cell.
    pub fn push(&mut self, cell: &str) {
        if self.gap != 0 {
            *self = self.iter().collect();
        }
        self.text.push_str(cell);
        self.ends.push(self.text.len());
    }

    /// The number of cells.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no cells.
    pub fn is_empty(&self) -> bool {
        self.ends.len() == 0
    }

    /// The cell at `i`.
    pub fn get(&self, i: usize) -> Option<&str> {
        let end = self.ends.get(i)?;
        self.text.get(self.start(i)?..end)
    }

    /// The cells in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        let mut start = 0;
        (0..self.len()).map(move |i| {
            let end = self.ends.get(i).unwrap_or(start);
            let cell = self.text.get(start..end).unwrap_or_default();
            start = end + usize::from(self.gap);
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
        // Past 64 KiB of text the bounds move to the heap too.
        let long: Cells = ["a".repeat(70_000), "b".to_owned(), String::new()]
            .into_iter()
            .collect();
        assert_eq!(long.len(), 3);
        assert_eq!(long.get(0).map(str::len), Some(70_000));
        assert_eq!(long.get(1), Some("b"));
        assert_eq!(long.get(2), Some(""));
        assert_eq!(long.iter().count(), 3);
        // A line kept with its commas (and a CR left out of the last cell).
        let mut line = Cells::from_inline("a,,bé,c\r".to_owned(), &[1, 2, 6, 8], 1);
        assert_eq!(line, vec!["a", "", "bé", "c"]);
        assert_eq!(
            (line.get(2), line.get(3), line.get(4)),
            (Some("bé"), Some("c"), None)
        );
        assert_eq!(line, ["a", "", "bé", "c"].into_iter().collect::<Cells>());
        line.push("d");
        assert_eq!(line, vec!["a", "", "bé", "c", "d"]);
        let fields = Cells::from_fields(b"a,,b\r", &[1, 2, 5], 1);
        assert_eq!(fields, Some(["a", "", "b"].into_iter().collect()));
    }
}
