//! # vss-http: the VSS wire protocol over HTTP
//!
//! A [hyper](https://docs.rs/hyper) 1 service that serves any
//! [`vss_core::KvStore`] to VSS clients (`vss-client-ng`, ldk-node's
//! `VssStore`, the Kotlin/Swift bindings):
//!
//! - [`VssService`] answers one request: route, body limit, [`Authorizer`],
//!   protobuf decoding, the store call, and the error mapping of the contract.
//!   Every response, success or error, carries `vss-protocol-version: 0`.
//! - [`serve`] runs the accept loop over a [`tokio::net::TcpListener`]: HTTP/1.1
//!   with keep-alive and pipelining, HTTP/2 (prior knowledge), and a graceful
//!   shutdown that lets in-flight requests finish within a bounded wait.
//! - [`Authorizer`] turns request headers into a [`vss_core::UserToken`];
//!   [`NoopAuthorizer`] (local testing) ships here; the `vss-auth` crate has
//!   the real methods (JWT, signature auth, an LNURL-auth token issuer), so
//!   an embedder that brings its own authorizer builds no JWT or RSA code.
//! - [`Endpoint`]: an extra plain-HTTP path served by the same service
//!   ([`VssService::with_endpoint`]).
//! - Probes outside the base path, never authenticated, touching no user
//!   data: `GET /health` and `/livez` (200 while serving), `GET /ready` and
//!   `/readyz` (200 while [`vss_core::KvStore::ready`] answers within
//!   [`READINESS_TIMEOUT`]; 503 otherwise, and once
//!   [`VssService::begin_draining`] marks the start of shutdown).
//! - Request ids ([`REQUEST_ID_HEADER`]) and [`measure`]: the request metrics.
//! - [`budget`]: a memory budget for request bodies in flight (503 when it
//!   stays taken, 413 for a body larger than all of it).
//! - [`limit`]: rate limits per client address (before authentication) and
//!   per user (before the body is read), answered 429 with `Retry-After`.
//!
//! The request logic is in plain functions ([`Operation::from_path`],
//! [`Operation::call`], [`read_body`], [`error_response`]) that tests call
//! without a socket; I/O lives at the edges.
//!
//! ```no_run
//! use std::sync::Arc;
//! use vss_core::MemoryStore;
//! use vss_http::{serve, HttpConfig, NoopAuthorizer, ServeOptions, VssService};
//!
//! # async fn example() -> std::io::Result<()> {
//! let service = VssService::new(
//!     Arc::new(MemoryStore::new()),
//!     Arc::new(NoopAuthorizer::default()),
//!     HttpConfig::default(),
//! );
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let outcome = serve(listener, service, tokio::signal::ctrl_c(), ServeOptions::default()).await;
//! println!("served {} connections", outcome.connections);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod auth;
mod body;
pub mod budget;
mod endpoint;
pub mod limit;
pub mod measure;
mod response;
mod serve;
mod service;
mod tls;

pub use auth::{bearer_token, Authorizer, NoopAuthorizer};
pub use body::{read_body, BodyError};
pub use budget::{default_body_budget, BodyBudget};
pub use endpoint::Endpoint;
pub use limit::{ClientAddr, Rate, RateLimits};
pub use response::{error_response, protobuf_response, response_body, HttpError, ResponseBody};
pub use serve::{
    default_max_connections, default_max_connections_per_ip, serve, serve_tls, ServeOptions,
    ServeOutcome,
};
pub use service::{
    request_id, store_deadline, HttpConfig, VssService, DEFAULT_BASE_PATH, DEFAULT_MAX_BODY_SIZE,
    DEFAULT_REQUEST_TIMEOUT, LIVENESS_PATHS, MAX_REQUEST_ID_LEN, READINESS_CACHE, READINESS_PATHS,
    READINESS_TIMEOUT, REQUEST_ID_HEADER, STORE_DEADLINE_MAX_MARGIN,
};
pub use tls::{TlsConfig, TlsError};
pub use vss_core::protocol::{Operation, PROTOCOL_VERSION, PROTOCOL_VERSION_HEADER};
