//! The importer's TOML configuration: parsed strictly, checked whole, secrets resolved.
//!
//! [`Config::load`] reports every problem at once, each with its key and the reason, so an
//! operator fixes a file in one go. Unknown keys are refused. Secrets (API tokens, the SMTP
//! password) are read from the environment or a file and kept in [`SecretString`]s, which print as
//! `[REDACTED]`.

use std::collections::BTreeSet;
use std::fmt;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

/// A checked configuration, ready to build the service from.
#[derive(Debug, Clone)]
pub struct Config {
    /// Claims, checkpoints, unsent reports and per-file records live here.
    pub state_dir: PathBuf,
    /// How often every drop folder is scanned, and how long a file must rest before it is taken.
    pub schedule: Schedule,
    /// Where reports go.
    pub mail: MailSettings,
    /// The clients, each with its own drop folder, token and addresses.
    pub tenants: Vec<Tenant>,
}

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

/// One client of the service.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// Short name, used in folders under `state_dir`, logs and records.
    pub name: String,
    /// The client's SFTP drop folder.
    pub drop_dir: PathBuf,
    /// Where this tenant's claims, checkpoints and reports live: `state_dir/tenants/NAME` unless
    /// `work_dir` is set. Must be on the drop folder's filesystem (claims are renames).
    pub work_dir: PathBuf,
    /// The API base URL, without a trailing `/`.
    pub api_url: String,
    /// The tenant's API token.
    pub api_token: SecretString,
    /// Sender (and Reply-To) of the failure e-mail.
    pub reply_to_admin_email: String,
    /// Receiver of the failure e-mail.
    pub failed_import_email: String,
    /// API requests in flight for this tenant.
    pub concurrency: usize,
    /// Larger uploads are rejected whole.
    pub max_file_size: u64,
    /// Optional ceiling on requests per second.
    pub requests_per_second: Option<NonZeroU32>,
    /// How long one row may be retried on transient faults before the API counts as unreachable
    /// and the file is deferred (default 20 s).
    pub api_retry_budget: Duration,
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
    /// Dotted key, tenants named by their `name` where they have one.
    pub key: String,
    /// What is wrong and how to fix it.
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    state_dir: PathBuf,
    #[serde(default)]
    schedule: RawSchedule,
    mail: RawMail,
    #[serde(default, rename = "tenant")]
    tenants: Vec<RawTenant>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    interval: Option<String>,
    settle: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMail {
    smtp_url: Option<String>,
    smtp_password_env: Option<String>,
    outbox_dir: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    name: String,
    drop_dir: PathBuf,
    work_dir: Option<PathBuf>,
    api_url: String,
    api_token_env: Option<String>,
    api_token_file: Option<PathBuf>,
    api_token: Option<String>,
    reply_to_admin_email: String,
    failed_import_email: String,
    concurrency: Option<usize>,
    max_file_size: Option<String>,
    requests_per_second: Option<u32>,
    api_retry_budget: Option<String>,
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
    pub fn parse(text: &str, path: &Path, env: &dyn Environment) -> Result<Config, ConfigError> {
        let fail = |problems| ConfigError {
            path: path.to_owned(),
            problems,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            fail(vec![Problem {
                key: e
                    .span()
                    .map(|s| format!("line {}", line_of(text, s.start)))
                    .unwrap_or_else(|| "(file)".into()),
                reason: e.message().to_owned(),
            }])
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut problems = Vec::new();
        let config = check(raw, base, env, &mut problems);
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
fn absolute(base: &Path, p: PathBuf) -> PathBuf {
    if p.is_absolute() { p } else { base.join(p) }
}

fn check(
    raw: RawConfig,
    base: &Path,
    env: &dyn Environment,
    problems: &mut Vec<Problem>,
) -> Config {
    let mut problem = |key: &str, reason: String| {
        problems.push(Problem {
            key: key.to_owned(),
            reason,
        })
    };
    let state_dir = absolute(base, raw.state_dir);

    let mut schedule = Schedule::default();
    for (key, value, slot) in [
        (
            "schedule.interval",
            &raw.schedule.interval,
            &mut schedule.interval,
        ),
        (
            "schedule.settle",
            &raw.schedule.settle,
            &mut schedule.settle,
        ),
    ] {
        if let Some(v) = value {
            match humantime::parse_duration(v) {
                Ok(d) => *slot = d,
                Err(e) => problem(
                    key,
                    format!("`{v}` is not a duration like \"5m\" or \"10s\": {e}"),
                ),
            }
        }
    }
    if schedule.interval.is_zero() {
        problem("schedule.interval", "must be longer than zero".into());
    }

    let mail = match (raw.mail.smtp_url, raw.mail.outbox_dir) {
        (Some(url), None) => {
            if let Err(reason) = check_smtp_url(&url) {
                problem("mail.smtp_url", reason);
            }
            let password = raw.mail.smtp_password_env.as_deref().and_then(|var| {
                let value = env.var(var);
                if value.is_none() {
                    problem(
                        "mail.smtp_password_env",
                        format!("environment variable {var} is not set"),
                    );
                }
                value.map(SecretString::from)
            });
            MailSettings::Smtp {
                url: SecretString::from(url),
                password,
            }
        }
        (None, Some(dir)) => MailSettings::Outbox {
            dir: absolute(base, dir),
        },
        (Some(_), Some(_)) => {
            problem(
                "mail",
                "give either smtp_url or outbox_dir, not both".into(),
            );
            MailSettings::Outbox {
                dir: PathBuf::new(),
            }
        }
        (None, None) => {
            problem(
                "mail",
                "give smtp_url (or outbox_dir to write .eml files)".into(),
            );
            MailSettings::Outbox {
                dir: PathBuf::new(),
            }
        }
    };

    if raw.tenants.is_empty() {
        problem("tenant", "no [[tenant]] is configured".into());
    }
    let mut names = BTreeSet::new();
    let mut drop_dirs = BTreeSet::new();
    let mut tenants = Vec::new();
    for (i, t) in raw.tenants.into_iter().enumerate() {
        let label = if t.name.is_empty() {
            format!("tenant[{i}]")
        } else {
            format!("tenant[{}]", t.name)
        };
        let key = |k: &str| format!("{label}.{k}");
        if !is_tenant_name(&t.name) {
            problem(
                &key("name"),
                format!(
                    "`{}` must be 1-64 characters of a-z, 0-9, `-` and `_` (it names a folder)",
                    t.name
                ),
            );
        } else if !names.insert(t.name.clone()) {
            problem(&key("name"), "another tenant has the same name".into());
        }
        let drop_dir = absolute(base, t.drop_dir);
        match std::fs::symlink_metadata(&drop_dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => problem(
                &key("drop_dir"),
                format!(
                    "{} is not a directory (symlinks are not followed)",
                    drop_dir.display()
                ),
            ),
            Err(e) => problem(&key("drop_dir"), format!("{}: {e}", drop_dir.display())),
        }
        if !drop_dirs.insert(drop_dir.clone()) {
            problem(
                &key("drop_dir"),
                "another tenant has the same drop folder".into(),
            );
        }
        let api_url = t.api_url.trim_end_matches('/').to_owned();
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            problem(
                &key("api_url"),
                format!("`{}` is not an http(s) URL", t.api_url),
            );
        }
        let token = match (t.api_token_env, t.api_token_file, t.api_token) {
            (Some(var), None, None) => env.var(&var).or_else(|| {
                problem(
                    &key("api_token_env"),
                    format!("environment variable {var} is not set"),
                );
                None
            }),
            (None, Some(file), None) => {
                let file = absolute(base, file);
                match std::fs::read_to_string(&file) {
                    Ok(s) => Some(s.trim_end_matches(['\n', '\r']).to_owned()),
                    Err(e) => {
                        problem(&key("api_token_file"), format!("{}: {e}", file.display()));
                        None
                    }
                }
            }
            (None, None, Some(token)) => Some(token),
            (None, None, None) => {
                problem(
                    &key("api_token_env"),
                    "give api_token_env (or api_token_file) for the tenant's API token".into(),
                );
                None
            }
            _ => {
                problem(
                    &key("api_token_env"),
                    "give only one of api_token_env, api_token_file and api_token".into(),
                );
                None
            }
        };
        if token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            problem(&key("api_token"), "the token is empty".into());
        }
        for (k, addr) in [
            ("reply_to_admin_email", &t.reply_to_admin_email),
            ("failed_import_email", &t.failed_import_email),
        ] {
            if !is_valid_address(addr) {
                problem(&key(k), format!("`{addr}` is not a valid e-mail address"));
            }
        }
        let concurrency = t.concurrency.unwrap_or(8);
        if !(1..=256).contains(&concurrency) {
            problem(
                &key("concurrency"),
                format!("{concurrency} is not between 1 and 256"),
            );
        }
        let max_file_size = match t.max_file_size.as_deref().map(parse_size) {
            None => 100 * 1024 * 1024,
            Some(Ok(n)) => n,
            Some(Err(reason)) => {
                problem(&key("max_file_size"), reason);
                0
            }
        };
        let requests_per_second = match t.requests_per_second {
            None => None,
            Some(n) => NonZeroU32::new(n).or_else(|| {
                problem(
                    &key("requests_per_second"),
                    "must be at least 1 (or left out)".into(),
                );
                None
            }),
        };
        let api_retry_budget = match t.api_retry_budget.as_deref().map(humantime::parse_duration) {
            None => Duration::from_secs(20),
            Some(Ok(d)) if !d.is_zero() => d,
            Some(Ok(_)) => {
                problem(&key("api_retry_budget"), "must be longer than zero".into());
                Duration::from_secs(20)
            }
            Some(Err(e)) => {
                problem(
                    &key("api_retry_budget"),
                    format!("not a duration like \"20s\": {e}"),
                );
                Duration::from_secs(20)
            }
        };
        let work_dir = match t.work_dir {
            Some(dir) => absolute(base, dir),
            None => state_dir.join("tenants").join(&t.name),
        };
        tenants.push(Tenant {
            name: t.name,
            drop_dir,
            work_dir,
            api_url,
            api_token: SecretString::from(token.unwrap_or_default()),
            reply_to_admin_email: t.reply_to_admin_email,
            failed_import_email: t.failed_import_email,
            concurrency,
            max_file_size,
            requests_per_second,
            api_retry_budget,
        });
    }
    check_overlaps(&state_dir, &mail, &tenants, &mut problem);
    Config {
        state_dir,
        schedule,
        mail,
        tenants,
    }
}

/// `path` as the filesystem resolves it: symlinks and `..` of its existing part resolved, the
/// rest appended, so that two spellings of one folder compare equal.
fn resolved(path: &Path) -> PathBuf {
    let mut existing = path;
    let mut rest = Vec::new();
    loop {
        if let Ok(mut real) = existing.canonicalize() {
            real.extend(rest.iter().rev());
            return real;
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// Refuses folders that two tenants would share, or that sit inside a client's drop folder:
/// one tenant's claims must never be another's, and the service's state never the client's.
fn check_overlaps(
    state_dir: &Path,
    mail: &MailSettings,
    tenants: &[Tenant],
    problem: &mut impl FnMut(&str, String),
) {
    let nested = |a: &Path, b: &Path| a.starts_with(b) || b.starts_with(a);
    let drops: Vec<(String, PathBuf)> = tenants
        .iter()
        .map(|t| (t.name.clone(), resolved(&t.drop_dir)))
        .collect();
    let works: Vec<(String, PathBuf)> = tenants
        .iter()
        .map(|t| (t.name.clone(), resolved(&t.work_dir)))
        .collect();
    for (i, (name, drop)) in drops.iter().enumerate() {
        for (other, other_drop) in &drops[i + 1..] {
            if nested(drop, other_drop) {
                problem(
                    &format!("tenant[{other}].drop_dir"),
                    format!("is, or is inside or around, tenant {name}'s drop folder"),
                );
            }
        }
        for (other, work) in &works {
            if nested(drop, work) {
                problem(
                    &format!("tenant[{other}].work_dir"),
                    format!(
                        "is inside or around tenant {name}'s drop folder, where clients could reach it"
                    ),
                );
            }
        }
        if state_dir.starts_with(drop) || resolved(state_dir).starts_with(drop) {
            problem(
                "state_dir",
                format!("is inside tenant {name}'s drop folder"),
            );
        }
        if let MailSettings::Outbox { dir } = mail
            && resolved(dir).starts_with(drop)
        {
            problem(
                "mail.outbox_dir",
                format!("is inside tenant {name}'s drop folder"),
            );
        }
    }
    for (i, (name, work)) in works.iter().enumerate() {
        for (other, other_work) in &works[i + 1..] {
            if nested(work, other_work) {
                problem(
                    &format!("tenant[{other}].work_dir"),
                    format!("is, or is inside or around, tenant {name}'s work folder"),
                );
            }
        }
    }
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
