//! Reading a request body without ever holding more than the limit.

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Body;
use vss_core::VssError;

use crate::HttpError;

/// Why a request body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body is, or announced to be, larger than the limit (HTTP 413).
    #[error("request body is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body broke off or was malformed on the wire (HTTP 400).
    #[error("could not read the request body: {0}")]
    Read(String),
}

impl From<BodyError> for HttpError {
    fn from(err: BodyError) -> Self {
        let status = match err {
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Read(_) => StatusCode::BAD_REQUEST,
        };
        HttpError::with_status(status, VssError::InvalidRequest(err.to_string()))
    }
}

/// Reads a whole body of at most `limit` bytes.
///
/// A body whose declared length (`Content-Length`, which hyper reports as the
/// body's exact size hint) is over the limit is refused before any of it is
/// read; a body without one is counted while it streams in and refused as soon
/// as it passes the limit, so an oversized body is never buffered whole.
pub async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
    if body.size_hint().lower() > limit_u64 {
        return Err(BodyError::TooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<LengthLimitError>() => Err(BodyError::TooLarge { limit }),
        Err(err) => Err(BodyError::Read(err.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use http_body_util::Full;
    use hyper::body::Frame;

    /// A body of several frames with no declared length, like a chunked upload.
    /// It counts how many frames were pulled from it.
    struct Chunked {
        frames: VecDeque<Bytes>,
        pulled: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Body for Chunked {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            let next = self.frames.pop_front();
            if next.is_some() {
                self.pulled
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            Poll::Ready(next.map(|b| Ok(Frame::data(b))))
        }
    }

    fn chunked(
        parts: &[&'static [u8]],
    ) -> (Chunked, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let pulled = std::sync::Arc::default();
        let body = Chunked {
            frames: parts.iter().map(|p| Bytes::from_static(p)).collect(),
            pulled: std::sync::Arc::clone(&pulled),
        };
        (body, pulled)
    }

    #[tokio::test]
    async fn reads_a_body_within_the_limit() {
        let body = Full::new(Bytes::from_static(b"hello"));
        assert_eq!(&read_body(body, 5).await.unwrap()[..], b"hello");
        let (body, _) = chunked(&[b"he", b"llo"]);
        assert_eq!(&read_body(body, 5).await.unwrap()[..], b"hello");
    }

    #[tokio::test]
    async fn refuses_a_declared_length_over_the_limit() {
        let body = Full::new(Bytes::from_static(b"hello!"));
        assert_eq!(
            read_body(body, 5).await,
            Err(BodyError::TooLarge { limit: 5 })
        );
    }

    #[tokio::test]
    async fn stops_reading_a_streamed_body_as_soon_as_it_passes_the_limit() {
        let (body, pulled) = chunked(&[b"abc", b"def", b"ghi", b"jkl"]);
        assert_eq!(
            read_body(body, 5).await,
            Err(BodyError::TooLarge { limit: 5 })
        );
        // The second frame passed the limit; the rest were never pulled.
        assert_eq!(pulled.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[test]
    fn statuses() {
        let too_large = HttpError::from(BodyError::TooLarge { limit: 1 });
        assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(matches!(too_large.error, VssError::InvalidRequest(_)));
        let broken = HttpError::from(BodyError::Read("reset".into()));
        assert_eq!(broken.status, StatusCode::BAD_REQUEST);
        assert!(matches!(broken.error, VssError::InvalidRequest(_)));
    }
}
