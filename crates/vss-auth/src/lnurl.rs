//! An LNURL-auth (LUD-04/LUD-05) login that hands out JWTs, as `vss-client-ng`'s
//! `LnurlAuthToJwtProvider` expects.
//!
//! Challenges are stateless, so any instance that shares the issuer key
//! answers a challenge another instance issued, and a flood of challenge
//! requests costs no memory: a `k1` is its expiry (8 bytes, big-endian Unix
//! seconds), 8 random bytes, and the first 16 bytes of an HMAC-SHA256 of those
//! 16 under a key derived from the issuer's signing key. Single use is kept in
//! the shared store ([`SpentChallenges`]): the first correctly signed answer
//! creates a record for its `k1` (a version-0 put, atomic on every backend),
//! and every later answer with that `k1`, at any instance, finds it there.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::header::{CONTENT_TYPE, HOST};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use jsonwebtoken::{EncodingKey, Header};
use secp256k1::ecdsa::Signature;
use secp256k1::{Message, PublicKey, Secp256k1, VerifyOnly};
use sha2::{Digest, Sha256};
use vss_core::proto::{DeleteObjectRequest, KeyValue, ListKeyVersionsRequest, PutObjectRequest};
use vss_core::{KvStore, UserToken, VssError};
use vss_http::Endpoint;

use crate::{Clock, JwtConfigError, JwtKey, SystemClock};

/// How long an issued token is valid, by default.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a challenge (`k1`) can be answered, by default.
pub const DEFAULT_CHALLENGE_TTL: Duration = Duration::from_secs(5 * 60);
/// The path the issuer is served on, by default.
pub const DEFAULT_LNURL_AUTH_PATH: &str = "/lnurl-auth";
/// The `kid` of issued tokens, so the JWT authorizer checks them with the issuer's key alone.
pub const LNURL_AUTH_KID: &str = "vss-lnurl-auth";
/// How long past its expiry the record of a spent challenge is kept before
/// [`SpentChallenges::sweep`] deletes it: instances whose clocks disagree by
/// less than this can never accept a replay of a swept challenge.
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(10 * 60);

/// The reserved user (see [`UserToken::reserved`]) that owns the records of spent challenges.
pub const SPENT_CHALLENGES_USER: &str = "lnurl-auth";
/// The store, of [`SPENT_CHALLENGES_USER`], holding one key per spent challenge (its hex).
pub const SPENT_CHALLENGES_STORE: &str = "spent-challenges";

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
    /// The `k1` was not issued under this issuer's key, or was used already.
    #[error("unknown or already used k1")]
    UnknownChallenge,
    /// The `k1` was issued too long ago.
    #[error("expired k1")]
    ExpiredChallenge,
    /// The signature is not `key`'s over `k1`.
    #[error("invalid signature")]
    BadSignature,
    /// The token could not be signed, or the store of spent challenges failed
    /// (logged; the client sees this text only, with status 500, and may retry
    /// with a new challenge).
    #[error("internal error")]
    Internal,
}

/// The records of spent challenges, in a store every instance shares.
///
/// A record is the key `hex(k1)` in [`SPENT_CHALLENGES_STORE`] of the reserved
/// user [`SPENT_CHALLENGES_USER`], created with version 0: of concurrent
/// answers with one `k1`, at one instance or several, exactly one creates it.
/// Its key begins with the challenge's expiry, so [`SpentChallenges::sweep`]
/// finds the records no answer can need any more.
#[derive(Clone)]
pub struct SpentChallenges {
    store: Arc<dyn KvStore>,
    user: UserToken,
}

impl std::fmt::Debug for SpentChallenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpentChallenges").finish_non_exhaustive()
    }
}

impl SpentChallenges {
    /// Records spent challenges in `store`: the store of the deployment, shared
    /// by every instance (a [`vss_core::MemoryStore`] for one process alone).
    pub fn new(store: Arc<dyn KvStore>) -> Result<Self, VssError> {
        Ok(SpentChallenges {
            store,
            user: UserToken::reserved(SPENT_CHALLENGES_USER)?,
        })
    }

    /// Records `k1` as spent: `Ok(true)` when this call spent it, `Ok(false)`
    /// when it was spent already; a store failure is an error (nothing is
    /// known about the challenge then, and the login must fail).
    pub async fn spend(&self, k1: &[u8; 32]) -> Result<bool, VssError> {
        let put = PutObjectRequest {
            store_id: SPENT_CHALLENGES_STORE.to_string(),
            global_version: None,
            transaction_items: vec![KeyValue {
                key: hex::encode(k1),
                version: 0,
                value: Bytes::new(),
            }],
            delete_items: Vec::new(),
        };
        match self.store.put(&self.user, put).await {
            Ok(_) => Ok(true),
            Err(VssError::Conflict(_)) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Deletes the records of challenges that expired more than
    /// [`CLOCK_SKEW_ALLOWANCE`] before `now` (Unix seconds); returns how many.
    pub async fn sweep(&self, now: u64) -> Result<usize, VssError> {
        let horizon = now.saturating_sub(CLOCK_SKEW_ALLOWANCE.as_secs());
        let mut stale = Vec::new();
        let mut page_token = None;
        loop {
            let page = self
                .store
                .list_key_versions(
                    &self.user,
                    ListKeyVersionsRequest {
                        store_id: SPENT_CHALLENGES_STORE.to_string(),
                        key_prefix: None,
                        page_size: None,
                        page_token: page_token.take(),
                    },
                )
                .await?;
            for item in page.key_versions {
                // A key that is not a challenge's hex is not ours to judge: it stays.
                let expiry = hex::decode(&item.key)
                    .ok()
                    .and_then(|k1| <[u8; 32]>::try_from(k1).ok())
                    .map(|k1| challenge_expiry(&k1));
                if expiry.is_some_and(|expiry| expiry < horizon) {
                    stale.push(item.key);
                }
            }
            match page.next_page_token {
                Some(next) if !next.is_empty() => page_token = Some(next),
                _ => break,
            }
        }
        for key in &stale {
            self.store
                .delete(
                    &self.user,
                    DeleteObjectRequest {
                        store_id: SPENT_CHALLENGES_STORE.to_string(),
                        key_value: Some(KeyValue {
                            key: key.clone(),
                            version: -1,
                            value: Bytes::new(),
                        }),
                    },
                )
                .await?;
        }
        Ok(stale.len())
    }
}

/// The expiry a challenge carries (its first 8 bytes, big-endian Unix seconds).
fn challenge_expiry(k1: &[u8; 32]) -> u64 {
    let mut expiry = [0u8; 8];
    expiry.copy_from_slice(&k1[..8]);
    u64::from_be_bytes(expiry)
}

/// Serves LNURL-auth on one path: a GET without `k1` answers, as plain text,
/// the callback URL with a fresh challenge (`?tag=login&k1=<64 hex>`); a GET
/// with `k1`, `sig` (DER ECDSA signature of `k1`, hex) and `key` (compressed
/// public key, hex) answers `{"status":"OK","token":"<jwt>"}` with `sub` =
/// `key`, or `{"status":"ERROR","reason":"..."}` with status 400. A `k1`
/// expires, and is spent by the first correctly signed answer at any instance
/// sharing the key and the store.
pub struct LnurlAuthIssuer {
    config: LnurlAuthConfig,
    signing: EncodingKey,
    public: JwtKey,
    secp: Secp256k1<VerifyOnly>,
    clock: Arc<dyn Clock>,
    /// The MAC of challenges, keyed and ready to be cloned for each use.
    mac: Hmac<Sha256>,
    spent: SpentChallenges,
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
    /// Ed25519, PKCS#8 or PKCS#1 PEM), recording spent challenges in `spent`.
    /// Instances given the same key and a store shared through `spent` answer
    /// each other's challenges.
    pub fn new(
        private_pem: &str,
        config: LnurlAuthConfig,
        spent: SpentChallenges,
    ) -> Result<Self, JwtConfigError> {
        let public = Self::verification_key_of(private_pem)?;
        let (_, signing) = JwtKey::from_private_pem(private_pem)?;
        Ok(LnurlAuthIssuer {
            config,
            signing,
            public,
            secp: Secp256k1::verification_only(),
            clock: Arc::new(SystemClock),
            mac: <Hmac<Sha256> as Mac>::new_from_slice(&challenge_key(private_pem))
                .map_err(|err| JwtConfigError::InvalidKey(err.to_string()))?,
            spent,
        })
    }

    /// The key that verifies the tokens an issuer with `private_pem` signs,
    /// known before the issuer exists (the JWT authorizer is built first).
    pub fn verification_key_of(private_pem: &str) -> Result<JwtKey, JwtConfigError> {
        let (public, _) = JwtKey::from_private_pem(private_pem)?;
        // Its tokens name the linking key whose holder signed the challenge.
        Ok(public.with_kid(LNURL_AUTH_KID).with_key_holder_subjects())
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

    /// Deletes the records of spent challenges that no answer can need any
    /// more (see [`SpentChallenges::sweep`]); returns how many. Run it about
    /// once per challenge lifetime; with several instances, any may.
    pub async fn sweep(&self) -> Result<usize, VssError> {
        self.spent.sweep(self.clock.now_unix()).await
    }

    fn mac(&self, expiry_and_nonce: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(expiry_and_nonce);
        mac
    }

    /// A fresh challenge: its expiry, 8 random bytes and their MAC. Nothing is remembered.
    pub fn new_challenge(&self) -> Result<[u8; 32], LoginError> {
        let mut k1 = [0u8; 32];
        let expires = self
            .clock
            .now_unix()
            .saturating_add(self.config.challenge_ttl.as_secs());
        k1[..8].copy_from_slice(&expires.to_be_bytes());
        getrandom::fill(&mut k1[8..16]).map_err(|err| {
            tracing::error!(error = %err, "no randomness for an LNURL-auth challenge");
            LoginError::Internal
        })?;
        let tag = self.mac(&k1[..16]).finalize().into_bytes();
        k1[16..].copy_from_slice(&tag[..16]);
        Ok(k1)
    }

    /// The expiry of `k1` when this issuer's key made it.
    fn verified_expiry(&self, k1: &[u8; 32]) -> Result<u64, LoginError> {
        self.mac(&k1[..16])
            .verify_truncated_left(&k1[16..])
            .map_err(|_| LoginError::UnknownChallenge)?;
        Ok(challenge_expiry(k1))
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
    pub async fn login(&self, k1: &str, sig: &str, key: &str) -> Result<String, LoginError> {
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

        let expires = self.verified_expiry(&k1)?;
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
        // Single use, across instances: only a signed answer writes, so
        // unsigned guesses cost the store nothing.
        match self.spent.spend(&k1).await {
            Ok(true) => {}
            Ok(false) => return Err(LoginError::UnknownChallenge),
            Err(err) => {
                tracing::error!(error = %err, "recording a spent LNURL-auth challenge failed");
                return Err(LoginError::Internal);
            }
        }

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

    async fn answer(&self, request: &Parts) -> Result<Response<Full<Bytes>>, LoginError> {
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
        let token = self.login(k1, sig, key).await?;
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
        match self.answer(request).await {
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

    /// An answer (a request with `k1`) may record a spent challenge: a write.
    /// Asking for a challenge writes nothing.
    fn writes(&self, request: &Parts) -> bool {
        let query = request.uri.query().unwrap_or("");
        form_urlencoded::parse(query.as_bytes()).any(|(name, _)| name == "k1")
    }
}

/// The MAC key of challenges: SHA-256 of a label and the signing key's PEM
/// without its whitespace, so every instance given the same key file (however
/// its lines are wrapped) derives the same key, and nobody without it can.
fn challenge_key(private_pem: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"vss-lnurl-auth challenge key v1\0");
    for line in private_pem.split_whitespace() {
        hash.update(line.as_bytes());
    }
    hash.finalize().into()
}
