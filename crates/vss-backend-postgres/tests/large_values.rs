//! A connection that carried a large value is closed, not pooled: its buffers
//! grew to the value's size, and a pooled connection would hold that memory
//! for as long as it lives. Which connections serve the store is read from
//! PostgreSQL's `pg_stat_activity`, with a pool of one connection.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use bytes::Bytes;
use common::*;
use vss_backend_postgres::{PostgresConfig, PostgresStore, LARGE_VALUE_BYTES, STAGE_CHUNK_BYTES};
use vss_core::proto::{KeyValue, PutObjectRequest};
use vss_core::{KvStore, UserToken};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_carried_a_large_value_is_not_pooled() {
    let Some(mut config) = fresh_config("VSS_TEST_POSTGRES_URL", "large") else {
        return;
    };
    config.max_connections = 1;
    let store = PostgresStore::connect(config.clone()).await.unwrap();
    let pg = inspect(&config, &config.database).await;
    let user = UserToken::new("u").unwrap();
    let small = LARGE_VALUE_BYTES - 1;

    // Below the limit, the one connection serves every call.
    store.put(&user, put("small", small)).await.unwrap();
    let first = backends(&pg).await;
    store.get(&user, get("small")).await.unwrap();
    let again = backends(&pg).await;
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
    let after_put = backends(&pg).await;
    assert!(
        after_put.difference(&first).next().is_some(),
        "the connection of a large put was pooled: before {first:?}, after {after_put:?}"
    );

    // A large get: likewise, and the value read is whole.
    let value = store.get(&user, get("large")).await.unwrap().value.unwrap();
    assert_eq!(value.value.len(), LARGE_VALUE_BYTES);
    assert!(value.value.iter().all(|b| *b == 7));
    store.get(&user, get("small")).await.unwrap();
    let after_get = backends(&pg).await;
    assert!(
        after_get.difference(&after_put).next().is_some(),
        "the connection of a large get was pooled: before {after_put:?}, after {after_get:?}"
    );
}

/// A value whose chunks all differ: chunks read back out of order change it.
fn patterned(size: usize, seed: u8) -> Bytes {
    (0..size)
        .map(|i| ((i / 7) % 251) as u8 ^ seed)
        .collect::<Vec<u8>>()
        .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_are_staged_in_chunks_and_read_back_whole() {
    let Some(store) = fresh_store("staged").await else {
        return;
    };
    assert_eq!(store.staged_values_from(), Some(LARGE_VALUE_BYTES));
    let user = UserToken::new("u").unwrap();
    let big = patterned(5 * STAGE_CHUNK_BYTES / 2, 1);
    let other = patterned(STAGE_CHUNK_BYTES + 3, 2);
    let item = |key: &str, version: i64, value: &Bytes| KeyValue {
        key: key.into(),
        version,
        value: value.clone(),
    };
    let put = |items: Vec<KeyValue>| PutObjectRequest {
        store_id: "s".into(),
        global_version: None,
        transaction_items: items,
        delete_items: vec![],
    };
    // Alone, then in a put of several with a small value.
    store
        .put(&user, put(vec![item("a", 0, &big)]))
        .await
        .unwrap();
    store
        .put(
            &user,
            put(vec![
                item("b", 0, &other),
                item("c", 0, &Bytes::from_static(b"small")),
                item("a", 1, &other),
            ]),
        )
        .await
        .unwrap();
    let read = |key: &'static str| {
        let store = store.clone();
        let user = user.clone();
        async move {
            let value = store.get(&user, get(key)).await.unwrap().value.unwrap();
            (value.version, value.value)
        }
    };
    assert_eq!(read("a").await, (2, other.clone()));
    assert_eq!(read("b").await, (1, other.clone()));
    assert_eq!(read("c").await, (1, Bytes::from_static(b"small")));

    // A failed condition in the same put writes none of its staged values.
    let failed = store
        .put(&user, put(vec![item("d", 0, &big), item("c", 7, &other)]))
        .await;
    assert!(
        matches!(failed, Err(vss_core::VssError::Conflict(_))),
        "{failed:?}"
    );
    assert!(matches!(
        store.get(&user, get("d")).await,
        Err(vss_core::VssError::NoSuchKey(_))
    ));
    // And the usage counts the staged bytes exactly: key and value lengths.
    let usage = vss_core::AdminStore::usage(&*store, &user).await.unwrap();
    assert_eq!(
        usage.bytes as usize,
        2 * other.len() + 1 + 1 + 1 + b"small".len()
    );
}

/// A role of its own that owns a new database, and the config that logs in as
/// it (the test server trusts local logins), with an admin connection.
async fn own_role(label: &str) -> Option<(PostgresConfig, String, tokio_postgres::Client)> {
    let mut config = fresh_config("VSS_TEST_POSTGRES_URL", label)?;
    let role = config.database.clone();
    let admin = inspect(&config, &config.default_database).await;
    for statement in [
        format!("CREATE ROLE \"{role}\" LOGIN"),
        format!("CREATE DATABASE \"{role}\" OWNER \"{role}\""),
    ] {
        admin.batch_execute(&statement).await.unwrap();
    }
    config.username = role.clone();
    config.password = None;
    config.create_database = false;
    Some((config, role, admin))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_temporary_privilege_large_values_go_as_parameters() {
    let Some((config, role, admin)) = own_role("notemp").await else {
        return;
    };
    admin
        .batch_execute(&format!(
            "REVOKE TEMPORARY ON DATABASE \"{role}\" FROM PUBLIC, \"{role}\""
        ))
        .await
        .unwrap();
    let store = PostgresStore::connect(config)
        .await
        .unwrap()
        .with_staged_values_from(1);
    assert_eq!(store.staged_values_from(), None);
    let user = UserToken::new("u").unwrap();
    let value = patterned(2 * LARGE_VALUE_BYTES + 1, 3);
    store.put(&user, put_of("big", &value)).await.unwrap();
    let read = store.get(&user, get("big")).await.unwrap().value.unwrap();
    assert_eq!(read.value, value);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_while_staging_writes_nothing_and_the_next_put_works() {
    let Some((config, role, admin)) = own_role("stagefail").await else {
        return;
    };
    let store = PostgresStore::connect(config).await.unwrap();
    assert_eq!(store.staged_values_from(), Some(LARGE_VALUE_BYTES));
    let user = UserToken::new("u").unwrap();
    let first = patterned(LARGE_VALUE_BYTES + 5, 4);
    // The temporary table cannot be made any more: the put fails as INTERNAL
    // (clients retry it), and nothing of it is written.
    admin
        .batch_execute(&format!(
            "REVOKE TEMPORARY ON DATABASE \"{role}\" FROM PUBLIC, \"{role}\""
        ))
        .await
        .unwrap();
    let refused = store.put(&user, put_of("big", &first)).await;
    assert!(
        matches!(&refused, Err(vss_core::VssError::Internal(m)) if m.contains("temporary")),
        "{refused:?}"
    );
    assert!(matches!(
        store.get(&user, get("big")).await,
        Err(vss_core::VssError::NoSuchKey(_))
    ));
    // Allowed again: the next put works (no connection was left in a broken transaction).
    admin
        .batch_execute(&format!(
            "GRANT TEMPORARY ON DATABASE \"{role}\" TO \"{role}\""
        ))
        .await
        .unwrap();
    let second = patterned(LARGE_VALUE_BYTES + 7, 5);
    store.put(&user, put_of("big", &second)).await.unwrap();
    let read = store.get(&user, get("big")).await.unwrap().value.unwrap();
    assert_eq!((read.version, read.value), (1, second));
}

/// A put whose future is dropped inside its transaction (a request past its
/// deadline, a client gone, a shutdown) leaves no open transaction to the next
/// request: its connection is closed, not pooled. With a pool of one, the next
/// put would otherwise run inside that transaction, never committed although
/// acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_put_leaves_no_transaction_to_the_next() {
    let Some(mut config) = fresh_config("VSS_TEST_POSTGRES_URL", "abandonedput") else {
        return;
    };
    config.max_connections = 1;
    let store = std::sync::Arc::new(
        PostgresStore::connect(config.clone())
            .await
            .unwrap()
            .with_staged_values_from(1),
    );
    let pg = inspect(&config, &config.database).await;
    let user = UserToken::new("u").unwrap();
    store.put(&user, put("k", 10)).await.unwrap();

    // A staged put opens its transaction, then waits to create its table of
    // staged values: a lock held here keeps the catalog from being written.
    // Its future is then dropped, the transaction still open.
    let mut locker = inspect(&config, &config.database).await;
    let tx = locker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE pg_catalog.pg_class IN SHARE MODE")
        .await
        .unwrap();
    let abandoned = {
        let (store, user) = (store.clone(), user.clone());
        tokio::spawn(async move { store.put(&user, put("k", 20)).await })
    };
    until_waiting_on_locks(&pg, 1, "the staged put waits for the catalog's lock").await;
    abandoned.abort();
    assert!(abandoned.await.unwrap_err().is_cancelled());
    tx.commit().await.unwrap();

    // The next put works, and once acknowledged another connection sees it.
    store
        .put(&user, put("next", 30))
        .await
        .expect("the put after an abandoned one");
    let seen: i64 = pg
        .query_one("SELECT count(*) FROM vss_objects WHERE key = 'next'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seen, 1, "an acknowledged put is not committed");
}
