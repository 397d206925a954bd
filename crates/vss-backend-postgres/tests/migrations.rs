//! Startup migrations: applied once when servers start together, refused when newer.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use bytes::Bytes;
use vss_backend_postgres::{PostgresError, PostgresStore, MIGRATIONS_TABLE, SCHEMA_VERSION};
use vss_core::proto::{KeyValue, PutObjectRequest};
use vss_core::{KvStore, Quota, UserToken, VssError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_when_stores_open_concurrently() {
    let Some(config) = common::fresh_config("VSS_TEST_POSTGRES_URL", "migrate") else {
        return;
    };
    // Eight "servers" start at once on a database that does not exist yet: they race to
    // create it, then to migrate it. A migration run twice would fail (its CREATEs are
    // not IF NOT EXISTS), and so would a second row for one version (primary key).
    let starts: Vec<_> = (0..8)
        .map(|_| tokio::spawn(PostgresStore::connect(config.clone())))
        .collect();
    let mut stores = Vec::new();
    for start in starts {
        stores.push(
            start
                .await
                .unwrap()
                .expect("every concurrent start succeeds"),
        );
    }

    let db = common::inspect(&config, &config.database).await;
    let versions: Vec<i32> = db
        .query(
            &format!("SELECT version FROM {MIGRATIONS_TABLE} ORDER BY version"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());

    // A later start finds nothing to do and changes nothing.
    let again = PostgresStore::connect(config.clone()).await.unwrap();
    let count: i64 = db
        .query_one(&format!("SELECT count(*) FROM {MIGRATIONS_TABLE}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, i64::from(SCHEMA_VERSION));
    again.close().await.unwrap();
    for store in stores {
        store.close().await.unwrap();
    }
}

#[tokio::test]
async fn a_schema_newer_than_the_binary_is_refused() {
    let Some(config) = common::fresh_config("VSS_TEST_POSTGRES_URL", "newer") else {
        return;
    };
    PostgresStore::connect(config.clone())
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    let db = common::inspect(&config, &config.database).await;
    db.execute(
        &format!(
            "INSERT INTO {MIGRATIONS_TABLE} (version, description) VALUES ($1, 'from the future')"
        ),
        &[&(SCHEMA_VERSION + 1)],
    )
    .await
    .unwrap();

    let err = PostgresStore::connect(config).await.unwrap_err();
    match &err {
        PostgresError::SchemaTooNew { found, supported } => {
            assert_eq!(*found, SCHEMA_VERSION + 1);
            assert_eq!(*supported, SCHEMA_VERSION);
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    assert!(err.to_string().contains("newer"), "clear message: {err}");
}

#[tokio::test]
async fn a_missing_database_is_an_error_unless_creation_is_enabled() {
    let Some(mut config) = common::fresh_config("VSS_TEST_POSTGRES_URL", "missing") else {
        return;
    };
    config.create_database = false;
    let err = PostgresStore::connect(config).await.unwrap_err();
    assert!(
        matches!(err, PostgresError::Database(_)),
        "expected a database error, got {err:?}"
    );
}

/// Migration 4 counts the usage of data stored before it, exactly, migration 5
/// keeps that count in its shards, and quotas judge puts by it from the first one
/// (by migration 6's function).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_4_and_5_count_the_usage_of_data_already_stored() {
    let Some(config) = common::fresh_config("VSS_TEST_POSTGRES_URL", "usage") else {
        return;
    };
    let store = PostgresStore::connect(config.clone()).await.unwrap();
    store.close().await.unwrap();
    // Back to schema version 3, holding data written by that version.
    let db = common::inspect(&config, &config.database).await;
    db.batch_execute(&format!(
        "DROP TABLE vss_usage;
         DROP FUNCTION vss_recount_usage(), vss_require_quota(bigint, bigint, bigint, bigint, bigint, bigint),
             vss_judge_quota(bytea, bigint, bigint, bigint, bigint, bigint, bigint);
         ALTER TABLE vss_objects DROP COLUMN prev_len;
         DELETE FROM {MIGRATIONS_TABLE} WHERE version >= 4;
         INSERT INTO vss_objects (user_token, store_id, key, version, sequence, value) VALUES
             ('alice', 's', 'a', 1, 1024, '\\x0102'),
             ('alice', 't', convert_to('é', 'UTF8'), 3, 2048, '\\x'),
             ('bob', 's', 'key', 1, 3072, decode(repeat('00', 1000), 'hex'));"
    ))
    .await
    .unwrap();

    let store = PostgresStore::connect(config.clone()).await.unwrap();
    let usage = |user: &'static str| {
        let db = &db;
        async move {
            let row = db
                .query_one(
                    "SELECT sum(bytes)::bigint, sum(keys)::bigint FROM vss_usage \
                     WHERE user_token = convert_to($1, 'UTF8')",
                    &[&user],
                )
                .await
                .unwrap();
            (row.get::<_, i64>(0), row.get::<_, i64>(1))
        }
    };
    // `a` and 2 bytes; `é` (2 bytes in UTF-8) and none.
    assert_eq!(usage("alice").await, (5, 2));
    assert_eq!(usage("bob").await, (1003, 1));

    let alice = UserToken::new("alice").unwrap();
    let put = |key: &str, len: usize| PutObjectRequest {
        store_id: "s".into(),
        global_version: None,
        transaction_items: vec![KeyValue {
            key: key.into(),
            version: -1,
            value: Bytes::from(vec![7; len]),
        }],
        delete_items: vec![],
    };
    let quota = Quota {
        max_bytes: Some(10),
        max_keys: None,
    };
    // 5 stored: `b` and 5 bytes reach 11, `b` and 4 bytes reach the limit.
    let refused = store
        .put_with_quota(&alice, put("b", 5), quota)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, VssError::QuotaExceeded(m) if m.contains("11") && m.contains("10")),
        "{refused:?}"
    );
    store
        .put_with_quota(&alice, put("b", 4), quota)
        .await
        .unwrap();
    assert_eq!(usage("alice").await, (10, 3));
    store.close().await.unwrap();
}
