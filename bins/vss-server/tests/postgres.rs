//! vss-server on PostgreSQL (cargo feature `postgres`): its settings, and the
//! conformance suite over HTTP against a real PostgreSQL (`VSS_TEST_POSTGRES_URL`).
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod backend_support;
mod common;

use backend_support::*;
use vss_backend_postgres::PostgresConfig;
use vss_core::conformance::{self, ModelConfig};
use vss_server::backend::{PostgresSettings, PostgresTls};
use vss_server::config::{ConfigError, Setting};
use vss_server::{BackendConfig, Config, Server, ServerError};

/// The setting `postgresql_config.KEY`.
fn psql(key: &str) -> Setting {
    *setting(&format!("postgresql_config.{key}"))
}

fn postgres(config: Config) -> PostgresSettings {
    match config.backend {
        BackendConfig::Postgres(settings) => settings,
        other => panic!("expected the postgres backend, got {other:?}"),
    }
}

#[test]
fn settings_come_from_the_environment_the_file_and_flags() {
    let ca = tempfile::NamedTempFile::new().unwrap();
    let ca_path = ca.path().to_str().unwrap();
    let expected = PostgresSettings {
        url: None,
        username: Some("alice".into()),
        password: Some("pw".into()),
        address: Some("db:6000".into()),
        default_database: Some("template1".into()),
        vss_database: Some("wallets".into()),
        tls: Some(PostgresTls::Require),
        crt_pem: None,
        ca_file: Some(ca.path().to_path_buf()),
    };

    let from_env = load(
        &[],
        &[
            ("VSS_BACKEND", "postgres"),
            ("VSS_PSQL_USERNAME", "alice"),
            ("VSS_PSQL_PASSWORD", "pw"),
            ("VSS_PSQL_ADDRESS", "db:6000"),
            ("VSS_PSQL_DEFAULT_DB", "template1"),
            ("VSS_PSQL_VSS_DB", "wallets"),
            ("VSS_PSQL_TLS", "REQUIRE"),
            ("VSS_PSQL_CA_FILE", ca_path),
        ],
    )
    .unwrap();
    assert_eq!(postgres(from_env), expected);

    let f = toml_file(&format!(
        "[server_config]\nbackend = \"postgres\"\n[postgresql_config]\nusername = \"alice\"\n\
         password = \"pw\"\naddress = \"db:6000\"\ndefault_database = \"template1\"\n\
         vss_database = \"wallets\"\ntls = \"require\"\nca_file = {}\n",
        toml_string(ca_path)
    ));
    let from_file = load(&["--config", f.path().to_str().unwrap()], &[]).unwrap();
    assert_eq!(postgres(from_file), expected);

    let from_flags = load(
        &[
            "--backend",
            "postgres",
            "--psql-username",
            "alice",
            "--psql-address",
            "db:6000",
            "--psql-default-db",
            "template1",
            "--psql-vss-db",
            "wallets",
            "--psql-tls",
            "require",
            "--psql-ca-file",
            ca_path,
        ],
        // The password has no flag.
        &[("VSS_PSQL_PASSWORD", "pw")],
    )
    .unwrap();
    assert_eq!(postgres(from_flags), expected);

    // Nothing set: the reference server's defaults, TLS off.
    let defaults = postgres(load(&["--backend", "postgres"], &[]).unwrap());
    assert_eq!(defaults, PostgresSettings::default());
    assert_eq!(defaults.tls_mode(), PostgresTls::Disable);
}

#[test]
fn the_url_is_a_secret_setting_of_its_own() {
    let url = "postgres://alice:hunter2@db:6000/wallets?sslmode=require";
    let config = load(&[], &[("VSS_BACKEND", "postgres"), ("VSS_PSQL_URL", url)]).unwrap();
    assert!(
        !format!("{config:?}").contains("hunter2"),
        "the password leaks through Debug"
    );
    assert_eq!(postgres(config).url.as_deref(), Some(url));
    let f = toml_file(&format!(
        "[postgresql_config]\nurl = {}\n",
        toml_string(url)
    ));
    let from_file = load(
        &[
            "--config",
            f.path().to_str().unwrap(),
            "--backend",
            "postgres",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(postgres(from_file).url.as_deref(), Some(url));
    assert_eq!(
        psql("url").flag,
        None,
        "a flag would show the password to other users"
    );

    // A bad URL is named, without repeating it.
    let err = load(
        &[],
        &[
            ("VSS_BACKEND", "postgres"),
            ("VSS_PSQL_URL", "postgres://alice:hunter2@db/x?bogus=1"),
        ],
    )
    .unwrap_err();
    assert_names(&err, &psql("url"), "from the environment");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn the_url_and_the_separate_settings_exclude_each_other() {
    let url = ("VSS_PSQL_URL", "postgres://alice:hunter2@db/wallets");
    let ca = tempfile::NamedTempFile::new().unwrap();
    for (setting, value) in [
        (psql("username"), "bob"),
        (psql("password"), "pw"),
        (psql("address"), "db:1"),
        (psql("default_database"), "postgres"),
        (psql("vss_database"), "vss"),
        // Even the default value: the URL's sslmode decides.
        (psql("tls"), "disable"),
        (psql("ca_file"), ca.path().to_str().unwrap()),
    ] {
        let err = load(
            &[],
            &[("VSS_BACKEND", "postgres"), url, (setting.env, value)],
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::Conflict(_)), "{err}");
        let message = err.to_string();
        assert!(message.contains("VSS_PSQL_URL"), "{message}");
        assert!(message.contains(setting.env), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}

#[test]
fn a_bad_value_is_named() {
    assert_refused("postgres", &psql("tls"), "verify-full");
    assert_refused("postgres", &psql("ca_file"), "/nonexistent/ca.pem");
    let dir = tempfile::tempdir().unwrap();
    assert_refused("postgres", &psql("ca_file"), dir.path().to_str().unwrap());
}

/// `VSS_TEST_POSTGRES_URL`'s server, user and database, as the separate settings.
fn test_server() -> Option<PostgresConfig> {
    let url = conformance::service_url("VSS_TEST_POSTGRES_URL")?;
    Some(PostgresConfig::from_url(&url).unwrap())
}

/// A database name no other test uses (PostgreSQL names are at most 63 bytes).
fn fresh_database(label: &str) -> String {
    let mut name = conformance::unique_name(&format!("vss_srv_{label}")).replace('-', "_");
    name.truncate(63);
    name
}

/// The variables an operator would set for a new database on the test server.
fn env_for(server: &PostgresConfig, database: &str) -> Vec<(&'static str, String)> {
    vec![
        ("VSS_BIND_ADDRESS", "127.0.0.1:0".into()),
        ("VSS_BACKEND", "postgres".into()),
        // One user for the suite over HTTP (backend settings alone mean signature auth).
        ("VSS_AUTH", "none".into()),
        ("VSS_PSQL_ADDRESS", server.address.clone()),
        ("VSS_PSQL_USERNAME", server.username.clone()),
        ("VSS_PSQL_DEFAULT_DB", server.database.clone()),
        ("VSS_PSQL_VSS_DB", database.to_string()),
    ]
}

fn load_env(env: &[(&'static str, String)]) -> Config {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    load(&[], &env).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_over_http_on_postgres() {
    let Some(server) = test_server() else {
        return;
    };
    // The database does not exist yet: the server creates it, as the reference server does.
    let config = load_env(&env_for(&server, &fresh_database("suite")));
    let (running, limits) = start_backend(config).await;
    suite_over_http(&running.url, limits).await;
    // The pool's state is measured.
    let metrics = common::get(running.addr, "/metrics").await.body;
    for series in [
        "vss_postgres_pool_connections{state=\"open\"}",
        "vss_postgres_pool_connections{state=\"max\"} 16",
        "vss_postgres_pool_waiting",
    ] {
        assert!(metrics.contains(series), "{series} in {metrics}");
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_holds_under_64_concurrent_large_puts_on_postgres() {
    let Some(server) = test_server() else {
        return;
    };
    let config = load_env(&env_for(&server, &fresh_database("quota")));
    backend_support::quota_holds_under_concurrent_large_puts(config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_test_passes_over_http_on_postgres() {
    let Some(server) = test_server() else {
        return;
    };
    let config = load_env(&env_for(&server, &fresh_database("model")));
    let (running, limits) = start_backend(config).await;
    model_test_over_http(&running.url, limits, ModelConfig::default()).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_url_setting_reaches_an_existing_database() {
    let Some(server) = test_server() else {
        return;
    };
    let database = fresh_database("url");
    // Created by a first server from the separate settings...
    let first = common::start(load_env(&env_for(&server, &database))).await;
    let store_id = put_one(&first.url).await;
    first.stop().await;
    // ...then reached by URL, which never creates databases.
    let url = format!(
        "postgres://{}@{}/{database}?sslmode=disable",
        server.username, server.address
    );
    let config = load_env(&[
        ("VSS_BIND_ADDRESS", "127.0.0.1:0".into()),
        ("VSS_BACKEND", "postgres".into()),
        ("VSS_AUTH", "none".into()),
        ("VSS_PSQL_URL", url),
    ]);
    let running = common::start(config).await;
    assert_stored(&running.url, &store_id).await;
    running.stop().await;

    // A URL names an existing database: a misnamed one stops startup with
    // PostgreSQL's own words.
    let never_created = fresh_database("never_created");
    let missing = format!(
        "postgres://{}@{}/{never_created}?sslmode=disable",
        server.username, server.address,
    );
    let config = load_env(&[
        ("VSS_BIND_ADDRESS", "127.0.0.1:0".into()),
        ("VSS_BACKEND", "postgres".into()),
        ("VSS_PSQL_URL", missing),
    ]);
    assert_start_fails_with(
        config,
        "postgres",
        &[&format!("database \"{never_created}\" does not exist")],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_stops_startup_with_the_cause() {
    let Some(server) = test_server() else {
        return;
    };
    let mut env = env_for(&server, &fresh_database("unreachable"));
    env.retain(|(name, _)| *name != "VSS_PSQL_ADDRESS");
    env.push(("VSS_PSQL_ADDRESS", format!("127.0.0.1:{}", closed_port())));
    assert_start_fails_with(load_env(&env), "postgres", &["Connection refused"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_settings_reach_the_backend() {
    let Some(server) = test_server() else {
        return;
    };
    // scripts/test's server also serves TLS, with a certificate from its own CA.
    let Some(ca_file) = std::env::var("VSS_TEST_POSTGRES_CA_FILE")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "scripts/test sets VSS_TEST_POSTGRES_CA_FILE"
        );
        eprintln!("SKIPPED: VSS_TEST_POSTGRES_CA_FILE is not set");
        return;
    };
    let mut env = env_for(&server, &fresh_database("tls"));
    env.push(("VSS_PSQL_TLS", "require".into()));
    env.push(("VSS_PSQL_CA_FILE", ca_file));
    let running = common::start(load_env(&env)).await;
    round_trip(&running.url).await;
    running.stop().await;

    // Without the CA file the Mozilla roots are trusted, which do not sign the test certificate.
    env.pop();
    let err = Server::start(load_env(&env)).await.unwrap_err();
    assert!(matches!(err, ServerError::Backend(_)), "{err}");
}

/// A put that cannot finish before the request timeout (its row is locked)
/// is either answered success or leaves no trace: it never commits after an
/// INTERNAL answer, which would turn the client's retry into a false CONFLICT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_stuck_past_the_request_timeout_leaves_no_trace_and_its_retry_succeeds() {
    use vss_core::proto::{GetObjectRequest, KeyValue, PutObjectRequest};
    use vss_core::{validate, KvStore, UserToken, VssError};

    let Some(server) = test_server() else {
        return;
    };
    let database = fresh_database("stuck");
    let mut env = env_for(&server, &database);
    // The store's deadline comes 1 s before the request timeout: time enough to
    // cancel on a loaded machine.
    const TIMEOUT_SECS: u64 = 5;
    env.push(("VSS_REQUEST_TIMEOUT_SECS", TIMEOUT_SECS.to_string()));
    let running = common::start(load_env(&env)).await;
    let http = vss_conformance::HttpStore::new(&running.url).unwrap();
    let user = UserToken::new("any").unwrap();
    let store_id = conformance::unique_name("stuck");
    let put = |global_version: i64, key: &str| PutObjectRequest {
        store_id: store_id.clone(),
        global_version: Some(global_version),
        transaction_items: vec![KeyValue {
            key: key.into(),
            version: 0,
            value: bytes::Bytes::from_static(b"v"),
        }],
        delete_items: vec![],
    };
    let global_version = || async {
        let got = http
            .get(
                &user,
                GetObjectRequest {
                    store_id: store_id.clone(),
                    key: validate::GLOBAL_VERSION_KEY.into(),
                },
            )
            .await
            .unwrap();
        got.value.unwrap().version
    };
    http.put(&user, put(0, "first")).await.unwrap();
    assert_eq!(global_version().await, 1);

    // Another session holds the store's row longer than the request timeout.
    let (locker, connection) = tokio_postgres::connect(
        &format!(
            "host={} port={} user={} dbname={database}",
            server.address.rsplit_once(':').unwrap().0,
            server.address.rsplit_once(':').unwrap().1,
            server.username
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    locker
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM vss_stores WHERE store_id = '\\x{}'::bytea FOR UPDATE",
            hex::encode(&store_id)
        ))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let stuck = http.put(&user, put(1, "second")).await;
    let answered_after = started.elapsed();
    locker.batch_execute("ROLLBACK").await.unwrap();
    // Whatever the server left running has run once no session waits for a lock.
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                   AND pid <> pg_backend_pid() AND state = 'active'";
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while locker
        .query_one(waiting, &[])
        .await
        .unwrap()
        .get::<_, i64>(0)
        > 0
    {
        assert!(
            std::time::Instant::now() < until,
            "a statement is still running"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let stored = global_version().await;
    match &stuck {
        Ok(_) => assert_eq!(stored, 2, "answered success, so it was written"),
        Err(VssError::Internal(message)) => {
            assert_eq!(
                stored, 1,
                "answered {message:?} after {answered_after:?}, yet written"
            );
            let second = http
                .get(
                    &user,
                    GetObjectRequest {
                        store_id: store_id.clone(),
                        key: "second".into(),
                    },
                )
                .await;
            assert!(matches!(second, Err(VssError::NoSuchKey(_))), "{second:?}");
            // The client's retry meets no trace of its first attempt.
            http.put(&user, put(1, "second")).await.unwrap();
            assert_eq!(global_version().await, 2);
        }
        Err(other) => panic!("a stuck put must be answered INTERNAL, got {other:?}"),
    }
    // The server answered before its own request timeout: the store stopped at its deadline.
    assert!(
        answered_after < std::time::Duration::from_secs(TIMEOUT_SECS),
        "answered after {answered_after:?}"
    );
    running.stop().await;
}
