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
    /// PostgreSQL refused or failed a connection or statement; the message
    /// carries the server's own words (`database "x" does not exist`) or the
    /// network's (`Connection refused`).
    /// (The message already tells the causes, so the error is not a `source`.)
    #[error("PostgreSQL error: {}", describe(.0))]
    Database(tokio_postgres::Error),
    /// The connection pool could not hand out a connection.
    #[error("PostgreSQL connection pool: {0}")]
    Pool(String),
    /// The database holds the reference server's data in a state this server
    /// must not serve (not imported, changed since the import, or exported
    /// back), or an import or export of it cannot be done; says what to run.
    #[error("refusing the reference server's data: {0}")]
    ReferenceData(String),
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

impl From<tokio_postgres::Error> for PostgresError {
    fn from(err: tokio_postgres::Error) -> Self {
        PostgresError::Database(err)
    }
}

impl From<deadpool_postgres::PoolError> for PostgresError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        match err {
            deadpool_postgres::PoolError::Backend(e) => PostgresError::Database(e),
            other => PostgresError::Pool(other.to_string()),
        }
    }
}

/// A PostgreSQL error with its cause: the server's message, code, detail and
/// hint for an error the server sent, else the client's error with the causes
/// behind it (`tokio_postgres::Error` alone says only `db error` or
/// `error connecting to server`).
pub(crate) fn describe(err: &tokio_postgres::Error) -> String {
    let Some(db) = err.as_db_error() else {
        return vss_core::error_chain(err);
    };
    let mut text = format!(
        "{}: {} (SQLSTATE {})",
        db.severity(),
        db.message(),
        db.code().code()
    );
    for extra in [db.detail(), db.hint()].into_iter().flatten() {
        text.push_str("; ");
        text.push_str(extra);
    }
    text
}
