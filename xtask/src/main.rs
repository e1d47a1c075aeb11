//! Project automation, run as `cargo xtask <command>` (see `.cargo/config.toml`).
//!
//! - `test`: the README's test command — makes sure the real servers the tests need are installed
//!   (an SMTP server, aiosmtpd; OpenSSH's sshd for the end-to-end test), then runs the whole suite.
//! - `bench`: the benchmarks that feed `docs/benchmarks.md` (`bench tenants`, many tenants and
//!   many files, only when named: it takes minutes).
//! - `fuzz [SECONDS]`: the cargo-fuzz target for read + map + validate (not part of CI).
//! - `lint`: `cargo fmt --check`, `cargo clippy --all-targets -D warnings` and `cargo-machete`
//!   (unused dependencies).
//!
//! The tidy checks (dependency rules between crates, `//!` headers) are `#[test]`s in `tidy.rs`, so
//! plain `cargo test` runs them.

mod bench_delta;
mod bench_proc;
mod bench_scrape;
mod bench_service;
mod bench_tenants;
mod deps;
mod e2e;
#[cfg(test)]
mod tidy;

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((cmd, rest)) => (cmd.as_str(), rest),
        None => ("help", &[][..]),
    };
    match cmd {
        "test" => test(rest),
        "lint" => lint(),
        "bench" => bench(rest),
        "fuzz" => fuzz(rest),
        "e2e" => e2e::run(),
        "help" | "--help" | "-h" => {
            println!("{HELP}");
            Ok(())
        }
        other => bail!("unknown xtask command `{other}`\n\n{HELP}"),
    }
}

const HELP: &str = "\
cargo xtask <command>

  test [ARGS…]   install the test servers if missing (aiosmtpd; sshd), then `cargo test --workspace ARGS…`
  lint           cargo fmt --check, cargo clippy --workspace --all-targets -- -D warnings, and
                 cargo-machete (unused dependencies; installed into target/tools when missing)
  bench [NAME]   run the benchmarks (csv, api, service [ARGS]; default these three) and print their reports
  bench scrape [--rows N] [--runs N] [--no-build]
                 an import under `run` with and without `/metrics` scraped in a tight loop
  bench tenants [once] [run] [files] [--tenants 1000,10000] [--runs N] [--run-tenants N]
                 [--uploads N] [--idle-secs S] [--files 1000,2000,10000] [--timeout SECS] [--no-build]
                 many idle tenants (`once`; `run`: pickup latency, idle CPU) and many files in one
                 folder; slow (minutes), so only run when named, never by a bare `bench`
  bench delta [--rows 100000,1000000] [--no-build]
                 delta imports: the same file twice (no request), then with 1% of users edited
  fuzz [SECS]    run the read+map+validate fuzz target for SECS seconds (default 60; installs cargo-fuzz)
  e2e            only the end-to-end test through OpenSSH's sshd and sftp (as root; installs sshd)";

/// The workspace root (the parent of this crate's folder).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Runs `cmd` in the workspace root, failing with the command line when it fails.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    eprintln!("$ {shown}");
    let status = cmd
        .current_dir(root())
        .status()
        .with_context(|| format!("could not start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed: {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn test(extra: &[String]) -> Result<()> {
    let python = deps::smtp_server_python()?;
    e2e::ensure_tools()?;
    eprintln!("SMTP test server: {} -m aiosmtpd", python.display());
    // The integration tests drive these binaries; `cargo test` alone does not build them.
    run(cargo().args(["build", "-p", "opscom-import", "-p", "sandbox-server"]))?;
    run(cargo()
        .args(["test", "--workspace", "--no-fail-fast"])
        .args(extra)
        .env("OPSCOM_TEST_PYTHON", &python))
}

fn lint() -> Result<()> {
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The portable part of the scheduler (clock, runner) and the lean production binary (no
    // demo) build on their own.
    for package in ["opscom-scheduler", "opscom-import"] {
        run(cargo().args([
            "clippy",
            "-p",
            package,
            "--no-default-features",
            "--",
            "-D",
            "warnings",
        ]))?;
    }
    // Dependencies a crate declares but never uses (cargo-machete; a deliberate one is listed
    // under `[package.metadata.cargo-machete] ignored` with its reason).
    run(&mut Command::new(deps::cargo_machete()?))
}

fn bench(rest: &[String]) -> Result<()> {
    if let Some((first, more)) = rest.split_first() {
        match first.as_str() {
            "service" => return bench_service::run(more),
            "tenants" => return bench_tenants::run(more),
            "scrape" => return bench_scrape::run(more),
            "delta" => return bench_delta::run(more),
            _ => {}
        }
    }
    let all = [
        ("csv", "opscom-csv", "throughput"),
        ("api", "opscom-api", "push"),
    ];
    let wanted: Vec<_> = all
        .iter()
        .filter(|(name, ..)| rest.is_empty() || rest.iter().any(|r| r == name))
        .collect();
    if wanted.is_empty() {
        bail!("unknown benchmark; choose from: csv, api, service, tenants, scrape, delta");
    }
    for (_, package, bench) in wanted {
        run(cargo().args(["bench", "-p", package, "--bench", bench]))?;
    }
    if rest.is_empty() {
        bench_service::run(&[])?;
    }
    Ok(())
}

fn fuzz(rest: &[String]) -> Result<()> {
    let secs: u64 = match rest.first() {
        Some(s) => s.parse().context("fuzz takes a number of seconds")?,
        None => 60,
    };
    let has_fuzz = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_fuzz {
        run(cargo().args(["install", "--locked", "cargo-fuzz"]))?;
    }
    run(cargo()
        .current_dir(root().join("fuzz"))
        .env("RUSTC_BOOTSTRAP", "1")
        .args([
            "fuzz",
            "run",
            "--fuzz-dir",
            "fuzz",
            "read_map_validate",
            "--",
            &format!("-max_total_time={secs}"),
        ]))
}
