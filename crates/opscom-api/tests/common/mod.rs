//! Helpers shared by the client's wiremock test binaries: a fast-failing client and a user.
// Each test binary uses a part of them.
#![allow(dead_code)]

pub mod raw;

use std::time::Duration;

use opscom_api::{ClientConfig, HttpPushClient, PUSH_PATH, SecretString, UserRecord};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A token of the documented shape (50 characters).
pub const TOKEN: &str = "tok-0123456789-abcdefghij-0123456789-abcdefghij-xy";

/// Short timeouts, budget and back-off, so that failure paths end quickly.
pub fn config(base: &str) -> ClientConfig {
    config_with_token(base, TOKEN)
}

/// [`config`] with another token (another tenant).
pub fn config_with_token(base: &str, token: &str) -> ClientConfig {
    let mut config = ClientConfig::new(base, SecretString::from(token));
    config.connect_timeout = Duration::from_millis(500);
    config.request_timeout = Duration::from_millis(500);
    config.retry_budget = Duration::from_millis(400);
    config.min_backoff = Duration::from_millis(10);
    config.max_backoff = Duration::from_millis(50);
    config.concurrency = 4;
    config
}

pub fn client(base: &str) -> HttpPushClient {
    HttpPushClient::new(config(base)).expect("client builds")
}

pub fn user(n: u64) -> UserRecord {
    UserRecord {
        line: n + 1,
        unique_id: format!("u{n}"),
        attributes: vec![
            ("login_source".into(), "OPSCOM".into()),
            ("email".into(), format!("person{n}@example.com")),
            ("first_name".into(), "Zoë".into()),
        ],
    }
}

/// Answers pushes with `template`, at most `times` times when given.
pub async fn push_mock(server: &MockServer, template: ResponseTemplate, times: Option<u64>) {
    let mock = Mock::given(method("POST"))
        .and(path(PUSH_PATH))
        .respond_with(template);
    let mock = match times {
        Some(n) => mock.up_to_n_times(n),
        None => mock,
    };
    mock.mount(server).await;
}

pub async fn request_count(server: &MockServer) -> usize {
    server.received_requests().await.map_or(0, |r| r.len())
}
