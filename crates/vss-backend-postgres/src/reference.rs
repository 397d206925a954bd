//! The reference server's data, and switching from it and back.
//!
//! The reference VSS server (lightningdevkit/vss-server) keeps every record in
//! one table of the same database, `vss_db (user_token, store_id, key, value,
//! version, created_at, last_updated_at, sort_order)`: a store's global version
//! is the row whose key is `global_version`, and listings are newest
//! `sort_order` first. This server's tables are `vss_objects` and `vss_stores`,
//! so pointed at a reference database it would see none of that data. Three
//! rules keep a wallet from ever being served an empty view of it:
//!
//! - The guard run by every [`crate::PostgresStore::connect`]: when `vss_db`
//!   exists, the store opens only if [`import_reference`] has copied it and
//!   `vss_db` is unchanged since (same rows, newest `sort_order`, newest
//!   `created_at` and `last_updated_at`, read in the copy's own snapshot), and
//!   the data was not exported back since. Otherwise it refuses, saying which
//!   command to run. The first server that opens records when it started serving.
//! - [`import_reference`] makes `vss_objects`/`vss_stores` exactly what `vss_db`
//!   holds, in one transaction on one snapshot: keys, values, versions, global
//!   versions, and listing order (`sequence = sort_order * 1024`). Running it
//!   again repeats the copy (idempotent; a crash rolls the whole pass back, so
//!   running it again is also how it resumes). It is safe while the reference
//!   server still serves: writes after the snapshot change `vss_db`, which the
//!   guard then notices, so the cut-over is: import, stop the reference, import
//!   again (the final pass), start this server. Once this server has served
//!   from the database, an import would overwrite its writes and is refused.
//! - [`export_reference`] is the way back: it makes `vss_db` exactly what this
//!   server holds (the reference's table must exist: start the reference once
//!   so its migrations create it), with `sort_order` following the listing
//!   order, and marks the data as exported, after which this server refuses to
//!   open until it is imported again.
//!
//! User tokens are copied as they are, except the reference's user of
//! unauthenticated builds, `unauth-user`, which becomes this server's
//! unauthenticated user (and back on export).

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient, IsolationLevel, Transaction};
use vss_core::validate::GLOBAL_VERSION_KEY;

use crate::migrations::{self, MIGRATION_LOCK};
use crate::store::connect_one;
use crate::{PostgresConfig, PostgresError};

/// The reference server's table.
pub const REFERENCE_TABLE: &str = "vss_db";

/// The user the reference server's unauthenticated build stores everything under.
pub const REFERENCE_UNAUTHENTICATED_USER: &str = "unauth-user";

/// The command that imports the reference's data, as error messages name it.
const IMPORT_COMMAND: &str = "vss-admin import-reference";

/// What an import or export copied.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReferenceReport {
    /// Keys copied (global version rows not counted).
    pub keys: u64,
    /// Stores whose global version was copied.
    pub global_versions: u64,
    /// Distinct users.
    pub users: u64,
    /// Distinct stores (user and store id).
    pub stores: u64,
    /// Things copied that a client may not be able to reach, for the operator.
    pub warnings: Vec<String>,
}

/// `vss_db` as it is now: rows, newest sort order and times. Any write to the
/// table changes it (an insert raises the newest `sort_order`, an update the
/// newest `last_updated_at`, a delete lowers the count). `None`: no `vss_db`.
async fn fingerprint(client: &impl GenericClient) -> Result<Option<(String, i64)>, PostgresError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('vss_db') IS NOT NULL", &[])
        .await?
        .try_get(0)?;
    if !exists {
        return Ok(None);
    }
    let order = if has_sort_order(client).await? {
        "max(sort_order)"
    } else {
        "NULL::bigint"
    };
    let row = client
        .query_one(
            &format!(
                "SELECT count(*), concat_ws('/', count(*), {order}, \
                 extract(epoch FROM max(created_at)), extract(epoch FROM max(last_updated_at))) \
                 FROM vss_db"
            ),
            &[],
        )
        .await?;
    Ok(Some((row.try_get(1)?, row.try_get(0)?)))
}

/// Whether `vss_db` has the `sort_order` column (the reference added it to
/// list newest first; older databases list by key and lack it).
async fn has_sort_order(client: &impl GenericClient) -> Result<bool, PostgresError> {
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute \
             WHERE attrelid = 'vss_db'::regclass AND attname = 'sort_order' AND NOT attisdropped)",
            &[],
        )
        .await?
        .try_get(0)?)
}

/// The last import or export.
struct State {
    exported: bool,
    fingerprint: String,
    done_at: String,
    serving_since: Option<String>,
}

async fn state(client: &impl GenericClient) -> Result<Option<State>, PostgresError> {
    let row = client
        .query_opt(
            "SELECT state, source_fingerprint, done_at::text, serving_since::text \
             FROM vss_reference_import FOR UPDATE",
            &[],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(State {
        exported: row.try_get::<_, String>(0)? == "exported",
        fingerprint: row.try_get(1)?,
        done_at: row.try_get(2)?,
        serving_since: row.try_get(3)?,
    }))
}

async fn record_state(
    client: &impl GenericClient,
    state: &str,
    fingerprint: &str,
    rows: i64,
) -> Result<(), PostgresError> {
    client
        .execute(
            "INSERT INTO vss_reference_import (state, source_fingerprint, source_rows) \
             VALUES ($1, $2, $3) \
             ON CONFLICT (singleton) DO UPDATE SET state = $1, source_fingerprint = $2, \
             source_rows = $3, done_at = now(), serving_since = NULL",
            &[&state, &fingerprint, &rows],
        )
        .await?;
    Ok(())
}

/// Ends an import or export: records it with `vss_db`'s fingerprint and row
/// count, counts the users and stores of `vss_db`, and commits. `copied` is
/// (keys, global versions, warnings).
async fn finish(
    tx: Transaction<'_>,
    state: &str,
    fingerprint: &str,
    rows: i64,
    (keys, global_versions, warnings): (u64, u64, Vec<String>),
) -> Result<ReferenceReport, PostgresError> {
    record_state(&tx, state, fingerprint, rows).await?;
    let (users, stores) = counts(&tx, "vss_db").await?;
    tx.commit().await?;
    Ok(ReferenceReport {
        keys,
        global_versions,
        users,
        stores,
        warnings,
    })
}

fn refuse(reason: String) -> PostgresError {
    PostgresError::ReferenceData(reason)
}

/// Refuses to open a database holding the reference server's `vss_db` unless
/// it was imported and has not changed since (see the module documentation).
pub(crate) async fn guard(client: &mut Client) -> Result<(), PostgresError> {
    let tx = client.transaction().await?;
    // Serialised with imports, exports and migrations.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let Some((now, rows)) = fingerprint(&tx).await? else {
        return Ok(());
    };
    match state(&tx).await? {
        None => Err(refuse(format!(
            "this database holds the reference server's table `vss_db` ({rows} rows), which \
             vss-rs has not imported: serving now would show its wallets empty stores. Import \
             it with `{IMPORT_COMMAND}` and the same configuration (README: \"Switching from \
             the reference server\")"
        ))),
        Some(state) if state.exported => Err(refuse(format!(
            "the data was exported to the reference server's table `vss_db` at {}: that table \
             holds the current data, not vss-rs's. To serve from vss-rs again, stop the \
             reference server and run `{IMPORT_COMMAND}`",
            state.done_at
        ))),
        Some(state) if state.fingerprint != now => Err(refuse(match state.serving_since {
            None => format!(
                "the reference server's table `vss_db` changed after it was imported at {}: \
                 it has writes vss-rs does not have. Stop the reference server, then run \
                 `{IMPORT_COMMAND}` again (the final pass)",
                state.done_at
            ),
            Some(since) => format!(
                "the reference server's table `vss_db` changed after it was imported at {}, \
                 and vss-rs has served from this database since {since}: both servers took \
                 writes. Stop both; keep vss-rs's data with `vss-admin export-reference` \
                 only after checking which writes `vss_db` has that vss-rs lacks",
                state.done_at
            ),
        })),
        Some(_) => {
            tx.execute(
                "UPDATE vss_reference_import SET serving_since = now() \
                 WHERE serving_since IS NULL",
                &[],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        }
    }
}

/// Runs `work` on a connection to the VSS database, migrated, holding the
/// migration lock (so no server opens and no other import or export runs
/// meanwhile).
async fn with_admin_connection<T>(
    config: &PostgresConfig,
    work: impl AsyncFnOnce(&mut Client) -> Result<T, PostgresError>,
) -> Result<T, PostgresError> {
    let (mut client, driver) =
        connect_one(config, &config.database, config.tls_connector()?).await?;
    migrations::migrate(&mut client).await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = work(&mut client).await;
    // Also released when the connection closes.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    drop(client);
    let _ = driver.await;
    result
}

/// Makes this server's tables exactly what the reference server's `vss_db`
/// holds, in one transaction; `unauthenticated_user` is this server's user of
/// unauthenticated requests, which the reference's `unauth-user` becomes.
/// See the module documentation for when it refuses.
pub async fn import_reference(
    config: &PostgresConfig,
    unauthenticated_user: &str,
) -> Result<ReferenceReport, PostgresError> {
    with_admin_connection(config, async |client| {
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .start()
            .await?;
        let Some((fingerprint, rows)) = fingerprint(&tx).await? else {
            return Err(refuse(format!(
                "database `{}` has no table `vss_db`: there is nothing to import (is \
                 postgresql_config.vss_database the reference server's database?)",
                config.database
            )));
        };
        match state(&tx).await? {
            Some(State {
                exported: false,
                serving_since: Some(since),
                ..
            }) => {
                return Err(refuse(format!(
                    "vss-rs has served from this database since {since}: an import would \
                     overwrite what it stored since. To go back to the reference server, use \
                     `vss-admin export-reference`"
                )))
            }
            Some(_) => {}
            None => {
                let ours: bool = tx
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM vss_objects) \
                         OR EXISTS (SELECT 1 FROM vss_stores)",
                        &[],
                    )
                    .await?
                    .try_get(0)?;
                if ours {
                    return Err(refuse(
                        "this database already holds vss-rs data that was not imported from \
                         `vss_db`: an import would replace it"
                            .into(),
                    ));
                }
            }
        }
        refuse_user_collision(&tx, "vss_db", "`vss_db`", unauthenticated_user).await?;
        let warnings = import_warnings(&tx).await?;
        let sequence = if has_sort_order(&tx).await? {
            "sort_order"
        } else {
            // Older reference databases list by key and have no creation order.
            "row_number() OVER (ORDER BY created_at NULLS FIRST, user_token, store_id, key)"
        };
        let user = "convert_to(CASE WHEN user_token = $1 THEN $2 ELSE user_token END, 'UTF8')";
        tx.batch_execute("TRUNCATE vss_objects, vss_stores").await?;
        let keys = tx
            .execute(
                &format!(
                    "INSERT INTO vss_objects (user_token, store_id, key, version, sequence, value) \
                     SELECT {user}, convert_to(store_id, 'UTF8'), convert_to(key, 'UTF8'), \
                     version, ({sequence}) * 1024, coalesce(value, '\\x'::bytea) \
                     FROM vss_db WHERE key <> $3"
                ),
                &[
                    &REFERENCE_UNAUTHENTICATED_USER,
                    &unauthenticated_user,
                    &GLOBAL_VERSION_KEY,
                ],
            )
            .await?;
        let global_versions = tx
            .execute(
                &format!(
                    "INSERT INTO vss_stores (user_token, store_id, global_version) \
                     SELECT {user}, convert_to(store_id, 'UTF8'), version \
                     FROM vss_db WHERE key = $3"
                ),
                &[
                    &REFERENCE_UNAUTHENTICATED_USER,
                    &unauthenticated_user,
                    &GLOBAL_VERSION_KEY,
                ],
            )
            .await?;
        // Every user's usage, for quotas, counted from what was imported.
        tx.execute("SELECT vss_recount_usage()", &[]).await?;
        // New keys are created after every imported one.
        tx.execute(
            "SELECT setval('vss_creation_seq', greatest( \
             (SELECT last_value FROM vss_creation_seq), \
             (SELECT coalesce(max(sequence) / 1024, 1) FROM vss_objects)))",
            &[],
        )
        .await?;
        let copied = (keys, global_versions, warnings);
        finish(tx, "imported", &fingerprint, rows, copied).await
    })
    .await
}

/// Refuses to map the reference's unauthenticated user onto this server's
/// when both hold data in `table` (named `label` in the message), whose
/// `user_token` column is text: their data would merge.
async fn refuse_user_collision(
    client: &impl GenericClient,
    table: &str,
    label: &str,
    unauthenticated_user: &str,
) -> Result<(), PostgresError> {
    if unauthenticated_user == REFERENCE_UNAUTHENTICATED_USER {
        return Ok(());
    }
    let both: bool = client
        .query_one(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM {table} WHERE user_token = $1) \
                 AND EXISTS (SELECT 1 FROM {table} WHERE user_token = $2)"
            ),
            &[&REFERENCE_UNAUTHENTICATED_USER, &unauthenticated_user],
        )
        .await?
        .try_get(0)?;
    if both {
        return Err(refuse(format!(
            "{label} holds data of both `{REFERENCE_UNAUTHENTICATED_USER}` (the reference \
             server's unauthenticated user) and `{unauthenticated_user}` (this server's): one \
             becomes the other in the copy, so their data would merge"
        )));
    }
    Ok(())
}

/// Counts of what `vss_db` holds that clients of this server could not reach.
async fn import_warnings(client: &impl GenericClient) -> Result<Vec<String>, PostgresError> {
    let row = client
        .query_one(
            "SELECT \
             count(*) FILTER (WHERE octet_length(key) > 600), \
             count(DISTINCT user_token) FILTER (WHERE octet_length(user_token) > 120), \
             count(DISTINCT (user_token, store_id)) FILTER (WHERE octet_length(store_id) > 120), \
             count(DISTINCT user_token) FILTER (WHERE user_token ~ '^0[23][0-9a-fA-F]{64}$' \
                 AND user_token <> lower(user_token)) \
             FROM vss_db",
            &[],
        )
        .await?;
    let counts: [i64; 4] = [
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
    ];
    let what = [
        "keys are longer than 600 bytes: they are listed, but a getObject of them is refused",
        "user tokens are longer than 120 bytes: no authentication method yields them",
        "stores have an id longer than 120 bytes: requests naming them are refused",
        "user tokens are public keys in upper-case hex: signature authentication names users \
         by lower-case hex, so with sigs their data is not reachable",
    ];
    Ok(counts
        .iter()
        .zip(what)
        .filter(|(n, _)| **n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect())
}

/// Distinct users and stores of `table` (both layouts name the columns alike).
async fn counts(client: &impl GenericClient, table: &str) -> Result<(u64, u64), PostgresError> {
    let row = client
        .query_one(
            &format!(
                "SELECT count(DISTINCT user_token), count(DISTINCT (user_token, store_id)) \
                 FROM {table}"
            ),
            &[],
        )
        .await?;
    let users: i64 = row.try_get(0)?;
    let stores: i64 = row.try_get(1)?;
    Ok((users.unsigned_abs(), stores.unsigned_abs()))
}

/// The way back: makes the reference server's `vss_db` exactly what this
/// server holds, in one transaction, and marks the data as exported (this
/// server then refuses to open the database until it is imported again).
/// `unauthenticated_user` becomes the reference's `unauth-user`. Stop every
/// vss-server on the database first: writes after the export stay behind.
pub async fn export_reference(
    config: &PostgresConfig,
    unauthenticated_user: &str,
) -> Result<ReferenceReport, PostgresError> {
    with_admin_connection(config, async |client| {
        let tx = client.transaction().await?;
        let exists: bool = tx
            .query_one("SELECT to_regclass('vss_db') IS NOT NULL", &[])
            .await?
            .try_get(0)?;
        if !exists {
            return Err(refuse(format!(
                "database `{}` has no table `vss_db`: start the reference server once against \
                 it so that its migrations create its schema, stop it, then export again",
                config.database
            )));
        }
        let empty_store_ids: i64 = tx
            .query_one(
                "SELECT (SELECT count(*) FROM vss_objects WHERE store_id = '\\x') \
                 + (SELECT count(*) FROM vss_stores WHERE store_id = '\\x')",
                &[],
            )
            .await?
            .try_get(0)?;
        if empty_store_ids > 0 {
            return Err(refuse(format!(
                "{empty_store_ids} keys or global versions are in stores whose id is empty, \
                 which the reference server cannot hold (its `vss_db` requires a store id)"
            )));
        }
        let ours = "(SELECT convert_from(user_token, 'UTF8') AS user_token FROM vss_objects \
                    UNION ALL SELECT convert_from(user_token, 'UTF8') FROM vss_stores) AS ours";
        refuse_user_collision(&tx, ours, "this server's data", unauthenticated_user).await?;
        // The reference lists newest `sort_order` first: number the keys in
        // their listing order, after every value its sequence has handed out.
        let serial: Option<String> = if has_sort_order(&tx).await? {
            tx.query_one("SELECT pg_get_serial_sequence('vss_db', 'sort_order')", &[])
                .await?
                .try_get(0)?
        } else {
            None
        };
        let base: i64 = match &serial {
            Some(seq) => tx
                .query_one(&format!("SELECT last_value FROM {seq}"), &[])
                .await?
                .try_get(0)?,
            None => 0,
        };
        let user = "CASE WHEN user_token = convert_to($1, 'UTF8') THEN $2 \
                    ELSE convert_from(user_token, 'UTF8') END";
        let columns = "user_token, store_id, key, value, version, created_at, last_updated_at";
        // With a sequence to follow, the base is the last parameter of each statement.
        let (order_into, order_of_keys, order_of_versions) = match serial {
            Some(_) => (
                ", sort_order",
                ", $3::bigint + row_number() OVER (ORDER BY sequence)",
                ", $4::bigint + (SELECT count(*) FROM vss_objects) \
                 + row_number() OVER (ORDER BY user_token, store_id)",
            ),
            None => ("", "", ""),
        };
        let mut key_params: Vec<&(dyn ToSql + Sync)> =
            vec![&unauthenticated_user, &REFERENCE_UNAUTHENTICATED_USER];
        let mut version_params = key_params.clone();
        version_params.push(&GLOBAL_VERSION_KEY);
        if serial.is_some() {
            key_params.push(&base);
            version_params.push(&base);
        }
        tx.batch_execute("TRUNCATE vss_db").await?;
        let keys = tx
            .execute(
                &format!(
                    "INSERT INTO vss_db ({columns}{order_into}) \
                     SELECT {user}, convert_from(store_id, 'UTF8'), convert_from(key, 'UTF8'), \
                     value, version, now(), now(){order_of_keys} FROM vss_objects"
                ),
                &key_params,
            )
            .await?;
        let global_versions = tx
            .execute(
                &format!(
                    "INSERT INTO vss_db ({columns}{order_into}) \
                     SELECT {user}, convert_from(store_id, 'UTF8'), $3, '\\x'::bytea, \
                     global_version, now(), now(){order_of_versions} FROM vss_stores"
                ),
                &version_params,
            )
            .await?;
        if let Some(seq) = &serial {
            // The reference's next key sorts after every exported one.
            let last =
                base.saturating_add(i64::try_from(keys + global_versions).unwrap_or(i64::MAX));
            tx.execute(
                "SELECT setval($1::text::regclass, greatest($2::bigint, 1))",
                &[seq, &last],
            )
            .await?;
        }
        let Some((fingerprint, rows)) = self::fingerprint(&tx).await? else {
            return Err(refuse("`vss_db` vanished during the export".into()));
        };
        let copied = (keys, global_versions, Vec::new());
        finish(tx, "exported", &fingerprint, rows, copied).await
    })
    .await
}
