//! Shared setup of the PostgreSQL tests: each test works in a database of its own.

#![allow(dead_code)] // each test binary uses part of this

use std::sync::Arc;

use vss_backend_postgres::{PostgresConfig, PostgresStore};
use vss_core::conformance::{service_url, Subject};

/// A config for a new, empty database on the server that `url_var` names, or
/// `None` (test skipped) when the variable is unset outside CI.
pub fn fresh_config(url_var: &str, label: &str) -> Option<PostgresConfig> {
    let url = service_url(url_var)?;
    let mut config = PostgresConfig::from_url(&url).expect("test URL parses");
    // The URL names the database to connect to for creating ours.
    config.default_database = config.database.clone();
    config.database = fresh_database_name(label);
    config.create_database = true;
    Some(config)
}

/// A database name no other test uses (PostgreSQL names are at most 63 bytes).
pub fn fresh_database_name(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut name = format!("vss_t_{label}_{}_{nanos:x}", std::process::id());
    name.truncate(63);
    name
}

/// A store on a fresh database of the shared test server.
pub async fn fresh_store(label: &str) -> Option<Arc<PostgresStore>> {
    let config = fresh_config("VSS_TEST_POSTGRES_URL", label)?;
    Some(Arc::new(
        PostgresStore::connect(config)
            .await
            .expect("connect to the test PostgreSQL"),
    ))
}

/// A plain tokio-postgres client to `database` on the server of `config`, for
/// looking at what the store did.
pub async fn inspect(config: &PostgresConfig, database: &str) -> tokio_postgres::Client {
    let (host, port) = config.address.rsplit_once(':').unwrap();
    let mut pg = tokio_postgres::Config::new();
    pg.host(host)
        .port(port.parse().unwrap())
        .user(&config.username)
        .dbname(database);
    if let Some(password) = &config.password {
        pg.password(password);
    }
    let (client, connection) = pg.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

pub fn subject(store: &Arc<PostgresStore>) -> Subject {
    Subject::admin(store.clone())
}

/// The backends of `pg`'s database: every connection to it but `pg`'s own.
pub async fn backends(pg: &tokio_postgres::Client) -> std::collections::BTreeSet<i32> {
    pg.query(
        "SELECT pid FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|row| row.get::<_, i32>(0))
    .collect()
}

/// Waits (polling, at most 20 s) until `done` says yes about the backends of
/// `pg`'s database; panics naming `what` otherwise.
pub async fn until_backends(
    pg: &tokio_postgres::Client,
    what: &str,
    done: impl Fn(&std::collections::BTreeSet<i32>) -> bool,
) {
    for _ in 0..400 {
        if done(&backends(pg).await) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{what}: still not so after 20 s ({:?})", backends(pg).await);
}

/// Waits (polling, at most 20 s) until at least `count` backends of `pg`'s
/// database wait for a lock; panics naming `what` otherwise.
pub async fn until_waiting_on_locks(pg: &tokio_postgres::Client, count: i64, what: &str) {
    let mut waiting = 0;
    for _ in 0..400 {
        waiting = pg
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
        if waiting >= count {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{what}: {waiting} of {count} wait for a lock after 20 s");
}

/// A put of one item, `key` at version -1, in store "s".
pub fn put_of(key: &str, value: &bytes::Bytes) -> vss_core::proto::PutObjectRequest {
    vss_core::proto::PutObjectRequest {
        store_id: "s".into(),
        global_version: None,
        transaction_items: vec![vss_core::proto::KeyValue {
            key: key.into(),
            version: -1,
            value: value.clone(),
        }],
        delete_items: vec![],
    }
}

/// [`put_of`] a value of `size` bytes, all 7.
pub fn put(key: &str, size: usize) -> vss_core::proto::PutObjectRequest {
    put_of(key, &bytes::Bytes::from(vec![7u8; size]))
}

/// A get of `key` in store "s".
pub fn get(key: &str) -> vss_core::proto::GetObjectRequest {
    vss_core::proto::GetObjectRequest {
        store_id: "s".into(),
        key: key.into(),
    }
}
