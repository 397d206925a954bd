//! TLS to the database, verified against a custom CA.
//!
//! `scripts/services/postgres.sh` gives the shared server a certificate for
//! 127.0.0.1 and localhost, signed by a CA of its own (`VSS_TEST_POSTGRES_CA_FILE`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use bytes::Bytes;
use vss_backend_postgres::{PostgresConfig, PostgresStore, TlsMode};
use vss_core::conformance::service_url;
use vss_core::proto::{GetObjectRequest, KeyValue, PutObjectRequest};
use vss_core::{KvStore, UserToken};

/// How many connections to `database` use TLS, as the server sees them.
async fn tls_connections(config: &PostgresConfig, database: &str) -> i64 {
    let admin = common::inspect(config, &config.default_database).await;
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE datname = $1 AND ssl",
            &[&database],
        )
        .await
        .unwrap()
        .get(0)
}

async fn round_trip(store: &PostgresStore) {
    let user = UserToken::new("tls-user").unwrap();
    store
        .put(
            &user,
            PutObjectRequest {
                store_id: "s".into(),
                global_version: None,
                transaction_items: vec![KeyValue {
                    key: "k".into(),
                    version: -1,
                    value: Bytes::from_static(b"over tls"),
                }],
                delete_items: vec![],
            },
        )
        .await
        .unwrap();
    let got = store
        .get(
            &user,
            GetObjectRequest {
                store_id: "s".into(),
                key: "k".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(got.value.unwrap().value, Bytes::from_static(b"over tls"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_tls_with_a_custom_ca() {
    let Some(ca_file) = service_url("VSS_TEST_POSTGRES_CA_FILE") else {
        return;
    };
    let Some(mut config) = common::fresh_config("VSS_TEST_POSTGRES_URL", "tls") else {
        return;
    };
    config.tls = TlsMode::Require;
    config.ca_file = Some(ca_file.into());
    let store = PostgresStore::connect(config.clone()).await.unwrap();
    round_trip(&store).await;
    assert!(
        tls_connections(&config, &config.database).await >= 1,
        "the pooled connection uses TLS"
    );
    store.close().await.unwrap();

    // The certificate's DNS name works as well as its IP address.
    let (_, port) = config.address.rsplit_once(':').unwrap();
    let by_name = PostgresConfig {
        address: format!("localhost:{port}"),
        tls: TlsMode::Prefer,
        ..config.clone()
    };
    let store = PostgresStore::connect(by_name).await.unwrap();
    round_trip(&store).await;
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_certificate_that_does_not_verify_is_refused() {
    if service_url("VSS_TEST_POSTGRES_CA_FILE").is_none() {
        return; // the server has no TLS
    }
    let Some(mut config) = common::fresh_config("VSS_TEST_POSTGRES_URL", "badtls") else {
        return;
    };
    // The test CA is not among the public roots.
    config.tls = TlsMode::Require;
    config.ca_file = None;
    let err = PostgresStore::connect(config).await.unwrap_err();
    let chain = format!("{err:?}");
    assert!(
        chain.contains("UnknownIssuer"),
        "refused for its certificate: {chain}"
    );
}
