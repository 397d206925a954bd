//! The vss-core conformance suite, the model-based property test and the
//! concurrency races, against a real DynamoDB-API server.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use vss_backend_dynamodb::DynamoDbStore;
use vss_core::conformance::{self, ConcurrencyConfig, ModelConfig};
use vss_core::KvStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite() {
    let Some(url) = common::url() else {
        return;
    };
    // A fresh table per test: moto copies the whole table on every transaction
    // (to roll it back), so one table growing through the suite slows it down.
    conformance::run_all(|| {
        let url = url.clone();
        async move {
            let store = DynamoDbStore::connect(common::config(&url, "conformance"))
                .await
                .unwrap();
            assert_eq!(store.limits().max_items_per_put, 99);
            common::subject(store)
        }
    })
    .await
    .assert_all_passed();
}

#[test]
fn model_test_against_memory_store() {
    let Some(url) = common::url() else {
        return;
    };
    conformance::run_model_test(
        move || async move {
            common::subject(
                DynamoDbStore::connect(common::config(&url, "model"))
                    .await
                    .unwrap(),
            )
        },
        ModelConfig::default(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_races() {
    let Some(store) = common::store("races").await else {
        return;
    };
    if let Err(e) =
        conformance::run_concurrency_tests(common::subject(store), ConcurrencyConfig::default())
            .await
    {
        panic!("concurrency tests failed: {e:?}");
    }
}
