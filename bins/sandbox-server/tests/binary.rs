//! The `opscom-sandbox` binary: prints its address first, serves with the given options, stops on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_opscom-sandbox"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("stdout piped");
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("first line");
    let addr = first
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    Server { child, addr }
}

fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read");
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

const TOKEN: &str = "cli-token-0123456789-0123456789-0123456789-0123456";

fn push(unique_id: &str, source: &str) -> String {
    format!(r#"{{"apiToken":"{TOKEN}","unique_id":"{unique_id}","login_source":"{source}"}}"#)
}

#[test]
fn flags_configure_tokens_sources_and_error_status() {
    let server = start(&[
        "--port",
        "0",
        "--token",
        TOKEN,
        "--login-source",
        "SAML",
        "--error-status",
        "400",
    ]);
    let path = "/api/OC_TOMA/v1/profiles/push";
    assert_eq!(
        http(&server.addr, "POST", path, &push("u1", "SAML")),
        (200, r#"{"status":"success"}"#.to_owned())
    );
    let (status, body) = http(&server.addr, "POST", path, &push("u2", "OPSCOM"));
    assert_eq!(status, 400);
    assert!(body.contains("9015"), "{body}");
    let (_, body) = http(
        &server.addr,
        "POST",
        path,
        &push("u3", "SAML").replace(TOKEN, "other"),
    );
    assert!(body.contains("9002"), "{body}");
    let (_, users) = http(&server.addr, "GET", "/_sandbox/users", "");
    let users: serde_json::Value = serde_json::from_str(&users).expect("JSON");
    assert_eq!(users.as_array().map(Vec::len), Some(1));
}

#[test]
fn the_fault_switch_works_out_of_process_and_sigterm_stops_it() {
    let mut server = start(&["--token", TOKEN]);
    let path = "/api/OC_TOMA/v1/profiles/push";
    http(
        &server.addr,
        "POST",
        "/_sandbox/faults",
        r#"{"outage":true}"#,
    );
    assert_eq!(
        http(&server.addr, "POST", path, &push("u1", "OPSCOM")).0,
        503
    );
    http(
        &server.addr,
        "POST",
        "/_sandbox/faults",
        r#"{"outage":false}"#,
    );
    assert_eq!(
        http(&server.addr, "POST", path, &push("u1", "OPSCOM")).0,
        200
    );

    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = server.child.wait().expect("the server exits");
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn bad_flags_are_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_opscom-sandbox"))
        .args(["--error-status", "500"])
        .output()
        .expect("the binary runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("expected 200 or 400"));
}
