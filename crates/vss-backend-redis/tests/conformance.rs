//! The core's conformance suite, model test and races against a real Redis
//! (the shared test server, AOF on: `VSS_TEST_REDIS_URL`).

mod common;

use std::sync::Arc;

use vss_core::conformance::{self, ConcurrencyConfig, ModelConfig, Subject};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite() {
    let Some(url) = common::redis_url() else {
        return;
    };
    let store = Arc::new(common::connect(&url).await);
    conformance::run_all(|| {
        let store = store.clone();
        async move { Subject::new(store) }
    })
    .await
    .assert_all_passed();
}

#[test]
fn model_test() {
    let Some(url) = common::redis_url() else {
        return;
    };
    conformance::run_model_test(
        || async move { Subject::new(Arc::new(common::connect(&url).await)) },
        ModelConfig::default(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency() {
    let Some(url) = common::redis_url() else {
        return;
    };
    let store = Arc::new(common::connect(&url).await);
    conformance::run_concurrency_tests(Subject::new(store), ConcurrencyConfig::default())
        .await
        .unwrap();
}
