//! Request logs say what happened (operation, status, latency) and never
//! carry values, tokens or internal causes to the wrong place.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::*;
use http::StatusCode;
use prost::Message;
use vss_core::proto::{GetObjectRequest, KeyValue, PutObjectRequest};
use vss_core::MemoryStore;
use vss_http::HttpConfig;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// A current-thread runtime keeps every task on this thread, where the capturing subscriber is set.
#[tokio::test(flavor = "current_thread")]
async fn logs_name_the_request_but_never_values_or_tokens() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = TestServer::start(
        Arc::new(MemoryStore::new()),
        Arc::new(TokenAuthorizer),
        HttpConfig::default(),
    )
    .await;
    let token = token("log-test-user");
    let bearer = format!("Bearer {token}");
    let secret_value = b"SECRET-VALUE-4f1c2b";
    let put = PutObjectRequest {
        store_id: "s".into(),
        global_version: None,
        transaction_items: vec![KeyValue {
            key: "k".into(),
            version: 0,
            value: Bytes::from_static(secret_value),
        }],
        delete_items: vec![],
    };
    let answer = send(
        "POST",
        &server.url("/vss/putObjects"),
        &[("authorization", &bearer)],
        put.encode_to_vec(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let get = GetObjectRequest {
        store_id: "s".into(),
        key: "k".into(),
    };
    let answer = send(
        "POST",
        &server.url("/vss/getObject"),
        &[("authorization", &bearer)],
        get.encode_to_vec(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let forged = "Bearer f0rg3d-9d2e77.x".to_string();
    let answer = send(
        "POST",
        &server.url("/vss/getObject"),
        &[("authorization", &forged)],
        get.encode_to_vec(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    server.stop().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The logs say what happened...
    assert!(logs.contains("operation=putObjects"), "{logs}");
    assert!(logs.contains("operation=getObject"), "{logs}");
    assert!(logs.contains("status=200"), "{logs}");
    assert!(logs.contains("status=401"), "{logs}");
    assert!(logs.contains("latency_us="), "{logs}");
    // ...and nothing a client sent in confidence.
    assert!(
        !logs.contains("SECRET-VALUE"),
        "a value was logged:\n{logs}"
    );
    for secret in [TOKEN_SECRET, "f0rg3d-9d2e77"] {
        assert!(!logs.contains(secret), "a token was logged:\n{logs}");
    }
}
