//! The metrics listener of `run` (axum): `GET /metrics` and `GET /healthz`, nothing else.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::task::JoinHandle;

use super::{CONTENT_TYPE, Metrics};
use crate::config::Problem;

/// The running listener; serving stops when it is dropped.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Binds `listen` and serves `metrics` on it from a task of the current runtime. A port in
    /// use or an address that cannot be bound is a problem of `metrics.listen`.
    pub async fn start(listen: SocketAddr, metrics: Metrics) -> Result<MetricsServer, Problem> {
        let problem = |e: std::io::Error| Problem {
            key: "metrics.listen".into(),
            reason: format!("cannot listen on {listen}: {e}"),
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(problem)?;
        let addr = listener.local_addr().map_err(problem)?;
        let app = Router::new()
            .route("/metrics", get(scrape))
            .route("/healthz", get(healthz))
            .with_state(metrics);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
        tracing::info!(listen = %addr, "serving /metrics and /healthz");
        Ok(MetricsServer { addr, task })
    }

    /// The address it listens on (the port chosen when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Encodes from the registry only: no lock of the import path is taken.
async fn scrape(State(metrics): State<Metrics>) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.encode()).into_response()
}

async fn healthz(State(metrics): State<Metrics>) -> Response {
    match metrics.health() {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response(),
    }
}
