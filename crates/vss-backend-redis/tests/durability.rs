//! The durability guard against real redis-server children configured each
//! way: refuses what can lose acknowledged writes, unless allow_volatile.

// Test helpers stop the test at the first failed step.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::ChildRedis;
use vss_backend_redis::{RedisConfig, RedisError, RedisStore};
use vss_core::KvStore;

async fn open(redis: &ChildRedis, allow_volatile: bool) -> Result<RedisStore, RedisError> {
    RedisStore::connect(RedisConfig {
        allow_volatile,
        ..RedisConfig::new(redis.url())
    })
    .await
}

async fn child(bin: &Path, args: &[&str]) -> (ChildRedis, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (ChildRedis::start(bin, dir.path(), args).await, dir)
}

fn refusal(result: Result<RedisStore, RedisError>) -> String {
    match result {
        Err(RedisError::NotDurable(msg)) => msg,
        Err(other) => panic!("expected a durability refusal, got {other}"),
        Ok(_) => panic!("expected a durability refusal, but the store opened"),
    }
}

#[tokio::test]
async fn refuses_a_redis_that_persists_nothing_unless_allowed() {
    let Some(bin) = common::redis_server() else {
        return;
    };
    let (redis, _dir) = child(&bin, &["--appendonly", "no", "--save", ""]).await;
    let msg = refusal(open(&redis, false).await);
    assert!(msg.contains("persists nothing"), "{msg}");
    assert!(msg.contains("allow_volatile"), "{msg}");

    let store = open(&redis, true).await.unwrap();
    assert!(
        store.durability_warnings()[0].contains("persists nothing"),
        "{:?}",
        store.durability_warnings()
    );
    common::round_trip(&store).await;
    store.close().await.unwrap();
}

#[tokio::test]
async fn aof_always_starts_without_warnings_and_everysec_warns() {
    let Some(bin) = common::redis_server() else {
        return;
    };
    let (always, _d1) = child(&bin, &common::AOF_ALWAYS).await;
    let store = open(&always, false).await.unwrap();
    assert_eq!(store.durability_warnings(), &[] as &[String]);
    common::round_trip(&store).await;
    store.close().await.unwrap();

    let (everysec, _d2) = child(
        &bin,
        &[
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
        ],
    )
    .await;
    let store = open(&everysec, false).await.unwrap();
    let warnings = store.durability_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("everysec") && warnings[0].contains("1 s"),
        "{warnings:?}"
    );
    store.close().await.unwrap();

    // RDB snapshots alone persist something: started, with a warning.
    let (rdb, _d3) = child(&bin, &["--appendonly", "no", "--save", "3600 1"]).await;
    let store = open(&rdb, false).await.unwrap();
    assert!(store.durability_warnings()[0].contains("RDB"));
    store.close().await.unwrap();
}

#[tokio::test]
async fn refuses_a_redis_that_may_evict_keys() {
    let Some(bin) = common::redis_server() else {
        return;
    };
    let (redis, _dir) = child(
        &bin,
        &[
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--maxmemory",
            "100mb",
            "--maxmemory-policy",
            "allkeys-lru",
        ],
    )
    .await;
    let msg = refusal(open(&redis, false).await);
    assert!(msg.contains("allkeys-lru"), "{msg}");
}

#[tokio::test]
async fn falls_back_to_info_when_config_is_disabled() {
    let Some(bin) = common::redis_server() else {
        return;
    };
    // As on managed services: CONFIG does not exist for clients.
    let (aof, _d1) = child(
        &bin,
        &[
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--rename-command",
            "CONFIG",
            "",
        ],
    )
    .await;
    let store = open(&aof, false).await.unwrap();
    assert!(
        store.durability_warnings()[0].contains("CONFIG GET is not available"),
        "{:?}",
        store.durability_warnings()
    );
    common::round_trip(&store).await;
    store.close().await.unwrap();

    let (no_aof, _d2) = child(
        &bin,
        &[
            "--appendonly",
            "no",
            "--save",
            "3600 1",
            "--rename-command",
            "CONFIG",
            "",
        ],
    )
    .await;
    let msg = refusal(open(&no_aof, false).await);
    assert!(
        msg.contains("CONFIG GET") && msg.contains("allow_volatile"),
        "{msg}"
    );
    let store = open(&no_aof, true).await.unwrap();
    common::round_trip(&store).await;
    store.close().await.unwrap();
}
