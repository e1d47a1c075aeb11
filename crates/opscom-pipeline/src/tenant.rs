//! One pass over one tenant: lock it, send what waits in its spool, take its files one at a time
//! (a file left claimed by a crash first, then the oldest ready upload), stop at the first file
//! that must wait.
//!
//! A tenant's faults stay with the tenant: its broken token, outage, hostile folder or malformed
//! file end its own pass and never touch another tenant's.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use opscom_api::PushApi;
use opscom_mail::Mailer;
use opscom_mail::{NotImportableReport, NotImportableWhat, Report, SignalNotHeldReport};
use opscom_scheduler::{
    Candidate, ClientDir, Clock, DropFolder, FolderError, Signal, SignalAction, TenantLock,
    Unimportable, UnimportableKind,
};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::config::{RecordsSettings, Tenant};
use crate::file::{self, DeferReason, FileContext, FileKind, FileOutcome, WorkFiles};
use crate::markers;
use crate::metrics::{RowCounts, TenantMetrics, Waiting};
use crate::record::{FileRecord, Outcome, Records};
use crate::report::{ReportSink, Sender};
use crate::retention::BakRetention;
use crate::{NoProgress, Progress};

/// Marker files in the tenant's work folder (state files of its [`DropFolder`]): an outage, a
/// token refusal or a `.bak` that is not a folder is reported once, across processes.
const OUTAGE_MARKER: &str = "outage-reported";
const TOKEN_MARKER: &str = "token-refusal-reported";
const BAK_MARKER: &str = "bak-fault-reported";
/// How many uploads that cannot be imported one pass reports and sets aside (the rest wait for
/// the next pass): a client who dumps thousands of files gets them all reported, in batches.
const UNIMPORTABLE_PER_PASS: usize = 100;

/// What one pass over a tenant did.
#[derive(Debug, Default)]
pub struct TenantPass {
    /// The tenant's name.
    pub tenant: String,
    /// Records of the files processed in this pass (archived or deferred).
    pub files: Vec<FileRecord>,
    /// A file waits for a later pass (deferred).
    pub deferred: bool,
    /// Reports wait in the spool because mail could not be sent.
    pub reports_pending: bool,
    /// Another process holds the tenant: it was skipped (not an error).
    pub busy: bool,
    /// A fault that stopped the tenant's pass (unusable drop folder, `.bak` not a directory…).
    pub fault: Option<String>,
    /// Uploads seen still settling at the end of the pass: another pass is due `settle` later.
    pub settling: usize,
    /// Why the file that ended the pass was deferred, if one was (for operator alerts).
    pub defer_reason: Option<DeferReason>,
    /// Some push of this pass reached the API (an outage or a token refusal is over).
    pub api_reached: bool,
}

impl TenantPass {
    /// Whether something waits for a later pass (`once` exits 3).
    pub fn waits(&self) -> bool {
        self.deferred || self.reports_pending || self.fault.is_some()
    }
}

/// Everything a tenant's passes need, built once.
#[derive(Debug)]
pub struct TenantRunner<A: ?Sized, M: ?Sized, C: ?Sized> {
    tenant: Tenant,
    api: Arc<A>,
    mailer: Arc<M>,
    clock: Arc<C>,
    records: Records,
    settle: Duration,
    progress: Arc<dyn Progress>,
    /// Skipped entries already logged, so that a hostile entry is not logged on every scan.
    skipped_reported: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The drop and work folders passed the start-up checks (a claim can be made) once.
    checked: AtomicBool,
    /// The fault that pauses the tenant, as last logged: logged once, not on every pass.
    paused: std::sync::Mutex<Option<String>>,
    /// Replaced or removed by a reload: take no further file.
    retired: AtomicBool,
    /// Where files, rows, waiting files and unsent reports are counted, if anywhere.
    metrics: Option<TenantMetrics>,
    /// `bak_retention`, and when `.bak` is swept next.
    bak_retention: BakRetention,
    /// Who the reports come from (operator sender, DKIM, operator copies).
    sender: Sender,
    /// `preview/`'s modification time when a pass last left it with nothing to do: while it
    /// stays the same, an idle pass does not open or list it.
    preview_seen: std::sync::Mutex<Option<SystemTime>>,
}

impl<A, M, C> TenantRunner<A, M, C>
where
    A: PushApi + ?Sized + 'static,
    M: Mailer + ?Sized + 'static,
    C: Clock + ?Sized + 'static,
{
    /// A runner for `tenant`, recording into `state_dir`.
    pub fn new(
        tenant: Tenant,
        api: Arc<A>,
        mailer: Arc<M>,
        clock: Arc<C>,
        state_dir: &Path,
        settle: Duration,
    ) -> Self {
        TenantRunner {
            bak_retention: BakRetention::new(tenant.bak_retention),
            tenant,
            api,
            mailer,
            clock,
            records: Records::new(state_dir),
            settle,
            progress: Arc::new(NoProgress),
            skipped_reported: Default::default(),
            checked: AtomicBool::new(false),
            paused: std::sync::Mutex::new(None),
            retired: AtomicBool::new(false),
            metrics: None,
            sender: Sender::default(),
            preview_seen: std::sync::Mutex::new(None),
        }
    }

    /// Sends the reports as `sender` says (`[mail] from`, DKIM, the operator's copies).
    pub fn with_sender(mut self, sender: Sender) -> Self {
        self.sender = sender;
        self
    }

    /// Counts this tenant's files, rows, waiting files and unsent reports in `metrics`.
    pub fn with_metrics(mut self, metrics: TenantMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Reports progress of rows to `progress` (a terminal's progress bar).
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = progress;
        self
    }

    /// Rotates and keeps `records.jsonl` as `settings` (the `[records]` table) say.
    pub fn with_records(mut self, settings: &RecordsSettings) -> Self {
        self.records = self.records.with_settings(settings);
        self
    }

    /// The tenant.
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// Takes no further file: the file in hand is finished, then the pass ends (a reload
    /// replaced or removed this tenant).
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
    }

    /// Whether [`retire`](Self::retire) was called.
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Relaxed)
    }

    /// The fault that pauses this tenant (an unusable folder, `.bak` not a folder…), if its
    /// last pass found one.
    pub fn paused(&self) -> Option<String> {
        self.paused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// One pass: returns what it did. Never panics on a hostile folder or a bad file. A fault
    /// pauses the tenant until a later pass finds it gone; it is logged when it starts and when
    /// it clears, not on every pass.
    pub async fn pass(&self, shutdown: watch::Receiver<bool>) -> TenantPass {
        let mut pass = TenantPass {
            tenant: self.tenant.name.clone(),
            ..TenantPass::default()
        };
        self.pass_inner(shutdown, &mut pass).await;
        if !pass.busy {
            self.note_fault(pass.fault.as_deref());
        }
        pass
    }

    /// Logs a fault once when it starts (or changes) and once when it clears.
    fn note_fault(&self, fault: Option<&str>) {
        let mut paused = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        match (paused.as_deref(), fault) {
            (Some(old), Some(new)) if old == new => {}
            (_, Some(new)) => {
                error!(tenant = %self.tenant.name, fault = %new, "tenant paused; the other tenants go on, and each pass looks again");
                *paused = Some(new.to_owned());
            }
            (Some(_), None) => {
                info!(tenant = %self.tenant.name, "tenant resumed");
                *paused = None;
            }
            (None, None) => {}
        }
    }

    async fn pass_inner(&self, shutdown: watch::Receiver<bool>, pass: &mut TenantPass) {
        // Later passes skip what the first one made sure of: an idle pass over thousands of
        // tenants must cost a few dozen system calls each.
        if !self.checked.load(Ordering::Relaxed)
            && let Err(e) = create_private_dir(&self.tenant.work_dir)
        {
            pass.fault = Some(format!(
                "cannot create the work folder {}: {e}",
                self.tenant.work_dir.display()
            ));
            return;
        }
        let _lock = match TenantLock::try_acquire(&self.tenant.work_dir) {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                debug!(tenant = %self.tenant.name, "another process holds this tenant: skipped");
                pass.busy = true;
                return;
            }
            Err(e) => {
                pass.fault = Some(e.to_string());
                return;
            }
        };
        let reports = match ReportSink::open(&self.tenant, &self.sender) {
            Ok(r) => r,
            Err(e) => {
                pass.fault = Some(format!("cannot open the report spool: {e}"));
                return;
            }
        };
        let sent_all = self.deliver(&reports).await;

        match self.open_folder() {
            Ok(folder) => {
                let preview = if self.preview_changed() {
                    self.open_preview(&folder, &reports)
                } else {
                    None
                };
                self.remove_orphaned_work_files(&folder, preview.as_ref(), &reports);
                self.take_files(&folder, &reports, shutdown.clone(), pass)
                    .await;
                if let Some(preview) = &preview
                    && pass.fault.is_none()
                    && !pass.deferred
                {
                    let idle = self
                        .take_previews(&folder, preview, &reports, shutdown, pass)
                        .await;
                    self.note_preview_idle(idle);
                }
                if pass.fault.is_none() {
                    let now = self.clock.now();
                    self.bak_retention
                        .sweep_if_due(&self.tenant.name, &folder, now);
                }
            }
            Err(e) => pass.fault = Some(e),
        }

        // Send what this pass spooled; an idle pass that found the spool empty has nothing new.
        pass.reports_pending = if sent_all && reports.spooled() == 0 {
            false
        } else {
            !self.deliver(&reports).await
        };
    }

    /// Opens the drop and work folders; the first time, also checks that a file can be moved
    /// from one to the other (the same filesystem), as claims need.
    fn open_folder(&self) -> Result<DropFolder, String> {
        let folder = DropFolder::reopen(&self.tenant.drop_dir, &self.tenant.work_dir)
            .map_err(|e| e.to_string())?;
        if !self.checked.load(Ordering::Relaxed) {
            folder.check_once().map_err(|e| e.to_string())?;
            // The client's results folder, next to `.bak` (its problems are told when a result
            // is written).
            if let Err(e) = folder.client_dir(ClientDir::Results) {
                debug!(tenant = %self.tenant.name, error = %e, "no results folder yet");
            }
            self.checked.store(true, Ordering::Relaxed);
        }
        Ok(folder)
    }

    /// The tenant's `preview/` as a drop folder of its own (created on first use); `None`
    /// when it cannot be used: a file or a link named `preview` is told to the client once.
    fn open_preview(&self, folder: &DropFolder, reports: &ReportSink) -> Option<DropFolder> {
        match folder.preview() {
            Ok(preview) => {
                markers::subfolder_fixed(folder, &self.tenant.name, opscom_scheduler::PREVIEW_DIR);
                Some(preview)
            }
            Err(e @ FolderError::NotAFolder { .. }) => {
                debug!(tenant = %self.tenant.name, error = %e, "previews are off until this is fixed");
                markers::tell_subfolder_once(
                    folder,
                    reports,
                    &self.tenant.name,
                    opscom_scheduler::PREVIEW_DIR,
                    self.clock.now(),
                );
                None
            }
            Err(e) => {
                warn!(tenant = %self.tenant.name, error = %e, "cannot open the preview folder");
                None
            }
        }
    }

    /// Whether `preview/` may hold work: it changed since a pass last left it idle (or cannot
    /// be looked at without opening it). One `lstat` per idle pass.
    fn preview_changed(&self) -> bool {
        let path = self.tenant.drop_dir.join(opscom_scheduler::PREVIEW_DIR);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            return true;
        };
        let seen = *self.preview_seen.lock().unwrap_or_else(|e| e.into_inner());
        !(meta.is_dir() && seen.is_some() && meta.modified().ok() == seen)
    }

    /// After the previews of a pass: remembers `preview/`'s time when nothing is left to do
    /// there (no claim, nothing settling), so that the next idle pass skips it.
    fn note_preview_idle(&self, idle: bool) {
        let path = self.tenant.drop_dir.join(opscom_scheduler::PREVIEW_DIR);
        let now = std::fs::symlink_metadata(&path)
            .ok()
            .filter(|m| idle && m.is_dir())
            .and_then(|m| m.modified().ok());
        *self.preview_seen.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }

    /// Checks the files dropped in `preview/`, oldest first, as an import would, pushing none.
    /// Returns whether it left nothing to do (no claim, nothing settling).
    async fn take_previews(
        &self,
        home: &DropFolder,
        preview: &DropFolder,
        reports: &ReportSink,
        shutdown: watch::Receiver<bool>,
        pass: &mut TenantPass,
    ) -> bool {
        let mut listing = Listing::default();
        let mut settling = 0;
        let mut idle = true;
        loop {
            if *shutdown.borrow() || self.is_retired() {
                return false;
            }
            let now = self.clock.now();
            let next = match self.next_preview(preview, now, &mut listing, &mut settling) {
                Ok(Some(next)) => next,
                Ok(None) => break,
                Err(e) => {
                    warn!(tenant = %self.tenant.name, error = %e, "cannot take a preview");
                    idle = false;
                    break;
                }
            };
            let cx = FileContext {
                tenant: &self.tenant,
                folder: preview,
                home,
                kind: FileKind::Preview,
                api: &self.api,
                reports,
                records: &self.records,
                settle: self.settle,
                now,
                shutdown: shutdown.clone(),
                progress: &*self.progress,
            };
            let outcome = file::process(cx, &next).await;
            self.count_file(&outcome);
            match outcome {
                FileOutcome::Archived { record, .. } => pass.files.push(record),
                FileOutcome::Deferred { reason, record } => {
                    debug!(tenant = %self.tenant.name, file = %record.file, reason = %reason, "preview deferred");
                    if matches!(reason, DeferReason::StillChanging | DeferReason::CutOff) {
                        settling += 1;
                    }
                    pass.files.push(record);
                    idle = false;
                    break;
                }
            }
        }
        pass.settling += settling;
        idle && settling == 0
    }

    /// The next preview: one left claimed first, else the oldest ready one.
    fn next_preview(
        &self,
        preview: &DropFolder,
        now: SystemTime,
        listing: &mut Listing,
        settling: &mut usize,
    ) -> Result<Option<opscom_scheduler::ClaimedFile>, FolderError> {
        if let Some(c) = preview.claimed()?.into_iter().next() {
            return Ok(Some(c));
        }
        loop {
            if listing.stale(preview) {
                let scan = preview.scan(now, self.settle)?;
                *settling = scan.settling;
                self.log_skipped(&scan.skipped);
                listing.refill(preview, scan.ready);
            }
            let Some(candidate) = listing.ready.pop_front() else {
                return Ok(None);
            };
            if let Some(c) = preview.claim(&candidate)? {
                listing.mark(preview);
                return Ok(Some(c));
            }
        }
    }

    async fn take_files(
        &self,
        folder: &DropFolder,
        reports: &ReportSink,
        shutdown: watch::Receiver<bool>,
        pass: &mut TenantPass,
    ) {
        // The folder is listed once and its files taken from that listing, oldest first; it is
        // listed again only when the listing is used up or the folder changed since (a new
        // upload): a pass over many files costs one listing, not one per file.
        let mut listing = Listing::default();
        loop {
            if *shutdown.borrow() || self.is_retired() {
                return;
            }
            let now = self.clock.now();
            if let Err(e) = folder.check_bak() {
                // The client can fix this one (a file named `.bak` uploaded by mistake): tell
                // them once, and stop this tenant until it is gone.
                if !markers::has(folder, BAK_MARKER) {
                    match reports.bak_not_a_folder(now) {
                        Ok(()) => markers::set(&self.tenant.name, folder, BAK_MARKER),
                        Err(e) => {
                            warn!(tenant = %self.tenant.name, error = %e, "cannot spool a report")
                        }
                    }
                }
                pass.fault = Some(e.to_string());
                return;
            }
            markers::clear(&self.tenant.name, folder, BAK_MARKER);
            let (next, claimed) = match self.next_file(
                folder,
                reports,
                now,
                &mut listing,
                &mut pass.settling,
                &mut pass.files,
            ) {
                Ok(Some(found)) => found,
                Ok(None) => {
                    // Nothing is claimed any more: nothing waits.
                    self.note_waiting(Some(0), Some(false));
                    return;
                }
                Err(e) => {
                    pass.fault = Some(e);
                    return;
                }
            };
            // In progress: claimed; whether it was deferred stays as its last pass left it.
            self.note_waiting(Some(claimed), None);
            let beating = self.metrics.as_ref().map(|m| m.beating(&*self.progress));
            let progress: &dyn Progress = match &beating {
                Some(b) => b,
                None => &*self.progress,
            };
            let cx = FileContext {
                tenant: &self.tenant,
                folder,
                home: folder,
                kind: FileKind::Import,
                api: &self.api,
                reports,
                records: &self.records,
                settle: self.settle,
                now,
                shutdown: shutdown.clone(),
                progress,
            };
            let outcome = file::process(cx, &next).await;
            self.progress.file_finished();
            self.count_file(&outcome);
            match outcome {
                FileOutcome::Archived {
                    record,
                    api_reached,
                    ..
                } => {
                    if api_reached {
                        for marker in [OUTAGE_MARKER, TOKEN_MARKER] {
                            markers::clear(&self.tenant.name, folder, marker);
                        }
                    }
                    pass.api_reached |= api_reached;
                    pass.files.push(record);
                }
                FileOutcome::Deferred { reason, record } => {
                    // A deferral never ends an outage: under rate limiting some rows get through
                    // on every pass, and the client must still get one e-mail, not one a pass.
                    warn!(tenant = %self.tenant.name, file = %record.file, reason = %reason, "file deferred");
                    if matches!(reason, DeferReason::StillChanging | DeferReason::CutOff) {
                        // Still being written: look again once it may have settled.
                        pass.settling += 1;
                    }
                    self.report_deferral(folder, reports, &reason, &record);
                    pass.files.push(record);
                    pass.deferred = true;
                    // Still claimed: listed again, as the file's own pass may have changed it.
                    let claimed = folder.claimed().map(|c| c.len() as u64).ok();
                    self.note_waiting(claimed, Some(true));
                    pass.defer_reason = Some(reason);
                    return;
                }
            }
        }
    }

    /// The next file to work on: one left claimed (a crash, a deferral) first, else the oldest
    /// ready upload of the listing that this process manages to claim.
    fn next_file(
        &self,
        folder: &DropFolder,
        reports: &ReportSink,
        now: std::time::SystemTime,
        listing: &mut Listing,
        settling: &mut usize,
        files: &mut Vec<FileRecord>,
    ) -> Result<Option<(opscom_scheduler::ClaimedFile, u64)>, String> {
        // With the file, how many are claimed now (for the metrics, without listing again).
        let claimed = folder.claimed().map_err(|e| e.to_string())?;
        let count = claimed.len() as u64;
        if let Some(c) = claimed.into_iter().next() {
            return Ok(Some((c, count)));
        }
        loop {
            if listing.stale(folder) {
                let scan = folder.scan(now, self.settle).map_err(|e| e.to_string())?;
                let released = self.act_on_signals(folder, reports, &scan.signals, now);
                self.set_aside(folder, reports, &scan.unimportable, now, files);
                listing.refill(folder, scan.ready);
                *settling = scan.settling;
                self.log_skipped(&scan.skipped);
                if released {
                    // A released file is claimed now: it goes first.
                    let claimed = folder.claimed().map_err(|e| e.to_string())?;
                    let count = claimed.len() as u64;
                    if let Some(c) = claimed.into_iter().next() {
                        return Ok(Some((c, count)));
                    }
                }
            }
            // A held file holds back the tenant's later uploads, in order, until it is
            // released or discarded.
            let held = match folder.held() {
                Ok(held) => held,
                // A file or a link named `held` holds nothing; a file to hold waits for it to
                // go, and its client is told then.
                Err(FolderError::NotAFolder { .. }) => Vec::new(),
                Err(e) => return Err(e.to_string()),
            };
            if let Some(m) = &self.metrics {
                m.set_waiting(Waiting::Held, held.len() as u64);
            }
            if !held.is_empty() {
                return Ok(None);
            }
            let Some(candidate) = listing.ready.pop_front() else {
                return Ok(None);
            };
            match folder.claim(&candidate) {
                Ok(Some(c)) => {
                    // Our own claim changed the folder: note its time after it, so that only
                    // someone else's change makes the listing stale.
                    listing.mark(folder);
                    return Ok(Some((c, 1)));
                }
                Ok(None) => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Logs skipped entries once per name and reason, not on every scan.
    fn log_skipped(&self, skipped: &[opscom_scheduler::Skipped]) {
        let mut reported = self
            .skipped_reported
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if reported.len() > 10_000 {
            reported.clear(); // bounded, whatever a client creates
        }
        for skipped in skipped {
            if reported.insert(format!("{}\0{}", skipped.name, skipped.reason)) {
                warn!(tenant = %self.tenant.name, file = %skipped.name, reason = %skipped.reason, "file skipped");
            }
        }
    }

    /// Removes journals and report files of claims that no longer exist (a crash between the
    /// move into `.bak` and their removal). Also releases reports held for claims that are gone (committed to `.bak` just before a
    /// crash).
    fn remove_orphaned_work_files(
        &self,
        folder: &DropFolder,
        preview: Option<&DropFolder>,
        reports: &ReportSink,
    ) {
        // A file's journal is the last of its work files to go (after its report is released),
        // so no journal means nothing is left over: one look, not four listings, per idle pass.
        let journals = std::fs::read_dir(self.tenant.work_dir.join("journal"));
        if !journals.is_ok_and(|mut j| j.next().is_some()) {
            return;
        }
        let Ok(mut claimed) = folder.claimed() else {
            return;
        };
        match preview.map(DropFolder::claimed) {
            Some(Ok(previews)) => claimed.extend(previews),
            // Previews in progress cannot be told from left-overs: leave everything.
            Some(Err(_)) => return,
            None => {}
        }
        let live: std::collections::HashSet<String> =
            claimed.iter().map(|c| c.id().to_owned()).collect();
        for id in reports.held().unwrap_or_default() {
            if !live.contains(&id)
                && let Err(e) = reports.release(&id)
            {
                warn!(tenant = %self.tenant.name, error = %e, "cannot release a report");
            }
        }
        for sub in ["journal", "reports"] {
            let Ok(entries) = std::fs::read_dir(self.tenant.work_dir.join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                // `CLAIM.jsonl`, `CLAIM.fixed.csv`…: a claim id holds one dot itself.
                let of_live_claim = live.iter().any(|id| {
                    name.strip_prefix(id.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
                });
                if !of_live_claim {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }

    /// Counts a processed file in the metrics.
    fn count_file(&self, outcome: &FileOutcome) {
        let Some(m) = &self.metrics else { return };
        let record = match outcome {
            FileOutcome::Archived { record, .. } | FileOutcome::Deferred { record, .. } => record,
        };
        let now = self.clock.now();
        let rows = RowCounts {
            ok: record.rows_ok,
            failed: record.rows_failed,
            unchanged: record.rows_unchanged,
        };
        m.file_done(record.outcome, rows, now);
    }

    /// Sets the tenant's waiting files in the metrics: how many are claimed now, and whether
    /// the claimed file was just deferred (`None`: unchanged).
    fn note_waiting(&self, claimed: Option<u64>, deferred: Option<bool>) {
        let Some(m) = &self.metrics else { return };
        // `None`: the claimed folder could not be listed; keep the last values.
        let Some(claimed) = claimed else { return };
        m.set_waiting(Waiting::Claimed, claimed);
        if let Some(deferred) = deferred {
            m.set_waiting(Waiting::Deferred, u64::from(deferred && claimed > 0));
        }
    }

    /// Sends what waits in the spool; true when nothing is left.
    async fn deliver(&self, reports: &ReportSink) -> bool {
        match reports.deliver(&*self.mailer).await {
            Ok(stats) => {
                if let Some(m) = &self.metrics {
                    m.unsent_reports(stats.still_pending);
                }
                if stats.still_pending > 0 {
                    warn!(tenant = %self.tenant.name, pending = stats.still_pending, error = ?stats.last_error, "reports kept for a later pass");
                }
                stats.still_pending == 0
            }
            Err(e) => {
                warn!(tenant = %self.tenant.name, error = %e, "cannot read the report spool");
                false
            }
        }
    }

    /// An outage or a token refusal is e-mailed once, remembered on disk across processes.
    fn report_deferral(
        &self,
        folder: &DropFolder,
        reports: &ReportSink,
        reason: &DeferReason,
        record: &FileRecord,
    ) {
        let (marker, result) = match reason {
            // The client is told as for an outage; the operator gets `api_not_found`.
            DeferReason::ApiUnreachable(cause) | DeferReason::ApiNotFound(cause) => {
                if markers::has(folder, OUTAGE_MARKER) {
                    return;
                }
                (
                    OUTAGE_MARKER,
                    reports.delayed(&record.claim, &record.file, cause, self.clock.now()),
                )
            }
            DeferReason::TokenRejected(_) => {
                if markers::has(folder, TOKEN_MARKER) {
                    return;
                }
                error!(tenant = %self.tenant.name, "the OPSCOM API refused this tenant's token: its files wait");
                (
                    TOKEN_MARKER,
                    reports.token_rejected(&record.claim, &record.file, self.clock.now()),
                )
            }
            _ => return,
        };
        match result {
            Ok(()) => {
                markers::set(&self.tenant.name, folder, marker);
                if marker == OUTAGE_MARKER {
                    // The client was told this file is delayed: its import is followed up.
                    let work = WorkFiles::new(&self.tenant.work_dir, &record.claim);
                    if let Err(e) = crate::private::write_private(&work.delayed, b"") {
                        warn!(tenant = %self.tenant.name, error = %e, "cannot remember that a file was reported delayed");
                    }
                }
            }
            Err(e) => warn!(tenant = %self.tenant.name, error = %e, "cannot spool a report"),
        }
    }

    /// Acts on the client's (or the operator's) `NAME.approve` and `NAME.discard`: releases
    /// the held file into a claim, or moves it to `.bak`. A control file for a file that is not
    /// held is answered by e-mail and removed. Returns whether a file was released.
    fn act_on_signals(
        &self,
        folder: &DropFolder,
        reports: &ReportSink,
        signals: &[Signal],
        now: SystemTime,
    ) -> bool {
        let mut released = false;
        for signal in signals {
            let held = match folder.held() {
                Ok(held) => held,
                Err(e) => {
                    warn!(tenant = %self.tenant.name, error = %e, "cannot list held files");
                    return released;
                }
            };
            let target = held.iter().find(|h| h.name == signal.target);
            let done = match (target, signal.action) {
                (Some(h), SignalAction::Approve) => {
                    // Said before the move, so that a crash between the two cannot hold it
                    // again: the approval follows the file (its inode).
                    let state = file::approved_state(h.ino);
                    if let Err(e) = folder.write_state_atomic(&state, b"") {
                        warn!(tenant = %self.tenant.name, error = %e, "cannot record an approval; tried again next pass");
                        continue;
                    }
                    match folder.release(&h.name) {
                        Ok(Some(c)) => {
                            info!(tenant = %self.tenant.name, file = %h.name, claim = %c.id(), "held file released: importing it");
                            released = true;
                            true
                        }
                        Ok(None) => true, // released by another instance
                        Err(e) => {
                            warn!(tenant = %self.tenant.name, file = %h.name, error = %e, "cannot release a held file");
                            false
                        }
                    }
                }
                (Some(h), SignalAction::Discard) => match folder.discard_held(&h.name, now) {
                    Ok(Some(archived_as)) => {
                        info!(tenant = %self.tenant.name, file = %h.name, archived_as = %archived_as, "held file discarded");
                        self.record_discarded(&h.name, &archived_as, now);
                        true
                    }
                    Ok(None) => true,
                    Err(e) => {
                        warn!(tenant = %self.tenant.name, file = %h.name, error = %e, "cannot discard a held file");
                        false
                    }
                },
                (None, _) => {
                    info!(tenant = %self.tenant.name, signal = %signal.name, "control file for a file that is not held: answered and removed");
                    let report = Report::SignalNotHeld(SignalNotHeldReport {
                        signal_name: signal.name.clone(),
                        target: signal.target.clone(),
                        held: held.iter().map(|h| h.name.clone()).collect(),
                    });
                    let subject = format!("signal-{}-{}", signal.name, unix(now));
                    match reports.send(&report, &subject, now) {
                        Ok(()) => true,
                        Err(e) => {
                            warn!(tenant = %self.tenant.name, error = %e, "cannot spool a report");
                            false
                        }
                    }
                }
            };
            if done && let Err(e) = folder.remove_signal(signal) {
                warn!(tenant = %self.tenant.name, signal = %signal.name, error = %e, "cannot remove a control file");
            }
        }
        released
    }

    /// A discarded held file's record.
    fn record_discarded(&self, name: &str, archived_as: &str, now: SystemTime) {
        self.record_unread(
            name,
            "discarded",
            Outcome::Discarded,
            "discarded by its client or the operator while held".to_owned(),
            archived_as,
            now,
        );
    }

    /// Appends the record of a file moved to `.bak` without a row read (discarded, set
    /// aside), and counts it in the metrics: its claim is `KIND-SECONDS`, its rows 0. Returns
    /// it.
    fn record_unread(
        &self,
        name: &str,
        kind: &str,
        outcome: Outcome,
        reason: String,
        archived_as: &str,
        now: SystemTime,
    ) -> FileRecord {
        let record = FileRecord {
            at: jiff::Timestamp::try_from(now)
                .map(|t| t.to_string())
                .unwrap_or_default(),
            tenant: self.tenant.name.clone(),
            file: name.to_owned(),
            claim: format!("{kind}-{}", unix(now)),
            rows_total: 0,
            rows_ok: 0,
            rows_failed: 0,
            rows_unchanged: 0,
            outcome,
            reason: Some(reason),
            archived_as: Some(archived_as.to_owned()),
            duration_ms: 0,
        };
        if let Err(e) = self.records.append(&record, now) {
            warn!(tenant = %self.tenant.name, error = %e, "could not append a record");
        }
        if let Some(m) = &self.metrics {
            m.file_done(outcome, RowCounts::default(), now);
        }
        record
    }

    /// Uploads that will never be imported (not CSV files, links, folders…): each is reported
    /// once by e-mail with the fix, then moved to `.bak` as it is, never followed or deleted.
    fn set_aside(
        &self,
        folder: &DropFolder,
        reports: &ReportSink,
        entries: &[Unimportable],
        now: SystemTime,
        files: &mut Vec<FileRecord>,
    ) {
        for entry in entries.iter().take(UNIMPORTABLE_PER_PASS) {
            let what = match entry.kind {
                UnimportableKind::Spreadsheet => NotImportableWhat::Spreadsheet,
                UnimportableKind::Text => NotImportableWhat::Text,
                UnimportableKind::Symlink => NotImportableWhat::Symlink,
                UnimportableKind::Directory => NotImportableWhat::Directory,
                UnimportableKind::Fifo => NotImportableWhat::Fifo,
                UnimportableKind::OtherName => NotImportableWhat::OtherName,
                _ => NotImportableWhat::Other,
            };
            let mut report = NotImportableReport {
                file_name: entry.name.clone(),
                what,
                moved_to: entry.name.clone(),
            };
            // Told before it moves: a crash in between tells twice, never not at all.
            let subject = format!("not-importable-{}-{}", entry.name, unix(now));
            if let Err(e) = reports.send(&Report::NotImportable(report.clone()), &subject, now) {
                warn!(tenant = %self.tenant.name, file = %entry.name, error = %e, "cannot spool a report; the upload stays for the next pass");
                continue;
            }
            let archived_as = match folder.set_aside(entry, now) {
                Ok(Some(name)) => name,
                Ok(None) => continue, // gone or changed meanwhile
                Err(e) => {
                    warn!(tenant = %self.tenant.name, file = %entry.name, error = %e, "cannot move an upload that will not be imported");
                    continue;
                }
            };
            report.moved_to = archived_as.clone();
            info!(tenant = %self.tenant.name, file = %entry.name, kind = ?entry.kind, archived_as = %archived_as, "upload that cannot be imported: reported and moved to .bak");
            crate::results::write(
                folder,
                reports,
                &self.tenant.name,
                &crate::results::ResultFiles {
                    file_name: &entry.name,
                    report: &Report::NotImportable(report),
                    failed_csv: None,
                    fixed_csv: None,
                },
                now,
            );
            let record = self.record_unread(
                &entry.name,
                "set-aside",
                Outcome::NotImported,
                format!("{:?}", entry.kind).to_lowercase(),
                &archived_as,
                now,
            );
            files.push(record);
        }
    }
}

/// Seconds since the epoch of `t` (for stable report subjects).
fn unix(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The ready files of one listing of a drop folder, and when it was made.
#[derive(Debug, Default)]
struct Listing {
    ready: VecDeque<Candidate>,
    /// Whether the folder has been listed in this pass.
    listed: bool,
    /// The folder's modification time as of the listing or of our own last change to it.
    seen: Option<SystemTime>,
}

impl Listing {
    /// A new listing is due: none yet in this pass, or the folder changed since by someone else
    /// (an upload, which may be older than the files left in this listing).
    fn stale(&self, folder: &DropFolder) -> bool {
        !self.listed
            || match (self.seen, folder.modified()) {
                (Some(seen), Ok(now)) => now != seen,
                _ => true,
            }
    }

    fn refill(&mut self, folder: &DropFolder, ready: Vec<Candidate>) {
        self.ready = ready.into();
        self.listed = true;
        self.seen = folder.modified().ok();
    }

    /// Notes the folder's time after our own change to it (a claim, an archive).
    fn mark(&mut self, folder: &DropFolder) {
        self.seen = folder.modified().ok();
    }
}

/// Creates `dir` (and parents) readable by its owner only, or tightens an existing one to
/// 0700 (refused, with the fix, when it cannot be).
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    crate::private::ensure_private_dir(dir, 0o700)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_is_listed_again_only_when_someone_else_changed_it() {
        let root = tempfile::tempdir().unwrap();
        let (drop, work) = (root.path().join("drop"), root.path().join("work"));
        std::fs::create_dir(&drop).unwrap();
        create_private_dir(&work).unwrap();
        for name in ["a.csv", "b.csv"] {
            std::fs::write(drop.join(name), b"unique_id\n1\n").unwrap();
        }
        let folder = DropFolder::open(&drop, &work).unwrap();
        let later = SystemTime::now() + Duration::from_secs(3600);

        let mut listing = Listing::default();
        assert!(listing.stale(&folder), "no listing yet in this pass");
        listing.refill(&folder, folder.scan(later, Duration::ZERO).unwrap().ready);
        assert_eq!(listing.ready.len(), 2);
        assert!(!listing.stale(&folder));

        let first = listing.ready.pop_front().unwrap();
        folder.claim(&first).unwrap().expect("claimed");
        listing.mark(&folder);
        assert!(
            !listing.stale(&folder),
            "our own claim does not call for a new listing"
        );

        // The kernel stamps a folder's changes with a coarse clock (a few ms).
        std::thread::sleep(Duration::from_millis(50));
        std::fs::write(drop.join("c.csv"), b"unique_id\n2\n").unwrap();
        assert!(listing.stale(&folder), "an upload does");
    }
}
