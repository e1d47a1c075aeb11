//! The drop-folder lifecycle on real files: ready, skipped, claimed, archived, state files, lock.

use std::ffi::OsStr;
use std::fs::{self, File, FileTimes};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opscom_scheduler::{
    DropFolder, FolderError, SkipReason, TenantLock, Unimportable, UnimportableKind,
};

const SETTLE: Duration = Duration::from_secs(10);

struct Env {
    _root: tempfile::TempDir,
    drop: PathBuf,
    work: PathBuf,
    folder: DropFolder,
}

fn env() -> Env {
    let root = tempfile::tempdir().expect("tempdir");
    let drop = root.path().join("upload");
    let work = root.path().join("state").join("acme");
    fs::create_dir(&drop).expect("mkdir");
    let folder = DropFolder::open(&drop, &work).expect("open");
    Env {
        _root: root,
        drop,
        work,
        folder,
    }
}

fn put(dir: &Path, name: impl AsRef<OsStr>, body: &[u8], mtime: SystemTime) -> PathBuf {
    let path = dir.join(name.as_ref());
    let mut f = File::create(&path).expect("create");
    f.write_all(body).expect("write");
    f.set_times(FileTimes::new().set_modified(mtime))
        .expect("set mtime");
    path
}

fn ago(secs: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(secs)
}

fn names(scan: &opscom_scheduler::Scan) -> Vec<&str> {
    scan.ready.iter().map(|c| c.name.as_str()).collect()
}

#[test]
fn a_settled_csv_file_is_ready_in_any_case() {
    let e = env();
    let t = ago(60);
    put(&e.drop, "users.csv", b"unique_id\n1\n", t);
    put(&e.drop, "STAFF.CSV", b"unique_id\n1\n", t);
    let scan = e.folder.scan(SystemTime::now(), SETTLE).expect("scan");
    assert_eq!(names(&scan), ["STAFF.CSV", "users.csv"]);
    assert_eq!(scan.settling, 0);
    assert!(scan.skipped.is_empty());
    assert_eq!(scan.ready[1].size, 12);
}

#[test]
fn a_file_changed_less_than_settle_ago_is_settling() {
    let e = env();
    let mtime = ago(3);
    put(&e.drop, "users.csv", b"x", mtime);
    let now = SystemTime::now();
    let scan = e.folder.scan(now, SETTLE).expect("scan");
    assert!(scan.ready.is_empty());
    assert_eq!(scan.settling, 1);
    let later = e.folder.scan(mtime + SETTLE, SETTLE).expect("scan");
    assert_eq!(names(&later), ["users.csv"]);
}

#[test]
fn a_future_mtime_counts_as_changed_now_and_still_settles() {
    let e = env();
    let future = SystemTime::now() + Duration::from_secs(86_400 * 365);
    put(&e.drop, "users.csv", b"x", future);
    let now = SystemTime::now();
    let scan = e.folder.scan(now, SETTLE).expect("scan");
    assert!(
        scan.ready.is_empty(),
        "a future mtime is not settled at once"
    );
    assert_eq!(scan.settling, 1);
    // It settles `settle` after its last change on this server, not a year later.
    let later = e
        .folder
        .scan(now + SETTLE + Duration::from_secs(1), SETTLE)
        .expect("scan");
    assert_eq!(names(&later), ["users.csv"]);
}

#[test]
fn partial_and_hidden_names_are_ignored_silently() {
    let e = env();
    for n in [
        "users.csv.filepart",
        "users.csv.part",
        "users.csv.tmp",
        "users.CSV.PART",
        "~users.csv",
        "~x",
        ".users.csv",
        ".users.xlsx",
        "users.xlsx.filepart",
        "users.csv.approve.part",
    ] {
        put(&e.drop, n, b"x", ago(60));
    }
    fs::create_dir(e.drop.join(".bak")).expect("mkdir");
    for sub in ["results", "preview", "held"] {
        fs::create_dir(e.drop.join(sub)).expect("mkdir");
    }
    let scan = e.folder.scan(SystemTime::now(), SETTLE).expect("scan");
    assert_eq!(scan, opscom_scheduler::Scan::default());
}

#[test]
fn other_names_are_listed_as_unimportable_once_settled() {
    let e = env();
    for n in [
        "users.txt",
        "users.xlsx",
        "Users.ODS",
        "users.csv.bak",
        "notes",
    ] {
        put(&e.drop, n, b"x", ago(60));
    }
    let scan = e.folder.scan(SystemTime::now(), SETTLE).expect("scan");
    assert!(scan.ready.is_empty() && scan.skipped.is_empty() && scan.signals.is_empty());
    let got: Vec<(&str, UnimportableKind)> = scan
        .unimportable
        .iter()
        .map(|u| (u.name.as_str(), u.kind))
        .collect();
    assert_eq!(
        got,
        [
            ("Users.ODS", UnimportableKind::Spreadsheet),
            ("notes", UnimportableKind::OtherName),
            ("users.csv.bak", UnimportableKind::OtherName),
            ("users.txt", UnimportableKind::Text),
            ("users.xlsx", UnimportableKind::Spreadsheet),
        ]
    );
}

#[test]
fn a_symlink_named_csv_is_reported_and_never_followed() {
    let e = env();
    symlink("/etc/passwd", e.drop.join("x.csv")).expect("symlink");
    let scan = e
        .folder
        .scan(SystemTime::now(), Duration::ZERO)
        .expect("scan");
    assert!(scan.ready.is_empty());
    assert!(scan.skipped.is_empty());
    assert_eq!(
        scan.unimportable,
        [Unimportable {
            name: "x.csv".into(),
            kind: UnimportableKind::Symlink
        }]
    );
    // Even a forged candidate is refused: nothing is moved, /etc/passwd is untouched.
    let meta = fs::metadata("/etc/passwd").expect("passwd");
    let forged = opscom_scheduler::Candidate {
        name: "x.csv".into(),
        size: meta.len(),
        mtime: meta.modified().expect("mtime"),
        ino: meta.ino(),
    };
    assert!(e.folder.claim(&forged).expect("claim").is_none());
    assert!(
        fs::symlink_metadata(e.drop.join("x.csv"))
            .expect("still there")
            .is_symlink()
    );
    assert!(e.folder.claimed().expect("claimed").is_empty());
}

#[test]
fn fifos_sockets_directories_are_unimportable_and_hard_links_skipped() {
    let e = env();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        e.drop.join("pipe.csv"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .expect("mkfifo");
    let _sock = std::os::unix::net::UnixListener::bind(e.drop.join("sock.csv")).expect("socket");
    fs::create_dir(e.drop.join("folder.csv")).expect("mkdir");
    let a = put(&e.drop, "linked.csv", b"x", ago(60));
    fs::hard_link(&a, e.drop.join("other.txt")).expect("link");
    let scan = e
        .folder
        .scan(SystemTime::now(), Duration::ZERO)
        .expect("scan");
    assert!(scan.ready.is_empty());
    let got: Vec<(String, SkipReason)> = scan
        .skipped
        .into_iter()
        .map(|s| (s.name, s.reason))
        .collect();
    assert_eq!(got, [("linked.csv".to_owned(), SkipReason::HardLinked)]);
    let got: Vec<(String, UnimportableKind)> = scan
        .unimportable
        .into_iter()
        .map(|u| (u.name, u.kind))
        .collect();
    assert_eq!(
        got,
        [
            ("folder.csv".to_owned(), UnimportableKind::Directory),
            ("other.txt".to_owned(), UnimportableKind::Text),
            ("pipe.csv".to_owned(), UnimportableKind::Fifo),
            ("sock.csv".to_owned(), UnimportableKind::Socket),
        ]
    );
}

#[test]
fn odd_names_are_reported_escaped_and_do_not_stop_the_pass() {
    let e = env();
    put(&e.drop, "bad\nname.csv", b"x", ago(60));
    put(&e.drop, OsStr::from_bytes(b"caf\xe9.csv"), b"x", ago(60));
    put(&e.drop, "good.csv", b"x", ago(60));
    let scan = e.folder.scan(SystemTime::now(), SETTLE).expect("scan");
    assert_eq!(names(&scan), ["good.csv"]);
    let mut got: Vec<(String, SkipReason)> = scan
        .skipped
        .into_iter()
        .map(|s| (s.name, s.reason))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("bad\\nname.csv".to_owned(), SkipReason::ControlCharacter),
            ("caf\\xe9.csv".to_owned(), SkipReason::InvalidUtf8),
        ]
    );
}

#[test]
fn ready_files_come_oldest_first_then_by_name() {
    let e = env();
    let t = ago(3600);
    put(&e.drop, "a.csv", b"x", t + Duration::from_secs(60));
    put(&e.drop, "c.csv", b"x", t);
    put(&e.drop, "b.csv", b"x", t);
    let scan = e.folder.scan(SystemTime::now(), SETTLE).expect("scan");
    assert_eq!(names(&scan), ["b.csv", "c.csv", "a.csv"]);
}

#[test]
fn a_claim_moves_the_file_out_of_the_drop_folder() {
    let e = env();
    put(&e.drop, "users.csv", b"unique_id\n1\n", ago(60));
    let scan = e.folder.scan(SystemTime::now(), SETTLE).expect("scan");
    let claimed = e
        .folder
        .claim(&scan.ready[0])
        .expect("claim")
        .expect("claimed");
    assert!(!e.drop.join("users.csv").exists());
    assert_eq!(claimed.original_name(), "users.csv");
    assert_eq!(claimed.size(), 12);
    let mut body = String::new();
    claimed
        .open(&e.folder)
        .expect("open")
        .read_to_string(&mut body)
        .expect("read");
    assert_eq!(body, "unique_id\n1\n");
    assert!(!claimed.changed_since_claim(&e.folder).expect("stat"));
    // A re-upload of the same name during processing is a new file.
    put(&e.drop, "users.csv", b"unique_id\n2\n", ago(60));
    let again = e.folder.scan(SystemTime::now(), SETTLE).expect("scan");
    let second = e
        .folder
        .claim(&again.ready[0])
        .expect("claim")
        .expect("claimed");
    assert_ne!(second.id(), claimed.id());
    let left = e.folder.claimed().expect("claimed");
    assert_eq!(left, [claimed, second], "oldest claim first");
}

#[test]
fn a_file_changed_or_gone_since_the_scan_is_not_claimed() {
    let e = env();
    let t = ago(60);
    let p = put(&e.drop, "users.csv", b"unique_id\n", t);
    put(&e.drop, "gone.csv", b"unique_id\n", t);
    let scan = e.folder.scan(SystemTime::now(), SETTLE).expect("scan");
    assert_eq!(names(&scan), ["gone.csv", "users.csv"]);
    fs::remove_file(e.drop.join("gone.csv")).expect("rm");
    fs::OpenOptions::new()
        .append(true)
        .open(&p)
        .expect("open")
        .write_all(b"1\n")
        .expect("append");
    assert!(e.folder.claim(&scan.ready[0]).expect("claim").is_none());
    assert!(e.folder.claim(&scan.ready[1]).expect("claim").is_none());
    assert!(p.exists(), "the changed file stays with the client");
    assert!(e.folder.claimed().expect("claimed").is_empty());
}

#[test]
fn two_handles_claiming_the_same_candidate_concurrently_exactly_one_wins() {
    let e = env();
    let second = Arc::new(DropFolder::open(&e.drop, &e.work).expect("open"));
    let first = Arc::new(e.folder);
    for round in 0..50 {
        let name = format!("f{round}.csv");
        put(&e.drop, &name, b"unique_id\n1\n", ago(60));
        let scan = first.scan(SystemTime::now(), SETTLE).expect("scan");
        let cand = scan
            .ready
            .into_iter()
            .find(|c| c.name == name)
            .expect("ready");
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = [Arc::clone(&first), Arc::clone(&second)]
            .into_iter()
            .map(|folder| {
                let (barrier, cand) = (Arc::clone(&barrier), cand.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    folder.claim(&cand).expect("claim")
                })
            })
            .collect();
        let wins = handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .filter(Option::is_some)
            .count();
        assert_eq!(wins, 1, "round {round}");
    }
    assert_eq!(first.claimed().expect("claimed").len(), 50);
}

#[test]
fn a_write_through_a_handle_kept_open_is_seen_after_the_claim() {
    let e = env();
    let p = put(&e.drop, "users.csv", b"unique_id\n1\n", ago(60));
    let mut client = fs::OpenOptions::new()
        .append(true)
        .open(&p)
        .expect("client handle");
    let scan = e.folder.scan(SystemTime::now(), SETTLE).expect("scan");
    let claimed = e
        .folder
        .claim(&scan.ready[0])
        .expect("claim")
        .expect("claimed");
    assert!(!claimed.changed_since_claim(&e.folder).expect("stat"));
    client.write_all(b"2\n").expect("write");
    assert!(claimed.changed_since_claim(&e.folder).expect("stat"));
}

#[test]
fn claimed_finds_leftovers_after_a_restart() {
    let e = env();
    put(&e.drop, "a.csv", b"x", ago(120));
    put(&e.drop, "b.csv", b"y", ago(60));
    let scan = e.folder.scan(SystemTime::now(), SETTLE).expect("scan");
    let a = e.folder.claim(&scan.ready[0]).expect("claim").expect("a");
    let b = e.folder.claim(&scan.ready[1]).expect("claim").expect("b");
    drop(e.folder);
    // A crash between creating a claim folder and the rename leaves an empty folder.
    let restarted = DropFolder::open(&e.drop, &e.work).expect("reopen");
    fs::create_dir(
        e.work
            .join("claimed")
            .join("20000101T000000.000000000Z-1-1"),
    )
    .expect("mkdir");
    let left = restarted.claimed().expect("claimed");
    assert_eq!(left, [a, b]);
    assert_eq!(left[0].original_name(), "a.csv");
    assert_eq!(
        fs::read_dir(e.work.join("claimed")).expect("ls").count(),
        2,
        "the empty claim folder is removed"
    );
}

#[test]
fn archive_uses_the_own_name_then_a_utc_stamp_then_a_counter() {
    let e = env();
    let now = UNIX_EPOCH + Duration::from_secs(1_736_942_400); // 2025-01-15T12:00:00Z
    let mut archived = Vec::new();
    for body in ["one", "two", "three"] {
        put(&e.drop, "Users.csv", body.as_bytes(), ago(60));
        let scan = e.folder.scan(SystemTime::now(), SETTLE).expect("scan");
        let c = e
            .folder
            .claim(&scan.ready[0])
            .expect("claim")
            .expect("claimed");
        archived.push(e.folder.archive(&c, now).expect("archive"));
    }
    assert_eq!(
        archived,
        [
            "Users.csv",
            "Users.20250115T120000Z.csv",
            "Users.20250115T120000Z-2.csv"
        ]
    );
    let bak = e.drop.join(".bak");
    assert_eq!(
        fs::read_to_string(bak.join("Users.csv")).expect("read"),
        "one"
    );
    assert_eq!(
        fs::read_to_string(bak.join("Users.20250115T120000Z.csv")).expect("read"),
        "two"
    );
    assert_eq!(
        fs::read_to_string(bak.join("Users.20250115T120000Z-2.csv")).expect("read"),
        "three"
    );
    assert_eq!(
        fs::metadata(&bak).expect("bak").permissions().mode() & 0o777,
        0o750
    );
    assert_eq!(
        fs::metadata(bak.join("Users.csv"))
            .expect("f")
            .permissions()
            .mode()
            & 0o777,
        0o640
    );
    assert!(e.folder.claimed().expect("claimed").is_empty());
    assert_eq!(fs::read_dir(e.work.join("claimed")).expect("ls").count(), 0);
    // `.bak` itself is never a candidate.
    let scan = e.folder.scan(SystemTime::now(), SETTLE).expect("scan");
    assert_eq!(scan, opscom_scheduler::Scan::default());
}

#[test]
fn a_bak_that_is_not_a_real_directory_stops_the_tenant() {
    for plant in ["symlink", "file"] {
        let e = env();
        let elsewhere = tempfile::tempdir().expect("tempdir");
        match plant {
            "symlink" => symlink(elsewhere.path(), e.drop.join(".bak")).expect("symlink"),
            _ => drop(put(&e.drop, ".bak", b"", ago(60))),
        }
        put(&e.drop, "users.csv", b"x", ago(60));
        let err = e
            .folder
            .scan(SystemTime::now(), SETTLE)
            .expect_err("scan must stop");
        assert!(
            matches!(err, FolderError::BakNotDirectory { .. }),
            "{plant}: {err}"
        );
        assert!(err.to_string().contains(".bak"));

        // Claimed before the client planted it: archiving refuses and keeps the file claimed.
        fs::remove_file(e.drop.join(".bak")).expect("rm");
        let scan = e.folder.scan(SystemTime::now(), SETTLE).expect("scan");
        let c = e
            .folder
            .claim(&scan.ready[0])
            .expect("claim")
            .expect("claimed");
        match plant {
            "symlink" => symlink(elsewhere.path(), e.drop.join(".bak")).expect("symlink"),
            _ => drop(put(&e.drop, ".bak", b"", ago(60))),
        }
        let err = e
            .folder
            .archive(&c, SystemTime::now())
            .expect_err("archive must stop");
        assert!(
            matches!(err, FolderError::BakNotDirectory { .. }),
            "{plant}: {err}"
        );
        assert_eq!(
            fs::read_dir(elsewhere.path()).expect("ls").count(),
            0,
            "nothing written through the link"
        );
        assert_eq!(e.folder.claimed().expect("claimed"), [c]);
    }
}

#[test]
fn a_work_dir_on_another_filesystem_or_inside_the_drop_folder_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let drop = root.path().join("upload");
    fs::create_dir(&drop).expect("mkdir");
    // /dev/shm is a tmpfs on Linux hosts and containers: another filesystem than the temp dir.
    let other = tempfile::tempdir_in("/dev/shm").expect("tempdir on /dev/shm");
    assert_ne!(
        fs::metadata(other.path()).expect("m").dev(),
        fs::metadata(&drop).expect("m").dev()
    );
    let err = DropFolder::open(&drop, other.path()).expect_err("cross-device");
    assert!(matches!(err, FolderError::CrossDevice { .. }));
    assert!(err.to_string().contains("state_dir"), "{err}");

    let err = DropFolder::open(&drop, &drop.join("state")).expect_err("inside");
    assert!(err.to_string().contains("state_dir"), "{err}");

    let err = DropFolder::open(&root.path().join("missing"), &root.path().join("state"))
        .expect_err("missing");
    assert!(err.to_string().contains("drop_dir"), "{err}");
}

#[test]
fn state_files_are_written_atomically_relative_to_the_work_dir() {
    let e = env();
    assert_eq!(e.folder.read_state("checkpoint-1").expect("read"), None);
    e.folder
        .write_state_atomic("checkpoint-1", b"line 10")
        .expect("write");
    e.folder
        .write_state_atomic("checkpoint-1", b"line 20")
        .expect("write");
    assert_eq!(
        e.folder
            .read_state("checkpoint-1")
            .expect("read")
            .as_deref(),
        Some(&b"line 20"[..])
    );
    e.folder.remove_state("checkpoint-1").expect("rm");
    e.folder
        .remove_state("checkpoint-1")
        .expect("rm twice is fine");
    assert_eq!(e.folder.read_state("checkpoint-1").expect("read"), None);
    for bad in ["", "../x", "a/b", ".hidden", "lock", "claimed"] {
        assert!(
            matches!(
                e.folder.write_state_atomic(bad, b"x"),
                Err(FolderError::InvalidStateName { .. })
            ),
            "{bad:?}"
        );
    }
    // A symlink planted in the work dir is not followed.
    let target = e.work.join("elsewhere");
    symlink(&target, e.work.join("planted")).expect("symlink");
    assert!(e.folder.read_state("planted").is_err());
    // Replaced whole (the link itself), never written through.
    e.folder.write_state_atomic("planted", b"x").expect("write");
    assert!(!target.exists());
    assert_eq!(
        e.folder.read_state("planted").expect("read").as_deref(),
        Some(&b"x"[..])
    );
}

#[test]
fn the_tenant_lock_is_exclusive_between_handles() {
    let e = env();
    let held = TenantLock::try_acquire(&e.work)
        .expect("lock")
        .expect("free");
    assert!(TenantLock::try_acquire(&e.work).expect("lock").is_none());
    assert!(e.folder.try_lock().expect("lock").is_none());
    drop(held);
    let via_folder = e.folder.try_lock().expect("lock").expect("free again");
    assert!(TenantLock::try_acquire(&e.work).expect("lock").is_none());
    drop(via_folder);
    assert!(TenantLock::try_acquire(&e.work).expect("lock").is_some());
}

#[test]
fn a_claimed_file_removed_behind_our_back_is_an_error_not_a_panic() {
    let e = env();
    put(&e.drop, "users.csv", b"x", ago(60));
    let scan = e.folder.scan(SystemTime::now(), SETTLE).expect("scan");
    let c = e
        .folder
        .claim(&scan.ready[0])
        .expect("claim")
        .expect("claimed");
    let dir = e.work.join("claimed").join(c.id());
    fs::remove_file(dir.join("users.csv")).expect("rm");
    assert!(matches!(
        c.open(&e.folder),
        Err(FolderError::ClaimedFileGone { .. })
    ));
    assert!(matches!(
        c.changed_since_claim(&e.folder),
        Err(FolderError::ClaimedFileGone { .. })
    ));
    assert!(matches!(
        e.folder.archive(&c, SystemTime::now()),
        Err(FolderError::ClaimedFileGone { .. })
    ));
}

#[test]
fn the_start_up_checks_are_made_once_and_remembered_in_the_work_dir() {
    let root = tempfile::tempdir().expect("tempdir");
    let drop = root.path().join("upload");
    let work = root.path().join("work");
    fs::create_dir(&drop).expect("mkdir");
    let folder = DropFolder::reopen(&drop, &work).expect("open");
    folder.check_once().expect("first check");
    let remembered = fs::read_to_string(work.join("folders-checked")).expect("remembered");
    assert!(remembered.contains(':'), "{remembered}");
    // Remembered: the same folders are not probed again (the probe would leave no trace, so
    // show it through a state that only a fresh check rewrites).
    fs::write(work.join("folders-checked"), "stale\n").expect("overwrite");
    folder
        .check_once()
        .expect("a stale memory means a fresh check");
    assert_eq!(
        fs::read_to_string(work.join("folders-checked")).expect("rewritten"),
        remembered
    );
    assert!(
        fs::read_dir(&drop).expect("list").next().is_none(),
        "no probe file left in the client's folder"
    );

    // A work folder inside the drop folder is refused by the check, whatever was remembered.
    let inside = drop.join("state");
    let folder = DropFolder::reopen(&drop, &inside).expect("reopen skips the overlap check");
    let err = folder.check_once().expect_err("inside the drop folder");
    assert!(err.to_string().contains("state_dir"), "{err}");
}
