//! [`Records`]: the `csv_core` parser fed from the decoded stream, each record's fields written
//! back to back with the end of each, and its position (bytes consumed, physical line).

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
        }
    }

    /// The physical line the parser is on (1-based).
    pub(super) fn line(&self) -> u64 {
        self.core.line()
    }

    /// Parses the next record; `false` at the end of the input.
    pub(super) fn read(&mut self) -> io::Result<bool> {
        use csv_core::ReadRecordResult as Got;
        self.fields = 0;
        if self.ended {
            return Ok(false);
        }
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

    /// The current record's text (its fields back to back) and the end of each field in it.
    pub(super) fn record(&self) -> (&[u8], &[usize]) {
        let ends = self.ends.get(..self.fields).unwrap_or_default();
        let len = ends.last().copied().unwrap_or(0);
        (self.out.get(..len).unwrap_or_default(), ends)
    }

    pub(super) fn source(&self) -> &Source<R> {
        self.input.get_ref()
    }
}

pub(super) const CSV_BUFFER: usize = 64 * 1024;
