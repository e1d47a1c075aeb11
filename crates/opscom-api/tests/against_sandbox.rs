//! The client against the real sandbox over HTTP: every outcome class, retries and recovery.

use std::time::Duration;

use opscom_api::{
    ClientConfig, HttpPushClient, PushApi, PushOutcome, SecretString, TransientCause, UserRecord,
};
use opscom_sandbox::{
    DEFAULT_TOKEN, ErrorStatus, FaultsUpdate, RequestOutcome, RunningSandbox, SandboxConfig, spawn,
};

fn config(sandbox: &RunningSandbox, token: &str) -> ClientConfig {
    let mut config = ClientConfig::new(sandbox.base_url(), SecretString::from(token));
    config.connect_timeout = Duration::from_millis(500);
    config.request_timeout = Duration::from_millis(500);
    config.retry_budget = Duration::from_millis(500);
    config.min_backoff = Duration::from_millis(10);
    config.max_backoff = Duration::from_millis(50);
    config
}

fn client(sandbox: &RunningSandbox) -> HttpPushClient {
    HttpPushClient::new(config(sandbox, DEFAULT_TOKEN)).expect("client builds")
}

fn user(id: &str, email: &str) -> UserRecord {
    UserRecord {
        line: 2,
        unique_id: id.into(),
        attributes: vec![
            ("unique_id".into(), id.into()),
            ("login_source".into(), "OPSCOM".into()),
            ("email".into(), email.into()),
            ("user_type_id".into(), "6".into()),
        ],
    }
}

#[tokio::test]
async fn accepted_users_are_created_then_updated() {
    let sandbox = spawn(SandboxConfig::default()).await.expect("sandbox");
    let client = client(&sandbox);
    assert_eq!(
        client.push_user(&user("u1", "a@x.org")).await,
        PushOutcome::Accepted
    );
    assert_eq!(
        client.push_user(&user("u1", "b@x.org")).await,
        PushOutcome::Accepted
    );
    let users = sandbox.users();
    assert_eq!(users.len(), 1);
    assert_eq!(
        users[0].attributes.get("email").map(String::as_str),
        Some("b@x.org")
    );
    assert_eq!(users[0].updates, 1);
}

#[tokio::test]
async fn api_refusals_are_row_rejections_with_200_and_with_400() {
    for status in [ErrorStatus::Ok200, ErrorStatus::BadRequest400] {
        let sandbox = spawn(SandboxConfig::default().error_status(status))
            .await
            .expect("sandbox");
        let client = client(&sandbox);
        assert_eq!(
            client.push_user(&user("u1", "a@x.org")).await,
            PushOutcome::Accepted
        );
        match client.push_user(&user("u2", "A@x.org")).await {
            PushOutcome::RowRejected(error) => {
                assert_eq!((error.code, error.http_status), (Some(9019), status.code()));
                assert_eq!(
                    error.to_string(),
                    r#"the OPSCOM API refused this user: "E-mail must be unique" (error 9019)"#
                );
            }
            other => panic!("expected a row rejection, got {other:?}"),
        }
        let long = UserRecord {
            attributes: vec![
                ("login_source".into(), "OPSCOM".into()),
                ("city".into(), "x".repeat(51)),
            ],
            ..user("u3", "c@x.org")
        };
        assert!(
            matches!(client.push_user(&long).await, PushOutcome::RowRejected(e) if e.code == Some(9030))
        );
        // Refusals are final: one request each, no retry.
        assert_eq!(sandbox.requests().len(), 3);
    }
}

#[tokio::test]
async fn wrong_or_missing_tokens_are_token_rejections() {
    let sandbox = spawn(SandboxConfig::default()).await.expect("sandbox");
    let wrong = HttpPushClient::new(config(&sandbox, "not-the-token")).expect("client builds");
    assert!(
        matches!(wrong.push_user(&user("u1", "a@x.org")).await, PushOutcome::TokenRejected(e) if e.code == Some(9002))
    );
    let empty = HttpPushClient::new(config(&sandbox, "")).expect("client builds");
    assert!(
        matches!(empty.push_user(&user("u1", "a@x.org")).await, PushOutcome::TokenRejected(e) if e.code == Some(9001))
    );
    assert!(sandbox.users().is_empty());
}

#[tokio::test]
async fn service_unavailable_is_retried_until_accepted() {
    let sandbox = spawn(SandboxConfig::default()).await.expect("sandbox");
    sandbox.set_faults(FaultsUpdate {
        fail_next: Some(2),
        ..FaultsUpdate::default()
    });
    assert_eq!(
        client(&sandbox).push_user(&user("u1", "a@x.org")).await,
        PushOutcome::Accepted
    );
    let outcomes: Vec<RequestOutcome> = sandbox.requests().iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            RequestOutcome::Unavailable,
            RequestOutcome::Unavailable,
            RequestOutcome::Created
        ]
    );
}

#[tokio::test]
async fn throttling_is_honoured_and_every_user_gets_through() {
    let sandbox = spawn(SandboxConfig::default().rate_limit(2, 1))
        .await
        .expect("sandbox");
    let mut config = config(&sandbox, DEFAULT_TOKEN);
    config.retry_budget = Duration::from_secs(10);
    config.concurrency = 4;
    let client = HttpPushClient::new(config).expect("client builds");
    let users: Vec<UserRecord> = (0..4)
        .map(|n| user(&format!("u{n}"), &format!("{n}@x.org")))
        .collect();
    let mut set = tokio::task::JoinSet::new();
    for user in users {
        let client = client.clone();
        set.spawn(async move { client.push_user(&user).await });
    }
    while let Some(outcome) = set.join_next().await {
        assert_eq!(outcome.expect("task"), PushOutcome::Accepted);
    }
    assert_eq!(sandbox.users().len(), 4);
    assert!(
        sandbox
            .requests()
            .iter()
            .any(|r| r.outcome == RequestOutcome::Throttled)
    );
}

#[tokio::test]
async fn an_outage_ends_unreachable_and_recovery_is_accepted() {
    let sandbox = spawn(SandboxConfig::default()).await.expect("sandbox");
    let client = client(&sandbox);
    sandbox.set_outage(true);
    match client.push_user(&user("u1", "a@x.org")).await {
        PushOutcome::Unreachable(error) => {
            assert_eq!(
                error.last_cause,
                TransientCause::Status {
                    status: 503,
                    retry_after: None
                }
            );
            assert!(error.attempts >= 2, "{error}");
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
    sandbox.set_outage(false);
    assert_eq!(
        client.push_user(&user("u1", "a@x.org")).await,
        PushOutcome::Accepted
    );
}

#[tokio::test]
async fn a_slow_api_times_out_into_unreachable() {
    let sandbox = spawn(SandboxConfig::default().latency(Duration::from_secs(2)))
        .await
        .expect("sandbox");
    let mut config = config(&sandbox, DEFAULT_TOKEN);
    config.request_timeout = Duration::from_millis(100);
    config.retry_budget = Duration::from_millis(250);
    let client = HttpPushClient::new(config).expect("client builds");
    match client.push_user(&user("u1", "a@x.org")).await {
        PushOutcome::Unreachable(error) => assert_eq!(error.last_cause, TransientCause::Timeout),
        other => panic!("expected unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_stopped_api_is_unreachable() {
    let sandbox = spawn(SandboxConfig::default()).await.expect("sandbox");
    let client = client(&sandbox);
    sandbox.shutdown().await.expect("clean shutdown");
    match client.push_user(&user("u1", "a@x.org")).await {
        PushOutcome::Unreachable(error) => {
            assert!(
                matches!(error.last_cause, TransientCause::Connect(_)),
                "{error}"
            )
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_refusal_is_explained_with_the_refused_value_and_never_the_token() {
    let sandbox = spawn(SandboxConfig::default().login_sources(["OPSCOM", "SAML_U"]))
        .await
        .expect("sandbox");
    let client = client(&sandbox);
    let explain = async |user: UserRecord| match client.push_user(&user).await {
        PushOutcome::RowRejected(error) => opscom_api::explain_refusal(&error, &user),
        other => panic!("expected a row rejection, got {other:?}"),
    };
    let mut sso = user("u1", "a@x.org");
    sso.attributes[1].1 = "CAMPUS-SSO".into();
    let text = explain(sso).await;
    assert!(
        text.starts_with(r#"OPSCOM does not know the login source "CAMPUS-SSO" (error 9015)."#),
        "{text}"
    );
    let mut long_city = user("u2", "b@x.org");
    long_city.attributes.push(("city".into(), "x".repeat(51)));
    let text = explain(long_city).await;
    assert!(
        text.starts_with("The city column's value \"xxx")
            && text.contains(
                "(51 characters) is longer than the 50 characters OPSCOM allows (error 9030)"
            ),
        "{text}"
    );
    let mut state = user("u3", "c@x.org");
    state.attributes.push(("state".into(), "M1".into()));
    let text = explain(state).await;
    assert!(
        text.starts_with(r#"The province/state column's value "M1" is not valid for OPSCOM (error 9033). Expected: 2-letter"#),
        "{text}"
    );
    let mut user_type = user("u4", "d@x.org");
    user_type.attributes[3].1 = "99".into();
    let text = explain(user_type).await;
    assert!(
        text.contains(r#"The user_type_id column's value "99""#),
        "{text}"
    );
    assert!(!text.contains(DEFAULT_TOKEN), "{text}");
}
