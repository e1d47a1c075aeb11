//! Installs the real servers that the test suite talks to, or fails loudly with the fix.
//!
//! The tests never skip because a server is missing: they panic with the same advice. This module
//! makes `cargo xtask test` work on a fresh Debian machine that has only the Rust toolchain.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::{root, run};

/// Whether `python` can import what the tests need: aiosmtpd (the SMTP server) and dkim (PyPI
/// `dkimpy`, the verifier of the mail crate's DKIM test).
fn has_test_modules(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import aiosmtpd, dkim"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn apt_install(packages: &[&str]) -> Result<()> {
    run(Command::new("apt-get").arg("update").arg("-qq"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// A Python interpreter that has aiosmtpd and dkimpy, installing them into `target/tools/venv`
/// (from PyPI) or through apt (`python3-aiosmtpd`, `python3-dkim`) when none has both.
pub(crate) fn smtp_server_python() -> Result<PathBuf> {
    let venv = root().join("target/tools/venv");
    let venv_python = venv.join("bin/python");
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("OPSCOM_TEST_PYTHON") {
        candidates.push(p.into());
    }
    candidates.extend([
        venv_python.clone(),
        "/usr/bin/python3".into(),
        "python3".into(),
    ]);
    if let Some(found) = candidates.iter().find(|p| has_test_modules(p)) {
        return Ok(found.clone());
    }

    eprintln!(
        "aiosmtpd or dkimpy (the SMTP server and the DKIM verifier the mail tests use) is \
         missing: installing them"
    );
    let venv_ok = (venv_python.is_file()
        || run(Command::new("python3").arg("-m").arg("venv").arg(&venv)).is_ok())
        && run(
            Command::new(&venv_python).args(["-m", "pip", "install", "-q", "aiosmtpd", "dkimpy"])
        )
        .is_ok();
    if venv_ok && has_test_modules(&venv_python) {
        return Ok(venv_python);
    }
    if is_root() && apt_install(&["python3-aiosmtpd", "python3-dkim"]).is_ok() {
        let system = PathBuf::from("/usr/bin/python3");
        if has_test_modules(&system) {
            return Ok(system);
        }
    }
    bail!(
        "no SMTP server or DKIM verifier for the tests: aiosmtpd or dkimpy could not be installed.\n\
         Fix: `python3 -m venv target/tools/venv && target/tools/venv/bin/pip install aiosmtpd \
         dkimpy`, or as root `apt-get install python3-aiosmtpd python3-dkim`, then run \
         `cargo xtask test` again."
    )
}

/// The `cargo-machete` binary (unused dependencies), installed into `target/tools` from crates.io
/// when it is missing.
pub(crate) fn cargo_machete() -> Result<PathBuf> {
    let tools = root().join("target/tools");
    let bin = tools.join("bin/cargo-machete");
    if bin.is_file() {
        return Ok(bin);
    }
    eprintln!("cargo-machete (the unused-dependency check) is missing: installing it");
    run(
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args([
                "install",
                "--locked",
                "--version",
                "0.9.2",
                "cargo-machete",
                "--root",
            ])
            .arg(&tools),
    )
    .with_context(|| {
        format!(
            "cannot install cargo-machete. Fix: `cargo install --locked cargo-machete --root {}`",
            tools.display()
        )
    })?;
    Ok(bin)
}
