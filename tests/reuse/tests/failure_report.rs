//! Reuse path 3: compose a failure report and send it with `opscom-mail` alone (the CSV kept in
//! memory, the message written to an outbox folder).

use opscom_mail::{
    ComposeOptions, FailureCsv, FailureCsvWriter, FailureReport, FailureSummary, Mailer,
    OutboxMailer, Report, ReportEnvelope, compose,
};
use opscom_testkit::ReceivedMessage;

#[tokio::test]
async fn a_report_of_two_failed_rows_reaches_the_outbox_with_its_csv() {
    let header = ["unique_id", "login_source", "email"].map(String::from);
    let mut csv = FailureCsvWriter::new(Vec::new(), &header).expect("header written");
    let mut summary = FailureSummary::new();
    let failed = [
        (
            3,
            ["s2", "OPSCOM", "bob@"],
            "invalid e-mail address",
            "email `bob@`: not a valid e-mail address",
        ),
        (
            4,
            ["s3", "", "carol@example.org"],
            "required value missing",
            "login_source is required but empty",
        ),
    ];
    for (line, values, category, reason) in failed {
        csv.write_failure(line, &values.map(String::from), reason)
            .expect("row written");
        summary.add(category, line, reason);
    }
    let csv = csv.finish().expect("finished");
    let report = Report::Failures(FailureReport {
        file_name: "roster.csv".into(),
        rows_total: 4,
        rows_ok: 2,
        rows_failed: 2,
        rows_unchanged: 0,
        after_delay: false,
        summary,
        failure_csv: Some(FailureCsv::Bytes(csv.clone())),
    });
    let envelope =
        ReportEnvelope::new("acme", "parking@acme.edu", "it@acme.edu").expect("addresses");
    let date: jiff::Timestamp = "2026-11-03T10:15:00Z".parse().expect("date");
    let message =
        compose(&report, &envelope, "roster-1", &ComposeOptions::at(date)).expect("composed");

    let dir = tempfile::tempdir().expect("temp dir");
    let outbox = OutboxMailer::new(dir.path().join("outbox"));
    outbox.send(&message).await.expect("written");
    let path = outbox.path_for(&message);
    assert!(
        path.extension().is_some_and(|e| e == "eml"),
        "{}",
        path.display()
    );

    let eml = ReceivedMessage::parse(std::fs::read(&path).expect("eml readable")).expect("parses");
    assert_eq!(eml.subject(), Some("roster.csv: 2 of 4 users not imported"));
    assert_eq!(eml.to_addresses(), ["it@acme.edu"]);
    let body = eml.text_body();
    assert!(body.contains("line 3: email `bob@`"), "{body}");
    assert!(body.contains("line 4: login_source"), "{body}");
    let attachments = eml.attachments();
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0].name.as_deref(), Some("roster-failed.csv"));
    assert_eq!(attachments[0].data, csv);
    let text = String::from_utf8(csv).expect("UTF-8");
    assert!(
        text.starts_with("\u{feff}unique_id,login_source,email,import_error\r\n"),
        "{text}"
    );
    assert!(
        text.contains("s2,OPSCOM,bob@,line 3: email `bob@`: not a valid e-mail address\r\n"),
        "{text}"
    );
}
