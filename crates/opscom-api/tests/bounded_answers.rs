//! Answers are read up to `MAX_ANSWER_BYTES`; a larger one is a broken (transient) answer, and
//! what the API says in an error message reaches the report bounded.

mod common;

use std::time::Duration;

use opscom_api::{
    HttpPushClient, MAX_ANSWER_BYTES, MAX_MESSAGE_CHARS, PushApi, PushOutcome, TransientCause,
};
use wiremock::{MockServer, ResponseTemplate};

use common::raw::{RawServer, Reply};
use common::{config, push_mock, user};

/// More than a loopback connection's socket buffers hold (about 4 MB here), far less than the
/// 200 MB a client that keeps reading would take.
const SENT_BOUND: u64 = 16 << 20;

/// A client with a request timeout far longer than the test: an answer is never cut by the
/// timeout, only by the cap.
fn patient_client(base: &str) -> HttpPushClient {
    let mut config = config(base);
    config.request_timeout = Duration::from_secs(60);
    config.retry_budget = Duration::from_millis(400);
    HttpPushClient::new(config).expect("client builds")
}

/// A success answer of exactly `len` bytes.
fn padded_success(len: usize) -> Vec<u8> {
    let frame = r#"{"status":"success","pad":""}"#;
    let body = format!(
        r#"{{"status":"success","pad":"{}"}}"#,
        "x".repeat(len - frame.len())
    );
    assert_eq!(body.len(), len);
    body.into_bytes()
}

fn expect_too_large(outcome: PushOutcome, content_length: Option<u64>) -> u32 {
    match outcome {
        PushOutcome::Unreachable(error) => {
            assert_eq!(
                error.last_cause,
                TransientCause::AnswerTooLarge {
                    status: 200,
                    content_length
                }
            );
            error.attempts
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_flood_of_an_answer_is_cut_retried_then_unreachable() {
    for total in [200 << 20, u64::MAX] {
        let server = RawServer::start(move |_| Reply::Flood { total }).await;
        let attempts = expect_too_large(
            patient_client(&server.uri()).push_user(&user(1)).await,
            None,
        );
        assert!(attempts >= 2, "retried within the budget: {attempts}");
        assert_eq!(server.seen.tokens().len(), attempts as usize);
        // Every answer ends when the client hangs up, after at most the sockets' buffers.
        server
            .wait_for(|seen| seen.sent().len() == attempts as usize)
            .await;
        for sent in server.seen.sent() {
            assert!(sent.cut_by_client, "{sent:?}");
            assert!(sent.bytes < SENT_BOUND, "{sent:?}");
        }
    }
}

#[tokio::test]
async fn a_content_length_over_the_cap_is_refused_without_reading() {
    let server = RawServer::start(|_| Reply::Announce {
        content_length: 209_715_200,
    })
    .await;
    let attempts = expect_too_large(
        patient_client(&server.uri()).push_user(&user(1)).await,
        Some(209_715_200),
    );
    server
        .wait_for(|seen| seen.sent().len() == attempts as usize)
        .await;
    // The server sent 1 KiB of the body and then waited: the client did not wait for the rest
    // (its timeout is 60 s), it hung up.
    assert!(server.seen.sent().iter().all(|sent| sent.cut_by_client));
}

#[tokio::test]
async fn an_answer_of_exactly_the_cap_is_read_one_byte_more_is_not() {
    for chunked in [false, true] {
        let wrap = move |body: Vec<u8>| {
            if chunked {
                Reply::Chunked(body)
            } else {
                Reply::Body(body)
            }
        };
        let fits = wrap(padded_success(MAX_ANSWER_BYTES));
        let server = RawServer::start(move |_| fits.clone()).await;
        assert_eq!(
            patient_client(&server.uri()).push_user(&user(1)).await,
            PushOutcome::Accepted,
            "chunked: {chunked}"
        );
        let over = wrap(padded_success(MAX_ANSWER_BYTES + 1));
        let server = RawServer::start(move |_| over.clone()).await;
        let length = (!chunked).then_some(MAX_ANSWER_BYTES as u64 + 1);
        expect_too_large(
            patient_client(&server.uri()).push_user(&user(1)).await,
            length,
        );
    }
}

#[tokio::test]
async fn a_normal_answer_still_reuses_its_connection() {
    let server = RawServer::start(|_| Reply::Body(br#"{"status":"success"}"#.to_vec())).await;
    let client = patient_client(&server.uri());
    for n in 0..3 {
        assert_eq!(client.push_user(&user(n)).await, PushOutcome::Accepted);
    }
    assert_eq!(server.seen.connections(), 1);
}

#[tokio::test]
async fn a_long_multi_line_error_message_is_bounded_in_the_rejection() {
    let server = MockServer::start().await;
    let message = format!("Field invalid\n{}", "word ".repeat(12_000));
    let body = serde_json::json!({"ErrorCode": 9033, "ErrorMessage": message}).to_string();
    assert!(body.len() < MAX_ANSWER_BYTES);
    push_mock(
        &server,
        ResponseTemplate::new(400).set_body_string(body),
        None,
    )
    .await;
    match patient_client(&server.uri()).push_user(&user(1)).await {
        PushOutcome::RowRejected(error) => {
            assert_eq!(error.code, Some(9033));
            assert!(error.message.chars().count() <= MAX_MESSAGE_CHARS);
            assert!(error.message.starts_with("Field invalid word word"));
            assert!(error.message.ends_with('…'));
            assert!(!error.message.contains('\n'));
        }
        other => panic!("expected a row rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn an_error_message_of_a_megabyte_is_an_oversized_answer() {
    // The 1 MB message never reaches the classifier: the answer is over the cap, so it is a
    // broken answer like any other (the file waits), not a rejection of the row.
    let server = MockServer::start().await;
    let message = "m".repeat(1 << 20);
    let body = serde_json::json!({"ErrorCode": 9033, "ErrorMessage": message}).to_string();
    push_mock(
        &server,
        ResponseTemplate::new(200).set_body_string(body),
        None,
    )
    .await;
    let length = serde_json::json!({"ErrorCode": 9033, "ErrorMessage": message})
        .to_string()
        .len() as u64;
    expect_too_large(
        patient_client(&server.uri()).push_user(&user(1)).await,
        Some(length),
    );
}
