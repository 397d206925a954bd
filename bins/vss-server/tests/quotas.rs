//! Quotas and value sizes over HTTP: what a client sees (507 / 413 with
//! INVALID_REQUEST, which vss-client-ng does not retry), configured through
//! the server's settings.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod backend_support;
mod common;

use std::sync::Arc;

use common::*;
use prost::Message;
use vss_client_ng::client::VssClient;
use vss_client_ng::error::VssError as ClientError;
use vss_client_ng::types::{DeleteObjectRequest, KeyValue, PutObjectRequest};
use vss_core::proto::{ErrorCode, ErrorResponse};
use vss_core::{MemoryStore, Quota, QuotaPolicy, StoreLimits};
use vss_server::{Config, Server, ServerError};

fn kv(key: &str, version: i64, len: usize) -> KeyValue {
    KeyValue {
        key: key.into(),
        version,
        value: vec![b'q'; len],
    }
}

fn put(items: Vec<KeyValue>, deletes: Vec<KeyValue>) -> PutObjectRequest {
    PutObjectRequest {
        store_id: "wallet".into(),
        global_version: None,
        transaction_items: items,
        delete_items: deletes,
    }
}

/// The wire form of a put, for a plain HTTP request.
fn put_body(key: &str, len: usize) -> Vec<u8> {
    vss_core::proto::PutObjectRequest {
        store_id: "wallet".into(),
        global_version: None,
        transaction_items: vec![vss_core::proto::KeyValue {
            key: key.into(),
            version: -1,
            value: vec![b'p'; len].into(),
        }],
        delete_items: vec![],
    }
    .encode_to_vec()
}

/// The status and the decoded error of a plain `putObjects`.
async fn raw_put(addr: std::net::SocketAddr, body: &[u8]) -> (u16, ErrorResponse) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /vss/putObjects HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let error = ErrorResponse::decode(&raw[split + 4..]).unwrap_or_default();
    (status, error)
}

fn quota_config(max_bytes: u64) -> Config {
    let mut config = config(vss_server::BackendConfig::Memory);
    config.quotas = QuotaPolicy {
        default: Quota {
            max_bytes: Some(max_bytes),
            max_keys: None,
        },
        users: Default::default(),
    };
    config
}

#[tokio::test]
async fn over_quota_is_507_invalid_request_and_a_full_user_can_clean_up() {
    let server = start(quota_config(1000)).await;
    let client = VssClient::new(server.url.clone(), client_policy());
    // `a` and 899 bytes: 900 of 1000.
    client
        .put_object(&put(vec![kv("a", 0, 899)], vec![]))
        .await
        .unwrap();

    let refused = client.put_object(&put(vec![kv("b", 0, 100)], vec![])).await;
    match refused {
        Err(ClientError::InvalidRequestError(message)) => assert!(
            message.contains("1001") && message.contains("1000") && message.contains("900"),
            "{message}"
        ),
        other => panic!("expected the quota refusal, got {other:?}"),
    }
    let (status, error) = raw_put(server.addr, &put_body("b", 100)).await;
    assert_eq!(status, 507);
    assert_eq!(error.error_code, ErrorCode::InvalidRequestException as i32);
    assert!(error.message.contains("quota"), "{}", error.message);

    // Shrinking, deleting in a put and deleteObject all work at the limit.
    client
        .put_object(&put(vec![kv("a", 1, 500)], vec![]))
        .await
        .unwrap();
    client
        .put_object(&put(vec![kv("b", 0, 97)], vec![kv("a", 2, 0)]))
        .await
        .unwrap();
    client
        .delete_object(&DeleteObjectRequest {
            store_id: "wallet".into(),
            key_value: Some(kv("b", -1, 0)),
        })
        .await
        .unwrap();
    client
        .put_object(&put(vec![kv("c", 0, 999)], vec![]))
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn a_value_larger_than_the_store_holds_is_413_before_anything_is_written() {
    let store = Arc::new(MemoryStore::with_limits(StoreLimits {
        max_value_size: 4096,
        enforces_quotas: true,
        ..StoreLimits::default()
    }));
    let server = start_with_store(config(vss_server::BackendConfig::Memory), store).await;
    let (status, error) = raw_put(server.addr, &put_body("big", 4097)).await;
    assert_eq!(status, 413);
    assert_eq!(error.error_code, ErrorCode::InvalidRequestException as i32);
    assert!(error.message.contains("4096"), "{}", error.message);
    let (status, _) = raw_put(server.addr, &put_body("fits", 4096)).await;
    assert_eq!(status, 200);

    let client = VssClient::new(server.url.clone(), client_policy());
    let too_large = client
        .put_object(&put(vec![kv("x", 0, 1), kv("big", 0, 5000)], vec![]))
        .await;
    assert!(
        matches!(too_large, Err(ClientError::InvalidRequestError(_))),
        "{too_large:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn quotas_over_a_store_that_does_not_enforce_them_stop_startup() {
    let store = Arc::new(MemoryStore::with_limits(StoreLimits {
        enforces_quotas: false,
        ..StoreLimits::default()
    }));
    let refused = Server::start_with_store(quota_config(10), store).await;
    let Err(err) = refused else {
        panic!("startup must fail")
    };
    assert!(matches!(err, ServerError::Quotas(_)), "{err}");
    assert!(err.to_string().contains("quota_config"), "{err}");
}

#[tokio::test]
async fn quota_settings_and_the_overrides_file_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("quotas.toml");
    std::fs::write(&file, "[\"vip\"]\nmax_bytes = \"unlimited\"\n").unwrap();
    let config = Config::from_sources(
        [
            "vss-server",
            "--backend",
            "memory",
            "--quota-overrides-file",
            file.to_str().unwrap(),
        ],
        &|name| match name {
            "VSS_QUOTA_MAX_BYTES_PER_USER" => Some("1_000_000".into()),
            "VSS_QUOTA_MAX_KEYS_PER_USER" => Some("500".into()),
            _ => None,
        },
    )
    .unwrap();
    let user = |name: &str| vss_core::UserToken::new(name).unwrap();
    assert_eq!(
        config.quotas.for_user(&user("anyone")),
        Quota {
            max_bytes: Some(1_000_000),
            max_keys: Some(500)
        }
    );
    assert_eq!(
        config.quotas.for_user(&user("vip")),
        Quota {
            max_bytes: None,
            max_keys: Some(500)
        }
    );
    // A mistake names the setting and the file.
    std::fs::write(&file, "[\"vip\"]\nmax_bytes = -3\n").unwrap();
    let err = Config::from_sources(
        [
            "vss-server",
            "--quota-overrides-file",
            file.to_str().unwrap(),
        ],
        &|_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("VSS_QUOTA_OVERRIDES_FILE")
            && err.contains("quotas.toml")
            && err.contains("negative"),
        "{err}"
    );
    // Without settings nobody is limited.
    let open = Config::from_sources(["vss-server"], &|_| None).unwrap();
    assert!(open.quotas.is_unlimited());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_holds_under_64_concurrent_large_puts_in_memory() {
    backend_support::quota_holds_under_concurrent_large_puts(config(
        vss_server::BackendConfig::Memory,
    ))
    .await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_holds_under_64_concurrent_large_puts_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    backend_support::quota_holds_under_concurrent_large_puts(config(sqlite(dir.path()))).await;
}

#[test]
fn rate_limit_settings_are_read_and_a_bad_proxy_is_named() {
    let config = Config::from_sources(
        [
            "vss-server",
            "--rate-limit-per-user-writes-per-sec",
            "5",
            "--rate-limit-trusted-proxies",
            "10.0.0.0/8, 192.0.2.7",
        ],
        &|name| (name == "VSS_RATE_LIMIT_BURST_SECS").then(|| "3".to_string()),
    )
    .unwrap();
    let limits = config.http.rate_limits();
    let writes = limits.per_user_writes.unwrap();
    assert_eq!((writes.per_second.get(), writes.burst.get()), (5, 15));
    assert!(limits.per_ip_reads.is_none() && limits.per_user_reads.is_none());
    assert_eq!(limits.trusted_proxies.len(), 2);
    let err = Config::from_sources(
        [
            "vss-server",
            "--rate-limit-trusted-proxies",
            "10.0.0.0/8,lb",
        ],
        &|_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("--rate-limit-trusted-proxies") && err.contains("`lb`"),
        "{err}"
    );
    // Off unless asked for.
    let open = Config::from_sources(["vss-server"], &|_| None).unwrap();
    assert!(!open.http.rate_limits().any());
}

/// The memory budget for bodies: a body waits for the budget others hold,
/// and is told to retry (503, INTERNAL, Retry-After) when it stays taken; a
/// body larger than all of it is 413; the budget comes back once answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_wait_for_the_memory_budget_and_are_told_to_retry() {
    let (store, entered) = HeldStore::new();
    let mut config = config(vss_server::BackendConfig::Memory);
    config.http = config.http.with_body_budget(Some(vss_http::BodyBudget {
        bytes: 100 << 10,
        wait: std::time::Duration::from_millis(300),
    }));
    let server = start_with_store(config, store.clone()).await;
    // The first body (80 KiB) is held by the store, with its share of the budget.
    let addr = server.addr;
    let first = tokio::spawn(async move { raw_put(addr, &put_body("first", 80 << 10)).await });
    entered.await.unwrap();
    let (status, error) = raw_put(server.addr, &put_body("second", 80 << 10)).await;
    assert_eq!(status, 503);
    assert_eq!(error.error_code, ErrorCode::InternalServerException as i32);
    let (status, error) = raw_put(server.addr, &put_body("huge", 200 << 10)).await;
    assert_eq!(status, 413, "{}", error.message);
    assert!(error.message.contains("budget"), "{}", error.message);
    store.release.notify_waiters();
    assert_eq!(first.await.unwrap().0, 200);
    // Given back: the next body fits (the store no longer holds anyone).
    store.release.notify_one();
    let (status, _) = raw_put(server.addr, &put_body("third", 80 << 10)).await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[test]
fn the_body_budget_is_read_and_its_wait_ends_before_the_request_timeout() {
    let config = Config::from_sources(
        [
            "vss-server",
            "--max-body-bytes-in-flight",
            "1_000_000",
            "--request-timeout-secs",
            "4",
        ],
        &|_| None,
    )
    .unwrap();
    let budget = config.http.body_budget().unwrap();
    assert_eq!(budget.bytes, 1_000_000);
    assert_eq!(budget.wait, std::time::Duration::from_secs(2));
    let off =
        Config::from_sources(["vss-server", "--max-body-bytes-in-flight", "0"], &|_| None).unwrap();
    assert!(off.http.body_budget().is_none());
    let default = Config::from_sources(["vss-server"], &|_| None).unwrap();
    assert_eq!(
        default.http.body_budget().unwrap().bytes,
        vss_http::default_body_budget()
    );
    let err = Config::from_sources(
        [
            "vss-server",
            "--body-budget-wait-secs",
            "30",
            "--request-timeout-secs",
            "30",
        ],
        &|_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("body_budget_wait_secs"), "{err}");
}
