//! Several authentication methods at once, chosen by the header's form.

use async_trait::async_trait;
use http::header::AUTHORIZATION;
use http::HeaderMap;
use vss_core::{UserToken, VssError};
use vss_http::Authorizer;

use crate::sigs::SIGNED_PREFIX_HEX;
use crate::{JwtAuthorizer, SigsAuthorizer};

/// The form of an `Authorization` header, which picks the method that checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderForm {
    /// No `Authorization` header.
    Missing,
    /// `Bearer <token>`: JWT.
    Bearer,
    /// At least 194 hex characters: a signature header.
    Signature,
    /// Anything else.
    Unknown,
}

impl HeaderForm {
    /// The form of the request's `Authorization` header.
    pub fn of(headers: &HeaderMap) -> HeaderForm {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return HeaderForm::Missing;
        };
        let value = value.as_bytes();
        let is_bearer = value
            .get(..7)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"bearer "));
        if is_bearer {
            HeaderForm::Bearer
        } else if value.len() > SIGNED_PREFIX_HEX
            && value[..SIGNED_PREFIX_HEX].iter().all(u8::is_ascii_hexdigit)
        {
            HeaderForm::Signature
        } else {
            HeaderForm::Unknown
        }
    }
}

/// JWT and signature auth side by side: a `Bearer` header goes to the JWT
/// authorizer, a signature header to the signature authorizer; a header of a
/// method that is not enabled, or of no known form, is refused (401). With
/// both on, identities cannot cross methods: a JWT whose `sub` has the form of
/// a secp256k1 public key is refused unless the key that verified it is
/// marked [`crate::JwtKey::with_key_holder_subjects`] (as the LNURL-auth
/// issuer's is).
#[derive(Debug, Clone, Default)]
pub struct MultiAuthorizer {
    jwt: Option<JwtAuthorizer>,
    sigs: Option<SigsAuthorizer>,
}

impl MultiAuthorizer {
    /// No method enabled yet: every request is refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts JWT bearer tokens. Beside signature auth, tokens whose `sub`
    /// has the form of a public key are refused unless their key vouches for
    /// key holders (see [`JwtAuthorizer::with_key_users_reserved`]).
    pub fn with_jwt(mut self, jwt: JwtAuthorizer) -> Self {
        self.jwt = Some(jwt);
        self.reserve_key_users();
        self
    }

    /// Accepts signature headers.
    pub fn with_sigs(mut self, sigs: SigsAuthorizer) -> Self {
        self.sigs = Some(sigs);
        self.reserve_key_users();
        self
    }

    /// With both methods on, a JWT's `sub` cannot name a signer's user.
    fn reserve_key_users(&mut self) {
        if self.sigs.is_some() {
            self.jwt = self.jwt.take().map(JwtAuthorizer::with_key_users_reserved);
        }
    }

    /// Names of the enabled methods, for logs.
    pub fn methods(&self) -> Vec<&'static str> {
        let mut methods = Vec::new();
        if self.jwt.is_some() {
            methods.push("jwt");
        }
        if self.sigs.is_some() {
            methods.push("sigs");
        }
        methods
    }
}

#[async_trait]
impl Authorizer for MultiAuthorizer {
    async fn authorize(&self, headers: &HeaderMap) -> Result<UserToken, VssError> {
        let form = HeaderForm::of(headers);
        let result = self.authorize_as(form, headers).await;
        if let Err(VssError::Auth(_)) = &result {
            crate::record_failure(form.method());
        }
        result
    }
}

impl HeaderForm {
    /// The method label of failures with this header form.
    fn method(self) -> &'static str {
        match self {
            HeaderForm::Missing => "missing",
            HeaderForm::Bearer => "jwt",
            HeaderForm::Signature => "sigs",
            HeaderForm::Unknown => "unknown",
        }
    }
}

impl MultiAuthorizer {
    async fn authorize_as(
        &self,
        form: HeaderForm,
        headers: &HeaderMap,
    ) -> Result<UserToken, VssError> {
        match (form, &self.jwt, &self.sigs) {
            (HeaderForm::Missing, _, _) => {
                Err(VssError::Auth("missing Authorization header".into()))
            }
            (HeaderForm::Bearer, Some(jwt), _) => jwt.authorize(headers).await,
            (HeaderForm::Signature, _, Some(sigs)) => sigs.authorize(headers).await,
            (HeaderForm::Bearer, None, _) => Err(VssError::Auth(
                "JWT authentication is not enabled on this server".into(),
            )),
            (HeaderForm::Signature, _, None) => Err(VssError::Auth(
                "signature authentication is not enabled on this server".into(),
            )),
            (HeaderForm::Unknown, _, _) => Err(VssError::Auth(
                "Authorization header is neither `Bearer <jwt>` nor a signature".into(),
            )),
        }
    }
}
