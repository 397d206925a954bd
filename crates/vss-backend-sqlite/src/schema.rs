//! The versioned schema and its migrations.
//!
//! The schema version lives in `PRAGMA user_version` and the file is marked as
//! ours with `PRAGMA application_id`. Opening checks both before touching the
//! file, then applies the missing migrations in one `BEGIN IMMEDIATE`
//! transaction, so a failed upgrade leaves the previous version intact.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::SqliteError;

/// Marks a database file as a VSS store (`PRAGMA application_id`; ASCII "VSS1").
pub const APPLICATION_ID: i32 = 0x5653_5331;

/// Migration `i` takes the schema from version `i` to version `i + 1`.
/// Append new migrations; never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    // Version 1.
    //
    // vss_stores: one row per (user, store) that was ever given a global
    // version or a key. `last_sequence` is the creation sequence handed out
    // last; it only grows, so a re-created key sorts as the newest.
    //
    // vss_records: one row per key. `sequence` orders listings (newest first)
    // and is kept by updates. The BINARY collation compares keys bytewise.
    r#"
    CREATE TABLE vss_stores (
        user_token     TEXT    NOT NULL,
        store_id       TEXT    NOT NULL,
        global_version INTEGER NOT NULL DEFAULT 0,
        last_sequence  INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (user_token, store_id)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE vss_records (
        user_token TEXT    NOT NULL,
        store_id   TEXT    NOT NULL,
        key        TEXT    NOT NULL,
        version    INTEGER NOT NULL,
        value      BLOB    NOT NULL,
        sequence   INTEGER NOT NULL,
        PRIMARY KEY (user_token, store_id, key)
    ) STRICT;

    CREATE INDEX vss_records_by_sequence
        ON vss_records (user_token, store_id, sequence DESC);
    "#,
    // Version 2.
    //
    // vss_usage: what each user stores, for quotas: keys, and bytes of keys
    // plus values (the key's UTF-8 bytes). Counted here once for the data
    // already stored, in the migration's transaction; from then on every
    // write keeps it exact in the same transaction.
    r#"
    CREATE TABLE vss_usage (
        user_token TEXT    NOT NULL PRIMARY KEY,
        bytes      INTEGER NOT NULL,
        keys       INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;

    INSERT INTO vss_usage (user_token, bytes, keys)
        SELECT user_token, sum(length(CAST(key AS BLOB)) + length(value)), count(*)
        FROM vss_records GROUP BY user_token;
    "#,
];

/// The schema version this binary writes and understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

fn header(conn: &Connection) -> rusqlite::Result<(i32, i64)> {
    let application_id = conn.pragma_query_value(None, "application_id", |row| row.get(0))?;
    let user_version = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    Ok((application_id, user_version))
}

/// Refuses a file this binary must not change. Reads only: call it before
/// anything writes to the file (even switching it to WAL mode).
pub(crate) fn check(conn: &Connection, path: &Path) -> Result<(), SqliteError> {
    let (application_id, user_version) = header(conn).map_err(|source| SqliteError::Open {
        path: path.to_owned(),
        source,
    })?;
    check_header(path, application_id, user_version)
}

fn check_header(path: &Path, application_id: i32, user_version: i64) -> Result<(), SqliteError> {
    if application_id != 0 && application_id != APPLICATION_ID {
        return Err(SqliteError::NotVssDatabase {
            path: path.to_owned(),
            found: application_id,
        });
    }
    if user_version > SCHEMA_VERSION {
        return Err(SqliteError::SchemaTooNew {
            path: path.to_owned(),
            found: user_version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Brings the schema up to [`SCHEMA_VERSION`], all in one transaction.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), SqliteError> {
    let failed = |from: i64| {
        move |source| SqliteError::Migrate {
            path: path.to_owned(),
            from,
            to: SCHEMA_VERSION,
            source,
        }
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(failed(-1))?;
    // Read again under the write lock: another process may have migrated meanwhile.
    let (application_id, from) = header(&tx).map_err(failed(-1))?;
    check_header(path, application_id, from)?;
    if from == SCHEMA_VERSION {
        return Ok(());
    }
    let start = usize::try_from(from).unwrap_or(0);
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(start) {
        tx.execute_batch(sql).map_err(failed(from))?;
        tracing::info!(path = %path.display(), to = index + 1, "migrated the SQLite schema");
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID)
        .map_err(failed(from))?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(failed(from))?;
    tx.commit().map_err(failed(from))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn migration_2_counts_the_usage_of_data_already_stored() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(
            "INSERT INTO vss_records VALUES ('alice', 's', 'a', 1, x'0102', 1);
             INSERT INTO vss_records VALUES ('alice', 't', 'é', 3, x'', 1);
             INSERT INTO vss_records VALUES ('bob', 's', 'key', 1, zeroblob(1000), 1);",
        )
        .unwrap();
        migrate(&mut conn, Path::new(":memory:")).unwrap();
        let usage = |user: &str| {
            conn.query_row(
                "SELECT bytes, keys FROM vss_usage WHERE user_token = ?1",
                [user],
                |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)),
            )
            .unwrap()
        };
        // `a` + 2 bytes, `é` (2 bytes in UTF-8) + 0 bytes.
        assert_eq!(usage("alice"), (5, 2));
        assert_eq!(usage("bob"), (1003, 1));
    }
}
