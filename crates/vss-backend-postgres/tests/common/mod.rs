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
