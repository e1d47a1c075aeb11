//! The metrics listener of `run` (axum): `GET /metrics` and `GET /healthz`, nothing else.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::oneshot;

use super::{CONTENT_TYPE, Metrics};
use crate::config::Problem;

/// The running listener; serving stops when it is dropped.
///
/// It runs on a thread of its own at the lowest CPU priority (nice 19), with a runtime of its
/// own: a scraper, however eager, only gets the CPU that imports leave over.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl MetricsServer {
    /// Binds `listen` and serves `metrics` on it. A port in use or an address that cannot be
    /// bound is a problem of `metrics.listen`.
    pub async fn start(listen: SocketAddr, metrics: Metrics) -> Result<MetricsServer, Problem> {
        let problem = |e: std::io::Error| Problem {
            key: "metrics.listen".into(),
            reason: format!("cannot listen on {listen}: {e}"),
        };
        let listener = std::net::TcpListener::bind(listen).map_err(problem)?;
        listener.set_nonblocking(true).map_err(problem)?;
        let addr = listener.local_addr().map_err(problem)?;
        let app = Router::new()
            .route("/metrics", get(scrape))
            .route("/healthz", get(healthz))
            .with_state(metrics);
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || serve(listener, app, stopped))
            .map_err(problem)?;
        tracing::info!(listen = %addr, "serving /metrics and /healthz");
        Ok(MetricsServer {
            addr,
            stop: Some(stop),
        })
    }

    /// The address it listens on (the port chosen when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The listener's thread: lowest priority, a runtime of its own, until `stopped`.
fn serve(listener: std::net::TcpListener, app: Router, stopped: oneshot::Receiver<()>) {
    // On Linux a thread's nice value is its own: this one yields to every import.
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19) {
        tracing::debug!(error = %e, "cannot lower the metrics listener's priority");
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "the metrics listener cannot start");
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "the metrics listener cannot start");
                return;
            }
        };
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
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
