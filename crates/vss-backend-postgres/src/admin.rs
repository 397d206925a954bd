//! The admin interface ([`vss_core::admin`]) on PostgreSQL: each method is
//! one statement (or one transaction), so atomic.

use async_trait::async_trait;
use bytes::Bytes;
use vss_core::admin::{self, ItemsPage, PageSize, StoreRef, StoredItem, StoresPage, UsagePage};
use vss_core::{AdminStore, KvStore, Usage, UserToken, VssError};

use crate::store::{decode_key, internal, prepare, release};
use crate::PostgresStore;

/// A page of stores that hold keys or a global version, after `($1, $2)`,
/// at most `$3`: the keys' stores by a skip scan of the primary key (one
/// index probe per store, whatever its size), merged with `vss_stores`.
const LIST_STORES: &str = "WITH RECURSIVE o AS ( \
       (SELECT user_token, store_id FROM vss_objects \
        WHERE (user_token, store_id) > ($1, $2) ORDER BY user_token, store_id LIMIT 1) \
       UNION ALL \
       SELECT n.user_token, n.store_id FROM o, LATERAL ( \
         SELECT user_token, store_id FROM vss_objects \
         WHERE (user_token, store_id) > (o.user_token, o.store_id) \
         ORDER BY user_token, store_id LIMIT 1) AS n) \
     SELECT user_token, store_id FROM ( \
       (SELECT user_token, store_id FROM o LIMIT $3) \
       UNION \
       (SELECT user_token, store_id FROM vss_stores \
        WHERE (user_token, store_id) > ($1, $2) ORDER BY user_token, store_id LIMIT $3)) AS s \
     ORDER BY user_token, store_id LIMIT $3";

/// The global version of store `($1, $2)` and up to `$4` of its items above
/// position `$3`, while their values fit `$5` bytes (the first always): one
/// statement, so one snapshot. Lengths are summed before any value is read.
const READ_ITEMS: &str = "SELECT g.global_version, i.key, i.version, i.sequence, i.value \
     FROM (SELECT COALESCE((SELECT global_version FROM vss_stores \
        WHERE user_token = $1 AND store_id = $2), 0) AS global_version) AS g \
     LEFT JOIN LATERAL (SELECT key, version, sequence, value FROM ( \
        SELECT key, version, sequence, value, \
               sum(octet_length(value)) OVER (ORDER BY sequence) AS running, \
               row_number() OVER (ORDER BY sequence) AS n \
        FROM (SELECT key, version, sequence, value FROM vss_objects \
              WHERE user_token = $1 AND store_id = $2 AND sequence > 0 AND sequence > $3 \
              ORDER BY sequence LIMIT $4) AS page) AS counted \
        WHERE n = 1 OR running <= $5) AS i ON true \
     ORDER BY i.sequence";

/// Writes items `($3, $4, $5, $6)` (keys, versions, positions, values) of
/// store `($1, $2)` exactly, and counts their change of usage in this
/// connection's shard, as a put does (see `sql`).
const WRITE_ITEMS: &str = "WITH w AS (INSERT INTO vss_objects AS o \
       (user_token, store_id, key, version, sequence, value) \
       SELECT $1, $2, k, v, s, d FROM unnest($3::bytea[], $4::bigint[], $5::bigint[], $6::bytea[]) \
         AS t(k, v, s, d) \
       ON CONFLICT (user_token, store_id, key) DO UPDATE \
       SET version = EXCLUDED.version, sequence = EXCLUDED.sequence, value = EXCLUDED.value, \
           prev_len = octet_length(o.value) \
       RETURNING octet_length(o.value)::bigint \
         + CASE WHEN o.prev_len IS NULL THEN octet_length(o.key) ELSE -o.prev_len END AS bytes, \
         CASE WHEN o.prev_len IS NULL THEN 1 ELSE 0 END AS keys) \
     INSERT INTO vss_usage AS u (user_token, shard, bytes, keys) \
     SELECT $1, 1 + pg_backend_pid() % 15, sum(bytes), sum(keys) FROM w \
     HAVING sum(bytes) <> 0 OR sum(keys) <> 0 \
     ON CONFLICT (user_token, shard) DO UPDATE \
     SET bytes = u.bytes + EXCLUDED.bytes, keys = u.keys + EXCLUDED.keys";

/// Sets the global version of store `($1, $2)` to `$3`.
const SET_GLOBAL_VERSION: &str = "INSERT INTO vss_stores (user_token, store_id, global_version) \
     VALUES ($1, $2, $3) ON CONFLICT (user_token, store_id) \
     DO UPDATE SET global_version = EXCLUDED.global_version";

/// Moves the creation sequence past position `$1` (creations number their
/// keys `nextval * 1024 + index`), never back.
const SEQUENCE_PAST: &str = "SELECT CASE WHEN last_value <= $1::bigint / 1024 \
     THEN setval('vss_creation_seq', $1::bigint / 1024 + 1) END FROM vss_creation_seq";

/// Deletes store `($1, $2)` and frees its usage.
const DELETE_STORE: &str = "WITH d AS (DELETE FROM vss_objects \
       WHERE user_token = $1 AND store_id = $2 \
       RETURNING octet_length(key)::bigint + octet_length(value) AS bytes), \
     g AS (DELETE FROM vss_stores WHERE user_token = $1 AND store_id = $2) \
     INSERT INTO vss_usage AS u (user_token, shard, bytes, keys) \
     SELECT $1, 1 + pg_backend_pid() % 15, -sum(bytes), -count(*) FROM d HAVING count(*) > 0 \
     ON CONFLICT (user_token, shard) DO UPDATE \
     SET bytes = u.bytes + EXCLUDED.bytes, keys = u.keys + EXCLUDED.keys";

/// Deletes everything of user `$1`.
const DELETE_USER: &str = "WITH o AS (DELETE FROM vss_objects WHERE user_token = $1), \
     s AS (DELETE FROM vss_stores WHERE user_token = $1) \
     DELETE FROM vss_usage WHERE user_token = $1";

/// User `$1`'s usage: the sum of their shards.
const USAGE: &str = "SELECT COALESCE(sum(bytes), 0)::bigint, COALESCE(sum(keys), 0)::bigint \
     FROM vss_usage WHERE user_token = $1";

/// Users after `$1` and their usage (the sum of their shards), at most `$2`.
const LIST_USAGE: &str = "SELECT user_token, sum(bytes)::bigint, sum(keys)::bigint \
     FROM vss_usage WHERE user_token > $1 GROUP BY user_token ORDER BY user_token LIMIT $2";

fn user_token(bytes: Vec<u8>) -> Result<UserToken, VssError> {
    String::from_utf8(bytes)
        .ok()
        .and_then(|token| UserToken::new(token).ok())
        .ok_or_else(|| VssError::internal("a stored user token is not a valid token"))
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The admin interface: stores are enumerated in `(user, store id)` byte
/// order, each once; a page of [`AdminStore::write_items`] is one
/// transaction.
#[async_trait]
impl AdminStore for PostgresStore {
    async fn list_stores(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<StoresPage, VssError> {
        let after = cursor.map(admin::store_of_cursor).transpose()?;
        let (user, store_id): (&[u8], &[u8]) = after.as_ref().map_or((b"", b""), |s| {
            (s.user.as_str().as_bytes(), s.store_id.as_bytes())
        });
        let limit = limit.max(1);
        let fetch = i64::try_from(limit + 1).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let statement = prepare(&client, LIST_STORES).await?;
        let rows = client
            .query(&statement, &[&user, &store_id, &fetch])
            .await
            .map_err(internal)?;
        let mut stores = Vec::with_capacity(rows.len());
        for row in rows {
            let store_id: Vec<u8> = row.try_get(1).map_err(internal)?;
            stores.push(StoreRef {
                user: user_token(row.try_get(0).map_err(internal)?)?,
                store_id: String::from_utf8(store_id)
                    .map_err(|_| VssError::internal("a stored store id is not UTF-8"))?,
            });
        }
        let (stores, next) = admin::cut_page(stores, limit, admin::cursor_after);
        Ok(StoresPage { stores, next })
    }

    async fn read_items(
        &self,
        store: &StoreRef,
        after: i64,
        size: PageSize,
    ) -> Result<ItemsPage, VssError> {
        let user: &[u8] = store.user.as_str().as_bytes();
        let store_id: &[u8] = store.store_id.as_bytes();
        let items_limit = i64::try_from(size.items.max(1)).unwrap_or(i64::MAX);
        let bytes_limit = i64::try_from(size.bytes).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let statement = prepare(&client, READ_ITEMS).await?;
        let rows = client
            .query(
                &statement,
                &[&user, &store_id, &after, &items_limit, &bytes_limit],
            )
            .await
            .map_err(internal)?;
        let mut page = ItemsPage::default();
        let mut carried = 0;
        for row in rows {
            page.global_version = row.try_get(0).map_err(internal)?;
            let key: Option<Vec<u8>> = row.try_get(1).map_err(internal)?;
            let Some(key) = key else {
                continue; // a store without items: the outer join's empty side
            };
            let value: Vec<u8> = row.try_get(4).map_err(internal)?;
            carried += value.len();
            page.items.push(StoredItem {
                key: decode_key(key)?,
                version: row.try_get(2).map_err(internal)?,
                position: row.try_get(3).map_err(internal)?,
                value: Bytes::from(value),
            });
        }
        release(client, carried);
        Ok(page)
    }

    async fn write_items(
        &self,
        store: &StoreRef,
        items: &[StoredItem],
        global_version: Option<i64>,
    ) -> Result<(), VssError> {
        admin::check_items(store, items, &self.limits())?;
        let user: &[u8] = store.user.as_str().as_bytes();
        let store_id: &[u8] = store.store_id.as_bytes();
        let keys: Vec<&[u8]> = items.iter().map(|i| i.key.as_bytes()).collect();
        let versions: Vec<i64> = items.iter().map(|i| i.version).collect();
        let positions: Vec<i64> = items.iter().map(|i| i.position).collect();
        let values: Vec<&[u8]> = items.iter().map(|i| &i.value[..]).collect();
        let mut client = self.client().await?;
        let write = prepare(&client, WRITE_ITEMS).await?;
        let set_global = prepare(&client, SET_GLOBAL_VERSION).await?;
        let sequence = prepare(&client, SEQUENCE_PAST).await?;
        let tx = client.transaction().await.map_err(internal)?;
        if !items.is_empty() {
            tx.execute(
                &write,
                &[&user, &store_id, &keys, &versions, &positions, &values],
            )
            .await
            .map_err(internal)?;
            let last = positions.last().copied().unwrap_or(0);
            tx.execute(&sequence, &[&last]).await.map_err(internal)?;
        }
        if let Some(global_version) = global_version {
            tx.execute(&set_global, &[&user, &store_id, &global_version])
                .await
                .map_err(internal)?;
        }
        tx.commit().await.map_err(internal)?;
        release(client, values.iter().map(|v| v.len()).sum());
        Ok(())
    }

    async fn delete_store(&self, store: &StoreRef) -> Result<(), VssError> {
        let user: &[u8] = store.user.as_str().as_bytes();
        let store_id: &[u8] = store.store_id.as_bytes();
        let client = self.client().await?;
        let statement = prepare(&client, DELETE_STORE).await?;
        client
            .execute(&statement, &[&user, &store_id])
            .await
            .map_err(internal)?;
        Ok(())
    }

    async fn delete_user(&self, user: &UserToken) -> Result<(), VssError> {
        let user: &[u8] = user.as_str().as_bytes();
        let client = self.client().await?;
        let statement = prepare(&client, DELETE_USER).await?;
        client
            .execute(&statement, &[&user])
            .await
            .map_err(internal)?;
        Ok(())
    }

    async fn usage(&self, user: &UserToken) -> Result<Usage, VssError> {
        let user: &[u8] = user.as_str().as_bytes();
        let client = self.client().await?;
        let statement = prepare(&client, USAGE).await?;
        let row = client
            .query_one(&statement, &[&user])
            .await
            .map_err(internal)?;
        Ok(Usage {
            bytes: count(row.try_get(0).map_err(internal)?),
            keys: count(row.try_get(1).map_err(internal)?),
        })
    }

    async fn list_usage(&self, cursor: Option<&str>, limit: usize) -> Result<UsagePage, VssError> {
        let after = cursor.map(admin::user_of_cursor).transpose()?;
        let after: &[u8] = after.as_ref().map_or(b"", |u| u.as_str().as_bytes());
        let limit = limit.max(1);
        let fetch = i64::try_from(limit + 1).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let statement = prepare(&client, LIST_USAGE).await?;
        let rows = client
            .query(&statement, &[&after, &fetch])
            .await
            .map_err(internal)?;
        let mut users = Vec::with_capacity(rows.len());
        for row in rows {
            users.push((
                user_token(row.try_get(0).map_err(internal)?)?,
                Usage {
                    bytes: count(row.try_get(1).map_err(internal)?),
                    keys: count(row.try_get(2).map_err(internal)?),
                },
            ));
        }
        let (users, next) =
            admin::cut_page(users, limit, |(user, _)| admin::user_cursor_after(user));
        Ok(UsagePage { users, next })
    }
}
