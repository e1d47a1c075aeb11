//! The outbox mailer writes each report as a parseable `.eml` file, once per report.

use opscom_mail::{ComposeOptions, FailureCsv, Mailer, OutboxMailer, Report, compose};
use opscom_testkit::ReceivedMessage;

use crate::common::{compose_roster, date, envelope, roster_report};

#[tokio::test]
async fn writes_a_parseable_eml_and_a_resend_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = OutboxMailer::new(dir.path().join("outbox"));
    let message = compose_roster(dir.path(), "claim-1");
    outbox.send(&message).await.unwrap();
    outbox.send(&message).await.unwrap();

    let files: Vec<_> = std::fs::read_dir(outbox.dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files, vec![outbox.path_for(&message)]);
    assert!(files[0].extension().is_some_and(|e| e == "eml"));

    let parsed = ReceivedMessage::parse(std::fs::read(&files[0]).unwrap()).unwrap();
    assert_eq!(
        parsed.subject(),
        Some("roster.csv: 3 of 120 users not imported")
    );
    assert_eq!(parsed.message_id(), Some(message.message_id()));
    assert_eq!(parsed.from_address(), Some("parking@acme.edu"));
    assert_eq!(
        parsed.attachments()[0].name.as_deref(),
        Some("roster-failed.csv")
    );
}

#[tokio::test]
async fn eml_files_and_their_folder_are_never_readable_by_others() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let outbox = OutboxMailer::new(dir.path().join("outbox"));
    let message = compose_roster(dir.path(), "claim-1");
    outbox.send(&message).await.unwrap();
    assert_eq!(mode(outbox.dir()) & 0o027, 0, "{:o}", mode(outbox.dir()));
    assert_eq!(mode(&outbox.path_for(&message)), 0o640);
}

#[tokio::test]
async fn a_failure_csv_in_memory_makes_the_same_message_as_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (report, path) = roster_report(dir.path());
    let from_file = compose(
        &Report::Failures(report.clone()),
        &envelope(),
        "claim-1",
        &ComposeOptions::at(date()),
    )
    .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap(); // nothing on disk any more
    let mut in_memory = report;
    in_memory.failure_csv = Some(FailureCsv::Bytes(bytes.clone()));
    let from_memory = compose(
        &Report::Failures(in_memory),
        &envelope(),
        "claim-1",
        &ComposeOptions::at(date()),
    )
    .unwrap();
    // The same report (the MIME boundary alone is random).
    assert_eq!(from_memory.meta(), from_file.meta());
    let parse =
        |m: &opscom_mail::OutgoingMessage| ReceivedMessage::parse(m.raw().to_vec()).unwrap();
    assert_eq!(
        parse(&from_memory).text_body(),
        parse(&from_file).text_body()
    );

    let outbox = OutboxMailer::new(dir.path().join("outbox"));
    outbox.send(&from_memory).await.unwrap();
    let parsed =
        ReceivedMessage::parse(std::fs::read(outbox.path_for(&from_memory)).unwrap()).unwrap();
    let attachments = parsed.attachments();
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0].name.as_deref(), Some("roster-failed.csv"));
    assert_eq!(attachments[0].data, bytes, "the CSV, byte for byte");
}
