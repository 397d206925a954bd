//! The single writer: one thread owns the only read-write connection and
//! applies queued write requests in batches.
//!
//! A batch is one `BEGIN IMMEDIATE … COMMIT` transaction holding every request
//! that was waiting (up to `max_batch`), each inside its own `SAVEPOINT`, so a
//! request whose condition fails is rolled back alone. Replies are sent only
//! after the `COMMIT` returned: an acknowledged write is in the WAL (and, with
//! `synchronous=FULL`, synced). Under load many requests share one commit and
//! one sync, which is why durable throughput grows with concurrency.

use std::collections::HashMap;

use rusqlite::types::ToSqlOutput;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};
use vss_core::validate::{DeletePlan, PutPlan};
use vss_core::{Quota, Usage, UserToken, VssError};

/// A change the writer applies.
#[derive(Debug)]
pub(crate) enum WriteOp {
    /// A `putObjects`, judged by a quota: all or nothing.
    Put(PutPlan, Quota),
    /// A `deleteObject`: idempotent.
    Delete(DeletePlan),
    /// A change of the admin interface.
    Admin(crate::admin::AdminOp),
}

/// One queued write and where its answer goes.
#[derive(Debug)]
pub(crate) struct WriteRequest {
    pub(crate) user: UserToken,
    pub(crate) op: WriteOp,
    pub(crate) reply: oneshot::Sender<Result<(), VssError>>,
    /// When the request's answer is due (see `vss_core::deadline`): not
    /// started after it.
    pub(crate) deadline: Option<std::time::Instant>,
}

impl WriteRequest {
    /// Whether the request must not be started: its caller gave up waiting
    /// (the reply's receiver is gone), or its deadline has passed. Answered
    /// then (if anyone listens): nothing was written.
    fn abandoned(&self) -> bool {
        self.reply.is_closed()
            || self
                .deadline
                .is_some_and(|deadline| std::time::Instant::now() >= deadline)
    }
}

/// Takes out of `batch` the requests that must not start, answering those
/// whose caller still waits.
fn drop_abandoned(batch: &mut Vec<WriteRequest>) {
    if !batch.iter().any(WriteRequest::abandoned) {
        return;
    }
    let (late, live): (Vec<_>, Vec<_>) = std::mem::take(batch)
        .into_iter()
        .partition(WriteRequest::abandoned);
    *batch = live;
    tracing::debug!(
        dropped = late.len(),
        "SQLite writes dropped before starting: past their deadline"
    );
    for request in late {
        let _ = request
            .reply
            .send(Err(vss_core::deadline::missed("SQLite write")));
    }
}

/// What the writer thread receives.
#[derive(Debug)]
pub(crate) enum Command {
    /// Apply a write.
    Write(WriteRequest),
    /// Finish what was queued before, checkpoint, close the connection and stop.
    Close(oneshot::Sender<Result<(), VssError>>),
}

/// Why one request of a batch was not applied.
pub(crate) enum Refusal {
    /// A condition did not hold (or the request broke a rule): answer with it.
    Rejected(VssError),
    /// The database failed.
    Database(rusqlite::Error),
}

impl From<rusqlite::Error> for Refusal {
    fn from(err: rusqlite::Error) -> Self {
        Refusal::Database(err)
    }
}

impl From<VssError> for Refusal {
    fn from(err: VssError) -> Self {
        Refusal::Rejected(err)
    }
}

/// Runs the writer until the store is closed or dropped.
pub(crate) fn run(mut conn: Connection, mut queue: mpsc::Receiver<Command>, max_batch: usize) {
    let mut batch = Vec::with_capacity(max_batch);
    loop {
        // Wait for work, then take whatever else is already queued.
        let mut close = None;
        match queue.blocking_recv() {
            Some(Command::Write(request)) => batch.push(request),
            Some(Command::Close(reply)) => close = Some(reply),
            // Every sender is gone: the store was dropped without close().
            None => return,
        }
        while close.is_none() && batch.len() < max_batch {
            match queue.try_recv() {
                Ok(Command::Write(request)) => batch.push(request),
                Ok(Command::Close(reply)) => close = Some(reply),
                Err(_) => break,
            }
        }
        drop_abandoned(&mut batch);
        if !batch.is_empty() {
            crate::measure::batch_taken(batch.len(), queue.len());
            apply_batch(&conn, std::mem::take(&mut batch));
        }
        if let Some(reply) = close {
            queue.close();
            // Requests that raced with close() are refused, not dropped silently.
            while let Ok(command) = queue.try_recv() {
                match command {
                    Command::Write(request) => {
                        let _ = request.reply.send(Err(closed()));
                    }
                    Command::Close(other) => {
                        let _ = other.send(Ok(()));
                    }
                }
            }
            let result = shutdown(&mut conn);
            let _ = reply.send(result);
            return;
        }
    }
}

/// The error of a write that arrives after close().
pub(crate) fn closed() -> VssError {
    VssError::internal("the SQLite store is closed")
}

fn shutdown(conn: &mut Connection) -> Result<(), VssError> {
    // Fold the WAL back into the database file and empty it.
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
        row.get::<_, i64>(0)
    })
    .map_err(|e| VssError::internal(format!("SQLite checkpoint at close failed: {e}")))?;
    tracing::debug!("SQLite writer checkpointed and stopped");
    Ok(())
}

/// Runs a statement without results (cached, as every statement here runs often).
pub(crate) fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// Applies one batch in one transaction and answers every request after the COMMIT.
pub(crate) fn apply_batch(conn: &Connection, batch: Vec<WriteRequest>) {
    let size = batch.len();
    let mut results = Vec::with_capacity(size);
    match run_transaction(conn, &batch, &mut results) {
        Ok(()) => {
            tracing::trace!(size, "SQLite write batch committed");
            for (request, result) in batch.into_iter().zip(results) {
                let _ = request.reply.send(result);
            }
        }
        Err(err) => {
            tracing::error!(size, error = %err, "SQLite write batch failed; nothing of it was written");
            if !conn.is_autocommit() {
                if let Err(rollback) = exec(conn, "ROLLBACK") {
                    tracing::error!(error = %rollback, "SQLite rollback after a failed batch failed");
                }
            }
            for request in batch {
                let _ = request.reply.send(Err(VssError::internal(format!(
                    "SQLite write failed: {err}"
                ))));
            }
        }
    }
}

/// Everything of a batch up to and including COMMIT. An error means the whole
/// batch is not written: the caller rolls back and answers Internal to all.
fn run_transaction(
    conn: &Connection,
    batch: &[WriteRequest],
    results: &mut Vec<Result<(), VssError>>,
) -> rusqlite::Result<()> {
    exec(conn, "BEGIN IMMEDIATE")?;
    for request in batch {
        exec(conn, "SAVEPOINT request")?;
        let outcome = match &request.op {
            WriteOp::Put(plan, quota) => apply_put(conn, &request.user, plan, *quota),
            WriteOp::Delete(plan) => apply_delete(conn, &request.user, plan),
            WriteOp::Admin(op) => crate::admin::apply(conn, &request.user, op),
        };
        match outcome {
            Ok(()) => {
                exec(conn, "RELEASE request")?;
                results.push(Ok(()));
            }
            Err(Refusal::Rejected(err)) => {
                exec(conn, "ROLLBACK TO request")?;
                exec(conn, "RELEASE request")?;
                results.push(Err(err));
            }
            Err(Refusal::Database(err)) => {
                if conn.is_autocommit() {
                    // SQLite rolled the whole transaction back (for example on a
                    // full disk): the earlier requests of the batch are gone too.
                    return Err(err);
                }
                tracing::error!(error = %err, "SQLite write request failed; rolled back alone");
                exec(conn, "ROLLBACK TO request")?;
                exec(conn, "RELEASE request")?;
                results.push(Err(VssError::internal(format!(
                    "SQLite write failed: {err}"
                ))));
            }
        }
    }
    exec(conn, "COMMIT")
}

/// A stored key's version and value length.
fn current(
    conn: &Connection,
    user: &UserToken,
    store_id: &str,
    key: &str,
) -> rusqlite::Result<Option<(i64, usize)>> {
    conn.prepare_cached(
        "SELECT version, length(value) FROM vss_records
         WHERE user_token = ?1 AND store_id = ?2 AND key = ?3",
    )?
    .query_row(params![user.as_str(), store_id, key], |row| {
        Ok((row.get(0)?, count(row.get(1)?) as usize))
    })
    .optional()
}

/// Room in a row for everything but the value: the user token, store id and
/// key (at most 840 bytes together), two integers and the record header.
const ROW_HEADROOM: usize = 4096;

/// The largest value a row of this connection can hold: SQLite's maximum
/// length of a string, BLOB or row (`SQLITE_LIMIT_LENGTH`), less the room of
/// the row's other columns.
pub(crate) fn largest_value(conn: &Connection) -> rusqlite::Result<usize> {
    let limit = conn.limit(rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH)?;
    Ok(usize::try_from(limit)
        .unwrap_or(0)
        .saturating_sub(ROW_HEADROOM))
}

/// A count or length as SQLite stores it (a signed 64-bit integer), back.
pub(crate) fn count(stored: i64) -> u64 {
    u64::try_from(stored).unwrap_or(0)
}

/// A count or length as SQLite stores it: a signed 64-bit integer.
fn stored(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// A user's usage as stored (nothing stored: zero).
pub(crate) fn usage(conn: &Connection, user: &str) -> rusqlite::Result<Usage> {
    let stored = conn
        .prepare_cached("SELECT bytes, keys FROM vss_usage WHERE user_token = ?1")?
        .query_row(params![user], |row| {
            Ok(Usage {
                bytes: count(row.get(0)?),
                keys: count(row.get(1)?),
            })
        })
        .optional()?;
    Ok(stored.unwrap_or_default())
}

pub(crate) fn set_usage(conn: &Connection, user: &str, usage: Usage) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO vss_usage (user_token, bytes, keys) VALUES (?1, ?2, ?3)
         ON CONFLICT (user_token) DO UPDATE SET bytes = excluded.bytes, keys = excluded.keys",
    )?
    .execute(params![user, stored(usage.bytes), stored(usage.keys)])?;
    Ok(())
}

/// Values at least this large are written in place (and read, see
/// `read::get`) through SQLite's incremental BLOB I/O: the row gets a
/// zero-filled BLOB of the value's length, then SQLite's incremental BLOB I/O
/// writes the value into its pages. Bound as a parameter, SQLite would copy the
/// value once to bind it and again to build the row, so a large put would
/// cost three times its size in memory instead of about once (the request's).
pub(crate) const STREAMED_VALUE: usize = 256 * 1024;

/// Writes one record: an update of the key's row when `sequence` is `None`
/// (its creation sequence stays), else a new row with that sequence. Values
/// of at least [`STREAMED_VALUE`] bytes are written in place.
fn write_record(
    conn: &Connection,
    (u, s, key): (&str, &str, &str),
    version: i64,
    value: &[u8],
    sequence: Option<i64>,
) -> rusqlite::Result<()> {
    if value.len() < STREAMED_VALUE {
        match sequence {
            None => conn
                .prepare_cached(
                    "UPDATE vss_records SET version = ?4, value = ?5
                     WHERE user_token = ?1 AND store_id = ?2 AND key = ?3",
                )?
                .execute(params![u, s, key, version, value])?,
            Some(sequence) => conn
                .prepare_cached(
                    "INSERT INTO vss_records (user_token, store_id, key, version, value, sequence)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![u, s, key, version, value, sequence])?,
        };
        return Ok(());
    }
    // A zero-filled BLOB of the value's length, then the value into its pages.
    let len = i32::try_from(value.len())
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let zeros = ToSqlOutput::ZeroBlob(len);
    let rowid: i64 = match sequence {
        None => conn
            .prepare_cached(
                "UPDATE vss_records SET version = ?4, value = ?5
                 WHERE user_token = ?1 AND store_id = ?2 AND key = ?3 RETURNING rowid",
            )?
            .query_row(params![u, s, key, version, zeros], |row| row.get(0))?,
        Some(sequence) => conn
            .prepare_cached(
                "INSERT INTO vss_records (user_token, store_id, key, version, value, sequence)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING rowid",
            )?
            .query_row(params![u, s, key, version, zeros, sequence], |row| {
                row.get(0)
            })?,
    };
    conn.blob_open(rusqlite::MAIN_DB, "vss_records", "value", rowid, false)?
        .write_at(value, 0)
}

/// Checks every condition of the plan, then applies all of it.
fn apply_put(
    conn: &Connection,
    user: &UserToken,
    plan: &PutPlan,
    quota: Quota,
) -> Result<(), Refusal> {
    let (u, s) = (user.as_str(), plan.store_id.as_str());
    // Value lengths of the keys the check phase reads, for the usage.
    let mut lengths: HashMap<String, Option<usize>> = HashMap::new();
    let current = plan.check::<Refusal>(
        || {
            let stored = conn
                .prepare_cached(
                    "SELECT global_version FROM vss_stores WHERE user_token = ?1 AND store_id = ?2",
                )?
                .query_row(params![u, s], |row| row.get(0))
                .optional()?;
            Ok(stored.unwrap_or(0))
        },
        |key| {
            let stored = current(conn, user, s, key)?;
            lengths.insert(key.to_owned(), stored.map(|(_, len)| len));
            Ok(stored.map(|(version, _)| version))
        },
    )?;
    let before = usage(conn, u)?;
    let after = plan.usage_after(before, |key| {
        Ok::<_, Refusal>(lengths.get(key).copied().flatten())
    })?;
    quota.admit(before, after)?;
    if after != before {
        set_usage(conn, u, after)?;
    }

    // New keys get the next creation sequences of the store, in request order.
    // At most a thousand items, so the count fits.
    let created = current.iter().filter(|v| v.is_none()).count() as i64;
    let mut next_sequence = 0;
    if created > 0 {
        let last: i64 = conn
            .prepare_cached(
                "INSERT INTO vss_stores (user_token, store_id, last_sequence) VALUES (?1, ?2, ?3)
                 ON CONFLICT (user_token, store_id)
                 DO UPDATE SET last_sequence = last_sequence + excluded.last_sequence
                 RETURNING last_sequence",
            )?
            .query_row(params![u, s, created], |row| row.get(0))?;
        next_sequence = last - created + 1;
    }
    for (write, version) in plan.writes.iter().zip(current) {
        let new_version = write.condition.new_version();
        let value: &[u8] = &write.value;
        let sequence = version.is_none().then_some(next_sequence);
        if sequence.is_some() {
            next_sequence += 1;
        }
        write_record(conn, (u, s, &write.key), new_version, value, sequence)?;
    }
    for delete in &plan.deletes {
        conn.prepare_cached(
            "DELETE FROM vss_records WHERE user_token = ?1 AND store_id = ?2 AND key = ?3",
        )?
        .execute(params![u, s, delete.key])?;
    }
    if let Some(expected) = plan.global_version {
        conn.prepare_cached(
            "INSERT INTO vss_stores (user_token, store_id, global_version) VALUES (?1, ?2, ?3)
             ON CONFLICT (user_token, store_id)
             DO UPDATE SET global_version = excluded.global_version",
        )?
        .execute(params![u, s, expected.saturating_add(1)])?;
    }
    Ok(())
}

/// Deletes the key when present (and of the given version, if any); never fails for a mismatch.
fn apply_delete(conn: &Connection, user: &UserToken, plan: &DeletePlan) -> Result<(), Refusal> {
    let freed = conn
        .prepare_cached(
            "DELETE FROM vss_records
             WHERE user_token = ?1 AND store_id = ?2 AND key = ?3 AND (?4 IS NULL OR version = ?4)
             RETURNING length(value)",
        )?
        .query_row(
            params![user.as_str(), plan.store_id, plan.key, plan.version],
            |row| row.get::<_, i64>(0),
        )
        .optional()?;
    if let Some(len) = freed {
        let len = count(len) as usize;
        let before = usage(conn, user.as_str())?;
        set_usage(
            conn,
            user.as_str(),
            before.minus(Usage::of_item(&plan.key, len)),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use bytes::Bytes;
    use vss_core::proto::{KeyValue, PutObjectRequest};
    use vss_core::StoreLimits;

    use super::*;

    fn plan(items: Vec<(&str, i64)>, global_version: Option<i64>) -> PutPlan {
        let req = PutObjectRequest {
            store_id: "s".into(),
            global_version,
            transaction_items: items
                .into_iter()
                .map(|(key, version)| KeyValue {
                    key: key.into(),
                    version,
                    value: Bytes::from_static(b"v"),
                })
                .collect(),
            delete_items: vec![],
        };
        vss_core::validate::put(req, &StoreLimits::default()).unwrap()
    }

    fn request(plan: PutPlan) -> (WriteRequest, oneshot::Receiver<Result<(), VssError>>) {
        let (reply, answer) = oneshot::channel();
        let user = UserToken::new("u").unwrap();
        (
            WriteRequest {
                user,
                op: WriteOp::Put(plan, Quota::UNLIMITED),
                reply,
                deadline: None,
            },
            answer,
        )
    }

    fn database() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn, std::path::Path::new(":memory:")).unwrap();
        conn
    }

    fn version(conn: &Connection, key: &str) -> Option<i64> {
        current(conn, &UserToken::new("u").unwrap(), "s", key)
            .unwrap()
            .map(|(version, _)| version)
    }

    #[test]
    fn large_values_are_written_in_place_and_read_back_whole() {
        let conn = database();
        let user = UserToken::new("u").unwrap();
        let value = |len: usize, seed: u8| -> Vec<u8> {
            (0..len)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                .collect()
        };
        let put = |key: &str, version: i64, bytes: Vec<u8>| {
            let req = PutObjectRequest {
                store_id: "s".into(),
                global_version: None,
                transaction_items: vec![KeyValue {
                    key: key.into(),
                    version,
                    value: Bytes::from(bytes),
                }],
                delete_items: vec![],
            };
            let (request, mut answer) =
                request(vss_core::validate::put(req, &StoreLimits::default()).unwrap());
            apply_batch(&conn, vec![request]);
            answer.try_recv().unwrap().unwrap();
        };
        let stored = |key: &str| crate::read::get(&conn, &user, "s", key.into()).unwrap();
        // Created large, overwritten larger, then smaller than the threshold, then large again.
        for (version, len, seed) in [
            (0, STREAMED_VALUE, 1),
            (1, 3 * STREAMED_VALUE + 7, 2),
            (2, 10, 3),
            (3, STREAMED_VALUE + 1, 4),
        ] {
            put("big", version, value(len, seed));
            let got = stored("big");
            assert_eq!(got.version, version + 1);
            assert_eq!(got.value.len(), len);
            assert!(
                got.value[..] == value(len, seed)[..],
                "value {seed} read back changed"
            );
        }
        // The usage counts the value's real length.
        let usage = usage(&conn, "u").unwrap();
        assert_eq!(usage.bytes, (STREAMED_VALUE + 1 + "big".len()) as u64);
    }

    #[test]
    fn a_write_past_its_deadline_or_given_up_is_never_started() {
        let conn = database();
        let (mut late, mut late_answer) = request(plan(vec![("late", 0)], None));
        late.deadline = Some(std::time::Instant::now());
        let (abandoned, abandoned_answer) = request(plan(vec![("abandoned", 0)], None));
        drop(abandoned_answer);
        let (mut on_time, mut on_time_answer) = request(plan(vec![("on-time", 0)], None));
        on_time.deadline = Some(std::time::Instant::now() + std::time::Duration::from_secs(60));
        let mut batch = vec![late, abandoned, on_time];
        drop_abandoned(&mut batch);
        apply_batch(&conn, batch);
        let refused = late_answer.try_recv().unwrap().unwrap_err();
        assert!(
            refused.to_string().contains("nothing was written"),
            "{refused}"
        );
        on_time_answer.try_recv().unwrap().unwrap();
        assert_eq!(version(&conn, "late"), None);
        assert_eq!(version(&conn, "abandoned"), None);
        assert_eq!(version(&conn, "on-time"), Some(1));
    }

    #[test]
    fn the_largest_value_fits_a_row_with_the_longest_names() {
        let conn = database();
        // A lower maximum than the default 1e9, to write it here.
        conn.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH, 1 << 20)
            .unwrap();
        let largest = largest_value(&conn).unwrap();
        assert_eq!(largest, (1 << 20) - ROW_HEADROOM);
        let user = UserToken::new("u".repeat(UserToken::MAX_LEN)).unwrap();
        let req = PutObjectRequest {
            store_id: "s".repeat(vss_core::validate::MAX_STORE_ID_LEN),
            global_version: None,
            transaction_items: vec![KeyValue {
                key: "k".repeat(vss_core::validate::MAX_KEY_LEN),
                version: 0,
                value: Bytes::from(vec![1u8; largest]),
            }],
            delete_items: vec![],
        };
        let limits = StoreLimits {
            max_value_size: largest,
            ..StoreLimits::default()
        };
        let plan = vss_core::validate::put(req.clone(), &limits).unwrap();
        let (reply, mut answer) = oneshot::channel();
        apply_batch(
            &conn,
            vec![WriteRequest {
                user: user.clone(),
                op: WriteOp::Put(plan, Quota::UNLIMITED),
                reply,
                deadline: None,
            }],
        );
        answer.try_recv().unwrap().unwrap();
        // The limit is SQLite's: a value of the whole limit and one byte is refused.
        let too_big = vec![1u8; (1 << 20) + 1];
        let refused = conn.execute(
            "INSERT INTO vss_records VALUES ('u', 's', 'big', 1, ?1, 1)",
            params![too_big],
        );
        assert!(refused.is_err(), "SQLite took a value over its limit");
        assert_eq!(
            usage(&conn, user.as_str()).unwrap(),
            Usage::of_item(&"k".repeat(vss_core::validate::MAX_KEY_LEN), largest)
        );
    }

    #[test]
    fn one_failed_request_does_not_disturb_its_batch() {
        let conn = database();
        let (batch, answers): (Vec<_>, Vec<_>) = [
            plan(vec![("a", 0)], None),
            // Fails halfway: "b" would be written, then "a" conflicts.
            plan(vec![("b", 0), ("a", 0)], None),
            plan(vec![("a", 1), ("c", 0)], Some(0)),
            // Wrong global version: nothing of it may land.
            plan(vec![("d", 0)], Some(0)),
        ]
        .into_iter()
        .map(request)
        .unzip();
        apply_batch(&conn, batch);
        let results: Vec<_> = answers
            .into_iter()
            .map(|mut a| a.try_recv().unwrap())
            .collect();
        assert!(results[0].is_ok());
        assert!(
            matches!(results[1], Err(VssError::Conflict(_))),
            "{results:?}"
        );
        assert!(results[2].is_ok());
        assert!(
            matches!(results[3], Err(VssError::Conflict(_))),
            "{results:?}"
        );
        assert_eq!(version(&conn, "a"), Some(2));
        assert_eq!(version(&conn, "b"), None);
        assert_eq!(version(&conn, "c"), Some(1));
        assert_eq!(version(&conn, "d"), None);
        assert!(conn.is_autocommit(), "the batch transaction is still open");
    }

    #[test]
    fn a_failed_commit_answers_internal_to_the_whole_batch() {
        let conn = database();
        // Writing the key `poison` breaks a deferred foreign key, which only
        // the COMMIT checks: every request succeeds, then the COMMIT fails.
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE child (id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);
             CREATE TRIGGER poison AFTER INSERT ON vss_records WHEN NEW.key = 'poison'
             BEGIN INSERT INTO child VALUES (1); END;",
        )
        .unwrap();
        let (batch, answers): (Vec<_>, Vec<_>) =
            [plan(vec![("a", 0)], None), plan(vec![("poison", 0)], None)]
                .into_iter()
                .map(request)
                .unzip();
        apply_batch(&conn, batch);
        for mut answer in answers {
            assert!(matches!(
                answer.try_recv().unwrap(),
                Err(VssError::Internal(_))
            ));
        }
        assert!(conn.is_autocommit(), "the failed batch was not rolled back");
        assert_eq!(version(&conn, "a"), None);
        assert_eq!(version(&conn, "poison"), None);
    }

    #[test]
    fn a_batch_that_cannot_begin_answers_internal() {
        let conn = database();
        // Already inside a transaction: BEGIN IMMEDIATE fails.
        conn.execute_batch("BEGIN").unwrap();
        let (request, mut answer) = request(plan(vec![("a", 0)], None));
        apply_batch(&conn, vec![request]);
        assert!(matches!(
            answer.try_recv().unwrap(),
            Err(VssError::Internal(_))
        ));
        assert!(conn.is_autocommit());
        assert_eq!(version(&conn, "a"), None);
    }
}
