//! Plain HTTP endpoints served next to the VSS calls.

use async_trait::async_trait;
use bytes::Bytes;
use http::request::Parts;
use http::Response;
use http_body_util::Full;

/// Answers requests on one extra path (see [`crate::VssService::with_endpoint`]),
/// for example an LNURL-auth token issuer. Only the request's head is given:
/// endpoints take no body. The response is sent as is.
#[async_trait]
pub trait Endpoint: Send + Sync + 'static {
    /// Answers one request.
    async fn respond(&self, request: &Parts) -> Response<Full<Bytes>>;
}
