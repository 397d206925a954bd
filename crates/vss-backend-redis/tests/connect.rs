//! Opening a store: credentials in the URL, users without CONFIG rights,
//! unreachable servers and unusable configurations.

// Test helpers stop the test at the first failed step.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use vss_backend_redis::{RedisConfig, RedisError, RedisStore};
use vss_core::KvStore;

#[tokio::test]
async fn username_and_password_from_the_url() {
    let Some(bin) = common::redis_server() else {
        return;
    };
    let (redis, _dir) = common::durable_child(
        &bin,
        &[
            "--user",
            "default",
            "off",
            "--user",
            "vss",
            "on",
            ">s3cret-pw",
            "~*",
            "&*",
            "+@all",
        ],
    )
    .await;
    let url = |password: &str| format!("redis://vss:{password}@127.0.0.1:{}", redis.port);

    let store = RedisStore::connect(RedisConfig::new(url("s3cret-pw")))
        .await
        .unwrap();
    assert!(store.durability_warnings().is_empty());
    common::round_trip(&store).await;
    store.close().await.unwrap();

    let err = RedisStore::connect(RedisConfig::new(url("wrong-pw")))
        .await
        .unwrap_err();
    assert!(matches!(err, RedisError::Redis { .. }), "{err}");
    assert!(!err.to_string().contains("wrong-pw"), "{err}");
}

#[tokio::test]
async fn a_user_denied_config_is_checked_through_info() {
    let Some(bin) = common::redis_server() else {
        return;
    };
    // Like many managed services: the application's user may not run CONFIG.
    let (redis, _dir) = common::durable_child(
        &bin,
        &[
            "--user", "default", "off", "--user", "app", "on", ">pw", "~*", "&*", "+@all",
            "-config",
        ],
    )
    .await;
    let url = format!("redis://app:pw@127.0.0.1:{}", redis.port);
    let store = RedisStore::connect(RedisConfig::new(url)).await.unwrap();
    let warnings = store.durability_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("CONFIG GET is not available"),
        "{warnings:?}"
    );
    common::round_trip(&store).await;
    store.close().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_server_fails_to_open() {
    let Some(_) = common::redis_url() else {
        return;
    };
    let port = common::free_port();
    let result = RedisStore::connect(RedisConfig {
        connect_timeout: Duration::from_secs(2),
        ..RedisConfig::new(format!("redis://127.0.0.1:{port}"))
    })
    .await;
    assert!(
        matches!(result, Err(RedisError::Redis { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn unusable_configurations_are_refused_before_connecting() {
    let url = "redis://127.0.0.1:1";
    let refused = |config: RedisConfig| async move {
        match RedisStore::connect(config).await {
            Err(RedisError::Config(msg)) => msg,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    };
    assert!(refused(RedisConfig {
        namespace: "a{b".into(),
        ..RedisConfig::new(url)
    })
    .await
    .contains("namespace"));
    assert!(refused(RedisConfig {
        pool_size: 0,
        ..RedisConfig::new(url)
    })
    .await
    .contains("pool_size"));
    assert!(refused(RedisConfig {
        list_scan_limit: 100,
        ..RedisConfig::new(url)
    })
    .await
    .contains("list_scan_limit"));
    assert!(refused(RedisConfig::new("not a url")).await.contains("URL"));
    assert!(refused(RedisConfig::new("http://127.0.0.1:1"))
        .await
        .contains("scheme"));
    assert!(refused(RedisConfig {
        tls_ca_file: Some("/nonexistent/ca.pem".into()),
        ..RedisConfig::new(url)
    })
    .await
    .contains("rediss://"));
    assert!(refused(RedisConfig {
        tls_ca_file: Some("/nonexistent/ca.pem".into()),
        ..RedisConfig::new("rediss://127.0.0.1:1")
    })
    .await
    .contains("tls_ca_file"));
}

#[tokio::test]
async fn tls_checks_the_server_certificate() {
    let Some(url) = vss_core::conformance::service_url("VSS_TEST_REDIS_TLS_URL") else {
        return;
    };
    let ca_file = std::env::var_os("VSS_TEST_REDIS_CA_FILE")
        .expect("scripts/services/redis.sh exports the CA with the TLS URL");

    let store = RedisStore::connect(RedisConfig {
        tls_ca_file: Some(ca_file.into()),
        ..RedisConfig::new(&url)
    })
    .await
    .unwrap();
    assert!(store.durability_warnings().is_empty());
    common::round_trip(&store).await;
    store.close().await.unwrap();

    // The test CA is not among the system's roots: the certificate is refused.
    let refused = RedisStore::connect(RedisConfig {
        connect_timeout: Duration::from_secs(2),
        ..RedisConfig::new(&url)
    })
    .await;
    assert!(
        matches!(refused, Err(RedisError::Redis { .. })),
        "{refused:?}"
    );
}
