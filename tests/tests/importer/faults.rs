//! Infrastructure faults through the real binary: the API down or refusing the token, mail down.
//! Files wait (exit 3), nothing is archived with every user "failed", reports are sent once.

use opscom_tests::{
    DEFAULT_TOKEN, Lab, RecordOutcome, Sandbox, SmtpServer, TokenCheck, dead_api_url, describe,
    messages_to, roster,
};

fn delayed(messages: &[opscom_tests::ReceivedMessage]) -> usize {
    messages
        .iter()
        .filter(|m| m.subject().is_some_and(|s| s.contains("Import delayed")))
        .count()
}

#[test]
fn an_api_outage_defers_the_file_mails_once_and_imports_after_recovery() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    // A short retry budget keeps the test fast; the default is about 20 s.
    lab.tenant("acme", &sandbox.url()).retry_budget = Some("1s".into());
    // Deferral writes state (the claim, the outage marker, the spool): as `nobody` under root.
    lab.run_unprivileged();
    let upload = roster("OUT", 12);
    lab.upload("acme", "roster.csv", &upload);
    sandbox.set_outage(true);

    for pass in 1..=2 {
        lab.once()
            .expect_code(3, &format!("once during the outage (pass {pass})"));
        assert!(
            lab.drop_entries("acme").is_empty(),
            "the claimed file stays out of the drop folder: {:?}",
            lab.drop_entries("acme")
        );
        assert!(
            lab.bak("acme").is_empty(),
            "never archived during an outage"
        );
        assert!(sandbox.users().is_empty());
        let mail = messages_to(&smtp, "it@acme.example.edu");
        assert_eq!(
            delayed(&mail),
            1,
            "exactly one \"import delayed\" e-mail per outage, after pass {pass}:\n{}",
            describe(&mail)
        );
        assert_eq!(
            mail.len(),
            1,
            "nothing else is mailed:\n{}",
            describe(&mail)
        );
        // In plain words: no attempt counts, durations or system errors for a client.
        let body = mail[0].text_body().to_lowercase();
        for technical in [
            "attempt",
            "os error",
            "error sending request",
            "status 503",
            "budget",
        ] {
            assert!(
                !body.contains(technical),
                "the delayed e-mail speaks plainly, found `{technical}`:\n{body}"
            );
        }
        assert!(body.contains("not been answering"), "{body}");
    }
    assert!(
        !lab.records().iter().any(|r| matches!(
            r.outcome,
            RecordOutcome::Imported | RecordOutcome::ImportedWithFailures
        )),
        "{:#?}",
        lab.records()
    );

    sandbox.set_outage(false);
    lab.once().expect_code(0, "once after the API recovered");
    assert_eq!(
        sandbox.users().len(),
        12,
        "every user imported after the outage"
    );
    assert_eq!(lab.bak("acme").get("roster.csv"), Some(&upload));
    let last = lab.records().pop().expect("a record");
    assert_eq!(last.outcome, RecordOutcome::Imported, "{last:?}");
    assert_eq!(
        (last.rows_total, last.rows_ok, last.rows_failed),
        (12, 12, 0)
    );
    // No failure report after recovery, but the follow-up the delayed e-mail promised.
    let mail = messages_to(&smtp, "it@acme.example.edu");
    assert_eq!(mail.len(), 2, "{}", describe(&mail));
    let follow_up = mail[1].subject().unwrap_or_default();
    assert!(
        follow_up.contains("roster.csv") && follow_up.contains("after the delay"),
        "{follow_up}"
    );

    // A later outage is a new one: it is reported again.
    lab.upload("acme", "second.csv", &roster("TWO", 3));
    sandbox.set_outage(true);
    lab.once().expect_code(3, "once during a second outage");
    assert_eq!(
        delayed(&messages_to(&smtp, "it@acme.example.edu")),
        2,
        "a new outage gets its own e-mail"
    );
}

#[test]
fn an_api_that_refuses_connections_defers_the_file_until_it_answers() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.tenant("acme", &dead_api_url()).retry_budget = Some("1s".into());
    lab.upload("acme", "roster.csv", &roster("REF", 5));

    lab.once()
        .expect_code(3, "once with nothing listening on the API port");
    assert!(lab.drop_entries("acme").is_empty() && lab.bak("acme").is_empty());
    assert_eq!(delayed(&messages_to(&smtp, "it@acme.example.edu")), 1);

    // The operator points the tenant at a working API: the waiting file goes through.
    lab.tenants[0].api_url = sandbox.url();
    lab.once().expect_code(0, "once with a working API");
    assert_eq!(sandbox.users().len(), 5);
    assert!(lab.bak("acme").contains_key("roster.csv"));
}

#[test]
fn a_refused_token_stops_only_its_tenant_and_is_reported_once() {
    const WRONG: &str = "wrong-token-0000-0000-0000-0000-0000-0000-00000000";
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.tenant("broken", &sandbox.url()).api_token = WRONG.into();
    lab.tenant("good", &sandbox.url());
    let broken_upload = roster("BRK", 30);
    lab.upload("broken", "roster.csv", &broken_upload);
    lab.upload("good", "roster.csv", &roster("GOOD", 10));

    let mut refused_before = 0;
    for pass in 1..=2 {
        let run = lab.once();
        run.expect_code(3, &format!("once with a refused token (pass {pass})"));
        assert!(!run.stderr.contains(WRONG), "the token is in the logs");

        // The broken tenant stops its requests at once: at most `concurrency` in flight.
        let refused = sandbox
            .pushes()
            .iter()
            .filter(|r| r.token != TokenCheck::Valid)
            .count();
        assert!(
            refused - refused_before <= lab.tenant_setup("broken").concurrency,
            "pass {pass} kept pushing with a refused token: {} requests",
            refused - refused_before
        );
        refused_before = refused;
        assert!(
            lab.bak("broken").is_empty(),
            "the broken tenant's file waits, unarchived"
        );
        assert!(lab.drop_entries("broken").is_empty());

        let mail = messages_to(&smtp, "it@broken.example.edu");
        assert_eq!(
            mail.len(),
            1,
            "one report, after pass {pass}:\n{}",
            describe(&mail)
        );
        let subject = mail[0].subject().unwrap_or_default();
        assert!(
            subject.contains("broken") && subject.to_lowercase().contains("token"),
            "the report names the tenant and the token problem: {subject:?}"
        );
        let raw = String::from_utf8_lossy(mail[0].raw()).into_owned();
        assert!(!raw.contains(WRONG), "the report must not carry the token");
    }

    // The other tenant of the same configuration is imported normally.
    let users = sandbox.users_by_id();
    assert_eq!(users.len(), 10, "{:?}", users.keys());
    assert!(users.keys().all(|id| id.starts_with("GOOD")));
    assert!(lab.bak("good").contains_key("roster.csv"));
    assert!(messages_to(&smtp, "it@good.example.edu").is_empty());

    // The token is fixed: the waiting file goes through.
    lab.tenants[0].api_token = DEFAULT_TOKEN.into();
    lab.once().expect_code(0, "once with the token fixed");
    assert_eq!(sandbox.users().len(), 40);
    assert_eq!(lab.bak("broken").get("roster.csv"), Some(&broken_upload));
}

#[test]
fn mail_down_keeps_the_report_and_sends_it_exactly_once_later() {
    let sandbox = Sandbox::start();
    let mut smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.tenant("acme", &sandbox.url());
    // The kept report lives in the spool: as `nobody` under root, so permission bugs show.
    lab.run_unprivileged();
    let mut upload = roster("ML", 4);
    upload.extend_from_slice(b"ML9,OPSCOM,Bad,Mail,not-an-address,,,\r\n");
    lab.upload("acme", "roster.csv", &upload);
    smtp.stop();

    lab.once().expect_code(3, "once with the SMTP server down");
    // The file itself is done: imported and archived (the commit point precedes sending).
    assert_eq!(sandbox.users().len(), 4);
    assert_eq!(lab.bak("acme").get("roster.csv"), Some(&upload));
    assert!(smtp.messages().is_empty());

    smtp.restart();
    lab.once().expect_code(0, "once with the SMTP server back");
    let mail = messages_to(&smtp, "it@acme.example.edu");
    assert_eq!(
        mail.len(),
        1,
        "the kept report is delivered:\n{}",
        describe(&mail)
    );
    assert!(
        mail[0].subject().is_some_and(|s| s.contains("1 of 5")),
        "{:?}",
        mail[0].subject()
    );
    assert_eq!(mail[0].attachments().len(), 1, "with its failure CSV");

    lab.once().expect_code(0, "another pass");
    assert_eq!(
        messages_to(&smtp, "it@acme.example.edu").len(),
        1,
        "a delivered report is never sent again"
    );
    assert_eq!(
        sandbox.push_counts().values().max(),
        Some(&1),
        "no row pushed twice"
    );
}
