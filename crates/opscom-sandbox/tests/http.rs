//! The sandbox over real HTTP: API answers, fault switches, read-only views, shutdown.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use opscom_sandbox::{
    DEFAULT_TOKEN, PUSH_PATH, RecordedRequest, RequestOutcome, SandboxConfig, SandboxUser, spawn,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A minimal HTTP/1.1 exchange (one request per connection), so the test needs no HTTP client.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> Answer {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

fn push_body(unique_id: &str) -> String {
    format!(
        r#"{{"apiToken":"{DEFAULT_TOKEN}","unique_id":"{unique_id}","login_source":"OPSCOM","email":"{unique_id}@example.com"}}"#
    )
}

#[tokio::test]
async fn pushes_show_in_the_views_without_tokens() {
    let sandbox = spawn(SandboxConfig::default())
        .await
        .expect("sandbox starts");
    let answer = http(sandbox.addr(), "POST", PUSH_PATH, &push_body("u1")).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, r#"{"status":"success"}"#)
    );
    let clash = push_body("u2").replace("u2@", "u1@");
    let answer = http(sandbox.addr(), "POST", PUSH_PATH, &clash).await;
    assert_eq!(answer.status, 200);
    assert!(answer.body.contains("9019"), "{}", answer.body);

    let users = http(sandbox.addr(), "GET", "/_sandbox/users", "").await;
    let users: Vec<SandboxUser> = serde_json::from_str(&users.body).expect("users JSON");
    assert_eq!(
        users
            .iter()
            .map(|u| u.unique_id.as_str())
            .collect::<Vec<_>>(),
        ["u1"]
    );
    let requests = http(sandbox.addr(), "GET", "/_sandbox/requests", "").await;
    assert!(!requests.body.contains(DEFAULT_TOKEN), "{}", requests.body);
    let requests: Vec<RecordedRequest> =
        serde_json::from_str(&requests.body).expect("requests JSON");
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].error_code, Some(9019));
    assert_eq!(sandbox.users(), users);
    sandbox.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn the_outage_switch_makes_the_api_unavailable_and_recovers_it() {
    let sandbox = spawn(SandboxConfig::default())
        .await
        .expect("sandbox starts");
    let addr = sandbox.addr();
    let on = http(addr, "POST", "/_sandbox/faults", r#"{"outage":true}"#).await;
    assert_eq!(on.status, 200);
    assert!(on.body.contains(r#""outage":true"#), "{}", on.body);
    assert_eq!(
        http(addr, "POST", PUSH_PATH, &push_body("u1")).await.status,
        503
    );
    http(addr, "POST", "/_sandbox/faults", r#"{"outage":false}"#).await;
    assert_eq!(
        http(addr, "POST", PUSH_PATH, &push_body("u1")).await.status,
        200
    );
    let outcomes: Vec<RequestOutcome> = sandbox.requests().iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [RequestOutcome::Unavailable, RequestOutcome::Created]
    );
    // A typo in a fault name is refused rather than silently ignored.
    assert!(
        http(addr, "POST", "/_sandbox/faults", r#"{"outgae":true}"#)
            .await
            .status
            >= 400
    );
}

#[tokio::test]
async fn fail_next_answers_exactly_that_many_503s() {
    let sandbox = spawn(SandboxConfig::default())
        .await
        .expect("sandbox starts");
    http(
        sandbox.addr(),
        "POST",
        "/_sandbox/faults",
        r#"{"fail_next":2}"#,
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            http(sandbox.addr(), "POST", PUSH_PATH, &push_body("u1"))
                .await
                .status,
        );
    }
    assert_eq!(statuses, [503, 503, 200]);
}

#[tokio::test]
async fn past_the_rate_the_answer_is_429_with_retry_after() {
    let sandbox = spawn(SandboxConfig::default().rate_limit(2, 7))
        .await
        .expect("sandbox starts");
    let mut statuses = Vec::new();
    let mut last = None;
    for n in 0..3 {
        let answer = http(
            sandbox.addr(),
            "POST",
            PUSH_PATH,
            &push_body(&format!("u{n}")),
        )
        .await;
        statuses.push(answer.status);
        last = Some(answer);
    }
    assert_eq!(statuses, [200, 200, 429]);
    let head = last.map(|a| a.head).unwrap_or_default();
    assert!(head.contains("retry-after: 7"), "{head}");
}

#[tokio::test]
async fn latency_delays_every_answer() {
    let sandbox = spawn(SandboxConfig::default().latency(Duration::from_millis(120)))
        .await
        .expect("sandbox starts");
    let started = Instant::now();
    assert_eq!(
        http(sandbox.addr(), "POST", PUSH_PATH, &push_body("u1"))
            .await
            .status,
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(120));
}

#[tokio::test]
async fn shutdown_stops_listening() {
    let sandbox = spawn(SandboxConfig::default())
        .await
        .expect("sandbox starts");
    let addr = sandbox.addr();
    sandbox.shutdown().await.expect("clean shutdown");
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn serve_runs_on_a_given_listener_until_the_injected_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(opscom_sandbox::serve(
        SandboxConfig::default(),
        listener,
        async move {
            let _ = stopped.await;
        },
    ));
    let answer = http(
        addr,
        "POST",
        opscom_sandbox::TYPES_LIST_PATH,
        &format!(r#"{{"apiToken":"{DEFAULT_TOKEN}"}}"#),
    )
    .await;
    assert!(answer.body.contains("Visitor"), "{}", answer.body);
    let _ = stop.send(());
    server.await.expect("task").expect("serve ends cleanly");
}
