//! Signature auth, as `vss-client-ng`'s `SigsAuthProvider` sends it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::header::AUTHORIZATION;
use http::HeaderMap;
use secp256k1::ecdsa::Signature;
use secp256k1::{Message, PublicKey, Secp256k1, SecretKey, VerifyOnly};
use sha2::{Digest, Sha256};
use vss_core::{UserToken, VssError};
use vss_http::Authorizer;

use crate::{Clock, SystemClock};

/// The 64-byte constant signed before the public key and the time.
pub const SIGNING_CONSTANT: &[u8; 64] =
    b"VSS Signature Authorizer Signing Salt Constant..................";

/// How far the signing time may be from the server's clock, either way, by default.
pub const DEFAULT_SIGS_MAX_CLOCK_SKEW: Duration = Duration::from_secs(24 * 60 * 60);

/// Hex characters of the public key (33 bytes) and the compact signature (64 bytes).
pub(crate) const PUBKEY_HEX: usize = 66;
const SIG_HEX: usize = 128;
/// The length of a header with at least this many characters is a signature header.
pub(crate) const SIGNED_PREFIX_HEX: usize = PUBKEY_HEX + SIG_HEX;
/// `u64::MAX` has 20 decimal digits.
const MAX_TIME_DIGITS: usize = 20;

/// `Authorization: <pubkey hex><compact signature hex><unix time>`: proof of
/// knowledge of a secp256k1 private key. The user is the public key in
/// lowercase hex, so each key has its own data. The signature is over
/// `SHA256(SIGNING_CONSTANT || pubkey || time)`; the time must be within the
/// configured skew of the server's clock.
#[derive(Clone)]
pub struct SigsAuthorizer {
    secp: Secp256k1<VerifyOnly>,
    max_skew_secs: u64,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SigsAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigsAuthorizer")
            .field("max_skew_secs", &self.max_skew_secs)
            .finish_non_exhaustive()
    }
}

impl Default for SigsAuthorizer {
    fn default() -> Self {
        Self::new(DEFAULT_SIGS_MAX_CLOCK_SKEW)
    }
}

impl SigsAuthorizer {
    /// Accepts signing times within `max_skew` of the system clock.
    pub fn new(max_skew: Duration) -> Self {
        SigsAuthorizer {
            secp: Secp256k1::verification_only(),
            max_skew_secs: max_skew.as_secs(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Reads the time from `clock` instead of the system's.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The accepted skew.
    pub fn max_skew(&self) -> Duration {
        Duration::from_secs(self.max_skew_secs)
    }

    /// Checks one header value and answers its user.
    pub fn verify(&self, value: &str) -> Result<UserToken, VssError> {
        let malformed = || {
            VssError::Auth(
                "Authorization header is not `<66 hex pubkey><128 hex signature><unix time>`"
                    .into(),
            )
        };
        let (signed, time) = value
            .split_at_checked(SIGNED_PREFIX_HEX)
            .ok_or_else(malformed)?;
        if time.is_empty()
            || time.len() > MAX_TIME_DIGITS
            || !time.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(malformed());
        }
        let bytes = hex::decode(signed).map_err(|_| malformed())?;
        let (pubkey_bytes, sig_bytes) = bytes.split_at(PUBKEY_HEX / 2);
        // 33 bytes: only the compressed form parses.
        let pubkey = PublicKey::from_slice(pubkey_bytes)
            .map_err(|_| VssError::Auth("not a compressed secp256k1 public key".into()))?;
        let signature = Signature::from_compact(sig_bytes)
            .map_err(|_| VssError::Auth("not a compact ECDSA signature".into()))?;

        let signed_at = time.parse::<u64>().map_err(|_| malformed())?;
        let now = self.clock.now_unix();
        if signed_at.abs_diff(now) > self.max_skew_secs {
            return Err(VssError::Auth(format!(
                "the signing time is more than {} s from the server's clock",
                self.max_skew_secs
            )));
        }

        self.secp
            .verify_ecdsa(&signed_message(pubkey_bytes, time), &signature, &pubkey)
            .map_err(|_| VssError::Auth("invalid signature".into()))?;
        UserToken::new(hex::encode(pubkey_bytes))
    }
}

/// What a signature header signs: `SHA256(SIGNING_CONSTANT || pubkey || time)`.
fn signed_message(pubkey: &[u8], time: &str) -> Message {
    let mut hasher = Sha256::new();
    hasher.update(SIGNING_CONSTANT);
    hasher.update(pubkey);
    hasher.update(time.as_bytes());
    Message::from_digest(hasher.finalize().into())
}

/// The `Authorization` value `vss-client-ng`'s `SigsAuthProvider` sends for
/// `secret` at `unix_time`, which [`SigsAuthorizer`] accepts as the user
/// `hex(public key)`: for tools and tests that act as a client (vss-testkit).
pub fn sign(secret: &SecretKey, unix_time: u64) -> String {
    let secp = Secp256k1::signing_only();
    let pubkey = PublicKey::from_secret_key(&secp, secret).serialize();
    let time = unix_time.to_string();
    let signature = secp.sign_ecdsa(&signed_message(&pubkey, &time), secret);
    format!(
        "{}{}{time}",
        hex::encode(pubkey),
        hex::encode(signature.serialize_compact())
    )
}

#[async_trait]
impl Authorizer for SigsAuthorizer {
    async fn authorize(&self, headers: &HeaderMap) -> Result<UserToken, VssError> {
        let value = headers
            .get(AUTHORIZATION)
            .ok_or_else(|| VssError::Auth("missing Authorization header".into()))?
            .to_str()
            .map_err(|_| VssError::Auth("Authorization header is not ASCII".into()))?;
        self.verify(value.trim())
    }
}
