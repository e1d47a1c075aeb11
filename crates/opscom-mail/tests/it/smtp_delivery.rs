//! Delivery through a real SMTP server (aiosmtpd on 127.0.0.1): headers, body, the decoded
//! attachment; the server down then up with the spooled report delivered exactly once.

use std::io::Read;
use std::time::Duration;

use opscom_mail::{AttachmentLimits, ComposeOptions, Mailer, Report, SmtpMailer, Spool, compose};
use opscom_testkit::SmtpServer;

use crate::common::{compose_roster, date, envelope, roster_report};

#[tokio::test]
async fn failure_report_arrives_with_headers_body_and_attachment() {
    let server = SmtpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (report, csv_path) = roster_report(dir.path());
    let message = compose(
        &Report::Failures(report),
        &envelope(),
        "claim-42",
        &ComposeOptions::at(date()),
    )
    .unwrap();
    let spool = Spool::open(dir.path().join("outgoing")).unwrap();
    spool.enqueue(&message).unwrap();

    let mailer = SmtpMailer::from_url(&server.url(), None).unwrap();
    let stats = spool.deliver_pending(&mailer).await.unwrap();
    assert_eq!((stats.sent, stats.still_pending), (1, 0), "{stats:?}");
    assert!(!spool.has_pending().unwrap());

    let received = server.messages();
    assert_eq!(received.len(), 1);
    let m = &received[0];
    assert_eq!(m.from_address(), Some("parking@acme.edu"));
    assert_eq!(m.reply_to_address(), Some("parking@acme.edu"));
    assert_eq!(m.to_addresses(), vec!["it@acme.edu"]);
    assert_eq!(m.envelope_from().as_deref(), Some("parking@acme.edu"));
    assert_eq!(m.envelope_to(), vec!["it@acme.edu".to_owned()]);
    assert_eq!(m.subject(), Some("roster.csv: 3 of 120 users not imported"));
    assert_eq!(m.message_id(), Some(message.message_id()));
    assert_eq!(
        m.header("Auto-Submitted").as_deref(),
        Some("auto-generated")
    );

    let body = m.text_body();
    for expected in [
        "Users in file: 120",
        "Imported:      117",
        "Not imported:  3",
        "invalid e-mail address: 2 users",
        "  line 14: email \"jane@\": not a valid e-mail address",
        "  line 57: email: not a valid e-mail address",
        "duplicate unique_id: 1 user",
        "  line 90: unique_id 1001 repeats line 14",
        "roster-failed.csv",
        "WHAT TO DO NEXT",
    ] {
        assert!(body.contains(expected), "body lacks {expected:?}:\n{body}");
    }
    assert!(
        !body.contains("EXCEL\n"),
        "no Excel section without the flag:\n{body}"
    );

    let attachments = m.attachments();
    assert_eq!(attachments.len(), 1);
    let a = &attachments[0];
    assert_eq!(a.name.as_deref(), Some("roster-failed.csv"));
    assert_eq!(a.content_type, "text/csv");
    assert_eq!(
        a.data,
        std::fs::read(&csv_path).unwrap(),
        "attachment is the CSV, byte for byte"
    );
    let text = String::from_utf8(a.data.clone()).unwrap();
    assert!(text.starts_with("\u{feff}unique_id,email,first_name,last_name,import_error\r\n"));
    assert!(
        text.contains(
            "1002,'=cmd|' /C calc'!A0,Zoë,O'Brien,line 57: email: not a valid e-mail address\r\n"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn a_large_failure_csv_arrives_zipped_and_the_body_says_so() {
    let server = SmtpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (report, csv_path) = roster_report(dir.path());
    let options = ComposeOptions {
        date: date(),
        limits: AttachmentLimits {
            compress_above: 100,
            max_attachment: 1 << 20,
        },
        dkim: None,
    };
    let message = compose(&Report::Failures(report), &envelope(), "claim-43", &options).unwrap();
    SmtpMailer::from_url(&server.url(), None)
        .unwrap()
        .send(&message)
        .await
        .unwrap();

    let m = &server.messages()[0];
    assert!(
        m.text_body().contains("compressed as roster-failed.zip"),
        "{}",
        m.text_body()
    );
    let a = &m.attachments()[0];
    assert_eq!(a.name.as_deref(), Some("roster-failed.zip"));
    assert_eq!(a.content_type, "application/zip");
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(a.data.clone())).unwrap();
    let mut entry = zip.by_name("roster-failed.csv").unwrap();
    let mut csv = Vec::new();
    entry.read_to_end(&mut csv).unwrap();
    assert_eq!(csv, std::fs::read(&csv_path).unwrap());
}

#[tokio::test]
async fn server_down_then_up_delivers_the_spooled_report_exactly_once() {
    let mut server = SmtpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("outgoing");
    let mailer = SmtpMailer::from_url(&server.url(), None)
        .unwrap()
        .with_timeouts(Duration::from_secs(5), Duration::from_secs(10));

    // A first message while the server is up warms lettre's connection pool, so the test also
    // covers a pooled connection that died with the server.
    let first = compose_roster(dir.path(), "claim-1");
    let spool = Spool::open(&spool_dir).unwrap();
    spool.enqueue(&first).unwrap();
    assert_eq!(spool.deliver_pending(&mailer).await.unwrap().sent, 1);

    server.stop();
    let second = compose_roster(dir.path(), "claim-2");
    let third = compose_roster(dir.path(), "claim-3");
    spool.enqueue(&second).unwrap();
    spool.enqueue(&third).unwrap();
    let stats = spool.deliver_pending(&mailer).await.unwrap();
    assert_eq!((stats.sent, stats.still_pending), (0, 2), "{stats:?}");
    let error = stats.last_error.expect("the failure is reported");
    assert!(error.is_transient(), "{error}");
    assert!(spool.has_pending().unwrap());

    // A restart of the importer: a new Spool on the same folder, and the server is back.
    drop(spool);
    server.restart();
    let spool = Spool::open(&spool_dir).unwrap();
    let pending: Vec<String> = spool
        .pending()
        .unwrap()
        .into_iter()
        .map(|p| p.meta.message_id)
        .collect();
    assert_eq!(
        pending,
        vec![
            second.message_id().to_owned(),
            third.message_id().to_owned()
        ]
    );
    let stats = spool.deliver_pending(&mailer).await.unwrap();
    assert_eq!((stats.sent, stats.still_pending), (2, 0), "{stats:?}");
    let stats = spool.deliver_pending(&mailer).await.unwrap();
    assert_eq!((stats.sent, stats.still_pending), (0, 0));

    let ids: Vec<String> = server
        .messages()
        .iter()
        .map(|m| m.message_id().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        vec![
            first.message_id().to_owned(),
            second.message_id().to_owned(),
            third.message_id().to_owned()
        ],
        "each report exactly once, oldest first"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_transient_failure_after_the_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts connections (the kernel's backlog) but never sends a greeting.
    let mailer = SmtpMailer::from_url(&format!("smtp://127.0.0.1:{port}"), None)
        .unwrap()
        .with_timeouts(Duration::from_millis(300), Duration::from_secs(2));
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let error = mailer
        .send(&compose_roster(dir.path(), "claim-9"))
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(listener);
}

#[tokio::test]
async fn a_mailer_built_from_parts_delivers() {
    let server = SmtpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let message = compose_roster(dir.path(), "claim-parts");
    let mailer = SmtpMailer::builder("127.0.0.1", opscom_mail::SmtpSecurity::Plain)
        .port(server.port())
        .timeouts(Duration::from_secs(10), Duration::from_secs(20))
        .build()
        .unwrap();
    mailer.send(&message).await.unwrap();
    let received = server.messages();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].message_id(), Some(message.message_id()));
    assert_eq!(received[0].envelope_to(), vec!["it@acme.edu".to_owned()]);
}
