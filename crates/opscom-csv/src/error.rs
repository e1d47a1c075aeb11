//! File-level errors: a rejection of the whole file (content) or an I/O fault (cannot read).

use serde::Serialize;
use std::fmt;
use std::io;

/// The advice given whenever the fix is to re-save the file from Excel.
pub const SAVE_AS_CSV_UTF8: &str = "In Excel choose File > Save As and the type \"CSV UTF-8 (Comma delimited) (*.csv)\", then upload that file.";

/// Why a whole file cannot be imported: a closed set, for grouping and for the e-mail's advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RejectionKind {
    /// The file has no bytes, or no header row.
    Empty,
    /// A header row but no data row.
    NoDataRows,
    /// Larger than the size limit.
    TooLarge,
    /// An Excel workbook (`.xlsx` or `.xls`) renamed to `.csv`.
    Spreadsheet,
    /// Binary content (NUL bytes) that is not text.
    Binary,
    /// Text that cannot be decoded in the detected encoding.
    Encoding,
    /// The columns are separated by `;`, tab or `|`, not commas.
    Delimiter,
    /// A record larger than the record limit (a stray quote), or a quote never closed.
    UnterminatedQuote,
    /// A line (with no quote in it) larger than the record limit: a file that is not one user
    /// per line.
    LineTooLong,
    /// A header matching no possible name.
    UnknownHeader,
    /// Two headers naming one attribute (`province` and `state`).
    AmbiguousHeader,
    /// The same header twice.
    DuplicateHeader,
    /// A required column is missing.
    MissingColumn,
    /// A header cell is empty. No longer produced: an empty header cell is an unnamed column
    /// ([`crate::Column::Unnamed`]) and a value under it fails only its row.
    EmptyHeader,
}

impl RejectionKind {
    /// Whether this rejection is typical of a file damaged or mis-saved by Excel, so that the
    /// report should explain how to save "CSV UTF-8 (Comma delimited)".
    pub fn looks_like_excel_damage(self) -> bool {
        matches!(
            self,
            RejectionKind::Spreadsheet | RejectionKind::Delimiter | RejectionKind::Encoding
        )
    }
}

/// A file rejected whole: where, why (plain words), and what the client should do.
///
/// Built with [`Rejection::new`] (and [`Rejection::with_headers`]); `#[non_exhaustive]` so that
/// a field added later breaks no caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Rejection {
    /// The category, for grouping and advice.
    pub kind: RejectionKind,
    /// The physical line (1-based) the problem is on, when it is on one.
    pub line: Option<u64>,
    /// What is wrong, in plain words.
    pub reason: String,
    /// What to do about it.
    pub fix: String,
    /// Every header cell that is not a possible name, with the closest accepted names: filled
    /// when the header has unknown names (whatever [`Rejection::kind`] is, as the kind is the
    /// header's first problem), empty for every other rejection. Unlike
    /// [`Rejection::reason`], which lists at most 10 problems, this lists them all.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<UnknownHeader>,
}

/// A header cell that is not a possible name (the exact-match rule), with what it could be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct UnknownHeader {
    /// The column, 0-based (the e-mail says "column `column + 1`").
    pub column: usize,
    /// The header as written, trimmed of surrounding spaces (and of a byte-order mark).
    pub given: String,
    /// Up to 3 accepted names closest to `given`, best first (an [`UnknownHeader::exact_fix`]
    /// is always first); empty when no accepted name is close.
    pub closest: Vec<&'static str>,
    /// The accepted name `given` is a mere respelling of: `Some` only when `given` equals exactly
    /// one accepted name once case, spaces, dashes and underscores are ignored (`First Name`,
    /// `FIRST-NAME`, `firstname` → `first_name`), and renaming the column so would not make it a
    /// duplicate of another column nor a second name of another column's attribute. When every
    /// unknown header has one, [`crate::fixed_header_copy`] can write the corrected file.
    pub exact_fix: Option<&'static str>,
}

impl Rejection {
    /// A rejection without [`Rejection::headers`].
    pub fn new(
        kind: RejectionKind,
        line: Option<u64>,
        reason: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Rejection {
            kind,
            line,
            reason: reason.into(),
            fix: fix.into(),
            headers: Vec::new(),
        }
    }

    /// Sets [`Rejection::headers`].
    pub fn with_headers(mut self, headers: Vec<UnknownHeader>) -> Self {
        self.headers = headers;
        self
    }

    /// The unknown headers when every one of them has an [`UnknownHeader::exact_fix`] (the file
    /// could be corrected by renaming them, see [`crate::fixed_header_copy`]); `None` when there
    /// is no unknown header or one has no exact fix.
    ///
    /// `Some` does not promise that the renamed header is accepted: another problem of the
    /// header (a required column missing) may remain; [`crate::fixed_header_copy`] checks that
    /// and writes nothing then.
    pub fn header_fixes(&self) -> Option<&[UnknownHeader]> {
        (!self.headers.is_empty() && self.headers.iter().all(|h| h.exact_fix.is_some()))
            .then_some(self.headers.as_slice())
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        write!(f, "{} Fix: {}", self.reason, self.fix)
    }
}

/// What went wrong with a file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The content cannot be imported (exit status 1 for `validate`).
    #[error("{0}")]
    Rejected(Rejection),
    /// The file could not be read (exit status 2 for `validate`; a deferral for the service).
    #[error("cannot read the file: {0}")]
    Io(#[source] io::Error),
}

/// An error reading one file, naming the file: `Error(Box<ErrorKind>)` in the style of rust-csv.
#[derive(Debug)]
pub struct FileError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    file: String,
    kind: ErrorKind,
}

impl FileError {
    pub(crate) fn rejected(file: &str, rejection: Rejection) -> Self {
        FileError(Box::new(Inner {
            file: file.to_owned(),
            kind: ErrorKind::Rejected(rejection),
        }))
    }

    pub(crate) fn io(file: &str, err: io::Error) -> Self {
        FileError(Box::new(Inner {
            file: file.to_owned(),
            kind: ErrorKind::Io(err),
        }))
    }

    /// The kind of error.
    pub fn kind(&self) -> &ErrorKind {
        &self.0.kind
    }

    /// Unwraps the kind.
    pub fn into_kind(self) -> ErrorKind {
        self.0.kind
    }

    /// The display name of the file.
    pub fn file(&self) -> &str {
        &self.0.file
    }

    /// The rejection, if the content was rejected (rather than unreadable).
    pub fn rejection(&self) -> Option<&Rejection> {
        match &self.0.kind {
            ErrorKind::Rejected(r) => Some(r),
            ErrorKind::Io(_) => None,
        }
    }

    /// Whether this is an I/O fault (the file could not be read), not a content problem.
    pub fn is_io(&self) -> bool {
        matches!(self.0.kind, ErrorKind::Io(_))
    }

    /// The physical line the problem is on, if any.
    pub fn line(&self) -> Option<u64> {
        self.rejection().and_then(|r| r.line)
    }

    /// A serialisable summary (for `validate --json`).
    pub fn summary(&self) -> ErrorSummary {
        match &self.0.kind {
            ErrorKind::Rejected(r) => ErrorSummary {
                file: self.0.file.clone(),
                kind: "rejected",
                category: Some(r.kind),
                line: r.line,
                reason: r.reason.clone(),
                fix: Some(r.fix.clone()),
            },
            ErrorKind::Io(e) => ErrorSummary {
                file: self.0.file.clone(),
                kind: "io",
                category: None,
                line: None,
                reason: format!("cannot read the file: {e}"),
                fix: None,
            },
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.file, self.0.kind)
    }
}

impl std::error::Error for FileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0.kind {
            ErrorKind::Io(e) => Some(e),
            ErrorKind::Rejected(_) => None,
        }
    }
}

/// A [`FileError`] as plain data, for JSON output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorSummary {
    /// The display name of the file.
    pub file: String,
    /// `"rejected"` (content) or `"io"` (cannot read).
    pub kind: &'static str,
    /// The rejection's category.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<RejectionKind>,
    /// The physical line, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// What is wrong.
    pub reason: String,
    /// What to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}
