//! Rate limits over real connections: per client address before
//! authentication (behind trusted proxies, by `X-Forwarded-For`), per user
//! after it, reads and writes apart; 429 with INTERNAL and `Retry-After`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::num::NonZeroU32;
use std::sync::Arc;

use common::*;
use http::StatusCode;
use vss_core::proto::{ErrorCode, GetObjectRequest, KeyValue, PutObjectRequest};
use vss_http::{HttpConfig, Rate, RateLimits};

fn rate(per_second: u32, burst: u32) -> Option<Rate> {
    Some(Rate {
        per_second: NonZeroU32::new(per_second).unwrap(),
        burst: NonZeroU32::new(burst).unwrap(),
    })
}

fn put_body(key: &str) -> Vec<u8> {
    use prost::Message;
    PutObjectRequest {
        store_id: "s".into(),
        global_version: None,
        transaction_items: vec![KeyValue {
            key: key.into(),
            version: -1,
            value: bytes::Bytes::from_static(b"v"),
        }],
        delete_items: vec![],
    }
    .encode_to_vec()
}

fn get_body() -> Vec<u8> {
    use prost::Message;
    GetObjectRequest {
        store_id: "s".into(),
        key: "k".into(),
    }
    .encode_to_vec()
}

async fn start(limits: RateLimits) -> TestServer {
    TestServer::start(
        Arc::new(vss_core::MemoryStore::new()),
        Arc::new(TokenAuthorizer),
        HttpConfig::default().with_rate_limits(limits),
    )
    .await
}

fn assert_limited(answer: &Answer) {
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(answer.has_protocol_header());
    let error = answer.error();
    assert_eq!(error.error_code, ErrorCode::InternalServerException as i32);
    assert!(error.message.contains("retry after"), "{}", error.message);
    let retry_after: u64 = answer.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "{retry_after}");
}

#[tokio::test]
async fn an_address_over_its_write_budget_gets_429_before_authentication() {
    // 2 at once, then 1 a second: far below what the test sends.
    let server = start(RateLimits {
        per_ip_writes: Some(Rate {
            per_second: NonZeroU32::new(1).unwrap(),
            burst: NonZeroU32::new(2).unwrap(),
        }),
        ..RateLimits::default()
    })
    .await;
    let url = server.url("/vss/putObjects");
    let auth = format!("Bearer {}", token("alice"));
    for key in ["a", "b"] {
        let answer = send("POST", &url, &[("authorization", &auth)], put_body(key)).await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    // Over the budget, whoever asks: even without a credential (no auth work is done).
    assert_limited(&send("POST", &url, &[("authorization", &auth)], put_body("c")).await);
    assert_limited(&send("POST", &url, &[], put_body("c")).await);
    // Reads have a budget of their own (none here).
    let get = send(
        "POST",
        &server.url("/vss/getObject"),
        &[("authorization", &auth)],
        get_body(),
    )
    .await;
    assert_eq!(get.status, StatusCode::NOT_FOUND);
    // The server keeps serving, and counts the refusals.
    server.stop().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let server = start(RateLimits {
        per_ip_reads: rate(1, 1),
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..RateLimits::default()
    })
    .await;
    let url = server.url("/vss/getObject");
    let auth = format!("Bearer {}", token("alice"));
    let from = |client: &'static str| {
        [
            ("authorization", auth.clone()),
            ("x-forwarded-for", client.to_string()),
        ]
    };
    let ask = |headers: [(&'static str, String); 2]| {
        let url = url.clone();
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            send("POST", &url, &headers, get_body()).await
        }
    };
    assert_eq!(ask(from("203.0.113.1")).await.status, StatusCode::NOT_FOUND);
    assert_limited(&ask(from("203.0.113.1")).await);
    // Another client through the same proxy is not held back; a forged
    // left-most hop does not make a new client.
    assert_eq!(ask(from("203.0.113.2")).await.status, StatusCode::NOT_FOUND);
    assert_limited(&ask(from("198.51.100.9, 203.0.113.2")).await);
    server.stop().await;
}

#[tokio::test]
async fn a_user_over_its_budget_is_refused_and_other_users_are_not() {
    let server = start(RateLimits {
        per_user_writes: rate(1, 1),
        ..RateLimits::default()
    })
    .await;
    let url = server.url("/vss/putObjects");
    let alice = format!("Bearer {}", token("alice"));
    let bob = format!("Bearer {}", token("bob"));
    assert_eq!(
        send("POST", &url, &[("authorization", &alice)], put_body("a"))
            .await
            .status,
        StatusCode::OK
    );
    assert_limited(&send("POST", &url, &[("authorization", &alice)], put_body("a")).await);
    assert_eq!(
        send("POST", &url, &[("authorization", &bob)], put_body("a"))
            .await
            .status,
        StatusCode::OK
    );
    // Refused credentials are answered AUTH, never spending a user's budget.
    let stranger = send(
        "POST",
        &url,
        &[("authorization", "Bearer nope")],
        put_body("a"),
    )
    .await;
    assert_eq!(stranger.status, StatusCode::UNAUTHORIZED);
    server.stop().await;
}

/// An endpoint that says it writes when asked `?write`.
struct Counter;

#[async_trait::async_trait]
impl vss_http::Endpoint for Counter {
    async fn respond(
        &self,
        _: &http::request::Parts,
    ) -> http::Response<http_body_util::Full<bytes::Bytes>> {
        http::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(b"ok")))
    }

    fn writes(&self, request: &http::request::Parts) -> bool {
        request.uri.query() == Some("write")
    }
}

#[tokio::test]
async fn endpoints_count_against_the_address_budget_as_they_declare() {
    let service = vss_http::VssService::new(
        Arc::new(vss_core::MemoryStore::new()),
        Arc::new(TokenAuthorizer),
        HttpConfig::default().with_rate_limits(RateLimits {
            per_ip_writes: rate(1, 1),
            ..RateLimits::default()
        }),
    )
    .with_endpoint("/extra", Arc::new(Counter))
    .unwrap();
    let server = TestServer::serving(service).await;
    // Reads have no budget here: any number pass.
    for _ in 0..5 {
        assert_eq!(
            send("GET", &server.url("/extra"), &[], vec![]).await.status,
            StatusCode::OK
        );
    }
    // One write, then the address is over its write budget, at the endpoint
    // and at the VSS calls alike.
    assert_eq!(
        send("GET", &server.url("/extra?write"), &[], vec![])
            .await
            .status,
        StatusCode::OK
    );
    assert_limited(&send("GET", &server.url("/extra?write"), &[], vec![]).await);
    assert_limited(&send("POST", &server.url("/vss/putObjects"), &[], put_body("k")).await);
    server.stop().await;
}
