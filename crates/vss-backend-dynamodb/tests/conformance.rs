//! The vss-core conformance suite, the model-based property test and the
//! concurrency races, against a real DynamoDB-API server, one named test per rule.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use vss_backend_dynamodb::DynamoDbStore;
use vss_core::conformance::SuiteOptions;
use vss_core::KvStore;

vss_core::conformance_tests!(
    || async {
        // A fresh table per test: moto copies the whole table on every
        // transaction (to roll it back), so a table shared by many tests slows down.
        let url = common::url()?;
        let store = DynamoDbStore::connect(common::config(&url, "conformance"))
            .await
            .unwrap();
        assert_eq!(store.limits().max_items_per_put, 98);
        Some(common::subject(store))
    },
    SuiteOptions {
        worker_threads: 4,
        ..SuiteOptions::default()
    }
);
