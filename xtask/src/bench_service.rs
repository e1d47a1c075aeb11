//! `cargo xtask bench service`: the service benchmarks of issue 5, run against the release binaries.
//!
//! - `latency`: `opscom-import run` with `settle = "1s"` and the sandbox API in another process;
//!   small valid CSVs are uploaded the way SFTP clients do it (a `.filepart` renamed into place,
//!   or written and closed under the final name), and the time from the end of the upload to the
//!   file's appearance in `.bak/` is measured by polling every 2 ms. Reports p50/p95/max.
//! - `rss`: `opscom-import once` importing one file of 10k…1M generated rows against the sandbox
//!   with zero latency and `concurrency = 16`; the importer's peak RSS is the `ru_maxrss` of the
//!   child as reported by `/usr/bin/time -f %M` (GNU time, `wait4`), so nothing is sampled and
//!   nothing missed. Reports peak RSS and rows/s.
//!
//! Usage: `cargo xtask bench service [latency] [rss] [--n N] [--rows 100000,1000000]
//! [--api-latency 50ms] [--no-build]` (default: both, N = 30, rows 10k, 100k, 200k, 1M).
//! The report is markdown on stdout; progress goes to stderr. Everything runs in a temporary
//! folder that is removed afterwards (kept, for profiling, when `OPSCOM_BENCH_KEEP` is set);
//! only 127.0.0.1 is used.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail, ensure};

use crate::bench_proc::timed;

/// A 50-character token (letters, digits, dashes) given to the sandbox with `--token`.
pub(crate) const TOKEN: &str = "bench-service-token-0123456789abcdefghijABCDEFGHIJ";
/// How often the latency benchmark looks into `.bak/`.
const POLL: Duration = Duration::from_millis(2);
/// Give up on one upload after this long.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// Give up on one `once` of the RSS benchmark after this long.
const RSS_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Data rows in each latency upload.
pub(crate) const LATENCY_ROWS: u64 = 20;

#[derive(Debug)]
struct Opts {
    latency: bool,
    rss: bool,
    n: usize,
    rows: Vec<u64>,
    api_latency: String,
    build: bool,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut opts = Opts {
        latency: false,
        rss: false,
        n: 30,
        rows: vec![10_000, 100_000, 200_000, 1_000_000],
        api_latency: "50ms".into(),
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
            "latency" => opts.latency = true,
            "rss" => opts.rss = true,
            "--n" => opts.n = value("--n")?.parse().context("--n takes a number")?,
            "--rows" => opts.rows = crate::bench_proc::numbers(&value("--rows")?, "--rows")?,
            "--api-latency" => opts.api_latency = value("--api-latency")?,
            "--no-build" => opts.build = false,
            other => bail!(
                "unknown argument `{other}`; usage: cargo xtask bench service [latency] [rss] \
                 [--n N] [--rows 100000,1000000] [--api-latency 50ms] [--no-build]"
            ),
        }
    }
    if !opts.latency && !opts.rss {
        opts.latency = true;
        opts.rss = true;
    }
    ensure!(opts.n > 0, "--n must be at least 1");
    ensure!(
        opts.rows.iter().all(|&r| r > 0),
        "--rows must be at least 1"
    );
    Ok(opts)
}

/// Runs the benchmarks chosen by `args` and prints their report.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let opts = parse(args)?;
    if opts.build {
        build_release()?;
    }
    let bins = Bins::locate()?;
    let mut report = String::new();
    writeln!(report, "# opscom-import service benchmarks\n")?;
    writeln!(report, "{}\n", machine())?;
    if opts.latency {
        report.push_str(&latency(&bins, &opts)?);
    }
    if opts.rss {
        report.push_str(&rss(&bins, &opts)?);
    }
    println!("{report}");
    Ok(())
}

/// Builds the release binaries the service benchmarks run.
pub(crate) fn build_release() -> Result<()> {
    crate::run(crate::cargo().args([
        "build",
        "--release",
        "-p",
        "opscom-import",
        "-p",
        "sandbox-server",
    ]))
}

/// The release binaries.
#[derive(Debug)]
pub(crate) struct Bins {
    pub(crate) import: PathBuf,
    pub(crate) sandbox: PathBuf,
}

impl Bins {
    pub(crate) fn locate() -> Result<Bins> {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::root().join("target"));
        let release = target.join("release");
        let bins = Bins {
            import: release.join("opscom-import"),
            sandbox: release.join("opscom-sandbox"),
        };
        for b in [&bins.import, &bins.sandbox] {
            ensure!(
                b.is_file(),
                "{} is missing: run without --no-build",
                b.display()
            );
        }
        Ok(bins)
    }
}

/// A line saying where the numbers come from: date, commit, cores, CPU, memory, kernel.
pub(crate) fn machine() -> String {
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_gib = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or_else(
            || "unknown".into(),
            |kib| format!("{:.1}", kib / f64::from(1 << 20)),
        );
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(crate::root())
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]);
    let dirty = if git(&["status", "--porcelain", "--untracked-files=no"]).is_empty() {
        ""
    } else {
        " with uncommitted changes"
    };
    format!(
        "Run {date} at commit {commit}{dirty}; {cores} cores ({cpu}), {mem_gib} GiB memory, \
         Linux {}; release profile.",
        kernel.trim()
    )
}

/// A scratch folder under the system's temporary folder, removed on drop.
#[derive(Debug)]
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new(what: &str) -> Result<Scratch> {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "opscom-bench-{what}-{}-{nanos}",
            std::process::id()
        ));
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("OPSCOM_BENCH_KEEP").is_some() {
            eprintln!("kept {} (OPSCOM_BENCH_KEEP)", self.0.display());
        } else {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// Sends SIGTERM to one child, by its id, and waits up to `grace` for it to exit; SIGKILL then.
pub(crate) fn stop(child: &mut Child, grace: Duration) -> Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let start = Instant::now();
    while start.elapsed() < grace {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    Ok(child.wait()?)
}

/// The sandbox API in a child process, stopped on drop.
#[derive(Debug)]
pub(crate) struct Sandbox {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    pub(crate) url: String,
}

impl Sandbox {
    pub(crate) fn start(bins: &Bins, latency: &str, log: &Path) -> Result<Sandbox> {
        Sandbox::start_with(bins, latency, log, &["--request-log-limit", "0"])
    }

    /// [`Sandbox::start`] with more arguments for the sandbox (they come last, so they win).
    pub(crate) fn start_with(
        bins: &Bins,
        latency: &str,
        log: &Path,
        more: &[&str],
    ) -> Result<Sandbox> {
        let mut child = Command::new(&bins.sandbox)
            .args(["--port", "0", "--token", TOKEN, "--latency", latency])
            .args(["--login-source", "OPSCOM", "--login-source", "SAML"])
            .args(more)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(log)?)
            .spawn()
            .with_context(|| format!("cannot start {}", bins.sandbox.display()))?;
        let mut stdout = BufReader::new(child.stdout.take().context("the sandbox's stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let Some(url) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the sandbox did not say where it listens (got {line:?}); log: {}",
                fs::read_to_string(log).unwrap_or_default()
            );
        };
        Ok(Sandbox {
            url: url.to_owned(),
            child,
            _stdout: stdout,
        })
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = stop(&mut self.child, Duration::from_secs(5));
    }
}

/// The folders of one importer set-up, and its configuration file.
#[derive(Debug)]
pub(crate) struct Setup {
    pub(crate) drop_dir: PathBuf,
    pub(crate) state_dir: PathBuf,
    pub(crate) outbox: PathBuf,
    pub(crate) config: PathBuf,
}

impl Setup {
    pub(crate) fn new(root: &Path, api_url: &str, concurrency: usize) -> Result<Setup> {
        let s = Setup {
            drop_dir: root.join("drop"),
            state_dir: root.join("state"),
            outbox: root.join("outbox"),
            config: root.join("opscom-import.toml"),
        };
        for d in [&s.drop_dir, &s.state_dir, &s.outbox] {
            fs::create_dir_all(d)?;
        }
        let toml = format!(
            r#"state_dir = "{state}"

[schedule]
interval = "5m"
settle = "1s"

[mail]
outbox_dir = "{outbox}"

[[tenant]]
name = "bench"
drop_dir = "{drop}"
api_url = "{api_url}"
api_token = "{TOKEN}"
reply_to_admin_email = "parking@example.edu"
failed_import_email = "it@example.edu"
concurrency = {concurrency}
max_file_size = "4GiB"
"#,
            state = s.state_dir.display(),
            outbox = s.outbox.display(),
            drop = s.drop_dir.display(),
        );
        fs::write(&s.config, toml)?;
        Ok(s)
    }

    /// The records written so far (`state_dir/records.jsonl`).
    pub(crate) fn records(&self) -> Result<Vec<serde_json::Value>> {
        records(&self.state_dir)
    }

    /// Reports in the outbox (there should be none: every generated row is valid).
    pub(crate) fn mails(&self) -> usize {
        fs::read_dir(&self.outbox).map_or(0, |d| d.count())
    }
}

/// The records in `state_dir/records.jsonl`.
pub(crate) fn records(state_dir: &Path) -> Result<Vec<serde_json::Value>> {
    let path = state_dir.join("records.jsonl");
    let text = fs::read_to_string(&path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("{}: {l}", path.display())))
        .collect()
}

pub(crate) fn field(record: &serde_json::Value, key: &str) -> u64 {
    record
        .get(key)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}

pub(crate) fn text<'a>(record: &'a serde_json::Value, key: &str) -> &'a str {
    record
        .get(key)
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
}

pub(crate) fn tail(path: &Path) -> String {
    let log = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// 1. Latency under `run`.

/// How a client finishes an upload.
#[derive(Debug, Clone, Copy)]
enum Upload {
    /// WinSCP/FileZilla: write `NAME.filepart`, then rename it to `NAME`.
    Rename,
    /// `sftp put`: write `NAME` and close it.
    Direct,
}

impl Upload {
    fn label(self) -> &'static str {
        match self {
            Upload::Rename => "`.filepart` written, then renamed (WinSCP, FileZilla)",
            Upload::Direct => "written and closed under its name (`sftp put`)",
        }
    }

    /// Uploads `body` as `name` into `dir`; returns when the upload is finished.
    fn put(self, dir: &Path, name: &str, body: &[u8]) -> Result<()> {
        let target = dir.join(name);
        let path = match self {
            Upload::Rename => dir.join(format!("{name}.filepart")),
            Upload::Direct => target.clone(),
        };
        {
            let mut f = File::create(&path)?;
            // Two writes, as a client sends a file in packets.
            let (a, b) = body.split_at(body.len() / 2);
            f.write_all(a)?;
            f.write_all(b)?;
        }
        if let Upload::Rename = self {
            fs::rename(&path, &target)?;
        }
        Ok(())
    }
}

/// Nearest-rank percentile of sorted `xs`.
pub(crate) fn percentile(xs: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * xs.len() as f64).ceil() as usize;
    xs[rank.clamp(1, xs.len()) - 1]
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn latency(bins: &Bins, opts: &Opts) -> Result<String> {
    let scratch = Scratch::new("latency")?;
    let sandbox = Sandbox::start(bins, &opts.api_latency, &scratch.0.join("sandbox.log"))?;
    let setup = Setup::new(&scratch.0, &sandbox.url, 8)?;
    let log = scratch.0.join("import.log");
    eprintln!(
        "latency: opscom-import run, settle 1s, API latency {}",
        opts.api_latency
    );
    let mut service = Command::new(&bins.import)
        .args(["--log-format", "json", "run", "--config"])
        .arg(&setup.config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log)?)
        .spawn()
        .with_context(|| format!("cannot start {}", bins.import.display()))?;
    let result = measure_uploads(&setup, opts, &log);
    let status = stop(&mut service, Duration::from_secs(30))?;
    let samples = result?;
    ensure!(
        status.success(),
        "opscom-import run stopped with {status} on SIGTERM; log:\n{}",
        tail(&log)
    );

    let records = setup.records()?;
    let measured = samples.iter().map(|(_, s)| s.len()).sum::<usize>();
    let imported = records
        .iter()
        .filter(|r| text(r, "outcome") == "imported" && field(r, "rows_ok") == LATENCY_ROWS)
        .count();
    ensure!(
        imported == records.len() && imported > measured && setup.mails() == 0,
        "expected every file imported whole with no report; records: {records:?}"
    );
    let expected = records.len();

    let mut out = String::new();
    writeln!(
        out,
        "## 1. From a finished upload to the file in `.bak` under `run`\n"
    )?;
    writeln!(
        out,
        "`opscom-import run` with `settle = \"1s\"`, `interval = \"5m\"` (so every pickup is \
         event-driven), one tenant, `concurrency = 8`, outbox mail; the sandbox API in its own \
         process with `--latency {}` per request. Each upload is a valid {LATENCY_ROWS}-row CSV \
         with new unique ids; the clock starts when the upload is finished (after the rename, \
         or after the close) and stops when the file is seen in `.bak/` (polled every {} ms). \
         Uploads follow one another (each after the previous one is archived, plus 200 ms). \
         One warm-up upload is not counted. All {expected} files were recorded `imported` with \
         every row accepted, and no report was mailed.\n",
        opts.api_latency,
        POLL.as_millis()
    )?;
    writeln!(out, "| upload | n | p50 | p95 | max | min |")?;
    writeln!(out, "|---|---|---|---|---|---|")?;
    for (how, mut s) in samples {
        s.sort();
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            how.label(),
            s.len(),
            ms(percentile(&s, 50.0)),
            ms(percentile(&s, 95.0)),
            ms(s[s.len() - 1]),
            ms(s[0]),
        )?;
    }
    let durations: Vec<u64> = records.iter().map(|r| field(r, "duration_ms")).collect();
    writeln!(
        out,
        "\nProcessing time per file (claim to archive, from the records): median {} ms, max {} ms.\n",
        median(&durations),
        durations.iter().max().copied().unwrap_or(0)
    )?;
    Ok(out)
}

pub(crate) fn median(xs: &[u64]) -> u64 {
    let mut v = xs.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn measure_uploads(setup: &Setup, opts: &Opts, log: &Path) -> Result<Vec<(Upload, Vec<Duration>)>> {
    let bak = setup.drop_dir.join(".bak");
    let mut next_id = 1u64;
    let mut one = |how: Upload, name: &str, timeout: Duration| -> Result<Option<Duration>> {
        let mut body = Vec::new();
        write_csv(&mut body, next_id, LATENCY_ROWS)?;
        next_id += LATENCY_ROWS;
        how.put(&setup.drop_dir, name, &body)?;
        let done = Instant::now();
        let archived = bak.join(name);
        while !archived.exists() {
            if done.elapsed() > timeout {
                return Ok(None);
            }
            std::thread::sleep(POLL);
        }
        Ok(Some(done.elapsed()))
    };
    let lost = |name: &str| {
        anyhow::anyhow!(
            "{name} did not reach .bak within {UPLOAD_TIMEOUT:?}; importer log:\n{}",
            tail(log)
        )
    };
    // Warm-up: proves the service is up and watching. The service logs "service started" just
    // before it starts its watcher, and a file that is still settling during the first pass
    // waits for the next event or `interval`, so a warm-up uploaded too early is retried.
    let start = Instant::now();
    while !fs::read_to_string(log)?.contains("service started") {
        ensure!(
            start.elapsed() < UPLOAD_TIMEOUT,
            "the service did not start; log:\n{}",
            tail(log)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut warm = None;
    for k in 1..=5 {
        let name = format!("warm-up-{k}.csv");
        if let Some(t) = one(Upload::Rename, &name, Duration::from_secs(5))? {
            warm = Some(t);
            break;
        }
        eprintln!("  {name} not picked up within 5 s (uploaded before the watcher started?)");
    }
    let warm = warm.ok_or_else(|| lost("warm-up"))?;
    eprintln!("  warm-up: {}", ms(warm));
    let mut all = Vec::new();
    for how in [Upload::Rename, Upload::Direct] {
        let mut samples = Vec::with_capacity(opts.n);
        for i in 0..opts.n {
            std::thread::sleep(Duration::from_millis(200));
            let name = format!("roster-{how:?}-{i:03}.csv").to_lowercase();
            let t = one(how, &name, UPLOAD_TIMEOUT)?.ok_or_else(|| lost(&name))?;
            eprintln!("  {how:?} {i}: {}", ms(t));
            samples.push(t);
        }
        all.push((how, samples));
    }
    Ok(all)
}

// ---------------------------------------------------------------------------------------------
// 2. Peak RSS and throughput of `once`.

fn rss(bins: &Bins, opts: &Opts) -> Result<String> {
    let mut out = String::new();
    writeln!(
        out,
        "## 2. Peak RSS and throughput of `opscom-import once`\n"
    )?;
    writeln!(
        out,
        "One file of N generated rows (all 24 attributes, header aliases, UTF-8 BOM, CRLF, \
         unique ids and e-mails, some quoted cells with commas, quotes and line breaks, \
         accented names) in one tenant's drop folder; `concurrency = 16`; the sandbox API in \
         its own process with zero latency (both processes share the 2 cores). Peak RSS is \
         the importer's `ru_maxrss` as printed by `/usr/bin/time -f %M` (taken by `wait4` when \
         the child exits: the true high-water mark, not a sample). rows/s is rows accepted \
         divided by the file's processing time from its record (claim to archive); wall is the \
         whole process, start-up and scan included. Every row was accepted and no report was \
         mailed in every run.\n"
    )?;
    writeln!(
        out,
        "| rows | file size | peak RSS | processing | rows/s | wall | user + sys CPU |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|")?;
    for &rows in &opts.rows {
        let r = one_rss(bins, rows)?;
        eprintln!("  {rows} rows: {r:?}");
        writeln!(
            out,
            "| {rows} | {:.1} MiB | {:.1} MiB | {:.1} s | {:.0} | {:.1} s | {:.1} s |",
            r.file_bytes as f64 / (1 << 20) as f64,
            r.max_rss_kib as f64 / 1024.0,
            r.processing.as_secs_f64(),
            rows as f64 / r.processing.as_secs_f64(),
            r.wall.as_secs_f64(),
            r.cpu_secs,
        )?;
    }
    writeln!(out)?;
    Ok(out)
}

#[derive(Debug)]
struct RssRun {
    file_bytes: u64,
    max_rss_kib: u64,
    processing: Duration,
    wall: Duration,
    cpu_secs: f64,
}

fn one_rss(bins: &Bins, rows: u64) -> Result<RssRun> {
    let scratch = Scratch::new("rss")?;
    let sandbox = Sandbox::start(bins, "0s", &scratch.0.join("sandbox.log"))?;
    let setup = Setup::new(&scratch.0, &sandbox.url, 16)?;
    let file = setup.drop_dir.join("roster.csv");
    eprintln!("rss: generating {rows} rows");
    {
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&file)?);
        write_csv(&mut w, 1, rows)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        // Settled long ago, so that `once` takes it at once.
        f.set_modified(SystemTime::now() - Duration::from_secs(120))?;
    }
    let file_bytes = fs::metadata(&file)?.len();
    let log = scratch.0.join("import.log");
    eprintln!("rss: opscom-import once ({} MiB)", file_bytes >> 20);
    let args = ["--log-format", "json", "once", "--config"]
        .map(OsString::from)
        .into_iter()
        .chain([setup.config.clone().into_os_string()])
        .collect::<Vec<_>>();
    let t = timed(&bins.import, &args, &log, RSS_TIMEOUT)?;
    ensure!(
        t.status.success(),
        "opscom-import once exited with {}; log:\n{}",
        t.status,
        tail(&log)
    );
    let records = setup.records()?;
    let [record] = &records[..] else {
        bail!("expected one record, got {records:?}");
    };
    ensure!(
        text(record, "outcome") == "imported"
            && field(record, "rows_ok") == rows
            && field(record, "rows_total") == rows
            && setup.mails() == 0,
        "expected all {rows} rows imported and no report; record: {record}"
    );
    ensure!(
        setup.drop_dir.join(".bak/roster.csv").is_file(),
        "the file was not archived"
    );
    Ok(RssRun {
        file_bytes,
        max_rss_kib: t.max_rss_kib,
        processing: Duration::from_millis(field(record, "duration_ms").max(1)),
        wall: t.wall,
        cpu_secs: t.cpu_secs,
    })
}

// ---------------------------------------------------------------------------------------------
// Realistic, valid rows.

/// The header, as an SIS export would write it: every attribute, some under their aliases.
const HEADER: &str = "unique_id,login_source,first_name,last_name,user_name,email,street,city,\
state,zip,street2,city2,province2,postal_code2,phone_cell,user_type_id,employ_no,employee_phone,\
student_no,student_phone,driver_license_num,driver_license_state,date_of_birth,locker_user_type_id";

/// (as written, ASCII form for user names and e-mails)
const FIRST: &[(&str, &str)] = &[
    ("Ada", "ada"),
    ("Alan", "alan"),
    ("Grace", "grace"),
    ("José", "jose"),
    ("Zoë", "zoe"),
    ("Mohammed", "mohammed"),
    ("Siobhán", "siobhan"),
    ("Wei", "wei"),
    ("Priya", "priya"),
    ("Robert \"Bob\"", "robert"),
    ("Anne-Marie", "annemarie"),
    ("Łukasz", "lukasz"),
    ("Chloé", "chloe"),
    ("Kwame", "kwame"),
    ("Olivia", "olivia"),
    ("Noah", "noah"),
];
const LAST: &[(&str, &str)] = &[
    ("Lovelace", "lovelace"),
    ("Turing", "turing"),
    ("O'Brien", "obrien"),
    ("García Márquez", "garciamarquez"),
    ("Nguyễn", "nguyen"),
    ("Smith, Jr.", "smith"),
    ("Müller", "muller"),
    ("Van der Berg", "vanderberg"),
    ("Okafor", "okafor"),
    ("Kowalski", "kowalski"),
    ("Tremblay", "tremblay"),
    ("Singh", "singh"),
    ("Dubois", "dubois"),
    ("Johnson", "johnson"),
];
const STREETS: &[&str] = &[
    "Main St",
    "Commonwealth Ave",
    "Rue Sainte-Catherine",
    "Elm Street",
    "Huntington Ave",
    "King's Rd",
    "Maple Dr",
    "University Blvd",
];
const CITIES: &[(&str, &str, &str)] = &[
    ("Boston", "MA", "02115"),
    ("Cambridge", "MA", "02139"),
    ("Montréal", "QC", "H3A 0G4"),
    ("Coeur d'Alene", "ID", "83814"),
    ("Winston-Salem", "NC", "27101"),
    ("St. John's", "NL", "A1C 5S7"),
    ("Austin", "TX", "78701"),
    ("Vancouver", "BC", "V6T 1Z4"),
];

/// splitmix64: small, deterministic, good enough for test data.
#[derive(Debug)]
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
    /// True with probability `pct` percent.
    fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

/// Writes one CSV cell, quoted when it must be (or when `force`).
fn cell(out: &mut String, value: &str, force: bool) {
    if force || value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

/// Writes a CSV of `rows` valid users with ids `first_id..first_id + rows` (BOM, CRLF).
pub(crate) fn write_csv(w: &mut impl Write, first_id: u64, rows: u64) -> Result<()> {
    write_csv_changed(w, first_id, rows, |_| false)
}

/// [`write_csv`], with the users whose id `changed` says given another first name (` II`
/// appended): the same export a day later, with those users edited.
pub(crate) fn write_csv_changed(
    w: &mut impl Write,
    first_id: u64,
    rows: u64,
    changed: impl Fn(u64) -> bool,
) -> Result<()> {
    w.write_all("\u{feff}".as_bytes())?;
    w.write_all(HEADER.as_bytes())?;
    w.write_all(b"\r\n")?;
    let mut rng = Rng(first_id);
    let mut line = String::with_capacity(512);
    let mut cells: [String; 24] = Default::default();
    for id in first_id..first_id + rows {
        for c in &mut cells {
            c.clear();
        }
        let (first, first_a) = *rng.pick(FIRST);
        let (last, last_a) = *rng.pick(LAST);
        let kind = rng.below(10); // 0-5 student, 6-8 staff, 9 visitor
        let (prefix, user_type) = match kind {
            0..=5 => ("S", "2"),
            6..=8 => ("E", "1"),
            _ => ("V", "6"),
        };
        let [
            unique_id,
            login_source,
            first_name,
            last_name,
            user_name,
            email,
            street,
            city,
            state,
            zip,
            street2,
            city2,
            province2,
            postal_code2,
            phone_cell,
            user_type_id,
            employ_no,
            employee_phone,
            student_no,
            student_phone,
            licence_num,
            licence_state,
            date_of_birth,
            locker,
        ] = &mut cells;
        write!(unique_id, "{prefix}{id:08}")?;
        login_source.push_str(if rng.pct(20) { "SAML" } else { "OPSCOM" });
        first_name.push_str(first);
        if changed(id) {
            first_name.push_str(" II");
        }
        last_name.push_str(last);
        write!(user_name, "{}{last_a}{id}", &first_a[..1])?;
        write!(email, "{first_a}.{last_a}.{id}@example.edu")?;
        let number = 1 + rng.below(9999);
        let street_name = rng.pick(STREETS);
        match rng.below(100) {
            0..=9 => write!(street, "Apt {}, {number} {street_name}", 1 + rng.below(40))?,
            10 => write!(street, "{number} {street_name}\nUnit {}", 1 + rng.below(9))?,
            _ => write!(street, "{number} {street_name}")?,
        }
        let (c, st, z) = *rng.pick(CITIES);
        city.push_str(c);
        state.push_str(st);
        zip.push_str(z);
        if rng.pct(10) {
            write!(street2, "PO Box {}", 100 + rng.below(9900))?;
            let (c, st, z) = *rng.pick(CITIES);
            city2.push_str(c);
            province2.push_str(st);
            postal_code2.push_str(z);
        }
        let (a, b) = (200 + rng.below(800), rng.below(10_000));
        if rng.pct(85) {
            match rng.below(3) {
                0 => write!(phone_cell, "{a}-555-{b:04}")?,
                1 => write!(phone_cell, "({a}) 555-{b:04}")?,
                _ => write!(phone_cell, "+1 {a} 555 {b:04}")?,
            }
        }
        user_type_id.push_str(user_type);
        match kind {
            0..=5 => {
                write!(student_no, "{}", 100_000_000 + id)?;
                if rng.pct(30) {
                    write!(student_phone, "{a}-555-{:04}", rng.below(10_000))?;
                }
            }
            6..=8 => {
                write!(employ_no, "{}", 500_000 + id)?;
                write!(employee_phone, "x{}", 1000 + rng.below(9000))?;
            }
            _ => {}
        }
        if rng.pct(40) {
            write!(licence_num, "D{:08}", rng.below(100_000_000))?;
            licence_state.push_str(rng.pick(CITIES).1);
        }
        write!(
            date_of_birth,
            "{}-{:02}-{:02}",
            1950 + rng.below(56),
            1 + rng.below(12),
            1 + rng.below(28)
        )?;
        if rng.pct(15) {
            write!(locker, "{}", 1 + rng.below(5))?;
        }
        line.clear();
        // Some exports quote every text cell of a row.
        let quote_all = rng.pct(5);
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            cell(&mut line, c, quote_all && !c.is_empty());
        }
        line.push_str("\r\n");
        w.write_all(line.as_bytes())?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_rows_are_well_formed_csv_with_unique_ids() {
        let mut buf = Vec::new();
        write_csv(&mut buf, 1, 500).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let text = text.strip_prefix('\u{feff}').unwrap();
        // Split records by hand, honouring quotes: every record has 24 cells.
        let (mut records, mut cells, mut in_quotes, mut ids) = (0, 1, false, Vec::new());
        let mut cur = String::new();
        let mut chars = text.chars().peekable();
        let mut first_cell = true;
        while let Some(ch) = chars.next() {
            match ch {
                '"' if in_quotes && chars.peek() == Some(&'"') => {
                    chars.next();
                    cur.push('"');
                }
                '"' => in_quotes = !in_quotes,
                ',' if !in_quotes => {
                    if first_cell {
                        ids.push(std::mem::take(&mut cur));
                        first_cell = false;
                    }
                    cur.clear();
                    cells += 1;
                }
                '\r' if !in_quotes => {}
                '\n' if !in_quotes => {
                    assert_eq!(cells, 24, "record {records}");
                    records += 1;
                    cells = 1;
                    first_cell = true;
                    cur.clear();
                }
                c => cur.push(c),
            }
        }
        assert_eq!(records, 501);
        assert!(!in_quotes);
        ids.remove(0);
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n);
        assert!(text.contains("\"Smith, Jr.\""));
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let xs: Vec<Duration> = (1..=20).map(Duration::from_millis).collect();
        assert_eq!(percentile(&xs, 50.0), Duration::from_millis(10));
        assert_eq!(percentile(&xs, 95.0), Duration::from_millis(19));
        assert_eq!(percentile(&xs, 100.0), Duration::from_millis(20));
    }
}
