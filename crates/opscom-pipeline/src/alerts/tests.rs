//! The alert state machine: a condition starts, stays, clears; e-mails once each way; the
//! state survives a new instance (another process, a restart). Mail goes to the testkit's
//! `RecordingMailer`.

use super::*;
use crate::config::ApiSettings;
use opscom_scheduler::ManualClock;
use opscom_testkit::RecordingMailer;
use secrecy::SecretString;

fn tenant(dir: &Path) -> Tenant {
    Tenant::new(
        "acme",
        dir.join("drop"),
        dir.join("work"),
        "parking@acme.example",
        "it@acme.example",
    )
    .with_api(
        ApiSettings::new(
            "https://api.example",
            SecretString::from("secret-token-value"),
        )
        .with_token_source("the file /etc/tokens/acme (api_token_file)")
        .with_retry_budget(Duration::from_secs(1)),
    )
    .with_concurrency(1)
    .with_max_file_size(1)
}

fn operator() -> Operator {
    Operator {
        email: "ops@ops.example".into(),
        from: "importer@ops.example".into(),
        alert_after: Duration::from_secs(60),
    }
}

fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn seen(kind: AlertKind, detail: Option<&str>) -> Observation {
    Observation {
        conditions: vec![(kind, detail.map(str::to_owned))],
        file_taken: false,
    }
}

#[tokio::test]
async fn a_condition_mails_once_when_it_starts_and_once_when_it_clears() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(start()));
    let alerts = Alerts::new(dir.path(), Some(&operator()), clock.clone());
    let mailer = RecordingMailer::default();
    let t = tenant(dir.path());

    for _ in 0..3 {
        alerts.observe(&t, &seen(AlertKind::TokenRefused, Some("error 9001")));
        alerts.deliver(&mailer).await;
        clock.advance(Duration::from_secs(10));
    }
    let sent = mailer.take_subjects();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains("ALERT acme") && sent[0].contains("token_refused"));
    assert_eq!(
        alerts.active(),
        [("acme".to_owned(), AlertKind::TokenRefused)]
    );
    let on_disk = fs::read_to_string(dir.path().join(ALERTS_FILE)).unwrap();
    assert!(on_disk.contains("\"notified\": true"), "{on_disk}");
    assert!(!on_disk.contains("secret-token-value"));
    let problems = fs::read_to_string(dir.path().join(LAST_PROBLEMS_FILE)).unwrap();
    assert!(problems.contains("token_refused: error 9001"), "{problems}");

    // Unknown (a pass that pushed nothing) keeps it; seen gone clears it, once.
    alerts.observe(&t, &Observation::default());
    for _ in 0..2 {
        alerts.observe(&t, &seen(AlertKind::TokenRefused, None));
        alerts.deliver(&mailer).await;
    }
    let sent = mailer.take_subjects();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].contains("CLEARED acme: token_refused (after 30 s)"),
        "{sent:?}"
    );
    assert!(alerts.active().is_empty());
    assert!(alerts.conditions().is_empty());
}

#[tokio::test]
async fn alert_after_delays_the_mail_and_a_short_condition_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(start()));
    let alerts = Alerts::new(dir.path(), Some(&operator()), clock.clone());
    let mailer = RecordingMailer::default();
    let t = tenant(dir.path());

    // Shorter than alert_after: no mail either way.
    alerts.observe(&t, &seen(AlertKind::ApiUnreachable, Some("HTTP 503")));
    clock.advance(Duration::from_secs(59));
    alerts.check(std::slice::from_ref(&t));
    assert!(alerts.active().is_empty());
    alerts.observe(&t, &seen(AlertKind::ApiUnreachable, None));
    alerts.deliver(&mailer).await;
    assert!(mailer.take_subjects().is_empty());

    // Longer: the clock tick alone sends it, without another pass.
    alerts.observe(&t, &seen(AlertKind::ApiUnreachable, Some("HTTP 503")));
    clock.advance(Duration::from_secs(61));
    alerts.check(std::slice::from_ref(&t));
    alerts.deliver(&mailer).await;
    let sent = mailer.take_subjects();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains("api_unreachable"));
}

#[tokio::test]
async fn the_state_survives_a_new_instance_and_nothing_is_sent_twice() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(start()));
    let mailer = RecordingMailer::default();
    let t = tenant(dir.path());
    {
        let first = Alerts::new(dir.path(), Some(&operator()), clock.clone());
        first.observe(
            &t,
            &seen(AlertKind::FolderUnusable, Some("drop folder gone")),
        );
        first.deliver(&mailer).await;
    }
    assert_eq!(mailer.take_subjects().len(), 1);
    clock.advance(Duration::from_secs(5));
    let second = Alerts::new(dir.path(), Some(&operator()), clock.clone());
    second.observe(
        &t,
        &seen(AlertKind::FolderUnusable, Some("drop folder gone")),
    );
    second.deliver(&mailer).await;
    assert!(
        mailer.take_subjects().is_empty(),
        "a restart does not resend"
    );
    assert_eq!(
        second.active(),
        [("acme".to_owned(), AlertKind::FolderUnusable)]
    );

    // Two instances at once: what one changes, the other sees.
    let third = Alerts::new(dir.path(), Some(&operator()), clock.clone());
    assert_eq!(third.active().len(), 1);
    second.observe(&t, &seen(AlertKind::FolderUnusable, None));
    third.observe(&t, &seen(AlertKind::FolderUnusable, None));
    second.deliver(&mailer).await;
    third.deliver(&mailer).await;
    assert_eq!(
        mailer.take_subjects().len(),
        1,
        "one clear, whoever saw it first"
    );
    assert!(third.active().is_empty());
}

#[tokio::test]
async fn an_alert_that_cannot_be_sent_is_spooled_and_sent_later() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(start()));
    let alerts = Alerts::new(dir.path(), Some(&operator()), clock.clone());
    let mailer = RecordingMailer::default();
    mailer.set_down(true);
    let t = tenant(dir.path());
    alerts.observe(&t, &seen(AlertKind::ApiNotFound, Some("HTTP 404")));
    alerts.deliver(&mailer).await;
    assert!(mailer.take_subjects().is_empty());
    assert!(
        fs::read_dir(dir.path().join(OPERATOR_OUTBOX))
            .unwrap()
            .any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".report"))
    );
    mailer.set_down(false);
    // A new process finds it too.
    let later = Alerts::new(dir.path(), Some(&operator()), clock.clone());
    later.deliver(&mailer).await;
    alerts.deliver(&mailer).await;
    assert_eq!(mailer.take_subjects().len(), 1);
}

#[tokio::test]
async fn without_an_operator_the_state_is_kept_but_nothing_is_mailed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(start()));
    let alerts = Alerts::new(dir.path(), None, clock.clone());
    let mailer = RecordingMailer::default();
    let t = tenant(dir.path());
    alerts.observe(&t, &seen(AlertKind::TokenRefused, Some("error 9002")));
    alerts.deliver(&mailer).await;
    assert!(mailer.take_subjects().is_empty());
    assert_eq!(alerts.active().len(), 1);
    assert!(!dir.path().join(OPERATOR_OUTBOX).exists());

    // An [operator] added by a reload mails what is active.
    alerts.configure(Some(&operator()));
    alerts.check(std::slice::from_ref(&t));
    alerts.deliver(&mailer).await;
    assert_eq!(mailer.take_subjects().len(), 1);
}

#[tokio::test]
async fn no_file_fires_after_the_period_and_a_file_clears_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(start()));
    let alerts = Alerts::new(dir.path(), Some(&operator()), clock.clone());
    let mailer = RecordingMailer::default();
    let mut t = tenant(dir.path());
    t.expect_file_every = Some(Duration::from_secs(86_400));

    alerts.check(std::slice::from_ref(&t)); // first seen now
    clock.advance(Duration::from_secs(86_399));
    alerts.check(std::slice::from_ref(&t));
    assert!(alerts.active().is_empty());
    clock.advance(Duration::from_secs(2));
    alerts.check(std::slice::from_ref(&t));
    alerts.check(std::slice::from_ref(&t));
    alerts.deliver(&mailer).await;
    let sent = mailer.take_subjects();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains("no_file"));
    let state = alerts.conditions();
    assert_eq!(
        state["acme"]["no_file"].since,
        format_time(start() + Duration::from_secs(86_400)),
        "since = when the period ran out"
    );

    alerts.observe(
        &t,
        &Observation {
            conditions: Vec::new(),
            file_taken: true,
        },
    );
    alerts.deliver(&mailer).await;
    let sent = mailer.take_subjects();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains("CLEARED acme: no_file"));
    let activity = fs::read_to_string(dir.path().join(FILE_ACTIVITY_FILE)).unwrap();
    assert!(activity.contains("last_file"), "{activity}");
}

#[test]
fn a_pass_tells_which_api_condition_holds() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant(dir.path());
    let get = |obs: &Observation, kind| {
        obs.conditions
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, d)| d.is_some())
    };
    let pass = TenantPass {
        defer_reason: Some(DeferReason::TokenRejected("error 9001".into())),
        ..TenantPass::default()
    };
    let obs = Observation::of_pass(&t, &pass);
    assert_eq!(get(&obs, AlertKind::TokenRefused), Some(true));
    assert_eq!(get(&obs, AlertKind::ApiUnreachable), Some(false));
    assert_eq!(get(&obs, AlertKind::ReportsUnsent), Some(false));

    let pass = TenantPass {
        api_reached: true,
        defer_reason: Some(DeferReason::ApiNotFound("HTTP 404".into())),
        ..TenantPass::default()
    };
    let obs = Observation::of_pass(&t, &pass);
    assert_eq!(get(&obs, AlertKind::ApiNotFound), Some(true));
    assert_eq!(get(&obs, AlertKind::TokenRefused), Some(false));

    let idle = Observation::of_pass(&t, &TenantPass::default());
    assert_eq!(get(&idle, AlertKind::TokenRefused), None, "unknown: kept");
    let busy = TenantPass {
        busy: true,
        ..TenantPass::default()
    };
    assert!(Observation::of_pass(&t, &busy).conditions.is_empty());
}

#[test]
fn alert_names_are_stable() {
    let names: Vec<&str> = AlertKind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(
        names,
        [
            "token_refused",
            "api_unreachable",
            "api_not_found",
            "folder_unusable",
            "reports_unsent",
            "no_file"
        ]
    );
    for k in AlertKind::ALL {
        assert_eq!(AlertKind::from_name(k.name()), Some(k));
    }
}
