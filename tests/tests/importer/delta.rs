//! Delta imports and the change safeguard (issue 13): only changed rows are pushed, a crash
//! loses no confirmation and invents none, a damaged state falls back to a full push, and a file
//! that would change too many users is held until the client (or the operator) releases or
//! discards it over SFTP.

use std::collections::BTreeSet;
use std::time::Duration;

use opscom_tests::{
    Lab, RecordOutcome, Sandbox, SandboxConfig, SmtpServer, describe, messages_to, roster, wait_for,
};

/// `roster(prefix, n)` with the rows at `changed` (0-based) given another phone number.
fn roster_changed(prefix: &str, n: usize, changed: &[usize]) -> Vec<u8> {
    let text = String::from_utf8(roster(prefix, n)).expect("utf-8");
    let mut out = String::new();
    for (i, line) in text.split_inclusive("\r\n").enumerate() {
        if i > 0 && changed.contains(&(i - 1)) {
            out.push_str(&line.replacen(",617-555-", ",212-555-", 1));
        } else {
            out.push_str(line);
        }
    }
    out.into_bytes()
}

/// A fresh sandbox API and SMTP server, and a lab with one tenant, `acme`, whose table gets
/// `extra` (its `mode`, `hold_changed_percent`…).
fn lab_with(extra: &str) -> (Sandbox, SmtpServer, Lab) {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.tenant("acme", &sandbox.url()).extra = extra.into();
    (sandbox, smtp, lab)
}

fn pushed_ids(sandbox: &Sandbox) -> Vec<String> {
    sandbox
        .pushes()
        .iter()
        .filter_map(|r| r.unique_id.clone())
        .collect()
}

fn set(ids: &[String]) -> BTreeSet<&str> {
    ids.iter().map(String::as_str).collect()
}

#[test]
fn delta_mode_pushes_only_new_and_changed_rows() {
    let (sandbox, smtp, lab) = lab_with("mode = \"delta\"\nnotify_on_success = true");

    lab.upload("acme", "day1.csv", &roster("U", 50));
    lab.once().expect_code(0, "the first import");
    assert_eq!(
        pushed_ids(&sandbox).len(),
        50,
        "a first import is pushed in full"
    );

    // The same export the next day: nothing is sent.
    lab.upload("acme", "day2.csv", &roster("U", 50));
    lab.once().expect_code(0, "the same rows again");
    assert_eq!(
        pushed_ids(&sandbox).len(),
        50,
        "no request for unchanged rows"
    );
    let records = lab.records();
    let day2 = records
        .iter()
        .find(|r| r.file == "day2.csv")
        .expect("day2 recorded");
    assert_eq!(
        (
            day2.rows_total,
            day2.rows_ok,
            day2.rows_unchanged,
            day2.rows_failed
        ),
        (50, 0, 50, 0)
    );
    let mail = messages_to(&smtp, "it@acme.example.edu");
    let told = mail
        .iter()
        .find(|m| m.subject().is_some_and(|s| s.contains("day2.csv")))
        .unwrap_or_else(|| panic!("{}", describe(&mail)));
    let body = told.text_body();
    assert!(
        body.contains("50") && body.to_lowercase().contains("unchanged"),
        "{body}"
    );
    let summary = String::from_utf8_lossy(&lab.results("acme")["day2-summary.txt"]).to_lowercase();
    assert!(summary.contains("unchanged"), "{summary}");

    // Two rows changed and one new user: exactly those are sent.
    let mut day3 = roster_changed("U", 50, &[7, 31]);
    day3.extend_from_slice(b"NEW1,OPSCOM,New,User,new1@example.edu,,,\r\n");
    lab.upload("acme", "day3.csv", &day3);
    lab.once().expect_code(0, "two changes and a new user");
    let ids = pushed_ids(&sandbox);
    assert_eq!(ids.len(), 53, "{ids:?}");
    assert_eq!(set(&ids[50..]), BTreeSet::from(["NEW1", "U31", "U7"]));
    assert_eq!(
        sandbox
            .user("U7")
            .expect("U7")
            .attributes
            .get("phone_cell")
            .map(String::as_str),
        Some("212-555-0007")
    );

    // A `.full.csv` is always pushed in full.
    lab.upload("acme", "all.full.csv", &roster("U", 50));
    lab.once().expect_code(0, "a full file");
    assert_eq!(pushed_ids(&sandbox).len(), 103);
}

#[test]
fn full_every_pushes_in_full_again_and_full_mode_keeps_the_memory() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    // Full mode (the default) pushes everything but remembers it: switching to delta skips.
    lab.tenant("acme", &sandbox.url());
    lab.upload("acme", "a.csv", &roster("U", 10));
    lab.once().expect_code(0, "full");
    lab.upload("acme", "b.csv", &roster("U", 10));
    lab.once().expect_code(0, "full again");
    assert_eq!(pushed_ids(&sandbox).len(), 20, "full mode sends every row");

    lab.tenants[0].extra = "mode = \"delta\"\nfull_every = \"2s\"".into();
    lab.upload("acme", "c.csv", &roster("U", 10));
    lab.once().expect_code(0, "delta");
    assert_eq!(
        pushed_ids(&sandbox).len(),
        20,
        "delta skips what full mode pushed"
    );
    std::thread::sleep(Duration::from_millis(2100));
    lab.upload("acme", "d.csv", &roster("U", 10));
    lab.once().expect_code(0, "delta, full push due");
    assert_eq!(
        pushed_ids(&sandbox).len(),
        30,
        "a full push once full_every passed"
    );
}

#[test]
fn a_damaged_or_foreign_state_falls_back_to_a_full_push() {
    let (sandbox, _smtp, mut lab) = lab_with("mode = \"delta\"");
    lab.tenant("other", &sandbox.url()).extra = "mode = \"delta\"".into();
    lab.upload("acme", "a.csv", &roster("A", 10));
    lab.upload("other", "o.csv", &roster("A", 10));
    lab.once().expect_code(0, "first imports");
    assert_eq!(pushed_ids(&sandbox).len(), 20);

    let state = |t: &str| lab.state_dir.join("tenants").join(t).join("delta-state");
    // Another tenant's state copied in: never trusted.
    std::fs::copy(state("other"), state("acme")).expect("copy a foreign state");
    lab.upload("acme", "b.csv", &roster("A", 10));
    let run = lab.once();
    run.expect_code(0, "with a foreign state");
    assert_eq!(pushed_ids(&sandbox).len(), 30, "pushed in full");
    assert!(
        run.stderr.contains("delta state cannot be used"),
        "the reason is logged: {}",
        run.stderr
    );
    // The full push wrote a good state: the same file now sends nothing.
    lab.upload("acme", "c.csv", &roster("A", 10));
    lab.once().expect_code(0, "a good state again");
    assert_eq!(pushed_ids(&sandbox).len(), 30);

    // A bit flipped.
    let mut bytes = std::fs::read(state("acme")).expect("read the state");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(state("acme"), &bytes).expect("damage the state");
    lab.upload("acme", "d.csv", &roster("A", 10));
    let run = lab.once();
    run.expect_code(0, "with a damaged state");
    assert_eq!(
        pushed_ids(&sandbox).len(),
        40,
        "pushed in full, no row skipped wrongly"
    );
    assert!(
        run.stderr.contains("delta state cannot be used"),
        "{}",
        run.stderr
    );

    // Deleting it forces a full push too (docs/operating.md).
    std::fs::remove_file(state("acme")).expect("remove the state");
    lab.upload("acme", "e.csv", &roster("A", 10));
    lab.once().expect_code(0, "without a state");
    assert_eq!(pushed_ids(&sandbox).len(), 50);
}

#[test]
fn a_crash_mid_file_in_delta_mode_repushes_no_confirmed_row_and_skips_no_unconfirmed_one() {
    let sandbox = Sandbox::with(SandboxConfig::default().latency(Duration::from_millis(15)));
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.tenant("acme", &sandbox.url()).extra = "mode = \"delta\"".into();
    lab.tenants[0].concurrency = 2;
    // Known users, then an export where every one of them changed, and new ones.
    lab.upload("acme", "day1.csv", &roster("U", 300));
    lab.once().expect_code(0, "the first import");
    let before = pushed_ids(&sandbox).len();
    let all: Vec<usize> = (0..300).collect();
    lab.upload("acme", "day2.csv", &roster_changed("U", 300, &all));

    let running = lab.spawn_once();
    wait_for(Duration::from_secs(30), "some rows of day2 pushed", || {
        (pushed_ids(&sandbox).len() >= before + 60).then_some(())
    });
    running.signal(rustix::process::Signal::KILL);
    let killed = running.wait(Duration::from_secs(10));
    assert_eq!(killed.code, None, "killed");
    let at_kill = pushed_ids(&sandbox).len() - before;
    assert!(at_kill < 300, "killed mid-file: {at_kill} pushed");

    lab.once().expect_code(0, "resumed");
    let ids = pushed_ids(&sandbox);
    let day2 = &ids[before..];
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for id in day2 {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    assert_eq!(
        counts.len(),
        300,
        "every changed row reached the API: none skipped as unchanged"
    );
    let twice = counts.values().filter(|&&n| n > 1).count();
    assert!(
        twice <= 2,
        "at most the pushes in flight (concurrency 2) are redone, never a confirmed row: {twice}"
    );
    for i in [0, 150, 299] {
        assert_eq!(
            sandbox
                .user(&format!("U{i}"))
                .expect("user")
                .attributes
                .get("phone_cell")
                .map(|p| p.starts_with("212-")),
            Some(true)
        );
    }
    // Everything confirmed is remembered: the same file again sends nothing.
    lab.upload("acme", "day3.csv", &roster_changed("U", 300, &all));
    lab.once().expect_code(0, "unchanged");
    assert_eq!(pushed_ids(&sandbox).len(), ids.len());
}

#[test]
fn a_file_changing_too_many_users_is_held_until_the_client_approves_it() {
    let (sandbox, smtp, mut lab) = lab_with("hold_changed_percent = 20");
    lab.operator = Some(opscom_tests::OperatorSetup {
        email: "ops@opscom.example".into(),
        from: "importer@opscom.example".into(),
        alert_after: None,
    });
    lab.upload("acme", "day1.csv", &roster("U", 20));
    lab.once()
        .expect_code(0, "the first import: every user is new, nothing is held");
    assert_eq!(pushed_ids(&sandbox).len(), 20);

    // A shifted export: 6 of the 20 known users would change (30 %), and 5 new ones.
    let mut broken = roster_changed("U", 20, &[1, 3, 5, 7, 9, 11]);
    for i in 0..5 {
        broken.extend_from_slice(format!("N{i},OPSCOM,N,U,n{i}@example.edu,,,\r\n").as_bytes());
    }
    lab.upload_aged("acme", "roster.csv", &broken, Duration::from_secs(120));
    lab.upload_aged(
        "acme",
        "later.csv",
        &roster("L", 2),
        Duration::from_secs(60),
    );
    lab.once().expect_code(0, "held");

    assert_eq!(pushed_ids(&sandbox).len(), 20, "a held file sends nothing");
    let held = lab.drop_dir("acme").join("held");
    assert_eq!(
        lab.files_in(&held).keys().collect::<Vec<_>>(),
        ["roster.csv"],
        "the file moves to held/"
    );
    assert_eq!(
        lab.drop_entries("acme"),
        ["later.csv"],
        "a later upload waits behind the held file"
    );
    let mail = messages_to(&smtp, "it@acme.example.edu");
    let held_mail = mail
        .iter()
        .find(|m| m.subject().is_some_and(|s| s.contains("roster.csv")))
        .unwrap_or_else(|| panic!("{}", describe(&mail)));
    let body = held_mail.text_body();
    for expected in [
        "6",
        "20",
        "roster.csv.approve",
        "roster.csv.discard",
        "U1",
        "later.csv",
    ] {
        assert!(body.contains(expected), "{expected:?} in:\n{body}");
    }
    assert_eq!(
        messages_to(&smtp, "ops@opscom.example")
            .iter()
            .filter(|m| m.subject().is_some_and(|s| s.contains("roster.csv")))
            .count(),
        1,
        "the operator gets a copy"
    );
    let status = lab.run_to_end(&[
        "status",
        "--config",
        &lab.root().join("config.toml").to_string_lossy(),
        "--json",
    ]);
    status.expect_code(0, "status");
    assert!(status.stdout.contains("\"held\""), "{}", status.stdout);
    assert!(
        lab.records()
            .iter()
            .any(|r| r.outcome == RecordOutcome::Held)
    );

    // Another pass changes nothing while it is held.
    lab.once().expect_code(0, "still held");
    assert_eq!(pushed_ids(&sandbox).len(), 20);

    // The client approves: it is imported as it is, then the later file.
    lab.upload("acme", "roster.csv.approve", b"");
    lab.once().expect_code(0, "approved");
    let ids = pushed_ids(&sandbox);
    assert_eq!(ids.len(), 20 + 25 + 2, "{ids:?}");
    assert!(
        ids[20..45].iter().all(|id| !id.starts_with('L')),
        "the released file goes before the one that waited: {ids:?}"
    );
    assert!(lab.files_in(&held).is_empty());
    assert!(
        lab.drop_entries("acme").is_empty(),
        "{:?}",
        lab.drop_entries("acme")
    );
    assert!(lab.bak("acme").contains_key("roster.csv"));
}

#[test]
fn a_held_file_is_discarded_by_the_operator_and_an_approve_for_nothing_is_answered() {
    let (sandbox, smtp, lab) = lab_with("hold_changed_percent = 10");
    lab.upload("acme", "day1.csv", &roster("U", 10));
    lab.once().expect_code(0, "first");
    lab.upload("acme", "roster.csv", &roster_changed("U", 10, &[0, 1, 2]));
    lab.once().expect_code(0, "held");
    let config = lab.root().join("config.toml");
    let config = config.to_string_lossy();

    let not_held = lab.run_to_end(&["release", "--config", &config, "acme", "nope.csv"]);
    not_held.expect_code(1, "release of a file that is not held");
    assert!(
        not_held.stderr.contains("roster.csv"),
        "{}",
        not_held.stderr
    );

    lab.run_to_end(&["discard", "--config", &config, "acme", "roster.csv"])
        .expect_code(0, "discard");
    lab.once().expect_code(0, "discarded");
    assert_eq!(
        pushed_ids(&sandbox).len(),
        10,
        "a discarded file is never imported"
    );
    assert!(
        lab.bak("acme").contains_key("roster.csv"),
        "{:?}",
        lab.bak("acme").keys()
    );
    assert!(lab.files_in(&lab.drop_dir("acme").join("held")).is_empty());
    assert!(
        lab.records()
            .iter()
            .any(|r| r.outcome == RecordOutcome::Discarded)
    );

    // An approval for a file that is not held: answered, removed, nothing imported.
    lab.upload("acme", "ghost.csv.approve", b"");
    lab.once().expect_code(0, "an approval for nothing");
    assert!(
        lab.drop_entries("acme").is_empty(),
        "{:?}",
        lab.drop_entries("acme")
    );
    let mail = messages_to(&smtp, "it@acme.example.edu");
    assert!(
        mail.iter()
            .any(|m| m.text_body().contains("ghost.csv") && m.subject().is_some()),
        "{}",
        describe(&mail)
    );
    assert_eq!(pushed_ids(&sandbox).len(), 10);
}

#[test]
fn two_instances_never_import_a_released_file_twice() {
    let sandbox = Sandbox::with(SandboxConfig::default().latency(Duration::from_millis(5)));
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.tenant("acme", &sandbox.url()).extra = "hold_changed_percent = 10".into();
    lab.upload("acme", "day1.csv", &roster("U", 40));
    lab.once().expect_code(0, "first");
    let all: Vec<usize> = (0..40).collect();
    lab.upload("acme", "roster.csv", &roster_changed("U", 40, &all));
    lab.once().expect_code(0, "held");
    assert_eq!(pushed_ids(&sandbox).len(), 40);

    lab.upload("acme", "roster.csv.approve", b"");
    // One configuration file for both (writing it for each could race with the other's read).
    let config = lab.write_config();
    let config = config.to_string_lossy();
    let a = lab.spawn(&["once", "--config", &config]);
    let b = lab.spawn(&["once", "--config", &config]);
    let (a, b) = (
        a.wait(Duration::from_secs(60)),
        b.wait(Duration::from_secs(60)),
    );
    a.expect_code(0, "first instance");
    b.expect_code(0, "second instance");
    lab.once().expect_code(0, "whatever was left");
    let ids = pushed_ids(&sandbox);
    assert_eq!(ids.len(), 80, "each changed row pushed once: {}", ids.len());
    assert_eq!(
        lab.records()
            .iter()
            .filter(|r| r.file == "roster.csv" && r.outcome == RecordOutcome::Imported)
            .count(),
        1
    );
}

#[test]
fn a_preview_tells_new_changed_and_unchanged_users() {
    let (sandbox, smtp, lab) = lab_with("mode = \"delta\"");
    lab.upload("acme", "day1.csv", &roster("U", 10));
    lab.once().expect_code(0, "first");
    let mut next = roster_changed("U", 10, &[2, 4]);
    next.extend_from_slice(b"NEW,OPSCOM,N,U,n@example.edu,,,\r\n");
    let path = lab.drop_dir("acme").join("preview").join("next.csv");
    std::fs::write(&path, next).expect("upload a preview");
    lab.backdate(&path, Duration::from_secs(60));
    lab.once().expect_code(0, "preview");
    assert_eq!(pushed_ids(&sandbox).len(), 10, "nothing sent");
    let mail = messages_to(&smtp, "it@acme.example.edu");
    let preview = mail
        .iter()
        .find(|m| m.subject().is_some_and(|s| s.starts_with("Preview")))
        .unwrap_or_else(|| panic!("{}", describe(&mail)));
    // Spaces collapsed: the counts are aligned in columns.
    let body = preview
        .text_body()
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for expected in [
        "new users: 1",
        "changed: 2",
        "unchanged: 8",
        "would be imported: 3",
    ] {
        assert!(body.contains(expected), "{expected:?} in:\n{body}");
    }
}

#[test]
fn a_held_that_is_not_a_folder_keeps_the_file_waiting_and_is_told_once() {
    let (sandbox, smtp, lab) = lab_with("hold_changed_percent = 10");
    lab.upload("acme", "day1.csv", &roster("U", 10));
    lab.once().expect_code(0, "first");
    std::fs::write(lab.drop_dir("acme").join("held"), b"not a folder").expect("a file named held");
    lab.upload(
        "acme",
        "roster.csv",
        &roster_changed("U", 10, &[0, 1, 2, 3]),
    );

    lab.once().expect_code(3, "the file waits");
    lab.once().expect_code(3, "still waiting");
    assert_eq!(pushed_ids(&sandbox).len(), 10, "nothing of it is sent");
    assert_eq!(
        std::fs::read(lab.drop_dir("acme").join("held")).expect("read"),
        b"not a folder",
        "never overwritten"
    );
    let told = |smtp: &SmtpServer| {
        messages_to(smtp, "it@acme.example.edu")
            .iter()
            .filter(|m| m.text_body().contains("`held`"))
            .count()
    };
    assert_eq!(told(&smtp), 1, "told once");

    std::fs::remove_file(lab.drop_dir("acme").join("held")).expect("the client deletes it");
    lab.once().expect_code(0, "held now");
    assert_eq!(
        lab.files_in(&lab.drop_dir("acme").join("held"))
            .keys()
            .collect::<Vec<_>>(),
        ["roster.csv"]
    );
    assert_eq!(pushed_ids(&sandbox).len(), 10);
}

#[test]
fn run_acts_on_an_approval_within_seconds() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.interval = "1h".into();
    lab.tenant("acme", &sandbox.url()).extra = "hold_changed_percent = 10".into();
    lab.upload("acme", "day1.csv", &roster("U", 10));
    lab.once().expect_code(0, "first");
    lab.upload("acme", "roster.csv", &roster_changed("U", 10, &[0, 1, 2]));
    lab.once().expect_code(0, "held");
    let config = lab.write_config();
    let service = lab.spawn(&["run", "--config", &config.to_string_lossy()]);
    std::thread::sleep(Duration::from_millis(1000));
    // The client's SFTP session: an empty file, written and closed.
    std::fs::write(lab.drop_dir("acme").join("roster.csv.approve"), b"").expect("approve");
    wait_for(
        Duration::from_secs(30),
        "the released file imported",
        || lab.bak("acme").contains_key("roster.csv").then_some(()),
    );
    assert_eq!(pushed_ids(&sandbox).len(), 20);
    service.signal(rustix::process::Signal::TERM);
    service
        .wait(Duration::from_secs(20))
        .expect_code(0, "run after SIGTERM");
}
