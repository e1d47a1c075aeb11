//! Recording doubles of the importer's outside world: [`RecordingApi`] (an
//! [`opscom_api::PushApi`]) and [`RecordingMailer`] (an [`opscom_mail::Mailer`]).
//!
//! They are the workspace's one way to stand in for the API and the mail server in a test that
//! runs the pipeline in process: each records what it was given and answers as its mode says,
//! and the mode can be changed while the test runs (an outage that ends, a mail server that
//! comes back). A test that needs the real protocol uses the sandbox API or [`crate::SmtpServer`]
//! instead.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use opscom_api::{ApiError, PushApi, PushOutcome, TransientCause, UnreachableError, UserRecord};
use opscom_mail::{MailError, Mailer, OutgoingMessage, ReportKind};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How a [`RecordingApi`] answers a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiMode {
    /// Every push is accepted, except a user whose `email` starts with `bad@`, which is
    /// refused as a row with error 9019 ("E-mail must be unique").
    Accept,
    /// Every push ends unreachable (connection refused), as when the API is down.
    Unreachable,
    /// Every push ends with the token refused (error 9002).
    TokenRefused,
    /// The first `n` pushes (counted since the double was made) answer as `Accept`; every later
    /// one never answers: a process about to be killed mid-file.
    HangAfter(usize),
    /// Pushes answer as `Accept` until `n` were started in all; later ones end unreachable with
    /// HTTP 429, as under rate limiting.
    UnreachableAfter(usize),
}

/// A [`PushApi`] that records every push it answers and answers as its [`ApiMode`] says.
///
/// Pushes refused for the token or for unreachability are not recorded (they never reached the
/// API); [`started`](Self::started) counts every push, answered or not.
#[derive(Debug)]
pub struct RecordingApi {
    mode: Mutex<ApiMode>,
    pushes: Mutex<Vec<UserRecord>>,
    started: AtomicUsize,
}

impl RecordingApi {
    /// A double answering as `mode`, shared (tests hand one `Arc` to the service and keep one).
    pub fn new(mode: ApiMode) -> Arc<Self> {
        Arc::new(RecordingApi {
            mode: Mutex::new(mode),
            pushes: Mutex::new(Vec::new()),
            started: AtomicUsize::new(0),
        })
    }

    /// Answers as `mode` from the next push on.
    pub fn set_mode(&self, mode: ApiMode) {
        *lock(&self.mode) = mode;
    }

    /// The users that reached the API (accepted or refused as a row), in the order pushed.
    pub fn pushes(&self) -> Vec<UserRecord> {
        lock(&self.pushes).clone()
    }

    /// The `unique_id` of every user that reached the API, in the order pushed.
    pub fn ids(&self) -> Vec<String> {
        lock(&self.pushes)
            .iter()
            .map(|u| u.unique_id.clone())
            .collect()
    }

    /// How many pushes were started, whatever their answer (or lack of one).
    pub fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl PushApi for RecordingApi {
    async fn push_user(&self, user: &UserRecord) -> PushOutcome {
        let n = self.started.fetch_add(1, Ordering::SeqCst);
        let mode = *lock(&self.mode);
        match mode {
            ApiMode::HangAfter(limit) if n >= limit => std::future::pending().await,
            ApiMode::UnreachableAfter(limit) if n >= limit => {
                return PushOutcome::Unreachable(UnreachableError {
                    last_cause: TransientCause::Status {
                        status: 429,
                        retry_after: None,
                    },
                    attempts: 3,
                    elapsed: Duration::from_millis(10),
                });
            }
            ApiMode::Unreachable => {
                return PushOutcome::Unreachable(UnreachableError {
                    last_cause: TransientCause::Connect("connection refused".into()),
                    attempts: 3,
                    elapsed: Duration::from_millis(10),
                });
            }
            ApiMode::TokenRefused => {
                return PushOutcome::TokenRejected(ApiError {
                    code: Some(9002),
                    message: "Token lacks permission".into(),
                    http_status: 200,
                });
            }
            _ => {}
        }
        lock(&self.pushes).push(user.clone());
        let email = user
            .attributes
            .iter()
            .find(|(k, _)| *k == "email")
            .map(|(_, v)| v.as_str());
        if email.is_some_and(|e| e.starts_with("bad@")) {
            return PushOutcome::RowRejected(ApiError {
                code: Some(9019),
                message: "E-mail must be unique".into(),
                http_status: 200,
            });
        }
        PushOutcome::Accepted
    }
}

/// A [`Mailer`] that records every message it accepts, or refuses every one (a transient
/// failure, as when the mail server is down) while [`set_down`](Self::set_down) says so.
#[derive(Debug, Default)]
pub struct RecordingMailer {
    down: AtomicBool,
    sent: Mutex<Vec<OutgoingMessage>>,
}

impl RecordingMailer {
    /// A mailer that is up, shared (tests hand one `Arc` to the service and keep one).
    pub fn new() -> Arc<Self> {
        Arc::new(RecordingMailer::default())
    }

    /// Refuses every message while `down` (a transient failure: the spool keeps them).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Every message accepted, in the order sent.
    pub fn sent(&self) -> Vec<OutgoingMessage> {
        lock(&self.sent).clone()
    }

    /// The subjects of the messages accepted since the last call, in the order sent; they are
    /// forgotten (for a test that looks at what each step sent).
    pub fn take_subjects(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.sent))
            .iter()
            .map(|m| m.subject().to_owned())
            .collect()
    }

    /// The kind of every message accepted, in the order sent.
    pub fn kinds(&self) -> Vec<ReportKind> {
        lock(&self.sent).iter().map(|m| m.meta().kind).collect()
    }
}

#[async_trait]
impl Mailer for RecordingMailer {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), MailError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(MailError::Transient {
                reason: "connection refused".into(),
            });
        }
        lock(&self.sent).push(message.clone());
        Ok(())
    }
}
