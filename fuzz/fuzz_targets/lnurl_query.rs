//! Any query string to the LNURL-auth issuer: answered 200 or 400, never a
//! 5xx, never a panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use http::Request;
use libfuzzer_sys::fuzz_target;
use vss_auth::{LnurlAuthConfig, LnurlAuthIssuer, SpentChallenges};
use vss_core::MemoryStore;
use vss_http::Endpoint;

const ISSUER_PRIVATE: &str =
    include_str!("../../crates/vss-auth/tests/fixtures/issuer-es256-private.pem");

fn setup() -> &'static (tokio::runtime::Runtime, LnurlAuthIssuer) {
    static SETUP: OnceLock<(tokio::runtime::Runtime, LnurlAuthIssuer)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let spent = SpentChallenges::new(Arc::new(MemoryStore::new())).expect("a store");
        let issuer = LnurlAuthIssuer::new(ISSUER_PRIVATE, LnurlAuthConfig::default(), spent)
            .expect("the test key");
        (runtime, issuer)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(request) = Request::get(format!("/lnurl-auth?{query}"))
        .header("host", "localhost")
        .body(())
    else {
        return;
    };
    let (runtime, issuer) = setup();
    let (parts, ()) = request.into_parts();
    let status = runtime.block_on(issuer.respond(&parts)).status();
    assert!(status == 200 || status == 400, "{status}");
});
