//! The table layout: attribute names and how keys are built.
//!
//! Public because the layout is a contract of its own: operators' tooling
//! (backups, audits, the crate's deploy templates) relies on it. See the crate
//! documentation for the whole schema.

use vss_core::UserToken;

/// Partition key (S).
pub const PK: &str = "pk";
/// Sort key (S).
pub const SK: &str = "sk";
/// Creation sequence of a record (N); sort key of [`BY_SEQ_INDEX`].
pub const SEQ: &str = "seq";
/// Version of a record (N).
pub const VERSION: &str = "ver";
/// Inline value of a record (B); absent when the value is empty or chunked.
pub const VALUE: &str = "val";
/// Chunk id of a chunked record (S).
pub const CHUNK_ID: &str = "cid";
/// Number of chunks of a chunked record (N).
pub const CHUNK_COUNT: &str = "cn";
/// Length in bytes of a record's value (N): on every record this version
/// writes, inline or chunked. Records written before usage was counted carry
/// it only when chunked; an inline one without it ("legacy") is never changed
/// in place without gaining it, so its absence pins the record as it was.
pub const VALUE_LEN: &str = "vl";
/// Global version of a store, on its metadata item (N).
pub const GLOBAL_VERSION: &str = "gv";
/// Last creation sequence handed out in a store, on its metadata item (N).
pub const COUNTER: &str = "ctr";
/// On a store's metadata item (N, `1`): the store's records are counted in its
/// user's usage. Set once (by the first write of a new store, or by counting
/// a store written before usage existed) and never removed.
pub const USAGE_COUNTED: &str = "uc";
/// Bytes of a user's keys plus values, on the user's usage item (N).
pub const USAGE_BYTES: &str = "ub";
/// Number of a user's keys, on the user's usage item (N).
pub const USAGE_KEYS: &str = "uk";
/// When the table's existing data was counted, on the usage marker (N, Unix seconds).
pub const COUNTED_AT: &str = "at";
/// Bytes of a chunk (B).
pub const CHUNK_DATA: &str = "data";
/// When a chunk was written, in Unix seconds (N).
pub const CHUNK_WRITTEN_AT: &str = "at";

/// The local secondary index over [`SEQ`] that serves listings.
pub const BY_SEQ_INDEX: &str = "by_seq";

/// Sort key of a store's metadata item.
pub const METADATA_SK: &str = "m";
/// Sort key prefix of records: `k#<key>`.
pub const RECORD_PREFIX: &str = "k#";
/// Sort key prefix of chunks: `c#<chunk id>#<index>`.
pub const CHUNK_PREFIX: &str = "c#";

/// Partition key prefix of users' usage items: `u:<user token>`. Store
/// partitions start with a digit (their length prefix), so none collides.
pub const USAGE_PARTITION_PREFIX: &str = "u:";
/// Sort key of a user's usage item.
pub const USAGE_SK: &str = "u";
/// Partition key of the table's own items (not a digit, not `u:`).
pub const TABLE_PARTITION: &str = "t:";
/// Sort key of the marker (in [`TABLE_PARTITION`]) saying that every store
/// written before usage existed has been counted.
pub const USAGE_MARKER_SK: &str = "usage-counted";

/// The partition of one user's store: `<byte length of the token>:<token><store id>`.
///
/// The length prefix keeps every pair apart, whatever bytes the token and the
/// store id contain (`("ab", "c")` and `("a", "bc")` differ).
pub fn partition_key(user: &UserToken, store_id: &str) -> String {
    let user = user.as_str();
    format!("{}:{user}{store_id}", user.len())
}

/// The partition of a user's usage item: `u:<token>`.
pub fn usage_partition_key(user: &UserToken) -> String {
    format!("{USAGE_PARTITION_PREFIX}{}", user.as_str())
}

/// The user token of a store's partition key; `None` when `pk` is not one.
pub fn user_of_partition(pk: &str) -> Option<&str> {
    let (len, rest) = pk.split_once(':')?;
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.get(..len.parse::<usize>().ok()?)
}

/// The partition of the usage item of the user owning the store partition `pk`.
pub fn usage_partition_of_store(pk: &str) -> Option<String> {
    user_of_partition(pk).map(|user| format!("{USAGE_PARTITION_PREFIX}{user}"))
}

/// The sort key of the record of `key`.
pub fn record_sort_key(key: &str) -> String {
    format!("{RECORD_PREFIX}{key}")
}

/// The key of a record back from its sort key; `None` for other items.
pub fn key_of_record(sort_key: &str) -> Option<&str> {
    sort_key.strip_prefix(RECORD_PREFIX)
}

/// The sort key prefix shared by every chunk of one chunk id.
pub fn chunk_id_prefix(chunk_id: &str) -> String {
    format!("{CHUNK_PREFIX}{chunk_id}#")
}

/// The sort key of chunk `index` of `chunk_id`.
pub fn chunk_sort_key(chunk_id: &str, index: u32) -> String {
    format!("{CHUNK_PREFIX}{chunk_id}#{index:06}")
}

/// The chunk id a chunk's sort key names; `None` for other items.
pub fn chunk_id_of(sort_key: &str) -> Option<&str> {
    let rest = sort_key.strip_prefix(CHUNK_PREFIX)?;
    rest.split_once('#').map(|(id, _)| id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_do_not_collide() {
        let ab = UserToken::new("ab").unwrap();
        let a = UserToken::new("a").unwrap();
        assert_ne!(partition_key(&ab, "c"), partition_key(&a, "bc"));
        // A token that looks like a length prefix cannot fake another pair.
        let tricky = UserToken::new("1:a").unwrap();
        let one = UserToken::new("1").unwrap();
        assert_ne!(partition_key(&tricky, ""), partition_key(&one, ":a"));
        assert_eq!(partition_key(&a, ""), "1:a");
        let multibyte = UserToken::new("é").unwrap();
        assert_eq!(partition_key(&multibyte, "s"), "2:és");
    }

    #[test]
    fn usage_partitions_name_the_user_and_never_collide_with_stores() {
        for (token, store_id) in [("ab", "c"), ("1:a", ""), ("é", "s"), ("u:x", "y")] {
            let user = UserToken::new(token).unwrap();
            let pk = partition_key(&user, store_id);
            assert_eq!(user_of_partition(&pk), Some(token));
            assert_eq!(
                usage_partition_of_store(&pk),
                Some(usage_partition_key(&user))
            );
            assert!(pk.starts_with(|c: char| c.is_ascii_digit()));
            assert!(!usage_partition_key(&user).starts_with(|c: char| c.is_ascii_digit()));
        }
        assert!(!TABLE_PARTITION.starts_with(|c: char| c.is_ascii_digit()));
        assert!(!TABLE_PARTITION.starts_with(USAGE_PARTITION_PREFIX));
        assert_eq!(user_of_partition("u:abc"), None);
        assert_eq!(user_of_partition("9:ab"), None);
        assert_eq!(user_of_partition(":ab"), None);
        assert_eq!(user_of_partition("2:\u{e9}x"), Some("\u{e9}"));
        // A length that cuts a character is not a partition of this layout.
        assert_eq!(user_of_partition("1:\u{e9}x"), None);
    }

    #[test]
    fn namespaces_are_apart() {
        assert_eq!(
            key_of_record(&record_sort_key("c#x#000001")),
            Some("c#x#000001")
        );
        assert_eq!(key_of_record(METADATA_SK), None);
        assert_eq!(key_of_record(&chunk_sort_key("ab", 3)), None);
        assert_eq!(chunk_id_of(&chunk_sort_key("ab", 3)), Some("ab"));
        assert_eq!(chunk_id_of(&record_sort_key("c#x")), None);
        assert!(chunk_sort_key("ab", 3).starts_with(&chunk_id_prefix("ab")));
        assert!(!chunk_sort_key("abc", 3).starts_with(&chunk_id_prefix("ab")));
    }
}
