//! [`Records`]: the `csv_core` parser fed from the decoded stream, each record's fields written
//! back to back with the end of each, and its position (bytes consumed, physical line). A data
//! record that is one whole line without a double quote (the usual row) is split at its commas
//! directly, exactly as `csv_core` would split it, without going through its state machine.

use super::source::Source;
use std::io::{self, BufRead, Read};

/// The CSV parser over the decoded stream: `csv_core` fed from a buffer, each record's fields
/// written back to back in `out` with the end of each in `ends`, so that the checks read them
/// without another pass. Positions are the parser's: bytes consumed and physical lines.
#[derive(Debug)]
pub(super) struct Records<R> {
    pub(super) input: io::BufReader<Source<R>>,
    core: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    /// The number of fields of the current record.
    fields: usize,
    /// Decoded bytes consumed.
    pub(super) byte: u64,
    /// The parser has seen the end of the input.
    ended: bool,
    /// Whether quote-free lines are split without `csv_core` (set after the header).
    plain_lines: bool,
    /// Bytes between one field and the next in `out`: 0 from `csv_core` (fields back to back),
    /// 1 from a plain line (the line as it is, commas included).
    gap: usize,
}

impl<R: Read> Records<R> {
    pub(super) fn new(source: Source<R>) -> Self {
        Records {
            input: io::BufReader::with_capacity(CSV_BUFFER, source),
            core: csv_core::ReaderBuilder::new()
                .terminator(csv_core::Terminator::Any(b'\n'))
                .build(),
            out: vec![0; 4096],
            ends: vec![0; 64],
            fields: 0,
            byte: 0,
            ended: false,
            plain_lines: false,
            gap: 0,
        }
    }

    /// The physical line the parser is on (1-based).
    pub(super) fn line(&self) -> u64 {
        self.core.line()
    }

    /// From now on, split quote-free lines directly (see [`Records::read_plain_line`]).
    pub(super) fn split_plain_lines(&mut self) {
        self.plain_lines = true;
    }

    /// Parses the next record; `false` at the end of the input.
    pub(super) fn read(&mut self) -> io::Result<bool> {
        use csv_core::ReadRecordResult as Got;
        self.fields = 0;
        if self.ended {
            return Ok(false);
        }
        if self.plain_lines && self.read_plain_line()? {
            return Ok(true);
        }
        self.gap = 0;
        let (mut out, mut ends) = (0, 0);
        loop {
            let input = self.input.fill_buf()?;
            let (got, read, wrote, ended) = self.core.read_record(
                input,
                self.out.get_mut(out..).unwrap_or_default(),
                self.ends.get_mut(ends..).unwrap_or_default(),
            );
            self.input.consume(read);
            self.byte += read as u64;
            out += wrote;
            ends += ended;
            match got {
                Got::InputEmpty => {}
                Got::OutputFull => self.out.resize(self.out.len() * 2, 0),
                Got::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                Got::Record => {
                    self.fields = ends;
                    return Ok(true);
                }
                Got::End => {
                    self.ended = true;
                    return Ok(false);
                }
            }
        }
    }

    /// The next record when it is a whole line in the buffer (after any blank lines) without a
    /// double quote; `false`, having consumed nothing, for anything else, which `csv_core` then
    /// reads. Between records `csv_core` is at the start of a record, where such a line means
    /// to it exactly this: blank lines skipped, fields split at every comma, the record ended by
    /// its line feed (a CR before it stays in the last field, as with `csv_core`'s `Any(b'\n')`
    /// terminator); so the parser's line count is moved on by the lines taken and its state is
    /// left as it is.
    #[inline]
    fn read_plain_line(&mut self) -> io::Result<bool> {
        let input = self.input.fill_buf()?;
        let blank = input.iter().take_while(|&&b| b == b'\n').count();
        let rest = input.get(blank..).unwrap_or_default();
        let Some(end) = memchr::memchr2(b'\n', b'"', rest) else {
            return Ok(false);
        };
        let Some((b'\n', line)) = rest.get(end).copied().zip(rest.get(..end)) else {
            return Ok(false);
        };
        if self.out.len() < line.len() {
            self.out.resize(line.len().next_power_of_two(), 0);
        }
        if let Some(to) = self.out.get_mut(..line.len()) {
            to.copy_from_slice(line);
        }
        let fields = find_commas(line, &mut self.ends);
        self.gap = 1;
        let consumed = blank + end + 1;
        self.input.consume(consumed);
        self.byte += consumed as u64;
        self.core.set_line(self.core.line() + blank as u64 + 1);
        self.fields = fields;
        Ok(true)
    }

    /// The current record's text, the end of each field in it, and the gap between fields: field
    /// `i` is `text[ends[i - 1] + gap..ends[i]]` (from 0 for the first).
    pub(super) fn record(&self) -> (&[u8], &[usize], usize) {
        let ends = self.ends.get(..self.fields).unwrap_or_default();
        let len = ends.last().copied().unwrap_or(0);
        (self.out.get(..len).unwrap_or_default(), ends, self.gap)
    }

    pub(super) fn source(&self) -> &Source<R> {
        self.input.get_ref()
    }
}

/// Finds every comma of `line` (no quote, no line feed): the end of each field (the position of
/// the comma after it, or the line's length for the last) in `ends` (grown to the line's length
/// when shorter: a line is at most one buffer long); returns the number of fields. Eight bytes at
/// a time, each comma found by a bit trick, not a branch per byte.
#[inline]
fn find_commas(line: &[u8], ends: &mut Vec<usize>) -> usize {
    if ends.len() <= line.len() {
        ends.resize(line.len() + 1, 0);
    }
    let mut fields = 0usize;
    let mut words = line.chunks_exact(8);
    for (i, word) in words.by_ref().enumerate() {
        let mut commas = commas(u64::from_le_bytes(word.try_into().unwrap_or([0; 8])));
        while commas != 0 {
            if let Some(slot) = ends.get_mut(fields) {
                *slot = i * 8 + (commas.trailing_zeros() / 8) as usize;
            }
            fields += 1;
            commas &= commas - 1;
        }
    }
    // The last word's padding is zeros, never a comma.
    let tail = words.remainder();
    let mut last = [0u8; 8];
    last[..tail.len()].copy_from_slice(tail);
    let mut commas = commas(u64::from_le_bytes(last));
    let base = line.len() - tail.len();
    while commas != 0 {
        if let Some(slot) = ends.get_mut(fields) {
            *slot = base + (commas.trailing_zeros() / 8) as usize;
        }
        fields += 1;
        commas &= commas - 1;
    }
    if let Some(slot) = ends.get_mut(fields) {
        *slot = line.len();
    }
    fields + 1
}

/// The top bit of each byte of `word` that is a comma (exact: no carries between bytes).
#[inline(always)]
fn commas(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let x = word ^ (ONES * u64::from(b','));
    !(((x & LOW7) + LOW7) | x) & !LOW7
}

pub(super) const CSV_BUFFER: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::Records;
    use crate::reader::source::{Decoded, Source};
    use std::io::Read;

    /// Hands out at most `chunk` bytes a read, so records straddle the buffer's refills.
    struct Chunked<'a>(&'a [u8], usize);

    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// Every record with its fields, the line the parser is on after it, bytes consumed.
    fn records(data: &[u8], chunk: usize, plain: bool) -> Vec<(Vec<Vec<u8>>, u64, u64)> {
        let source = Source {
            inner: Decoded::Plain(Chunked(data, chunk)),
            cr_only: false,
            delivered: 0,
            record_start: 0,
            limit: u64::MAX,
            last: None,
            last_quote: None,
            last_content: None,
            eof: false,
        };
        let mut rdr = Records::new(source);
        let mut got = Vec::new();
        let mut first = true;
        while rdr.read().expect("read") {
            let (text, ends, gap) = rdr.record();
            let mut start = 0;
            let fields = ends
                .iter()
                .map(|&end| {
                    let field = text[start..end].to_vec();
                    start = end + gap;
                    field
                })
                .collect();
            got.push((fields, rdr.line(), rdr.byte));
            if first && plain {
                rdr.split_plain_lines();
            }
            first = false;
        }
        got
    }

    proptest::proptest! {
        /// Quote-free lines split directly give exactly what `csv_core` gives.
        #[test]
        fn plain_lines_split_as_csv_core_does(
            lines in proptest::collection::vec("[a,\"\r\n é]{0,30}", 0..12),
            chunk in 1usize..40,
        ) {
            let data = lines.concat().into_bytes();
            proptest::prop_assert_eq!(records(&data, chunk, true), records(&data, chunk, false));
            proptest::prop_assert_eq!(records(&data, 1 << 20, true), records(&data, 1 << 20, false));
        }
    }
}
