//! Graceful shutdown: new connections are refused, the request in flight
//! finishes, and only then is the store closed. Made deterministic with a store
//! that holds a put until the test lets it go.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use vss_conformance::HttpStore;
use vss_core::proto::*;
use vss_core::{KvStore, UserToken, VssError};
use vss_server::BackendConfig;

fn put_request() -> PutObjectRequest {
    PutObjectRequest {
        store_id: "s".into(),
        global_version: None,
        transaction_items: vec![KeyValue {
            key: "in-flight".into(),
            version: 0,
            value: Bytes::from_static(b"v"),
        }],
        delete_items: vec![],
    }
}

/// Waits until connecting to `addr` is refused (the listener is closed). Bounded, no sleeps.
async fn until_refused(addr: std::net::SocketAddr) {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match tokio::net::TcpStream::connect(addr).await {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
                _ => tokio::task::yield_now().await,
            }
        }
    })
    .await
    .expect("the server kept accepting connections after shutdown was asked for");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_request_in_flight_then_closes_the_store() {
    let (store, entered) = HeldStore::new();
    let mut server = start_with_store(config(BackendConfig::Memory), store.clone()).await;
    let client = HttpStore::new(&server.url).unwrap();
    let user = UserToken::new("ignored").unwrap();
    let in_flight = tokio::spawn({
        let client = client.clone();
        let user = user.clone();
        async move { client.put(&user, put_request()).await }
    });
    entered.await.unwrap();

    server.trigger_stop();
    until_refused(server.addr).await;
    assert_eq!(
        store.events(),
        vec!["put started"],
        "the store must stay open while a request runs"
    );

    store.release.notify_one();
    let answer = in_flight.await.unwrap();
    assert_eq!(
        answer,
        Ok(PutObjectResponse {}),
        "the request in flight must get its answer"
    );
    let outcome = server.finished().await.unwrap();
    assert_eq!(outcome.aborted, 0);
    assert_eq!(
        store.events(),
        vec!["put started", "put finished", "closed"]
    );
    // The write it acknowledged is there.
    let got = store
        .inner
        .get(
            &vss_http::NoopAuthorizer::default().user().clone(),
            GetObjectRequest {
                store_id: "s".into(),
                key: "in-flight".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(got.value.unwrap().version, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_for_requests_in_flight_is_bounded() {
    let (store, entered) = HeldStore::new();
    let mut cfg = config(BackendConfig::Memory);
    cfg.shutdown_grace = Duration::from_millis(100);
    let mut server = start_with_store(cfg, store.clone()).await;
    let client = HttpStore::new(&server.url).unwrap();
    let in_flight = tokio::spawn(async move {
        client
            .put(&UserToken::new("u").unwrap(), put_request())
            .await
    });
    entered.await.unwrap();
    server.trigger_stop();
    // The put is never released: the server gives up on it after the grace and still closes the store.
    let outcome = server.finished().await.unwrap();
    assert_eq!(outcome.aborted, 1);
    assert_eq!(store.events(), vec!["put started", "closed"]);
    // The client sees a transport failure (retried by wallets), never a success.
    assert!(matches!(
        in_flight.await.unwrap(),
        Err(VssError::Internal(_))
    ));
}
