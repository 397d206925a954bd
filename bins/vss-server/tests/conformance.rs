//! The whole conformance suite over HTTP, through vss-conformance's client,
//! against vss-server on SQLite: one named test per rule, each against a
//! server of its own. The server takes signature auth and the client signs
//! with a fresh key per user, so the isolation rules run over the wire too.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

mod common;

use common::*;
use vss_conformance::HttpStore;
use vss_server::config::{AuthMethods, SigsSettings};
use vss_server::AuthConfig;

vss_core::conformance_tests!(|| async {
    let dir = tempfile::tempdir().unwrap();
    let server = start(vss_server::Config {
        auth: AuthConfig::Methods(AuthMethods {
            jwt: None,
            sigs: Some(SigsSettings {
                max_clock_skew: vss_auth::DEFAULT_SIGS_MAX_CLOCK_SKEW,
            }),
            lnurl: None,
        }),
        ..config(sqlite(dir.path()))
    })
    .await;
    let store = HttpStore::new(&server.url).unwrap().with_signature_auth();
    assert!(store.distinct_users());
    store.subject().holding((server, dir))
});
