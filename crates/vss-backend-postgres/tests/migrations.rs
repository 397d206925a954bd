//! Startup migrations: applied once when servers start together, refused when newer.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use vss_backend_postgres::{PostgresError, PostgresStore, MIGRATIONS_TABLE, SCHEMA_VERSION};
use vss_core::KvStore;

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
