//! Races specific to how this backend takes locks under READ COMMITTED.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use vss_core::proto::{KeyValue, PutObjectRequest};
use vss_core::{KvStore, UserToken, VssError};

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
