//! Configuration: precedence, reference-compatible names, and errors that name the setting.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::{PUBLIC_PEM, RSA1024_PUBLIC_PEM};
use vss_server::config::{settings_list, ConfigError, JwtSettings};
use vss_server::{AuthConfig, AuthMethods, BackendConfig, Config};

fn load(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let argv = std::iter::once("vss-server").chain(args.iter().copied());
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_sources(argv, &move |name| env.get(name).cloned())
}

fn file(contents: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(contents.as_bytes()).unwrap();
    f
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn zero_configuration_is_loopback_sqlite_and_no_auth() {
    let config = load(&[], &[]).unwrap();
    assert_eq!(config.bind_address, addr("127.0.0.1:8080"));
    assert_eq!(config.http.base_path(), "/vss");
    assert_eq!(config.http.max_body_size(), 1024 * 1024 * 1024);
    assert_eq!(config.http.request_timeout(), Duration::from_secs(30));
    assert_eq!(config.shutdown_grace, Duration::from_secs(10));
    assert_eq!(config.auth, AuthConfig::Unauthenticated);
    assert!(!config.allow_unauthenticated);
    assert_eq!(config.log_filter, "info");
    let sqlite_compiled = vss_server::backend::compiled_backends().contains(&"sqlite");
    match config.backend {
        BackendConfig::Sqlite(s) => {
            assert!(sqlite_compiled);
            assert_eq!(s.path, PathBuf::from("./vss-data/vss.sqlite3"));
            assert!(s.synchronous_full, "power-loss safe by default");
        }
        BackendConfig::Memory => assert!(!sqlite_compiled, "sqlite is compiled in"),
        other => panic!("default backend: {other:?}"),
    }
}

#[test]
fn flags_beat_the_environment_which_beats_the_file() {
    let f =
        file("[server_config]\nbind_address = \"127.0.0.1:1001\"\nmax_request_body_size = 1000\n");
    let path = f.path().to_str().unwrap();
    let env = [("VSS_BIND_ADDRESS", "127.0.0.1:1002")];
    let all = load(
        &["--config", path, "--bind-address", "127.0.0.1:1003"],
        &env,
    )
    .unwrap();
    assert_eq!(all.bind_address, addr("127.0.0.1:1003"));
    assert_eq!(
        all.http.max_body_size(),
        1000,
        "the file still sets what nothing else does"
    );
    let no_flag = load(&["--config", path], &env).unwrap();
    assert_eq!(no_flag.bind_address, addr("127.0.0.1:1002"));
    let file_only = load(&["--config", path], &[]).unwrap();
    assert_eq!(file_only.bind_address, addr("127.0.0.1:1001"));
    // The file can also be named by VSS_CONFIG_FILE; an empty variable counts as unset.
    let by_env = load(&[], &[("VSS_CONFIG_FILE", path), ("VSS_BIND_ADDRESS", "")]).unwrap();
    assert_eq!(by_env.bind_address, addr("127.0.0.1:1001"));
}

#[test]
fn reference_server_names_are_understood() {
    let pem = PUBLIC_PEM.trim_end();
    let f = file(&format!(
        "[server_config]\nbind_address = \"127.0.0.1:9000\"\nmax_request_body_size = 2048\n\n\
         [jwt_auth_config]\nrsa_pem = \"\"\"\n{pem}\n\"\"\"\n\n[log_config]\nlevel = \"debug\"\n"
    ));
    let config = load(
        &[
            "--config",
            f.path().to_str().unwrap(),
            "--backend",
            "memory",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(config.bind_address, addr("127.0.0.1:9000"));
    assert_eq!(config.http.max_body_size(), 2048);
    assert!(matches!(
        config.auth,
        AuthConfig::Methods(AuthMethods {
            jwt: Some(JwtSettings { audience: None, .. }),
            sigs: None,
            lnurl: None
        })
    ));
    assert_eq!(config.log_filter, "debug");
    let from_env = load(
        &[],
        &[
            ("VSS_BIND_ADDRESS", "[::1]:9001"),
            ("VSS_MAX_REQUEST_BODY_SIZE", "4096"),
            ("VSS_JWT_RSA_PEM", PUBLIC_PEM),
            ("VSS_LOG_LEVEL", "warn"),
        ],
    )
    .unwrap();
    assert_eq!(from_env.bind_address, addr("[::1]:9001"));
    assert_eq!(from_env.http.max_body_size(), 4096);
    // Values from the environment and the file are trimmed.
    assert_eq!(from_env.auth, AuthConfig::jwt(PUBLIC_PEM.trim()));
    assert_eq!(from_env.log_filter, "warn");
}

#[test]
fn every_flag_sets_its_setting() {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("key.pem");
    std::fs::write(&pem, PUBLIC_PEM).unwrap();
    let config = load(
        &[
            "--bind-address",
            "127.0.0.1:7000",
            "--base-path",
            "/api/vss/",
            "--max-request-body-size",
            "1_000_000",
            "--request-timeout-secs",
            "5",
            "--shutdown-grace-secs",
            "0",
            "--backend",
            "sqlite",
            "--sqlite-path",
            "/tmp/x.db",
            "--sqlite-synchronous",
            "FULL",
            "--jwt-rsa-pem-file",
            pem.to_str().unwrap(),
            "--jwt-audience",
            "vss",
            "--log-level",
            "vss_http=debug,info",
            "--allow-unauthenticated",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(config.bind_address, addr("127.0.0.1:7000"));
    assert_eq!(config.http.base_path(), "/api/vss");
    assert_eq!(config.http.max_body_size(), 1_000_000);
    assert_eq!(config.http.request_timeout(), Duration::from_secs(5));
    assert_eq!(config.shutdown_grace, Duration::ZERO);
    assert_eq!(
        config.backend,
        BackendConfig::Sqlite(vss_server::backend::SqliteSettings {
            path: "/tmp/x.db".into(),
            synchronous_full: true
        })
    );
    assert_eq!(
        config.auth,
        AuthConfig::Methods(AuthMethods {
            jwt: Some(JwtSettings {
                public_keys_pem: Some(PUBLIC_PEM.to_string()),
                audience: Some("vss".into()),
                issuer: None,
                key_holder_subjects: false,
            }),
            sigs: None,
            lnurl: None,
        })
    );
    assert_eq!(config.log_filter, "vss_http=debug,info");
    assert!(config.allow_unauthenticated);
}

/// Asserts the error names the setting in all its spellings and says where the value came from.
fn assert_names(err: ConfigError, env: &str, key: &str, origin: &str) {
    let message = err.to_string();
    assert!(message.contains(env), "{message}");
    assert!(message.contains(key), "{message}");
    assert!(message.contains(origin), "{message}");
}

#[test]
fn a_bad_value_stops_startup_naming_the_setting() {
    let err = load(&[], &[("VSS_MAX_REQUEST_BODY_SIZE", "lots")]).unwrap_err();
    assert_names(
        err.clone(),
        "VSS_MAX_REQUEST_BODY_SIZE",
        "server_config.max_request_body_size",
        "from the environment",
    );
    assert!(err.to_string().contains("`lots`"));
    let err = load(&["--max-request-body-size", "0"], &[]).unwrap_err();
    assert_names(
        err,
        "VSS_MAX_REQUEST_BODY_SIZE",
        "--max-request-body-size",
        "from the command line",
    );
    let f = file("[server_config]\nmax_request_body_size = -5\n");
    let err = load(&["--config", f.path().to_str().unwrap()], &[]).unwrap_err();
    assert_names(
        err,
        "VSS_MAX_REQUEST_BODY_SIZE",
        "server_config.max_request_body_size",
        &f.path().display().to_string(),
    );

    for (env, value, key) in [
        (
            "VSS_BIND_ADDRESS",
            "localhost:8080",
            "server_config.bind_address",
        ),
        (
            "VSS_BIND_ADDRESS",
            "127.0.0.1",
            "server_config.bind_address",
        ),
        ("VSS_BASE_PATH", "vss", "server_config.base_path"),
        (
            "VSS_REQUEST_TIMEOUT_SECS",
            "0",
            "server_config.request_timeout_secs",
        ),
        (
            "VSS_SHUTDOWN_GRACE_SECS",
            "soon",
            "server_config.shutdown_grace_secs",
        ),
        (
            "VSS_ALLOW_UNAUTHENTICATED",
            "maybe",
            "server_config.allow_unauthenticated",
        ),
        ("VSS_BACKEND", "mongodb", "server_config.backend"),
        ("VSS_LOG_LEVEL", "loud[", "log_config.level"),
        (
            "VSS_SQLITE_SYNCHRONOUS",
            "extra",
            "sqlite_config.synchronous",
        ),
        ("VSS_JWT_RSA_PEM", "not a key", "jwt_auth_config.rsa_pem"),
        (
            "VSS_JWT_RSA_PEM_FILE",
            "/nonexistent/key.pem",
            "jwt_auth_config.rsa_pem_file",
        ),
    ] {
        let err = load(&[], &[(env, value)]).unwrap_err();
        assert_names(err, env, key, "from the environment");
    }
}

#[test]
fn a_backend_not_compiled_in_says_how_to_get_it() {
    let compiled = vss_server::backend::compiled_backends();
    for name in vss_server::backend::KNOWN_BACKENDS
        .iter()
        .filter(|n| !compiled.contains(n))
    {
        let message = load(&["--backend", name], &[]).unwrap_err().to_string();
        assert!(message.contains("VSS_BACKEND"), "{message}");
        assert!(message.contains(&format!("--features {name}")), "{message}");
    }
    assert_eq!(
        load(&["--backend", "MEMORY"], &[]).unwrap().backend,
        BackendConfig::Memory
    );
}

#[test]
fn a_short_rsa_key_is_refused_at_configuration_time() {
    let message = load(&[], &[("VSS_JWT_RSA_PEM", RSA1024_PUBLIC_PEM)])
        .unwrap_err()
        .to_string();
    assert!(message.contains("VSS_JWT_RSA_PEM"), "{message}");
    assert!(
        message.contains("1024") && message.contains("2048"),
        "{message}"
    );
}

#[test]
fn contradictory_jwt_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("key.pem");
    std::fs::write(&pem, PUBLIC_PEM).unwrap();
    let both = load(
        &["--jwt-rsa-pem-file", pem.to_str().unwrap()],
        &[("VSS_JWT_RSA_PEM", PUBLIC_PEM)],
    )
    .unwrap_err();
    assert!(both.to_string().contains("only one of"), "{both}");
    let audience_alone = load(&["--jwt-audience", "vss"], &[]).unwrap_err();
    assert!(
        audience_alone.to_string().contains("VSS_JWT_AUDIENCE"),
        "{audience_alone}"
    );
}

#[test]
fn config_file_problems_name_the_file_and_key() {
    let typo = file("[server_config]\nbind_adress = \"127.0.0.1:1\"\n");
    let err = load(&["--config", typo.path().to_str().unwrap()], &[]).unwrap_err();
    assert!(
        matches!(&err, ConfigError::UnknownKey { key, .. } if key == "server_config.bind_adress"),
        "{err}"
    );
    assert!(err.to_string().contains("see CONFIG.md"), "{err}");
    assert!(!err.to_string().contains("older config format"), "{err}");
    // The reference's older format is named as such, with the keys that replace it.
    let older = file(
        "[server_config]\nhost = \"127.0.0.1\"\nport = 8080\nstore_type = \"postgres\"\n\
         [postgresql_config]\nhost = \"localhost\"\nport = 5432\ndatabase = \"postgres\"\n",
    );
    let err = load(&["--config", older.path().to_str().unwrap()], &[]).unwrap_err();
    let message = err.to_string();
    assert!(matches!(&err, ConfigError::UnknownKey { .. }), "{err}");
    for replacement in [
        "older config format",
        "bind_address",
        "postgresql_config.address",
        "vss_database",
    ] {
        assert!(message.contains(replacement), "{message}");
    }
    let top_level = file("bind_address = \"127.0.0.1:1\"\n");
    let err = load(&["--config", top_level.path().to_str().unwrap()], &[]).unwrap_err();
    assert!(
        matches!(&err, ConfigError::UnknownKey { key, .. } if key == "bind_address"),
        "{err}"
    );
    let broken = file("[server_config\n");
    let err = load(&["--config", broken.path().to_str().unwrap()], &[]).unwrap_err();
    assert!(matches!(err, ConfigError::File { .. }), "{err}");
    let err = load(&["--config", "/nonexistent/vss.toml"], &[]).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/vss.toml"), "{err}");
    let array = file("[server_config]\nbind_address = [1, 2]\n");
    let err = load(&["--config", array.path().to_str().unwrap()], &[]).unwrap_err();
    assert!(err.to_string().contains("VSS_BIND_ADDRESS"), "{err}");
}

#[test]
fn rust_log_is_the_fallback_log_filter() {
    assert_eq!(
        load(&[], &[("RUST_LOG", "debug")]).unwrap().log_filter,
        "debug"
    );
    assert_eq!(
        load(&[], &[("RUST_LOG", "debug"), ("VSS_LOG_LEVEL", "warn")])
            .unwrap()
            .log_filter,
        "warn"
    );
    assert_eq!(
        load(&["--log-level", "error"], &[("RUST_LOG", "debug")])
            .unwrap()
            .log_filter,
        "error"
    );
    let err = load(&[], &[("RUST_LOG", "loud[")]).unwrap_err();
    assert!(err.to_string().contains("RUST_LOG"), "{err}");
}

#[test]
fn the_example_config_file_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/vss-server.example.toml");
    let config = load(&["--config", example], &[]).unwrap();
    assert_eq!(config.bind_address, addr("127.0.0.1:8080"));
}

#[test]
fn config_md_documents_every_setting() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/CONFIG.md")).unwrap();
    for setting in settings_list() {
        assert!(
            doc.contains(&format!("`{}`", setting.env)),
            "CONFIG.md lacks {}",
            setting.env
        );
        assert!(
            doc.contains(&format!("`{}`", setting.file_key)),
            "CONFIG.md lacks {}",
            setting.file_key
        );
        if let Some(flag) = setting.flag {
            assert!(doc.contains(&format!("`{flag}")), "CONFIG.md lacks {flag}");
        }
    }
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/vss-server.example.toml"
    ))
    .unwrap();
    for setting in settings_list() {
        let key = setting.file_key.rsplit('.').next().unwrap();
        assert!(
            example.contains(key),
            "the example config lacks {}",
            setting.file_key
        );
    }
}
