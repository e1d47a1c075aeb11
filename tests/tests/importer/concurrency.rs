//! Processes against each other and against time: two `once` together, `kill -9` mid-file and
//! resume, and the `run` service picking up an upload and stopping on SIGTERM.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use opscom_tests::{
    Lab, RecordOutcome, Sandbox, SandboxConfig, SmtpServer, describe, roster, wait_for,
};
use rustix::process::Signal;

#[test]
fn two_once_processes_together_push_every_user_exactly_once() {
    // A little latency, so that the two processes' passes overlap.
    let sandbox = Sandbox::with(SandboxConfig::default().latency(Duration::from_millis(3)));
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.tenant("north", &sandbox.url());
    lab.tenant("south", &sandbox.url());
    let mut expected = 0;
    for (tenant, prefix) in [("north", "N"), ("south", "S")] {
        for (i, age) in [300u64, 200, 100].into_iter().enumerate() {
            let name = format!("part{i}.csv");
            lab.upload_aged(
                tenant,
                &name,
                &roster(&format!("{prefix}{i}-"), 40),
                Duration::from_secs(age),
            );
            expected += 40;
        }
    }

    let first = lab.spawn_once();
    let second = lab.spawn_once();
    let a = first.wait(opscom_tests::ONCE_TIMEOUT);
    let b = second.wait(opscom_tests::ONCE_TIMEOUT);
    a.expect_code(0, "the first of two concurrent `once`");
    b.expect_code(0, "the second of two concurrent `once`");

    let counts = sandbox.push_counts();
    assert_eq!(counts.len(), expected, "every user pushed");
    let twice: BTreeMap<_, _> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "users pushed more than once: {twice:?}");
    for tenant in ["north", "south"] {
        assert_eq!(
            lab.bak(tenant).keys().collect::<Vec<_>>(),
            ["part0.csv", "part1.csv", "part2.csv"],
            "{tenant}: every file archived once, under its own name"
        );
        assert!(lab.drop_entries(tenant).is_empty());
    }
    let records = lab.records();
    assert_eq!(records.len(), 6, "one record per file: {records:#?}");
    assert!(records.iter().all(|r| r.outcome == RecordOutcome::Imported));
    assert!(smtp.messages().is_empty(), "{}", describe(&smtp.messages()));
}

#[test]
fn kill_9_mid_file_then_once_again_resumes_without_losing_or_doubling_users() {
    const ROWS: usize = 3000;
    const CONCURRENCY: usize = 4;
    let sandbox = Sandbox::with(SandboxConfig::default().latency(Duration::from_millis(10)));
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.tenant("acme", &sandbox.url()).concurrency = CONCURRENCY;
    let upload = roster("K", ROWS);
    lab.upload("acme", "big.csv", &upload);

    let running = lab.spawn_once();
    wait_for(
        Duration::from_secs(60),
        "the importer to push 500 rows",
        || (sandbox.pushes().len() >= 500).then_some(()),
    );
    running.signal(Signal::KILL);
    let killed = running.wait(Duration::from_secs(10));
    assert_eq!(
        killed.code, None,
        "the importer was killed mid-file:\n{}",
        killed.stderr
    );
    let pushed_before = sandbox.pushes().len();
    assert!(
        pushed_before < ROWS,
        "the kill came too late to test a resume ({pushed_before} pushes)"
    );
    assert!(
        lab.bak("acme").is_empty(),
        "a half-imported file is not archived"
    );
    assert!(
        lab.drop_entries("acme").is_empty(),
        "the claimed file stays out of the client's folder: {:?}",
        lab.drop_entries("acme")
    );

    lab.once().expect_code(0, "once after kill -9");

    assert_eq!(
        lab.bak("acme").get("big.csv"),
        Some(&upload),
        "archived after the resume"
    );
    let users = sandbox.users();
    assert_eq!(users.len(), ROWS, "every user exists");
    let counts = sandbox.push_counts();
    assert_eq!(counts.len(), ROWS);
    let twice: Vec<_> = counts
        .iter()
        .filter(|(_, n)| **n == 2)
        .map(|(id, _)| id)
        .collect();
    let more: Vec<_> = counts.iter().filter(|(_, n)| **n > 2).collect();
    assert!(more.is_empty(), "pushed more than twice: {more:?}");
    assert!(
        twice.len() <= CONCURRENCY,
        "at most `concurrency` ({CONCURRENCY}) rows may be pushed twice after a crash, \
         {} were: {twice:?}",
        twice.len()
    );
    eprintln!(
        "kill -9 after {pushed_before} of {ROWS} pushes; {} rows pushed twice on resume",
        twice.len()
    );
    let records = lab.records();
    let last = records.last().expect("a record");
    assert_eq!(last.outcome, RecordOutcome::Imported, "{records:#?}");
    assert_eq!(
        (last.rows_total, last.rows_ok, last.rows_failed),
        (ROWS as u64, ROWS as u64, 0)
    );
    assert!(smtp.messages().is_empty(), "{}", describe(&smtp.messages()));
}

#[test]
fn run_imports_a_new_upload_within_seconds_and_stops_on_sigterm() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.settle = "1s".into();
    // A long interval: a pickup within seconds can only come from the file-system events.
    lab.interval = "1h".into();
    lab.tenant("acme", &sandbox.url());
    lab.upload("acme", "waiting.csv", &roster("OLD", 3));
    let config = lab.write_config();

    let service = lab.spawn(&["run", "--config", &config.to_string_lossy()]);
    // The file waiting at start is taken by the first pass.
    wait_for(Duration::from_secs(30), "the waiting file in .bak", || {
        lab.bak("acme").contains_key("waiting.csv").then_some(())
    });

    // A client's upload while the service runs: written now, so it must settle first.
    let dropped_at = Instant::now();
    let path = lab.drop_dir("acme").join("fresh.csv");
    std::fs::write(&path, roster("NEW", 5)).expect("upload a file");
    wait_for(Duration::from_secs(30), "the fresh upload in .bak", || {
        lab.bak("acme").contains_key("fresh.csv").then_some(())
    });
    let latency = dropped_at.elapsed();
    assert!(
        latency >= Duration::from_secs(1),
        "the upload was taken before it settled ({latency:?})"
    );
    assert!(
        latency < Duration::from_secs(10),
        "a settled upload is imported within seconds under `run`, took {latency:?}\n{}",
        service.stderr_so_far()
    );
    assert_eq!(sandbox.users().len(), 8);
    eprintln!("upload to .bak under `run` with settle 1s: {latency:?}");

    service.signal(Signal::TERM);
    let stopped_at = Instant::now();
    let done = service.wait(Duration::from_secs(15));
    done.expect_code(0, "run after SIGTERM");
    eprintln!("stopped {:?} after SIGTERM", stopped_at.elapsed());
    assert!(
        stopped_at.elapsed() < Duration::from_secs(5),
        "the service stops promptly on SIGTERM ({:?})",
        stopped_at.elapsed()
    );
}

#[test]
fn run_takes_an_upload_that_was_still_settling_when_it_started() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.settle = "2s".into();
    // No interval pass and no file event will come: only the settling upload's own re-check.
    lab.interval = "1h".into();
    lab.tenant("acme", &sandbox.url());
    lab.upload_aged(
        "acme",
        "just-finished.csv",
        &roster("JF", 3),
        Duration::ZERO,
    );
    let config = lab.write_config();

    let started = Instant::now();
    let service = lab.spawn(&["run", "--config", &config.to_string_lossy()]);
    wait_for(
        Duration::from_secs(20),
        "the settling upload in .bak",
        || {
            lab.bak("acme")
                .contains_key("just-finished.csv")
                .then_some(())
        },
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "taken once settled, not at the next interval ({:?})\n{}",
        started.elapsed(),
        service.stderr_so_far()
    );
    assert_eq!(sandbox.users().len(), 3);
    service.signal(Signal::TERM);
    service
        .wait(Duration::from_secs(15))
        .expect_code(0, "run after SIGTERM");
}
