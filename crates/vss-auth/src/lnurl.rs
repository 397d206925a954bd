//! An LNURL-auth (LUD-04/LUD-05) login that hands out JWTs, as `vss-client-ng`'s
//! `LnurlAuthToJwtProvider` expects.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use jsonwebtoken::{EncodingKey, Header};
use secp256k1::ecdsa::Signature;
use secp256k1::{Message, PublicKey, Secp256k1, VerifyOnly};
use vss_http::Endpoint;

use crate::{Clock, JwtConfigError, JwtKey, SystemClock};

/// How long an issued token is valid, by default.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a challenge (`k1`) can be answered, by default.
pub const DEFAULT_CHALLENGE_TTL: Duration = Duration::from_secs(5 * 60);
/// How many unanswered challenges are kept, by default; beyond it the oldest go.
pub const DEFAULT_MAX_CHALLENGES: usize = 10_000;
/// The path the issuer is served on, by default.
pub const DEFAULT_LNURL_AUTH_PATH: &str = "/lnurl-auth";
/// The `kid` of issued tokens, so the JWT authorizer checks them with the issuer's key alone.
pub const LNURL_AUTH_KID: &str = "vss-lnurl-auth";

/// How the issuer works.
#[derive(Debug, Clone)]
pub struct LnurlAuthConfig {
    /// The URL clients are given to call back, e.g. `https://vss.example.com/lnurl-auth`
    /// (the issuer's own public URL). `None`: `http://` + the request's `Host` + `path`.
    /// LUD-05 linking keys depend on this host, so keep it stable.
    pub public_url: Option<String>,
    /// The path the issuer is served on (for the `Host`-derived URL).
    pub path: String,
    /// Lifetime of an issued token (`exp` = now + this).
    pub token_ttl: Duration,
    /// How long a challenge can be answered.
    pub challenge_ttl: Duration,
    /// The most unanswered challenges kept.
    pub max_challenges: usize,
    /// The `iss` stamped into tokens, if any.
    pub issuer: Option<String>,
    /// The `aud` stamped into tokens, if any.
    pub audience: Option<String>,
}

impl Default for LnurlAuthConfig {
    fn default() -> Self {
        LnurlAuthConfig {
            public_url: None,
            path: DEFAULT_LNURL_AUTH_PATH.to_string(),
            token_ttl: DEFAULT_TOKEN_TTL,
            challenge_ttl: DEFAULT_CHALLENGE_TTL,
            max_challenges: DEFAULT_MAX_CHALLENGES,
            issuer: None,
            audience: None,
        }
    }
}

/// Why a login was refused; the text is sent to the client as `reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// A parameter is missing or malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The `k1` was never issued, was used already, or was evicted.
    #[error("unknown or already used k1")]
    UnknownChallenge,
    /// The `k1` was issued too long ago.
    #[error("expired k1")]
    ExpiredChallenge,
    /// The signature is not `key`'s over `k1`.
    #[error("invalid signature")]
    BadSignature,
    /// The token could not be signed (logged; the client sees this text only).
    #[error("internal error")]
    Internal,
}

#[derive(Default)]
struct Challenges {
    expiry: HashMap<[u8; 32], u64>,
    order: VecDeque<[u8; 32]>,
}

/// Serves LNURL-auth on one path: a GET without `k1` answers, as plain text,
/// the callback URL with a fresh challenge (`?tag=login&k1=<64 hex>`); a GET
/// with `k1`, `sig` (DER ECDSA signature of `k1`, hex) and `key` (compressed
/// public key, hex) answers `{"status":"OK","token":"<jwt>"}` with `sub` =
/// `key`, or `{"status":"ERROR","reason":"..."}` with status 400. Each `k1`
/// is single-use (consumed by any attempt) and expires.
pub struct LnurlAuthIssuer {
    config: LnurlAuthConfig,
    signing: EncodingKey,
    public: JwtKey,
    secp: Secp256k1<VerifyOnly>,
    clock: Arc<dyn Clock>,
    challenges: Mutex<Challenges>,
}

impl std::fmt::Debug for LnurlAuthIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LnurlAuthIssuer")
            .field("config", &self.config)
            .field("key", &self.public)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    sub: String,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

impl LnurlAuthIssuer {
    /// An issuer signing tokens with `private_pem` (RSA ≥ 2048 bits, EC P-256 or
    /// Ed25519, PKCS#8 or PKCS#1 PEM).
    pub fn new(private_pem: &str, config: LnurlAuthConfig) -> Result<Self, JwtConfigError> {
        let (public, signing) = JwtKey::from_private_pem(private_pem)?;
        Ok(LnurlAuthIssuer {
            config,
            signing,
            public: public.with_kid(LNURL_AUTH_KID),
            secp: Secp256k1::verification_only(),
            clock: Arc::new(SystemClock),
            challenges: Mutex::new(Challenges::default()),
        })
    }

    /// Reads the time from `clock` instead of the system's.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The key that verifies issued tokens: add it to the JWT authorizer.
    pub fn verification_key(&self) -> JwtKey {
        self.public.clone()
    }

    /// How the issuer works.
    pub fn config(&self) -> &LnurlAuthConfig {
        &self.config
    }

    /// How many challenges are outstanding (expired ones may still count until pruned).
    pub fn outstanding(&self) -> usize {
        self.lock().expiry.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Challenges> {
        // The map stays consistent even if a holder panicked: every update is one insert or remove.
        self.challenges
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A fresh challenge: 32 random bytes, remembered until answered or expired.
    pub fn new_challenge(&self) -> Result<[u8; 32], LoginError> {
        let mut k1 = [0u8; 32];
        getrandom::fill(&mut k1).map_err(|err| {
            tracing::error!(error = %err, "no randomness for an LNURL-auth challenge");
            LoginError::Internal
        })?;
        let now = self.clock.now_unix();
        let expires = now.saturating_add(self.config.challenge_ttl.as_secs());
        let mut challenges = self.lock();
        // Drop expired challenges from the front, then the oldest while full.
        while let Some(front) = challenges.order.front().copied() {
            let expired = challenges.expiry.get(&front).is_none_or(|&e| e < now);
            let full = challenges.expiry.len() >= self.config.max_challenges.max(1);
            if !(expired || full) {
                break;
            }
            challenges.order.pop_front();
            challenges.expiry.remove(&front);
        }
        challenges.expiry.insert(k1, expires);
        challenges.order.push_back(k1);
        Ok(k1)
    }

    /// The callback URL carrying challenge `k1`, for a request that reached `host`.
    pub fn callback_url(&self, host: Option<&str>, k1: &[u8; 32]) -> Result<String, LoginError> {
        let base = match (&self.config.public_url, host) {
            (Some(url), _) => url.clone(),
            (None, Some(host)) => format!("http://{host}{}", self.config.path),
            (None, None) => {
                return Err(LoginError::BadRequest(
                    "no Host header and no public URL configured".into(),
                ))
            }
        };
        let separator = if base.contains('?') { '&' } else { '?' };
        Ok(format!("{base}{separator}tag=login&k1={}", hex::encode(k1)))
    }

    /// Checks an answered challenge and issues a token for `key`.
    pub fn login(&self, k1: &str, sig: &str, key: &str) -> Result<String, LoginError> {
        let k1: [u8; 32] = hex::decode(k1)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| LoginError::BadRequest("k1 is not 64 hex characters".into()))?;
        let signature = hex::decode(sig)
            .ok()
            .and_then(|der| Signature::from_der(&der).ok())
            .ok_or_else(|| LoginError::BadRequest("sig is not a hex DER signature".into()))?;
        let key_bytes = hex::decode(key)
            .ok()
            .filter(|b| b.len() == 33)
            .ok_or_else(|| {
                LoginError::BadRequest("key is not a 33-byte compressed public key in hex".into())
            })?;
        let pubkey = PublicKey::from_slice(&key_bytes).map_err(|_| {
            LoginError::BadRequest("key is not a 33-byte compressed public key in hex".into())
        })?;

        // Single use: whatever happens next, this k1 is spent.
        let expires = {
            let mut challenges = self.lock();
            challenges.expiry.remove(&k1)
        }
        .ok_or(LoginError::UnknownChallenge)?;
        let now = self.clock.now_unix();
        if now > expires {
            return Err(LoginError::ExpiredChallenge);
        }
        // Signers may produce high-S signatures; libsecp256k1 verifies low-S only.
        let mut signature = signature;
        signature.normalize_s();
        self.secp
            .verify_ecdsa(&Message::from_digest(k1), &signature, &pubkey)
            .map_err(|_| LoginError::BadSignature)?;

        let claims = Claims {
            sub: hex::encode(key_bytes),
            iat: now,
            exp: now.saturating_add(self.config.token_ttl.as_secs()),
            iss: self.config.issuer.as_deref(),
            aud: self.config.audience.as_deref(),
        };
        let mut header = Header::new(self.public.algorithm());
        header.kid = Some(LNURL_AUTH_KID.to_string());
        jsonwebtoken::encode(&header, &claims, &self.signing).map_err(|err| {
            tracing::error!(error = %err, "signing an LNURL-auth token failed");
            LoginError::Internal
        })
    }

    fn answer(&self, request: &Parts) -> Result<Response<Full<Bytes>>, LoginError> {
        if request.method != Method::GET {
            return Err(LoginError::BadRequest("use GET".into()));
        }
        let query = request.uri.query().unwrap_or("");
        let mut params: HashMap<String, String> = HashMap::new();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if params.insert(name.to_string(), value.to_string()).is_some() {
                return Err(LoginError::BadRequest(format!("`{name}` given twice")));
            }
        }
        let Some(k1) = params.get("k1") else {
            let host = request.headers.get(HOST).and_then(|h| h.to_str().ok());
            let k1 = self.new_challenge()?;
            let url = self.callback_url(host, &k1)?;
            return Ok(respond(StatusCode::OK, "text/plain; charset=utf-8", url));
        };
        let (Some(sig), Some(key)) = (params.get("sig"), params.get("key")) else {
            return Err(LoginError::BadRequest("k1 needs sig and key".into()));
        };
        let token = self.login(k1, sig, key)?;
        // The user (the linking key) is never logged: logs hold no user tokens.
        tracing::info!("LNURL-auth login");
        Ok(respond(
            StatusCode::OK,
            "application/json",
            serde_json::json!({ "status": "OK", "token": token }).to_string(),
        ))
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    response
}

#[async_trait]
impl Endpoint for LnurlAuthIssuer {
    async fn respond(&self, request: &Parts) -> Response<Full<Bytes>> {
        match self.answer(request) {
            Ok(response) => response,
            Err(err) => {
                tracing::debug!(reason = %err, "LNURL-auth refused");
                crate::record_failure("lnurl");
                let status = match err {
                    LoginError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                    _ => StatusCode::BAD_REQUEST,
                };
                respond(
                    status,
                    "application/json",
                    serde_json::json!({ "status": "ERROR", "reason": err.to_string() }).to_string(),
                )
            }
        }
    }
}
