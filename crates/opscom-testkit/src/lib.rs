//! Test support shared by the crates' tests and the integration tests: real servers on 127.0.0.1
//! and recording doubles of the outside world.
//!
//! [`SmtpServer`] runs a real SMTP server (Python's `aiosmtpd`, storing every message in a
//! Maildir) on a free loopback port, and reads back what it received as [`ReceivedMessage`]s.
//! Test support panics loudly instead of returning errors: a missing tool must fail the test run,
//! never skip it.
//!
//! [`RecordingApi`] (modes: [`ApiMode`]) and [`RecordingMailer`] stand in for the OPSCOM API and
//! the mail server when a test runs the pipeline in process: the workspace's one kind of test
//! double shared by every crate's tests (opscom-api's own unit test uses a mockall mock).
//!
//! A dev-dependency only (the integration-test harness `opscom-tests` is test support itself).
//!
//! ```
//! use opscom_api::{PushApi, PushOutcome, UserRecord};
//! use opscom_testkit::{ApiMode, RecordingApi};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let api = RecordingApi::new(ApiMode::Accept);
//! let user = UserRecord::new(2, "1001").with("email", "ada@example.edu");
//! assert_eq!(api.push_user(&user).await, PushOutcome::Accepted);
//! assert_eq!(api.ids(), ["1001"]);
//! # }
//! ```

#![warn(missing_docs)]

pub mod doubles;
pub mod smtp;

pub use doubles::{ApiMode, RecordingApi, RecordingMailer};
pub use smtp::{ReceivedAttachment, ReceivedMessage, SmtpServer};
