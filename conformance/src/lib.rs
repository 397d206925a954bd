//! # vss-conformance: the VSS contract, checked over the wire
//!
//! [`HttpStore`] implements [`vss_core::KvStore`] as a client of the VSS wire
//! protocol, so the conformance suite of `vss_core::conformance` runs against
//! any live server, this project's or anyone's. The `vss-conformance` binary
//! does just that:
//!
//! ```text
//! cargo run -p vss-conformance -- --base-url http://127.0.0.1:8080/vss \
//!     [--header 'Authorization: Bearer ...'] [--header-b 'Authorization: Bearer ...']
//! ```
//!
//! The client is strict about the transport: an error body that is not an
//! `ErrorResponse`, or a status that does not match the error code, is a
//! failure ([`VssError::Internal`]) even when the error code is the expected
//! one. So is an answer without `vss-protocol-version: 0`, unless the header
//! is not required ([`HttpStore::with_protocol_header_required`]); then only
//! the rule of its own, [`HttpStore::check_protocol_header`], reports it.
//!
//! [`run_suite`] runs that rule and every rule of the suite with durations,
//! and [`report`] renders the outcome as text, JSON or JUnit XML.

#![warn(missing_docs)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prost::Message;
use vss_auth::secp256k1::SecretKey;
use vss_auth::{Clock, JwtSigner, SystemClock};
use vss_core::conformance::{Subject, TestError, TestResult};
use vss_core::proto::{
    DeleteObjectRequest, DeleteObjectResponse, ErrorResponse, GetObjectRequest, GetObjectResponse,
    KeyValue, ListKeyVersionsRequest, ListKeyVersionsResponse, PutObjectRequest, PutObjectResponse,
};
use vss_core::protocol::{Operation, PROTOCOL_VERSION, PROTOCOL_VERSION_HEADER};
use vss_core::{KvStore, StoreLimits, UserToken, VssError};

pub mod report;
mod suite;

pub use suite::{rule_names, run_suite, Outcome, Selection, SelectionError};

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

/// Who the server sees for each user a test names: how [`HttpStore`]
/// authenticates the requests of one [`UserToken`].
#[derive(Clone)]
enum Users {
    /// The common headers for every user: the server sees one user.
    One,
    /// Two credentials: the first user a test names sends the common
    /// headers, the second also these (replacing common headers of the same
    /// name). A third user is an error.
    Two {
        second: HeaderMap,
        seen: Arc<Mutex<Vec<UserToken>>>,
    },
    /// A JWT of its own for every user (`sub` is the user's name).
    Jwt {
        signer: Arc<JwtSigner>,
        tokens: Arc<Mutex<HashMap<UserToken, HeaderValue>>>,
    },
    /// Signature auth with a fresh secp256k1 key for every user.
    Sigs {
        keys: Arc<Mutex<HashMap<UserToken, SecretKey>>>,
    },
}

/// How long a minted JWT is valid: longer than any run.
const MINTED_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// The name of the rule [`HttpStore::check_protocol_header`] checks.
pub const PROTOCOL_HEADER_RULE: &str = "replies_carry_the_protocol_version_header";

/// A [`KvStore`] that is a VSS server reached over HTTP/1.1 (`http://`, or
/// `https://` verified against the Mozilla root certificates).
///
/// Which user the server sees is decided by the credentials set up here:
/// by default the headers of [`HttpStore::with_header`] go with every
/// request, so every [`UserToken`] a caller passes reaches the same user
/// (run the suite with `Subject::single_user`, or take [`HttpStore::subject`]).
/// [`HttpStore::with_second_user_header`], [`HttpStore::with_jwt_signer`] and
/// [`HttpStore::with_signature_auth`] give different tokens different users;
/// each replaces the way users are told apart that an earlier one set. Clones
/// share the two credentials' assignment to users and the minted credentials
/// (one per user a test names: a few per rule), see [`HttpStore::fresh`].
/// Transport failures, timeouts and protocol violations are
/// [`VssError::Internal`] with the reason.
#[derive(Clone)]
pub struct HttpStore {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    base_url: String,
    headers: HeaderMap,
    users: Users,
    require_protocol_header: bool,
    limits: StoreLimits,
    timeout: Duration,
}

impl std::fmt::Debug for HttpStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values are credentials: name them, never print them.
        f.debug_struct("HttpStore")
            .field("base_url", &self.base_url)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("users", &self.users_mode())
            .field("require_protocol_header", &self.require_protocol_header)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Parses `Name: value`, as curl takes a header.
fn parse_header(header: &str) -> Result<(HeaderName, HeaderValue), ClientConfigError> {
    let (name, value) = header
        .split_once(':')
        .ok_or_else(|| ClientConfigError::InvalidHeader {
            header: redact(header),
            reason: "expected `Name: value`".into(),
        })?;
    header_pair(name.trim(), value.trim())
}

fn header_pair(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), ClientConfigError> {
    let invalid = |reason: String| ClientConfigError::InvalidHeader {
        header: name.to_string(),
        reason,
    };
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| invalid(e.to_string()))?;
    let mut value = HeaderValue::from_str(value).map_err(|e| invalid(e.to_string()))?;
    value.set_sensitive(true);
    Ok((name, value))
}

/// Locks a mutex of plain data; a panic elsewhere leaves that data usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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
            users: Users::One,
            require_protocol_header: true,
            limits: StoreLimits::default(),
            timeout: Duration::from_secs(60),
        })
    }

    /// Sends a header (`Name: value`, as curl takes it) with every request.
    pub fn with_header(mut self, header: &str) -> Result<Self, ClientConfigError> {
        let (name, value) = parse_header(header)?;
        self.headers.append(name, value);
        Ok(self)
    }

    /// Sends the header `name: value` with every request.
    pub fn with_header_pair(mut self, name: &str, value: &str) -> Result<Self, ClientConfigError> {
        let (name, value) = header_pair(name, value)?;
        self.headers.append(name, value);
        Ok(self)
    }

    /// A second user's header (`Name: value`): the first user a test names
    /// is the one of [`HttpStore::with_header`], the second sends this header
    /// too, in place of a common header of the same name. Repeatable; with it
    /// the isolation rules run. A test that names a third user fails.
    pub fn with_second_user_header(mut self, header: &str) -> Result<Self, ClientConfigError> {
        let (name, value) = parse_header(header)?;
        let mut second = match self.users {
            Users::Two { second, .. } => second,
            _ => HeaderMap::new(),
        };
        second.append(name, value);
        self.users = Users::Two {
            second,
            seen: Arc::default(),
        };
        Ok(self)
    }

    /// Mints a JWT for every user (`sub` the user's name, valid for a day) with
    /// `signer`, sent as `Authorization: Bearer`: a server that verifies
    /// `signer`'s public key sees every user apart.
    pub fn with_jwt_signer(mut self, signer: JwtSigner) -> Self {
        self.users = Users::Jwt {
            signer: Arc::new(signer),
            tokens: Arc::default(),
        };
        self
    }

    /// Signature auth (vss-client-ng's `SigsAuthProvider` header) with a fresh
    /// random key for every user: a server with signature auth sees every
    /// user apart.
    pub fn with_signature_auth(mut self) -> Self {
        self.users = Users::Sigs {
            keys: Arc::default(),
        };
        self
    }

    /// Whether an answer without the `vss-protocol-version` header is a
    /// protocol violation (the default, as vss-client-ng 0.6 and later judge
    /// it). With `false` such answers are judged on their content only, as
    /// vss-client-ng 0.4 does, and [`HttpStore::check_protocol_header`]
    /// reports the header's absence once. A header with another version is a
    /// violation either way.
    pub fn with_protocol_header_required(mut self, required: bool) -> Self {
        self.require_protocol_header = required;
        self
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

    /// Whether different [`UserToken`]s reach different users of the server.
    pub fn distinct_users(&self) -> bool {
        !matches!(self.users, Users::One)
    }

    /// How users are told apart, in a word: `one`, `two`, `jwt` or `sigs`.
    pub fn users_mode(&self) -> &'static str {
        match self.users {
            Users::One => "one",
            Users::Two { .. } => "two",
            Users::Jwt { .. } => "jwt",
            Users::Sigs { .. } => "sigs",
        }
    }

    /// The conformance subject of one test: this client, with the users of
    /// two credentials assigned afresh, as `Subject::new` when users are
    /// told apart and `Subject::single_user` otherwise.
    pub fn subject(&self) -> Subject {
        let store = self.fresh();
        if store.distinct_users() {
            Subject::new(Arc::new(store))
        } else {
            Subject::single_user(Arc::new(store))
        }
    }

    /// A copy whose two credentials go to the first two users it sees from
    /// now on (clones share that assignment; this starts it afresh).
    pub fn fresh(&self) -> HttpStore {
        let mut store = self.clone();
        if let Users::Two { seen, .. } = &mut store.users {
            *seen = Arc::default();
        }
        store
    }

    /// The headers of `user`'s requests.
    fn headers_for(&self, user: &UserToken) -> Result<HeaderMap, VssError> {
        let mut headers = self.headers.clone();
        let authorization = match &self.users {
            Users::One => return Ok(headers),
            Users::Two { second, seen } => {
                let mut seen = lock(seen);
                let index = match seen.iter().position(|u| u == user) {
                    Some(index) => index,
                    None => {
                        seen.push(user.clone());
                        seen.len() - 1
                    }
                };
                match index {
                    0 => {}
                    1 => {
                        for name in second.keys() {
                            headers.remove(name);
                        }
                        for (name, value) in second {
                            headers.append(name, value.clone());
                        }
                    }
                    _ => {
                        return Err(VssError::internal(
                            "a third user, but two credentials were given (minted users, \
                             JWTs or signature auth, have no such limit)",
                        ))
                    }
                }
                return Ok(headers);
            }
            Users::Jwt { signer, tokens } => {
                let mut tokens = lock(tokens);
                match tokens.get(user) {
                    Some(value) => value.clone(),
                    None => {
                        let token = signer
                            .token(user.as_str(), MINTED_TOKEN_LIFETIME)
                            .map_err(|e| VssError::internal(e.to_string()))?;
                        let value = HeaderValue::from_str(&format!("Bearer {token}"))
                            .map_err(|e| VssError::internal(format!("minted token: {e}")))?;
                        tokens.insert(user.clone(), value.clone());
                        value
                    }
                }
            }
            Users::Sigs { keys } => {
                let key = {
                    let mut keys = lock(keys);
                    match keys.get(user) {
                        Some(key) => *key,
                        None => {
                            let key = random_secret_key()?;
                            keys.insert(user.clone(), key);
                            key
                        }
                    }
                };
                let value = vss_auth::sign(&key, SystemClock.now_unix());
                HeaderValue::from_str(&value)
                    .map_err(|e| VssError::internal(format!("signature header: {e}")))?
            }
        };
        let mut authorization = authorization;
        authorization.set_sensitive(true);
        headers.insert(AUTHORIZATION, authorization);
        Ok(headers)
    }

    /// Posts `req` to `{base}/{operation}` as `user` and decodes the answer.
    pub async fn call<Req, Resp>(
        &self,
        user: &UserToken,
        operation: Operation,
        req: &Req,
    ) -> Result<Resp, VssError>
    where
        Req: Message,
        Resp: Message + Default,
    {
        let method = operation.name();
        let (status, headers, body) = self.exchange(user, operation, req).await?;
        decode_answer_with(method, status, &headers, body, self.require_protocol_header)
    }

    /// Posts `req` to `{base}/{operation}` as `user`: the answer's status,
    /// headers and body, unjudged.
    async fn exchange<Req: Message>(
        &self,
        user: &UserToken,
        operation: Operation,
        req: &Req,
    ) -> Result<(StatusCode, HeaderMap, Bytes), VssError> {
        let method = operation.name();
        match tokio::time::timeout(self.timeout, self.exchange_once(user, method, req)).await {
            Ok(result) => result,
            Err(_) => Err(VssError::internal(format!(
                "{method}: no answer within {:?}",
                self.timeout
            ))),
        }
    }

    async fn exchange_once<Req: Message>(
        &self,
        user: &UserToken,
        method: &str,
        req: &Req,
    ) -> Result<(StatusCode, HeaderMap, Bytes), VssError> {
        let url = format!("{}/{method}", self.base_url);
        let mut request = Request::post(&url)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(Full::new(Bytes::from(req.encode_to_vec())))
            .map_err(|e| VssError::internal(format!("{method}: cannot build request: {e}")))?;
        request.headers_mut().extend(self.headers_for(user)?);
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
        Ok((parts.status, parts.headers, body))
    }

    /// The rule [`PROTOCOL_HEADER_RULE`]: every answer, success or error,
    /// of every operation carries `vss-protocol-version: 0`. Makes seven
    /// calls in a fresh store (a missing key, a create, a read, a listing, a
    /// conflict, a deleteObject, an invalid put) and names each answer
    /// without the header. Judged the same whether or not the header is
    /// required ([`HttpStore::with_protocol_header_required`]).
    pub async fn check_protocol_header(&self) -> TestResult {
        let store = self.fresh();
        let user = vss_core::conformance::unique_user();
        let store_id = vss_core::conformance::unique_name("store");
        let key = |version: i64| KeyValue {
            key: "k".into(),
            version,
            value: Bytes::from_static(b"v"),
        };
        let put = |items: Vec<KeyValue>| PutObjectRequest {
            store_id: store_id.clone(),
            global_version: None,
            transaction_items: items,
            delete_items: vec![],
        };
        let get = GetObjectRequest {
            store_id: store_id.clone(),
            key: "k".into(),
        };
        let invalid = KeyValue {
            key: String::new(),
            ..key(0)
        };
        let calls = [
            (
                "getObject of a missing key",
                StatusCode::NOT_FOUND,
                store.exchange(&user, Operation::GetObject, &get).await,
            ),
            (
                "putObjects",
                StatusCode::OK,
                store
                    .exchange(&user, Operation::PutObjects, &put(vec![key(0)]))
                    .await,
            ),
            (
                "getObject",
                StatusCode::OK,
                store.exchange(&user, Operation::GetObject, &get).await,
            ),
            (
                "listKeyVersions",
                StatusCode::OK,
                store
                    .exchange(
                        &user,
                        Operation::ListKeyVersions,
                        &ListKeyVersionsRequest {
                            store_id: store_id.clone(),
                            ..Default::default()
                        },
                    )
                    .await,
            ),
            (
                "putObjects with a stale version",
                StatusCode::CONFLICT,
                store
                    .exchange(&user, Operation::PutObjects, &put(vec![key(0)]))
                    .await,
            ),
            (
                "deleteObject",
                StatusCode::OK,
                store
                    .exchange(
                        &user,
                        Operation::DeleteObject,
                        &DeleteObjectRequest {
                            store_id: store_id.clone(),
                            key_value: Some(key(-1)),
                        },
                    )
                    .await,
            ),
            (
                "putObjects of an empty key",
                StatusCode::BAD_REQUEST,
                store
                    .exchange(&user, Operation::PutObjects, &put(vec![invalid]))
                    .await,
            ),
        ];
        let mut wrong = Vec::new();
        let mut unexpected = Vec::new();
        for (what, expected, answer) in &calls {
            let (status, headers, _) = answer
                .as_ref()
                .map_err(|e| TestError::Failed(format!("{what}: no answer to judge: {e}")))?;
            match headers.get(PROTOCOL_VERSION_HEADER) {
                Some(v) if v == PROTOCOL_VERSION => {}
                Some(v) => wrong.push(format!(
                    "{what} ({status}) carries `{}`",
                    String::from_utf8_lossy(v.as_bytes())
                )),
                None => wrong.push(format!("{what} ({status}) has none")),
            }
            if status != expected {
                unexpected.push(format!("{what} answered {status}, expected {expected}"));
            }
        }
        let mut failures = Vec::new();
        if !wrong.is_empty() {
            failures.push(format!(
                "{} of {} answers lack `{PROTOCOL_VERSION_HEADER}: {PROTOCOL_VERSION}`: {}; \
                 vss-client-ng 0.6 and later refuse such answers (0.4, ldk-node 0.7's, does not check)",
                wrong.len(),
                calls.len(),
                wrong.join(", ")
            ));
        }
        if !failures.is_empty() {
            return Err(TestError::Failed(failures.join("; ")));
        }
        if !unexpected.is_empty() {
            // The header of the answers seen is right, but without every kind of
            // answer the rule cannot say that all carry it; the other rules judge
            // the statuses.
            return Err(TestError::Skipped(format!(
                "not every kind of answer was seen, so not every kind was judged: {}",
                unexpected.join(", ")
            )));
        }
        Ok(())
    }
}

/// A random secp256k1 secret key.
fn random_secret_key() -> Result<SecretKey, VssError> {
    let mut bytes = [0u8; 32];
    // All but a negligible share of 32-byte strings are keys.
    for _ in 0..8 {
        getrandom::fill(&mut bytes)
            .map_err(|e| VssError::internal(format!("the system's random source: {e}")))?;
        if let Ok(key) = SecretKey::from_slice(&bytes) {
            return Ok(key);
        }
    }
    Err(VssError::internal(
        "the system's random source made no valid secp256k1 key",
    ))
}

/// Checks one answer of the server against the wire contract and decodes it,
/// requiring the `vss-protocol-version` header: see [`decode_answer_with`].
pub fn decode_answer<Resp: Message + Default>(
    method: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Resp, VssError> {
    decode_answer_with(method, status, headers, body, true)
}

/// Checks one answer of the server against the wire contract and decodes it:
/// `Ok` for a 2xx with a valid body; the decoded error for a non-2xx whose
/// status matches its error code; [`VssError::Internal`] naming the violation
/// otherwise. A `vss-protocol-version` header other than `0` is a violation;
/// its absence is one only when `require_header`.
pub fn decode_answer_with<Resp: Message + Default>(
    method: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: Bytes,
    require_header: bool,
) -> Result<Resp, VssError> {
    let (name, expected) = (PROTOCOL_VERSION_HEADER, PROTOCOL_VERSION);
    match headers.get(name) {
        Some(v) if v == expected => {}
        None if !require_header => {}
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
        user: &UserToken,
        req: GetObjectRequest,
    ) -> Result<GetObjectResponse, VssError> {
        self.call(user, Operation::GetObject, &req).await
    }

    async fn put(
        &self,
        user: &UserToken,
        req: PutObjectRequest,
    ) -> Result<PutObjectResponse, VssError> {
        self.call(user, Operation::PutObjects, &req).await
    }

    async fn delete(
        &self,
        user: &UserToken,
        req: DeleteObjectRequest,
    ) -> Result<DeleteObjectResponse, VssError> {
        self.call(user, Operation::DeleteObject, &req).await
    }

    async fn list_key_versions(
        &self,
        user: &UserToken,
        req: ListKeyVersionsRequest,
    ) -> Result<ListKeyVersionsResponse, VssError> {
        self.call(user, Operation::ListKeyVersions, &req).await
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
