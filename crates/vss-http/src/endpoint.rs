//! Plain HTTP endpoints served next to the VSS calls.

use async_trait::async_trait;
use bytes::Bytes;
use http::request::Parts;
use http::Response;
use http_body_util::Full;

/// Answers requests on one extra path (see [`crate::VssService::with_endpoint`]),
/// for example an LNURL-auth token issuer. Only the request's head is given:
/// endpoints take no body. The response is sent as is. Requests count
/// against their client address's rate limits (`HttpConfig::with_rate_limits`)
/// like VSS calls do, before the endpoint is asked.
#[async_trait]
pub trait Endpoint: Send + Sync + 'static {
    /// Answers one request.
    async fn respond(&self, request: &Parts) -> Response<Full<Bytes>>;

    /// Whether answering `request` writes to the store: it then counts against
    /// its client address's write budget, else against the read budget.
    /// Default: a read.
    fn writes(&self, _request: &Parts) -> bool {
        false
    }
}
