//! The public types as another OPSCOM tool uses them: owned attribute keys, its own user agent,
//! and the named error codes.

mod common;

use opscom_api::{
    BuildError, ClientConfig, DEFAULT_USER_AGENT, HttpPushClient, HttpTransport, PARSE_ERROR_CODE,
    PUSH_PATH, PushApi, PushOutcome, SecretString, TOKEN_ERROR_CODES, TransportConfig, UserRecord,
};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::{client, push_mock, user};

fn transport_with_agent(agent: &str) -> Result<HttpTransport, BuildError> {
    let mut config = TransportConfig::default();
    config.user_agent = agent.to_owned();
    HttpTransport::new(config)
}

#[tokio::test]
async fn a_transport_sends_the_user_agent_it_is_given() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PUSH_PATH))
        .and(header("user-agent", "opscom-sync/2.1"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"status":"success"}"#))
        .expect(1)
        .mount(&server)
        .await;
    let transport = transport_with_agent("opscom-sync/2.1").expect("transport builds");
    let config = ClientConfig::new(server.uri(), SecretString::from("token"));
    let client = HttpPushClient::with_transport(&transport, config).expect("client builds");
    assert_eq!(client.push_user(&user(1)).await, PushOutcome::Accepted);
}

#[tokio::test]
async fn by_default_the_user_agent_is_the_importers() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PUSH_PATH))
        .and(header("user-agent", DEFAULT_USER_AGENT))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"status":"success"}"#))
        .expect(1)
        .mount(&server)
        .await;
    assert!(DEFAULT_USER_AGENT.starts_with("opscom-import/"));
    assert_eq!(
        client(&server.uri()).push_user(&user(1)).await,
        PushOutcome::Accepted
    );
}

#[test]
fn a_user_agent_that_is_no_header_value_is_refused_by_name() {
    let error = transport_with_agent("bad\nagent").expect_err("refused");
    assert!(
        matches!(&error, BuildError::InvalidUserAgent { user_agent } if user_agent == "bad\nagent"),
        "{error:?}"
    );
}

#[tokio::test]
async fn attribute_keys_may_be_owned_strings() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PUSH_PATH))
        .and(body_partial_json(serde_json::json!({
            "unique_id": "u7",
            "login_source": "OPSCOM",
            "custom_field": "x",
        })))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"status":"success"}"#))
        .expect(1)
        .mount(&server)
        .await;
    // A key known only at run time (read from another system's configuration, say).
    let runtime_key: String = ["custom", "field"].join("_");
    let user = UserRecord::new(3, "u7")
        .with("login_source", "OPSCOM")
        .with(runtime_key, "x");
    assert_eq!(user.attribute("custom_field"), Some("x"));
    assert_eq!(user.attribute("missing"), None);
    assert_eq!(
        client(&server.uri()).push_user(&user).await,
        PushOutcome::Accepted
    );
}

#[tokio::test]
async fn the_parse_error_code_is_named() {
    assert_eq!(PARSE_ERROR_CODE, 9003);
    assert_eq!(TOKEN_ERROR_CODES, [9001, 9002]);
    assert_eq!(
        opscom_sandbox::error_message(PARSE_ERROR_CODE),
        "Request could not be parsed",
        "the constant is the code the API (and its look-alike) uses for an unparsable request"
    );
    let server = MockServer::start().await;
    push_mock(
        &server,
        ResponseTemplate::new(200).set_body_string(format!(
            r#"{{"ErrorCode":{PARSE_ERROR_CODE},"ErrorMessage":"Request could not be parsed"}}"#
        )),
        None,
    )
    .await;
    match client(&server.uri()).push_user(&user(1)).await {
        PushOutcome::RowRejected(error) => assert_eq!(error.code, Some(PARSE_ERROR_CODE)),
        other => panic!("expected a row rejected with {PARSE_ERROR_CODE}, got {other:?}"),
    }
}
