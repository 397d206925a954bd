//! A real client of the protocol, `vss-client-ng` 0.6 from crates.io (the
//! current generation), against vss-server on SQLite.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

#[macro_use]
mod common;
#[macro_use]
mod client_suite;

client_suite!(vss_client_ng);
