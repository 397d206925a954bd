//! The whole vss-core conformance suite, the model-based property test and the
//! concurrency races, on SQLite temp files.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::sync::Arc;
use vss_backend_sqlite::Synchronous;

use vss_backend_sqlite::SqliteStore;
use vss_core::conformance::{self, ConcurrencyConfig, ModelConfig, Subject};

fn subject(store: SqliteStore) -> Subject {
    Subject::new(Arc::new(store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite_with_batching() {
    let dir = tempfile::tempdir().unwrap();
    let store = subject(common::open(dir.path(), "batched", |c| c).await);
    conformance::run_all(|| {
        let store = store.clone();
        async move { store }
    })
    .await
    .assert_all_passed();
    store.store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite_without_batching_fully_synced() {
    // Every test on a fresh file, so opening and migrating runs each time too.
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    conformance::run_all(|| {
        n += 1;
        let name = format!("unbatched-{n}");
        let path = dir.path().to_owned();
        async move {
            subject(
                common::open(&path, &name, |c| {
                    c.max_batch(1).synchronous(Synchronous::Full)
                })
                .await,
            )
        }
    })
    .await
    .assert_all_passed();
}

#[test]
fn model_test_against_memory_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    conformance::run_model_test(
        move || async move { subject(common::open(&path, "model", |c| c).await) },
        ModelConfig::default(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_races_with_batching() {
    let dir = tempfile::tempdir().unwrap();
    let subject = subject(common::open(dir.path(), "races", |c| c).await);
    if let Err(e) =
        conformance::run_concurrency_tests(subject.clone(), ConcurrencyConfig::default()).await
    {
        panic!("concurrency tests failed: {e:?}");
    }
    subject.store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_races_without_batching() {
    let dir = tempfile::tempdir().unwrap();
    let subject = subject(common::open(dir.path(), "races", |c| c.max_batch(1)).await);
    if let Err(e) =
        conformance::run_concurrency_tests(subject.clone(), ConcurrencyConfig::default()).await
    {
        panic!("concurrency tests failed: {e:?}");
    }
}
