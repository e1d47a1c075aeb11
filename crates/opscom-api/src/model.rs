//! What goes to the API (one user) and what comes back (exactly one outcome per user).

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// The name of an API attribute in a [`UserRecord`]: borrowed from a static table (the importer's
/// path, no allocation) or owned (a key built at run time by another tool).
pub type AttributeKey = Cow<'static, str>;

/// One user, ready to push: a CSV line already mapped to API attribute names and validated.
///
/// Built field by field, or with [`UserRecord::new`] and [`UserRecord::with`]:
///
/// ```
/// use opscom_api::UserRecord;
///
/// let key = String::from("email"); // a key known only at run time
/// let user = UserRecord::new(2, "u1")
///     .with("login_source", "OPSCOM")
///     .with(key, "ann@example.org");
/// assert_eq!(user.attribute("email"), Some("ann@example.org"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The 1-based line of the source file, for logs and the failure report.
    pub line: u64,
    /// The user's `unique_id` (the upsert key). Sent as `unique_id` unless `attributes` carries it too.
    pub unique_id: String,
    /// API attribute name → value; values are non-empty. Sent as a flat JSON object of strings.
    ///
    /// A key is a [`Cow`]: `Cow::Borrowed` for a `&'static str` (what the importer sends, taken
    /// from `opscom-schema`'s table), `Cow::Owned` for a `String`.
    pub attributes: Vec<(AttributeKey, String)>,
}

impl UserRecord {
    /// A user without attributes (the API needs at least `login_source`: add it with
    /// [`UserRecord::with`]).
    pub fn new(line: u64, unique_id: impl Into<String>) -> Self {
        UserRecord {
            line,
            unique_id: unique_id.into(),
            attributes: Vec::new(),
        }
    }

    /// Adds the attribute `key` = `value` (a `&'static str` key is not copied).
    pub fn with(mut self, key: impl Into<AttributeKey>, value: impl Into<String>) -> Self {
        self.attributes.push((key.into(), value.into()));
        self
    }

    /// The value of the first attribute named `key`, if any.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// How one push ended. Every answer of the API falls into exactly one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// The API stored (created or updated) the user.
    Accepted,
    /// The API refused this user (an `ErrorCode` body, whatever the HTTP status): report the row.
    RowRejected(ApiError),
    /// The API refused the token (9001/9002, HTTP 401/403): stop the tenant, blame no row.
    TokenRejected(ApiError),
    /// Transient failures lasted past the per-row retry budget: defer the file, blame no row.
    Unreachable(UnreachableError),
}

impl PushOutcome {
    /// A short stable name of the class, for logs and metrics.
    pub fn class(&self) -> &'static str {
        match self {
            PushOutcome::Accepted => "accepted",
            PushOutcome::RowRejected(_) => "row_rejected",
            PushOutcome::TokenRejected(_) => "token_rejected",
            PushOutcome::Unreachable(_) => "unreachable",
        }
    }
}

/// A refusal by the API, with its code and message as the API gave them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ApiError {
    /// The `ErrorCode` of the body; `None` when the refusal was only an HTTP status (e.g. 401).
    pub code: Option<i64>,
    /// The `ErrorMessage` of the body, or a description of the HTTP status.
    pub message: String,
    /// The HTTP status the refusal came with.
    pub http_status: u16,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the OPSCOM API refused this user: {:?}", self.message)?;
        match self.code {
            Some(code) => write!(f, " (error {code})"),
            None => write!(f, " (HTTP {})", self.http_status),
        }
    }
}

/// Why one attempt failed in a way worth retrying.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransientCause {
    /// An HTTP status that means "try again later" (429, 5xx, 408, or an unexpected 4xx).
    Status {
        /// The HTTP status.
        status: u16,
        /// The server's `Retry-After`, if it sent one (already capped).
        retry_after: Option<Duration>,
    },
    /// HTTP 404 without an `ErrorCode`: nothing answers at the push URL. Retried like an
    /// outage, but when it lasts the tenant's `api_url` is wrong (a configuration error).
    NotFound,
    /// A 2xx answer whose body is not JSON (a proxy page, an empty body).
    NotJson {
        /// The HTTP status.
        status: u16,
    },
    /// An answer larger than [`crate::classify::MAX_ANSWER_BYTES`] (refused by its
    /// `Content-Length`, or cut while reading): a broken answer, like a 2xx that is not JSON.
    AnswerTooLarge {
        /// The HTTP status.
        status: u16,
        /// The `Content-Length` the answer announced, when it announced one.
        content_length: Option<u64>,
    },
    /// No answer within the request timeout.
    Timeout,
    /// The connection could not be made (refused, DNS, TLS handshake, connect timeout).
    Connect(String),
    /// The connection broke while sending or receiving (reset, closed early).
    Transport(String),
}

impl fmt::Display for TransientCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransientCause::Status {
                status,
                retry_after: Some(after),
            } => write!(f, "HTTP {status} (Retry-After {} s)", after.as_secs()),
            TransientCause::Status { status, .. } => write!(f, "HTTP {status}"),
            TransientCause::NotFound => {
                f.write_str("HTTP 404 Not Found: no push API at this URL (check api_url)")
            }
            TransientCause::NotJson { status } => {
                write!(f, "HTTP {status} with a body that is not JSON")
            }
            TransientCause::AnswerTooLarge {
                status,
                content_length,
            } => {
                write!(
                    f,
                    "HTTP {status} with an answer over {} bytes",
                    crate::classify::MAX_ANSWER_BYTES
                )?;
                match content_length {
                    Some(length) => write!(f, " (Content-Length {length})"),
                    None => Ok(()),
                }
            }
            TransientCause::Timeout => f.write_str("no answer within the request timeout"),
            TransientCause::Connect(cause) => write!(f, "cannot connect: {cause}"),
            TransientCause::Transport(cause) => write!(f, "connection failed: {cause}"),
        }
    }
}

/// The API could not be reached within the retry budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the OPSCOM API is unreachable after {attempts} attempt(s) in {elapsed:?}: last failure: {last_cause}"
)]
pub struct UnreachableError {
    /// The failure of the last attempt.
    pub last_cause: TransientCause,
    /// How many requests were sent (or tried) for this user.
    pub attempts: u32,
    /// Time spent on this user, from the first attempt to giving up.
    pub elapsed: Duration,
}
