//! Which backends a build holds, and the SQLite durability choice.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod backend_support;
mod common;

use backend_support::load;
use vss_server::backend::{compiled_backends, KNOWN_BACKENDS};

#[test]
fn compiled_backends_follow_the_cargo_features() {
    let compiled = compiled_backends();
    assert_eq!(compiled[0], "memory", "memory is always there");
    for (name, feature_on) in [
        ("sqlite", cfg!(feature = "sqlite")),
        ("postgres", cfg!(feature = "postgres")),
        ("redis", cfg!(feature = "redis")),
        ("dynamodb", cfg!(feature = "dynamodb")),
    ] {
        assert_eq!(compiled.contains(&name), feature_on, "{name}");
        assert!(KNOWN_BACKENDS.contains(&name));
        // A compiled-in backend is picked by name, in any case.
        if feature_on {
            let config = load(&["--backend", &name.to_uppercase()], &[]).unwrap();
            assert_eq!(config.backend.name(), name);
            assert!(config.backend.is_persistent());
        } else {
            let message = load(&[], &[("VSS_BACKEND", name)]).unwrap_err().to_string();
            assert!(message.contains("VSS_BACKEND"), "{message}");
            assert!(message.contains(&compiled.join(", ")), "{message}");
        }
    }
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_syncs_every_commit_unless_normal_is_chosen() {
    use vss_server::backend::SqliteSettings;
    use vss_server::BackendConfig;
    let sqlite = |env: &[(&str, &str)]| match load(&["--backend", "sqlite"], env).unwrap().backend {
        BackendConfig::Sqlite(settings) => settings,
        other => panic!("{other:?}"),
    };
    assert!(sqlite(&[]).synchronous_full);
    assert!(SqliteSettings::default().synchronous_full);
    assert!(!sqlite(&[("VSS_SQLITE_SYNCHRONOUS", "normal")]).synchronous_full);
    assert!(sqlite(&[("VSS_SQLITE_SYNCHRONOUS", "full")]).synchronous_full);
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_file_that_is_not_a_database_stops_startup_with_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vss.sqlite3");
    std::fs::write(
        &path,
        "these are not the bytes of a SQLite database\n".repeat(10),
    )
    .unwrap();
    let path = path.to_str().unwrap();
    let config = load(
        &[
            "--bind-address",
            "127.0.0.1:0",
            "--auth",
            "none",
            "--sqlite-path",
            path,
        ],
        &[],
    )
    .unwrap();
    backend_support::assert_start_fails_with(config, "sqlite", &[path, "file is not a database"])
        .await;
}
