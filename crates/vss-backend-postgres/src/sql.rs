//! Every statement the store runs. All are prepared once per connection.
//!
//! Parameters `$1` and `$2` are always the user token and the store id.
//! Statements that check a put's condition wrap their write in a CTE and call
//! `vss_require`, which raises SQLSTATE `VS409` when the write matched no row:
//! the error aborts the transaction, so a failed condition can never be
//! committed, even when `COMMIT` was already sent in the same pipeline.

/// `getObject`: `$3` key.
pub(crate) const GET: &str = "SELECT version, value FROM vss_objects \
     WHERE user_token = $1 AND store_id = $2 AND key = $3";

/// `getObject` of the reserved key; no row means 0.
pub(crate) const GET_GLOBAL_VERSION: &str =
    "SELECT global_version FROM vss_stores WHERE user_token = $1 AND store_id = $2";

/// Takes the user's usage row before anything else of a write transaction
/// (creating it for a user's first write) and remembers the usage before the
/// write. Every write of one user waits here for the previous one to commit:
/// then each later statement, with its own snapshot, sees exactly what it
/// changes, and two writes of one user cannot deadlock on their rows.
pub(crate) const LOCK_USAGE: &str = "INSERT INTO vss_usage AS u \
     (user_token, bytes, keys, bytes_before, keys_before) VALUES ($1, 0, 0, 0, 0) \
     ON CONFLICT (user_token) DO UPDATE SET bytes_before = u.bytes, keys_before = u.keys";

/// Takes the creation sequence value of a put; its creates use it through
/// `currval`, which is per session and so per pooled connection.
pub(crate) const NEXT_SEQUENCE: &str = "SELECT nextval('vss_creation_seq')";

/// Unconditional write: `$3` key, `$4` value, `$5` item index in the request.
/// A new key takes a fresh creation sequence; an existing one keeps its own.
/// Counts the change in the user's usage.
pub(crate) const UPSERT_IN_PUT: &str = "WITH old AS (SELECT octet_length(value) AS len \
     FROM vss_objects WHERE user_token = $1 AND store_id = $2 AND key = $3), \
     w AS (INSERT INTO vss_objects (user_token, store_id, key, version, sequence, value) \
     VALUES ($1, $2, $3, 1, currval('vss_creation_seq') * 1024 + $5, $4) \
     ON CONFLICT (user_token, store_id, key) DO UPDATE SET version = 1, value = EXCLUDED.value \
     RETURNING 1) \
     UPDATE vss_usage SET \
     bytes = bytes + octet_length($4) + CASE WHEN EXISTS (SELECT 1 FROM old) \
        THEN -(SELECT len FROM old) ELSE octet_length($3) END, \
     keys = keys + CASE WHEN EXISTS (SELECT 1 FROM old) THEN 0 ELSE 1 END \
     WHERE user_token = $1 AND EXISTS (SELECT 1 FROM w)";

/// Create inside a put: `$3` key, `$4` value, `$5` item index in the request.
/// A concurrent create of the same key waits for the other transaction, then
/// finds the key and conflicts. Counts the new key in the user's usage.
pub(crate) const CREATE_IN_PUT: &str = "WITH w AS (INSERT INTO vss_objects \
     (user_token, store_id, key, version, sequence, value) \
     VALUES ($1, $2, $3, 1, currval('vss_creation_seq') * 1024 + $5, $4) \
     ON CONFLICT (user_token, store_id, key) DO NOTHING RETURNING 1), \
     u AS (UPDATE vss_usage SET bytes = bytes + octet_length($3) + octet_length($4), \
     keys = keys + 1 WHERE user_token = $1 AND EXISTS (SELECT 1 FROM w) RETURNING 1) \
     SELECT vss_require(EXISTS (SELECT 1 FROM w), 'create')";

/// Update of version `$4` to `$4 + 1`: `$3` key, `$5` value. Counts the
/// change of the value's length in the user's usage.
pub(crate) const UPDATE: &str = "WITH old AS (SELECT octet_length(value) AS len \
     FROM vss_objects WHERE user_token = $1 AND store_id = $2 AND key = $3 AND version = $4), \
     w AS (UPDATE vss_objects SET version = version + 1, value = $5 \
     WHERE user_token = $1 AND store_id = $2 AND key = $3 AND version = $4 RETURNING 1), \
     u AS (UPDATE vss_usage SET bytes = bytes + octet_length($5) - (SELECT len FROM old) \
     WHERE user_token = $1 AND EXISTS (SELECT 1 FROM w) RETURNING 1) \
     SELECT vss_require(EXISTS (SELECT 1 FROM w), 'update')";

/// A put's delete of `$3` at version `$4`; frees its usage.
pub(crate) const DELETE_VERSION_IN_PUT: &str = "WITH d AS (DELETE FROM vss_objects \
     WHERE user_token = $1 AND store_id = $2 AND key = $3 AND version = $4 \
     RETURNING octet_length(key) + octet_length(value) AS n), \
     u AS (UPDATE vss_usage SET bytes = bytes - (SELECT n FROM d), keys = keys - 1 \
     WHERE user_token = $1 AND EXISTS (SELECT 1 FROM d) RETURNING 1) \
     SELECT vss_require(EXISTS (SELECT 1 FROM d), 'delete')";

/// A put's delete of `$3`, whatever its version; frees its usage.
pub(crate) const DELETE_EXISTING_IN_PUT: &str = "WITH d AS (DELETE FROM vss_objects \
     WHERE user_token = $1 AND store_id = $2 AND key = $3 \
     RETURNING octet_length(key) + octet_length(value) AS n), \
     u AS (UPDATE vss_usage SET bytes = bytes - (SELECT n FROM d), keys = keys - 1 \
     WHERE user_token = $1 AND EXISTS (SELECT 1 FROM d) RETURNING 1) \
     SELECT vss_require(EXISTS (SELECT 1 FROM d), 'delete')";

/// The last statement of a put under a quota: raises SQLSTATE `VS507` (with
/// the usage before and after) when the put raised bytes above `$2` or keys
/// above `$3` (NULL: no limit). The function, which judges the same, is
/// called only when the put is over, so an admitted put runs no PL/pgSQL.
pub(crate) const CHECK_QUOTA: &str = "SELECT CASE \
     WHEN (bytes > bytes_before AND bytes > $2) OR (keys > keys_before AND keys > $3) \
     THEN vss_require_quota(bytes_before, keys_before, bytes, keys, $2, $3) END \
     FROM vss_usage WHERE user_token = $1";

/// Checks that the global version is `$3` and makes it `$3 + 1`. The store's row is
/// created (with 1) by the first put that sets it; if that insert happens although `$3`
/// is not 0, the check fails and the insert is rolled back with the statement.
pub(crate) const BUMP_GLOBAL_VERSION: &str = "WITH g AS (INSERT INTO vss_stores \
     (user_token, store_id, global_version) VALUES ($1, $2, 1) \
     ON CONFLICT (user_token, store_id) DO UPDATE \
     SET global_version = vss_stores.global_version + 1 \
     WHERE vss_stores.global_version = $3 RETURNING global_version) \
     SELECT vss_require((SELECT global_version - 1 FROM g) = $3, 'global_version')";

/// `deleteObject` of `$3`, whatever its version (after [`LOCK_USAGE`]); frees its usage.
pub(crate) const DELETE_OBJECT: &str = "WITH d AS (DELETE FROM vss_objects \
     WHERE user_token = $1 AND store_id = $2 AND key = $3 \
     RETURNING octet_length(key) + octet_length(value) AS n) \
     UPDATE vss_usage SET bytes = bytes - (SELECT n FROM d), keys = keys - 1 \
     WHERE user_token = $1 AND EXISTS (SELECT 1 FROM d)";

/// `deleteObject` of `$3` at version `$4` (after [`LOCK_USAGE`]); frees its usage.
pub(crate) const DELETE_OBJECT_VERSION: &str = "WITH d AS (DELETE FROM vss_objects \
     WHERE user_token = $1 AND store_id = $2 AND key = $3 AND version = $4 \
     RETURNING octet_length(key) + octet_length(value) AS n) \
     UPDATE vss_usage SET bytes = bytes - (SELECT n FROM d), keys = keys - 1 \
     WHERE user_token = $1 AND EXISTS (SELECT 1 FROM d)";

// Listings say `sequence > 0` (true of every row) because the listing index is
// partial on it: statements without it, every lookup by key, cannot use that index
// and take the primary key even before the table has statistics (migration 0002).

/// First page of a listing: the global version and up to `$3` keys, read by one
/// statement and so from one snapshot. Always returns at least one row (with NULL
/// key columns when the page is empty).
pub(crate) const LIST_FIRST: &str = "SELECT g.global_version, o.key, o.version, o.sequence \
     FROM (SELECT COALESCE((SELECT s.global_version FROM vss_stores s \
        WHERE s.user_token = $1 AND s.store_id = $2), 0) AS global_version) AS g \
     LEFT JOIN LATERAL (SELECT key, version, sequence FROM vss_objects \
        WHERE user_token = $1 AND store_id = $2 AND sequence > 0 \
        ORDER BY sequence DESC LIMIT $3) AS o ON true";

/// [`LIST_FIRST`] with keys in the byte range `[$4, $5)` (a literal prefix and its successor).
pub(crate) const LIST_FIRST_PREFIX: &str = "SELECT g.global_version, o.key, o.version, o.sequence \
     FROM (SELECT COALESCE((SELECT s.global_version FROM vss_stores s \
        WHERE s.user_token = $1 AND s.store_id = $2), 0) AS global_version) AS g \
     LEFT JOIN LATERAL (SELECT key, version, sequence FROM vss_objects \
        WHERE user_token = $1 AND store_id = $2 AND sequence > 0 AND key >= $4 AND key < $5 \
        ORDER BY sequence DESC LIMIT $3) AS o ON true";

/// A later page: up to `$4` keys created before sequence `$3`.
pub(crate) const LIST_NEXT: &str = "SELECT key, version, sequence FROM vss_objects \
     WHERE user_token = $1 AND store_id = $2 AND sequence > 0 AND sequence < $3 \
     ORDER BY sequence DESC LIMIT $4";

/// [`LIST_NEXT`] with keys in the byte range `[$5, $6)`.
pub(crate) const LIST_NEXT_PREFIX: &str = "SELECT key, version, sequence FROM vss_objects \
     WHERE user_token = $1 AND store_id = $2 AND sequence > 0 AND sequence < $3 \
     AND key >= $5 AND key < $6 \
     ORDER BY sequence DESC LIMIT $4";

/// The SQLSTATE `vss_require` raises.
pub(crate) const CONDITION_FAILED: &str = "VS409";

/// The SQLSTATE `vss_require_quota` raises.
pub(crate) const QUOTA_EXCEEDED: &str = "VS507";

/// How many creation sequence numbers one put may use: more than the most items a put holds.
pub(crate) const SEQUENCE_STRIDE: usize = 1024;

const _: () = assert!(vss_core::PROTOCOL_MAX_ITEMS_PER_PUT < SEQUENCE_STRIDE);

/// The smallest byte string greater than every string starting with `prefix`, or
/// `None` when there is none (`prefix` empty or all `0xFF`, which UTF-8 never is).
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successors() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(b"a%"), Some(b"a&".to_vec()));
        assert_eq!(prefix_successor(&[b'a', 0xFF]), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(&[0xFF, 0xFF]), None);
        assert_eq!(prefix_successor(b""), None);
        // "é" is C3 A9: everything starting with it sorts below C3 AA.
        let succ = prefix_successor("é".as_bytes()).unwrap();
        assert!("é\u{10FFFF}".as_bytes() < succ.as_slice());
        assert!("ê".as_bytes() >= succ.as_slice());
    }
}

/// The plans PostgreSQL makes for these statements on a table without statistics.
#[cfg(test)]
mod plans {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on failure.

    use bytes::Bytes;
    use vss_core::proto::{KeyValue, PutObjectRequest};
    use vss_core::{KvStore, UserToken};

    use super::*;
    use crate::{PostgresConfig, PostgresStore};

    /// The plan of `sql` prepared as `name`, executed with the literal `args`.
    async fn plan(client: &tokio_postgres::Client, name: &str, sql: &str, args: &str) -> String {
        client
            .batch_execute(&format!("PREPARE {name} AS {sql}"))
            .await
            .unwrap();
        client
            .simple_query(&format!("EXPLAIN EXECUTE {name}({args})"))
            .await
            .unwrap()
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lookups_by_key_take_the_primary_key_before_any_analyze() {
        let Some(url) = vss_core::conformance::service_url("VSS_TEST_POSTGRES_URL") else {
            return;
        };
        let mut config = PostgresConfig::from_url(&url).unwrap();
        config.default_database = config.database.clone();
        config.database = format!("vss_t_plans_{}", std::process::id());
        config.create_database = true;
        let store = PostgresStore::connect(config.clone()).await.unwrap();

        let (host, port) = config.address.rsplit_once(':').unwrap();
        let mut pg = tokio_postgres::Config::new();
        pg.host(host)
            .port(port.parse().unwrap())
            .user(&config.username)
            .dbname(&config.database);
        if let Some(password) = &config.password {
            pg.password(password);
        }
        let (client, connection) = pg.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        // No statistics for the whole test, as on a new table before autovacuum's first
        // run; and the plans a prepared statement gets after its first executions.
        client
            .batch_execute(
                "ALTER TABLE vss_objects SET (autovacuum_enabled = false);
                 SET plan_cache_mode = force_generic_plan",
            )
            .await
            .unwrap();
        let user = UserToken::new("u").unwrap();
        for chunk in 0..10 {
            let items = (0..100)
                .map(|i| KeyValue {
                    key: format!("key-{chunk}-{i:03}"),
                    version: -1,
                    value: Bytes::from(vec![7u8; 1024]),
                })
                .collect();
            let put = PutObjectRequest {
                store_id: "s".into(),
                global_version: None,
                transaction_items: items,
                delete_items: vec![],
            };
            store.put(&user, put).await.unwrap();
        }

        let by_key = [
            ("get", GET, "'u', 's', 'key-1-001'"),
            ("upd", UPDATE, "'u', 's', 'key-1-001', 1, 'v'"),
            ("del", DELETE_OBJECT, "'u', 's', 'key-1-001'"),
            ("delv", DELETE_OBJECT_VERSION, "'u', 's', 'key-1-001', 1"),
            ("pdel", DELETE_EXISTING_IN_PUT, "'u', 's', 'key-1-001'"),
            ("pdelv", DELETE_VERSION_IN_PUT, "'u', 's', 'key-1-001', 1"),
        ];
        for (name, sql, args) in by_key {
            let plan = plan(&client, name, sql, args).await;
            assert!(
                plan.contains("vss_objects_pkey") && !plan.contains("vss_objects_by_sequence"),
                "{name} does not look its key up by the primary key:\n{plan}"
            );
        }
        let listings = [
            ("lf", LIST_FIRST, "'u', 's', 100"),
            ("lfp", LIST_FIRST_PREFIX, "'u', 's', 100, 'key-1', 'key-2'"),
            ("ln", LIST_NEXT, "'u', 's', 1000000, 100"),
            (
                "lnp",
                LIST_NEXT_PREFIX,
                "'u', 's', 1000000, 100, 'key-1', 'key-2'",
            ),
        ];
        for (name, sql, args) in listings {
            let plan = plan(&client, name, sql, args).await;
            assert!(
                plan.contains("vss_objects_by_sequence"),
                "{name} does not read the listing index:\n{plan}"
            );
        }
        store.close().await.unwrap();
    }
}
