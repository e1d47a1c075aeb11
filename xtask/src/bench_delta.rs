//! `cargo xtask bench delta`: delta imports (issue 13), against the release binaries.
//!
//! One tenant with `mode = "delta"`, the sandbox API in another process (zero latency), and a
//! file of N generated rows (default 100,000), imported three times with `opscom-import once`:
//! 1. the first time: every row is new, every row is pushed;
//! 2. the same bytes again: no request may reach the API;
//! 3. the same export with 1 % of the users edited: exactly those users are pushed.
//!
//! The requests are counted by the sandbox (`GET /_sandbox/requests`, reset before runs 2 and
//! 3) and the rows by the records; the run fails if a count is not the one expected. Peak RSS is
//! the importer's `ru_maxrss` (GNU time). The delta state's size on disk is reported too.
//!
//! Usage: `cargo xtask bench delta [--rows 100000,1000000] [--no-build]`.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail, ensure};

use crate::bench_proc::{numbers, timed};
use crate::bench_service::{
    Bins, Sandbox, Scratch, Setup, build_release, field, machine, tail, text, write_csv_changed,
};

/// Give up on one `once` after this long.
const TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Every this many users, one is edited for the third run (1 %).
const EDIT_EVERY: u64 = 100;

#[derive(Debug)]
struct Opts {
    rows: Vec<u64>,
    build: bool,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut opts = Opts {
        rows: vec![100_000],
        build: true,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rows" => {
                opts.rows = numbers(it.next().context("--rows needs a value")?, "--rows")?;
            }
            "--no-build" => opts.build = false,
            other => bail!(
                "unknown argument `{other}`; usage: cargo xtask bench delta [--rows 100000] [--no-build]"
            ),
        }
    }
    ensure!(
        opts.rows.iter().all(|&r| r >= EDIT_EVERY),
        "--rows must be at least {EDIT_EVERY}"
    );
    Ok(opts)
}

/// Runs the benchmark and prints its report (markdown) on stdout.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let opts = parse(args)?;
    if opts.build {
        build_release()?;
    }
    let bins = Bins::locate()?;
    let mut out = String::new();
    writeln!(out, "# opscom-import delta benchmark\n")?;
    writeln!(out, "{}\n", machine())?;
    writeln!(
        out,
        "One tenant, `mode = \"delta\"`, `concurrency = 16`; the sandbox API in its own process \
         with zero latency. Run 1 imports N new users; run 2 the same bytes again; run 3 the \
         same export with every {EDIT_EVERY}th user edited. Requests are counted by the \
         sandbox; processing is the file's `duration_ms` (claim to archive); wall is the whole \
         `once` process; peak RSS is `ru_maxrss`.\n"
    )?;
    writeln!(
        out,
        "| rows | run | requests | rows sent | unchanged | processing | wall | peak RSS | delta-state |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|---|---|")?;
    for &rows in &opts.rows {
        for line in one(&bins, rows)? {
            writeln!(out, "{line}")?;
        }
    }
    println!("{out}");
    Ok(())
}

fn one(bins: &Bins, rows: u64) -> Result<Vec<String>> {
    let scratch = Scratch::new("delta")?;
    let sandbox = Sandbox::start_with(
        bins,
        "0s",
        &scratch.0.join("sandbox.log"),
        &[
            "--request-log-limit",
            &(rows / EDIT_EVERY + 100).to_string(),
        ],
    )?;
    let setup = Setup::new(&scratch.0, &sandbox.url, 16)?;
    let mut config = fs::read_to_string(&setup.config)?;
    config.push_str("mode = \"delta\"\n");
    fs::write(&setup.config, config)?;
    let edited = |id: u64| id.is_multiple_of(EDIT_EVERY);
    let mut lines = Vec::new();
    for (run, name) in [(1, "day1.csv"), (2, "day2.csv"), (3, "day3.csv")] {
        let file = setup.drop_dir.join(name);
        {
            let mut w = BufWriter::with_capacity(1 << 20, File::create(&file)?);
            write_csv_changed(&mut w, 1, rows, |id| run == 3 && edited(id))?;
            let f = w.into_inner().map_err(|e| e.into_error())?;
            f.set_modified(SystemTime::now() - Duration::from_secs(120))?;
        }
        if run > 1 {
            http(&sandbox.url, "POST", "/_sandbox/reset")?;
        }
        eprintln!("delta: {rows} rows, run {run}");
        let log = scratch.0.join(format!("import-{run}.log"));
        let args = ["--log-format", "json", "once", "--config"]
            .map(OsString::from)
            .into_iter()
            .chain([setup.config.clone().into_os_string()])
            .collect::<Vec<_>>();
        let t = timed(&bins.import, &args, &log, TIMEOUT)?;
        ensure!(
            t.status.success(),
            "opscom-import once exited with {}; log:\n{}",
            t.status,
            tail(&log)
        );
        let records = setup.records()?;
        let record = records
            .iter()
            .rev()
            .find(|r| text(r, "file") == name)
            .with_context(|| format!("no record of {name}"))?;
        let requests: Vec<serde_json::Value> =
            serde_json::from_slice(&http(&sandbox.url, "GET", "/_sandbox/requests")?)?;
        let ids: BTreeSet<String> = requests
            .iter()
            .filter_map(|r| r.get("unique_id")?.as_str().map(str::to_owned))
            .collect();
        let (sent, unchanged) = (field(record, "rows_ok"), field(record, "rows_unchanged"));
        match run {
            1 => ensure!(sent == rows, "run 1 sent {sent} of {rows}: {record}"),
            2 => ensure!(
                requests.is_empty() && sent == 0 && unchanged == rows,
                "run 2 sent {} requests ({sent} rows, {unchanged} unchanged): {record}",
                requests.len()
            ),
            _ => {
                let want = (1..=rows).filter(|&id| edited(id)).count() as u64;
                ensure!(
                    requests.len() as u64 == want
                        && ids.len() as u64 == want
                        && sent == want
                        && unchanged == rows - want,
                    "run 3: {} requests for {} users ({sent} rows sent), {want} expected",
                    requests.len(),
                    ids.len()
                );
            }
        }
        let state =
            fs::metadata(setup.state_dir.join("tenants/bench/delta-state")).map_or(0, |m| m.len());
        lines.push(format!(
            "| {rows} | {run} | {} | {sent} | {unchanged} | {:.2} s | {:.2} s | {:.1} MiB | {:.1} MiB ({:.1} B/user) |",
            if run == 1 { sent as usize } else { requests.len() },
            Duration::from_millis(field(record, "duration_ms")).as_secs_f64(),
            t.wall.as_secs_f64(),
            t.max_rss_kib as f64 / 1024.0,
            state as f64 / (1 << 20) as f64,
            state as f64 / rows as f64,
        ));
        eprintln!("  {}", lines.last().map_or("", String::as_str));
    }
    Ok(lines)
}

/// One HTTP/1.0 request to the sandbox at `url` (`http://127.0.0.1:PORT`); the body.
fn http(url: &str, method: &str, path: &str) -> Result<Vec<u8>> {
    let host = url
        .strip_prefix("http://")
        .with_context(|| format!("unexpected sandbox URL {url}"))?;
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("an HTTP answer without a body")?;
    ensure!(
        answer.starts_with(b"HTTP/1.1 2") || answer.starts_with(b"HTTP/1.0 2"),
        "{method} {path}: {}",
        String::from_utf8_lossy(&answer[..split])
    );
    Ok(answer[split + 4..].to_vec())
}
