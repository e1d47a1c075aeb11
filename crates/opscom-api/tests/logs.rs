//! What the client logs: ids and codes for the report, never the token or row contents.
//!
//! Alone in its own test binary, so the subscriber can be global and no other test's threads
//! race with it over tracing's process-wide callsite interest.

mod common;

use std::sync::{Arc, Mutex};

use opscom_api::PushApi;
use wiremock::{MockServer, ResponseTemplate};

use common::{TOKEN, client, push_mock, user};

/// A writer collecting everything the client logs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_never_carry_the_token_or_row_contents() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    // Global, and the only test of this binary: a thread-local default raced with other tests'
    // threads over tracing's shared interest cache and max level, and lost lines.
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let server = MockServer::start().await;
    push_mock(
        &server,
        ResponseTemplate::new(200).set_body_string(r#"{"id":1}"#),
        Some(1),
    )
    .await;
    push_mock(
        &server,
        ResponseTemplate::new(200).set_body_string(r#"{"ErrorCode":9003,"ErrorMessage":"bad"}"#),
        Some(1),
    )
    .await;
    push_mock(
        &server,
        ResponseTemplate::new(200).set_body_string(r#"{"ErrorCode":9002,"ErrorMessage":"no"}"#),
        Some(1),
    )
    .await;
    push_mock(&server, ResponseTemplate::new(503), None).await;
    let client = client(&server.uri());
    for n in 0..4 {
        client.push_user(&user(n)).await;
    }
    let logs = String::from_utf8_lossy(&captured.0.lock().expect("lock")).into_owned();
    assert!(logs.contains("u3"), "unique ids are logged: {logs}");
    assert!(
        logs.contains("bug in the importer"),
        "9003 is logged loudly: {logs}"
    );
    assert!(!logs.contains(TOKEN), "the token leaked: {logs}");
    assert!(!logs.contains("example.com"), "row contents leaked: {logs}");
    assert!(!format!("{client:?}").contains(TOKEN));
}
