//! One request in, one response out: the whole request path, without I/O.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Body;
use tracing::Instrument;
use vss_core::{KvStore, VssError};

use crate::{
    error_response, protobuf_response, read_body, Authorizer, Endpoint, HttpError, Operation,
};

/// The base path VSS clients are configured with by default.
pub const DEFAULT_BASE_PATH: &str = "/vss";

/// The default request body limit: 1 GiB, as the reference server. Bodies are
/// read only after the caller is authorized.
pub const DEFAULT_MAX_BODY_SIZE: usize = 1024 * 1024 * 1024;

/// The default time one request may take, from its headers to its answer.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How requests are served: where, how big, how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    base_path: String,
    max_body_size: usize,
    request_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            base_path: DEFAULT_BASE_PATH.to_string(),
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
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
                config,
                endpoints: Vec::new(),
            }),
        }
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
    /// never fails and never panics on any input. Logs one line per request
    /// (method, operation, status, latency) and never values or credentials.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let started = Instant::now();
        if let Some(endpoint) = self.endpoint(req.uri().path()) {
            return self.answer_endpoint(endpoint, req, started).await;
        }
        let operation = Operation::from_path(req.uri().path(), self.config().base_path());
        let span = tracing::info_span!(
            "vss_request",
            method = %req.method(),
            operation = %operation.map_or("unknown", Operation::name),
        );
        async move {
            let timeout = self.config().request_timeout();
            // A panic in a store or authorizer is a bug there; the client still gets
            // a protocol answer (500, retried) and the connection keeps serving.
            let answer = AssertUnwindSafe(self.answer(operation, req)).catch_unwind();
            let result = match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(result)) => result,
                Ok(Err(_panic)) => Err(HttpError::from(VssError::internal(
                    "the request handler panicked",
                ))),
                Err(_) => Err(HttpError::from(VssError::internal(format!(
                    "request not answered within {timeout:?}"
                )))),
            };
            let response = match result {
                Ok(body) => protobuf_response(body),
                Err(err) => {
                    log_failure(&err);
                    error_response(&err)
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
    ) -> Response<Full<Bytes>> {
        let span =
            tracing::info_span!("vss_request", method = %req.method(), operation = "endpoint");
        async move {
            let (parts, _body) = req.into_parts();
            let timeout = self.config().request_timeout();
            let answer = AssertUnwindSafe(endpoint.respond(&parts)).catch_unwind();
            let response = match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(response)) => response,
                Ok(Err(_panic)) => {
                    tracing::error!("the endpoint panicked");
                    plain_response(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
                }
                Err(_) => plain_response(StatusCode::INTERNAL_SERVER_ERROR, "timed out"),
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
    ) -> Result<Bytes, HttpError>
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
        // Authorize on the headers first: an unauthenticated caller never gets a body read.
        let user = self.inner.authorizer.authorize(&parts.headers).await?;
        let body = read_body(body, self.config().max_body_size()).await?;
        Ok(operation.call(&*self.inner.store, &user, body).await?)
    }
}

fn plain_response(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
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
