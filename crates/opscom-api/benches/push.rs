//! Throughput of the client against the in-process sandbox (a benchmark to read, not a timed test).
//!
//! `cargo bench -p opscom-api --bench push`. Two scenarios:
//! 1. latency L per request, concurrency C, N users: throughput as a share of the ideal C / L;
//! 2. zero latency: requests/s of the client, then of `wrk` (if installed) against the same
//!    endpoint of the same sandbox, with the same number of connections.
//!
//! Knobs (environment): `BENCH_N` (3000), `BENCH_LATENCY_MS` (50), `BENCH_C` (16),
//! `BENCH_ZERO_N` (20000), `BENCH_WRK_SECS` (5).

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use opscom_api::{ClientConfig, HttpPushClient, PushApi, PushOutcome, SecretString, UserRecord};
use opscom_sandbox::{DEFAULT_TOKEN, PUSH_PATH, RunningSandbox, SandboxConfig};

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn users(prefix: &str, n: u64) -> Vec<UserRecord> {
    (0..n)
        .map(|i| UserRecord {
            line: i + 2,
            unique_id: format!("{prefix}{i}"),
            attributes: vec![
                ("login_source", "OPSCOM".to_owned()),
                ("first_name", "Bench".to_owned()),
                ("last_name", format!("User{i}")),
                ("email", format!("{prefix}{i}@example.com")),
                ("user_type_id", "6".to_owned()),
            ],
        })
        .collect()
}

/// Pushes every user with all futures driven at once (the client bounds concurrency).
async fn push_all(
    sandbox: &RunningSandbox,
    concurrency: usize,
    users: Vec<UserRecord>,
) -> (Duration, usize) {
    let mut config = ClientConfig::new(sandbox.base_url(), SecretString::from(DEFAULT_TOKEN));
    config.concurrency = concurrency;
    let client = HttpPushClient::new(config).expect("client builds");
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for user in users {
        let client = client.clone();
        set.spawn(async move { client.push_user(&user).await });
    }
    let mut accepted = 0;
    while let Some(outcome) = set.join_next().await {
        if matches!(outcome, Ok(PushOutcome::Accepted)) {
            accepted += 1;
        }
    }
    (started.elapsed(), accepted)
}

fn wrk(sandbox: &RunningSandbox, connections: u64, secs: u64) -> Option<(f64, String)> {
    let script = std::env::temp_dir().join(format!("opscom-bench-{}.lua", std::process::id()));
    let body = format!(
        r#"{{"apiToken":"{DEFAULT_TOKEN}","unique_id":"wrk-1","login_source":"OPSCOM","first_name":"Bench","last_name":"Wrk","email":"wrk-1@example.com","user_type_id":"6"}}"#
    );
    let lua = format!(
        "wrk.method = \"POST\"\nwrk.body = '{body}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
    );
    std::fs::File::create(&script)
        .and_then(|mut f| f.write_all(lua.as_bytes()))
        .ok()?;
    let url = format!("{}{PUSH_PATH}", sandbox.base_url());
    let threads = connections.min(2).to_string();
    let output = Command::new("wrk")
        .args([
            "-t",
            &threads,
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{secs}s"),
            "-s",
        ])
        .arg(&script)
        .arg(&url)
        .output();
    let _ = std::fs::remove_file(&script);
    let output = output.ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())?;
    Some((rps, text))
}

#[tokio::main]
async fn main() {
    let n = knob("BENCH_N", 3000);
    let latency = Duration::from_millis(knob("BENCH_LATENCY_MS", 50));
    let concurrency = knob("BENCH_C", 16) as usize;
    let zero_n = knob("BENCH_ZERO_N", 20_000);
    let wrk_secs = knob("BENCH_WRK_SECS", 5);
    let config = SandboxConfig::default().request_log_limit(1_000);

    // 1. With latency: the client should keep C requests in flight all the time.
    let sandbox = opscom_sandbox::spawn(config.clone().latency(latency))
        .await
        .expect("sandbox");
    let (elapsed, accepted) = push_all(&sandbox, concurrency, users("lat-", n)).await;
    let ideal = concurrency as f64 / latency.as_secs_f64();
    let rps = accepted as f64 / elapsed.as_secs_f64();
    println!("latency scenario: N={n} L={latency:?} C={concurrency}");
    println!(
        "  accepted {accepted}/{n} in {:.2} s = {rps:.1} users/s; ideal C/L = {ideal:.1}/s; share = {:.1}%",
        elapsed.as_secs_f64(),
        100.0 * rps / ideal
    );
    sandbox.shutdown().await.expect("sandbox stops");

    // 2. Zero latency: the client's own cost, next to wrk on the same endpoint.
    let sandbox = opscom_sandbox::spawn(config).await.expect("sandbox");
    // Warm up the pool and the sandbox.
    push_all(&sandbox, concurrency, users("warm-", 500)).await;
    let (elapsed, accepted) = push_all(&sandbox, concurrency, users("zero-", zero_n)).await;
    let client_rps = accepted as f64 / elapsed.as_secs_f64();
    println!("zero-latency scenario: N={zero_n} C={concurrency}");
    println!(
        "  client: accepted {accepted}/{zero_n} in {:.2} s = {client_rps:.0} requests/s",
        elapsed.as_secs_f64()
    );
    match wrk(&sandbox, concurrency as u64, wrk_secs) {
        Some((wrk_rps, text)) => {
            println!(
                "  wrk -t2 -c{concurrency} -d{wrk_secs}s (POST, same endpoint): {wrk_rps:.0} requests/s; client/wrk = {:.1}%",
                100.0 * client_rps / wrk_rps
            );
            for line in text.lines() {
                println!("    | {line}");
            }
        }
        None => println!("  wrk: not available (apt-get install -y wrk)"),
    }
    sandbox.shutdown().await.expect("sandbox stops");
}
