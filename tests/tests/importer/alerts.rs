//! Operator alerts through the real binary and a real SMTP server: one e-mail to the
//! `[operator]` address when a condition starts, one when it clears, whatever the number of
//! passes or processes; an alert that cannot be sent waits in the spool and arrives later.

use std::time::Duration;

use opscom_tests::{
    DEFAULT_TOKEN, Lab, OperatorSetup, ReceivedMessage, Sandbox, SmtpServer, describe, messages_to,
    roster, wait_for,
};

const OPS: &str = "ops@opscom.example";

fn operator(alert_after: Option<&str>) -> Option<OperatorSetup> {
    Some(OperatorSetup {
        email: OPS.into(),
        from: "importer@opscom.example".into(),
        alert_after: alert_after.map(str::to_owned),
    })
}

/// The operator's alerts whose subject says `what` (`ALERT acme`, `CLEARED acme: no_file`…).
fn alerts(smtp: &SmtpServer, what: &str) -> Vec<ReceivedMessage> {
    messages_to(smtp, OPS)
        .into_iter()
        .filter(|m| m.subject().is_some_and(|s| s.contains(what)))
        .collect()
}

#[test]
fn a_refused_token_gives_one_alert_over_two_passes_and_one_clear_once_fixed() {
    const WRONG: &str = "wrong-token-1111-2222-3333-4444-5555-6666-77777777";
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.operator = operator(None);
    lab.tenant("acme", &sandbox.url()).api_token = WRONG.into();
    lab.upload("acme", "roster.csv", &roster("TOK", 5));

    for pass in 1..=2 {
        lab.once()
            .expect_code(3, &format!("once with a refused token (pass {pass})"));
        let all = messages_to(&smtp, OPS);
        assert_eq!(all.len(), 1, "after pass {pass}:\n{}", describe(&all));
    }
    let alert = &alerts(&smtp, "ALERT acme")[0];
    let subject = alert.subject().unwrap_or_default();
    assert!(subject.contains("token_refused"), "{subject}");
    assert_eq!(alert.from_address(), Some("importer@opscom.example"));
    let body = alert.text_body();
    assert!(
        body.contains("Tenant:  acme") && body.contains("api_token in the configuration file"),
        "the alert names the tenant and where the token goes:\n{body}"
    );
    let raw = String::from_utf8_lossy(alert.raw()).into_owned();
    assert!(!raw.contains(WRONG), "the alert must not carry the token");
    let state = std::fs::read_to_string(lab.state_dir.join("alerts.json")).expect("alerts.json");
    assert!(state.contains("\"token_refused\""), "{state}");
    assert!(!state.contains(WRONG));

    lab.tenants[0].api_token = DEFAULT_TOKEN.into();
    lab.once().expect_code(0, "once with the token fixed");
    lab.once().expect_code(0, "another pass");
    assert_eq!(sandbox.users().len(), 5);
    let cleared = alerts(&smtp, "CLEARED acme: token_refused");
    assert_eq!(cleared.len(), 1, "{}", describe(&messages_to(&smtp, OPS)));
    assert_eq!(messages_to(&smtp, OPS).len(), 2, "nothing else");
    assert!(cleared[0].text_body().contains("Lasted:"));
}

#[test]
fn an_alert_that_cannot_be_sent_waits_in_the_spool_and_arrives_once_mail_is_back() {
    let sandbox = Sandbox::start();
    let mut smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.operator = operator(Some("1s"));
    lab.tenant("acme", &sandbox.url());
    // The spools and the alert state are written as `nobody` under root.
    lab.run_unprivileged();
    let mut upload = roster("RU", 3);
    upload.extend_from_slice(b"RU9,OPSCOM,Bad,Mail,not-an-address,,,\r\n");
    lab.upload("acme", "roster.csv", &upload);
    smtp.stop();

    lab.once().expect_code(3, "once with the mail server down");
    // Past alert_after: the condition is an alert now, spooled as mail is still down.
    std::thread::sleep(Duration::from_millis(1500));
    lab.once().expect_code(3, "once past alert_after");
    lab.once().expect_code(3, "once more");
    let outbox = lab.state_dir.join("operator/outbox");
    let spooled: Vec<_> = std::fs::read_dir(&outbox)
        .expect("the operator outbox")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".report"))
        .collect();
    assert_eq!(spooled.len(), 1, "one alert waits: {spooled:?}");

    smtp.restart();
    lab.once().expect_code(0, "once with the mail server back");
    let started = alerts(&smtp, "ALERT acme");
    assert_eq!(started.len(), 1, "{}", describe(&messages_to(&smtp, OPS)));
    assert!(
        started[0]
            .subject()
            .is_some_and(|s| s.contains("reports_unsent")),
        "{:?}",
        started[0].subject()
    );
    assert!(started[0].text_body().contains("smtp_url"));
    assert_eq!(alerts(&smtp, "CLEARED acme: reports_unsent").len(), 1);
    // The client's report went too, once.
    assert_eq!(messages_to(&smtp, "it@acme.example.edu").len(), 1);

    lab.once().expect_code(0, "another pass");
    assert_eq!(messages_to(&smtp, OPS).len(), 2, "nothing is sent twice");
}

#[test]
fn a_tenant_that_sends_no_file_in_its_period_is_alerted_once_and_a_file_clears_it() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.operator = operator(None);
    lab.tenant("acme", &sandbox.url()).expect_file_every = Some("1s".into());
    lab.tenant("quiet", &sandbox.url());

    lab.once()
        .expect_code(0, "the first pass: the tenant is first seen");
    assert!(messages_to(&smtp, OPS).is_empty());
    std::thread::sleep(Duration::from_millis(1500));
    lab.once().expect_code(0, "a pass after the period");
    lab.once().expect_code(0, "another pass");
    let all = messages_to(&smtp, OPS);
    assert_eq!(all.len(), 1, "{}", describe(&all));
    assert!(
        all[0]
            .subject()
            .is_some_and(|s| s.contains("ALERT acme") && s.contains("no_file")),
        "{}",
        describe(&all)
    );

    lab.upload("acme", "roster.csv", &roster("NF", 2));
    lab.once().expect_code(0, "a pass with a file");
    assert_eq!(alerts(&smtp, "CLEARED acme: no_file").len(), 1);
    assert_eq!(messages_to(&smtp, OPS).len(), 2);
    let activity =
        std::fs::read_to_string(lab.state_dir.join("file-activity.json")).expect("activity");
    assert!(activity.contains("last_file"), "{activity}");
}

#[test]
fn a_wrong_api_path_is_api_not_found_not_an_outage() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.operator = operator(Some("1h"));
    let t = lab.tenant("acme", &format!("{}/wrong/base", sandbox.url()));
    t.retry_budget = Some("1s".into());
    lab.upload("acme", "roster.csv", &roster("NF", 2));

    lab.once().expect_code(3, "once against a wrong push URL");
    assert!(lab.bak("acme").is_empty(), "the file waits");
    let all = messages_to(&smtp, OPS);
    assert_eq!(
        all.len(),
        1,
        "at once, not after alert_after:\n{}",
        describe(&all)
    );
    assert!(
        all[0]
            .subject()
            .is_some_and(|s| s.contains("api_not_found")),
        "{}",
        describe(&all)
    );
    assert!(all[0].text_body().contains("api_url"));
    let state = std::fs::read_to_string(lab.state_dir.join("alerts.json")).expect("alerts.json");
    assert!(
        state.contains("api_not_found") && !state.contains("api_unreachable"),
        "{state}"
    );

    lab.tenants[0].api_url = sandbox.url();
    lab.once().expect_code(0, "once with the right URL");
    assert_eq!(sandbox.users().len(), 2);
    assert_eq!(alerts(&smtp, "CLEARED acme: api_not_found").len(), 1);
}

#[test]
fn run_looks_at_time_based_alerts_between_passes() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.operator = operator(None);
    lab.interval = "1h".into();
    lab.tenant("acme", &sandbox.url()).expect_file_every = Some("2s".into());
    let config = lab.write_config();
    let run = lab.spawn(&["run", "--config", &config.to_string_lossy()]);

    let got = wait_for(Duration::from_secs(60), "the no_file alert", || {
        let got = alerts(&smtp, "ALERT acme");
        (!got.is_empty()).then_some(got)
    });
    assert!(got[0].subject().is_some_and(|s| s.contains("no_file")));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        messages_to(&smtp, OPS).len(),
        1,
        "one alert, not one per tick: {}",
        run.stderr_so_far()
    );
}
