//! Property tests ("fuzzing") of the whole request path: arbitrary methods,
//! paths, `Authorization` headers and bodies (random bytes, and valid
//! messages with random edits) go through the real service on MemoryStore
//! and on SQLite. Whatever comes in, the answer is never a 5xx (bad input is
//! the client's fault, answered 4xx), nothing panics, and a normal client is
//! served right after.
//!
//! `VSS_FUZZ_CASES` sets the number of requests per store (default 400, as
//! `scripts/test` runs it); a long run: `VSS_FUZZ_CASES=200000 cargo nextest
//! run -p vss-http --test fuzz`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{token, TokenAuthorizer};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use prost::Message;
use vss_core::conformance::fuzz_runner;
use vss_core::proto::{
    DeleteObjectRequest, GetObjectRequest, GetObjectResponse, KeyValue, ListKeyVersionsRequest,
    PutObjectRequest,
};
use vss_core::{KvStore, MemoryStore};
use vss_http::{HttpConfig, VssService};

/// Valid bodies of every call, to be edited.
fn valid_bodies() -> Vec<Vec<u8>> {
    let kv = |key: &str, version: i64| KeyValue {
        key: key.into(),
        version,
        value: Bytes::from_static(b"value"),
    };
    vec![
        PutObjectRequest {
            store_id: "s".into(),
            global_version: Some(0),
            transaction_items: vec![kv("a", 0), kv("b", -1)],
            delete_items: vec![kv("c", 3)],
        }
        .encode_to_vec(),
        GetObjectRequest {
            store_id: "s".into(),
            key: "a".into(),
        }
        .encode_to_vec(),
        DeleteObjectRequest {
            store_id: "s".into(),
            key_value: Some(kv("a", 1)),
        }
        .encode_to_vec(),
        ListKeyVersionsRequest {
            store_id: "s".into(),
            key_prefix: Some("a".into()),
            page_size: Some(2),
            page_token: Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into()),
        }
        .encode_to_vec(),
    ]
}

/// One edit of a body: flip, delete, insert or cut at a position.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Delete(usize),
    Insert(usize, u8),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, mask)| Edit::Flip(at, mask)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Insert(at, byte)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(mut body: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        let len = body.len();
        match *edit {
            Edit::Flip(at, mask) if len > 0 => body[at % len] ^= mask,
            Edit::Delete(at) if len > 0 => {
                body.remove(at % len);
            }
            Edit::Insert(at, byte) => body.insert(at % (len + 1), byte),
            Edit::Truncate(at) => body.truncate(at % (len + 1)),
            _ => {}
        }
    }
    body
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    let bases = valid_bodies();
    let count = bases.len();
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        (0..count, proptest::collection::vec(edit(), 0..6))
            .prop_map(move |(base, edits)| apply(bases[base].clone(), &edits)),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop_oneof![
            Just("/vss/getObject".to_string()),
            Just("/vss/putObjects".to_string()),
            Just("/vss/deleteObject".to_string()),
            Just("/vss/listKeyVersions".to_string()),
        ],
        1 => prop_oneof![
            Just("/ready".to_string()),
            Just("/health".to_string()),
            Just("/vss/".to_string()),
            Just("/vss/getObject/x".to_string()),
            Just("/vss/getObject?x=%zz".to_string()),
        ],
        1 => "/[a-zA-Z0-9/._~%?=&-]{0,40}",
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        6 => Just(Method::POST),
        1 => Just(Method::GET),
        1 => Just(Method::PUT),
        1 => Just(Method::DELETE),
        1 => Just(Method::HEAD),
        1 => Just(Method::OPTIONS),
    ]
}

fn authorization() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        4 => Just(Some(format!("Bearer {}", token("fuzzer")).into_bytes())),
        1 => Just(None),
        1 => proptest::collection::vec(any::<u8>(), 0..120).prop_map(Some),
        1 => "Bearer [ -~]{0,80}".prop_map(|s| Some(s.into_bytes())),
    ]
}

fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        Just(Some("application/octet-stream")),
        Just(Some("application/x-protobuf")),
        Just(Some("text/plain; charset=\u{1F600}")),
        Just(None),
    ]
}

type Case = (
    Method,
    String,
    Option<Vec<u8>>,
    Option<&'static str>,
    Vec<u8>,
);

/// Sends `case`; answers its status, or `None` when the request itself
/// cannot be built (a path or header the `http` crate refuses never reaches
/// a server either).
async fn send(service: &VssService, case: Case) -> Option<StatusCode> {
    let (method, path, auth, content_type, body) = case;
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(auth) = auth {
        let value = http::HeaderValue::from_bytes(&auth).ok()?;
        builder = builder.header(http::header::AUTHORIZATION, value);
    }
    if let Some(content_type) = content_type {
        let value = http::HeaderValue::from_bytes(content_type.as_bytes()).ok()?;
        builder = builder.header(http::header::CONTENT_TYPE, value);
    }
    let request = builder.body(Full::new(Bytes::from(body))).ok()?;
    let response = service.handle(request).await;
    let status = response.status();
    // The body is complete and readable whatever the status.
    response.into_body().collect().await.unwrap();
    Some(status)
}

/// A normal client's put and get, answered as usual.
async fn still_serves(service: &VssService, key: &str) {
    let put = PutObjectRequest {
        store_id: "check".into(),
        global_version: None,
        transaction_items: vec![KeyValue {
            key: key.into(),
            version: -1,
            value: Bytes::from_static(b"ok"),
        }],
        delete_items: vec![],
    };
    let auth = format!("Bearer {}", token("checker"));
    let request = |path: &str, body: Vec<u8>| {
        Request::post(path)
            .header(http::header::AUTHORIZATION, auth.as_str())
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let response = service
        .handle(request("/vss/putObjects", put.encode_to_vec()))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let get = GetObjectRequest {
        store_id: "check".into(),
        key: key.into(),
    };
    let response = service
        .handle(request("/vss/getObject", get.encode_to_vec()))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let value = GetObjectResponse::decode(body).unwrap().value.unwrap();
    assert_eq!(&value.value[..], b"ok");
}

fn fuzz(store: Arc<dyn KvStore>, runtime: &tokio::runtime::Runtime) {
    let service = VssService::new(store, Arc::new(TokenAuthorizer), HttpConfig::default());
    let mut runner = fuzz_runner();
    let cases = runner.config().cases;
    let strategy = (method(), path(), authorization(), content_type(), body());
    let sent = std::sync::atomic::AtomicU64::new(0);
    runner
        .run(&strategy, |case| {
            let shown = format!("{case:?}");
            if let Some(status) = runtime.block_on(send(&service, case)) {
                sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                prop_assert!(!status.is_server_error(), "{status} for {shown}");
            }
            Ok(())
        })
        .unwrap();
    // Most cases are real requests, not ones the http crate refused to build.
    let sent = sent.into_inner();
    assert!(
        sent >= u64::from(cases) / 2,
        "only {sent} requests were sent"
    );
    runtime.block_on(still_serves(&service, "after"));
}

#[test]
fn arbitrary_requests_never_get_a_5xx_on_memory() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    fuzz(Arc::new(MemoryStore::new()), &runtime);
}

#[test]
fn arbitrary_requests_never_get_a_5xx_on_sqlite() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = runtime
        .block_on(vss_backend_sqlite::SqliteStore::open(
            vss_backend_sqlite::SqliteConfig::new(dir.path().join("fuzz.sqlite3")),
        ))
        .unwrap();
    let store = Arc::new(store);
    fuzz(store.clone(), &runtime);
    runtime.block_on(store.close()).unwrap();
}
