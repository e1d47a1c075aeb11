//! The reqwest implementation of [`PushApi`]: one shared pool, bounded concurrency and answers,
//! retries in a budget.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Client, Url};
use secrecy::ExposeSecret;
use serde::ser::{Serialize, SerializeMap, Serializer};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::PushApi;
use crate::classify::{
    Answer, MAX_ANSWER_BYTES, PARSE_ERROR_CODE, classify, classify_oversized, parse_retry_after,
};
use crate::config::{BuildError, ClientConfig, PUSH_PATH, TransportConfig};
use crate::model::{PushOutcome, TransientCause, UnreachableError, UserRecord};

/// One HTTP connection pool and one TLS configuration, shared by any number of tenants' clients.
///
/// Building it sets up rustls and its certificate verifier (`rustls-platform-verifier`: the
/// system's root certificates) once; cloning it is a reference count. Give the same transport to every [`HttpPushClient::with_transport`]: the
/// tenants then share the certificate store and the open connections to the API's host (with
/// HTTP/2, their requests are multiplexed on the same connections).
///
/// Common to all its clients: rustls with the platform verifier, no redirects (a redirect would
/// resend the token in the body elsewhere: a 3xx is an answer), `Accept: application/json`,
/// `Cache-Control: no-cache`, `TCP_NODELAY`, and the user agent (by default
/// `opscom-import/<version>`), TCP keep-alive and connect timeout of its [`TransportConfig`].
#[derive(Clone)]
pub struct HttpTransport {
    http: Client,
    config: TransportConfig,
}

impl fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTransport")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HttpTransport {
    /// Builds the shared client: TLS roots, pool, default headers.
    pub fn new(config: TransportConfig) -> Result<Self, BuildError> {
        let user_agent = HeaderValue::from_str(&config.user_agent).map_err(|_| {
            BuildError::InvalidUserAgent {
                user_agent: config.user_agent.clone(),
            }
        })?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        let http = Client::builder()
            .default_headers(headers)
            .user_agent(user_agent)
            .connect_timeout(config.connect_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .pool_idle_timeout(config.pool_idle_timeout)
            .tcp_keepalive(config.tcp_keepalive)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(BuildError::Http)?;
        Ok(Self { http, config })
    }

    /// The settings it was built with.
    pub fn config(&self) -> &TransportConfig {
        &self.config
    }
}

/// The OPSCOM Push API over HTTPS, for one tenant. Cheap to clone (clones share the limits).
///
/// The concurrency bound is inside: callers may drive any number of `push_user` futures at
/// once; at most `concurrency` users are in flight, the rest wait for a slot.
///
/// Built with [`HttpPushClient::with_transport`], it costs a few hundred bytes (URL, token,
/// semaphore, rate limiter) on top of a shared [`HttpTransport`]; [`HttpPushClient::new`] builds
/// a private transport (its own TLS roots and pool), which suits one tenant, not thousands.
#[derive(Clone)]
pub struct HttpPushClient {
    inner: Arc<Inner>,
}

struct Inner {
    transport: HttpTransport,
    push_url: Url,
    slots: Semaphore,
    limiter: Option<DefaultDirectRateLimiter>,
    /// Holds the token (redacted in `Debug`).
    config: ClientConfig,
}

impl fmt::Debug for HttpPushClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpPushClient")
            .field("push_url", &self.inner.push_url.as_str())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl HttpPushClient {
    /// Builds the client with a private [`HttpTransport`] (its own TLS roots and connection
    /// pool, sized to `concurrency`, with `config.connect_timeout`).
    ///
    /// For many tenants, build one [`HttpTransport`] and use [`HttpPushClient::with_transport`].
    pub fn new(config: ClientConfig) -> Result<Self, BuildError> {
        let push_url = checked_push_url(&config)?;
        let transport = HttpTransport::new(TransportConfig {
            connect_timeout: config.connect_timeout,
            pool_max_idle_per_host: config.concurrency,
            ..TransportConfig::default()
        })?;
        Ok(Self::from_parts(transport, push_url, config))
    }

    /// Builds one tenant's client on a shared transport: its own push URL, token, concurrency,
    /// rate limit, retry budget and back-off, and request timeout (applied to each request);
    /// the connections, TLS configuration and connect timeout are the transport's
    /// (`config.connect_timeout` is not used).
    pub fn with_transport(
        transport: &HttpTransport,
        config: ClientConfig,
    ) -> Result<Self, BuildError> {
        let push_url = checked_push_url(&config)?;
        Ok(Self::from_parts(transport.clone(), push_url, config))
    }

    fn from_parts(transport: HttpTransport, push_url: Url, config: ClientConfig) -> Self {
        let limiter = config
            .requests_per_second
            .map(|rps| RateLimiter::direct(Quota::per_second(rps)));
        Self {
            inner: Arc::new(Inner {
                transport,
                push_url,
                slots: Semaphore::new(config.concurrency),
                limiter,
                config,
            }),
        }
    }

    /// The full URL of the push endpoint.
    pub fn push_url(&self) -> &str {
        self.inner.push_url.as_str()
    }

    /// One request, timed for the transport's observer, if it has one.
    async fn attempt(&self, body: &Bytes) -> Answer {
        let Some(observer) = &self.inner.transport.config.observer else {
            return self.request(body).await;
        };
        let started = Instant::now();
        let answer = self.request(body).await;
        observer.request_finished(started.elapsed());
        answer
    }

    /// One request. `body` is shared (a reference count), not copied, across attempts.
    async fn request(&self, body: &Bytes) -> Answer {
        let inner = &self.inner;
        let sent = inner
            .transport
            .http
            .post(inner.push_url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .timeout(inner.config.request_timeout)
            .body(body.clone())
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => return Answer::Transient(transport_cause(error)),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        match read_bounded(response, MAX_ANSWER_BYTES).await {
            Ok(bytes) => classify(status, retry_after, &bytes),
            Err(BodyError::TooLarge { content_length }) => {
                classify_oversized(status, retry_after, content_length)
            }
            Err(BodyError::Transport(error)) => Answer::Transient(transport_cause(error)),
        }
    }
}

/// Why an answer's body was not read.
#[derive(Debug)]
enum BodyError {
    /// Over the cap: announced by `Content-Length` (not read at all), or found while reading.
    TooLarge { content_length: Option<u64> },
    /// The connection failed or timed out while reading.
    Transport(reqwest::Error),
}

/// Reads the body chunk by chunk, at most `cap` bytes. Refuses a `Content-Length` over the cap
/// before reading, and stops at the first chunk past the cap; the response is then dropped,
/// which closes its connection (it does not go back to the pool half-read).
async fn read_bounded(mut response: reqwest::Response, cap: usize) -> Result<Bytes, BodyError> {
    let declared = response.content_length();
    if declared.is_some_and(|n| n > cap as u64) {
        return Err(BodyError::TooLarge {
            content_length: declared,
        });
    }
    const TOO_LARGE: BodyError = BodyError::TooLarge {
        content_length: None,
    };
    // The usual answer is one chunk: kept as is, without a copy.
    let Some(first) = next_chunk(&mut response).await? else {
        return Ok(Bytes::new());
    };
    if first.len() > cap {
        return Err(TOO_LARGE);
    }
    let Some(second) = next_chunk(&mut response).await? else {
        return Ok(first);
    };
    let capacity = declared.map_or(first.len() + second.len(), |n| n as usize);
    let mut body = Vec::with_capacity(capacity.min(cap));
    let mut chunk = Some(second);
    body.extend_from_slice(&first);
    while let Some(piece) = chunk {
        if piece.len() > cap - body.len() {
            return Err(TOO_LARGE);
        }
        body.extend_from_slice(&piece);
        chunk = next_chunk(&mut response).await?;
    }
    Ok(Bytes::from(body))
}

async fn next_chunk(response: &mut reqwest::Response) -> Result<Option<Bytes>, BodyError> {
    response.chunk().await.map_err(BodyError::Transport)
}

/// Validates what a client needs before anything is built: a slot, and a usable URL.
fn checked_push_url(config: &ClientConfig) -> Result<Url, BuildError> {
    if config.concurrency == 0 {
        return Err(BuildError::ZeroConcurrency);
    }
    push_url(&config.base_url)
}

fn push_url(base_url: &str) -> Result<Url, BuildError> {
    let trimmed = base_url.trim().trim_end_matches('/');
    let url =
        Url::parse(&format!("{trimmed}{PUSH_PATH}")).map_err(|e| BuildError::InvalidBaseUrl {
            url: base_url.to_owned(),
            reason: e.to_string(),
        })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(BuildError::UnsupportedScheme {
            url: base_url.to_owned(),
        });
    }
    Ok(url)
}

fn transport_cause(error: reqwest::Error) -> TransientCause {
    if error.is_timeout() {
        return TransientCause::Timeout;
    }
    let is_connect = error.is_connect();
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if is_connect {
        TransientCause::Connect(text)
    } else {
        TransientCause::Transport(text)
    }
}

/// An upper estimate of the JSON body's length, so that encoding it allocates once.
fn body_capacity(user: &UserRecord, token: &str) -> usize {
    // `{}`, and per field `"key":"value",` (6 bytes of punctuation) plus a little for escapes.
    let fields: usize = user
        .attributes
        .iter()
        .map(|(key, value)| key.len() + value.len() + 8)
        .sum();
    2 + fields + "unique_id".len() + user.unique_id.len() + 8 + "apiToken".len() + token.len() + 8
}

/// The JSON body: the attributes as a flat object of strings, `unique_id` if the attributes lack
/// it, and `apiToken`.
struct PushBody<'a> {
    user: &'a UserRecord,
    token: &'a str,
}

impl Serialize for PushBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let attributes = &self.user.attributes;
        let has_unique_id = attributes.iter().any(|(key, _)| key == "unique_id");
        let mut map = serializer.serialize_map(Some(attributes.len() + 2))?;
        if !has_unique_id {
            map.serialize_entry("unique_id", &self.user.unique_id)?;
        }
        for (key, value) in attributes.iter().filter(|(key, _)| key != "apiToken") {
            map.serialize_entry(key, value)?;
        }
        map.serialize_entry("apiToken", self.token)?;
        map.end()
    }
}

#[async_trait]
impl PushApi for HttpPushClient {
    async fn push_user(&self, user: &UserRecord) -> PushOutcome {
        let inner = &self.inner;
        let token = inner.config.token.expose_secret();
        let mut body = Vec::with_capacity(body_capacity(user, token));
        let body = match serde_json::to_writer(&mut body, &PushBody { user, token }) {
            Ok(()) => Bytes::from(body),
            // Strings always serialize; kept as data rather than a panic.
            Err(error) => {
                return PushOutcome::RowRejected(crate::ApiError {
                    code: None,
                    message: format!("the user could not be encoded as JSON: {error}"),
                    http_status: 0,
                });
            }
        };
        // The semaphore is never closed; `Err` cannot happen, but is not a reason to panic.
        let _slot = inner.slots.acquire().await.ok();
        let started = Instant::now();
        // Built on the first transient failure only: most users never need it.
        let mut backoff: Option<ExponentialBackoff> = None;
        let mut attempts: u32 = 0;
        loop {
            if let Some(limiter) = &inner.limiter {
                limiter.until_ready().await;
            }
            attempts += 1;
            let cause = match self.attempt(&body).await {
                Answer::Accepted { status_success } => {
                    if !status_success {
                        tracing::warn!(
                            line = user.line,
                            unique_id = %user.unique_id,
                            "the OPSCOM API accepted a user without \"status\":\"success\""
                        );
                    }
                    return PushOutcome::Accepted;
                }
                Answer::RowRejected(error) => {
                    if error.code == Some(PARSE_ERROR_CODE) {
                        tracing::error!(
                            line = user.line,
                            unique_id = %user.unique_id,
                            code = PARSE_ERROR_CODE,
                            "the OPSCOM API could not parse our request: this is a bug in the importer"
                        );
                    } else {
                        tracing::debug!(
                            line = user.line,
                            unique_id = %user.unique_id,
                            code = error.code,
                            http_status = error.http_status,
                            "the OPSCOM API refused a user"
                        );
                    }
                    return PushOutcome::RowRejected(error);
                }
                Answer::TokenRejected(error) => {
                    tracing::error!(
                        line = user.line,
                        unique_id = %user.unique_id,
                        code = error.code,
                        http_status = error.http_status,
                        "the OPSCOM API refused the token"
                    );
                    return PushOutcome::TokenRejected(error);
                }
                Answer::Transient(cause) => cause,
            };
            let delay = match &cause {
                TransientCause::Status {
                    retry_after: Some(after),
                    ..
                } => *after,
                _ => backoff
                    .get_or_insert_with(|| {
                        ExponentialBuilder::new()
                            .with_min_delay(inner.config.min_backoff)
                            .with_max_delay(inner.config.max_backoff)
                            .with_jitter()
                            .without_max_times()
                            .build()
                    })
                    .next()
                    .unwrap_or(inner.config.max_backoff)
                    .min(inner.config.max_backoff),
            };
            let elapsed = started.elapsed();
            // The server's own Retry-After (already capped) is honoured while the budget lasts,
            // even when the wait ends past it; a back-off of ours must fit in the budget.
            let out_of_budget = match &cause {
                TransientCause::Status {
                    retry_after: Some(_),
                    ..
                } => elapsed >= inner.config.retry_budget,
                _ => elapsed + delay > inner.config.retry_budget,
            };
            if out_of_budget {
                tracing::warn!(
                    line = user.line,
                    unique_id = %user.unique_id,
                    attempts,
                    elapsed_ms = elapsed.as_millis() as u64,
                    cause = %cause,
                    "the OPSCOM API stayed unreachable for the whole retry budget"
                );
                return PushOutcome::Unreachable(UnreachableError {
                    last_cause: cause,
                    attempts,
                    elapsed,
                });
            }
            tracing::debug!(
                line = user.line,
                unique_id = %user.unique_id,
                attempt = attempts,
                delay_ms = delay.as_millis() as u64,
                cause = %cause,
                "transient failure, retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_slash_on_the_base_url_is_harmless() {
        for base in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            " http://127.0.0.1:8080// ",
        ] {
            assert_eq!(
                push_url(base).map(|u| u.to_string()).ok().as_deref(),
                Some("http://127.0.0.1:8080/api/OC_TOMA/v1/profiles/push"),
                "{base}"
            );
        }
        assert_eq!(
            push_url("https://host/prefix/")
                .map(|u| u.to_string())
                .ok()
                .as_deref(),
            Some("https://host/prefix/api/OC_TOMA/v1/profiles/push")
        );
    }

    #[test]
    fn bad_base_urls_are_refused() {
        assert!(matches!(
            push_url("not a url"),
            Err(BuildError::InvalidBaseUrl { .. })
        ));
        assert!(matches!(
            push_url("ftp://host"),
            Err(BuildError::UnsupportedScheme { .. })
        ));
    }

    #[test]
    fn body_is_a_flat_object_of_strings_with_the_token() {
        let user = UserRecord {
            line: 2,
            unique_id: "u1".into(),
            attributes: vec![
                ("login_source".into(), "OPSCOM".into()),
                ("user_type_id".into(), "6".into()),
            ],
        };
        let body = serde_json::to_value(PushBody {
            user: &user,
            token: "tok",
        })
        .ok();
        assert_eq!(
            body,
            Some(serde_json::json!({
                "unique_id": "u1", "login_source": "OPSCOM", "user_type_id": "6", "apiToken": "tok"
            }))
        );
        let with_id = UserRecord {
            attributes: vec![("unique_id".into(), "u1".into())],
            ..user
        };
        let text = serde_json::to_string(&PushBody {
            user: &with_id,
            token: "tok",
        })
        .unwrap_or_default();
        assert_eq!(text.matches("unique_id").count(), 1, "{text}");
    }
}
