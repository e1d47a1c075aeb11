//! The host side of the end-to-end test: root, tools, a lock against parallel runs, processes
//! tracked by id (pid and start time), and the removal of an earlier crashed run's leftovers.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

/// The file in a run folder that names the SMTP server's Maildir.
pub const MAILDIR_NOTE: &str = "smtp.maildir";
/// Every user, group and folder the test makes starts with this.
pub const PREFIX: &str = "opscom-e2e";
/// Held (std `File::lock`) for the whole run: the test never runs in parallel with itself.
pub const LOCK_PATH: &str = "/run/lock/opscom-e2e.lock";
/// The scratch roots live here (chroots cannot live under /tmp: every component must be
/// root-owned and not group/world-writable).
pub const SCRATCH_PARENT: &str = "/srv";

/// Fails unless the test runs as root (it makes system users, chroots and runs sshd).
pub fn require_root() {
    if !rustix::process::geteuid().is_root() {
        panic!(
            "\n\n*** The SFTP end-to-end test must run as root: it creates system users, chroots under\n\
             *** /srv and runs its own sshd. Run it with `sudo -E cargo xtask e2e` (or `cargo xtask test`).\n\
             *** It is never skipped.\n"
        );
    }
}

/// The absolute path of `tool`, or a loud failure naming the fix.
pub fn require_tool(tool: &str, package: &str) -> PathBuf {
    let path_var = std::env::var("PATH").unwrap_or_default();
    let dirs = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .into_iter()
        .map(PathBuf::from)
        .chain(std::env::split_paths(&path_var));
    for dir in dirs {
        let candidate = dir.join(tool);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "\n\n*** The SFTP end-to-end test needs `{tool}` (Debian package {package}), which is not installed.\n\
         *** Fix: `apt-get install {package}` (as root), or run the tests with `cargo xtask test`\n\
         *** (or `cargo xtask e2e`), which install it. This test is never skipped.\n"
    );
}

/// Takes the run lock, waiting for another run to finish.
pub fn lock() -> File {
    std::fs::create_dir_all("/run/lock").expect("create /run/lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK_PATH)
        .unwrap_or_else(|e| panic!("open {LOCK_PATH}: {e}"));
    file.lock()
        .unwrap_or_else(|e| panic!("lock {LOCK_PATH}: {e}"));
    file
}

/// Runs `cmd` to completion; panics with its output when it fails.
pub fn run(cmd: &mut Command) -> Output {
    run_with_input(cmd, b"")
}

/// Runs `cmd` with `input` on its stdin; panics with its output when it fails.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> Output {
    let out = output_with_input(cmd, input);
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Runs `cmd` with `input` on its stdin and returns what it did, success or not.
pub fn output_with_input(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    // Written from a thread: a child that does not read its input must not block us.
    let writer = std::thread::spawn(move || {
        let _ = std::io::Write::write_all(&mut stdin, &input);
    });
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait for {cmd:?}: {e}"));
    let _ = writer.join();
    out
}

/// A process's start time (clock ticks since boot): with the pid, it names one process.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name; start time is field 22.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// Whether `pid` is a live (not zombie) process started at `started`.
fn is_same_live_process(pid: i32, started: u64) -> bool {
    start_time(pid) == Some(started) && state(pid).is_some_and(|s| s != 'Z')
}

fn signal(pid: i32, sig: Signal) {
    if let Some(pid) = Pid::from_raw(pid) {
        let _ = kill_process(pid, sig);
    }
}

/// A child process started by the test: recorded in a pid file (pid and start time) so that a
/// later run can end it if this one crashes, reaped by a waiter thread, killed on drop.
#[derive(Debug)]
pub struct Spawned {
    name: String,
    pid: i32,
    pid_file: PathBuf,
    // In a Mutex so that the world can be shared with client threads.
    exited: Mutex<mpsc::Receiver<ExitStatus>>,
    status: Option<ExitStatus>,
}

impl Spawned {
    /// Takes over `child`, recording it in `run_dir/NAME.pid`.
    pub fn adopt(name: &str, child: Child, run_dir: &Path) -> Spawned {
        let pid = child.id() as i32;
        let started = start_time(pid).unwrap_or(0);
        let pid_file = run_dir.join(format!("{name}.pid"));
        record_pid(&pid_file, pid, started);
        let (tx, exited) = mpsc::channel();
        let mut child = child;
        std::thread::spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = tx.send(status);
            }
        });
        Spawned {
            name: name.to_owned(),
            pid,
            pid_file,
            exited: Mutex::new(exited),
            status: None,
        }
    }

    fn recv(&self, timeout: Duration) -> Option<ExitStatus> {
        let exited = self.exited.lock().unwrap_or_else(|e| e.into_inner());
        if timeout.is_zero() {
            exited.try_recv().ok()
        } else {
            exited.recv_timeout(timeout).ok()
        }
    }

    /// The exit status, if it has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.recv(Duration::ZERO);
        }
        self.status
    }

    /// Sends SIGTERM and waits up to `grace` for the exit; then SIGKILL. Returns the status, or
    /// `None` when it had to be killed.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.try_status() {
            return Some(status);
        }
        signal(self.pid, Signal::TERM);
        match self.recv(grace) {
            Some(status) => {
                self.status = Some(status);
                let _ = std::fs::remove_file(&self.pid_file);
                Some(status)
            }
            None => {
                self.kill();
                None
            }
        }
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if self.try_status().is_none() {
            signal(self.pid, Signal::KILL);
            self.status = self.recv(Duration::from_secs(10));
            if self.status.is_none() {
                eprintln!("e2e: {} (pid {}) did not die", self.name, self.pid);
            }
        }
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes `pid started` into `path`.
pub fn record_pid(path: &Path, pid: i32, started: u64) {
    std::fs::write(path, format!("{pid} {started}\n"))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// The pids of the processes whose parent is this process and whose command line contains
/// `needle` (to record a child a helper library started).
pub fn children_matching(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    pids()
        .into_iter()
        .filter(|&pid| {
            let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = s[s.rfind(')')? + 1..].to_owned();
                    rest.split_whitespace().nth(1)?.parse::<i32>().ok()
                });
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            ppid == Some(me) && String::from_utf8_lossy(&cmdline).contains(needle)
        })
        .collect()
}

fn pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn real_uid(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Every `/etc/passwd` entry whose name starts with `prefix`: (name, uid, gid).
pub fn users_with_prefix(prefix: &str) -> Vec<(String, u32, u32)> {
    let text = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[0].starts_with(prefix)).then(|| {
                (
                    f[0].to_owned(),
                    f[2].parse().unwrap_or(u32::MAX),
                    f[3].parse().unwrap_or(u32::MAX),
                )
            })
        })
        .collect()
}

/// Every `/etc/group` entry whose name starts with `prefix`: (name, gid, members).
pub fn groups_with_prefix(prefix: &str) -> Vec<(String, u32, Vec<String>)> {
    let text = std::fs::read_to_string("/etc/group").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[0].starts_with(prefix)).then(|| {
                (
                    f[0].to_owned(),
                    f[2].parse().unwrap_or(u32::MAX),
                    f[3].split(',')
                        .filter(|m| !m.is_empty())
                        .map(str::to_owned)
                        .collect(),
                )
            })
        })
        .collect()
}

/// Ends every live process whose real uid is one of `uids` (sshd's per-session children, an
/// importer left behind), by pid, and waits until they are gone.
pub fn kill_processes_of(uids: &[u32]) {
    if uids.is_empty() {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let live: Vec<(i32, u64)> = pids()
            .into_iter()
            .filter(|&pid| real_uid(pid).is_some_and(|u| uids.contains(&u)))
            .filter_map(|pid| Some((pid, start_time(pid)?)))
            .filter(|&(pid, started)| is_same_live_process(pid, started))
            .collect();
        if live.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            eprintln!("e2e: processes {live:?} of uids {uids:?} would not die");
            return;
        }
        for (pid, _) in &live {
            signal(*pid, Signal::KILL);
        }
        // A killed process gives this process no signal unless it is our child: poll briefly.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Removes every user and group with the test's prefix (their processes first).
pub fn remove_users_and_groups() {
    let users = users_with_prefix(PREFIX);
    kill_processes_of(&users.iter().map(|u| u.1).collect::<Vec<_>>());
    for (name, ..) in &users {
        let out = output_with_input(Command::new("userdel").args(["--force", name]), b"");
        if !out.status.success() {
            eprintln!(
                "e2e: userdel {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    for (name, ..) in groups_with_prefix(PREFIX) {
        let out = output_with_input(Command::new("groupdel").arg(&name), b"");
        if !out.status.success() {
            eprintln!(
                "e2e: groupdel {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// The scratch roots of earlier runs (`/srv/opscom-e2e-*`).
pub fn scratch_roots() -> Vec<PathBuf> {
    std::fs::read_dir(SCRATCH_PARENT)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.starts_with(&format!("{PREFIX}-")))
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes what an earlier, crashed run left: its recorded processes (by pid and start time),
/// the users and groups, and the scratch roots. Called with the lock held.
pub fn remove_leftovers() {
    for root in scratch_roots() {
        let Ok(entries) = std::fs::read_dir(root.join("run")) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let mut text = String::new();
            if File::open(entry.path())
                .and_then(|mut f| f.read_to_string(&mut text))
                .is_err()
            {
                continue;
            }
            let mut fields = text.split_whitespace();
            let (Some(Ok(pid)), Some(Ok(started))) = (
                fields.next().map(str::parse::<i32>),
                fields.next().map(str::parse::<u64>),
            ) else {
                continue;
            };
            if is_same_live_process(pid, started) {
                eprintln!(
                    "e2e: ending {} (pid {pid}) left by an earlier run",
                    entry.path().display()
                );
                signal(pid, Signal::KILL);
            }
        }
    }
    remove_users_and_groups();
    for root in scratch_roots() {
        // The SMTP server's Maildir (a temporary folder of the testkit), noted at start.
        if let Ok(maildir) = std::fs::read_to_string(root.join("run").join(MAILDIR_NOTE)) {
            let maildir = Path::new(maildir.trim());
            if maildir.starts_with(std::env::temp_dir()) && maildir.is_dir() {
                let _ = std::fs::remove_dir_all(maildir);
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&root) {
            eprintln!("e2e: cannot remove {}: {e}", root.display());
        }
    }
}

/// The last `lines` lines of a text file (for failure output).
pub fn tail(path: &Path, lines: usize) -> String {
    let Ok(file) = File::open(path) else {
        return format!("({} is missing)", path.display());
    };
    let all: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
