//! The sandbox's settings, built with chained methods: tokens, login sources, user types, faults.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The token accepted when none is configured (50 characters, like a real one). Not a secret.
pub const DEFAULT_TOKEN: &str = "sandbox-0000-token-for-local-tests-and-the-demo-00";

/// The HTTP status sent with an `ErrorCode` body (the real API's choice is not documented).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ErrorStatus {
    /// `200 OK` with the `ErrorCode` body (the harder case for a client).
    #[default]
    #[serde(rename = "200")]
    Ok200,
    /// `400 Bad Request` with the `ErrorCode` body.
    #[serde(rename = "400")]
    BadRequest400,
}

impl ErrorStatus {
    /// The status code.
    pub fn code(self) -> u16 {
        match self {
            ErrorStatus::Ok200 => 200,
            ErrorStatus::BadRequest400 => 400,
        }
    }
}

/// A user type, as listed by `profiles/types/list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserType {
    /// The numeric id sent as `user_type_id`.
    pub id: u32,
    /// Its name on the site.
    pub name: String,
}

/// Settings of a sandbox. Start from [`SandboxConfig::default`] and chain the setters.
#[derive(Clone)]
pub struct SandboxConfig {
    pub(crate) tokens: Vec<String>,
    pub(crate) pull_only_tokens: Vec<String>,
    pub(crate) login_sources: Vec<String>,
    pub(crate) user_types: Vec<UserType>,
    pub(crate) latency: Duration,
    pub(crate) fail_rate: f64,
    pub(crate) rate_limit: Option<u32>,
    pub(crate) retry_after_secs: u32,
    pub(crate) error_status: ErrorStatus,
    pub(crate) require_names_on_create: bool,
    pub(crate) request_log_limit: usize,
}

impl Default for SandboxConfig {
    /// Accepts [`DEFAULT_TOKEN`] and login source `OPSCOM`; user types 1 Staff, 2 Student,
    /// 6 Visitor; no latency, no faults; error bodies with HTTP 200.
    fn default() -> Self {
        Self {
            tokens: vec![DEFAULT_TOKEN.to_owned()],
            pull_only_tokens: Vec::new(),
            login_sources: vec!["OPSCOM".to_owned()],
            user_types: vec![
                UserType {
                    id: 1,
                    name: "Staff".into(),
                },
                UserType {
                    id: 2,
                    name: "Student".into(),
                },
                UserType {
                    id: 6,
                    name: "Visitor".into(),
                },
            ],
            latency: Duration::ZERO,
            fail_rate: 0.0,
            rate_limit: None,
            retry_after_secs: 1,
            error_status: ErrorStatus::Ok200,
            require_names_on_create: false,
            request_log_limit: 100_000,
        }
    }
}

impl SandboxConfig {
    /// Replaces the accepted tokens (push and pull permission).
    pub fn tokens<I, S>(mut self, tokens: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tokens = tokens.into_iter().map(Into::into).collect();
        self
    }

    /// Adds tokens that are known but lack the push permission (push answers 9002).
    pub fn pull_only_tokens<I, S>(mut self, tokens: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.pull_only_tokens = tokens.into_iter().map(Into::into).collect();
        self
    }

    /// Replaces the login-source codes configured on the site (exact match; 9015 otherwise).
    pub fn login_sources<I, S>(mut self, sources: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.login_sources = sources.into_iter().map(Into::into).collect();
        self
    }

    /// Replaces the user types (a `user_type_id` not among them answers 9033).
    pub fn user_types(mut self, types: impl IntoIterator<Item = UserType>) -> Self {
        self.user_types = types.into_iter().collect();
        self
    }

    /// Delays every API answer by this much.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Answers this share of API requests (0.0 to 1.0) with a 503.
    pub fn fail_rate(mut self, share: f64) -> Self {
        self.fail_rate = share.clamp(0.0, 1.0);
        self
    }

    /// Answers 429 with `Retry-After: retry_after_secs` past `requests_per_second`.
    pub fn rate_limit(mut self, requests_per_second: u32, retry_after_secs: u32) -> Self {
        self.rate_limit = Some(requests_per_second);
        self.retry_after_secs = retry_after_secs;
        self
    }

    /// The HTTP status sent with `ErrorCode` bodies.
    pub fn error_status(mut self, status: ErrorStatus) -> Self {
        self.error_status = status;
        self
    }

    /// When set, creating a user needs `email` (9016), `first_name` (9017) and `last_name` (9018).
    pub fn require_names_on_create(mut self, required: bool) -> Self {
        self.require_names_on_create = required;
        self
    }

    /// How many received requests the read-only view keeps (the oldest are dropped).
    pub fn request_log_limit(mut self, limit: usize) -> Self {
        self.request_log_limit = limit;
        self
    }
}

impl fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("tokens", &format_args!("[{} REDACTED]", self.tokens.len()))
            .field(
                "pull_only_tokens",
                &format_args!("[{} REDACTED]", self.pull_only_tokens.len()),
            )
            .field("login_sources", &self.login_sources)
            .field("user_types", &self.user_types)
            .field("latency", &self.latency)
            .field("fail_rate", &self.fail_rate)
            .field("rate_limit", &self.rate_limit)
            .field("retry_after_secs", &self.retry_after_secs)
            .field("error_status", &self.error_status)
            .field("require_names_on_create", &self.require_names_on_create)
            .field("request_log_limit", &self.request_log_limit)
            .finish()
    }
}
