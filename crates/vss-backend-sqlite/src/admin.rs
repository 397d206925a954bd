//! The admin interface ([`vss_core::admin`]): reads on the reader threads,
//! writes through the writer's queue, each in its own savepoint like a put.

use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension};
use vss_core::admin::{self, ItemsPage, PageSize, StoreRef, StoredItem, StoresPage, UsagePage};
use vss_core::{Usage, UserToken, VssError};

use crate::writer::{count, set_usage, usage, Refusal};

/// An admin change the writer applies.
#[derive(Debug)]
pub(crate) enum AdminOp {
    /// [`vss_core::AdminStore::write_items`].
    WriteItems {
        store_id: String,
        items: Vec<StoredItem>,
        global_version: Option<i64>,
    },
    /// [`vss_core::AdminStore::delete_store`].
    DeleteStore { store_id: String },
    /// [`vss_core::AdminStore::delete_user`].
    DeleteUser,
}

fn db(err: rusqlite::Error) -> VssError {
    VssError::internal(format!("SQLite read failed: {err}"))
}

/// A page of stores: every store has a row in `vss_stores` (its first key
/// created it), in `(user, store id)` order.
pub(crate) fn list_stores(
    conn: &Connection,
    after: Option<&StoreRef>,
    limit: usize,
) -> Result<StoresPage, VssError> {
    let limit = limit.max(1);
    let (user, store_id) = after.map_or(("", ""), |s| (s.user.as_str(), s.store_id.as_str()));
    let stores = conn
        .prepare_cached(
            "SELECT user_token, store_id FROM vss_stores
             WHERE ?1 = 0 OR (user_token, store_id) > (?2, ?3)
             ORDER BY user_token, store_id LIMIT ?4",
        )
        .map_err(db)?
        .query_map(
            params![
                after.is_some(),
                user,
                store_id,
                i64::try_from(limit + 1).unwrap_or(i64::MAX)
            ],
            |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)),
        )
        .map_err(db)?
        .map(|row| {
            let (user, store_id) = row.map_err(db)?;
            Ok(StoreRef {
                user: UserToken::new(user).map_err(|e| {
                    VssError::internal(format!("a user token in vss_stores is invalid: {e}"))
                })?,
                store_id,
            })
        })
        .collect::<Result<Vec<_>, VssError>>()?;
    let (stores, next) = admin::cut_page(stores, limit, admin::cursor_after);
    Ok(StoresPage { stores, next })
}

/// A page of a store's items and its global version, from one snapshot.
/// Value lengths are read first, so a page never loads more than it takes.
pub(crate) fn read_items(
    conn: &mut Connection,
    store: &StoreRef,
    after: i64,
    size: PageSize,
) -> Result<ItemsPage, VssError> {
    let tx = conn.savepoint().map_err(db)?;
    let global_version = crate::read::global_version(&tx, &store.user, &store.store_id)?;
    let mut items = Vec::new();
    {
        let mut statement = tx
            .prepare_cached(
                "SELECT key, version, sequence, length(value), value FROM vss_records
                 WHERE user_token = ?1 AND store_id = ?2 AND sequence > ?3
                 ORDER BY sequence LIMIT ?4",
            )
            .map_err(db)?;
        let mut rows = statement
            .query(params![
                store.user.as_str(),
                store.store_id,
                after,
                i64::try_from(size.items.max(1)).unwrap_or(i64::MAX)
            ])
            .map_err(db)?;
        let mut bytes = 0usize;
        while let Some(row) = rows.next().map_err(db)? {
            let len = count(row.get(3).map_err(db)?) as usize;
            bytes = bytes.saturating_add(len);
            if !size.fits(items.len(), bytes) {
                break;
            }
            items.push(StoredItem {
                key: row.get(0).map_err(db)?,
                version: row.get(1).map_err(db)?,
                position: row.get(2).map_err(db)?,
                value: Bytes::from(row.get::<_, Vec<u8>>(4).map_err(db)?),
            });
        }
    }
    tx.commit().map_err(db)?;
    Ok(ItemsPage {
        global_version,
        items,
    })
}

/// What `user`'s usage row says.
pub(crate) fn read_usage(conn: &Connection, user: &UserToken) -> Result<Usage, VssError> {
    usage(conn, user.as_str()).map_err(db)
}

/// A page of users' usage rows, in user order.
pub(crate) fn list_usage(
    conn: &Connection,
    after: Option<&UserToken>,
    limit: usize,
) -> Result<UsagePage, VssError> {
    let limit = limit.max(1);
    let users = conn
        .prepare_cached(
            "SELECT user_token, bytes, keys FROM vss_usage
             WHERE ?1 = 0 OR user_token > ?2 ORDER BY user_token LIMIT ?3",
        )
        .map_err(db)?
        .query_map(
            params![
                after.is_some(),
                after.map_or("", UserToken::as_str),
                i64::try_from(limit + 1).unwrap_or(i64::MAX)
            ],
            |row| Ok((row.get::<_, String>(0)?, row.get(1)?, row.get(2)?)),
        )
        .map_err(db)?
        .map(|row| {
            let (user, bytes, keys) = row.map_err(db)?;
            let user = UserToken::new(user).map_err(|e| {
                VssError::internal(format!("a user token in vss_usage is invalid: {e}"))
            })?;
            Ok((
                user,
                Usage {
                    bytes: count(bytes),
                    keys: count(keys),
                },
            ))
        })
        .collect::<Result<Vec<_>, VssError>>()?;
    let (users, next) = admin::cut_page(users, limit, |(user, _)| admin::user_cursor_after(user));
    Ok(UsagePage { users, next })
}

/// Applies an admin change inside the writer's savepoint.
pub(crate) fn apply(conn: &Connection, user: &UserToken, op: &AdminOp) -> Result<(), Refusal> {
    let u = user.as_str();
    match op {
        AdminOp::WriteItems {
            store_id,
            items,
            global_version,
        } => {
            let mut used = usage(conn, u)?;
            for item in items {
                let old: Option<i64> = conn
                    .prepare_cached(
                        "SELECT length(value) FROM vss_records
                         WHERE user_token = ?1 AND store_id = ?2 AND key = ?3",
                    )?
                    .query_row(params![u, store_id, item.key], |row| row.get(0))
                    .optional()?;
                if let Some(len) = old {
                    used = used.minus(Usage::of_item(&item.key, count(len) as usize));
                }
                used = used.plus(item.usage());
                let value: &[u8] = &item.value;
                conn.prepare_cached(
                    "INSERT INTO vss_records (user_token, store_id, key, version, value, sequence)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (user_token, store_id, key) DO UPDATE
                     SET version = excluded.version, value = excluded.value,
                         sequence = excluded.sequence",
                )?
                .execute(params![
                    u,
                    store_id,
                    item.key,
                    item.version,
                    value,
                    item.position
                ])?;
            }
            let last = items.last().map_or(0, |item| item.position);
            // The store's row: keys created later get sequences above `last`.
            conn.prepare_cached(
                "INSERT INTO vss_stores (user_token, store_id, global_version, last_sequence)
                 VALUES (?1, ?2, coalesce(?3, 0), ?4)
                 ON CONFLICT (user_token, store_id) DO UPDATE
                 SET global_version = coalesce(?3, global_version),
                     last_sequence = max(last_sequence, excluded.last_sequence)",
            )?
            .execute(params![u, store_id, global_version, last])?;
            if !items.is_empty() {
                set_usage(conn, u, used)?;
            }
        }
        AdminOp::DeleteStore { store_id } => {
            let (bytes, keys): (i64, i64) = conn
                .prepare_cached(
                    "SELECT coalesce(sum(length(CAST(key AS BLOB)) + length(value)), 0), count(*)
                     FROM vss_records WHERE user_token = ?1 AND store_id = ?2",
                )?
                .query_row(params![u, store_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
            conn.prepare_cached("DELETE FROM vss_records WHERE user_token = ?1 AND store_id = ?2")?
                .execute(params![u, store_id])?;
            conn.prepare_cached("DELETE FROM vss_stores WHERE user_token = ?1 AND store_id = ?2")?
                .execute(params![u, store_id])?;
            if keys > 0 {
                let freed = Usage {
                    bytes: count(bytes),
                    keys: count(keys),
                };
                set_usage(conn, u, usage(conn, u)?.minus(freed))?;
            }
        }
        AdminOp::DeleteUser => {
            for table in ["vss_records", "vss_stores", "vss_usage"] {
                conn.prepare_cached(&format!("DELETE FROM {table} WHERE user_token = ?1"))?
                    .execute(params![u])?;
            }
        }
    }
    Ok(())
}
