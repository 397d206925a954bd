//! The core's conformance suite, model test and races against real PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::sync::Arc;

use vss_backend_postgres::PostgresStore;

use vss_core::conformance::{self, ConcurrencyConfig, ModelConfig, TestError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite() {
    let Some(store) = common::fresh_store("conformance").await else {
        return;
    };
    let report = conformance::run_all(|| {
        let subject = common::subject(&store);
        async move { subject }
    })
    .await;
    report.assert_all_passed();
    assert_eq!(report.skipped(), 0, "every test applies to PostgreSQL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency() {
    let Some(store) = common::fresh_store("concurrency").await else {
        return;
    };
    match conformance::run_concurrency_tests(common::subject(&store), ConcurrencyConfig::default())
        .await
    {
        Ok(()) => {}
        Err(TestError::Failed(why)) => panic!("concurrency: {why}"),
        Err(TestError::Skipped(why)) => panic!("concurrency test skipped: {why}"),
    }
}

#[test]
fn model() {
    let Some(config) = common::fresh_config("VSS_TEST_POSTGRES_URL", "model") else {
        return;
    };
    conformance::run_model_test(
        || async move {
            let store = PostgresStore::connect(config).await.expect("connect");
            conformance::Subject::new(Arc::new(store))
        },
        ModelConfig::default(),
    );
}
