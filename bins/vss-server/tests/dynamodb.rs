//! vss-server on DynamoDB (cargo feature `dynamodb`): its settings, and the
//! conformance suite over HTTP against a DynamoDB-API server (`VSS_TEST_DYNAMODB_URL`).
#![cfg(feature = "dynamodb")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod backend_support;
mod common;

use std::sync::Arc;

use backend_support::*;
use vss_conformance::HttpStore;
use vss_core::conformance::{self, ConcurrencyConfig, Subject};
use vss_server::backend::{AwsCredentials, DynamoDbSettings};
use vss_server::config::Setting;
use vss_server::{BackendConfig, Config, Server, ServerError};

/// The setting `dynamodb_config.KEY`.
fn dynamodb_setting(key: &str) -> Setting {
    *setting(&format!("dynamodb_config.{key}"))
}

fn dynamodb(config: Config) -> DynamoDbSettings {
    match config.backend {
        BackendConfig::DynamoDb(settings) => settings,
        other => panic!("expected the dynamodb backend, got {other:?}"),
    }
}

#[test]
fn settings_come_from_the_environment_the_file_and_flags() {
    let expected = DynamoDbSettings {
        table: "wallet-backups.v1".into(),
        region: Some("eu-west-1".into()),
        endpoint_url: Some("http://127.0.0.1:8000".into()),
        create_table: true,
        credentials: None,
    };

    let from_env = load(
        &[],
        &[
            ("VSS_BACKEND", "dynamodb"),
            ("VSS_DYNAMODB_TABLE", "wallet-backups.v1"),
            ("VSS_DYNAMODB_REGION", "eu-west-1"),
            ("VSS_DYNAMODB_ENDPOINT_URL", "http://127.0.0.1:8000"),
            ("VSS_DYNAMODB_CREATE_TABLE", "true"),
        ],
    )
    .unwrap();
    assert_eq!(dynamodb(from_env), expected);

    let f = toml_file(
        "[server_config]\nbackend = \"dynamodb\"\n[dynamodb_config]\n\
         table = \"wallet-backups.v1\"\nregion = \"eu-west-1\"\n\
         endpoint_url = \"http://127.0.0.1:8000\"\ncreate_table = true\n",
    );
    let from_file = load(&["--config", f.path().to_str().unwrap()], &[]).unwrap();
    assert_eq!(dynamodb(from_file), expected);

    let from_flags = load(
        &[
            "--backend",
            "dynamodb",
            "--dynamodb-table",
            "wallet-backups.v1",
            "--dynamodb-region",
            "eu-west-1",
            "--dynamodb-endpoint-url",
            "http://127.0.0.1:8000",
            "--dynamodb-create-table",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(dynamodb(from_flags), expected);

    // Nothing set: table `vss`, region from the AWS chain, the region's endpoint,
    // no table creation, and credentials always from the AWS chain.
    let defaults = dynamodb(load(&["--backend", "dynamodb"], &[]).unwrap());
    assert_eq!(defaults, DynamoDbSettings::default());
    assert_eq!(defaults.table, "vss");
    assert_eq!(
        (
            defaults.region,
            defaults.endpoint_url,
            defaults.create_table
        ),
        (None, None, false)
    );
    let with_aws_keys = load(
        &["--backend", "dynamodb"],
        &[
            ("AWS_ACCESS_KEY_ID", "AKIA"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ],
    )
    .unwrap();
    assert_eq!(dynamodb(with_aws_keys).credentials, None);
}

#[test]
fn a_bad_value_is_named() {
    assert_refused("dynamodb", &dynamodb_setting("table"), "no");
    assert_refused("dynamodb", &dynamodb_setting("table"), "wallets/backups");
    assert_refused("dynamodb", &dynamodb_setting("region"), "EU West");
    assert_refused(
        "dynamodb",
        &dynamodb_setting("endpoint_url"),
        "127.0.0.1:8000",
    );
    assert_refused("dynamodb", &dynamodb_setting("endpoint_url"), "ftp://host");
    // A boolean flag takes no value: only the variable and the file can be wrong.
    let err = load(
        &["--backend", "dynamodb"],
        &[("VSS_DYNAMODB_CREATE_TABLE", "later")],
    )
    .unwrap_err();
    assert_names(
        &err,
        &dynamodb_setting("create_table"),
        "from the environment",
    );
}

#[test]
fn credentials_never_show_in_debug_output() {
    let settings = DynamoDbSettings {
        credentials: Some(AwsCredentials {
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: "hunter2".into(),
        }),
        ..DynamoDbSettings::default()
    };
    let shown = format!("{settings:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("AKIAEXAMPLE"), "{shown}");
}

/// A config for `table` on the local server: as an operator would set it,
/// plus the dummy credentials the local server accepts.
fn config_for(endpoint: &str, table: &str, create: bool) -> Config {
    let mut config = load(
        &[],
        &[
            ("VSS_BIND_ADDRESS", "127.0.0.1:0"),
            ("VSS_BACKEND", "dynamodb"),
            // One user for the suite over HTTP (backend settings alone mean signature auth).
            ("VSS_AUTH", "none"),
            ("VSS_DYNAMODB_TABLE", table),
            ("VSS_DYNAMODB_REGION", "us-east-1"),
            ("VSS_DYNAMODB_ENDPOINT_URL", endpoint),
            (
                "VSS_DYNAMODB_CREATE_TABLE",
                if create { "true" } else { "false" },
            ),
        ],
    )
    .unwrap();
    let BackendConfig::DynamoDb(settings) = &mut config.backend else {
        panic!("expected the dynamodb backend");
    };
    settings.credentials = Some(AwsCredentials {
        access_key_id: "test".into(),
        secret_access_key: "test".into(),
    });
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_over_http_on_dynamodb() {
    let Some(endpoint) = conformance::service_url("VSS_TEST_DYNAMODB_URL") else {
        return;
    };
    // A server on a fresh table per test: the local server copies the whole
    // table on every transaction, so one table growing through the suite
    // makes it many times slower. Each server is the real thing all the same.
    let fresh_server = || {
        let endpoint = endpoint.clone();
        async move {
            let table = conformance::unique_name("vss-srv-suite");
            let (running, limits) = start_backend(config_for(&endpoint, &table, true)).await;
            // DynamoDB transactions hold at most 100 items: fewer than the default limit.
            assert!(limits.max_items_per_put < 1000, "{limits:?}");
            let store = HttpStore::new(&running.url).unwrap().with_limits(limits);
            Subject::single_user(Arc::new(store)).holding(running)
        }
    };
    let report = conformance::run_all(fresh_server).await;
    report.assert_all_passed();
    assert!(report.passed() > 40, "{}", report.summary());
    // Fewer racers than the default: the local server runs one request at a
    // time, and the backend's own tests run the full races against the store.
    let races = ConcurrencyConfig {
        tasks: 8,
        increments_per_task: 4,
    };
    conformance::run_races(fresh_server, races).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_table_stops_startup_unless_it_may_be_created() {
    let Some(endpoint) = conformance::service_url("VSS_TEST_DYNAMODB_URL") else {
        return;
    };
    let table = conformance::unique_name("vss-srv-missing");
    let err = Server::start(config_for(&endpoint, &table, false))
        .await
        .unwrap_err();
    assert!(matches!(err, ServerError::Backend(_)), "{err}");
    assert!(err.to_string().contains(&table), "{err}");
    assert!(
        err.to_string().contains("VSS_DYNAMODB_CREATE_TABLE"),
        "the error names the setting that creates it: {err}"
    );

    // Created by a first server, the table is then used as it is by a second one.
    let first = common::start(config_for(&endpoint, &table, true)).await;
    let store_id = put_one(&first.url).await;
    first.stop().await;
    let second = common::start(config_for(&endpoint, &table, false)).await;
    assert_stored(&second.url, &store_id).await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_stops_startup_with_the_cause() {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let config = config_for(&endpoint, "vss-unreachable", false);
    assert_start_fails_with(config, "dynamodb", &["DescribeTable", "Connection refused"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_holds_under_64_concurrent_large_puts_on_dynamodb() {
    let Some(endpoint) = conformance::service_url("VSS_TEST_DYNAMODB_URL") else {
        return;
    };
    let table = conformance::unique_name("vss-srv-quota");
    backend_support::quota_holds_under_concurrent_large_puts(config_for(&endpoint, &table, true))
        .await;
}
