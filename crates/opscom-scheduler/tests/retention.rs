//! Retention of `.bak`: archived files older than the retention are deleted, counted from their
//! archive (`ctime`), never following a link or entering a sub-folder.

use std::fs::{self, File, FileTimes};
use std::os::unix::fs::symlink;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opscom_scheduler::{DropFolder, FolderError};

fn put_archived(folder: &DropFolder, drop: &std::path::Path, name: &str) -> String {
    let path = drop.join(name);
    fs::write(&path, b"unique_id\n1\n").unwrap();
    // The client's mtime: long ago, which must not count.
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_times(FileTimes::new().set_modified(UNIX_EPOCH + Duration::from_secs(1_000_000)))
        .unwrap();
    let scan = folder
        .scan(SystemTime::now() + Duration::from_secs(60), Duration::ZERO)
        .unwrap();
    let candidate = scan.ready.into_iter().find(|c| c.name == name).unwrap();
    let claimed = folder.claim(&candidate).unwrap().unwrap();
    folder.archive(&claimed, SystemTime::now()).unwrap()
}

#[test]
fn archived_files_are_deleted_once_due_counted_from_their_archive_not_their_mtime() {
    let root = tempfile::tempdir().unwrap();
    let drop = root.path().join("upload");
    fs::create_dir(&drop).unwrap();
    let folder = DropFolder::open(&drop, &root.path().join("work")).unwrap();
    let retention = Duration::from_secs(1);

    // No .bak yet: nothing to do.
    assert_eq!(
        folder.sweep_bak(SystemTime::now(), retention).unwrap(),
        Default::default()
    );

    let old = put_archived(&folder, &drop, "old.csv");
    let bak = drop.join(".bak");
    // What the sweep must leave alone, however old: a sub-folder and its files, a symlink (and
    // its target outside), a hidden file.
    fs::create_dir(bak.join("sub")).unwrap();
    fs::write(bak.join("sub").join("inner.csv"), b"x").unwrap();
    let outside = root.path().join("outside.csv");
    fs::write(&outside, b"x").unwrap();
    symlink(&outside, bak.join("link.csv")).unwrap();
    fs::write(bak.join(".hidden"), b"x").unwrap();

    std::thread::sleep(Duration::from_millis(1_200));
    let fresh = put_archived(&folder, &drop, "fresh.csv");

    let sweep = folder.sweep_bak(SystemTime::now(), retention).unwrap();
    assert_eq!(sweep.deleted, [old]);
    assert_eq!(sweep.kept, 1, "{sweep:?}");
    assert!(sweep.failed.is_empty(), "{sweep:?}");
    let mut left: Vec<String> = fs::read_dir(&bak)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, [".hidden", fresh.as_str(), "link.csv", "sub"]);
    assert!(bak.join("sub").join("inner.csv").exists());
    assert!(outside.exists(), "a link's target is never touched");

    // Not yet due at a time before the fresh file's archive plus the retention.
    let sweep = folder.sweep_bak(SystemTime::now(), retention * 60).unwrap();
    assert!(sweep.deleted.is_empty());
}

#[test]
fn a_bak_that_is_a_symlink_is_refused_not_followed() {
    let root = tempfile::tempdir().unwrap();
    let drop = root.path().join("upload");
    fs::create_dir(&drop).unwrap();
    let elsewhere = root.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::write(elsewhere.join("victim.csv"), b"x").unwrap();
    symlink(&elsewhere, drop.join(".bak")).unwrap();
    let folder = DropFolder::open(&drop, &root.path().join("work")).unwrap();
    let later = SystemTime::now() + Duration::from_secs(3600);
    match folder.sweep_bak(later, Duration::from_secs(1)) {
        Err(FolderError::BakNotDirectory { .. }) => {}
        other => panic!("expected BakNotDirectory, got {other:?}"),
    }
    assert!(elsewhere.join("victim.csv").exists());
}
