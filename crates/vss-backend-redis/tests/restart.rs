//! Redis restarts (SIGKILL, like a crash) in the middle of a stream of writes:
//! every acknowledged write is there afterwards, errors during the outage are
//! internal (retried by wallets, never mistaken for a conflict), and the same
//! store object recovers by itself.

// Test helpers stop the test at the first failed step.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::poll_until;
use vss_backend_redis::{RedisConfig, RedisStore};
use vss_core::conformance::{unique_name, unique_user};
use vss_core::proto::{GetObjectRequest, KeyValue, ListKeyVersionsRequest, PutObjectRequest};
use vss_core::{KvStore, UserToken, VssError};

#[derive(Default)]
struct Outcomes {
    acknowledged: BTreeSet<u32>,
    failed: BTreeSet<u32>,
    wrong_errors: Vec<(u32, VssError)>,
}

fn key(i: u32) -> String {
    format!("item/{i:06}")
}

fn value(i: u32) -> Bytes {
    Bytes::from(format!("value of item {i}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_crash_and_the_store_recovers() {
    let Some(bin) = common::redis_server() else {
        return;
    };
    let (mut redis, _dir) = common::durable_child(&bin, &[]).await;
    let store = Arc::new(
        RedisStore::connect(RedisConfig {
            command_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            ..RedisConfig::new(redis.url())
        })
        .await
        .unwrap(),
    );
    assert!(store.durability_warnings().is_empty());

    let user = unique_user();
    let store_id = unique_name("restart");
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let stop = Arc::new(AtomicBool::new(false));

    // One writer creating item/000000, item/000001, ... in order, each a
    // conditional create (version 0) together with a global version bump.
    let writer = tokio::spawn({
        let (store, user, store_id) = (store.clone(), user.clone(), store_id.clone());
        let (outcomes, stop) = (outcomes.clone(), stop.clone());
        async move {
            let mut i = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let result = store
                    .put(
                        &user,
                        PutObjectRequest {
                            store_id: store_id.clone(),
                            global_version: None,
                            transaction_items: vec![KeyValue {
                                key: key(i),
                                version: 0,
                                value: value(i),
                            }],
                            delete_items: vec![],
                        },
                    )
                    .await;
                {
                    let mut o = outcomes.lock().unwrap();
                    match result {
                        Ok(_) => {
                            o.acknowledged.insert(i);
                        }
                        Err(VssError::Internal(_)) => {
                            o.failed.insert(i);
                        }
                        Err(other) => o.wrong_errors.push((i, other)),
                    }
                }
                i += 1;
            }
        }
    });

    let acked = || outcomes.lock().unwrap().acknowledged.len();
    let failed = || outcomes.lock().unwrap().failed.len();

    poll_until(
        "writes before the crash",
        Duration::from_secs(30),
        || async { acked() >= 50 },
    )
    .await;
    redis.kill();
    let acked_at_crash = acked();
    poll_until(
        "writes failing during the outage",
        Duration::from_secs(30),
        || async { failed() >= 3 },
    )
    .await;
    redis.restart().await;
    let acked_at_restart = acked();
    poll_until(
        "writes after the restart",
        Duration::from_secs(60),
        || async { acked() >= acked_at_restart + 50 },
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();

    let o = std::mem::take(&mut *outcomes.lock().unwrap());
    println!(
        "acknowledged {} ({acked_at_crash} before the crash), failed during the outage {}",
        o.acknowledged.len(),
        o.failed.len()
    );
    assert!(
        o.wrong_errors.is_empty(),
        "errors during the outage must be internal: {:?}",
        o.wrong_errors
    );
    assert!(o.acknowledged.len() > acked_at_crash);
    assert!(!o.failed.is_empty());

    // Every acknowledged write is there, with its value; a failed one either
    // happened completely or not at all.
    for &i in &o.acknowledged {
        let (version, got) = get(&store, &user, &store_id, &key(i))
            .await
            .unwrap_or_else(|e| panic!("acknowledged {} lost: {e}", key(i)));
        assert_eq!((version, got), (1, value(i)), "{}", key(i));
    }
    for &i in &o.failed {
        match get(&store, &user, &store_id, &key(i)).await {
            Ok(found) => assert_eq!(found, (1, value(i)), "{}", key(i)),
            Err(VssError::NoSuchKey(_)) => {}
            Err(e) => panic!("reading {} after recovery failed: {e}", key(i)),
        }
    }

    // The listing holds every acknowledged key once, newest (highest index) first.
    let listed = list_all(&store, &user, &store_id).await;
    let mut sorted = listed.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(listed, sorted, "listing is newest first, without repeats");
    let listed: BTreeSet<String> = listed.into_iter().collect();
    for &i in &o.acknowledged {
        assert!(
            listed.contains(&key(i)),
            "{} missing from the listing",
            key(i)
        );
    }
    for k in &listed {
        let i: u32 = k["item/".len()..].parse().unwrap();
        assert!(
            o.acknowledged.contains(&i) || o.failed.contains(&i),
            "{k} was never written"
        );
    }
    store.close().await.unwrap();
}

async fn get(
    store: &RedisStore,
    user: &UserToken,
    store_id: &str,
    key: &str,
) -> Result<(i64, Bytes), VssError> {
    let kv = store
        .get(
            user,
            GetObjectRequest {
                store_id: store_id.to_string(),
                key: key.to_string(),
            },
        )
        .await?
        .value
        .unwrap();
    Ok((kv.version, kv.value))
}

async fn list_all(store: &RedisStore, user: &UserToken, store_id: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let page = store
            .list_key_versions(
                user,
                ListKeyVersionsRequest {
                    store_id: store_id.to_string(),
                    key_prefix: None,
                    page_size: Some(37),
                    page_token: token,
                },
            )
            .await
            .unwrap();
        keys.extend(page.key_versions.into_iter().map(|kv| kv.key));
        match page.next_page_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => return keys,
        }
    }
}
