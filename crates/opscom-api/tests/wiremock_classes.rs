//! The client against wiremock: one test per answer class and per retry path.

mod common;

use std::time::{Duration, Instant};

use opscom_api::{HttpPushClient, PUSH_PATH, PushApi, PushOutcome, TransientCause, UserRecord};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::{TOKEN, client, config, push_mock, request_count, user};

#[tokio::test]
async fn success_is_accepted_and_the_request_follows_the_contract() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PUSH_PATH))
        .and(header("content-type", "application/json"))
        .and(header("accept", "application/json"))
        .and(header("cache-control", "no-cache"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"status":"success"}"#))
        .expect(1)
        .mount(&server)
        .await;
    // A trailing slash on the base URL must not produce `//api`.
    let outcome = client(&format!("{}/", server.uri()))
        .push_user(&user(1))
        .await;
    assert_eq!(outcome, PushOutcome::Accepted);
    let requests = server.received_requests().await.unwrap_or_default();
    let body: serde_json::Value = serde_json::from_slice(&requests[0].body).expect("JSON body");
    assert_eq!(
        body,
        serde_json::json!({
            "unique_id": "u1", "login_source": "OPSCOM", "email": "person1@example.com",
            "first_name": "Zoë", "apiToken": TOKEN
        })
    );
}

#[tokio::test]
async fn json_without_status_success_is_still_accepted() {
    let server = MockServer::start().await;
    push_mock(
        &server,
        ResponseTemplate::new(200).set_body_string(r#"{"id":17}"#),
        None,
    )
    .await;
    assert_eq!(
        client(&server.uri()).push_user(&user(1)).await,
        PushOutcome::Accepted
    );
}

#[tokio::test]
async fn error_code_with_200_is_a_row_rejection_and_not_retried() {
    let server = MockServer::start().await;
    let body = r#"{"ErrorCode":9019,"ErrorMessage":"E-mail must be unique"}"#;
    push_mock(
        &server,
        ResponseTemplate::new(200).set_body_string(body),
        None,
    )
    .await;
    match client(&server.uri()).push_user(&user(1)).await {
        PushOutcome::RowRejected(error) => {
            assert_eq!(error.code, Some(9019));
            assert_eq!(
                error.to_string(),
                r#"the OPSCOM API refused this user: "E-mail must be unique" (error 9019)"#
            );
        }
        other => panic!("expected a row rejection, got {other:?}"),
    }
    assert_eq!(request_count(&server).await, 1);
}

#[tokio::test]
async fn error_code_with_400_is_a_row_rejection() {
    let server = MockServer::start().await;
    let body = r#"{"ErrorCode":9030,"ErrorMessage":"City is longer than 50"}"#;
    push_mock(
        &server,
        ResponseTemplate::new(400).set_body_string(body),
        None,
    )
    .await;
    let outcome = client(&server.uri()).push_user(&user(1)).await;
    assert!(
        matches!(outcome, PushOutcome::RowRejected(ref e) if e.code == Some(9030) && e.http_status == 400),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn token_codes_and_401_reject_the_token() {
    let server = MockServer::start().await;
    let body = r#"{"ErrorCode":9001,"ErrorMessage":"API token missing"}"#;
    push_mock(
        &server,
        ResponseTemplate::new(200).set_body_string(body),
        Some(1),
    )
    .await;
    push_mock(&server, ResponseTemplate::new(401), None).await;
    let client = client(&server.uri());
    assert!(
        matches!(client.push_user(&user(1)).await, PushOutcome::TokenRejected(e) if e.code == Some(9001))
    );
    assert!(
        matches!(client.push_user(&user(2)).await, PushOutcome::TokenRejected(e) if e.code.is_none() && e.http_status == 401)
    );
    assert_eq!(
        request_count(&server).await,
        2,
        "token rejections are not retried"
    );
}

#[tokio::test]
async fn too_many_requests_honours_retry_after_then_succeeds() {
    let server = MockServer::start().await;
    push_mock(
        &server,
        ResponseTemplate::new(429).insert_header("Retry-After", "1"),
        Some(1),
    )
    .await;
    push_mock(
        &server,
        ResponseTemplate::new(200).set_body_string(r#"{"status":"success"}"#),
        None,
    )
    .await;
    let mut config = config(&server.uri());
    config.retry_budget = Duration::from_secs(3);
    let client = HttpPushClient::new(config).expect("client builds");
    let started = Instant::now();
    assert_eq!(client.push_user(&user(1)).await, PushOutcome::Accepted);
    // The back-off alone is at most 50 ms: waiting a second proves Retry-After was honoured.
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(request_count(&server).await, 2);
}

#[tokio::test]
async fn retry_after_longer_than_the_budget_is_still_honoured_once() {
    let server = MockServer::start().await;
    push_mock(
        &server,
        ResponseTemplate::new(429).insert_header("Retry-After", "1"),
        Some(1),
    )
    .await;
    push_mock(
        &server,
        ResponseTemplate::new(200).set_body_string(r#"{"status":"success"}"#),
        None,
    )
    .await;
    // The budget (400 ms) is shorter than the server asked to wait: a rate-limited API must not
    // make the file wait for a later pass after a single request.
    let started = Instant::now();
    assert_eq!(
        client(&server.uri()).push_user(&user(1)).await,
        PushOutcome::Accepted
    );
    assert!(started.elapsed() >= Duration::from_millis(950));
    assert_eq!(request_count(&server).await, 2);
}

#[tokio::test]
async fn retry_after_past_the_budget_gives_up_after_the_wait() {
    let server = MockServer::start().await;
    push_mock(
        &server,
        ResponseTemplate::new(429).insert_header("Retry-After", "1"),
        None,
    )
    .await;
    let started = Instant::now();
    match client(&server.uri()).push_user(&user(1)).await {
        PushOutcome::Unreachable(error) => {
            assert_eq!(
                error.attempts, 2,
                "one honoured wait, then the budget is spent"
            );
            assert_eq!(
                error.last_cause,
                TransientCause::Status {
                    status: 429,
                    retry_after: Some(Duration::from_secs(1))
                }
            );
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn service_unavailable_then_success_is_accepted() {
    let server = MockServer::start().await;
    push_mock(&server, ResponseTemplate::new(503), Some(2)).await;
    push_mock(
        &server,
        ResponseTemplate::new(200).set_body_string(r#"{"status":"success"}"#),
        None,
    )
    .await;
    assert_eq!(
        client(&server.uri()).push_user(&user(1)).await,
        PushOutcome::Accepted
    );
    assert_eq!(request_count(&server).await, 3);
}

#[tokio::test]
async fn persistent_server_errors_end_unreachable_within_the_budget() {
    let server = MockServer::start().await;
    push_mock(
        &server,
        ResponseTemplate::new(500).set_body_string("boom"),
        None,
    )
    .await;
    let started = Instant::now();
    let outcome = client(&server.uri()).push_user(&user(1)).await;
    let elapsed = started.elapsed();
    match outcome {
        PushOutcome::Unreachable(error) => {
            assert!(error.attempts >= 3, "{error}");
            assert_eq!(
                error.last_cause,
                TransientCause::Status {
                    status: 500,
                    retry_after: None
                }
            );
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
    // Budget 400 ms, and a request cannot start past it.
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
}

#[tokio::test]
async fn a_slow_answer_times_out_and_is_retried_then_unreachable() {
    let server = MockServer::start().await;
    push_mock(
        &server,
        ResponseTemplate::new(200)
            .set_body_string(r#"{"status":"success"}"#)
            .set_delay(Duration::from_secs(5)),
        None,
    )
    .await;
    let mut config = config(&server.uri());
    config.request_timeout = Duration::from_millis(150);
    let client = HttpPushClient::new(config).expect("client builds");
    match client.push_user(&user(1)).await {
        PushOutcome::Unreachable(error) => {
            assert_eq!(error.last_cause, TransientCause::Timeout);
            assert!(error.attempts >= 2, "{error}");
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_timeout_then_a_fast_answer_is_accepted() {
    let server = MockServer::start().await;
    push_mock(
        &server,
        ResponseTemplate::new(200).set_delay(Duration::from_secs(5)),
        Some(1),
    )
    .await;
    push_mock(
        &server,
        ResponseTemplate::new(200).set_body_string(r#"{"status":"success"}"#),
        None,
    )
    .await;
    let mut config = config(&server.uri());
    config.request_timeout = Duration::from_millis(150);
    let client = HttpPushClient::new(config).expect("client builds");
    assert_eq!(client.push_user(&user(1)).await, PushOutcome::Accepted);
}

#[tokio::test]
async fn a_garbage_body_with_200_is_transient() {
    let server = MockServer::start().await;
    push_mock(
        &server,
        ResponseTemplate::new(200).set_body_string("<html>maintenance</html>"),
        Some(1),
    )
    .await;
    push_mock(
        &server,
        ResponseTemplate::new(200).set_body_string(r#"{"status":"success"}"#),
        None,
    )
    .await;
    let client = client(&server.uri());
    assert_eq!(client.push_user(&user(1)).await, PushOutcome::Accepted);
    assert_eq!(request_count(&server).await, 2);
}

#[tokio::test]
async fn a_garbage_body_forever_ends_unreachable() {
    let server = MockServer::start().await;
    push_mock(
        &server,
        ResponseTemplate::new(200).set_body_string("<html>"),
        None,
    )
    .await;
    match client(&server.uri()).push_user(&user(1)).await {
        PushOutcome::Unreachable(error) => {
            assert_eq!(error.last_cause, TransientCause::NotJson { status: 200 })
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn connection_refused_ends_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    match client(&format!("http://{address}"))
        .push_user(&user(1))
        .await
    {
        PushOutcome::Unreachable(error) => {
            assert!(
                matches!(error.last_cause, TransientCause::Connect(_)),
                "{error}"
            );
            assert!(error.attempts >= 2, "{error}");
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn concurrency_is_bounded_inside_the_client() {
    let server = MockServer::start().await;
    let delay = Duration::from_millis(100);
    push_mock(
        &server,
        ResponseTemplate::new(200)
            .set_body_string(r#"{"status":"success"}"#)
            .set_delay(delay),
        None,
    )
    .await;
    let mut config = config(&server.uri());
    config.concurrency = 2;
    let client = HttpPushClient::new(config).expect("client builds");
    let users: Vec<UserRecord> = (0..6).map(user).collect();
    let started = Instant::now();
    let outcomes = futures_join_all(&client, &users).await;
    assert!(
        outcomes.iter().all(|o| *o == PushOutcome::Accepted),
        "{outcomes:?}"
    );
    // 6 users, 2 at a time, 100 ms each: at least 3 rounds.
    assert!(started.elapsed() >= 3 * delay, "{:?}", started.elapsed());
}

#[tokio::test]
async fn the_requests_per_second_ceiling_holds() {
    let server = MockServer::start().await;
    push_mock(
        &server,
        ResponseTemplate::new(200).set_body_string(r#"{"status":"success"}"#),
        None,
    )
    .await;
    let mut config = config(&server.uri());
    config.concurrency = 16;
    config.requests_per_second = std::num::NonZeroU32::new(20);
    let client = HttpPushClient::new(config).expect("client builds");
    let users: Vec<UserRecord> = (0..30).map(user).collect();
    let started = Instant::now();
    let outcomes = futures_join_all(&client, &users).await;
    assert!(outcomes.iter().all(|o| *o == PushOutcome::Accepted));
    // A burst of 20, then 10 more at 20/s: at least ~500 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
}

/// Drives all pushes at once from one task (the client bounds them).
async fn futures_join_all(client: &HttpPushClient, users: &[UserRecord]) -> Vec<PushOutcome> {
    let mut set = tokio::task::JoinSet::new();
    for (i, user) in users.iter().cloned().enumerate() {
        let client = client.clone();
        set.spawn(async move { (i, client.push_user(&user).await) });
    }
    let mut outcomes = vec![PushOutcome::Accepted; users.len()];
    while let Some(joined) = set.join_next().await {
        let (i, outcome) = joined.expect("task ran");
        outcomes[i] = outcome;
    }
    outcomes
}
