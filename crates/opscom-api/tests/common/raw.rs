//! A tiny HTTP/1.1 server on 127.0.0.1 that sees what wiremock hides: accepted TCP connections,
//! requests in flight per token, and how many bytes of an answer it could write before the
//! client hung up.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How the server answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with `Content-Length` and this body.
    Body(Vec<u8>),
    /// 200, `Transfer-Encoding: chunked`, this body in chunks of 1000 bytes.
    Chunked(Vec<u8>),
    /// 200, chunked, `total` bytes of filler in chunks of 64 KiB (`u64::MAX`: never ends),
    /// written until the client hangs up.
    Flood { total: u64 },
    /// 200 with this `Content-Length`, 1 KiB of it, then nothing until the client hangs up.
    Announce { content_length: u64 },
}

/// What a flooding or announcing answer managed to send.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    /// Body bytes written into the socket (accepted by the kernel).
    pub bytes: u64,
    /// Whether the client closed the connection before the body was complete.
    pub cut_by_client: bool,
}

type Decide = dyn Fn(&str) -> Reply + Send + Sync;

/// Shared observations of the server.
#[derive(Default)]
pub struct Seen {
    /// TCP connections accepted.
    pub connections: AtomicUsize,
    /// The `apiToken` of every request, in arrival order.
    pub tokens: Mutex<Vec<String>>,
    /// Long answers, once finished.
    pub sent: Mutex<Vec<Sent>>,
    in_flight: Mutex<HashMap<String, usize>>,
    max_in_flight: Mutex<HashMap<String, usize>>,
    /// Requests of a token are held until that token has had this many in flight at once.
    hold_until: Mutex<HashMap<String, usize>>,
}

impl Seen {
    /// The most requests of `token` the server had in flight at once.
    pub fn max_in_flight(&self, token: &str) -> usize {
        self.max_in_flight
            .lock()
            .expect("lock")
            .get(token)
            .copied()
            .unwrap_or(0)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn tokens(&self) -> Vec<String> {
        self.tokens.lock().expect("lock").clone()
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.sent.lock().expect("lock").clone()
    }
}

pub struct RawServer {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    changed: watch::Receiver<u64>,
}

impl RawServer {
    /// Starts the server; `decide` picks the answer from the request's token.
    pub async fn start(decide: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let seen = Arc::new(Seen::default());
        let (tx, changed) = watch::channel(0u64);
        let tx = Arc::new(tx);
        let decide: Arc<Decide> = Arc::new(decide);
        let shared = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                // Head and body are separate writes: no Nagle wait between them.
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(
                    stream,
                    shared.clone(),
                    decide.clone(),
                    tx.clone(),
                    tx.subscribe(),
                ));
            }
        });
        Self {
            addr,
            seen,
            changed,
        }
    }

    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Holds the requests of `token` until `level` of them are in flight at once.
    pub fn hold(&self, token: &str, level: usize) {
        self.seen
            .hold_until
            .lock()
            .expect("lock")
            .insert(token.to_owned(), level);
    }

    /// Waits (at most 30 s, a safety net) until `done` holds for what the server saw.
    pub async fn wait_for(&self, done: impl Fn(&Seen) -> bool) {
        let mut changed = self.changed.clone();
        let wait = async {
            while !done(&self.seen) {
                changed.changed().await.expect("server alive");
            }
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .expect("the server saw what the test waits for");
    }
}

async fn serve(
    stream: TcpStream,
    seen: Arc<Seen>,
    decide: Arc<Decide>,
    tx: Arc<watch::Sender<u64>>,
    mut changed: watch::Receiver<u64>,
) {
    let mut stream = BufReader::new(stream);
    loop {
        let Some(body) = read_request(&mut stream).await else {
            return;
        };
        let token = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("apiToken")?.as_str().map(str::to_owned))
            .unwrap_or_default();
        seen.tokens.lock().expect("lock").push(token.clone());
        {
            let mut in_flight = seen.in_flight.lock().expect("lock");
            let now = in_flight.entry(token.clone()).or_default();
            *now += 1;
            let mut max = seen.max_in_flight.lock().expect("lock");
            let top = max.entry(token.clone()).or_default();
            *top = (*top).max(*now);
        }
        tx.send_modify(|n| *n += 1);
        let level = seen.hold_until.lock().expect("lock").get(&token).copied();
        if let Some(level) = level {
            while seen.max_in_flight(&token) < level {
                if changed.changed().await.is_err() {
                    return;
                }
            }
        }
        let keep_open = answer(stream.get_mut(), decide(&token), &seen).await;
        *seen
            .in_flight
            .lock()
            .expect("lock")
            .entry(token)
            .or_default() -= 1;
        tx.send_modify(|n| *n += 1);
        if !keep_open {
            return;
        }
    }
}

/// Reads one request; returns its body, or `None` when the connection ends.
async fn read_request(stream: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut length = 0;
    let mut line = String::new();
    loop {
        line.clear();
        if stream.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.ok()?;
    Some(body)
}

/// Writes the answer; returns whether the connection can serve another request.
async fn answer(stream: &mut TcpStream, reply: Reply, seen: &Seen) -> bool {
    const HEAD: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n";
    match reply {
        Reply::Body(body) => {
            let head = format!("{HEAD}content-length: {}\r\n\r\n", body.len());
            stream.write_all(head.as_bytes()).await.is_ok() && stream.write_all(&body).await.is_ok()
        }
        Reply::Chunked(body) => {
            let head = format!("{HEAD}transfer-encoding: chunked\r\n\r\n");
            if stream.write_all(head.as_bytes()).await.is_err() {
                return false;
            }
            for piece in body.chunks(1000) {
                let framed = [format!("{:x}\r\n", piece.len()).as_bytes(), piece, b"\r\n"].concat();
                if stream.write_all(&framed).await.is_err() {
                    return false;
                }
            }
            stream.write_all(b"0\r\n\r\n").await.is_ok()
        }
        Reply::Flood { total } => {
            let head = format!("{HEAD}transfer-encoding: chunked\r\n\r\n");
            let mut sent = Sent {
                bytes: 0,
                cut_by_client: true,
            };
            if stream.write_all(head.as_bytes()).await.is_ok() {
                let piece = [b"10000\r\n".as_slice(), &[b'x'; 0x10000], b"\r\n"].concat();
                while sent.bytes < total {
                    if stream.write_all(&piece).await.is_err() {
                        break;
                    }
                    sent.bytes += 0x10000;
                }
                if sent.bytes >= total {
                    sent.cut_by_client = stream.write_all(b"0\r\n\r\n").await.is_err();
                }
            }
            seen.sent.lock().expect("lock").push(sent);
            false
        }
        Reply::Announce { content_length } => {
            let head = format!("{HEAD}content-length: {content_length}\r\n\r\n");
            let mut sent = Sent {
                bytes: 0,
                cut_by_client: false,
            };
            if stream.write_all(head.as_bytes()).await.is_ok()
                && stream.write_all(&[b'x'; 1024]).await.is_ok()
            {
                sent.bytes = 1024;
                // The rest never comes; wait for the client to hang up.
                let mut sink = [0u8; 1024];
                sent.cut_by_client = loop {
                    match stream.read(&mut sink).await {
                        Ok(0) | Err(_) => break true,
                        Ok(_) => {}
                    }
                };
            }
            seen.sent.lock().expect("lock").push(sent);
            false
        }
    }
}
