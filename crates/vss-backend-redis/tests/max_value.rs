//! The largest value a store declares: the server's `proto-max-bulk-len`
//! (a value of exactly that size stores fine, one byte more is TOO_LARGE
//! before anything is written), or a fixed fallback when `CONFIG` is denied.
//! Each test runs a server of its own, so the shared one keeps its settings.

// Test helpers stop the test at the first failed step.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use vss_backend_redis::{RedisConfig, RedisStore, MAX_VALUE_SIZE_WITHOUT_CONFIG};
use vss_core::conformance::{self, Subject};
use vss_core::{KvStore, StoreLimits};

const TWO_MIB: usize = 2 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_value_is_the_servers_bulk_limit() {
    let Some(bin) = common::redis_server() else {
        return;
    };
    // Redis reads "2mb" as 2 * 1024 * 1024 bytes.
    let (redis, _dir) = common::durable_child(&bin, &["--proto-max-bulk-len", "2mb"]).await;
    let store = Arc::new(common::connect(&redis.url()).await);
    assert_eq!(store.limits().max_value_size, TWO_MIB);
    assert!(store.limits().enforces_quotas);
    // Stores a value of exactly the limit, refuses one byte more (naming the
    // key and the limit) and writes nothing of that put.
    conformance::run_rule("value_over_the_store_limit_is_too_large", || {
        let store = store.clone();
        async move { Subject::new(store) }
    })
    .await
    .unwrap();
    store.close().await.unwrap();

    // A smaller limit in the configuration wins.
    let store = RedisStore::connect(RedisConfig {
        limits: StoreLimits {
            max_value_size: 1000,
            ..StoreLimits::default()
        },
        ..RedisConfig::new(redis.url())
    })
    .await
    .unwrap();
    assert_eq!(store.limits().max_value_size, 1000);
    store.close().await.unwrap();
}

#[tokio::test]
async fn the_default_server_takes_values_up_to_512_mib() {
    let Some(bin) = common::redis_server() else {
        return;
    };
    let (redis, _dir) = common::durable_child(&bin, &[]).await;
    let store = common::connect(&redis.url()).await;
    assert_eq!(store.limits().max_value_size, 512 << 20);
    store.close().await.unwrap();
}

#[tokio::test]
async fn without_config_the_largest_value_falls_back() {
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
    assert_eq!(store.limits().max_value_size, MAX_VALUE_SIZE_WITHOUT_CONFIG);
    // Quotas work without CONFIG (the startup pass needs SCAN, GET and SET).
    assert!(store.limits().enforces_quotas);
    common::round_trip(&store).await;
    store.close().await.unwrap();
}
