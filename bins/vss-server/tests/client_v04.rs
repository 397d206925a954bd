//! `vss-client-ng` 0.4 from crates.io, the client of ldk-node 0.7 (wallets in
//! the field), against vss-server on SQLite: the same round trips as the
//! current client's (tests/client_suite). It predates the protocol-version
//! header, so it shows that nothing here depends on a client checking it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

#[macro_use]
mod common;
#[macro_use]
mod client_suite;

client_suite!(vss_client_ng_04);
