//! The whole conformance suite over HTTP, through vss-conformance's client,
//! against vss-server on SQLite: one named test per rule, each against a
//! server of its own (the server runs without authentication, so the client
//! is one user and the isolation rule is skipped here; vss-auth tests it).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use std::sync::Arc;

use common::*;
use vss_conformance::HttpStore;
use vss_core::conformance::Subject;

vss_core::conformance_tests!(|| async {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(sqlite(dir.path()))).await;
    let store = HttpStore::new(&server.url).unwrap();
    Subject::single_user(Arc::new(store)).holding((server, dir))
});
