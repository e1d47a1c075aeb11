//! The client's side of a drop folder beyond uploads: entries never imported and set aside,
//! control files, `results/`, `held/` and the preview folder; never following a link.

use std::fs::{self, File, FileTimes};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opscom_scheduler::{
    ClientDir, DropFolder, FolderError, HELD_DIR, PREVIEW_DIR, RESULTS_DIR, Scan, Signal,
    SignalAction, Unimportable, UnimportableKind,
};

const SETTLE: Duration = Duration::from_secs(10);

/// 2026-12-04T10:15:00Z
fn stamp_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_796_379_300)
}

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

fn put(dir: &Path, name: &str, body: &[u8], mtime: SystemTime) -> PathBuf {
    let path = dir.join(name);
    let mut f = File::create(&path).expect("create");
    f.write_all(body).expect("write");
    f.set_times(FileTimes::new().set_modified(mtime))
        .expect("set mtime");
    path
}

fn ago(secs: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(secs)
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .expect("mkfifo");
}

fn ls(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn unimportable(scan: &Scan) -> Vec<(&str, UnimportableKind)> {
    scan.unimportable
        .iter()
        .map(|u| (u.name.as_str(), u.kind))
        .collect()
}

// ---- unimportable entries -------------------------------------------------------------------

#[test]
fn a_settling_spreadsheet_is_not_listed_yet_but_counted() {
    let e = env();
    let mtime = ago(3);
    put(&e.drop, "roster.xlsx", b"PK", mtime);
    let scan = e.folder.scan(SystemTime::now(), SETTLE).expect("scan");
    assert!(scan.unimportable.is_empty());
    assert_eq!(scan.settling, 1);
    let later = e.folder.scan(mtime + SETTLE, SETTLE).expect("scan");
    assert_eq!(
        unimportable(&later),
        [("roster.xlsx", UnimportableKind::Spreadsheet)]
    );
    assert_eq!(later.settling, 0);
}

#[test]
fn a_new_folder_settles_by_its_own_mtime() {
    let e = env();
    fs::create_dir(e.drop.join("exports")).expect("mkdir");
    let scan = e.folder.scan(SystemTime::now(), SETTLE).expect("scan");
    assert!(scan.unimportable.is_empty());
    assert_eq!(scan.settling, 1);
    let later = e
        .folder
        .scan(SystemTime::now() + SETTLE, SETTLE)
        .expect("scan");
    assert_eq!(
        unimportable(&later),
        [("exports", UnimportableKind::Directory)]
    );
}

#[test]
fn links_pipes_and_folders_are_listed_by_type_whatever_their_name() {
    let e = env();
    symlink("/etc/passwd", e.drop.join("notes")).expect("symlink");
    symlink("/etc/passwd", e.drop.join("roster.csv.approve")).expect("symlink");
    mkfifo(&e.drop.join("pipe"));
    fs::create_dir(e.drop.join("old.xlsx")).expect("mkdir");
    let scan = e
        .folder
        .scan(SystemTime::now(), Duration::ZERO)
        .expect("scan");
    assert!(scan.signals.is_empty() && scan.skipped.is_empty() && scan.ready.is_empty());
    assert_eq!(
        unimportable(&scan),
        [
            ("notes", UnimportableKind::Symlink),
            ("old.xlsx", UnimportableKind::Directory),
            ("pipe", UnimportableKind::Fifo),
            ("roster.csv.approve", UnimportableKind::Symlink),
        ]
    );
}

#[test]
fn set_aside_moves_links_folders_pipes_and_spreadsheets_into_bak_unchanged() {
    let e = env();
    let outside = tempfile::tempdir().expect("tempdir");
    let target = put(outside.path(), "secret.csv", b"secret", ago(60));
    let target_meta = fs::metadata(&target).expect("target");
    symlink(&target, e.drop.join("x.csv")).expect("symlink");
    fs::create_dir(e.drop.join("folder")).expect("mkdir");
    put(&e.drop.join("folder"), "inside.csv", b"inside", ago(60));
    mkfifo(&e.drop.join("pipe.csv"));
    put(&e.drop, "roster.xlsx", b"PK spreadsheet", ago(60));
    let scan = e
        .folder
        .scan(SystemTime::now(), Duration::ZERO)
        .expect("scan");
    assert_eq!(scan.unimportable.len(), 4);
    let mut moved = Vec::new();
    for u in &scan.unimportable {
        moved.push(
            e.folder
                .set_aside(u, stamp_time())
                .expect("set aside")
                .expect("moved"),
        );
    }
    assert_eq!(moved, ["folder", "pipe.csv", "roster.xlsx", "x.csv"]);
    assert_eq!(ls(&e.drop), [".bak"]);
    let bak = e.drop.join(".bak");
    // The link is moved as a link: same target, the target itself untouched.
    assert_eq!(fs::read_link(bak.join("x.csv")).expect("link"), target);
    let after = fs::metadata(&target).expect("target");
    assert_eq!(fs::read(&target).expect("read"), b"secret");
    assert_eq!(after.ino(), target_meta.ino());
    assert_eq!(after.mode(), target_meta.mode());
    assert_eq!(ls(outside.path()), ["secret.csv"]);
    assert_eq!(
        fs::read(bak.join("folder").join("inside.csv")).expect("read"),
        b"inside"
    );
    assert!(
        fs::symlink_metadata(bak.join("pipe.csv"))
            .expect("fifo")
            .file_type()
            .is_fifo()
    );
    let sheet = fs::metadata(bak.join("roster.xlsx")).expect("sheet");
    assert_eq!(sheet.permissions().mode() & 0o777, 0o640);
    assert_eq!(
        fs::read(bak.join("roster.xlsx")).expect("read"),
        b"PK spreadsheet"
    );

    // A second spreadsheet of the same name gets the archive suffix, before its extension.
    put(&e.drop, "roster.xlsx", b"second", ago(60));
    let scan = e
        .folder
        .scan(SystemTime::now(), Duration::ZERO)
        .expect("scan");
    let name = e
        .folder
        .set_aside(&scan.unimportable[0], stamp_time())
        .expect("set aside");
    assert_eq!(name.as_deref(), Some("roster.20261204T101500Z.xlsx"));
    assert_eq!(
        fs::read(bak.join("roster.20261204T101500Z.xlsx")).expect("read"),
        b"second"
    );
    assert!(e.folder.scan(SystemTime::now(), SETTLE).expect("scan") == Scan::default());
}

trait IsFifo {
    fn is_fifo(&self) -> bool;
}
impl IsFifo for fs::FileType {
    fn is_fifo(&self) -> bool {
        std::os::unix::fs::FileTypeExt::is_fifo(self)
    }
}

#[test]
fn set_aside_refuses_an_entry_that_changed_kind_or_is_not_a_listed_name() {
    let e = env();
    put(&e.drop, "roster.xlsx", b"PK", ago(60));
    let scan = e
        .folder
        .scan(SystemTime::now(), Duration::ZERO)
        .expect("scan");
    let listed = scan.unimportable[0].clone();
    // Replaced by a folder of the same name since the scan: left where it is.
    fs::remove_file(e.drop.join("roster.xlsx")).expect("rm");
    fs::create_dir(e.drop.join("roster.xlsx")).expect("mkdir");
    assert_eq!(e.folder.set_aside(&listed, stamp_time()).expect("ok"), None);
    assert!(e.drop.join("roster.xlsx").is_dir());
    // Gone: nothing to do.
    fs::remove_dir(e.drop.join("roster.xlsx")).expect("rm");
    assert_eq!(e.folder.set_aside(&listed, stamp_time()).expect("ok"), None);
    // Names a scan never lists, and a CSV upload, are never set aside.
    put(&e.drop, "users.csv", b"unique_id\n", ago(60));
    fs::create_dir(e.drop.join("results")).expect("mkdir");
    for (name, kind) in [
        ("users.csv", UnimportableKind::OtherName),
        ("results", UnimportableKind::Directory),
        (".bak", UnimportableKind::Directory),
        ("../upload", UnimportableKind::Directory),
    ] {
        let forged = Unimportable {
            name: name.into(),
            kind,
        };
        assert_eq!(
            e.folder.set_aside(&forged, stamp_time()).expect("ok"),
            None,
            "{name}"
        );
    }
    assert!(e.drop.join("users.csv").is_file());
    assert!(e.drop.join("results").is_dir());
}

// ---- control files ---------------------------------------------------------------------------

#[test]
fn control_files_are_signals_listed_at_once_and_removed_only_while_regular() {
    let e = env();
    put(&e.drop, "roster.csv.approve", b"", SystemTime::now());
    put(&e.drop, "staff.csv.DISCARD", b"", SystemTime::now());
    let scan = e.folder.scan(SystemTime::now(), SETTLE).expect("scan");
    assert_eq!(
        scan.signals,
        [
            Signal {
                name: "roster.csv.approve".into(),
                target: "roster.csv".into(),
                action: SignalAction::Approve
            },
            Signal {
                name: "staff.csv.DISCARD".into(),
                target: "staff.csv".into(),
                action: SignalAction::Discard
            },
        ]
    );
    assert!(scan.unimportable.is_empty() && scan.ready.is_empty());
    assert_eq!(scan.settling, 0);
    e.folder.remove_signal(&scan.signals[0]).expect("remove");
    assert!(!e.drop.join("roster.csv.approve").exists());
    e.folder
        .remove_signal(&scan.signals[0])
        .expect("gone is fine");
    // Replaced by a folder since the scan: left alone.
    fs::remove_file(e.drop.join("staff.csv.DISCARD")).expect("rm");
    fs::create_dir(e.drop.join("staff.csv.DISCARD")).expect("mkdir");
    e.folder.remove_signal(&scan.signals[1]).expect("remove");
    assert!(e.drop.join("staff.csv.DISCARD").is_dir());
}

// ---- the client's folders and results ---------------------------------------------------------

#[test]
fn client_folders_are_created_with_their_modes_and_not_listed() {
    let e = env();
    for (which, mode) in [
        (ClientDir::Results, 0o2770),
        (ClientDir::Preview, 0o2770),
        (ClientDir::Held, 0o750),
    ] {
        e.folder.client_dir(which).expect("client dir");
        let meta = fs::metadata(e.drop.join(which.name())).expect("meta");
        assert!(meta.is_dir());
        assert_eq!(meta.permissions().mode() & 0o7777, mode, "{which:?}");
        assert_eq!(
            meta.gid(),
            fs::metadata(&e.drop).expect("drop").gid(),
            "{which:?}"
        );
    }
    assert_eq!(
        (RESULTS_DIR, PREVIEW_DIR, HELD_DIR),
        ("results", "preview", "held")
    );
    let scan = e.folder.scan(SystemTime::now(), SETTLE).expect("scan");
    assert_eq!(scan, Scan::default());
}

#[test]
fn a_symlink_or_file_named_like_a_client_folder_is_never_followed_nor_replaced() {
    let e = env();
    let elsewhere = tempfile::tempdir().expect("tempdir");
    symlink(elsewhere.path(), e.drop.join("results")).expect("symlink");
    symlink(elsewhere.path(), e.drop.join("preview")).expect("symlink");
    put(&e.drop, "held", b"mine", ago(60));
    for which in [ClientDir::Results, ClientDir::Preview, ClientDir::Held] {
        let err = e.folder.client_dir(which).expect_err("not a folder");
        assert!(
            matches!(err, FolderError::NotAFolder { name, .. } if name == which.name()),
            "{err}"
        );
        assert!(
            err.to_string().contains(&format!(
                "delete `{}` from your upload folder",
                which.name()
            )),
            "{err}"
        );
    }
    let err = e
        .folder
        .write_result("summary.txt", &mut &b"report"[..], stamp_time())
        .expect_err("not a folder");
    assert!(matches!(err, FolderError::NotAFolder { .. }), "{err}");
    assert!(matches!(
        e.folder.preview().expect_err("not a folder"),
        FolderError::NotAFolder { .. }
    ));
    assert!(matches!(
        e.folder.existing_preview().expect_err("not a folder"),
        FolderError::NotAFolder { .. }
    ));
    assert!(matches!(
        e.folder.held().expect_err("not a folder"),
        FolderError::NotAFolder { .. }
    ));
    assert_eq!(
        e.folder.release("x.csv").map_err(|e| e.to_string()),
        Err(format!(
            "{}/held is not a real folder (a link or a file): delete `held` from your upload folder; the importer creates the folder `held` itself",
            e.drop.display()
        ))
    );
    // Nothing written through the links, nothing replaced; the scan goes on.
    assert_eq!(ls(elsewhere.path()), Vec::<String>::new());
    assert!(
        fs::symlink_metadata(e.drop.join("results"))
            .expect("link")
            .is_symlink()
    );
    assert_eq!(fs::read(e.drop.join("held")).expect("file"), b"mine");
    put(&e.drop, "users.csv", b"x", ago(60));
    let scan = e.folder.scan(SystemTime::now(), SETTLE).expect("scan");
    assert_eq!(scan.ready.len(), 1);
    assert!(scan.unimportable.is_empty() && scan.skipped.is_empty());
}

#[test]
fn write_result_never_overwrites_and_leaves_no_temporary() {
    let e = env();
    let mut written = Vec::new();
    for body in ["one", "two", "three"] {
        written.push(
            e.folder
                .write_result("roster-summary.txt", &mut body.as_bytes(), stamp_time())
                .expect("write"),
        );
    }
    assert_eq!(
        written,
        [
            "roster-summary.txt",
            "roster-summary.20261204T101500Z.txt",
            "roster-summary.20261204T101500Z-2.txt"
        ]
    );
    let results = e.drop.join("results");
    assert_eq!(ls(&results), {
        let mut w = written.clone();
        w.sort();
        w
    });
    for (name, body) in written.iter().zip(["one", "two", "three"]) {
        assert_eq!(fs::read_to_string(results.join(name)).expect("read"), body);
        let meta = fs::metadata(results.join(name)).expect("meta");
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        assert_eq!(meta.gid(), fs::metadata(&e.drop).expect("drop").gid());
    }
    // A file the client put there, or a link, is never replaced nor followed.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let victim = elsewhere.path().join("victim");
    symlink(&victim, results.join("errors.csv")).expect("symlink");
    let name = e
        .folder
        .write_result("errors.csv", &mut &b"a,b\n"[..], stamp_time())
        .expect("write");
    assert_eq!(name, "errors.20261204T101500Z.csv");
    assert!(!victim.exists());
    // A failing reader leaves nothing behind.
    struct Failing;
    impl std::io::Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("broken"))
        }
    }
    let before = ls(&results);
    assert!(
        e.folder
            .write_result("broken.txt", &mut Failing, stamp_time())
            .is_err()
    );
    assert_eq!(ls(&results), before);
    // Only one plain name.
    for bad in ["", ".hidden", "a/b", "../x"] {
        assert!(matches!(
            e.folder.write_result(bad, &mut &b""[..], stamp_time()),
            Err(FolderError::InvalidStateName { .. })
        ));
    }
}

// ---- held files ----------------------------------------------------------------------------

fn claim_one(
    folder: &DropFolder,
    drop: &Path,
    name: &str,
    body: &[u8],
    mtime: SystemTime,
) -> opscom_scheduler::ClaimedFile {
    put(drop, name, body, mtime);
    let scan = folder.scan(SystemTime::now(), SETTLE).expect("scan");
    let c = scan
        .ready
        .iter()
        .find(|c| c.name == name)
        .expect("ready")
        .clone();
    folder.claim(&c).expect("claim").expect("claimed")
}

#[test]
fn held_is_empty_and_not_created_when_absent() {
    let e = env();
    assert!(e.folder.held().expect("held").is_empty());
    assert_eq!(e.folder.release("x.csv").expect("release"), None);
    assert_eq!(
        e.folder
            .discard_held("x.csv", stamp_time())
            .expect("discard"),
        None
    );
    assert!(!e.drop.join("held").exists());
}

#[test]
fn hold_lists_oldest_first_and_a_release_gives_the_file_once() {
    let e = env();
    let a = claim_one(&e.folder, &e.drop, "b.csv", b"bbb", ago(300));
    assert_eq!(e.folder.hold(&a, stamp_time()).expect("hold"), "b.csv");
    let b = claim_one(&e.folder, &e.drop, "a.csv", b"a", ago(200));
    assert_eq!(e.folder.hold(&b, stamp_time()).expect("hold"), "a.csv");
    let c = claim_one(&e.folder, &e.drop, "b.csv", b"newer", ago(100));
    assert_eq!(
        e.folder.hold(&c, stamp_time()).expect("hold"),
        "b.20261204T101500Z.csv"
    );
    assert!(e.folder.claimed().expect("claimed").is_empty());
    assert_eq!(ls(&e.work.join("claimed")), Vec::<String>::new());
    let held = e.drop.join("held");
    assert_eq!(
        fs::metadata(&held).expect("held").permissions().mode() & 0o7777,
        0o750
    );
    assert_eq!(
        fs::metadata(held.join("a.csv"))
            .expect("f")
            .permissions()
            .mode()
            & 0o777,
        0o640
    );
    // Hidden and non-regular entries are not held files.
    put(&held, ".tmp", b"", ago(1000));
    fs::create_dir(held.join("sub")).expect("mkdir");
    let listed: Vec<(String, u64)> = e
        .folder
        .held()
        .expect("held")
        .into_iter()
        .map(|h| (h.name, h.size))
        .collect();
    assert_eq!(
        listed,
        [
            ("b.csv".to_owned(), 3),
            ("a.csv".to_owned(), 1),
            ("b.20261204T101500Z.csv".to_owned(), 5)
        ]
    );
    // Two handles (two processes) release the same file: exactly one gets it.
    let other = DropFolder::open(&e.drop, &e.work).expect("open");
    let first = e.folder.release("a.csv").expect("release");
    let second = other.release("a.csv").expect("release");
    let released = first.expect("released once");
    assert_eq!(second, None);
    assert_eq!(released.original_name(), "a.csv");
    assert_eq!(released.size(), 1);
    assert_eq!(
        e.folder.claimed().expect("claimed"),
        std::slice::from_ref(&released)
    );
    let mut body = String::new();
    std::io::Read::read_to_string(&mut released.open(&e.folder).expect("open"), &mut body)
        .expect("read");
    assert_eq!(body, "a");
    assert_eq!(
        e.folder.archive(&released, stamp_time()).expect("archive"),
        "a.csv"
    );
    // Discarded: into `.bak`, once.
    assert_eq!(
        e.folder
            .discard_held("b.csv", stamp_time())
            .expect("discard")
            .as_deref(),
        Some("b.csv")
    );
    assert_eq!(
        other.discard_held("b.csv", stamp_time()).expect("discard"),
        None
    );
    assert_eq!(other.release("b.csv").expect("release"), None);
    assert_eq!(
        fs::read(e.drop.join(".bak").join("b.csv")).expect("read"),
        b"bbb"
    );
    assert_eq!(
        e.folder
            .held()
            .expect("held")
            .into_iter()
            .map(|h| h.name)
            .collect::<Vec<_>>(),
        ["b.20261204T101500Z.csv"]
    );
}

// ---- the preview folder --------------------------------------------------------------------

#[test]
fn the_preview_folder_is_a_drop_folder_whose_archive_is_its_own_bak() {
    let e = env();
    assert!(e.folder.existing_preview().expect("preview").is_none());
    assert!(!e.drop.join("preview").exists());
    let preview = e.folder.preview().expect("preview");
    assert_eq!(preview.drop_path(), e.drop.join("preview"));
    assert_eq!(preview.work_path(), e.work.join("preview"));
    assert_eq!(
        fs::metadata(e.drop.join("preview"))
            .expect("meta")
            .permissions()
            .mode()
            & 0o7777,
        0o2770
    );
    assert_eq!(
        fs::metadata(e.work.join("preview"))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    put(
        &e.drop.join("preview"),
        "try.csv",
        b"unique_id\n1\n",
        ago(60),
    );
    // Not an upload of the tenant's folder.
    assert_eq!(
        e.folder.scan(SystemTime::now(), SETTLE).expect("scan"),
        Scan::default()
    );
    let scan = preview.scan(SystemTime::now(), SETTLE).expect("scan");
    assert_eq!(scan.ready.len(), 1);
    let c = preview
        .claim(&scan.ready[0])
        .expect("claim")
        .expect("claimed");
    assert!(
        e.work
            .join("preview/claimed")
            .join(c.id())
            .join("try.csv")
            .is_file()
    );
    assert!(e.folder.claimed().expect("claimed").is_empty());
    assert_eq!(
        preview.claimed().expect("claimed"),
        std::slice::from_ref(&c)
    );
    assert_eq!(
        preview.archive(&c, stamp_time()).expect("archive"),
        "try.csv"
    );
    assert_eq!(
        fs::read(e.drop.join("preview/.bak/try.csv")).expect("read"),
        b"unique_id\n1\n"
    );
    assert!(!e.drop.join(".bak").exists());
    assert_eq!(ls(&e.drop.join("preview")), [".bak"]);
    // Opening it again is the same folder.
    let again = e
        .folder
        .existing_preview()
        .expect("preview")
        .expect("exists");
    assert_eq!(
        again.scan(SystemTime::now(), SETTLE).expect("scan"),
        Scan::default()
    );
}
