//! Tests of the metrics type: names and labels as encoded, lazy series, the unsent reports over
//! tenants, health, the `[metrics]` table, and the listener over real HTTP.

use std::io::{Read, Write};
use std::path::Path;

use super::*;
use crate::config::{Config, ProcessEnv};

/// The sample lines of `text` (no `#` lines).
fn samples(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

fn has(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

#[test]
fn files_and_rows_are_counted_by_tenant_and_outcome_as_records_spell_them() {
    let metrics = Metrics::new();
    let acme = metrics.tenant("acme");
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    acme.file_done(
        Outcome::ImportedWithFailures,
        RowCounts {
            ok: 2,
            failed: 1,
            unchanged: 0,
        },
        now,
    );
    acme.file_done(
        Outcome::Imported,
        RowCounts {
            ok: 3,
            failed: 0,
            unchanged: 0,
        },
        now,
    );
    acme.file_done(
        Outcome::Deferred,
        RowCounts {
            ok: 5,
            failed: 0,
            unchanged: 0,
        },
        now,
    );
    metrics.tenant("globex").file_done(
        Outcome::Rejected,
        RowCounts {
            ok: 0,
            failed: 0,
            unchanged: 0,
        },
        now,
    );
    let text = metrics.encode();
    for line in [
        r#"opscom_import_files_total{tenant="acme",outcome="imported_with_failures"} 1"#,
        r#"opscom_import_files_total{tenant="acme",outcome="imported"} 1"#,
        r#"opscom_import_files_total{tenant="acme",outcome="deferred"} 1"#,
        r#"opscom_import_files_total{tenant="globex",outcome="rejected"} 1"#,
        // A deferred file's rows are counted when it is archived, not on every deferral.
        r#"opscom_import_rows_total{tenant="acme",outcome="imported"} 5"#,
        r#"opscom_import_rows_total{tenant="acme",outcome="failed"} 1"#,
        r#"opscom_import_last_import_timestamp_seconds{tenant="acme"} 1700000000"#,
        r#"opscom_import_last_import_timestamp_seconds{tenant="globex"} 1700000000"#,
        "# TYPE opscom_import_files_total counter",
        "# TYPE opscom_import_api_request_duration_seconds histogram",
    ] {
        assert!(has(&text, line), "missing {line:?} in\n{text}");
    }
    assert!(!text.contains("_total_total"), "{text}");
    // A family without any series is left out of the text.
    assert!(!text.contains("opscom_import_files_waiting"), "{text}");
}

#[test]
fn an_idle_tenant_has_no_series_and_zero_waiting_files_create_none() {
    let metrics = Metrics::new();
    let idle = metrics.tenant("idle");
    idle.set_waiting(Waiting::Claimed, 0);
    idle.set_waiting(Waiting::Deferred, 0);
    idle.unsent_reports(0);
    let text = metrics.encode();
    assert!(!text.contains("idle"), "{text}");

    idle.set_waiting(Waiting::Claimed, 1);
    idle.set_waiting(Waiting::Deferred, 1);
    let text = metrics.encode();
    assert!(has(
        &text,
        r#"opscom_import_files_waiting{tenant="idle",reason="claimed"} 1"#
    ));
    assert!(has(
        &text,
        r#"opscom_import_files_waiting{tenant="idle",reason="deferred"} 1"#
    ));
    // Once shown, a series stays, at 0.
    idle.set_waiting(Waiting::Claimed, 0);
    metrics.set_waiting("idle", Waiting::Deferred, 0);
    let text = metrics.encode();
    assert!(has(
        &text,
        r#"opscom_import_files_waiting{tenant="idle",reason="claimed"} 0"#
    ));
    assert!(has(
        &text,
        r#"opscom_import_files_waiting{tenant="idle",reason="deferred"} 0"#
    ));

    metrics.forget_tenant("idle");
    assert!(!metrics.encode().contains("idle"));
}

#[test]
fn unsent_reports_add_up_over_tenants_and_leave_with_their_tenant() {
    let metrics = Metrics::new();
    let a = metrics.tenant("a");
    let b = metrics.tenant("b");
    a.unsent_reports(2);
    b.unsent_reports(3);
    assert!(has(&metrics.encode(), "opscom_import_unsent_reports 5"));
    a.unsent_reports(1);
    assert!(has(&metrics.encode(), "opscom_import_unsent_reports 4"));
    // A reload replaces b's runner: the new one counts from its own delivery, the old one's
    // share goes when it is dropped.
    let b2 = metrics.tenant("b");
    b2.unsent_reports(3);
    drop(b);
    assert!(has(&metrics.encode(), "opscom_import_unsent_reports 4"));
    drop(a);
    drop(b2);
    assert!(has(&metrics.encode(), "opscom_import_unsent_reports 0"));
}

#[test]
fn alerts_are_set_and_cleared() {
    let metrics = Metrics::new();
    metrics.set_alert("acme", "outage", false);
    assert!(
        !metrics.encode().contains("outage"),
        "never active: not shown"
    );
    metrics.set_alert("acme", "outage", true);
    assert!(has(
        &metrics.encode(),
        r#"opscom_import_alerts_active{tenant="acme",alert="outage"} 1"#
    ));
    metrics.set_alert("acme", "outage", false);
    assert!(has(
        &metrics.encode(),
        r#"opscom_import_alerts_active{tenant="acme",alert="outage"} 0"#
    ));
}

#[test]
fn api_requests_are_observed_into_the_histogram() {
    let metrics = Metrics::new();
    let observer = metrics.request_observer();
    observer.request_finished(Duration::from_millis(30));
    observer.request_finished(Duration::from_secs(2));
    let text = metrics.encode();
    for line in [
        r#"opscom_import_api_request_duration_seconds_bucket{le="0.025"} 0"#,
        r#"opscom_import_api_request_duration_seconds_bucket{le="0.05"} 1"#,
        r#"opscom_import_api_request_duration_seconds_bucket{le="2.5"} 2"#,
        r#"opscom_import_api_request_duration_seconds_bucket{le="+Inf"} 2"#,
        "opscom_import_api_request_duration_seconds_count 2",
    ] {
        assert!(has(&text, line), "missing {line:?} in\n{text}");
    }
}

#[test]
fn label_values_are_escaped_by_the_encoder() {
    let metrics = Metrics::new();
    metrics.set_alert("acme", "odd \"alert\"\n", true);
    let text = metrics.encode();
    assert!(
        samples(&text)
            .iter()
            .any(|l| l.contains(r#"alert="odd \"alert\"\n""#)),
        "{text}"
    );
}

#[test]
fn health_follows_the_loop_and_its_beats() {
    let metrics = Metrics::new();
    assert_eq!(
        metrics.health(),
        Err("the scheduler loop has not started".into())
    );
    metrics.loop_started(Duration::from_secs(300), 2);
    assert_eq!(metrics.health(), Ok(()));

    // A beat long ago: pretend the loop started an hour before its last beat was due.
    let h = &metrics.shared.health;
    metrics.schedule_changed(Duration::from_millis(1), 2);
    h.last_beat_ms.store(0, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(5));
    // 2 × 1 ms + 60 s of slack has not passed yet.
    assert_eq!(metrics.health(), Ok(()));
    let quiet = Health {
        started: Instant::now() - Duration::from_secs(3600),
        last_beat_ms: AtomicU64::new(0),
        state: AtomicU8::new(LOOP_RUNNING),
        interval_ms: AtomicU64::new(300_000),
        tenants: AtomicUsize::new(1),
    };
    let reason = quiet.check().unwrap_err();
    assert!(reason.starts_with("no pass has completed"), "{reason}");
    quiet.beat();
    assert_eq!(quiet.check(), Ok(()));
    // No tenant: nothing to pass over, healthy while the loop runs.
    quiet.last_beat_ms.store(0, Ordering::Relaxed);
    quiet.tenants.store(0, Ordering::Relaxed);
    assert_eq!(quiet.check(), Ok(()));

    metrics.pass_completed();
    metrics.loop_stopped();
    assert_eq!(
        metrics.health(),
        Err("the scheduler loop has stopped".into())
    );
}

#[test]
fn a_row_done_beats_the_health_clock_and_is_passed_on() {
    #[derive(Debug, Default)]
    struct Rows(AtomicU64);
    impl Progress for Rows {
        fn row_done(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    let metrics = Metrics::new();
    let tenant = metrics.tenant("acme");
    let rows = Rows::default();
    std::thread::sleep(Duration::from_millis(3));
    tenant.beating(&rows).row_done();
    assert_eq!(rows.0.load(Ordering::Relaxed), 1);
    assert!(metrics.shared.health.last_beat_ms.load(Ordering::Relaxed) >= 3);
}

fn config(metrics: &str) -> Result<Config, crate::config::ConfigError> {
    let dir = std::env::temp_dir();
    let text = format!(
        r#"
state_dir = "state"
{metrics}
[mail]
smtp_url = "smtp://127.0.0.1:2525"

[[tenant]]
name = "acme"
drop_dir = "{}"
api_url = "http://127.0.0.1:9/"
api_token = "tok"
reply_to_admin_email = "parking@acme.edu"
failed_import_email = "it@acme.edu"
"#,
        dir.display()
    );
    Config::parse(&text, Path::new("/etc/opscom/import.toml"), &ProcessEnv)
}

#[test]
fn the_metrics_table_is_optional_and_checked_key_by_key() {
    assert_eq!(config("").unwrap().metrics, None);
    let c = config("[metrics]\nlisten = \"127.0.0.1:9464\"\n").unwrap();
    assert_eq!(
        c.metrics.map(|m| m.listen),
        Some("127.0.0.1:9464".parse().unwrap())
    );
    let c = config("[metrics]\nlisten = \"[::1]:9464\"\n").unwrap();
    assert_eq!(
        c.metrics.map(|m| m.listen),
        Some("[::1]:9464".parse().unwrap())
    );

    let problems = |text: &str| {
        config(text)
            .unwrap_err()
            .problems
            .into_iter()
            .map(|p| (p.key, p.reason))
            .collect::<Vec<_>>()
    };
    let p = problems("[metrics]\nlisten = \"localhost:9464\"\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].0, "metrics.listen");
    assert!(p[0].1.contains("not a socket address"), "{p:?}");
    assert!(p[0].1.ends_with("(line 4)"), "{p:?}");

    let p = problems("[metrics]\nlisten = 9464\nlisen = \"x\"\n");
    assert_eq!(
        p.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["metrics.listen", "metrics.lisen"],
        "{p:?}"
    );
    assert!(p[0].1.contains("must be a string"), "{p:?}");
    assert!(p[1].1.contains("did you mean `listen`?"), "{p:?}");

    let p = problems("[metrics]\n");
    assert_eq!(p[0].0, "metrics.listen");
    assert!(p[0].1.starts_with("is missing"), "{p:?}");

    let p = problems("metrics = \"127.0.0.1:9464\"\n");
    assert_eq!(p[0].0, "metrics", "{p:?}");
}

/// `GET path` over a plain HTTP/1.0 connection: the status line and the body.
fn get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_serves_metrics_and_health_and_refuses_a_port_in_use() {
    let metrics = Metrics::new();
    metrics.tenant("acme").file_done(
        Outcome::Imported,
        RowCounts {
            ok: 1,
            failed: 0,
            unchanged: 0,
        },
        SystemTime::now(),
    );
    let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), metrics.clone())
        .await
        .unwrap();
    let addr = server.local_addr();
    let (status, body) = tokio::task::spawn_blocking(move || get(addr, "/metrics"))
        .await
        .unwrap();
    assert!(status.contains(" 200 "), "{status}");
    assert!(
        has(
            &body,
            r#"opscom_import_files_total{tenant="acme",outcome="imported"} 1"#
        ),
        "{body}"
    );
    let (status, body) = tokio::task::spawn_blocking(move || get(addr, "/healthz"))
        .await
        .unwrap();
    assert!(status.contains(" 503 "), "{status}");
    assert_eq!(body, "the scheduler loop has not started\n");
    metrics.loop_started(Duration::from_secs(60), 1);
    let (status, body) = tokio::task::spawn_blocking(move || get(addr, "/healthz"))
        .await
        .unwrap();
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(body, "ok\n");
    let (status, _) = tokio::task::spawn_blocking(move || get(addr, "/other"))
        .await
        .unwrap();
    assert!(status.contains(" 404 "), "{status}");

    let taken = MetricsServer::start(addr, metrics.clone())
        .await
        .unwrap_err();
    assert_eq!(taken.key, "metrics.listen");
    assert!(taken.reason.contains(&addr.to_string()), "{taken:?}");
}
