//! A signed report verifies with an independent DKIM verifier (Python's dkimpy), a tampered one
//! does not, and the Subject decodes to exactly the text composed.
//!
//! Needs a Python with `dkim` (PyPI `dkimpy`) in `OPSCOM_TEST_PYTHON`: `cargo xtask test` sets it
//! up. Without it the test fails with that fix; it never skips.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use opscom_mail::{
    ComposeOptions, DkimAlgorithm, DkimSigner, FailureCsv, FailureCsvWriter, FailureReport,
    FailureSummary, ImportedReport, OutgoingMessage, Report, ReportEnvelope, compose,
};

/// The test-only key pair (never used for real mail).
const KEY: &str = "tests/fixtures/dkim-test-only-rsa.pem";
const PUBLIC_KEY_B64: &str = "tests/fixtures/dkim-test-only-rsa.pub.b64";

const VERIFY: &str = r#"
import sys, email, email.policy
import dkim

public_key = open(sys.argv[1], "rb").read().strip()
record = b"v=DKIM1; k=rsa; p=" + public_key

def dnsfunc(name, timeout=5):
    assert name == b"opscom._domainkey.ops.example.", name
    return record

for path in sys.argv[2:]:
    raw = open(path, "rb").read()
    ok = dkim.verify(raw, dnsfunc=dnsfunc)
    subject = email.message_from_bytes(raw, policy=email.policy.default)["subject"]
    print("%s\t%s\t%s" % (path, ok, subject.encode("unicode_escape").decode("ascii")))
"#;

fn python() -> PathBuf {
    let fix = "Fix: run the tests with `cargo xtask test` (it creates target/tools/venv with \
               aiosmtpd and dkimpy and sets OPSCOM_TEST_PYTHON), or \
               `python3 -m venv target/tools/venv && target/tools/venv/bin/pip install aiosmtpd \
               dkimpy` and set OPSCOM_TEST_PYTHON=target/tools/venv/bin/python";
    let python = std::env::var_os("OPSCOM_TEST_PYTHON").unwrap_or_else(|| {
        panic!("\n*** OPSCOM_TEST_PYTHON is not set: the DKIM test needs a Python with dkimpy.\n*** {fix}\n")
    });
    let has_dkim = Command::new(&python)
        .args(["-c", "import dkim"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_dkim,
        "\n*** {} cannot `import dkim` (PyPI package dkimpy).\n*** {fix}\n",
        Path::new(&python).display()
    );
    python.into()
}

fn crate_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn signer() -> Arc<DkimSigner> {
    let signer = DkimSigner::from_pem_file(crate_path(KEY), "opscom", "ops.example").unwrap();
    assert_eq!(signer.algorithm(), DkimAlgorithm::Rsa);
    // Debug names the key file but never shows the key.
    let debug = format!("{signer:?}");
    let pem = std::fs::read_to_string(crate_path(KEY)).unwrap();
    let key_line = pem.lines().nth(2).unwrap();
    assert!(!debug.contains(key_line), "{debug}");
    assert!(
        debug.contains("dkim-test-only-rsa.pem") && debug.contains("<hidden>"),
        "{debug}"
    );
    Arc::new(signer)
}

fn options() -> ComposeOptions {
    ComposeOptions::at(jiff::Timestamp::now()).with_dkim(signer())
}

/// A failure report with an attached CSV (non-ASCII values) for `file_name`.
fn failures(file_name: &str) -> Report {
    let header = ["unique_id".to_owned(), "first_name".to_owned()];
    let mut csv = FailureCsvWriter::new(Vec::new(), &header).unwrap();
    let mut summary = FailureSummary::new();
    let reason = "first_name: longer than 50 characters";
    csv.write_failure(3, &["s1".to_owned(), "Zoë ".repeat(20)], reason)
        .unwrap();
    summary.add("value too long", 3, reason);
    Report::Failures(FailureReport {
        file_name: file_name.to_owned(),
        rows_total: 1204,
        rows_ok: 1203,
        rows_failed: 1,
        summary,
        failure_csv: Some(FailureCsv::Bytes(csv.finish().unwrap())),
        rows_unchanged: 0,
        after_delay: false,
    })
}

struct Verified {
    ok: bool,
    subject: String,
}

/// Runs dkimpy on each message; its verdict and the Subject as Python's e-mail parser decodes it.
fn verify(raws: &[Vec<u8>]) -> Vec<Verified> {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("verify.py");
    std::fs::write(&script, VERIFY).unwrap();
    let paths: Vec<PathBuf> = raws
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            let path = dir.path().join(format!("{i}.eml"));
            std::fs::write(&path, raw).unwrap();
            path
        })
        .collect();
    let out = Command::new(python())
        .arg(&script)
        .arg(crate_path(PUBLIC_KEY_B64))
        .args(&paths)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the verifier failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), raws.len(), "{stdout}");
    lines
        .iter()
        .map(|line| {
            let mut fields = line.split('\t');
            let _path = fields.next().unwrap();
            let ok = fields.next().unwrap() == "True";
            let subject = unescape(fields.next().unwrap());
            Verified { ok, subject }
        })
        .collect()
}

/// Python's `unicode_escape` back to text (`\xe9`, `\u2014`, `\\`).
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let digits = match chars.next().unwrap() {
            'x' => 2,
            'u' => 4,
            'U' => 8,
            '\\' => {
                out.push('\\');
                continue;
            }
            other => panic!("unexpected escape \\{other} in {s}"),
        };
        let hex: String = chars.by_ref().take(digits).collect();
        out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
    }
    out
}

/// The message with one letter of its body changed.
fn tampered(m: &OutgoingMessage) -> Vec<u8> {
    let mut raw = m.raw().to_vec();
    let body_start = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let i = body_start
        + raw[body_start..]
            .iter()
            .position(u8::is_ascii_lowercase)
            .unwrap();
    raw[i] = if raw[i] == b'a' { b'b' } else { b'a' };
    raw
}

#[test]
fn signed_reports_verify_and_tampered_ones_do_not() {
    let on_behalf = ReportEnvelope::on_behalf(
        "acme",
        "Acme Parking",
        "reports@ops.example",
        "parking@acme.edu",
        "it@acme.edu",
    )
    .unwrap();
    let own = ReportEnvelope::new("acme", "parking@acme.edu", "it@acme.edu").unwrap();
    let imported = Report::Imported(ImportedReport {
        file_name: "roster.csv".into(),
        rows_total: 3,
        rows_sent: 3,
        rows_unchanged: 0,
        after_delay: false,
    });
    let options = options();
    let messages = [
        // Multipart with an attachment, a non-ASCII file name (encoded Subject and filename).
        compose(
            &failures("Zoë's roster — été.csv"),
            &on_behalf,
            "c1",
            &options,
        )
        .unwrap(),
        // A name that looks like an encoded-word.
        compose(
            &failures("=?utf-8?q?Payroll?=.csv"),
            &on_behalf,
            "c2",
            &options,
        )
        .unwrap(),
        // A single text part, the tenant's own address as sender.
        compose(&imported, &own, "c3", &options).unwrap(),
    ];
    for m in &messages {
        let text = String::from_utf8_lossy(m.raw());
        assert!(text.starts_with("DKIM-Signature: ") || text.contains("\r\nDKIM-Signature: "));
        assert!(
            text.contains("d=ops.example") && text.contains("s=opscom"),
            "{text}"
        );
        assert!(text.contains("a=rsa-sha256"), "{text}");
        let h = text.split("h=").nth(1).unwrap().split(';').next().unwrap();
        let h = h.replace(['\r', '\n', ' ', '\t'], "");
        for name in [
            "from",
            "to",
            "subject",
            "date",
            "message-id",
            "reply-to",
            "content-type",
            "mime-version",
        ] {
            assert!(h.split(':').any(|x| x == name), "{name} not in h={h}");
        }
    }

    let mut raws: Vec<Vec<u8>> = messages.iter().map(|m| m.raw().to_vec()).collect();
    raws.extend(messages.iter().map(tampered));
    let verdicts = verify(&raws);
    for (m, v) in messages.iter().zip(&verdicts) {
        assert!(v.ok, "the signature of {:?} does not verify", m.subject());
        assert_eq!(v.subject, m.subject());
    }
    assert_eq!(
        verdicts[1].subject,
        "=?utf-8?q?Payroll?=.csv: 1 of 1204 users not imported"
    );
    assert_eq!(
        verdicts[0].subject,
        "Zoë's roster — été.csv: 1 of 1204 users not imported"
    );
    for (m, v) in messages.iter().zip(&verdicts[messages.len()..]) {
        assert!(!v.ok, "a tampered copy of {:?} verifies", m.subject());
    }
}
