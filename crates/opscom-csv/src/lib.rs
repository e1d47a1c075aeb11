//! Reading a client's CSV safely (encoding, delimiter, BOM), header mapping and row validation.
//!
//! Pure and synchronous: no async runtime, no HTTP, no mail.

pub mod formula;
