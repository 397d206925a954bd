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
