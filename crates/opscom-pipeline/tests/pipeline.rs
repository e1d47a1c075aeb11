//! The pipeline with the testkit's recording doubles for the API and the mailer: a whole tenant pass, resume
//! after a crash (the pass future dropped mid-file), outages, token refusal, mail down, shutdown
//! and tenant isolation. The binary against real servers is tested in the workspace's `tests/`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opscom_api::PushApi;
use opscom_mail::{Mailer, ReportKind};
use opscom_pipeline::config::{ApiSettings, Config, MailSettings, Schedule, Tenant};
use opscom_pipeline::{Outcome, Service};
use opscom_scheduler::{Clock, ManualClock, SystemClock};
use opscom_testkit::{ApiMode as Mode, ReceivedMessage, RecordingApi, RecordingMailer};
use tokio::sync::watch;

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        Fixture { _dir: dir, root }
    }

    fn drop_dir(&self, tenant: &str) -> PathBuf {
        let d = self.root.join("sftp").join(tenant);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A tenant without API settings: the tests bring its `PushApi`.
    fn tenant(&self, name: &str, concurrency: usize) -> Tenant {
        Tenant::new(
            name,
            self.drop_dir(name),
            self.root.join("state/tenants").join(name),
            format!("admin@{name}.example"),
            format!("it@{name}.example"),
        )
        .with_concurrency(concurrency)
        .with_max_file_size(1 << 20)
    }

    fn service(
        &self,
        tenants: Vec<Tenant>,
        apis: Vec<Arc<RecordingApi>>,
        mailer: &Arc<RecordingMailer>,
    ) -> Service {
        let config = Config::new(
            self.root.join("state"),
            MailSettings::Outbox {
                dir: self.root.join("outbox"),
            },
            tenants,
        )
        .with_schedule(Schedule {
            interval: Duration::from_secs(300),
            settle: Duration::from_secs(1),
        });
        let apis = config
            .tenants
            .iter()
            .map(|t| t.name.clone())
            .zip(apis.into_iter().map(|a| a as Arc<dyn PushApi>))
            .collect();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Service::with_parts(config, apis, Arc::clone(mailer) as Arc<dyn Mailer>, clock).unwrap()
    }

    /// One tenant's service on `clock`, taking files unchanged for `settle`.
    fn service_on(
        &self,
        tenant: Tenant,
        api: &Arc<RecordingApi>,
        mailer: &Arc<RecordingMailer>,
        clock: Arc<dyn Clock>,
        settle: Duration,
    ) -> Service {
        let name = tenant.name.clone();
        let config = Config::new(
            self.root.join("state"),
            MailSettings::Outbox {
                dir: self.root.join("outbox"),
            },
            vec![tenant],
        )
        .with_schedule(Schedule {
            interval: Duration::from_secs(300),
            settle,
        });
        let api = Arc::clone(api) as Arc<dyn PushApi>;
        let mailer = Arc::clone(mailer) as Arc<dyn Mailer>;
        Service::with_parts(config, vec![(name, api)], mailer, clock).unwrap()
    }
}

/// Writes an upload whose last change was a minute ago (past `settle`).
fn upload(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(60))
        .unwrap();
}

/// Writes an upload whose last change was at `modified`.
fn upload_at(dir: &Path, name: &str, text: &str, modified: SystemTime) {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(modified)
        .unwrap();
}

fn roster(rows: usize, bad_from: usize) -> String {
    let mut s = String::from("unique_id,login_source,first_name,email\n");
    for i in 0..rows {
        let email = if i >= bad_from {
            format!("bad@{i}.example")
        } else {
            format!("u{i}@example.edu")
        };
        s.push_str(&format!("U{i:05},OPSCOM,Name{i},{email}\n"));
    }
    s
}

fn no_shutdown() -> watch::Receiver<bool> {
    watch::channel(false).1
}

fn bak(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir.join(".bak"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn a_pass_imports_reports_records_and_archives() {
    let fx = Fixture::new();
    let t = fx.tenant("acme", 4);
    let drop_dir = t.drop_dir.clone();
    upload(&drop_dir, "roster.csv", &roster(10, 8));
    upload(
        &drop_dir,
        "bad-header.csv",
        "unique_id,Email\nU1,a@b.example\n",
    );
    let api = RecordingApi::new(Mode::Accept);
    let mailer = RecordingMailer::new();
    let service = fx.service(vec![t], vec![Arc::clone(&api)], &mailer);

    let report = service.once(no_shutdown()).await;
    assert!(!report.waits(), "{report:?}");
    let files = &report.tenants[0].files;
    assert_eq!(files.len(), 2, "{files:?}");
    let roster = files.iter().find(|r| r.file == "roster.csv").unwrap();
    assert_eq!(
        (roster.rows_total, roster.rows_ok, roster.rows_failed),
        (10, 8, 2)
    );
    assert_eq!(roster.outcome, Outcome::ImportedWithFailures);
    let rejected = files.iter().find(|r| r.file == "bad-header.csv").unwrap();
    assert_eq!(rejected.outcome, Outcome::Rejected);
    assert!(
        rejected.reason.as_deref().unwrap().contains("did you mean"),
        "{rejected:?}"
    );

    assert_eq!(api.ids().len(), 10, "the rejected file pushed nothing");
    assert_eq!(bak(&drop_dir), ["bad-header.csv", "roster.csv"]);
    let mut kinds = mailer.kinds();
    kinds.sort_by_key(|k| k.as_str());
    assert_eq!(kinds, [ReportKind::Failures, ReportKind::Rejected]);
    let records = opscom_pipeline::Records::new(&fx.root.join("state"))
        .read_all()
        .unwrap();
    assert_eq!(records.len(), 2);
}

#[tokio::test]
async fn a_crash_mid_file_resumes_without_losing_or_repeating_more_than_concurrency() {
    let fx = Fixture::new();
    let concurrency = 4;
    let t = fx.tenant("acme", concurrency);
    let drop_dir = t.drop_dir.clone();
    upload(&drop_dir, "big.csv", &roster(200, 200));
    let api = RecordingApi::new(Mode::HangAfter(57));
    let mailer = RecordingMailer::new();
    let service = fx.service(vec![t.clone()], vec![Arc::clone(&api)], &mailer);

    // The "process" dies while pushes hang: its runtime, with every task, is dropped mid-file.
    let died = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let died = rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(500), service.once(no_shutdown()))
                .await
                .is_err()
        });
        rt.shutdown_background();
        died
    })
    .join()
    .unwrap();
    assert!(died, "the pass was still running when it was killed");
    assert!(
        bak(&drop_dir).is_empty(),
        "nothing archived before the crash"
    );

    // As the kernel does for a dead process, its tenant lock goes with its last task; the
    // background shutdown drops the tasks on their own threads, a moment later.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while opscom_scheduler::TenantLock::try_acquire(&t.work_dir)
        .unwrap()
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the dead pass's lock was never released"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let api2 = RecordingApi::new(Mode::Accept);
    let service = fx.service(vec![t], vec![Arc::clone(&api2)], &mailer);
    let report = service.once(no_shutdown()).await;
    assert!(!report.waits(), "{report:?}");
    assert_eq!(bak(&drop_dir), ["big.csv"]);

    let first: Vec<String> = api.ids();
    let second = api2.ids();
    let mut all: HashMap<String, usize> = HashMap::new();
    for id in first.iter().chain(&second) {
        *all.entry(id.clone()).or_default() += 1;
    }
    assert_eq!(all.len(), 200, "every user pushed");
    let twice = all.values().filter(|&&n| n > 1).count();
    assert!(
        twice <= concurrency,
        "{twice} users pushed twice (> {concurrency})"
    );
    assert!(all.values().all(|&n| n <= 2));
    let record = &report.tenants[0].files[0];
    assert_eq!(
        (record.rows_ok, record.rows_total),
        (200, 200),
        "{record:?}"
    );
}

#[tokio::test]
async fn an_outage_defers_the_file_reports_once_and_recovers() {
    let fx = Fixture::new();
    let t = fx.tenant("acme", 2);
    let drop_dir = t.drop_dir.clone();
    upload(&drop_dir, "a.csv", &roster(5, 5));
    upload(&drop_dir, "b.csv", &roster(3, 3));
    let api = RecordingApi::new(Mode::Unreachable);
    let mailer = RecordingMailer::new();
    let service = fx.service(vec![t], vec![Arc::clone(&api)], &mailer);

    for _ in 0..2 {
        let report = service.once(no_shutdown()).await;
        assert!(report.waits());
        assert!(report.tenants[0].deferred);
        assert!(
            bak(&drop_dir).is_empty(),
            "never archived with every user failed"
        );
        assert!(
            !drop_dir.join("a.csv").exists(),
            "kept claimed, out of the client's reach"
        );
        assert!(
            drop_dir.join("b.csv").exists(),
            "a deferred file holds back later ones"
        );
    }
    assert_eq!(
        mailer.kinds(),
        [ReportKind::ImportDelayed],
        "one e-mail per outage"
    );
    let records = opscom_pipeline::Records::new(&fx.root.join("state"))
        .read_all()
        .unwrap();
    assert_eq!(
        records.len(),
        1,
        "one record per deferral, not per pass: {records:?}"
    );

    api.set_mode(Mode::Accept);
    let report = service.once(no_shutdown()).await;
    assert!(!report.waits(), "{report:?}");
    assert_eq!(bak(&drop_dir), ["a.csv", "b.csv"]);
    assert_eq!(api.ids().len(), 8);
}

#[tokio::test]
async fn a_refused_token_stops_only_its_tenant_and_is_reported_once() {
    let fx = Fixture::new();
    let (a, b) = (fx.tenant("acme", 2), fx.tenant("globex", 2));
    upload(&a.drop_dir, "r.csv", &roster(4, 4));
    upload(&b.drop_dir, "r.csv", &roster(4, 4));
    let (api_a, api_b) = (
        RecordingApi::new(Mode::TokenRefused),
        RecordingApi::new(Mode::Accept),
    );
    let mailer = RecordingMailer::new();
    let service = fx.service(
        vec![a.clone(), b.clone()],
        vec![Arc::clone(&api_a), Arc::clone(&api_b)],
        &mailer,
    );
    for _ in 0..2 {
        let report = service.once(no_shutdown()).await;
        assert!(report.tenants[0].waits() && !report.tenants[1].waits());
    }
    assert!(bak(&a.drop_dir).is_empty());
    assert_eq!(bak(&b.drop_dir), ["r.csv"]);
    assert_eq!(api_b.ids().len(), 4);
    let sent = mailer.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0].meta().kind, sent[0].meta().tenant.as_str()),
        (ReportKind::TokenRejected, "acme")
    );
}

#[tokio::test]
async fn mail_down_keeps_the_report_until_a_later_pass_sends_it_once() {
    let fx = Fixture::new();
    let t = fx.tenant("acme", 2);
    upload(&t.drop_dir, "r.csv", &roster(4, 2));
    let api = RecordingApi::new(Mode::Accept);
    let mailer = RecordingMailer::new();
    mailer.set_down(true);
    let service = fx.service(vec![t.clone()], vec![api], &mailer);

    let report = service.once(no_shutdown()).await;
    assert!(report.waits() && report.tenants[0].reports_pending);
    assert_eq!(
        bak(&t.drop_dir),
        ["r.csv"],
        "the file is archived; its report waits"
    );

    mailer.set_down(false);
    assert!(!service.once(no_shutdown()).await.waits());
    assert!(!service.once(no_shutdown()).await.waits());
    assert_eq!(mailer.kinds(), [ReportKind::Failures]);
}

#[tokio::test]
async fn shutdown_mid_file_checkpoints_and_the_next_pass_finishes_it() {
    let fx = Fixture::new();
    let t = fx.tenant("acme", 2);
    upload(&t.drop_dir, "r.csv", &roster(50, 50));
    let api = RecordingApi::new(Mode::HangAfter(10));
    let mailer = RecordingMailer::new();
    let service = fx.service(vec![t.clone()], vec![Arc::clone(&api)], &mailer);
    let (stop, shutdown) = watch::channel(false);
    let pass = tokio::spawn({
        let service = Arc::new(service);
        async move { service.once(shutdown).await }
    });
    while api.started() < 10 {
        tokio::task::yield_now().await;
    }
    // Two pushes hang and never answer: the stop gives them a short grace, then leaves them
    // to be redone on resume.
    stop.send(true).unwrap();
    let report = tokio::time::timeout(Duration::from_secs(5), pass)
        .await
        .expect("stops promptly")
        .unwrap();
    assert!(report.waits(), "{report:?}");
    assert_eq!(
        report.tenants[0].files[0].reason.as_deref(),
        Some("the service is stopping")
    );
    assert!(bak(&t.drop_dir).is_empty());

    let api2 = RecordingApi::new(Mode::Accept);
    let service = fx.service(vec![t.clone()], vec![Arc::clone(&api2)], &mailer);
    let report = service.once(no_shutdown()).await;
    assert!(!report.waits(), "{report:?}");
    assert_eq!(bak(&t.drop_dir), ["r.csv"]);
    assert!(
        api2.ids().len() <= 42,
        "resumed, not restarted: {}",
        api2.ids().len()
    );
}

#[tokio::test]
async fn a_young_upload_cut_off_mid_row_waits_instead_of_importing_half_a_row() {
    let fx = Fixture::new();
    let t = fx.tenant("acme", 2);
    let path = t.drop_dir.join("r.csv");
    // The last row stops mid-way, with no line end: an upload still being written.
    std::fs::write(
        &path,
        "unique_id,login_source,first_name,email\nU1,OPSCOM,Ann,a@x.example\nU2,OPSC",
    )
    .unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(5))
        .unwrap();
    let api = RecordingApi::new(Mode::Accept);
    let mailer = RecordingMailer::new();
    let service = fx.service(vec![t.clone()], vec![Arc::clone(&api)], &mailer);

    let report = service.once(no_shutdown()).await;
    assert!(report.waits(), "{report:?}");
    assert_eq!(
        report.tenants[0].files[0].reason.as_deref(),
        Some("the last row is cut off without its line end (upload unfinished?)")
    );
    assert!(
        api.ids().is_empty(),
        "nothing pushed from a half-written file"
    );
    assert!(bak(&t.drop_dir).is_empty());
    assert!(
        mailer.kinds().is_empty(),
        "an unfinished upload is not the client's error"
    );
}

#[tokio::test]
async fn a_report_is_sent_only_once_its_file_is_committed_to_bak() {
    let fx = Fixture::new();
    let t = fx.tenant("acme", 2);
    upload(&t.drop_dir, "r.csv", &roster(4, 2));
    let api = RecordingApi::new(Mode::Accept);
    let mailer = RecordingMailer::new();
    let service = fx.service(vec![t.clone()], vec![api], &mailer);
    // The records file cannot be written (a disk or permission fault): the file cannot be
    // committed, so its report must wait with it.
    let records = fx
        .root
        .join("state")
        .join(opscom_pipeline::record::RECORDS_FILE);
    std::fs::create_dir_all(&records).unwrap();

    let report = service.once(no_shutdown()).await;
    assert!(report.waits() && report.tenants[0].deferred, "{report:?}");
    assert!(bak(&t.drop_dir).is_empty());
    assert!(
        mailer.kinds().is_empty(),
        "no e-mail for a file not in .bak"
    );

    std::fs::remove_dir(&records).unwrap();
    let report = service.once(no_shutdown()).await;
    assert!(!report.waits(), "{report:?}");
    assert_eq!(bak(&t.drop_dir), ["r.csv"]);
    assert_eq!(mailer.kinds(), [ReportKind::Failures]);
}

#[tokio::test]
async fn an_api_that_lets_a_few_rows_through_each_pass_is_still_one_outage() {
    let fx = Fixture::new();
    let t = fx.tenant("acme", 1);
    upload(&t.drop_dir, "r.csv", &roster(6, 6));
    let api = RecordingApi::new(Mode::UnreachableAfter(2));
    let mailer = RecordingMailer::new();
    let service = fx.service(vec![t.clone()], vec![Arc::clone(&api)], &mailer);
    for pass in 1..=2 {
        let report = service.once(no_shutdown()).await;
        assert!(report.tenants[0].deferred, "pass {pass}: {report:?}");
        let started = api.started();
        api.set_mode(Mode::UnreachableAfter(started + 2));
    }
    assert_eq!(
        mailer.kinds(),
        [ReportKind::ImportDelayed],
        "one e-mail per outage"
    );
    api.set_mode(Mode::Accept);
    assert!(!service.once(no_shutdown()).await.waits());
    assert_eq!(bak(&t.drop_dir), ["r.csv"]);
    let mut ids = api.ids();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6);
}

#[tokio::test]
async fn a_bak_that_is_not_a_folder_pauses_the_tenant_and_tells_the_client_once() {
    let fx = Fixture::new();
    let t = fx.tenant("acme", 2);
    upload(&t.drop_dir, "r.csv", &roster(3, 3));
    std::fs::write(t.drop_dir.join(".bak"), "uploaded by mistake").unwrap();
    let api = RecordingApi::new(Mode::Accept);
    let mailer = RecordingMailer::new();
    let service = fx.service(vec![t.clone()], vec![Arc::clone(&api)], &mailer);
    for _ in 0..2 {
        let report = service.once(no_shutdown()).await;
        assert!(
            report.waits() && report.tenants[0].fault.is_some(),
            "{report:?}"
        );
    }
    assert!(
        api.ids().is_empty(),
        "nothing imported that could not be archived"
    );
    assert!(t.drop_dir.join("r.csv").exists(), "the upload is not taken");
    let sent = mailer.sent();
    assert_eq!(sent.len(), 1, "told once: {sent:?}");
    assert_eq!(sent[0].meta().kind, ReportKind::FolderProblem);
    assert!(
        sent[0].subject().contains("upload folder needs attention"),
        "{}",
        sent[0].subject()
    );

    std::fs::remove_file(t.drop_dir.join(".bak")).unwrap();
    assert!(!service.once(no_shutdown()).await.waits());
    assert_eq!(bak(&t.drop_dir), ["r.csv"]);
}

/// 2030-01-02T03:04:00Z: far from the machine's clock, so only the manual clock can tell it.
fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_553_440)
}

#[tokio::test]
async fn the_service_takes_its_time_from_the_injected_clock() {
    let fx = Fixture::new();
    let t = fx.tenant("acme", 2);
    let drop_dir = t.drop_dir.clone();
    let secs = Duration::from_secs;
    // The upload's last change is at t0; the manual clock shows 5 s later.
    upload_at(&drop_dir, "roster.csv", &roster(4, 3), t0());
    let clock = Arc::new(ManualClock::new(t0() + secs(5)));
    let api = RecordingApi::new(Mode::Accept);
    let mailer = RecordingMailer::new();
    let service = fx.service_on(t, &api, &mailer, clock.clone(), secs(10));

    // Younger than `settle` by the manual clock: it waits, however old it is for the machine.
    let report = service.once(no_shutdown()).await;
    let pass = &report.tenants[0];
    assert!(pass.files.is_empty(), "{pass:?}");
    assert_eq!(pass.settling, 1, "{pass:?}");
    assert!(drop_dir.join("roster.csv").exists(), "not claimed");
    assert!(api.ids().is_empty());

    // Once the manual clock moves past `settle`, it is taken.
    clock.advance(secs(10));
    let report = service.once(no_shutdown()).await;
    assert!(!report.waits(), "{report:?}");
    let record = &report.tenants[0].files[0];
    assert_eq!(record.outcome, Outcome::ImportedWithFailures);
    assert_eq!(
        record.at, "2030-01-02T03:04:15Z",
        "the record's time is the clock's"
    );
    let on_disk = opscom_pipeline::Records::new(&fx.root.join("state"))
        .read_all()
        .unwrap();
    assert_eq!(on_disk[0].at, "2030-01-02T03:04:15Z");
    assert_eq!(bak(&drop_dir), ["roster.csv"]);
    assert_eq!(api.ids().len(), 4);
    // The failure e-mail is dated by the clock too.
    let sent = mailer.sent();
    assert_eq!(sent.len(), 1);
    let message = ReceivedMessage::parse(sent[0].raw().to_vec()).expect("a parseable message");
    let date = message.header("Date");
    assert_eq!(date.as_deref(), Some("Wed, 02 Jan 2030 03:04:15 +0000"));

    // The same name again: archived under the clock's stamp, `NAME.YYYYMMDDTHHMMSSZ.csv`.
    upload_at(&drop_dir, "roster.csv", &roster(2, 2), t0() + secs(20));
    clock.set(t0() + secs(40));
    assert!(!service.once(no_shutdown()).await.waits());
    assert_eq!(
        bak(&drop_dir),
        ["roster.20300102T030440Z.csv", "roster.csv"]
    );
}

#[test]
fn api_settings_are_needed_only_to_build_the_service_s_own_client() {
    let fx = Fixture::new();
    let config = |tenant: Tenant| {
        Config::new(
            fx.root.join("state"),
            MailSettings::Outbox {
                dir: fx.root.join("outbox"),
            },
            vec![tenant],
        )
    };
    // With its own PushApi (every other test here), a tenant needs none; the service's HTTP
    // client does.
    let problems = Service::from_config(config(fx.tenant("acme", 1))).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].key, "tenant[acme].api_url");
    assert!(
        problems[0].reason.contains("no API settings"),
        "{problems:?}"
    );
    let with_api = fx.tenant("acme", 1).with_api(ApiSettings::new(
        "http://127.0.0.1:9/",
        secrecy::SecretString::from("token"),
    ));
    assert_eq!(with_api.api.as_ref().unwrap().url, "http://127.0.0.1:9");
    Service::from_config(config(with_api)).expect("built with its API settings");
}
