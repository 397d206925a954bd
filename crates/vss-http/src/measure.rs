//! What the HTTP service measures, through the [`metrics`] facade (free until
//! the program installs a recorder; vss-server installs a Prometheus one).
//!
//! | metric | kind | labels |
//! | --- | --- | --- |
//! | `vss_http_requests_total` | counter | `operation` (the call's name, or `unknown`), `outcome` |
//! | `vss_http_request_duration_seconds` | histogram | `operation` |
//! | `vss_http_requests_in_flight` | gauge | `operation` |
//! | `vss_http_request_body_bytes` | histogram | `operation` |
//! | `vss_http_response_body_bytes` | histogram | `operation` |
//! | `vss_http_probes_total` | counter | `probe` (`liveness`, `readiness`), `status` |
//!
//! `outcome` is `ok`, an error kind ([`vss_core::VssError::kind`]: `conflict`,
//! `no_such_key`, `invalid_request`, `auth`, `internal`), or what the
//! transport made of the request: `too_large` (413), `not_found` (an unknown
//! path), `method_not_allowed`, `timeout` (the request timeout ran out) or
//! `panic`. No label holds a user, store id, key or value.

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;

use vss_core::VssError;

use crate::HttpError;

/// Requests by operation and outcome.
pub const REQUESTS_TOTAL: &str = "vss_http_requests_total";
/// Request latency, from the request's head to its answer, by operation.
pub const REQUEST_DURATION: &str = "vss_http_request_duration_seconds";
/// Requests being answered, by operation.
pub const REQUESTS_IN_FLIGHT: &str = "vss_http_requests_in_flight";
/// Request body sizes, by operation (0 for requests refused before the body is read).
pub const REQUEST_BODY_BYTES: &str = "vss_http_request_body_bytes";
/// Response body sizes, by operation.
pub const RESPONSE_BODY_BYTES: &str = "vss_http_response_body_bytes";
/// Probe answers by probe and status.
pub const PROBES_TOTAL: &str = "vss_http_probes_total";

/// Registers the help texts and units of the metrics of this crate with the
/// recorder installed now.
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        REQUESTS_TOTAL,
        "VSS requests answered, by operation and outcome."
    );
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Time from a request's head to its answer, by operation."
    );
    describe_gauge!(REQUESTS_IN_FLIGHT, "VSS requests being answered now.");
    describe_histogram!(
        REQUEST_BODY_BYTES,
        Unit::Bytes,
        "Request body sizes, by operation."
    );
    describe_histogram!(
        RESPONSE_BODY_BYTES,
        Unit::Bytes,
        "Response body sizes, by operation."
    );
    describe_counter!(PROBES_TOTAL, "Probe answers, by probe and status.");
}

/// Counts a request in flight until dropped.
pub(crate) struct InFlight(&'static str);

impl InFlight {
    pub(crate) fn start(operation: &'static str) -> Self {
        metrics::gauge!(REQUESTS_IN_FLIGHT, "operation" => operation).increment(1.0);
        InFlight(operation)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(REQUESTS_IN_FLIGHT, "operation" => self.0).decrement(1.0);
    }
}

/// The `outcome` label of an answered request.
pub(crate) fn outcome(result: &Result<Bytes, HttpError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(err) => match (err.status, &err.error) {
            (StatusCode::PAYLOAD_TOO_LARGE, _) => "too_large",
            (StatusCode::METHOD_NOT_ALLOWED, _) => "method_not_allowed",
            // NO_SUCH_KEY is a 404 too; an unknown path is the invalid request one.
            (StatusCode::NOT_FOUND, VssError::InvalidRequest(_)) => "not_found",
            (_, error) => error.kind(),
        },
    }
}

/// Records an answered request.
pub(crate) fn request_done(
    operation: &'static str,
    outcome: &'static str,
    latency: Duration,
    request_bytes: usize,
    response_bytes: u64,
) {
    metrics::counter!(REQUESTS_TOTAL, "operation" => operation, "outcome" => outcome).increment(1);
    metrics::histogram!(REQUEST_DURATION, "operation" => operation).record(latency.as_secs_f64());
    metrics::histogram!(REQUEST_BODY_BYTES, "operation" => operation).record(request_bytes as f64);
    metrics::histogram!(RESPONSE_BODY_BYTES, "operation" => operation)
        .record(response_bytes as f64);
}

/// Records a probe's answer.
pub(crate) fn probe_done(probe: &'static str, status: u16) {
    let status = match status {
        200 => "200",
        503 => "503",
        _ => "other",
    };
    metrics::counter!(PROBES_TOTAL, "probe" => probe, "status" => status).increment(1);
}
