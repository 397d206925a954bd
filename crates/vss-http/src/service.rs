//! One request in, one response out: the whole request path, without I/O.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use tracing::Instrument;
use vss_core::{deadline, KvStore, VssError};

use crate::budget::{read_charged, BodyBudget, Budget};
use crate::limit::{ClientAddr, Limiters, RateLimits};
use crate::measure as m;
use crate::response::{response_body, ResponseBody};
use crate::{error_response, protobuf_response, Authorizer, Endpoint, HttpError, Operation};
use vss_core::protocol::Encoded;

/// The header carrying a request's id, kept from the request or made up, and
/// returned on the response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Liveness probe paths: 200 while the process serves.
pub const LIVENESS_PATHS: [&str; 2] = ["/health", "/livez"];

/// Readiness probe paths: 200 while the store answers its check
/// ([`KvStore::ready`]) within [`READINESS_TIMEOUT`], 503 otherwise and once
/// shutdown has begun.
pub const READINESS_PATHS: [&str; 2] = ["/ready", "/readyz"];

/// The longest a readiness check may take before the answer is 503.
pub const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a readiness check's answer is reused for further probes.
pub const READINESS_CACHE: Duration = Duration::from_millis(500);

/// The longest request id kept from a request; longer ones are replaced.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The base path VSS clients are configured with by default.
pub const DEFAULT_BASE_PATH: &str = "/vss";

/// The default request body limit: 1 GiB, as the reference server. Bodies are
/// read only after the caller is authorized.
pub const DEFAULT_MAX_BODY_SIZE: usize = 1024 * 1024 * 1024;

/// The default time one request may take, from its headers to its answer.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The time the store has to answer a request that started at `started` and
/// is answered INTERNAL at `started + timeout`: a fifth of the timeout, and at
/// most 2 s, earlier. So a store that stops at its deadline (see
/// [`vss_core::deadline`]) answers first, with what really happened, and the
/// request timeout's INTERNAL, after which a write may still commit, is left
/// for a store that does not stop.
pub fn store_deadline(started: Instant, timeout: Duration) -> Instant {
    let margin = (timeout / 5).min(STORE_DEADLINE_MAX_MARGIN);
    started + timeout.saturating_sub(margin)
}

/// The most [`store_deadline`] comes before the request timeout.
pub const STORE_DEADLINE_MAX_MARGIN: Duration = Duration::from_secs(2);

/// How requests are served: where, how big, how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    base_path: String,
    max_body_size: usize,
    request_timeout: Duration,
    rate_limits: RateLimits,
    body_budget: Option<BodyBudget>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            base_path: DEFAULT_BASE_PATH.to_string(),
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            rate_limits: RateLimits::default(),
            body_budget: Some(BodyBudget::default()),
        }
    }
}

impl HttpConfig {
    /// The defaults: base path `/vss`, 1 GiB bodies, 30 s per request.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves under `path` (`/vss`, `/api/vss/`, or `/` for the root).
    /// It must start with `/` and hold no `?`, `#` or `//`; a trailing `/` is dropped.
    pub fn with_base_path(mut self, path: &str) -> Result<Self, String> {
        self.base_path = normalize_base_path(path)?;
        Ok(self)
    }

    /// Refuses bodies over `bytes` with 413.
    pub fn with_max_body_size(mut self, bytes: usize) -> Self {
        self.max_body_size = bytes;
        self
    }

    /// Answers 500 (INTERNAL, which clients retry) to a request not done within `timeout`.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The normalized base path: empty for the root, else `/...` without a trailing `/`.
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    /// The request body limit in bytes.
    pub fn max_body_size(&self) -> usize {
        self.max_body_size
    }

    /// The time one request may take.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Rate limits per client address and per user (all off by default).
    pub fn with_rate_limits(mut self, limits: RateLimits) -> Self {
        self.rate_limits = limits;
        self
    }

    /// The rate limits.
    pub fn rate_limits(&self) -> &RateLimits {
        &self.rate_limits
    }

    /// The memory budget for request bodies in flight (see [`crate::budget`]);
    /// `None` for none. The default is [`BodyBudget::default`].
    pub fn with_body_budget(mut self, budget: Option<BodyBudget>) -> Self {
        self.body_budget = budget;
        self
    }

    /// The memory budget for request bodies in flight.
    pub fn body_budget(&self) -> Option<BodyBudget> {
        self.body_budget
    }
}

fn normalize_base_path(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!("base path `{path}` must start with `/`"));
    }
    if path.contains(['?', '#']) || path.contains("//") || path.contains(char::is_whitespace) {
        return Err(format!(
            "base path `{path}` must not contain `?`, `#`, `//` or whitespace"
        ));
    }
    Ok(path.trim_end_matches('/').to_string())
}

/// The VSS protocol over HTTP for one store and one authorizer. Cheap to clone.
#[derive(Clone)]
pub struct VssService {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    store: Arc<dyn KvStore>,
    authorizer: Arc<dyn Authorizer>,
    config: HttpConfig,
    endpoints: Vec<(String, Arc<dyn Endpoint>)>,
    /// Whether the VSS calls are served (not by [`VssService::operations_only`]).
    vss_calls: bool,
    /// Set once shutdown begins; shared by every service made from one.
    draining: Arc<AtomicBool>,
    /// The last readiness check: when, and whether the store answered.
    readiness: Arc<tokio::sync::Mutex<Option<(Instant, bool)>>>,
    /// The request metrics' series.
    series: Arc<m::Series>,
    /// The rate limiters, when any limit is on.
    limiters: Option<Arc<Limiters>>,
    /// The memory budget of request bodies, when there is one.
    budget: Option<Arc<Budget>>,
}

impl VssService {
    /// Serves `store` to the users `authorizer` admits.
    pub fn new(
        store: Arc<dyn KvStore>,
        authorizer: Arc<dyn Authorizer>,
        config: HttpConfig,
    ) -> Self {
        VssService {
            inner: Arc::new(Inner {
                store,
                authorizer,
                endpoints: Vec::new(),
                vss_calls: true,
                draining: Arc::new(AtomicBool::new(false)),
                readiness: Arc::new(tokio::sync::Mutex::new(None)),
                series: Arc::default(),
                limiters: Limiters::new(config.rate_limits()).map(Arc::new),
                budget: config.body_budget().map(|b| Arc::new(Budget::new(b))),
                config,
            }),
        }
    }

    /// A service on the same store for an operations listener: the probes
    /// and its own endpoints (add `/metrics` with [`VssService::with_endpoint`]),
    /// but not the VSS calls, which answer 404 there. It drains with this one.
    pub fn operations_only(&self) -> VssService {
        let mut inner = (*self.inner).clone();
        inner.vss_calls = false;
        inner.endpoints = Vec::new();
        VssService {
            inner: Arc::new(inner),
        }
    }

    /// Marks the start of shutdown: readiness answers 503 from now on, on this
    /// service and every one made from it, so balancers stop sending traffic
    /// while in-flight requests finish. [`crate::serve`] calls it.
    pub fn begin_draining(&self) {
        if !self.inner.draining.swap(true, Ordering::SeqCst) {
            tracing::info!("draining: readiness now answers 503");
        }
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// Also answers requests whose path is exactly `path` with `endpoint`
    /// (for example an LNURL-auth token issuer next to the VSS calls). The
    /// path must start with `/` and must not be one of the VSS calls' paths.
    pub fn with_endpoint(
        mut self,
        path: &str,
        endpoint: Arc<dyn Endpoint>,
    ) -> Result<Self, String> {
        if !path.starts_with('/') || path.contains(['?', '#']) {
            return Err(format!(
                "endpoint path `{path}` must start with `/` and hold no `?` or `#`"
            ));
        }
        if Operation::from_path(path, self.config().base_path()).is_some() {
            return Err(format!("endpoint path `{path}` is a VSS call's path"));
        }
        if LIVENESS_PATHS.contains(&path) || READINESS_PATHS.contains(&path) {
            return Err(format!("endpoint path `{path}` is a probe's path"));
        }
        if self.endpoint(path).is_some() {
            return Err(format!("endpoint path `{path}` is already served"));
        }
        Arc::make_mut(&mut self.inner)
            .endpoints
            .push((path.to_string(), endpoint));
        Ok(self)
    }

    /// How this service serves.
    pub fn config(&self) -> &HttpConfig {
        &self.inner.config
    }

    /// The store behind this service.
    pub fn store(&self) -> &Arc<dyn KvStore> {
        &self.inner.store
    }

    /// Answers one request; every failure becomes an error response, so this
    /// never fails and never panics on any input. Every response carries the
    /// request's id ([`REQUEST_ID_HEADER`]), which every log line of the
    /// request holds. Logs one access line per request (request id, method,
    /// operation, status, error code, latency, body sizes) and never keys,
    /// values, users or credentials; counts and times it (see [`crate::measure`]).
    pub async fn handle<B>(&self, req: Request<B>) -> Response<ResponseBody>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let started = Instant::now();
        let request_id = request_id(req.headers());
        let path = req.uri().path();
        let mut response = if let Some(probe) = Probe::at(path) {
            self.probe(probe, &req, &request_id).await
        } else if let Some(endpoint) = self.endpoint(path) {
            self.answer_endpoint(endpoint, req, started, &request_id)
                .await
        } else {
            let operation = Operation::from_path(path, self.config().base_path())
                .filter(|_| self.inner.vss_calls);
            self.answer_call(operation, req, started, &request_id).await
        };
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        response
    }

    async fn answer_call<B>(
        &self,
        operation: Option<Operation>,
        req: Request<B>,
        started: Instant,
        request_id: &str,
    ) -> Response<ResponseBody>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let operation_name = operation.map_or("unknown", Operation::name);
        let span = tracing::info_span!(
            "vss_request",
            request_id = %request_id,
            method = %req.method(),
            operation = %operation_name,
        );
        async move {
            let _in_flight = self.inner.series.in_flight(operation);
            let timeout = self.config().request_timeout();
            let mut request_bytes = 0;
            // A panic in a store or authorizer is a bug there; the client still gets
            // a protocol answer (500, retried) and the connection keeps serving.
            let answer =
                AssertUnwindSafe(self.answer(operation, req, &mut request_bytes)).catch_unwind();
            // The store answers first, with what really happened (see vss_core::deadline).
            let answer = deadline::with_deadline(store_deadline(started, timeout), answer);
            let (result, outcome) = match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(result)) => {
                    let outcome = m::Outcome::of(&result);
                    (result, outcome)
                }
                Ok(Err(_panic)) => (
                    Err(HttpError::from(VssError::internal(
                        "the request handler panicked",
                    ))),
                    m::Outcome::PANIC,
                ),
                Err(_) => (
                    Err(HttpError::from(VssError::internal(format!(
                        "request not answered within {timeout:?}"
                    )))),
                    m::Outcome::TIMEOUT,
                ),
            };
            let (response, error_code) = match result {
                Ok(body) => (protobuf_response(body), None),
                Err(err) => {
                    log_failure(&err);
                    (error_response(&err), Some(err.error.kind()))
                }
            };
            let response_bytes = response.body().size_hint().exact().unwrap_or(0);
            self.inner.series.request_done(
                operation,
                outcome,
                started.elapsed(),
                request_bytes,
                response_bytes,
            );
            tracing::info!(
                status = response.status().as_u16(),
                error_code = error_code.unwrap_or(""),
                latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                request_bytes,
                response_bytes,
                "answered"
            );
            response
        }
        .instrument(span)
        .await
    }

    /// A probe: liveness is 200 while serving; readiness asks the store,
    /// within [`READINESS_TIMEOUT`], unless shutdown has begun.
    async fn probe<B>(
        &self,
        probe: Probe,
        req: &Request<B>,
        request_id: &str,
    ) -> Response<ResponseBody> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut response = plain_response(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD\n");
            response
                .headers_mut()
                .insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        let (status, text) = match probe {
            Probe::Live => (StatusCode::OK, "ok\n"),
            Probe::Ready if self.is_draining() => {
                (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
            }
            Probe::Ready if self.store_ready(request_id).await => (StatusCode::OK, "ready\n"),
            Probe::Ready => (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n"),
        };
        m::probe_done(probe.name(), status.as_u16());
        plain_response(status, text)
    }

    /// Whether the store answers its check within [`READINESS_TIMEOUT`]. One
    /// check runs at a time and its answer is reused for
    /// [`READINESS_CACHE`], so a flood of (unauthenticated) probes costs the
    /// database one cheap query per interval, not one per probe.
    async fn store_ready(&self, request_id: &str) -> bool {
        let mut last = self.inner.readiness.lock().await;
        if let Some((at, ready)) = *last {
            if at.elapsed() < READINESS_CACHE {
                return ready;
            }
        }
        let check = tokio::time::timeout(READINESS_TIMEOUT, self.inner.store.ready());
        let ready = match check.await {
            Ok(Ok(())) => true,
            // The cause is for the operator's log; the probe is public.
            Ok(Err(err)) => {
                tracing::warn!(request_id, error = %err, "readiness: the store is not ready");
                false
            }
            Err(_) => {
                tracing::warn!(
                    request_id,
                    timeout = ?READINESS_TIMEOUT,
                    "readiness: the store did not answer in time"
                );
                false
            }
        };
        *last = Some((Instant::now(), ready));
        ready
    }

    fn endpoint(&self, path: &str) -> Option<Arc<dyn Endpoint>> {
        self.inner
            .endpoints
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, e)| Arc::clone(e))
    }

    async fn answer_endpoint<B>(
        &self,
        endpoint: Arc<dyn Endpoint>,
        req: Request<B>,
        started: Instant,
        request_id: &str,
    ) -> Response<ResponseBody> {
        let span = tracing::info_span!(
            "vss_request",
            request_id = %request_id,
            method = %req.method(),
            operation = "endpoint"
        );
        async move {
            let (parts, _body) = req.into_parts();
            // The client's budget first, as for VSS calls: an endpoint is no way around it.
            let limited = self.inner.limiters.as_ref().and_then(|limiters| {
                let peer = parts.extensions.get::<ClientAddr>().map(|c| c.0);
                limiters
                    .check_client(peer, &parts.headers, endpoint.writes(&parts))
                    .err()
            });
            let timeout = self.config().request_timeout();
            let response = match limited {
                Some(err) => {
                    log_failure(&err);
                    error_response(&err)
                }
                None => {
                    let answer = AssertUnwindSafe(endpoint.respond(&parts)).catch_unwind();
                    let answer = deadline::with_deadline(store_deadline(started, timeout), answer);
                    match tokio::time::timeout(timeout, answer).await {
                        Ok(Ok(response)) => whole(response).await,
                        Ok(Err(_panic)) => {
                            tracing::error!("the endpoint panicked");
                            plain_response(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
                        }
                        Err(_) => plain_response(StatusCode::INTERNAL_SERVER_ERROR, "timed out"),
                    }
                }
            };
            tracing::info!(
                status = response.status().as_u16(),
                latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                "answered"
            );
            response
        }
        .instrument(span)
        .await
    }

    async fn answer<B>(
        &self,
        operation: Option<Operation>,
        req: Request<B>,
        request_bytes: &mut usize,
    ) -> Result<Encoded, HttpError>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Some(operation) = operation else {
            return Err(HttpError::with_status(
                StatusCode::NOT_FOUND,
                VssError::InvalidRequest(format!(
                    "unknown path; VSS calls are POST {}/getObject, /putObjects, /deleteObject \
                     and /listKeyVersions",
                    self.config().base_path()
                )),
            ));
        };
        if req.method() != Method::POST {
            return Err(HttpError::with_status(
                StatusCode::METHOD_NOT_ALLOWED,
                VssError::InvalidRequest(format!("{operation} takes POST requests only")),
            ));
        }
        let (parts, body) = req.into_parts();
        let write = matches!(operation, Operation::PutObjects | Operation::DeleteObject);
        // The client's budget before any work for it, the user's once known.
        if let Some(limiters) = &self.inner.limiters {
            let peer = parts.extensions.get::<ClientAddr>().map(|c| c.0);
            limiters.check_client(peer, &parts.headers, write)?;
        }
        // Authorize on the headers first: an unauthenticated caller never gets a body read.
        let user = self.inner.authorizer.authorize(&parts.headers).await?;
        if user.is_reserved() {
            // The server's own records (spent LNURL-auth challenges) are nobody's data.
            return Err(VssError::Auth("this credential names a reserved user".into()).into());
        }
        if let Some(limiters) = &self.inner.limiters {
            limiters.check_user(&user, write)?;
        }
        // The body's share of the memory budget is held until it is answered.
        let (body, _reservation) = read_charged(
            body,
            self.config().max_body_size(),
            self.inner.budget.as_deref(),
        )
        .await?;
        *request_bytes = body.len();
        Ok(operation.call(&*self.inner.store, &user, body).await?)
    }
}

/// An endpoint's answer as every answer's body type (its one buffer, taken at once).
async fn whole(response: Response<Full<Bytes>>) -> Response<ResponseBody> {
    let (parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    Response::from_parts(parts, response_body(bytes, Bytes::new()))
}

fn plain_response(status: StatusCode, text: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(response_body(
        Bytes::from_static(text.as_bytes()),
        Bytes::new(),
    ));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The probes, by path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    Live,
    Ready,
}

impl Probe {
    fn at(path: &str) -> Option<Probe> {
        if LIVENESS_PATHS.contains(&path) {
            Some(Probe::Live)
        } else if READINESS_PATHS.contains(&path) {
            Some(Probe::Ready)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Probe::Live => "liveness",
            Probe::Ready => "readiness",
        }
    }
}

/// The request's id: its `x-request-id` when that is 1 to
/// [`MAX_REQUEST_ID_LEN`] characters of letters, digits and `-_.:`, else a
/// new random one (32 hex digits). Anything else a client sends is not
/// repeated in logs or headers.
pub fn request_id(headers: &HeaderMap) -> String {
    let given = headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        });
    match given {
        Some(id) => id.to_string(),
        None => format!("{:032x}", fastrand::u128(..)),
    }
}

fn log_failure(err: &HttpError) {
    match &err.error {
        // The cause of an internal error is for the operator; clients never see it.
        VssError::Internal(cause) => tracing::error!(%cause, "internal error"),
        other => tracing::debug!(
            error_code = %other.error_code().as_str_name(),
            "request refused"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_when_safe_and_made_up_otherwise() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(REQUEST_ID_HEADER, HeaderValue::from_str(value).unwrap());
            request_id(&headers)
        };
        assert_eq!(with("abc-123_X.y:z"), "abc-123_X.y:z");
        let made_up = request_id(&HeaderMap::new());
        assert_eq!(made_up.len(), 32);
        assert!(made_up.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(made_up, request_id(&HeaderMap::new()));
        for unsafe_id in ["", "has space", "a\"b", "semi;colon", &"x".repeat(129)] {
            let id = with(unsafe_id);
            assert_ne!(id, unsafe_id);
            assert_eq!(id.len(), 32);
        }
        assert_eq!(with(&"x".repeat(128)), "x".repeat(128));
    }

    #[test]
    fn base_paths_are_normalized_or_refused() {
        let path = |p: &str| {
            HttpConfig::new()
                .with_base_path(p)
                .map(|c| c.base_path().to_string())
        };
        assert_eq!(path("/vss").unwrap(), "/vss");
        assert_eq!(path("/api/vss/").unwrap(), "/api/vss");
        assert_eq!(path("/").unwrap(), "");
        for bad in ["vss", "", "/v?x", "/v#x", "/a//b", "/a b"] {
            assert!(path(bad).is_err(), "{bad}");
        }
    }
}
