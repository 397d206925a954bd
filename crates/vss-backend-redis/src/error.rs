//! Why a [`crate::RedisStore`] could not be opened.

/// An error opening a [`crate::RedisStore`]. Errors of requests are
/// [`vss_core::VssError`]s; these only happen in [`crate::RedisStore::connect`].
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The configuration is unusable (bad URL, empty pool, bad namespace...).
    #[error("invalid Redis configuration: {0}")]
    Config(String),
    /// Talking to Redis failed.
    #[error("Redis failed while {context}: {source}")]
    Redis {
        /// What the backend was doing.
        context: &'static str,
        /// The client's error.
        #[source]
        source: fred::error::Error,
    },
    /// The durability guard refused the server: acknowledged wallet writes could
    /// be lost, and `allow_volatile` is not set. The message says why and what to change.
    #[error("refusing to keep wallet data on this Redis: {0}")]
    NotDurable(String),
}

impl RedisError {
    pub(crate) fn redis(context: &'static str) -> impl FnOnce(fred::error::Error) -> Self {
        move |source| RedisError::Redis { context, source }
    }
}
