//! The reuse proof of issue 14: the tests in `tests/` use the library crates the way another
//! OPSCOM tool would, each reuse path with only the crate it needs. This library is empty.

#![warn(missing_docs)]
