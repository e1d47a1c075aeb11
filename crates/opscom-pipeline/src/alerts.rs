//! Operator alerts: per tenant, a few named conditions (token refused, API unreachable, push
//! URL not found, folder unusable, reports unsent, no file) that start and clear, with one
//! e-mail to the `[operator]` address when a condition starts (or lasts past `alert_after`) and
//! one when it clears — never one per pass or per file.
//!
//! The state lives in `state_dir`, shared by every process of one configuration (`once` runs,
//! several `run` instances), so that a restart or another process never sends an alert again:
//!
//! - `alerts.json`: `{ TENANT: { ALERT: { "since", "detail", "notified" } } }`, one entry per
//!   condition present now;
//! - `last-problems.json`: `{ TENANT: { "at", "what" } }`, the last problem that began;
//! - `file-activity.json`: `{ TENANT: { "first_seen", "last_file" } }`, for `no_file`.
//!
//! Each is replaced atomically (temporary file, rename) while `alerts.lock` is locked, and read
//! again only when it changed on disk. Alert e-mails are spooled in `state_dir/operator/outbox`
//! before any sending ([`opscom_mail::Spool`]) and retried until the mail server takes them.
//! docs/operating.md ("Operator alerts") documents the files and the rules.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use opscom_mail::{AlertChange, Mailer, OperatorAlert, OperatorEnvelope, Spool, compose_alert};
use opscom_scheduler::Clock;
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use crate::config::{DEFAULT_ALERT_AFTER, Operator, Tenant};
use crate::file::DeferReason;
use crate::tenant::TenantPass;

/// The alerts of every tenant, keyed by tenant then alert name.
pub const ALERTS_FILE: &str = "alerts.json";
/// The last problem that began, per tenant.
pub const LAST_PROBLEMS_FILE: &str = "last-problems.json";
/// When each tenant was first seen and last sent a file.
pub const FILE_ACTIVITY_FILE: &str = "file-activity.json";
/// Locked while the three files above are read and replaced.
const LOCK_FILE: &str = "alerts.lock";
/// The spool of alert e-mails, under `state_dir`.
pub const OPERATOR_OUTBOX: &str = "operator/outbox";

/// The conditions an operator is alerted about. Their names are stable (files, metrics, mail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertKind {
    /// The API refuses the tenant's token (9001/9002, 401/403). Alerts at once.
    TokenRefused,
    /// The API has been unreachable (outage, timeouts, refused connections) for `alert_after`.
    ApiUnreachable,
    /// The API answers 404 for the tenant's push URL: its `api_url` is wrong. Alerts at once.
    ApiNotFound,
    /// The tenant is paused: its folders cannot be used. Alerts at once.
    FolderUnusable,
    /// Reports to the client have waited in its spool for `alert_after`.
    ReportsUnsent,
    /// A tenant with `expect_file_every` sent no file for that long.
    NoFile,
}

impl AlertKind {
    /// Every alert, in a fixed order.
    pub const ALL: [AlertKind; 6] = [
        AlertKind::TokenRefused,
        AlertKind::ApiUnreachable,
        AlertKind::ApiNotFound,
        AlertKind::FolderUnusable,
        AlertKind::ReportsUnsent,
        AlertKind::NoFile,
    ];

    /// The stable snake_case name (`token_refused`…), as in `alerts.json`.
    pub fn name(self) -> &'static str {
        match self {
            AlertKind::TokenRefused => "token_refused",
            AlertKind::ApiUnreachable => "api_unreachable",
            AlertKind::ApiNotFound => "api_not_found",
            AlertKind::FolderUnusable => "folder_unusable",
            AlertKind::ReportsUnsent => "reports_unsent",
            AlertKind::NoFile => "no_file",
        }
    }

    /// The alert named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<AlertKind> {
        AlertKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// What is wrong, in one line.
    fn summary(self) -> &'static str {
        match self {
            AlertKind::TokenRefused => "the OPSCOM API refuses this tenant's token",
            AlertKind::ApiUnreachable => "the OPSCOM API cannot be reached",
            AlertKind::ApiNotFound => "the OPSCOM API answers 404 for this tenant's push URL",
            AlertKind::FolderUnusable => "the tenant is paused: its folders cannot be used",
            AlertKind::ReportsUnsent => "reports to the client cannot be sent",
            AlertKind::NoFile => "the client has sent no file",
        }
    }

    /// How long the condition must last before the e-mail.
    fn threshold(self, alert_after: Duration) -> Duration {
        match self {
            AlertKind::ApiUnreachable | AlertKind::ReportsUnsent => alert_after,
            // A refusal, a wrong URL and a paused tenant do not fix themselves; `no_file` has
            // its own period, counted in its `since`.
            _ => Duration::ZERO,
        }
    }

    /// How to fix it, for `tenant`.
    fn fix(self, tenant: &Tenant, alert_after: Duration) -> String {
        let name = &tenant.name;
        // A tenant built by a program with its own `PushApi` has no API settings to point at.
        let (token_source, api_url) = match &tenant.api {
            Some(api) => (api.token_source.as_str(), api.url.as_str()),
            None => (
                "the API client the program gave the service",
                "the tenant's API",
            ),
        };
        match self {
            AlertKind::TokenRefused => {
                let apply = if token_source.contains("api_token_env") {
                    "restart the service (an environment variable is read at start)"
                } else {
                    "reload the service (systemctl reload opscom-import)"
                };
                format!(
                    "The OPSCOM API refuses this tenant's token (error 9001/9002, or HTTP \
                     401/403): put a valid Push API token for tenant {name} in {}, then {apply}. \
                     The tenant's files wait and are imported once the token is accepted.",
                    token_source
                )
            }
            AlertKind::ApiUnreachable => format!(
                "The OPSCOM API at {} has not answered for over {}: check this host's network, \
                 DNS and proxy, and OPSCOM's status. Files wait and are imported when it answers.",
                api_url,
                humantime::format_duration(alert_after)
            ),
            AlertKind::ApiNotFound => format!(
                "Nothing answers at {}{}: the tenant's api_url is wrong (a configuration error, \
                 not an outage). Set tenant {name}'s api_url to the API's base URL (for example \
                 https://controller.operationscommander.io, without a path) and reload. Files \
                 wait meanwhile.",
                api_url,
                opscom_api::PUSH_PATH
            ),
            AlertKind::FolderUnusable => format!(
                "Check that the drop folder {} exists and is a folder the service's user can \
                 read and write, that the work folder {} is on the same filesystem, and that \
                 .bak in the drop folder is a folder. Each pass looks again; imports resume by \
                 themselves.",
                tenant.drop_dir.display(),
                tenant.work_dir.display()
            ),
            AlertKind::ReportsUnsent => format!(
                "Reports to the client have waited in {} for over {}: check [mail] smtp_url \
                 and the mail server's log. They are retried on every pass and none is lost.",
                tenant.work_dir.join("outbox").display(),
                humantime::format_duration(alert_after)
            ),
            AlertKind::NoFile => format!(
                "Ask the client whether their export still runs, and check their SFTP account \
                 and drop folder {} (expect_file_every = \"{}\").",
                tenant.drop_dir.display(),
                tenant
                    .expect_file_every
                    .map(|d| humantime::format_duration(d).to_string())
                    .unwrap_or_default()
            ),
        }
    }
}

impl std::fmt::Display for AlertKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One condition present now, as `alerts.json` holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertEntry {
    /// When the condition started (RFC 3339, UTC).
    pub since: String,
    /// What was seen when it started (no secret, no row data).
    pub detail: String,
    /// Whether the alert e-mail is spooled (it is then sent, or retried until sent).
    pub notified: bool,
}

/// The last problem that began for a tenant, as `last-problems.json` holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastProblem {
    /// When it began (RFC 3339, UTC).
    pub at: String,
    /// `ALERT: detail`.
    pub what: String,
}

/// When a tenant was first seen and last sent a file, as `file-activity.json` holds it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FileActivity {
    /// When this state first saw the tenant (RFC 3339, UTC).
    pub first_seen: String,
    /// When a file of the tenant was last taken, archived or deferred (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_file: Option<String>,
}

type AlertMap = BTreeMap<String, BTreeMap<String, AlertEntry>>;

/// The three files, as last read.
#[derive(Debug, Default, Clone)]
struct Files {
    alerts: AlertMap,
    problems: BTreeMap<String, LastProblem>,
    activity: BTreeMap<String, FileActivity>,
}

/// One tenant's part of [`Files`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct View {
    alerts: BTreeMap<String, AlertEntry>,
    problem: Option<LastProblem>,
    activity: Option<FileActivity>,
}

impl Files {
    fn view(&self, tenant: &str) -> View {
        View {
            alerts: self.alerts.get(tenant).cloned().unwrap_or_default(),
            problem: self.problems.get(tenant).cloned(),
            activity: self.activity.get(tenant).cloned(),
        }
    }

    fn put(&mut self, tenant: &str, view: View) {
        if view.alerts.is_empty() {
            self.alerts.remove(tenant);
        } else {
            self.alerts.insert(tenant.to_owned(), view.alerts);
        }
        match view.problem {
            Some(p) => self.problems.insert(tenant.to_owned(), p),
            None => self.problems.remove(tenant),
        };
        match view.activity {
            Some(a) => self.activity.insert(tenant.to_owned(), a),
            None => self.activity.remove(tenant),
        };
    }
}

/// What one pass (or a clock tick) says about a tenant's conditions.
#[derive(Debug, Default, Clone)]
pub struct Observation {
    /// Conditions seen present (`Some(detail)`) or seen gone (`None`); those left out are
    /// unknown and keep their state.
    pub conditions: Vec<(AlertKind, Option<String>)>,
    /// A file of the tenant was taken (archived or deferred).
    pub file_taken: bool,
}

impl Observation {
    /// What `pass` says. A pass skipped because another process holds the tenant says nothing.
    pub fn of_pass(tenant: &Tenant, pass: &TenantPass) -> Observation {
        let mut obs = Observation::default();
        if pass.busy {
            return obs;
        }
        obs.file_taken = !pass.files.is_empty();
        obs.conditions
            .push((AlertKind::FolderUnusable, pass.fault.clone()));
        if pass.reports_pending {
            let outbox = tenant.work_dir.join("outbox");
            let detail = format!("reports wait in {}", outbox.display());
            obs.conditions
                .push((AlertKind::ReportsUnsent, Some(detail)));
        } else if pass.fault.is_none() {
            // A pass stopped by a fault may not have looked at the spool.
            obs.conditions.push((AlertKind::ReportsUnsent, None));
        }
        let api = [
            AlertKind::TokenRefused,
            AlertKind::ApiUnreachable,
            AlertKind::ApiNotFound,
        ];
        let mut set = |kind: AlertKind, detail: Option<String>| {
            obs.conditions.retain(|(k, _)| *k != kind);
            obs.conditions.push((kind, detail));
        };
        if pass.api_reached {
            for kind in api {
                set(kind, None);
            }
        }
        match &pass.defer_reason {
            Some(DeferReason::TokenRejected(e)) => {
                // The API answered: it is reachable, and the URL is right.
                set(AlertKind::TokenRefused, Some(e.clone()));
                set(AlertKind::ApiUnreachable, None);
                set(AlertKind::ApiNotFound, None);
            }
            Some(DeferReason::ApiUnreachable(e)) => {
                set(AlertKind::ApiUnreachable, Some(e.clone()));
                set(AlertKind::ApiNotFound, None);
            }
            Some(DeferReason::ApiNotFound(e)) => {
                set(AlertKind::ApiNotFound, Some(e.clone()));
                set(AlertKind::ApiUnreachable, None);
            }
            _ => {}
        }
        obs
    }
}

/// An e-mail decided by [`step`].
#[derive(Debug, Clone)]
enum Notice {
    Started(AlertKind, AlertEntry),
    Cleared(AlertKind, AlertEntry),
}

/// The alert settings in force (`[operator]`, replaced by a reload).
#[derive(Debug, Clone)]
struct Settings {
    envelope: Option<OperatorEnvelope>,
    alert_after: Duration,
}

impl Settings {
    fn of(operator: Option<&Operator>) -> Settings {
        let envelope = operator.and_then(|o| match OperatorEnvelope::new(&o.from, &o.email) {
            Ok(e) => Some(e),
            Err(e) => {
                // The configuration checks the addresses first; this is a bug if it shows.
                error!(error = %e, "operator alerts are off: an [operator] address is unusable");
                None
            }
        });
        Settings {
            envelope,
            alert_after: operator.map_or(DEFAULT_ALERT_AFTER, |o| o.alert_after),
        }
    }
}

fn format_time(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

fn parse_time(text: &str) -> Option<SystemTime> {
    text.parse::<jiff::Timestamp>()
        .ok()
        .and_then(|t| SystemTime::try_from(t).ok())
}

/// Applies `obs` to one tenant's `view` at `now`: conditions start and clear, and the e-mails
/// due are returned (starts whose threshold passed and that are not yet notified, clears of
/// notified ones). Pure: the caller spools the e-mails and writes the files.
fn step(
    view: &mut View,
    obs: &Observation,
    tenant: &Tenant,
    settings: &Settings,
    now: SystemTime,
) -> Vec<Notice> {
    let mut notices = Vec::new();
    let mut conditions: Vec<(AlertKind, Option<String>, SystemTime)> = obs
        .conditions
        .iter()
        .map(|(k, d)| (*k, d.clone(), now))
        .collect();
    // Only a tenant that expects files needs its activity kept: with thousands of tenants,
    // rewriting the shared file for every file taken would cost each file the whole file.
    if obs.file_taken && tenant.expect_file_every.is_some() {
        let activity = view.activity.get_or_insert_with(|| FileActivity {
            first_seen: format_time(now),
            last_file: None,
        });
        activity.last_file = Some(format_time(now));
    }
    match tenant.expect_file_every {
        Some(every) => {
            let activity = view.activity.get_or_insert_with(|| FileActivity {
                first_seen: format_time(now),
                last_file: None,
            });
            let (label, base) = match &activity.last_file {
                Some(t) => ("the last file", t),
                None => ("first seen", &activity.first_seen),
            };
            let base_time = parse_time(base).unwrap_or(now);
            let due = base_time + every;
            let condition = (now >= due).then(|| {
                format!(
                    "no file since {base} ({label}); expect_file_every = \"{}\"",
                    humantime::format_duration(every)
                )
            });
            conditions.push((AlertKind::NoFile, condition, due));
        }
        None => conditions.push((AlertKind::NoFile, None, now)),
    }
    for (kind, detail, since) in conditions {
        match detail {
            Some(detail) => {
                if !view.alerts.contains_key(kind.name()) {
                    let since = format_time(since);
                    view.problem = Some(LastProblem {
                        at: since.clone(),
                        what: format!("{kind}: {detail}"),
                    });
                    view.alerts.insert(
                        kind.name().to_owned(),
                        AlertEntry {
                            since,
                            detail,
                            notified: false,
                        },
                    );
                }
            }
            None => {
                if let Some(entry) = view.alerts.remove(kind.name())
                    && entry.notified
                {
                    notices.push(Notice::Cleared(kind, entry));
                }
            }
        }
    }
    if settings.envelope.is_some() {
        for (name, entry) in &view.alerts {
            let Some(kind) = AlertKind::from_name(name) else {
                continue;
            };
            let since = parse_time(&entry.since).unwrap_or(now);
            let lasted = now.duration_since(since).unwrap_or_default();
            if !entry.notified && lasted >= kind.threshold(settings.alert_after) {
                notices.push(Notice::Started(kind, entry.clone()));
            }
        }
    }
    notices
}

/// The operator alerts of every tenant: their state on disk, the e-mails, and an in-memory view
/// for metrics and `status`.
pub struct Alerts {
    dir: PathBuf,
    clock: Arc<dyn Clock>,
    settings: Mutex<Settings>,
    cache: Mutex<Cache>,
    /// Something may wait in the operator outbox (true at start: look once).
    outbox_dirty: AtomicBool,
    temp_seq: AtomicU64,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The files as last read, and how they looked on disk then.
#[derive(Debug, Default)]
struct Cache {
    files: Files,
    stamp: Option<Stamp>,
}

/// Identifies a version of the files on disk (each write is a new inode).
type Stamp = [Option<(SystemTime, u64, u64)>; 2];

impl Alerts {
    /// The alerts kept in `state_dir`, mailed to `operator` (none: state only), timed by `clock`.
    pub fn new(state_dir: &Path, operator: Option<&Operator>, clock: Arc<dyn Clock>) -> Alerts {
        Alerts {
            dir: state_dir.to_owned(),
            clock,
            settings: Mutex::new(Settings::of(operator)),
            cache: Mutex::new(Cache::default()),
            outbox_dirty: AtomicBool::new(true),
            temp_seq: AtomicU64::new(0),
        }
    }

    /// Takes the `[operator]` table of a reloaded configuration.
    pub fn configure(&self, operator: Option<&Operator>) {
        *lock(&self.settings) = Settings::of(operator);
    }

    /// The alerts firing now, by tenant: conditions present that lasted past their threshold
    /// (whether or not an e-mail could be sent). Read again from disk when it changed.
    pub fn active(&self) -> Vec<(String, AlertKind)> {
        let alert_after = lock(&self.settings).alert_after;
        let now = self.clock.now();
        let mut cache = lock(&self.cache);
        self.refresh(&mut cache);
        let mut out = Vec::new();
        for (tenant, alerts) in &cache.files.alerts {
            for (name, entry) in alerts {
                let Some(kind) = AlertKind::from_name(name) else {
                    continue;
                };
                let since = parse_time(&entry.since).unwrap_or(now);
                if now.duration_since(since).unwrap_or_default() >= kind.threshold(alert_after) {
                    out.push((tenant.clone(), kind));
                }
            }
        }
        out
    }

    /// Every condition present now (firing or not yet), as `alerts.json` holds it.
    pub fn conditions(&self) -> BTreeMap<String, BTreeMap<String, AlertEntry>> {
        let mut cache = lock(&self.cache);
        self.refresh(&mut cache);
        cache.files.alerts.clone()
    }

    /// Takes what one pass over `tenant` says, and the time-based conditions.
    pub fn after_pass(&self, tenant: &Tenant, pass: &TenantPass) {
        self.observe(tenant, &Observation::of_pass(tenant, pass));
    }

    /// Looks at the time-based conditions of every tenant (`no_file`, and alerts whose
    /// `alert_after` passed) without a pass: `run` calls it every minute at least.
    pub fn check(&self, tenants: &[Tenant]) {
        for tenant in tenants {
            self.observe(tenant, &Observation::default());
        }
    }

    /// Applies `obs` to `tenant`: on disk, under the lock, only when something changes.
    pub fn observe(&self, tenant: &Tenant, obs: &Observation) {
        let settings = lock(&self.settings).clone();
        let now = self.clock.now();
        {
            // A dry run on the copy in memory: an idle pass costs one `stat` per file.
            let mut cache = lock(&self.cache);
            self.refresh(&mut cache);
            let mut view = cache.files.view(&tenant.name);
            let before = view.clone();
            let notices = step(&mut view, obs, tenant, &settings, now);
            if view == before && notices.is_empty() {
                return;
            }
        }
        if let Err(e) = self.commit(tenant, obs, &settings, now) {
            error!(tenant = %tenant.name, error = %e, "cannot keep the alert state");
        }
    }

    fn commit(
        &self,
        tenant: &Tenant,
        obs: &Observation,
        settings: &Settings,
        now: SystemTime,
    ) -> std::io::Result<()> {
        crate::private::ensure_private_dir(&self.dir, 0o750)?;
        let lock_file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.dir.join(LOCK_FILE))?;
        lock_file.lock()?;
        // Under the lock, the files as they are on disk, not our copy.
        let mut files = self.load();
        let mut view = files.view(&tenant.name);
        let before = view.clone();
        let notices = step(&mut view, obs, tenant, settings, now);
        for notice in notices {
            let (kind, entry, change) = match &notice {
                Notice::Started(kind, entry) => (*kind, entry, AlertChange::Started),
                Notice::Cleared(kind, entry) => {
                    let since = parse_time(&entry.since).unwrap_or(now);
                    let lasted = now.duration_since(since).unwrap_or_default();
                    (*kind, entry, AlertChange::Cleared { lasted })
                }
            };
            match self.spool(tenant, kind, entry, change, settings, now) {
                Ok(()) => {
                    if let Notice::Started(..) = notice {
                        error!(tenant = %tenant.name, alert = %kind, detail = %entry.detail, "operator alert");
                        if let Some(e) = view.alerts.get_mut(kind.name()) {
                            e.notified = true;
                        }
                    }
                }
                // Not notified: tried again on the next pass or tick.
                Err(e) => {
                    error!(tenant = %tenant.name, alert = %kind, error = %e, "cannot spool an operator alert")
                }
            }
        }
        for (name, entry) in &view.alerts {
            if !before.alerts.contains_key(name) {
                warn!(tenant = %tenant.name, alert = %name, detail = %entry.detail, "alert condition started");
            }
        }
        for (name, entry) in &before.alerts {
            if !view.alerts.contains_key(name) {
                info!(tenant = %tenant.name, alert = %name, since = %entry.since, "alert condition cleared");
            }
        }
        if view != before {
            let (alerts, problem, activity) = (
                view.alerts != before.alerts,
                view.problem != before.problem,
                view.activity != before.activity,
            );
            files.put(&tenant.name, view);
            if alerts {
                self.write(ALERTS_FILE, &files.alerts)?;
            }
            if problem {
                self.write(LAST_PROBLEMS_FILE, &files.problems)?;
            }
            if activity {
                self.write(FILE_ACTIVITY_FILE, &files.activity)?;
            }
        }
        let mut cache = lock(&self.cache);
        cache.stamp = Some(self.stamp());
        cache.files = files;
        Ok(())
        // The lock is released when `lock_file` is closed.
    }

    /// Composes an alert e-mail and spools it (replacing the same one if it still waits).
    fn spool(
        &self,
        tenant: &Tenant,
        kind: AlertKind,
        entry: &AlertEntry,
        change: AlertChange,
        settings: &Settings,
        now: SystemTime,
    ) -> Result<(), String> {
        let Some(envelope) = &settings.envelope else {
            return Ok(()); // a clear without [operator] any more: nothing to say
        };
        let alert = OperatorAlert {
            tenant: tenant.name.clone(),
            alert: kind.name().to_owned(),
            summary: kind.summary().to_owned(),
            detail: entry.detail.clone(),
            fix: kind.fix(tenant, settings.alert_after),
            since: parse_time(&entry.since).unwrap_or(now),
            change,
        };
        let date = jiff::Timestamp::try_from(now).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let message = compose_alert(&alert, envelope, date).map_err(|e| e.to_string())?;
        let spool = Spool::open(self.dir.join(OPERATOR_OUTBOX)).map_err(|e| e.to_string())?;
        spool.enqueue(&message).map_err(|e| e.to_string())?;
        self.outbox_dirty.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Sends what waits in the operator outbox through `mailer`, when something may wait.
    pub async fn deliver(&self, mailer: &dyn Mailer) {
        if !self.outbox_dirty.swap(false, Ordering::Relaxed) {
            return;
        }
        let dir = self.dir.join(OPERATOR_OUTBOX);
        if !dir.is_dir() {
            return;
        }
        let result = match Spool::open(dir) {
            Ok(spool) => spool.deliver_pending(mailer).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(stats) if stats.still_pending == 0 => {}
            Ok(stats) => {
                self.outbox_dirty.store(true, Ordering::Relaxed);
                warn!(pending = stats.still_pending, error = ?stats.last_error, "operator alerts kept for a later pass");
            }
            Err(e) => {
                self.outbox_dirty.store(true, Ordering::Relaxed);
                warn!(error = %e, "cannot read the operator alert spool");
            }
        }
    }

    /// Reads the files again when they changed on disk since the last read.
    fn refresh(&self, cache: &mut Cache) {
        let stamp = self.stamp();
        if cache.stamp.as_ref() != Some(&stamp) {
            cache.files = self.load();
            cache.stamp = Some(stamp);
        }
    }

    fn stamp(&self) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        [ALERTS_FILE, FILE_ACTIVITY_FILE].map(|name| {
            fs::metadata(self.dir.join(name)).ok().map(|m| {
                (
                    m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    m.len(),
                    m.ino(),
                )
            })
        })
    }

    fn load(&self) -> Files {
        Files {
            alerts: self.read(ALERTS_FILE),
            problems: self.read(LAST_PROBLEMS_FILE),
            activity: self.read(FILE_ACTIVITY_FILE),
        }
    }

    /// A file's contents; empty when it is missing or unreadable (said in the log).
    fn read<T: for<'de> Deserialize<'de> + Default>(&self, name: &str) -> T {
        let path = self.dir.join(name);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                error!(file = %path.display(), error = %e, "alert state unreadable: starting afresh");
                T::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => T::default(),
            Err(e) => {
                error!(file = %path.display(), error = %e, "alert state unreadable: starting afresh");
                T::default()
            }
        }
    }

    /// Replaces `name` atomically: a temporary file, flushed, renamed over it.
    fn write<T: Serialize>(&self, name: &str, value: &T) -> std::io::Result<()> {
        let path = self.dir.join(name);
        let temp = self.dir.join(format!(
            ".{name}.tmp-{}-{}",
            std::process::id(),
            self.temp_seq.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            // The owner's alone, whatever the umask (details name tenants and files).
            let mut file = File::options()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)?;
            serde_json::to_writer_pretty(&mut file, value)?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            fs::rename(&temp, &path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
