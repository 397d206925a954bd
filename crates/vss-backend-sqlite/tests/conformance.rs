//! The whole vss-core conformance suite, the model-based property test and the
//! concurrency races, on SQLite temp files: one named test per rule, in two
//! configurations (`cargo nextest run -p vss-backend-sqlite pagination` runs
//! the pagination rules of both).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::sync::Arc;

use vss_backend_sqlite::{SqliteConfig, Synchronous};
use vss_core::conformance::{Subject, SuiteOptions};

/// A store on a fresh file in a temp dir that lives as long as the subject.
async fn subject(configure: fn(SqliteConfig) -> SqliteConfig) -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path(), "conformance", configure).await;
    Subject::admin(Arc::new(store)).holding(dir)
}

fn options() -> SuiteOptions {
    SuiteOptions {
        worker_threads: 4,
        ..SuiteOptions::default()
    }
}

/// The default: concurrent writes share batched transactions.
mod batched {
    use super::*;

    vss_core::conformance_tests!(|| subject(|c| c), options());
}

/// One write per transaction, every commit synced.
mod unbatched_fully_synced {
    use super::*;

    vss_core::conformance_tests!(
        || subject(|c| c.max_batch(1).synchronous(Synchronous::Full)),
        options()
    );
}
