//! Pushes two users to an in-process sandbox API with `HttpPushClient` on one `HttpTransport`,
//! and prints each outcome.
//!
//! Run with `cargo run -p opscom-api --example push_to_sandbox`. Only `opscom-api` is needed to
//! push; `opscom-sandbox` (a dev-dependency) stands in for the real OPSCOM API, and `tokio` runs it.

use opscom_api::{
    ClientConfig, HttpPushClient, HttpTransport, PushApi, PushOutcome, SecretString,
    TransportConfig, UserRecord,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sandbox = opscom_sandbox::spawn(opscom_sandbox::SandboxConfig::default()).await?;
    println!("sandbox API at {}", sandbox.base_url());

    // One transport (TLS roots, connection pool) for every client of the process.
    let mut transport_config = TransportConfig::default();
    transport_config.user_agent = "opscom-example/1.0".to_owned();
    let transport = HttpTransport::new(transport_config)?;
    let token = SecretString::from(opscom_sandbox::DEFAULT_TOKEN);
    let client =
        HttpPushClient::with_transport(&transport, ClientConfig::new(sandbox.base_url(), token))?;

    let users = [
        UserRecord::new(2, "s1001")
            .with("login_source", "OPSCOM")
            .with("first_name", "Ann")
            .with("email", "ann@example.org"),
        // `nowhere` is not a login source the sandbox knows: refused, with the API's reason.
        UserRecord::new(3, "s1002")
            .with("login_source", "nowhere")
            .with("email", "bob@example.org"),
    ];
    for user in &users {
        match client.push_user(user).await {
            PushOutcome::Accepted => println!("line {} ({}): accepted", user.line, user.unique_id),
            PushOutcome::RowRejected(error) => {
                println!("line {} ({}): rejected: {error}", user.line, user.unique_id)
            }
            other => println!("line {} ({}): {}", user.line, user.unique_id, other.class()),
        }
    }
    println!("users stored by the sandbox: {}", sandbox.users().len());
    sandbox.shutdown().await?;
    Ok(())
}
