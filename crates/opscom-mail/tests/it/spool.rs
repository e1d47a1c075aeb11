//! The spool's rules, with a recording mailer: order, idempotent enqueue, what a failure does.

use opscom_mail::{MailError, Spool};

use crate::common::{RecordingMailer, compose_roster};

#[tokio::test]
async fn enqueuing_the_same_report_again_keeps_one_entry_in_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path().join("outgoing")).unwrap();
    let a = compose_roster(dir.path(), "claim-a");
    let b = compose_roster(dir.path(), "claim-b");
    let id_a = spool.enqueue(&a).unwrap();
    spool.enqueue(&b).unwrap();
    // A crash before the report was marked sent: the pipeline writes it again.
    assert_eq!(spool.enqueue(&a).unwrap(), id_a);
    assert_eq!(spool.pending().unwrap().len(), 2);

    let mailer = RecordingMailer::default();
    let stats = spool.deliver_pending(&mailer).await.unwrap();
    assert_eq!((stats.sent, stats.still_pending), (2, 0));
    assert_eq!(
        mailer.attempts(),
        vec![a.message_id().to_owned(), b.message_id().to_owned()]
    );
}

#[tokio::test]
async fn a_held_report_is_on_disk_but_sent_only_once_released() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path().join("outgoing")).unwrap();
    let held = compose_roster(dir.path(), "claim-h");
    spool.enqueue_held(&held, "claim-h").unwrap();
    spool.enqueue_held(&held, "claim-h").unwrap();
    assert_eq!(
        spool.held().unwrap(),
        ["claim-h"],
        "written again, held once"
    );
    let mailer = RecordingMailer::default();
    let stats = spool.deliver_pending(&mailer).await.unwrap();
    assert_eq!((stats.sent, stats.still_pending), (0, 0), "held back");

    // A new spool over the same folder (a restart) still holds it; releasing queues it.
    let spool = Spool::open(dir.path().join("outgoing")).unwrap();
    spool.release("claim-h").unwrap();
    spool.release("claim-h").unwrap();
    assert!(spool.held().unwrap().is_empty());
    let stats = spool.deliver_pending(&mailer).await.unwrap();
    assert_eq!(stats.sent, 1);
    assert_eq!(mailer.attempts(), vec![held.message_id().to_owned()]);
    assert!(spool.enqueue_held(&held, "../escape").is_err());
}

#[tokio::test]
async fn a_transient_failure_ends_the_pass_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path().join("outgoing")).unwrap();
    for id in ["1", "2", "3"] {
        spool.enqueue(&compose_roster(dir.path(), id)).unwrap();
    }
    let mailer = RecordingMailer::answering(vec![Err(MailError::Transient {
        reason: "connection refused".into(),
    })]);
    let stats = spool.deliver_pending(&mailer).await.unwrap();
    assert_eq!((stats.sent, stats.still_pending), (0, 3));
    assert_eq!(mailer.attempts().len(), 1, "no point trying the others now");
    assert!(spool.has_pending().unwrap());
}

#[tokio::test]
async fn a_permanent_refusal_keeps_that_report_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path().join("outgoing")).unwrap();
    let first = compose_roster(dir.path(), "1");
    let second = compose_roster(dir.path(), "2");
    spool.enqueue(&first).unwrap();
    spool.enqueue(&second).unwrap();
    let mailer = RecordingMailer::answering(vec![Err(MailError::Permanent {
        reason: "550 mailbox unavailable".into(),
    })]);
    let stats = spool.deliver_pending(&mailer).await.unwrap();
    assert_eq!((stats.sent, stats.still_pending, stats.refused), (1, 1, 1));
    let left: Vec<String> = spool
        .pending()
        .unwrap()
        .into_iter()
        .map(|p| p.meta.message_id)
        .collect();
    assert_eq!(left, vec![first.message_id().to_owned()]);
}

#[tokio::test]
async fn an_entry_locked_by_another_process_is_left_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path().join("outgoing")).unwrap();
    let id = spool.enqueue(&compose_roster(dir.path(), "1")).unwrap();
    let held = std::fs::File::open(spool.dir().join(id.as_str())).unwrap();
    held.lock().unwrap();
    let mailer = RecordingMailer::default();
    let stats = spool.deliver_pending(&mailer).await.unwrap();
    assert_eq!((stats.sent, stats.still_pending), (0, 1));
    assert!(mailer.attempts().is_empty());
    drop(held);
    assert_eq!(spool.deliver_pending(&mailer).await.unwrap().sent, 1);
}

#[tokio::test]
async fn unreadable_entries_and_temp_files_never_block_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path().join("outgoing")).unwrap();
    std::fs::write(spool.dir().join("0000000001-00ff.report"), b"garbage").unwrap();
    // What a crash in the middle of a write leaves: a temp file, never a half entry.
    std::fs::write(spool.dir().join(".tmp-1-0"), b"opscom-import report v1\n{").unwrap();
    let good = compose_roster(dir.path(), "1");
    spool.enqueue(&good).unwrap();

    let mailer = RecordingMailer::default();
    let stats = spool.deliver_pending(&mailer).await.unwrap();
    assert_eq!((stats.sent, stats.still_pending), (1, 0));
    assert_eq!(mailer.attempts(), vec![good.message_id().to_owned()]);
    assert!(!spool.has_pending().unwrap());
    assert!(spool.dir().join("corrupt/0000000001-00ff.report").exists());
}

/// Every file below `dir`, as paths relative to it.
fn files_below(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(
                files_below(&path)
                    .into_iter()
                    .map(|f| format!("{}/{f}", path.file_name().unwrap().to_string_lossy())),
            );
        } else {
            out.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    out
}

#[tokio::test]
async fn once_the_server_accepted_a_report_no_copy_of_it_remains_in_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path().join("outgoing")).unwrap();
    let held = compose_roster(dir.path(), "claim-h");
    spool.enqueue_held(&held, "claim-h").unwrap();
    spool.release("claim-h").unwrap();
    spool
        .enqueue(&compose_roster(dir.path(), "claim-q"))
        .unwrap();
    assert_eq!(files_below(spool.dir()).len(), 2);

    let mailer = RecordingMailer::default();
    let stats = spool.deliver_pending(&mailer).await.unwrap();
    assert_eq!(stats.sent, 2);
    assert_eq!(
        files_below(spool.dir()),
        Vec::<String>::new(),
        "no sent/ folder, no message file, no temp file"
    );
}

#[tokio::test]
async fn a_temp_file_left_by_a_crash_is_removed_once_stale() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path().join("outgoing")).unwrap();
    let stale = spool.dir().join(".tmp-1-0");
    let fresh = spool.dir().join(".tmp-1-1");
    for path in [&stale, &fresh] {
        std::fs::write(path, b"opscom-import report v1\n{").unwrap();
    }
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200))
        .unwrap();
    assert!(!spool.has_pending().unwrap());
    assert!(!stale.exists(), "a crash's leftover holds a whole report");
    assert!(fresh.exists(), "another process may be writing it now");
}

#[tokio::test]
async fn the_spool_is_private_whatever_the_umask_and_a_loose_folder_is_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("outgoing");
    std::fs::create_dir(&folder).unwrap();
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();
    let spool = Spool::open(&folder).unwrap();
    assert_eq!(mode(&folder), 0o700);

    let held = compose_roster(dir.path(), "claim-h");
    spool.enqueue_held(&held, "claim-h").unwrap();
    spool
        .enqueue(&compose_roster(dir.path(), "claim-q"))
        .unwrap();
    assert_eq!(mode(&folder.join("held")), 0o700);
    for name in files_below(&folder) {
        assert_eq!(mode(&folder.join(&name)), 0o600, "{name}");
    }
}
