//! Reading `records.jsonl` and its rotated parts newest first, and merging the lines of one claim.
//!
//! The current file is `state_dir/records.jsonl`; rotated parts are
//! `state_dir/records.jsonl.YYYYMMDDTHHMMSSZ` (UTC), so their names sort in time order. Readers
//! open the current file first and list the parts after, so that a rotation in between can only
//! make a part appear twice (it is then read once: parts are told apart by device and inode),
//! never lose one. A part removed while it is being listed is passed over.
//!
//! **Merging.** One claim can have several lines: a line per deferral reason while the file waits,
//! then its final line; and a process that dies between two appends can leave two lines for one
//! outcome, the first without `archived_as`. Readers show one entry per claim: the claim's latest
//! line, with `archived_as` taken from an older line when the latest lacks it, and `reason` taken
//! from an older line when the latest lacks it and both lines have the same outcome (a deferral's
//! reason never appears on the imported line that followed it).

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::record::{FileRecord, RECORDS_FILE};

/// Bytes read from the end of a file at a time.
const CHUNK: u64 = 64 * 1024;
/// A longer line is no record (a torn or foreign file): it is skipped, not buffered.
const MAX_LINE: usize = 1024 * 1024;

/// Whether `name` is a rotated part: `records.jsonl.` then a `YYYYMMDDTHHMMSSZ` stamp.
pub(crate) fn is_rotated_part(name: &str) -> bool {
    let Some(stamp) = name
        .strip_prefix(RECORDS_FILE)
        .and_then(|s| s.strip_prefix('.'))
    else {
        return false;
    };
    let b = stamp.as_bytes();
    b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
}

/// A file that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadFault {
    pub path: PathBuf,
    pub error: String,
}

/// The record files of a `state_dir`, newest first: the current file, then the rotated parts
/// from the newest. Each is opened as it is reached; one that vanished is passed over.
pub(crate) struct RecordFiles {
    state_dir: PathBuf,
    current: Option<File>,
    seen: Vec<(u64, u64)>,
    parts: Option<Vec<String>>,
    pub faults: Vec<ReadFault>,
}

impl RecordFiles {
    /// Opens the current file (if any); parts are listed when the current file is done.
    pub fn open(state_dir: &Path) -> RecordFiles {
        let mut files = RecordFiles {
            state_dir: state_dir.to_owned(),
            current: None,
            seen: Vec::new(),
            parts: None,
            faults: Vec::new(),
        };
        let path = state_dir.join(RECORDS_FILE);
        match File::open(&path) {
            Ok(f) => {
                if let Ok(m) = f.metadata() {
                    files.seen.push((m.dev(), m.ino()));
                }
                files.current = Some(f);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => files.fault(path, e),
        }
        files
    }

    fn fault(&mut self, path: PathBuf, e: io::Error) {
        self.faults.push(ReadFault {
            path,
            error: e.to_string(),
        });
    }

    /// The next file to read, newest first, with its lines newest first.
    pub fn next_file(&mut self) -> Option<ReverseLines> {
        if let Some(f) = self.current.take() {
            return Some(ReverseLines::new(f));
        }
        if self.parts.is_none() {
            self.parts = Some(self.list_parts());
        }
        while let Some(name) = self.parts.as_mut().and_then(Vec::pop) {
            let path = self.state_dir.join(&name);
            match File::open(&path) {
                Ok(f) => {
                    let id = f.metadata().map(|m| (m.dev(), m.ino())).ok();
                    if id.is_some_and(|id| self.seen.contains(&id)) {
                        continue;
                    }
                    self.seen.extend(id);
                    return Some(ReverseLines::new(f));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => self.fault(path, e),
            }
        }
        None
    }

    /// The rotated parts' names, oldest first (so that `pop` gives the newest).
    fn list_parts(&mut self) -> Vec<String> {
        let listing = match std::fs::read_dir(&self.state_dir) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                let dir = self.state_dir.clone();
                self.fault(dir, e);
                return Vec::new();
            }
        };
        let mut names: Vec<String> = listing
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_rotated_part(n))
            .collect();
        names.sort();
        names
    }
}

/// The lines of one file, last first, read backwards in chunks (a long history is not read
/// whole when the newest lines are enough). A read error ends the file.
pub(crate) struct ReverseLines {
    file: File,
    /// Bytes before `pos` are not read yet.
    pos: u64,
    /// Read bytes not yet returned: the start of the file's unread tail.
    buf: Vec<u8>,
    /// The first line returned is the file's last, which may lack its line end.
    started: bool,
    /// The tail of `buf` belongs to an oversized line, being passed over.
    skipping: bool,
}

impl ReverseLines {
    fn new(file: File) -> ReverseLines {
        let pos = file.metadata().map(|m| m.len()).unwrap_or(0);
        ReverseLines {
            file,
            pos,
            buf: Vec::new(),
            started: false,
            skipping: false,
        }
    }

    /// Reads the chunk before `pos` in front of `buf`; false at the file's start or on an error.
    fn read_more(&mut self) -> bool {
        if self.pos == 0 {
            return false;
        }
        let n = self.pos.min(CHUNK);
        let mut chunk = vec![0u8; n as usize];
        if self.file.read_exact_at(&mut chunk, self.pos - n).is_err() {
            self.pos = 0;
            self.buf.clear();
            return false;
        }
        self.pos -= n;
        chunk.extend_from_slice(&self.buf);
        self.buf = chunk;
        true
    }
}

impl Iterator for ReverseLines {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            if !self.started {
                self.started = true;
                // A file's last byte is normally the last line's end: not an empty line.
                if self.buf.is_empty() && !self.read_more() {
                    return None;
                }
                if self.buf.last() == Some(&b'\n') {
                    self.buf.pop();
                }
            }
            if let Some(i) = self.buf.iter().rposition(|&b| b == b'\n') {
                let line = self.buf.split_off(i + 1);
                self.buf.pop();
                if std::mem::take(&mut self.skipping) || line.len() > MAX_LINE {
                    continue;
                }
                return Some(line);
            }
            if self.buf.len() > MAX_LINE {
                // An oversized line: drop what is known of it, and its head when it is reached.
                self.buf.clear();
                self.skipping = true;
            }
            if !self.read_more() {
                let line = std::mem::take(&mut self.buf);
                if std::mem::take(&mut self.skipping) || line.is_empty() {
                    return None;
                }
                return Some(line);
            }
        }
    }
}

/// Parses one line; `None` for a torn or foreign line.
pub(crate) fn parse(line: &[u8]) -> Option<FileRecord> {
    serde_json::from_slice(line).ok()
}

/// Merges an `older` line of the same claim into `newer` (see the module documentation).
pub fn merge_older(newer: &mut FileRecord, older: &FileRecord) {
    if newer.archived_as.is_none() {
        newer.archived_as.clone_from(&older.archived_as);
    }
    if newer.reason.is_none() && newer.outcome == older.outcome {
        newer.reason.clone_from(&older.reason);
    }
}

/// The last `limit` files of `tenant`, newest first, one per claim, merged; with the files that
/// could not be read. Reading stops at the end of the first file (current or part) in which
/// `limit` claims are complete: older lines of those claims in earlier parts are not looked for.
pub(crate) fn last_files(
    state_dir: &Path,
    tenant: &str,
    limit: usize,
) -> (Vec<FileRecord>, Vec<ReadFault>) {
    let mut files = RecordFiles::open(state_dir);
    let mut out: Vec<FileRecord> = Vec::new();
    while out.len() < limit {
        let Some(lines) = files.next_file() else {
            break;
        };
        for line in lines {
            let Some(r) = parse(&line) else { continue };
            if r.tenant != tenant {
                continue;
            }
            if let Some(known) = out.iter_mut().find(|k| k.claim == r.claim) {
                merge_older(known, &r);
            } else if out.len() < limit {
                out.push(r);
            }
        }
    }
    (out, files.faults)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Outcome;

    fn rec(claim: &str, at: &str, outcome: Outcome) -> FileRecord {
        FileRecord {
            at: at.into(),
            tenant: "acme".into(),
            file: format!("{claim}.csv"),
            claim: claim.into(),
            rows_total: 3,
            rows_ok: 3,
            rows_failed: 0,
            rows_unchanged: 0,
            outcome,
            reason: None,
            archived_as: None,
            duration_ms: 1,
        }
    }

    fn lines(records: &[FileRecord]) -> String {
        records
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect()
    }

    #[test]
    fn rotated_part_names_are_recognised_exactly() {
        assert!(is_rotated_part("records.jsonl.20261127T100000Z"));
        for name in [
            "records.jsonl",
            "records.jsonl.",
            "records.jsonl.tmp",
            "records.jsonl.20261127T100000Z.gz",
            "records.jsonl.2026112T100000Z",
            "records.jsonl.20261127X100000Z",
            "other.jsonl.20261127T100000Z",
        ] {
            assert!(!is_rotated_part(name), "{name}");
        }
    }

    #[test]
    fn lines_come_newest_first_across_chunks_and_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut text = String::new();
        for i in 0..20_000 {
            text.push_str(&format!("line {i}\n"));
        }
        text.push_str("torn");
        std::fs::write(&path, &text).unwrap();
        let got: Vec<String> = ReverseLines::new(File::open(&path).unwrap())
            .map(|l| String::from_utf8(l).unwrap())
            .collect();
        assert_eq!(got.len(), 20_001);
        assert_eq!(got[0], "torn");
        assert_eq!(got[1], "line 19999");
        assert_eq!(got[20_000], "line 0");
        std::fs::write(&path, "").unwrap();
        assert_eq!(ReverseLines::new(File::open(&path).unwrap()).count(), 0);
        std::fs::write(&path, "a\n\nb\n").unwrap();
        let got: Vec<Vec<u8>> = ReverseLines::new(File::open(&path).unwrap()).collect();
        assert_eq!(got, [b"b".to_vec(), vec![], b"a".to_vec()]);
    }

    #[test]
    fn an_oversized_line_is_skipped_and_its_neighbours_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut text = b"first\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', MAX_LINE * 2 + 10));
        text.extend(b"\nlast\n");
        std::fs::write(&path, &text).unwrap();
        let got: Vec<Vec<u8>> = ReverseLines::new(File::open(&path).unwrap()).collect();
        assert_eq!(got, [b"last".to_vec(), b"first".to_vec()]);
    }

    #[test]
    fn two_lines_of_one_claim_merge_later_wins_fields_filled_in() {
        // A crash between two appends: the first line lacks `archived_as`.
        let first = rec("c1", "2026-11-27T10:00:00Z", Outcome::ImportedWithFailures);
        let mut second = first.clone();
        second.at = "2026-11-27T10:00:05Z".into();
        second.archived_as = Some("roster.csv".into());
        second.duration_ms = 9;
        let mut merged = second.clone();
        merge_older(&mut merged, &first);
        assert_eq!(merged, second, "the later line wins");

        // The other way round: the later line lacks what the earlier one had.
        let mut older = rec("c2", "2026-11-27T10:00:00Z", Outcome::Rejected);
        older.reason = Some("unknown header".into());
        older.archived_as = Some("x.csv".into());
        let mut newer = rec("c2", "2026-11-27T10:01:00Z", Outcome::Rejected);
        newer.rows_total = 0;
        merge_older(&mut newer, &older);
        assert_eq!(newer.reason.as_deref(), Some("unknown header"));
        assert_eq!(newer.archived_as.as_deref(), Some("x.csv"));
        assert_eq!(newer.at, "2026-11-27T10:01:00Z");
        assert_eq!(newer.rows_total, 0);

        // A deferral's reason does not stick to the imported line that followed it.
        let mut deferred = rec("c3", "2026-11-27T10:00:00Z", Outcome::Deferred);
        deferred.reason = Some("API unreachable: refused".into());
        let mut imported = rec("c3", "2026-11-27T11:00:00Z", Outcome::Imported);
        merge_older(&mut imported, &deferred);
        assert_eq!(imported.reason, None);
        assert_eq!(imported.outcome, Outcome::Imported);
    }

    #[test]
    fn last_files_reads_rotated_parts_newest_first_and_stops_when_it_has_enough() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        let at = |h: u32| format!("2026-11-27T{h:02}:00:00Z");
        // Oldest part: c1, c2. Newer part: c3 deferred, c4. Current: c3 imported (two lines), c5.
        std::fs::write(
            state.join("records.jsonl.20261127T020000Z"),
            lines(&[
                rec("c1", &at(1), Outcome::Imported),
                rec("c2", &at(2), Outcome::Imported),
            ]),
        )
        .unwrap();
        let mut c3_deferred = rec("c3", &at(3), Outcome::Deferred);
        c3_deferred.reason = Some("API unreachable".into());
        let mut other = rec("c9", &at(4), Outcome::Imported);
        other.tenant = "globex".into();
        std::fs::write(
            state.join("records.jsonl.20261127T050000Z"),
            lines(&[c3_deferred, rec("c4", &at(4), Outcome::Imported), other]),
        )
        .unwrap();
        // Not a part: never read.
        std::fs::write(
            state.join("records.jsonl.tmp"),
            lines(&[rec("x", &at(9), Outcome::Imported)]),
        )
        .unwrap();
        let c3_first = rec("c3", &at(6), Outcome::Imported);
        let mut c3_second = c3_first.clone();
        c3_second.archived_as = Some("c3.csv".into());
        let mut current = lines(&[c3_first, rec("c5", &at(7), Outcome::Imported), c3_second]);
        current.push_str("{\"torn");
        std::fs::write(state.join("records.jsonl"), current).unwrap();

        let claims = |limit| {
            let (files, faults) = last_files(state, "acme", limit);
            assert!(faults.is_empty(), "{faults:?}");
            files.into_iter().map(|r| r.claim).collect::<Vec<_>>()
        };
        assert_eq!(claims(1), ["c3"]);
        assert_eq!(claims(3), ["c3", "c5", "c4"]);
        assert_eq!(claims(20), ["c3", "c5", "c4", "c2", "c1"]);
        let (files, _) = last_files(state, "acme", 20);
        assert_eq!(files[0].outcome, Outcome::Imported);
        assert_eq!(files[0].archived_as.as_deref(), Some("c3.csv"));
        assert_eq!(files[0].reason, None, "the deferral's reason stays its own");
        assert!(last_files(state, "nobody", 5).0.is_empty());
        assert!(last_files(&state.join("missing"), "acme", 5).0.is_empty());
    }

    #[test]
    fn a_part_seen_as_the_current_file_is_read_once() {
        // A rotation between opening the current file and listing the parts: the file opened as
        // current now also has a part's name.
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        std::fs::write(
            state.join("records.jsonl"),
            lines(&[rec("c1", "2026-11-27T01:00:00Z", Outcome::Imported)]),
        )
        .unwrap();
        let mut files = RecordFiles::open(state);
        std::fs::rename(
            state.join("records.jsonl"),
            state.join("records.jsonl.20261127T020000Z"),
        )
        .unwrap();
        let mut n = 0;
        while let Some(lines) = files.next_file() {
            n += lines.count();
        }
        assert_eq!(n, 1);
    }
}
