//! The transport's `RequestObserver` hook: told the duration of every HTTP attempt, retries
//! included, for every tenant's client on the transport.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opscom_api::{
    HttpPushClient, HttpTransport, PushApi, PushOutcome, RequestObserver, TransportConfig,
};
use wiremock::{MockServer, ResponseTemplate};

use common::{config, push_mock, user};

/// Keeps every duration it is told.
#[derive(Debug, Default)]
struct Seen(Mutex<Vec<Duration>>);

impl RequestObserver for Seen {
    fn request_finished(&self, duration: Duration) {
        self.0.lock().unwrap().push(duration);
    }
}

#[tokio::test]
async fn every_attempt_of_every_client_on_the_transport_is_timed() {
    let server = MockServer::start().await;
    // Two 503s first: the first user needs three attempts.
    push_mock(&server, ResponseTemplate::new(503), Some(2)).await;
    push_mock(
        &server,
        ResponseTemplate::new(200)
            .set_body_string(r#"{"status":"success"}"#)
            .set_delay(Duration::from_millis(20)),
        None,
    )
    .await;
    let seen = Arc::new(Seen::default());
    let mut transport_config = TransportConfig::default();
    transport_config.observer = Some(seen.clone());
    let transport = HttpTransport::new(transport_config).expect("transport builds");
    let a = HttpPushClient::with_transport(&transport, config(&server.uri())).expect("builds");
    let b = HttpPushClient::with_transport(&transport, config(&server.uri())).expect("builds");

    assert_eq!(a.push_user(&user(1)).await, PushOutcome::Accepted);
    assert_eq!(b.push_user(&user(2)).await, PushOutcome::Accepted);

    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        4,
        "three attempts for the first user, one for the second"
    );
    assert!(
        seen[2] >= Duration::from_millis(20) && seen[3] >= Duration::from_millis(20),
        "an accepted attempt is timed to the end of its (delayed) answer: {seen:?}"
    );
}

#[tokio::test]
async fn a_transport_without_an_observer_times_nothing_and_still_works() {
    let server = MockServer::start().await;
    push_mock(
        &server,
        ResponseTemplate::new(200).set_body_string(r#"{"status":"success"}"#),
        None,
    )
    .await;
    assert!(TransportConfig::default().observer.is_none());
    let transport = HttpTransport::new(TransportConfig::default()).expect("transport builds");
    let a = HttpPushClient::with_transport(&transport, config(&server.uri())).expect("builds");
    assert_eq!(a.push_user(&user(1)).await, PushOutcome::Accepted);
}
