//! `cargo xtask e2e`: the SFTP end-to-end test alone (`tests/tests/e2e_sftp.rs`), with what it
//! needs: root, OpenSSH's server and client, `jq` (the doc's commands), `systemd-analyze` (the
//! unit check), an SMTP server (aiosmtpd) and freshly built binaries.
//!
//! Missing Debian packages are installed through apt (we are root: the test must be); the test
//! itself never installs anything and fails loudly when something is missing.

use std::path::Path;
use std::process::Command;

use anyhow::{Result, bail};

use crate::deps::is_root;
use crate::{cargo, deps, run as run_cmd};

/// What the end-to-end test runs: (tool, where it lives, Debian package).
const TOOLS: [(&str, &str, &str); 6] = [
    ("sshd", "/usr/sbin/sshd", "openssh-server"),
    ("sftp", "/usr/bin/sftp", "openssh-client"),
    ("ssh-keygen", "/usr/bin/ssh-keygen", "openssh-client"),
    ("setpriv", "/usr/bin/setpriv", "util-linux"),
    ("jq", "/usr/bin/jq", "jq"),
    ("systemd-analyze", "/usr/bin/systemd-analyze", "systemd"),
];

/// Runs the end-to-end test alone.
pub(crate) fn run() -> Result<()> {
    if !is_root() {
        bail!(
            "the SFTP end-to-end test must run as root (it creates system users, chroots under /srv \
             and runs its own sshd): run `sudo -E cargo xtask e2e`"
        );
    }
    ensure_tools()?;
    let python = deps::smtp_server_python()?;
    // The test runs the built binaries (target/debug/opscom-import, opscom-sandbox).
    run_cmd(cargo().args(["build", "-p", "opscom-import", "-p", "sandbox-server"]))?;
    run_cmd(
        cargo()
            .args(["test", "-p", "opscom-tests", "--test", "e2e_sftp"])
            .env("OPSCOM_TEST_PYTHON", &python),
    )
}

/// Installs (through apt, as root) the Debian packages of the tools the end-to-end test runs
/// that are missing. `cargo xtask test` can call it before the whole suite.
pub(crate) fn ensure_tools() -> Result<()> {
    let mut missing: Vec<&str> = TOOLS
        .iter()
        .filter(|(_, path, _)| !Path::new(path).exists())
        .map(|(_, _, package)| *package)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!(
        "the SFTP end-to-end test needs {}: installing",
        missing.join(", ")
    );
    if !is_root() {
        bail!(
            "missing for the SFTP end-to-end test: {}.\nFix: as root, `apt-get update && apt-get \
             install -y --no-install-recommends {}`",
            missing.join(", "),
            missing.join(" ")
        );
    }
    run_cmd(Command::new("apt-get").args(["update", "-qq"]))?;
    run_cmd(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    for (tool, path, package) in TOOLS {
        if !Path::new(path).exists() {
            bail!("{tool} is still missing at {path} after installing {package}");
        }
    }
    Ok(())
}
