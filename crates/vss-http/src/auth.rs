//! Who is asking: request headers to a user token.

use async_trait::async_trait;
use http::header::AUTHORIZATION;
use http::HeaderMap;
use vss_core::{UserToken, VssError};

/// Turns a request's headers into the [`UserToken`] its data lives under.
///
/// Called before the request body is read, so unauthenticated callers cannot
/// make the server buffer bodies. Failure is [`VssError::Auth`] (HTTP 401);
/// an authorizer that depends on a service may also answer
/// [`VssError::Internal`] when that service fails.
#[async_trait]
pub trait Authorizer: Send + Sync + 'static {
    /// Authenticates a request by its headers.
    async fn authorize(&self, headers: &HeaderMap) -> Result<UserToken, VssError>;
}

/// No authentication: every request is one fixed user. For local testing only.
#[derive(Debug, Clone)]
pub struct NoopAuthorizer {
    user: UserToken,
}

impl NoopAuthorizer {
    /// The user every request gets unless another one is chosen.
    pub const DEFAULT_USER: &'static str = "unauthenticated";

    /// Makes every request the given user.
    pub fn new(user: UserToken) -> Self {
        NoopAuthorizer { user }
    }

    /// The user every request is.
    pub fn user(&self) -> &UserToken {
        &self.user
    }
}

impl Default for NoopAuthorizer {
    fn default() -> Self {
        match UserToken::new(Self::DEFAULT_USER) {
            Ok(user) => NoopAuthorizer { user },
            Err(_) => unreachable!("the default user token is short and non-empty"),
        }
    }
}

#[async_trait]
impl Authorizer for NoopAuthorizer {
    async fn authorize(&self, _headers: &HeaderMap) -> Result<UserToken, VssError> {
        Ok(self.user.clone())
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme
/// case-insensitive), for authorizers of bearer tokens. A missing header, one
/// that is not ASCII or of another scheme is [`VssError::Auth`].
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, VssError> {
    let value = headers
        .get(AUTHORIZATION)
        .ok_or_else(|| VssError::Auth("missing Authorization header".into()))?;
    let value = value
        .to_str()
        .map_err(|_| VssError::Auth("Authorization header is not ASCII".into()))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(token.trim()),
        _ => Err(VssError::Auth(
            "Authorization header is not `Bearer <jwt>`".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn noop_answers_its_fixed_user_whatever_the_headers() {
        let auth = NoopAuthorizer::default();
        let mut headers = HeaderMap::new();
        assert_eq!(
            auth.authorize(&headers).await.unwrap().as_str(),
            NoopAuthorizer::DEFAULT_USER
        );
        headers.insert("authorization", "Bearer whatever".parse().unwrap());
        assert_eq!(
            auth.authorize(&headers).await.unwrap().as_str(),
            NoopAuthorizer::DEFAULT_USER
        );
        let other = NoopAuthorizer::new(UserToken::new("alice").unwrap());
        assert_eq!(other.authorize(&headers).await.unwrap().as_str(), "alice");
    }
}
