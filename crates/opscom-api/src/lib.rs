//! The OPSCOM Push API client: the PushApi trait and its reqwest implementation (retries, backoff, limits, classification).
//!
//! This is the only crate of the workspace that knows HTTP. Callers see one trait, [`PushApi`],
//! and one closed set of outcomes, [`PushOutcome`]: accepted, row rejected, token rejected,
//! unreachable. Transient failures are retried inside the client within a per-user budget;
//! the rules that sort answers into classes are one table in [`classify`].
//!
//! # Quick start
//!
//! One user, pushed to an in-process [`opscom-sandbox`](../opscom_sandbox/index.html) (the API
//! look-alike this crate is tested against; give a real `api_url` and token instead):
//!
//! ```
//! use opscom_api::{ClientConfig, HttpPushClient, PushApi, PushOutcome, SecretString, UserRecord};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sandbox = opscom_sandbox::spawn(opscom_sandbox::SandboxConfig::default()).await?;
//! let token = SecretString::from(opscom_sandbox::DEFAULT_TOKEN);
//! let client = HttpPushClient::new(ClientConfig::new(sandbox.base_url(), token))?;
//!
//! let user = UserRecord::new(2, "s1001")
//!     .with("login_source", "OPSCOM")
//!     .with("email", "ann@example.org");
//! match client.push_user(&user).await {
//!     PushOutcome::Accepted => println!("line {}: imported", user.line),
//!     other => println!("line {}: {}", user.line, other.class()),
//! }
//! # assert_eq!(sandbox.users().len(), 1);
//! # sandbox.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! `examples/push_to_sandbox.rs` does the same for two users on a shared [`HttpTransport`]
//! (`cargo run -p opscom-api --example push_to_sandbox`).
//!
//! # One transport, many tenants
//!
//! An [`HttpTransport`] is the expensive part: one `reqwest` client with its rustls
//! configuration (the system's root certificates, loaded once) and its connection pool. A tenant's
//! [`HttpPushClient`] is cheap: its push URL, token, concurrency, rate limit, retry budget and
//! request timeout. With more than one tenant, build one transport at start-up and every
//! tenant's client on it:
//!
//! ```no_run
//! # fn tenants() -> Vec<(String, opscom_api::SecretString)> { Vec::new() }
//! use opscom_api::{ClientConfig, HttpPushClient, HttpTransport, TransportConfig};
//!
//! # fn main() -> Result<(), opscom_api::BuildError> {
//! let transport = HttpTransport::new(TransportConfig::default())?;
//! let clients = tenants()
//!     .into_iter()
//!     .map(|(url, token)| {
//!         let mut config = ClientConfig::new(url, token);
//!         config.concurrency = 4;
//!         HttpPushClient::with_transport(&transport, config)
//!     })
//!     .collect::<Result<Vec<_>, _>>()?;
//! # drop(clients);
//! # Ok(())
//! # }
//! ```
//!
//! [`HttpPushClient::new`] builds a private transport per client: fine for one tenant (a tool,
//! a test), but with thousands of tenants it loads the certificates thousands of times and keeps
//! thousands of pools.
//!
//! # Bounded answers
//!
//! An answer is read up to [`MAX_ANSWER_BYTES`]; a larger one is a broken answer (transient,
//! retried within the budget, then unreachable). A message the API sends back is cut to
//! [`MAX_MESSAGE_CHARS`] characters on one line before it reaches a report.
//!
//! # Named codes and settings
//!
//! The API's error codes that change what the caller does are constants: [`TOKEN_ERROR_CODES`]
//! (stop the tenant) and [`PARSE_ERROR_CODE`] (a row refused because the request could not be
//! parsed: a bug in the caller). The `User-Agent` is [`TransportConfig::user_agent`], by default
//! [`DEFAULT_USER_AGENT`].
//!
//! # Explaining a refusal to the client
//!
//! [`explain_refusal`] turns a [`PushOutcome::RowRejected`]'s [`ApiError`] into one sentence the
//! client can act on, quoting the refused value of the [`UserRecord`] (cut to
//! [`MAX_QUOTED_CHARS`]) and the accepted values where the API's documentation lists them
//! (`OPSCOM does not know the login source "CAMPUS-SSO" (error 9015). Use OPSCOM (the default)
//! or …`). A code it does not explain keeps the API's own message.
//!
//! Other crates' tests stand in for the API with `opscom_testkit::RecordingApi`; this crate's
//! own unit tests use a mockall mock of [`PushApi`].

#![warn(missing_docs)]

pub mod classify;
mod client;
mod config;
mod explain;
mod model;

pub use classify::{MAX_ANSWER_BYTES, MAX_MESSAGE_CHARS, PARSE_ERROR_CODE, TOKEN_ERROR_CODES};
pub use client::{HttpPushClient, HttpTransport};
pub use config::{
    BuildError, ClientConfig, DEFAULT_USER_AGENT, PUSH_PATH, RequestObserver, TransportConfig,
};
pub use explain::{MAX_QUOTED_CHARS, explain_refusal};
pub use model::{
    ApiError, AttributeKey, PushOutcome, TransientCause, UnreachableError, UserRecord,
};
pub use secrecy::SecretString;

use async_trait::async_trait;

/// Pushes one user to the OPSCOM API (create or update, keyed by `unique_id`).
///
/// Never fails with an error: every answer, and the lack of one, is a [`PushOutcome`].
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait PushApi: Send + Sync {
    /// Pushes `user`, retrying transient failures within the implementation's budget.
    async fn push_user(&self, user: &UserRecord) -> PushOutcome;
}

/// Lets structs holding an `Arc<dyn PushApi>` derive `Debug` (nothing secret is shown).
impl std::fmt::Debug for dyn PushApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dyn PushApi")
    }
}

#[async_trait]
impl<T: PushApi + ?Sized> PushApi for std::sync::Arc<T> {
    async fn push_user(&self, user: &UserRecord) -> PushOutcome {
        (**self).push_user(user).await
    }
}

#[async_trait]
impl<T: PushApi + ?Sized> PushApi for &T {
    async fn push_user(&self, user: &UserRecord) -> PushOutcome {
        (**self).push_user(user).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn arc_and_reference_forward_to_the_implementation() {
        let mut mock = MockPushApi::new();
        mock.expect_push_user()
            .withf(|user| user.unique_id == "u1")
            .times(2)
            .returning(|_| PushOutcome::Accepted);
        let user = UserRecord {
            line: 2,
            unique_id: "u1".into(),
            attributes: Vec::new(),
        };
        let shared: std::sync::Arc<dyn PushApi> = std::sync::Arc::new(mock);
        assert_eq!(format!("{shared:?}"), "dyn PushApi");
        assert_eq!(shared.push_user(&user).await, PushOutcome::Accepted);
        let by_ref: &dyn PushApi = &*shared;
        assert_eq!(
            <&dyn PushApi as PushApi>::push_user(&by_ref, &user).await,
            PushOutcome::Accepted
        );
    }
}
