//! `cargo xtask bench tenants`: the many-tenants and many-files benchmarks of issue 10, run
//! against the release binaries on generated, idle drop folders.
//!
//! - `once`: `opscom-import once` over N idle tenants (default 1,000 and 10,000; targets < 200 ms
//!   and < 64 MiB at 1k, < 2 s and < 256 MiB at 10k, cost linear in tenants). Each world is N
//!   empty drop folders, a state folder, an outbox, and a configuration with N `[[tenant]]`
//!   blocks pointing at 127.0.0.1 (idle folders make no API call). `once` runs `--runs` times:
//!   the first run creates the work folders and is reported apart; the others give the median.
//!   Wall time is measured by the bench; peak RSS and CPU come from `wait4` (see `bench_proc`).
//! - `run`: `opscom-import run` (`settle = "1s"`, `interval = "5m"`) over N tenants against a
//!   `sandbox-server` on 127.0.0.1. Once the service has started and its first passes are done
//!   (its CPU use stays under 5 % of a core for 1 s), small valid CSVs are uploaded one after
//!   another into randomly chosen tenants (`x.csv.filepart` written, then renamed to `x.csv`);
//!   the time from the rename to the file leaving the drop folder (claimed) is measured by
//!   polling every 2 ms (target: settle + 1 s). Then idle CPU: utime + stime from
//!   `/proc/PID/stat` over a quiet window, as a share of one core.
//! - `files`: one tenant holding 1,000 / 2,000 / 10,000 one-row files, `once` against the sandbox
//!   with zero latency: wall time, files per second and time per file, so that a cost growing
//!   faster than the number of files shows.
//!
//! Usage: `cargo xtask bench tenants [once] [run] [files] [--tenants 1000,10000] [--runs 5]
//! [--run-tenants 10000] [--uploads 10] [--idle-secs 20] [--files 1000,2000,10000]
//! [--timeout 900] [--no-build]` (default: all three parts). The report is markdown on stdout;
//! progress goes to stderr. Everything runs in temporary folders removed afterwards (kept when
//! `OPSCOM_BENCH_KEEP` is set); only 127.0.0.1 is used; every child is stopped on every path.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail, ensure};

use crate::bench_proc::{Guard, Timed, clk_tck, numbers, proc_stat, status_kib, timed};
use crate::bench_service::{
    Bins, LATENCY_ROWS, Rng, Sandbox, Scratch, Setup, TOKEN, build_release, field, machine, median,
    ms, percentile, records, stop, tail, text, write_csv,
};

/// An API address for the idle worlds of part 1: nothing listens there, and nothing is sent.
const IDLE_API: &str = "http://127.0.0.1:9";
/// How often part 2 looks for the uploaded file.
const POLL: Duration = Duration::from_millis(2);
/// Give up on one upload (claim, then archive) after this long.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// `[schedule]` of every world.
const SETTLE: Duration = Duration::from_secs(1);
const INTERVAL: Duration = Duration::from_secs(300);
/// Below this share of one core the service counts as idle (its first passes done).
const IDLE_SHARE: f64 = 0.05;

const USAGE: &str = "usage: cargo xtask bench tenants [once] [run] [files] [--tenants 1000,10000] \
     [--runs N] [--run-tenants N] [--uploads N] [--idle-secs S] [--files 1000,2000,10000] \
     [--timeout SECS] [--no-build]";

#[derive(Debug)]
struct Opts {
    once: bool,
    run: bool,
    files: bool,
    tenants: Vec<usize>,
    runs: usize,
    run_tenants: usize,
    uploads: usize,
    idle: Duration,
    file_counts: Vec<usize>,
    timeout: Duration,
    build: bool,
}

/// [`numbers`], as counts of tenants or files.
fn counts(s: &str, flag: &str) -> Result<Vec<usize>> {
    Ok(numbers(s, flag)?.into_iter().map(|n| n as usize).collect())
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut opts = Opts {
        once: false,
        run: false,
        files: false,
        tenants: vec![1_000, 10_000],
        runs: 5,
        run_tenants: 10_000,
        uploads: 10,
        idle: Duration::from_secs(20),
        file_counts: vec![1_000, 2_000, 10_000],
        timeout: Duration::from_secs(900),
        build: true,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value; {USAGE}"))
        };
        let one = |v: String, name: &str| -> Result<usize> {
            v.replace('_', "")
                .parse()
                .with_context(|| format!("{name} takes a number"))
        };
        match a.as_str() {
            "once" => opts.once = true,
            "run" => opts.run = true,
            "files" => opts.files = true,
            "--tenants" => opts.tenants = counts(&value(a)?, a)?,
            "--runs" => opts.runs = one(value(a)?, a)?,
            "--run-tenants" => opts.run_tenants = one(value(a)?, a)?,
            "--uploads" => opts.uploads = one(value(a)?, a)?,
            "--idle-secs" => opts.idle = Duration::from_secs(one(value(a)?, a)? as u64),
            "--files" => opts.file_counts = counts(&value(a)?, a)?,
            "--timeout" => opts.timeout = Duration::from_secs(one(value(a)?, a)? as u64),
            "--no-build" => opts.build = false,
            other => bail!("unknown argument `{other}`; {USAGE}"),
        }
    }
    if !opts.once && !opts.run && !opts.files {
        (opts.once, opts.run, opts.files) = (true, true, true);
    }
    ensure!(
        opts.runs >= 2,
        "--runs must be at least 2 (the first run is reported apart)"
    );
    ensure!(opts.run_tenants > 0, "--run-tenants must be at least 1");
    ensure!(opts.uploads > 0, "--uploads must be at least 1");
    ensure!(!opts.idle.is_zero(), "--idle-secs must be at least 1");
    ensure!(!opts.timeout.is_zero(), "--timeout must be at least 1");
    Ok(opts)
}

/// Runs the parts chosen by `args` and prints their report.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let opts = parse(args)?;
    if opts.build {
        build_release()?;
    }
    let bins = Bins::locate()?;
    let mut report = String::new();
    writeln!(report, "# opscom-import with many tenants and many files\n")?;
    writeln!(report, "{}\n", machine())?;
    if opts.once {
        report.push_str(&once_over_tenants(&bins, &opts)?);
    }
    if opts.run {
        report.push_str(&run_over_tenants(&bins, &opts)?);
    }
    if opts.files {
        report.push_str(&many_files(&bins, &opts)?);
    }
    println!("{report}");
    Ok(())
}

/// Arguments of `opscom-import --log-format json COMMAND --config CONFIG`.
fn import_args(command: &str, config: &Path) -> Vec<OsString> {
    ["--log-format", "json", command, "--config"]
        .map(OsString::from)
        .into_iter()
        .chain([config.as_os_str().to_owned()])
        .collect()
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        ms(d)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// N tenants with empty drop folders, one state folder, one outbox, one configuration.
#[derive(Debug)]
struct World {
    state_dir: PathBuf,
    outbox: PathBuf,
    drops: Vec<PathBuf>,
    config: PathBuf,
}

impl World {
    fn new(root: &Path, tenants: usize, api_url: &str) -> Result<World> {
        let w = World {
            state_dir: root.join("state"),
            outbox: root.join("outbox"),
            drops: (0..tenants)
                .map(|i| root.join("drop").join(tenant_name(i)))
                .collect(),
            config: root.join("opscom-import.toml"),
        };
        fs::create_dir_all(&w.state_dir)?;
        fs::create_dir_all(&w.outbox)?;
        for d in &w.drops {
            fs::create_dir_all(d)?;
        }
        let mut out = BufWriter::new(File::create(&w.config)?);
        write!(
            out,
            "state_dir = \"{}\"\n\n[schedule]\ninterval = \"{}s\"\nsettle = \"{}s\"\n\n\
             [mail]\noutbox_dir = \"{}\"\n",
            w.state_dir.display(),
            INTERVAL.as_secs(),
            SETTLE.as_secs(),
            w.outbox.display()
        )?;
        for (i, d) in w.drops.iter().enumerate() {
            write!(
                out,
                "\n[[tenant]]\nname = \"{}\"\ndrop_dir = \"{}\"\napi_url = \"{api_url}\"\n\
                 api_token = \"{TOKEN}\"\nreply_to_admin_email = \"parking@example.edu\"\n\
                 failed_import_email = \"it@example.edu\"\nconcurrency = 8\n\
                 max_file_size = \"100MiB\"\n",
                tenant_name(i),
                d.display()
            )?;
        }
        out.flush()?;
        Ok(w)
    }

    fn mails(&self) -> usize {
        fs::read_dir(&self.outbox).map_or(0, |d| d.count())
    }

    fn work_dirs(&self) -> usize {
        fs::read_dir(self.state_dir.join("tenants")).map_or(0, |d| d.count())
    }
}

fn tenant_name(i: usize) -> String {
    format!("t{i:05}")
}

// ---------------------------------------------------------------------------------------------
// 1. `once` over many idle tenants.

/// Issue 10's targets for `once` over idle tenants: (tenants, wall, peak RSS in MiB).
const ONCE_TARGETS: &[(usize, Duration, u64)] = &[
    (1_000, Duration::from_millis(200), 64),
    (10_000, Duration::from_secs(2), 256),
];

#[derive(Debug)]
struct OnceSize {
    tenants: usize,
    first: Timed,
    /// The following runs (none if the first timed out).
    rest: Vec<Timed>,
}

impl OnceSize {
    fn median_wall(&self) -> Option<Duration> {
        let mut w: Vec<Duration> = self.rest.iter().map(|t| t.wall).collect();
        w.sort();
        (!w.is_empty()).then(|| percentile(&w, 50.0))
    }
    fn median_rss(&self) -> Option<u64> {
        let r: Vec<u64> = self.rest.iter().map(|t| t.max_rss_kib).collect();
        (!r.is_empty()).then(|| median(&r))
    }
    fn median_cpu(&self) -> Option<f64> {
        let mut c: Vec<f64> = self.rest.iter().map(|t| t.cpu_secs).collect();
        c.sort_by(f64::total_cmp);
        c.get(c.len() / 2).copied()
    }
}

fn once_over_tenants(bins: &Bins, opts: &Opts) -> Result<String> {
    let mut sizes = Vec::new();
    for &n in &opts.tenants {
        sizes.push(once_size(bins, opts, n)?);
    }
    let exact = sizes
        .iter()
        .flat_map(|s| std::iter::once(&s.first).chain(&s.rest))
        .all(|t| t.exact);
    let mut out = String::new();
    writeln!(out, "## 1. `opscom-import once` over many idle tenants\n")?;
    writeln!(
        out,
        "N tenants, each with an empty drop folder; `[[tenant]]` blocks with a literal \
         `api_token` and `api_url = \"{IDLE_API}\"` (idle folders make no API call), mail to an \
         outbox. `once` ran {} times per N: the first run creates every tenant's work folder \
         and is shown apart; \"then\" is the median of the other runs. Wall time is the whole \
         process (start-up, configuration, passes, exit) as timed by the bench; peak RSS and \
         CPU are the child's {}. Every run exited 0, wrote no record and no mail.\n",
        opts.runs,
        if exact {
            "`ru_maxrss` and utime + stime from `wait4` (GNU time)"
        } else {
            "`VmHWM` sampled from `/proc` (a lower bound: GNU time is missing) and CPU ticks"
        }
    )?;
    writeln!(
        out,
        "| tenants | first run: wall | first: peak RSS | then: wall (median) | then: peak RSS | \
         then: user + sys CPU | per tenant: wall | per tenant: RSS | target | met |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|---|---|---|")?;
    for s in &sizes {
        let first = if s.first.timed_out {
            format!("> {} (timed out)", secs(opts.timeout))
        } else {
            secs(s.first.wall)
        };
        let target = ONCE_TARGETS.iter().find(|t| t.0 == s.tenants);
        let (wall, rss, cpu) = match (s.median_wall(), s.median_rss(), s.median_cpu()) {
            (Some(w), Some(r), Some(c)) => (w, r, c),
            _ => {
                writeln!(
                    out,
                    "| {} | {first} | {} | — | — | — | — | — | — | no |",
                    s.tenants,
                    mib(s.first.max_rss_kib)
                )?;
                continue;
            }
        };
        let met = match target.map(|&(_, w, r)| (wall < w, rss < r * 1024)) {
            Some((true, true)) => "yes",
            Some((true, false)) => "no (RSS)",
            Some((false, true)) => "no (wall)",
            Some((false, false)) => "no",
            None => "—",
        };
        writeln!(
            out,
            "| {} | {first} | {} | {} | {} | {:.2} s | {:.1} µs | {:.1} KiB | {} | {met} |",
            s.tenants,
            mib(s.first.max_rss_kib),
            secs(wall),
            mib(rss),
            cpu,
            wall.as_secs_f64() * 1e6 / s.tenants as f64,
            rss as f64 / s.tenants as f64,
            target.map_or_else(
                || "—".to_owned(),
                |&(_, w, r)| format!("< {}, < {r} MiB", secs(w))
            ),
        )?;
    }
    // Linearity: each size against the smallest.
    let base = sizes
        .first()
        .and_then(|s| Some((s.tenants, s.median_wall()?, s.median_rss()?)));
    if let Some((n0, w0, r0)) = base {
        for s in sizes.iter().skip(1) {
            let (Some(w), Some(r)) = (s.median_wall(), s.median_rss()) else {
                continue;
            };
            let k = s.tenants as f64 / n0 as f64;
            writeln!(
                out,
                "\n{}× the tenants ({n0} → {}): wall ×{:.1}, peak RSS ×{:.1}; per tenant, wall \
                 ×{:.2} and RSS ×{:.2} (1.0 is linear).",
                k,
                s.tenants,
                w.as_secs_f64() / w0.as_secs_f64(),
                r as f64 / r0 as f64,
                (w.as_secs_f64() / w0.as_secs_f64()) / k,
                (r as f64 / r0 as f64) / k,
            )?;
        }
    }
    writeln!(out)?;
    Ok(out)
}

fn once_size(bins: &Bins, opts: &Opts, n: usize) -> Result<OnceSize> {
    let scratch = Scratch::new(&format!("tenants-{n}"))?;
    eprintln!("once: generating {n} tenants");
    let world = World::new(&scratch.0, n, IDLE_API)?;
    let args = import_args("once", &world.config);
    let mut runs = Vec::new();
    for r in 1..=opts.runs {
        let log = scratch.0.join(format!("once-{r}.log"));
        let t = timed(&bins.import, &args, &log, opts.timeout)?;
        eprintln!(
            "  {n} tenants, run {r}: {} wall, {} peak RSS, {:.2} s CPU",
            secs(t.wall),
            mib(t.max_rss_kib),
            t.cpu_secs
        );
        if t.timed_out {
            runs.push(t);
            break;
        }
        ensure!(
            t.status.success(),
            "opscom-import once over {n} idle tenants exited with {}; log:\n{}",
            t.status,
            tail(&log)
        );
        runs.push(t);
    }
    ensure!(
        records(&world.state_dir)?.is_empty() && world.mails() == 0,
        "idle tenants should give no record and no mail"
    );
    ensure!(
        runs[0].timed_out || world.work_dirs() == n,
        "expected {n} work folders after the first run, found {}",
        world.work_dirs()
    );
    let mut it = runs.into_iter();
    let first = it.next().context("no run")?;
    Ok(OnceSize {
        tenants: n,
        first,
        rest: it.filter(|t| !t.timed_out).collect(),
    })
}

// ---------------------------------------------------------------------------------------------
// 2. `run` over many tenants: pickup latency and idle CPU.

fn inotify_watches() -> Option<u64> {
    fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The CPU ticks of `pid`, or an error with the log if it has exited.
fn ticks(pid: u32, log: &Path) -> Result<u64> {
    match proc_stat(pid) {
        Some(s) if s.state != 'Z' => Ok(s.ticks),
        _ => bail!("opscom-import run exited; log:\n{}", tail(log)),
    }
}

fn run_over_tenants(bins: &Bins, opts: &Opts) -> Result<String> {
    let n = opts.run_tenants;
    let watches = inotify_watches();
    let watches_note = match watches {
        Some(w) if w >= n as u64 + 100 => format!("`fs.inotify.max_user_watches` = {w}"),
        Some(w) => format!(
            "**`fs.inotify.max_user_watches` = {w}, lower than the {n} watches `run` needs** \
             (raise it with `sysctl fs.inotify.max_user_watches=…`; not changed by the bench)"
        ),
        None => "`fs.inotify.max_user_watches` unknown".to_owned(),
    };
    eprintln!("run: {watches_note}");
    let scratch = Scratch::new(&format!("tenants-run-{n}"))?;
    let sandbox = Sandbox::start(bins, "0s", &scratch.0.join("sandbox.log"))?;
    eprintln!("run: generating {n} tenants");
    let world = World::new(&scratch.0, n, &sandbox.url)?;
    let log = scratch.0.join("import.log");
    let tck = clk_tck() as f64;
    let start = Instant::now();
    let mut service = Guard(
        Command::new(&bins.import)
            .args(import_args("run", &world.config))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log)?)
            .spawn()
            .with_context(|| format!("cannot start {}", bins.import.display()))?,
    );
    let pid = service.0.id();

    // Started: the log says so. First passes done: under IDLE_SHARE of a core for 1 s.
    while !fs::read_to_string(&log)?.contains("service started") {
        ticks(pid, &log)?;
        ensure!(
            start.elapsed() < opts.timeout,
            "the service did not start within {:?}; log:\n{}",
            opts.timeout,
            tail(&log)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = start.elapsed();
    eprintln!("  service started after {}", secs(started));
    let step = Duration::from_millis(500);
    let mut quiet = 0;
    let mut last = ticks(pid, &log)?;
    let mut quiet_since = start.elapsed();
    while quiet < 2 {
        ensure!(
            start.elapsed() < opts.timeout,
            "the service was still busy after {:?}; log:\n{}",
            opts.timeout,
            tail(&log)
        );
        let before = start.elapsed();
        std::thread::sleep(step);
        let now = ticks(pid, &log)?;
        let share = (now - last) as f64 / tck / step.as_secs_f64();
        last = now;
        if share < IDLE_SHARE {
            if quiet == 0 {
                quiet_since = before;
            }
            quiet += 1;
        } else {
            quiet = 0;
        }
    }
    let startup_cpu = last as f64 / tck;
    let startup_rss = status_kib(pid, "VmHWM").unwrap_or(0);
    eprintln!(
        "  first passes done after {} ({startup_cpu:.1} s CPU, {} peak RSS)",
        secs(quiet_since),
        mib(startup_rss)
    );

    // Uploads into random tenants, one after another.
    let mut rng = Rng(SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64);
    let mut claims = Vec::new();
    let mut archives = Vec::new();
    let mut lost = 0;
    for k in 0..opts.uploads {
        let tenant = rng.below(n as u64) as usize;
        let dir = &world.drops[tenant];
        let name = format!("roster-{k:03}.csv");
        let mut body = Vec::new();
        write_csv(&mut body, 1 + k as u64 * LATENCY_ROWS, LATENCY_ROWS)?;
        let part = dir.join(format!("{name}.filepart"));
        fs::write(&part, &body)?;
        let target = dir.join(&name);
        fs::rename(&part, &target)?;
        let renamed = Instant::now();
        let mut claimed = None;
        while renamed.elapsed() < UPLOAD_TIMEOUT {
            if fs::symlink_metadata(&target).is_err() {
                claimed = Some(renamed.elapsed());
                break;
            }
            std::thread::sleep(POLL);
        }
        let archived = dir.join(".bak").join(&name);
        while claimed.is_some() && !archived.exists() && renamed.elapsed() < UPLOAD_TIMEOUT {
            std::thread::sleep(POLL);
        }
        let archive = archived.exists().then(|| renamed.elapsed());
        eprintln!(
            "  upload {k} into {}: claimed after {}, archived after {}",
            tenant_name(tenant),
            claimed.map_or_else(|| "never".into(), ms),
            archive.map_or_else(|| "never".into(), ms)
        );
        match (claimed, archive) {
            (Some(c), Some(a)) => {
                claims.push(c);
                archives.push(a);
            }
            _ => lost += 1,
        }
        ticks(pid, &log)?;
        std::thread::sleep(Duration::from_millis(200));
    }

    // Idle CPU over a quiet window, after the last pass triggered by an upload.
    std::thread::sleep(SETTLE + Duration::from_secs(1));
    let from = start.elapsed();
    let t0 = ticks(pid, &log)?;
    std::thread::sleep(opts.idle);
    let t1 = ticks(pid, &log)?;
    let to = start.elapsed();
    let idle_share = (t1 - t0) as f64 / tck / (to - from).as_secs_f64();
    // The interval ticker starts with the scheduler, just after "service started".
    let (a, b) = (from.saturating_sub(started), to.saturating_sub(started));
    let tick_inside = a.as_secs() / INTERVAL.as_secs() != b.as_secs() / INTERVAL.as_secs();
    let peak = status_kib(pid, "VmHWM").unwrap_or(0);
    let rss_now = status_kib(pid, "VmRSS").unwrap_or(0);
    let threads = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:").map(|t| t.trim().to_owned()))
        .unwrap_or_default();
    eprintln!(
        "  idle: {:.2} % of a core over {}",
        idle_share * 100.0,
        secs(to - from)
    );
    let status = stop(&mut service.0, Duration::from_secs(30))?;

    let recs = records(&world.state_dir)?;
    let imported = recs
        .iter()
        .filter(|r| text(r, "outcome") == "imported" && field(r, "rows_ok") == LATENCY_ROWS)
        .count();

    let mut out = String::new();
    writeln!(out, "## 2. `opscom-import run` over {n} tenants\n")?;
    writeln!(
        out,
        "`run` with `settle = \"1s\"`, `interval = \"5m\"`, {n} tenants with empty drop folders, \
         the sandbox API (`sandbox-server`, zero latency) on 127.0.0.1, mail to an outbox. \
         {watches_note}. The service said \"service started\" {} after spawn and its first \
         passes were done (under {:.0} % of a core for 1 s) {} after spawn, having used \
         {startup_cpu:.1} s of CPU and {} peak RSS by then.\n",
        secs(started),
        IDLE_SHARE * 100.0,
        secs(quiet_since),
        mib(startup_rss),
    )?;
    writeln!(
        out,
        "Then {} uploads, one after another, each into a randomly chosen tenant: a valid \
         {LATENCY_ROWS}-row CSV written as `roster-K.csv.filepart` and renamed to \
         `roster-K.csv`. Claimed = from the rename to the file leaving the drop folder \
         (polled every {} ms); archived = to the file in `.bak/`. Each upload waited for the \
         previous one's archive, plus 200 ms. {imported} of {} files were recorded `imported` \
         with every row accepted; {lost} not claimed and archived within {}.\n",
        opts.uploads,
        POLL.as_millis(),
        opts.uploads,
        secs(UPLOAD_TIMEOUT),
    )?;
    if !claims.is_empty() {
        let each = |xs: &[Duration]| xs.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(", ");
        writeln!(out, "| from the rename | each | p50 | max | target |")?;
        writeln!(out, "|---|---|---|---|---|")?;
        for (what, xs) in [("claimed", &claims), ("in `.bak`", &archives)] {
            let mut sorted = xs.clone();
            sorted.sort();
            writeln!(
                out,
                "| {what} | {} | {} | {} | {} |",
                each(xs),
                ms(percentile(&sorted, 50.0)),
                ms(sorted[sorted.len() - 1]),
                if what == "claimed" {
                    format!(
                        "< settle + 1 s = {} ({})",
                        ms(SETTLE + Duration::from_secs(1)),
                        if sorted[sorted.len() - 1] < SETTLE + Duration::from_secs(1) {
                            "met"
                        } else {
                            "not met"
                        }
                    )
                } else {
                    "—".to_owned()
                }
            )?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "Idle CPU: {:.2} % of one core ({} clock ticks of 1/{tck} s: utime + stime from \
         `/proc/PID/stat` over {}, from {} to {} after spawn{}). RSS of the idle service: {} (peak {}), {threads} threads. It \
         stopped on SIGTERM with {status}.\n",
        idle_share * 100.0,
        t1 - t0,
        secs(to - from),
        secs(from),
        secs(to),
        if tick_inside {
            "; a 5-minute interval pass over every tenant fell inside the window"
        } else {
            "; no interval pass fell inside it"
        },
        mib(rss_now),
        mib(peak),
    )?;
    drop(sandbox);
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// 3. Many files in one folder.

fn many_files(bins: &Bins, opts: &Opts) -> Result<String> {
    let mut rows = Vec::new();
    for &f in &opts.file_counts {
        rows.push((f, files_once(bins, opts, f)?));
    }
    let mut out = String::new();
    writeln!(
        out,
        "## 3. `opscom-import once` over one tenant holding many files\n"
    )?;
    writeln!(
        out,
        "One tenant whose drop folder holds F settled one-row files (valid, unique ids), \
         `concurrency = 8`, the sandbox API with zero latency on 127.0.0.1, `once` stopped \
         after {} at most. Wall time is the whole process; per file = wall / files archived.\n",
        secs(opts.timeout)
    )?;
    writeln!(
        out,
        "| files | archived | wall | files/s | per file | per file vs. the first size | peak RSS | user + sys CPU |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|---|")?;
    let mut first_per_file = None;
    for (f, (t, done)) in &rows {
        let per_file = t.wall.as_secs_f64() / (*done).max(1) as f64;
        let base = *first_per_file.get_or_insert(per_file);
        writeln!(
            out,
            "| {f} | {done}{} | {} | {:.0} | {:.1} ms | ×{:.2} | {} | {:.1} s |",
            if t.timed_out { " (timed out)" } else { "" },
            secs(t.wall),
            *done as f64 / t.wall.as_secs_f64(),
            per_file * 1000.0,
            per_file / base,
            mib(t.max_rss_kib),
            t.cpu_secs,
        )?;
    }
    writeln!(
        out,
        "\nA constant cost per file keeps the last column near ×1; a cost per file that grows \
         with the files in the folder (a rescan per file) makes it grow with F.\n"
    )?;
    Ok(out)
}

fn files_once(bins: &Bins, opts: &Opts, files: usize) -> Result<(Timed, usize)> {
    let scratch = Scratch::new(&format!("files-{files}"))?;
    let sandbox = Sandbox::start(bins, "0s", &scratch.0.join("sandbox.log"))?;
    let setup = Setup::new(&scratch.0, &sandbox.url, 8)?;
    eprintln!("files: generating {files} one-row files");
    let settled = SystemTime::now() - Duration::from_secs(120);
    for i in 0..files {
        let mut body = Vec::new();
        write_csv(&mut body, 1 + i as u64, 1)?;
        let f = File::create(setup.drop_dir.join(format!("roster-{i:05}.csv")))?;
        (&f).write_all(&body)?;
        f.set_modified(settled)?;
    }
    let log = scratch.0.join("import.log");
    let t = timed(
        &bins.import,
        &import_args("once", &setup.config),
        &log,
        opts.timeout,
    )?;
    let done = fs::read_dir(setup.drop_dir.join(".bak")).map_or(0, |d| d.count());
    eprintln!(
        "  {files} files: {done} archived in {}, {} peak RSS",
        secs(t.wall),
        mib(t.max_rss_kib)
    );
    if !t.timed_out {
        ensure!(
            t.status.success(),
            "opscom-import once exited with {}; log:\n{}",
            t.status,
            tail(&log)
        );
        let recs = setup.records()?;
        let imported = recs
            .iter()
            .filter(|r| text(r, "outcome") == "imported" && field(r, "rows_ok") == 1)
            .count();
        ensure!(
            imported == files && done == files && setup.mails() == 0,
            "expected all {files} files imported and archived, no mail: {imported} imported, \
             {done} archived, {} mails",
            setup.mails()
        );
    }
    drop(sandbox);
    Ok((t, done))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_and_defaults_to_every_part() {
        let o = parse(&[]).unwrap();
        assert!(o.once && o.run && o.files);
        assert_eq!(o.tenants, [1_000, 10_000]);
        let args: Vec<String> = [
            "once",
            "--tenants",
            "1_000",
            "--runs",
            "2",
            "--files",
            "5,6",
        ]
        .map(String::from)
        .into();
        let o = parse(&args).unwrap();
        assert!(o.once && !o.run && !o.files);
        assert_eq!(
            (o.tenants, o.runs, o.file_counts),
            (vec![1000], 2, vec![5, 6])
        );
        assert!(parse(&["--runs".into(), "1".into()]).is_err());
        assert!(parse(&["--bogus".into()]).is_err());
    }

    #[test]
    fn a_world_has_one_tenant_block_per_folder() {
        let scratch = Scratch::new("tenants-test").unwrap();
        let w = World::new(&scratch.0, 3, IDLE_API).unwrap();
        let toml = fs::read_to_string(&w.config).unwrap();
        assert_eq!(toml.matches("[[tenant]]").count(), 3);
        assert!(toml.contains("name = \"t00002\""));
        assert!(w.drops.iter().all(|d| d.is_dir()));
    }
}
