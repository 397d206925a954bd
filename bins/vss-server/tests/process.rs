//! The real binary as a child process: what it does at startup and at signals.

// The child-server helpers serve the SQLite tests only; other builds compile them unused.
#![cfg_attr(not(feature = "sqlite"), allow(unused_imports, dead_code))]
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use vss_conformance::HttpStore;
use vss_core::proto::{GetObjectRequest, KeyValue, PutObjectRequest};
use vss_core::{KvStore, UserToken};

const BIN: &str = env!("CARGO_BIN_EXE_vss-server");
/// Only a guard against hanging forever: every wait below normally ends at once.
const GUARD: Duration = Duration::from_secs(60);

fn command(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // A clean environment for the settings under test.
    for (key, _) in std::env::vars() {
        if key.starts_with("VSS_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd
}

/// Runs the binary to its end: (exit code, stdout, stderr).
async fn run_to_end(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let child = command(dir.path(), args, env).spawn().unwrap();
    let output = tokio::time::timeout(GUARD, child.wait_with_output())
        .await
        .expect("vss-server did not exit")
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

struct Started {
    child: Child,
    url: String,
    stderr: tokio::task::JoinHandle<String>,
}

/// Starts the binary and waits for the line announcing its URL.
async fn start(dir: &Path, args: &[&str]) -> Started {
    let mut child = command(dir, args, &[]).spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let stderr = tokio::spawn(async move {
        let mut text = String::new();
        stderr.read_to_string(&mut text).await.unwrap();
        text
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(GUARD, stdout.next_line())
        .await
        .expect("no URL line")
        .unwrap();
    let Some(line) = line else {
        let _ = child.wait().await;
        panic!(
            "vss-server exited before listening: {}",
            stderr.await.unwrap()
        );
    };
    let url = line
        .strip_prefix("vss-server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string();
    Started { child, url, stderr }
}

impl Started {
    /// Sends `signal` and waits for the exit: (exit code, stderr).
    async fn signal(mut self, signal: &str) -> (Option<i32>, String) {
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}"), pid])
            .status()
            .unwrap();
        assert!(status.success());
        let status = tokio::time::timeout(GUARD, self.child.wait())
            .await
            .expect("no exit after the signal")
            .unwrap();
        (status.code(), self.stderr.await.unwrap())
    }
}

#[tokio::test]
async fn it_refuses_to_listen_on_all_interfaces_without_authentication() {
    for (args, env) in [
        (
            vec!["--bind-address", "0.0.0.0:0", "--backend", "memory"],
            vec![],
        ),
        (
            vec!["--backend", "memory"],
            vec![("VSS_BIND_ADDRESS", "0.0.0.0:0")],
        ),
        (
            vec!["--backend", "memory"],
            vec![("VSS_BIND_ADDRESS", "[::]:0")],
        ),
    ] {
        let (code, stdout, stderr) = run_to_end(&args, &env).await;
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains("refusing to listen on"), "{stderr}");
        assert!(stderr.contains("--allow-unauthenticated"), "{stderr}");
        assert!(!stdout.contains("listening"), "{stdout}");
    }
}

#[tokio::test]
async fn a_bad_config_value_stops_startup_naming_it() {
    let (code, _, stderr) = run_to_end(&[], &[("VSS_MAX_REQUEST_BODY_SIZE", "lots")]).await;
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains(
            "invalid value for VSS_MAX_REQUEST_BODY_SIZE / server_config.max_request_body_size"
        ),
        "{stderr}"
    );
    let (code, _, stderr) = run_to_end(&["--bind-address", "everywhere"], &[]).await;
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("VSS_BIND_ADDRESS") && stderr.contains("--bind-address"),
        "{stderr}"
    );
    let (code, _, stderr) = run_to_end(&["--no-such-flag"], &[]).await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--no-such-flag"), "{stderr}");
}

#[tokio::test]
async fn help_lists_the_settings_and_their_variables() {
    let (code, stdout, _) = run_to_end(&["--help"], &[]).await;
    assert_eq!(code, Some(0));
    for needle in [
        "--bind-address",
        "VSS_BIND_ADDRESS",
        "--max-request-body-size",
        "VSS_JWT_RSA_PEM_FILE",
        "--allow-unauthenticated",
        "--config",
    ] {
        assert!(stdout.contains(needle), "--help lacks {needle}:\n{stdout}");
    }
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn zero_configuration_serves_sqlite_under_vss_data_and_warns_that_auth_is_off() {
    let dir = tempfile::tempdir().unwrap();
    // Only the port differs from a real zero-configuration start (8080 may be taken here).
    let server = start(dir.path(), &["--bind-address", "127.0.0.1:0"]).await;
    assert!(
        server.url.starts_with("http://127.0.0.1:") && server.url.ends_with("/vss"),
        "{}",
        server.url
    );
    let store = HttpStore::new(&server.url).unwrap();
    let user = UserToken::new("ignored").unwrap();
    store
        .get(
            &user,
            GetObjectRequest {
                store_id: "s".into(),
                key: "global_version".into(),
            },
        )
        .await
        .unwrap();
    assert!(dir.path().join("vss-data/vss.sqlite3").exists());
    let (code, stderr) = server.signal("TERM").await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("authentication is OFF"), "{stderr}");
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sigterm_and_sigint_shut_down_gracefully_and_keep_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db/vss.sqlite3");
    let args = [
        "--bind-address",
        "127.0.0.1:0",
        "--sqlite-path",
        db.to_str().unwrap(),
    ];
    let user = UserToken::new("ignored").unwrap();
    let put = PutObjectRequest {
        store_id: "s".into(),
        global_version: Some(0),
        transaction_items: vec![KeyValue {
            key: "k".into(),
            version: 0,
            value: Bytes::from_static(b"kept"),
        }],
        delete_items: vec![],
    };

    let server = start(dir.path(), &args).await;
    let store = Arc::new(HttpStore::new(&server.url).unwrap());
    store.put(&user, put).await.unwrap();
    let (code, stderr) = server.signal("TERM").await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("SIGTERM received"), "{stderr}");
    assert!(stderr.contains("store closed"), "{stderr}");

    let server = start(dir.path(), &args).await;
    let store = HttpStore::new(&server.url).unwrap();
    let got = store
        .get(
            &user,
            GetObjectRequest {
                store_id: "s".into(),
                key: "k".into(),
            },
        )
        .await
        .unwrap()
        .value
        .unwrap();
    assert_eq!((got.version, &got.value[..]), (1, &b"kept"[..]));
    let global = store
        .get(
            &user,
            GetObjectRequest {
                store_id: "s".into(),
                key: "global_version".into(),
            },
        )
        .await
        .unwrap()
        .value
        .unwrap();
    assert_eq!(global.version, 1);
    let (code, stderr) = server.signal("INT").await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("SIGINT received"), "{stderr}");
    assert!(stderr.contains("store closed"), "{stderr}");
}
