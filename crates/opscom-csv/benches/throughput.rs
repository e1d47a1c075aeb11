//! Throughput benchmark (not a timed test): full read+map+validate next to a raw `csv::ByteRecord`
//! read of the same generated file, with each measurement's peak RSS.
//!
//! `cargo bench -p opscom-csv --bench throughput` generates 200k- and 1M-row files with every
//! column (some quoting) in a temporary folder, then re-executes itself once per measurement
//! (`--child raw|validate FILE`) so that VmHWM (from /proc/self/status) is that measurement's own.
//! Each measurement is the best of `OPSCOM_BENCH_RUNS` (default 5) alternating runs. Rates are
//! rows per second of the child's own CPU time (/proc/self/schedstat), since CI machines are
//! shared; the best wall-clock ratio is printed next to it.
//! Targets: validate ≥ 50% of raw rows/s; peak RSS < 64 MiB for 1M rows.
//! `OPSCOM_BENCH_SHUFFLED_IDS=1` writes the ids in random order instead of sorted.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const HEADER: &str = "unique_id,login_source,first_name,last_name,user_name,email,street,city,province,postal_code,street2,city2,province2,postal_code2,phone_cell,user_type_id,employ_no,employee_phone,student_no,student_phone,driver_licence_num,driver_licence_prov,date_of_birth,locker_user_type_id";

const FIRST: &[&str] = &[
    "Jane", "John", "Zoë", "Amélie", "Patrick", "Wei", "Fatima", "Lars",
];
const LAST: &[&str] = &[
    "Doe", "O'Brien", "Smith", "Nguyễn", "García", "Kowalski", "Müller", "Tremblay",
];
const CITY: &[&str] = &[
    "Boston",
    "Montréal",
    "Halifax",
    "Québec",
    "Springfield",
    "Toronto",
];
const PROV: &[&str] = &["MA", "QC", "NS", "ON", "BC", "NY"];

/// A small deterministic generator (xorshift), so every run writes the same files.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Whether the generated ids are in random order (`OPSCOM_BENCH_SHUFFLED_IDS=1`) rather than
/// sorted, as client files usually are.
fn shuffled_ids() -> bool {
    std::env::var("OPSCOM_BENCH_SHUFFLED_IDS").is_ok_and(|v| v == "1")
}

fn generate(path: &Path, rows: u64) -> std::io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let shuffled = shuffled_ids();
    write!(w, "{HEADER}\r\n")?;
    for i in 0..rows {
        // A permutation of 0..rows (7919 is a prime that divides no row count used here).
        let id = if shuffled { i * 7919 % rows } else { i };
        let first = rng.pick(FIRST);
        let last = rng.pick(LAST);
        let city = rng.pick(CITY);
        let prov = rng.pick(PROV);
        let street = if rng.chance(30) {
            format!("\"{} Main St, Apt {}\"", rng.next() % 999, rng.next() % 50)
        } else {
            format!("{} Elm Street", rng.next() % 9999)
        };
        let nick = if rng.chance(5) {
            "\"Bob \"\"Bobby\"\" Jr\""
        } else {
            first
        };
        let (street2, city2, prov2, zip2) = if rng.chance(20) {
            ("Unit 4", city, prov, "02134")
        } else {
            ("", "", "", "")
        };
        let student = rng.chance(50);
        write!(
            w,
            "S{id:08},OPSCOM,{nick},{last},{first}.{last}{i},u{i}@example.edu,{street},{city},{prov},H3Z {}A{},{street2},{city2},{prov2},{zip2},+1 617 555 {:04},{},{},{},{},{},D{:09},{prov},19{:02}-{:02}-{:02},{}\r\n",
            rng.next() % 10,
            rng.next() % 10,
            rng.next() % 10_000,
            1 + rng.next() % 20,
            if student {
                String::new()
            } else {
                format!("E{i}")
            },
            if student { "" } else { "617-555-0100" },
            if student {
                format!("{i}")
            } else {
                String::new()
            },
            if student { "617-555-0199" } else { "" },
            rng.next() % 1_000_000_000,
            50 + rng.next() % 50,
            1 + rng.next() % 12,
            1 + rng.next() % 28,
            if rng.chance(10) { "3" } else { "" },
        )?;
    }
    w.flush()
}

/// Nanoseconds this process has run on a CPU (first field of /proc/self/schedstat): unlike the
/// wall clock, it does not count time waiting for a CPU that other processes hold.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// One measurement in this (child) process; prints `rows wall_secs cpu_secs peak_kib detail`.
fn child(mode: &str, path: &Path) {
    let start = Instant::now();
    let cpu_start = cpu_ns();
    let (rows, detail) = match mode {
        "raw" => {
            let mut rdr = csv::Reader::from_path(path).expect("open");
            let mut record = csv::ByteRecord::new();
            let mut n = 0u64;
            while rdr.read_byte_record(&mut record).expect("read") {
                n += 1;
            }
            (n, String::from("-"))
        }
        "validate" => {
            let file = File::open(path).expect("open");
            let options = opscom_csv::ReadOptions::default();
            let import = opscom_csv::ImportFile::open(file, "bench.csv", &options)
                .unwrap_or_else(|e| panic!("{e}"));
            let (mut valid, mut invalid) = (0u64, 0u64);
            for outcome in import {
                match outcome.unwrap_or_else(|e| panic!("{e}")) {
                    opscom_csv::RowOutcome::Valid(_) => valid += 1,
                    opscom_csv::RowOutcome::Invalid(i) => {
                        if invalid == 0 {
                            eprintln!("first invalid row: line {}: {}", i.line, i.reason());
                        }
                        invalid += 1;
                    }
                }
            }
            (valid + invalid, format!("valid={valid},invalid={invalid}"))
        }
        other => panic!("unknown mode {other}"),
    };
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_ns().saturating_sub(cpu_start) as f64 / 1e9;
    println!("{rows} {secs} {cpu} {} {detail}", peak_rss_kib());
}

struct Measure {
    rows: u64,
    secs: f64,
    cpu: f64,
    peak_kib: u64,
}

fn measure(mode: &str, path: &Path) -> Measure {
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new(exe)
        .args(["--child", mode])
        .arg(path)
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child {mode} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut parts = stdout.split_whitespace();
    let mut next = || parts.next().unwrap_or("0").to_owned();
    Measure {
        rows: next().parse().unwrap_or(0),
        secs: next().parse().unwrap_or(0.0),
        cpu: next().parse().unwrap_or(0.0),
        peak_kib: next().parse().unwrap_or(0),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // For profiling: `--generate FILE ROWS` writes one file and stops.
    if let Some(i) = args.iter().position(|a| a == "--generate") {
        generate(Path::new(&args[i + 1]), args[i + 2].parse().expect("rows")).expect("generate");
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1], Path::new(&args[i + 2]));
        return;
    }
    let dir: PathBuf =
        std::env::temp_dir().join(format!("opscom-csv-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let runs: u32 = std::env::var("OPSCOM_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    println!(
        "best of {runs} runs per measurement, each in its own process; ids {}",
        if shuffled_ids() {
            "in random order"
        } else {
            "sorted"
        }
    );
    println!(
        "| rows | file MiB | raw ByteRecord rows/s (CPU) | validate rows/s (CPU) | ratio (CPU) | ratio (wall) | raw peak RSS MiB | validate peak RSS MiB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut ok = true;
    for rows in [200_000u64, 1_000_000] {
        let path = dir.join(format!("users-{rows}.csv"));
        generate(&path, rows).expect("generate");
        let mib = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) as f64 / (1 << 20) as f64;
        // Warm the page cache so both reads start equal.
        let _ = std::fs::read(&path);
        // Best of `runs` alternating runs: the machine is shared, the minimum is the least noisy.
        let mut raw = measure("raw", &path);
        let mut val = measure("validate", &path);
        let (mut raw_wall, mut val_wall) = (raw.secs, val.secs);
        for _ in 1..runs {
            let r = measure("raw", &path);
            raw_wall = raw_wall.min(r.secs);
            if r.cpu < raw.cpu {
                raw = r;
            }
            let v = measure("validate", &path);
            val_wall = val_wall.min(v.secs);
            if v.cpu < val.cpu {
                val = v;
            }
        }
        assert_eq!(raw.rows, rows);
        assert_eq!(val.rows, rows);
        let raw_rate = raw.rows as f64 / raw.cpu;
        let val_rate = val.rows as f64 / val.cpu;
        let ratio = val_rate / raw_rate;
        let wall_ratio = raw_wall / val_wall;
        let val_mib = val.peak_kib as f64 / 1024.0;
        println!(
            "| {rows} | {mib:.0} | {raw_rate:.0} | {val_rate:.0} | {:.0}% | {:.0}% | {:.1} | {val_mib:.1} |",
            ratio * 100.0,
            wall_ratio * 100.0,
            raw.peak_kib as f64 / 1024.0,
        );
        ok &= ratio >= 0.5;
        if rows == 1_000_000 {
            ok &= val_mib < 64.0;
        }
        let _ = std::fs::remove_file(&path);
    }
    let _ = std::fs::remove_dir(&dir);
    println!(
        "targets (validate >= 50% of raw; peak RSS < 64 MiB at 1M rows): {}",
        if ok { "met" } else { "MISSED" }
    );
}
