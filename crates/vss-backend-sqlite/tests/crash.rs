//! An acknowledged write survives `kill -9` of the process that wrote it.
//!
//! The parent test runs this same test binary again as a child, filtered to
//! `ack_writer`, with the database path in the environment. The child writes
//! keys from several concurrent tasks and prints `ACK <key>` for each write
//! whose put returned Ok. The parent reads those lines, kills the child with
//! SIGKILL in the middle of the stream, reads every line printed before the
//! kill, reopens the file and checks every acknowledged key is there.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use bytes::Bytes;
use vss_backend_sqlite::{SqliteConfig, SqliteStore, Synchronous};
use vss_core::proto::{GetObjectRequest, KeyValue, PutObjectRequest};
use vss_core::{KvStore, UserToken};

const CHILD_DB: &str = "VSS_SQLITE_ACK_WRITER_DB";
const CHILD_SYNC: &str = "VSS_SQLITE_ACK_WRITER_SYNC";
const WRITERS: usize = 8;
/// The parent kills the child after this many acknowledgements.
const KILL_AFTER: usize = 400;

fn user() -> UserToken {
    UserToken::new("crash-user").unwrap()
}

fn value_of(key: &str) -> Bytes {
    Bytes::from(format!("value of {key};").repeat(20))
}

fn config(path: &Path, sync: &str) -> SqliteConfig {
    let sync = match sync {
        "full" => Synchronous::Full,
        _ => Synchronous::Normal,
    };
    SqliteConfig::new(path).synchronous(sync)
}

/// Writes `per_writer` keys from each of [`WRITERS`] tasks, printing `ACK <key>`
/// after each acknowledged put.
async fn write_and_acknowledge(store: Arc<SqliteStore>, per_writer: usize) {
    let tasks = (0..WRITERS).map(|w| {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..per_writer {
                let key = format!("w{w}-{i}");
                let req = PutObjectRequest {
                    store_id: "crash".into(),
                    global_version: None,
                    transaction_items: vec![KeyValue {
                        key: key.clone(),
                        version: -1,
                        value: value_of(&key),
                    }],
                    delete_items: vec![],
                };
                store.put(&user(), req).await.unwrap();
                println!("ACK {key}");
            }
        })
    });
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }
}

/// Asserts every key is stored with its value, and the file is sound.
async fn assert_all_present(path: &Path, keys: &[String]) {
    let store = SqliteStore::open(SqliteConfig::new(path)).await.unwrap();
    for key in keys {
        let got = store
            .get(
                &user(),
                GetObjectRequest {
                    store_id: "crash".into(),
                    key: key.clone(),
                },
            )
            .await
            .unwrap_or_else(|e| panic!("acknowledged key {key} is missing: {e}"))
            .value
            .unwrap();
        assert_eq!((got.version, got.value), (1, value_of(key)), "key {key}");
    }
    store.close().await.unwrap();
    let conn = rusqlite::Connection::open(path).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

/// As a child (the environment names a database): writes until killed.
/// Run alone: a bounded run whose acknowledged writes must survive close and reopen.
#[test]
fn ack_writer() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        if let Ok(path) = std::env::var(CHILD_DB) {
            let sync = std::env::var(CHILD_SYNC).unwrap_or_default();
            let store = Arc::new(
                SqliteStore::open(config(Path::new(&path), &sync))
                    .await
                    .unwrap(),
            );
            // Far more than the parent waits for; the bound only keeps a lost child from running on.
            write_and_acknowledge(store, 100_000).await;
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bounded.sqlite3");
        let store = Arc::new(SqliteStore::open(config(&path, "normal")).await.unwrap());
        write_and_acknowledge(store.clone(), 25).await;
        store.close().await.unwrap();
        let keys: Vec<String> = (0..WRITERS)
            .flat_map(|w| (0..25).map(move |i| format!("w{w}-{i}")))
            .collect();
        assert_all_present(&path, &keys).await;
    });
}

fn kill_mid_stream(path: &Path, sync: &str) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["ack_writer", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DB, path)
        .env(CHILD_SYNC, sync)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut acked = Vec::new();
    let mut killed = false;
    // Keep reading after the kill: every line printed before it was acknowledged.
    for line in stdout.lines() {
        if let Some(key) = line.unwrap().strip_prefix("ACK ") {
            acked.push(key.to_string());
            if acked.len() == KILL_AFTER && !killed {
                child.kill().unwrap();
                killed = true;
            }
        }
    }
    let status = child.wait().unwrap();
    assert!(
        killed,
        "the child stopped after {} acknowledgements, before the kill",
        acked.len()
    );
    assert_eq!(
        status.signal(),
        Some(9),
        "the child was not killed by SIGKILL: {status:?}"
    );
    assert!(
        acked.len() < WRITERS * 100_000,
        "the child finished before the kill"
    );
    acked
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for sync in ["normal", "full"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crash.sqlite3");
        let acked = kill_mid_stream(&path, sync);
        assert!(acked.len() >= KILL_AFTER);
        runtime.block_on(assert_all_present(&path, &acked));
    }
}
