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
/// Length in bytes of a chunked record's value (N).
pub const VALUE_LEN: &str = "vl";
/// Global version of a store, on its metadata item (N).
pub const GLOBAL_VERSION: &str = "gv";
/// Last creation sequence handed out in a store, on its metadata item (N).
pub const COUNTER: &str = "ctr";
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

/// The partition of one user's store: `<byte length of the token>:<token><store id>`.
///
/// The length prefix keeps every pair apart, whatever bytes the token and the
/// store id contain (`("ab", "c")` and `("a", "bc")` differ).
pub fn partition_key(user: &UserToken, store_id: &str) -> String {
    let user = user.as_str();
    format!("{}:{user}{store_id}", user.len())
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
