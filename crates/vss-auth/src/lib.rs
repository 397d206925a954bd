//! # vss-auth: who may read and write which data
//!
//! Authorizers for [`vss_http::VssService`], compatible with `vss-client-ng`'s
//! header providers:
//!
//! - [`SigsAuthorizer`]: `SigsAuthProvider`'s signature header (proof of a
//!   secp256k1 key; the user is the public key).
//! - [`JwtAuthorizer`]: `Bearer` JWTs, RS256 (the reference server's), ES256
//!   or EdDSA, several keys for rotation, `exp`/`nbf` judged by a [`Clock`].
//! - [`MultiAuthorizer`]: both at once, picked by the header's form.
//! - [`LnurlAuthIssuer`]: an LNURL-auth login that issues JWTs
//!   (`LnurlAuthToJwtProvider`), served on an extra path of the same service
//!   ([`vss_http::VssService::with_endpoint`]); add its
//!   [`verification_key`](LnurlAuthIssuer::verification_key) to the JWT authorizer.
//!
//! Time limits read a [`Clock`], so tests move time instead of sleeping.
//!
//! Configuration and client set-up: see README.md.

#![warn(missing_docs)]

mod clock;
mod jwt;
mod lnurl;
mod multi;
mod sigs;

pub use clock::{Clock, ManualClock, SystemClock};
pub use jwt::{JwtAuthorizer, JwtConfigError, JwtKey, JwtSigner, JWT_LEEWAY_SECS, MIN_RSA_BITS};
pub use lnurl::{
    LnurlAuthConfig, LnurlAuthIssuer, LoginError, SpentChallenges, CLOCK_SKEW_ALLOWANCE,
    DEFAULT_CHALLENGE_TTL, DEFAULT_LNURL_AUTH_PATH, DEFAULT_TOKEN_TTL, LNURL_AUTH_KID,
    SPENT_CHALLENGES_STORE, SPENT_CHALLENGES_USER,
};
pub use multi::{HeaderForm, MultiAuthorizer};
/// The secp256k1 library of signature auth ([`sign`] takes its [`secp256k1::SecretKey`]).
pub use secp256k1;
pub use sigs::{sign, SigsAuthorizer, DEFAULT_SIGS_MAX_CLOCK_SKEW, SIGNING_CONSTANT};

/// Authentication failures by method: `jwt`, `sigs`, `lnurl` (a refused
/// LNURL-auth login), `missing` (no `Authorization` header) or `unknown` (a
/// header of no known form). Recorded through the `metrics` facade.
pub const AUTH_FAILURES_TOTAL: &str = "vss_auth_failures_total";

/// Registers the help text of [`AUTH_FAILURES_TOTAL`] with the recorder installed now.
pub fn describe_metrics() {
    metrics::describe_counter!(
        AUTH_FAILURES_TOTAL,
        "Requests refused by authentication, by method (jwt, sigs, lnurl, missing, unknown)."
    );
}

pub(crate) fn record_failure(method: &'static str) {
    metrics::counter!(AUTH_FAILURES_TOTAL, "method" => method).increment(1);
}
