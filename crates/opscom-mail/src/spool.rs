//! The report spool: every report is written to disk, fully formatted, before it is sent, and
//! removed only once the mail server accepted it. It is just files, so it survives restarts.
//!
//! An entry is `SEQ-KEY.report`: a format line, the [`MessageMeta`] as one JSON line, then the
//! message bytes. `SEQ` orders entries (oldest first); `KEY` is the report's stable key, so
//! enqueuing the same report again replaces its entry instead of queuing a duplicate. A crash
//! between "accepted" and "removed" resends the message with the same Message-ID.
//!
//! Entries are locked (`flock`) while being sent, so two importers sharing a state folder never
//! send the same entry at once.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::atomic::{Modes, TEMP_PREFIX, sync_dir, write_atomically};
use crate::mailer::{MailError, Mailer, MessageMeta, OutgoingMessage};

/// First line of every entry.
const FORMAT_LINE: &[u8] = b"opscom-import report v1\n";
/// File name suffix of entries.
const SUFFIX: &str = ".report";
/// Where unreadable entries are moved (kept for an operator, out of the delivery loop).
const CORRUPT_DIR: &str = "corrupt";
/// Where reports wait, held back from delivery, until their file is committed.
const HELD_DIR: &str = "held";

/// The spool failed to read or write its folder.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file operation failed.
    #[error("report spool {path}: {action}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The error.
        source: std::io::Error,
    },
}

fn io_err<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(std::io::Error) -> SpoolError + 'a {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        action,
        source,
    }
}

/// The name of a spool entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpoolId(String);

impl SpoolId {
    /// The entry's file name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SpoolId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A report waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingReport {
    /// The entry.
    pub id: SpoolId,
    /// What it is.
    pub meta: MessageMeta,
}

/// The outcome of one delivery pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    /// Messages the server accepted (and removed from the spool).
    pub sent: usize,
    /// Messages still in the spool after the pass.
    pub still_pending: usize,
    /// Of those, how many the server refused for good this pass (they stay; an operator must look).
    pub refused: usize,
    /// The last error seen, if any.
    pub last_error: Option<MailError>,
}

/// A folder of reports waiting to be sent.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

struct Entry {
    seq: u64,
    key: String,
    name: String,
}

impl Spool {
    /// Opens (creating it if needed) the spool in `dir`, e.g. `STATE_DIR/outgoing`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Spool, SpoolError> {
        let dir = dir.into();
        // The spool holds reports with rows of personal data: its folder is the owner's alone.
        // Created on first use only; an existing one costs one `stat`, and is tightened when
        // another user could read it (made by hand, or by an older version under a loose umask).
        match fs::metadata(&dir) {
            Ok(m) if m.is_dir() => tighten(&dir, &m)?,
            _ => {
                use std::os::unix::fs::DirBuilderExt;
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&dir)
                    .map_err(io_err(&dir, "create the folder"))?;
            }
        }
        Ok(Spool { dir })
    }

    /// The spool's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `message` durably (temp file, fsync, rename, fsync the folder). Enqueuing a report
    /// with the same key as a waiting one replaces it and keeps its place.
    pub fn enqueue(&self, message: &OutgoingMessage) -> Result<SpoolId, SpoolError> {
        let meta = message.meta();
        let entries = self.entries()?;
        let name = match entries.iter().find(|e| e.key == meta.key) {
            Some(existing) => existing.name.clone(),
            None => {
                let seq = entries.iter().map(|e| e.seq).max().unwrap_or(0) + 1;
                format!("{seq:010}-{}{SUFFIX}", meta.key)
            }
        };
        let mut bytes = Vec::with_capacity(message.raw().len() + 512);
        bytes.extend_from_slice(FORMAT_LINE);
        serde_json::to_writer(&mut bytes, meta).map_err(|e| SpoolError::Io {
            path: self.dir.join(&name),
            action: "encode the entry",
            source: e.into(),
        })?;
        bytes.push(b'\n');
        bytes.extend_from_slice(message.raw());
        let path = self.dir.join(&name);
        write_atomically(&self.dir, &path, &bytes, Modes::PRIVATE)
            .map_err(io_err(&path, "write the entry"))?;
        tracing::info!(
            tenant = %meta.tenant,
            kind = %meta.kind,
            message_id = %meta.message_id,
            entry = %name,
            "report queued"
        );
        Ok(SpoolId(name))
    }

    /// Writes `message` durably like [`Spool::enqueue`], but held back from delivery until
    /// [`Spool::release`] with the same `hold` tag (e.g. a claimed file's id): a file's report is
    /// on disk before the file is committed to `.bak`, and sent only after. Writing it again
    /// with the same tag replaces it.
    pub fn enqueue_held(&self, message: &OutgoingMessage, hold: &str) -> Result<(), SpoolError> {
        let path = self.held_path(hold)?;
        let held = self.dir.join(HELD_DIR);
        let mut bytes = Vec::with_capacity(message.raw().len() + 512);
        bytes.extend_from_slice(FORMAT_LINE);
        serde_json::to_writer(&mut bytes, message.meta()).map_err(|e| SpoolError::Io {
            path: path.clone(),
            action: "encode the entry",
            source: e.into(),
        })?;
        bytes.push(b'\n');
        bytes.extend_from_slice(message.raw());
        write_atomically(&held, &path, &bytes, Modes::PRIVATE)
            .map_err(io_err(&path, "write the held entry"))?;
        Ok(())
    }

    /// Releases the report held under `hold` into the queue (at its end). Nothing held under
    /// that tag is not an error (released already).
    pub fn release(&self, hold: &str) -> Result<(), SpoolError> {
        let path = self.held_path(hold)?;
        let message = match File::open(&path) {
            Ok(mut f) => read_entry(&mut f).map_err(|e| SpoolError::Io {
                path: path.clone(),
                action: "read the held entry",
                source: std::io::Error::other(e),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err(&path, "open the held entry")(e)),
        };
        let key = &message.meta.key;
        let entries = self.entries()?;
        let name = match entries.iter().find(|e| &e.key == key) {
            Some(existing) => existing.name.clone(),
            None => {
                let seq = entries.iter().map(|e| e.seq).max().unwrap_or(0) + 1;
                format!("{seq:010}-{key}{SUFFIX}")
            }
        };
        let target = self.dir.join(&name);
        fs::rename(&path, &target).map_err(io_err(&target, "release the held entry"))?;
        sync_dir(&self.dir).map_err(io_err(&self.dir, "sync the folder"))?;
        tracing::info!(
            tenant = %message.meta.tenant,
            kind = %message.meta.kind,
            message_id = %message.meta.message_id,
            entry = %name,
            "report queued"
        );
        Ok(())
    }

    /// The tags of the reports held back, for releasing those whose file was committed.
    pub fn held(&self) -> Result<Vec<String>, SpoolError> {
        let dir = self.dir.join(HELD_DIR);
        let listing = match fs::read_dir(&dir) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&dir, "list the folder")(e)),
        };
        let mut tags: Vec<String> = listing
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let name = name.to_str()?;
                if name.starts_with(TEMP_PREFIX) {
                    remove_stale_temp(&dir, name);
                }
                name.strip_suffix(SUFFIX).map(str::to_owned)
            })
            .collect();
        tags.sort();
        Ok(tags)
    }

    fn held_path(&self, hold: &str) -> Result<PathBuf, SpoolError> {
        let ok = !hold.is_empty()
            && !hold.starts_with('.')
            && hold
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            return Err(SpoolError::Io {
                path: self.dir.join(HELD_DIR),
                action: "name a held entry",
                source: std::io::Error::other(format!("`{hold}` is not a usable tag")),
            });
        }
        Ok(self.dir.join(HELD_DIR).join(format!("{hold}{SUFFIX}")))
    }

    /// The reports waiting, oldest first. Unreadable entries are left out (and moved aside by
    /// the next [`Spool::deliver_pending`]).
    pub fn pending(&self) -> Result<Vec<PendingReport>, SpoolError> {
        let mut out = Vec::new();
        for entry in self.entries()? {
            let path = self.dir.join(&entry.name);
            let Ok(mut file) = File::open(&path) else {
                continue;
            };
            if let Ok(message) = read_entry(&mut file) {
                out.push(PendingReport {
                    id: SpoolId(entry.name),
                    meta: message.meta,
                });
            }
        }
        Ok(out)
    }

    /// Whether any report waits to be sent.
    pub fn has_pending(&self) -> Result<bool, SpoolError> {
        Ok(!self.entries()?.is_empty())
    }

    /// Sends every waiting report, oldest first, removing each once the server accepted it.
    ///
    /// A transient failure (server down, 4xx) ends the pass: the rest waits for the next one. A
    /// permanent refusal (5xx) is logged and the pass goes on; the report stays in the spool.
    pub async fn deliver_pending(&self, mailer: &dyn Mailer) -> Result<DeliveryStats, SpoolError> {
        let entries = self.entries()?;
        let mut stats = DeliveryStats::default();
        let mut stop = false;
        for entry in entries {
            let path = self.dir.join(&entry.name);
            if stop {
                stats.still_pending += 1;
                continue;
            }
            let mut file = match File::open(&path) {
                Ok(f) => f,
                // Sent and removed by another process since the listing.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&path, "open the entry")(e)),
            };
            match file.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => {
                    // Another process is sending it right now.
                    stats.still_pending += 1;
                    continue;
                }
                Err(fs::TryLockError::Error(e)) => return Err(io_err(&path, "lock the entry")(e)),
            }
            if !still_linked(&file, &path) {
                // Sent and removed (or replaced) while we waited for the lock.
                if path.exists() {
                    stats.still_pending += 1;
                }
                continue;
            }
            let message = match read_entry(&mut file) {
                Ok(m) => m,
                Err(reason) => {
                    self.move_aside(&entry.name, &reason);
                    continue;
                }
            };
            match mailer.send(&message).await {
                Ok(()) => {
                    stats.sent += 1;
                    if still_linked(&file, &path)
                        && let Err(e) = fs::remove_file(&path).and_then(|()| sync_dir(&self.dir))
                    {
                        // It will be sent again next pass, with the same Message-ID.
                        tracing::error!(
                            entry = %entry.name,
                            error = %e,
                            "report sent but not removed from the spool"
                        );
                    }
                }
                Err(e) => {
                    stats.still_pending += 1;
                    if e.is_transient() {
                        stop = true;
                    } else {
                        stats.refused += 1;
                        tracing::error!(
                            tenant = %message.meta.tenant,
                            kind = %message.meta.kind,
                            message_id = %message.meta.message_id,
                            entry = %entry.name,
                            error = %e,
                            "mail server refused the report; it stays in the spool"
                        );
                    }
                    stats.last_error = Some(e);
                }
            }
            drop(file);
        }
        Ok(stats)
    }

    /// Moves an unreadable entry to `corrupt/` so it stops blocking the queue.
    fn move_aside(&self, name: &str, reason: &str) {
        use std::os::unix::fs::DirBuilderExt;
        let dir = self.dir.join(CORRUPT_DIR);
        let moved = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .and_then(|()| fs::rename(self.dir.join(name), dir.join(name)));
        tracing::error!(
            entry = %name,
            reason = %reason,
            moved = moved.is_ok(),
            folder = %dir.display(),
            "unreadable report moved out of the spool"
        );
    }

    /// The entries, oldest first.
    fn entries(&self) -> Result<Vec<Entry>, SpoolError> {
        let mut out = Vec::new();
        let listing = fs::read_dir(&self.dir).map_err(io_err(&self.dir, "list the folder"))?;
        for item in listing {
            let item = item.map_err(io_err(&self.dir, "list the folder"))?;
            let name = item.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(TEMP_PREFIX) {
                remove_stale_temp(&self.dir, name);
                continue;
            }
            if let Some(entry) = parse_name(name) {
                out.push(entry);
            }
        }
        out.sort_by(|a, b| (a.seq, &a.name).cmp(&(b.seq, &b.name)));
        Ok(out)
    }
}

/// Removes the spool folder's access for the group and others when it has any.
fn tighten(dir: &Path, meta: &fs::Metadata) -> Result<(), SpoolError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    let tight = mode & !0o077;
    fs::set_permissions(dir, fs::Permissions::from_mode(tight)).map_err(|e| SpoolError::Io {
        path: dir.to_owned(),
        action: "tighten the folder (it holds personal data and other users may read it; run `chmod 700` on it as its owner)",
        source: e,
    })?;
    tracing::info!(
        folder = %dir.display(),
        was = %format!("{mode:04o}"),
        now = %format!("{tight:04o}"),
        "report spool tightened: other users may not read it"
    );
    Ok(())
}

/// A temp file older than this was left by a crash mid-write (a write takes milliseconds).
const STALE_TEMP: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes `dir/name`, a temp file, when a crash left it (it holds a whole report).
fn remove_stale_temp(dir: &Path, name: &str) {
    let path = dir.join(name);
    let stale = fs::symlink_metadata(&path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > STALE_TEMP));
    if stale && fs::remove_file(&path).is_ok() {
        tracing::info!(file = %path.display(), "temp file left by a crash removed from the spool");
    }
}

fn parse_name(name: &str) -> Option<Entry> {
    let stem = name.strip_suffix(SUFFIX)?;
    let (seq, key) = stem.split_once('-')?;
    if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(Entry {
        seq: seq.parse().ok()?,
        key: key.to_owned(),
        name: name.to_owned(),
    })
}

/// Whether `path` still names the file `file` has open.
#[cfg(unix)]
fn still_linked(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn still_linked(_file: &File, path: &Path) -> bool {
    path.exists()
}

fn read_entry(file: &mut File) -> Result<OutgoingMessage, String> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    let rest = bytes
        .strip_prefix(FORMAT_LINE)
        .ok_or("not a report entry (format line missing)")?;
    let newline = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("truncated entry (no metadata line)")?;
    let meta: MessageMeta =
        serde_json::from_slice(&rest[..newline]).map_err(|e| format!("bad metadata: {e}"))?;
    let raw = rest[newline + 1..].to_vec();
    if raw.is_empty() {
        return Err("empty message".to_owned());
    }
    Ok(OutgoingMessage::new(meta, raw))
}
