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

/// Unconditional write standing alone (one statement, no transaction): `$3` key,
/// `$4` value. A new key takes a fresh creation sequence; an existing one keeps its own.
pub(crate) const UPSERT_ALONE: &str = "INSERT INTO vss_objects \
     (user_token, store_id, key, version, sequence, value) \
     VALUES ($1, $2, $3, 1, nextval('vss_creation_seq') * 1024, $4) \
     ON CONFLICT (user_token, store_id, key) DO UPDATE SET version = 1, value = EXCLUDED.value";

/// Create (version 0) standing alone: `$3` key, `$4` value. A concurrent create of
/// the same key waits for the other transaction, then finds the key and conflicts.
pub(crate) const CREATE_ALONE: &str = "WITH w AS (INSERT INTO vss_objects \
     (user_token, store_id, key, version, sequence, value) \
     VALUES ($1, $2, $3, 1, nextval('vss_creation_seq') * 1024, $4) \
     ON CONFLICT (user_token, store_id, key) DO NOTHING RETURNING 1) \
     SELECT vss_require(EXISTS (SELECT 1 FROM w), 'create')";

/// Takes the creation sequence value of a multi-item put; its creates use it through
/// `currval`, which is per session and so per pooled connection.
pub(crate) const NEXT_SEQUENCE: &str = "SELECT nextval('vss_creation_seq')";

/// Unconditional write inside a put: `$3` key, `$4` value, `$5` item index in the request.
pub(crate) const UPSERT_IN_PUT: &str = "INSERT INTO vss_objects \
     (user_token, store_id, key, version, sequence, value) \
     VALUES ($1, $2, $3, 1, currval('vss_creation_seq') * 1024 + $5, $4) \
     ON CONFLICT (user_token, store_id, key) DO UPDATE SET version = 1, value = EXCLUDED.value";

/// Create inside a put: `$3` key, `$4` value, `$5` item index in the request.
pub(crate) const CREATE_IN_PUT: &str = "WITH w AS (INSERT INTO vss_objects \
     (user_token, store_id, key, version, sequence, value) \
     VALUES ($1, $2, $3, 1, currval('vss_creation_seq') * 1024 + $5, $4) \
     ON CONFLICT (user_token, store_id, key) DO NOTHING RETURNING 1) \
     SELECT vss_require(EXISTS (SELECT 1 FROM w), 'create')";

/// Update of version `$4` to `$4 + 1`: `$3` key, `$5` value. Under READ COMMITTED a
/// concurrent update makes this one wait, then re-check `version = $4` on the new row.
pub(crate) const UPDATE: &str =
    "WITH w AS (UPDATE vss_objects SET version = version + 1, value = $5 \
     WHERE user_token = $1 AND store_id = $2 AND key = $3 AND version = $4 RETURNING 1) \
     SELECT vss_require(EXISTS (SELECT 1 FROM w), 'update')";

/// A put's delete of `$3` at version `$4`.
pub(crate) const DELETE_VERSION_IN_PUT: &str = "WITH d AS (DELETE FROM vss_objects \
     WHERE user_token = $1 AND store_id = $2 AND key = $3 AND version = $4 RETURNING 1) \
     SELECT vss_require(EXISTS (SELECT 1 FROM d), 'delete')";

/// A put's delete of `$3`, whatever its version.
pub(crate) const DELETE_EXISTING_IN_PUT: &str = "WITH d AS (DELETE FROM vss_objects \
     WHERE user_token = $1 AND store_id = $2 AND key = $3 RETURNING 1) \
     SELECT vss_require(EXISTS (SELECT 1 FROM d), 'delete')";

/// Checks that the global version is `$3` and makes it `$3 + 1`. The store's row is
/// created (with 1) by the first put that sets it; if that insert happens although `$3`
/// is not 0, the check fails and the insert is rolled back with the statement.
pub(crate) const BUMP_GLOBAL_VERSION: &str = "WITH g AS (INSERT INTO vss_stores \
     (user_token, store_id, global_version) VALUES ($1, $2, 1) \
     ON CONFLICT (user_token, store_id) DO UPDATE \
     SET global_version = vss_stores.global_version + 1 \
     WHERE vss_stores.global_version = $3 RETURNING global_version) \
     SELECT vss_require((SELECT global_version - 1 FROM g) = $3, 'global_version')";

/// `deleteObject` of `$3`, whatever its version.
pub(crate) const DELETE_OBJECT: &str =
    "DELETE FROM vss_objects WHERE user_token = $1 AND store_id = $2 AND key = $3";

/// `deleteObject` of `$3` at version `$4`.
pub(crate) const DELETE_OBJECT_VERSION: &str = "DELETE FROM vss_objects \
     WHERE user_token = $1 AND store_id = $2 AND key = $3 AND version = $4";

/// First page of a listing: the global version and up to `$3` keys, read by one
/// statement and so from one snapshot. Always returns at least one row (with NULL
/// key columns when the page is empty).
pub(crate) const LIST_FIRST: &str = "SELECT g.global_version, o.key, o.version, o.sequence \
     FROM (SELECT COALESCE((SELECT s.global_version FROM vss_stores s \
        WHERE s.user_token = $1 AND s.store_id = $2), 0) AS global_version) AS g \
     LEFT JOIN LATERAL (SELECT key, version, sequence FROM vss_objects \
        WHERE user_token = $1 AND store_id = $2 \
        ORDER BY sequence DESC LIMIT $3) AS o ON true";

/// [`LIST_FIRST`] with keys in the byte range `[$4, $5)` (a literal prefix and its successor).
pub(crate) const LIST_FIRST_PREFIX: &str = "SELECT g.global_version, o.key, o.version, o.sequence \
     FROM (SELECT COALESCE((SELECT s.global_version FROM vss_stores s \
        WHERE s.user_token = $1 AND s.store_id = $2), 0) AS global_version) AS g \
     LEFT JOIN LATERAL (SELECT key, version, sequence FROM vss_objects \
        WHERE user_token = $1 AND store_id = $2 AND key >= $4 AND key < $5 \
        ORDER BY sequence DESC LIMIT $3) AS o ON true";

/// A later page: up to `$4` keys created before sequence `$3`.
pub(crate) const LIST_NEXT: &str = "SELECT key, version, sequence FROM vss_objects \
     WHERE user_token = $1 AND store_id = $2 AND sequence < $3 \
     ORDER BY sequence DESC LIMIT $4";

/// [`LIST_NEXT`] with keys in the byte range `[$5, $6)`.
pub(crate) const LIST_NEXT_PREFIX: &str = "SELECT key, version, sequence FROM vss_objects \
     WHERE user_token = $1 AND store_id = $2 AND sequence < $3 AND key >= $5 AND key < $6 \
     ORDER BY sequence DESC LIMIT $4";

/// The SQLSTATE `vss_require` raises.
pub(crate) const CONDITION_FAILED: &str = "VS409";

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
