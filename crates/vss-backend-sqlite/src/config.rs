//! How a [`crate::SqliteStore`] is opened.

use std::path::PathBuf;
use std::time::Duration;

use vss_core::StoreLimits;

/// How far an acknowledged write survives, set with SQLite's `PRAGMA synchronous`.
///
/// The database always runs in WAL mode; this only decides when SQLite calls `fsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// `synchronous=NORMAL`: a commit is written to the WAL file before it is
    /// acknowledged, but the WAL is only synced at checkpoints. An acknowledged
    /// write survives a crash or kill of the process (the operating system
    /// holds the data); the last commits may be lost if the machine loses power
    /// or the kernel crashes. The database is never corrupted either way.
    #[default]
    Normal,
    /// `synchronous=FULL`: the WAL is synced on every commit before the write is
    /// acknowledged, so an acknowledged write also survives power loss. One sync
    /// per batch of writes, not per write, keeps this affordable under load.
    Full,
}

impl Synchronous {
    /// The value of `PRAGMA synchronous` for this level.
    pub fn pragma_value(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

/// Settings of a [`crate::SqliteStore`]: [`SqliteConfig::new`] with a path gives
/// the defaults, and the builder methods change one setting each.
///
/// ```
/// use vss_backend_sqlite::{SqliteConfig, Synchronous};
///
/// let config = SqliteConfig::new("/var/lib/vss/vss.sqlite3")
///     .synchronous(Synchronous::Full)
///     .max_batch(128);
/// assert_eq!(config.read_connections, 4);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteConfig {
    /// The database file. Its parent directory is created when missing.
    pub path: PathBuf,
    /// When an acknowledged write is durable. Default: [`Synchronous::Normal`].
    pub synchronous: Synchronous,
    /// Most write requests the writer commits in one transaction. Default: 256.
    /// `1` disables batching (one commit, and with `Full` one sync, per request).
    pub max_batch: usize,
    /// Reader threads, each with its own read-only connection, serving `get` and
    /// `list` concurrently. Default: 4.
    pub read_connections: usize,
    /// How long a connection waits for a lock held by another process before
    /// the request fails with an internal error. Default: 5 s.
    pub busy_timeout: Duration,
    /// Page sizes and items per put this store declares. Default: the protocol's.
    pub limits: StoreLimits,
}

impl SqliteConfig {
    /// The default write batch size.
    pub const DEFAULT_MAX_BATCH: usize = 256;
    /// The default number of read connections.
    pub const DEFAULT_READ_CONNECTIONS: usize = 4;
    /// The default busy timeout.
    pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

    /// The default settings for the database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteConfig {
            path: path.into(),
            synchronous: Synchronous::default(),
            max_batch: Self::DEFAULT_MAX_BATCH,
            read_connections: Self::DEFAULT_READ_CONNECTIONS,
            busy_timeout: Self::DEFAULT_BUSY_TIMEOUT,
            limits: StoreLimits::default(),
        }
    }

    /// Sets [`SqliteConfig::synchronous`].
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// Sets [`SqliteConfig::max_batch`] (at least 1).
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch;
        self
    }

    /// Sets [`SqliteConfig::read_connections`] (at least 1).
    pub fn read_connections(mut self, read_connections: usize) -> Self {
        self.read_connections = read_connections;
        self
    }

    /// Sets [`SqliteConfig::busy_timeout`].
    pub fn busy_timeout(mut self, busy_timeout: Duration) -> Self {
        self.busy_timeout = busy_timeout;
        self
    }

    /// Sets [`SqliteConfig::limits`].
    pub fn limits(mut self, limits: StoreLimits) -> Self {
        self.limits = limits;
        self
    }
}
