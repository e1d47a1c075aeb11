//! One claimed file: check, validate every row, push the valid ones, write the report, archive.
//!
//! The order of commitment is the contract's (`docs/product-spec.md`): push the rows → report on
//! disk (spool) → record → `.bak` (the commit point) → send. Every step after the pushes is marked
//! in the file's [`Journal`], and every finished row is journalled as it finishes, so a crash at
//! any moment is resumed by the next pass without losing or doubling anything (at most
//! `concurrency` rows are pushed twice).
//!
//! Reading is synchronous (the `opscom-csv` crate) and runs on a blocking thread that streams
//! rows through a bounded channel; memory does not grow with the file.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use opscom_api::{PushApi, PushOutcome, UserRecord};
use opscom_csv::{FileError, ImportFile, ReadOptions, RowOutcome};
use opscom_mail::{
    ChangeCounts, FailureCsv, FailureCsvWriter, FailureReport, FailureSummary, HeaderSuggestion,
    HeldReport, ImportedReport, PreviewReport, RejectedReport, Report,
};
use opscom_scheduler::{ClaimedFile, DropFolder};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::config::ImportMode;
use crate::delta::{Change, DigestStore, RowDigest};
use crate::journal::{Journal, Mark, Snapshot};
use crate::record::{FileRecord, Outcome};
use crate::report::{self, ReportSink};
use crate::results;

/// Why a file was kept for a later pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeferReason {
    /// The upload changed after it was claimed, or was changed less than `settle` ago.
    StillChanging,
    /// The last record is cut off without its line end, and the file is young: likely an upload
    /// still being written.
    CutOff,
    /// The API could not be reached within the retry budget.
    ApiUnreachable(String),
    /// The API answered 404 "not found" for the push URL for the whole retry budget: the
    /// tenant's `api_url` is likely wrong (a configuration error, not an outage).
    ApiNotFound(String),
    /// The API refused the tenant's token.
    TokenRejected(String),
    /// Reading the file or writing state failed (disk full, permission denied…).
    Io(String),
    /// The service is stopping; the file resumes on the next start.
    Shutdown,
}

impl std::fmt::Display for DeferReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeferReason::StillChanging => f.write_str("the upload is still changing"),
            DeferReason::CutOff => {
                f.write_str("the last row is cut off without its line end (upload unfinished?)")
            }
            DeferReason::ApiUnreachable(e) => write!(f, "API unreachable: {e}"),
            DeferReason::ApiNotFound(e) => write!(f, "API push URL not found: {e}"),
            DeferReason::TokenRejected(e) => write!(f, "API token refused: {e}"),
            DeferReason::Io(e) => write!(f, "I/O fault: {e}"),
            DeferReason::Shutdown => f.write_str("the service is stopping"),
        }
    }
}

impl DeferReason {
    /// A short stable name of the reason (for deciding whether a deferral is news).
    pub fn key(&self) -> &'static str {
        match self {
            DeferReason::StillChanging => "still_changing",
            DeferReason::CutOff => "cut_off",
            DeferReason::ApiUnreachable(_) => "api_unreachable",
            DeferReason::ApiNotFound(_) => "api_not_found",
            DeferReason::TokenRejected(_) => "token_rejected",
            DeferReason::Io(_) => "io",
            DeferReason::Shutdown => "shutdown",
        }
    }
}

impl From<opscom_scheduler::FolderError> for DeferReason {
    fn from(e: opscom_scheduler::FolderError) -> Self {
        DeferReason::Io(e.to_string())
    }
}

impl From<io::Error> for DeferReason {
    fn from(e: io::Error) -> Self {
        DeferReason::Io(e.to_string())
    }
}

/// How one file ended in this pass.
#[derive(Debug)]
pub enum FileOutcome {
    /// Archived to `.bak` (imported, imported with failures, or rejected).
    Archived {
        /// The record appended for it, with its name under `.bak/`.
        record: FileRecord,
        /// Whether any push reached the API (ends an outage or a token refusal).
        api_reached: bool,
    },
    /// Kept claimed for a later pass.
    Deferred {
        /// Why.
        reason: DeferReason,
        /// The record appended for it.
        record: FileRecord,
    },
}

/// Whether a file is imported or only checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// Dropped in the tenant's folder: imported.
    Import,
    /// Dropped in `preview/`: checked as an import would be, and nothing is pushed.
    Preview,
}

/// What processing a file needs from its tenant.
#[derive(Debug)]
pub(crate) struct FileContext<'a, A: ?Sized> {
    pub tenant: &'a crate::config::Tenant,
    /// Where the claimed file lives: the tenant's drop folder, or its `preview/`.
    pub folder: &'a DropFolder,
    /// The tenant's drop folder, where `results/` is.
    pub home: &'a DropFolder,
    pub kind: FileKind,
    pub api: &'a Arc<A>,
    pub reports: &'a ReportSink,
    pub records: &'a crate::record::Records,
    pub settle: Duration,
    pub now: SystemTime,
    pub shutdown: watch::Receiver<bool>,
    pub progress: &'a dyn crate::Progress,
}

/// How long pushes in flight may take to finish once the service is stopping.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A young cut-off file is deferred; one that has rested this long is imported as it is.
fn cut_off_grace(settle: Duration) -> Duration {
    (settle * 3).max(Duration::from_secs(60))
}

fn snapshot_of(meta: &std::fs::Metadata) -> Snapshot {
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64);
    Snapshot {
        size: meta.len(),
        mtime_ns,
    }
}

/// Time since the file's content last changed. A client's clock may set an mtime in the
/// future; then the inode's change time (set by this server's clock) is used.
fn change_age(meta: &std::fs::Metadata, now: SystemTime) -> Duration {
    use std::os::unix::fs::MetadataExt;
    let ctime = UNIX_EPOCH + Duration::new(meta.ctime().max(0) as u64, meta.ctime_nsec() as u32);
    let changed = match meta.modified() {
        Ok(m) if m <= now => m,
        _ => ctime,
    };
    now.duration_since(changed).unwrap_or(Duration::ZERO)
}

/// Paths of a claim's working files in the tenant's work folder. Each is named `CLAIM.…`, so
/// that a pass finds the files of claims that are gone.
pub(crate) struct WorkFiles {
    pub journal: PathBuf,
    pub report: PathBuf,
    /// The client's file with its header line corrected (`NAME-fixed.csv`).
    pub fixed: PathBuf,
    /// The reason of the last deferral recorded for the claim.
    pub deferred: PathBuf,
    /// Present once the client was told that this file is delayed: its import is followed up.
    pub delayed: PathBuf,
}

impl WorkFiles {
    pub fn new(work_dir: &std::path::Path, claim_id: &str) -> WorkFiles {
        let journal = work_dir.join("journal");
        let reports = work_dir.join("reports");
        WorkFiles {
            journal: journal.join(format!("{claim_id}.jsonl")),
            report: reports.join(format!("{claim_id}.csv")),
            fixed: reports.join(format!("{claim_id}.fixed.csv")),
            deferred: journal.join(format!("{claim_id}.deferred")),
            delayed: journal.join(format!("{claim_id}.delayed")),
        }
    }

    /// Every work file, the journal last (while it exists, a pass knows others may be left).
    fn all(&self) -> [&Path; 5] {
        [
            &self.report,
            &self.fixed,
            &self.deferred,
            &self.delayed,
            &self.journal,
        ]
    }
}

/// The state file that says the held file with inode `ino` was released by its client or the
/// operator: it is imported without being held again.
pub(crate) fn approved_state(ino: u64) -> String {
    format!("approved-{ino}")
}

/// Whether a file name asks for a full push whatever the tenant's mode (`roster.full.csv`).
fn is_full_name(name: &str) -> bool {
    name.len() > 9
        && name.is_char_boundary(name.len() - 9)
        && name[name.len() - 9..].eq_ignore_ascii_case(".full.csv")
}

/// How a file is pushed against the tenant's delta state (see [`crate::delta`]).
struct DeltaPlan {
    /// The digests the API last accepted, by `unique_id`.
    store: DigestStore,
    /// Rows whose digest is unchanged are not sent (`mode = "delta"`, and no full push due).
    skip_unchanged: bool,
    /// Every row is pushed: the state's last full push is renewed when the file is committed.
    full: bool,
    path: PathBuf,
}

impl DeltaPlan {
    fn load(tenant: &crate::config::Tenant, file_name: &str, now: SystemTime) -> DeltaPlan {
        let path = tenant.work_dir.join(crate::delta::STATE_FILE);
        let loaded = DigestStore::load(&path, &tenant.name);
        if let Some(reason) = &loaded.fallback {
            warn!(tenant = %tenant.name, file = %file_name, reason = %reason, "the delta state cannot be used: this file is pushed in full");
        }
        let due = match loaded.store.last_full_push() {
            Some(at) => now.duration_since(at).unwrap_or(Duration::ZERO) >= tenant.full_every,
            None => true,
        };
        let full = tenant.mode == ImportMode::Full
            || is_full_name(file_name)
            || loaded.fallback.is_some()
            || due;
        DeltaPlan {
            store: loaded.store,
            skip_unchanged: !full,
            full,
            path,
        }
    }
}

/// Processes one claimed file to its end for this pass.
pub(crate) async fn process<A: PushApi + ?Sized + 'static>(
    cx: FileContext<'_, A>,
    claimed: &ClaimedFile,
) -> FileOutcome {
    let started = Instant::now();
    let mut job = Job {
        cx,
        claimed,
        started,
        ok: 0,
        failed: 0,
        unchanged: 0,
        api_reached: false,
    };
    let result = job.run().await;
    job.finish(result)
}

struct Job<'a, 'c, A: ?Sized> {
    cx: FileContext<'a, A>,
    claimed: &'c ClaimedFile,
    started: Instant,
    ok: u64,
    failed: u64,
    /// Rows not sent: the API already holds their values.
    unchanged: u64,
    api_reached: bool,
}

/// The end of a file's processing in this pass, before it is turned into a [`FileOutcome`].
enum End {
    Archived {
        outcome: Outcome,
        reason: Option<String>,
        archived_as: String,
    },
    Deferred(DeferReason),
}

impl<'a, 'c, A: PushApi + ?Sized + 'static> Job<'a, 'c, A> {
    fn name(&self) -> &str {
        self.claimed.original_name()
    }

    /// The file's record as things stand.
    fn record(&self, outcome: Outcome, reason: Option<String>) -> FileRecord {
        FileRecord {
            at: jiff::Timestamp::try_from(self.cx.now)
                .map(|t| t.to_string())
                .unwrap_or_default(),
            tenant: self.cx.tenant.name.clone(),
            file: self.claimed.original_name().to_owned(),
            claim: self.claimed.id().to_owned(),
            rows_total: self.ok + self.failed + self.unchanged,
            rows_ok: self.ok,
            rows_failed: self.failed,
            rows_unchanged: self.unchanged,
            outcome,
            reason,
            archived_as: None,
            duration_ms: self.started.elapsed().as_millis() as u64,
        }
    }

    fn finish(self, end: End) -> FileOutcome {
        let record = |outcome, reason| self.record(outcome, reason);
        match end {
            End::Archived {
                outcome,
                reason,
                archived_as,
            } => {
                let mut record = record(outcome, reason);
                record.archived_as = Some(archived_as);
                FileOutcome::Archived {
                    record,
                    api_reached: self.api_reached,
                }
            }
            End::Deferred(reason) => {
                let record = record(Outcome::Deferred, Some(reason.to_string()));
                // One record per deferral, not one per pass: a file waiting out a long outage
                // gets a new line only when the reason changes.
                let work = WorkFiles::new(&self.cx.tenant.work_dir, self.claimed.id());
                let last = std::fs::read_to_string(&work.deferred).unwrap_or_default();
                if last != reason.key() {
                    if let Err(e) = self.cx.records.append(&record, self.cx.now) {
                        warn!(tenant = %self.cx.tenant.name, error = %e, "could not append a record");
                    }
                    let _ = crate::private::create_dir_all_private(
                        work.journal.parent().unwrap_or(Path::new(".")),
                    );
                    let _ = crate::private::write_private(&work.deferred, reason.key().as_bytes());
                }
                FileOutcome::Deferred { reason, record }
            }
        }
    }

    async fn run(&mut self) -> End {
        match self.run_inner().await {
            Ok(end) => end,
            Err(reason) => End::Deferred(reason),
        }
    }

    async fn run_inner(&mut self) -> Result<End, DeferReason> {
        let cx = &self.cx;
        let file = self.claimed.open(cx.folder)?;
        let meta = file.metadata()?;
        // Written to since the claim (the client's SFTP server still had it open): wait until
        // the writes have stopped for `settle`. The claim itself was checked by the scheduler.
        if self.claimed.changed_since_claim(cx.folder)? && change_age(&meta, cx.now) < cx.settle {
            return Err(DeferReason::StillChanging);
        }
        let snapshot = snapshot_of(&meta);
        let work = WorkFiles::new(&cx.tenant.work_dir, self.claimed.id());
        let (mut journal, resume) = Journal::open(&work.journal, snapshot)?;
        self.ok = resume.ok;
        self.failed = resume.failed;
        self.unchanged = resume.unchanged;

        let opts = ReadOptions::default().max_file_bytes(Some(cx.tenant.max_file_size));
        let plan = Arc::new(DeltaPlan::load(cx.tenant, self.name(), cx.now));

        // Pass 1: the whole file is read and validated before any API call, and its rows are
        // compared with what the API last accepted.
        let name = self.name().to_owned();
        let (pass1_file, pass1_opts, pass1_plan) = (file, opts.clone(), Arc::clone(&plan));
        let pass1 = tokio::task::spawn_blocking(move || {
            check_file(pass1_file, &name, &pass1_opts, &pass1_plan.store)
        })
        .await
        .map_err(|e| DeferReason::Io(e.to_string()))?;
        let check = match pass1 {
            Ok(check) => {
                if check.cut_off && change_age(&meta, cx.now) < cut_off_grace(cx.settle) {
                    return Err(DeferReason::CutOff);
                }
                self.cx
                    .progress
                    .file_started(self.claimed.original_name(), check.rows);
                check
            }
            Err(e) => match e.kind() {
                // A quote still open at the end of a young file: an upload cut off mid-value.
                opscom_csv::ErrorKind::Rejected(r)
                    if r.kind == opscom_csv::RejectionKind::UnterminatedQuote
                        && change_age(&meta, cx.now) < cut_off_grace(cx.settle) =>
                {
                    return Err(DeferReason::CutOff);
                }
                opscom_csv::ErrorKind::Rejected(rejection) => {
                    let rejection = rejection.clone();
                    return self.reject(&mut journal, &resume.marks, rejection).await;
                }
                _ => return Err(DeferReason::Io(e.to_string())),
            },
        };

        let started = resume.ok + resume.failed + resume.unchanged > 0;
        if !started && self.must_hold(&check, &plan)? {
            return self.hold(&mut journal, &resume.marks, &check, &plan);
        }

        // Pass 2: push the valid rows, report the invalid ones, journal each as it finishes.
        let mut report = ReportFile::open(&work.report, &check.header, resume.report_len)?;
        if !resume.marks.contains(&Mark::ReportSpooled) {
            let stop = self
                .push_rows(&mut journal, &mut report, &resume.done, &opts, &plan)
                .await?;
            if let Some(reason) = stop {
                return Err(reason);
            }
            let now_meta = self.claimed.open(self.cx.folder)?.metadata()?;
            if snapshot_of(&now_meta) != snapshot {
                return Err(DeferReason::StillChanging);
            }
        }
        let report_path = report.finish()?;

        let outcome = match (self.cx.kind, self.failed) {
            (FileKind::Preview, _) => Outcome::Previewed,
            (FileKind::Import, 0) => Outcome::Imported,
            (FileKind::Import, _) => Outcome::ImportedWithFailures,
        };
        let summary = self.failure_summary(&journal)?;
        let failed_csv = (self.failed > 0).then_some(report_path.as_path());
        let after_delay = work.delayed.exists();
        let counts = Counts {
            total: self.ok + self.failed + self.unchanged,
            ok: self.ok,
            failed: self.failed,
            unchanged: self.unchanged,
        };
        let report = match self.cx.kind {
            FileKind::Preview => Report::Preview(PreviewReport {
                file_name: self.name().to_owned(),
                rows_total: counts.total,
                rows_would_send: counts.ok,
                rows_failed: counts.failed,
                summary,
                failure_csv: failed_csv.map(FailureCsv::from),
                change: Some(check.changes),
            }),
            FileKind::Import if self.failed > 0 => Report::Failures(FailureReport {
                file_name: self.name().to_owned(),
                rows_total: counts.total,
                rows_ok: counts.ok,
                rows_failed: counts.failed,
                rows_unchanged: counts.unchanged,
                after_delay,
                summary,
                failure_csv: failed_csv.map(FailureCsv::from),
            }),
            FileKind::Import => Report::Imported(ImportedReport {
                file_name: self.name().to_owned(),
                rows_total: counts.total,
                rows_sent: counts.ok,
                rows_unchanged: counts.unchanged,
                after_delay,
            }),
        };
        // A preview and a failure are always told; a success when asked, or after a delay.
        let mail = match &report {
            Report::Imported(_) => self.cx.tenant.notify_on_success || after_delay,
            _ => true,
        };
        if !resume.marks.contains(&Mark::ReportSpooled) {
            if mail {
                self.cx
                    .reports
                    .hold(&report, self.claimed.id(), self.cx.now)
                    .map_err(|e| DeferReason::Io(e.to_string()))?;
            }
            journal.mark(Mark::ReportSpooled)?;
        }
        self.write_results(&mut journal, &resume.marks, &report, failed_csv, None)?;
        if self.cx.kind == FileKind::Import {
            self.save_digests(&journal, plan);
        }
        self.commit(&mut journal, &resume.marks, outcome, None)
    }

    /// The failed rows' reasons, read back from the journal.
    fn failure_summary(&self, journal: &Journal) -> Result<FailureSummary, DeferReason> {
        let mut summary = FailureSummary::new();
        if self.failed > 0 {
            journal.for_each_failure(|f| {
                if let Some(sign) = &f.excel_sign {
                    summary.note_excel_damage(sign);
                }
                summary.add(&f.category, f.line, &f.reason);
            })?;
        }
        Ok(summary)
    }

    /// Whether the file would change more of the known users than the tenant allows: then it
    /// is held for approval, unless it was released.
    fn must_hold(&self, check: &Check, plan: &DeltaPlan) -> Result<bool, DeferReason> {
        let Some(limit) = self.cx.tenant.hold_changed_percent else {
            return Ok(false);
        };
        if self.cx.kind != FileKind::Import {
            return Ok(false);
        }
        let known = plan.store.len() as u64;
        let changed = check.changes.changed;
        if known == 0 || (changed as f64) * 100.0 <= limit * known as f64 {
            return Ok(false);
        }
        let approved = self
            .cx
            .folder
            .read_state(&approved_state(self.claimed.ino()))?
            .is_some();
        if approved {
            info!(tenant = %self.cx.tenant.name, file = %self.name(), changed, known, "file released by its client or the operator: imported although it changes many users");
        }
        Ok(!approved)
    }

    /// Holds the file in `held/` for the client's approval: reported (to the client, and to
    /// the operator when there is one), recorded, moved; no row is pushed.
    fn hold(
        &mut self,
        journal: &mut Journal,
        marks: &std::collections::BTreeSet<Mark>,
        check: &Check,
        plan: &DeltaPlan,
    ) -> Result<End, DeferReason> {
        let known = plan.store.len() as u64;
        let changed = check.changes.changed;
        let limit = self.cx.tenant.hold_changed_percent.unwrap_or(100.0);
        info!(tenant = %self.cx.tenant.name, file = %self.name(), changed, known, limit, "file held: it would change more users than allowed");
        // The uploads that wait behind it, for the e-mail.
        let waiting = self
            .cx
            .folder
            .scan(self.cx.now, Duration::ZERO)
            .map(|s| s.ready.into_iter().map(|c| c.name).collect())
            .unwrap_or_default();
        let report = Report::Held(HeldReport {
            file_name: self.name().to_owned(),
            would_change: changed,
            known_users: known,
            percent_limit: limit,
            examples: check.examples.clone(),
            held_as: self.name().to_owned(),
            files_waiting: waiting,
        });
        if !marks.contains(&Mark::ReportSpooled) {
            let reports = self.cx.reports;
            reports
                .hold(&report, self.claimed.id(), self.cx.now)
                .and_then(|()| {
                    reports.to_operator(
                        &report,
                        &format!("held-{}", self.claimed.id()),
                        self.cx.now,
                    )
                })
                .map_err(|e| DeferReason::Io(e.to_string()))?;
            journal.mark(Mark::ReportSpooled)?;
        }
        self.write_results(journal, marks, &report, None, None)?;
        // A `held` that is a file or a link (the client's) cannot take the file: it stays
        // claimed, holding the tenant's later files back too, until the client deletes it.
        match self.cx.folder.client_dir(opscom_scheduler::ClientDir::Held) {
            Ok(_) => crate::markers::subfolder_fixed(
                self.cx.folder,
                &self.cx.tenant.name,
                opscom_scheduler::HELD_DIR,
            ),
            Err(e @ opscom_scheduler::FolderError::NotAFolder { .. }) => {
                crate::markers::tell_subfolder_once(
                    self.cx.folder,
                    self.cx.reports,
                    &self.cx.tenant.name,
                    opscom_scheduler::HELD_DIR,
                    self.cx.now,
                );
                return Err(DeferReason::Io(e.to_string()));
            }
            Err(e) => return Err(DeferReason::Io(e.to_string())),
        }
        let reason = format!(
            "held: it would change {changed} of the {known} known users, more than {limit}%"
        );
        let (folder, claimed, now) = (self.cx.folder, self.claimed, self.cx.now);
        self.commit_with(journal, marks, Outcome::Held, Some(reason), || {
            folder.hold(claimed, now).map(|name| format!("held/{name}"))
        })
    }

    /// Writes `results/NAME-summary.txt` (and the failure CSV and the corrected file, when
    /// there are) once per file. A results folder that cannot be written is the client's to
    /// fix, told once; it never blocks or repeats an import.
    fn write_results(
        &self,
        journal: &mut Journal,
        marks: &std::collections::BTreeSet<Mark>,
        report: &Report,
        failed_csv: Option<&Path>,
        fixed_csv: Option<&Path>,
    ) -> Result<(), DeferReason> {
        if marks.contains(&Mark::ResultsWritten) {
            return Ok(());
        }
        let files = results::ResultFiles {
            file_name: self.name(),
            report,
            failed_csv,
            fixed_csv,
        };
        results::write(
            self.cx.home,
            self.cx.reports,
            &self.cx.tenant.name,
            &files,
            self.cx.now,
        );
        journal.mark(Mark::ResultsWritten)?;
        Ok(())
    }

    /// Merges the digests of the rows the API accepted into the tenant's delta state. A state
    /// that cannot be written costs pushes later (those rows count as changed), never a row.
    fn save_digests(&self, journal: &Journal, plan: Arc<DeltaPlan>) {
        let plan = match Arc::try_unwrap(plan) {
            Ok(plan) => plan,
            Err(_) => return, // still shared: cannot happen once pass 1 is over
        };
        let DeltaPlan {
            mut store,
            full,
            path,
            ..
        } = plan;
        let mut confirmed = Vec::new();
        if let Err(e) =
            journal.for_each_confirmed(|[id, value]| confirmed.push(RowDigest { id, value }))
        {
            warn!(tenant = %self.cx.tenant.name, error = %e, "cannot read the journal's pushed rows: the delta state is not updated");
            return;
        }
        store.merge(confirmed);
        if full {
            store.mark_full_push(self.cx.now);
        }
        if let Err(e) = store.save(&path, &self.cx.tenant.name) {
            warn!(tenant = %self.cx.tenant.name, error = %e, path = %path.display(), "cannot save the delta state: the next import pushes these rows again");
        }
    }

    /// A file rejected whole: reported, recorded, archived; no row is pushed.
    async fn reject(
        &mut self,
        journal: &mut Journal,
        marks: &std::collections::BTreeSet<Mark>,
        rejection: opscom_csv::Rejection,
    ) -> Result<End, DeferReason> {
        info!(tenant = %self.cx.tenant.name, file = %self.name(), reason = %rejection, "file rejected");
        self.ok = 0;
        self.failed = 0;
        self.unchanged = 0;
        let work = WorkFiles::new(&self.cx.tenant.work_dir, self.claimed.id());
        let fixed = self.fixed_copy(&rejection, &work.fixed).await;
        let report = Report::Rejected(RejectedReport {
            file_name: self.name().to_owned(),
            reason: rejection.reason.clone(),
            fix: Some(rejection.fix.clone()),
            line: rejection.line,
            excel_damage: rejection.kind.looks_like_excel_damage(),
            header_fixes: rejection
                .headers
                .iter()
                .map(|h| HeaderSuggestion {
                    given: h.given.clone(),
                    closest: h.closest.iter().map(|c| (*c).to_owned()).collect(),
                })
                .collect(),
            fixed_csv: fixed.clone().map(FailureCsv::from),
            preview: self.cx.kind == FileKind::Preview,
        });
        if !marks.contains(&Mark::ReportSpooled) {
            self.cx
                .reports
                .hold(&report, self.claimed.id(), self.cx.now)
                .map_err(|e| DeferReason::Io(e.to_string()))?;
            journal.mark(Mark::ReportSpooled)?;
        }
        self.write_results(journal, marks, &report, None, fixed.as_deref())?;
        self.commit(
            journal,
            marks,
            Outcome::Rejected,
            Some(rejection.to_string()),
        )
    }

    /// When every unknown header has exactly one accepted name that differs only in case,
    /// spaces, dashes or underscores, the client's file with only its header line corrected,
    /// written to `path` (`NAME-fixed.csv`); `None` otherwise, or when it cannot be written.
    async fn fixed_copy(&self, rejection: &opscom_csv::Rejection, path: &Path) -> Option<PathBuf> {
        let fixes = rejection.header_fixes()?.to_vec();
        let input = self.claimed.open(self.cx.folder).ok()?;
        let out = path.to_owned();
        let written = tokio::task::spawn_blocking(move || -> io::Result<()> {
            if let Some(dir) = out.parent() {
                crate::private::create_dir_all_private(dir)?;
            }
            let file = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(0o600)
                .open(&out)?;
            let mut writer = io::BufWriter::new(file);
            opscom_csv::fixed_header_copy(input, &mut writer, &fixes)?;
            writer.into_inner().map_err(|e| e.into_error())?.sync_data()
        })
        .await;
        match written {
            Ok(Ok(())) => Some(path.to_owned()),
            Ok(Err(e)) => {
                warn!(tenant = %self.cx.tenant.name, file = %self.name(), error = %e, "cannot write the corrected copy of a rejected file");
                None
            }
            Err(_) => None,
        }
    }

    /// Record, then archive (the commit point).
    fn commit(
        &mut self,
        journal: &mut Journal,
        marks: &std::collections::BTreeSet<Mark>,
        outcome: Outcome,
        reason: Option<String>,
    ) -> Result<End, DeferReason> {
        let (folder, claimed, now) = (self.cx.folder, self.claimed, self.cx.now);
        self.commit_with(journal, marks, outcome, reason, || {
            folder.archive(claimed, now)
        })
    }

    /// Record, then `place` the file (into `.bak` or `held/`: the commit point), then let its
    /// report go and remove its work files.
    fn commit_with(
        &mut self,
        journal: &mut Journal,
        marks: &std::collections::BTreeSet<Mark>,
        outcome: Outcome,
        reason: Option<String>,
        place: impl FnOnce() -> Result<String, opscom_scheduler::FolderError>,
    ) -> Result<End, DeferReason> {
        if !marks.contains(&Mark::Recorded) {
            self.cx
                .records
                .append(&self.record(outcome, reason.clone()), self.cx.now)?;
            journal.mark(Mark::Recorded)?;
        }
        let archived_as = place().map_err(|e| DeferReason::Io(e.to_string()))?;
        // Committed: its report (if any) may go. Should this fail, the next pass releases it.
        if let Err(e) = self.cx.reports.release(self.claimed.id()) {
            warn!(tenant = %self.cx.tenant.name, error = %e, "cannot release a report; the next pass will");
        }
        info!(
            tenant = %self.cx.tenant.name,
            file = %self.name(),
            archived_as = %archived_as,
            outcome = %outcome,
            rows_ok = self.ok,
            rows_failed = self.failed,
            rows_unchanged = self.unchanged,
            "file archived"
        );
        // A released file is imported now: its approval is spent.
        let _ = self
            .cx
            .folder
            .remove_state(&approved_state(self.claimed.ino()));
        let work = WorkFiles::new(&self.cx.tenant.work_dir, self.claimed.id());
        for path in work.all() {
            if let Err(e) = std::fs::remove_file(path)
                && e.kind() != io::ErrorKind::NotFound
            {
                warn!(path = %path.display(), error = %e, "could not remove a work file");
            }
        }
        Ok(End::Archived {
            outcome,
            reason,
            archived_as,
        })
    }

    /// Streams the rows, pushing valid ones with bounded concurrency (a preview pushes none; a
    /// delta import skips the rows the API already holds). Returns why it stopped early, if it
    /// did.
    async fn push_rows(
        &mut self,
        journal: &mut Journal,
        report: &mut ReportFile,
        done: &crate::journal::Done,
        opts: &ReadOptions,
        plan: &DeltaPlan,
    ) -> Result<Option<DeferReason>, DeferReason> {
        let concurrency = self.cx.tenant.concurrency.max(1);
        let (tx, mut rx) = mpsc::channel::<Result<(u64, RowOutcome), FileError>>(concurrency * 4);
        let file = self.claimed.open(self.cx.folder)?;
        let name = self.name().to_owned();
        let opts = opts.clone();
        let done_for_reader = done.clone();
        let reader = tokio::task::spawn_blocking(move || {
            stream_rows(file, &name, &opts, &done_for_reader, &tx)
        });

        let api = Arc::clone(self.cx.api);
        let preview = self.cx.kind == FileKind::Preview;
        let mut in_flight = FuturesUnordered::new();
        let mut rows_open = true;
        let mut stop: Option<DeferReason> = None;
        let mut shutdown = self.cx.shutdown.clone();
        // On shutdown, pushes in flight get this long to finish; the rest are redone on resume.
        let mut give_up_at: Option<tokio::time::Instant> = None;
        loop {
            let can_take = rows_open && stop.is_none() && in_flight.len() < concurrency;
            if !can_take && in_flight.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                () = stopping(&mut shutdown), if stop.is_none() => {
                    stop = Some(DeferReason::Shutdown);
                    give_up_at = Some(tokio::time::Instant::now() + SHUTDOWN_GRACE);
                }
                _ = tokio::time::sleep_until(give_up_at.unwrap_or_else(tokio::time::Instant::now)), if give_up_at.is_some() => {
                    warn!(tenant = %self.cx.tenant.name, in_flight = in_flight.len(), "stopping with pushes unanswered; they are redone on resume");
                    break;
                }
                Some(Pushed { seq, line, raw, digest, user, outcome }) = in_flight.next(), if !in_flight.is_empty() => {
                    self.cx.progress.row_done();
                    match outcome {
                        PushOutcome::Accepted => {
                            self.api_reached = true;
                            self.ok += 1;
                            journal.row_ok(seq, line, report.len(), Some([digest.id, digest.value]))?;
                        }
                        PushOutcome::RowRejected(err) => {
                            self.api_reached = true;
                            if err.code == Some(opscom_api::PARSE_ERROR_CODE) {
                                warn!(tenant = %self.cx.tenant.name, line, "the API could not parse our request (9003): a bug in the importer");
                            }
                            let category = report::api_category(&err);
                            let reason = opscom_api::explain_refusal(&err, &user);
                            report.write(line, &raw, &reason)?;
                            self.failed += 1;
                            journal.row_failed(seq, line, report.len(), &category, &reason, None)?;
                        }
                        PushOutcome::TokenRejected(err) => {
                            stop.get_or_insert(DeferReason::TokenRejected(err.to_string()));
                        }
                        PushOutcome::Unreachable(err) => {
                            stop.get_or_insert(
                                if matches!(err.last_cause, opscom_api::TransientCause::NotFound) {
                                    DeferReason::ApiNotFound(err.to_string())
                                } else {
                                    DeferReason::ApiUnreachable(err.to_string())
                                },
                            );
                        }
                    }
                }
                msg = rx.recv(), if can_take => match msg {
                    None => rows_open = false,
                    Some(Err(e)) => {
                        stop.get_or_insert(DeferReason::Io(e.to_string()));
                    }
                    Some(Ok((seq, RowOutcome::Invalid(row)))) => {
                        self.cx.progress.row_done();
                        let reason = row.reason();
                        let category = report::category_of(&row);
                        let excel = report::excel_sign(&row);
                        report.write(row.line, &row.raw.to_vec(), &reason)?;
                        self.failed += 1;
                        journal.row_failed(seq, row.line, report.len(), &category, &reason, excel.as_deref())?;
                    }
                    Some(Ok((seq, RowOutcome::Valid(row)))) => {
                        let digest = crate::delta::row_digest(row.unique_id(), row.fields());
                        if plan.skip_unchanged && plan.store.classify(&digest) == Change::Unchanged {
                            // The API holds these very values already.
                            self.cx.progress.row_done();
                            self.unchanged += 1;
                            journal.row_unchanged(seq, row.line, report.len())?;
                        } else if preview {
                            // Would be sent; nothing is.
                            self.cx.progress.row_done();
                            self.ok += 1;
                            journal.row_previewed(seq, row.line, report.len())?;
                        } else {
                            let user = UserRecord {
                                line: row.line,
                                unique_id: row.unique_id().to_owned(),
                                attributes: row.fields().map(|(k, v)| (k.into(), v.to_owned())).collect(),
                            };
                            let api = Arc::clone(&api);
                            in_flight.push(async move {
                                let outcome = api.push_user(&user).await;
                                Pushed { seq, line: row.line, raw: row.raw.to_vec(), digest, user, outcome }
                            });
                        }
                    }
                },
            }
        }
        drop(rx);
        let _ = reader.await;
        journal.flush()?;
        Ok(stop)
    }
}

/// Resolves once `shutdown` turns true; never, if its sender is gone without saying so.
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A push that finished, with what its report row and the delta state need.
struct Pushed {
    seq: u64,
    line: u64,
    raw: Vec<String>,
    digest: RowDigest,
    user: UserRecord,
    outcome: PushOutcome,
}

/// A file's rows by what became of them.
struct Counts {
    total: u64,
    ok: u64,
    failed: u64,
    unchanged: u64,
}

/// What the first pass learned.
struct Check {
    header: Vec<String>,
    rows: u64,
    cut_off: bool,
    /// The valid rows against the tenant's delta state: new, changed, unchanged users.
    changes: ChangeCounts,
    /// A few `unique_id`s of changed users, for a held file's e-mail.
    examples: Vec<String>,
}

/// How many changed `unique_id`s a held file's e-mail shows.
const HELD_EXAMPLES: usize = 5;

/// Pass 1: reads and validates every row, keeping nothing but counts (and a few examples).
fn check_file(
    file: File,
    name: &str,
    opts: &ReadOptions,
    store: &DigestStore,
) -> Result<Check, FileError> {
    let mut reader = ImportFile::open(file, name, opts)?;
    let header = reader.header_raw().to_vec();
    let mut rows = 0;
    let mut changes = ChangeCounts {
        new: 0,
        changed: 0,
        unchanged: 0,
    };
    let mut examples = Vec::new();
    // A last record cut short (too few values) without its line end is an unfinished upload.
    let mut last_incomplete = false;
    while let Some(row) = reader.next_row() {
        let row = row?;
        last_incomplete = matches!(
            &row,
            RowOutcome::Invalid(r) if r.problems.iter().any(|p| matches!(p, opscom_csv::RowProblem::FieldCount { expected, got, .. } if got < expected))
        );
        if let RowOutcome::Valid(valid) = &row {
            match store.classify(&crate::delta::row_digest(valid.unique_id(), valid.fields())) {
                Change::New => changes.new += 1,
                Change::Unchanged => changes.unchanged += 1,
                Change::Changed => {
                    changes.changed += 1;
                    if examples.len() < HELD_EXAMPLES {
                        examples.push(valid.unique_id().to_owned());
                    }
                }
            }
        }
        rows += 1;
    }
    let cut_off = reader.ended_with_line_terminator() == Some(false) && last_incomplete;
    Ok(Check {
        header,
        rows,
        cut_off,
        changes,
        examples,
    })
}

/// Pass 2's reader: sends every row not yet done, numbered by its position among data rows.
fn stream_rows(
    file: File,
    name: &str,
    opts: &ReadOptions,
    done: &crate::journal::Done,
    tx: &mpsc::Sender<Result<(u64, RowOutcome), FileError>>,
) {
    let mut reader = match ImportFile::open(file, name, opts) {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.blocking_send(Err(e));
            return;
        }
    };
    let mut seq = 0;
    while let Some(row) = reader.next_row() {
        let msg = match row {
            Ok(outcome) => {
                seq += 1;
                if done.contains(seq) {
                    continue;
                }
                Ok((seq, outcome))
            }
            Err(e) => Err(e),
        };
        let is_err = msg.is_err();
        if tx.blocking_send(msg).is_err() || is_err {
            return;
        }
    }
}

/// The failure CSV being written, resumable: after a crash it is cut back to the length the
/// journal last vouched for and appended to.
struct ReportFile {
    path: PathBuf,
    writer: FailureCsvWriter<SkipFirst<File>>,
}

impl ReportFile {
    fn open(path: &std::path::Path, header: &[String], resume_len: u64) -> io::Result<ReportFile> {
        if let Some(dir) = path.parent() {
            crate::private::create_dir_all_private(dir)?;
        }
        // The failed rows, personal data: the owner's alone.
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path)?;
        let header_len = FailureCsvWriter::new(Vec::new(), header)
            .and_then(|w| w.finish())
            .map_err(io::Error::other)?
            .len() as u64;
        // A report that has its header (and maybe rows) is appended to; else it is started
        // afresh (also one shorter than the journal says — a power loss — rather than padded
        // with zeros).
        let on_disk = file.metadata()?.len();
        let keep = if resume_len >= header_len && resume_len <= on_disk {
            resume_len
        } else {
            0
        };
        file.set_len(keep)?;
        file.seek(SeekFrom::Start(keep))?;
        let skip = if keep > 0 { header_len } else { 0 };
        let writer = FailureCsvWriter::new(
            SkipFirst {
                inner: file,
                skip,
                written: keep,
            },
            header,
        )
        .map_err(io::Error::other)?;
        Ok(ReportFile {
            path: path.to_owned(),
            writer,
        })
    }

    fn write(&mut self, line: u64, raw: &[String], reason: &str) -> io::Result<()> {
        self.writer
            .write_failure(line, raw, reason)
            .map_err(io::Error::other)
            .and_then(|()| self.writer.flush())
    }

    /// Bytes in the file so far.
    fn len(&self) -> u64 {
        self.writer.get_ref().written
    }

    fn finish(self) -> io::Result<PathBuf> {
        let mut inner = self.writer.finish().map_err(io::Error::other)?;
        inner.inner.flush()?;
        inner.inner.sync_data()?;
        Ok(self.path)
    }
}

/// A writer that drops the first `skip` bytes (a header already in the file) and counts the rest.
struct SkipFirst<W> {
    inner: W,
    skip: u64,
    written: u64,
}

impl<W: Write> Write for SkipFirst<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.skip > 0 {
            let n = (self.skip as usize).min(buf.len());
            self.skip -= n as u64;
            return Ok(n);
        }
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W> std::fmt::Debug for SkipFirst<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkipFirst")
            .field("written", &self.written)
            .finish()
    }
}
