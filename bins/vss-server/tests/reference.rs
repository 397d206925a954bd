//! Switching from the reference server (lightningdevkit/vss-server): its config
//! file and environment, backend inference, the authentication default, and
//! its data in PostgreSQL: refused until imported, then served to
//! vss-client-ng exactly, and exported back.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod backend_support;
mod common;

use std::net::SocketAddr;
use std::path::PathBuf;

use backend_support::{load, toml_file};
use common::PUBLIC_PEM;
use vss_server::backend::{compiled_backends, PostgresSettings, PostgresTls};
use vss_server::config::ConfigError;
use vss_server::{AuthConfig, AuthMethods, BackendConfig, Config};

const CA_PEM: &str = include_str!("fixtures/test-ca.pem");

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn postgres(config: &Config) -> &PostgresSettings {
    match &config.backend {
        BackendConfig::Postgres(settings) => settings,
        other => panic!("expected the postgres backend, got {other:?}"),
    }
}

fn is_sigs_only(auth: &AuthConfig) -> bool {
    matches!(
        auth,
        AuthConfig::Methods(AuthMethods {
            jwt: None,
            sigs: Some(_),
            lnurl: None
        })
    )
}

/// The reference server's sample configuration, as an operator has it.
fn reference_config(log_file: &std::path::Path, extra: &str) -> tempfile::NamedTempFile {
    toml_file(&format!(
        "[server_config]\n\
         bind_address = \"127.0.0.1:8080\"\n\
         max_request_body_size = 2097152\n\n\
         [postgresql_config]\n\
         username = \"postgres\"\n\
         password = \"postgres\"\n\
         address = \"db.internal:5432\"\n\
         default_database = \"postgres\"\n\
         vss_database = \"vss\"\n\n\
         [postgresql_config.tls]\n\
         crt_pem = \"\"\"\n{CA_PEM}\"\"\"\n\n\
         [log_config]\n\
         level = \"debug\"\n\
         file = \"{}\"\n{extra}",
        log_file.display()
    ))
}

#[test]
fn the_config_file_may_be_the_first_argument() {
    let f = toml_file("[server_config]\nbind_address = \"127.0.0.1:9100\"\n");
    let path = f.path().to_str().unwrap();
    let positional = load(&[path], &[]).unwrap();
    assert_eq!(positional.bind_address, addr("127.0.0.1:9100"));
    let flag = load(&["--config", path], &[]).unwrap();
    assert_eq!(flag.bind_address, positional.bind_address);
    // Flags still win over the file.
    let both = load(&[path, "--bind-address", "127.0.0.1:9101"], &[]).unwrap();
    assert_eq!(both.bind_address, addr("127.0.0.1:9101"));
    // Two files are one too many.
    let err = load(&[path, "--config", path], &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Usage { .. }), "{err}");
}

#[test]
fn a_reference_config_file_means_what_it_means_to_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("vss.log");
    let f = reference_config(&log, "");
    let config = load(&[f.path().to_str().unwrap()], &[]).unwrap();

    assert_eq!(config.bind_address, addr("127.0.0.1:8080"));
    assert_eq!(config.http.max_body_size(), 2_097_152);
    let pg = postgres(&config);
    assert_eq!(pg.username.as_deref(), Some("postgres"));
    assert_eq!(pg.password.as_deref(), Some("postgres"));
    assert_eq!(pg.address.as_deref(), Some("db.internal:5432"));
    assert_eq!(pg.default_database.as_deref(), Some("postgres"));
    assert_eq!(pg.vss_database.as_deref(), Some("vss"));
    // `[postgresql_config.tls]` turns TLS on; its crt_pem is a CA certificate.
    assert_eq!(pg.tls, Some(PostgresTls::Require));
    assert_eq!(pg.crt_pem.as_deref(), Some(CA_PEM.trim()));
    assert_eq!(config.log_filter, "debug");
    assert_eq!(config.log_file, Some(log.clone()));
    // No JWT key: signature auth, as the reference's default build.
    assert!(is_sigs_only(&config.auth), "{:?}", config.auth);
    assert!(
        config.decisions[0].starts_with("backend postgres: ")
            && config.decisions[0].contains("postgresql_config."),
        "{:?}",
        config.decisions
    );
    assert!(
        config.decisions[1].starts_with("authentication: sigs"),
        "{:?}",
        config.decisions
    );

    // With the reference's JWT key: JWT only.
    let pem = PUBLIC_PEM.trim_end();
    let with_key = reference_config(
        &log,
        &format!("\n[jwt_auth_config]\nrsa_pem = \"\"\"\n{pem}\n\"\"\"\n"),
    );
    let config = load(&[with_key.path().to_str().unwrap()], &[]).unwrap();
    assert_eq!(config.auth, AuthConfig::jwt(pem));

    // An empty `[postgresql_config.tls]` table: TLS with the default roots.
    let bare = toml_file("[postgresql_config]\naddress = \"db:5432\"\n[postgresql_config.tls]\n");
    let config = load(&[bare.path().to_str().unwrap()], &[]).unwrap();
    assert_eq!(postgres(&config).tls, Some(PostgresTls::Require));
    assert_eq!(postgres(&config).crt_pem, None);
    // A key the table does not have is refused like any other.
    let typo = toml_file("[postgresql_config.tls]\ncrt_pm = \"x\"\n");
    let err = load(&[typo.path().to_str().unwrap()], &[]).unwrap_err();
    assert!(
        err.to_string().contains("postgresql_config.tls.crt_pm"),
        "{err}"
    );
}

#[test]
fn the_reference_environment_means_the_same() {
    let env = [
        ("VSS_BIND_ADDRESS", "127.0.0.1:9200"),
        ("VSS_MAX_REQUEST_BODY_SIZE", "4096"),
        ("VSS_PSQL_USERNAME", "vss"),
        ("VSS_PSQL_PASSWORD", "secret"),
        ("VSS_PSQL_ADDRESS", "db:6000"),
        ("VSS_PSQL_DEFAULT_DB", "template1"),
        ("VSS_PSQL_VSS_DB", "wallets"),
        ("VSS_PSQL_TLS", "true"),
        ("VSS_PSQL_CRT_PEM", CA_PEM),
        ("VSS_LOG_LEVEL", "warn"),
        ("VSS_LOG_FILE", "/var/log/vss/vss.log"),
    ];
    let config = load(&[], &env).unwrap();
    assert_eq!(config.bind_address, addr("127.0.0.1:9200"));
    assert_eq!(config.http.max_body_size(), 4096);
    let pg = postgres(&config);
    assert_eq!(
        (
            pg.username.as_deref(),
            pg.password.as_deref(),
            pg.address.as_deref(),
            pg.default_database.as_deref(),
            pg.vss_database.as_deref()
        ),
        (
            Some("vss"),
            Some("secret"),
            Some("db:6000"),
            Some("template1"),
            Some("wallets")
        )
    );
    assert_eq!(pg.tls_mode(), PostgresTls::Require);
    assert_eq!(pg.crt_pem.as_deref(), Some(CA_PEM.trim()));
    assert_eq!(config.log_filter, "warn");
    assert_eq!(config.log_file, Some(PathBuf::from("/var/log/vss/vss.log")));
    assert!(is_sigs_only(&config.auth), "{:?}", config.auth);

    // The CA alone turns TLS on; TLS explicitly off with a CA is a contradiction.
    let ca_only = load(
        &[],
        &[("VSS_PSQL_ADDRESS", "db:1"), ("VSS_PSQL_CRT_PEM", CA_PEM)],
    )
    .unwrap();
    assert_eq!(postgres(&ca_only).tls_mode(), PostgresTls::Require);
    let err = load(
        &[],
        &[("VSS_PSQL_TLS", "disable"), ("VSS_PSQL_CRT_PEM", CA_PEM)],
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("VSS_PSQL_CRT_PEM") && message.contains("VSS_PSQL_TLS"),
        "{message}"
    );
    // A certificate that does not parse stops startup naming the setting.
    let err = load(
        &[],
        &[("VSS_PSQL_CRT_PEM", "-----BEGIN CERTIFICATE-----\nAAAA\n")],
    )
    .unwrap_err();
    assert!(err.to_string().contains("VSS_PSQL_CRT_PEM"), "{err}");
}

#[test]
fn the_backend_follows_the_settings_given() {
    let compiled = compiled_backends();
    for (env, expected) in [
        (("VSS_PSQL_ADDRESS", "db:5432"), "postgres"),
        (("VSS_PSQL_URL", "postgres://u@db/vss"), "postgres"),
        (("VSS_SQLITE_PATH", "/tmp/vss-test.sqlite3"), "sqlite"),
        (("VSS_REDIS_URL", "redis://127.0.0.1:1"), "redis"),
        (("VSS_DYNAMODB_TABLE", "wallets"), "dynamodb"),
    ] {
        match load(&[], &[env]) {
            Ok(config) => {
                assert!(compiled.contains(&expected), "{expected}");
                assert_eq!(config.backend.name(), expected, "{env:?}");
                assert!(
                    config.decisions[0].contains(env.0),
                    "{:?}",
                    config.decisions
                );
            }
            // A build without it says which feature it needs.
            Err(err) => {
                assert!(!compiled.contains(&expected), "{expected}: {err}");
                assert!(
                    err.to_string().contains(&format!("--features {expected}")),
                    "{err}"
                );
            }
        }
    }
    // The same from the file.
    let f = toml_file("[sqlite_config]\nsynchronous = \"normal\"\n");
    let config = load(&[f.path().to_str().unwrap()], &[]).unwrap();
    assert_eq!(config.backend.name(), "sqlite");
    // Nothing given: the default.
    assert_eq!(load(&[], &[]).unwrap().backend.name(), "sqlite");
    // A chosen backend wins, and other backends' settings are ignored.
    let config = load(
        &[],
        &[("VSS_BACKEND", "sqlite"), ("VSS_PSQL_ADDRESS", "db:5432")],
    )
    .unwrap();
    assert_eq!(config.backend.name(), "sqlite");
}

#[test]
fn settings_of_two_backends_without_a_choice_stop_startup() {
    let err = load(
        &[],
        &[
            ("VSS_PSQL_ADDRESS", "db:5432"),
            ("VSS_SQLITE_PATH", "/tmp/vss-test.sqlite3"),
        ],
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::Conflict(_)), "{err}");
    let message = err.to_string();
    for needle in [
        "`postgres`",
        "VSS_PSQL_ADDRESS",
        "`sqlite`",
        "VSS_SQLITE_PATH",
        "VSS_BACKEND",
    ] {
        assert!(message.contains(needle), "{needle}: {message}");
    }
    // One from the file, one from the environment.
    let f = toml_file("[postgresql_config]\nvss_database = \"vss\"\n");
    let err = load(
        &[f.path().to_str().unwrap()],
        &[("VSS_SQLITE_PATH", "/tmp/vss-test.sqlite3")],
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("postgresql_config.vss_database") && message.contains("VSS_SQLITE_PATH"),
        "{message}"
    );
}

#[test]
fn authentication_defaults_to_the_references_once_anything_is_configured() {
    // The zero-setup local run stays open (on loopback only).
    assert_eq!(load(&[], &[]).unwrap().auth, AuthConfig::Unauthenticated);
    // Choosing a backend alone configures nothing else.
    assert_eq!(
        load(&["--backend", "memory"], &[]).unwrap().auth,
        AuthConfig::Unauthenticated
    );
    // A config file, even an empty one, or any backend setting: signature auth.
    let empty = toml_file("");
    let config = load(&[empty.path().to_str().unwrap()], &[]).unwrap();
    assert!(is_sigs_only(&config.auth), "{:?}", config.auth);
    for env in [
        ("VSS_SQLITE_PATH", "/tmp/vss-test.sqlite3"),
        ("VSS_PSQL_ADDRESS", "db:5432"),
    ] {
        let config = load(&[], &[env]).unwrap();
        assert!(is_sigs_only(&config.auth), "{env:?}: {:?}", config.auth);
        assert!(
            config.decisions[1].contains("sigs"),
            "{:?}",
            config.decisions
        );
    }
    // A JWT key: JWT, as the reference.
    let config = load(
        &[],
        &[
            ("VSS_PSQL_ADDRESS", "db:5432"),
            ("VSS_JWT_RSA_PEM", PUBLIC_PEM),
        ],
    )
    .unwrap();
    assert_eq!(config.auth, AuthConfig::jwt(PUBLIC_PEM.trim()));
    // An explicit choice wins.
    let config = load(&[empty.path().to_str().unwrap()], &[("VSS_AUTH", "none")]).unwrap();
    assert_eq!(config.auth, AuthConfig::Unauthenticated);
}

/// The reference server's data in a real PostgreSQL (`VSS_TEST_POSTGRES_URL`),
/// read by vss-client-ng through the binaries, as an operator would switch.
#[cfg(feature = "postgres")]
mod data {
    use std::collections::HashMap;
    use std::path::Path;
    use std::sync::Arc;

    use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
    use tokio_postgres::NoTls;
    use vss_backend_postgres::PostgresConfig;
    use vss_client_ng::client::VssClient;
    use vss_client_ng::error::VssError as ClientError;
    use vss_client_ng::headers::sigs_auth::SigsAuthProvider;
    use vss_client_ng::types::{
        GetObjectRequest, KeyValue, ListKeyVersionsRequest, PutObjectRequest,
    };
    use vss_core::conformance;

    use crate::common::child::{run_to_end, start, ADMIN, SERVER};

    /// The reference's schema, as its migrations create it.
    const REFERENCE_SCHEMA: &str = "
        CREATE TABLE vss_db_version (db_version INTEGER);
        INSERT INTO vss_db_version VALUES (1);
        CREATE TABLE vss_db_upgrades (upgrade_from INTEGER);
        CREATE TABLE vss_db (
            user_token character varying(120) NOT NULL CHECK (user_token <> ''),
            store_id character varying(120) NOT NULL CHECK (store_id <> ''),
            key character varying(600) NOT NULL,
            value bytea NULL,
            version bigint NOT NULL,
            created_at timestamp with time zone,
            last_updated_at timestamp with time zone,
            sort_order bigserial UNIQUE,
            PRIMARY KEY (user_token, store_id, key)
        );";

    use crate::common::{client_policy as policy, ldk_key, ClientPolicy as Policy};

    /// A wallet: its signing key and the user token the reference stored it under.
    struct Wallet {
        secret: SecretKey,
        user: String,
    }

    fn wallet(seed: u8) -> Wallet {
        let secret = SecretKey::from_slice(&[seed; 32]).unwrap();
        let user = PublicKey::from_secret_key(&Secp256k1::new(), &secret).to_string();
        Wallet { secret, user }
    }

    /// A reference database on the test server, and a reference-style config
    /// file for it, under `dir`.
    struct Deployment {
        client: tokio_postgres::Client,
        config_file: String,
        dir: tempfile::TempDir,
    }

    async fn connect(server: &PostgresConfig, database: &str) -> tokio_postgres::Client {
        let mut pg = tokio_postgres::Config::new();
        let (host, port) = server.address.rsplit_once(':').unwrap();
        pg.host(host)
            .port(port.parse().unwrap())
            .user(&server.username)
            .dbname(database);
        if let Some(password) = &server.password {
            pg.password(password);
        }
        let (client, connection) = pg.connect(NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    }

    /// A new database holding the reference's schema; `None` without a test server.
    async fn deployment(label: &str) -> Option<Deployment> {
        deployment_with(label, "").await
    }

    /// [`deployment`], with `server_config` lines added to its config file.
    async fn deployment_with(label: &str, server_config: &str) -> Option<Deployment> {
        let url = conformance::service_url("VSS_TEST_POSTGRES_URL")?;
        let server = PostgresConfig::from_url(&url).unwrap();
        let mut database = conformance::unique_name(&format!("vss_ref_{label}")).replace('-', "_");
        database.truncate(63);
        connect(&server, &server.database)
            .await
            .batch_execute(&format!("CREATE DATABASE \"{database}\""))
            .await
            .unwrap();
        let client = connect(&server, &database).await;
        client.batch_execute(REFERENCE_SCHEMA).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let password = server
            .password
            .as_ref()
            .map(|p| format!("password = \"{p}\"\n"))
            .unwrap_or_default();
        // The reference's sample file, on a free port: no backend, no auth setting.
        let config = format!(
            "[server_config]\nbind_address = \"127.0.0.1:0\"\n{server_config}\n\
             [postgresql_config]\nusername = \"{}\"\n{password}address = \"{}\"\n\
             default_database = \"{}\"\nvss_database = \"{database}\"\n",
            server.username, server.address, server.database
        );
        let config_file = dir.path().join("vss-server-config.toml");
        std::fs::write(&config_file, config).unwrap();
        Some(Deployment {
            client,
            config_file: config_file.to_str().unwrap().to_string(),
            dir,
        })
    }

    impl Deployment {
        /// Writes as the reference server does: keys of two wallets in two
        /// stores, with versions, values (empty and NULL among them), a global
        /// version, 600-character keys, more than two pages, updates that keep
        /// a key's place and a delete and re-create that moves one to the front.
        async fn populate(&self, alice: &Wallet, bob: &Wallet) {
            let insert = "INSERT INTO vss_db (user_token, store_id, key, value, version, \
                          created_at, last_updated_at) VALUES ($1, $2, $3, $4, $5, now(), now())";
            for i in 0..230 {
                let key = if i % 3 == 0 {
                    ldk_key(i)
                } else {
                    format!("key-{i:03}")
                };
                let value: Option<Vec<u8>> = match i {
                    7 => None,
                    8 => Some(Vec::new()),
                    _ => Some(format!("value {i}").into_bytes()),
                };
                let version = 1 + (i as i64 % 4);
                self.client
                    .execute(insert, &[&alice.user, &"wallet", &key, &value, &version])
                    .await
                    .unwrap();
            }
            for (user, store, key, value) in [
                (&alice.user, "other", "a", b"alice other a".to_vec()),
                (&alice.user, "other", "b", b"alice other b".to_vec()),
                (&bob.user, "wallet", "key-001", b"bob's own".to_vec()),
                (&bob.user, "wallet", "key-002", b"bob's other".to_vec()),
            ] {
                self.client
                    .execute(insert, &[user, &store, &key, &Some(value), &1i64])
                    .await
                    .unwrap();
            }
            for (user, version) in [(&alice.user, 17i64), (&bob.user, 2)] {
                self.client
                    .execute(
                        insert,
                        &[
                            user,
                            &"wallet",
                            &"global_version",
                            &Some(Vec::<u8>::new()),
                            &version,
                        ],
                    )
                    .await
                    .unwrap();
            }
            self.client
                .batch_execute(&format!(
                    "UPDATE vss_db SET value = 'updated', version = version + 1, \
                     last_updated_at = now() WHERE user_token = '{0}' AND key IN ('key-010', 'key-100');
                     DELETE FROM vss_db WHERE user_token = '{0}' AND key = 'key-020';
                     INSERT INTO vss_db (user_token, store_id, key, value, version, created_at, \
                     last_updated_at) VALUES ('{0}', 'wallet', 'key-020', 're-created', 1, now(), now());",
                    alice.user
                ))
                .await
                .unwrap();
        }

        /// The reference's view of one store: its keys newest `sort_order` first
        /// with versions and values, and its global version (0 without a row).
        async fn reference_view(&self, user: &str, store: &str) -> (Vec<KeyValue>, i64) {
            let rows = self
                .client
                .query(
                    "SELECT key, version, coalesce(value, '') FROM vss_db \
                     WHERE user_token = $1 AND store_id = $2 AND key <> 'global_version' \
                     ORDER BY sort_order DESC",
                    &[&user, &store],
                )
                .await
                .unwrap();
            let keys = rows
                .iter()
                .map(|row| KeyValue {
                    key: row.get(0),
                    version: row.get(1),
                    value: row.get(2),
                })
                .collect();
            let global = self
                .client
                .query_opt(
                    "SELECT version FROM vss_db WHERE user_token = $1 AND store_id = $2 \
                     AND key = 'global_version'",
                    &[&user, &store],
                )
                .await
                .unwrap()
                .map_or(0, |row| row.get(0));
            (keys, global)
        }

        async fn admin(&self, command: &str) -> (Option<i32>, String, String) {
            run_to_end(ADMIN, &[command, &self.config_file], &[]).await
        }

        fn path(&self) -> &Path {
            self.dir.path()
        }
    }

    fn client(url: &str, wallet: &Wallet) -> VssClient<Policy> {
        VssClient::new_with_headers(
            url.to_string(),
            policy(),
            Arc::new(SigsAuthProvider::new(wallet.secret, HashMap::new())),
        )
    }

    /// A store as vss-client-ng sees it: every key, page by page until the
    /// empty token, with its value, and the first page's global version.
    async fn served_view(client: &VssClient<Policy>, store: &str) -> (Vec<KeyValue>, i64) {
        let mut keys = Vec::new();
        let mut token = None;
        let mut global = None;
        let mut pages = 0;
        loop {
            let page = client
                .list_key_versions(&ListKeyVersionsRequest {
                    store_id: store.into(),
                    key_prefix: None,
                    page_size: None,
                    page_token: token.clone(),
                })
                .await
                .unwrap();
            pages += 1;
            global = global.or(page.global_version);
            keys.extend(page.key_versions);
            match page.next_page_token {
                Some(t) if t.is_empty() => break,
                Some(t) => token = Some(t),
                None => panic!("no next_page_token"),
            }
            assert!(pages < 50, "the listing does not end");
        }
        for kv in &mut keys {
            let got = client
                .get_object(&GetObjectRequest {
                    store_id: store.into(),
                    key: kv.key.clone(),
                })
                .await
                .unwrap()
                .value
                .unwrap();
            assert_eq!(got.version, kv.version, "{}", kv.key);
            kv.value = got.value;
        }
        let got = client
            .get_object(&GetObjectRequest {
                store_id: store.into(),
                key: "global_version".into(),
            })
            .await
            .unwrap()
            .value
            .unwrap();
        assert_eq!(
            Some(got.version),
            global,
            "global version by get and by list"
        );
        (keys, got.version)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_references_data_is_served_exactly_after_the_import() {
        let Some(deployment) = deployment("served").await else {
            return;
        };
        let (alice, bob, carol) = (wallet(1), wallet(2), wallet(3));
        deployment.populate(&alice, &bob).await;

        let (code, stdout, stderr) = deployment.admin("import-reference").await;
        assert_eq!(code, Some(0), "{stderr}");
        assert!(stdout.contains("234 keys, 2 global versions"), "{stdout}");

        // Started as the reference is: the config file as the only argument.
        let server = start(deployment.path(), &[&deployment.config_file], &[]).await;
        for (wallet, store) in [(&alice, "wallet"), (&alice, "other"), (&bob, "wallet")] {
            let expected = deployment.reference_view(&wallet.user, store).await;
            let served = served_view(&client(&server.url, wallet), store).await;
            assert_eq!(served, expected, "{store} of {}", wallet.user);
        }
        let (alice_keys, alice_global) = deployment.reference_view(&alice.user, "wallet").await;
        assert_eq!((alice_keys.len(), alice_global), (230, 17));
        assert_eq!(alice_keys[0].key, "key-020", "re-created: newest");
        assert_eq!(alice_keys[0].value, b"re-created");
        // A wallet the reference never saw has nothing; a request without a signature is refused.
        assert_eq!(
            served_view(&client(&server.url, &carol), "wallet").await,
            (Vec::new(), 0)
        );
        let anonymous = VssClient::new(server.url.clone(), policy());
        let refused = anonymous
            .get_object(&GetObjectRequest {
                store_id: "wallet".into(),
                key: "key-001".into(),
            })
            .await;
        assert!(
            matches!(refused, Err(ClientError::AuthError(_))),
            "{refused:?}"
        );

        // Writes go on where the reference left off: versions, the global version, order.
        let alice_client = client(&server.url, &alice);
        alice_client
            .put_object(&PutObjectRequest {
                store_id: "wallet".into(),
                global_version: Some(17),
                transaction_items: vec![
                    KeyValue {
                        key: "after-the-switch".into(),
                        version: 0,
                        value: b"new".to_vec(),
                    },
                    KeyValue {
                        key: "key-010".into(),
                        version: alice_keys
                            .iter()
                            .find(|kv| kv.key == "key-010")
                            .unwrap()
                            .version,
                        value: b"updated again".to_vec(),
                    },
                ],
                delete_items: vec![],
            })
            .await
            .unwrap();
        let (keys, global) = served_view(&alice_client, "wallet").await;
        assert_eq!(global, 18);
        assert_eq!(keys[0].key, "after-the-switch");
        assert_eq!(keys.len(), 231);
        let (code, stderr) = server.signal("TERM").await;
        assert_eq!(code, Some(0), "{stderr}");
        assert!(stderr.contains("backend postgres"), "{stderr}");
        assert!(stderr.contains("authentication: sigs"), "{stderr}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nothing_is_served_until_the_import_and_after_the_reference_wrote_again() {
        let Some(deployment) = deployment("refused").await else {
            return;
        };
        let (alice, bob) = (wallet(1), wallet(2));
        deployment.populate(&alice, &bob).await;

        // Not imported: the server does not start, and says what to run.
        let (code, stdout, stderr) = run_to_end(SERVER, &[&deployment.config_file], &[]).await;
        assert_eq!(code, Some(1), "{stderr}");
        assert!(!stdout.contains("listening"), "{stdout}");
        assert!(stderr.contains("vss_db"), "{stderr}");
        assert!(stderr.contains("vss-admin import-reference"), "{stderr}");

        // Imported while the reference still serves; then the reference takes a write.
        let (code, _, stderr) = deployment.admin("import-reference").await;
        assert_eq!(code, Some(0), "{stderr}");
        deployment
            .client
            .execute(
                "UPDATE vss_db SET value = 'late write', version = version + 1, \
                 last_updated_at = now() WHERE user_token = $1 AND key = 'key-001'",
                &[&alice.user],
            )
            .await
            .unwrap();
        let (code, stdout, stderr) = run_to_end(SERVER, &[&deployment.config_file], &[]).await;
        assert_eq!(code, Some(1), "{stderr}");
        assert!(!stdout.contains("listening"), "{stdout}");
        assert!(stderr.contains("changed after it was imported"), "{stderr}");
        assert!(stderr.contains("final pass"), "{stderr}");

        // The final pass: the late write is there.
        let (code, _, stderr) = deployment.admin("import-reference").await;
        assert_eq!(code, Some(0), "{stderr}");
        let server = start(deployment.path(), &[&deployment.config_file], &[]).await;
        let expected = deployment.reference_view(&alice.user, "wallet").await;
        let served = served_view(&client(&server.url, &alice), "wallet").await;
        assert_eq!(served, expected);
        assert!(served.0.iter().any(|kv| kv.value == b"late write"));
        server.signal("TERM").await;

        // Once this server has served, another import would drop its writes: refused.
        let (code, _, stderr) = deployment.admin("import-reference").await;
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains("export-reference"), "{stderr}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_way_back_exports_everything_to_the_references_table() {
        let Some(deployment) = deployment("export").await else {
            return;
        };
        let (alice, bob) = (wallet(1), wallet(2));
        deployment.populate(&alice, &bob).await;
        let (code, _, stderr) = deployment.admin("import-reference").await;
        assert_eq!(code, Some(0), "{stderr}");

        // Served for a while: a create, an update, a delete, a global version.
        let server = start(deployment.path(), &[&deployment.config_file], &[]).await;
        let alice_client = client(&server.url, &alice);
        let before = served_view(&alice_client, "wallet").await;
        let updated = &before.0[5];
        let deleted = &before.0[9];
        alice_client
            .put_object(&PutObjectRequest {
                store_id: "wallet".into(),
                global_version: Some(before.1),
                transaction_items: vec![
                    KeyValue {
                        key: "made-by-vss-rs".into(),
                        version: 0,
                        value: b"new".to_vec(),
                    },
                    KeyValue {
                        key: updated.key.clone(),
                        version: updated.version,
                        value: b"changed by vss-rs".to_vec(),
                    },
                ],
                delete_items: vec![deleted.clone()],
            })
            .await
            .unwrap();
        let mut served = HashMap::new();
        for (wallet, store) in [(&alice, "wallet"), (&alice, "other"), (&bob, "wallet")] {
            let view = served_view(&client(&server.url, wallet), store).await;
            served.insert((wallet.user.clone(), store), view);
        }
        server.signal("TERM").await;

        let (code, stdout, stderr) = deployment.admin("export-reference").await;
        assert_eq!(code, Some(0), "{stderr}");
        assert!(stdout.contains("exported"), "{stdout}");
        // The reference's table now reads as this server served: values,
        // versions, global versions, and listing order by sort_order.
        for ((user, store), view) in &served {
            assert_eq!(
                &deployment.reference_view(user, store).await,
                view,
                "{store}"
            );
        }
        let wallet = &served[&(alice.user.clone(), "wallet")];
        assert_eq!(wallet.0[0].key, "made-by-vss-rs");
        assert_eq!(wallet.1, before.1 + 1);
        // New keys of the reference sort after the exported ones.
        let next: i64 = deployment
            .client
            .query_one(
                "SELECT nextval(pg_get_serial_sequence('vss_db', 'sort_order'))",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        let max: i64 = deployment
            .client
            .query_one("SELECT max(sort_order) FROM vss_db", &[])
            .await
            .unwrap()
            .get(0);
        assert!(next > max, "{next} > {max}");

        // The data now lives in vss_db: this server refuses it until imported again.
        let (code, _, stderr) = run_to_end(SERVER, &[&deployment.config_file], &[]).await;
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains("exported"), "{stderr}");
        let (code, _, stderr) = deployment.admin("import-reference").await;
        assert_eq!(code, Some(0), "{stderr}");
        let server = start(deployment.path(), &[&deployment.config_file], &[]).await;
        for ((user, store), view) in &served {
            let wallet = if *user == alice.user { &alice } else { &bob };
            assert_eq!(
                &served_view(&client(&server.url, wallet), store).await,
                view
            );
        }
        server.signal("TERM").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unauthenticated_deployments_user_stays_the_unauthenticated_user() {
        let Some(deployment) = deployment_with("noauth", "auth = \"none\"\n").await else {
            return;
        };
        deployment
            .client
            .batch_execute(
                "INSERT INTO vss_db (user_token, store_id, key, value, version, created_at, \
                 last_updated_at) VALUES \
                 ('unauth-user', 'wallet', 'first', 'one', 3, now(), now()), \
                 ('unauth-user', 'wallet', 'second', 'two', 1, now(), now()), \
                 ('unauth-user', 'wallet', 'global_version', '', 4, now(), now())",
            )
            .await
            .unwrap();
        let expected = deployment.reference_view("unauth-user", "wallet").await;
        let (code, _, stderr) = deployment.admin("import-reference").await;
        assert_eq!(code, Some(0), "{stderr}");
        let server = start(deployment.path(), &[&deployment.config_file], &[]).await;
        let anonymous = VssClient::new(server.url.clone(), policy());
        assert_eq!(served_view(&anonymous, "wallet").await, expected);
        anonymous
            .put_object(&PutObjectRequest {
                store_id: "wallet".into(),
                global_version: None,
                transaction_items: vec![KeyValue {
                    key: "third".into(),
                    version: 0,
                    value: b"three".to_vec(),
                }],
                delete_items: vec![],
            })
            .await
            .unwrap();
        let served = served_view(&anonymous, "wallet").await;
        server.signal("TERM").await;
        // And back to the reference's name on the way back.
        let (code, _, stderr) = deployment.admin("export-reference").await;
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(
            deployment.reference_view("unauth-user", "wallet").await,
            served
        );
        let users: i64 = deployment
            .client
            .query_one("SELECT count(DISTINCT user_token) FROM vss_db", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(users, 1);
    }
}
