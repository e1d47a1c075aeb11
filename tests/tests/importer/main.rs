//! The real `opscom-import` binary against the sandbox API and a real SMTP server: one test
//! binary, so that its tests run side by side.
//!
//! Needs `cargo build -p opscom-import` first and a Python with aiosmtpd
//! (`OPSCOM_TEST_PYTHON=…/venv/bin/python`; `cargo xtask test` sets both up).

mod cli;
mod concurrency;
mod faults;
mod lifecycle;
