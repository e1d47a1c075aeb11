//! Per-file records: one JSON line per processed file in `state_dir/records.jsonl`.
//!
//! They answer an operator's "what happened to Tuesday's file?". A record carries counts and the
//! outcome, never row contents or secrets.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The name of the records file under `state_dir`.
pub const RECORDS_FILE: &str = "records.jsonl";

/// How a file's processing ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every row imported.
    Imported,
    /// Imported, with some rows failed (and reported).
    ImportedWithFailures,
    /// Rejected whole before any API call (and reported).
    Rejected,
    /// Kept for a later pass (API unreachable, token refused, upload still changing, I/O fault).
    Deferred,
}

impl std::fmt::Display for Outcome {
    /// The same word as in `records.jsonl` (`imported_with_failures`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Imported => "imported",
            Outcome::ImportedWithFailures => "imported_with_failures",
            Outcome::Rejected => "rejected",
            Outcome::Deferred => "deferred",
        })
    }
}

/// One processed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// When processing ended (RFC 3339, UTC).
    pub at: String,
    /// The tenant's name.
    pub tenant: String,
    /// The file's name as uploaded.
    pub file: String,
    /// The claim's id (names the claimed file, journal and report).
    pub claim: String,
    /// Data rows in the file (all-empty rows are not counted).
    pub rows_total: u64,
    /// Rows the API accepted.
    pub rows_ok: u64,
    /// Rows that failed (validation or API).
    pub rows_failed: u64,
    /// The outcome.
    pub outcome: Outcome,
    /// Why the file was rejected or deferred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Name under `.bak/`, in the record a pass returns. Absent in `records.jsonl`: the line is
    /// appended before the move into `.bak` (the order of commitment), and the move is logged
    /// (`file archived`, with `archived_as`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_as: Option<String>,
    /// Processing time in milliseconds.
    pub duration_ms: u64,
}

/// Appends records to `state_dir/records.jsonl`.
#[derive(Debug, Clone)]
pub struct Records {
    path: PathBuf,
}

impl Records {
    /// Records kept under `state_dir`.
    pub fn new(state_dir: &Path) -> Records {
        Records {
            path: state_dir.join(RECORDS_FILE),
        }
    }

    /// The records file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record as one line, under an exclusive lock on the file, so that processes
    /// appending at once (on one host or several sharing the storage, where `O_APPEND` alone is
    /// not atomic) never interleave lines. A last line left without its line end by a crash is
    /// closed first, so that it never swallows the next record.
    pub fn append(&self, record: &FileRecord) -> io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        line.push(b'\n');
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .mode(0o640)
            .open(&self.path)?;
        file.lock()?;
        let len = file.metadata()?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.read_exact_at(&mut last, len - 1)?;
            if last[0] != b'\n' {
                line.insert(0, b'\n');
            }
        }
        file.write_all(&line)?;
        file.sync_data()
        // The lock goes with the file handle.
    }

    /// Every record, oldest first (for tests and tools).
    pub fn read_all(&self) -> io::Result<Vec<FileRecord>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_append_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::new(dir.path());
        let r = FileRecord {
            at: "2026-11-27T10:00:00Z".into(),
            tenant: "acme".into(),
            file: "roster.csv".into(),
            claim: "c1".into(),
            rows_total: 3,
            rows_ok: 2,
            rows_failed: 1,
            outcome: Outcome::ImportedWithFailures,
            reason: None,
            archived_as: Some("roster.csv".into()),
            duration_ms: 12,
        };
        records.append(&r).unwrap();
        records.append(&r).unwrap();
        assert_eq!(records.read_all().unwrap(), [r.clone(), r]);
        let text = std::fs::read_to_string(records.path()).unwrap();
        assert!(
            text.contains(r#""outcome":"imported_with_failures""#),
            "{text}"
        );
    }

    fn record(claim: &str) -> FileRecord {
        FileRecord {
            at: "2026-11-27T10:00:00Z".into(),
            tenant: "acme".into(),
            file: "roster.csv".into(),
            claim: claim.into(),
            rows_total: 3,
            rows_ok: 3,
            rows_failed: 0,
            outcome: Outcome::Imported,
            reason: None,
            archived_as: None,
            duration_ms: 1,
        }
    }

    #[test]
    fn a_line_torn_by_a_crash_does_not_swallow_the_next_record() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::new(dir.path());
        std::fs::write(
            records.path(),
            br#"{"at":"2026-11-27T10:00:00Z","tenant":"ac"#,
        )
        .unwrap();
        records.append(&record("c2")).unwrap();
        assert_eq!(records.read_all().unwrap(), [record("c2")]);
        let text = std::fs::read_to_string(records.path()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    #[test]
    fn appenders_at_once_never_interleave_lines() {
        let dir = tempfile::tempdir().unwrap();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                // Each writer opens the file on its own, as separate processes do.
                let records = Records::new(dir.path());
                std::thread::spawn(move || {
                    for i in 0..200 {
                        records.append(&record(&format!("t{t}-{i}"))).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = std::fs::read_to_string(Records::new(dir.path()).path()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1600);
        for line in lines {
            serde_json::from_str::<FileRecord>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        }
    }

    #[test]
    fn records_are_not_readable_by_other_users() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let records = Records::new(dir.path());
        records.append(&record("c1")).unwrap();
        let mode = std::fs::metadata(records.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o007, 0, "{mode:o}");
    }
}
