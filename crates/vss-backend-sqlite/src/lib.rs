//! # vss-backend-sqlite: the embedded default VSS backend
//!
//! [`SqliteStore`] keeps a VSS server's data in one SQLite file (SQLite is
//! compiled in, through rusqlite's `bundled` feature) and implements
//! [`vss_core::KvStore`] with the plans of [`vss_core::validate`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use vss_backend_sqlite::{SqliteConfig, SqliteStore, Synchronous};
//! use vss_core::KvStore;
//!
//! let store = SqliteStore::open(
//!     SqliteConfig::new("/var/lib/vss/vss.sqlite3").synchronous(Synchronous::Full),
//! )
//! .await?;
//! // ... serve requests ...
//! store.close().await?;
//! # Ok(()) }
//! ```
//!
//! ## Durability
//!
//! The database runs in WAL mode. A write is acknowledged only after the
//! transaction holding it has committed. What survives then depends on
//! [`Synchronous`]:
//!
//! - [`Synchronous::Normal`] (the default, `PRAGMA synchronous=NORMAL`): the
//!   commit is in the WAL file before the reply, so an acknowledged write
//!   survives a crash or `kill -9` of the server process. A power loss or
//!   kernel crash may lose the last acknowledged writes (never corrupt the file).
//! - [`Synchronous::Full`] (`PRAGMA synchronous=FULL`): the WAL is synced on
//!   every commit before the reply, so acknowledged writes also survive power
//!   loss. Recommended when the server's disk is the only copy of the backups.
//!
//! [`SqliteStore::close`](vss_core::KvStore::close) drains the write queue,
//! commits, checkpoints the WAL into the database file and stops the writer.
//!
//! ## Threads
//!
//! Nothing blocks the async runtime:
//!
//! - **Reads** (`get`, `list_key_versions`) go through a queue to
//!   [`SqliteConfig::read_connections`] reader threads, each owning one
//!   read-only connection; they run concurrently with each other and with the
//!   writer (WAL readers never wait for the writer). A woken reader takes up to
//!   eight queued reads at once, so under load one thread switch serves many
//!   requests. A listing's first page reads the global version and then the
//!   keys inside one read transaction.
//! - **Writes** (`put`, `delete`) go through a queue to one writer thread that
//!   owns the only read-write connection. It takes the first waiting request
//!   plus whatever else is queued, up to [`SqliteConfig::max_batch`], and
//!   applies them in one `BEGIN IMMEDIATE` transaction, each request inside its
//!   own `SAVEPOINT` (a request whose condition fails is rolled back alone,
//!   with CONFLICT). After the one `COMMIT` it answers every request; if the
//!   `COMMIT` fails, every request of the batch gets INTERNAL. Conditions are
//!   checked inside that transaction, so there are no races between check and
//!   write. Under load, many writes share one commit (and one sync): durable
//!   throughput grows with the number of concurrent writers.
//!
//! ## Schema
//!
//! Version [`SCHEMA_VERSION`], kept in `PRAGMA user_version`; the file is
//! marked with `PRAGMA application_id` = [`APPLICATION_ID`]. Opening applies
//! missing migrations in one transaction; a file of a newer schema is refused
//! with [`SqliteError::SchemaTooNew`] and left untouched, and an SQLite file of
//! another application with [`SqliteError::NotVssDatabase`].
//!
//! - `vss_stores (user_token, store_id) -> global_version, last_sequence`:
//!   `last_sequence` is the last creation sequence handed out in that store; it
//!   only grows.
//! - `vss_records (user_token, store_id, key) -> version, value, sequence`,
//!   with an index on `(user_token, store_id, sequence DESC)` for listings.
//!   Creating a key gives it the store's next sequence; updates and overwrites
//!   keep it; a delete and re-create gives a new one, so the key lists first.
//!
//! - `vss_usage (user_token) -> bytes, keys`: what each user stores, for
//!   quotas (see [`vss_core::quota`]). Migration 2 counts the data already
//!   stored, once, inside its transaction; every write then keeps it exact in
//!   the same transaction (the writer reads it, judges the put's quota, and
//!   writes it back; `deleteObject` subtracts what it deleted).
//!
//! Every query is scoped by `user_token`: one user can never see another's rows.
//! Key prefixes of listings are matched as literal bytes (a `substr` of the key
//! as a BLOB, never `LIKE`).
//!
//! ## Limits
//!
//! - One process per database file: the store assumes it is the only writer.
//!   Another process writing to the same file makes writes wait up to
//!   [`SqliteConfig::busy_timeout`] and then fail with INTERNAL.
//! - Items per put, page sizes: [`SqliteConfig::limits`] (the protocol's by
//!   default: 1000 items per put, pages of at most 100 keys).
//! - Values: up to SQLite's maximum length of a row (`SQLITE_LIMIT_LENGTH`,
//!   1,000,000,000 bytes in the bundled build) less 4 KiB for the row's other
//!   columns; [`StoreLimits::max_value_size`] says it, and bigger values are
//!   refused with TOO_LARGE (HTTP 413) before anything is written. A whole
//!   store's data must fit on one disk.
//! - A listing with a key prefix walks the store's keys newest first until
//!   the page is full, so its cost grows with the keys it skips.
//! - A write request that is cancelled by its caller after it was queued may
//!   still be applied (like a request whose reply is lost on the network).

#![warn(missing_docs)]

mod admin;
mod config;
mod error;
pub mod measure;
mod read;
mod readers;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::thread::JoinHandle;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};
use vss_core::admin::{ItemsPage, PageSize, StoreRef, StoredItem, StoresPage, UsagePage};
use vss_core::proto::{
    DeleteObjectRequest, DeleteObjectResponse, GetObjectRequest, GetObjectResponse,
    ListKeyVersionsRequest, ListKeyVersionsResponse, PutObjectRequest, PutObjectResponse,
};
use vss_core::validate::{self, GetTarget};
use vss_core::{AdminStore, KvStore, Quota, StoreLimits, Usage, UserToken, VssError};

pub use config::{SqliteConfig, Synchronous};
pub use error::SqliteError;
pub use schema::{APPLICATION_ID, SCHEMA_VERSION};

use readers::Readers;
use writer::{Command, WriteOp, WriteRequest};

/// A VSS store in one SQLite file. See the [crate docs](crate) for its
/// durability, threading model and schema.
pub struct SqliteStore {
    path: PathBuf,
    limits: StoreLimits,
    writes: mpsc::Sender<Command>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    /// `None` once closed.
    readers: RwLock<Option<Readers>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating when missing) the database of `config.path`, migrates
    /// its schema, and starts the writer thread and the read connections.
    ///
    /// Must be called inside a tokio runtime; the file work runs on a blocking thread.
    pub async fn open(config: SqliteConfig) -> Result<SqliteStore, SqliteError> {
        let path = config.path.clone();
        tokio::task::spawn_blocking(move || Self::open_blocking(config))
            .await
            .map_err(|e| SqliteError::Start {
                path,
                reason: format!("the opening task failed: {e}"),
            })?
    }

    fn open_blocking(config: SqliteConfig) -> Result<SqliteStore, SqliteError> {
        let path = config.path.clone();
        let invalid = |reason: &str| SqliteError::InvalidConfig {
            path: path.clone(),
            reason: reason.to_string(),
        };
        if config.max_batch == 0 {
            return Err(invalid("max_batch must be at least 1"));
        }
        if config.read_connections == 0 {
            return Err(invalid("read_connections must be at least 1"));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| SqliteError::CreateDir {
                path: path.clone(),
                dir: dir.to_owned(),
                source,
            })?;
        }

        let conn = open_writer(&config)?;
        let limits = StoreLimits {
            max_value_size: config
                .limits
                .max_value_size
                .min(writer::largest_value(&conn).map_err(open_error(&path))?),
            enforces_quotas: true,
            ..config.limits
        };
        let read_connections = config.read_connections;
        let readers = (0..read_connections)
            .map(|_| open_reader(&config))
            .collect::<Result<Vec<_>, _>>()?;
        let readers = Readers::start(readers).map_err(|e| SqliteError::Start {
            path: path.clone(),
            reason: format!("cannot start the reader threads: {e}"),
        })?;

        let (writes, queue) = mpsc::channel(config.max_batch.saturating_mul(4).max(1024));
        let max_batch = config.max_batch;
        let writer_thread = std::thread::Builder::new()
            .name("vss-sqlite-writer".into())
            .spawn(move || writer::run(conn, queue, max_batch))
            .map_err(|e| SqliteError::Start {
                path: path.clone(),
                reason: format!("cannot start the writer thread: {e}"),
            })?;
        tracing::info!(
            path = %path.display(),
            synchronous = config.synchronous.pragma_value(),
            max_batch,
            read_connections,
            "opened the SQLite store"
        );
        Ok(SqliteStore {
            path,
            limits,
            writes,
            writer_thread: Mutex::new(Some(writer_thread)),
            readers: RwLock::new(Some(readers)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn write(&self, user: &UserToken, op: WriteOp) -> Result<(), VssError> {
        vss_core::deadline::ensure("SQLite write")?;
        let (reply, answer) = oneshot::channel();
        let request = WriteRequest {
            user: user.clone(),
            op,
            reply,
            deadline: vss_core::deadline::current(),
        };
        // The writer drops a request whose deadline passed, or whose caller
        // gave up, before starting it; one it started is answered with its outcome.
        vss_core::deadline::before(self.writes.send(Command::Write(request)))
            .await
            .ok_or_else(|| vss_core::deadline::missed("SQLite write (queue full)"))?
            .map_err(|_| writer::closed())?;
        answer
            .await
            .map_err(|_| VssError::internal("the SQLite writer stopped before answering"))?
    }

    async fn read<T, F>(&self, f: F) -> Result<T, VssError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, VssError> + Send + 'static,
    {
        let jobs = self
            .readers
            .read()
            .map_err(|_| VssError::internal("SQLite readers lock poisoned"))?
            .as_ref()
            .map(Readers::handle)
            .ok_or_else(writer::closed)?;
        readers::read(&jobs, f).await
    }
}

fn open_error(path: &Path) -> impl Fn(rusqlite::Error) -> SqliteError + '_ {
    move |source| SqliteError::Open {
        path: path.to_owned(),
        source,
    }
}

/// The writer's connection: checks the file, switches it to WAL and migrates it.
fn open_writer(config: &SqliteConfig) -> Result<Connection, SqliteError> {
    let path = &config.path;
    let failed = open_error(path);
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(&failed)?;
    conn.busy_timeout(config.busy_timeout).map_err(&failed)?;
    // Before anything writes to the file: refuse what we must not change.
    schema::check(&conn, path)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(&failed)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(SqliteError::WalUnavailable {
            path: path.clone(),
            journal_mode: mode,
        });
    }
    conn.pragma_update(None, "synchronous", config.synchronous.pragma_value())
        .map_err(&failed)?;
    schema::migrate(&mut conn, path)?;
    Ok(conn)
}

/// One read-only connection for a reader thread.
fn open_reader(config: &SqliteConfig) -> Result<Connection, SqliteError> {
    let failed = |source| SqliteError::ReadConnection {
        path: config.path.clone(),
        source,
    };
    let conn = Connection::open_with_flags(
        &config.path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(failed)?;
    conn.busy_timeout(config.busy_timeout).map_err(failed)?;
    Ok(conn)
}

#[async_trait]
impl KvStore for SqliteStore {
    async fn get(
        &self,
        user: &UserToken,
        req: GetObjectRequest,
    ) -> Result<GetObjectResponse, VssError> {
        let target = validate::get(&req)?;
        let user = user.clone();
        let value = self
            .read(move |conn| match target {
                GetTarget::GlobalVersion => Ok(validate::global_version_key_value(
                    read::global_version(conn, &user, &req.store_id)?,
                )),
                GetTarget::Key(key) => read::get(conn, &user, &req.store_id, key),
            })
            .await?;
        Ok(GetObjectResponse { value: Some(value) })
    }

    async fn put(
        &self,
        user: &UserToken,
        req: PutObjectRequest,
    ) -> Result<PutObjectResponse, VssError> {
        self.put_with_quota(user, req, Quota::UNLIMITED).await
    }

    /// The quota is judged by the writer, inside the request's savepoint.
    async fn put_with_quota(
        &self,
        user: &UserToken,
        req: PutObjectRequest,
        quota: Quota,
    ) -> Result<PutObjectResponse, VssError> {
        let plan = validate::put(req, &self.limits)?;
        self.write(user, WriteOp::Put(plan, quota)).await?;
        Ok(PutObjectResponse {})
    }

    async fn delete(
        &self,
        user: &UserToken,
        req: DeleteObjectRequest,
    ) -> Result<DeleteObjectResponse, VssError> {
        let plan = validate::delete(req)?;
        self.write(user, WriteOp::Delete(plan)).await?;
        Ok(DeleteObjectResponse {})
    }

    async fn list_key_versions(
        &self,
        user: &UserToken,
        req: ListKeyVersionsRequest,
    ) -> Result<ListKeyVersionsResponse, VssError> {
        let plan = validate::list(user, req, &self.limits)?;
        let user = user.clone();
        self.read(move |conn| read::list(conn, &user, &plan)).await
    }

    fn limits(&self) -> StoreLimits {
        self.limits
    }

    /// A read on a reader thread: the readers run and the file reads.
    async fn ready(&self) -> Result<(), VssError> {
        self.read(|conn| {
            conn.query_row("SELECT count(*) FROM vss_stores LIMIT 1", [], |_| Ok(()))
                .map_err(|e| VssError::internal(format!("SQLite readiness read: {e}")))
        })
        .await
    }

    /// Stops reads, lets the writer finish every queued request, commit and
    /// checkpoint the WAL, then stops the writer thread. Later calls fail with
    /// INTERNAL; closing again is a no-op.
    async fn close(&self) -> Result<(), VssError> {
        // The reader threads finish the reads already queued, close their
        // connections and end; they are joined below, after the writer.
        let reader_threads = self
            .readers
            .write()
            .map_err(|_| VssError::internal("SQLite readers lock poisoned"))?
            .take()
            .map(Readers::stop)
            .unwrap_or_default();
        let (reply, answer) = oneshot::channel();
        if self.writes.send(Command::Close(reply)).await.is_err() {
            return Ok(()); // Already closed.
        }
        let result = answer
            .await
            .map_err(|_| VssError::internal("the SQLite writer stopped before closing"))?;
        let thread = self
            .writer_thread
            .lock()
            .map_err(|_| VssError::internal("SQLite writer handle lock poisoned"))?
            .take();
        if let Some(thread) = thread {
            tokio::task::spawn_blocking(move || thread.join())
                .await
                .map_err(|e| VssError::internal(format!("joining the SQLite writer: {e}")))?
                .map_err(|_| VssError::internal("the SQLite writer thread panicked"))?;
        }
        tokio::task::spawn_blocking(move || {
            reader_threads
                .into_iter()
                .try_for_each(|thread| thread.join())
        })
        .await
        .map_err(|e| VssError::internal(format!("joining the SQLite readers: {e}")))?
        .map_err(|_| VssError::internal("an SQLite reader thread panicked"))?;
        tracing::info!(path = %self.path.display(), "closed the SQLite store");
        result
    }
}

/// The admin interface: stores are enumerated in `(user, store id)` order,
/// each once; every write is one savepoint of the writer's transaction, so
/// atomic (a page of [`AdminStore::write_items`] is written whole or not at
/// all).
#[async_trait]
impl AdminStore for SqliteStore {
    async fn list_stores(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<StoresPage, VssError> {
        let after = cursor.map(vss_core::admin::store_of_cursor).transpose()?;
        self.read(move |conn| admin::list_stores(conn, after.as_ref(), limit))
            .await
    }

    async fn read_items(
        &self,
        store: &StoreRef,
        after: i64,
        size: PageSize,
    ) -> Result<ItemsPage, VssError> {
        let store = store.clone();
        self.read(move |conn| admin::read_items(conn, &store, after, size))
            .await
    }

    async fn write_items(
        &self,
        store: &StoreRef,
        items: &[StoredItem],
        global_version: Option<i64>,
    ) -> Result<(), VssError> {
        vss_core::admin::check_items(store, items, &self.limits)?;
        let op = admin::AdminOp::WriteItems {
            store_id: store.store_id.clone(),
            items: items.to_vec(),
            global_version,
        };
        self.write(&store.user, WriteOp::Admin(op)).await
    }

    async fn delete_store(&self, store: &StoreRef) -> Result<(), VssError> {
        let op = admin::AdminOp::DeleteStore {
            store_id: store.store_id.clone(),
        };
        self.write(&store.user, WriteOp::Admin(op)).await
    }

    async fn delete_user(&self, user: &UserToken) -> Result<(), VssError> {
        self.write(user, WriteOp::Admin(admin::AdminOp::DeleteUser))
            .await
    }

    async fn usage(&self, user: &UserToken) -> Result<Usage, VssError> {
        let user = user.clone();
        self.read(move |conn| admin::read_usage(conn, &user)).await
    }

    async fn list_usage(&self, cursor: Option<&str>, limit: usize) -> Result<UsagePage, VssError> {
        let after = cursor.map(vss_core::admin::user_of_cursor).transpose()?;
        self.read(move |conn| admin::list_usage(conn, after.as_ref(), limit))
            .await
    }
}
