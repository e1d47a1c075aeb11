//! The per-file checkpoint journal: one JSON line per finished row, appended as it finishes.
//!
//! A row's line is written right after its outcome is known (and after its failure, if any, is in
//! the report CSV), so `kill -9` at any moment loses at most the rows that were in flight: at most
//! `concurrency` rows are pushed twice on resume. The journal also remembers how long the report CSV
//! was after each failure, so a resumed import cuts off a report row whose journal line never made
//! it to disk, and it carries the markers of the commitment order (report spooled, record written).
//!
//! The lines of rows that were not sent (unchanged in delta mode, or checked by a preview) are
//! gathered and written with the next line that matters, or 64 KiB at a time: a crash may lose
//! them, and the resumed pass finds those rows unchanged again (or checks them again).
//!
//! The journal lives in the tenant's work folder, out of the client's reach; it stays on disk (not
//! in memory) and is read back in one streaming pass.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What identifies the content a journal was written for: if the claimed file changes, the
/// journal no longer applies and is started afresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Entry {
    /// First line: the content this journal belongs to.
    Start { snapshot: Snapshot },
    /// A row finished: pushed and accepted (`ok`), or failed with its reason in the report.
    Row {
        seq: u64,
        line: u64,
        ok: bool,
        report_len: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        category: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// What makes the failure look like Excel damage, if it does.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        excel: Option<String>,
        /// An accepted row's digest (`[id, value]`, see [`crate::delta`]), merged into the
        /// tenant's delta state when the file is committed.
        #[serde(default, rename = "d", skip_serializing_if = "Option::is_none")]
        digest: Option<[u64; 2]>,
        /// The row was not sent: the API already holds its values (`mode = "delta"`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        unchanged: bool,
    },
    /// A step of the commitment order is done.
    Mark { mark: Mark },
}

impl Entry {
    /// A row that finished without failing: accepted (with its digest), unchanged (not sent),
    /// or previewed.
    fn finished(
        seq: u64,
        line: u64,
        report_len: u64,
        digest: Option<[u64; 2]>,
        unchanged: bool,
    ) -> Entry {
        Entry::Row {
            seq,
            line,
            ok: true,
            report_len,
            category: None,
            reason: None,
            excel: None,
            digest,
            unchanged,
        }
    }
}

/// Steps after the rows, in the order they are committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mark {
    /// The report (if any) is in the spool.
    ReportSpooled,
    /// The client's `results/` files are written (or could not be, and that was said).
    ResultsWritten,
    /// The per-file record is appended.
    Recorded,
}

/// A failed row as remembered by the journal, for the e-mail's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRow {
    /// Physical line of the upload where the row starts.
    pub line: u64,
    /// Grouping key of the reason.
    pub category: String,
    /// The reason, as in the report.
    pub reason: String,
    /// What makes it look like Excel damage (`dates like 1/15/1990`), if it does.
    pub excel_sign: Option<String>,
}

/// The set of finished rows, kept small: rows finish nearly in order (at most `concurrency` out
/// of order), so "every row below `below`" plus the few finished above it says it all.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Done {
    below: u64,
    above: BTreeSet<u64>,
}

impl Done {
    /// Whether row `seq` (1-based position among the file's data rows) is finished.
    pub fn contains(&self, seq: u64) -> bool {
        seq < self.below || self.above.contains(&seq)
    }

    /// Marks `seq` finished; false if it already was.
    pub fn insert(&mut self, seq: u64) -> bool {
        if self.contains(seq) {
            return false;
        }
        if self.below == 0 {
            self.below = 1;
        }
        self.above.insert(seq);
        while self.above.remove(&self.below) {
            self.below += 1;
        }
        true
    }

    /// How many rows are finished.
    #[cfg(test)]
    pub fn len(&self) -> u64 {
        self.below.saturating_sub(1) + self.above.len() as u64
    }

    /// Whether no row is finished.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a journal says has been done, read back on resume (named apart from
/// [`crate::Progress`], the progress display).
#[derive(Debug, Default)]
pub struct Resume {
    /// Rows already finished, by their 1-based position among the file's data rows.
    pub done: Done,
    /// Rows accepted by the API.
    pub ok: u64,
    /// Rows failed (validation or API).
    pub failed: u64,
    /// Rows not sent because unchanged (`mode = "delta"`).
    pub unchanged: u64,
    /// Length the report CSV had after the last journalled failure.
    pub report_len: u64,
    /// Steps of the commitment order already done.
    pub marks: BTreeSet<Mark>,
}

/// An open journal, appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Lines that may be lost to a crash (a row not sent: unchanged, or previewed), written
    /// with the next line that may not, or once 64 KiB gathered: one `write` for many rows.
    pending: Vec<u8>,
}

/// How many bytes of lines that may be lost are gathered before they are written.
const PENDING_LIMIT: usize = 64 * 1024;

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl Journal {
    /// Opens the journal at `path` for content `snapshot`: what it already records is returned, or
    /// an empty progress when the file is new or belonged to other content (then it is restarted).
    pub fn open(path: &Path, snapshot: Snapshot) -> io::Result<(Journal, Resume)> {
        let progress = match File::open(path) {
            Ok(f) => read(BufReader::new(f), snapshot)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        match progress {
            Some((progress, whole)) => {
                let file = OpenOptions::new().append(true).open(path)?;
                // A line cut by a crash is dropped, so the next entry starts on its own line.
                if file.metadata()?.len() > whole {
                    file.set_len(whole)?;
                }
                Ok((
                    Journal {
                        path: path.to_owned(),
                        file,
                        pending: Vec::new(),
                    },
                    progress,
                ))
            }
            None => {
                if let Some(dir) = path.parent() {
                    crate::private::create_dir_all_private(dir)?;
                }
                let file = OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(path)?;
                let mut journal = Journal {
                    path: path.to_owned(),
                    file,
                    pending: Vec::new(),
                };
                journal.append(&Entry::Start { snapshot })?;
                Ok((journal, Resume::default()))
            }
        }
    }

    fn append(&mut self, entry: &Entry) -> io::Result<()> {
        let mut line = std::mem::take(&mut self.pending);
        serde_json::to_writer(&mut line, entry).map_err(io::Error::other)?;
        line.push(b'\n');
        // One write per entry (with the lines gathered before it, in order): a crash leaves
        // whole lines, or a last partial line that `read` drops.
        let written = self.file.write_all(&line);
        line.clear();
        self.pending = line;
        written
    }

    /// Gathers the line of a row whose loss to a crash is harmless: the row was not sent, and
    /// a resumed pass decides it again the same way.
    fn append_lazily(&mut self, entry: &Entry) -> io::Result<()> {
        serde_json::to_writer(&mut self.pending, entry).map_err(io::Error::other)?;
        self.pending.push(b'\n');
        if self.pending.len() >= PENDING_LIMIT {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the gathered lines.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let written = self.file.write_all(&self.pending);
        self.pending.clear();
        written
    }

    /// Records that a row was accepted, with its digest (`[id, value]`) when the tenant's
    /// delta state is kept.
    pub fn row_ok(
        &mut self,
        seq: u64,
        line: u64,
        report_len: u64,
        digest: Option<[u64; 2]>,
    ) -> io::Result<()> {
        self.append(&Entry::finished(seq, line, report_len, digest, false))
    }

    /// Records that a row was not sent: the API already holds its values. Gathered (see
    /// [`Journal::flush`]): lost to a crash, the row is found unchanged again.
    pub fn row_unchanged(&mut self, seq: u64, line: u64, report_len: u64) -> io::Result<()> {
        self.append_lazily(&Entry::finished(seq, line, report_len, None, true))
    }

    /// Records that a previewed row would be sent (nothing is). Gathered, like
    /// [`Journal::row_unchanged`]: lost to a crash, the row is checked again.
    pub fn row_previewed(&mut self, seq: u64, line: u64, report_len: u64) -> io::Result<()> {
        self.append_lazily(&Entry::finished(seq, line, report_len, None, false))
    }

    /// Calls `f` with the digest of every accepted row, reading the journal again (call
    /// [`Journal::flush`] first).
    pub fn for_each_confirmed(&self, mut f: impl FnMut([u64; 2])) -> io::Result<()> {
        let reader = BufReader::new(File::open(&self.path)?);
        for line in reader.lines() {
            let line = line?;
            if let Ok(Entry::Row {
                ok: true,
                digest: Some(d),
                ..
            }) = serde_json::from_str(&line)
            {
                f(d);
            }
        }
        Ok(())
    }

    /// Records that a row failed; its report row is already written and the report is
    /// `report_len` bytes long.
    pub fn row_failed(
        &mut self,
        seq: u64,
        line: u64,
        report_len: u64,
        category: &str,
        reason: &str,
        excel_sign: Option<&str>,
    ) -> io::Result<()> {
        self.append(&Entry::Row {
            seq,
            line,
            ok: false,
            report_len,
            category: Some(category.to_owned()),
            reason: Some(reason.to_owned()),
            excel: excel_sign.map(str::to_owned),
            digest: None,
            unchanged: false,
        })
    }

    /// Records a step of the commitment order (with the lines gathered before it), flushed to
    /// disk.
    pub fn mark(&mut self, mark: Mark) -> io::Result<()> {
        self.append(&Entry::Mark { mark })?;
        self.file.sync_data()
    }

    /// Calls `f` with every failed row, in the order they finished, reading the journal again
    /// (call [`Journal::flush`] first).
    pub fn for_each_failure(&self, mut f: impl FnMut(FailedRow)) -> io::Result<()> {
        let reader = BufReader::new(File::open(&self.path)?);
        for line in reader.lines() {
            let line = line?;
            if let Ok(Entry::Row {
                ok: false,
                line,
                category,
                reason,
                excel,
                ..
            }) = serde_json::from_str(&line)
            {
                f(FailedRow {
                    line,
                    category: category.unwrap_or_default(),
                    reason: reason.unwrap_or_default(),
                    excel_sign: excel,
                });
            }
        }
        Ok(())
    }
}

/// Reads a journal: what it records and the length of its whole lines; `None` when it is empty
/// or belongs to other content.
fn read(mut reader: impl BufRead, snapshot: Snapshot) -> io::Result<Option<(Resume, u64)>> {
    let mut progress = Resume::default();
    let mut line = Vec::new();
    let mut whole = 0u64;
    let mut first = true;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            // The end, or a last line cut by a crash: its row is redone.
            break;
        }
        whole += n as u64;
        let entry = serde_json::from_slice::<Entry>(&line);
        if first {
            first = false;
            match entry {
                Ok(Entry::Start { snapshot: s }) if s == snapshot => continue,
                _ => return Ok(None),
            }
        }
        match entry {
            Ok(Entry::Row {
                seq,
                ok,
                report_len,
                unchanged,
                ..
            }) => {
                if progress.done.insert(seq) {
                    if unchanged {
                        progress.unchanged += 1;
                    } else if ok {
                        progress.ok += 1;
                    } else {
                        progress.failed += 1;
                        progress.report_len = report_len;
                    }
                }
            }
            Ok(Entry::Mark { mark }) => {
                progress.marks.insert(mark);
            }
            Ok(Entry::Start { .. }) | Err(_) => {}
        }
    }
    if first {
        return Ok(None);
    }
    Ok(Some((progress, whole)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNAP: Snapshot = Snapshot {
        size: 10,
        mtime_ns: 5,
    };

    #[test]
    fn resume_sees_every_finished_row_and_the_report_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j/claim.journal");
        let (mut j, p) = Journal::open(&path, SNAP).unwrap();
        assert!(p.done.is_empty());
        j.row_ok(1, 2, 0, None).unwrap();
        j.row_failed(3, 4, 120, "email", "bad e-mail", None)
            .unwrap();
        j.row_ok(2, 3, 120, None).unwrap();
        drop(j);

        let (j, p) = Journal::open(&path, SNAP).unwrap();
        assert!((1..=3).all(|s| p.done.contains(s)) && !p.done.contains(4));
        assert_eq!(p.done.len(), 3);
        assert_eq!((p.ok, p.failed, p.report_len), (2, 1, 120));
        let mut failures = Vec::new();
        j.for_each_failure(|f| failures.push(f)).unwrap();
        assert_eq!(
            failures,
            [FailedRow {
                line: 4,
                category: "email".into(),
                reason: "bad e-mail".into(),
                excel_sign: None,
            }]
        );
    }

    #[test]
    fn confirmed_digests_and_unchanged_rows_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("claim.jsonl");
        let (mut j, _) = Journal::open(&path, SNAP).unwrap();
        j.row_ok(1, 2, 0, Some([7, 70])).unwrap();
        j.row_unchanged(2, 3, 0).unwrap();
        j.row_failed(3, 4, 90, "email", "bad e-mail", None).unwrap();
        j.row_ok(4, 5, 90, Some([8, 80])).unwrap();
        drop(j);

        let (j, p) = Journal::open(&path, SNAP).unwrap();
        assert_eq!((p.ok, p.unchanged, p.failed), (2, 1, 1));
        let mut confirmed = Vec::new();
        j.for_each_confirmed(|d| confirmed.push(d)).unwrap();
        assert_eq!(
            confirmed,
            [[7, 70], [8, 80]],
            "only rows the API accepted, never an unchanged or failed one"
        );
    }

    #[test]
    fn lines_of_rows_not_sent_are_gathered_and_lost_only_to_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("claim.jsonl");
        let (mut j, _) = Journal::open(&path, SNAP).unwrap();
        j.row_unchanged(1, 2, 0).unwrap();
        j.row_unchanged(2, 3, 0).unwrap();
        let lines = || std::fs::read_to_string(&path).unwrap().lines().count();
        assert_eq!(lines(), 1, "only the start line: the others are gathered");
        // A row that was sent is written at once, with what was gathered before it, in order.
        j.row_ok(3, 4, 0, Some([1, 2])).unwrap();
        assert_eq!(lines(), 4);
        j.row_unchanged(4, 5, 0).unwrap();
        // A crash (no drop, no flush): the gathered line is lost, nothing else.
        std::mem::forget(j);
        let (mut j, p) = Journal::open(&path, SNAP).unwrap();
        assert_eq!((p.ok, p.unchanged), (1, 2));
        assert!(p.done.contains(3) && !p.done.contains(4));
        // Dropping (a pass that ends) writes what was gathered.
        j.row_previewed(4, 5, 0).unwrap();
        drop(j);
        let (_, p) = Journal::open(&path, SNAP).unwrap();
        assert_eq!((p.ok, p.unchanged), (2, 2));
    }

    #[test]
    fn a_line_cut_by_a_crash_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("claim.journal");
        let (mut j, _) = Journal::open(&path, SNAP).unwrap();
        j.row_ok(1, 2, 0, None).unwrap();
        j.file.write_all(br#"{"t":"row","record":2,"li"#).unwrap();
        drop(j);
        let (mut j, p) = Journal::open(&path, SNAP).unwrap();
        assert!(p.done.contains(1) && !p.done.contains(2));
        // The next entry is not glued to the cut line.
        j.row_ok(3, 4, 0, None).unwrap();
        drop(j);
        let (_, p) = Journal::open(&path, SNAP).unwrap();
        assert!(p.done.contains(3) && !p.done.contains(2));
    }

    #[test]
    fn other_content_restarts_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("claim.journal");
        let (mut j, _) = Journal::open(&path, SNAP).unwrap();
        j.row_ok(1, 2, 0, None).unwrap();
        j.mark(Mark::ReportSpooled).unwrap();
        drop(j);
        let changed = Snapshot { size: 11, ..SNAP };
        let (_, p) = Journal::open(&path, changed).unwrap();
        assert!(p.done.is_empty() && p.marks.is_empty());
        let (_, p) = Journal::open(&path, changed).unwrap();
        assert!(p.done.is_empty());
    }

    #[test]
    fn done_stays_small_when_rows_finish_nearly_in_order() {
        let mut d = Done::default();
        for s in [2, 1, 4, 3, 6] {
            assert!(d.insert(s));
        }
        assert!(!d.insert(4));
        assert_eq!(d.len(), 5);
        assert_eq!(d.above.len(), 1, "only 6 is kept individually");
        assert!(d.contains(6) && !d.contains(5) && d.contains(1));
    }

    #[test]
    fn marks_survive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("claim.journal");
        let (mut j, _) = Journal::open(&path, SNAP).unwrap();
        j.mark(Mark::ReportSpooled).unwrap();
        drop(j);
        let (_, p) = Journal::open(&path, SNAP).unwrap();
        assert!(p.marks.contains(&Mark::ReportSpooled));
        assert!(!p.marks.contains(&Mark::Recorded));
    }
}
