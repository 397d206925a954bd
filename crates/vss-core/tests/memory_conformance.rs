//! The conformance suite, property test and races against the reference `MemoryStore`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.
#![cfg(feature = "conformance")]

use std::sync::Arc;

use vss_core::conformance::{self, ConcurrencyConfig, ModelConfig, Subject};
use vss_core::{MemoryStore, StoreLimits};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_passes_conformance() {
    conformance::run_all(|| async { Subject::new(Arc::new(MemoryStore::new())) })
        .await
        .assert_all_passed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shared_store_passes_conformance() {
    // Tests use fresh users and store ids, so one store can serve them all.
    let shared = Arc::new(MemoryStore::new());
    conformance::run_all(|| {
        let store = shared.clone();
        async move { Subject::new(store) }
    })
    .await
    .assert_all_passed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_adapts_to_declared_limits() {
    let limits = StoreLimits {
        max_items_per_put: 25,
        max_page_size: 10,
        default_page_size: 5,
    };
    conformance::run_all(
        || async move { Subject::new(Arc::new(MemoryStore::with_limits(limits))) },
    )
    .await
    .assert_all_passed();
}

#[test]
fn memory_store_matches_model() {
    conformance::run_model_test(
        || async { Subject::new(Arc::new(MemoryStore::new())) },
        ModelConfig::default(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_races() {
    conformance::run_concurrency_tests(
        Subject::new(Arc::new(MemoryStore::new())),
        ConcurrencyConfig::default(),
    )
    .await
    .unwrap();
}
