//! A real SMTP server for tests: `aiosmtpd` on 127.0.0.1 with a Maildir, killed on drop.
//!
//! Python is taken from `OPSCOM_TEST_PYTHON` when set (the test command points it at a venv that
//! has aiosmtpd), else `python3`. If `import aiosmtpd` fails the harness panics with the fix: a
//! test that needs a real server must never pass by skipping.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mail_parser::{MessageParser, MimeHeaders};

/// How long a starting server may take to answer its first greeting.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `aiosmtpd` server storing what it receives in a Maildir.
#[derive(Debug)]
pub struct SmtpServer {
    port: u16,
    python: String,
    maildir: tempfile::TempDir,
    child: Option<Child>,
}

impl SmtpServer {
    /// Starts a server on a free port of 127.0.0.1 and returns once it greets clients.
    ///
    /// # Panics
    /// When Python or aiosmtpd is missing, or the server does not come up.
    pub fn start() -> SmtpServer {
        let python = python();
        check_aiosmtpd(&python);
        let maildir = tempfile::Builder::new()
            .prefix("opscom-smtp-")
            .tempdir()
            .expect("create a temporary Maildir for the SMTP server");
        // Python's Maildir creates its folders only when the Maildir itself does not exist yet.
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(maildir.path().join(sub)).expect("create the Maildir folders");
        }
        // A free port can be taken by someone else between probing and binding: try a few.
        let mut last_failure = String::new();
        for _ in 0..5 {
            let port = free_port();
            match spawn(&python, port, maildir.path()) {
                Ok(child) => {
                    return SmtpServer {
                        port,
                        python,
                        maildir,
                        child: Some(child),
                    };
                }
                Err(failure) => last_failure = failure,
            }
        }
        panic!("the test SMTP server (aiosmtpd) did not start: {last_failure}");
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL to give a mailer: `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The Maildir where received messages are stored.
    pub fn maildir(&self) -> &Path {
        self.maildir.path()
    }

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server (kills the process and waits for it). Messages received so far stay readable.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, with the same Maildir.
    ///
    /// # Panics
    /// When the server does not come back up.
    pub fn restart(&mut self) {
        self.stop();
        match spawn(&self.python, self.port, self.maildir.path()) {
            Ok(child) => self.child = Some(child),
            Err(failure) => panic!(
                "the test SMTP server (aiosmtpd) did not restart on port {}: {failure}",
                self.port
            ),
        }
    }

    /// Every message received so far, oldest first (by Maildir delivery order).
    ///
    /// # Panics
    /// When the Maildir cannot be read or a stored message cannot be parsed.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
        for sub in ["new", "cur"] {
            let dir = self.maildir.path().join(sub);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let entry = entry.expect("read the Maildir");
                let path = entry.path();
                if entry.file_name().to_string_lossy().starts_with('.') {
                    continue;
                }
                let modified = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .expect("stat a Maildir message");
                files.push((modified, path));
            }
        }
        // Maildir names start with the delivery time in seconds; the mtime orders within a second.
        files.sort();
        files
            .into_iter()
            .map(|(_, path)| {
                let raw =
                    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
                ReceivedMessage::parse(raw)
                    .unwrap_or_else(|| panic!("{} is not a parseable message", path.display()))
            })
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs aiosmtpd on `port` and waits for its greeting.
fn spawn(python: &str, port: u16, maildir: &Path) -> Result<Child, String> {
    // The server's own output goes to a log beside the Maildir folders, read if it fails to start.
    let log_path = maildir.join("aiosmtpd.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let mut child = Command::new(python)
        .args(["-m", "aiosmtpd", "-n", "-l"])
        .arg(format!("127.0.0.1:{}", port))
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + START_TIMEOUT;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let output = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!("aiosmtpd exited with {status}: {output}"));
        }
        if greets(addr) {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "no SMTP greeting on {addr} within {START_TIMEOUT:?}"
            ));
        }
        // An external process gives no readiness signal: poll with a short, growing pause.
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Whether an SMTP server at `addr` answers with a `220` greeting.
fn greets(addr: SocketAddr) -> bool {
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = String::new();
    let ok = BufReader::new(&stream).read_line(&mut line).is_ok() && line.starts_with("220");
    let _ = std::io::Write::write_all(&mut &stream, b"QUIT\r\n");
    ok
}

/// A port of 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0 to find a free port")
}

/// The Python interpreter to run aiosmtpd with.
fn python() -> String {
    std::env::var("OPSCOM_TEST_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".to_owned())
}

fn check_aiosmtpd(python: &str) {
    let status = Command::new(python)
        .args(["-c", "import aiosmtpd"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        panic!(
            "\n\n*** The SMTP tests need a real SMTP server: `{python} -c 'import aiosmtpd'` failed.\n\
             *** Fix: run the tests with `cargo xtask test` (it installs aiosmtpd in a venv and sets\n\
             *** OPSCOM_TEST_PYTHON), or `python3 -m pip install aiosmtpd` (Debian: apt-get install\n\
             *** python3-aiosmtpd), or set OPSCOM_TEST_PYTHON to a python that has it.\n\
             *** These tests are never skipped.\n"
        );
    }
}

/// A message as the SMTP server stored it, parsed.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    raw: Vec<u8>,
    parsed: mail_parser::Message<'static>,
}

/// An attachment of a [`ReceivedMessage`], decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedAttachment {
    /// The file name the client sees.
    pub name: Option<String>,
    /// `type/subtype`, lower case.
    pub content_type: String,
    /// The decoded bytes.
    pub data: Vec<u8>,
}

impl ReceivedMessage {
    /// Parses a raw RFC 5322 message; `None` when it is not one.
    pub fn parse(raw: Vec<u8>) -> Option<ReceivedMessage> {
        let parsed = MessageParser::default().parse(&raw)?.into_owned();
        Some(ReceivedMessage { raw, parsed })
    }

    /// The bytes as stored.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The full parse, for anything the helpers below do not cover.
    pub fn parsed(&self) -> &mail_parser::Message<'static> {
        &self.parsed
    }

    /// A header's raw value (unfolded, trimmed), by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<String> {
        self.parsed
            .headers_raw()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.replace("\r\n", "").replace('\n', "").trim().to_owned())
    }

    /// The decoded subject.
    pub fn subject(&self) -> Option<&str> {
        self.parsed.subject()
    }

    /// The Message-ID without angle brackets.
    pub fn message_id(&self) -> Option<&str> {
        self.parsed.message_id()
    }

    /// The address in From.
    pub fn from_address(&self) -> Option<&str> {
        self.parsed.from()?.first()?.address()
    }

    /// The addresses in To.
    pub fn to_addresses(&self) -> Vec<&str> {
        self.parsed
            .to()
            .map(|a| a.iter().filter_map(|a| a.address()).collect())
            .unwrap_or_default()
    }

    /// The address in Reply-To.
    pub fn reply_to_address(&self) -> Option<&str> {
        self.parsed.reply_to()?.first()?.address()
    }

    /// The SMTP envelope sender (`MAIL FROM`), as the server recorded it.
    pub fn envelope_from(&self) -> Option<String> {
        self.header("X-MailFrom")
    }

    /// The SMTP envelope recipients (`RCPT TO`), as the server recorded them.
    pub fn envelope_to(&self) -> Vec<String> {
        self.header("X-RcptTo")
            .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
            .unwrap_or_default()
    }

    /// The first plain-text body, decoded, with line ends normalised to `\n`.
    pub fn text_body(&self) -> String {
        self.parsed
            .body_text(0)
            .map(|b| b.replace("\r\n", "\n"))
            .unwrap_or_default()
    }

    /// Every attachment, decoded.
    pub fn attachments(&self) -> Vec<ReceivedAttachment> {
        self.parsed
            .attachments()
            .map(|part| ReceivedAttachment {
                name: part.attachment_name().map(str::to_owned),
                content_type: part
                    .content_type()
                    .map(|ct| {
                        format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default())
                            .to_ascii_lowercase()
                    })
                    .unwrap_or_default(),
                data: part.contents().to_vec(),
            })
            .collect()
    }
}
