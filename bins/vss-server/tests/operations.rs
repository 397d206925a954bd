//! Operating the server: probes, Prometheus metrics, request ids and logs,
//! over HTTP against running servers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use common::child;
use common::*;
use vss_client_ng::client::VssClient;
use vss_client_ng::error::VssError as ClientError;
use vss_client_ng::headers::FixedHeaders;
use vss_client_ng::types::{
    DeleteObjectRequest, GetObjectRequest, KeyValue, ListKeyVersionsRequest, PutObjectRequest,
};
use vss_conformance::HttpStore;
use vss_core::proto::GetObjectRequest as CoreGet;
use vss_core::{KvStore, UserToken};
use vss_server::{AuthConfig, Config};

const ISSUER_PEM: &str =
    include_str!("../../../crates/vss-auth/tests/fixtures/issuer-es256-private.pem");

/// One sample of the Prometheus text format.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of a `/metrics` text, and the families declared as histograms.
fn parse_metrics(text: &str) -> (Vec<Sample>, Vec<String>) {
    let mut samples = Vec::new();
    let mut histograms = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.strip_suffix(" histogram") {
                histograms.push(name.to_string());
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels
                    .trim_end_matches('}')
                    .split("\",")
                    .filter(|l| !l.is_empty())
                    .map(|l| {
                        let (k, v) = l.split_once('=').unwrap();
                        (k.to_string(), v.trim_matches('"').to_string())
                    })
                    .collect();
                (name, labels)
            }
            None => (series, BTreeMap::new()),
        };
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value: value.parse().unwrap(),
        });
    }
    (samples, histograms)
}

/// The value of `name` whose labels include `labels`, if one is there.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

/// Runs `promtool ARGS` (with `stdin` fed to it) when promtool is there, and
/// asserts that it succeeds. scripts/test installs it (Debian's prometheus
/// package); under CI=true it must be there.
fn promtool(args: &[&str], stdin: &str) {
    use std::io::Write;
    let promtool = std::env::var("VSS_TEST_PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let child = std::process::Command::new(&promtool)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(err) => {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "promtool is needed under CI=true (scripts/test installs it): {err}"
            );
            eprintln!("SKIPPED promtool {args:?}: {promtool} cannot run: {err}");
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `promtool check metrics` accepts `text`.
fn promtool_accepts(text: &str) {
    promtool(&["check", "metrics"], text);
}

#[test]
fn the_documented_prometheus_configuration_and_alerts_are_valid() {
    let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/prometheus");
    promtool(&["check", "rules", &format!("{docs}/vss-alerts.yml")], "");
    promtool(&["check", "config", &format!("{docs}/prometheus.yml")], "");
}

fn jwt_config(dir: &std::path::Path) -> Config {
    Config {
        auth: AuthConfig::jwt(PUBLIC_PEM),
        http: vss_http::HttpConfig::default().with_max_body_size(4096),
        ..config(sqlite(dir))
    }
}

fn jwt_client(url: &str, sub: &str) -> VssClient<ClientPolicy> {
    let headers = HashMap::from([(
        "Authorization".to_string(),
        format!("Bearer {}", token(sub)),
    )]);
    VssClient::new_with_headers(
        url.to_string(),
        client_policy(),
        Arc::new(FixedHeaders::new(headers)),
    )
}

fn item(key: &str, version: i64, value: &[u8]) -> KeyValue {
    KeyValue {
        key: key.into(),
        version,
        value: value.to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer_without_credentials_outside_the_base_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = jwt_config(dir.path());
    config.http = config.http.with_base_path("/api/vss").unwrap();
    let server = start(config).await;
    for path in ["/health", "/livez"] {
        let answer = get(server.addr, path).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, "ok\n"),
            "{path}"
        );
    }
    for path in ["/ready", "/readyz"] {
        let answer = get(server.addr, path).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, "ready\n"),
            "{path}"
        );
    }
    let head = plain_request(server.addr, "HEAD", "/ready", &[], b"").await;
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    let post = plain_request(server.addr, "POST", "/health", &[], b"x").await;
    assert_eq!(post.status, 405);
    // The VSS calls still want credentials, and live under the base path only.
    let anonymous = plain_request(server.addr, "POST", "/api/vss/getObject", &[], b"").await;
    assert_eq!(anonymous.status, 401);
    let outside = plain_request(server.addr, "POST", "/getObject", &[], b"").await;
    assert_eq!(outside.status, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_answers_503_once_shutdown_begins_while_requests_are_still_served() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        shutdown_drain: Duration::from_secs(3),
        ..config(sqlite(dir.path()))
    };
    let mut server = start(config).await;
    assert_eq!(get(server.addr, "/ready").await.status, 200);
    server.trigger_stop();
    let addr = server.addr;
    poll_until(
        "readiness 503 after the shutdown signal",
        Duration::from_secs(3),
        || async move { get(addr, "/ready").await.status == 503 },
    )
    .await;
    // Draining: balancers take the instance out; requests are still answered.
    assert_eq!(get(server.addr, "/health").await.status, 200);
    HttpStore::new(&server.url)
        .unwrap()
        .get(
            &UserToken::new("any").unwrap(),
            CoreGet {
                store_id: "s".into(),
                key: "global_version".into(),
            },
        )
        .await
        .unwrap();
    let outcome = server.finished().await.unwrap();
    assert_eq!(outcome.aborted, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_every_request_by_operation_and_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(jwt_config(dir.path())).await;
    let before = parse_metrics(&get(server.addr, "/metrics").await.body).0;
    let client = jwt_client(&server.url, "metrics-user");
    client
        .put_object(&PutObjectRequest {
            store_id: "metrics-store".into(),
            global_version: None,
            transaction_items: vec![item("metrics-key", 0, b"metrics-value")],
            delete_items: vec![],
        })
        .await
        .unwrap();
    let conflict = client
        .put_object(&PutObjectRequest {
            store_id: "metrics-store".into(),
            global_version: None,
            transaction_items: vec![item("metrics-key", 0, b"again")],
            delete_items: vec![],
        })
        .await;
    assert!(
        matches!(conflict, Err(ClientError::ConflictError(_))),
        "{conflict:?}"
    );
    let get_object = |key: &str| GetObjectRequest {
        store_id: "metrics-store".into(),
        key: key.into(),
    };
    client.get_object(&get_object("metrics-key")).await.unwrap();
    let missing = client.get_object(&get_object("missing")).await;
    assert!(
        matches!(missing, Err(ClientError::NoSuchKeyError(_))),
        "{missing:?}"
    );
    client
        .list_key_versions(&ListKeyVersionsRequest {
            store_id: "metrics-store".into(),
            key_prefix: None,
            page_size: None,
            page_token: None,
        })
        .await
        .unwrap();
    client
        .delete_object(&DeleteObjectRequest {
            store_id: "metrics-store".into(),
            key_value: Some(item("metrics-key", -1, b"")),
        })
        .await
        .unwrap();
    // No credential (one failure of method `missing`), and a body over the limit.
    let anonymous = plain_request(server.addr, "POST", "/vss/getObject", &[], b"").await;
    assert_eq!(anonymous.status, 401);
    let bearer = format!("Bearer {}", token("metrics-user"));
    let big = plain_request(
        server.addr,
        "POST",
        "/vss/putObjects",
        &[("Authorization", &bearer)],
        &[0; 5000],
    )
    .await;
    assert_eq!(big.status, 413);
    assert_eq!(get(server.addr, "/ready").await.status, 200);

    let text = get(server.addr, "/metrics").await.body;
    let (after, histograms) = parse_metrics(&text);
    let moved = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels).unwrap_or(0.0) - value(&before, name, labels).unwrap_or(0.0)
    };
    for (operation, outcome) in [
        ("putObjects", "ok"),
        ("putObjects", "conflict"),
        ("getObject", "ok"),
        ("getObject", "no_such_key"),
        ("listKeyVersions", "ok"),
        ("deleteObject", "ok"),
        ("getObject", "auth"),
        ("putObjects", "too_large"),
    ] {
        let labels = [("operation", operation), ("outcome", outcome)];
        assert_eq!(moved("vss_http_requests_total", &labels), 1.0, "{labels:?}");
    }
    // The store saw only what passed authentication and the body limit.
    for (operation, outcome, count) in [
        ("putObjects", "ok", 1.0),
        ("putObjects", "conflict", 1.0),
        ("getObject", "ok", 1.0),
        ("getObject", "no_such_key", 1.0),
        ("getObject", "auth", 0.0),
        ("ready", "ok", 1.0),
    ] {
        let labels = [("operation", operation), ("outcome", outcome)];
        assert_eq!(
            moved("vss_store_operations_total", &labels),
            count,
            "{labels:?}"
        );
    }
    assert_eq!(
        moved("vss_auth_failures_total", &[("method", "missing")]),
        1.0
    );
    assert_eq!(
        moved(
            "vss_http_probes_total",
            &[("probe", "readiness"), ("status", "200")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "vss_http_requests_in_flight",
            &[("operation", "putObjects")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &after,
            "vss_build_info",
            &[("backend", "sqlite"), ("auth", "jwt")]
        ),
        Some(1.0)
    );
    assert!(value(&after, "process_resident_memory_bytes", &[]).unwrap() > 0.0);
    assert!(value(&after, "process_open_fds", &[]).unwrap() > 0.0);
    // Every histogram moved.
    for family in [
        "vss_http_request_duration_seconds",
        "vss_http_request_body_bytes",
        "vss_http_response_body_bytes",
        "vss_store_operation_duration_seconds",
        "vss_sqlite_write_batch_size",
    ] {
        assert!(
            histograms.iter().any(|h| h == family),
            "{family} is not a histogram"
        );
    }
    for family in &histograms {
        let count: f64 = after
            .iter()
            .filter(|s| s.name == format!("{family}_count"))
            .map(|s| s.value)
            .sum();
        assert!(count > 0.0, "{family} did not move");
    }
    // No label carries the user, the store, a key or a value.
    for secret in [
        "metrics-user",
        "metrics-store",
        "metrics-key",
        "metrics-value",
    ] {
        assert!(!text.contains(secret), "/metrics holds {secret}");
    }
    promtool_accepts(&text);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_probes_may_have_an_address_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        metrics_bind_address: Some("127.0.0.1:0".parse().unwrap()),
        ..config(sqlite(dir.path()))
    };
    let server = start(config).await;
    let ops = server.operations_addr.unwrap();
    assert_ne!(ops, server.addr);
    let metrics = get(ops, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        metrics.headers
    );
    assert!(metrics.body.contains("vss_build_info"));
    assert_eq!(get(ops, "/ready").await.status, 200);
    assert_eq!(get(ops, "/health").await.status, 200);
    // Not on the main address; and no VSS calls on the operations address.
    assert_eq!(get(server.addr, "/metrics").await.status, 404);
    assert_eq!(
        plain_request(ops, "POST", "/vss/getObject", &[], b"")
            .await
            .status,
        404
    );
    // Both stop on one shutdown.
    server.stop().await;
    assert!(tokio::net::TcpStream::connect(ops).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        metrics: false,
        ..config(sqlite(dir.path()))
    };
    let server = start(config).await;
    assert_eq!(get(server.addr, "/metrics").await.status, 404);
    assert_eq!(get(server.addr, "/ready").await.status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_request_id_kept_or_made_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(sqlite(dir.path()))).await;
    for path in ["/vss/getObject", "/health", "/metrics", "/nowhere"] {
        let kept = plain_request(
            server.addr,
            "POST",
            path,
            &[("x-request-id", "trace-42.a:b_c")],
            b"",
        )
        .await;
        assert_eq!(
            kept.header("x-request-id"),
            Some("trace-42.a:b_c"),
            "{path}"
        );
        let made_up = plain_request(
            server.addr,
            "POST",
            path,
            &[("x-request-id", "not safe; <script>")],
            b"",
        )
        .await;
        let id = made_up.header("x-request-id").unwrap();
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{path}: {id}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_timeout_is_counted_as_timeout() {
    let config = Config {
        http: vss_http::HttpConfig::default().with_request_timeout(Duration::from_millis(200)),
        ..config(vss_server::BackendConfig::Memory)
    };
    // A database that hangs: the put waits until released.
    let (store, _entered) = HeldStore::new();
    let server = start_with_store(config, store.clone()).await;
    let err = HttpStore::new(&server.url)
        .unwrap()
        .put(
            &UserToken::new("any").unwrap(),
            vss_core::proto::PutObjectRequest::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, vss_core::VssError::Internal(_)), "{err}");
    let (samples, _) = parse_metrics(&get(server.addr, "/metrics").await.body);
    assert_eq!(
        value(
            &samples,
            "vss_http_requests_total",
            &[("operation", "putObjects"), ("outcome", "timeout")]
        ),
        Some(1.0)
    );
    store.release.notify_one();
    server.stop().await;
}

/// Runs vss-server with `args` (authentication on, debug logs), lets `exercise`
/// talk to it, scrapes `/metrics`, stops it, and returns its log and the metrics.
async fn logs_and_metrics_of<F, Fut>(
    args: &[&str],
    log_format: &str,
    exercise: F,
) -> (String, String)
where
    F: FnOnce(String, std::net::SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vss.sqlite3");
    let mut all = vec![
        "--bind-address",
        "127.0.0.1:0",
        "--sqlite-path",
        db.to_str().unwrap(),
        "--log-level",
        "debug",
        "--log-format",
        log_format,
    ];
    all.extend_from_slice(args);
    let server = child::start(dir.path(), &all, &[]).await;
    let addr: std::net::SocketAddr = server
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/vss")
        .parse()
        .unwrap();
    exercise(server.url.clone(), addr).await;
    let metrics = get(addr, "/metrics").await.body;
    let (code, log) = server.signal("TERM").await;
    assert_eq!(code, Some(0), "{log}");
    (log, metrics)
}

/// A wallet's session: writes, reads, lists and deletes `secret`-named data.
async fn session(client: &VssClient<ClientPolicy>, secret: &str) {
    let store_id = format!("store-{secret}");
    let key = format!("key-{secret}");
    client
        .put_object(&PutObjectRequest {
            store_id: store_id.clone(),
            global_version: Some(0),
            transaction_items: vec![item(&key, 0, format!("value-{secret}").as_bytes())],
            delete_items: vec![],
        })
        .await
        .unwrap();
    client
        .get_object(&GetObjectRequest {
            store_id: store_id.clone(),
            key: key.clone(),
        })
        .await
        .unwrap();
    let missing = client
        .get_object(&GetObjectRequest {
            store_id: store_id.clone(),
            key: format!("missing-{secret}"),
        })
        .await;
    assert!(matches!(missing, Err(ClientError::NoSuchKeyError(_))));
    client
        .list_key_versions(&ListKeyVersionsRequest {
            store_id: store_id.clone(),
            key_prefix: Some(format!("key-{secret}")),
            page_size: None,
            page_token: None,
        })
        .await
        .unwrap();
    client
        .delete_object(&DeleteObjectRequest {
            store_id,
            key_value: Some(item(&key, -1, b"")),
        })
        .await
        .unwrap();
}

/// Asserts that a getObject carrying the credential `authorization` is refused (401).
async fn assert_refused(addr: std::net::SocketAddr, authorization: &str) {
    let refused = plain_request(
        addr,
        "POST",
        "/vss/getObject",
        &[("Authorization", authorization)],
        b"",
    )
    .await;
    assert_eq!(refused.status, 401);
}

/// Asserts that neither the log nor the metrics hold `secret` or a credential.
fn assert_no_secrets(log: &str, metrics: &str, secret: &str) {
    assert_holds_no_secrets("the log", log, &[secret]);
    assert_holds_no_secrets("/metrics", metrics, &[secret]);
}

/// Asserts that `text` holds none of `secrets`, no JWT (`eyJ...`: base64 of
/// `{"`), and no run of 64 or more hex digits (public keys, signatures,
/// LNURL-auth challenges).
fn assert_holds_no_secrets(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "{what} holds {secret}:\n{text}");
    }
    assert!(!text.contains("eyJ"), "{what} holds a JWT:\n{text}");
    let longest_hex = text
        .split(|c: char| !c.is_ascii_hexdigit())
        .map(str::len)
        .max()
        .unwrap_or(0);
    assert!(
        longest_hex < 64,
        "{what} holds a key, signature or challenge:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_user_store_key_value_or_credential_reaches_logs_or_metrics() {
    use bitcoin::bip32::Xpriv;
    use vss_client_ng::headers::sigs_auth::SigsAuthProvider;
    use vss_client_ng::headers::LnurlAuthToJwtProvider;

    let keys = tempfile::tempdir().unwrap();
    let jwt_key = keys.path().join("jwt.pem");
    std::fs::write(&jwt_key, PUBLIC_PEM).unwrap();
    let issuer_key = keys.path().join("issuer.pem");
    std::fs::write(&issuer_key, ISSUER_PEM).unwrap();

    // JWT, in JSON logs; with a forged token refused on the way.
    let secret = "jwtsecret8";
    let (log, metrics) = logs_and_metrics_of(
        &[
            "--auth",
            "jwt",
            "--jwt-rsa-pem-file",
            jwt_key.to_str().unwrap(),
        ],
        "json",
        |url, addr| async move {
            session(&jwt_client(&url, &format!("user-{secret}")), secret).await;
            let forged = format!("Bearer {}x", token(&format!("user-{secret}")));
            assert_refused(addr, &forged).await;
        },
    )
    .await;
    assert!(
        log.contains("\"request_id\""),
        "JSON lines carry the request id:\n{log}"
    );
    assert!(log.contains("\"error_code\":\"no_such_key\""), "{log}");
    assert_no_secrets(&log, &metrics, secret);

    // Signature auth, in text logs; a signature that does not verify is refused.
    let secret = "sigssecret9";
    let (log, metrics) = logs_and_metrics_of(&["--auth", "sigs"], "text", |url, addr| async move {
        let signer = VssClient::new_with_headers(
            url,
            client_policy(),
            Arc::new(SigsAuthProvider::new(
                bitcoin::secp256k1::SecretKey::from_slice(&[9; 32]).unwrap(),
                HashMap::new(),
            )),
        );
        session(&signer, secret).await;
        let forged = format!("02{}{}1700000000", "ab".repeat(32), "cd".repeat(64));
        assert_refused(addr, &forged).await;
    })
    .await;
    assert!(
        log.contains("request_id="),
        "text lines carry the request id:\n{log}"
    );
    assert_no_secrets(&log, &metrics, secret);
    assert!(
        metrics.contains("vss_auth_failures_total{method=\"sigs\"} 1"),
        "{metrics}"
    );

    // LNURL-auth: the login (challenge, signature, linking key) and the issued JWT.
    let secret = "lnurlsecret7";
    let (log, metrics) = logs_and_metrics_of(
        &[
            "--auth",
            "lnurl",
            "--lnurl-auth-private-key-file",
            issuer_key.to_str().unwrap(),
        ],
        "text",
        |url, addr| async move {
            let port = addr.port();
            let lnurl = VssClient::new_with_headers(
                url.replace("127.0.0.1", "localhost"),
                client_policy(),
                Arc::new(LnurlAuthToJwtProvider::new(
                    Xpriv::new_master(bitcoin::Network::Testnet, &[7; 32]).unwrap(),
                    format!("http://localhost:{port}/lnurl-auth"),
                    HashMap::new(),
                )),
            );
            session(&lnurl, secret).await;
        },
    )
    .await;
    assert_no_secrets(&log, &metrics, secret);
}
