//! # vss-conformance: the VSS contract, checked over the wire
//!
//! [`HttpStore`] implements [`vss_core::KvStore`] as a client of the VSS wire
//! protocol, so the conformance suite of `vss_core::conformance` runs against
//! any live server, this project's or anyone's. The `vss-conformance` binary
//! does just that:
//!
//! ```text
//! cargo run -p vss-conformance -- --base-url http://127.0.0.1:8080/vss \
//!     [--header 'Authorization: Bearer ...']
//! ```
//!
//! The client is strict about the transport: a response without
//! `vss-protocol-version: 0`, an error body that is not an `ErrorResponse`, or
//! a status that does not match the error code is a failure
//! ([`VssError::Internal`]) even when the error code is the expected one.

#![warn(missing_docs)]

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prost::Message;
use vss_core::proto::{
    DeleteObjectRequest, DeleteObjectResponse, ErrorResponse, GetObjectRequest, GetObjectResponse,
    ListKeyVersionsRequest, ListKeyVersionsResponse, PutObjectRequest, PutObjectResponse,
};
use vss_core::protocol::{Operation, PROTOCOL_VERSION, PROTOCOL_VERSION_HEADER};
use vss_core::{KvStore, StoreLimits, UserToken, VssError};

/// Why a client could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientConfigError {
    /// The base URL is not an `http://` or `https://` URL.
    #[error("invalid base URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A header is not `Name: value` with a valid name and value.
    #[error("invalid header `{header}`: {reason}")]
    InvalidHeader {
        /// The header given.
        header: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A [`KvStore`] that is a VSS server reached over HTTP/1.1 (`http://`, or
/// `https://` verified against the Mozilla root certificates).
///
/// The server's credentials (the headers given here) decide the user, so the
/// [`UserToken`] passed to each call is ignored: run the suite with
/// `Subject::single_user`. Transport failures, timeouts and protocol
/// violations are [`VssError::Internal`] with the reason.
#[derive(Clone)]
pub struct HttpStore {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    base_url: String,
    headers: HeaderMap,
    limits: StoreLimits,
    timeout: Duration,
}

impl std::fmt::Debug for HttpStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values are credentials: name them, never print them.
        f.debug_struct("HttpStore")
            .field("base_url", &self.base_url)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl HttpStore {
    /// A client of the server at `base_url` (for example `http://127.0.0.1:8080/vss`).
    pub fn new(base_url: &str) -> Result<Self, ClientConfigError> {
        let invalid = |reason: &str| ClientConfigError::InvalidUrl {
            url: base_url.to_string(),
            reason: reason.to_string(),
        };
        let uri: Uri = base_url
            .parse()
            .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => return Err(invalid("must start with http:// or https://")),
        }
        if uri.host().is_none() {
            return Err(invalid("has no host"));
        }
        if uri.query().is_some() {
            return Err(invalid("must not have a query"));
        }
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| invalid(&format!("cannot set up TLS: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(HttpStore {
            client: Client::builder(TokioExecutor::new()).build(connector),
            base_url: base_url.trim_end_matches('/').to_string(),
            headers: HeaderMap::new(),
            limits: StoreLimits::default(),
            timeout: Duration::from_secs(60),
        })
    }

    /// Sends a header (`Name: value`, as curl takes it) with every request.
    pub fn with_header(self, header: &str) -> Result<Self, ClientConfigError> {
        let (name, value) =
            header
                .split_once(':')
                .ok_or_else(|| ClientConfigError::InvalidHeader {
                    header: redact(header),
                    reason: "expected `Name: value`".into(),
                })?;
        self.with_header_pair(name.trim(), value.trim())
    }

    /// Sends the header `name: value` with every request.
    pub fn with_header_pair(mut self, name: &str, value: &str) -> Result<Self, ClientConfigError> {
        let invalid = |reason: String| ClientConfigError::InvalidHeader {
            header: name.to_string(),
            reason,
        };
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| invalid(e.to_string()))?;
        let mut value = HeaderValue::from_str(value).map_err(|e| invalid(e.to_string()))?;
        value.set_sensitive(true);
        self.headers.append(name, value);
        Ok(self)
    }

    /// Declares the server's limits, when they differ from the protocol's
    /// defaults, so the suite tests against them. Quotas cannot be given per
    /// put over the wire, so this client never declares
    /// [`StoreLimits::enforces_quotas`] (the suite's quota rules are skipped;
    /// a server's configured quotas are tested through its own settings).
    pub fn with_limits(mut self, limits: StoreLimits) -> Self {
        self.limits = StoreLimits {
            enforces_quotas: false,
            ..limits
        };
        self
    }

    /// Gives up on a call (as an internal error) after `timeout`; 60 s by default.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Posts `req` to `{base}/{operation}` and decodes the answer.
    pub async fn call<Req, Resp>(&self, operation: Operation, req: &Req) -> Result<Resp, VssError>
    where
        Req: Message,
        Resp: Message + Default,
    {
        let method = operation.name();
        match tokio::time::timeout(self.timeout, self.call_once(method, req)).await {
            Ok(result) => result,
            Err(_) => Err(VssError::internal(format!(
                "{method}: no answer within {:?}",
                self.timeout
            ))),
        }
    }

    async fn call_once<Req, Resp>(&self, method: &str, req: &Req) -> Result<Resp, VssError>
    where
        Req: Message,
        Resp: Message + Default,
    {
        let url = format!("{}/{method}", self.base_url);
        let mut request = Request::post(&url)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(Full::new(Bytes::from(req.encode_to_vec())))
            .map_err(|e| VssError::internal(format!("{method}: cannot build request: {e}")))?;
        request.headers_mut().extend(self.headers.clone());
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| VssError::internal(format!("{method}: transport error: {e}")))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| VssError::internal(format!("{method}: reading the answer failed: {e}")))?
            .to_bytes();
        decode_answer(method, parts.status, &parts.headers, body)
    }
}

/// Checks one answer of the server against the wire contract and decodes it:
/// `Ok` for a 2xx with the protocol header and a valid body; the decoded error
/// for a non-2xx whose status matches its error code; [`VssError::Internal`]
/// naming the violation otherwise.
pub fn decode_answer<Resp: Message + Default>(
    method: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Resp, VssError> {
    let (name, expected) = (PROTOCOL_VERSION_HEADER, PROTOCOL_VERSION);
    match headers.get(name) {
        Some(v) if v == expected => {}
        other => {
            return Err(VssError::internal(format!(
                "{method}: protocol violation: the answer (status {status}) carries {name}: {:?}, \
                 expected `{expected}`",
                other.and_then(|v| v.to_str().ok())
            )))
        }
    }
    if status.is_success() {
        return Resp::decode(body).map_err(|e| {
            VssError::internal(format!(
                "{method}: protocol violation: undecodable answer: {e}"
            ))
        });
    }
    let wire = ErrorResponse::decode(body).map_err(|e| {
        VssError::internal(format!(
            "{method}: protocol violation: status {status} without an ErrorResponse body: {e}"
        ))
    })?;
    let err = VssError::from_error_response(&wire);
    let status_fits = status.as_u16() == err.http_status()
        || (status == StatusCode::PAYLOAD_TOO_LARGE && matches!(err, VssError::InvalidRequest(_)));
    if !status_fits {
        return Err(VssError::internal(format!(
            "{method}: protocol violation: status {status} does not match error code {} ({err})",
            err.error_code().as_str_name()
        )));
    }
    Err(err)
}

fn redact(header: &str) -> String {
    match header.split_once(':') {
        Some((name, _)) => format!("{name}: <redacted>"),
        None => "<redacted>".into(),
    }
}

#[async_trait]
impl KvStore for HttpStore {
    async fn get(
        &self,
        _user: &UserToken,
        req: GetObjectRequest,
    ) -> Result<GetObjectResponse, VssError> {
        self.call(Operation::GetObject, &req).await
    }

    async fn put(
        &self,
        _user: &UserToken,
        req: PutObjectRequest,
    ) -> Result<PutObjectResponse, VssError> {
        self.call(Operation::PutObjects, &req).await
    }

    async fn delete(
        &self,
        _user: &UserToken,
        req: DeleteObjectRequest,
    ) -> Result<DeleteObjectResponse, VssError> {
        self.call(Operation::DeleteObject, &req).await
    }

    async fn list_key_versions(
        &self,
        _user: &UserToken,
        req: ListKeyVersionsRequest,
    ) -> Result<ListKeyVersionsResponse, VssError> {
        self.call(Operation::ListKeyVersions, &req).await
    }

    fn limits(&self) -> StoreLimits {
        self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(version: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = version {
            h.insert("vss-protocol-version", v.parse().unwrap());
        }
        h
    }

    fn error_body(err: &VssError) -> Bytes {
        Bytes::from(err.to_error_response().encode_to_vec())
    }

    #[test]
    fn a_missing_or_wrong_protocol_header_is_a_failure() {
        for h in [headers(None), headers(Some("1"))] {
            let got =
                decode_answer::<PutObjectResponse>("putObjects", StatusCode::OK, &h, Bytes::new());
            assert!(
                matches!(got, Err(VssError::Internal(m)) if m.contains("vss-protocol-version"))
            );
        }
        let got = decode_answer::<PutObjectResponse>(
            "putObjects",
            StatusCode::OK,
            &headers(Some("0")),
            Bytes::new(),
        );
        assert_eq!(got, Ok(PutObjectResponse {}));
    }

    #[test]
    fn errors_decode_when_their_status_fits() {
        let h = headers(Some("0"));
        let conflict = VssError::Conflict("c".into());
        let got = decode_answer::<PutObjectResponse>(
            "p",
            StatusCode::CONFLICT,
            &h,
            error_body(&conflict),
        );
        assert_eq!(got, Err(conflict.clone()));
        let got = decode_answer::<PutObjectResponse>(
            "p",
            StatusCode::NOT_FOUND,
            &h,
            error_body(&conflict),
        );
        assert!(matches!(got, Err(VssError::Internal(m)) if m.contains("does not match")));
        let invalid = VssError::InvalidRequest("too big".into());
        let got = decode_answer::<PutObjectResponse>(
            "p",
            StatusCode::PAYLOAD_TOO_LARGE,
            &h,
            error_body(&invalid),
        );
        assert_eq!(got, Err(invalid));
        let got = decode_answer::<PutObjectResponse>(
            "p",
            StatusCode::BAD_REQUEST,
            &h,
            Bytes::from_static(b"\xff\xff"),
        );
        assert!(matches!(got, Err(VssError::Internal(m)) if m.contains("ErrorResponse")));
    }

    #[test]
    fn urls_and_headers_are_checked() {
        assert!(HttpStore::new("http://127.0.0.1:1/vss/").is_ok());
        assert_eq!(
            HttpStore::new("http://h/vss/").unwrap().base_url(),
            "http://h/vss"
        );
        assert!(HttpStore::new("https://vss.example.com/vss").is_ok());
        for bad in [
            "127.0.0.1:8080/vss",
            "ftp://h",
            "http://h/vss?x=1",
            "not a url",
        ] {
            assert!(HttpStore::new(bad).is_err(), "{bad}");
        }
        let store = HttpStore::new("http://h/vss").unwrap();
        assert!(store.clone().with_header("Authorization: Bearer x").is_ok());
        let err = store
            .clone()
            .with_header("Authorization Bearer secret")
            .unwrap_err();
        assert!(!err.to_string().contains("secret"));
        assert!(store.with_header("Bad Name: x").is_err());
    }
}
