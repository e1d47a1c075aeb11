//! `[metrics] listen`: `run` serves `/metrics` and `/healthz` over real HTTP while it imports,
//! and a port already in use is a start-up error naming `metrics.listen`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant, SystemTime};

use opscom_tests::{Lab, ROSTER_HEADER, Sandbox, SmtpServer, csv, messages_to, wait_for};
use rustix::process::Signal;

/// A loopback address whose port was free a moment ago.
fn free_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("its address")
}

/// An answer: status code, headers (lower-case names) and body.
struct Answer {
    status: u16,
    headers: String,
    body: String,
}

/// `GET path` over a plain HTTP/1.0 connection; `None` while nothing listens.
fn get(addr: SocketAddr, path: &str) -> Option<Answer> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let (status_line, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    let status = status_line.split(' ').nth(1)?.parse().ok()?;
    Some(Answer {
        status,
        headers: headers.to_ascii_lowercase(),
        body: body.to_owned(),
    })
}

/// The value of the sample `series` (the metric name with its labels, exactly as encoded).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn run_serves_metrics_and_health_while_it_imports() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.interval = "1h".into();
    lab.tenant("acme", &sandbox.url());
    let addr = free_address();
    lab.extra_toml = format!("[metrics]\nlisten = \"{addr}\"");
    lab.upload(
        "acme",
        "roster.csv",
        &csv(
            ROSTER_HEADER,
            &[
                "M1,OPSCOM,Ada,One,m1@example.edu,617-555-0001,MA,1990-01-01",
                "M2,OPSCOM,Bo,Two,not-an-email,617-555-0002,MA,1990-01-02",
                "M3,OPSCOM,Cy,Three,m3@example.edu,617-555-0003,MA,1990-01-03",
            ],
        ),
    );
    let config = lab.write_config();
    let service = lab.spawn(&["run", "--config", &config.to_string_lossy()]);

    // The file is counted once it is archived and its report sent.
    let text = wait_for(Duration::from_secs(30), "the file in the metrics", || {
        let answer = get(addr, "/metrics")?;
        let sent = !messages_to(&smtp, "it@acme.example.edu").is_empty();
        let counted = sample(
            &answer.body,
            r#"opscom_import_files_total{tenant="acme",outcome="imported_with_failures"}"#,
        ) == Some(1.0);
        (sent && counted).then_some(answer)
    });
    assert_eq!(text.status, 200);
    assert!(
        text.headers
            .contains("content-type: text/plain; version=0.0.4"),
        "{}",
        text.headers
    );
    let body = text.body;
    let value =
        |series: &str| sample(&body, series).unwrap_or_else(|| panic!("no {series} in\n{body}"));
    assert_eq!(
        value(r#"opscom_import_rows_total{tenant="acme",outcome="imported"}"#),
        2.0
    );
    assert_eq!(
        value(r#"opscom_import_rows_total{tenant="acme",outcome="failed"}"#),
        1.0
    );
    // One HTTP request per valid row (the sandbox accepts each at once).
    assert_eq!(
        value("opscom_import_api_request_duration_seconds_count"),
        sandbox.pushes().len() as f64
    );
    assert_eq!(sandbox.pushes().len(), 2);
    assert!(body.contains("opscom_import_api_request_duration_seconds_bucket{le=\"+Inf\"} 2"));
    // The file was claimed while it was imported; nothing waits now.
    assert_eq!(
        value(r#"opscom_import_files_waiting{tenant="acme",reason="claimed"}"#),
        0.0
    );
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    let last = value(r#"opscom_import_last_import_timestamp_seconds{tenant="acme"}"#);
    assert!(
        (now - 120.0..=now + 1.0).contains(&last),
        "last import at {last}, now {now}"
    );
    // The failure report went out: nothing is left unsent (delivery may be a moment behind
    // the e-mail's arrival).
    wait_for(Duration::from_secs(10), "no unsent reports", || {
        let body = get(addr, "/metrics")?.body;
        (sample(&body, "opscom_import_unsent_reports") == Some(0.0)).then_some(())
    });
    for family in [
        "# TYPE opscom_import_files_total counter",
        "# TYPE opscom_import_rows_total counter",
        "# TYPE opscom_import_api_request_duration_seconds histogram",
        "# TYPE opscom_import_files_waiting gauge",
        "# TYPE opscom_import_unsent_reports gauge",
        "# TYPE opscom_import_last_import_timestamp_seconds gauge",
    ] {
        assert!(
            body.lines().any(|l| l == family),
            "no {family:?} in\n{body}"
        );
    }

    let health = get(addr, "/healthz").expect("/healthz answers");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));

    // Scrapes in a tight loop while a second file is imported: the import is not held up.
    let rows: Vec<String> = (0..200)
        .map(|i| format!("L{i},OPSCOM,F{i},L{i},l{i}@example.edu,617-555-0000,MA,1990-01-01"))
        .collect();
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    let started = Instant::now();
    lab.upload("acme", "loop.csv", &csv(ROSTER_HEADER, &rows));
    let mut scrapes = 0u32;
    let mut slowest = Duration::ZERO;
    while !lab.bak("acme").contains_key("loop.csv") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "loop.csv not imported under scraping\n{}",
            service.stderr_so_far()
        );
        let t = Instant::now();
        let answer = get(addr, "/metrics").expect("/metrics answers during an import");
        assert_eq!(answer.status, 200);
        slowest = slowest.max(t.elapsed());
        scrapes += 1;
    }
    eprintln!(
        "200 rows imported in {:?} under {scrapes} scrapes (slowest scrape {slowest:?})",
        started.elapsed()
    );

    service.signal(Signal::TERM);
    service
        .wait(Duration::from_secs(15))
        .expect_code(0, "run after SIGTERM");
}

#[test]
fn a_metrics_port_in_use_or_an_invalid_address_is_a_start_up_error_naming_the_key() {
    let sandbox = Sandbox::start();
    let mut lab = Lab::new("smtp://127.0.0.1:9");
    lab.tenant("acme", &sandbox.url());
    lab.upload(
        "acme",
        "roster.csv",
        &csv(
            ROSTER_HEADER,
            &["P1,OPSCOM,Ada,One,p1@example.edu,617-555-0001,MA,1990-01-01"],
        ),
    );
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = taken.local_addr().expect("its address");
    for listen in [addr.to_string(), "localhost:9464".to_owned()] {
        lab.extra_toml = format!("[metrics]\nlisten = \"{listen}\"");
        let config = lab.write_config();
        let done = lab.run_to_end(&["run", "--config", &config.to_string_lossy()]);
        done.expect_code(2, &format!("run with [metrics] listen = {listen}"));
        assert!(
            done.stderr.contains("metrics.listen"),
            "the error names the key:\n{}",
            done.stderr
        );
    }
    // Refused before any pass: the upload is still where the client left it.
    assert_eq!(lab.drop_entries("acme"), ["roster.csv"]);
    assert!(sandbox.pushes().is_empty());
    drop(taken);
}

#[test]
fn an_operator_alert_shows_in_the_metrics_while_it_is_active() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.interval = "1h".into();
    // No `[operator]`: no alert e-mail, but the alert is kept and shown.
    // Long enough that the alert, once cleared, does not start again before the test looks.
    lab.tenant("acme", &sandbox.url()).expect_file_every = Some("3s".into());
    let addr = free_address();
    lab.extra_toml = format!("[metrics]\nlisten = \"{addr}\"");
    let config = lab.write_config();
    let service = lab.spawn(&["run", "--config", &config.to_string_lossy()]);
    let series = r#"opscom_import_alerts_active{tenant="acme",alert="no_file"}"#;
    let value = |addr| get(addr, "/metrics").and_then(|a| sample(&a.body, series));

    wait_for(
        Duration::from_secs(30),
        "no_file active in the metrics",
        || (value(addr) == Some(1.0)).then_some(()),
    );
    lab.upload("acme", "roster.csv", &roster_of_one());
    wait_for(
        Duration::from_secs(30),
        "no_file cleared in the metrics",
        || (value(addr) == Some(0.0)).then_some(()),
    );
    service.signal(Signal::TERM);
    service
        .wait(Duration::from_secs(20))
        .expect_code(0, "run after SIGTERM");
}

fn roster_of_one() -> Vec<u8> {
    csv(
        ROSTER_HEADER,
        &["A1,OPSCOM,Ada,One,a1@example.edu,617-555-0001,MA,1990-01-01"],
    )
}

#[test]
fn held_files_and_unchanged_rows_show_in_the_metrics() {
    let sandbox = Sandbox::start();
    let smtp = SmtpServer::start();
    let mut lab = Lab::new(&smtp.url());
    lab.interval = "1s".into();
    lab.tenant("acme", &sandbox.url()).extra = "mode = \"delta\"\nhold_changed_percent = 50".into();
    let addr = free_address();
    lab.extra_toml = format!("[metrics]\nlisten = \"{addr}\"");
    let rows = |phone: &str| {
        csv(
            ROSTER_HEADER,
            &[
                &format!("H1,OPSCOM,Ada,One,h1@example.edu,{phone},MA,1990-01-01"),
                &format!("H2,OPSCOM,Bo,Two,h2@example.edu,{phone},MA,1990-01-02"),
            ],
        )
    };
    lab.upload("acme", "day1.csv", &rows("617-555-0001"));
    let config = lab.write_config();
    let service = lab.spawn(&["run", "--config", &config.to_string_lossy()]);
    let metric = |series: &str| get(addr, "/metrics").and_then(|a| sample(&a.body, series));
    wait_for(Duration::from_secs(30), "day1 imported", || {
        (lab.bak("acme").contains_key("day1.csv")).then_some(())
    });

    // The same rows: counted unchanged, nothing sent.
    lab.upload("acme", "day2.csv", &rows("617-555-0001"));
    wait_for(Duration::from_secs(30), "unchanged rows counted", || {
        (metric(r#"opscom_import_rows_total{tenant="acme",outcome="unchanged"}"#) == Some(2.0))
            .then_some(())
    });
    // Every known user changed: held, and shown as waiting.
    lab.upload("acme", "day3.csv", &rows("212-555-0009"));
    wait_for(
        Duration::from_secs(30),
        "a held file in the metrics",
        || {
            (metric(r#"opscom_import_files_waiting{tenant="acme",reason="held"}"#) == Some(1.0))
                .then_some(())
        },
    );
    assert_eq!(
        metric(r#"opscom_import_files_total{tenant="acme",outcome="held"}"#),
        Some(1.0)
    );
    // Discarded by the client: counted, and nothing waits any more.
    lab.upload("acme", "day3.csv.discard", b"");
    wait_for(
        Duration::from_secs(30),
        "the discard in the metrics",
        || {
            (metric(r#"opscom_import_files_total{tenant="acme",outcome="discarded"}"#) == Some(1.0)
                && metric(r#"opscom_import_files_waiting{tenant="acme",reason="held"}"#)
                    == Some(0.0))
            .then_some(())
        },
    );
    assert_eq!(sandbox.pushes().len(), 2);
    service.signal(Signal::TERM);
    service
        .wait(Duration::from_secs(20))
        .expect_code(0, "run after SIGTERM");
}
