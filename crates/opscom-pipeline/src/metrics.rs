//! Metrics and health: what `run` serves on `[metrics] listen` as `GET /metrics` (Prometheus
//! text, encoded by `prometheus-client` from its registry) and `GET /healthz`.
//!
//! One [`Metrics`] per service (an `Arc`: cheap to clone) holds the registry and every metric
//! family. It always exists, with or without a listener: counting is a few atomic operations.
//! Each tenant's runner holds a [`TenantMetrics`] (its name, shared with the label sets, and the
//! count of its unsent reports): a few dozen bytes per tenant, and a series of a family is
//! created only when it is first used, so an idle tenant costs no series at all.
//!
//! Scraping never waits for an import: the handler encodes from the registry, whose families
//! are locked only for the moment a value is read or a new series added; nothing of the import
//! path (a tenant's lock, the service's state) is taken.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `opscom_import_files_total` | counter | `tenant`, `outcome`: as in `records.jsonl` (`imported`, `imported_with_failures`, `rejected`, `deferred`, `held`, `discarded`, `previewed`, `not_imported`) |
//! | `opscom_import_rows_total` | counter | `tenant`, `outcome`: `imported`, `failed`, `unchanged` (delta mode: not sent) |
//! | `opscom_import_api_request_duration_seconds` | histogram | none: every HTTP attempt to the API |
//! | `opscom_import_files_waiting` | gauge | `tenant`, `reason`: `deferred`, `claimed`, `held` |
//! | `opscom_import_unsent_reports` | gauge | none: over all tenants |
//! | `opscom_import_last_import_timestamp_seconds` | gauge | `tenant` |
//! | `opscom_import_alerts_active` | gauge | `tenant`, `alert` |

mod http;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use opscom_api::RequestObserver;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::Progress;
use crate::record::Outcome;

pub use http::MetricsServer;

/// The `Content-Type` of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The upper bounds of the API request histogram, in seconds: 5 ms to 30 s (the default
/// request timeout).
const API_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// `/healthz` tolerates this much more than twice the interval without a finished pass or row.
pub const HEALTH_SLACK: Duration = Duration::from_secs(60);

/// Why a file waits, the `reason` of `opscom_import_files_waiting`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Waiting {
    /// A claimed file whose last pass deferred it (API unreachable, token refused…).
    Deferred,
    /// A claimed file: in progress, or waiting to be resumed.
    Claimed,
    /// A file in `held/`, waiting for its client's approval (`hold_changed_percent`).
    Held,
}

impl Waiting {
    fn label(self) -> &'static str {
        match self {
            Waiting::Deferred => "deferred",
            Waiting::Claimed => "claimed",
            Waiting::Held => "held",
        }
    }
}

/// A tenant's name as a label value, shared (not copied) by every series of the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TenantName(Arc<str>);

impl EncodeLabelValue for TenantName {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), fmt::Error> {
        fmt::Write::write_str(encoder, &self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    tenant: TenantName,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct WaitingLabels {
    tenant: TenantName,
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TenantLabels {
    tenant: TenantName,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AlertLabels {
    tenant: TenantName,
    alert: String,
}

/// The service's metrics and health. Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct Metrics {
    shared: Arc<Shared>,
}

struct Shared {
    registry: Registry,
    files: Family<OutcomeLabels, Counter>,
    rows: Family<OutcomeLabels, Counter>,
    api_requests: Histogram,
    waiting: Family<WaitingLabels, Gauge>,
    unsent: Gauge,
    last_import: Family<TenantLabels, Gauge>,
    alerts: Family<AlertLabels, Gauge>,
    health: Health,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every family registered, no series yet; health: the scheduler loop has not started.
    pub fn new() -> Metrics {
        let files = Family::<OutcomeLabels, Counter>::default();
        let rows = Family::<OutcomeLabels, Counter>::default();
        let api_requests = Histogram::new(API_BUCKETS);
        let waiting = Family::<WaitingLabels, Gauge>::default();
        let unsent = Gauge::default();
        let last_import = Family::<TenantLabels, Gauge>::default();
        let alerts = Family::<AlertLabels, Gauge>::default();
        let mut registry = Registry::default();
        // Counters are registered without `_total`: the encoder appends it.
        registry.register(
            "opscom_import_files",
            "Files processed, by tenant and outcome (the outcomes of records.jsonl)",
            files.clone(),
        );
        registry.register(
            "opscom_import_rows",
            "Rows of archived files, by tenant and outcome (imported, failed)",
            rows.clone(),
        );
        registry.register(
            "opscom_import_api_request_duration_seconds",
            "Duration of each HTTP request to the OPSCOM API (every attempt, retries included)",
            api_requests.clone(),
        );
        registry.register(
            "opscom_import_files_waiting",
            "Files waiting, by tenant and reason (deferred, claimed, held); as of this instance's last pass over the tenant",
            waiting.clone(),
        );
        registry.register(
            "opscom_import_unsent_reports",
            "Reports waiting in the spools of all tenants, as of each tenant's last delivery",
            unsent.clone(),
        );
        registry.register(
            "opscom_import_last_import_timestamp_seconds",
            "When the tenant's last file was archived (Unix time)",
            last_import.clone(),
        );
        registry.register(
            "opscom_import_alerts_active",
            "Operator alerts in force (1) or cleared (0), by tenant and alert",
            alerts.clone(),
        );
        Metrics {
            shared: Arc::new(Shared {
                registry,
                files,
                rows,
                api_requests,
                waiting,
                unsent,
                last_import,
                alerts,
                health: Health::new(),
            }),
        }
    }

    /// Every metric in the Prometheus text format (version 0.0.4), encoded by
    /// `prometheus-client` from the registry.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a `String` cannot fail.
        let _ = prometheus_text::encode(&mut text, &self.shared.registry);
        text
    }

    /// The handle a tenant's runner counts through.
    pub fn tenant(&self, name: &str) -> TenantMetrics {
        TenantMetrics {
            metrics: self.clone(),
            tenant: TenantName(Arc::from(name)),
            unsent: AtomicI64::new(0),
        }
    }

    /// Sets `opscom_import_alerts_active{tenant, alert}` to 1 (`active`) or 0. An alert that was
    /// never active is not shown until it is.
    pub fn set_alert(&self, tenant: &str, alert: &str, active: bool) {
        let labels = AlertLabels {
            tenant: TenantName(Arc::from(tenant)),
            alert: alert.to_owned(),
        };
        set_lazily(&self.shared.alerts, &labels, i64::from(active));
    }

    /// Sets `opscom_import_files_waiting{tenant, reason}`. A series is created only when its
    /// value is first above 0 (an absent series means 0), then kept.
    pub fn set_waiting(&self, tenant: &str, reason: Waiting, files: u64) {
        self.tenant_waiting(&TenantName(Arc::from(tenant)), reason, files);
    }

    fn tenant_waiting(&self, tenant: &TenantName, reason: Waiting, files: u64) {
        let labels = WaitingLabels {
            tenant: tenant.clone(),
            reason: reason.label(),
        };
        set_lazily(
            &self.shared.waiting,
            &labels,
            i64::try_from(files).unwrap_or(i64::MAX),
        );
    }

    /// Removes the series of a tenant gone from the configuration (its files, rows, waiting
    /// files and last import); its alerts are left to whoever sets them.
    pub fn forget_tenant(&self, tenant: &str) {
        let tenant = TenantName(Arc::from(tenant));
        let s = &self.shared;
        for outcome in ALL_OUTCOMES {
            s.files.remove(&OutcomeLabels {
                tenant: tenant.clone(),
                outcome: outcome_label(outcome),
            });
        }
        for outcome in ["imported", "failed", "unchanged"] {
            s.rows.remove(&OutcomeLabels {
                tenant: tenant.clone(),
                outcome,
            });
        }
        for reason in [Waiting::Deferred, Waiting::Claimed, Waiting::Held] {
            s.waiting.remove(&WaitingLabels {
                tenant: tenant.clone(),
                reason: reason.label(),
            });
        }
        s.last_import.remove(&TenantLabels { tenant });
    }

    /// The observer to put on the shared HTTP transport: each request's duration goes into
    /// `opscom_import_api_request_duration_seconds`.
    pub fn request_observer(&self) -> Arc<dyn RequestObserver> {
        Arc::new(ApiObserver(self.shared.api_requests.clone()))
    }

    /// The service's health, as `/healthz` answers it: `Ok` while the scheduler loop runs and
    /// passes complete, else why not.
    pub fn health(&self) -> Result<(), String> {
        self.shared.health.check()
    }

    /// The scheduler loop started with `tenants` tenants, scanned every `interval`.
    pub(crate) fn loop_started(&self, interval: Duration, tenants: usize) {
        let h = &self.shared.health;
        h.set_schedule(interval, tenants);
        h.beat();
        h.state.store(LOOP_RUNNING, Ordering::Relaxed);
    }

    /// A reload changed the interval or the number of tenants.
    pub(crate) fn schedule_changed(&self, interval: Duration, tenants: usize) {
        self.shared.health.set_schedule(interval, tenants);
    }

    /// The scheduler loop returned.
    pub(crate) fn loop_stopped(&self) {
        self.shared
            .health
            .state
            .store(LOOP_STOPPED, Ordering::Relaxed);
    }

    /// A tenant's pass completed.
    pub(crate) fn pass_completed(&self) {
        self.shared.health.beat();
    }
}

/// Sets a gauge, creating its series only for a value other than 0.
fn set_lazily<S>(family: &Family<S, Gauge>, labels: &S, value: i64)
where
    S: Clone + std::hash::Hash + Eq,
{
    if value != 0 {
        family.get_or_create(labels).set(value);
    } else if let Some(gauge) = family.get(labels) {
        gauge.set(0);
    }
}

const ALL_OUTCOMES: [Outcome; 8] = [
    Outcome::Imported,
    Outcome::ImportedWithFailures,
    Outcome::Rejected,
    Outcome::Deferred,
    Outcome::Held,
    Outcome::Discarded,
    Outcome::Previewed,
    Outcome::NotImported,
];

/// The `outcome` label: the word of `records.jsonl` and the logs, unchanged.
fn outcome_label(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Imported => "imported",
        Outcome::ImportedWithFailures => "imported_with_failures",
        Outcome::Rejected => "rejected",
        Outcome::Deferred => "deferred",
        Outcome::Held => "held",
        Outcome::Discarded => "discarded",
        Outcome::Previewed => "previewed",
        Outcome::NotImported => "not_imported",
    }
}

/// The rows of one processed file, as counted by [`TenantMetrics::file_done`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowCounts {
    /// Rows the API accepted.
    pub ok: u64,
    /// Rows that failed.
    pub failed: u64,
    /// Rows not sent: the API already holds their values (`mode = "delta"`).
    pub unchanged: u64,
}

/// One tenant's view of the metrics, held by its runner. Its unsent reports count towards
/// `opscom_import_unsent_reports` until it is dropped (the tenant removed or replaced).
pub struct TenantMetrics {
    metrics: Metrics,
    tenant: TenantName,
    /// This tenant's share of `opscom_import_unsent_reports`.
    unsent: AtomicI64,
}

impl fmt::Debug for TenantMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantMetrics")
            .field("tenant", &self.tenant.0)
            .finish_non_exhaustive()
    }
}

impl TenantMetrics {
    /// A file's processing ended with `outcome`; the rows of an archived file (not of a
    /// deferred one: they are counted once, when the file is archived) and, when archived,
    /// the time (`now`).
    pub fn file_done(&self, outcome: Outcome, rows: RowCounts, now: SystemTime) {
        let s = &self.metrics.shared;
        s.files
            .get_or_create(&self.labels(outcome_label(outcome)))
            .inc();
        // Only an import sends rows; a deferral counts its rows when it is finally imported.
        if !matches!(
            outcome,
            Outcome::Imported | Outcome::ImportedWithFailures | Outcome::Rejected
        ) {
            return;
        }
        for (rows, label) in [
            (rows.ok, "imported"),
            (rows.failed, "failed"),
            (rows.unchanged, "unchanged"),
        ] {
            if rows > 0 {
                s.rows.get_or_create(&self.labels(label)).inc_by(rows);
            }
        }
        let seconds = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        s.last_import
            .get_or_create(&TenantLabels {
                tenant: self.tenant.clone(),
            })
            .set(seconds);
    }

    /// The tenant's files waiting for `reason` now.
    pub fn set_waiting(&self, reason: Waiting, files: u64) {
        self.metrics.tenant_waiting(&self.tenant, reason, files);
    }

    /// The tenant's spool holds `pending` reports after a delivery.
    pub fn unsent_reports(&self, pending: usize) {
        let pending = i64::try_from(pending).unwrap_or(i64::MAX);
        let before = self.unsent.swap(pending, Ordering::Relaxed);
        self.metrics.shared.unsent.inc_by(pending - before);
    }

    /// Wraps `progress` so that every finished row also tells `/healthz` that work goes on (a
    /// long file is not a stalled service).
    pub(crate) fn beating<'a>(&'a self, progress: &'a dyn Progress) -> Beating<'a> {
        Beating {
            progress,
            health: &self.metrics.shared.health,
        }
    }

    fn labels(&self, outcome: &'static str) -> OutcomeLabels {
        OutcomeLabels {
            tenant: self.tenant.clone(),
            outcome,
        }
    }
}

impl Drop for TenantMetrics {
    fn drop(&mut self) {
        let mine = self.unsent.swap(0, Ordering::Relaxed);
        self.metrics.shared.unsent.dec_by(mine);
    }
}

/// A [`Progress`] that also beats the health clock on every finished row.
#[derive(Debug)]
pub(crate) struct Beating<'a> {
    progress: &'a dyn Progress,
    health: &'a Health,
}

impl Progress for Beating<'_> {
    fn file_started(&self, name: &str, rows: u64) {
        self.progress.file_started(name, rows);
    }

    fn row_done(&self) {
        self.health.beat();
        self.progress.row_done();
    }

    fn file_finished(&self) {
        self.progress.file_finished();
    }
}

/// Puts each API request's duration into the histogram.
#[derive(Debug)]
struct ApiObserver(Histogram);

impl RequestObserver for ApiObserver {
    fn request_finished(&self, duration: Duration) {
        self.0.observe(duration.as_secs_f64());
    }
}

const LOOP_NOT_STARTED: u8 = 0;
const LOOP_RUNNING: u8 = 1;
const LOOP_STOPPED: u8 = 2;

/// The scheduler loop's liveness: its state, and when a pass or a row last finished.
#[derive(Debug)]
pub(crate) struct Health {
    started: Instant,
    /// Milliseconds from `started` to the last finished pass or row (or the loop's start).
    last_beat_ms: AtomicU64,
    state: AtomicU8,
    interval_ms: AtomicU64,
    tenants: AtomicUsize,
}

impl Health {
    fn new() -> Health {
        Health {
            started: Instant::now(),
            last_beat_ms: AtomicU64::new(0),
            state: AtomicU8::new(LOOP_NOT_STARTED),
            interval_ms: AtomicU64::new(0),
            tenants: AtomicUsize::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn beat(&self) {
        self.last_beat_ms
            .fetch_max(self.now_ms(), Ordering::Relaxed);
    }

    fn set_schedule(&self, interval: Duration, tenants: usize) {
        let ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        self.interval_ms.store(ms, Ordering::Relaxed);
        self.tenants.store(tenants, Ordering::Relaxed);
    }

    fn check(&self) -> Result<(), String> {
        match self.state.load(Ordering::Relaxed) {
            LOOP_NOT_STARTED => return Err("the scheduler loop has not started".into()),
            LOOP_STOPPED => return Err("the scheduler loop has stopped".into()),
            _ => {}
        }
        if self.tenants.load(Ordering::Relaxed) == 0 {
            return Ok(()); // nothing to pass over
        }
        let interval = Duration::from_millis(self.interval_ms.load(Ordering::Relaxed));
        let limit = interval.saturating_mul(2) + HEALTH_SLACK;
        let quiet = Duration::from_millis(
            self.now_ms()
                .saturating_sub(self.last_beat_ms.load(Ordering::Relaxed)),
        );
        if quiet > limit {
            return Err(format!(
                "no pass has completed and no row has finished for {}s (more than twice the interval of {}s plus {}s)",
                quiet.as_secs(),
                interval.as_secs(),
                HEALTH_SLACK.as_secs()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
