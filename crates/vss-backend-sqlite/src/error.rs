//! Why a store could not be opened.

use std::path::PathBuf;

/// An error opening a [`crate::SqliteStore`]; each names the database file.
///
/// Errors of running requests are [`vss_core::VssError`]s instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqliteError {
    /// The configuration cannot work (for example `max_batch` of 0).
    #[error("invalid SQLite configuration for {path}: {reason}")]
    InvalidConfig {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The directory that should hold the database could not be created.
    #[error("cannot create the directory {dir} for the SQLite database {path}: {source}")]
    CreateDir {
        /// The database file.
        path: PathBuf,
        /// The directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file could not be opened or set up as a database.
    #[error("cannot open the SQLite database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// The database cannot be switched to WAL mode, which durability and
    /// concurrent reads rely on.
    #[error("the SQLite database {path} cannot use WAL mode (journal_mode stays {journal_mode})")]
    WalUnavailable {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite reported.
        journal_mode: String,
    },
    /// The database was written by a newer version of this backend. It is left
    /// exactly as it was: use that newer version, or restore a backup.
    #[error(
        "the SQLite database {path} has schema version {found}, which is newer than this binary \
         supports ({supported}); refusing to open it so it is not changed"
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// The schema version stored in the file.
        found: i64,
        /// The newest schema version this binary knows.
        supported: i64,
    },
    /// The file is an SQLite database of another application.
    #[error(
        "{path} is an SQLite database of another application (application_id {found:#x}); \
         refusing to use it"
    )]
    NotVssDatabase {
        /// The database file.
        path: PathBuf,
        /// The application id stored in the file.
        found: i32,
    },
    /// Upgrading the schema failed; the migration was rolled back.
    #[error(
        "cannot migrate the SQLite database {path} from schema version {from} to {to}: {source}"
    )]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// The schema version found.
        from: i64,
        /// The schema version being installed.
        to: i64,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// A read-only connection could not be opened.
    #[error("cannot open a read connection to the SQLite database {path}: {source}")]
    ReadConnection {
        /// The database file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// A thread could not be started or the opening task failed.
    #[error("cannot start the SQLite store for {path}: {reason}")]
    Start {
        /// The database file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}
