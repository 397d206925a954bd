//! `PostgresStore`: the `KvStore` over a pool of PostgreSQL connections.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use async_trait::async_trait;
use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use futures::future::{self, MaybeDone};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Statement;
use vss_core::proto::{
    DeleteObjectRequest, DeleteObjectResponse, GetObjectRequest, GetObjectResponse, KeyValue,
    ListKeyVersionsRequest, ListKeyVersionsResponse, PutObjectRequest, PutObjectResponse,
};
use vss_core::validate::{self, DeleteCondition, GetTarget, ListedKey, PutPlan, WriteCondition};
use vss_core::{deadline, KvStore, Quota, StoreLimits, Usage, UserToken, VssError};

use crate::shared::{SharedRead, SharedReads};
use crate::sql;
use crate::{migrations, PostgresConfig, PostgresError};

/// A VSS store in PostgreSQL.
///
/// Cheap to share behind an `Arc`; every request borrows one pooled connection.
/// See the crate documentation for the schema and the round trips of each call.
pub struct PostgresStore {
    pool: Pool,
    /// For cancel requests.
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    limits: StoreLimits,
    gauges: crate::measure::PoolGauges,
    /// Values of at least this many bytes are staged (see `sql`, "Staged values").
    stage_from: usize,
    /// The connections reads share (see `shared`).
    shared: Arc<SharedReads>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("pool", &self.pool.status())
            .field("limits", &self.limits)
            .finish()
    }
}

impl PostgresStore {
    /// Connects: creates the database if asked and missing, opens the pool,
    /// and brings the schema up to date (see the crate documentation on migrations).
    ///
    /// Fails when the database cannot be reached, or when its schema is newer than
    /// this binary ([`PostgresError::SchemaTooNew`]).
    pub async fn connect(config: PostgresConfig) -> Result<Self, PostgresError> {
        let tls = config.tls_connector()?;
        if config.create_database {
            create_database_if_missing(&config, tls.clone()).await?;
        }
        let manager = Manager::from_config(
            config.pg_config(&config.database)?,
            tls.clone(),
            // A connection the server closed (restart, failover, idle kill) reports
            // `is_closed` and is dropped on checkout, at no round trip.
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.wait_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|e| PostgresError::Pool(e.to_string()))?;
        let mut client = pool.get().await?;
        let applied = migrations::migrate(&mut client).await?;
        // Never serve an empty view of a reference server's data.
        crate::reference::guard(&mut client).await?;
        // Staging large values needs a temporary table: a role without the
        // TEMPORARY privilege sends them as parameters instead (more memory).
        let may_stage: bool = client
            .query_one(
                "SELECT has_database_privilege(current_database(), 'TEMPORARY')",
                &[],
            )
            .await?
            .try_get(0)?;
        if !may_stage {
            tracing::warn!(
                database = %config.database,
                "PostgreSQL: the role may not create temporary tables (the TEMPORARY privilege), \
                 so values of 1 MiB and more are sent as parameters, which costs the server about \
                 three times their size in memory while they are written; GRANT TEMPORARY ON \
                 DATABASE to the role to lower it"
            );
        }
        drop(client);
        tracing::info!(
            address = %config.address,
            database = %config.database,
            applied_migrations = ?applied,
            schema_version = migrations::SCHEMA_VERSION,
            "connected to PostgreSQL"
        );
        Ok(PostgresStore {
            shared: Arc::new(SharedReads::for_pool(config.max_connections.max(1))),
            pool,
            tls,
            limits: StoreLimits {
                max_value_size: MAX_VALUE_SIZE,
                enforces_quotas: true,
                ..StoreLimits::default()
            },
            gauges: Default::default(),
            stage_from: if may_stage {
                LARGE_VALUE_BYTES
            } else {
                usize::MAX
            },
        })
    }

    /// Sends values of at least `bytes` (at least 1) apart from their
    /// statements, in chunks of [`STAGE_CHUNK_BYTES`] (default
    /// [`LARGE_VALUE_BYTES`]): the driver then never holds more than a chunk
    /// beside the request's own copy of a value, where a value sent as a
    /// statement's parameter costs it two more copies. For tests that run every
    /// write through that path.
    /// (Without the TEMPORARY privilege, which staging needs, nothing is
    /// staged whatever this says.)
    pub fn with_staged_values_from(mut self, bytes: usize) -> Self {
        if self.stage_from != usize::MAX {
            self.stage_from = bytes.max(1);
        }
        self
    }

    /// The size from which values are staged, or `None` when the role may
    /// not create temporary tables and every value is a parameter.
    pub fn staged_values_from(&self) -> Option<usize> {
        (self.stage_from != usize::MAX).then_some(self.stage_from)
    }

    /// How many of the pool's connections reads share (a quarter of
    /// `max_connections`, none below four; see the crate documentation).
    pub fn shared_read_connections(&self) -> usize {
        self.shared.count()
    }

    /// A connection for one read statement: a shared one when reads share
    /// some, else one of the pool's.
    async fn reader(&self) -> Result<ReadConnection, VssError> {
        match self.shared.connection(&self.pool, || self.client()).await {
            Some(shared) => shared.map(ReadConnection::Shared),
            None => self
                .client()
                .await
                .map(|object| ReadConnection::Pooled(Box::new(Held::new(object)))),
        }
    }

    /// A pooled connection, waited for at most until the request's deadline
    /// (and the pool's `wait_timeout`).
    pub(crate) async fn client(&self) -> Result<Object, VssError> {
        self.gauges.record(&self.pool.status());
        match deadline::before(self.pool.get()).await {
            Some(client) => {
                client.map_err(|e| VssError::internal(format!("PostgreSQL connection pool: {e}")))
            }
            None => Err(VssError::internal(
                "PostgreSQL connection pool: no connection free before the request's deadline",
            )),
        }
    }
}

/// A connection that carried a value of at least this many bytes, in a put or
/// a get, is closed instead of going back to the pool. tokio-postgres keeps
/// the buffers a connection's messages grew to (the write buffer after a put,
/// the read buffer after a get) for the connection's life, so every pooled
/// connection would otherwise hold the largest value it ever carried, up to
/// three times over: 16 connections after 64 MiB puts held 2 GiB. The next
/// request opens a new connection (a few milliseconds, rare next to values
/// this size).
pub const LARGE_VALUE_BYTES: usize = 1 << 20;

/// The size of the chunks a staged value is sent in
/// ([`PostgresStore::with_staged_values_from`]).
pub const STAGE_CHUNK_BYTES: usize = 1 << 20;

/// Whether a connection that carried `carried_bytes` of values must be closed
/// rather than kept ([`LARGE_VALUE_BYTES`]).
pub(crate) fn too_large_to_keep(carried_bytes: usize) -> bool {
    carried_bytes >= LARGE_VALUE_BYTES
}

/// Closes `client` instead of pooling it when it carried a large value
/// ([`too_large_to_keep`]).
pub(crate) fn release(client: Object, carried_bytes: usize) {
    if too_large_to_keep(carried_bytes) {
        drop(Object::take(client));
    }
}

/// A pooled connection while a request uses it: it goes back to the pool
/// only by [`Held::release`]. Dropped before that (the request failed on it, or
/// its future was dropped: a timeout, a client gone, a shutdown), it is closed:
/// a statement may still be running on it, a staged put's transaction may be
/// open, a large value may be on its way into its buffers, and none of that
/// may reach the request that would use it next.
pub(crate) struct Held(Option<Object>);

impl Held {
    pub(crate) fn new(object: Object) -> Self {
        Held(Some(object))
    }

    /// A `Held` whose connection has gone already.
    pub(crate) fn released() -> Self {
        Held(None)
    }

    pub(crate) fn client(&self) -> Result<&Object, VssError> {
        self.0
            .as_ref()
            .ok_or_else(|| VssError::internal("PostgreSQL connection already released"))
    }

    /// Back to the pool, or closed if it carried a large value ([`release`]).
    pub(crate) fn release(mut self, carried_bytes: usize) {
        if let Some(object) = self.0.take() {
            release(object, carried_bytes);
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(object) = self.0.take() {
            drop(Object::take(object));
        }
    }
}

/// The connection of a read: see [`PostgresStore::reader`]. Released when
/// the read is answered; dropped otherwise (see [`Held`] and [`SharedRead`]).
enum ReadConnection {
    Pooled(Box<Held>),
    Shared(SharedRead),
}

impl ReadConnection {
    fn client(&self) -> Result<&Object, VssError> {
        match self {
            ReadConnection::Pooled(held) => held.client(),
            ReadConnection::Shared(shared) => shared.client(),
        }
    }

    /// The read is answered, having carried `carried_bytes` of values.
    fn release(self, carried_bytes: usize) {
        match self {
            ReadConnection::Pooled(held) => held.release(carried_bytes),
            ReadConnection::Shared(shared) => shared.release(carried_bytes),
        }
    }
}

/// A row of `sql::GET` as the owner of its value's bytes (column 1, a
/// `bytea`): a large value is answered from the buffer it arrived in.
struct ValueOfRow(tokio_postgres::Row);

impl AsRef<[u8]> for ValueOfRow {
    fn as_ref(&self) -> &[u8] {
        // The column was read as bytes before the row was wrapped.
        self.0.try_get::<_, &[u8]>(1).unwrap_or_default()
    }
}

/// The largest value: a `bytea` holds at most 1 GiB - 1 bytes (PostgreSQL's
/// largest field), less room for the rest of the bind message.
pub(crate) const MAX_VALUE_SIZE: usize = (1 << 30) - 1 - 64 * 1024;

/// Every database failure is an internal error (retried by clients); its cause is only logged.
pub(crate) fn internal(err: tokio_postgres::Error) -> VssError {
    internal_ref(&err)
}

fn is_condition_failure(err: &tokio_postgres::Error) -> bool {
    err.code().map(SqlState::code) == Some(sql::CONDITION_FAILED)
}

/// Prepares each statement once per connection (a cache hit costs nothing); the
/// misses are prepared concurrently, so in one round trip.
async fn prepare_all(
    client: &Object,
    sqls: &[&'static str],
) -> Result<HashMap<&'static str, Statement>, VssError> {
    let mut distinct: Vec<&'static str> = sqls.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let statements = future::try_join_all(distinct.iter().map(|text| client.prepare_cached(text)))
        .await
        .map_err(internal)?;
    Ok(distinct.into_iter().zip(statements).collect())
}

pub(crate) async fn prepare(client: &Object, text: &str) -> Result<Statement, VssError> {
    client.prepare_cached(text).await.map_err(internal)
}

type Param<'a> = Box<dyn ToSql + Sync + Send + 'a>;
type PgFuture<'a> = Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>> + Send + 'a>>;

/// One statement of a put, and the CONFLICT to answer if its condition fails.
struct PutStatement<'a> {
    sql: &'static str,
    params: Vec<Param<'a>>,
    conflict: Option<VssError>,
}

/// The statements of a put, in the order they must run: the global version
/// first, then items sorted by key, so that concurrent puts lock rows in one
/// order and cannot deadlock, the user's usage last (see `sql`). Creation
/// order still follows the request: items are numbered by their index in it.
///
/// A put of one item is that item's statement, which also counts the usage
/// (and judges the quota); one of several items ends with the statement that
/// counts their total. A put of a global version alone is its one statement
/// (it changes no usage).
///
/// Values of at least `stage_from` bytes are staged: their statements read
/// them from the put's `vss_staged` table, and they are answered apart, as
/// (key, value), to be sent there first.
fn put_statements<'a>(
    user: &'a [u8],
    plan: &'a PutPlan,
    quota: Quota,
    stage_from: usize,
) -> (Vec<PutStatement<'a>>, Vec<Staged<'a>>) {
    let store: &'a [u8] = plan.store_id.as_bytes();
    let mut staged = Vec::new();
    let mut statements = Vec::with_capacity(plan.writes.len() + plan.deletes.len() + 3);
    if let Some(expected) = plan.global_version {
        statements.push(PutStatement {
            sql: sql::BUMP_GLOBAL_VERSION,
            params: vec![Box::new(user), Box::new(store), Box::new(expected)],
            conflict: Some(VssError::Conflict(format!(
                "global version mismatch: the store's global version is not {expected}"
            ))),
        });
    }
    let alone = plan.writes.len() + plan.deletes.len() == 1;
    let limited = !quota.is_unlimited();
    let limits = || -> [Param<'a>; 2] {
        [
            Box::new(quota.max_bytes.map(limit)),
            Box::new(quota.max_keys.map(limit)),
        ]
    };
    let creates = plan
        .writes
        .iter()
        .any(|w| !matches!(w.condition, WriteCondition::VersionIs(_)));
    if creates && !alone {
        statements.push(PutStatement {
            sql: sql::NEXT_SEQUENCE,
            params: Vec::new(),
            conflict: None,
        });
    }
    let mut items: Vec<(&'a str, PutStatement<'a>)> = Vec::new();
    for (index, write) in plan.writes.iter().enumerate() {
        let key: &'a [u8] = write.key.as_bytes();
        let stage = !write.value.is_empty() && write.value.len() >= stage_from;
        // A staged value's statement takes an empty value and reads the rest.
        let value: &'a [u8] = if stage {
            staged.push(Staged {
                key,
                value: &write.value,
            });
            &[]
        } else {
            &write.value
        };
        let mut params: Vec<Param<'a>> = vec![Box::new(user), Box::new(store), Box::new(key)];
        let pick = |plain: &'static str, staged: &'static str| if stage { staged } else { plain };
        let (sql, conflict) = match write.condition {
            WriteCondition::Any => {
                params.push(Box::new(value));
                let sql = match (alone, limited) {
                    (true, false) => pick(sql::ANY_ALONE, sql::ANY_ALONE_STAGED),
                    (true, true) => pick(
                        sql::ANY_ALONE_UNDER_QUOTA,
                        sql::ANY_ALONE_UNDER_QUOTA_STAGED,
                    ),
                    (false, _) => pick(sql::ANY_IN_PUT, sql::ANY_IN_PUT_STAGED),
                };
                (sql, None)
            }
            WriteCondition::MustNotExist => {
                params.push(Box::new(value));
                let sql = match (alone, limited) {
                    (true, false) => pick(sql::CREATE_ALONE, sql::CREATE_ALONE_STAGED),
                    (true, true) => pick(
                        sql::CREATE_ALONE_UNDER_QUOTA,
                        sql::CREATE_ALONE_UNDER_QUOTA_STAGED,
                    ),
                    (false, _) => pick(sql::CREATE_IN_PUT, sql::CREATE_IN_PUT_STAGED),
                };
                (sql, Some(validate::write_conflict(&write.key)))
            }
            WriteCondition::VersionIs(version) => {
                params.push(Box::new(version));
                params.push(Box::new(value));
                let sql = match (alone, limited) {
                    (true, false) => pick(sql::UPDATE_ALONE, sql::UPDATE_ALONE_STAGED),
                    (true, true) => pick(
                        sql::UPDATE_ALONE_UNDER_QUOTA,
                        sql::UPDATE_ALONE_UNDER_QUOTA_STAGED,
                    ),
                    (false, _) => pick(sql::UPDATE_IN_PUT, sql::UPDATE_IN_PUT_STAGED),
                };
                (sql, Some(validate::write_conflict(&write.key)))
            }
        };
        if !alone && !matches!(write.condition, WriteCondition::VersionIs(_)) {
            params.push(Box::new(index as i64));
        }
        if alone && limited {
            params.extend(limits());
        }
        items.push((
            &write.key,
            PutStatement {
                sql,
                params,
                conflict,
            },
        ));
    }
    for delete in &plan.deletes {
        let key: &'a [u8] = delete.key.as_bytes();
        let mut params: Vec<Param<'a>> = vec![Box::new(user), Box::new(store), Box::new(key)];
        // A delete never raises usage: alone, it needs no quota.
        let sql = match (delete.condition, alone) {
            (DeleteCondition::VersionIs(version), alone) => {
                params.push(Box::new(version));
                if alone {
                    sql::DELETE_VERSION_ALONE
                } else {
                    sql::DELETE_VERSION_IN_PUT
                }
            }
            (DeleteCondition::Exists, true) => sql::DELETE_EXISTING_ALONE,
            (DeleteCondition::Exists, false) => sql::DELETE_EXISTING_IN_PUT,
        };
        items.push((
            &delete.key,
            PutStatement {
                sql,
                params,
                conflict: Some(validate::delete_conflict(&delete.key)),
            },
        ));
    }
    // Keys are distinct (validated), so this order is total. Byte order, like the index.
    items.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let several = items.len() > 1;
    statements.extend(items.into_iter().map(|(_, s)| s));
    if several {
        let mut params: Vec<Param<'a>> = vec![Box::new(user)];
        let sql = if limited {
            params.extend(limits());
            sql::COUNT_PUT_UNDER_QUOTA
        } else {
            sql::COUNT_PUT
        };
        statements.push(PutStatement {
            sql,
            params,
            conflict: None,
        });
    }
    (statements, staged)
}

/// A value sent apart from its write's statement: see [`put_statements`].
struct Staged<'a> {
    key: &'a [u8],
    value: &'a [u8],
}

fn items_changed(plan: &PutPlan) -> bool {
    !plan.writes.is_empty() || !plan.deletes.is_empty()
}

/// A quota limit as PostgreSQL compares it (a bigint).
fn limit(max: u64) -> i64 {
    i64::try_from(max).unwrap_or(i64::MAX)
}

/// Runs `statements`, pipelined in one round trip: alone, or as one
/// transaction (`BEGIN` first, then `COMMIT`, or `ROLLBACK` if a statement
/// could not even be sent). The first failure decides: the CONFLICT of its
/// statement when its condition failed, the quota's answer when its quota
/// check failed, else INTERNAL.
///
/// Bounded by the request's deadline ([`vss_core::deadline`]): nothing is
/// sent after it has passed, and if the answers have not all come back by
/// then, the running statement is cancelled (a cancel request on a new
/// connection) and the answer is what the database then did: success if the
/// transaction committed before the cancel, else the cancel's error with
/// nothing written. `Ran::cancelled` tells the caller to drop the connection,
/// so that a late cancel can never hit another request's statement.
///
/// With `staged` values, the transaction is opened first and they are sent
/// ([`stage`]); a failure before the statements are sent then leaves it open,
/// and `Ran::cancelled` has the connection dropped, which rolls it back.
async fn run_statements(
    client: &Object,
    tls: &tokio_postgres_rustls::MakeRustlsConnect,
    statements: &[PutStatement<'_>],
    quota: Quota,
    staged: &[Staged<'_>],
) -> Ran {
    let in_transaction = !staged.is_empty();
    let fail = |err: VssError| Ran {
        result: Err(err),
        cancelled: in_transaction,
    };
    if in_transaction {
        if let Err(err) = stage(client, staged).await {
            return fail(err);
        }
    }
    let alone = statements.len() == 1 && !in_transaction;
    let begin = !alone && !in_transaction;
    let texts: Vec<&'static str> = statements.iter().map(|s| s.sql).collect();
    // Preparing writes nothing; past the deadline, nothing is sent.
    let prepared = match deadline::before(prepare_all(client, &texts)).await {
        Some(Ok(prepared)) => prepared,
        Some(Err(err)) => return fail(err),
        None => return fail(deadline::missed("PostgreSQL write")),
    };
    if let Err(err) = deadline::ensure("PostgreSQL write") {
        return fail(err);
    }

    let mut slots: Vec<MaybeDone<PgFuture<'_>>> = Vec::with_capacity(statements.len() + 2);
    if begin {
        slots.push(future::maybe_done(Box::pin(client.batch_execute("BEGIN"))));
    }
    for statement in statements {
        let Some(prepared) = prepared.get(statement.sql) else {
            // Nothing was sent yet: BEGIN waits in `slots`, unpolled.
            return fail(VssError::internal("statement missing after preparation"));
        };
        let params = statement
            .params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync));
        slots.push(future::maybe_done(Box::pin(async move {
            client.execute_raw(prepared, params).await.map(|_| ())
        })));
    }
    // tokio-postgres sends a request when its future is first polled: send
    // them all, in order, before choosing how the transaction ends. A
    // statement that failed already (for example, a parameter that cannot be
    // encoded fails before it is sent) must not be followed by a COMMIT of
    // the others.
    poll_each_once(&mut slots).await;
    if !alone {
        let failed = slots
            .iter()
            .any(|slot| matches!(slot, MaybeDone::Done(Err(_))));
        let end = if failed { "ROLLBACK" } else { "COMMIT" };
        slots.push(future::maybe_done(Box::pin(client.batch_execute(end))));
    }

    let mut cancelled = false;
    {
        let all = wait_all(&mut slots);
        tokio::pin!(all);
        if deadline::before(all.as_mut()).await.is_none() {
            cancelled = true;
            if let Err(err) = client.cancel_token().cancel_query(tls.clone()).await {
                tracing::warn!(
                    error = %crate::error::describe(&err),
                    "PostgreSQL: cancelling a write past its deadline failed; waiting for its outcome"
                );
            }
            all.await;
        }
    }
    if cancelled {
        tracing::warn!("PostgreSQL: a write ran past the request's deadline and was cancelled");
    }

    // The statements after the first failure only failed because the
    // transaction was already aborted, and COMMIT then rolled back.
    let offset = usize::from(begin);
    for (i, slot) in slots.iter_mut().enumerate() {
        let err = match Pin::new(slot).take_output() {
            Some(Ok(())) => continue,
            Some(Err(err)) => err,
            None => {
                return Ran {
                    result: Err(VssError::internal("a pipelined statement did not finish")),
                    cancelled,
                }
            }
        };
        let statement = i.checked_sub(offset).and_then(|j| statements.get(j));
        let result = Err(match statement {
            Some(_) if is_quota_failure(&err) => quota_refusal(&err, quota),
            Some(PutStatement {
                conflict: Some(conflict),
                ..
            }) if is_condition_failure(&err) => conflict.clone(),
            _ => internal(err),
        });
        return Ran { result, cancelled };
    }
    Ran {
        result: Ok(()),
        cancelled,
    }
}

/// Opens a put's transaction, creates its `vss_staged` table and sends each
/// staged value there in chunks of [`STAGE_CHUNK_BYTES`], one chunk at a time,
/// so the driver never holds more than one (see `sql`, "Staged values"). An
/// error leaves the transaction open: the caller drops the connection.
async fn stage(client: &Object, staged: &[Staged<'_>]) -> Result<(), VssError> {
    // The transaction is never committed: it ends with the connection.
    let missed = || {
        VssError::internal(
            "PostgreSQL write: the request's deadline passed while a large value was being \
             sent; nothing was written",
        )
    };
    deadline::before(client.batch_execute(&format!("BEGIN; {}", sql::STAGE_TABLE)))
        .await
        .ok_or_else(missed)?
        .map_err(internal)?;
    let insert = deadline::before(prepare(client, sql::STAGE_CHUNK))
        .await
        .ok_or_else(missed)??;
    for value in staged {
        for (n, chunk) in value.value.chunks(STAGE_CHUNK_BYTES).enumerate() {
            let n = i32::try_from(n)
                .map_err(|_| VssError::internal("a staged value has too many chunks"))?;
            deadline::before(client.execute(&insert, &[&value.key, &n, &chunk]))
                .await
                .ok_or_else(missed)?
                .map_err(internal)?;
        }
    }
    Ok(())
}

/// What [`run_statements`] did.
struct Ran {
    /// The answer.
    result: Result<(), VssError>,
    /// Whether a cancel request was sent on the connection, or a transaction
    /// was left open on it: either way it must not be reused.
    cancelled: bool,
}

impl Ran {
    /// The answer, after dropping a connection that was sent a cancel, or
    /// that carried `carried_bytes` of values when they are large ([`release`]).
    fn finish(self, client: Held, carried_bytes: usize) -> Result<(), VssError> {
        if self.cancelled {
            drop(client); // closes it: see `Held`
        } else {
            client.release(carried_bytes);
        }
        self.result
    }
}

fn is_quota_failure(err: &tokio_postgres::Error) -> bool {
    err.code().map(SqlState::code) == Some(sql::QUOTA_EXCEEDED)
}

/// The answer to a put `vss_require_quota` refused: its message carries the
/// usage before and after, which vss-core's rule words.
fn quota_refusal(err: &tokio_postgres::Error, quota: Quota) -> VssError {
    let numbers: Option<Vec<u64>> = err
        .as_db_error()
        .map(|db| db.message().split(' ').map(str::parse).collect())
        .and_then(Result::ok);
    match numbers.as_deref() {
        Some(&[bytes_before, keys_before, bytes, keys]) => {
            let before = Usage {
                bytes: bytes_before,
                keys: keys_before,
            };
            let after = Usage { bytes, keys };
            match quota.admit(before, after) {
                Err(refusal) => refusal,
                Ok(()) => VssError::internal(format!(
                    "PostgreSQL refused a put that the quota admits ({before:?} to {after:?})"
                )),
            }
        }
        _ => internal_ref(err),
    }
}

fn internal_ref(err: &tokio_postgres::Error) -> VssError {
    VssError::internal(format!("PostgreSQL: {}", crate::error::describe(err)))
}

/// Polls every future once, in the given order.
///
/// tokio-postgres sends a request when its future is first polled and pipelines
/// everything queued on a connection, so this sends every statement, in order.
async fn poll_each_once(slots: &mut [MaybeDone<PgFuture<'_>>]) {
    future::poll_fn(|cx| {
        for slot in slots.iter_mut() {
            let _ = Pin::new(slot).poll(cx);
        }
        Poll::Ready(())
    })
    .await
}

/// Waits until every future is done.
async fn wait_all(slots: &mut [MaybeDone<PgFuture<'_>>]) {
    future::poll_fn(|cx| {
        let mut all_done = true;
        for slot in slots.iter_mut() {
            if Pin::new(slot).poll(cx).is_pending() {
                all_done = false;
            }
        }
        if all_done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

/// An array column of a listing page; empty when NULL.
fn array<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a tokio_postgres::Row,
    column: usize,
) -> Result<Vec<T>, VssError> {
    Ok(row
        .try_get::<_, Option<Vec<T>>>(column)
        .map_err(internal)?
        .unwrap_or_default())
}

pub(crate) fn decode_key(bytes: Vec<u8>) -> Result<String, VssError> {
    String::from_utf8(bytes).map_err(|_| VssError::internal("a stored key is not UTF-8"))
}

#[async_trait]
impl KvStore for PostgresStore {
    /// One round trip: a single-row primary-key lookup.
    async fn get(
        &self,
        user: &UserToken,
        req: GetObjectRequest,
    ) -> Result<GetObjectResponse, VssError> {
        let target = validate::get(&req)?;
        let reader = self.reader().await?;
        let client = reader.client()?;
        let user_bytes = user.as_str().as_bytes();
        let store = req.store_id.as_bytes();
        let value = match target {
            GetTarget::GlobalVersion => {
                let statement = prepare(client, sql::GET_GLOBAL_VERSION).await?;
                let row = client
                    .query_opt(&statement, &[&user_bytes, &store])
                    .await
                    .map_err(internal)?;
                reader.release(0);
                let version = match row {
                    Some(row) => row.try_get::<_, i64>(0).map_err(internal)?,
                    None => 0,
                };
                validate::global_version_key_value(version)
            }
            GetTarget::Key(key) => {
                let statement = prepare(client, sql::GET).await?;
                let row = client
                    .query_opt(&statement, &[&user_bytes, &store, &key.as_bytes()])
                    .await
                    .map_err(internal)?;
                let Some(row) = row else {
                    reader.release(0);
                    return Err(VssError::no_such_key(&key));
                };
                let version: i64 = row.try_get(0).map_err(internal)?;
                // Checked once here, so that the owner below always finds it.
                let length = row.try_get::<_, &[u8]>(1).map_err(internal)?.len();
                reader.release(length);
                KeyValue {
                    key,
                    version,
                    // The value stays in the row the driver read, not copied.
                    value: Bytes::from_owner(ValueOfRow(row)),
                }
            }
        };
        Ok(GetObjectResponse { value: Some(value) })
    }

    async fn put(
        &self,
        user: &UserToken,
        req: PutObjectRequest,
    ) -> Result<PutObjectResponse, VssError> {
        self.put_with_quota(user, req, Quota::UNLIMITED).await
    }

    /// One round trip: the statements of `put_statements`, pipelined between
    /// `BEGIN` and `COMMIT` (a put of one statement needs no transaction). A
    /// put with staged values first opens the transaction and sends them
    /// (`stage`), one round trip per chunk.
    async fn put_with_quota(
        &self,
        user: &UserToken,
        req: PutObjectRequest,
        quota: Quota,
    ) -> Result<PutObjectResponse, VssError> {
        let plan = validate::put(req, &self.limits)?;
        if !items_changed(&plan) && plan.global_version.is_none() {
            return Ok(PutObjectResponse {});
        }
        let user_bytes = user.as_str().as_bytes();
        let (statements, staged) = put_statements(user_bytes, &plan, quota, self.stage_from);
        // What the connection's buffers held: the values sent as parameters,
        // in one pipeline, and a chunk of the staged ones.
        let all: usize = plan.writes.iter().map(|w| w.value.len()).sum();
        let staged_bytes: usize = staged.iter().map(|s| s.value.len()).sum();
        let carried = all - staged_bytes + staged_bytes.min(STAGE_CHUNK_BYTES);
        let held = Held::new(self.client().await?);
        run_statements(held.client()?, &self.tls, &statements, quota, &staged)
            .await
            .finish(held, carried)?;
        Ok(PutObjectResponse {})
    }

    /// One round trip: one statement, the `DELETE`, which frees its usage.
    async fn delete(
        &self,
        user: &UserToken,
        req: DeleteObjectRequest,
    ) -> Result<DeleteObjectResponse, VssError> {
        let plan = validate::delete(req)?;
        let user_bytes = user.as_str().as_bytes();
        let store = plan.store_id.as_bytes();
        let key = plan.key.as_bytes();
        let delete = match plan.version {
            None => PutStatement {
                sql: sql::DELETE_OBJECT,
                params: vec![Box::new(user_bytes), Box::new(store), Box::new(key)],
                conflict: None,
            },
            Some(version) => PutStatement {
                sql: sql::DELETE_OBJECT_VERSION,
                params: vec![
                    Box::new(user_bytes),
                    Box::new(store),
                    Box::new(key),
                    Box::new(version),
                ],
                conflict: None,
            },
        };
        let held = Held::new(self.client().await?);
        run_statements(held.client()?, &self.tls, &[delete], Quota::UNLIMITED, &[])
            .await
            .finish(held, 0)?;
        Ok(DeleteObjectResponse {})
    }

    /// One round trip per page; the first page reads the global version in the
    /// same statement, so from the same snapshot, as its keys.
    async fn list_key_versions(
        &self,
        user: &UserToken,
        req: ListKeyVersionsRequest,
    ) -> Result<ListKeyVersionsResponse, VssError> {
        let plan = validate::list(user, req, &self.limits)?;
        let reader = self.reader().await?;
        let client = reader.client()?;
        let user_bytes = user.as_str().as_bytes();
        let store = plan.store_id.as_bytes();
        let limit = i64::try_from(plan.fetch_limit()).unwrap_or(i64::MAX);
        let prefix = plan.prefix.as_bytes();
        let range = if prefix.is_empty() {
            None
        } else {
            Some((
                prefix,
                sql::prefix_successor(prefix)
                    .ok_or_else(|| VssError::internal("a UTF-8 prefix has no successor"))?,
            ))
        };

        let row = match (plan.before_sequence, &range) {
            (None, None) => {
                let statement = prepare(client, sql::LIST_FIRST).await?;
                client
                    .query_one(&statement, &[&user_bytes, &store, &limit])
                    .await
            }
            (None, Some((start, end))) => {
                let statement = prepare(client, sql::LIST_FIRST_PREFIX).await?;
                client
                    .query_one(&statement, &[&user_bytes, &store, &limit, start, end])
                    .await
            }
            (Some(before), None) => {
                let statement = prepare(client, sql::LIST_NEXT).await?;
                client
                    .query_one(&statement, &[&user_bytes, &store, &before, &limit])
                    .await
            }
            (Some(before), Some((start, end))) => {
                let statement = prepare(client, sql::LIST_NEXT_PREFIX).await?;
                client
                    .query_one(
                        &statement,
                        &[&user_bytes, &store, &before, &limit, start, end],
                    )
                    .await
            }
        }
        .map_err(internal)?;
        reader.release(0);

        // First pages carry the global version in front of the arrays.
        let first = plan.before_sequence.is_none();
        let skip = usize::from(first);
        let global_version = if first {
            row.try_get::<_, Option<i64>>(0)
                .map_err(internal)?
                .unwrap_or(0)
        } else {
            0
        };
        // A page without keys has NULL arrays.
        let keys: Vec<Vec<u8>> = array(&row, skip)?;
        let versions: Vec<i64> = array(&row, skip + 1)?;
        let sequences: Vec<i64> = array(&row, skip + 2)?;
        if keys.len() != versions.len() || keys.len() != sequences.len() {
            return Err(VssError::internal(
                "a listing page's arrays differ in length",
            ));
        }
        let mut listed = keys
            .into_iter()
            .zip(versions)
            .zip(sequences)
            .map(|((key, version), sequence)| {
                Ok(ListedKey {
                    key: decode_key(key)?,
                    version,
                    sequence,
                })
            })
            .collect::<Result<Vec<_>, VssError>>()?;
        // array_agg does not promise the order of its input; at most a page to sort.
        listed.sort_unstable_by_key(|row| std::cmp::Reverse(row.sequence));
        Ok(plan.respond(listed, global_version))
    }

    fn limits(&self) -> StoreLimits {
        self.limits
    }

    /// `SELECT 1` on a pooled connection.
    async fn ready(&self) -> Result<(), VssError> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map_err(internal)?;
        Ok(())
    }

    async fn close(&self) -> Result<(), VssError> {
        self.shared.clear();
        self.pool.close();
        Ok(())
    }
}

/// Creates the VSS database from the default database when it is missing.
/// Servers starting together may race: losing the race is success.
async fn create_database_if_missing(
    config: &PostgresConfig,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
) -> Result<(), PostgresError> {
    let (client, driver) = connect_one(config, &config.default_database, tls).await?;
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_database WHERE datname = $1",
            &[&config.database],
        )
        .await?
        .is_some();
    if !exists {
        let create = format!("CREATE DATABASE {}", quote_identifier(&config.database));
        match client.batch_execute(&create).await {
            Ok(()) => tracing::info!(database = %config.database, "created PostgreSQL database"),
            Err(e)
                if e.code() == Some(&SqlState::DUPLICATE_DATABASE)
                    || e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {}
            Err(e) => return Err(e.into()),
        }
    }
    drop(client);
    let _ = driver.await;
    Ok(())
}

/// One connection outside the pool (for setup and admin work), and the task
/// driving it, which ends when the client is dropped.
pub(crate) async fn connect_one(
    config: &PostgresConfig,
    database: &str,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), PostgresError> {
    let (client, connection) = config.pg_config(database)?.connect(tls).await?;
    let driver = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("PostgreSQL admin connection ended: {e}");
        }
    });
    Ok((client, driver))
}

/// Quotes an SQL identifier (database names cannot be bound as parameters).
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store on a new database of `VSS_TEST_POSTGRES_URL`'s server.
    async fn fresh_store(label: &str) -> Option<PostgresStore> {
        let url = vss_core::conformance::service_url("VSS_TEST_POSTGRES_URL")?;
        let mut config = PostgresConfig::from_url(&url).unwrap();
        config.default_database = config.database.clone();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        config.database = format!("vss_u_{label}_{}_{nanos:x}", std::process::id());
        config.database.truncate(63);
        config.create_database = true;
        Some(PostgresStore::connect(config).await.unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_statement_that_cannot_be_sent_rolls_the_whole_put_back() {
        let Some(store) = fresh_store("unsent").await else {
            return;
        };
        let (user, store_id) = (b"u".as_slice(), b"s".as_slice());
        let statements = [
            PutStatement {
                sql: sql::BUMP_GLOBAL_VERSION,
                params: vec![Box::new(user), Box::new(store_id), Box::new(0i64)],
                conflict: None,
            },
            // $3 is a bigint: a text parameter fails to encode, on the
            // client, before anything of this statement is sent.
            PutStatement {
                sql: sql::BUMP_GLOBAL_VERSION,
                params: vec![Box::new(user), Box::new(store_id), Box::new("one")],
                conflict: None,
            },
        ];
        let client = store.client().await.unwrap();
        let ran = run_statements(&client, &store.tls, &statements, Quota::UNLIMITED, &[]).await;
        assert!(
            matches!(ran.result, Err(VssError::Internal(_))),
            "{:?}",
            ran.result
        );
        drop(client);
        // The first statement was sent and succeeded, but the put is all or nothing.
        let got = store
            .get(
                &UserToken::new("u").unwrap(),
                GetObjectRequest {
                    store_id: "s".into(),
                    key: validate::GLOBAL_VERSION_KEY.into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(got.value.unwrap().version, 0, "the global version moved");
        store.close().await.unwrap();
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_identifier("vss"), "\"vss\"");
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }

    fn kv(key: &str, version: i64) -> KeyValue {
        KeyValue {
            key: key.into(),
            version,
            value: Bytes::from_static(b"v"),
        }
    }

    #[test]
    fn put_statements_lock_in_key_order_and_number_by_request_order() {
        let plan = validate::put(
            PutObjectRequest {
                store_id: "s".into(),
                global_version: Some(3),
                transaction_items: vec![kv("c", 0), kv("a", -1), kv("b", 2)],
                delete_items: vec![kv("bb", -1)],
            },
            &StoreLimits::default(),
        )
        .unwrap();
        let quota = Quota {
            max_bytes: Some(10),
            max_keys: None,
        };
        let (statements, _) = put_statements(b"u", &plan, quota, LARGE_VALUE_BYTES);
        let texts: Vec<&str> = statements.iter().map(|s| s.sql).collect();
        assert_eq!(
            texts,
            [
                sql::BUMP_GLOBAL_VERSION,
                sql::NEXT_SEQUENCE,
                sql::ANY_IN_PUT,             // a, request index 1
                sql::UPDATE_IN_PUT,          // b
                sql::DELETE_EXISTING_IN_PUT, // bb
                sql::CREATE_IN_PUT,          // c, request index 0
                sql::COUNT_PUT_UNDER_QUOTA,
            ]
        );
        assert!(statements[2].conflict.is_none());
        assert!(statements[5].conflict.is_some());
        // The usage's parameters: the user and the two limits.
        assert_eq!(statements[6].params.len(), 3);
    }

    #[test]
    fn a_put_of_one_item_is_its_one_statement() {
        let plan = |items: Vec<KeyValue>, deletes: Vec<KeyValue>, global_version| {
            validate::put(
                PutObjectRequest {
                    store_id: "s".into(),
                    global_version,
                    transaction_items: items,
                    delete_items: deletes,
                },
                &StoreLimits::default(),
            )
            .unwrap()
        };
        let texts = |plan: &PutPlan, quota: Quota| -> Vec<&str> {
            put_statements(b"u", plan, quota, LARGE_VALUE_BYTES)
                .0
                .iter()
                .map(|s| s.sql)
                .collect()
        };
        let quota = Quota {
            max_bytes: None,
            max_keys: Some(1),
        };
        let unlimited = Quota::UNLIMITED;
        assert_eq!(
            texts(&plan(vec![], vec![], Some(0)), unlimited),
            [sql::BUMP_GLOBAL_VERSION]
        );
        assert_eq!(
            texts(&plan(vec![kv("k", -1)], vec![], None), unlimited),
            [sql::ANY_ALONE]
        );
        assert_eq!(
            texts(&plan(vec![kv("k", 0)], vec![], Some(4)), quota),
            [sql::BUMP_GLOBAL_VERSION, sql::CREATE_ALONE_UNDER_QUOTA]
        );
        assert_eq!(
            texts(&plan(vec![kv("k", 7)], vec![], None), quota),
            [sql::UPDATE_ALONE_UNDER_QUOTA]
        );
        // A delete never raises usage, so it is not judged.
        assert_eq!(
            texts(&plan(vec![], vec![kv("k", 7)], None), quota),
            [sql::DELETE_VERSION_ALONE]
        );
        assert_eq!(
            texts(&plan(vec![], vec![kv("k", -1)], None), unlimited),
            [sql::DELETE_EXISTING_ALONE]
        );
        assert_eq!(
            texts(&plan(vec![kv("j", 3)], vec![kv("k", -1)], None), unlimited),
            [
                sql::UPDATE_IN_PUT,
                sql::DELETE_EXISTING_IN_PUT,
                sql::COUNT_PUT
            ]
        );
    }
}
