//! The real `opscom-import` binary against the sandbox API and a real SMTP server: one test
//! binary, so that its tests run side by side.
//!
//! The harness builds the binary (`cargo build -p opscom-import`) before the first test. The SMTP
//! tests need a Python with aiosmtpd (`OPSCOM_TEST_PYTHON=…/venv/bin/python`; `cargo xtask test`
//! sets it up).

mod alerts;
mod cli;
mod client;
mod concurrency;
mod delta;
mod faults;
mod instances;
mod lifecycle;
mod metrics;
mod retention;
mod status;
