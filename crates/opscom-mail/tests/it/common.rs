//! Shared fixtures: a tenant envelope, a failure report with its CSV on disk, a recording mailer.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use opscom_mail::{
    ComposeOptions, FailureCsvWriter, FailureReport, FailureSummary, MailError, Mailer,
    OutgoingMessage, Report, ReportEnvelope, compose,
};

pub fn envelope() -> ReportEnvelope {
    ReportEnvelope::new("acme", "parking@acme.edu", "it@acme.edu").unwrap()
}

pub fn date() -> jiff::Timestamp {
    "2026-11-03T10:15:00Z".parse().unwrap()
}

pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// `roster.csv`: 120 users, 3 failed (two bad e-mails, one duplicate), CSV written to `dir`.
pub fn roster_report(dir: &Path) -> (FailureReport, PathBuf) {
    let path = dir.join("roster-failures.csv");
    let header = strings(&["unique_id", "email", "first_name", "last_name"]);
    let mut csv = FailureCsvWriter::new(std::fs::File::create(&path).unwrap(), &header).unwrap();
    let mut summary = FailureSummary::new();
    let rows: [(u64, &[&str], &str, &str); 3] = [
        (
            14,
            &["1001", "jane@", "Jane", "Doe"],
            "invalid e-mail address",
            "email \"jane@\": not a valid e-mail address",
        ),
        (
            57,
            &["1002", "=cmd|' /C calc'!A0", "Zoë", "O'Brien"],
            "invalid e-mail address",
            "email: not a valid e-mail address",
        ),
        (
            90,
            &["1001", "j2@acme.edu", "J", "D"],
            "duplicate unique_id",
            "unique_id 1001 repeats line 14",
        ),
    ];
    for (line, values, category, reason) in rows {
        csv.write_failure(line, &strings(values), reason).unwrap();
        summary.add(category, line, reason);
    }
    csv.finish().unwrap().sync_all().unwrap();
    let report = FailureReport {
        file_name: "roster.csv".into(),
        rows_total: 120,
        rows_ok: 117,
        rows_failed: 3,
        summary,
        failure_csv: Some(path.clone().into()),
        rows_unchanged: 0,
        after_delay: false,
    };
    (report, path)
}

pub fn compose_roster(dir: &Path, subject_id: &str) -> OutgoingMessage {
    let (report, _) = roster_report(dir);
    compose(
        &Report::Failures(report),
        &envelope(),
        subject_id,
        &ComposeOptions::at(date()),
    )
    .unwrap()
}

/// A mailer that records every message and answers from a script (then `Ok`).
#[derive(Debug, Default)]
pub struct RecordingMailer {
    pub sent: Mutex<Vec<String>>,
    pub script: Mutex<Vec<Result<(), MailError>>>,
}

impl RecordingMailer {
    pub fn answering(script: Vec<Result<(), MailError>>) -> Self {
        RecordingMailer {
            sent: Mutex::new(Vec::new()),
            script: Mutex::new(script.into_iter().rev().collect()),
        }
    }

    pub fn attempts(&self) -> Vec<String> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Mailer for RecordingMailer {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), MailError> {
        self.sent
            .lock()
            .unwrap()
            .push(message.message_id().to_owned());
        self.script.lock().unwrap().pop().unwrap_or(Ok(()))
    }
}
