//! Retention and privacy of personal data, through the real binary: nothing the importer writes
//! is readable by other users whatever the umask, a loose work folder is tightened, no copy of
//! a sent report stays in `state_dir`, `.bak` files past `bak_retention` are deleted, and
//! `records.jsonl` is rotated into stamped parts whose expired ones are deleted.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use opscom_tests::{Finished, Lab, ONCE_TIMEOUT, ROSTER_HEADER, Sandbox, csv};

/// A value of the failing row, found only where the row itself is kept.
const MARKER: &str = "not-an-email-zq7x";

/// Runs `once` under `umask 022` (what a shell or cron gives by default).
fn once_under_umask_022(lab: &Lab, config: &Path) -> Finished {
    lab.spawn_wrapped(
        &["sh", "-c", "umask 022; exec \"$@\"", "sh"],
        &["once", "--config", &config.to_string_lossy()],
    )
    .wait(ONCE_TIMEOUT)
}

/// Every entry below `dir` (not `dir` itself), depth first.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("list {}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let is_dir = fs::symlink_metadata(&path).unwrap().is_dir();
        out.push(path.clone());
        if is_dir {
            out.extend(walk(&path));
        }
    }
    out
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// A lab with tenant `acme` whose mail goes to `ROOT/outbox`, its configuration text with
/// `tenant_extra` added to the tenant and `top_extra` before `[mail]`.
fn outbox_config(lab: &Lab, tenant_extra: &str, top_extra: &str) -> (PathBuf, PathBuf) {
    let outbox = lab.root().join("outbox");
    let text = lab
        .config_text()
        .replace(
            &format!("[mail]\nsmtp_url = \"{}\"", lab.smtp_url),
            &format!("{top_extra}\n[mail]\noutbox_dir = \"{}\"", outbox.display()),
        )
        .replace(
            "concurrency = 4\n",
            &format!("concurrency = 4\n{tenant_extra}\n"),
        );
    assert!(text.contains("outbox_dir"), "{text}");
    (lab.write_config_text(&text), outbox)
}

#[test]
fn personal_data_is_never_readable_by_others_and_no_copy_of_a_sent_report_remains() {
    let sandbox = Sandbox::start();
    let mut lab = Lab::new("smtp://127.0.0.1:9");
    lab.tenant("acme", &sandbox.url());
    // Folders the operator made with a loose umask: the importer tightens them.
    let work_dir = lab.state_dir.join("tenants").join("acme");
    fs::create_dir_all(&work_dir).unwrap();
    for dir in [&lab.state_dir, &lab.state_dir.join("tenants"), &work_dir] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let outbox = lab.root().join("outbox");
    fs::create_dir(&outbox).unwrap();
    fs::set_permissions(&outbox, fs::Permissions::from_mode(0o777)).unwrap();

    let bad = format!("B1,OPSCOM,Bad,Mail,{MARKER},,,");
    lab.upload(
        "acme",
        "roster.csv",
        &csv(
            ROSTER_HEADER,
            &["G1,OPSCOM,Ann,Lee,ann.lee@example.edu,,MA,", &bad],
        ),
    );
    let (config, outbox_dir) = outbox_config(&lab, "", "");
    assert_eq!(outbox_dir, outbox);
    let run = once_under_umask_022(&lab, &config);
    run.expect_code(0, "once with a failing row, mail to the outbox");
    assert!(
        run.stderr.contains("tightened"),
        "tightening is logged:\n{}",
        run.stderr
    );

    // The report was "sent": it is in the outbox, and holds the failing row.
    let emls: Vec<PathBuf> = walk(&outbox)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    assert_eq!(emls.len(), 1, "{emls:?}");
    assert!(fs::read_to_string(&emls[0]).unwrap().contains(MARKER));

    // Nothing under state_dir or the outbox is readable (or enterable) by other users.
    let mut checked = 0;
    for root in [&lab.state_dir, &outbox] {
        assert_eq!(
            mode(root) & 0o007,
            0,
            "{}: {:o}",
            root.display(),
            mode(root)
        );
        for path in walk(root) {
            assert_eq!(
                mode(&path) & 0o007,
                0,
                "{} is mode {:o}",
                path.display(),
                mode(&path)
            );
            checked += 1;
        }
    }
    assert!(checked >= 5, "state_dir and outbox hold what a run writes");
    assert_eq!(mode(&work_dir), 0o700, "the 0755 work_dir is tightened");
    assert_eq!(mode(&outbox) & 0o077 & !0o050, 0, "{:o}", mode(&outbox));
    let records = lab.state_dir.join("records.jsonl");
    assert_eq!(mode(&records), 0o640);

    // Once the mail was accepted, no copy of the report (or of the row) is left in state_dir.
    for path in walk(&lab.state_dir) {
        if fs::symlink_metadata(&path).unwrap().is_file() {
            let bytes = fs::read(&path).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(MARKER),
                "{} still holds the failed row",
                path.display()
            );
        }
    }
    let spool = work_dir.join("outbox");
    let left: Vec<PathBuf> = walk(&spool).into_iter().filter(|p| !p.is_dir()).collect();
    assert!(left.is_empty(), "the spool still holds {left:?}");
    let reports: Vec<PathBuf> = fs::read_dir(work_dir.join("reports"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(reports.is_empty(), "{reports:?}");
}

#[test]
fn archived_files_past_bak_retention_are_deleted_and_logged() {
    let sandbox = Sandbox::start();
    let mut lab = Lab::new("smtp://127.0.0.1:9");
    lab.tenant("acme", &sandbox.url());
    let bak = lab.drop_dir("acme").join(".bak");
    fs::create_dir(&bak).unwrap();
    fs::write(bak.join("old.csv"), b"unique_id\nX1\n").unwrap();
    fs::create_dir(bak.join("keep-me")).unwrap();
    fs::write(bak.join("keep-me").join("inner.csv"), b"x").unwrap();
    // Archived more than `bak_retention` ago, by its ctime.
    std::thread::sleep(Duration::from_millis(2_100));
    lab.upload(
        "acme",
        "roster.csv",
        &csv(
            ROSTER_HEADER,
            &["G1,OPSCOM,Ann,Lee,ann.lee@example.edu,,MA,"],
        ),
    );
    let (config, _) = outbox_config(&lab, "bak_retention = \"2s\"", "");
    let run = once_under_umask_022(&lab, &config);
    run.expect_code(0, "once with bak_retention");
    let mut bak_names: Vec<String> = fs::read_dir(&bak)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    bak_names.sort();
    assert_eq!(
        bak_names,
        ["keep-me", "roster.csv"],
        "old.csv deleted; the fresh archive and the sub-folder kept"
    );
    assert!(bak.join("keep-me").join("inner.csv").exists());
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("archived file deleted"))
        .unwrap_or_else(|| panic!("no deletion logged:\n{}", run.stderr));
    assert!(line.contains("acme") && line.contains("old.csv"), "{line}");
    assert_eq!(
        run.stderr.matches("archived file deleted").count(),
        1,
        "{}",
        run.stderr
    );

    // The next `once` within the hour does not sweep again (it would have deleted this one).
    fs::write(bak.join("second.csv"), b"unique_id\nX2\n").unwrap();
    std::thread::sleep(Duration::from_millis(2_100));
    once_under_umask_022(&lab, &config).expect_code(0, "an idle once");
    assert!(bak.join("second.csv").exists(), "swept at most hourly");
}

#[test]
fn records_are_rotated_into_stamped_parts_and_expired_parts_deleted() {
    let sandbox = Sandbox::start();
    let mut lab = Lab::new("smtp://127.0.0.1:9");
    lab.tenant("acme", &sandbox.url());
    fs::create_dir_all(&lab.state_dir).unwrap();
    let records = lab.state_dir.join("records.jsonl");
    // Yesterday's records (and one kept past its retention) from earlier runs.
    let yesterday = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24);
    let old_line = format!(
        "{{\"at\":\"{}\",\"tenant\":\"acme\",\"file\":\"old.csv\",\"claim\":\"c0\",\"rows_total\":1,\"rows_ok\":1,\"rows_failed\":0,\"outcome\":\"imported\",\"duration_ms\":1}}\n",
        yesterday.strftime("%Y-%m-%dT%H:%M:%SZ")
    );
    fs::write(&records, &old_line).unwrap();
    let expired = lab.state_dir.join("records.jsonl.20000101T000000Z");
    fs::write(&expired, &old_line).unwrap();
    lab.upload(
        "acme",
        "roster.csv",
        &csv(
            ROSTER_HEADER,
            &["G1,OPSCOM,Ann,Lee,ann.lee@example.edu,,MA,"],
        ),
    );
    let (config, _) = outbox_config(&lab, "", "[records]\nretention = \"30d\"\n");
    once_under_umask_022(&lab, &config).expect_code(0, "once with [records]");

    assert!(!expired.exists(), "a part past the retention is deleted");
    let parts: Vec<String> = fs::read_dir(&lab.state_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("records.jsonl."))
        .collect();
    assert_eq!(parts.len(), 1, "{parts:?}");
    let stamp = parts[0].strip_prefix("records.jsonl.").unwrap();
    assert_eq!(stamp.len(), 16, "{stamp}");
    assert!(
        stamp.bytes().enumerate().all(|(i, b)| if i == 8 {
            b == b'T'
        } else if i == 15 {
            b == b'Z'
        } else {
            b.is_ascii_digit()
        }),
        "{stamp}"
    );
    assert_eq!(
        fs::read_to_string(lab.state_dir.join(&parts[0])).unwrap(),
        old_line,
        "yesterday's records in their part"
    );
    let current = lab.records();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0].file, "roster.csv");
}
