//! Test support shared by the crates' tests and the integration tests: real servers on 127.0.0.1.
//!
//! [`SmtpServer`] runs a real SMTP server (Python's `aiosmtpd`, storing every message in a
//! Maildir) on a free loopback port, and reads back what it received as [`ReceivedMessage`]s.
//! Test support panics loudly instead of returning errors: a missing tool must fail the test run,
//! never skip it.

#![warn(missing_docs)]

pub mod smtp;

pub use smtp::{ReceivedAttachment, ReceivedMessage, SmtpServer};
