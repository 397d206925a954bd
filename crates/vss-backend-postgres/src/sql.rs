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

// Writes and usage. Each write's statement computes its change of the user's
// usage, `w(bytes, keys)`, from the row it writes, exactly under concurrency:
// an upsert or update records the length it replaces in `prev_len` (computed
// from the row version it locked), so its RETURNING knows it; a delete returns
// what it removed; a create adds what it inserted. Usage rows are taken after
// every object row of a transaction, so writes lock in one order (global
// version, objects by key, usage) and cannot deadlock. A write counts its
// change in the shard of its connection (`1 + pg_backend_pid() % 15`), so one
// user's writes on different connections do not queue on one row; a write
// under a quota counts in shard 0, where such writes queue, and judges the sum
// of all shards. The usage is the sum of a user's shards (migration 5).

/// Where a write's value comes from, by mode: `param`, its parameter (`$4`, or
/// `$5` for an update); `staged`, the staged value `s.v` (see "Staged values"
/// below), with the parameter sent empty. `written` is what the change of
/// usage measures: the parameter, or the row just written (so the staged
/// value is read once).
macro_rules! value {
    (param, $p:literal) => {
        $p
    };
    (staged, "$4") => {
        "(SELECT v FROM s WHERE $4::bytea = '')"
    };
    (staged, "$5") => {
        "(SELECT v FROM s WHERE $5::bytea = '')"
    };
}

/// See [`value!`].
macro_rules! written {
    (param, $p:literal, $row:literal) => {
        concat!($p, "::bytea")
    };
    (staged, $p:literal, $row:literal) => {
        $row
    };
}

/// The start of a write's statement, by mode: a staged value's write first
/// reads the value back (`s`).
macro_rules! with {
    (param) => {
        "WITH "
    };
    (staged) => {
        concat!("WITH ", staged!())
    };
}

/// The write of `w`, an unconditional write: `$3` key, `$4` value (by
/// `$mode`, see [`value!`]), creation sequence `$seq` when the key is new (an
/// existing key keeps its own).
macro_rules! write_any {
    ($seq:literal, $mode:ident) => {
        concat!(
            "w AS (INSERT INTO vss_objects AS o \
             (user_token, store_id, key, version, sequence, value) \
             VALUES ($1, $2, $3, 1, ",
            $seq,
            ", ",
            value!($mode, "$4"),
            ") ON CONFLICT (user_token, store_id, key) DO UPDATE \
             SET version = 1, value = EXCLUDED.value, prev_len = octet_length(o.value) \
             RETURNING octet_length(",
            written!($mode, "$4", "o.value"),
            ")::bigint \
             + CASE WHEN o.prev_len IS NULL THEN octet_length($3::bytea) ELSE -o.prev_len END AS bytes, \
             CASE WHEN o.prev_len IS NULL THEN 1 ELSE 0 END AS keys)"
        )
    };
}

/// The write of `w`, a create (version 0): `$3` key, `$4` value (by `$mode`).
/// A concurrent create of the same key waits for the other transaction, then
/// finds the key and writes nothing.
macro_rules! write_create {
    ($seq:literal, $mode:ident) => {
        concat!(
            "w AS (INSERT INTO vss_objects \
             (user_token, store_id, key, version, sequence, value) \
             VALUES ($1, $2, $3, 1, ",
            $seq,
            ", ",
            value!($mode, "$4"),
            ") ON CONFLICT (user_token, store_id, key) DO NOTHING \
             RETURNING octet_length($3::bytea)::bigint + octet_length(",
            written!($mode, "$4", "value"),
            ") AS bytes, 1 AS keys)"
        )
    };
}

/// The write of `w`, an update of version `$4` to `$4 + 1`: `$3` key, `$5`
/// value (by `$mode`). Under READ COMMITTED a concurrent write makes it wait,
/// then re-check `version = $4` on the new row version, whose length it records.
macro_rules! write_update {
    ($mode:ident) => {
        concat!(
            "w AS (UPDATE vss_objects \
             SET version = version + 1, value = ",
            value!($mode, "$5"),
            ", prev_len = octet_length(value) \
             WHERE user_token = $1 AND store_id = $2 AND key = $3 AND version = $4 \
             RETURNING octet_length(",
            written!($mode, "$5", "value"),
            ")::bigint - prev_len AS bytes, 0 AS keys)"
        )
    };
}

/// The write of `w`, a delete of `$3` at version `$4`.
macro_rules! write_delete_version {
    () => {
        "w AS (DELETE FROM vss_objects \
         WHERE user_token = $1 AND store_id = $2 AND key = $3 AND version = $4 \
         RETURNING -(octet_length(key)::bigint + octet_length(value)) AS bytes, -1 AS keys)"
    };
}

/// The write of `w`, a delete of `$3` whatever its version.
macro_rules! write_delete {
    () => {
        "w AS (DELETE FROM vss_objects \
         WHERE user_token = $1 AND store_id = $2 AND key = $3 \
         RETURNING -(octet_length(key)::bigint + octet_length(value)) AS bytes, -1 AS keys)"
    };
}

/// Adds `w`'s change, when it is one, to the usage shard of this connection.
macro_rules! count {
    () => {
        ", u AS (INSERT INTO vss_usage AS u (user_token, shard, bytes, keys) \
         SELECT $1, 1 + pg_backend_pid() % 15, bytes, keys FROM w \
         WHERE bytes <> 0 OR keys <> 0 \
         ON CONFLICT (user_token, shard) DO UPDATE \
         SET bytes = u.bytes + EXCLUDED.bytes, keys = u.keys + EXCLUDED.keys) "
    };
}

/// Adds `w`'s change, when it is one, to the user's shard 0 (writes under a
/// quota queue there) and judges it: the RETURNING of the shard it changed
/// calls `vss_judge_quota`, which raises SQLSTATE `VS507` (through
/// `vss_require_quota`) when the change raised bytes above `$max_bytes` or
/// keys above `$max_keys` (NULL: no limit). The usage judged is shard 0 as
/// this write leaves it plus the other shards as committed; writes under a
/// quota never count elsewhere, so no admitted write can be missing from the
/// sum. A write that changes no usage changes no shard and calls nothing, so
/// its statement costs what one without a quota does (migration 6).
macro_rules! count_under_quota {
    ($max_bytes:literal, $max_keys:literal) => {
        concat!(
            ", u AS (INSERT INTO vss_usage AS u (user_token, shard, bytes, keys) \
             SELECT $1, 0, bytes, keys FROM w WHERE bytes <> 0 OR keys <> 0 \
             ON CONFLICT (user_token, shard) DO UPDATE \
             SET bytes = u.bytes + EXCLUDED.bytes, keys = u.keys + EXCLUDED.keys \
             RETURNING vss_judge_quota($1, u.bytes, u.keys, (SELECT bytes FROM w), \
             (SELECT keys FROM w), ",
            $max_bytes,
            ", ",
            $max_keys,
            ")) "
        )
    };
}

/// Adds `w`'s change to the put's running total, kept in two settings local
/// to the transaction; [`COUNT_PUT`] or [`COUNT_PUT_UNDER_QUOTA`] counts it.
macro_rules! add_to_put {
    () => {
        "(SELECT set_config('vss.put_bytes', (COALESCE(NULLIF(current_setting('vss.put_bytes', \
         true), ''), '0')::bigint + bytes)::text, true) || set_config('vss.put_keys', \
         (COALESCE(NULLIF(current_setting('vss.put_keys', true), ''), '0')::bigint + keys)::text, \
         true) FROM w)"
    };
}

/// The statement of [`ANY_ALONE`] and [`ANY_ALONE_STAGED`], by mode.
macro_rules! any_alone {
    ($mode:ident) => {
        concat!(
            with!($mode),
            write_any!("nextval('vss_creation_seq') * 1024", $mode),
            count!(),
            "SELECT 1"
        )
    };
}

/// Unconditional write, the only item of its put: `$3` key, `$4` value;
/// counts its change.
pub(crate) const ANY_ALONE: &str = any_alone!(param);

/// The statement of [`ANY_ALONE_UNDER_QUOTA`] and [`ANY_ALONE_UNDER_QUOTA_STAGED`], by mode.
macro_rules! any_alone_under_quota {
    ($mode:ident) => {
        concat!(
            with!($mode),
            write_any!("nextval('vss_creation_seq') * 1024", $mode),
            count_under_quota!("$5", "$6"),
            "SELECT 1"
        )
    };
}

/// [`ANY_ALONE`] under a quota: `$5` most bytes, `$6` most keys.
pub(crate) const ANY_ALONE_UNDER_QUOTA: &str = any_alone_under_quota!(param);

/// The statement of [`CREATE_ALONE`] and [`CREATE_ALONE_STAGED`], by mode.
macro_rules! create_alone {
    ($mode:ident) => {
        concat!(
            with!($mode),
            write_create!("nextval('vss_creation_seq') * 1024", $mode),
            count!(),
            "SELECT vss_require(EXISTS (SELECT 1 FROM w), 'create')"
        )
    };
}

/// Create, the only item of its put: `$3` key, `$4` value; counts the new key.
pub(crate) const CREATE_ALONE: &str = create_alone!(param);

/// The statement of [`CREATE_ALONE_UNDER_QUOTA`] and [`CREATE_ALONE_UNDER_QUOTA_STAGED`], by mode.
macro_rules! create_alone_under_quota {
    ($mode:ident) => {
        concat!(
            with!($mode),
            write_create!("nextval('vss_creation_seq') * 1024", $mode),
            count_under_quota!("$5", "$6"),
            "SELECT vss_require(EXISTS (SELECT 1 FROM w), 'create')"
        )
    };
}

/// [`CREATE_ALONE`] under a quota: `$5` most bytes, `$6` most keys.
pub(crate) const CREATE_ALONE_UNDER_QUOTA: &str = create_alone_under_quota!(param);

/// The statement of [`UPDATE_ALONE`] and [`UPDATE_ALONE_STAGED`], by mode.
macro_rules! update_alone {
    ($mode:ident) => {
        concat!(
            with!($mode),
            write_update!($mode),
            count!(),
            "SELECT vss_require(EXISTS (SELECT 1 FROM w), 'update')"
        )
    };
}

/// Update, the only item of its put: `$3` key, `$4` version, `$5` value;
/// counts the change of length.
pub(crate) const UPDATE_ALONE: &str = update_alone!(param);

/// The statement of [`UPDATE_ALONE_UNDER_QUOTA`] and [`UPDATE_ALONE_UNDER_QUOTA_STAGED`], by mode.
macro_rules! update_alone_under_quota {
    ($mode:ident) => {
        concat!(
            with!($mode),
            write_update!($mode),
            count_under_quota!("$6", "$7"),
            "SELECT vss_require(EXISTS (SELECT 1 FROM w), 'update')"
        )
    };
}

/// [`UPDATE_ALONE`] under a quota: `$6` most bytes, `$7` most keys.
pub(crate) const UPDATE_ALONE_UNDER_QUOTA: &str = update_alone_under_quota!(param);

/// A put's only item, a delete of `$3` at version `$4`; frees its usage.
pub(crate) const DELETE_VERSION_ALONE: &str = concat!(
    "WITH ",
    write_delete_version!(),
    count!(),
    "SELECT vss_require(EXISTS (SELECT 1 FROM w), 'delete')"
);

/// A put's only item, a delete of `$3` whatever its version; frees its usage.
pub(crate) const DELETE_EXISTING_ALONE: &str = concat!(
    "WITH ",
    write_delete!(),
    count!(),
    "SELECT vss_require(EXISTS (SELECT 1 FROM w), 'delete')"
);

/// `deleteObject` of `$3`, whatever its version; frees its usage.
pub(crate) const DELETE_OBJECT: &str = concat!("WITH ", write_delete!(), count!(), "SELECT 1");

/// `deleteObject` of `$3` at version `$4`; frees its usage.
pub(crate) const DELETE_OBJECT_VERSION: &str =
    concat!("WITH ", write_delete_version!(), count!(), "SELECT 1");

/// Takes the creation sequence value of a put of several items; its creates
/// use it through `currval`, which is per session and so per pooled connection.
pub(crate) const NEXT_SEQUENCE: &str = "SELECT nextval('vss_creation_seq')";

/// The statement of [`ANY_IN_PUT`] and [`ANY_IN_PUT_STAGED`], by mode.
macro_rules! any_in_put {
    ($mode:ident) => {
        concat!(
            with!($mode),
            write_any!("currval('vss_creation_seq') * 1024 + $5", $mode),
            " SELECT ",
            add_to_put!()
        )
    };
}

/// Unconditional write in a put of several items: `$3` key, `$4` value, `$5`
/// item index in the request; adds its change to the put's total.
pub(crate) const ANY_IN_PUT: &str = any_in_put!(param);

/// The statement of [`CREATE_IN_PUT`] and [`CREATE_IN_PUT_STAGED`], by mode.
macro_rules! create_in_put {
    ($mode:ident) => {
        concat!(
            with!($mode),
            write_create!("currval('vss_creation_seq') * 1024 + $5", $mode),
            " SELECT vss_require(EXISTS (SELECT 1 FROM w), 'create'), ",
            add_to_put!()
        )
    };
}

/// Create in a put of several items: `$3` key, `$4` value, `$5` item index in
/// the request; adds the new key to the put's total.
pub(crate) const CREATE_IN_PUT: &str = create_in_put!(param);

/// The statement of [`UPDATE_IN_PUT`] and [`UPDATE_IN_PUT_STAGED`], by mode.
macro_rules! update_in_put {
    ($mode:ident) => {
        concat!(
            with!($mode),
            write_update!($mode),
            " SELECT vss_require(EXISTS (SELECT 1 FROM w), 'update'), ",
            add_to_put!()
        )
    };
}

/// Update in a put of several items: `$3` key, `$4` version, `$5` value; adds
/// the change of length to the put's total.
pub(crate) const UPDATE_IN_PUT: &str = update_in_put!(param);

/// Delete of `$3` at version `$4` in a put of several items.
pub(crate) const DELETE_VERSION_IN_PUT: &str = concat!(
    "WITH ",
    write_delete_version!(),
    " SELECT vss_require(EXISTS (SELECT 1 FROM w), 'delete'), ",
    add_to_put!()
);

/// Delete of `$3`, whatever its version, in a put of several items.
pub(crate) const DELETE_EXISTING_IN_PUT: &str = concat!(
    "WITH ",
    write_delete!(),
    " SELECT vss_require(EXISTS (SELECT 1 FROM w), 'delete'), ",
    add_to_put!()
);

// Staged values. A value of 1 MiB or more (`LARGE_VALUE_BYTES`, see
// `PostgresStore::with_staged_values_from`) is not a parameter of its write:
// tokio-postgres would hold it twice more (in the bind message, then in the
// connection's write buffer). It is sent first as rows of chunks of
// `vss_staged`, a temporary table of the put's transaction (`STAGE_TABLE`,
// `STAGE_CHUNK`, one chunk at a time), and the write's `*_STAGED` statement
// reads it back whole (`s`, by the write's key: keys of a put are distinct),
// once: its change of usage takes the length of the row it wrote. The
// statement keeps the parameters of its unstaged twin; its value parameter
// must be sent empty (any other value reads NULL, which the table refuses).

/// The staged value of the write's key `$3`, as `s.v`.
macro_rules! staged {
    () => {
        "s AS (SELECT string_agg(chunk, ''::bytea ORDER BY n) AS v \
         FROM pg_temp.vss_staged WHERE key = $3), "
    };
}

/// The table of a put's staged values, dropped when its transaction ends.
pub(crate) const STAGE_TABLE: &str = "CREATE TEMP TABLE vss_staged \
     (key bytea NOT NULL, n integer NOT NULL, chunk bytea NOT NULL) ON COMMIT DROP";

/// Chunk `$2` (from 0) of the staged value of key `$1`: `$3`.
pub(crate) const STAGE_CHUNK: &str =
    "INSERT INTO pg_temp.vss_staged (key, n, chunk) VALUES ($1, $2, $3)";

/// [`ANY_ALONE`] of a staged value (`$4` sent empty).
pub(crate) const ANY_ALONE_STAGED: &str = any_alone!(staged);

/// [`ANY_ALONE_UNDER_QUOTA`] of a staged value (`$4` sent empty).
pub(crate) const ANY_ALONE_UNDER_QUOTA_STAGED: &str = any_alone_under_quota!(staged);

/// [`CREATE_ALONE`] of a staged value (`$4` sent empty).
pub(crate) const CREATE_ALONE_STAGED: &str = create_alone!(staged);

/// [`CREATE_ALONE_UNDER_QUOTA`] of a staged value (`$4` sent empty).
pub(crate) const CREATE_ALONE_UNDER_QUOTA_STAGED: &str = create_alone_under_quota!(staged);

/// [`UPDATE_ALONE`] of a staged value (`$5` sent empty).
pub(crate) const UPDATE_ALONE_STAGED: &str = update_alone!(staged);

/// [`UPDATE_ALONE_UNDER_QUOTA`] of a staged value (`$5` sent empty).
pub(crate) const UPDATE_ALONE_UNDER_QUOTA_STAGED: &str = update_alone_under_quota!(staged);

/// [`ANY_IN_PUT`] of a staged value (`$4` sent empty).
pub(crate) const ANY_IN_PUT_STAGED: &str = any_in_put!(staged);

/// [`CREATE_IN_PUT`] of a staged value (`$4` sent empty).
pub(crate) const CREATE_IN_PUT_STAGED: &str = create_in_put!(staged);

/// [`UPDATE_IN_PUT`] of a staged value (`$5` sent empty).
pub(crate) const UPDATE_IN_PUT_STAGED: &str = update_in_put!(staged);

/// The put's total change, as its items added it up.
macro_rules! put_total {
    () => {
        "w AS (SELECT COALESCE(NULLIF(current_setting('vss.put_bytes', true), ''), '0')::bigint \
         AS bytes, COALESCE(NULLIF(current_setting('vss.put_keys', true), ''), '0')::bigint \
         AS keys)"
    };
}

/// The last statement of a put of several items: counts its total change.
pub(crate) const COUNT_PUT: &str = concat!("WITH ", put_total!(), count!(), "SELECT 1");

/// [`COUNT_PUT`] under a quota: `$2` most bytes, `$3` most keys.
pub(crate) const COUNT_PUT_UNDER_QUOTA: &str = concat!(
    "WITH ",
    put_total!(),
    count_under_quota!("$2", "$3"),
    "SELECT 1"
);

/// Checks that the global version is `$3` and makes it `$3 + 1`. The store's row is
/// created (with 1) by the first put that sets it; if that insert happens although `$3`
/// is not 0, the check fails and the insert is rolled back with the statement.
pub(crate) const BUMP_GLOBAL_VERSION: &str = "WITH g AS (INSERT INTO vss_stores \
     (user_token, store_id, global_version) VALUES ($1, $2, 1) \
     ON CONFLICT (user_token, store_id) DO UPDATE \
     SET global_version = vss_stores.global_version + 1 \
     WHERE vss_stores.global_version = $3 RETURNING global_version) \
     SELECT vss_require((SELECT global_version - 1 FROM g) = $3, 'global_version')";

// Listings say `sequence > 0` (true of every row) because the listing index is
// partial on it: statements without it, every lookup by key, cannot use that index
// and take the primary key even before the table has statistics (migration 0002).

// A listing page is one row of arrays, not a row per key: tokio-postgres parses
// and allocates every row it receives, and for a page of 100 keys that was a
// quarter of the server's CPU. The arrays are aggregated from the same rows in
// one pass, so their elements line up; a page without keys has NULL arrays.

/// A listing statement: its head (`first`: the store's global version, NULL
/// when it was never set, since `vss_stores` has a row only from the first put
/// with a global version; `next`: nothing), then the page's arrays, over the
/// store's keys that also meet `$cond`, newest first, at most `$limit`.
macro_rules! list {
    (first, $cond:literal, $limit:literal) => {
        concat!(
            "SELECT (SELECT s.global_version FROM vss_stores s \
             WHERE s.user_token = $1 AND s.store_id = $2), ",
            list!(page, $cond, $limit)
        )
    };
    (next, $cond:literal, $limit:literal) => {
        concat!("SELECT ", list!(page, $cond, $limit))
    };
    (page, $cond:literal, $limit:literal) => {
        concat!(
            "array_agg(o.key), array_agg(o.version), array_agg(o.sequence) \
             FROM (SELECT key, version, sequence FROM vss_objects \
             WHERE user_token = $1 AND store_id = $2 AND sequence > 0",
            $cond,
            " ORDER BY sequence DESC LIMIT ",
            $limit,
            ") AS o"
        )
    };
}

/// First page of a listing: the global version and up to `$3` keys with their
/// versions and creation sequences, read by one statement and so from one
/// snapshot.
pub(crate) const LIST_FIRST: &str = list!(first, "", "$3");

/// [`LIST_FIRST`] with keys in the byte range `[$4, $5)` (a literal prefix and its successor).
pub(crate) const LIST_FIRST_PREFIX: &str = list!(first, " AND key >= $4 AND key < $5", "$3");

/// A later page: up to `$4` keys created before sequence `$3`, as [`LIST_FIRST`]
/// without the global version.
pub(crate) const LIST_NEXT: &str = list!(next, " AND sequence < $3", "$4");

/// [`LIST_NEXT`] with keys in the byte range `[$5, $6)`.
pub(crate) const LIST_NEXT_PREFIX: &str =
    list!(next, " AND sequence < $3 AND key >= $5 AND key < $6", "$4");

/// The SQLSTATE `vss_require` raises.
pub(crate) const CONDITION_FAILED: &str = "VS409";

/// The SQLSTATE `vss_require_quota` raises (called by `vss_judge_quota`).
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

    /// scripts/pgbench holds the ceilings scripts/bench-postgres measures: each runs
    /// one of these statements verbatim (its parameters named in comments), so a
    /// statement changed here is the one measured there.
    #[test]
    fn pgbench_scripts_run_the_stores_statements() {
        let statements = [
            ("GET", GET),
            ("ANY_ALONE", ANY_ALONE),
            ("CREATE_ALONE", CREATE_ALONE),
            ("UPDATE_ALONE", UPDATE_ALONE),
            ("DELETE_OBJECT", DELETE_OBJECT),
            ("LIST_FIRST", LIST_FIRST),
        ];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pgbench");
        let mut used = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let mut lines = text.lines();
            let name = lines
                .by_ref()
                .find_map(|line| line.strip_prefix("-- statement: "))
                .unwrap_or_else(|| panic!("{} names no statement", path.display()));
            let (name, sql) = statements
                .iter()
                .find(|(n, _)| *n == name)
                .copied()
                .unwrap_or_else(|| panic!("{}: no statement {name}", path.display()));
            assert_eq!(
                lines.next(),
                Some(format!("{sql};").as_str()),
                "{} runs another {name} than sql.rs",
                path.display()
            );
            used.push(name);
        }
        used.sort_unstable();
        let mut all: Vec<_> = statements.iter().map(|(n, _)| *n).collect();
        all.sort_unstable();
        assert_eq!(used, all, "one script per statement");
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
            ("upd", UPDATE_ALONE, "'u', 's', 'key-1-001', 1, 'v'"),
            ("updp", UPDATE_IN_PUT, "'u', 's', 'key-1-001', 1, 'v'"),
            ("upsert", ANY_ALONE, "'u', 's', 'key-1-001', 'v'"),
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
            // Read in the index's order, not scanned and then sorted.
            assert!(
                !plan.contains("Sort"),
                "{name} sorts the store's keys:\n{plan}"
            );
        }
        store.close().await.unwrap();
    }
}
