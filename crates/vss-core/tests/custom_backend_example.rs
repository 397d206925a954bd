//! Runs the example backend of `examples/custom_backend.rs` through the
//! conformance suite, so the example forking teams start from stays correct.
#![cfg(feature = "conformance")]

#[path = "../examples/custom_backend.rs"]
mod example;

vss_core::conformance_tests!(|| async { example::subject() });
