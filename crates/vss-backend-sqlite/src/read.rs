//! Reads, run on the read-only connections of the pool.

use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension};
use vss_core::proto::{KeyValue, ListKeyVersionsResponse};
use vss_core::validate::{ListPlan, ListedKey};
use vss_core::{UserToken, VssError};

use crate::writer::STREAMED_VALUE;

fn db(err: rusqlite::Error) -> VssError {
    VssError::internal(format!("SQLite read failed: {err}"))
}

/// The global version of a store, 0 when it was never written.
pub(crate) fn global_version(
    conn: &Connection,
    user: &UserToken,
    store_id: &str,
) -> Result<i64, VssError> {
    Ok(conn
        .prepare_cached(
            "SELECT global_version FROM vss_stores WHERE user_token = ?1 AND store_id = ?2",
        )
        .map_err(db)?
        .query_row(params![user.as_str(), store_id], |row| row.get(0))
        .optional()
        .map_err(db)?
        .unwrap_or(0))
}

/// One key with its version and value, or NO_SUCH_KEY.
pub(crate) fn get(
    conn: &Connection,
    user: &UserToken,
    store_id: &str,
    key: String,
) -> Result<KeyValue, VssError> {
    // A value of STREAMED_VALUE bytes or more comes back as NULL here, and
    // is read below straight into its own buffer: read as a column, SQLite
    // would first assemble it in a buffer of its own, a second copy.
    let found: Option<(i64, Option<Vec<u8>>)> = conn
        .prepare_cached(
            "SELECT version, CASE WHEN length(value) < ?4 THEN value END
             FROM vss_records WHERE user_token = ?1 AND store_id = ?2 AND key = ?3",
        )
        .map_err(db)?
        .query_row(
            params![user.as_str(), store_id, key, STREAMED_VALUE as i64],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(db)?;
    match found {
        Some((version, Some(value))) => Ok(KeyValue {
            key,
            version,
            value: Bytes::from(value),
        }),
        Some((_, None)) => get_large(conn, user, store_id, key),
        None => Err(VssError::no_such_key(&key)),
    }
}

/// A record whose value is large: its version and length, then the value
/// through SQLite's incremental BLOB I/O, all in one read transaction (one
/// snapshot, so a concurrent overwrite cannot mix two values).
fn get_large(
    conn: &Connection,
    user: &UserToken,
    store_id: &str,
    key: String,
) -> Result<KeyValue, VssError> {
    conn.execute_batch("BEGIN").map_err(db)?;
    let read = (|| {
        let found: Option<(i64, i64, i64)> = conn
            .prepare_cached(
                "SELECT version, length(value), rowid FROM vss_records
                 WHERE user_token = ?1 AND store_id = ?2 AND key = ?3",
            )?
            .query_row(params![user.as_str(), store_id, key], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()?;
        let Some((version, len, rowid)) = found else {
            return Ok(None);
        };
        let mut value = vec![0u8; usize::try_from(len).unwrap_or(0)];
        conn.blob_open(rusqlite::MAIN_DB, "vss_records", "value", rowid, true)?
            .read_at_exact(&mut value, 0)?;
        Ok(Some((version, value)))
    })();
    // A read transaction's end cannot lose anything; it must only not stay open.
    let end = conn.execute_batch("COMMIT").map_err(db);
    let found = read.map_err(db)?;
    end?;
    match found {
        Some((version, value)) => Ok(KeyValue {
            key,
            version,
            value: Bytes::from(value),
        }),
        // Deleted between the two reads.
        None => Err(VssError::no_such_key(&key)),
    }
}

/// One page of a listing. The global version and the rows are read in one
/// read transaction, the global version first, so both come from one snapshot.
pub(crate) fn list(
    conn: &mut Connection,
    user: &UserToken,
    plan: &ListPlan,
) -> Result<ListKeyVersionsResponse, VssError> {
    // A savepoint, not BEGIN: the reader may already hold a read transaction
    // for its whole batch; either way both reads come from one snapshot.
    let tx = conn.savepoint().map_err(db)?;
    let global_version = if plan.first_page {
        global_version(&tx, user, &plan.store_id)?
    } else {
        0
    };
    let before = plan.before_sequence.unwrap_or(i64::MAX);
    let limit = i64::try_from(plan.fetch_limit()).unwrap_or(i64::MAX);
    let prefix = plan.prefix.as_bytes();
    let prefix_len = i64::try_from(prefix.len()).unwrap_or(i64::MAX);
    // The prefix is compared as bytes (substr of a BLOB counts bytes), so every
    // character, `%`, `_` and `\` included, matches only itself.
    let rows = tx
        .prepare_cached(
            "SELECT key, version, sequence FROM vss_records
             WHERE user_token = ?1 AND store_id = ?2 AND sequence < ?3
               AND (?4 = 0 OR substr(CAST(key AS BLOB), 1, ?4) = ?5)
             ORDER BY sequence DESC
             LIMIT ?6",
        )
        .map_err(db)?
        .query_map(
            params![
                user.as_str(),
                plan.store_id,
                before,
                prefix_len,
                prefix,
                limit
            ],
            |row| {
                Ok(ListedKey {
                    key: row.get(0)?,
                    version: row.get(1)?,
                    sequence: row.get(2)?,
                })
            },
        )
        .map_err(db)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(db)?;
    tx.commit().map_err(db)?;
    Ok(plan.respond(rows, global_version))
}
