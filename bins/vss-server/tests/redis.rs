//! vss-server on Redis (cargo feature `redis`): its settings, and the
//! conformance suite over HTTP against a real Redis with AOF on (`VSS_TEST_REDIS_URL`).
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod backend_support;
mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use backend_support::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use vss_core::conformance::{self, ModelConfig};
use vss_server::backend::RedisSettings;
use vss_server::config::{ConfigError, Setting};
use vss_server::{BackendConfig, Config, Server, ServerError};

/// The setting `redis_config.KEY`.
fn redis_setting(key: &str) -> Setting {
    *setting(&format!("redis_config.{key}"))
}

fn redis(config: Config) -> RedisSettings {
    match config.backend {
        BackendConfig::Redis(settings) => settings,
        other => panic!("expected the redis backend, got {other:?}"),
    }
}

#[test]
fn settings_come_from_the_environment_the_file_and_flags() {
    let ca = tempfile::NamedTempFile::new().unwrap();
    let ca_path = ca.path().to_str().unwrap();
    let url = "rediss://vss:hunter2@cache:6380/2";
    let expected = RedisSettings {
        url: url.into(),
        allow_volatile: true,
        tls_ca_file: Some(ca.path().to_path_buf()),
        wait_replicas: 1,
        wait_timeout_ms: 500,
    };

    let from_env = load(
        &[],
        &[
            ("VSS_BACKEND", "redis"),
            ("VSS_REDIS_URL", url),
            ("VSS_REDIS_ALLOW_VOLATILE", "true"),
            ("VSS_REDIS_TLS_CA_FILE", ca_path),
            ("VSS_REDIS_WAIT_REPLICAS", "1"),
            ("VSS_REDIS_WAIT_TIMEOUT_MS", "500"),
        ],
    )
    .unwrap();
    let shown = format!("{from_env:?}");
    assert!(!shown.contains("hunter2"), "the password leaks: {shown}");
    assert!(shown.contains("cache:6380"), "{shown}");
    assert_eq!(redis(from_env), expected);

    let f = toml_file(&format!(
        "[server_config]\nbackend = \"redis\"\n[redis_config]\nurl = {}\n\
         allow_volatile = true\ntls_ca_file = {}\nwait_replicas = 1\nwait_timeout_ms = 500\n",
        toml_string(url),
        toml_string(ca_path)
    ));
    let from_file = load(&["--config", f.path().to_str().unwrap()], &[]).unwrap();
    assert_eq!(redis(from_file), expected);

    let from_flags = load(
        &[
            "--backend",
            "redis",
            "--redis-allow-volatile",
            "--redis-tls-ca-file",
            ca_path,
            "--redis-wait-replicas",
            "1",
            "--redis-wait-timeout-ms",
            "500",
        ],
        // The URL has no flag: it may hold the password.
        &[("VSS_REDIS_URL", url)],
    )
    .unwrap();
    assert_eq!(redis(from_flags), expected);
    assert_eq!(redis_setting("url").flag, None);

    // Nothing set: a local Redis, the durability guard on.
    let defaults = redis(load(&["--backend", "redis"], &[]).unwrap());
    assert_eq!(defaults, RedisSettings::default());
    assert_eq!(defaults.url, "redis://127.0.0.1:6379");
    assert!(!defaults.allow_volatile);
    assert_eq!(
        (defaults.wait_replicas, defaults.wait_timeout_ms),
        (0, 2000)
    );
    // Cluster URLs are accepted.
    let cluster = load(
        &["--backend", "redis"],
        &[("VSS_REDIS_URL", "redis-cluster://a:7000?node=b:7001")],
    )
    .unwrap();
    assert_eq!(redis(cluster).url, "redis-cluster://a:7000?node=b:7001");
}

#[test]
fn a_bad_value_is_named() {
    assert_refused("redis", &redis_setting("allow_volatile"), "sometimes");
    assert_refused("redis", &redis_setting("wait_replicas"), "17");
    assert_refused("redis", &redis_setting("wait_timeout_ms"), "0");
    assert_refused(
        "redis",
        &redis_setting("tls_ca_file"),
        "/nonexistent/ca.pem",
    );
    assert_refused("redis", &redis_setting("url"), "http://127.0.0.1:6379");
    // The secret URL is named but never repeated.
    let err = load(
        &[],
        &[
            ("VSS_BACKEND", "redis"),
            ("VSS_REDIS_URL", "https://vss:hunter2@cache"),
        ],
    )
    .unwrap_err();
    assert_names(&err, &redis_setting("url"), "from the environment");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn a_ca_file_needs_a_tls_url() {
    let ca = tempfile::NamedTempFile::new().unwrap();
    let err = load(
        &["--backend", "redis"],
        &[
            ("VSS_REDIS_URL", "redis://cache:6379"),
            ("VSS_REDIS_TLS_CA_FILE", ca.path().to_str().unwrap()),
        ],
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::Conflict(_)), "{err}");
    assert!(err.to_string().contains("VSS_REDIS_TLS_CA_FILE"), "{err}");
    assert!(err.to_string().contains("rediss://"), "{err}");
}

fn redis_config(url: &str, extra: &[(&str, &str)]) -> Config {
    let mut env = vec![
        ("VSS_BIND_ADDRESS", "127.0.0.1:0"),
        ("VSS_BACKEND", "redis"),
        ("VSS_REDIS_URL", url),
        // One user for the suite over HTTP (backend settings alone mean signature auth).
        ("VSS_AUTH", "none"),
    ];
    env.extend_from_slice(extra);
    load(&[], &env).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_over_http_on_redis() {
    let Some(url) = conformance::service_url("VSS_TEST_REDIS_URL") else {
        return;
    };
    // The test Redis runs AOF with appendfsync always: the guard lets it through.
    let (running, limits) = start_backend(redis_config(&url, &[])).await;
    suite_over_http(&running.url, limits).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_test_passes_over_http_on_redis() {
    let Some(url) = conformance::service_url("VSS_TEST_REDIS_URL") else {
        return;
    };
    let (running, limits) = start_backend(redis_config(&url, &[])).await;
    model_test_over_http(&running.url, limits, ModelConfig::default()).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_holds_under_64_concurrent_large_puts_on_redis() {
    let Some(url) = conformance::service_url("VSS_TEST_REDIS_URL") else {
        return;
    };
    backend_support::quota_holds_under_concurrent_large_puts(redis_config(&url, &[])).await;
}

/// A redis-server child without any persistence, killed when dropped.
struct VolatileRedis {
    url: String,
    port: u16,
    child: Option<tokio::process::Child>,
    dir: tempfile::TempDir,
}

impl VolatileRedis {
    async fn start() -> VolatileRedis {
        let dir = tempfile::tempdir().unwrap();
        let port = closed_port();
        let child = Self::spawn(port, dir.path()).await;
        VolatileRedis {
            url: format!("redis://127.0.0.1:{port}"),
            port,
            child: Some(child),
            dir,
        }
    }

    async fn spawn(port: u16, dir: &std::path::Path) -> tokio::process::Child {
        let bin = std::env::var_os("VSS_TEST_REDIS_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("redis-server"));
        let mut child = tokio::process::Command::new(bin)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--appendonly", "no", "--save", ""])
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // It logs to standard output; this line comes once it listens.
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("redis-server exited before it was ready");
            if line.contains("Ready to accept connections") {
                break;
            }
        }
        // Keep draining its output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        child
    }

    /// Kills it (SIGKILL) and waits until it is gone.
    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }

    /// Starts it again on the same port.
    async fn restart(&mut self) {
        self.kill().await;
        self.child = Some(Self::spawn(self.port, self.dir.path()).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_volatile_decides_whether_a_redis_without_persistence_is_used() {
    // The shared service being configured means redis-server is installed.
    if conformance::service_url("VSS_TEST_REDIS_URL").is_none() {
        return;
    }
    let redis = VolatileRedis::start().await;
    let err = Server::start(redis_config(&redis.url, &[]))
        .await
        .unwrap_err();
    assert!(matches!(err, ServerError::Backend(_)), "{err}");
    assert!(
        err.to_string().contains("VSS_REDIS_ALLOW_VOLATILE"),
        "the error names the setting that allows it: {err}"
    );

    let running = common::start(redis_config(
        &redis.url,
        &[("VSS_REDIS_ALLOW_VOLATILE", "true")],
    ))
    .await;
    round_trip(&running.url).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_file_setting_reaches_the_backend() {
    let Some(_) = conformance::service_url("VSS_TEST_REDIS_URL") else {
        return;
    };
    // scripts/test's Redis also serves TLS, with a certificate from its own CA.
    let tls = ["VSS_TEST_REDIS_TLS_URL", "VSS_TEST_REDIS_CA_FILE"]
        .map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()));
    let [Some(tls_url), Some(ca_file)] = tls else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "scripts/test sets VSS_TEST_REDIS_TLS_URL and VSS_TEST_REDIS_CA_FILE"
        );
        eprintln!("SKIPPED: the test Redis serves no TLS");
        return;
    };
    let running = common::start(redis_config(
        &tls_url,
        &[("VSS_REDIS_TLS_CA_FILE", &ca_file)],
    ))
    .await;
    round_trip(&running.url).await;
    running.stop().await;
    // Without it the system's roots are trusted, which do not sign the test certificate.
    let err = Server::start(redis_config(&tls_url, &[]))
        .await
        .unwrap_err();
    assert!(matches!(err, ServerError::Backend(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_stops_startup_with_the_cause() {
    let url = format!("redis://127.0.0.1:{}", closed_port());
    assert_start_fails_with(redis_config(&url, &[]), "redis", &["Connection refused"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database_down_and_back() {
    // The shared service being configured means redis-server is installed.
    if conformance::service_url("VSS_TEST_REDIS_URL").is_none() {
        return;
    }
    let mut redis = VolatileRedis::start().await;
    let running = common::start(redis_config(
        &redis.url,
        &[("VSS_REDIS_ALLOW_VOLATILE", "true")],
    ))
    .await;
    let addr = running.addr;
    assert_eq!(common::get(addr, "/ready").await.status, 200);

    redis.kill().await;
    common::poll_until(
        "readiness 503 with Redis down",
        Duration::from_secs(30),
        || async move { common::get(addr, "/ready").await.status == 503 },
    )
    .await;
    // Alive all the same: only readiness follows the database.
    assert_eq!(common::get(addr, "/health").await.status, 200);

    redis.restart().await;
    common::poll_until(
        "readiness 200 with Redis back",
        Duration::from_secs(30),
        || async move { common::get(addr, "/ready").await.status == 200 },
    )
    .await;
    round_trip(&running.url).await;
    // The pool's reconnections were counted.
    let metrics = common::get(addr, "/metrics").await.body;
    let reconnects: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("vss_redis_reconnects_total "))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0);
    assert!(reconnects >= 1.0, "{metrics}");
    running.stop().await;
}
