//! The world of the end-to-end test, set up the way an operator sets up a host with the scripts
//! in `deploy/`: a scratch root under /srv, the service user, two chrooted SFTP tenants, the
//! test's own sshd, the sandbox API, a real SMTP server and `opscom-import run` as the service
//! user. Everything is removed on drop, and leftovers of a crashed run are removed at start.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use opscom_testkit::SmtpServer;

use crate::system::{self, PREFIX, Spawned};

/// `schedule.settle` of the importer under test.
pub const SETTLE: &str = "3s";
/// `schedule.interval` of the importer under test (file events trigger passes too).
pub const INTERVAL: &str = "1s";

/// One client of the service.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// The system user, the tenant's name in the configuration and its group.
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    /// The client's private key (for `sftp -i`).
    pub key: PathBuf,
    /// The drop folder, as the host sees it (`/upload` in the client's chroot).
    pub drop_dir: PathBuf,
    pub reply_to: String,
    pub failed_to: String,
    pub token: String,
}

/// The running world.
#[derive(Debug)]
pub struct World {
    pub workspace: PathBuf,
    pub root: PathBuf,
    pub work_root: PathBuf,
    pub state_dir: PathBuf,
    pub config: PathBuf,
    pub client_dir: PathBuf,
    pub log_dir: PathBuf,
    pub run_dir: PathBuf,
    pub service_user: String,
    pub service_uid: u32,
    pub sftp_group: String,
    pub tenants: Vec<Tenant>,
    pub sshd_port: u16,
    pub sandbox_url: String,
    pub smtp: SmtpServer,
    pub importer_log: PathBuf,
    sftp_bin: PathBuf,
    procs: Vec<Spawned>,
    importer: Option<Spawned>,
    made_run_sshd: bool,
    _lock: File,
}

/// Where cargo put the binaries of this build (`target/debug`), found from the test's own path.
fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let path = dir.join(name);
    if !path.is_file() {
        panic!(
            "\n\n*** {} is missing: the end-to-end test runs the built binaries.\n\
             *** Fix: run it with `cargo xtask e2e` (it builds them first) or `cargo test --workspace`.\n",
            path.display()
        );
    }
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

fn mkdir(path: &Path, mode: u32) {
    fs::DirBuilder::new()
        .mode(mode)
        .recursive(true)
        .create(path)
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

fn user_ids(name: &str) -> (u32, u32) {
    system::users_with_prefix(name)
        .into_iter()
        .find(|(n, ..)| n == name)
        .map(|(_, uid, gid)| (uid, gid))
        .unwrap_or_else(|| panic!("user {name} was not created"))
}

impl World {
    /// Builds and starts everything.
    pub fn start() -> World {
        system::require_root();
        let sshd = system::require_tool("sshd", "openssh-server");
        let sftp_bin = system::require_tool("sftp", "openssh-client");
        for (tool, package) in [
            ("ssh-keygen", "openssh-client"),
            ("setpriv", "util-linux"),
            ("useradd", "passwd"),
            ("getent", "libc-bin"),
        ] {
            system::require_tool(tool, package);
        }
        let importer_bin = binary("opscom-import");
        let sandbox_bin = binary("opscom-sandbox");
        let lock = system::lock();
        system::remove_leftovers();

        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("tests/ lives in the workspace")
            .to_path_buf();
        let root =
            Path::new(system::SCRATCH_PARENT).join(format!("{PREFIX}-{}", std::process::id()));
        let etc = root.join("etc");
        let run_dir = root.join("run");
        let log_dir = root.join("log");
        let client_dir = root.join("client");
        mkdir(&root, 0o755);
        mkdir(&etc, 0o755);
        mkdir(&run_dir, 0o755);
        mkdir(&log_dir, 0o700);
        mkdir(&client_dir, 0o700);
        let made_run_sshd = !Path::new("/run/sshd").exists();

        let service_user = format!("{PREFIX}-svc");
        let sftp_group = format!("{PREFIX}-sftp");
        let sftp_root = root.join("sftp");
        let state_dir = root.join("state");
        let config_dir = etc.join("opscom-import");
        let config = config_dir.join("config.toml");
        let keys_dir = etc.join("authorized_keys");
        let sshd_config = etc.join("sshd_config");
        let dropin = etc.join("sshd_config.d").join("opscom-sftp.conf");
        let importer_log = log_dir.join("opscom-import.log");
        let mut world = World {
            workspace: workspace.clone(),
            work_root: sftp_root.join(".opscom-import"),
            root: root.clone(),
            state_dir: state_dir.clone(),
            config: config.clone(),
            client_dir: client_dir.clone(),
            log_dir: log_dir.clone(),
            run_dir: run_dir.clone(),
            service_user: service_user.clone(),
            service_uid: 0,
            sftp_group: sftp_group.clone(),
            tenants: Vec::new(),
            sshd_port: 0,
            sandbox_url: String::new(),
            smtp: SmtpServer::start(),
            importer_log: importer_log.clone(),
            sftp_bin,
            procs: Vec::new(),
            importer: None,
            made_run_sshd,
            _lock: lock,
        };
        // The SMTP server is the testkit's child: record it and its Maildir too, for a later
        // run's cleanup should this one crash.
        fs::write(
            run_dir.join(system::MAILDIR_NOTE),
            world.smtp.maildir().as_os_str().as_encoded_bytes(),
        )
        .expect("note the Maildir");
        for pid in system::children_matching("aiosmtpd") {
            system::record_pid(
                &run_dir.join(format!("smtp-{pid}.pid")),
                pid,
                system::start_time(pid).unwrap_or(0),
            );
        }

        // The sandbox API, with one token per tenant.
        let tokens =
            ["a", "b"].map(|t| format!("e2e-tenant-{t}-token-0000000000000000000000000000000"));
        world.start_sandbox(&sandbox_bin, &tokens);

        // The host's sshd_config, with the drop-in folder included first as on Debian.
        let port = free_port();
        world.sshd_port = port;
        world.write_sshd_config(&sshd_config, port);

        // deploy/install.sh and deploy/add-tenant.sh, as in docs/operating.md.
        let env = [
            ("SERVICE_USER", service_user.clone()),
            ("SFTP_GROUP", sftp_group.clone()),
            ("SFTP_ROOT", sftp_root.display().to_string()),
            ("STATE_DIR", state_dir.display().to_string()),
            ("CONFIG_DIR", config_dir.display().to_string()),
            ("KEYS_DIR", keys_dir.display().to_string()),
            ("BIN_DIR", root.join("bin").display().to_string()),
            ("SSHD_CONFIG", sshd_config.display().to_string()),
            ("SSHD_DROPIN", dropin.display().to_string()),
            ("API_URL", world.sandbox_url.clone()),
        ];
        let deploy = workspace.join("deploy");
        system::run(
            Command::new("sh")
                .arg(deploy.join("install.sh"))
                .arg(&importer_bin)
                .envs(env.iter().map(|(k, v)| (k, v))),
        );
        world.service_uid = user_ids(&service_user).0;
        // The example configuration, with test timings and the test's SMTP server.
        let mut text = fs::read_to_string(&config).expect("install.sh wrote the configuration");
        for (from, to) in [
            ("interval = \"5m\"", format!("interval = \"{INTERVAL}\"")),
            ("settle = \"60s\"", format!("settle = \"{SETTLE}\"")),
            ("smtp://127.0.0.1:25", world.smtp.url()),
        ] {
            assert!(
                text.contains(from),
                "deploy/opscom-import.toml no longer has `{from}`"
            );
            text = text.replace(from, &to);
        }
        for (i, letter) in ["a", "b"].into_iter().enumerate() {
            let user = format!("{PREFIX}-{letter}");
            let key = client_dir.join(format!("{user}.key"));
            system::run(
                Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-C", &user, "-f"])
                    .arg(&key),
            );
            let reply_to = format!("registrar@{letter}.example.edu");
            let failed_to = format!("it-{letter}@{letter}.example.edu");
            let block = system::run_with_input(
                Command::new("sh")
                    .arg(deploy.join("add-tenant.sh"))
                    .arg(&user)
                    .arg(key.with_extension("key.pub"))
                    .args([&reply_to, &failed_to])
                    .envs(env.iter().map(|(k, v)| (k, v))),
                format!("{}\n", tokens[i]).as_bytes(),
            );
            text.push_str(&String::from_utf8(block.stdout).expect("a UTF-8 block"));
            let (uid, gid) = user_ids(&user);
            world.tenants.push(Tenant {
                drop_dir: sftp_root.join(&user).join("upload"),
                user,
                uid,
                gid,
                key,
                reply_to,
                failed_to,
                token: tokens[i].clone(),
            });
        }
        fs::write(&config, text).expect("write the configuration");

        world.start_sshd(&sshd, &sshd_config);
        world.start_importer();
        world
    }

    fn start_sandbox(&mut self, bin: &Path, tokens: &[String]) {
        let log = File::create(self.log_dir.join("sandbox.log")).expect("sandbox log");
        let mut cmd = Command::new(bin);
        cmd.args(["--bind", "127.0.0.1", "--port", "0"]);
        for t in tokens {
            cmd.args(["--token", t]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        self.procs
            .push(Spawned::adopt("sandbox", child, &self.run_dir));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let _ = tx.send(first);
            // Keep draining, so that the sandbox never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the sandbox prints its address within 30 s");
        let url = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "the sandbox's first line is `{first}`; its log:\n{}",
                    system::tail(&self.log_dir.join("sandbox.log"), 30)
                )
            });
        self.sandbox_url = url.to_owned();
    }

    fn write_sshd_config(&self, path: &Path, port: u16) {
        let root = self.root.display();
        let text = format!(
            "# The test's own sshd, configured like a host's /etc/ssh/sshd_config.\n\
             Include {root}/etc/sshd_config.d/*.conf\n\
             Port {port}\n\
             ListenAddress 127.0.0.1\n\
             HostKey {root}/etc/ssh_host_ed25519_key\n\
             PidFile none\n\
             UsePAM no\n\
             PermitRootLogin no\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             AuthorizedKeysFile none\n\
             AllowGroups {group}\n\
             StrictModes yes\n\
             LogLevel VERBOSE\n\
             # Debian's stock line: the drop-in's ForceCommand runs internal-sftp instead.\n\
             Subsystem sftp /usr/lib/openssh/sftp-server\n",
            group = self.sftp_group
        );
        fs::write(path, text).expect("write sshd_config");
        let host_key = self.root.join("etc/ssh_host_ed25519_key");
        if !host_key.exists() {
            system::run(
                Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                    .arg(&host_key),
            );
        }
    }

    fn start_sshd(&mut self, sshd: &Path, config: &Path) {
        if self.made_run_sshd {
            mkdir(Path::new("/run/sshd"), 0o755);
        }
        // A free port can be taken between probing and binding: try a few.
        for attempt in 0..5 {
            if attempt > 0 {
                self.sshd_port = free_port();
                self.write_sshd_config(config, self.sshd_port);
            }
            let log = File::create(self.log_dir.join("sshd.log")).expect("sshd log");
            let child = Command::new(sshd)
                .args(["-D", "-e", "-f"])
                .arg(config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", sshd.display()));
            let mut proc = Spawned::adopt("sshd", child, &self.run_dir);
            if wait_for_ssh_banner(self.sshd_port, &mut proc) {
                self.procs.push(proc);
                return;
            }
            proc.kill();
        }
        panic!(
            "sshd did not start; its log:\n{}",
            system::tail(&self.log_dir.join("sshd.log"), 40)
        );
    }

    /// Starts `opscom-import run` as the service user, with its groups (as systemd's `User=`
    /// does), no new privileges and the unit's umask; its JSON log goes to `importer_log`.
    pub fn start_importer(&mut self) {
        let log = File::create(&self.importer_log).expect("importer log");
        let bin = self.root.join("bin/opscom-import");
        let child = Command::new("setpriv")
            .arg(format!("--reuid={}", self.service_user))
            .arg(format!("--regid={}", self.service_user))
            .args(["--init-groups", "--no-new-privs", "--"])
            .args(["sh", "-c", "umask 0027 && exec \"$0\" \"$@\""])
            .arg(&bin)
            .args(["--log-format", "json", "run", "--config"])
            .arg(&self.config)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start the importer: {e}"));
        let mut proc = Spawned::adopt("opscom-import", child, &self.run_dir);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if fs::read_to_string(&self.importer_log)
                .unwrap_or_default()
                .contains("service started")
            {
                break;
            }
            if let Some(status) = proc.try_status() {
                panic!(
                    "opscom-import run exited at start ({status}); its log:\n{}",
                    system::tail(&self.importer_log, 40)
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "opscom-import run did not log `service started` within 30 s; its log:\n{}",
                    system::tail(&self.importer_log, 40)
                );
            }
            // An external process's log gives no signal: poll it briefly.
            std::thread::sleep(Duration::from_millis(50));
        }
        self.importer = Some(proc);
    }

    /// Stops the importer with SIGTERM, as systemd does; its exit status, or `None` when it had
    /// to be killed.
    pub fn stop_importer(&mut self) -> Option<std::process::ExitStatus> {
        self.importer
            .as_mut()
            .and_then(|p| p.terminate(Duration::from_secs(30)))
    }

    /// Whether the importer is still running.
    pub fn importer_running(&mut self) -> bool {
        self.importer
            .as_mut()
            .is_some_and(|p| p.try_status().is_none())
    }

    /// The real `sftp` client, as `tenant`, running `batch` (`sftp -b -`) from `client_dir`.
    pub fn sftp(&self, tenant: &Tenant, batch: &str) -> Output {
        system::output_with_input(
            Command::new(&self.sftp_bin)
                .args(["-b", "-", "-F", "/dev/null", "-P"])
                .arg(self.sshd_port.to_string())
                .arg("-i")
                .arg(&tenant.key)
                .args([
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "IdentitiesOnly=yes",
                    "-o",
                    "StrictHostKeyChecking=no",
                    "-o",
                    "UserKnownHostsFile=/dev/null",
                    "-o",
                    "LogLevel=ERROR",
                ])
                .arg(format!("{}@127.0.0.1", tenant.user))
                .current_dir(&self.client_dir),
            batch.as_bytes(),
        )
    }

    /// Like [`World::sftp`], failing with the client's output unless it succeeds.
    pub fn sftp_ok(&self, tenant: &Tenant, batch: &str) -> String {
        let out = self.sftp(tenant, batch);
        assert!(
            out.status.success(),
            "sftp as {} failed ({}):\n--- batch\n{batch}\n--- stdout\n{}\n--- stderr\n{}\n--- sshd log\n{}",
            tenant.user,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            system::tail(&self.log_dir.join("sshd.log"), 20)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `GET path` on the sandbox, returning the body.
    pub fn sandbox_get(&self, path: &str) -> String {
        let host = self
            .sandbox_url
            .strip_prefix("http://")
            .expect("an http:// sandbox");
        let mut stream = TcpStream::connect(host).expect("connect to the sandbox");
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .expect("send a request to the sandbox");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("read the sandbox's answer");
        let (head, body) = response
            .split_once("\r\n\r\n")
            .expect("an HTTP answer with a body");
        assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
        assert!(
            !head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked"),
            "GET {path}: a chunked answer is not handled here"
        );
        body.to_owned()
    }

    fn dump_logs(&self) {
        eprintln!(
            "\n--- opscom-import log (last 60 lines)\n{}\n--- sshd log (last 30 lines)\n{}\n--- sandbox log (last 10 lines)\n{}\n",
            system::tail(&self.importer_log, 60),
            system::tail(&self.log_dir.join("sshd.log"), 30),
            system::tail(&self.log_dir.join("sandbox.log"), 10),
        );
    }
}

/// Waits until an SSH server on `port` sends its banner, or `proc` exits.
fn wait_for_ssh_banner(port: u16, proc: &mut Spawned) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut pause = Duration::from_millis(5);
    while Instant::now() < deadline {
        if proc.try_status().is_some() {
            return false;
        }
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut line = String::new();
            if BufReader::new(&stream).read_line(&mut line).is_ok() && line.starts_with("SSH-2.0") {
                return true;
            }
        }
        // sshd gives no readiness signal in -D mode: poll with a short, growing pause.
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
    false
}

impl Drop for World {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        if let Some(mut importer) = self.importer.take() {
            importer.terminate(Duration::from_secs(30));
        }
        while let Some(mut proc) = self.procs.pop() {
            proc.kill();
        }
        self.smtp.stop();
        system::remove_users_and_groups();
        if let Err(e) = fs::remove_dir_all(&self.root) {
            eprintln!("e2e: cannot remove {}: {e}", self.root.display());
        }
        if self.made_run_sshd {
            let _ = fs::remove_dir("/run/sshd");
        }
        // The lock is released when `_lock` drops, after this.
    }
}
