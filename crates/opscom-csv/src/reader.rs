//! [`ImportFile`]: the streaming reader that decodes, maps the header and validates every row.

use crate::cells::Cells;
use crate::error::{FileError, Rejection, RejectionKind, SAVE_AS_CSV_UTF8};
use crate::formula;
use crate::header::HeaderMap;
use crate::sniff::{self, Encoding, SniffError};
use crate::validate::{RowProblem, check_value, is_id_key, trim};
use encoding_rs_io::{DecodeReaderBytes, DecodeReaderBytesBuilder};
use opscom_schema::Limit;
use serde::Serialize;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::io::{self, Read, Seek, SeekFrom};

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

/// The attribute of each column of a file (none for the ignored `import_error` column): a small
/// copyable table, so that a row carries it without an allocation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ColumnKeys {
    /// Index into [`opscom_schema::ATTRIBUTES`] per column; `NONE` for no attribute.
    index: [u8; KEYS],
    len: u8,
}

const KEYS: usize = 32;
const NONE: u8 = u8::MAX;

impl ColumnKeys {
    /// The table for columns holding the attributes with these JSON keys (`None`, or a key
    /// the schema does not know, for an ignored column). At most 32 columns are kept: a valid
    /// header has at most 25.
    pub fn new(keys: &[Option<&str>]) -> Self {
        let mut index = [NONE; KEYS];
        for (slot, key) in index.iter_mut().zip(keys) {
            *slot = key
                .and_then(|k| opscom_schema::ATTRIBUTES.iter().position(|a| a.key == k))
                .and_then(|i| u8::try_from(i).ok())
                .unwrap_or(NONE);
        }
        ColumnKeys {
            index,
            len: keys.len().min(KEYS) as u8,
        }
    }

    /// The JSON key of column `i`.
    pub fn key(&self, i: usize) -> Option<&'static str> {
        let index = *self.index[..usize::from(self.len)].get(i)?;
        opscom_schema::ATTRIBUTES
            .get(usize::from(index))
            .map(|a| a.key)
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        usize::from(self.len)
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
    /// The JSON key of each column.
    #[serde(skip)]
    keys: ColumnKeys,
}

impl ValidRow {
    /// A row from its parts (for tests and tools): `keys[i]` is the JSON key of `raw[i]`.
    pub fn new(line: u64, record: u64, raw: Cells, keys: ColumnKeys) -> Self {
        ValidRow {
            line,
            record,
            raw,
            keys,
        }
    }

    /// The mapped, non-empty values to send: `(JSON key, trimmed value)`, in column order.
    /// Empty cells are left out: they never clear a value OPSCOM holds.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        self.raw.iter().enumerate().filter_map(|(i, cell)| {
            let key = self.keys.key(i)?;
            let value = trim(cell);
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

/// The io error our source returns when a record outgrows the limit.
#[derive(Debug)]
struct RecordTooLarge;

impl std::fmt::Display for RecordTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("record too large")
    }
}

impl std::error::Error for RecordTooLarge {}

enum Decoded<R> {
    Plain(R),
    Decoded(DecodeReaderBytes<R, Vec<u8>>),
}

impl<R> std::fmt::Debug for Decoded<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Decoded::Plain(_) => "Plain",
            Decoded::Decoded(_) => "Decoded",
        })
    }
}

/// The UTF-8 stream the CSV parser reads: remembers its last bytes and whether it hit the end,
/// maps lone CRs to LFs in old-Mac files, and stops a runaway record.
#[derive(Debug)]
struct Source<R> {
    inner: Decoded<R>,
    cr_only: bool,
    delivered: u64,
    /// Decoded offset where the current record starts.
    record_start: u64,
    /// `delivered - record_start` beyond this is a runaway record.
    limit: u64,
    last: Option<u8>,
    last_content: Option<u8>,
    eof: bool,
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.delivered.saturating_sub(self.record_start) > self.limit {
            return Err(io::Error::other(RecordTooLarge));
        }
        let n = match &mut self.inner {
            Decoded::Plain(r) => r.read(buf)?,
            Decoded::Decoded(r) => r.read(buf)?,
        };
        if n == 0 {
            self.eof = true;
            return Ok(0);
        }
        let got = &mut buf[..n];
        if self.cr_only {
            for b in got.iter_mut() {
                if *b == b'\r' {
                    *b = b'\n';
                }
            }
        }
        self.last = got.last().copied();
        if let Some(&b) = got.iter().rev().find(|&&b| b != b'\n' && b != b'\r') {
            self.last_content = Some(b);
        }
        self.delivered += n as u64;
        Ok(n)
    }
}

/// A deterministic 64-bit hash of an id (SipHash with fixed keys).
fn id_hash(id: &str) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

/// The keys are already hashes: pass them through.
#[derive(Debug, Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Checks one trimmed cell of a mapped column, and records a `unique_id`'s first line. The
/// usual value costs a few comparisons here; the rest is out of line.
#[inline(always)]
fn check_cell(
    plan: &Plan,
    value: &str,
    line: u64,
    seen: &mut SeenIds,
    problems: &mut Vec<RowProblem>,
) {
    let Some(&first) = value.as_bytes().first() else {
        if plan.attr.required {
            required_empty(plan, problems);
        }
        return;
    };
    let digit_id = plan.id_key && first.is_ascii_digit();
    let simple = match plan.attr.limit {
        Limit::None => !digit_id,
        Limit::MaxChars { max } => value.len() <= max && !digit_id,
        _ => false,
    };
    if !simple {
        check_value(plan.attr, &plan.name, value, plan.id_key, problems);
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

/// The first line of each `unique_id` seen, by a 64-bit hash of the id.
type SeenIds = HashMap<u64, u64, BuildHasherDefault<Identity>>;

#[inline(never)]
fn check_duplicate(
    plan: &Plan,
    value: &str,
    line: u64,
    seen: &mut SeenIds,
    problems: &mut Vec<RowProblem>,
) {
    match seen.entry(id_hash(value)) {
        std::collections::hash_map::Entry::Occupied(first) => {
            problems.push(RowProblem::DuplicateId {
                column: plan.name.clone(),
                value: value.to_owned(),
                first_line: *first.get(),
            });
        }
        std::collections::hash_map::Entry::Vacant(slot) => {
            slot.insert(line);
        }
    }
}

/// What to check in one mapped column.
#[derive(Debug)]
struct Plan {
    attr: &'static opscom_schema::Attribute,
    /// The header as the file spells it, for reasons.
    name: String,
    id_key: bool,
    unique_id: bool,
}

const CSV_BUFFER: usize = 64 * 1024;

/// One client file, opened for reading: the encoding is known and the header mapped.
///
/// Rows come from [`ImportFile::next_row`] (or the [`Iterator`] impl), one at a time; memory
/// does not grow with the file except for the duplicate-`unique_id` check (16 bytes per row).
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
    rdr: csv::Reader<Source<R>>,
    record: csv::ByteRecord,
    header_raw: Vec<String>,
    map: HeaderMap,
    restore: bool,
    /// Per column: what to check, precomputed from the mapping.
    plan: Vec<Option<Plan>>,
    keys: ColumnKeys,
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
            last_content: None,
            eof: false,
        };
        let rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .terminator(csv::Terminator::Any(b'\n'))
            .buffer_capacity(CSV_BUFFER)
            .from_reader(source);
        let mut file = ImportFile {
            name: display_name.to_owned(),
            rdr,
            record: csv::ByteRecord::new(),
            header_raw: Vec::new(),
            map: HeaderMap::default(),
            restore: false,
            plan: Vec::new(),
            keys: ColumnKeys::new(&[]),
            encoding,
            max_record_bytes,
            seen: HashMap::default(),
            records: 0,
            done: false,
            ended_with_terminator: None,
        };
        file.read_header()?;
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

    /// Reads the next record; `Ok(Some(line))` with the record in `self.record`.
    fn read_record(&mut self) -> Result<Option<u64>, FileError> {
        let before = self.rdr.position().clone();
        let read = self.rdr.read_byte_record(&mut self.record);
        let ok = match read {
            Ok(ok) => ok,
            Err(e) => return Err(self.csv_error(e, before.line())),
        };
        if !ok {
            return Ok(None);
        }
        let after = self.rdr.position();
        let source = self.rdr.get_ref();
        let ended_by_eof = source.eof;
        let text = self.record.as_slice();
        // Line ends consumed by this read: blank lines before the record, line breaks inside
        // quoted values, and the record's own terminator (unless it ended at the end of the file).
        // Counting the ones inside values is only needed when there is more than the terminator.
        let terminator = u64::from(!ended_by_eof);
        let consumed = after.line().saturating_sub(before.line());
        let internal = if consumed <= terminator {
            0
        } else {
            memchr::memchr_iter(b'\n', text).count() as u64
        };
        let line = after.line().saturating_sub(internal + terminator).max(1);
        let unclosed = ended_by_eof
            && (source.last == Some(b'\n')
                || (self
                    .record
                    .iter()
                    .next_back()
                    .is_some_and(|f| f.contains(&b'\n'))
                    && source.last_content != Some(b'"')));
        let bytes = after.byte() - before.byte();
        if unclosed || bytes > self.max_record_bytes {
            return Err(self.unterminated(line));
        }
        let record_end = after.byte();
        self.rdr.get_mut().record_start = record_end;
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

    fn csv_error(&self, e: csv::Error, line_before: u64) -> FileError {
        let line = line_before.max(1);
        match e.into_kind() {
            csv::ErrorKind::Io(io) => {
                if io.get_ref().is_some_and(|inner| inner.is::<RecordTooLarge>()) {
                    self.unterminated(line)
                } else {
                    FileError::io(&self.name, io)
                }
            }
            csv::ErrorKind::Utf8 { pos, .. } => self.reject(
                RejectionKind::Encoding,
                pos.map(|p| p.line()).or(Some(line)),
                "The file is not valid text in its encoding here (did it change while being read?).".into(),
                SAVE_AS_CSV_UTF8,
            ),
            other => FileError::io(&self.name, io::Error::other(format!("{other:?}"))),
        }
    }

    /// The cells of `self.record`: a trailing CR of the last cell removed (CRLF files), and our
    /// neutralisation undone in files carrying `import_error`.
    fn cells(&self, line: u64) -> Result<Cells, FileError> {
        let Some(cells) = Cells::from_record(&self.record) else {
            return Err(self.not_text(line));
        };
        if !self.restore {
            return Ok(cells);
        }
        let mut restored = Cells::with_capacity(self.record.as_slice().len());
        for cell in cells.iter() {
            restored.push(&formula::restore(cell));
        }
        Ok(restored)
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
        if cells.len() == 1 {
            let text = &cells[0];
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
        self.plan = (0..self.map.len())
            .map(|i| {
                self.map.attribute(i).map(|attr| Plan {
                    attr,
                    name: self.map.name(i).unwrap_or(attr.key).to_owned(),
                    id_key: is_id_key(attr.key),
                    unique_id: attr.key == "unique_id",
                })
            })
            .collect();
        let keys: Vec<Option<&str>> = (0..self.map.len())
            .map(|i| self.map.attribute(i).map(|a| a.key))
            .collect();
        self.keys = ColumnKeys::new(&keys);
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
                    let last = self.rdr.get_ref().last;
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
            if !self.restore && self.record.len() == self.plan.len() {
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

    /// The usual row (no `import_error` column, as many cells as the header) in one pass over
    /// its fields: copied, trimmed and checked together. `Ok(None)` for an all-empty row.
    fn fast_outcome(&mut self, line: u64) -> Result<Option<RowOutcome>, FileError> {
        let bytes = self.record.as_slice();
        let (Ok(text), Ok(_)) = (
            simdutf8::basic::from_utf8(bytes),
            u32::try_from(bytes.len()),
        ) else {
            return Err(self.not_text(line));
        };
        let n = self.record.len();
        let mut ends = Vec::with_capacity(n);
        let mut problems = Vec::new();
        let mut any = false;
        let mut start = 0;
        for (i, (field, plan)) in self.record.iter().zip(&self.plan).enumerate() {
            let next = start + field.len();
            // The CR of a CRLF line end stays out of the last cell.
            let end = if i + 1 == n && field.last() == Some(&b'\r') {
                next - 1
            } else {
                next
            };
            let Some(cell) = text.get(start..end) else {
                return Err(self.not_text(line));
            };
            ends.push(end as u32);
            start = next;
            let value = trim(cell);
            any |= !value.is_empty();
            if let Some(plan) = plan {
                check_cell(plan, value, line, &mut self.seen, &mut problems);
            }
        }
        if !any {
            return Ok(None);
        }
        self.records += 1;
        let (record, raw) = (self.records, Cells::from_parts(text.to_owned(), ends));
        Ok(Some(if problems.is_empty() {
            RowOutcome::Valid(ValidRow {
                line,
                record,
                raw,
                keys: self.keys,
            })
        } else {
            RowOutcome::Invalid(InvalidRow {
                line,
                record,
                raw,
                problems,
            })
        }))
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

    fn outcome(&mut self, line: u64, raw: Cells) -> RowOutcome {
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
        for (plan, cell) in self.plan.iter().zip(raw.iter()) {
            if let Some(plan) = plan {
                check_cell(plan, trim(cell), line, &mut self.seen, &mut problems);
            }
        }
        if problems.is_empty() {
            RowOutcome::Valid(ValidRow {
                line,
                record,
                raw,
                keys: self.keys,
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
}

impl<R: Read> Iterator for ImportFile<R> {
    type Item = Result<RowOutcome, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_row()
    }
}

impl<R: Read> std::iter::FusedIterator for ImportFile<R> {}
