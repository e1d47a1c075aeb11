//! [`ImportFile`]: the streaming reader that decodes, maps the header and validates every row.

use crate::cells::{Cells, INLINE};
use crate::error::{FileError, Rejection, RejectionKind, SAVE_AS_CSV_UTF8};
use crate::formula;
use crate::header::{Column, HeaderMap};
use crate::sniff::{self, Encoding, SniffError};
use crate::validate::{Kind, RowProblem, check_value, is_id_key, quick_ok, trim};
use encoding_rs_io::{DecodeReaderBytes, DecodeReaderBytesBuilder};
use serde::Serialize;
use std::collections::HashMap;
use std::io::{self, BufRead, Read, Seek, SeekFrom};
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
    fn new(
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

/// A deterministic 64-bit fingerprint of an id, made of two well-mixed hashes (folded
/// 64×64→128-bit multiplies, 8 bytes at a time, in the manner of wyhash): the high 40 bits are
/// a hash of the whole id; the low 24 bits are a hash of its length and all its bytes but the
/// last, plus the last byte. So ids that differ only in their last byte (`S1001`, `S1002`, …:
/// the usual client file is sorted by id) get neighbouring low bits and land in neighbouring
/// slots of [`SeenIds`], sharing cache lines, while any two different ids still share a
/// fingerprint with a chance of about 2^-64 (about 3·10^-8 for some pair among a million ids).
fn id_hash(id: &[u8]) -> u64 {
    const P0: u64 = 0xa076_1d64_78bd_642f;
    const P1: u64 = 0xe703_7ed1_a0b4_28db;
    const P2: u64 = 0x8ebc_6af0_9c88_c6e3;
    const P3: u64 = 0x5899_65cc_7537_4cc3;
    const LOW: u64 = (1 << 24) - 1;
    #[inline(always)]
    fn mix(a: u64, b: u64) -> u64 {
        let r = u128::from(a) * u128::from(b);
        (r as u64) ^ ((r >> 64) as u64)
    }
    let Some((&last, prefix)) = id.split_last() else {
        return P2;
    };
    let mut h = mix(id.len() as u64 ^ P0, P1);
    let mut chunks = prefix.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = mix(h ^ u64::from_le_bytes(word), P1);
    }
    let rest = chunks.remainder();
    let mut word = [0u8; 8];
    word[..rest.len()].copy_from_slice(rest);
    let near = mix(h ^ u64::from_le_bytes(word) ^ P2, P0);
    let whole = mix(near ^ u64::from(last) ^ P3, P1);
    (whole & !LOW) | (near.wrapping_add(u64::from(last)) & LOW)
}

/// The first line of each `unique_id` seen, by a 64-bit hash of the id: an open-addressing
/// table (linear probing, at most half full) of 12-byte slots (the hash's two halves and the
/// line), so that a look-up touches one cache line. Lines past `u32::MAX` (a file of billions of
/// lines) are kept exactly in a map of their own.
#[derive(Debug, Default)]
struct SeenIds {
    /// `[low half, high half, line]`; all 0 for an empty slot (a hash of 0 is stored as 1).
    slots: Vec<[u32; 3]>,
    len: usize,
    far: HashMap<u64, u64>,
}

impl SeenIds {
    const MIN_SLOTS: usize = 1 << 12;
    /// The most slots allocated ahead (24 MiB): a larger file grows the table as it goes.
    const MAX_AHEAD: usize = 1 << 21;

    /// A table with room for `rows` ids without growing (up to [`Self::MAX_AHEAD`] slots). The
    /// zeroed memory is mapped lazily, so room that is never used costs little.
    fn with_room(rows: u64) -> Self {
        let want = usize::try_from(rows.saturating_add(1).saturating_mul(2)).unwrap_or(usize::MAX);
        let slots = want
            .checked_next_power_of_two()
            .unwrap_or(Self::MAX_AHEAD)
            .clamp(Self::MIN_SLOTS, Self::MAX_AHEAD);
        SeenIds {
            slots: vec![[0; 3]; slots],
            len: 0,
            far: HashMap::new(),
        }
    }

    /// The first line recorded for `hash`, or `None` after recording `line` as its first.
    #[inline]
    fn first_or_insert(&mut self, hash: u64, line: u64) -> Option<u64> {
        let hash = hash.max(1);
        let (lo, hi) = (hash as u32, (hash >> 32) as u32);
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let slot = &mut self.slots[i];
            if slot[0] == lo && slot[1] == hi {
                return Some(match self.far.get(&hash) {
                    Some(&far) if slot[2] == u32::MAX => far,
                    _ => u64::from(slot[2]),
                });
            }
            if slot[0] == 0 && slot[1] == 0 {
                *slot = [lo, hi, u32::try_from(line).unwrap_or(u32::MAX)];
                if line >= u64::from(u32::MAX) {
                    self.far.insert(hash, line);
                }
                self.len += 1;
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    #[cold]
    fn grow(&mut self) {
        let len = (self.slots.len() * 2).max(Self::MIN_SLOTS);
        let mut slots = vec![[0u32; 3]; len];
        let mask = len - 1;
        for slot in &self.slots {
            if slot[0] != 0 || slot[1] != 0 {
                let mut i = slot[0] as usize & mask;
                while slots[i][0] != 0 || slots[i][1] != 0 {
                    i = (i + 1) & mask;
                }
                slots[i] = *slot;
            }
        }
        self.slots = slots;
    }
}

/// Checks the cell `text[s..e]` (already trimmed) of column `col`, and records a `unique_id`'s
/// first line. The usual value is decided on its bytes in a few comparisons; the rest is out of
/// line.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn check_cell(
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

/// How the fast path treats a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing to check (`import_error`).
    Skip,
    /// Optional free text that is not an id: a cell no longer than `max` bytes needs nothing.
    Fits,
    /// Trimmed and checked.
    Check,
}

/// Whether any cell of `text` (cut at `ends`) has a value once trimmed.
#[cold]
fn has_value(text: &str, ends: &[u16]) -> bool {
    let mut start = 0;
    ends.iter().any(|&end| {
        let end = usize::from(end);
        let (s, e) = trim_range(text, start, end);
        start = end;
        s < e
    })
}

/// What to check in one column, precomputed from the mapping.
#[derive(Debug)]
struct Plan {
    mode: Mode,
    kind: Kind,
    /// The byte length up to which a value certainly fits the column's character limit.
    max: usize,
    attr: Option<&'static opscom_schema::Attribute>,
    /// The header as the file spells it, for reasons.
    name: String,
    required: bool,
    id_key: bool,
    unique_id: bool,
}

impl Plan {
    fn new(column: Column, name: &str) -> Plan {
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

/// The CSV parser over the decoded stream: `csv_core` fed from a buffer, each record's fields
/// written back to back in `out` with the end of each in `ends`, so that the checks read them
/// without another pass. Positions are the parser's: bytes consumed and physical lines.
#[derive(Debug)]
struct Records<R> {
    input: io::BufReader<Source<R>>,
    core: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    /// The number of fields of the current record.
    fields: usize,
    /// Decoded bytes consumed.
    byte: u64,
    /// The parser has seen the end of the input.
    ended: bool,
}

impl<R: Read> Records<R> {
    fn new(source: Source<R>) -> Self {
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
    fn line(&self) -> u64 {
        self.core.line()
    }

    /// Parses the next record; `false` at the end of the input.
    fn read(&mut self) -> io::Result<bool> {
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
    fn record(&self) -> (&[u8], &[usize]) {
        let ends = self.ends.get(..self.fields).unwrap_or_default();
        let len = ends.last().copied().unwrap_or(0);
        (self.out.get(..len).unwrap_or_default(), ends)
    }

    fn source(&self) -> &Source<R> {
        self.input.get_ref()
    }
}

const CSV_BUFFER: usize = 64 * 1024;

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
        let (text, ends) = self.rdr.record();
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
        if unclosed || bytes > self.max_record_bytes {
            return Err(self.unterminated(line));
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

    fn io_error(&self, e: io::Error, line_before: u64) -> FileError {
        if e.get_ref()
            .is_some_and(|inner| inner.is::<RecordTooLarge>())
        {
            self.unterminated(line_before.max(1))
        } else {
            FileError::io(&self.name, e)
        }
    }

    /// The cells of the current record: a trailing CR of the last cell removed (CRLF files),
    /// and our neutralisation undone in files carrying `import_error`.
    fn cells(&self, line: u64) -> Result<Cells, FileError> {
        let (text, ends) = self.rdr.record();
        let Some(cells) = Cells::from_fields(text, ends) else {
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
            let (text, ends) = self.rdr.record();
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

    /// The usual row (no `import_error` column, as many cells as the header), on the record's
    /// bytes: the text validated once, the cells' bounds taken in one tight pass, then each
    /// column checked as its [`Mode`] says, and the text copied once. `Ok(None)` for an
    /// all-empty row.
    fn fast_outcome(&mut self, line: u64) -> Result<Option<RowOutcome>, FileError> {
        let (bytes, fields) = self.rdr.record();
        let Ok(text) = simdutf8::basic::from_utf8(bytes) else {
            return Err(self.not_text(line));
        };
        let n = fields.len().min(INLINE);
        // `cuts[i]..cuts[i + 1]` is cell `i`.
        let mut cuts = [0u16; INLINE + 1];
        // A cell must start on a character boundary: not so only if the file changed under us
        // (the record's text is valid UTF-8, but a delimiter split a character).
        let mut split = false;
        for (cut, &field_end) in cuts[1..].iter_mut().zip(fields) {
            *cut = field_end as u16;
            split |= bytes.get(field_end).is_some_and(|&b| (b as i8) < -0x40);
        }
        if split {
            return Err(self.not_text(line));
        }
        // The CR of a CRLF line end stays out of the last cell.
        let last = n.min(INLINE);
        let (start, end) = (cuts[last.saturating_sub(1)], cuts[last]);
        if end > start && bytes.get(usize::from(end) - 1) == Some(&b'\r') {
            cuts[last] -= 1;
        }
        let ends = &cuts[1..=last];
        let bounds = |col: usize| {
            let col = col & (INLINE - 1);
            (usize::from(cuts[col]), usize::from(cuts[col + 1]))
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
        if !any && !has_value(text, ends) {
            return Ok(None);
        }
        self.records += 1;
        let (record, raw) = (self.records, Cells::from_inline(text.to_owned(), ends));
        Ok(Some(RowOutcome::new(
            line, record, raw, &self.keys, problems,
        )))
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

impl<R: Read> Iterator for ImportFile<R> {
    type Item = Result<RowOutcome, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_row()
    }
}

impl<R: Read> std::iter::FusedIterator for ImportFile<R> {}

#[cfg(test)]
mod tests {
    use super::{SeenIds, id_hash};
    use std::collections::HashSet;

    #[test]
    fn seen_ids_remember_the_first_line_through_growth_and_huge_lines() {
        // Room for 10 ids: the table grows many times on the way to 20 000.
        let mut seen = SeenIds::with_room(10);
        for i in 0..20_000u64 {
            let id = format!("S{i:08}");
            assert_eq!(
                seen.first_or_insert(id_hash(id.as_bytes()), i + 2),
                None,
                "{id}"
            );
        }
        for i in (0..20_000u64).step_by(997) {
            let id = format!("S{i:08}");
            assert_eq!(
                seen.first_or_insert(id_hash(id.as_bytes()), 99_999),
                Some(i + 2)
            );
        }
        // Lines past u32::MAX are kept exactly.
        let far = u64::from(u32::MAX) + 7;
        assert_eq!(seen.first_or_insert(id_hash(b"far"), far), None);
        assert_eq!(seen.first_or_insert(id_hash(b"far"), far + 1), Some(far));
        assert_eq!(seen.first_or_insert(id_hash(b"near"), 5), None);
        assert_eq!(seen.first_or_insert(id_hash(b"near"), 6), Some(5));
    }

    #[test]
    fn id_fingerprints_differ_and_sorted_ids_are_neighbours() {
        let ids: Vec<String> = (0..200_000)
            .map(|i| format!("{i}"))
            .chain((0..50_000).map(|i| format!("E{i}")))
            .chain(
                [
                    "",
                    "a",
                    "b",
                    "ab",
                    "ba",
                    "abcdefgh",
                    "abcdefgi",
                    "abcdefghi",
                ]
                .map(String::from),
            )
            .collect();
        let hashes: HashSet<u64> = ids.iter().map(|id| id_hash(id.as_bytes())).collect();
        assert_eq!(hashes.len(), ids.len());
        // Ids that differ in their last byte only: neighbouring low bits.
        let (a, b) = (id_hash(b"S00001230"), id_hash(b"S00001231"));
        assert_eq!((b & 0xff_ffff).wrapping_sub(a & 0xff_ffff) & 0xff_ffff, 1);
        assert_ne!(a >> 24, b >> 24);
    }
}
