//! The service over every tenant: `once` (one pass each, side by side), `run` (the scheduler:
//! passes every interval and on file events, until shutdown) and `reload` (a new configuration
//! taken while `run` runs).
//!
//! Several processes may run the same configuration over shared storage. They coordinate only
//! through the filesystem: a tenant's pass holds its lock file (`TenantLock`), files are claimed
//! by atomic renames, and records are appended under a lock. In `run`, a tenant found locked by
//! another process is looked at again every [`BUSY_RETRY`], so the survivors of a crashed process
//! resume its claimed files within seconds.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::future::join_all;
use opscom_api::{ClientConfig, HttpPushClient, HttpTransport, PushApi, TransportConfig};
use opscom_mail::{Mailer, OutboxMailer, SmtpMailer};
use opscom_scheduler::{
    Clock, Control, FolderWatcher, ScheduleConfig, SystemClock, WatchError, run_dynamic,
};
use secrecy::ExposeSecret;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::Progress;
use crate::alerts::Alerts;
use crate::config::{Config, MailSettings, Problem, Tenant};
use crate::metrics::{Metrics, MetricsServer};
use crate::private::ensure_private_dir;
use crate::record::Records;
use crate::report::Sender;
use crate::tenant::{TenantPass, TenantRunner};

/// A runner as the service holds it: the traits behind `Arc<dyn …>`.
pub type DynRunner = TenantRunner<dyn PushApi, dyn Mailer, dyn Clock>;

/// In `run`, how soon a tenant held by another process is looked at again: when that process
/// dies, its claimed file is resumed this soon after the kernel releases its lock.
pub const BUSY_RETRY: Duration = Duration::from_secs(2);

/// In `run`, how often `records.jsonl` is looked at for rotation and expired parts.
const RECORDS_MAINTENANCE: Duration = Duration::from_secs(3600);

/// Builds a tenant's API client (the service's shared HTTP transport, or a caller's doubles).
type ApiFactory = dyn Fn(&Tenant) -> Result<Arc<dyn PushApi>, String> + Send + Sync;

/// The service: one runner per tenant, replaced as reloads come.
pub struct Service {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.state();
        f.debug_struct("Service")
            .field("config", &state.config)
            .field("tenants", &state.slots.len())
            .finish_non_exhaustive()
    }
}

struct Inner {
    state: Mutex<State>,
    apis: Box<ApiFactory>,
    /// The mailer given by the caller; `None`: built from `[mail]` (and rebuilt on reload).
    fixed_mailer: Option<Arc<dyn Mailer>>,
    clock: Arc<dyn Clock>,
    progress: Option<Arc<dyn Progress>>,
    /// Set while `run` runs: the scheduler's controls and the file watcher.
    running: Mutex<Option<Running>>,
    /// Counted by every tenant's runner; served by `run` on `[metrics] listen`.
    metrics: Metrics,
    /// Operator alerts, observed after every pass and on a clock tick in `run`.
    alerts: Arc<Alerts>,
    /// The alerts last shown as active in the metrics, to turn off those that cleared.
    alerts_shown: Mutex<HashSet<(String, &'static str)>>,
}

struct State {
    config: Config,
    mailer: Arc<dyn Mailer>,
    /// Who the reports come from, from `config` (its DKIM key loaded once).
    sender: Sender,
    /// Tenants by name, each with its scheduler key and runner.
    slots: BTreeMap<String, Slot>,
    /// The tenant under each scheduler key (a pass finds its runner without a scan).
    names: HashMap<usize, String>,
    next_key: usize,
}

#[derive(Clone)]
struct Slot {
    key: usize,
    runner: Arc<DynRunner>,
}

struct Running {
    control: mpsc::UnboundedSender<Control>,
    watcher: Option<FolderWatcher>,
    /// The kernel's watch limit was reported already (once per process).
    limit_reported: bool,
    /// The keys whose `preview/` is watched too (it exists only after their first pass).
    previews: HashSet<usize>,
}

/// What `once` did over every tenant.
#[derive(Debug)]
pub struct OnceReport {
    /// Each tenant's pass, in configuration order.
    pub tenants: Vec<TenantPass>,
}

impl OnceReport {
    /// Whether something waits for a later pass (exit status 3).
    pub fn waits(&self) -> bool {
        self.tenants.iter().any(TenantPass::waits)
    }
}

/// What a reload changed, by tenant name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reloaded {
    /// Tenants new in the configuration: scheduled and watched from now on.
    pub added: Vec<String>,
    /// Tenants gone from the configuration: they stop once the file in hand is done.
    pub removed: Vec<String>,
    /// Tenants whose settings changed: the new settings apply from their next file.
    pub changed: Vec<String>,
}

impl Service {
    /// Builds the service from a checked configuration with the real API client (one HTTP
    /// transport shared by every tenant), mailer and clock. A problem found here (an SMTP URL
    /// the mailer refuses, an unusable state folder) is a configuration problem; a tenant whose
    /// folders cannot be used is paused when its pass finds it, and the others go on. Every
    /// tenant needs its [`Tenant::api`] settings (a tenant without is a problem of its
    /// `api_url`); [`Config::load`] always gives them.
    pub fn from_config(config: Config) -> Result<Service, Vec<Problem>> {
        // One connection pool and TLS configuration (root certificates loaded once) for every
        // tenant; each tenant's client adds only its URL, token and limits.
        let metrics = Metrics::new();
        let mut transport_config = TransportConfig::default();
        transport_config.observer = Some(metrics.request_observer());
        let transport = HttpTransport::new(transport_config).map_err(|e| {
            vec![Problem {
                key: "tenant".into(),
                reason: format!("cannot set up the HTTPS client: {e}"),
            }]
        })?;
        let apis = move |t: &Tenant| {
            let Some(api) = &t.api else {
                return Err(format!(
                    "tenant {} has no API settings: give its api_url and token \
                     (Tenant::with_api), or bring its PushApi with Service::with_parts",
                    t.name
                ));
            };
            let mut c = ClientConfig::new(api.url.clone(), api.token.clone());
            c.concurrency = t.concurrency;
            c.requests_per_second = api.requests_per_second;
            c.retry_budget = api.retry_budget;
            HttpPushClient::with_transport(&transport, c)
                .map(|c| Arc::new(c) as Arc<dyn PushApi>)
                .map_err(|e| e.to_string())
        };
        let mailer = build_mailer(&config.mail)?;
        let clock = Arc::new(SystemClock);
        Service::build(config, Box::new(apis), mailer, None, clock, metrics)
    }

    /// Builds the service from parts: each tenant of `config` with its API, one mailer, one
    /// clock. Every tenant needs exactly one API (by name); a tenant without one, or an API for
    /// a tenant that is not configured, is a problem. A reload keeps each tenant's API.
    pub fn with_parts(
        config: Config,
        apis: Vec<(String, Arc<dyn PushApi>)>,
        mailer: Arc<dyn Mailer>,
        clock: Arc<dyn Clock>,
    ) -> Result<Service, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut by_name: HashMap<String, Arc<dyn PushApi>> = HashMap::new();
        for (name, api) in apis {
            if !config.tenants.iter().any(|t| t.name == name) {
                problems.push(Problem {
                    key: format!("tenant[{name}]"),
                    reason: "an API was given for a tenant that is not configured".into(),
                });
            } else if by_name.insert(name.clone(), api).is_some() {
                problems.push(Problem {
                    key: format!("tenant[{name}]"),
                    reason: "two APIs were given for this tenant".into(),
                });
            }
        }
        for t in &config.tenants {
            if !by_name.contains_key(&t.name) {
                problems.push(Problem {
                    key: format!("tenant[{}]", t.name),
                    reason: "no API was given for this tenant".into(),
                });
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let apis = move |t: &Tenant| {
            by_name
                .get(&t.name)
                .cloned()
                .ok_or_else(|| format!("no API was given for tenant {}", t.name))
        };
        Service::build(
            config,
            Box::new(apis),
            Arc::clone(&mailer),
            Some(mailer),
            clock,
            Metrics::new(),
        )
    }

    fn build(
        config: Config,
        apis: Box<ApiFactory>,
        mailer: Arc<dyn Mailer>,
        fixed_mailer: Option<Arc<dyn Mailer>>,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
    ) -> Result<Service, Vec<Problem>> {
        // Records are group-readable (0640): the folder may be too, never anyone else's.
        // So is `tenants/`, the default work folders' parent, when an operator made it by hand.
        let tenants = config.state_dir.join("tenants");
        let private = ensure_private_dir(&config.state_dir, 0o750).and_then(|()| {
            if tenants.is_dir() {
                ensure_private_dir(&tenants, 0o700)
            } else {
                Ok(())
            }
        });
        if let Err(e) = private {
            return Err(vec![Problem {
                key: "state_dir".into(),
                reason: format!("{}: {e}", config.state_dir.display()),
            }]);
        }
        let sender = Sender::from_config(&config).map_err(|reason| {
            vec![Problem {
                key: "mail.dkim_key_file".into(),
                reason,
            }]
        })?;
        let inner = Inner {
            state: Mutex::new(State {
                config: config.clone(),
                mailer,
                sender,
                slots: BTreeMap::new(),
                names: HashMap::new(),
                next_key: 0,
            }),
            apis,
            fixed_mailer,
            progress: None,
            running: Mutex::new(None),
            metrics,
            alerts: Arc::new(Alerts::new(
                &config.state_dir,
                config.operator.as_ref(),
                Arc::clone(&clock),
            )),
            alerts_shown: Mutex::default(),
            clock,
        };
        let mut problems = Vec::new();
        let mut slots = BTreeMap::new();
        {
            let state = inner.state();
            for (key, t) in config.tenants.iter().enumerate() {
                match inner.runner(t, &state.config, &state.mailer, &state.sender) {
                    Ok(runner) => {
                        slots.insert(t.name.clone(), Slot { key, runner });
                    }
                    Err(p) => problems.push(p),
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        {
            let mut state = inner.state();
            state.next_key = slots.len();
            state.names = slots.iter().map(|(n, s)| (s.key, n.clone())).collect();
            state.slots = slots;
        }
        Ok(Service {
            inner: Arc::new(inner),
        })
    }

    /// Shows row progress through `progress` (interactive `once`). Call before the first pass.
    pub fn with_progress(self, progress: Arc<dyn Progress>) -> Self {
        let mut inner = Arc::try_unwrap(self.inner)
            .unwrap_or_else(|_| unreachable!("the service is not shared before it runs"));
        inner.progress = Some(progress);
        {
            let mut state = inner.state();
            let State {
                config,
                mailer,
                sender,
                slots,
                ..
            } = &mut *state;
            for (name, slot) in slots.iter_mut() {
                let tenant = tenant_of(config, name);
                if let Ok(runner) = inner.runner(tenant, config, mailer, sender) {
                    slot.runner = runner;
                }
            }
        }
        Service {
            inner: Arc::new(inner),
        }
    }

    /// The service's metrics (counted whether or not `[metrics]` is configured).
    pub fn metrics(&self) -> Metrics {
        self.inner.metrics.clone()
    }

    /// Serves `/metrics` and `/healthz` on `[metrics] listen`, when configured, until the
    /// returned server is dropped. For `run`: call it before [`run`](Self::run). A port in use
    /// is a problem of `metrics.listen`.
    pub async fn serve_metrics(&self) -> Result<Option<MetricsServer>, Vec<Problem>> {
        let Some(settings) = self.inner.state().config.metrics else {
            return Ok(None);
        };
        MetricsServer::start(settings.listen, self.metrics())
            .await
            .map(Some)
            .map_err(|p| vec![p])
    }

    /// The operator alerts: their state (`active`) for metrics and `status`.
    pub fn alerts(&self) -> Arc<Alerts> {
        Arc::clone(&self.inner.alerts)
    }

    /// The configuration the service runs now.
    pub fn config(&self) -> Config {
        self.inner.state().config.clone()
    }

    /// One pass over every tenant, side by side.
    pub async fn once(&self, shutdown: watch::Receiver<bool>) -> OnceReport {
        let runners: Vec<Arc<DynRunner>> = {
            let state = self.inner.state();
            let order = state.config.tenants.iter().map(|t| &t.name);
            order
                .filter_map(|name| state.slots.get(name))
                .map(|s| Arc::clone(&s.runner))
                .collect()
        };
        // A task per tenant: one tenant's slow or failing pass never holds up another's.
        let passes = runners.iter().map(|r| {
            let runner = Arc::clone(r);
            let shutdown = shutdown.clone();
            let alerts = Arc::clone(&self.inner.alerts);
            tokio::spawn(async move {
                let pass = runner.pass(shutdown).await;
                alerts.after_pass(runner.tenant(), &pass);
                pass
            })
        });
        let results = join_all(passes).await;
        let tenants = results
            .into_iter()
            .zip(&runners)
            .map(|(result, runner)| {
                result.unwrap_or_else(|e| TenantPass {
                    tenant: runner.tenant().name.clone(),
                    fault: Some(format!("the pass failed: {e}")),
                    ..TenantPass::default()
                })
            })
            .collect();
        self.inner.maintain_records();
        self.inner.deliver_alerts().await;
        OnceReport { tenants }
    }

    /// The service loop: a pass per tenant at start, every `interval`, and `settle` after a file
    /// event in its drop folder; returns once `shutdown` turns true and passes in hand are done.
    /// [`reload`](Self::reload) may be called meanwhile. File events are a help, not a need: a
    /// folder that cannot be watched (the kernel's watch limit, say it once) is scanned every
    /// interval.
    pub async fn run(&self, shutdown: watch::Receiver<bool>) -> Result<(), WatchError> {
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let (cfg, keys, dirs) = {
            let state = self.inner.state();
            let cfg = schedule_of(&state.config);
            let keys: Vec<usize> = state.slots.values().map(|s| s.key).collect();
            let dirs: Vec<(usize, std::path::PathBuf)> = state
                .slots
                .values()
                .map(|s| (s.key, s.runner.tenant().drop_dir.clone()))
                .collect();
            (cfg, keys, dirs)
        };
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let mut running = Running {
            control: control_tx,
            watcher: None,
            limit_reported: false,
            previews: HashSet::new(),
        };
        match FolderWatcher::new() {
            Ok((watcher, mut rx)) => {
                running.watcher = Some(watcher);
                // Forward the watcher's events (its receiver lives as long as the watcher).
                tokio::spawn(async move {
                    while let Some(key) = rx.recv().await {
                        if events_tx.send(key).is_err() {
                            break;
                        }
                    }
                });
            }
            Err(e) => warn_no_events(&e, &mut running, dirs.len()),
        }
        let unwatched = dirs
            .iter()
            .filter(|(key, dir)| !running.watch(*key, dir))
            .count();
        if unwatched > 0 && running.watcher.is_some() {
            warn!(
                folders = unwatched,
                "some drop folders have no file events: they are scanned every interval"
            );
        }
        *self.inner.running() = Some(running);
        self.inner.metrics.loop_started(cfg.interval, keys.len());
        // Whatever ends the loop (shutdown or a panic), `/healthz` says it stopped.
        let _stopped = LoopStopped(&self.inner.metrics);
        let ticks = tokio::spawn(alert_ticks(Arc::clone(&self.inner), shutdown.clone()));

        // Records are rotated (an idle day ends a part) and expired parts deleted hourly.
        let maintenance = {
            let inner = Arc::clone(&self.inner);
            tokio::spawn(async move {
                let mut hourly = tokio::time::interval(RECORDS_MAINTENANCE);
                loop {
                    hourly.tick().await;
                    inner.maintain_records();
                }
            })
        };
        let inner = Arc::clone(&self.inner);
        let pass_shutdown = shutdown.clone();
        let mut stop = shutdown;
        info!(tenants = keys.len(), "service started");
        run_dynamic(
            keys,
            cfg,
            events_rx,
            control_rx,
            move |key: usize| {
                let inner = Arc::clone(&inner);
                let shutdown = pass_shutdown.clone();
                async move { inner.passes(key, shutdown).await }
            },
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        )
        .await;
        maintenance.abort();
        // Dropping the watcher closes its event stream.
        *self.inner.running() = None;
        let _ = ticks.await;
        Ok(())
    }

    /// Takes a new configuration while the service runs (SIGHUP): added tenants are scheduled
    /// and watched from now on, removed tenants stop once the file in hand is done, changed
    /// tenants use their new settings from their next file, `[schedule]` and `[mail]` from the
    /// next pass. A configuration with any problem is refused whole (every problem returned)
    /// and the running one stays in force. `state_dir` cannot change without a restart.
    pub fn reload(&self, config: Config) -> Result<Reloaded, Vec<Problem>> {
        let inner = &self.inner;
        let mut state = inner.state();
        let mut problems = Vec::new();
        if config.metrics != state.config.metrics {
            problems.push(Problem {
                key: "metrics".into(),
                reason:
                    "[metrics] cannot change while the service runs; restart it to use the new one"
                        .into(),
            });
        }
        if config.state_dir != state.config.state_dir {
            problems.push(Problem {
                key: "state_dir".into(),
                reason: format!(
                    "cannot change from {} while the service runs; restart it to use {}",
                    state.config.state_dir.display(),
                    config.state_dir.display()
                ),
            });
        }
        let mail_changed = !same_mail(&config.mail, &state.config.mail);
        let mailer = match (&inner.fixed_mailer, mail_changed) {
            (Some(m), _) => Arc::clone(m),
            (None, false) => Arc::clone(&state.mailer),
            (None, true) => match build_mailer(&config.mail) {
                Ok(m) => m,
                Err(p) => {
                    problems.extend(p);
                    Arc::clone(&state.mailer)
                }
            },
        };
        let sender = match Sender::from_config(&config) {
            Ok(s) => s,
            Err(reason) => {
                problems.push(Problem {
                    key: "mail.dkim_key_file".into(),
                    reason,
                });
                state.sender.clone()
            }
        };
        // The sender, DKIM key and operator address are in every runner's report sink.
        let sender_changed = config.mail_from != state.config.mail_from
            || config.dkim != state.config.dkim
            || config.operator.as_ref().map(|o| &o.email)
                != state.config.operator.as_ref().map(|o| &o.email);
        let schedule_changed = config.schedule != state.config.schedule;
        // Runners append the records: a new `[records]` is taken by rebuilding them.
        let records_changed = config.records != state.config.records;
        // Build every new runner first: nothing changes unless all of them can be built.
        let mut fresh: Vec<(String, Option<usize>, Arc<DynRunner>)> = Vec::new();
        let mut reloaded = Reloaded::default();
        for t in &config.tenants {
            let old = state.slots.get(&t.name);
            let unchanged = old.is_some_and(|s| {
                same_tenant(s.runner.tenant(), t)
                    && !mail_changed
                    && !sender_changed
                    && !schedule_changed
                    && !records_changed
            });
            if unchanged {
                continue;
            }
            match inner.runner(t, &config, &mailer, &sender) {
                Ok(runner) => {
                    match old {
                        Some(_) => reloaded.changed.push(t.name.clone()),
                        None => reloaded.added.push(t.name.clone()),
                    }
                    fresh.push((t.name.clone(), old.map(|s| s.key), runner));
                }
                Err(p) => problems.push(p),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        // Settings that differ only in scheduling are not a tenant's change to report.
        if !reloaded.changed.is_empty()
            && (mail_changed || sender_changed || schedule_changed || records_changed)
        {
            reloaded
                .changed
                .retain(|n| !same_tenant(state.slots[n].runner.tenant(), tenant_of(&config, n)));
        }
        let mut running = inner.running();
        let removed: Vec<String> = state
            .slots
            .keys()
            .filter(|n| !config.tenants.iter().any(|t| &t.name == *n))
            .cloned()
            .collect();
        for name in &removed {
            if let Some(slot) = state.slots.remove(name) {
                state.names.remove(&slot.key);
                slot.runner.retire();
                inner.metrics.forget_tenant(name);
                if let Some(r) = running.as_mut() {
                    let _ = r.control.send(Control::Remove(slot.key));
                    r.unwatch(slot.key);
                }
            }
        }
        reloaded.removed = removed;
        for (name, old_key, runner) in fresh {
            let dir = runner.tenant().drop_dir.clone();
            match old_key {
                Some(key) => {
                    if let Some(old) = state.slots.insert(name, Slot { key, runner }) {
                        old.runner.retire();
                    }
                    if let Some(r) = running.as_mut() {
                        r.watch(key, &dir);
                    }
                }
                None => {
                    let key = state.next_key;
                    state.next_key += 1;
                    state.names.insert(key, name.clone());
                    state.slots.insert(name, Slot { key, runner });
                    if let Some(r) = running.as_mut() {
                        r.watch(key, &dir);
                        let _ = r.control.send(Control::Add(key));
                    }
                }
            }
        }
        if schedule_changed && let Some(r) = running.as_ref() {
            let _ = r.control.send(Control::Schedule(schedule_of(&config)));
        }
        inner
            .metrics
            .schedule_changed(config.schedule.interval, config.tenants.len());
        state.mailer = mailer;
        state.sender = sender;
        inner.alerts.configure(config.operator.as_ref());
        state.config = config;
        Ok(reloaded)
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn running(&self) -> MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rotates `records.jsonl` when due and deletes the parts past `[records] retention`.
    fn maintain_records(&self) {
        let records = {
            let state = self.state();
            Records::new(&state.config.state_dir).with_settings(&state.config.records)
        };
        if let Err(e) = records.maintain(self.clock.now()) {
            warn!(error = %e, path = %records.path().display(), "cannot rotate or expire the records");
        }
    }

    fn runner(
        &self,
        tenant: &Tenant,
        config: &Config,
        mailer: &Arc<dyn Mailer>,
        sender: &Sender,
    ) -> Result<Arc<DynRunner>, Problem> {
        let api = (self.apis)(tenant).map_err(|reason| Problem {
            key: format!("tenant[{}].api_url", tenant.name),
            reason,
        })?;
        let runner = TenantRunner::new(
            tenant.clone(),
            api,
            Arc::clone(mailer),
            Arc::clone(&self.clock),
            &config.state_dir,
            config.schedule.settle,
        )
        .with_records(&config.records)
        .with_sender(sender.clone());
        let runner = runner.with_metrics(self.metrics.tenant(&tenant.name));
        Ok(Arc::new(match &self.progress {
            Some(p) => runner.with_progress(Arc::clone(p)),
            None => runner,
        }))
    }

    /// Sends what waits in the operator alert outbox, through the mailer in force.
    async fn deliver_alerts(&self) {
        let mailer = Arc::clone(&self.state().mailer);
        self.alerts.deliver(&*mailer).await;
        self.show_alerts();
    }

    /// Sets `opscom_import_alerts_active` from the alerts in force: 1 for each active alert,
    /// 0 for one that cleared since the last time.
    fn show_alerts(&self) {
        let active: HashSet<(String, &'static str)> = self
            .alerts
            .active()
            .into_iter()
            .map(|(tenant, kind)| (tenant, kind.name()))
            .collect();
        let mut shown = self.alerts_shown.lock().unwrap_or_else(|e| e.into_inner());
        for (tenant, alert) in shown.difference(&active) {
            self.metrics.set_alert(tenant, alert, false);
        }
        for (tenant, alert) in &active {
            self.metrics.set_alert(tenant, alert, true);
        }
        *shown = active;
    }

    /// The tenant's runner under `key` now, if the tenant is still configured.
    fn runner_for(&self, key: usize) -> Option<(Arc<DynRunner>, Duration)> {
        let state = self.state();
        let slot = state
            .names
            .get(&key)
            .and_then(|name| state.slots.get(name))?;
        Some((Arc::clone(&slot.runner), state.config.schedule.settle))
    }

    /// One scheduled pass over a tenant, followed at once by more where they are due: the
    /// tenant was replaced by a reload mid-pass, another process holds it (looked at again
    /// every [`BUSY_RETRY`]), or uploads were still settling (looked at once they settled).
    async fn passes(&self, key: usize, shutdown: watch::Receiver<bool>) {
        loop {
            let Some((runner, settle)) = self.runner_for(key) else {
                return;
            };
            let pass = runner.pass(shutdown.clone()).await;
            self.metrics.pass_completed();
            if let Some(r) = self.running().as_mut() {
                r.watch_preview(key, &runner.tenant().drop_dir);
            }
            crate::log_pass(&pass);
            self.alerts.after_pass(runner.tenant(), &pass);
            self.deliver_alerts().await;
            if *shutdown.borrow() {
                return;
            }
            if runner.is_retired() {
                continue; // replaced by a reload: the new settings take the next file
            }
            let wait = if pass.busy {
                BUSY_RETRY
            } else if pass.settling > 0 && pass.fault.is_none() {
                settle + opscom_scheduler::EVENT_MARGIN
            } else {
                return;
            };
            let mut stop = shutdown.clone();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

impl Running {
    /// Watches a tenant's folder for file events; false when it cannot (it is then scanned
    /// every interval). The kernel's watch limit is logged once, with the fix.
    fn watch(&mut self, key: usize, dir: &std::path::Path) -> bool {
        // Another folder drops the old one's `preview/` watch: looked at again after a pass.
        self.previews.remove(&key);
        let Some(watcher) = self.watcher.as_mut() else {
            return false;
        };
        match watcher.watch(key, dir) {
            Ok(()) => true,
            Err(e) if e.is_limit() => {
                if !self.limit_reported {
                    self.limit_reported = true;
                    warn!(
                        error = %e,
                        "no file events for the remaining drop folders: they are scanned every interval instead"
                    );
                }
                false
            }
            Err(e) => {
                // A missing or unreadable folder: its tenant's pass pauses it and says why.
                tracing::debug!(error = %e, "drop folder not watched");
                false
            }
        }
    }

    fn unwatch(&mut self, key: usize) {
        self.previews.remove(&key);
        if let Some(w) = self.watcher.as_mut() {
            w.unwatch(key);
        }
    }

    /// Watches a tenant's `preview/` too, once a pass has made it, so that a preview is taken
    /// within seconds like an upload. Tried after each pass until it works (or the kernel's
    /// watch limit is reached: then previews wait for the interval).
    fn watch_preview(&mut self, key: usize, drop_dir: &std::path::Path) {
        if self.previews.contains(&key) {
            return;
        }
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        match watcher.watch_also(key, &drop_dir.join(opscom_scheduler::PREVIEW_DIR)) {
            Ok(()) => {
                self.previews.insert(key);
            }
            Err(e) if e.is_limit() => {
                self.previews.insert(key);
                if !self.limit_reported {
                    self.limit_reported = true;
                    warn!(
                        error = %e,
                        "no file events for the remaining folders: they are scanned every interval instead"
                    );
                }
            }
            Err(e) => tracing::debug!(error = %e, "preview folder not watched yet"),
        }
    }
}

/// Tells the metrics that the scheduler loop stopped, when dropped.
struct LoopStopped<'a>(&'a Metrics);

impl Drop for LoopStopped<'_> {
    fn drop(&mut self) {
        self.0.loop_stopped();
    }
}

/// The longest time between two looks at the time-based alert conditions in `run`.
pub const ALERT_TICK: Duration = Duration::from_secs(60);

/// How often `run` looks at the time-based alert conditions: every [`ALERT_TICK`], or sooner
/// when `alert_after` or a tenant's `expect_file_every` is shorter (at most once a second).
fn alert_tick(config: &Config) -> Duration {
    let shortest = config
        .tenants
        .iter()
        .filter_map(|t| t.expect_file_every)
        .chain(config.operator.as_ref().map(|o| o.alert_after))
        .fold(ALERT_TICK, Duration::min);
    shortest.max(Duration::from_secs(1))
}

/// In `run`: the time-based alert conditions (`no_file`, `alert_after` running out) are looked
/// at even when no pass runs (the interval may be 5 minutes), and waiting alerts are retried.
async fn alert_ticks(inner: Arc<Inner>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (tick, tenants) = {
            let state = inner.state();
            (alert_tick(&state.config), state.config.tenants.clone())
        };
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let alerts = Arc::clone(&inner.alerts);
        // File system work (a `stat` per file, a write on a change): off the async threads.
        let _ = tokio::task::spawn_blocking(move || alerts.check(&tenants)).await;
        inner.deliver_alerts().await;
    }
}

fn warn_no_events(e: &WatchError, running: &mut Running, folders: usize) {
    running.limit_reported = e.is_limit();
    warn!(
        error = %e,
        folders,
        "file events are unavailable: every drop folder is scanned every interval instead"
    );
}

fn schedule_of(config: &Config) -> ScheduleConfig {
    ScheduleConfig {
        interval: config.schedule.interval,
        settle: config.schedule.settle,
    }
}

fn tenant_of<'a>(config: &'a Config, name: &str) -> &'a Tenant {
    config
        .tenants
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| unreachable!("a changed tenant is in the new configuration"))
}

/// Whether two tenants' settings are the same (token included).
fn same_tenant(a: &Tenant, b: &Tenant) -> bool {
    // `Debug` shows every setting but the token, which is compared on its own.
    format!("{a:?}") == format!("{b:?}")
        && a.api.as_ref().map(|api| api.token.expose_secret())
            == b.api.as_ref().map(|api| api.token.expose_secret())
}

fn same_mail(a: &MailSettings, b: &MailSettings) -> bool {
    match (a, b) {
        (
            MailSettings::Smtp {
                url: ua,
                password: pa,
            },
            MailSettings::Smtp {
                url: ub,
                password: pb,
            },
        ) => {
            ua.expose_secret() == ub.expose_secret()
                && pa.as_ref().map(|p| p.expose_secret()) == pb.as_ref().map(|p| p.expose_secret())
        }
        (MailSettings::Outbox { dir: a }, MailSettings::Outbox { dir: b }) => a == b,
        _ => false,
    }
}

fn build_mailer(mail: &MailSettings) -> Result<Arc<dyn Mailer>, Vec<Problem>> {
    match mail {
        MailSettings::Smtp { url, password } => {
            match SmtpMailer::from_url(url.expose_secret(), password.clone()) {
                Ok(m) => Ok(Arc::new(m)),
                Err(e) => Err(vec![Problem {
                    key: "mail.smtp_url".into(),
                    reason: e.to_string(),
                }]),
            }
        }
        // `.eml` files are 0640, for a group that hands them on; no one else's.
        MailSettings::Outbox { dir } => match ensure_private_dir(dir, 0o750) {
            Ok(()) => Ok(Arc::new(OutboxMailer::new(dir))),
            Err(e) => Err(vec![Problem {
                key: "mail.outbox_dir".into(),
                reason: format!("{}: {e}", dir.display()),
            }]),
        },
    }
}
