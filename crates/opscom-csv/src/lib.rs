//! Reading a client's CSV safely (encoding, delimiter, BOM), header mapping and row validation.
//!
//! Pure and synchronous: no async runtime, no HTTP, no mail.
//!
//! The entry point is [`ImportFile::open`]: it reads the file once to decide its encoding
//! (BOM → UTF-8/UTF-16; valid UTF-8 → UTF-8; else Windows-1252) and to refuse what is not a CSV
//! text file, rewinds, reads and maps the header ([`HeaderMap`]), then yields one [`RowOutcome`]
//! per data row. A whole-file problem is a [`FileError`] whose kind is
//! [`ErrorKind::Rejected`] (content: exit 1, archived and reported) or [`ErrorKind::Io`]
//! (unreadable: exit 2, retried later). A bad row is data ([`InvalidRow`]), not an error.
//!
//! Line numbers are the physical lines (1-based) where a record starts, as an editor shows them,
//! even when quoted values contain line breaks.
//!
//! # Quick start
//!
//! Every problem of a CSV held in memory, as `LINE: reason`:
//!
//! ```
//! use opscom_csv::{ImportFile, ReadOptions, RowOutcome};
//!
//! let csv = "unique_id,login_source,email\n\
//!            s1,OPSCOM,ann@example.org\n\
//!            s2,,bob@\n";
//! let file = ImportFile::open(std::io::Cursor::new(csv), "roster.csv", &ReadOptions::default())?;
//! let mut problems = Vec::new();
//! for row in file {
//!     if let RowOutcome::Invalid(row) = row? {
//!         problems.push(format!("{}: {}", row.line, row.reason()));
//!     }
//! }
//! assert_eq!(
//!     problems,
//!     ["3: `login_source` is required but empty; `email` is not a valid e-mail address: `bob@`"]
//! );
//! # Ok::<(), opscom_csv::FileError>(())
//! ```
//!
//! A file rejected for headers that are not possible names lists each of them in
//! [`Rejection::headers`] ([`UnknownHeader`]: the closest accepted names, and the exact fix when
//! the header is a mere respelling such as `First Name`); when every one has an exact fix
//! ([`Rejection::header_fixes`]), [`fixed_header_copy`] streams a copy of the file with only those
//! header cells renamed.
//!
//! One value of one attribute is checked with [`validate_value`]; `examples/validate_in_memory.rs`
//! is a runnable version of the above (`cargo run -p opscom-csv --example validate_in_memory`).

#![warn(missing_docs)]

mod cells;
mod error;
mod fix;
pub mod formula;
mod header;
mod reader;
mod sniff;
mod validate;

pub use cells::Cells;
pub use error::{
    ErrorKind, ErrorSummary, FileError, Rejection, RejectionKind, SAVE_AS_CSV_UTF8, UnknownHeader,
};
pub use fix::{MAX_HEADER_BYTES, fixed_header_copy};
pub use header::{Column, HeaderMap};
pub use reader::{ColumnKeys, ImportFile, InvalidRow, ReadOptions, RowOutcome, ValidRow};
pub use sniff::Encoding;
pub use validate::{RowProblem, is_date, is_email, validate_value};

/// The attribute table of `opscom-schema` (`lookup`, `ATTRIBUTES`, `Attribute`, `Limit`),
/// re-exported so that a caller of [`validate_value`] needs no other crate.
pub use opscom_schema as schema;
