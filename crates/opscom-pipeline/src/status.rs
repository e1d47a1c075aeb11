//! What `opscom-import status` and `history` show: each tenant's last file, the files waiting and
//! why, unsent reports, alerts and the last problem; a tenant's last files. Pure reading.
//!
//! Everything here reads files and takes no lock, so it answers while `run` works and never
//! holds it up: the tenant lock file is never opened, the drop folder is listed without claiming,
//! nothing is created. A file that disappears while it is read (a claim archived, a report sent,
//! a records part rotated away) is passed over; a file that cannot be read is named in the
//! answer's `unreadable` list and the rest of the answer stands.
//!
//! The JSON of both answers (`version` 1) is documented in `docs/operating.md`, "Status and
//! history"; it only grows by new fields. Records are read newest first across `records.jsonl`
//! and its rotated parts, one entry per claim (see [`merge_older`]).

mod records;
mod render;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigError, Environment, Tenant};
use crate::record::{FileRecord, Outcome};

pub use records::merge_older;
pub use render::{history_text, status_text};

/// The `version` of both JSON answers.
pub const VERSION: u32 = 1;
/// Active alerts, per tenant: `state_dir/alerts.json`.
pub const ALERTS_FILE: &str = "alerts.json";
/// The last alert condition that began, per tenant: `state_dir/last-problems.json`.
pub const LAST_PROBLEMS_FILE: &str = "last-problems.json";
/// How many files `history` lists unless told.
pub const DEFAULT_HISTORY_LIMIT: usize = 20;

/// Reads and checks the configuration like [`Config::load`], except that a variable named by
/// `api_token_env` or `smtp_password_env` need not be set: status and history use no secret,
/// and an operator's shell rarely has the service's environment.
pub fn load_config(path: &Path) -> Result<Config, ConfigError> {
    /// Every variable is set (to a value nothing uses).
    struct SecretsUnused;
    impl Environment for SecretsUnused {
        fn var(&self, name: &str) -> Option<String> {
            Some(std::env::var(name).unwrap_or_else(|_| "(unused by status)".into()))
        }
    }
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.to_owned(),
        problems: vec![crate::config::Problem {
            key: "(file)".into(),
            reason: format!("cannot be read: {e}"),
        }],
    })?;
    Config::parse(&text, path, &SecretsUnused)
}

/// A tenant name that the configuration does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no tenant `{name}` in the configuration; {}", known_list(.known))]
pub struct UnknownTenant {
    /// The name asked for.
    pub name: String,
    /// The configured names.
    pub known: Vec<String>,
}

fn known_list(known: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut list = known
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if known.len() > SHOWN {
        list.push_str(&format!(" and {} more", known.len() - SHOWN));
    }
    format!("give one of: {list}")
}

/// The answer of `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    /// Always [`VERSION`].
    pub version: u32,
    /// When the answer was made (RFC 3339, UTC).
    pub generated_at: String,
    /// The tenants asked for, in configuration order.
    pub tenants: Vec<TenantStatus>,
    /// Files or folders that could not be read (the rest of the answer stands).
    pub unreadable: Vec<Unreadable>,
}

/// One tenant in a [`StatusReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantStatus {
    /// The tenant's name.
    pub name: String,
    /// The file last handled (newest record, merged by claim); `None` when there is none.
    pub last_file: Option<FileEntry>,
    /// Files waiting: claimed ones (oldest claim first), then uploads in the drop folder.
    pub waiting: Vec<Waiting>,
    /// Reports waiting in the tenant's outbox to be sent.
    pub unsent_reports: u64,
    /// Active alerts (from `state_dir/alerts.json`), by name.
    pub alerts: Vec<Alert>,
    /// The newest rejected or deferred record of the tenant.
    pub last_problem: Option<Problem>,
    /// The last alert condition that began for the tenant (`state_dir/last-problems.json`),
    /// such as a refused token or an unusable folder, whether or not it is still active.
    pub last_condition: Option<Condition>,
}

/// An alert condition that began, as `state_dir/last-problems.json` keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    /// When it began (RFC 3339, UTC).
    pub at: String,
    /// `ALERT: detail`.
    pub what: String,
}

/// A file as records tell it: one entry per claim, its lines merged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileEntry {
    /// When it was handled (RFC 3339, UTC).
    pub at: String,
    /// Its name as uploaded.
    pub file: String,
    /// The claim's id.
    pub claim: String,
    /// The outcome.
    pub outcome: Outcome,
    /// Data rows.
    pub rows_total: u64,
    /// Rows imported.
    pub rows_ok: u64,
    /// Rows failed.
    pub rows_failed: u64,
    /// Rows not sent because the API already holds their values (`mode = "delta"`).
    pub rows_unchanged: u64,
    /// Why it was rejected or deferred.
    pub reason: Option<String>,
    /// Its name in `.bak`, when a record says it.
    pub archived_as: Option<String>,
    /// Processing time in milliseconds.
    pub duration_ms: u64,
}

impl From<FileRecord> for FileEntry {
    fn from(r: FileRecord) -> FileEntry {
        FileEntry {
            at: rfc3339(&r.at),
            file: r.file,
            claim: r.claim,
            outcome: r.outcome,
            rows_total: r.rows_total,
            rows_ok: r.rows_ok,
            rows_failed: r.rows_failed,
            rows_unchanged: r.rows_unchanged,
            reason: r.reason,
            archived_as: r.archived_as,
            duration_ms: r.duration_ms,
        }
    }
}

/// Why a file waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitReason {
    /// Claimed, without a deferral: being imported now, or to be resumed by the next pass.
    Claimed,
    /// Claimed and deferred: waits for the API, the token, the disk… (see `deferral`).
    Deferred,
    /// In the drop folder, settled, to be claimed by the next pass.
    Ready,
    /// In the drop folder, changed less than `settle` ago (still being uploaded, perhaps).
    Settling,
    /// In the drop folder, never taken as it is (see `detail`: a link, unreadable…).
    Skipped,
    /// In `held/`: it would change more users than `hold_changed_percent` allows, and waits
    /// for `NAME.approve` or `NAME.discard` (or `opscom-import release`/`discard`). The
    /// tenant's later uploads wait behind it.
    Held,
}

impl std::fmt::Display for WaitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WaitReason::Claimed => "claimed",
            WaitReason::Deferred => "deferred",
            WaitReason::Ready => "ready",
            WaitReason::Settling => "settling",
            WaitReason::Skipped => "skipped",
            WaitReason::Held => "held",
        })
    }
}

/// A file waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waiting {
    /// Its name as uploaded.
    pub file: String,
    /// Why it waits.
    pub reason: WaitReason,
    /// Since when: the claim's time for claimed files, the last change for uploads (RFC 3339,
    /// UTC); `None` when unknown.
    pub since: Option<String>,
    /// The claim's id (claimed and deferred files).
    pub claim: Option<String>,
    /// The deferral's reason key (`api_unreachable`, `token_rejected`, `io`, `still_changing`,
    /// `cut_off`, `shutdown`), for deferred files.
    pub deferral: Option<String>,
    /// In words: the deferral's reason from its record, or why an upload is skipped.
    pub detail: Option<String>,
}

/// An active alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// Its name.
    pub name: String,
    /// Since when (RFC 3339, UTC).
    pub since: Option<String>,
    /// In words.
    pub detail: Option<String>,
    /// Whether the operator was notified.
    pub notified: bool,
}

/// The newest rejected or deferred record of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The file.
    pub file: String,
    /// The claim's id.
    pub claim: String,
    /// `rejected` or `deferred`.
    pub outcome: Outcome,
    /// Why.
    pub reason: Option<String>,
}

/// Something that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    /// The file or folder.
    pub path: String,
    /// The error.
    pub error: String,
}

impl Unreadable {
    fn new(path: &Path, error: impl std::fmt::Display) -> Unreadable {
        Unreadable {
            path: path.display().to_string(),
            error: error.to_string(),
        }
    }
}

/// The answer of `history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryReport {
    /// Always [`VERSION`].
    pub version: u32,
    /// The tenant.
    pub tenant: String,
    /// The most files asked for.
    pub limit: usize,
    /// The tenant's last files, newest first, one per claim.
    pub files: Vec<FileEntry>,
    /// Files that could not be read.
    pub unreadable: Vec<Unreadable>,
}

/// A tenant's last `limit` files from the records, newest first. Reads `records.jsonl`, then its
/// rotated parts from the newest, and stops at the end of the file in which it has `limit`.
pub fn history(
    config: &Config,
    tenant: &str,
    limit: usize,
) -> Result<HistoryReport, UnknownTenant> {
    let tenant = select(config, Some(tenant))?
        .pop()
        .map(|t| t.name.clone())
        .unwrap_or_default();
    let (files, faults) = records::last_files(&config.state_dir, &tenant, limit);
    Ok(HistoryReport {
        version: VERSION,
        tenant,
        limit,
        files: files.into_iter().map(FileEntry::from).collect(),
        unreadable: faults
            .into_iter()
            .map(|f| Unreadable::new(&f.path, f.error))
            .collect(),
    })
}

/// The status of every tenant, or of the one named, as of `now`.
pub fn status(
    config: &Config,
    tenant: Option<&str>,
    now: SystemTime,
) -> Result<StatusReport, UnknownTenant> {
    let tenants = select(config, tenant)?;
    let mut unreadable = Vec::new();
    let mut alerts = read_alerts(&config.state_dir, &mut unreadable);
    let mut conditions = read_conditions(&config.state_dir, &mut unreadable);
    let mut out: Vec<TenantStatus> = tenants
        .iter()
        .map(|t| TenantStatus {
            name: t.name.clone(),
            last_file: None,
            waiting: waiting(t, config.schedule.settle, now, &mut unreadable),
            unsent_reports: unsent_reports(t, &mut unreadable),
            alerts: alerts.remove(&t.name).unwrap_or_default(),
            last_problem: None,
            last_condition: conditions.remove(&t.name).map(|c| Condition {
                at: rfc3339(&c.at),
                what: c.what,
            }),
        })
        .collect();
    let deferral_reasons = from_records(config, &mut out, &mut unreadable);
    for w in out.iter_mut().flat_map(|t| t.waiting.iter_mut()) {
        if let Some(reason) = w.claim.as_ref().and_then(|c| deferral_reasons.get(c)) {
            w.detail = Some(reason.clone());
        }
    }
    Ok(StatusReport {
        version: VERSION,
        generated_at: stamp(now),
        tenants: out,
        unreadable,
    })
}

fn select<'a>(config: &'a Config, name: Option<&str>) -> Result<Vec<&'a Tenant>, UnknownTenant> {
    match name {
        None => Ok(config.tenants.iter().collect()),
        Some(name) => match config.tenants.iter().find(|t| t.name == name) {
            Some(t) => Ok(vec![t]),
            None => Err(UnknownTenant {
                name: name.to_owned(),
                known: config.tenants.iter().map(|t| t.name.clone()).collect(),
            }),
        },
    }
}

/// Fills in every tenant's last file and last problem from the records, newest first; returns
/// the deferral reasons of the deferred claims waiting. Stops at the end of the first file in
/// which everything is found.
fn from_records(
    config: &Config,
    tenants: &mut [TenantStatus],
    unreadable: &mut Vec<Unreadable>,
) -> HashMap<String, String> {
    let index: HashMap<String, usize> = tenants
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    let mut pending_deferrals: HashSet<String> = tenants
        .iter()
        .flat_map(|t| &t.waiting)
        .filter(|w| w.reason == WaitReason::Deferred)
        .filter_map(|w| w.claim.clone())
        .collect();
    let mut reasons = HashMap::new();
    let mut last: Vec<Option<FileRecord>> = vec![None; tenants.len()];
    let mut last_claims: HashSet<String> = HashSet::new();
    let mut missing_last = tenants.len();
    let mut missing_problem = tenants.len();
    let mut files = records::RecordFiles::open(&config.state_dir);
    while missing_last + missing_problem + pending_deferrals.len() > 0 {
        let Some(lines) = files.next_file() else {
            break;
        };
        for line in lines {
            // Once every tenant has its last file, only some lines matter: skip the others
            // without parsing them (a long history is read fast).
            if missing_last == 0 && !line_may_matter(&line, &last_claims, &pending_deferrals) {
                continue;
            }
            let Some(r) = records::parse(&line) else {
                continue;
            };
            let Some(&i) = index.get(&r.tenant) else {
                continue;
            };
            if pending_deferrals.remove(&r.claim) && r.outcome == Outcome::Deferred {
                reasons.insert(r.claim.clone(), r.reason.clone().unwrap_or_default());
            }
            if tenants[i].last_problem.is_none()
                && matches!(r.outcome, Outcome::Rejected | Outcome::Deferred)
            {
                missing_problem -= 1;
                tenants[i].last_problem = Some(Problem {
                    at: rfc3339(&r.at),
                    file: r.file.clone(),
                    claim: r.claim.clone(),
                    outcome: r.outcome,
                    reason: r.reason.clone(),
                });
            }
            match &mut last[i] {
                Some(known) if known.claim == r.claim => merge_older(known, &r),
                Some(_) => {}
                slot @ None => {
                    missing_last -= 1;
                    last_claims.insert(r.claim.clone());
                    *slot = Some(r);
                }
            }
        }
    }
    unreadable.extend(
        files
            .faults
            .into_iter()
            .map(|f| Unreadable::new(&f.path, f.error)),
    );
    for (t, r) in tenants.iter_mut().zip(last) {
        t.last_file = r.map(FileEntry::from);
    }
    reasons
}

/// Whether a record line can be a problem, or belongs to one of `claims`, without parsing it.
fn line_may_matter(line: &[u8], last: &HashSet<String>, deferrals: &HashSet<String>) -> bool {
    let has = |needle: &[u8]| line.windows(needle.len()).any(|w| w == needle);
    if has(br#""outcome":"rejected""#) || has(br#""outcome":"deferred""#) {
        return true;
    }
    let claim = line
        .windows(9)
        .position(|w| w == br#""claim":""#)
        .and_then(|at| {
            let rest = &line[at + 9..];
            rest.iter().position(|&b| b == b'"').map(|end| &rest[..end])
        })
        .and_then(|c| std::str::from_utf8(c).ok());
    claim.is_none_or(|c| last.contains(c) || deferrals.contains(c))
}

/// Per tenant, the last alert condition that began: `state_dir/last-problems.json`; absent means
/// none, unreadable is said.
fn read_conditions(
    state_dir: &Path,
    unreadable: &mut Vec<Unreadable>,
) -> HashMap<String, Condition> {
    let path = state_dir.join(LAST_PROBLEMS_FILE);
    match std::fs::read(&path) {
        Ok(text) => serde_json::from_slice(&text).unwrap_or_else(|e| {
            unreadable.push(Unreadable::new(&path, format!("not valid JSON: {e}")));
            HashMap::new()
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => HashMap::new(),
        Err(e) => {
            unreadable.push(Unreadable::new(&path, e));
            HashMap::new()
        }
    }
}

/// `state_dir/alerts.json`, by tenant; absent means none, unreadable is said.
fn read_alerts(state_dir: &Path, unreadable: &mut Vec<Unreadable>) -> HashMap<String, Vec<Alert>> {
    #[derive(Deserialize)]
    struct Stored {
        #[serde(default)]
        since: Option<String>,
        #[serde(default)]
        detail: Option<String>,
        #[serde(default)]
        notified: bool,
    }
    let path = state_dir.join(ALERTS_FILE);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return HashMap::new(),
        Err(e) => {
            unreadable.push(Unreadable::new(&path, e));
            return HashMap::new();
        }
    };
    let stored: BTreeMap<String, BTreeMap<String, Stored>> = match serde_json::from_slice(&text) {
        Ok(s) => s,
        Err(e) => {
            unreadable.push(Unreadable::new(
                &path,
                format!("not valid alerts JSON: {e}"),
            ));
            return HashMap::new();
        }
    };
    stored
        .into_iter()
        .map(|(tenant, alerts)| {
            let alerts = alerts
                .into_iter()
                .map(|(name, a)| Alert {
                    name,
                    since: a.since.as_deref().map(rfc3339),
                    detail: a.detail,
                    notified: a.notified,
                })
                .collect();
            (tenant, alerts)
        })
        .collect()
}

/// Reports in the tenant's outbox, waiting to be sent (held ones wait for their file, not for
/// the mail server, and are not counted).
fn unsent_reports(t: &Tenant, unreadable: &mut Vec<Unreadable>) -> u64 {
    let dir = t.work_dir.join("outbox");
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return 0,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return 0,
        Err(e) => {
            unreadable.push(Unreadable::new(&dir, e));
            return 0;
        }
    }
    // The folder exists: opening the spool creates nothing.
    match opscom_mail::Spool::open(&dir).and_then(|s| s.pending()) {
        Ok(p) => p.len() as u64,
        Err(e) => {
            unreadable.push(Unreadable::new(&dir, e));
            0
        }
    }
}

/// The tenant's files waiting: claimed ones, then the drop folder's uploads (oldest first).
fn waiting(
    t: &Tenant,
    settle: Duration,
    now: SystemTime,
    unreadable: &mut Vec<Unreadable>,
) -> Vec<Waiting> {
    let mut out = claimed(&t.work_dir, unreadable);
    out.extend(held(&t.drop_dir, unreadable));
    out.extend(uploads(&t.drop_dir, settle, now, unreadable));
    out
}

/// The files in `drop_dir/held/`, oldest first.
fn held(drop_dir: &Path, unreadable: &mut Vec<Unreadable>) -> Vec<Waiting> {
    let found = match crate::held::held_files(drop_dir) {
        Ok(found) => found,
        Err(e) => {
            unreadable.push(Unreadable::new(
                &drop_dir.join(opscom_scheduler::HELD_DIR),
                e,
            ));
            return Vec::new();
        }
    };
    found
        .into_iter()
        .map(|(mtime, file)| Waiting {
            detail: Some(format!(
                "held for approval: upload `{file}.approve` to import it or `{file}.discard` to drop it"
            )),
            file,
            reason: WaitReason::Held,
            since: Some(stamp(mtime)),
            claim: None,
            deferral: None,
        })
        .collect()
}

/// `work_dir/claimed/ID/NAME`, with `journal/ID.deferred` saying whether it was deferred.
fn claimed(work_dir: &Path, unreadable: &mut Vec<Unreadable>) -> Vec<Waiting> {
    let dir = work_dir.join("claimed");
    let listing = match std::fs::read_dir(&dir) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            unreadable.push(Unreadable::new(&dir, e));
            return Vec::new();
        }
    };
    let mut ids: Vec<String> = listing
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|id| !id.starts_with('.'))
        .collect();
    ids.sort();
    let mut out = Vec::new();
    for id in ids {
        let sub = dir.join(&id);
        // Gone meanwhile (archived), or not a claim folder: passed over.
        let Ok(listing) = std::fs::read_dir(&sub) else {
            continue;
        };
        let names: Vec<String> = listing
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        let [name] = &names[..] else { continue };
        let deferral = match std::fs::read_to_string(
            work_dir.join("journal").join(format!("{id}.deferred")),
        ) {
            Ok(key) => Some(key.trim().to_owned()),
            Err(_) => None,
        };
        let since = claim_time(&id).or_else(|| {
            std::fs::symlink_metadata(&sub)
                .and_then(|m| m.modified())
                .ok()
                .map(stamp)
        });
        out.push(Waiting {
            file: name.clone(),
            reason: if deferral.is_some() {
                WaitReason::Deferred
            } else {
                WaitReason::Claimed
            },
            since,
            claim: Some(id),
            detail: deferral.clone(),
            deferral,
        });
    }
    out
}

/// A claim id starts with its UTC time: `YYYYMMDDTHHMMSS.nnnnnnnnnZ-PID-SEQ`.
fn claim_time(id: &str) -> Option<String> {
    let b = id.as_bytes();
    if b.len() < 15 || b[8] != b'T' || !b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit) {
        return None;
    }
    let text = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &id[..4],
        &id[4..6],
        &id[6..8],
        &id[9..11],
        &id[11..13],
        &id[13..15]
    );
    text.parse::<jiff::Timestamp>().ok().map(|t| t.to_string())
}

/// The drop folder's uploads that the next pass would see, without claiming any: the same rules
/// as [`opscom_scheduler::DropFolder::scan`], on a plain listing.
fn uploads(
    drop_dir: &Path,
    settle: Duration,
    now: SystemTime,
    unreadable: &mut Vec<Unreadable>,
) -> Vec<Waiting> {
    use opscom_scheduler::{
        SkipReason, escape_name, has_csv_extension, is_control_file, is_importer_folder, is_partial,
    };
    use std::os::unix::ffi::OsStrExt;
    let listing = match std::fs::read_dir(drop_dir) {
        Ok(l) => l,
        Err(e) => {
            unreadable.push(Unreadable::new(drop_dir, e));
            return Vec::new();
        }
    };
    let mut found: Vec<(SystemTime, Waiting)> = Vec::new();
    for entry in listing.flatten() {
        let raw = entry.file_name();
        let raw = raw.as_bytes();
        if raw.starts_with(b".") {
            continue;
        }
        let skipped = |name: String, reason: SkipReason| Waiting {
            file: name,
            reason: WaitReason::Skipped,
            since: None,
            claim: None,
            deferral: None,
            detail: Some(reason.to_string()),
        };
        let name = match std::str::from_utf8(raw) {
            Err(_) => {
                found.push((now, skipped(escape_name(raw), SkipReason::InvalidUtf8)));
                continue;
            }
            Ok(n) if n.chars().any(char::is_control) => {
                found.push((now, skipped(escape_name(raw), SkipReason::ControlCharacter)));
                continue;
            }
            Ok(n) if is_partial(n) || is_control_file(n) || is_importer_folder(n) => continue,
            Ok(n) => n.to_owned(),
        };
        let meta = match std::fs::symlink_metadata(entry.path()) {
            Ok(m) => m,
            Err(_) => continue, // gone meanwhile
        };
        let mtime = meta.modified().unwrap_or(now);
        let kind = meta.file_type();
        // What the next pass reports to the client and moves to `.bak` (no silent drops).
        let aside = if kind.is_symlink() {
            Some("a link")
        } else if kind.is_dir() {
            Some("a folder")
        } else if !kind.is_file() {
            Some("not a regular file")
        } else if !has_csv_extension(&name) {
            Some("not a .csv file")
        } else {
            None
        };
        if let Some(what) = aside {
            found.push((
                mtime,
                Waiting {
                    detail: Some(format!(
                        "{what}: once settled, the client is told and it moves to .bak"
                    )),
                    ..skipped(name, SkipReason::NotRegular)
                },
            ));
            continue;
        }
        if meta.nlink() > 1 {
            found.push((mtime, skipped(name, SkipReason::HardLinked)));
            continue;
        }
        let last_change = if mtime > now {
            SystemTime::UNIX_EPOCH + Duration::from_secs(meta.ctime().max(0) as u64)
        } else {
            mtime
        }
        .min(now);
        let settled = now.duration_since(last_change).unwrap_or(Duration::ZERO) >= settle;
        let reason = if !settled {
            WaitReason::Settling
        } else if may_not_read(&entry.path()) {
            found.push((mtime, skipped(name, SkipReason::Unreadable)));
            continue;
        } else {
            WaitReason::Ready
        };
        found.push((
            last_change,
            Waiting {
                file: name,
                reason,
                since: Some(stamp(last_change)),
                claim: None,
                deferral: None,
                detail: None,
            },
        ));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.file.cmp(&b.1.file)));
    found.into_iter().map(|(_, w)| w).collect()
}

/// Whether opening the file for reading is refused (never following a link, never blocking).
fn may_not_read(path: &Path) -> bool {
    use rustix::fs::{Mode, OFlags};
    matches!(
        rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        ),
        Err(rustix::io::Errno::ACCESS | rustix::io::Errno::PERM)
    )
}

/// `t` as RFC 3339 UTC, whole seconds.
fn stamp(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .and_then(|ts| jiff::Timestamp::from_second(ts.as_second()))
        .map(|ts| ts.to_string())
        .unwrap_or_default()
}

/// A stored timestamp as RFC 3339 UTC, whole seconds; kept as it is when it does not parse.
fn rfc3339(text: &str) -> String {
    match text.parse::<jiff::Timestamp>() {
        Ok(ts) => jiff::Timestamp::from_second(ts.as_second())
            .map(|t| t.to_string())
            .unwrap_or_else(|_| text.to_owned()),
        Err(_) => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claims_time_is_read_from_its_id() {
        assert_eq!(
            claim_time("20261127T101112.000000123Z-42-0").as_deref(),
            Some("2026-11-27T10:11:12Z")
        );
        assert_eq!(claim_time("manual"), None);
        assert_eq!(claim_time("20261327T101112Z"), None);
    }

    #[test]
    fn timestamps_are_whole_seconds_utc_and_odd_ones_kept() {
        assert_eq!(
            rfc3339("2026-11-27T10:11:12.987654Z"),
            "2026-11-27T10:11:12Z"
        );
        assert_eq!(rfc3339("2026-11-27T11:11:12+01:00"), "2026-11-27T10:11:12Z");
        assert_eq!(rfc3339("yesterday"), "yesterday");
    }

    #[test]
    fn lines_that_cannot_matter_are_told_without_parsing() {
        let claims: HashSet<String> = ["c1".to_owned()].into();
        let none = HashSet::new();
        let line = |claim: &str, outcome: &str| {
            format!(r#"{{"at":"x","tenant":"acme","claim":"{claim}","outcome":"{outcome}"}}"#)
        };
        assert!(line_may_matter(
            line("c1", "imported").as_bytes(),
            &claims,
            &none
        ));
        let waiting: HashSet<String> = ["c2".to_owned()].into();
        assert!(line_may_matter(
            line("c2", "imported").as_bytes(),
            &none,
            &waiting
        ));
        assert!(line_may_matter(
            line("c2", "rejected").as_bytes(),
            &claims,
            &none
        ));
        assert!(line_may_matter(
            line("c2", "deferred").as_bytes(),
            &claims,
            &none
        ));
        assert!(!line_may_matter(
            line("c2", "imported").as_bytes(),
            &claims,
            &none
        ));
        assert!(line_may_matter(b"{\"torn", &claims, &none));
    }
}
