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
//! | `vss_http_connections_open` | gauge | |
//! | `vss_http_connections_refused_total` | counter | `limit` (`max_connections`, `max_connections_per_ip`) |
//! | `vss_http_connections_closed_total` | counter | `reason` (`first_bytes_timeout`, `idle_timeout`) |
//!
//! `outcome` is `ok`, an error kind ([`vss_core::VssError::kind`]: `conflict`,
//! `no_such_key`, `invalid_request`, `auth`, `internal`), or what the
//! transport made of the request: `too_large` (413), `not_found` (an unknown
//! path), `method_not_allowed`, `timeout` (the request timeout ran out) or
//! `panic`. No label holds a user, store id, key or value.

use std::sync::OnceLock;
use std::time::Duration;

use http::StatusCode;
use metrics::{Counter, Gauge, Histogram};
use vss_core::protocol::Operation;
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
/// Connections open now.
pub const CONNECTIONS_OPEN: &str = "vss_http_connections_open";
/// Connections closed as soon as accepted, by the limit they were over.
pub const CONNECTIONS_REFUSED_TOTAL: &str = "vss_http_connections_refused_total";
/// Connections the server closed, by reason (first_bytes_timeout, idle_timeout).
pub const CONNECTIONS_CLOSED_TOTAL: &str = "vss_http_connections_closed_total";

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
    describe_gauge!(CONNECTIONS_OPEN, "Client connections open now.");
    describe_counter!(
        CONNECTIONS_REFUSED_TOTAL,
        "Connections closed as soon as accepted, by the limit they were over (max_connections, max_connections_per_ip)."
    );
    describe_counter!(
        CONNECTIONS_CLOSED_TOTAL,
        "Connections the server closed, by reason (first_bytes_timeout, idle_timeout)."
    );
    describe_gauge!(
        BODY_BUDGET_IN_USE,
        Unit::Bytes,
        "Bytes of request bodies holding the memory budget now."
    );
}

/// An open connection, counted until dropped.
pub(crate) struct ConnectionOpen(Gauge);

impl ConnectionOpen {
    pub(crate) fn start() -> Self {
        let gauge = metrics::gauge!(CONNECTIONS_OPEN);
        gauge.increment(1.0);
        ConnectionOpen(gauge)
    }
}

impl Drop for ConnectionOpen {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// A connection closed as soon as accepted: it was over `limit`.
pub(crate) fn connection_refused(limit: &'static str) {
    metrics::counter!(CONNECTIONS_REFUSED_TOTAL, "limit" => limit).increment(1);
}

/// A connection the server closed, for `reason`.
pub(crate) fn connection_closed(reason: &'static str) {
    metrics::counter!(CONNECTIONS_CLOSED_TOTAL, "reason" => reason).increment(1);
}

/// Outcomes the transport gives a request, besides `ok` and the error kinds.
const TRANSPORT_OUTCOMES: [&str; 7] = [
    "too_large",
    "not_found",
    "method_not_allowed",
    "timeout",
    "panic",
    "rate_limited",
    "busy",
];

/// Bytes of request bodies holding the memory budget now.
pub const BODY_BUDGET_IN_USE: &str = "vss_http_body_budget_in_use_bytes";

/// A body took `bytes` of the memory budget.
pub(crate) fn body_budget_taken(bytes: usize) {
    metrics::gauge!(BODY_BUDGET_IN_USE).increment(bytes as f64);
}

/// A body gave `bytes` of the memory budget back.
pub(crate) fn body_budget_released(bytes: usize) {
    metrics::gauge!(BODY_BUDGET_IN_USE).decrement(bytes as f64);
}

/// How a request ended, as the `outcome` label tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Answered 200.
    Ok,
    /// A protocol error: its position in [`VssError::KINDS`].
    Error(usize),
    /// What the transport made of it: its position in [`TRANSPORT_OUTCOMES`].
    Transport(usize),
}

impl Outcome {
    pub(crate) const TIMEOUT: Outcome = Outcome::Transport(3);
    pub(crate) const PANIC: Outcome = Outcome::Transport(4);

    /// The outcome of an answered request.
    pub(crate) fn of(result: &Result<vss_core::protocol::Encoded, HttpError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Ok,
            Err(err) => match (err.status, &err.error) {
                (StatusCode::PAYLOAD_TOO_LARGE, _) => Outcome::Transport(0),
                // NO_SUCH_KEY is a 404 too; an unknown path is the invalid request one.
                (StatusCode::NOT_FOUND, VssError::InvalidRequest(_)) => Outcome::Transport(1),
                (StatusCode::METHOD_NOT_ALLOWED, _) => Outcome::Transport(2),
                (StatusCode::TOO_MANY_REQUESTS, _) => Outcome::Transport(5),
                (StatusCode::SERVICE_UNAVAILABLE, _) => Outcome::Transport(6),
                (_, error) => Outcome::Error(error.kind_index()),
            },
        }
    }

    fn index(self) -> usize {
        match self {
            Outcome::Ok => 0,
            Outcome::Error(i) => 1 + i,
            Outcome::Transport(i) => 1 + VssError::KINDS.len() + i,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error(i) => VssError::KINDS[i],
            Outcome::Transport(i) => TRANSPORT_OUTCOMES[i],
        }
    }
}

/// The operations measured: the four calls, then `unknown`.
const OPERATIONS: [&str; 5] = [
    Operation::GetObject.name(),
    Operation::PutObjects.name(),
    Operation::DeleteObject.name(),
    Operation::ListKeyVersions.name(),
    "unknown",
];

/// The series of one service, each registered with the recorder at its
/// first use and its handle kept: a request costs a few atomic updates, not
/// a registry lookup per metric.
#[derive(Default)]
pub(crate) struct Series {
    operations: [OperationSeries; OPERATIONS.len()],
}

#[derive(Default)]
struct OperationSeries {
    in_flight: OnceLock<Gauge>,
    duration: OnceLock<Histogram>,
    request_bytes: OnceLock<Histogram>,
    response_bytes: OnceLock<Histogram>,
    outcomes: [OnceLock<Counter>; 1 + VssError::KINDS.len() + TRANSPORT_OUTCOMES.len()],
}

/// The index of `operation` in [`OPERATIONS`].
fn index_of(operation: Option<Operation>) -> usize {
    match operation {
        Some(Operation::GetObject) => 0,
        Some(Operation::PutObjects) => 1,
        Some(Operation::DeleteObject) => 2,
        Some(Operation::ListKeyVersions) => 3,
        None => 4,
    }
}

impl Series {
    /// Counts a request of `operation` in flight until the guard is dropped.
    pub(crate) fn in_flight(&self, operation: Option<Operation>) -> InFlight<'_> {
        let op = index_of(operation);
        let gauge = self.operations[op]
            .in_flight
            .get_or_init(|| metrics::gauge!(REQUESTS_IN_FLIGHT, "operation" => OPERATIONS[op]));
        gauge.increment(1.0);
        InFlight(gauge)
    }

    /// Records an answered request.
    pub(crate) fn request_done(
        &self,
        operation: Option<Operation>,
        outcome: Outcome,
        latency: Duration,
        request_bytes: usize,
        response_bytes: u64,
    ) {
        let op = index_of(operation);
        let series = &self.operations[op];
        let name = OPERATIONS[op];
        series.outcomes[outcome.index()]
            .get_or_init(|| {
                metrics::counter!(REQUESTS_TOTAL, "operation" => name, "outcome" => outcome.label())
            })
            .increment(1);
        histogram(&series.duration, REQUEST_DURATION, name).record(latency.as_secs_f64());
        histogram(&series.request_bytes, REQUEST_BODY_BYTES, name).record(request_bytes as f64);
        histogram(&series.response_bytes, RESPONSE_BODY_BYTES, name).record(response_bytes as f64);
    }
}

/// The histogram `metric` of `operation`, registered at first use.
fn histogram<'a>(
    cell: &'a OnceLock<Histogram>,
    metric: &'static str,
    operation: &'static str,
) -> &'a Histogram {
    cell.get_or_init(|| metrics::histogram!(metric, "operation" => operation))
}

/// A request in flight, counted until dropped.
pub(crate) struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Records a probe's answer (probes are rare: no handles kept).
pub(crate) fn probe_done(probe: &'static str, status: u16) {
    let status = match status {
        200 => "200",
        503 => "503",
        _ => "other",
    };
    metrics::counter!(PROBES_TOTAL, "probe" => probe, "status" => status).increment(1);
}
