//! The authenticated caller.

use crate::VssError;

/// The identity an authorizer derived from a request's headers.
///
/// Every store call takes one, and every record is stored under it, so one
/// user can never reach another's data. It is 1 to [`UserToken::MAX_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserToken(String);

impl UserToken {
    /// The longest user token, in bytes.
    pub const MAX_LEN: usize = 120;

    /// Checks and wraps a user token. An empty or over-long token is an [`VssError::Auth`]
    /// error: it can only come from a misbehaving authorizer or credential.
    pub fn new(token: impl Into<String>) -> Result<Self, VssError> {
        let token = token.into();
        if token.is_empty() {
            return Err(VssError::Auth("user token is empty".into()));
        }
        if token.len() > Self::MAX_LEN {
            return Err(VssError::Auth(format!(
                "user token is {} bytes, more than the limit of {}",
                token.len(),
                Self::MAX_LEN
            )));
        }
        Ok(UserToken(token))
    }

    /// The token as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What begins every reserved token: a control character no credential
    /// carries, so no authorizer's user can name the server's own records.
    pub const RESERVED_PREFIX: &'static str = "\u{1}vss/";

    /// The reserved user `name`, under which the server keeps records of its
    /// own (spent LNURL-auth challenges). The HTTP service refuses any
    /// authorizer's answer that is a reserved token ([`UserToken::is_reserved`]).
    pub fn reserved(name: &str) -> Result<Self, VssError> {
        Self::new(format!("{}{name}", Self::RESERVED_PREFIX))
    }

    /// Whether this is a reserved token ([`UserToken::reserved`]).
    pub fn is_reserved(&self) -> bool {
        self.0.starts_with(Self::RESERVED_PREFIX)
    }
}

impl std::fmt::Display for UserToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!(UserToken::new("").is_err());
        assert!(UserToken::new("u".repeat(120)).is_ok());
        assert!(matches!(
            UserToken::new("u".repeat(121)),
            Err(VssError::Auth(_))
        ));
    }

    #[test]
    fn reserved_tokens_are_told_apart() {
        let reserved = UserToken::reserved("lnurl-auth").unwrap();
        assert!(reserved.is_reserved());
        assert!(!UserToken::new("vss/lnurl-auth").unwrap().is_reserved());
        assert!(!UserToken::new("02".repeat(33)).unwrap().is_reserved());
    }
}
