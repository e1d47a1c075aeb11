//! `status` and `history` through the real binary: what they say after real passes (a failed row,
//! a deferred file, a settling upload, unsent reports, alerts), records merged by claim, and
//! answers given while `run` holds the tenants.

use std::io::Write as _;
use std::time::{Duration, Instant};

use opscom_tests::{
    Lab, ROSTER_HEADER, RecordOutcome, Sandbox, SandboxConfig, csv, dead_api_url, roster, wait_for,
};
use serde_json::Value;

fn json(lab: &Lab, args: &[&str]) -> Value {
    let run = lab.run_to_end(args);
    run.expect_code(0, &format!("{args:?}"));
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{args:?} prints JSON ({e}):\n{}", run.stdout))
}

fn is_utc_stamp(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.ends_with('Z') && s.parse::<jiff::Timestamp>().is_ok())
}

#[test]
fn status_and_history_tell_the_last_files_what_waits_and_why() {
    let sandbox = Sandbox::start();
    // Mail goes nowhere: every report stays unsent.
    let mut lab = Lab::new("smtp://127.0.0.1:9");
    lab.settle = "10m".into();
    lab.tenant("acme", &sandbox.url());
    lab.tenant("globex", &dead_api_url()).retry_budget = Some("1s".into());
    let hour = Duration::from_secs(3600);
    lab.upload_aged("acme", "first.csv", &roster("A", 3), 2 * hour);
    let second = csv(
        ROSTER_HEADER,
        &[
            "B1,OPSCOM,Ann,Lee,b1@example.edu,617-555-0001,MA,1990-01-01",
            "B2,OPSCOM,Bob,Lee,not-an-email,617-555-0002,MA,1990-01-02",
        ],
    );
    lab.upload_aged("acme", "second.csv", &second, hour);
    lab.upload_aged("globex", "late.csv", &roster("G", 2), hour);
    lab.once()
        .expect_code(3, "once: globex's API is unreachable, mail is down");
    lab.upload_aged("acme", "fresh.csv", &roster("F", 1), Duration::ZERO);
    let alerts = r#"{"globex": {"api_unreachable": {"since": "2026-11-27T10:00:00Z",
        "detail": "the API has not answered since 10:00", "notified": true}}}"#;
    std::fs::write(lab.state_dir.join("alerts.json"), alerts).unwrap();
    let config = lab.write_config();
    let config = config.to_string_lossy();
    let globex_claim = lab
        .records()
        .into_iter()
        .find(|r| r.tenant == "globex")
        .expect("globex's deferral is recorded")
        .claim;

    let status = json(&lab, &["status", "--config", &config, "--json"]);
    assert_eq!(status["version"], 1, "{status:#}");
    assert!(is_utc_stamp(&status["generated_at"]), "{status:#}");
    assert_eq!(status["unreadable"], serde_json::json!([]), "{status:#}");
    let [acme, globex] = status["tenants"].as_array().unwrap().as_slice() else {
        panic!("two tenants: {status:#}");
    };
    assert_eq!(acme["name"], "acme");
    let last = &acme["last_file"];
    assert_eq!(last["file"], "second.csv", "{status:#}");
    assert_eq!(last["outcome"], "imported_with_failures");
    assert_eq!(
        (&last["rows_total"], &last["rows_ok"], &last["rows_failed"]),
        (&Value::from(2), &Value::from(1), &Value::from(1))
    );
    assert!(is_utc_stamp(&last["at"]), "{status:#}");
    let waiting = acme["waiting"].as_array().unwrap();
    assert_eq!(waiting.len(), 1, "{status:#}");
    assert_eq!(waiting[0]["file"], "fresh.csv");
    assert_eq!(waiting[0]["reason"], "settling");
    assert!(is_utc_stamp(&waiting[0]["since"]), "{status:#}");
    assert_eq!(acme["unsent_reports"], 1, "the failure report: {status:#}");
    assert_eq!(acme["alerts"], serde_json::json!([]));
    assert_eq!(acme["last_problem"], Value::Null, "{status:#}");

    assert_eq!(globex["last_file"]["file"], "late.csv", "{status:#}");
    assert_eq!(globex["last_file"]["outcome"], "deferred");
    let waiting = globex["waiting"].as_array().unwrap();
    assert_eq!(waiting.len(), 1, "{status:#}");
    let late = &waiting[0];
    assert_eq!(late["file"], "late.csv");
    assert_eq!(late["reason"], "deferred");
    assert_eq!(late["deferral"], "api_unreachable");
    assert_eq!(late["claim"], globex_claim.as_str());
    assert!(is_utc_stamp(&late["since"]), "{status:#}");
    assert!(
        late["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("API unreachable")),
        "{status:#}"
    );
    assert_eq!(
        globex["unsent_reports"], 1,
        "the import-delayed report: {status:#}"
    );
    assert_eq!(
        globex["alerts"],
        serde_json::json!([{"name": "api_unreachable", "since": "2026-11-27T10:00:00Z",
            "detail": "the API has not answered since 10:00", "notified": true}])
    );
    // The alert engine of that `once` noted the outage as globex's last condition.
    assert!(
        globex["last_condition"]["what"]
            .as_str()
            .is_some_and(|w| w.starts_with("api_unreachable")),
        "{status:#}"
    );
    // …and acme's report that mail could not take.
    assert!(
        acme["last_condition"]["what"]
            .as_str()
            .is_some_and(|w| w.starts_with("reports_unsent")),
        "{status:#}"
    );
    assert_eq!(globex["last_problem"]["file"], "late.csv");
    assert_eq!(globex["last_problem"]["outcome"], "deferred");
    assert!(
        globex["last_problem"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("API unreachable")),
        "{status:#}"
    );

    // One tenant, for a person.
    let text = lab.run_to_end(&["status", "--config", &config, "globex"]);
    text.expect_code(0, "status globex");
    for words in ["late.csv", "deferred", "API unreachable", "api_unreachable"] {
        assert!(text.stdout.contains(words), "{words:?}:\n{}", text.stdout);
    }
    assert!(!text.stdout.contains("acme"), "{}", text.stdout);
    let unknown = lab.run_to_end(&["status", "--config", &config, "initech"]);
    unknown.expect_code(2, "status of an unknown tenant");
    assert!(
        unknown.stderr.contains("initech") && unknown.stderr.contains("acme, globex"),
        "{}",
        unknown.stderr
    );

    // History: newest first, as many as asked.
    let history = json(
        &lab,
        &[
            "history", "--config", &config, "acme", "--json", "--limit", "1",
        ],
    );
    assert_eq!(
        (&history["version"], &history["tenant"], &history["limit"]),
        (&Value::from(1), &Value::from("acme"), &Value::from(1))
    );
    let files = history["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{history:#}");
    assert_eq!(files[0]["file"], "second.csv");
    assert_eq!(files[0]["rows_failed"], 1);

    // A process that died between two appends left two lines for one claim: one entry.
    let mut records = std::fs::OpenOptions::new()
        .append(true)
        .open(lab.state_dir.join("records.jsonl"))
        .unwrap();
    let line = |archived: &str, at: &str| {
        format!(
            r#"{{"at":"{at}","tenant":"acme","file":"merged.csv","claim":"20990101T000000.000000000Z-1-0","rows_total":4,"rows_ok":4,"rows_failed":0,"outcome":"imported"{archived},"duration_ms":7}}"#
        )
    };
    writeln!(records, "{}", line("", "2099-01-01T00:00:00Z")).unwrap();
    writeln!(
        records,
        "{}",
        line(
            r#","archived_as":"merged.20990101T000001Z.csv""#,
            "2099-01-01T00:00:01Z"
        )
    )
    .unwrap();
    drop(records);
    let history = json(&lab, &["history", "--config", &config, "acme", "--json"]);
    let files: Vec<&Value> = history["files"].as_array().unwrap().iter().collect();
    let names: Vec<&str> = files.iter().map(|f| f["file"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["merged.csv", "second.csv", "first.csv"],
        "{history:#}"
    );
    assert_eq!(files[0]["archived_as"], "merged.20990101T000001Z.csv");
    assert_eq!(files[0]["at"], "2099-01-01T00:00:01Z");
    assert_eq!(files[0]["rows_ok"], 4);
    let text = lab.run_to_end(&["history", "--config", &config, "acme"]);
    text.expect_code(0, "history acme");
    assert_eq!(
        text.stdout.matches("merged.csv").count(),
        1,
        "{}",
        text.stdout
    );

    // A broken alerts file is said, not fatal.
    std::fs::write(lab.state_dir.join("alerts.json"), "{not json").unwrap();
    let status = json(&lab, &["status", "--config", &config, "--json"]);
    assert_eq!(status["tenants"][1]["alerts"], serde_json::json!([]));
    assert!(
        status["unreadable"][0]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("alerts.json")),
        "{status:#}"
    );
    // Status read the folder and claimed nothing.
    assert_eq!(lab.drop_entries("acme"), ["fresh.csv"]);
}

#[test]
fn status_answers_while_run_holds_the_tenants_and_run_is_unaffected() {
    // Slow pushes, one at a time: the file stays in hand for seconds.
    let sandbox = Sandbox::with(SandboxConfig::default().latency(Duration::from_millis(150)));
    let mut lab = Lab::new("smtp://127.0.0.1:9");
    lab.tenant("acme", &sandbox.url()).concurrency = 1;
    lab.upload("acme", "roster.csv", &roster("R", 40));
    let config = lab.write_config();
    let config = config.to_string_lossy();
    let service = lab.spawn(&["run", "--config", &config]);
    let claimed = lab.state_dir.join("tenants").join("acme").join("claimed");
    wait_for(Duration::from_secs(30), "the file in hand", || {
        std::fs::read_dir(&claimed)
            .ok()?
            .flatten()
            .next()
            .is_some()
            .then_some(())
    });

    let asked = Instant::now();
    let status = json(&lab, &["status", "--config", &config, "--json"]);
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "status answers at once: {:?}",
        asked.elapsed()
    );
    let waiting = &status["tenants"][0]["waiting"];
    assert_eq!(waiting[0]["file"], "roster.csv", "{status:#}");
    assert_eq!(waiting[0]["reason"], "claimed", "{status:#}");
    assert!(
        sandbox.users().len() < 40,
        "status answered while the file was in hand"
    );
    let history = json(&lab, &["history", "--config", &config, "acme", "--json"]);
    assert_eq!(history["files"], serde_json::json!([]), "{history:#}");

    wait_for(Duration::from_secs(60), "roster.csv in .bak", || {
        lab.bak("acme").contains_key("roster.csv").then_some(())
    });
    assert_eq!(sandbox.users().len(), 40);
    let record = lab.records().pop().expect("a record");
    assert_eq!(record.outcome, RecordOutcome::Imported, "{record:?}");
    service.signal(rustix::process::Signal::TERM);
    service
        .wait(Duration::from_secs(30))
        .expect_code(0, "run stops cleanly after status was asked");
}
