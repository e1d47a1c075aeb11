//! An OPSCOM Push API look-alike (axum) for the demo, tests and benchmarks.
//!
//! It speaks the contract of `docs/opscom-push-api.md`: `POST /api/OC_TOMA/v1/profiles/push`
//! (token check 9001/9002, required fields 9013/9014, login sources 9015, limits 9030/9033 from the
//! `opscom-schema` table, their message naming the field as the request did and, for 9030, its
//! limit — `Field is longer than its maximum length: city (50)`, inferred —, unique e-mail 9019 and user name 9020, upsert by `unique_id`) and
//! `POST /api/OC_TOMA/v1/profiles/types/list`. Faults (latency, 503s, 429 past a rate, outage)
//! are set at start and changeable at run time. Read-only views for tests:
//!
//! | route | what |
//! |---|---|
//! | `GET /_sandbox/users` | stored users (JSON array of [`SandboxUser`]) |
//! | `GET /_sandbox/requests` | received API requests, without tokens ([`RecordedRequest`]) |
//! | `GET /_sandbox/faults`, `POST /_sandbox/faults` | the faults in force; POST a partial [`FaultsUpdate`], e.g. `{"outage": true}` |
//! | `POST /_sandbox/reset` | forget users and requests |
//!
//! In-process use binds `127.0.0.1:0`:
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let sandbox = opscom_sandbox::spawn(opscom_sandbox::SandboxConfig::default()).await?;
//! println!("{}", sandbox.base_url());
//! sandbox.shutdown().await
//! # }
//! ```

#![warn(missing_docs)]

mod config;
mod http;
mod store;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::{DEFAULT_TOKEN, ErrorStatus, SandboxConfig, UserType};
pub use http::{Faults, FaultsUpdate, PUSH_PATH, TYPES_LIST_PATH};
pub use store::{
    Endpoint, RecordedRequest, RequestOutcome, SandboxUser, TokenCheck, error_message,
};

use http::Shared;

/// Serves the sandbox on `listener` until `shutdown` completes (then finishes open requests).
pub async fn serve(
    config: SandboxConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_shared(Arc::new(Shared::new(config)), listener, shutdown).await
}

async fn serve_shared(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(listener, http::router(shared))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Starts a sandbox on `127.0.0.1` with a free port, in the current tokio runtime.
pub async fn spawn(config: SandboxConfig) -> io::Result<RunningSandbox> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared::new(config));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_shared(shared.clone(), listener, async move {
        // A dropped sender also stops the server.
        let _ = stopped.await;
    }));
    Ok(RunningSandbox {
        addr,
        shared,
        stop: Some(stop),
        task: Some(task),
    })
}

/// A sandbox running in-process; stopped by [`RunningSandbox::shutdown`] or when dropped.
#[derive(Debug)]
pub struct RunningSandbox {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl RunningSandbox {
    /// `http://127.0.0.1:PORT`, the base URL to give a client.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The stored users, in creation order.
    pub fn users(&self) -> Vec<SandboxUser> {
        self.shared.users()
    }

    /// The received API requests (without tokens), in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// Makes the API answer 503 to everything (`true`) or recover (`false`).
    pub fn set_outage(&self, outage: bool) {
        self.set_faults(FaultsUpdate {
            outage: Some(outage),
            ..FaultsUpdate::default()
        });
    }

    /// Changes the faults in force; returns them.
    pub fn set_faults(&self, update: FaultsUpdate) -> Faults {
        self.shared.update_faults(update)
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.shared.faults()
    }

    /// Forgets users and requests.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Stops accepting connections, finishes open requests, and waits for the server to end.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningSandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
