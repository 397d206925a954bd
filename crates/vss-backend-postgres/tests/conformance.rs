//! The core's conformance suite, model test and races against real PostgreSQL,
//! one named test per rule, each in a database of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

vss_core::conformance_tests!(|| async {
    common::fresh_store("conformance")
        .await
        .map(|store| common::subject(&store))
});

/// The same suite with every non-empty value staged (sent in chunks before its
/// statement, read back by it), the path of values of 1 MiB and more.
mod staged {
    use std::sync::Arc;

    use vss_backend_postgres::PostgresStore;

    vss_core::conformance_tests!(|| async {
        let config = super::common::fresh_config("VSS_TEST_POSTGRES_URL", "staged")?;
        let store = PostgresStore::connect(config)
            .await
            .expect("connect to the test PostgreSQL")
            .with_staged_values_from(1);
        assert_eq!(store.staged_values_from(), Some(1), "staging is off");
        Some(super::common::subject(&Arc::new(store)))
    });
}
