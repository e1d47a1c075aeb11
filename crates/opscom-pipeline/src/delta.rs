//! The delta state: for each tenant, a digest of the values the OPSCOM API last accepted for
//! every `unique_id`, so that `mode = "delta"` sends only new and changed rows, and the change
//! safeguard (`hold_changed_percent`) can count how many known users a file would change.
//!
//! **What is stored.** For each user, 16 bytes: a 64-bit hash of its `unique_id` (the key) and a
//! 64-bit hash of the `unique_id` and every (attribute, value) pair that was sent, in a canonical
//! order (sorted by attribute, each part length-prefixed), so the column order of the file does
//! not matter. XXH3-64 with fixed seeds (`xxhash-rust`): stable across releases and machines. A
//! row is skipped wrongly only if its new values collide with the old ones in 64 bits; since
//! the value hash covers the `unique_id` too, two users whose id hashes collide are at worst
//! pushed again, never skipped.
//!
//! **The file** (`work_dir/delta-state`, mode 0600), little endian:
//!
//! ```text
//! magic "OPSDELT1" | version u32 = 1 | reserved u32 = 0 | tenant fingerprint u64
//! | last full push i64 (Unix seconds; i64::MIN: never) | count u64
//! | count × (id u64, value u64), sorted by id, unique | XXH3-64 of everything before
//! ```
//!
//! 48 bytes plus 16 per user. It is replaced atomically (a temporary file, fsync, rename, fsync
//! of the folder), with the digests of the rows the file's journal says were accepted, when the
//! file is committed: after a crash it holds the state before or after that file, never a mix,
//! and never a row the API did not confirm. A file that is damaged (checksum, length, order) or
//! foreign (another tenant's fingerprint, another version) is not used: the import that finds
//! it is pushed in full, with the reason logged, and writes a good state. Deleting it forces a
//! full push ([`STATE_FILE`]).

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use xxhash_rust::xxh3::{Xxh3, xxh3_64_with_seed};

/// The state file's name in the tenant's work folder.
pub const STATE_FILE: &str = "delta-state";

const MAGIC: &[u8; 8] = b"OPSDELT1";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 40;
const ENTRY_LEN: usize = 16;
const NEVER: i64 = i64::MIN;
const SEED_ID: u64 = 0x6f70_7363_6f6d_6964; // "opscomid"
const SEED_VALUE: u64 = 0x6f70_7363_6f6d_7661; // "opscomva"
const SEED_TENANT: u64 = 0x6f70_7363_6f6d_746e; // "opscomtn"

/// A row's digest: its key and its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowDigest {
    /// Hash of the `unique_id`.
    pub id: u64,
    /// Hash of the `unique_id` and every (attribute, value) sent.
    pub value: u64,
}

/// The digest of a row with `unique_id` whose request carries `attributes` (JSON key, value),
/// in any order.
pub fn row_digest<'k, 'v>(
    unique_id: &str,
    attributes: impl IntoIterator<Item = (&'k str, &'v str)>,
) -> RowDigest {
    let mut pairs: Vec<(&str, &str)> = attributes.into_iter().collect();
    pairs.sort_unstable();
    let mut h = Xxh3::with_seed(SEED_VALUE);
    let mut part = |bytes: &[u8]| {
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    part(unique_id.as_bytes());
    for (key, value) in pairs {
        part(key.as_bytes());
        part(value.as_bytes());
    }
    RowDigest {
        id: xxh3_64_with_seed(unique_id.as_bytes(), SEED_ID),
        value: h.digest(),
    }
}

/// How a row compares with what the API last accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Its `unique_id` is not known.
    New,
    /// Known, with other values.
    Changed,
    /// Known, with the same values.
    Unchanged,
}

/// A loaded state, and why it could not be used when it could not.
#[derive(Debug)]
pub struct Loaded {
    /// The state: empty when there was none or it could not be used.
    pub store: DigestStore,
    /// Why the file on disk was not used (damaged, foreign, unreadable): the import is pushed
    /// in full. `None` when it was used, or there was none.
    pub fallback: Option<String>,
}

/// The digests the API last accepted, by `unique_id`: sorted, 16 bytes per user in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestStore {
    entries: Vec<RowDigest>,
    last_full_push: Option<i64>,
}

fn fingerprint(tenant: &str) -> u64 {
    xxh3_64_with_seed(tenant.as_bytes(), SEED_TENANT)
}

impl DigestStore {
    /// Reads the state of `tenant` at `path`. A missing file is an empty state; a file that
    /// cannot be used is an empty state with the reason.
    pub fn load(path: &Path, tenant: &str) -> Loaded {
        match read(path, tenant) {
            Ok(store) => Loaded {
                store,
                fallback: None,
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Loaded {
                store: DigestStore::default(),
                fallback: None,
            },
            Err(e) => Loaded {
                store: DigestStore::default(),
                fallback: Some(format!("{}: {e}", path.display())),
            },
        }
    }

    /// How many users are known.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no user is known.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How `digest` compares with what the API last accepted for its `unique_id`.
    pub fn classify(&self, digest: &RowDigest) -> Change {
        match self.entries.binary_search_by_key(&digest.id, |e| e.id) {
            Ok(i) if self.entries[i].value == digest.value => Change::Unchanged,
            Ok(_) => Change::Changed,
            Err(_) => Change::New,
        }
    }

    /// When every row of a file was last pushed (a full push), if ever.
    pub fn last_full_push(&self) -> Option<SystemTime> {
        let secs = self.last_full_push?;
        Some(if secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
        })
    }

    /// Notes a full push at `at`.
    pub fn mark_full_push(&mut self, at: SystemTime) {
        let secs = match at.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
        };
        self.last_full_push = Some(secs.max(NEVER + 1));
    }

    /// Takes in the digests of rows the API accepted: a known user's digest is replaced, a new
    /// one added. Memory: the new users only, beyond the state itself; sorted in place.
    pub fn merge(&mut self, mut confirmed: Vec<RowDigest>) {
        if self.entries.is_empty() {
            self.entries = confirmed;
        } else {
            let entries = &mut self.entries;
            confirmed.retain(|d| match entries.binary_search_by_key(&d.id, |e| e.id) {
                Ok(i) => {
                    entries[i].value = d.value;
                    false
                }
                Err(_) => true,
            });
            self.entries.reserve_exact(confirmed.len());
            self.entries.append(&mut confirmed);
        }
        // In place (a stable sort would borrow half the state again): a file cannot hold one
        // `unique_id` twice, so no two digests share an id here but by a hash collision, and
        // then either may stay (the user is pushed again next time, never skipped wrongly).
        self.entries.sort_unstable_by_key(|e| e.id);
        dedup_keep_last(&mut self.entries);
        self.entries.shrink_to_fit();
    }

    /// Writes the state of `tenant` to `path`, atomically and durably (mode 0600).
    pub fn save(&self, path: &Path, tenant: &str) -> io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| STATE_FILE.to_owned());
        // One name: only the tenant's lock holder saves, and a crash's leftover is replaced.
        let tmp = dir.join(format!(".{name}.tmp"));
        let written = (|| {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(&tmp)?;
            let mut w = Hashing::new(BufWriter::with_capacity(1 << 16, file));
            let mut header = [0u8; HEADER_LEN];
            header[..8].copy_from_slice(MAGIC);
            header[8..12].copy_from_slice(&VERSION.to_le_bytes());
            header[16..24].copy_from_slice(&fingerprint(tenant).to_le_bytes());
            header[24..32].copy_from_slice(&self.last_full_push.unwrap_or(NEVER).to_le_bytes());
            header[32..40].copy_from_slice(&(self.entries.len() as u64).to_le_bytes());
            w.write_all(&header)?;
            for e in &self.entries {
                let mut entry = [0u8; ENTRY_LEN];
                entry[..8].copy_from_slice(&e.id.to_le_bytes());
                entry[8..].copy_from_slice(&e.value.to_le_bytes());
                w.write_all(&entry)?;
            }
            let sum = w.hasher.digest();
            let mut out = w.inner;
            out.write_all(&sum.to_le_bytes())?;
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)?;
            File::open(dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }
}

/// Keeps the last of each run of equal ids.
fn dedup_keep_last(entries: &mut Vec<RowDigest>) {
    if entries.len() < 2 {
        return;
    }
    let mut write = 0;
    for read in 0..entries.len() {
        if read + 1 < entries.len() && entries[read + 1].id == entries[read].id {
            continue;
        }
        entries[write] = entries[read];
        write += 1;
    }
    entries.truncate(write);
}

fn damaged(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// Reads and checks a state file; every problem is `InvalidData` with the reason.
fn read(path: &Path, tenant: &str) -> io::Result<DigestStore> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(code) if code == rustix::io::Errno::LOOP.raw_os_error() => {
                damaged("it is a link, not a file (never followed)")
            }
            _ => e,
        })?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(damaged("it is not a regular file"));
    }
    let len = meta.len();
    let mut r = BufReader::with_capacity(1 << 16, file);
    let mut header = [0u8; HEADER_LEN];
    r.read_exact(&mut header)
        .map_err(|_| damaged("it is damaged (shorter than its header)"))?;
    if &header[..8] != MAGIC {
        return Err(damaged("it is not a delta state file"));
    }
    let u64_at = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap_or([0; 8]));
    let version = u32::from_le_bytes(header[8..12].try_into().unwrap_or([0; 4]));
    if version != VERSION {
        return Err(damaged(format!(
            "it has version {version}, this importer reads version {VERSION}"
        )));
    }
    if u64_at(16) != fingerprint(tenant) {
        return Err(damaged(format!(
            "it belongs to another tenant than {tenant} (copied from another work folder?)"
        )));
    }
    let last_full = u64_at(24) as i64;
    let count = u64_at(32);
    let expected = (HEADER_LEN as u64)
        .checked_add(count.saturating_mul(ENTRY_LEN as u64))
        .and_then(|n| n.checked_add(8));
    if expected != Some(len) {
        return Err(damaged(format!(
            "it is damaged ({len} bytes for {count} users)"
        )));
    }
    let mut hasher = Xxh3::new();
    hasher.update(&header);
    let mut entries = Vec::with_capacity(count as usize);
    let mut chunk = vec![0u8; ENTRY_LEN * 4096];
    let mut left = count as usize;
    while left > 0 {
        let n = left.min(4096);
        let bytes = &mut chunk[..n * ENTRY_LEN];
        r.read_exact(bytes)
            .map_err(|_| damaged("it is damaged (cut short)"))?;
        hasher.update(bytes);
        for e in bytes.chunks_exact(ENTRY_LEN) {
            entries.push(RowDigest {
                id: u64::from_le_bytes(e[..8].try_into().unwrap_or([0; 8])),
                value: u64::from_le_bytes(e[8..].try_into().unwrap_or([0; 8])),
            });
        }
        left -= n;
    }
    let mut sum = [0u8; 8];
    r.read_exact(&mut sum)
        .map_err(|_| damaged("it is damaged (no checksum)"))?;
    if u64::from_le_bytes(sum) != hasher.digest() {
        return Err(damaged("it is damaged (checksum mismatch)"));
    }
    if entries.windows(2).any(|w| w[0].id >= w[1].id) {
        return Err(damaged("it is damaged (entries out of order)"));
    }
    Ok(DigestStore {
        entries,
        last_full_push: (last_full != NEVER).then_some(last_full),
    })
}

/// A writer that hashes what goes through it.
struct Hashing<W> {
    inner: W,
    hasher: Xxh3,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Xxh3::new(),
        }
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(uid: &str, email: &str) -> RowDigest {
        row_digest(uid, [("unique_id", uid), ("email", email)])
    }

    #[test]
    fn a_digest_ignores_column_order_and_separates_values() {
        let a = row_digest("u1", [("first_name", "Ann"), ("email", "a@x.org")]);
        let b = row_digest("u1", [("email", "a@x.org"), ("first_name", "Ann")]);
        assert_eq!(a, b);
        // Length prefixes: moving a character from one value to the next is a change.
        let c = row_digest("u1", [("first_name", "An"), ("email", "na@x.org")]);
        assert_ne!(a.value, c.value);
        assert_eq!(a.id, c.id);
        // The same values under another id never look unchanged.
        let other = row_digest("u2", [("first_name", "Ann"), ("email", "a@x.org")]);
        assert_ne!(a.value, other.value);
    }

    #[test]
    fn rows_are_new_changed_or_unchanged_and_a_merge_keeps_the_newest() {
        let mut store = DigestStore::default();
        assert_eq!(store.classify(&d("u1", "a")), Change::New);
        store.merge(vec![d("u1", "a"), d("u2", "b")]);
        assert_eq!(store.classify(&d("u1", "a")), Change::Unchanged);
        assert_eq!(store.classify(&d("u1", "z")), Change::Changed);
        assert_eq!(store.classify(&d("u3", "c")), Change::New);
        store.merge(vec![d("u1", "z"), d("u3", "c")]);
        assert_eq!(store.len(), 3);
        assert_eq!(store.classify(&d("u1", "z")), Change::Unchanged);
        assert_eq!(store.classify(&d("u2", "b")), Change::Unchanged);
        assert_eq!(store.classify(&d("u3", "c")), Change::Unchanged);
    }

    #[test]
    fn the_state_round_trips_and_a_missing_file_is_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        let loaded = DigestStore::load(&path, "acme");
        assert!(loaded.store.is_empty() && loaded.fallback.is_none());

        let mut store = DigestStore::default();
        store.merge((0..1000).map(|i| d(&format!("u{i}"), "x")).collect());
        let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        store.mark_full_push(at);
        store.save(&path, "acme").unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(len, 48 + 16 * 1000, "16 bytes per user, 48 more");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let loaded = DigestStore::load(&path, "acme");
        assert!(loaded.fallback.is_none(), "{:?}", loaded.fallback);
        assert_eq!(loaded.store, store);
        assert_eq!(loaded.store.last_full_push(), Some(at));
        assert!(
            std::fs::read_dir(dir.path()).unwrap().count() == 1,
            "no temporary file is left"
        );
    }

    #[test]
    fn a_damaged_or_foreign_state_is_never_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        let mut store = DigestStore::default();
        store.merge((0..100).map(|i| d(&format!("u{i}"), "x")).collect());
        store.save(&path, "acme").unwrap();
        let good = std::fs::read(&path).unwrap();

        let foreign = DigestStore::load(&path, "other");
        assert!(foreign.store.is_empty());
        assert!(
            foreign
                .fallback
                .as_deref()
                .is_some_and(|r| r.contains("another tenant")),
            "{:?}",
            foreign.fallback
        );

        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("truncated", good[..good.len() - 20].to_vec()),
            ("bit flipped", {
                let mut b = good.clone();
                b[100] ^= 1;
                b
            }),
            ("checksum flipped", {
                let mut b = good.clone();
                let n = b.len();
                b[n - 1] ^= 0x80;
                b
            }),
            (
                "not ours",
                b"hello, world, this is not a state file at all, no".to_vec(),
            ),
            ("empty", Vec::new()),
            ("version 2", {
                let mut b = good.clone();
                b[8] = 2;
                b
            }),
        ];
        for (what, bytes) in cases {
            std::fs::write(&path, &bytes).unwrap();
            let loaded = DigestStore::load(&path, "acme");
            assert!(loaded.store.is_empty(), "{what}");
            assert!(loaded.fallback.is_some(), "{what}: a reason is given");
        }
    }

    #[test]
    fn a_crash_before_the_rename_leaves_the_old_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        let mut store = DigestStore::default();
        store.merge(vec![d("u1", "a")]);
        store.save(&path, "acme").unwrap();
        // A temporary file left half-written by a crash.
        std::fs::write(dir.path().join(".delta-state.tmp"), b"OPSDELT1 half").unwrap();
        let loaded = DigestStore::load(&path, "acme");
        assert!(loaded.fallback.is_none());
        assert_eq!(loaded.store.classify(&d("u1", "a")), Change::Unchanged);
        // The next save replaces the state whatever temporary files lie around.
        store.merge(vec![d("u2", "b")]);
        store.save(&path, "acme").unwrap();
        assert_eq!(DigestStore::load(&path, "acme").store.len(), 2);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "the leftover is gone"
        );
    }

    #[test]
    fn a_million_users_cost_sixteen_bytes_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        let mut store = DigestStore::default();
        store.merge(
            (0..1_000_000u64)
                .map(|i| RowDigest {
                    id: xxh3_64_with_seed(&i.to_le_bytes(), 1),
                    value: i,
                })
                .collect(),
        );
        assert_eq!(store.len(), 1_000_000);
        assert_eq!(store.entries.capacity(), 1_000_000, "no slack kept");
        store.save(&path, "big").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 48 + 16_000_000);
        let loaded = DigestStore::load(&path, "big");
        assert!(loaded.fallback.is_none());
        let unchanged = (0..1_000_000u64)
            .filter(|&i| {
                loaded.store.classify(&RowDigest {
                    id: xxh3_64_with_seed(&i.to_le_bytes(), 1),
                    value: i,
                }) == Change::Unchanged
            })
            .count();
        assert_eq!(unchanged, 1_000_000);
    }
}
