//! Runs the example backend of `examples/custom_backend.rs` through the
//! conformance suite, so the example forking teams start from stays correct.
#![cfg(feature = "conformance")]

#[path = "../examples/custom_backend.rs"]
mod example;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_backend_passes_conformance() {
    example::run_suite().await.assert_all_passed();
}

#[test]
fn example_backend_matches_model() {
    example::run_model();
}
