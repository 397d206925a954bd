//! What the per-backend test files share: loading a configuration from given
//! flags, variables and file, checking that errors name their setting, and
//! running the conformance suite over HTTP against a started server.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // Each test binary uses a part.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use vss_conformance::HttpStore;
use vss_core::conformance::{self, ConcurrencyConfig, ModelConfig, Subject};
use vss_core::{KvStore, StoreLimits};
use vss_server::config::{ConfigError, Setting};
use vss_server::Config;

/// The configuration `vss-server ARGS` would get with exactly the variables `env`.
pub fn load(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let argv = std::iter::once("vss-server").chain(args.iter().copied());
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_sources(argv, &move |name| env.get(name).cloned())
}

/// The setting whose file key is `file_key`.
pub fn setting(file_key: &str) -> &'static Setting {
    vss_server::config::setting(file_key).unwrap_or_else(|| panic!("no setting {file_key}"))
}

/// A TOML config file with `contents`.
pub fn toml_file(contents: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(contents.as_bytes()).unwrap();
    f
}

/// Asserts that `err` names `setting` (variable and file key) and says where the value came from.
pub fn assert_names(err: &ConfigError, setting: &Setting, origin: &str) {
    let message = err.to_string();
    assert!(message.contains(setting.env), "{message}");
    assert!(message.contains(setting.file_key), "{message}");
    assert!(message.contains(origin), "{message}");
}

/// Asserts that a bad `value` for `setting` is refused naming it, whether it
/// comes from the environment, the file or (when it has one) the flag.
pub fn assert_refused(backend: &str, setting: &Setting, value: &str) {
    let backend_env = [("VSS_BACKEND", backend)];
    let env = [("VSS_BACKEND", backend), (setting.env, value)];
    let err = load(&[], &env).expect_err(setting.env);
    assert_names(&err, setting, "from the environment");

    let (section, key) = setting.file_key.split_once('.').unwrap();
    let f = toml_file(&format!("[{section}]\n{key} = {}\n", toml_string(value)));
    let path = f.path().to_str().unwrap();
    let err = load(&["--config", path], &backend_env).expect_err(setting.file_key);
    assert_names(&err, setting, path);

    if let Some(flag) = setting.flag {
        let err = load(&[&format!("{flag}={value}")], &backend_env).expect_err(flag);
        assert_names(&err, setting, "from the command line");
    }
}

/// `s` as a TOML basic string.
pub fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A server on the backend `config` names, opened by the server's own
/// [`vss_server::backend::open`], and the limits that backend declares (which
/// the HTTP client must be told: they are not on the wire).
pub async fn start_backend(config: Config) -> (crate::common::Running, StoreLimits) {
    let store = vss_server::backend::open(&config.backend).await.unwrap();
    let limits = store.limits();
    (crate::common::start_with_store(config, store).await, limits)
}

/// Runs the whole conformance suite and the compare-and-set races over HTTP
/// against the server at `url`, whose store declares `limits` (one user: the
/// server runs without authentication).
pub async fn suite_over_http(url: &str, limits: StoreLimits) {
    let store = Arc::new(HttpStore::new(url).unwrap().with_limits(limits));
    let report = conformance::run_all(|| {
        let store = store.clone();
        async move { Subject::single_user(store) }
    })
    .await;
    report.assert_all_passed();
    // Every test that does not need two users ran.
    assert!(report.passed() > 40, "{}", report.summary());
    conformance::run_races(
        || async { Subject::single_user(store.clone()) },
        ConcurrencyConfig::default(),
    )
    .await
    .unwrap();
}

/// The model-based test over HTTP against the server at `url`.
pub async fn model_test_over_http(url: &str, limits: StoreLimits, config: ModelConfig) {
    let store = Arc::new(HttpStore::new(url).unwrap().with_limits(limits));
    conformance::run_model(|| async { Subject::single_user(store.clone()) }, config)
        .await
        .unwrap();
}

/// One put then get over HTTP: the server answers from its backend.
pub async fn round_trip(url: &str) {
    let store_id = put_one(url).await;
    assert_stored(url, &store_id).await;
}

/// Puts key `k` = `v` (version 1) into a new store; returns the store id.
pub async fn put_one(url: &str) -> String {
    use vss_core::proto::{KeyValue, PutObjectRequest};
    let store_id = conformance::unique_name("round-trip");
    HttpStore::new(url)
        .unwrap()
        .put(
            &any_user(),
            PutObjectRequest {
                store_id: store_id.clone(),
                global_version: None,
                transaction_items: vec![KeyValue {
                    key: "k".into(),
                    version: 0,
                    value: bytes::Bytes::from_static(b"v"),
                }],
                delete_items: vec![],
            },
        )
        .await
        .unwrap();
    store_id
}

/// Asserts that `store_id` holds what [`put_one`] put.
pub async fn assert_stored(url: &str, store_id: &str) {
    use vss_core::proto::GetObjectRequest;
    let got = HttpStore::new(url)
        .unwrap()
        .get(
            &any_user(),
            GetObjectRequest {
                store_id: store_id.to_string(),
                key: "k".into(),
            },
        )
        .await
        .unwrap();
    let value = got.value.unwrap();
    assert_eq!((value.version, &value.value[..]), (1, &b"v"[..]));
}

/// The token the HTTP client is given; without authentication the server
/// serves one fixed user whatever it is.
fn any_user() -> vss_core::UserToken {
    vss_core::UserToken::new("any").unwrap()
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Asserts that a server on `config` does not start, with an error that names
/// the backend and holds each of `causes` (the database's own words).
pub async fn assert_start_fails_with(config: Config, backend: &str, causes: &[&str]) {
    let err = vss_server::Server::start(config).await.unwrap_err();
    assert!(matches!(err, vss_server::ServerError::Backend(_)), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("the {backend} backend")),
        "{message}"
    );
    for cause in causes {
        assert!(message.contains(cause), "lacks `{cause}`: {message}");
    }
}

/// One user's quota of 1 MiB under 64 concurrent puts of 100 KiB, through the
/// server configured by `config` and a real client: exactly as many fit as
/// the quota holds, the others are refused with the quota error (never
/// INTERNAL), and the usage is exact: the bytes left are still writable, one
/// byte more is not. The user is a fresh signature-auth key, so a database
/// that other tests share holds nothing of theirs.
pub async fn quota_holds_under_concurrent_large_puts(mut config: Config) {
    use bitcoin::hashes::{sha256, Hash};
    use bitcoin::secp256k1::SecretKey;
    use vss_client_ng::client::VssClient;
    use vss_client_ng::error::VssError as ClientError;
    use vss_client_ng::headers::sigs_auth::SigsAuthProvider;
    use vss_client_ng::types::{KeyValue, ListKeyVersionsRequest, PutObjectRequest};

    const QUOTA: u64 = 1 << 20;
    const VALUE: usize = 100 << 10;
    const PUTS: usize = 64;
    config.quotas = vss_core::QuotaPolicy {
        default: vss_core::Quota {
            max_bytes: Some(QUOTA),
            max_keys: None,
        },
        users: Default::default(),
    };
    config.auth = load(&["--auth", "sigs"], &[]).unwrap().auth;
    let (running, _) = start_backend(config).await;
    let seed = sha256::Hash::hash(conformance::unique_name("quota-user").as_bytes());
    let user = SecretKey::from_slice(seed.as_byte_array()).unwrap();
    let client = Arc::new(VssClient::new_with_headers(
        running.url.clone(),
        crate::common::client_policy(),
        Arc::new(SigsAuthProvider::new(user, HashMap::new())),
    ));
    let put = |key: String, len: usize| PutObjectRequest {
        store_id: "wallet".into(),
        global_version: None,
        transaction_items: vec![KeyValue {
            key,
            version: 0,
            value: vec![b'Q'; len],
        }],
        delete_items: vec![],
    };
    let racers: Vec<_> = (0..PUTS)
        .map(|i| {
            let client = client.clone();
            let request = put(format!("k{i:02}"), VALUE);
            tokio::spawn(async move { client.put_object(&request).await })
        })
        .collect();
    let (mut stored, mut refused) = (0u64, 0);
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => stored += 1,
            Err(ClientError::InvalidRequestError(message)) if message.contains("quota") => {
                refused += 1
            }
            Err(other) => panic!("a racing put failed otherwise than by the quota: {other:?}"),
        }
    }
    // Each key is 3 bytes and its value 100 KiB.
    let item = 3 + VALUE as u64;
    assert_eq!(stored, QUOTA / item, "puts that fit the quota");
    assert_eq!(refused, PUTS as u64 - stored);
    // Every key stored, paging to the end (a backend may end a page early:
    // DynamoDB's pages hold at most 1 MB).
    let (mut listed, mut page_token) = (0u64, None);
    loop {
        let page = client
            .list_key_versions(&ListKeyVersionsRequest {
                store_id: "wallet".into(),
                key_prefix: None,
                page_size: None,
                page_token: page_token.take(),
            })
            .await
            .unwrap();
        listed += page.key_versions.len() as u64;
        match page.next_page_token {
            Some(token) if !token.is_empty() => page_token = Some(token),
            _ => break,
        }
    }
    assert_eq!(listed, stored);
    // What is left is exactly writable (a 1-byte key and the rest), and not a byte more.
    let left = usize::try_from(QUOTA - stored * item - 1).unwrap();
    client.put_object(&put("r".into(), left)).await.unwrap();
    let over = client.put_object(&put("s".into(), 0)).await;
    assert!(
        matches!(&over, Err(ClientError::InvalidRequestError(m)) if m.contains(&QUOTA.to_string())),
        "{over:?}"
    );
    running.stop().await;
}
