//! How to reach the API: base URL, token, timeouts, limits and the retry budget.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

/// The path of the push endpoint, appended to the base URL.
pub const PUSH_PATH: &str = "/api/OC_TOMA/v1/profiles/push";

/// The `User-Agent` sent by default: `opscom-import/<version of this crate>`. Another tool sets
/// its own in [`TransportConfig::user_agent`].
pub const DEFAULT_USER_AGENT: &str = concat!("opscom-import/", env!("CARGO_PKG_VERSION"));

/// Settings of [`crate::HttpPushClient`]. Build with [`ClientConfig::new`], then adjust fields.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Scheme, host and optional path prefix, e.g. `https://controller.operationscommander.io`.
    /// A trailing `/` is harmless.
    pub base_url: String,
    /// The API token (sent in the JSON body as `apiToken`, never logged or printed).
    pub token: SecretString,
    /// Time allowed to open a connection. Used by [`crate::HttpPushClient::new`] only: a client
    /// built with [`crate::HttpPushClient::with_transport`] uses its transport's
    /// [`TransportConfig::connect_timeout`].
    pub connect_timeout: Duration,
    /// Time allowed for one request, from sending to the end of the answer.
    pub request_timeout: Duration,
    /// Users in flight at once (requests plus their back-off waits); at least 1.
    pub concurrency: usize,
    /// An optional ceiling on requests per second (retries included).
    pub requests_per_second: Option<NonZeroU32>,
    /// Time one user may spend on transient failures before the push ends as unreachable.
    /// A request already started may run up to `request_timeout` past it.
    pub retry_budget: Duration,
    /// First back-off delay (doubled each retry, with jitter).
    pub min_backoff: Duration,
    /// Longest back-off delay between two attempts (a `Retry-After` may be longer, up to 60 s).
    pub max_backoff: Duration,
}

impl ClientConfig {
    /// Settings with defaults: 10 s connect, 30 s per request, 8 in flight, no rps ceiling,
    /// 20 s retry budget, back-off from 250 ms to 5 s.
    pub fn new(base_url: impl Into<String>, token: SecretString) -> Self {
        Self {
            base_url: base_url.into(),
            token,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            concurrency: 8,
            requests_per_second: None,
            retry_budget: Duration::from_secs(20),
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("token", &format_args!("[REDACTED]"))
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("concurrency", &self.concurrency)
            .field("requests_per_second", &self.requests_per_second)
            .field("retry_budget", &self.retry_budget)
            .field("min_backoff", &self.min_backoff)
            .field("max_backoff", &self.max_backoff)
            .finish()
    }
}

/// Settings of the shared [`crate::HttpTransport`]: what every tenant's client has in common.
///
/// Build with [`TransportConfig::default`], then adjust fields. The per-tenant settings (URL,
/// token, request timeout, limits, retry budget) stay in [`ClientConfig`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TransportConfig {
    /// Time allowed to open a connection (TCP and TLS handshake).
    pub connect_timeout: Duration,
    /// Idle connections kept per host, for all tenants together. Most tenants talk to the same
    /// host, so this is the pool that they share: make it at least the number of requests
    /// expected in flight at once across all tenants.
    pub pool_max_idle_per_host: usize,
    /// How long an idle connection is kept for reuse.
    pub pool_idle_timeout: Duration,
    /// TCP keep-alive probes on open connections.
    pub tcp_keepalive: Duration,
    /// The `User-Agent` header of every request, e.g. `opscom-sync/2.1`; by default
    /// [`DEFAULT_USER_AGENT`]. Must be a valid header value (visible ASCII and spaces).
    pub user_agent: String,
    /// Told the duration of every HTTP request made through the transport (each attempt,
    /// retries included), for metrics; `None`: nothing is told.
    pub observer: Option<Arc<dyn RequestObserver>>,
}

/// Told how long each HTTP request to the API took: from sending it to the end of its answer
/// (or the transport error). Called on the request's task, once per attempt, so it must be
/// cheap and must not block: an atomic update or a histogram's observation.
///
/// A hook for the caller's metrics, so that this crate depends on no metrics library.
pub trait RequestObserver: Send + Sync + fmt::Debug {
    /// One request finished (answered, refused or failed) after `duration`.
    fn request_finished(&self, duration: Duration);
}

impl Default for TransportConfig {
    /// 10 s connect, 512 idle connections per host kept 90 s, TCP keep-alive every 60 s, the
    /// [`DEFAULT_USER_AGENT`], no observer.
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            pool_max_idle_per_host: 512,
            pool_idle_timeout: Duration::from_secs(90),
            tcp_keepalive: Duration::from_secs(60),
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            observer: None,
        }
    }
}

/// Why a client could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The base URL does not parse.
    #[error("the OPSCOM base URL {url:?} is not a valid URL: {reason}")]
    InvalidBaseUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The base URL is not `http` or `https`.
    #[error(
        "the OPSCOM base URL {url:?} must start with https:// (or http:// for a local sandbox)"
    )]
    UnsupportedScheme {
        /// The URL as configured.
        url: String,
    },
    /// `concurrency` is 0.
    #[error("the API concurrency must be at least 1")]
    ZeroConcurrency,
    /// [`TransportConfig::user_agent`] is not a valid HTTP header value.
    #[error(
        "the user agent {user_agent:?} is not a valid HTTP header value (visible ASCII and spaces only)"
    )]
    InvalidUserAgent {
        /// The user agent as configured.
        user_agent: String,
    },
    /// The HTTP client could not be set up (TLS roots, resolver).
    #[error("cannot set up the HTTP client: {0}")]
    Http(#[source] reqwest::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let config = ClientConfig::new("http://x", SecretString::from("super-secret-token"));
        let debug = format!("{config:?}");
        assert!(!debug.contains("super-secret-token"), "{debug}");
        assert!(debug.contains("[REDACTED]"), "{debug}");
    }

    #[test]
    fn the_default_user_agent_is_the_importers() {
        assert_eq!(
            TransportConfig::default().user_agent,
            format!("opscom-import/{}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(TransportConfig::default().user_agent, DEFAULT_USER_AGENT);
    }
}
