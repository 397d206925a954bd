//! Any request to the service on MemoryStore: the first byte picks the path
//! and method, the rest is the body. Never a 5xx, never a panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use libfuzzer_sys::fuzz_target;
use vss_core::MemoryStore;
use vss_http::{HttpConfig, NoopAuthorizer, VssService};

const PATHS: [&str; 8] = [
    "/vss/getObject",
    "/vss/putObjects",
    "/vss/deleteObject",
    "/vss/listKeyVersions",
    "/ready",
    "/health",
    "/vss/",
    "/other",
];

fn setup() -> &'static (tokio::runtime::Runtime, VssService) {
    static SETUP: OnceLock<(tokio::runtime::Runtime, VssService)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let service = VssService::new(
            Arc::new(MemoryStore::new()),
            Arc::new(NoopAuthorizer::default()),
            HttpConfig::default(),
        );
        (runtime, service)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let (runtime, service) = setup();
    let path = PATHS[usize::from(selector) % PATHS.len()];
    let method = if selector & 0x80 == 0 { Method::POST } else { Method::GET };
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("a request");
    runtime.block_on(async {
        let response = service.handle(request).await;
        assert!(!response.status().is_server_error(), "{}", response.status());
        response.into_body().collect().await.expect("a body");
    });
});
