//! The importer's TOML configuration: parsed strictly, checked whole, secrets resolved.
//!
//! [`Config::load`] reports every problem at once, in file order, each with its key, the reason
//! and its line, so an operator fixes a file in one go. The file is read table by table and key by
//! key: an unknown key (reported with a "did you mean" hint when a known key is close), a value of
//! the wrong type or a missing key is a problem for that key alone, and every other key of every
//! table is still checked. Only a file that is not TOML at all is reported alone.
//!
//! Secrets (API tokens, the SMTP password) are read from the environment or a file and kept in
//! [`SecretString`]s, which print as `[REDACTED]`.

mod overlap;
mod table;

use std::collections::HashSet;
use std::fmt;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use toml::de::DeTable;

use overlap::{Folders, check_overlaps};
use table::{Place, Problems, Table};

/// A checked configuration, ready to build the service from.
///
/// [`Config::load`] and [`Config::parse`] build it from a file; a program that embeds the
/// importer builds it with [`Config::new`] and the `with_*` setters. It is `#[non_exhaustive]`:
/// a new setting comes with a default and a setter, and breaks no caller.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Claims, checkpoints, unsent reports and per-file records live here.
    pub state_dir: PathBuf,
    /// How often every drop folder is scanned, and how long a file must rest before it is taken.
    pub schedule: Schedule,
    /// Where reports go.
    pub mail: MailSettings,
    /// The clients, each with its own drop folder, token and addresses.
    pub tenants: Vec<Tenant>,
    /// The `[operator]` table: where operator alerts go. `None`: no alert e-mail (alert state is
    /// still kept).
    pub operator: Option<Operator>,
    /// The `[metrics]` table: where `run` serves `/metrics` and `/healthz`; `None`: no listener.
    pub metrics: Option<MetricsSettings>,
    /// How `records.jsonl` is rotated and how long its rotated parts are kept.
    pub records: RecordsSettings,
    /// `[mail] from`: the operator's sender address, used by tenants whose `from_mode` is
    /// `"on_behalf"`. `None`: no tenant may use that mode.
    pub mail_from: Option<String>,
    /// `[mail] dkim_key_file`, `dkim_selector`, `dkim_domain`: every report is DKIM-signed in
    /// process with this key. `None`: reports are not signed.
    pub dkim: Option<DkimSettings>,
}

impl Config {
    /// A configuration of `tenants` keeping its state in `state_dir` and sending reports
    /// through `mail`, with the defaults of a file that gives nothing else: [`Schedule`]'s and
    /// [`RecordsSettings`]' defaults, no operator alerts, no metrics listener.
    pub fn new(state_dir: impl Into<PathBuf>, mail: MailSettings, tenants: Vec<Tenant>) -> Config {
        Config {
            state_dir: state_dir.into(),
            schedule: Schedule::default(),
            mail,
            tenants,
            operator: None,
            metrics: None,
            records: RecordsSettings::default(),
            mail_from: None,
            dkim: None,
        }
    }

    /// Sends reports of `on_behalf` tenants from `from` (`[mail] from`).
    pub fn with_mail_from(mut self, from: impl Into<String>) -> Config {
        self.mail_from = Some(from.into());
        self
    }

    /// DKIM-signs every report with `dkim`.
    pub fn with_dkim(mut self, dkim: DkimSettings) -> Config {
        self.dkim = Some(dkim);
        self
    }

    /// Scans every `schedule.interval`; takes files unchanged for `schedule.settle`.
    pub fn with_schedule(mut self, schedule: Schedule) -> Config {
        self.schedule = schedule;
        self
    }

    /// Sends operator alerts as `operator` says (the `[operator]` table).
    pub fn with_operator(mut self, operator: Operator) -> Config {
        self.operator = Some(operator);
        self
    }

    /// Serves `/metrics` and `/healthz` in `run` (the `[metrics]` table).
    pub fn with_metrics(mut self, metrics: MetricsSettings) -> Config {
        self.metrics = Some(metrics);
        self
    }

    /// Rotates and keeps `records.jsonl` as `records` says (the `[records]` table).
    pub fn with_records(mut self, records: RecordsSettings) -> Config {
        self.records = records;
        self
    }
}

/// DKIM signing of reports (the `dkim_*` keys of `[mail]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimSettings {
    /// The PEM private key (RSA or Ed25519), readable by the service only.
    pub key_file: PathBuf,
    /// The selector: the public key is published at `SELECTOR._domainkey.DOMAIN`.
    pub selector: String,
    /// The signing domain (`d=`).
    pub domain: String,
}

/// Whose address a tenant's reports are sent from (`from_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FromMode {
    /// `"own"` (the default): From and Reply-To are the tenant's `reply_to_admin_email`.
    #[default]
    Own,
    /// `"on_behalf"`: From is `[mail] from` with the display name "NAME via OPSCOM", Reply-To
    /// is the tenant's `reply_to_admin_email` (for a client domain that publishes DMARC
    /// `p=reject`).
    OnBehalf,
}

/// What a tenant's imports push (`mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImportMode {
    /// `"full"` (the default): every valid row is pushed.
    #[default]
    Full,
    /// `"delta"`: a row whose values equal those the API last accepted for its `unique_id` is
    /// not pushed again (see [`crate::delta`]).
    Delta,
}

/// `full_every` when a tenant leaves it out: a delta tenant is pushed in full once a week.
pub const DEFAULT_FULL_EVERY: Duration = Duration::from_secs(7 * 24 * 3600);

/// The `[metrics]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsSettings {
    /// The socket address `run` listens on for `/metrics` and `/healthz` (`127.0.0.1:9464`).
    pub listen: std::net::SocketAddr,
}

/// The `[records]` table: rotation and retention of `state_dir/records.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordsSettings {
    /// `records.jsonl` is rotated before an append once it holds this many bytes (default
    /// 10 MiB); it is also rotated once a day (see [`crate::record`]).
    pub rotate_size: u64,
    /// Rotated parts older than this are deleted (default 365 days).
    pub retention: Duration,
}

impl Default for RecordsSettings {
    fn default() -> Self {
        RecordsSettings {
            rotate_size: 10 << 20,
            retention: Duration::from_secs(365 * 24 * 3600),
        }
    }
}

/// The `[operator]` table: the operations team's address for alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// Receiver of operator alerts (`email`).
    pub email: String,
    /// Sender of operator alerts (`from`).
    pub from: String,
    /// How long the API may stay unreachable, or reports unsent, before an alert (`alert_after`,
    /// default 1 hour).
    pub alert_after: Duration,
}

/// `alert_after` when `[operator]` leaves it out.
pub const DEFAULT_ALERT_AFTER: Duration = Duration::from_secs(3600);

/// The `[schedule]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Time between two scans of every drop folder (default 5 minutes).
    pub interval: Duration,
    /// A file must be unchanged this long before it is taken (default 10 seconds).
    pub settle: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            interval: Duration::from_secs(300),
            settle: Duration::from_secs(10),
        }
    }
}

/// The `[mail]` table: exactly one transport.
#[derive(Debug, Clone)]
pub enum MailSettings {
    /// Send through an SMTP server.
    Smtp {
        /// `smtp://`, `smtps://` or `smtp://…?tls=required`; may carry credentials.
        url: SecretString,
        /// The password from `smtp_password_env`, if given.
        password: Option<SecretString>,
    },
    /// Write `.eml` files into a folder instead of sending.
    Outbox {
        /// The folder.
        dir: PathBuf,
    },
}

/// `concurrency` when a tenant leaves it out.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// `max_file_size` when a tenant leaves it out (100 MiB).
pub const DEFAULT_MAX_FILE_SIZE: u64 = 100 << 20;
/// `api_retry_budget` when a tenant leaves it out.
pub const DEFAULT_API_RETRY_BUDGET: Duration = Duration::from_secs(20);

/// One client of the service.
///
/// [`Config::load`] builds it from a `[[tenant]]` table; a program that embeds the importer
/// builds it with [`Tenant::new`] and the `with_*` setters. It is `#[non_exhaustive]`: a new
/// setting comes with a default and a setter, and breaks no caller.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Tenant {
    /// Short name, used in folders under `state_dir`, logs and records.
    pub name: String,
    /// The client's SFTP drop folder.
    pub drop_dir: PathBuf,
    /// Where this tenant's claims, checkpoints and reports live: `state_dir/tenants/NAME` unless
    /// `work_dir` is set. Must be on the drop folder's filesystem (claims are renames).
    pub work_dir: PathBuf,
    /// How the service's own HTTP client reaches the OPSCOM API for this tenant: always set by
    /// [`Config::load`], required by [`crate::Service::from_config`]; `None` for a caller that
    /// brings its own [`opscom_api::PushApi`] ([`crate::Service::with_parts`],
    /// [`crate::TenantRunner::new`]).
    pub api: Option<ApiSettings>,
    /// Sender (and Reply-To) of the failure e-mail.
    pub reply_to_admin_email: String,
    /// Receiver of the failure e-mail.
    pub failed_import_email: String,
    /// API requests in flight for this tenant (default [`DEFAULT_CONCURRENCY`]).
    pub concurrency: usize,
    /// Larger uploads are rejected whole (default [`DEFAULT_MAX_FILE_SIZE`]).
    pub max_file_size: u64,
    /// Archived files in the drop folder's `.bak` are deleted this long after they were
    /// archived; `None` (the default): kept until someone removes them.
    pub bak_retention: Option<Duration>,
    /// The client is expected to send a file at least this often (`expect_file_every`): the
    /// operator is alerted when none came for this long. `None`: no expectation.
    pub expect_file_every: Option<Duration>,
    /// A file imported with no failure is reported by a short e-mail with its counts
    /// (`notify_on_success`, default false). A file that was reported delayed is always
    /// followed up, whatever this says.
    pub notify_on_success: bool,
    /// Whose address the reports are sent from (`from_mode`).
    pub from_mode: FromMode,
    /// How the client is named in an `on_behalf` sender ("Acme Parking via OPSCOM";
    /// `display_name`, default the tenant's name).
    pub display_name: Option<String>,
    /// Full or delta imports (`mode`).
    pub mode: ImportMode,
    /// A delta tenant is pushed in full when its last full push is this old (`full_every`,
    /// default [`DEFAULT_FULL_EVERY`]).
    pub full_every: Duration,
    /// A file that would change more than this percentage of the users already known is held
    /// for the client's approval (`hold_changed_percent`). `None`: never held.
    pub hold_changed_percent: Option<f64>,
}

impl Tenant {
    /// A tenant named `name` (a-z, 0-9, `-`, `_`; it names folders and appears in logs) whose
    /// client uploads into `drop_dir`, with its work folder `work_dir` (on the drop folder's
    /// filesystem, outside it), whose failure e-mails go from `reply_to_admin_email` to
    /// `failed_import_email`. Defaults for the rest: [`DEFAULT_CONCURRENCY`],
    /// [`DEFAULT_MAX_FILE_SIZE`], archived files kept, no file expected, and no API settings
    /// (give them with [`with_api`](Self::with_api) for [`crate::Service::from_config`]).
    pub fn new(
        name: impl Into<String>,
        drop_dir: impl Into<PathBuf>,
        work_dir: impl Into<PathBuf>,
        reply_to_admin_email: impl Into<String>,
        failed_import_email: impl Into<String>,
    ) -> Tenant {
        Tenant {
            name: name.into(),
            drop_dir: drop_dir.into(),
            work_dir: work_dir.into(),
            api: None,
            reply_to_admin_email: reply_to_admin_email.into(),
            failed_import_email: failed_import_email.into(),
            concurrency: DEFAULT_CONCURRENCY,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            bak_retention: None,
            expect_file_every: None,
            notify_on_success: false,
            from_mode: FromMode::Own,
            display_name: None,
            mode: ImportMode::Full,
            full_every: DEFAULT_FULL_EVERY,
            hold_changed_percent: None,
        }
    }

    /// E-mails a short report with the counts when a file imports with no failure.
    pub fn with_notify_on_success(mut self, notify: bool) -> Tenant {
        self.notify_on_success = notify;
        self
    }

    /// Sends the reports from the operator's address on the client's behalf (`name` as the
    /// display name, "NAME via OPSCOM"), or from the client's own.
    pub fn with_from_mode(mut self, mode: FromMode, display_name: Option<String>) -> Tenant {
        self.from_mode = mode;
        self.display_name = display_name;
        self
    }

    /// Pushes only new and changed rows ([`ImportMode::Delta`]), in full every `full_every`.
    pub fn with_mode(mut self, mode: ImportMode, full_every: Duration) -> Tenant {
        self.mode = mode;
        self.full_every = full_every;
        self
    }

    /// Holds a file that would change more than `percent` % of the known users.
    pub fn with_hold_changed_percent(mut self, percent: f64) -> Tenant {
        self.hold_changed_percent = Some(percent);
        self
    }

    /// Reaches the OPSCOM API through the service's HTTP client with `api`.
    pub fn with_api(mut self, api: ApiSettings) -> Tenant {
        self.api = Some(api);
        self
    }

    /// Keeps at most `concurrency` API requests in flight (at least 1).
    pub fn with_concurrency(mut self, concurrency: usize) -> Tenant {
        self.concurrency = concurrency;
        self
    }

    /// Rejects uploads larger than `bytes` whole.
    pub fn with_max_file_size(mut self, bytes: u64) -> Tenant {
        self.max_file_size = bytes;
        self
    }

    /// Deletes archived files in `.bak` this long after their archive.
    pub fn with_bak_retention(mut self, retention: Duration) -> Tenant {
        self.bak_retention = Some(retention);
        self
    }

    /// Alerts the operator when the client sends no file for this long.
    pub fn with_expect_file_every(mut self, every: Duration) -> Tenant {
        self.expect_file_every = Some(every);
        self
    }
}

/// How the service's HTTP client reaches the OPSCOM API for one tenant: the part of a
/// `[[tenant]]` table that only [`crate::Service::from_config`] uses.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApiSettings {
    /// The API base URL, without a trailing `/`.
    pub url: String,
    /// The tenant's API token.
    pub token: SecretString,
    /// Where the token comes from, for messages that tell how to fix it
    /// (`api_token_file "/etc/…"`, `api_token_env ACME_TOKEN` or `api_token`); never the token.
    pub token_source: String,
    /// Optional ceiling on requests per second.
    pub requests_per_second: Option<NonZeroU32>,
    /// How long one row may be retried on transient faults before the API counts as unreachable
    /// and the file is deferred (default [`DEFAULT_API_RETRY_BUDGET`]).
    pub retry_budget: Duration,
}

impl ApiSettings {
    /// The API at `url` (a trailing `/` is dropped) with `token`; no requests-per-second
    /// ceiling, [`DEFAULT_API_RETRY_BUDGET`], and the token's source given as "the API
    /// settings given by the program".
    pub fn new(url: impl Into<String>, token: SecretString) -> ApiSettings {
        let url: String = url.into();
        ApiSettings {
            url: url.trim_end_matches('/').to_owned(),
            token,
            token_source: "the API settings given by the program".to_owned(),
            requests_per_second: None,
            retry_budget: DEFAULT_API_RETRY_BUDGET,
        }
    }

    /// Names where the token comes from in messages (never the token itself).
    pub fn with_token_source(mut self, source: impl Into<String>) -> ApiSettings {
        self.token_source = source.into();
        self
    }

    /// Sends at most `limit` requests per second.
    pub fn with_requests_per_second(mut self, limit: NonZeroU32) -> ApiSettings {
        self.requests_per_second = Some(limit);
        self
    }

    /// Retries one row for at most `budget` before the API counts as unreachable.
    pub fn with_retry_budget(mut self, budget: Duration) -> ApiSettings {
        self.retry_budget = budget;
        self
    }
}

/// Every problem found in a configuration file.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// Each problem, with the key it concerns.
    pub problems: Vec<Problem>,
}

/// One problem: the key (`tenant[acme].api_token_env`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key: `state_dir`, `schedule.interval`, `mail.smtp_url`, `tenant[NAME].KEY`. A
    /// tenant whose `name` is missing, not a string, or unfit to show (empty, over 64 characters,
    /// control characters or brackets) is `tenant[INDEX]`, counting from 0 in file order. A file
    /// that is not TOML has the single key `line N`.
    pub key: String,
    /// What is wrong and how to fix it, ending in `(line N)` when the problem has a place in the
    /// file.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{}: {n} problem{} in the configuration",
            self.path.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  {}: {}", p.key, p.reason)?;
        }
        Ok(())
    }
}

/// Where a configuration gets what lies outside the file: environment variables.
pub trait Environment {
    /// The variable's value, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Config {
    /// Reads and checks the file at `path`, resolving secrets from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_owned(),
            problems: vec![Problem {
                key: "(file)".into(),
                reason: format!("cannot be read: {e}"),
            }],
        })?;
        Config::parse(&text, path, &ProcessEnv)
    }

    /// Parses and checks `text` (the contents of `path`), taking variables from `env`.
    ///
    /// Every problem of every table is reported, in file order; only a TOML syntax error is
    /// reported alone, keyed by its line.
    pub fn parse(text: &str, path: &Path, env: &dyn Environment) -> Result<Config, ConfigError> {
        let fail = |problems| ConfigError {
            path: path.to_owned(),
            problems,
        };
        let document = DeTable::parse(text).map_err(|e| {
            fail(vec![Problem {
                key: e
                    .span()
                    .map(|s| format!("line {}", line_of(text, s.start)))
                    .unwrap_or_else(|| "(file)".into()),
                reason: e.message().to_owned(),
            }])
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut problems = Problems::new(text);
        let config = check(document.get_ref(), base, env, &mut problems);
        let problems = problems.into_sorted();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(fail(problems))
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Relative paths in the file are relative to the file's folder.
fn absolute(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

// The keys of each table; any other key is reported, with the closest of these as a hint.
const TOP_KEYS: &[&str] = &[
    "state_dir",
    "schedule",
    "mail",
    "records",
    "tenant",
    "metrics",
    "operator",
];
const METRICS_KEYS: &[&str] = &["listen"];
const OPERATOR_KEYS: &[&str] = &["email", "from", "alert_after"];
const SCHEDULE_KEYS: &[&str] = &["interval", "settle"];
const RECORDS_KEYS: &[&str] = &["rotate_size", "retention"];
const MAIL_KEYS: &[&str] = &[
    "smtp_url",
    "smtp_password_env",
    "outbox_dir",
    "from",
    "dkim_key_file",
    "dkim_selector",
    "dkim_domain",
];
/// The DKIM keys of `[mail]`, given all three or none.
const DKIM_KEYS: &[&str] = &["dkim_key_file", "dkim_selector", "dkim_domain"];
const TENANT_KEYS: &[&str] = &[
    "name",
    "drop_dir",
    "work_dir",
    "api_url",
    "api_token_env",
    "api_token_file",
    "api_token",
    "reply_to_admin_email",
    "failed_import_email",
    "concurrency",
    "max_file_size",
    "requests_per_second",
    "api_retry_budget",
    "bak_retention",
    "expect_file_every",
    "notify_on_success",
    "from_mode",
    "display_name",
    "mode",
    "full_every",
    "hold_changed_percent",
];
/// The three ways to give a tenant's token, of which exactly one is used.
const TOKEN_KEYS: &[&str] = &["api_token_env", "api_token_file", "api_token"];

/// Checks the whole document, every table and key whatever the others hold. The result is only
/// meaningful when no problem was recorded.
fn check(
    document: &DeTable<'_>,
    base: &Path,
    env: &dyn Environment,
    problems: &mut Problems<'_>,
) -> Config {
    let top = Table::root(document);
    top.unknown_keys(problems, TOP_KEYS, "the top level");
    let state_dir = top
        .required_string(problems, "state_dir")
        .map(|dir| (absolute(base, dir), top.place("state_dir")));
    let schedule = check_schedule(top.table(problems, "schedule"), problems);
    let (mail, outbox_place, (mail_from, dkim)) = check_mail(&top, base, env, problems);
    let records = check_records(top.table(problems, "records"), problems);
    let state = state_dir.as_ref().map(|(dir, _)| dir.as_path());
    let (tenants, folders) = check_tenants(&top, state, base, env, problems);
    let metrics = check_metrics(top.table(problems, "metrics"), problems);
    let operator = check_operator(top.table(problems, "operator"), problems);
    let outbox = match (&mail, &outbox_place) {
        (MailSettings::Outbox { dir }, Some(place)) => Some((dir.as_path(), place)),
        _ => None,
    };
    let state = state_dir
        .as_ref()
        .map(|(dir, place)| (dir.as_path(), place));
    check_overlaps(state, outbox, &folders, problems);
    if mail_from.is_none()
        && let Some(i) = tenants
            .iter()
            .position(|t| t.from_mode == FromMode::OnBehalf)
    {
        let place = Place {
            key: format!("tenant[{}].from_mode", tenants[i].name),
            at: None,
        };
        problems.add(
            &place,
            "\"on_behalf\" sends from the operator's address: add `from = \"imports@…\"` to [mail]",
        );
    }
    Config {
        state_dir: state_dir.map(|(dir, _)| dir).unwrap_or_default(),
        schedule,
        mail,
        tenants,
        operator,
        records,
        metrics,
        mail_from,
        dkim,
    }
}

/// `[mail] from` and the DKIM keys (the transport is checked by [`check_mail`]).
fn check_sender(t: &Table<'_, '_>, base: &Path, problems: &mut Problems<'_>) -> Sender {
    let from = t.has("from").then(|| address(t, problems, "from"));
    let given: Vec<&str> = DKIM_KEYS.iter().copied().filter(|k| t.has(k)).collect();
    let dkim = match given.len() {
        0 => None,
        3 => {
            let key_file = t
                .string(problems, "dkim_key_file")
                .map(|f| absolute(base, f));
            let selector = t.string(problems, "dkim_selector").map(str::trim);
            let domain = t.string(problems, "dkim_domain").map(str::trim);
            if let Some(file) = &key_file
                && let Err(e) = std::fs::metadata(file)
            {
                t.problem(
                    problems,
                    "dkim_key_file",
                    format!("cannot read {}: {e}", file.display()),
                );
            }
            if selector.is_some_and(|s| s.is_empty() || s.contains(char::is_whitespace)) {
                t.problem(
                    problems,
                    "dkim_selector",
                    "must be a DNS label like \"opscom1\"",
                );
            }
            if domain.is_some_and(|d| !d.contains('.') || d.contains(char::is_whitespace)) {
                t.problem(
                    problems,
                    "dkim_domain",
                    "must be a domain like \"opscom.example\"",
                );
            }
            match (key_file, selector, domain) {
                (Some(key_file), Some(selector), Some(domain)) => Some(DkimSettings {
                    key_file,
                    selector: selector.to_owned(),
                    domain: domain.to_owned(),
                }),
                _ => None,
            }
        }
        _ => {
            let missing: Vec<&str> = DKIM_KEYS
                .iter()
                .copied()
                .filter(|k| !given.contains(k))
                .collect();
            problems.add(
                &t.whole(),
                format!(
                    "DKIM signing needs dkim_key_file, dkim_selector and dkim_domain together: add {}",
                    missing.join(" and ")
                ),
            );
            None
        }
    };
    (from, dkim)
}

/// The `[metrics]` table: `None` when it is absent (no listener) or unusable (reported).
fn check_metrics(
    table: Option<Table<'_, '_>>,
    problems: &mut Problems<'_>,
) -> Option<MetricsSettings> {
    let t = table?;
    t.unknown_keys(problems, METRICS_KEYS, "[metrics]");
    let text = t.required_string(problems, "listen")?;
    match text.trim().parse() {
        Ok(listen) => Some(MetricsSettings { listen }),
        Err(_) => {
            let reason = format!(
                "`{text}` is not a socket address like \"127.0.0.1:9464\" or \"[::1]:9464\""
            );
            t.problem(problems, "listen", reason);
            None
        }
    }
}

/// The optional `[operator]` table: `email` and `from` required when it is there.
fn check_operator(table: Option<Table<'_, '_>>, problems: &mut Problems<'_>) -> Option<Operator> {
    let t = table?;
    t.unknown_keys(problems, OPERATOR_KEYS, "[operator]");
    let alert_after = match duration(&t, problems, "alert_after", "\"1h\" or \"30m\"") {
        Some(d) if d.is_zero() => {
            t.problem(problems, "alert_after", "must be longer than zero");
            DEFAULT_ALERT_AFTER
        }
        Some(d) => d,
        None => DEFAULT_ALERT_AFTER,
    };
    Some(Operator {
        email: address(&t, problems, "email"),
        from: address(&t, problems, "from"),
        alert_after,
    })
}

/// The `[schedule]` table, defaults for what it leaves out.
fn check_schedule(table: Option<Table<'_, '_>>, problems: &mut Problems<'_>) -> Schedule {
    let mut schedule = Schedule::default();
    let Some(t) = table else {
        return schedule;
    };
    t.unknown_keys(problems, SCHEDULE_KEYS, "[schedule]");
    if let Some(interval) = duration(&t, problems, "interval", "\"5m\" or \"10s\"") {
        if interval.is_zero() {
            t.problem(problems, "interval", "must be longer than zero");
        }
        schedule.interval = interval;
    }
    if let Some(settle) = duration(&t, problems, "settle", "\"5m\" or \"10s\"") {
        schedule.settle = settle;
    }
    schedule
}

/// The `[records]` table, defaults for what it leaves out.
fn check_records(table: Option<Table<'_, '_>>, problems: &mut Problems<'_>) -> RecordsSettings {
    let mut records = RecordsSettings::default();
    let Some(t) = table else {
        return records;
    };
    t.unknown_keys(problems, RECORDS_KEYS, "[records]");
    if let Some(text) = t.string(problems, "rotate_size") {
        match parse_size(text) {
            Ok(size) => records.rotate_size = size,
            Err(reason) => t.problem(problems, "rotate_size", reason),
        }
    }
    if let Some(retention) = duration(&t, problems, "retention", "\"365d\"") {
        if retention.is_zero() {
            t.problem(problems, "retention", "must be longer than zero");
        }
        records.retention = retention;
    }
    records
}

/// `[mail] from` and the DKIM settings.
type Sender = (Option<String>, Option<DkimSettings>);

/// The `[mail]` table, where `outbox_dir` is written when it is the transport (for the
/// overlap checks), and the sender settings.
fn check_mail(
    top: &Table<'_, '_>,
    base: &Path,
    env: &dyn Environment,
    problems: &mut Problems<'_>,
) -> (MailSettings, Option<Place>, Sender) {
    let unusable = || MailSettings::Outbox {
        dir: PathBuf::new(),
    };
    let Some(t) = top.table(problems, "mail") else {
        if !top.has("mail") {
            let place = Place {
                key: "mail".into(),
                at: None,
            };
            problems.add(
                &place,
                "is missing: add a [mail] table with smtp_url (or outbox_dir to write .eml files)",
            );
        }
        return (unusable(), None, (None, None));
    };
    t.unknown_keys(problems, MAIL_KEYS, "[mail]");
    let sender = check_sender(&t, base, problems);
    let (settings, place) = match (t.has("smtp_url"), t.has("outbox_dir")) {
        (true, false) => (check_smtp(&t, env, problems), None),
        (false, true) => match t.string(problems, "outbox_dir") {
            Some(dir) => (
                MailSettings::Outbox {
                    dir: absolute(base, dir),
                },
                Some(t.place("outbox_dir")),
            ),
            None => (unusable(), None),
        },
        (true, true) => {
            problems.add(&t.whole(), "give either smtp_url or outbox_dir, not both");
            (unusable(), None)
        }
        (false, false) => {
            problems.add(
                &t.whole(),
                "give smtp_url (or outbox_dir to write .eml files)",
            );
            (unusable(), None)
        }
    };
    (settings, place, sender)
}

/// The SMTP transport of `[mail]`: its URL and the password from `smtp_password_env`.
fn check_smtp(
    t: &Table<'_, '_>,
    env: &dyn Environment,
    problems: &mut Problems<'_>,
) -> MailSettings {
    let url = t.string(problems, "smtp_url");
    if let Some(url) = url
        && let Err(reason) = check_smtp_url(url)
    {
        t.problem(problems, "smtp_url", reason);
    }
    let password = t.string(problems, "smtp_password_env").and_then(|var| {
        let value = env.var(var);
        if value.is_none() {
            t.problem(
                problems,
                "smtp_password_env",
                format!("environment variable {var} is not set"),
            );
        }
        value.map(SecretString::from)
    });
    MailSettings::Smtp {
        url: SecretString::from(url.unwrap_or_default()),
        password,
    }
}

/// Every `[[tenant]]`, each checked whole, then the names and drop folders that two share.
fn check_tenants(
    top: &Table<'_, '_>,
    state_dir: Option<&Path>,
    base: &Path,
    env: &dyn Environment,
    problems: &mut Problems<'_>,
) -> (Vec<Tenant>, Vec<Folders>) {
    let before = problems.len();
    let tables = top.tables(problems, "tenant");
    if tables.is_empty() && problems.len() == before {
        // Neither a misshapen `tenant` (reported) nor any tenant at all.
        let place = Place {
            key: "tenant".into(),
            at: None,
        };
        problems.add(&place, "no [[tenant]] is configured");
    }
    let mut names = HashSet::new();
    let mut drop_dirs = HashSet::new();
    let mut tenants = Vec::with_capacity(tables.len());
    let mut folders = Vec::with_capacity(tables.len());
    for (i, t) in tables.into_iter().enumerate() {
        let (label, who) = tenant_label(&t, i);
        let t = t.renamed(label);
        let (tenant, tenant_folders) = check_tenant(&t, who, state_dir, base, env, problems);
        if is_tenant_name(&tenant.name) && !names.insert(tenant.name.clone()) {
            t.problem(problems, "name", "another tenant has the same name");
        }
        if let Some((drop_dir, _)) = &tenant_folders.drop
            && !drop_dirs.insert(drop_dir.clone())
        {
            t.problem(
                problems,
                "drop_dir",
                "another tenant has the same drop folder",
            );
        }
        tenants.push(tenant);
        folders.push(tenant_folders);
    }
    (tenants, folders)
}

/// How problems name the `index`th tenant, `tenant[NAME]` (or `tenant[INDEX]` when it has no
/// name fit to show), and how messages name it, `NAME` (or `#INDEX`).
fn tenant_label(t: &Table<'_, '_>, index: usize) -> (String, String) {
    let presentable = |name: &str| {
        (1..=64).contains(&name.chars().count())
            && !name.contains(|c: char| c.is_control() || c == '[' || c == ']')
    };
    match t.peek_str("name") {
        Some(name) if presentable(name) => (format!("tenant[{name}]"), name.to_owned()),
        _ => (format!("tenant[{index}]"), format!("#{index}")),
    }
}

/// One `[[tenant]]`: every key read and checked, defaults for what it leaves out.
fn check_tenant(
    t: &Table<'_, '_>,
    who: String,
    state_dir: Option<&Path>,
    base: &Path,
    env: &dyn Environment,
    problems: &mut Problems<'_>,
) -> (Tenant, Folders) {
    t.unknown_keys(problems, TENANT_KEYS, "[[tenant]]");
    let name = t.required_string(problems, "name");
    if let Some(name) = name
        && !is_tenant_name(name)
    {
        t.problem(
            problems,
            "name",
            format!(
                "`{name}` must be 1-64 characters of a-z, 0-9, `-` and `_` (it names a folder)"
            ),
        );
    }
    let drop_dir = t
        .required_string(problems, "drop_dir")
        .map(|dir| absolute(base, dir));
    if let Some(dir) = &drop_dir {
        check_drop_dir(t, dir, problems);
    }
    let work_dir = match t.string(problems, "work_dir") {
        Some(dir) => Some(absolute(base, dir)),
        None if t.has("work_dir") => None,
        None => name
            .filter(|name| is_tenant_name(name))
            .zip(state_dir)
            .map(|(name, state_dir)| state_dir.join("tenants").join(name)),
    };
    // Each key is checked whatever the others hold, in the order of the table's documentation.
    let api_url = check_api_url(t, problems);
    let api_token = SecretString::from(check_token(t, base, env, problems).unwrap_or_default());
    let reply_to_admin_email = address(t, problems, "reply_to_admin_email");
    let failed_import_email = address(t, problems, "failed_import_email");
    let concurrency = concurrency(t, problems);
    let max_file_size = max_file_size(t, problems);
    let api = ApiSettings {
        url: api_url,
        token: api_token,
        requests_per_second: requests_per_second(t, problems),
        retry_budget: api_retry_budget(t, problems),
        token_source: token_source(t, base),
    };
    let tenant = Tenant {
        name: name.unwrap_or_default().to_owned(),
        drop_dir: drop_dir.clone().unwrap_or_default(),
        work_dir: work_dir.clone().unwrap_or_default(),
        api: Some(api),
        reply_to_admin_email,
        failed_import_email,
        concurrency,
        max_file_size,
        bak_retention: bak_retention(t, problems),
        expect_file_every: expect_file_every(t, problems),
        notify_on_success: t.boolean(problems, "notify_on_success").unwrap_or(false),
        from_mode: from_mode(t, problems),
        display_name: display_name(t, problems),
        mode: import_mode(t, problems),
        full_every: full_every(t, problems),
        hold_changed_percent: hold_changed_percent(t, problems),
    };
    let folders = Folders {
        who,
        drop: drop_dir.map(|dir| (dir, t.place("drop_dir"))),
        work: work_dir.map(|dir| (dir, t.place("work_dir"))),
    };
    (tenant, folders)
}

/// The drop folder must be a folder already, not a symlink to one.
fn check_drop_dir(t: &Table<'_, '_>, dir: &Path, problems: &mut Problems<'_>) {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => t.problem(
            problems,
            "drop_dir",
            format!(
                "{} is not a directory (symlinks are not followed)",
                dir.display()
            ),
        ),
        Err(e) => t.problem(problems, "drop_dir", format!("{}: {e}", dir.display())),
    }
}

/// `api_url`, without its trailing `/`.
fn check_api_url(t: &Table<'_, '_>, problems: &mut Problems<'_>) -> String {
    let Some(url) = t.required_string(problems, "api_url") else {
        return String::new();
    };
    let trimmed = url.trim_end_matches('/');
    if !(trimmed.starts_with("https://") || trimmed.starts_with("http://")) {
        t.problem(
            problems,
            "api_url",
            format!("`{url}` is not an http(s) URL"),
        );
    }
    trimmed.to_owned()
}

/// The tenant's token, from exactly one of `api_token_env`, `api_token_file` and `api_token`.
fn check_token(
    t: &Table<'_, '_>,
    base: &Path,
    env: &dyn Environment,
    problems: &mut Problems<'_>,
) -> Option<String> {
    let given: Vec<&str> = TOKEN_KEYS.iter().copied().filter(|k| t.has(k)).collect();
    let token = match given[..] {
        [] => {
            t.problem(
                problems,
                "api_token_env",
                "give api_token_env (or api_token_file) for the tenant's API token",
            );
            None
        }
        ["api_token_env"] => t.string(problems, "api_token_env").and_then(|var| {
            let value = env.var(var);
            if value.is_none() {
                t.problem(
                    problems,
                    "api_token_env",
                    format!("environment variable {var} is not set"),
                );
            }
            value
        }),
        ["api_token_file"] => {
            let file = absolute(base, t.string(problems, "api_token_file")?);
            match std::fs::read_to_string(&file) {
                Ok(s) => Some(s.trim_end_matches(['\n', '\r']).to_owned()),
                Err(e) => {
                    let reason = format!("{}: {e}", file.display());
                    t.problem(problems, "api_token_file", reason);
                    None
                }
            }
        }
        ["api_token"] => t.string(problems, "api_token").map(str::to_owned),
        _ => {
            t.problem(
                problems,
                "api_token_env",
                "give only one of api_token_env, api_token_file and api_token",
            );
            None
        }
    };
    if token
        .as_deref()
        .is_some_and(|token| token.trim().is_empty())
    {
        t.problem(problems, "api_token", "the token is empty");
    }
    token
}

/// How messages name where the token comes from (never the token itself).
fn token_source(t: &Table<'_, '_>, base: &Path) -> String {
    if let Some(var) = t.peek_str("api_token_env") {
        format!("the environment variable {var} (api_token_env)")
    } else if let Some(file) = t.peek_str("api_token_file") {
        format!(
            "the file {} (api_token_file)",
            absolute(base, file).display()
        )
    } else {
        "api_token in the configuration file".to_owned()
    }
}

/// `expect_file_every`: longer than zero, or no expectation when left out.
fn expect_file_every(t: &Table<'_, '_>, problems: &mut Problems<'_>) -> Option<Duration> {
    let every = duration(t, problems, "expect_file_every", "\"1d\" or \"12h\"")?;
    if every.is_zero() {
        t.problem(problems, "expect_file_every", "must be longer than zero");
        return None;
    }
    Some(every)
}

/// A required e-mail address.
fn address(t: &Table<'_, '_>, problems: &mut Problems<'_>, key: &str) -> String {
    let Some(addr) = t.required_string(problems, key) else {
        return String::new();
    };
    if !is_valid_address(addr) {
        t.problem(
            problems,
            key,
            format!("`{addr}` is not a valid e-mail address"),
        );
    }
    addr.to_owned()
}

/// `concurrency`: 1 to 256, default 8.
fn concurrency(t: &Table<'_, '_>, problems: &mut Problems<'_>) -> usize {
    let Some(n) = t.integer(problems, "concurrency") else {
        return DEFAULT_CONCURRENCY;
    };
    match usize::try_from(n) {
        Ok(n) if (1..=256).contains(&n) => n,
        _ => {
            t.problem(
                problems,
                "concurrency",
                format!("{n} is not between 1 and 256"),
            );
            DEFAULT_CONCURRENCY
        }
    }
}

/// `max_file_size`: a size like `"100MiB"`, default 100 MiB.
fn max_file_size(t: &Table<'_, '_>, problems: &mut Problems<'_>) -> u64 {
    let Some(text) = t.string(problems, "max_file_size") else {
        return DEFAULT_MAX_FILE_SIZE;
    };
    parse_size(text).unwrap_or_else(|reason| {
        t.problem(problems, "max_file_size", reason);
        0
    })
}

/// `requests_per_second`: at least 1, or no limit when left out.
fn requests_per_second(t: &Table<'_, '_>, problems: &mut Problems<'_>) -> Option<NonZeroU32> {
    let n = t.integer(problems, "requests_per_second")?;
    let limit = u32::try_from(n).ok().and_then(NonZeroU32::new);
    if limit.is_none() {
        t.problem(
            problems,
            "requests_per_second",
            format!("{n} is not between 1 and {} (or leave it out)", u32::MAX),
        );
    }
    limit
}

/// `api_retry_budget`: longer than zero, default 20 s.
fn api_retry_budget(t: &Table<'_, '_>, problems: &mut Problems<'_>) -> Duration {
    let default = DEFAULT_API_RETRY_BUDGET;
    match duration(t, problems, "api_retry_budget", "\"20s\"") {
        Some(budget) if budget.is_zero() => {
            t.problem(problems, "api_retry_budget", "must be longer than zero");
            default
        }
        Some(budget) => budget,
        None => default,
    }
}

/// `bak_retention`: longer than zero, or archived files are kept when left out.
fn bak_retention(t: &Table<'_, '_>, problems: &mut Problems<'_>) -> Option<Duration> {
    let retention = duration(t, problems, "bak_retention", "\"90d\"")?;
    if retention.is_zero() {
        t.problem(
            problems,
            "bak_retention",
            "must be longer than zero (leave it out to keep archived files)",
        );
    }
    Some(retention)
}

/// `from_mode`: `"own"` (the default) or `"on_behalf"`.
fn from_mode(t: &Table<'_, '_>, problems: &mut Problems<'_>) -> FromMode {
    match t.string(problems, "from_mode").map(str::trim) {
        None | Some("own") => FromMode::Own,
        Some("on_behalf") => FromMode::OnBehalf,
        Some(other) => {
            t.problem(
                problems,
                "from_mode",
                format!("`{other}` is not \"own\" or \"on_behalf\""),
            );
            FromMode::Own
        }
    }
}

/// `display_name`: one line of at most 64 characters.
fn display_name(t: &Table<'_, '_>, problems: &mut Problems<'_>) -> Option<String> {
    let name = t.string(problems, "display_name")?.trim();
    if name.is_empty() || name.chars().count() > 64 || name.contains(char::is_control) {
        t.problem(
            problems,
            "display_name",
            "must be one line of 1-64 characters, like \"Acme Parking\"",
        );
        return None;
    }
    Some(name.to_owned())
}

/// `mode`: `"full"` (the default) or `"delta"`.
fn import_mode(t: &Table<'_, '_>, problems: &mut Problems<'_>) -> ImportMode {
    match t.string(problems, "mode").map(str::trim) {
        None | Some("full") => ImportMode::Full,
        Some("delta") => ImportMode::Delta,
        Some(other) => {
            t.problem(
                problems,
                "mode",
                format!("`{other}` is not \"full\" or \"delta\""),
            );
            ImportMode::Full
        }
    }
}

/// `full_every`: longer than zero; [`DEFAULT_FULL_EVERY`] when left out.
fn full_every(t: &Table<'_, '_>, problems: &mut Problems<'_>) -> Duration {
    match duration(t, problems, "full_every", "\"7d\"") {
        Some(d) if d.is_zero() => {
            t.problem(problems, "full_every", "must be longer than zero");
            DEFAULT_FULL_EVERY
        }
        Some(d) => d,
        None => DEFAULT_FULL_EVERY,
    }
}

/// `hold_changed_percent`: a percentage above 0 and at most 100.
fn hold_changed_percent(t: &Table<'_, '_>, problems: &mut Problems<'_>) -> Option<f64> {
    let percent = t.number(problems, "hold_changed_percent")?;
    if !(percent > 0.0 && percent <= 100.0) {
        t.problem(
            problems,
            "hold_changed_percent",
            format!("{percent} is not a percentage above 0 and at most 100, like 20"),
        );
        return None;
    }
    Some(percent)
}

/// A duration like `example` at `key`: `None` when it is absent or unusable (reported).
fn duration(
    t: &Table<'_, '_>,
    problems: &mut Problems<'_>,
    key: &str,
    example: &str,
) -> Option<Duration> {
    let text = t.string(problems, key)?;
    humantime::parse_duration(text)
        .map_err(|e| {
            let reason = format!("`{text}` is not a duration like {example}: {e}");
            t.problem(problems, key, reason);
        })
        .ok()
}

fn is_tenant_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Whether `addr` is a plain mailbox address (`local@domain`).
pub fn is_valid_address(addr: &str) -> bool {
    addr == addr.trim() && email_address::EmailAddress::is_valid(addr) && !addr.contains('<')
}

fn check_smtp_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("must look like smtp://HOST:PORT or smtps://HOST:PORT".into());
    };
    let host_part = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = host_part
        .split(['/', '?'])
        .next()
        .unwrap_or_default()
        .rsplit_once(':')
        .map_or(host_part, |(h, _)| h);
    let tls_required = url.contains("tls=required");
    match scheme {
        "smtps" => Ok(()),
        "smtp" if tls_required => Ok(()),
        "smtp" if matches!(host, "127.0.0.1" | "localhost" | "[::1]") => Ok(()),
        "smtp" => Err(format!(
            "plain smtp:// is only allowed to a loopback address, not `{host}`: use smtps:// or add ?tls=required"
        )),
        other => Err(format!("unknown scheme `{other}`: use smtp:// or smtps://")),
    }
}

/// Parses `100MiB`, `10 MB`, `512k`, `1048576`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size like \"100MiB\""))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return Err(format!("`{text}`: unknown unit (use B, KiB, MiB or GiB)")),
    };
    n.checked_mul(factor)
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("`{text}` is not a usable size"))
}

#[cfg(test)]
mod tests;
