//! `cargo xtask bench scrape`: does scraping `/metrics` in a tight loop slow an import?
//!
//! The same file is imported by `opscom-import run` (release build, `[metrics] listen` on
//! loopback, the sandbox API with zero latency so that the import is as CPU-bound as it gets),
//! once with nobody scraping and once while a thread fetches `/metrics` as fast as it can; the
//! runs alternate. The import's own processing time comes from its record (`duration_ms`).

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::bench_service::{
    Bins, Sandbox, Scratch, Setup, build_release, field, machine, median, stop, tail, write_csv,
};

#[derive(Debug)]
struct Opts {
    rows: u64,
    runs: usize,
    build: bool,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut opts = Opts {
        rows: 20_000,
        runs: 3,
        build: true,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--rows" => opts.rows = value("--rows")?.parse().context("--rows takes a number")?,
            "--runs" => opts.runs = value("--runs")?.parse().context("--runs takes a number")?,
            "--no-build" => opts.build = false,
            other => bail!(
                "unknown argument `{other}`; usage: cargo xtask bench scrape [--rows N] [--runs N] [--no-build]"
            ),
        }
    }
    ensure!(
        opts.rows > 0 && opts.runs > 0,
        "--rows and --runs must be at least 1"
    );
    Ok(opts)
}

/// Runs the benchmark and prints its report.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let opts = parse(args)?;
    if opts.build {
        build_release()?;
    }
    let bins = Bins::locate()?;
    let scratch = Scratch::new("scrape")?;
    let sandbox = Sandbox::start(&bins, "0ms", &scratch.0.join("sandbox.log"))?;
    let modes = [
        Mode::Quiet,
        Mode::PerSecond(10),
        Mode::Tight { niced: false },
        Mode::Tight { niced: true },
    ];
    let mut times: Vec<Vec<u64>> = vec![Vec::new(); modes.len()];
    let mut rates: Vec<Vec<u64>> = vec![Vec::new(); modes.len()];
    for run in 0..opts.runs {
        for (m, mode) in modes.iter().enumerate() {
            let (ms, rate) = one_import(&bins, &sandbox, &scratch, &opts, run * 10 + m, *mode)?;
            eprintln!(
                "  run {run}, {}: {ms} ms{}",
                label(*mode),
                rate.map(|r| format!(", {r} scrapes/s")).unwrap_or_default()
            );
            times[m].push(ms);
            rates[m].extend(rate);
        }
    }
    let mut out = String::new();
    writeln!(out, "# Scraping `/metrics` during an import\n")?;
    writeln!(out, "{}\n", machine())?;
    writeln!(
        out,
        "`opscom-import run` imports one {rows}-row file (`concurrency = 8`, the sandbox API with \
         zero latency, so the import is CPU-bound), with `[metrics] listen` on 127.0.0.1; \
         a thread fetches `/metrics` over HTTP (a new connection each time) for the whole \
         import: not at all, 10 times a second (150 times Prometheus' default rate), or in a \
         tight loop, from the same 2-core machine at normal priority (the scraper's own CPU and \
         the kernel's TCP work compete with the import), or at the lowest priority (nice 19, as \
         a scraper on another machine: what is left is the importer's own cost of answering). \
         {runs} runs each, alternating. Time = the file's processing time from its record \
         (`duration_ms`).\n",
        rows = opts.rows,
        runs = opts.runs
    )?;
    writeln!(out, "| import | runs (ms) | median | scrapes/s (median) |")?;
    writeln!(out, "|---|---|---|---|")?;
    let list = |xs: &[u64]| xs.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    for (m, mode) in modes.iter().enumerate() {
        let rate = if rates[m].is_empty() {
            "—".to_owned()
        } else {
            median(&rates[m]).to_string()
        };
        writeln!(
            out,
            "| {} | {} | {} ms | {rate} |",
            label(*mode),
            list(&times[m]),
            median(&times[m])
        )?;
    }
    println!("{out}");
    Ok(())
}

/// Who scrapes during an import.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Quiet,
    PerSecond(u32),
    Tight { niced: bool },
}

fn label(mode: Mode) -> String {
    match mode {
        Mode::Quiet => "not scraped".into(),
        Mode::PerSecond(n) => format!("scraped {n} times a second"),
        Mode::Tight { niced: false } => "scraped in a tight loop".into(),
        Mode::Tight { niced: true } => "scraped in a tight loop at nice 19".into(),
    }
}

/// Lowers the calling thread's priority to nice 19 (`renice` on its thread id).
fn nice_this_thread() {
    let tid = fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    if let Some(tid) = tid {
        let _ = Command::new("renice")
            .args(["-n", "19", "-p", &tid])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// One import under `run`; its processing time in ms, and the scrapes per second if scraped.
fn one_import(
    bins: &Bins,
    sandbox: &Sandbox,
    scratch: &Scratch,
    opts: &Opts,
    run: usize,
    mode: Mode,
) -> Result<(u64, Option<u64>)> {
    let root = scratch.0.join(format!("run-{run}"));
    let setup = Setup::new(&root, &sandbox.url, 8)?;
    let addr = free_address()?;
    let mut config = fs::read_to_string(&setup.config)?;
    write!(config, "\n[metrics]\nlisten = \"{addr}\"\n")?;
    fs::write(&setup.config, config)?;
    // A settled upload, there before the service starts: its first pass takes it.
    let file = setup.drop_dir.join("roster.csv");
    let mut w = BufWriter::new(File::create(&file)?);
    write_csv(&mut w, 1, opts.rows)?;
    w.flush()?;
    drop(w);
    File::options()
        .write(true)
        .open(&file)?
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(60))?;

    let log = root.join("import.log");
    let mut service = Command::new(&bins.import)
        .args(["--log-format", "json", "run", "--config"])
        .arg(&setup.config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log)?)
        .spawn()
        .with_context(|| format!("cannot start {}", bins.import.display()))?;
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let scraper = (!matches!(mode, Mode::Quiet)).then(|| {
        let (done, count) = (Arc::clone(&done), Arc::clone(&count));
        let pause = match mode {
            Mode::PerSecond(n) => Some(Duration::from_secs(1) / n.max(1)),
            _ => None,
        };
        let niced = matches!(mode, Mode::Tight { niced: true });
        std::thread::spawn(move || {
            if niced {
                nice_this_thread();
            }
            while !done.load(Ordering::Relaxed) {
                if get_metrics(addr) {
                    count.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(p) = pause {
                    std::thread::sleep(p);
                }
            }
        })
    });
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    let record = loop {
        if let Some(r) = setup.records()?.into_iter().next() {
            break Ok(r);
        }
        if Instant::now() > deadline {
            break Err(anyhow::anyhow!(
                "no record after 600 s; log:\n{}",
                tail(&log)
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    if let Some(t) = scraper {
        let _ = t.join();
    }
    let status = stop(&mut service, Duration::from_secs(30))?;
    let record = record?;
    ensure!(
        status.success(),
        "run stopped with {status}; log:\n{}",
        tail(&log)
    );
    ensure!(
        field(&record, "rows_ok") == opts.rows,
        "expected every row imported: {record}"
    );
    let rate = (!matches!(mode, Mode::Quiet)).then(|| {
        let secs = elapsed.as_secs_f64().max(0.001);
        (count.load(Ordering::Relaxed) as f64 / secs) as u64
    });
    Ok((field(&record, "duration_ms"), rate))
}

fn free_address() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// One `GET /metrics`; true when an answer came back.
fn get_metrics(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").is_err() {
        return false;
    }
    let mut body = Vec::new();
    stream.read_to_end(&mut body).is_ok() && body.starts_with(b"HTTP/1.")
}
