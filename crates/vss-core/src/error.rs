//! The protocol's error cases.

use crate::proto::{ErrorCode, ErrorResponse};

/// Every way a VSS call can fail, exactly the protocol's cases.
///
/// The string is a message for humans. For [`VssError::Internal`] it describes
/// the cause for the server's logs only: [`VssError::to_error_response`] never
/// sends it to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VssError {
    /// The key is not stored (HTTP 404, `NO_SUCH_KEY_EXCEPTION`).
    #[error("no such key: {0}")]
    NoSuchKey(String),
    /// A version or existence condition did not hold; nothing was written
    /// (HTTP 409, `CONFLICT_EXCEPTION`).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request is malformed or breaks a limit (HTTP 400, `INVALID_REQUEST_EXCEPTION`).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The caller could not be authenticated (HTTP 401, `AUTH_EXCEPTION`).
    #[error("authentication failed: {0}")]
    Auth(String),
    /// A value is larger than the store can hold (HTTP 413,
    /// `INVALID_REQUEST_EXCEPTION`: retrying cannot help). Nothing was written.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The put would take the user over a quota (HTTP 507,
    /// `INVALID_REQUEST_EXCEPTION`: retrying cannot help until the user frees
    /// space or the quota is raised). Nothing was written.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// The server or its database failed; clients retry these
    /// (HTTP 500, `INTERNAL_SERVER_EXCEPTION`).
    #[error("internal error: {0}")]
    Internal(String),
}

/// `err` and the chain of its causes, `outer: cause: cause of the cause`,
/// leaving out a cause whose text the message already holds. For startup
/// errors that must say what went wrong below (`db error: database "x" does
/// not exist`, `error connecting to server: Connection refused`).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The message clients get for every internal error, whatever its cause.
pub const INTERNAL_ERROR_MESSAGE: &str = "internal server error";

impl VssError {
    /// The NO_SUCH_KEY answer for `key`, which is not stored. Every backend
    /// answers a missing key with this one message.
    pub fn no_such_key(key: &str) -> Self {
        VssError::NoSuchKey(format!("key `{key}` does not exist"))
    }

    /// An internal error carrying `cause` for the logs (it is never sent to clients).
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        VssError::Internal(cause.to_string())
    }

    /// The names of the kinds of error, as [`VssError::kind`] gives them.
    pub const KINDS: [&'static str; 7] = [
        "no_such_key",
        "conflict",
        "invalid_request",
        "auth",
        "internal",
        "too_large",
        "quota_exceeded",
    ];

    /// A short, fixed name of the error's kind, for metric labels and logs:
    /// one of [`VssError::KINDS`].
    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.kind_index()]
    }

    /// The position of [`VssError::kind`] in [`VssError::KINDS`].
    pub fn kind_index(&self) -> usize {
        match self {
            VssError::NoSuchKey(_) => 0,
            VssError::Conflict(_) => 1,
            VssError::InvalidRequest(_) => 2,
            VssError::Auth(_) => 3,
            VssError::Internal(_) => 4,
            VssError::TooLarge(_) => 5,
            VssError::QuotaExceeded(_) => 6,
        }
    }

    /// The protocol error code of this error.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            VssError::NoSuchKey(_) => ErrorCode::NoSuchKeyException,
            VssError::Conflict(_) => ErrorCode::ConflictException,
            VssError::InvalidRequest(_) | VssError::TooLarge(_) | VssError::QuotaExceeded(_) => {
                ErrorCode::InvalidRequestException
            }
            VssError::Auth(_) => ErrorCode::AuthException,
            VssError::Internal(_) => ErrorCode::InternalServerException,
        }
    }

    /// The HTTP status the protocol assigns to this error.
    pub fn http_status(&self) -> u16 {
        match self {
            VssError::NoSuchKey(_) => 404,
            VssError::Conflict(_) => 409,
            VssError::InvalidRequest(_) => 400,
            VssError::Auth(_) => 401,
            VssError::Internal(_) => 500,
            VssError::TooLarge(_) => 413,
            VssError::QuotaExceeded(_) => 507,
        }
    }

    /// The wire form of this error. Internal causes are replaced by a generic message.
    pub fn to_error_response(&self) -> ErrorResponse {
        let message = match self {
            VssError::Internal(_) => INTERNAL_ERROR_MESSAGE.to_string(),
            VssError::NoSuchKey(m)
            | VssError::Conflict(m)
            | VssError::InvalidRequest(m)
            | VssError::Auth(m)
            | VssError::TooLarge(m)
            | VssError::QuotaExceeded(m) => m.clone(),
        };
        ErrorResponse {
            error_code: self.error_code() as i32,
            message,
        }
    }

    /// Rebuilds an error from its wire form (for clients of the protocol).
    /// The wire has one code for [`VssError::InvalidRequest`],
    /// [`VssError::TooLarge`] and [`VssError::QuotaExceeded`]: all three come
    /// back as [`VssError::InvalidRequest`] (the HTTP status tells them apart).
    pub fn from_error_response(response: &ErrorResponse) -> Self {
        let message = response.message.clone();
        match ErrorCode::try_from(response.error_code) {
            Ok(ErrorCode::NoSuchKeyException) => VssError::NoSuchKey(message),
            Ok(ErrorCode::ConflictException) => VssError::Conflict(message),
            Ok(ErrorCode::InvalidRequestException) => VssError::InvalidRequest(message),
            Ok(ErrorCode::AuthException) => VssError::Auth(message),
            Ok(ErrorCode::InternalServerException) | Ok(ErrorCode::Unknown) | Err(_) => {
                VssError::Internal(message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_causes_are_not_sent() {
        let err = VssError::internal("SELECT * FROM secret_table failed at /var/lib/db");
        let wire = err.to_error_response();
        assert_eq!(wire.message, INTERNAL_ERROR_MESSAGE);
        assert_eq!(wire.error_code, ErrorCode::InternalServerException as i32);
        assert_eq!(err.http_status(), 500);
    }

    #[test]
    fn size_and_quota_refusals_are_invalid_requests_with_their_own_status() {
        for (err, status) in [
            (VssError::TooLarge("t".into()), 413),
            (VssError::QuotaExceeded("q".into()), 507),
        ] {
            let wire = err.to_error_response();
            assert_eq!(
                wire.error_code,
                ErrorCode::InvalidRequestException as i32,
                "{err}"
            );
            assert_eq!(err.http_status(), status);
            assert_eq!(
                VssError::from_error_response(&wire),
                VssError::InvalidRequest(wire.message.clone())
            );
        }
    }

    #[test]
    fn wire_form_round_trips() {
        for err in [
            VssError::NoSuchKey("k".into()),
            VssError::Conflict("c".into()),
            VssError::InvalidRequest("i".into()),
            VssError::Auth("a".into()),
        ] {
            assert_eq!(VssError::from_error_response(&err.to_error_response()), err);
        }
    }
}

#[cfg(test)]
mod chain_tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("opening failed")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("opening failed: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn causes_are_appended_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        assert_eq!(error_chain(&Outer(io())), "opening failed: no such file");
        assert_eq!(error_chain(&Repeats(io())), "opening failed: no such file");
    }
}
