//! Building responses: every one carries the protocol version header.

use bytes::buf::Chain;
use bytes::{Buf, Bytes};
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body_util::Full;
use prost::Message;
use vss_core::protocol::{Encoded, PROTOCOL_VERSION, PROTOCOL_VERSION_HEADER};
use vss_core::VssError;

const OCTET_STREAM: &str = "application/octet-stream";

/// A failed request: the protocol error and the HTTP status it is answered with.
///
/// The status is normally [`VssError::http_status`]; a few transport-level
/// failures differ (413 for a body over the limit, 404 for an unknown path,
/// 405 for a method other than POST), with the error code clients decide by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// The status line of the answer.
    pub status: StatusCode,
    /// The error sent as an `ErrorResponse`.
    pub error: VssError,
    /// For a request over a rate limit (429): whole seconds to wait, sent as
    /// `Retry-After`, and the error's message is then sent as it is.
    pub retry_after: Option<u64>,
}

impl HttpError {
    /// An error answered with a status other than its protocol default.
    pub fn with_status(status: StatusCode, error: VssError) -> Self {
        HttpError {
            status,
            error,
            retry_after: None,
        }
    }
}

impl From<VssError> for HttpError {
    fn from(error: VssError) -> Self {
        let status =
            StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        HttpError::with_status(status, error)
    }
}

/// The body of every answer: one buffer, or two sent one after the other
/// (the encoding and a large value that is not copied into it), written out
/// as they are.
pub type ResponseBody = Full<Chain<Bytes, Bytes>>;

/// A body of `head` followed by `tail`.
pub fn response_body(head: Bytes, tail: Bytes) -> ResponseBody {
    Full::new(head.chain(tail))
}

/// A 200 response whose body is the encoded message.
pub fn protobuf_response(encoded: Encoded) -> Response<ResponseBody> {
    with_headers(StatusCode::OK, response_body(encoded.head, encoded.tail))
}

/// The error's status with its `ErrorResponse` body. Internal causes are not
/// sent (see [`VssError::to_error_response`]).
pub fn error_response(err: &HttpError) -> Response<ResponseBody> {
    let mut wire = err.error.to_error_response();
    if err.retry_after.is_some() {
        // A rate limit's message says only when to come back: it may be sent.
        if let VssError::Internal(message) = &err.error {
            wire.message = message.clone();
        }
    }
    let body = response_body(Bytes::from(wire.encode_to_vec()), Bytes::new());
    let mut response = with_headers(err.status, body);
    if let Some(secs) = err.retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    if err.status == StatusCode::METHOD_NOT_ALLOWED {
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
    }
    response
}

fn with_headers(status: StatusCode, body: ResponseBody) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        PROTOCOL_VERSION_HEADER,
        HeaderValue::from_static(PROTOCOL_VERSION),
    );
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(OCTET_STREAM));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use vss_core::proto::{ErrorCode, ErrorResponse};
    use vss_core::INTERNAL_ERROR_MESSAGE;

    async fn body_of(response: Response<ResponseBody>) -> Bytes {
        response.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn errors_carry_the_header_their_status_and_no_internal_cause() {
        let cases = [
            (
                VssError::NoSuchKey("k".into()),
                404,
                ErrorCode::NoSuchKeyException,
            ),
            (
                VssError::Conflict("c".into()),
                409,
                ErrorCode::ConflictException,
            ),
            (
                VssError::InvalidRequest("i".into()),
                400,
                ErrorCode::InvalidRequestException,
            ),
            (VssError::Auth("a".into()), 401, ErrorCode::AuthException),
            (
                VssError::internal("SELECT secret"),
                500,
                ErrorCode::InternalServerException,
            ),
        ];
        for (error, status, code) in cases {
            let response = error_response(&HttpError::from(error));
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(response.headers()[PROTOCOL_VERSION_HEADER], "0");
            let decoded = ErrorResponse::decode(body_of(response).await).unwrap();
            assert_eq!(decoded.error_code, code as i32);
            assert!(!decoded.message.contains("SELECT"));
            if status == 500 {
                assert_eq!(decoded.message, INTERNAL_ERROR_MESSAGE);
            }
        }
    }

    #[tokio::test]
    async fn success_carries_the_header_and_the_body() {
        let response = protobuf_response(Encoded::whole(Bytes::from_static(b"\x0a\x01k")));
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[PROTOCOL_VERSION_HEADER], "0");
        assert_eq!(&body_of(response).await[..], b"\x0a\x01k");
    }
}
