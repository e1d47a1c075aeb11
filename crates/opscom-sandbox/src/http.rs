//! The axum routes: the two API endpoints, fault injection, and the read-only views.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::config::SandboxConfig;
use crate::store::{Endpoint, RecordedRequest, Reply, RequestOutcome, SandboxUser, Store};

/// The path of the push endpoint.
pub const PUSH_PATH: &str = "/api/OC_TOMA/v1/profiles/push";
/// The path of the user-types endpoint.
pub const TYPES_LIST_PATH: &str = "/api/OC_TOMA/v1/profiles/types/list";

/// The faults in force, changeable at run time (`POST /_sandbox/faults`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// Every API request is answered 503.
    pub outage: bool,
    /// The share of API requests answered 503 (0.0 to 1.0).
    pub fail_rate: f64,
    /// The next this-many API requests are answered 503.
    pub fail_next: u32,
    /// Delay before every API answer, in milliseconds.
    pub latency_ms: u64,
    /// Requests per second past which the answer is 429 (0 = no limit).
    pub rate_limit: u32,
    /// The `Retry-After` sent with a 429, in seconds.
    pub retry_after_secs: u32,
}

/// A partial change of [`Faults`]: absent fields keep their value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsUpdate {
    /// See [`Faults::outage`].
    pub outage: Option<bool>,
    /// See [`Faults::fail_rate`].
    pub fail_rate: Option<f64>,
    /// See [`Faults::fail_next`].
    pub fail_next: Option<u32>,
    /// See [`Faults::latency_ms`].
    pub latency_ms: Option<u64>,
    /// See [`Faults::rate_limit`].
    pub rate_limit: Option<u32>,
    /// See [`Faults::retry_after_secs`].
    pub retry_after_secs: Option<u32>,
}

impl Faults {
    fn apply(&mut self, update: FaultsUpdate) {
        if let Some(v) = update.outage {
            self.outage = v;
        }
        if let Some(v) = update.fail_rate {
            self.fail_rate = v.clamp(0.0, 1.0);
        }
        if let Some(v) = update.fail_next {
            self.fail_next = v;
        }
        if let Some(v) = update.latency_ms {
            self.latency_ms = v;
        }
        if let Some(v) = update.rate_limit {
            self.rate_limit = v;
        }
        if let Some(v) = update.retry_after_secs {
            self.retry_after_secs = v;
        }
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    config: SandboxConfig,
    state: Mutex<SharedState>,
}

#[derive(Debug)]
struct SharedState {
    store: Store,
    faults: Faults,
    window_start: Instant,
    window_count: u32,
}

enum Gate {
    Pass,
    Unavailable,
    Throttled(u32),
}

impl Shared {
    pub fn new(config: SandboxConfig) -> Self {
        let faults = Faults {
            outage: false,
            fail_rate: config.fail_rate,
            fail_next: 0,
            latency_ms: u64::try_from(config.latency.as_millis()).unwrap_or(u64::MAX),
            rate_limit: config.rate_limit.unwrap_or(0),
            retry_after_secs: config.retry_after_secs,
        };
        Self {
            config,
            state: Mutex::new(SharedState {
                store: Store::default(),
                faults,
                window_start: Instant::now(),
                window_count: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SharedState> {
        // A panic while holding the lock cannot leave the store half-written in a way that
        // matters to a test double; keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn users(&self) -> Vec<SandboxUser> {
        self.lock().store.users()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().store.requests()
    }

    pub fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    pub fn update_faults(&self, update: FaultsUpdate) -> Faults {
        let mut state = self.lock();
        state.faults.apply(update);
        state.faults.clone()
    }

    pub fn reset(&self) {
        self.lock().store.reset();
    }

    /// Decides, on arrival, whether a request gets through, and how long to delay the answer.
    fn gate(&self, endpoint: Endpoint) -> (Gate, Duration) {
        let mut state = self.lock();
        let state = &mut *state;
        let latency = Duration::from_millis(state.faults.latency_ms);
        let now = Instant::now();
        if state.faults.rate_limit > 0 {
            if now.duration_since(state.window_start) >= Duration::from_secs(1) {
                state.window_start = now;
                state.window_count = 0;
            }
            state.window_count += 1;
            if state.window_count > state.faults.rate_limit {
                state
                    .store
                    .record_fault(&self.config, endpoint, 429, RequestOutcome::Throttled);
                return (Gate::Throttled(state.faults.retry_after_secs), latency);
            }
        }
        let unavailable = if state.faults.outage {
            true
        } else if state.faults.fail_next > 0 {
            state.faults.fail_next -= 1;
            true
        } else {
            state.faults.fail_rate > 0.0 && rand::random::<f64>() < state.faults.fail_rate
        };
        if unavailable {
            state
                .store
                .record_fault(&self.config, endpoint, 503, RequestOutcome::Unavailable);
            return (Gate::Unavailable, latency);
        }
        (Gate::Pass, latency)
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(PUSH_PATH, post(push))
        .route(TYPES_LIST_PATH, post(types_list))
        .route("/_sandbox/users", get(users))
        .route("/_sandbox/requests", get(requests))
        .route("/_sandbox/faults", get(faults).post(set_faults))
        .route("/_sandbox/reset", post(reset))
        .with_state(shared)
}

async fn push(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    api_call(&shared, Endpoint::Push, &body).await
}

async fn types_list(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    api_call(&shared, Endpoint::TypesList, &body).await
}

async fn api_call(shared: &Shared, endpoint: Endpoint, body: &[u8]) -> Response {
    let (gate, latency) = shared.gate(endpoint);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match gate {
        Gate::Unavailable => {
            (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response()
        }
        Gate::Throttled(retry_after) => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after.to_string())],
            Json(serde_json::json!({"message": "Too Many Requests"})),
        )
            .into_response(),
        Gate::Pass => {
            let reply = {
                let mut state = shared.lock();
                match endpoint {
                    Endpoint::Push => state.store.push(&shared.config, body),
                    Endpoint::TypesList => state.store.types_list(&shared.config, body),
                }
            };
            reply_response(reply)
        }
    }
}

fn reply_response(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    (status, Json(reply.body)).into_response()
}

async fn users(State(shared): State<Arc<Shared>>) -> Json<Vec<SandboxUser>> {
    Json(shared.users())
}

async fn requests(State(shared): State<Arc<Shared>>) -> Json<Vec<RecordedRequest>> {
    Json(shared.requests())
}

async fn faults(State(shared): State<Arc<Shared>>) -> Json<Faults> {
    Json(shared.faults())
}

async fn set_faults(
    State(shared): State<Arc<Shared>>,
    Json(update): Json<FaultsUpdate>,
) -> Json<Faults> {
    Json(shared.update_faults(update))
}

async fn reset(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.reset();
    StatusCode::NO_CONTENT
}
