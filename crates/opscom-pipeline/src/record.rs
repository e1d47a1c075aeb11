//! Per-file records: one JSON line per processed file in `state_dir/records.jsonl`.
//!
//! They answer an operator's "what happened to Tuesday's file?". A record carries counts and the
//! outcome, never row contents or secrets.
//!
//! **Rotation.** Before an append, and on [`Records::maintain`], `records.jsonl` is renamed to a
//! part `records.jsonl.YYYYMMDDTHHMMSSZ` (UTC, the time of the rotation: every record of a part
//! is older than its name) once it holds `rotate_size` bytes or its first record is from an
//! earlier UTC day; the next append starts a new `records.jsonl`. Parts whose name is older than
//! `retention` are deleted by [`Records::maintain`]. Several processes (on several hosts) may
//! append at once: every append and every rotation holds an exclusive `flock` on
//! `records.jsonl`, and a writer that took the lock checks that the path still names the file
//! it opened (same device and inode); if a rotation renamed that file meanwhile, it opens the
//! path again. So a record is never appended to a part after its rotation.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::config::RecordsSettings;

/// The name of the records file under `state_dir`.
pub const RECORDS_FILE: &str = "records.jsonl";

/// How a rotated part's name starts: `records.jsonl.` then a UTC stamp `YYYYMMDDTHHMMSSZ`.
pub const PART_PREFIX: &str = "records.jsonl.";

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
    /// Held for the client's approval: it would change more than `hold_changed_percent` of the
    /// known users. Moved to `held/`; no row was pushed.
    Held,
    /// A held file the client (`NAME.discard`) or the operator discarded: moved to `.bak`,
    /// never imported.
    Discarded,
    /// A file dropped in `preview/`: checked as an import would be, nothing pushed.
    Previewed,
    /// An upload that cannot be imported (not a CSV file, a link, a folder…): reported and set
    /// aside in `.bak`.
    NotImported,
}

impl std::fmt::Display for Outcome {
    /// The same word as in `records.jsonl` (`imported_with_failures`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Imported => "imported",
            Outcome::ImportedWithFailures => "imported_with_failures",
            Outcome::Rejected => "rejected",
            Outcome::Deferred => "deferred",
            Outcome::Held => "held",
            Outcome::Discarded => "discarded",
            Outcome::Previewed => "previewed",
            Outcome::NotImported => "not_imported",
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
    /// Rows not pushed because the API already holds their values (`mode = "delta"`). For a
    /// preview, the rows that would not be sent. Absent when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rows_unchanged: u64,
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

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What one [`Records::maintain`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Maintained {
    /// The part `records.jsonl` was rotated to, if it was.
    pub rotated: Option<String>,
    /// The parts deleted (older than the retention).
    pub deleted: Vec<String>,
}

/// Appends records to `state_dir/records.jsonl`, rotating it (see the module's documentation).
#[derive(Debug, Clone)]
pub struct Records {
    path: PathBuf,
    dir: PathBuf,
    settings: RecordsSettings,
}

impl Records {
    /// Records kept under `state_dir`, rotated and kept as [`RecordsSettings::default`] says.
    pub fn new(state_dir: &Path) -> Records {
        Records {
            path: state_dir.join(RECORDS_FILE),
            dir: state_dir.to_owned(),
            settings: RecordsSettings::default(),
        }
    }

    /// The same records, rotated and kept as `settings` says (the `[records]` table).
    pub fn with_settings(self, settings: &RecordsSettings) -> Records {
        Records {
            settings: *settings,
            ..self
        }
    }

    /// The records file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record as one line, under an exclusive lock on the file, so that processes
    /// appending at once (on one host or several sharing the storage, where `O_APPEND` alone is
    /// not atomic) never interleave lines. A last line left without its line end by a crash is
    /// closed first, so that it never swallows the next record. The file is rotated first when
    /// it is due (its size, or its first record from an earlier day); `now` (the caller's
    /// [`Clock`](opscom_scheduler::Clock)) is the day of a record without a usable `at`, and
    /// stamps the rotated part.
    pub fn append(&self, record: &FileRecord, now: SystemTime) -> io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        line.push(b'\n');
        let Some(mut file) = self.open_locked(true)? else {
            return Err(io::Error::other(
                "records.jsonl vanished while being created",
            ));
        };
        // A part holds one UTC day's records: the day of the record being appended (its `at`),
        // or today's for a record without a usable one.
        let day = record
            .at
            .get(..10)
            .filter(|d| d.len() == 10 && d.as_bytes()[4] == b'-')
            .map_or_else(|| utc_day(now), str::to_owned);
        let mut len = file.metadata()?.len();
        if self.rotation_due(&file, len, &day)? {
            self.rotate_locked(now)?;
            drop(file);
            file = self
                .open_locked(true)?
                .ok_or_else(|| io::Error::other("records.jsonl vanished while being created"))?;
            len = file.metadata()?.len();
        }
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

    /// Opens `records.jsonl` (created, mode 0640, when `create`) and takes its exclusive lock,
    /// opening again until the path still names the locked file (a rotation may have renamed
    /// it while this process waited). `None`: it does not exist and `create` is false.
    fn open_locked(&self, create: bool) -> io::Result<Option<File>> {
        loop {
            let opened = OpenOptions::new()
                .create(create)
                .append(true)
                .read(true)
                .mode(0o640)
                .open(&self.path);
            let file = match opened {
                Ok(f) => f,
                Err(e) if !create && e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            file.lock()?;
            let held = file.metadata()?;
            match std::fs::symlink_metadata(&self.path) {
                Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                    return Ok(Some(file));
                }
                // Renamed to a part (and perhaps replaced) since it was opened: open again.
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the locked `file` is due for rotation: it holds `rotate_size` bytes, or its first
    /// record is from a UTC day before `day` (`YYYY-MM-DD`).
    fn rotation_due(&self, file: &File, len: u64, day: &str) -> io::Result<bool> {
        if len == 0 {
            return Ok(false);
        }
        if len >= self.settings.rotate_size {
            return Ok(true);
        }
        // A record starts `{"at":"YYYY-MM-DD`.
        let mut head = [0u8; 17];
        if len < head.len() as u64 {
            return Ok(false);
        }
        file.read_exact_at(&mut head, 0)?;
        let first_day = head
            .strip_prefix(br#"{"at":""#)
            .and_then(|d| std::str::from_utf8(d).ok());
        Ok(first_day.is_some_and(|first| first < day))
    }

    /// Renames `records.jsonl` (whose lock the caller holds) to a new part named by `now`
    /// (a second later while that name is taken). Returns the part's name.
    fn rotate_locked(&self, now: SystemTime) -> io::Result<String> {
        for later in 0..600 {
            let name = part_name(now + Duration::from_secs(later));
            let part = self.dir.join(&name);
            match std::fs::symlink_metadata(&part) {
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            // Only the holder of the current file's lock renames it, so the name stays free.
            std::fs::rename(&self.path, &part)?;
            File::open(&self.dir)?.sync_all()?;
            tracing::info!(part = %name, "records rotated");
            return Ok(name);
        }
        Err(io::Error::other("no free name for a rotated records part"))
    }

    /// Rotates `records.jsonl` when it is due (an idle day ends its part too) and deletes the
    /// parts older than the retention. Cheap: one open and `stat` of the current file and one
    /// listing of `state_dir`; the service calls it once per `once` and hourly in `run`.
    pub fn maintain(&self, now: SystemTime) -> io::Result<Maintained> {
        let mut done = Maintained::default();
        if let Some(file) = self.open_locked(false)?
            && self.rotation_due(&file, file.metadata()?.len(), &utc_day(now))?
        {
            done.rotated = Some(self.rotate_locked(now)?);
        }
        let cutoff = now.checked_sub(self.settings.retention);
        for (name, stamp) in self.parts()? {
            if cutoff.is_some_and(|cutoff| stamp < cutoff) {
                match std::fs::remove_file(self.dir.join(&name)) {
                    Ok(()) => {
                        tracing::info!(part = %name, "records part deleted (older than records retention)");
                        done.deleted.push(name);
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(part = %name, error = %e, "cannot delete an expired records part")
                    }
                }
            }
        }
        Ok(done)
    }

    /// The rotated parts in `state_dir` with the time in their name, oldest first.
    pub fn parts(&self) -> io::Result<Vec<(String, SystemTime)>> {
        let mut parts = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if let Some(stamp) = name.strip_prefix(PART_PREFIX).and_then(parse_stamp) {
                parts.push((name, stamp));
            }
        }
        parts.sort();
        Ok(parts)
    }

    /// Every record, oldest first: those of the rotated parts still kept (oldest part first),
    /// then those of `records.jsonl` (for tests and tools).
    pub fn read_all(&self) -> io::Result<Vec<FileRecord>> {
        let mut files: Vec<PathBuf> = self
            .parts()
            .or_else(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    Ok(Vec::new())
                } else {
                    Err(e)
                }
            })?
            .into_iter()
            .map(|(name, _)| self.dir.join(name))
            .collect();
        files.push(self.path.clone());
        let mut records = Vec::new();
        for path in files {
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            records.extend(text.lines().filter_map(|l| serde_json::from_str(l).ok()));
        }
        Ok(records)
    }
}

/// `records.jsonl.YYYYMMDDTHHMMSSZ` for `t`.
fn part_name(t: SystemTime) -> String {
    let ts = jiff::Timestamp::try_from(t).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    format!("{PART_PREFIX}{}", ts.strftime("%Y%m%dT%H%M%SZ"))
}

/// `YYYY-MM-DD` (UTC) of `t`, as a record's `at` starts.
fn utc_day(t: SystemTime) -> String {
    let ts = jiff::Timestamp::try_from(t).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    ts.strftime("%Y-%m-%d").to_string()
}

/// The time of a part's stamp `YYYYMMDDTHHMMSSZ`; `None` for anything else.
fn parse_stamp(stamp: &str) -> Option<SystemTime> {
    let b = stamp.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<i16> {
        let s = stamp.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let dt = jiff::civil::DateTime::new(
        digits(0..4)?,
        i8::try_from(digits(4..6)?).ok()?,
        i8::try_from(digits(6..8)?).ok()?,
        i8::try_from(digits(9..11)?).ok()?,
        i8::try_from(digits(11..13)?).ok()?,
        i8::try_from(digits(13..15)?).ok()?,
        0,
    )
    .ok()?;
    let ts = jiff::tz::Offset::UTC.to_timestamp(dt).ok()?;
    let secs = u64::try_from(ts.as_second()).ok()?;
    std::time::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
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
            rows_unchanged: 0,
            outcome: Outcome::ImportedWithFailures,
            reason: None,
            archived_as: Some("roster.csv".into()),
            duration_ms: 12,
        };
        records.append(&r, SystemTime::now()).unwrap();
        records.append(&r, SystemTime::now()).unwrap();
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
            rows_unchanged: 0,
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
        records.append(&record("c2"), SystemTime::now()).unwrap();
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
                        records
                            .append(&record(&format!("t{t}-{i}")), SystemTime::now())
                            .unwrap();
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

    fn settings(rotate_size: u64, retention_days: u64) -> RecordsSettings {
        RecordsSettings {
            rotate_size,
            retention: Duration::from_secs(retention_days * 86_400),
        }
    }

    fn part_names(records: &Records) -> Vec<String> {
        records
            .parts()
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    fn is_part_name(name: &str) -> bool {
        let Some(stamp) = name.strip_prefix("records.jsonl.") else {
            return false;
        };
        stamp.len() == 16
            && stamp.bytes().enumerate().all(|(i, b)| match i {
                8 => b == b'T',
                15 => b == b'Z',
                _ => b.is_ascii_digit(),
            })
    }

    #[test]
    fn a_full_file_is_rotated_to_a_stamped_part_before_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let line = serde_json::to_vec(&record("c0")).unwrap().len() as u64 + 1;
        let records = Records::new(dir.path()).with_settings(&settings(2 * line, 365));
        for i in 0..5 {
            records
                .append(&record(&format!("c{i}")), SystemTime::now())
                .unwrap();
        }
        let parts = part_names(&records);
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert!(parts.iter().all(|p| is_part_name(p)), "{parts:?}");
        let claims: Vec<String> = records
            .read_all()
            .unwrap()
            .into_iter()
            .map(|r| r.claim)
            .collect();
        assert_eq!(claims, ["c0", "c1", "c2", "c3", "c4"], "oldest first");
        let current = std::fs::read_to_string(records.path()).unwrap();
        assert_eq!(current.lines().count(), 1);
    }

    #[test]
    fn a_file_begun_on_an_earlier_day_is_rotated_on_the_next_append_or_maintenance() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::new(dir.path());
        let mut yesterday = record("old");
        yesterday.at = "2026-11-26T23:59:59Z".into();
        let day = |d: &str| {
            let ts: jiff::Timestamp = format!("{d}T12:00:00Z").parse().unwrap();
            std::time::UNIX_EPOCH + Duration::from_secs(ts.as_second() as u64)
        };
        records.append(&yesterday, day("2026-11-26")).unwrap();
        let mut same_day = record("same-day");
        same_day.at = "2026-11-26T23:59:59.9Z".into();
        records.append(&same_day, day("2026-11-26")).unwrap();
        assert!(part_names(&records).is_empty(), "the same day: no rotation");
        records.append(&record("new"), day("2026-11-27")).unwrap();
        assert_eq!(part_names(&records), ["records.jsonl.20261127T120000Z"]);
        let current = std::fs::read_to_string(records.path()).unwrap();
        assert!(
            current.contains("\"new\"") && !current.contains("old"),
            "{current}"
        );

        // An idle day: maintenance rotates it too, and only once.
        let done = records.maintain(day("2026-11-28")).unwrap();
        assert_eq!(
            done.rotated.as_deref(),
            Some("records.jsonl.20261128T120000Z")
        );
        assert!(!records.path().exists());
        assert_eq!(
            records.maintain(day("2026-11-29")).unwrap(),
            Maintained::default()
        );
    }

    #[test]
    fn parts_older_than_the_retention_are_deleted_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::new(dir.path()).with_settings(&settings(1 << 20, 30));
        for name in [
            "records.jsonl.20250101T000000Z",
            "records.jsonl.20261020T000000Z",
            "records.jsonl.20261120T000000Z",
            "records.jsonl.notastamp",
            "records.jsonl.20250101T000000Z.bak",
            "other.jsonl.20250101T000000Z",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let ts: jiff::Timestamp = "2026-11-27T00:00:00Z".parse().unwrap();
        let now = std::time::UNIX_EPOCH + Duration::from_secs(ts.as_second() as u64);
        let done = records.maintain(now).unwrap();
        assert_eq!(
            done.deleted,
            [
                "records.jsonl.20250101T000000Z",
                "records.jsonl.20261020T000000Z"
            ]
        );
        assert_eq!(part_names(&records), ["records.jsonl.20261120T000000Z"]);
        for kept in [
            "records.jsonl.notastamp",
            "records.jsonl.20250101T000000Z.bak",
            "other.jsonl.20250101T000000Z",
        ] {
            assert!(dir.path().join(kept).exists(), "{kept}");
        }
    }

    #[test]
    fn appenders_at_once_with_rotations_lose_nothing_and_never_write_to_a_rotated_part() {
        let dir = tempfile::tempdir().unwrap();
        let line = serde_json::to_vec(&record("t0-000")).unwrap().len() as u64 + 1;
        let rotate_size = 40 * line;
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let records = Records::new(dir.path()).with_settings(&settings(rotate_size, 365));
                std::thread::spawn(move || {
                    for i in 0..100 {
                        records
                            .append(&record(&format!("t{t}-{i:03}")), SystemTime::now())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let records = Records::new(dir.path());
        let parts = part_names(&records);
        assert!(parts.len() >= 10, "{parts:?}");
        for part in &parts {
            assert!(is_part_name(part), "{part}");
            let len = std::fs::metadata(dir.path().join(part)).unwrap().len();
            // A part ends with the append that filled it: a writer that had opened it before
            // its rotation would have made it longer.
            assert!(
                (rotate_size..rotate_size + line).contains(&len),
                "{part}: {len} bytes"
            );
        }
        let mut claims: Vec<String> = records
            .read_all()
            .unwrap()
            .into_iter()
            .map(|r| r.claim)
            .collect();
        assert_eq!(claims.len(), 800);
        claims.sort();
        claims.dedup();
        assert_eq!(claims.len(), 800);
    }

    #[test]
    fn records_are_not_readable_by_other_users() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let records = Records::new(dir.path());
        records.append(&record("c1"), SystemTime::now()).unwrap();
        let mode = std::fs::metadata(records.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o007, 0, "{mode:o}");
    }
}
