//! Reuse path 2: push users with `opscom-api` alone, to the sandbox API started in process.

use opscom_api::{
    ClientConfig, HttpPushClient, HttpTransport, PushApi, PushOutcome, SecretString,
    TransportConfig, UserRecord,
};
use opscom_sandbox::{DEFAULT_TOKEN, SandboxConfig};

#[tokio::test]
async fn two_users_pushed_on_one_transport_get_one_outcome_each() {
    let sandbox = opscom_sandbox::spawn(SandboxConfig::default())
        .await
        .expect("sandbox starts");
    let mut transport = TransportConfig::default();
    transport.user_agent = "opscom-reuse-tests/1".to_owned();
    let transport = HttpTransport::new(transport).expect("transport builds");
    let client = HttpPushClient::with_transport(
        &transport,
        ClientConfig::new(sandbox.base_url(), SecretString::from(DEFAULT_TOKEN)),
    )
    .expect("client builds");

    // Keys from another system's configuration: owned strings.
    let email_key = String::from("email");
    let ann = UserRecord::new(2, "s1")
        .with("login_source", "OPSCOM")
        .with(email_key.clone(), "ann@example.org");
    let bob = UserRecord::new(3, "s2")
        .with("login_source", "nowhere")
        .with(email_key, "bob@example.org");

    assert_eq!(client.push_user(&ann).await, PushOutcome::Accepted);
    match client.push_user(&bob).await {
        PushOutcome::RowRejected(error) => {
            assert_eq!(error.code, Some(9015), "{error}");
            assert!(error.to_string().contains("Login Source"), "{error}");
        }
        other => panic!("expected a row rejection, got {other:?}"),
    }

    let stored = sandbox.users();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].attributes.get("email").map(String::as_str),
        Some("ann@example.org")
    );
    sandbox.shutdown().await.expect("sandbox stops");
}

#[tokio::test]
async fn a_refused_token_is_its_own_outcome() {
    let sandbox = opscom_sandbox::spawn(SandboxConfig::default())
        .await
        .expect("sandbox starts");
    let client = HttpPushClient::new(ClientConfig::new(
        sandbox.base_url(),
        SecretString::from("not-the-token"),
    ))
    .expect("client builds");
    let user = UserRecord::new(2, "s1").with("login_source", "OPSCOM");
    let outcome = client.push_user(&user).await;
    assert!(
        matches!(&outcome, PushOutcome::TokenRejected(e) if e.code.is_some_and(|c| opscom_api::TOKEN_ERROR_CODES.contains(&c))),
        "{outcome:?}"
    );
    assert!(sandbox.users().is_empty());
    sandbox.shutdown().await.expect("sandbox stops");
}
