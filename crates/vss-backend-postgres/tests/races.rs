//! Races specific to how this backend takes locks under READ COMMITTED.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use vss_backend_postgres::PostgresStore;
use vss_core::proto::{
    DeleteObjectRequest, GetObjectRequest, KeyValue, PutObjectRequest, PutObjectResponse,
};
use vss_core::{KvStore, Quota, UserToken, VssError};

fn kv(key: &str, version: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        version,
        value: Bytes::from_static(b"v"),
    }
}

fn put(store_id: &str, items: Vec<KeyValue>) -> PutObjectRequest {
    PutObjectRequest {
        store_id: store_id.into(),
        global_version: None,
        transaction_items: items,
        delete_items: vec![],
    }
}

/// Concurrent creates (version 0) of one key: exactly one winner, everyone else
/// CONFLICT — never a unique-violation internal error. Half the racers create the
/// key alone (one statement), half inside a multi-item put (a transaction).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_of_one_key_have_exactly_one_winner() {
    let Some(store) = common::fresh_store("creates").await else {
        return;
    };
    let user = UserToken::new("racer").unwrap();
    for round in 0..20 {
        let key = format!("key-{round}");
        let tasks: Vec<_> = (0..12)
            .map(|i| {
                let (store, user, key) = (store.clone(), user.clone(), key.clone());
                tokio::spawn(async move {
                    let items = if i % 2 == 0 {
                        vec![kv(&key, 0)]
                    } else {
                        vec![kv(&format!("{key}-side-{i}"), -1), kv(&key, 0)]
                    };
                    store.put(&user, put("s", items)).await
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => winners += 1,
                Err(VssError::Conflict(_)) => {}
                Err(other) => {
                    panic!("round {round}: a losing create must be CONFLICT, got {other:?}")
                }
            }
        }
        assert_eq!(winners, 1, "round {round}: exactly one create wins");
    }
}

/// Multi-item puts naming the same keys in opposite orders: rows are locked in key
/// order whatever the request order, so these never deadlock (a deadlock would be
/// an internal error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_naming_keys_in_opposite_orders_do_not_deadlock() {
    let Some(store) = common::fresh_store("deadlock").await else {
        return;
    };
    let user = UserToken::new("locker").unwrap();
    let keys: Arc<Vec<String>> = Arc::new((0..6).map(|k| format!("k{k}")).collect());
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let (store, user, keys) = (store.clone(), user.clone(), keys.clone());
            tokio::spawn(async move {
                for _ in 0..40 {
                    let mut order: Vec<&String> = keys.iter().collect();
                    if task % 2 == 1 {
                        order.reverse();
                    }
                    let items = order.iter().map(|k| kv(k, -1)).collect();
                    store.put(&user, put("s", items)).await?;
                }
                Ok::<(), VssError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("no put fails");
    }
}

/// One user's writes of every kind race on a few keys from many connections:
/// puts of one item and of several (with deletes), creates, updates of the
/// version just read, deletes, some under a quota too large to refuse
/// anything (so they count in shard 0) and some without. Afterwards the
/// user's usage, the sum of their shards, is exactly what a recount of the
/// stored rows says: no change lost or counted twice, whatever interleaving
/// (an overwrite racing a create of the same key included). A deadlock or any
/// other failure than CONFLICT fails the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writes_of_one_user_keep_its_usage_exact() {
    let Some(config) = common::fresh_config("VSS_TEST_POSTGRES_URL", "usage_races") else {
        return;
    };
    let store = Arc::new(PostgresStore::connect(config.clone()).await.unwrap());
    let user = UserToken::new("counter").unwrap();
    let generous = Quota {
        max_bytes: Some(1 << 40),
        max_keys: Some(1 << 40),
    };
    let tasks: Vec<_> = (0..12u64)
        .map(|task| {
            let (store, user) = (store.clone(), user.clone());
            tokio::spawn(async move {
                // xorshift: a different, reproducible sequence of operations per task.
                let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (task + 1).wrapping_mul(0x2545_F491);
                let mut next = move |n: u64| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state % n
                };
                for _ in 0..150 {
                    let key = format!("k{}", next(6));
                    let value = Bytes::from(vec![b'x'; next(300) as usize]);
                    let quota = if next(2) == 0 {
                        generous
                    } else {
                        Quota::UNLIMITED
                    };
                    let item = |key: &str, version| KeyValue {
                        key: key.into(),
                        version,
                        value: value.clone(),
                    };
                    let result = match next(6) {
                        0 => {
                            store
                                .put_with_quota(&user, put("s", vec![item(&key, -1)]), quota)
                                .await
                        }
                        1 => {
                            store
                                .put_with_quota(&user, put("s", vec![item(&key, 0)]), quota)
                                .await
                        }
                        2 => {
                            let got = store
                                .get(
                                    &user,
                                    GetObjectRequest {
                                        store_id: "s".into(),
                                        key: key.clone(),
                                    },
                                )
                                .await;
                            let version = match got {
                                Ok(got) => got.value.map_or(0, |kv| kv.version),
                                Err(VssError::NoSuchKey(_)) => 0,
                                Err(err) => return Err(err),
                            };
                            store
                                .put_with_quota(&user, put("s", vec![item(&key, version)]), quota)
                                .await
                        }
                        3 => store
                            .delete(
                                &user,
                                DeleteObjectRequest {
                                    store_id: "s".into(),
                                    key_value: Some(item(&key, -1)),
                                },
                            )
                            .await
                            .map(|_| PutObjectResponse {}),
                        4 => {
                            let other = format!("k{}", next(6));
                            let mut request = put("s", vec![item(&key, -1)]);
                            if other != key {
                                request.delete_items = vec![item(&other, -1)];
                            }
                            store.put_with_quota(&user, request, quota).await
                        }
                        _ => {
                            let (a, b) = (format!("k{}", next(6)), format!("k{}", next(6)));
                            let mut items = vec![item(&key, -1)];
                            for extra in [a, b] {
                                if !items.iter().any(|i| i.key == extra) {
                                    items.push(item(&extra, -1));
                                }
                            }
                            store.put_with_quota(&user, put("s", items), quota).await
                        }
                    };
                    match result {
                        Ok(_) | Err(VssError::Conflict(_)) => {}
                        Err(err) => return Err(err),
                    }
                }
                Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await
            .unwrap()
            .expect("only CONFLICT may refuse a write");
    }

    let db = common::inspect(&config, &config.database).await;
    let counted = db
        .query_one(
            "SELECT COALESCE(sum(bytes), 0)::bigint, COALESCE(sum(keys), 0)::bigint, count(*) \
             FROM vss_usage WHERE user_token = 'counter'::bytea",
            &[],
        )
        .await
        .unwrap();
    let stored = db
        .query_one(
            "SELECT COALESCE(sum(octet_length(key) + octet_length(value)), 0)::bigint, count(*) \
             FROM vss_objects WHERE user_token = 'counter'::bytea",
            &[],
        )
        .await
        .unwrap();
    let (bytes, keys, shards): (i64, i64, i64) = (counted.get(0), counted.get(1), counted.get(2));
    let (stored_bytes, stored_keys): (i64, i64) = (stored.get(0), stored.get(1));
    assert_eq!(
        (bytes, keys),
        (stored_bytes, stored_keys),
        "usage as counted vs as stored"
    );
    assert!(stored_keys > 0, "the races left some keys");
    // Writes under the quota counted in shard 0, the others in their connections' shards.
    assert!(shards >= 2, "{shards} shards used");
    store.close().await.unwrap();
}
