//! The OPSCOM Push API client: the PushApi trait and its reqwest implementation (retries, backoff, limits, classification).
//!
//! This is the only crate of the workspace that knows HTTP. Callers see one trait, [`PushApi`],
//! and one closed set of outcomes, [`PushOutcome`]: accepted, row rejected, token rejected,
//! unreachable. Transient failures are retried inside the client within a per-user budget;
//! the rules that sort answers into classes are one table in [`classify`].
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
//! Other crates' tests stand in for the API with `opscom_testkit::RecordingApi`.

#![warn(missing_docs)]

pub mod classify;
mod client;
mod config;
mod model;

pub use classify::{MAX_ANSWER_BYTES, MAX_MESSAGE_CHARS};
pub use client::{HttpPushClient, HttpTransport};
pub use config::{BuildError, ClientConfig, PUSH_PATH, RequestObserver, TransportConfig};
pub use model::{ApiError, PushOutcome, TransientCause, UnreachableError, UserRecord};
pub use secrecy::SecretString;

use async_trait::async_trait;

/// Pushes one user to the OPSCOM API (create or update, keyed by `unique_id`).
///
/// Never fails with an error: every answer, and the lack of one, is a [`PushOutcome`].
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

    use std::sync::Mutex;

    /// Records the ids it is given and accepts every user.
    #[derive(Default)]
    struct Recording(Mutex<Vec<String>>);

    #[async_trait]
    impl PushApi for Recording {
        async fn push_user(&self, user: &UserRecord) -> PushOutcome {
            self.0.lock().unwrap().push(user.unique_id.clone());
            PushOutcome::Accepted
        }
    }

    #[tokio::test]
    async fn arc_and_reference_forward_to_the_implementation() {
        let user = UserRecord {
            line: 2,
            unique_id: "u1".into(),
            attributes: Vec::new(),
        };
        let api = std::sync::Arc::new(Recording::default());
        let shared: std::sync::Arc<dyn PushApi> = api.clone();
        assert_eq!(format!("{shared:?}"), "dyn PushApi");
        assert_eq!(shared.push_user(&user).await, PushOutcome::Accepted);
        let by_ref: &dyn PushApi = &*shared;
        assert_eq!(
            <&dyn PushApi as PushApi>::push_user(&by_ref, &user).await,
            PushOutcome::Accepted
        );
        assert_eq!(*api.0.lock().unwrap(), ["u1", "u1"]);
    }
}
