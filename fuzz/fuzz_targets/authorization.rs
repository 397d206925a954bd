//! Any `Authorization` header to the JWT and signature authorizers: refused
//! with AUTH (random bytes are never a valid credential), never a panic.
#![no_main]

use std::sync::OnceLock;

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use vss_auth::{JwtAuthorizer, MultiAuthorizer, SigsAuthorizer};
use vss_core::VssError;
use vss_http::Authorizer;

const RS256_PUBLIC: &str = include_str!("../../crates/vss-auth/tests/fixtures/rs256-public.pem");

fn setup() -> &'static (tokio::runtime::Runtime, MultiAuthorizer) {
    static SETUP: OnceLock<(tokio::runtime::Runtime, MultiAuthorizer)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let auth = MultiAuthorizer::new()
            .with_jwt(JwtAuthorizer::from_public_pems(RS256_PUBLIC).expect("the test key"))
            .with_sigs(SigsAuthorizer::default());
        (runtime, auth)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let (runtime, auth) = setup();
    let mut headers = HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, value);
    let result = runtime.block_on(auth.authorize(&headers));
    assert!(matches!(result, Err(VssError::Auth(_))), "{result:?}");
});
