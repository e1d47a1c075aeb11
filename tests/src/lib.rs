//! Shared harness for the integration tests that drive the real `opscom-import` binary.
//!
//! A [`Lab`] is one temporary world: SFTP-like drop folders per tenant, a state folder, and a
//! configuration file written from [`TenantSetup`]s. The importer runs as a child process (killed
//! on drop, never left behind), against a [`Sandbox`] API running in this process and a real SMTP
//! server (`opscom_testkit::SmtpServer`). When the tests run as root, a lab can run the importer
//! as an unprivileged user (`nobody`), so that permission bugs show even in CI.
//!
//! Everything here panics with a clear message instead of returning errors: it is test support.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

pub use opscom_pipeline::{FileRecord, Outcome as RecordOutcome};
pub use opscom_sandbox::{
    DEFAULT_TOKEN, Endpoint, FaultsUpdate, RecordedRequest, SandboxConfig, SandboxUser, TokenCheck,
};
pub use opscom_testkit::{ReceivedMessage, SmtpServer};

/// The uid and gid the importer runs as in unprivileged mode (`nobody`/`nogroup` on Debian).
pub const NOBODY: u32 = 65534;

/// How long one `once` may take before the test fails (generous: CI has 2 cores).
pub const ONCE_TIMEOUT: Duration = Duration::from_secs(90);

/// The importer binary, `target/<profile>/opscom-import` next to the test executables.
///
/// Under cargo (`CARGO` is set) it is first brought up to date with `cargo build -p
/// opscom-import`, once per test process: `cargo test` does not build another package's binary,
/// and a stale one would test old code. Cargo releases its lock while tests run.
///
/// # Panics
/// When the build fails, or the binary is missing, with the command that builds it.
pub fn importer_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(build_importer).clone()
}

fn build_importer() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // Tests run from target/<profile>/deps/; binaries live in target/<profile>/.
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps");
    let bin = profile_dir.join("opscom-import");
    if let Some(cargo) = std::env::var_os("CARGO") {
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev",
            Some(other) => other,
        };
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "opscom-import",
            "--profile",
            profile,
        ]);
        if let Some(target_dir) = profile_dir.parent() {
            cmd.env("CARGO_TARGET_DIR", target_dir);
        }
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run `cargo build -p opscom-import`: {e}"));
        if !out.status.success() {
            panic!(
                "\n\n*** `cargo build -p opscom-import` failed, so the importer cannot be tested:\n{}\n",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    if !bin.is_file() {
        panic!(
            "\n\n*** {} does not exist: these tests drive the real importer binary.\n\
             *** Fix: run `cargo build -p opscom-import` before `cargo test -p opscom-tests`.\n",
            bin.display()
        );
    }
    bin
}

/// Whether this process runs as root (then unprivileged runs are possible and wanted).
pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Polls `probe` every few milliseconds until it returns `Some`, or panics after `timeout`
/// naming `what`. For waiting on other processes, which give no signal to await.
pub fn wait_for<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// The sandbox API, in this process.

/// The OPSCOM API look-alike, served from its own small tokio runtime so that tests stay
/// synchronous. Stopped on drop.
#[derive(Debug)]
pub struct Sandbox {
    running: Option<opscom_sandbox::RunningSandbox>,
    runtime: tokio::runtime::Runtime,
}

impl Sandbox {
    /// A sandbox with the default settings (accepts [`DEFAULT_TOKEN`], login source `OPSCOM`).
    pub fn start() -> Sandbox {
        Sandbox::with(SandboxConfig::default())
    }

    /// A sandbox with `config`.
    pub fn with(config: SandboxConfig) -> Sandbox {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime for the sandbox");
        let running = runtime
            .block_on(opscom_sandbox::spawn(config))
            .expect("the sandbox binds 127.0.0.1:0");
        Sandbox {
            running: Some(running),
            runtime,
        }
    }

    fn inner(&self) -> &opscom_sandbox::RunningSandbox {
        self.running
            .as_ref()
            .expect("the sandbox runs until dropped")
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.inner().base_url()
    }

    /// The stored users, in creation order.
    pub fn users(&self) -> Vec<SandboxUser> {
        self.inner().users()
    }

    /// The stored users by `unique_id`.
    pub fn users_by_id(&self) -> BTreeMap<String, SandboxUser> {
        self.users()
            .into_iter()
            .map(|u| (u.unique_id.clone(), u))
            .collect()
    }

    /// One stored user, by `unique_id`.
    pub fn user(&self, unique_id: &str) -> Option<SandboxUser> {
        self.users().into_iter().find(|u| u.unique_id == unique_id)
    }

    /// Every request received.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner().requests()
    }

    /// The push requests received, in arrival order.
    pub fn pushes(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.endpoint == Endpoint::Push)
            .collect()
    }

    /// How many push requests carried each `unique_id`.
    pub fn push_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for r in self.pushes() {
            if let Some(id) = r.unique_id {
                *counts.entry(id).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Answers 503 to everything (`true`) or recovers (`false`).
    pub fn set_outage(&self, outage: bool) {
        self.inner().set_outage(outage);
    }

    /// Changes the faults in force.
    pub fn set_faults(&self, update: FaultsUpdate) {
        self.inner().set_faults(update);
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = self.runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), running.shutdown()).await
            });
        }
    }
}

/// A URL where nothing listens: a port that was free a moment ago, on 127.0.0.1.
pub fn dead_api_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

// ---------------------------------------------------------------------------------------------
// Files clients upload.

/// The header of the rosters the tests write (a real export's columns).
pub const ROSTER_HEADER: &str =
    "unique_id,login_source,first_name,last_name,email,phone_cell,province,date_of_birth";

/// A CSV with `header` and `rows`, CRLF line ends (what Windows exports write).
pub fn csv(header: &str, rows: &[&str]) -> Vec<u8> {
    let mut out = String::from(header);
    out.push_str("\r\n");
    for r in rows {
        out.push_str(r);
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// A valid roster of `n` users with ids `{prefix}{0..n}` (every cell filled).
pub fn roster(prefix: &str, n: usize) -> Vec<u8> {
    let mut out = String::from(ROSTER_HEADER);
    out.push_str("\r\n");
    for i in 0..n {
        let _ = write!(
            out,
            "{prefix}{i},OPSCOM,First{i},Last{i},{p}{i}@example.edu,617-555-{:04},MA,1990-01-{:02}\r\n",
            i % 10_000,
            i % 28 + 1,
            p = prefix.to_ascii_lowercase(),
        );
    }
    out.into_bytes()
}

// ---------------------------------------------------------------------------------------------
// A lab: folders, configuration, and the importer.

/// One tenant of a lab's configuration. Fields are written to the TOML as they are.
#[derive(Debug, Clone)]
pub struct TenantSetup {
    /// `name`.
    pub name: String,
    /// `drop_dir` (created by [`Lab::tenant`]).
    pub drop_dir: PathBuf,
    /// `api_url`.
    pub api_url: String,
    /// The literal `api_token`.
    pub api_token: String,
    /// `reply_to_admin_email`.
    pub reply_to: String,
    /// `failed_import_email`.
    pub failed_to: String,
    /// `concurrency`.
    pub concurrency: usize,
    /// `api_retry_budget`, when set.
    pub retry_budget: Option<String>,
    /// `max_file_size`, when set.
    pub max_file_size: Option<String>,
    /// `expect_file_every`, when set.
    pub expect_file_every: Option<String>,
    /// More lines of TOML for this tenant's table (`mode = "delta"`…).
    pub extra: String,
}

/// The `[operator]` table of a lab's configuration.
#[derive(Debug, Clone)]
pub struct OperatorSetup {
    /// `email`: where alerts go.
    pub email: String,
    /// `from`: their sender.
    pub from: String,
    /// `alert_after`, when set.
    pub alert_after: Option<String>,
}

/// What a finished importer process did.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error (logs).
    pub stderr: String,
}

impl Finished {
    /// Panics with the output unless the process exited with `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32, what: &str) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "{what}: expected exit status {code}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// An importer process running in the background (`run`, or a `once` to be killed). Killed
/// on drop.
#[derive(Debug)]
pub struct Running {
    child: Option<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Running {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("a running child")
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid() as i32).expect("a positive pid");
        rustix::process::kill_process(pid, signal).expect("signal the importer");
    }

    /// Whether it has exited.
    pub fn has_exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().expect("wait for the importer").is_some(),
            None => true,
        }
    }

    /// Waits for the process to exit; kills it and panics after `timeout`.
    pub fn wait(mut self, timeout: Duration) -> Finished {
        let mut child = self.child.take().expect("a running child");
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(2);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the importer") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the importer did not exit within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    read_lossy(&self.stdout),
                    read_lossy(&self.stderr)
                );
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(25));
        };
        Finished {
            code: status.code(),
            stdout: read_lossy(&self.stdout),
            stderr: read_lossy(&self.stderr),
        }
    }

    /// What it has written to stderr so far.
    pub fn stderr_so_far(&self) -> String {
        read_lossy(&self.stderr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn read_lossy(path: &Path) -> String {
    String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned()
}

/// One temporary world for the importer. Removed on drop.
#[derive(Debug)]
pub struct Lab {
    root: tempfile::TempDir,
    /// `state_dir`.
    pub state_dir: PathBuf,
    /// `mail.smtp_url`.
    pub smtp_url: String,
    /// `schedule.settle`.
    pub settle: String,
    /// `schedule.interval`.
    pub interval: String,
    /// The tenants, in configuration order.
    pub tenants: Vec<TenantSetup>,
    /// More TOML, written after `[mail]` and before the tenants (`[metrics]`…).
    pub extra_toml: String,
    /// The `[operator]` table, when set.
    pub operator: Option<OperatorSetup>,
    unprivileged: Option<PathBuf>,
    runs: AtomicU32,
}

impl Lab {
    /// An empty lab sending mail to `smtp_url`, with `settle = "1s"`.
    pub fn new(smtp_url: &str) -> Lab {
        let root = tempfile::Builder::new()
            .prefix("opscom-it-")
            .tempdir()
            .expect("create a temporary lab folder");
        let state_dir = root.path().join("state");
        Lab {
            state_dir,
            smtp_url: smtp_url.to_owned(),
            settle: "1s".into(),
            interval: "5m".into(),
            tenants: Vec::new(),
            extra_toml: String::new(),
            operator: None,
            unprivileged: None,
            runs: AtomicU32::new(0),
            root,
        }
    }

    /// The lab's folder.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Adds a tenant `name` using `api_url` with the sandbox's token, `concurrency = 4`, a drop
    /// folder `sftp/NAME/upload`, and addresses `parking@NAME.example.edu` →
    /// `it@NAME.example.edu`. Returns it for changes.
    pub fn tenant(&mut self, name: &str, api_url: &str) -> &mut TenantSetup {
        let drop_dir = self.root.path().join("sftp").join(name).join("upload");
        fs::create_dir_all(&drop_dir).expect("create a drop folder");
        self.tenants.push(TenantSetup {
            name: name.to_owned(),
            drop_dir,
            api_url: api_url.to_owned(),
            api_token: DEFAULT_TOKEN.to_owned(),
            reply_to: format!("parking@{name}.example.edu"),
            failed_to: format!("it@{name}.example.edu"),
            concurrency: 4,
            retry_budget: None,
            max_file_size: None,
            expect_file_every: None,
            extra: String::new(),
        });
        self.tenants.last_mut().expect("just pushed")
    }

    /// A tenant by name.
    pub fn tenant_setup(&self, name: &str) -> &TenantSetup {
        self.tenants
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no tenant {name} in this lab"))
    }

    /// The tenant's drop folder.
    pub fn drop_dir(&self, tenant: &str) -> PathBuf {
        self.tenant_setup(tenant).drop_dir.clone()
    }

    /// The configuration TOML for the current settings.
    pub fn config_text(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "state_dir = {}",
            toml_str(&self.state_dir.to_string_lossy())
        );
        let _ = writeln!(
            t,
            "\n[schedule]\ninterval = {}\nsettle = {}",
            toml_str(&self.interval),
            toml_str(&self.settle)
        );
        let _ = writeln!(t, "\n[mail]\nsmtp_url = {}", toml_str(&self.smtp_url));
        if !self.extra_toml.is_empty() {
            let _ = writeln!(t, "\n{}", self.extra_toml);
        }
        if let Some(o) = &self.operator {
            let _ = writeln!(t, "\n[operator]\nemail = {}", toml_str(&o.email));
            let _ = writeln!(t, "from = {}", toml_str(&o.from));
            if let Some(a) = &o.alert_after {
                let _ = writeln!(t, "alert_after = {}", toml_str(a));
            }
        }
        for tenant in &self.tenants {
            let _ = writeln!(t, "\n[[tenant]]");
            let _ = writeln!(t, "name = {}", toml_str(&tenant.name));
            let _ = writeln!(
                t,
                "drop_dir = {}",
                toml_str(&tenant.drop_dir.to_string_lossy())
            );
            let _ = writeln!(t, "api_url = {}", toml_str(&tenant.api_url));
            let _ = writeln!(t, "api_token = {}", toml_str(&tenant.api_token));
            let _ = writeln!(t, "reply_to_admin_email = {}", toml_str(&tenant.reply_to));
            let _ = writeln!(t, "failed_import_email = {}", toml_str(&tenant.failed_to));
            let _ = writeln!(t, "concurrency = {}", tenant.concurrency);
            if let Some(b) = &tenant.retry_budget {
                let _ = writeln!(t, "api_retry_budget = {}", toml_str(b));
            }
            if let Some(m) = &tenant.max_file_size {
                let _ = writeln!(t, "max_file_size = {}", toml_str(m));
            }
            if let Some(e) = &tenant.expect_file_every {
                let _ = writeln!(t, "expect_file_every = {}", toml_str(e));
            }
            if !tenant.extra.is_empty() {
                let _ = writeln!(t, "{}", tenant.extra.trim_end());
            }
        }
        t
    }

    /// Writes the configuration for the current settings; returns its path.
    pub fn write_config(&self) -> PathBuf {
        self.write_config_text(&self.config_text())
    }

    /// Writes `text` as the configuration; returns its path.
    pub fn write_config_text(&self, text: &str) -> PathBuf {
        let path = self.root.path().join("config.toml");
        // Replaced whole (a temporary file, then a rename): an importer started a moment ago
        // never reads a half-written configuration.
        let tmp = self.root.path().join(".config.toml.tmp");
        fs::write(&tmp, text).expect("write the configuration");
        fs::rename(&tmp, &path).expect("put the configuration in place");
        path
    }

    /// Writes an upload into the tenant's drop folder, with an mtime a minute in the past (a
    /// finished upload that has settled). Returns its path.
    pub fn upload(&self, tenant: &str, name: &str, bytes: &[u8]) -> PathBuf {
        self.upload_aged(tenant, name, bytes, Duration::from_secs(60))
    }

    /// Sets the modification time of `path` — a link itself, never its target — `age` in the
    /// past (an entry a client made a while ago, settled).
    pub fn backdate(&self, path: &Path, age: Duration) {
        use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};
        let t = SystemTime::now() - age;
        let since = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970");
        let ts = Timespec {
            tv_sec: since.as_secs() as i64,
            tv_nsec: i64::from(since.subsec_nanos()) as _,
        };
        let times = Timestamps {
            last_access: ts,
            last_modification: ts,
        };
        utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)
            .unwrap_or_else(|e| panic!("backdate {}: {e}", path.display()));
    }

    /// Writes an upload whose mtime is `age` in the past.
    pub fn upload_aged(&self, tenant: &str, name: &str, bytes: &[u8], age: Duration) -> PathBuf {
        let path = self.drop_dir(tenant).join(name);
        fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        let file = fs::File::options()
            .write(true)
            .open(&path)
            .expect("reopen the upload");
        file.set_modified(SystemTime::now() - age)
            .expect("backdate the upload's mtime");
        path
    }

    /// Runs the importer as `nobody` from now on, when the tests run as root (they do in CI,
    /// where root would hide permission bugs). Returns whether it will.
    pub fn run_unprivileged(&mut self) -> bool {
        if !running_as_root() {
            return false;
        }
        let bin = importer_binary();
        let reachable = if reachable_by_others(&bin) {
            bin
        } else {
            // The checkout may sit in a folder `nobody` cannot enter (/root): copy the binary.
            let dir = self.root.path().join("bin");
            fs::create_dir_all(&dir).expect("create the lab's bin folder");
            let copy = dir.join("opscom-import");
            fs::copy(&bin, &copy).expect("copy the importer binary into the lab");
            fs::set_permissions(&copy, fs::Permissions::from_mode(0o755))
                .expect("make the copy executable");
            copy
        };
        self.unprivileged = Some(reachable);
        true
    }

    /// Whether the importer runs as `nobody`.
    pub fn is_unprivileged(&self) -> bool {
        self.unprivileged.is_some()
    }

    /// A command running the importer with `args` (as `nobody` in unprivileged mode).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = match &self.unprivileged {
            Some(bin) => {
                // Everything the importer touches belongs to the user it runs as, like a
                // service account's folders would.
                chown_tree(self.root.path(), NOBODY);
                let mut c = Command::new("setpriv");
                c.args([
                    format!("--reuid={NOBODY}"),
                    format!("--regid={NOBODY}"),
                    "--clear-groups".to_owned(),
                    "--".to_owned(),
                ])
                .arg(bin);
                c
            }
            None => Command::new(importer_binary()),
        };
        cmd.args(args)
            .env("NO_COLOR", "1")
            .env_remove("OPSCOM_LOG")
            .stdin(Stdio::null());
        cmd
    }

    /// Starts the importer with `args` in the background.
    pub fn spawn(&self, args: &[&str]) -> Running {
        self.spawn_command(self.command(args))
    }

    /// Starts the importer with `args` under `wrapper` (a program and its arguments, such as
    /// `unshare …`), which must end by running the program it is given.
    pub fn spawn_wrapped(&self, wrapper: &[&str], args: &[&str]) -> Running {
        let (program, rest) = wrapper.split_first().expect("a wrapper program");
        let mut cmd = Command::new(program);
        cmd.args(rest)
            .arg(importer_binary())
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("OPSCOM_LOG")
            .stdin(Stdio::null());
        self.spawn_command(cmd)
    }

    fn spawn_command(&self, mut command: Command) -> Running {
        let n = self.runs.fetch_add(1, Ordering::SeqCst);
        let logs = self.root.path().join("logs");
        fs::create_dir_all(&logs).expect("create the lab's log folder");
        let stdout = logs.join(format!("run-{n}.out"));
        let stderr = logs.join(format!("run-{n}.err"));
        let child = command
            .stdout(fs::File::create(&stdout).expect("create a stdout log"))
            .stderr(fs::File::create(&stderr).expect("create a stderr log"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the importer: {e}"));
        Running {
            child: Some(child),
            stdout,
            stderr,
        }
    }

    /// Runs the importer with `args` to its end (at most [`ONCE_TIMEOUT`]).
    pub fn run_to_end(&self, args: &[&str]) -> Finished {
        self.spawn(args).wait(ONCE_TIMEOUT)
    }

    /// Writes the configuration and starts `opscom-import once --config FILE` in the background.
    pub fn spawn_once(&self) -> Running {
        let config = self.write_config();
        self.spawn(&["once", "--config", &config.to_string_lossy()])
    }

    /// Writes the configuration and runs `opscom-import once --config FILE` to its end.
    pub fn once(&self) -> Finished {
        self.spawn_once().wait(ONCE_TIMEOUT)
    }

    /// The records in `state_dir/records.jsonl`, oldest first; every line must parse.
    pub fn records(&self) -> Vec<FileRecord> {
        let path = self.state_dir.join(opscom_pipeline::record::RECORDS_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => panic!("read {}: {e}", path.display()),
        };
        text.lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("a record line that does not parse ({e}): {l}"))
            })
            .collect()
    }

    /// The files in the tenant's `.bak` folder: name → contents.
    pub fn bak(&self, tenant: &str) -> BTreeMap<String, Vec<u8>> {
        self.files_in(&self.drop_dir(tenant).join(".bak"))
    }

    /// The files in the tenant's `results/` folder: name → contents.
    pub fn results(&self, tenant: &str) -> BTreeMap<String, Vec<u8>> {
        self.files_in(&self.drop_dir(tenant).join("results"))
    }

    /// The files in `dir` (none when it does not exist): name → contents; sub-folders and
    /// links are left out.
    pub fn files_in(&self, dir: &Path) -> BTreeMap<String, Vec<u8>> {
        let Ok(entries) = fs::read_dir(dir) else {
            return BTreeMap::new();
        };
        entries
            .map(|e| {
                let e = e.expect("read a folder");
                let name = e.file_name().to_string_lossy().into_owned();
                (name, e)
            })
            .filter(|(_, e)| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|(name, e)| {
                let bytes = fs::read(e.path()).expect("read a file");
                (name, bytes)
            })
            .collect()
    }

    /// The names in the tenant's drop folder, the importer's own folders (`.bak`, `results`,
    /// `preview`, `held`) left out.
    pub fn drop_entries(&self, tenant: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.drop_dir(tenant))
            .expect("read the drop folder")
            .map(|e| {
                e.expect("read the drop folder")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|n| ![".bak", "results", "preview", "held"].contains(&n.as_str()))
            .collect();
        names.sort();
        names
    }
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether a user other than the owner can execute `bin` (every folder above it searchable).
fn reachable_by_others(bin: &Path) -> bool {
    let executable = fs::metadata(bin).is_ok_and(|m| m.permissions().mode() & 0o005 == 0o005);
    executable
        && bin
            .ancestors()
            .skip(1)
            .all(|dir| fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

/// Gives `root` and everything below it (symlinks themselves, never their targets) to `uid`.
/// Entries that vanish meanwhile (an importer still running moves files) are passed over.
/// Files whose name starts with this keep their owner when the lab is handed to `nobody`: they
/// stand for uploads the importer may not read.
pub const KEEP_OWNER_PREFIX: &str = "root-owned-";

fn chown_tree(root: &Path, uid: u32) {
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    if root
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(KEEP_OWNER_PREFIX))
    {
        return;
    }
    match std::os::unix::fs::lchown(root, Some(uid), Some(uid)) {
        Ok(()) => {}
        Err(e) if gone(&e) => return,
        Err(e) => panic!("chown {}: {e}", root.display()),
    }
    let Ok(meta) = fs::symlink_metadata(root) else {
        return;
    };
    if meta.is_dir() {
        let Ok(entries) = fs::read_dir(root) else {
            return;
        };
        for entry in entries.flatten() {
            chown_tree(&entry.path(), uid);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Mail.

/// The messages `smtp` received that are addressed to `to`.
pub fn messages_to(smtp: &SmtpServer, to: &str) -> Vec<ReceivedMessage> {
    smtp.messages()
        .into_iter()
        .filter(|m| m.to_addresses().iter().any(|a| a.eq_ignore_ascii_case(to)))
        .collect()
}

/// A short description of `messages` for assertion failures.
pub fn describe(messages: &[ReceivedMessage]) -> String {
    messages
        .iter()
        .map(|m| {
            format!(
                "- to {:?}, subject {:?}",
                m.to_addresses(),
                m.subject().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `YYYYMMDDTHHMMSSZ` (UTC) of `t`, as archive names carry it.
pub fn utc_stamp(t: SystemTime) -> String {
    let ts = jiff::Timestamp::try_from(t).expect("a representable time");
    ts.strftime("%Y%m%dT%H%M%SZ").to_string()
}
