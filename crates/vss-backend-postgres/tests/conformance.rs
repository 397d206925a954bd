//! The core's conformance suite, model test and races against real PostgreSQL,
//! one named test per rule, each in a database of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

vss_core::conformance_tests!(|| async {
    common::fresh_store("conformance")
        .await
        .map(|store| common::subject(&store))
});
