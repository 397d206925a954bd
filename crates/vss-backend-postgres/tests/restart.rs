//! Self-healing: PostgreSQL restarts in the middle of a stream of requests.
//!
//! Runs against the throwaway server that `scripts/services/postgres.sh` starts for
//! this purpose (`VSS_TEST_POSTGRES_RESTART_URL`, `_DATADIR`, `_BIN`), so that the
//! restart never disturbs tests running in parallel on the shared server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use vss_backend_postgres::PostgresStore;
use vss_core::proto::{GetObjectRequest, KeyValue, PutObjectRequest};
use vss_core::{KvStore, UserToken, VssError};

/// The data directory and pg_ctl of the restartable server; `None` (skip) when unset,
/// a failure under CI.
fn restartable_server() -> Option<(String, String)> {
    match (
        std::env::var("VSS_TEST_POSTGRES_DATADIR"),
        std::env::var("VSS_TEST_POSTGRES_BIN"),
    ) {
        (Ok(datadir), Ok(pg_ctl)) if !datadir.is_empty() && !pg_ctl.is_empty() => {
            Some((datadir, pg_ctl))
        }
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("VSS_TEST_POSTGRES_DATADIR/BIN are not set and CI=true (use scripts/test)")
        }
        _ => {
            eprintln!(
                "SKIPPED: VSS_TEST_POSTGRES_DATADIR/BIN are not set: the restart test did not run"
            );
            None
        }
    }
}

/// `pg_ctl restart -m fast -w`, as the cluster's owner (PostgreSQL refuses to run as root).
async fn restart(datadir: &str, pg_ctl: &str) {
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false);
    let mut command = if is_root {
        let mut c = tokio::process::Command::new("runuser");
        c.args(["-u", "postgres", "--", pg_ctl]);
        c
    } else {
        tokio::process::Command::new(pg_ctl)
    };
    // The restarted server logs to a file: inheriting our pipes would keep them open.
    let log = format!("{datadir}/vss-restart.log");
    let status = command
        .args([
            "restart", "-D", datadir, "-m", "fast", "-w", "-t", "60", "-l", &log,
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .expect("run pg_ctl");
    assert!(
        status.success(),
        "pg_ctl restart failed ({status}); server log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

fn put_one(store_id: &str, key: &str, value: &str) -> PutObjectRequest {
    PutObjectRequest {
        store_id: store_id.into(),
        global_version: None,
        transaction_items: vec![KeyValue {
            key: key.into(),
            version: -1,
            value: Bytes::copy_from_slice(value.as_bytes()),
        }],
        delete_items: vec![],
    }
}

fn get_one(store_id: &str, key: &str) -> GetObjectRequest {
    GetObjectRequest {
        store_id: store_id.into(),
        key: key.into(),
    }
}

async fn postmaster_start_time(config: &vss_backend_postgres::PostgresConfig) -> String {
    let db = common::inspect(config, &config.database).await;
    db.query_one("SELECT pg_postmaster_start_time()::text", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_fail_as_internal_during_a_restart_and_then_recover() {
    let Some((datadir, pg_ctl)) = restartable_server() else {
        return;
    };
    let Some(mut config) = common::fresh_config("VSS_TEST_POSTGRES_RESTART_URL", "restart") else {
        return;
    };
    config.max_connections = 4;
    let store = Arc::new(PostgresStore::connect(config.clone()).await.unwrap());
    let user = UserToken::new("restart-user").unwrap();
    let started_at = postmaster_start_time(&config).await;

    // The stream: writes and reads until told to stop, remembering what was acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let first_success = Arc::new(tokio::sync::Notify::new());
    let stream = {
        let (store, user, stop, first_success) = (
            store.clone(),
            user.clone(),
            stop.clone(),
            first_success.clone(),
        );
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut errors = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let key = format!("key-{i}");
                let put_ok = match store.put(&user, put_one("s", &key, &i.to_string())).await {
                    Ok(_) => {
                        acknowledged.push((key.clone(), i));
                        first_success.notify_one();
                        true
                    }
                    Err(e) => {
                        errors.push(e);
                        false
                    }
                };
                match store.get(&user, get_one("s", &key)).await {
                    Ok(_) => {}
                    // Only a put that failed may have written nothing.
                    Err(VssError::NoSuchKey(_)) if !put_ok => {}
                    Err(e) => errors.push(e),
                }
            }
            (acknowledged, errors, i)
        })
    };

    first_success.notified().await;
    restart(&datadir, &pg_ctl).await;
    stop.store(true, Ordering::SeqCst);
    let (acknowledged, errors, attempts) = stream.await.unwrap();

    // The server really restarted while the stream ran.
    assert_ne!(postmaster_start_time(&config).await, started_at);
    for e in &errors {
        assert!(
            matches!(e, VssError::Internal(_)),
            "during the restart every error must be INTERNAL, got {e:?}"
        );
    }

    // The same store object recovers by itself.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut poll = tokio::time::interval(Duration::from_millis(20));
    let mut failed_polls = 0;
    loop {
        poll.tick().await;
        match store.put(&user, put_one("s", "after", "restart")).await {
            Ok(_) => break,
            Err(VssError::Internal(_)) if Instant::now() < deadline => failed_polls += 1,
            Err(e) => panic!("the store did not recover after the restart: {e:?}"),
        }
    }
    let after = store.get(&user, get_one("s", "after")).await.unwrap();
    assert_eq!(after.value.unwrap().value, Bytes::from_static(b"restart"));

    // Every acknowledged write survived.
    for (key, i) in &acknowledged {
        let got = store.get(&user, get_one("s", key)).await.unwrap();
        assert_eq!(got.value.unwrap().value, Bytes::from(i.to_string()));
    }
    println!(
        "{attempts} puts in the stream, {} acknowledged, {} internal errors during the restart, \
         {failed_polls} failed polls after it",
        acknowledged.len(),
        errors.len()
    );
    store.close().await.unwrap();
}
