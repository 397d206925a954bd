//! Errors of setting up the store.

/// Why [`crate::PostgresStore::connect`] failed.
///
/// Errors of requests are [`vss_core::VssError`]s instead: every database failure
/// there is [`vss_core::VssError::Internal`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The configuration is unusable (bad address or URL, unreadable CA file, ...).
    #[error("invalid PostgreSQL configuration: {0}")]
    Config(String),
    /// PostgreSQL refused or failed a connection or statement.
    #[error("PostgreSQL error: {0}")]
    Database(#[from] tokio_postgres::Error),
    /// The connection pool could not hand out a connection.
    #[error("PostgreSQL connection pool: {0}")]
    Pool(String),
    /// The database was migrated by a newer vss-rs; this binary does not know its schema.
    #[error(
        "the database schema is at version {found}, newer than the version {supported} this \
         binary knows: upgrade this server (or point it at another database)"
    )]
    SchemaTooNew {
        /// The newest migration recorded in the database.
        found: i32,
        /// The newest migration this binary has.
        supported: i32,
    },
}

impl From<deadpool_postgres::PoolError> for PostgresError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        match err {
            deadpool_postgres::PoolError::Backend(e) => PostgresError::Database(e),
            other => PostgresError::Pool(other.to_string()),
        }
    }
}
