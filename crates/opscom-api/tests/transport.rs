//! Many tenants on one `HttpTransport`: each keeps its own token and limits, all share the pool.

mod common;

use futures_util::StreamExt;
use futures_util::future::join_all;
use opscom_api::{HttpPushClient, HttpTransport, PushApi, PushOutcome, TransportConfig};

use common::raw::{RawServer, Reply};
use common::{config_with_token, user};

const TOKEN_A: &str = "tenant-a-0123456789-abcdefghij-0123456789-abcdefgh";
const TOKEN_B: &str = "tenant-b-0123456789-abcdefghij-0123456789-abcdefgh";

fn success() -> Reply {
    Reply::Body(br#"{"status":"success"}"#.to_vec())
}

fn transport() -> HttpTransport {
    HttpTransport::new(TransportConfig::default()).expect("transport builds")
}

fn tenant(
    transport: &HttpTransport,
    base: &str,
    token: &str,
    concurrency: usize,
) -> HttpPushClient {
    let mut config = config_with_token(base, token);
    config.concurrency = concurrency;
    HttpPushClient::with_transport(transport, config).expect("client builds")
}

#[tokio::test]
async fn tenants_on_one_transport_send_their_own_tokens_over_one_connection() {
    let server = RawServer::start(|_| success()).await;
    let transport = transport();
    let a = tenant(&transport, &server.uri(), TOKEN_A, 4);
    let b = tenant(&transport, &server.uri(), TOKEN_B, 4);
    assert_eq!(a.push_user(&user(1)).await, PushOutcome::Accepted);
    assert_eq!(b.push_user(&user(2)).await, PushOutcome::Accepted);
    assert_eq!(a.push_user(&user(3)).await, PushOutcome::Accepted);
    assert_eq!(server.seen.tokens(), [TOKEN_A, TOKEN_B, TOKEN_A]);
    // B's request went over the connection A opened: one pool for both.
    assert_eq!(server.seen.connections(), 1);
}

#[tokio::test]
async fn clients_built_alone_each_open_their_own_connection() {
    // The contrast to the test above: `HttpPushClient::new` has a private pool.
    let server = RawServer::start(|_| success()).await;
    let a = HttpPushClient::new(config_with_token(&server.uri(), TOKEN_A)).expect("builds");
    let b = HttpPushClient::new(config_with_token(&server.uri(), TOKEN_B)).expect("builds");
    assert_eq!(a.push_user(&user(1)).await, PushOutcome::Accepted);
    assert_eq!(b.push_user(&user(2)).await, PushOutcome::Accepted);
    assert_eq!(server.seen.connections(), 2);
}

#[tokio::test]
async fn each_tenant_keeps_its_own_concurrency() {
    let server = RawServer::start(|_| success()).await;
    // The server answers nobody of a tenant until that tenant has its full concurrency in
    // flight: both levels are reached, at once, only if the two limits are separate.
    server.hold(TOKEN_A, 2);
    server.hold(TOKEN_B, 3);
    let transport = transport();
    let a = tenant(&transport, &server.uri(), TOKEN_A, 2);
    let b = tenant(&transport, &server.uri(), TOKEN_B, 3);
    let users: Vec<_> = (0..8).map(user).collect();
    let pushes = users
        .iter()
        .map(|u| a.push_user(u))
        .chain(users.iter().map(|u| b.push_user(u)));
    let outcomes = tokio::time::timeout(std::time::Duration::from_secs(30), join_all(pushes))
        .await
        .expect("both tenants reach their concurrency (safety net, not a timing)");
    assert!(
        outcomes.iter().all(|o| *o == PushOutcome::Accepted),
        "{outcomes:?}"
    );
    assert_eq!(server.seen.max_in_flight(TOKEN_A), 2);
    assert_eq!(server.seen.max_in_flight(TOKEN_B), 3);
    assert_eq!(server.seen.tokens().len(), 16);
}

#[tokio::test]
async fn debug_output_never_shows_a_token() {
    let transport = transport();
    let a = tenant(&transport, "http://127.0.0.1:9", TOKEN_A, 1);
    let b = tenant(&transport, "http://127.0.0.1:9", TOKEN_B, 1);
    for debug in [format!("{a:?}"), format!("{b:?}"), format!("{transport:?}")] {
        assert!(!debug.contains(TOKEN_A), "{debug}");
        assert!(!debug.contains(TOKEN_B), "{debug}");
        assert!(!debug.contains("tenant-"), "{debug}");
    }
    assert!(format!("{a:?}").contains("[REDACTED]"));
}

#[tokio::test]
async fn two_thousand_tenants_share_one_transport() {
    const TENANTS: usize = 2_000;
    const AT_ONCE: usize = 16;
    let server = RawServer::start(|_| success()).await;
    let transport = transport();
    let tokens: Vec<String> = (0..TENANTS).map(|i| format!("tenant-{i:05}")).collect();
    let clients: Vec<HttpPushClient> = tokens
        .iter()
        .map(|token| tenant(&transport, &server.uri(), token, 2))
        .collect();
    let one_user = user(1);
    let outcomes: Vec<PushOutcome> = futures_util::stream::iter(&clients)
        .map(|client| client.push_user(&one_user))
        .buffer_unordered(AT_ONCE)
        .collect()
        .await;
    assert!(outcomes.iter().all(|o| *o == PushOutcome::Accepted));
    let mut seen = server.seen.tokens();
    seen.sort();
    assert_eq!(seen, tokens, "every tenant sent its own token, once");
    // A pool per tenant would have opened 2,000 connections; the shared pool opens about as
    // many as there are requests in flight.
    let connections = server.seen.connections();
    assert!(connections <= 4 * AT_ONCE, "{connections} connections");
}

#[test]
fn transport_config_defaults_suit_many_tenants() {
    let config = TransportConfig::default();
    assert!(config.pool_max_idle_per_host >= 256, "{config:?}");
    assert!(config.connect_timeout > std::time::Duration::ZERO);
}
