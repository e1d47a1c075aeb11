//! Integration tests of opscom-mail: one binary, one module per concern.

mod common;
mod csv_roundtrip;
mod new_reports;
mod outbox;
mod report_text;
mod smtp_delivery;
mod spool;
