//! The whole conformance suite, over HTTP through vss-conformance's client,
//! against vss-server on SQLite.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::sync::Arc;

use common::*;
use vss_conformance::HttpStore;
use vss_core::conformance::{self, ConcurrencyConfig, ModelConfig, Subject};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_over_http_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(sqlite(dir.path()))).await;
    let store = Arc::new(HttpStore::new(&server.url).unwrap());
    let report = conformance::run_all(|| {
        let store = store.clone();
        async move { Subject::single_user(store) }
    })
    .await;
    report.assert_all_passed();
    // Every test that does not need two users ran.
    assert!(report.passed() > 40, "{}", report.summary());
    conformance::run_concurrency_tests(Subject::single_user(store), ConcurrencyConfig::default())
        .await
        .unwrap();
    server.stop().await;
}

#[test]
fn the_model_test_passes_over_http_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    // The server runs on its own runtime; the model test brings its own.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(start(config(sqlite(dir.path()))));
    let url = server.url.clone();
    conformance::run_model_test(
        || async move { Subject::single_user(Arc::new(HttpStore::new(&url).unwrap())) },
        ModelConfig::default(),
    );
    runtime.block_on(server.stop());
}
