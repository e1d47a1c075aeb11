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

#![warn(missing_docs)]

mod cells;
mod error;
pub mod formula;
mod header;
mod reader;
mod sniff;
mod validate;

pub use cells::Cells;
pub use error::{ErrorKind, ErrorSummary, FileError, Rejection, RejectionKind, SAVE_AS_CSV_UTF8};
pub use header::{Column, HeaderMap};
pub use reader::{ColumnKeys, ImportFile, InvalidRow, ReadOptions, RowOutcome, ValidRow};
pub use sniff::Encoding;
pub use validate::{RowProblem, is_date, is_email};
