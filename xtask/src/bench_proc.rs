//! Measuring child processes for the service benchmarks: wall time, peak RSS and CPU time of one
//! run of a command, bounded by a timeout that stops the measured process by its id; and readers
//! of `/proc` for a process that keeps running (CPU ticks, RSS).
//!
//! Peak RSS is the `ru_maxrss` that `wait4` returns for the child, read through GNU time
//! (`/usr/bin/time -f %M`): the true high-water mark, nothing sampled. Calling `wait4` from Rust
//! would need `unsafe` (forbidden in this workspace) or a new dependency, hence GNU time. Where it
//! is missing the child is run directly and `VmHWM` is sampled from `/proc/PID/status` while it
//! runs: a lower bound, marked as such.

use std::ffi::OsString;
use std::fs::{self, File};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::bench_service::stop;

/// GNU time: runs a command and prints what `wait4` said about it.
const GNU_TIME: &str = "/usr/bin/time";

/// One measured run of a command.
#[derive(Debug)]
pub(crate) struct Timed {
    /// How it ended (killed by SIGTERM when it timed out).
    pub(crate) status: ExitStatus,
    /// It ran past the timeout and was stopped.
    pub(crate) timed_out: bool,
    /// From spawn to exit, as seen by the bench (polled: within 0.5 %, at least 1 ms).
    pub(crate) wall: Duration,
    /// Peak resident set size.
    pub(crate) max_rss_kib: u64,
    /// User + system CPU time.
    pub(crate) cpu_secs: f64,
    /// Peak RSS and CPU from `wait4` (GNU time); false when sampled from `/proc`.
    pub(crate) exact: bool,
}

/// A child stopped (with the processes it started) when dropped.
#[derive(Debug)]
pub(crate) struct Guard(pub(crate) Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            stop_tree(&mut self.0, Duration::from_secs(10));
        }
    }
}

/// Sends SIGTERM to the child's own children (GNU time's command), each by its id, then stops
/// the child itself.
pub(crate) fn stop_tree(child: &mut Child, grace: Duration) {
    for pid in children_of(child.id()) {
        signal(pid, "TERM");
    }
    let _ = stop(child, grace);
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// A benchmark flag's list of counts, `100000,1_000_000`: each at least 1; the error names
/// `flag`.
pub(crate) fn numbers(s: &str, flag: &str) -> Result<Vec<u64>> {
    let xs = s
        .split(',')
        .map(|r| r.trim().replace('_', "").parse::<u64>())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{flag} takes numbers separated by commas"))?;
    ensure!(
        xs.iter().all(|&x| x > 0),
        "{flag}: every number must be at least 1"
    );
    Ok(xs)
}

/// Runs `program args` with stderr into `log`, stdin and stdout closed; stops it after `timeout`.
pub(crate) fn timed(
    program: &Path,
    args: &[OsString],
    log: &Path,
    timeout: Duration,
) -> Result<Timed> {
    let gnu_time = Path::new(GNU_TIME).is_file();
    let time_out = log.with_extension("time.txt");
    let mut cmd = if gnu_time {
        let mut c = Command::new(GNU_TIME);
        c.args(["-f", "%M %U %S", "-o"]).arg(&time_out).arg(program);
        c
    } else {
        Command::new(program)
    };
    let start = Instant::now();
    let child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(log)?)
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))?;
    let mut guard = Guard(child);
    let pid = guard.0.id();
    let (mut hwm, mut ticks) = (0u64, 0u64);
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = guard.0.try_wait()? {
            break status;
        }
        if !gnu_time {
            hwm = hwm.max(status_kib(pid, "VmHWM").unwrap_or(0));
            ticks = proc_stat(pid).map_or(ticks, |s| s.ticks);
        }
        let elapsed = start.elapsed();
        if elapsed > timeout {
            timed_out = true;
            eprintln!("  timed out after {timeout:?}: stopping it");
            // GNU time ignores nothing we send it but would leave its command running: stop
            // the command, by its id; GNU time then reports and exits.
            let targets = if gnu_time {
                children_of(pid)
            } else {
                vec![pid]
            };
            for p in &targets {
                signal(*p, "TERM");
            }
            let grace = Instant::now();
            while guard.0.try_wait()?.is_none() && grace.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(20));
            }
            for p in &targets {
                if guard.0.try_wait()?.is_none() {
                    signal(*p, "KILL");
                }
            }
            break guard.0.wait()?;
        }
        std::thread::sleep(
            (elapsed / 200).clamp(Duration::from_millis(1), Duration::from_millis(20)),
        );
    };
    let wall = start.elapsed();
    if !gnu_time {
        return Ok(Timed {
            status,
            timed_out,
            wall,
            max_rss_kib: hwm,
            cpu_secs: ticks as f64 / clk_tck() as f64,
            exact: false,
        });
    }
    let time = fs::read_to_string(&time_out)
        .with_context(|| format!("GNU time wrote no {}", time_out.display()))?;
    let nums: Vec<f64> = time
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("unexpected /usr/bin/time output {time:?}"))?;
    let [max_rss_kib, user, sys] = nums[..] else {
        bail!("unexpected /usr/bin/time output {time:?}");
    };
    Ok(Timed {
        status,
        timed_out,
        wall,
        max_rss_kib: max_rss_kib as u64,
        cpu_secs: user + sys,
        exact: true,
    })
}

/// A few fields of `/proc/PID/stat`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcStat {
    /// R, S, D, Z…
    pub(crate) state: char,
    /// The parent's id.
    pub(crate) ppid: u32,
    /// utime + stime, in clock ticks.
    pub(crate) ticks: u64,
}

/// Reads `/proc/PID/stat`; `None` once the process is gone.
pub(crate) fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold anything: split after the last `)`.
    let (_, rest) = text.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state); utime and stime are fields 14 and 15.
    Some(ProcStat {
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        ticks: f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
    })
}

/// The ids of `pid`'s children.
pub(crate) fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| proc_stat(p).is_some_and(|s| s.ppid == pid))
        .collect()
}

/// A `kB` line of `/proc/PID/status`, such as `VmHWM` or `VmRSS`.
pub(crate) fn status_kib(pid: u32, key: &str) -> Option<u64> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
pub(crate) fn clk_tck() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_stat_and_status() {
        let me = std::process::id();
        let s = proc_stat(me).unwrap();
        assert_ne!(s.state, 'Z');
        assert_eq!(s.ppid, std::os::unix::process::parent_id());
        assert!(status_kib(me, "VmHWM").unwrap() > 0);
    }

    #[test]
    fn timed_measures_a_child_and_stops_it_at_the_timeout() {
        let dir = std::env::temp_dir().join(format!("opscom-bench-proc-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let t = timed(
            Path::new("/bin/sleep"),
            &["30".into()],
            &dir.join("sleep.log"),
            Duration::from_millis(300),
        )
        .unwrap();
        assert!(t.timed_out && !t.status.success());
        assert!(t.wall < Duration::from_secs(20), "{t:?}");
        let t = timed(
            Path::new("/bin/true"),
            &[],
            &dir.join("true.log"),
            Duration::from_secs(20),
        )
        .unwrap();
        assert!(!t.timed_out && t.status.success(), "{t:?}");
        assert!(t.max_rss_kib > 0 || !t.exact, "{t:?}");
        let _ = fs::remove_dir_all(&dir);
    }
}
