//! The outbox mailer writes each report as a parseable `.eml` file, once per report.

use opscom_mail::{Mailer, OutboxMailer};
use opscom_testkit::ReceivedMessage;

use crate::common::compose_roster;

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
