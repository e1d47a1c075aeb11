//! [`ImportFile`]: the streaming reader that decodes, maps the header and validates every row.
//!
//! One file per job: `rows` (the row types handed out), `source` (the decoded byte stream),
//! `records` (the `csv_core` wrapper), `plan` (what to check in each column), `id_hash` and
//! `seen_ids` (the duplicate-`unique_id` check), and the two row paths, `fast` (the usual row, on
//! its bytes) and `slow` (everything else, on owned cells). This file holds [`ImportFile`]
//! itself: opening, the header, and the choice of path for each record.

mod fast;
mod id_hash;
mod plan;
mod records;
mod rows;
mod seen_ids;
mod slow;
mod source;

pub use rows::{ColumnKeys, InvalidRow, RowOutcome, ValidRow};

use crate::cells::INLINE;
use crate::error::{FileError, Rejection, RejectionKind, SAVE_AS_CSV_UTF8};
use crate::header::HeaderMap;
use crate::sniff::{self, Encoding, SniffError};
use crate::validate::trim;
use encoding_rs_io::DecodeReaderBytesBuilder;
use plan::{Mode, Plan};
use records::{CSV_BUFFER, Records};
use seen_ids::SeenIds;
use source::{Decoded, RecordTooLarge, Source};
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

/// How to read a file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadOptions {
    /// A record larger than this (in decoded bytes) rejects the file as an unterminated quote.
    pub max_record_bytes: usize,
    /// A file larger than this (in bytes as uploaded) is rejected whole.
    pub max_file_bytes: Option<u64>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            max_record_bytes: 1024 * 1024,
            max_file_bytes: None,
        }
    }
}

impl ReadOptions {
    /// Sets [`ReadOptions::max_record_bytes`].
    pub fn max_record_bytes(mut self, bytes: usize) -> Self {
        self.max_record_bytes = bytes;
        self
    }

    /// Sets [`ReadOptions::max_file_bytes`].
    pub fn max_file_bytes(mut self, bytes: Option<u64>) -> Self {
        self.max_file_bytes = bytes;
        self
    }
}

/// One client file, opened for reading: the encoding is known and the header mapped.
///
/// Rows come from [`ImportFile::next_row`] (or the [`Iterator`] impl), one at a time; memory
/// does not grow with the file except for the duplicate-`unique_id` check (a 12-byte slot per
/// row in a table kept at most half full: 24 to 48 bytes per row).
/// Reading the same bytes again gives the same outcomes.
///
/// ```
/// use opscom_csv::{ImportFile, ReadOptions, RowOutcome};
/// let data = "unique_id,login_source,email\n1,OPSCOM,jane@acme.edu\n2,OPSCOM,nope\n";
/// let mut file = ImportFile::open(std::io::Cursor::new(data), "users.csv", &ReadOptions::default())?;
/// let RowOutcome::Valid(row) = file.next_row().unwrap()? else { panic!() };
/// assert_eq!(row.unique_id(), "1");
/// let RowOutcome::Invalid(row) = file.next_row().unwrap()? else { panic!() };
/// assert_eq!((row.line, row.reason().as_str()), (3, "`email` is not a valid e-mail address: `nope`"));
/// assert!(file.next_row().is_none());
/// # Ok::<(), opscom_csv::FileError>(())
/// ```
#[derive(Debug)]
pub struct ImportFile<R> {
    name: String,
    rdr: Records<R>,
    header_raw: Vec<String>,
    map: HeaderMap,
    restore: bool,
    /// Per column: what to check, precomputed from the mapping.
    plan: Vec<Plan>,
    /// The columns in [`Mode::Fits`] with a limit, with the limit in bytes.
    fits: Vec<(usize, usize)>,
    /// The columns in [`Mode::Check`], in order.
    checked: Vec<usize>,
    keys: Arc<ColumnKeys>,
    encoding: Encoding,
    max_record_bytes: u64,
    seen: SeenIds,
    records: u64,
    done: bool,
    ended_with_terminator: Option<bool>,
}

impl<R: Read + Seek> ImportFile<R> {
    /// Sniffs the encoding (reading the whole file once), rewinds, and reads and maps the header.
    ///
    /// `display_name` names the file in errors. A content problem is a
    /// [`crate::ErrorKind::Rejected`], an unreadable file a [`crate::ErrorKind::Io`].
    pub fn open(
        mut reader: R,
        display_name: &str,
        options: &ReadOptions,
    ) -> Result<Self, FileError> {
        let io_err = |e| FileError::io(display_name, e);
        let sniffed = match sniff::sniff(&mut reader, options.max_file_bytes) {
            Ok(s) => s,
            Err(SniffError::Io(e)) => return Err(io_err(e)),
            Err(SniffError::Rejected(r)) => return Err(FileError::rejected(display_name, r)),
        };
        let encoding = sniffed.encoding;
        reader
            .seek(SeekFrom::Start(encoding.bom_len()))
            .map_err(io_err)?;
        let inner = match encoding.decoder() {
            None => Decoded::Plain(reader),
            Some(enc) => Decoded::Decoded(
                DecodeReaderBytesBuilder::new()
                    .encoding(Some(enc))
                    .bom_sniffing(false)
                    .build(reader),
            ),
        };
        let max_record_bytes = options.max_record_bytes as u64;
        let source = Source {
            inner,
            cr_only: sniffed.cr_only,
            delivered: 0,
            record_start: 0,
            limit: max_record_bytes + CSV_BUFFER as u64,
            last: None,
            last_quote: None,
            last_content: None,
            eof: false,
        };
        let rdr = Records::new(source);
        let mut file = ImportFile {
            name: display_name.to_owned(),
            rdr,
            header_raw: Vec::new(),
            map: HeaderMap::default(),
            restore: false,
            plan: Vec::new(),
            fits: Vec::new(),
            checked: Vec::new(),
            keys: Arc::new(ColumnKeys::new(&[])),
            encoding,
            max_record_bytes,
            seen: SeenIds::with_room(sniffed.lines_estimate),
            records: 0,
            done: false,
            ended_with_terminator: None,
        };
        file.read_header()?;
        file.rdr.split_plain_lines();
        Ok(file)
    }
}

impl<R: Read> ImportFile<R> {
    fn reject(
        &self,
        kind: RejectionKind,
        line: Option<u64>,
        reason: String,
        fix: &str,
    ) -> FileError {
        FileError::rejected(&self.name, Rejection::new(kind, line, reason, fix))
    }

    /// Reads the next record; `Ok(Some(line))` with the record in `self.rdr`.
    fn read_record(&mut self) -> Result<Option<u64>, FileError> {
        let (line_before, byte_before) = (self.rdr.line(), self.rdr.byte);
        match self.rdr.read() {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) => return Err(self.io_error(e, line_before)),
        }
        let line_after = self.rdr.line();
        let source = self.rdr.source();
        let ended_by_eof = source.eof;
        // A plain line's gaps (commas) are no line feeds and never end at the end of the file.
        let (text, ends, _) = self.rdr.record();
        // Line ends consumed by this read: blank lines before the record, line breaks inside
        // quoted values, and the record's own terminator (unless it ended at the end of the file).
        // Counting the ones inside values is only needed when there is more than the terminator.
        let terminator = u64::from(!ended_by_eof);
        let consumed = line_after.saturating_sub(line_before);
        let internal = if consumed <= terminator {
            0
        } else {
            memchr::memchr_iter(b'\n', text).count() as u64
        };
        let line = line_after.saturating_sub(internal + terminator).max(1);
        let last_field = match ends {
            [.., before, last] => text.get(*before..*last),
            [last] => text.get(..*last),
            [] => None,
        };
        let unclosed = ended_by_eof
            && (source.last == Some(b'\n')
                || (last_field.is_some_and(|f| f.contains(&b'\n'))
                    && source.last_content != Some(b'"')));
        let bytes = self.rdr.byte - byte_before;
        if unclosed {
            return Err(self.unterminated(line));
        }
        if bytes > self.max_record_bytes {
            // One physical line is a long line; a value spanning lines is a stray quote.
            return Err(if internal == 0 {
                self.line_too_long(line)
            } else {
                self.unterminated(line)
            });
        }
        let record_end = self.rdr.byte;
        self.rdr.input.get_mut().record_start = record_end;
        Ok(Some(line))
    }

    fn unterminated(&self, line: u64) -> FileError {
        self.reject(
            RejectionKind::UnterminatedQuote,
            Some(line),
            format!("Unterminated quote starting at line {line}: a value opens a double quote (\") that is never closed, so the rest of the file reads as one value."),
            "Remove the stray double quote on that line, or double it (\"\") inside a quoted value.",
        )
    }

    /// A record over the limit with no quote in it: a line too long, not a stray quote.
    fn line_too_long(&self, line: u64) -> FileError {
        self.reject(
            RejectionKind::LineTooLong,
            Some(line),
            format!(
                "Line {line} is longer than the limit of {} bytes for one user's row: the file is not one user per line.",
                self.max_record_bytes
            ),
            "Export the users again as CSV, one user per line (in Excel: Save As \"CSV UTF-8 (Comma delimited)\"); a row is normally well under a kilobyte.",
        )
    }

    fn io_error(&self, e: io::Error, line_before: u64) -> FileError {
        if e.get_ref()
            .is_some_and(|inner| inner.is::<RecordTooLarge>())
        {
            let source = self.rdr.input.get_ref();
            let quoted = source.last_quote.is_some_and(|q| q >= source.record_start);
            if quoted {
                self.unterminated(line_before.max(1))
            } else {
                self.line_too_long(line_before.max(1))
            }
        } else {
            FileError::io(&self.name, e)
        }
    }

    fn read_header(&mut self) -> Result<(), FileError> {
        let mut line = match self.read_record()? {
            Some(line) => line,
            None => {
                return Err(self.reject(
                    RejectionKind::Empty,
                    None,
                    "The file is empty: it has no header row.".into(),
                    "Upload a CSV file whose first line is the header (unique_id,login_source,...) followed by one line per user.",
                ));
            }
        };
        let mut cells = self.cells(line)?;
        // Excel's `sep=,` hint line reads as the two cells `sep=` and ``.
        if cells.len() == 2 && cells[1].trim().is_empty() {
            let first = cells[0].trim_start_matches('\u{feff}').trim();
            if first == "sep=" {
                line = match self.read_record()? {
                    Some(line) => line,
                    None => {
                        return Err(self.reject(
                            RejectionKind::Empty,
                            None,
                            "The file has no header row.".into(),
                            "Add the header row and the users' rows.",
                        ));
                    }
                };
                cells = self.cells(line)?;
            }
        }
        if cells
            .iter()
            .all(|c| c.trim_start_matches('\u{feff}').trim().is_empty())
        {
            return Err(self.reject(
                RejectionKind::Empty,
                Some(line),
                "The first line is blank: the file has no header row.".into(),
                "Make the header (unique_id,login_source,...) the first line of the file.",
            ));
        }
        let mut filled = cells.iter().filter(|c| !c.trim().is_empty());
        if let (Some(text), None) = (filled.next(), filled.next()) {
            let candidates = [
                (';', "semicolons (`;`)"),
                ('\t', "tabs"),
                ('|', "vertical bars (`|`)"),
            ];
            if let Some((_, name)) = candidates
                .iter()
                .map(|(c, name)| (text.matches(*c).count(), name))
                .filter(|(count, _)| *count > 0)
                .max_by_key(|(count, _)| *count)
            {
                return Err(self.reject(
                    RejectionKind::Delimiter,
                    Some(line),
                    format!("The columns are separated by {name}, not commas."),
                    &format!("{SAVE_AS_CSV_UTF8} (Excel separates with `;` when the computer's list separator is `;`.)"),
                ));
            }
        }
        self.header_raw = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    c.trim_start_matches('\u{feff}').to_owned()
                } else {
                    c.to_owned()
                }
            })
            .collect();
        self.map = HeaderMap::from_header(&self.header_raw, line)
            .map_err(|r| FileError::rejected(&self.name, r))?;
        self.restore = self.map.import_error_column().is_some();
        self.plan = self
            .map
            .columns()
            .iter()
            .enumerate()
            .map(|(i, &column)| Plan::new(column, self.map.name(i).unwrap_or_default()))
            .collect();
        self.fits = (self.plan.iter().enumerate())
            .filter(|(_, p)| p.mode == Mode::Fits && p.max < usize::MAX)
            .map(|(i, p)| (i, p.max))
            .collect();
        self.checked = (self.plan.iter().enumerate())
            .filter(|(_, p)| p.mode == Mode::Check)
            .map(|(i, _)| i)
            .collect();
        let keys: Vec<Option<&str>> = (0..self.map.len())
            .map(|i| self.map.attribute(i).map(|a| a.key))
            .collect();
        self.keys = Arc::new(ColumnKeys::new(&keys));
        Ok(())
    }

    /// The header cells as uploaded (decoded, BOM removed, untrimmed): a failure CSV repeats them.
    pub fn header_raw(&self) -> &[String] {
        &self.header_raw
    }

    /// The mapping of the header.
    pub fn mapping(&self) -> &HeaderMap {
        &self.map
    }

    /// The encoding the file is read in.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The delimiter (always `,`: any other is rejected).
    pub fn delimiter(&self) -> u8 {
        b','
    }

    /// The display name given to [`ImportFile::open`].
    pub fn display_name(&self) -> &str {
        &self.name
    }

    /// The number of data rows returned so far (all-empty rows not counted).
    pub fn rows_read(&self) -> u64 {
        self.records
    }

    /// After the end: whether the last record ended with a line end (`\n`, `\r\n`, `\r`).
    /// `Some(false)` suggests an upload cut off mid-record. `None` until the end is reached.
    pub fn ended_with_line_terminator(&self) -> Option<bool> {
        self.ended_with_terminator
    }

    /// The next data row's outcome; `None` after the end or after an error.
    ///
    /// All-empty rows are skipped. A file without any data row gives a rejection at the end.
    pub fn next_row(&mut self) -> Option<Result<RowOutcome, FileError>> {
        if self.done {
            return None;
        }
        loop {
            let line = match self.read_record() {
                Ok(Some(line)) => line,
                Ok(None) => {
                    self.done = true;
                    let last = self.rdr.source().last;
                    self.ended_with_terminator = Some(matches!(last, Some(b'\n' | b'\r')));
                    if self.records == 0 {
                        return Some(Err(self.reject(
                            RejectionKind::NoDataRows,
                            None,
                            "The file has a header row but no users' rows.".into(),
                            "Add one row per user under the header.",
                        )));
                    }
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            let (text, ends, _) = self.rdr.record();
            if !self.restore
                && ends.len() == self.plan.len()
                && ends.len() <= INLINE
                && text.len() <= usize::from(u16::MAX)
            {
                match self.fast_outcome(line) {
                    Ok(Some(outcome)) => return Some(Ok(outcome)),
                    Ok(None) => continue,
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
            }
            let raw = match self.cells(line) {
                Ok(raw) => raw,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            if raw.iter().all(|c| trim(c).is_empty()) {
                continue;
            }
            self.records += 1;
            return Some(Ok(self.outcome(line, raw)));
        }
    }

    fn not_text(&self, line: u64) -> FileError {
        self.reject(
            RejectionKind::Encoding,
            Some(line),
            "The file is not valid text in its encoding here (did it change while being read?)."
                .into(),
            SAVE_AS_CSV_UTF8,
        )
    }
}

impl<R: Read> Iterator for ImportFile<R> {
    type Item = Result<RowOutcome, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_row()
    }
}

impl<R: Read> std::iter::FusedIterator for ImportFile<R> {}
