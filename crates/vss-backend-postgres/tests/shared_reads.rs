//! Reads share a quarter of the pool's connections: many gets and listings in
//! flight on one connection at once. Which connections serve the store is read
//! from PostgreSQL's `pg_stat_activity`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::time::Duration;

use common::*;
use vss_backend_postgres::{PostgresStore, LARGE_VALUE_BYTES};
use vss_core::proto::ListKeyVersionsRequest;
use vss_core::{KvStore, UserToken, VssError};

/// The length of the value `key` holds.
async fn value_len(store: &PostgresStore, user: &UserToken, key: &str) -> usize {
    store
        .get(user, get(key))
        .await
        .unwrap()
        .value
        .unwrap()
        .value
        .len()
}

/// A store with a pool of `pool` connections, and a client that looks at it.
async fn store_with_pool(
    label: &str,
    pool: usize,
) -> Option<(PostgresStore, tokio_postgres::Client)> {
    let mut config = fresh_config("VSS_TEST_POSTGRES_URL", label)?;
    config.max_connections = pool;
    let store = PostgresStore::connect(config.clone()).await.unwrap();
    let pg = inspect(&config, &config.database).await;
    Some((store, pg))
}

/// The backend of the store's shared connection: the one whose last
/// statement was a get (call it right after one).
async fn shared_backend(pg: &tokio_postgres::Client) -> i32 {
    let rows = pg
        .query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             AND query LIKE 'SELECT version, value FROM vss_objects%'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "one connection ran gets");
    rows[0].get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_share_a_quarter_of_the_pool() {
    for (pool, shared) in [(1, 0), (3, 0), (4, 1), (16, 4), (30, 7)] {
        let Some((store, _)) = store_with_pool("quarter", pool).await else {
            return;
        };
        assert_eq!(store.shared_read_connections(), shared, "pool of {pool}");
        store.close().await.unwrap();
    }
}

/// Every connection of the pool but the shared one waits on a lock: reads
/// are still answered, all in flight at once on the shared connection.
/// Without sharing, the four puts would take all four connections, and every
/// read would wait for one and fail when the pool's wait runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_answered_while_every_other_connection_is_busy() {
    let Some(mut config) = fresh_config("VSS_TEST_POSTGRES_URL", "busy") else {
        return;
    };
    config.max_connections = 4;
    config.wait_timeout = Duration::from_secs(2);
    let store = std::sync::Arc::new(PostgresStore::connect(config.clone()).await.unwrap());
    let pg = inspect(&config, &config.database).await;
    let user = UserToken::new("u").unwrap();
    store.put(&user, put("k", 10)).await.unwrap();
    store.get(&user, get("k")).await.unwrap(); // fills the shared slot

    // Four puts of "k" wait for a lock held here: three on the rest of the
    // pool, the fourth for a connection (it gets one or gives up, INTERNAL).
    let mut locker = inspect(&config, &config.database).await;
    let tx = locker.transaction().await.unwrap();
    tx.execute("SELECT 1 FROM vss_objects WHERE key = 'k' FOR UPDATE", &[])
        .await
        .unwrap();
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (store, user) = (store.clone(), user.clone());
            tokio::spawn(async move { store.put(&user, put("k", 20)).await })
        })
        .collect();
    until_waiting_on_locks(&pg, 3, "the puts hold the rest of the pool").await;

    // 64 reads at once, each longer than the pool's wait if it had to wait.
    let reads: Vec<_> = (0..64)
        .map(|i| {
            let (store, user) = (store.clone(), user.clone());
            tokio::spawn(async move {
                if i % 2 == 0 {
                    let value = store.get(&user, get("k")).await?.value.unwrap();
                    assert_eq!(
                        value.value.len(),
                        10,
                        "the write waiting on the lock is not seen"
                    );
                } else {
                    let page = store
                        .list_key_versions(
                            &user,
                            ListKeyVersionsRequest {
                                store_id: "s".into(),
                                key_prefix: None,
                                page_size: None,
                                page_token: None,
                            },
                        )
                        .await?;
                    assert_eq!(page.key_versions.len(), 1);
                }
                Ok::<(), VssError>(())
            })
        })
        .collect();
    for read in reads {
        read.await.unwrap().expect("a read while the pool is busy");
    }

    tx.commit().await.unwrap();
    let mut stored = 0;
    for writer in writers {
        match writer.await.unwrap() {
            Ok(_) => stored += 1,
            Err(VssError::Internal(_)) => {}
            Err(other) => panic!("a put after the lock: {other:?}"),
        }
    }
    assert!(stored >= 3, "only {stored} puts were stored");
    assert_eq!(value_len(&store, &user, "k").await, 20);
}

/// A shared connection that carried a large value is closed (its buffers grew
/// to the value), and the next read opens another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_connection_that_carried_a_large_value_is_closed() {
    let Some((store, pg)) = store_with_pool("sharedlarge", 4).await else {
        return;
    };
    assert_eq!(store.shared_read_connections(), 1);
    let user = UserToken::new("u").unwrap();
    store.put(&user, put("small", 10)).await.unwrap();
    store
        .put(&user, put("large", LARGE_VALUE_BYTES))
        .await
        .unwrap();
    store.get(&user, get("small")).await.unwrap();
    let shared = shared_backend(&pg).await;

    let value = store.get(&user, get("large")).await.unwrap().value.unwrap();
    assert_eq!(value.value.len(), LARGE_VALUE_BYTES);
    assert!(value.value.iter().all(|b| *b == 7));
    // Closed, not pooled.
    until_backends(
        &pg,
        "the shared connection that carried the value is closed",
        |now| !now.contains(&shared),
    )
    .await;
    // And reads go on, on a new connection.
    assert_eq!(value_len(&store, &user, "small").await, 10);
}

/// A shared connection that PostgreSQL closed is replaced: reads answer
/// again, at most a few of them INTERNAL (a retryable error) on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_connection_closed_by_postgres_is_replaced() {
    let Some((store, pg)) = store_with_pool("sharedkill", 4).await else {
        return;
    };
    let user = UserToken::new("u").unwrap();
    store.put(&user, put("k", 10)).await.unwrap();
    store.get(&user, get("k")).await.unwrap();
    pg.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
        &[],
    )
    .await
    .unwrap();
    until_backends(&pg, "the store's connections are gone", |now| {
        now.is_empty()
    })
    .await;
    let mut failures = 0;
    loop {
        match store.get(&user, get("k")).await {
            Ok(answer) => {
                assert_eq!(answer.value.unwrap().value.len(), 10);
                break;
            }
            // Reads already sent on the closed connection fail; a few at most.
            Err(VssError::Internal(_)) if failures < 3 => failures += 1,
            Err(other) => panic!("after the connection was closed: {other:?}"),
        }
    }
    // The replacement serves the next reads.
    for _ in 0..5 {
        store.get(&user, get("k")).await.unwrap();
    }
}

/// A read whose future is dropped while its query waits (a request past its
/// deadline, a client gone) retires its shared connection: it is closed once
/// the answer nobody waits for has come, and the next read opens another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_read_retires_its_shared_connection() {
    let Some(mut config) = fresh_config("VSS_TEST_POSTGRES_URL", "abandonedread") else {
        return;
    };
    config.max_connections = 4;
    let store = std::sync::Arc::new(PostgresStore::connect(config.clone()).await.unwrap());
    let pg = inspect(&config, &config.database).await;
    let user = UserToken::new("u").unwrap();
    store.put(&user, put("k", 10)).await.unwrap();
    store.get(&user, get("k")).await.unwrap();
    let shared = shared_backend(&pg).await;

    // The next read waits for a lock held here; its future is then dropped.
    let mut locker = inspect(&config, &config.database).await;
    let tx = locker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE vss_objects IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let read = {
        let (store, user) = (store.clone(), user.clone());
        tokio::spawn(async move { store.get(&user, get("k")).await })
    };
    until_waiting_on_locks(&pg, 1, "the read waits for the lock").await;
    read.abort();
    assert!(read.await.unwrap_err().is_cancelled());
    tx.commit().await.unwrap();

    until_backends(&pg, "the abandoned read's connection is closed", |now| {
        !now.contains(&shared)
    })
    .await;
    assert_eq!(value_len(&store, &user, "k").await, 10);
}
