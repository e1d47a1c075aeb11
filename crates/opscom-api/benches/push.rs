//! Throughput of the client against the in-process sandbox (a benchmark to read, not a timed test).
//!
//! `cargo bench -p opscom-api --bench push`. Two scenarios:
//! 1. latency L per request, concurrency C, N users: throughput as a share of the ideal C / L;
//! 2. zero latency: requests/s of the client, then of `wrk` (if installed) against the same
//!    endpoint of the same sandbox, with the same number of connections.
//!
//! The sandbox runs on its own tokio runtime (thread pool), so the client's runtime does only
//! the client's work, as when `wrk` is the load generator.
//!
//! Knobs (environment): `BENCH_N` (3000), `BENCH_LATENCY_MS` (50), `BENCH_C` (16),
//! `BENCH_ZERO_N` (20000), `BENCH_WRK_SECS` (5), `BENCH_CLIENT_THREADS` and
//! `BENCH_SANDBOX_THREADS` (0 = one per core), `BENCH_SHARED_RUNTIME` (1 = client and sandbox on
//! one runtime, the original setup).

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use opscom_api::{ClientConfig, HttpPushClient, PushApi, PushOutcome, SecretString, UserRecord};
use opscom_sandbox::{DEFAULT_TOKEN, PUSH_PATH, RunningSandbox, SandboxConfig};
use tokio::runtime::Runtime;

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
                ("login_source".into(), "OPSCOM".to_owned()),
                ("first_name".into(), "Bench".to_owned()),
                ("last_name".into(), format!("User{i}")),
                ("email".into(), format!("{prefix}{i}@example.com")),
                ("user_type_id".into(), "6".to_owned()),
            ],
        })
        .collect()
}

/// Pushes every user the way the importer's pipeline does: one task keeps at most `concurrency`
/// `push_user` futures in a `FuturesUnordered` (no task spawned per user).
async fn push_all(
    client: &HttpPushClient,
    concurrency: usize,
    users: &[UserRecord],
) -> (Duration, usize) {
    let started = Instant::now();
    let mut pending = users.iter();
    let mut in_flight = FuturesUnordered::new();
    let mut accepted = 0;
    loop {
        while in_flight.len() < concurrency {
            match pending.next() {
                Some(user) => in_flight.push(client.push_user(user)),
                None => break,
            }
        }
        match in_flight.next().await {
            Some(PushOutcome::Accepted) => accepted += 1,
            Some(_) => {}
            None => break,
        }
    }
    (started.elapsed(), accepted)
}

fn client(sandbox: &RunningSandbox, concurrency: usize) -> HttpPushClient {
    let mut config = ClientConfig::new(sandbox.base_url(), SecretString::from(DEFAULT_TOKEN));
    config.concurrency = concurrency;
    HttpPushClient::new(config).expect("client builds")
}

/// A multi-threaded runtime with `workers` threads (0: tokio's default, one per core), or a
/// current-thread one with `CURRENT_THREAD`.
fn runtime(name: &str, workers: u64) -> Runtime {
    let mut builder = if workers == CURRENT_THREAD {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().thread_name(name);
    if workers > 0 && workers != CURRENT_THREAD {
        builder.worker_threads(workers as usize);
    }
    builder.build().expect("runtime")
}

/// `BENCH_CLIENT_THREADS` value asking for a current-thread runtime.
const CURRENT_THREAD: u64 = 999;

/// Runs `future` as a task on `rt` (on a worker thread, as the importer's pipeline runs, not on
/// the thread calling `block_on`) and waits for it.
fn run<T: Send + 'static>(rt: &Runtime, future: impl Future<Output = T> + Send + 'static) -> T {
    rt.block_on(rt.spawn(future)).expect("bench task")
}

/// The user of wrk's request body.
fn wrk_user() -> UserRecord {
    UserRecord {
        line: 2,
        unique_id: "wrk-1".to_owned(),
        attributes: vec![
            ("login_source".into(), "OPSCOM".to_owned()),
            ("first_name".into(), "Bench".to_owned()),
            ("last_name".into(), "Wrk".to_owned()),
            ("email".into(), "wrk-1@example.com".to_owned()),
            ("user_type_id".into(), "6".to_owned()),
        ],
    }
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

fn main() {
    let n = knob("BENCH_N", 3000);
    let latency = Duration::from_millis(knob("BENCH_LATENCY_MS", 50));
    let concurrency = knob("BENCH_C", 16) as usize;
    let zero_n = knob("BENCH_ZERO_N", 20_000);
    let wrk_secs = knob("BENCH_WRK_SECS", 5);
    let shared_runtime = knob("BENCH_SHARED_RUNTIME", 0) != 0;
    let client_rt = runtime("bench-client", knob("BENCH_CLIENT_THREADS", 0));
    // The sandbox serves from its own thread pool, as it does for wrk (and as a separate server
    // would): the client's runtime does only the client's work. BENCH_SHARED_RUNTIME=1 puts both
    // on one runtime (the setup of the first measurement).
    let sandbox_rt =
        (!shared_runtime).then(|| runtime("sandbox", knob("BENCH_SANDBOX_THREADS", 0)));
    let server = sandbox_rt
        .as_ref()
        .map_or(client_rt.handle(), Runtime::handle);
    println!(
        "runtimes: {}",
        if shared_runtime {
            "client and sandbox share one"
        } else {
            "client and sandbox on separate thread pools"
        }
    );
    let config = SandboxConfig::default().request_log_limit(1_000);

    // 1. With latency: the client should keep C requests in flight all the time.
    let sandbox = server
        .block_on(opscom_sandbox::spawn(config.clone().latency(latency)))
        .expect("sandbox");
    let users_lat = users("lat-", n);
    let lat_client = client(&sandbox, concurrency);
    let (elapsed, accepted) = run(&client_rt, async move {
        push_all(&lat_client, concurrency, &users_lat).await
    });
    let ideal = concurrency as f64 / latency.as_secs_f64();
    let rps = accepted as f64 / elapsed.as_secs_f64();
    println!("latency scenario: N={n} L={latency:?} C={concurrency}");
    println!(
        "  accepted {accepted}/{n} in {:.2} s = {rps:.1} users/s; ideal C/L = {ideal:.1}/s; share = {:.1}%",
        elapsed.as_secs_f64(),
        100.0 * rps / ideal
    );
    server.block_on(sandbox.shutdown()).expect("sandbox stops");

    // 2. Zero latency: the client's own cost, next to wrk on the same endpoint.
    let sandbox = server
        .block_on(opscom_sandbox::spawn(config))
        .expect("sandbox");
    let (warm, distinct) = (users("warm-", 500), users("zero-", zero_n));
    // The same user as wrk's body, pushed zero_n times: updates, the same server work as wrk's.
    let same = vec![wrk_user(); zero_n as usize];
    let zero_client = client(&sandbox, concurrency);
    let ((d_elapsed, d_accepted), (elapsed, accepted)) = run(&client_rt, async move {
        let client = zero_client;
        // Warm up the pool (the same client is measured) and the sandbox.
        push_all(&client, concurrency, &warm).await;
        let distinct = push_all(&client, concurrency, &distinct).await;
        (distinct, push_all(&client, concurrency, &same).await)
    });
    let client_rps = accepted as f64 / elapsed.as_secs_f64();
    println!("zero-latency scenario: N={zero_n} C={concurrency}");
    println!(
        "  client, {zero_n} distinct users (creates): accepted {d_accepted} in {:.2} s = {:.0} requests/s",
        d_elapsed.as_secs_f64(),
        d_accepted as f64 / d_elapsed.as_secs_f64()
    );
    println!(
        "  client, wrk's user {zero_n} times (updates, as wrk): accepted {accepted} in {:.2} s = {client_rps:.0} requests/s",
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
    server.block_on(sandbox.shutdown()).expect("sandbox stops");
}
