//! JWT bearer tokens: RS256 as the reference server checks them, plus
//! RS384/RS512/PS256/PS384/PS512 for RSA keys configured for them, ES256 and
//! EdDSA, several keys at once for rotation. Times are judged by a [`Clock`],
//! so tests move time instead of minting tokens for the wall clock.

use std::sync::Arc;

use async_trait::async_trait;
use http::HeaderMap;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::RsaPublicKey;
use vss_core::{UserToken, VssError};
use vss_http::{bearer_token, Authorizer};

use crate::{Clock, SystemClock};

/// The smallest RSA key accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// Clock skew allowed when checking `exp` and `nbf`, in seconds.
pub const JWT_LEEWAY_SECS: u64 = 60;

/// Why a JWT key or setting was refused at configuration time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtConfigError {
    /// The text is not a supported key in PEM form.
    #[error("not a supported key in PEM form: {0}")]
    InvalidKey(String),
    /// An RSA key is shorter than [`MIN_RSA_BITS`].
    #[error("the RSA key has {bits} bits; at least {MIN_RSA_BITS} are required")]
    KeyTooSmall {
        /// The key's modulus size in bits.
        bits: usize,
    },
    /// An empty audience was configured.
    #[error("the JWT audience must not be empty")]
    EmptyAudience,
    /// An empty issuer was configured.
    #[error("the JWT issuer must not be empty")]
    EmptyIssuer,
    /// No key was given.
    #[error("no JWT verification key was given")]
    NoKeys,
    /// An algorithm the key cannot verify, or not known.
    #[error("{0}")]
    Algorithm(String),
    /// A token could not be signed.
    #[error("signing a JWT failed: {0}")]
    Signing(String),
}

/// One key that verifies tokens, bound to the algorithms its configuration
/// allows, all of its own type: RSA → RS256 (or any of RS256, RS384, RS512,
/// PS256, PS384, PS512 when configured with [`JwtKey::with_algorithms`]), EC
/// P-256 → ES256, Ed25519 → EdDSA. The token's own `alg` only picks among
/// those: a token whose `alg` is not one of them is refused.
#[derive(Clone)]
pub struct JwtKey {
    kid: Option<String>,
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
    key_holder_subjects: bool,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .field("key_holder_subjects", &self.key_holder_subjects)
            .finish_non_exhaustive()
    }
}

/// Signs tokens that a [`JwtAuthorizer`] holding the matching public key
/// accepts: `sub` is the user, `exp` ends the token's lifetime, and `aud`,
/// `iss` and the header's `kid` are set when given (for an authorizer that
/// requires them). For tools and tests that act as many users
/// (vss-conformance, vss-bench, vss-testkit); an issuer in production sets its
/// own claims (see [`crate::LnurlAuthIssuer`]).
pub struct JwtSigner {
    key: JwtKey,
    signing: EncodingKey,
    audience: Option<String>,
    issuer: Option<String>,
    kid: Option<String>,
}

impl std::fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key is never printed.
        f.debug_struct("JwtSigner")
            .field("algorithm", &self.key.algorithm())
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl JwtSigner {
    /// A signer of the private key in `pem` (as [`JwtKey::from_private_pem`]
    /// takes it: RSA of at least [`MIN_RSA_BITS`] bits → RS256, EC P-256 →
    /// ES256, Ed25519 → EdDSA).
    pub fn from_private_pem(pem: &str) -> Result<JwtSigner, JwtConfigError> {
        let (key, signing) = JwtKey::from_private_pem(pem)?;
        Ok(JwtSigner {
            key,
            signing,
            audience: None,
            issuer: None,
            kid: None,
        })
    }

    /// Puts `aud` in every token (for [`JwtAuthorizer::with_audience`]).
    pub fn with_audience(mut self, audience: &str) -> Result<Self, JwtConfigError> {
        self.audience = Some(non_empty(audience, JwtConfigError::EmptyAudience)?);
        Ok(self)
    }

    /// Puts `iss` in every token (for [`JwtAuthorizer::with_issuer`]).
    pub fn with_issuer(mut self, issuer: &str) -> Result<Self, JwtConfigError> {
        self.issuer = Some(non_empty(issuer, JwtConfigError::EmptyIssuer)?);
        Ok(self)
    }

    /// Names the key in every token's header (`kid`, for an authorizer whose
    /// keys are named: [`JwtKey::with_kid`]).
    pub fn with_kid(mut self, kid: &str) -> Self {
        self.kid = Some(kid.to_string());
        self
    }

    /// The public key that verifies this signer's tokens.
    pub fn verification_key(&self) -> &JwtKey {
        &self.key
    }

    /// A token for the user `sub`, valid from now (the system clock) for `lifetime`.
    pub fn token(
        &self,
        sub: &str,
        lifetime: std::time::Duration,
    ) -> Result<String, JwtConfigError> {
        let exp = SystemClock.now_unix().saturating_add(lifetime.as_secs());
        let mut claims = serde_json::json!({ "sub": sub, "exp": exp });
        if let Some(audience) = &self.audience {
            claims["aud"] = audience.as_str().into();
        }
        if let Some(issuer) = &self.issuer {
            claims["iss"] = issuer.as_str().into();
        }
        let mut header = jsonwebtoken::Header::new(self.key.algorithm());
        header.kid = self.kid.clone();
        jsonwebtoken::encode(&header, &claims, &self.signing)
            .map_err(|e| JwtConfigError::Signing(e.to_string()))
    }
}

/// `text`, unless it is empty (then `empty`): audiences and issuers.
fn non_empty(text: &str, empty: JwtConfigError) -> Result<String, JwtConfigError> {
    if text.is_empty() {
        Err(empty)
    } else {
        Ok(text.to_string())
    }
}

/// The algorithms of RSA keys.
const RSA_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// Whether `sub` has the form of a secp256k1 public key as signature auth
/// and LNURL-auth name their users: 33 bytes in hex (66 characters, either
/// case), starting with `02` or `03`.
pub(crate) fn is_public_key_form(sub: &str) -> bool {
    sub.len() == crate::sigs::PUBKEY_HEX
        && (sub.starts_with("02") || sub.starts_with("03"))
        && sub.bytes().all(|b| b.is_ascii_hexdigit())
}

impl JwtKey {
    /// One public key in PEM form: RSA (SPKI `BEGIN PUBLIC KEY` or PKCS#1
    /// `BEGIN RSA PUBLIC KEY`, at least [`MIN_RSA_BITS`] bits), EC P-256 or
    /// Ed25519 (SPKI).
    pub fn from_public_pem(pem: &str) -> Result<JwtKey, JwtConfigError> {
        let pem = pem.trim();
        let bytes = pem.as_bytes();
        if let Ok(key) = DecodingKey::from_rsa_pem(bytes) {
            check_rsa_public_pem(pem)?;
            return Ok(JwtKey::new(Algorithm::RS256, key));
        }
        if let Ok(key) = DecodingKey::from_ec_pem(bytes) {
            // The content is the uncompressed point: 65 bytes on P-256 only.
            return match key.try_get_as_bytes() {
                Ok(point) if point.len() == 65 => Ok(JwtKey::new(Algorithm::ES256, key)),
                _ => Err(JwtConfigError::InvalidKey(
                    "an EC key must be on the P-256 curve (ES256)".into(),
                )),
            };
        }
        if let Ok(key) = DecodingKey::from_ed_pem(bytes) {
            return Ok(JwtKey::new(Algorithm::EdDSA, key));
        }
        Err(JwtConfigError::InvalidKey(
            "expected an RSA, EC P-256 or Ed25519 public key (`BEGIN PUBLIC KEY` or \
             `BEGIN RSA PUBLIC KEY`)"
                .into(),
        ))
    }

    /// The public half of a private key in PEM form (PKCS#8 `BEGIN PRIVATE KEY`,
    /// or PKCS#1 `BEGIN RSA PRIVATE KEY`), with the key that signs and its algorithm.
    pub fn from_private_pem(pem: &str) -> Result<(JwtKey, EncodingKey), JwtConfigError> {
        let bytes = pem.trim().as_bytes();
        let invalid = |e: jsonwebtoken::errors::Error| JwtConfigError::InvalidKey(e.to_string());
        let (algorithm, signing) = if let Ok(key) = EncodingKey::from_rsa_pem(bytes) {
            (Algorithm::RS256, key)
        } else if let Ok(key) = EncodingKey::from_ec_pem(bytes) {
            (Algorithm::ES256, key)
        } else if let Ok(key) = EncodingKey::from_ed_pem(bytes) {
            (Algorithm::EdDSA, key)
        } else {
            return Err(JwtConfigError::InvalidKey(
                "expected an RSA, EC P-256 or Ed25519 private key (`BEGIN PRIVATE KEY` or \
                 `BEGIN RSA PRIVATE KEY`)"
                    .into(),
            ));
        };
        let jwk = Jwk::from_encoding_key(&signing, algorithm).map_err(invalid)?;
        match &jwk.algorithm {
            AlgorithmParameters::EllipticCurve(ec) if ec.curve != EllipticCurve::P256 => {
                return Err(JwtConfigError::InvalidKey(
                    "an EC key must be on the P-256 curve (ES256)".into(),
                ))
            }
            AlgorithmParameters::RSA(rsa) => {
                use base64::Engine as _;
                let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(&rsa.n)
                    .map_err(|e| JwtConfigError::InvalidKey(e.to_string()))?;
                let bits = rsa::BigUint::from_bytes_be(&n).bits();
                if bits < MIN_RSA_BITS {
                    return Err(JwtConfigError::KeyTooSmall { bits });
                }
            }
            _ => {}
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(invalid)?;
        Ok((JwtKey::new(algorithm, key), signing))
    }

    /// Every public key in `text`, which holds one or more PEM blocks. Lines
    /// just before a block describe that key: `kid: NAME` names it (a token
    /// whose header carries that `kid` is checked with that key only), and
    /// `alg: PS256, RS256` sets the algorithms it verifies (see
    /// [`JwtKey::with_algorithms`]; default RS256 for RSA keys).
    pub fn parse_public_pems(text: &str) -> Result<Vec<JwtKey>, JwtConfigError> {
        let mut keys = Vec::new();
        let mut kid: Option<String> = None;
        let mut algorithms: Option<Vec<Algorithm>> = None;
        let mut block: Option<String> = None;
        for line in text.lines() {
            let line = line.trim();
            if let Some(current) = block.as_mut() {
                current.push_str(line);
                current.push('\n');
                if line.starts_with("-----END ") {
                    let pem = block.take().unwrap_or_default();
                    let mut key = JwtKey::from_public_pem(&pem)?;
                    if let Some(kid) = kid.take() {
                        key = key.with_kid(kid);
                    }
                    if let Some(algorithms) = algorithms.take() {
                        key = key.with_algorithms(&algorithms)?;
                    }
                    keys.push(key);
                }
            } else if line.starts_with("-----BEGIN ") {
                block = Some(format!("{line}\n"));
            } else if let Some(name) = line.strip_prefix("kid:") {
                let name = name.trim();
                if name.is_empty() {
                    return Err(JwtConfigError::InvalidKey("an empty `kid:` label".into()));
                }
                kid = Some(name.to_string());
            } else if let Some(names) = line.strip_prefix("alg:") {
                algorithms = Some(parse_algorithms(names)?);
            } else if !line.is_empty() && !line.starts_with('#') {
                return Err(JwtConfigError::InvalidKey(
                    "text outside PEM blocks must be `kid: NAME`, `alg: NAMES` or a `#` comment"
                        .into(),
                ));
            }
        }
        if block.is_some() {
            return Err(JwtConfigError::InvalidKey(
                "a PEM block has no END line".into(),
            ));
        }
        if keys.is_empty() {
            return Err(JwtConfigError::InvalidKey("no PEM block found".into()));
        }
        Ok(keys)
    }

    fn new(algorithm: Algorithm, key: DecodingKey) -> JwtKey {
        JwtKey {
            kid: None,
            algorithms: vec![algorithm],
            key,
            key_holder_subjects: false,
        }
    }

    /// Verifies tokens signed with any of `algorithms` (instead of the key's
    /// default), which must all be of the key's type: for an RSA key any of
    /// RS256, RS384, RS512, PS256, PS384, PS512; an EC P-256 key only ES256,
    /// an Ed25519 key only EdDSA.
    pub fn with_algorithms(mut self, algorithms: &[Algorithm]) -> Result<JwtKey, JwtConfigError> {
        let default = self.algorithm();
        let family: &[Algorithm] = if RSA_ALGORITHMS.contains(&default) {
            &RSA_ALGORITHMS
        } else {
            std::slice::from_ref(&self.algorithms[0])
        };
        if algorithms.is_empty() {
            return Err(JwtConfigError::Algorithm(
                "name at least one JWT algorithm".into(),
            ));
        }
        if let Some(other) = algorithms.iter().find(|a| !family.contains(a)) {
            return Err(JwtConfigError::Algorithm(format!(
                "{} key cannot verify {other:?} tokens (it can: {})",
                key_type(default),
                family
                    .iter()
                    .map(|a| format!("{a:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut chosen = algorithms.to_vec();
        chosen.dedup();
        self.algorithms = chosen;
        Ok(self)
    }

    /// Marks this key's issuer as one that puts in `sub` only secp256k1
    /// public keys whose holder it has verified (an LNURL-auth server, as
    /// [`crate::LnurlAuthIssuer`]). Only such keys' tokens may name the users
    /// of signature auth when [`JwtAuthorizer::with_key_users_reserved`] is on.
    pub fn with_key_holder_subjects(mut self) -> JwtKey {
        self.key_holder_subjects = true;
        self
    }

    /// Whether this key's tokens may name users by public key (see
    /// [`JwtKey::with_key_holder_subjects`]).
    pub fn key_holder_subjects(&self) -> bool {
        self.key_holder_subjects
    }

    /// Names this key: tokens with this `kid` are checked with it alone.
    pub fn with_kid(mut self, kid: impl Into<String>) -> JwtKey {
        self.kid = Some(kid.into());
        self
    }

    /// The key's name, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The key's first algorithm: the one it signs with (for a private key)
    /// and, unless configured otherwise, the only one it verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithms[0]
    }

    /// Every algorithm this key verifies.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }
}

fn key_type(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::ES256 | Algorithm::ES384 => "an EC",
        Algorithm::EdDSA => "an Ed25519",
        _ => "an RSA",
    }
}

/// The algorithms of an `alg:` line: names separated by commas or spaces.
fn parse_algorithms(names: &str) -> Result<Vec<Algorithm>, JwtConfigError> {
    names
        .split([',', ' '])
        .filter(|name| !name.is_empty())
        .map(|name| {
            name.parse::<Algorithm>().map_err(|_| {
                JwtConfigError::Algorithm(format!(
                    "unknown JWT algorithm `{name}` (RSA keys: RS256, RS384, RS512, PS256, \
                     PS384, PS512; EC P-256: ES256; Ed25519: EdDSA)"
                ))
            })
        })
        .collect()
}

fn check_rsa_public_pem(pem: &str) -> Result<(), JwtConfigError> {
    let public = RsaPublicKey::from_public_key_pem(pem)
        .map_err(|e| e.to_string())
        .or_else(|spki_err| {
            RsaPublicKey::from_pkcs1_pem(pem)
                .map_err(|pkcs1_err| format!("as SPKI: {spki_err}; as PKCS#1: {pkcs1_err}"))
        })
        .map_err(JwtConfigError::InvalidKey)?;
    let bits = public.n().bits();
    if bits < MIN_RSA_BITS {
        return Err(JwtConfigError::KeyTooSmall { bits });
    }
    Ok(())
}

/// `Authorization: Bearer <jwt>`, verified by one of a set of keys.
///
/// The token's `sub` claim is the user; `exp` is required, and `nbf` checked
/// when present, both with [`JWT_LEEWAY_SECS`] of leeway against the
/// authorizer's [`Clock`] (the system's unless [`JwtAuthorizer::with_clock`]);
/// a token carrying `aud` is refused unless an audience is configured, and
/// must then name it; with an issuer configured, `iss` is required and must
/// match. Each key fixes its algorithm (see [`JwtKey`]), so `alg: none`, HMAC
/// and any algorithm other than the key's are refused. A token whose `kid`
/// names a configured key is checked with that key only; any other token is
/// tried against every key (rotation: old and new keys side by side).
///
/// With [`JwtAuthorizer::with_key_users_reserved`] (a server that also serves
/// signature auth), or when one of its keys is marked
/// [`JwtKey::with_key_holder_subjects`] (LNURL-auth's), a token whose `sub` has
/// the form of a secp256k1 public key is refused unless such a marked key
/// verified it: an external issuer's subject can never name a user whose
/// identity is a public key.
#[derive(Clone)]
pub struct JwtAuthorizer {
    keys: Vec<JwtKey>,
    audience: Option<String>,
    issuer: Option<String>,
    clock: Arc<dyn Clock>,
    key_users_reserved: bool,
}

impl std::fmt::Debug for JwtAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthorizer")
            .field("keys", &self.keys)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("key_users_reserved", &self.key_users_reserved)
            .finish_non_exhaustive()
    }
}

/// The claims this authorizer reads. jsonwebtoken checks that `exp` and `sub`
/// are present (and `iss` when required); the times are judged here, by the clock.
#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
}

impl JwtAuthorizer {
    /// Verifies tokens with the given keys (at least one).
    pub fn new(keys: Vec<JwtKey>) -> Result<Self, JwtConfigError> {
        if keys.is_empty() {
            return Err(JwtConfigError::NoKeys);
        }
        Ok(JwtAuthorizer {
            keys,
            audience: None,
            issuer: None,
            clock: Arc::new(SystemClock),
            key_users_reserved: false,
        })
    }

    /// Verifies RS256 tokens with one RSA public key of at least
    /// [`MIN_RSA_BITS`] bits, in PEM form (SPKI or PKCS#1): the reference
    /// server's configuration.
    pub fn from_rsa_pem(pem: &str) -> Result<Self, JwtConfigError> {
        let key = JwtKey::from_public_pem(pem)?;
        if key.algorithm() != Algorithm::RS256 {
            return Err(JwtConfigError::InvalidKey(
                "not an RSA public key (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`)".into(),
            ));
        }
        Self::new(vec![key])
    }

    /// Verifies tokens with every public key in `text` (see [`JwtKey::parse_public_pems`]).
    pub fn from_public_pems(text: &str) -> Result<Self, JwtConfigError> {
        Self::new(JwtKey::parse_public_pems(text)?)
    }

    /// Adds a key (for example the public half of a token issuer's key).
    pub fn with_key(mut self, key: JwtKey) -> Self {
        self.keys.push(key);
        self
    }

    /// Accepts tokens whose `aud` names `audience` (tokens without `aud` stay accepted).
    pub fn with_audience(mut self, audience: &str) -> Result<Self, JwtConfigError> {
        self.audience = Some(non_empty(audience, JwtConfigError::EmptyAudience)?);
        Ok(self)
    }

    /// Requires `iss` to be `issuer`.
    pub fn with_issuer(mut self, issuer: &str) -> Result<Self, JwtConfigError> {
        self.issuer = Some(non_empty(issuer, JwtConfigError::EmptyIssuer)?);
        Ok(self)
    }

    /// Refuses tokens whose `sub` has the form of a secp256k1 public key (the
    /// users of signature auth and LNURL-auth) unless the key that verified
    /// them is marked [`JwtKey::with_key_holder_subjects`]. For servers that
    /// serve those methods beside JWT: a public key is no secret (every
    /// signature header carries one), so an external issuer that lets anyone
    /// choose a `sub` could otherwise name that key's data.
    pub fn with_key_users_reserved(mut self) -> Self {
        self.key_users_reserved = true;
        self
    }

    /// Whether a token's `sub` may not name a public key unless its key
    /// vouches for key holders: when asked ([`Self::with_key_users_reserved`]),
    /// and whenever one of the keys vouches (then users named by public keys,
    /// LNURL-auth's, exist here).
    fn reserves_key_users(&self) -> bool {
        self.key_users_reserved || self.keys.iter().any(JwtKey::key_holder_subjects)
    }

    /// Judges `exp` and `nbf` by `clock` instead of the system's.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The keys tokens are checked with.
    pub fn keys(&self) -> &[JwtKey] {
        &self.keys
    }

    fn validation(&self, key: &JwtKey) -> Validation {
        let mut validation = Validation::new(key.algorithm());
        // The token's `alg` must be one of the key's own.
        validation.algorithms = key.algorithms.clone();
        // The times are judged by the clock in `verify`, not by the system's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = JWT_LEEWAY_SECS;
        let mut required = vec!["exp", "sub"];
        // With no audience configured, jsonwebtoken refuses any token that carries `aud`.
        validation.validate_aud = true;
        validation.aud = None;
        if let Some(audience) = &self.audience {
            validation.set_audience(&[audience]);
        }
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        validation
    }

    /// Checks a bare token (without the `Bearer ` prefix) and answers its user.
    pub fn verify(&self, token: &str) -> Result<UserToken, VssError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| VssError::Auth(format!("invalid token: {e}")))?;
        let named: Vec<&JwtKey> = match &header.kid {
            Some(kid) => self
                .keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid.as_str()))
                .collect(),
            None => Vec::new(),
        };
        let candidates: Vec<&JwtKey> = if named.is_empty() {
            self.keys.iter().collect()
        } else {
            named
        };
        let mut last_error = None;
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &self.validation(key)) {
                Ok(data) => {
                    if is_public_key_form(&data.claims.sub)
                        && !key.key_holder_subjects
                        && self.reserves_key_users()
                    {
                        return Err(VssError::Auth(
                            "invalid token: its `sub` has the form of a secp256k1 public key, \
                             which on this server only signature auth and LNURL-auth may name"
                                .into(),
                        ));
                    }
                    return self.in_time(data.claims);
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(VssError::Auth(match last_error {
            Some(e) => format!("invalid token: {e}"),
            None => "invalid token".into(),
        }))
    }

    /// The user of a token whose signature and claims checked out, if it is
    /// valid now: not expired (`exp`), not before its time (`nbf`), each with
    /// [`JWT_LEEWAY_SECS`] of leeway.
    fn in_time(&self, claims: Claims) -> Result<UserToken, VssError> {
        let now = self.clock.now_unix();
        if claims.exp.saturating_add(JWT_LEEWAY_SECS) < now {
            return Err(VssError::Auth(
                "invalid token: the token has expired".into(),
            ));
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(JWT_LEEWAY_SECS))
        {
            return Err(VssError::Auth(
                "invalid token: the token is not valid yet (nbf)".into(),
            ));
        }
        UserToken::new(claims.sub)
    }
}

#[async_trait]
impl Authorizer for JwtAuthorizer {
    async fn authorize(&self, headers: &HeaderMap) -> Result<UserToken, VssError> {
        self.verify(bearer_token(headers)?)
    }
}
