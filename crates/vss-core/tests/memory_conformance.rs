//! The conformance suite, property test and races against the reference
//! `MemoryStore`: one named test per rule (see `vss_core::conformance_tests!`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.
#![cfg(feature = "conformance")]

use std::sync::Arc;

use vss_core::conformance::{self, Subject};
use vss_core::{MemoryStore, StoreLimits};

mod memory_store {
    use super::*;

    vss_core::conformance_tests!(|| async { Subject::admin(Arc::new(MemoryStore::new())) });
}

/// A store declaring lower limits than the protocol's: the suite follows them.
mod declared_limits {
    use super::*;

    const LIMITS: StoreLimits = StoreLimits {
        max_items_per_put: 25,
        max_page_size: 10,
        default_page_size: 5,
        max_value_size: 2 << 20,
        enforces_quotas: true,
    };

    vss_core::conformance_tests!(|| async {
        Subject::new(Arc::new(MemoryStore::with_limits(LIMITS)))
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shared_store_passes_every_rule_in_a_row() {
    // Tests use fresh users and store ids, so one store can serve them all.
    let shared = Arc::new(MemoryStore::new());
    conformance::run_all(|| {
        let store = shared.clone();
        async move { Subject::new(store) }
    })
    .await
    .assert_all_passed();
}
