//! A connection that carried a large value is closed, not pooled: its buffers
//! grew to the value's size, and a pooled connection would hold that memory
//! for as long as it lives. Which connections serve the store is read from
//! PostgreSQL's `pg_stat_activity`, with a pool of one connection.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::collections::BTreeSet;

use bytes::Bytes;
use common::*;
use vss_backend_postgres::{PostgresStore, LARGE_VALUE_BYTES};
use vss_core::proto::{GetObjectRequest, KeyValue, PutObjectRequest};
use vss_core::{KvStore, UserToken};

fn put(key: &str, size: usize) -> PutObjectRequest {
    PutObjectRequest {
        store_id: "s".into(),
        global_version: None,
        transaction_items: vec![KeyValue {
            key: key.into(),
            version: -1,
            value: Bytes::from(vec![7u8; size]),
        }],
        delete_items: vec![],
    }
}

fn get(key: &str) -> GetObjectRequest {
    GetObjectRequest {
        store_id: "s".into(),
        key: key.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_carried_a_large_value_is_not_pooled() {
    let Some(mut config) = fresh_config("VSS_TEST_POSTGRES_URL", "large") else {
        return;
    };
    config.max_connections = 1;
    let store = PostgresStore::connect(config.clone()).await.unwrap();
    let pg = inspect(&config, &config.database).await;
    // The store's backends: every other connection to its database.
    let backends = || async {
        pg.query(
            "SELECT pid FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<_, i32>(0))
        .collect::<BTreeSet<i32>>()
    };
    let user = UserToken::new("u").unwrap();
    let small = LARGE_VALUE_BYTES - 1;

    // Below the limit, the one connection serves every call.
    store.put(&user, put("small", small)).await.unwrap();
    let first = backends().await;
    store.get(&user, get("small")).await.unwrap();
    let again = backends().await;
    assert!(
        again.is_subset(&first),
        "a value under the limit opened a connection: before {first:?}, after {again:?}"
    );

    // A large put: the next call needs a new connection.
    store
        .put(&user, put("large", LARGE_VALUE_BYTES))
        .await
        .unwrap();
    store.get(&user, get("small")).await.unwrap();
    let after_put = backends().await;
    assert!(
        after_put.difference(&first).next().is_some(),
        "the connection of a large put was pooled: before {first:?}, after {after_put:?}"
    );

    // A large get: likewise, and the value read is whole.
    let value = store.get(&user, get("large")).await.unwrap().value.unwrap();
    assert_eq!(value.value.len(), LARGE_VALUE_BYTES);
    assert!(value.value.iter().all(|b| *b == 7));
    store.get(&user, get("small")).await.unwrap();
    let after_get = backends().await;
    assert!(
        after_get.difference(&after_put).next().is_some(),
        "the connection of a large get was pooled: before {after_put:?}, after {after_get:?}"
    );
}
