//! Where one `(user_token, store_id)` lives in Redis.
//!
//! Every store is two Redis keys that share one cluster hash tag:
//!
//! ```text
//! <namespace>:{<hex(user_token)>.<hex(store_id)>}:h   hash: versions, values, counters
//! <namespace>:{<hex(user_token)>.<hex(store_id)>}:z   sorted set: key -> creation sequence
//! ```
//!
//! The tag is lowercase hex of the user token's bytes, a `.`, and lowercase hex
//! of the store id's bytes (empty for the empty store id). Hex has no `.`, `{`
//! or `}`, so the tag is unambiguous whatever bytes users and stores contain,
//! it ends at the `}` this module puts there, and it is never empty (user
//! tokens are never empty). The namespace may not contain `{` or `}`, so the
//! tag is always the first `{...}` of the key.
//!
//! Fields of the hash start with a kind byte, so client keys never collide
//! with the store's own fields:
//!
//! | field        | holds                                             |
//! |--------------|---------------------------------------------------|
//! | `g`          | the global version (absent: 0)                    |
//! | `s`          | the last creation sequence handed out             |
//! | `v` + key    | the key's version, as a decimal string            |
//! | `d` + key    | the key's value, raw bytes                        |
//!
//! Members of the sorted set are the raw client keys; scores are creation
//! sequences (exact as `f64` up to 2^53, far beyond any store's life).

use vss_core::UserToken;

/// Field of the global version in a store's hash.
pub(crate) const GLOBAL_VERSION_FIELD: &[u8] = b"g";

/// Whether `namespace` keeps the hash tag the first `{...}` of every key.
pub(crate) fn valid_namespace(namespace: &str) -> bool {
    !namespace.contains(['{', '}'])
}

/// The two Redis keys of one store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoreKeys {
    /// The hash of versions, values and counters.
    pub hash: Vec<u8>,
    /// The sorted set ordering keys by creation sequence.
    pub order: Vec<u8>,
}

impl StoreKeys {
    pub(crate) fn new(namespace: &str, user: &UserToken, store_id: &str) -> Self {
        let mut base =
            Vec::with_capacity(namespace.len() + 4 + 2 * (user.as_str().len() + store_id.len()));
        base.extend_from_slice(namespace.as_bytes());
        base.extend_from_slice(b":{");
        push_hex(&mut base, user.as_str().as_bytes());
        base.push(b'.');
        push_hex(&mut base, store_id.as_bytes());
        base.push(b'}');
        let mut hash = base.clone();
        hash.extend_from_slice(b":h");
        let mut order = base;
        order.extend_from_slice(b":z");
        StoreKeys { hash, order }
    }
}

/// The hash field holding `key`'s version.
pub(crate) fn version_field(key: &str) -> Vec<u8> {
    prefixed(b'v', key)
}

/// The hash field holding `key`'s value.
pub(crate) fn value_field(key: &str) -> Vec<u8> {
    prefixed(b'd', key)
}

fn prefixed(kind: u8, key: &str) -> Vec<u8> {
    let mut field = Vec::with_capacity(1 + key.len());
    field.push(kind);
    field.extend_from_slice(key.as_bytes());
    field
}

fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)]);
        out.push(DIGITS[usize::from(byte & 0x0f)]);
    }
}

/// The cluster hash tag of a Redis key: the bytes between the first `{` and
/// the next `}`, or `None` when Redis would hash the whole key.
#[cfg(test)]
fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let len = key[open + 1..].iter().position(|&b| b == b'}')?;
    (len > 0).then(|| &key[open + 1..open + 1 + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(s: &str) -> UserToken {
        UserToken::new(s).unwrap()
    }

    #[test]
    fn layout() {
        let keys = StoreKeys::new("vss", &user("ab"), "");
        assert_eq!(keys.hash, b"vss:{6162.}:h");
        assert_eq!(keys.order, b"vss:{6162.}:z");
        let keys = StoreKeys::new("vss", &user("}{"), "s:");
        assert_eq!(keys.hash, b"vss:{7d7b.733a}:h");
    }

    #[test]
    fn both_keys_share_one_tag_and_no_separator_collides() {
        // Splits of the same bytes between user and store must not meet.
        let cases = [
            ("a", "b.c"),
            ("a.b", "c"),
            ("a}", "{b"),
            ("a", "}b"),
            ("a.", "b"),
            ("a", ".b"),
            ("ab", ""),
            ("a", "b"),
        ];
        let mut tags = std::collections::HashSet::new();
        for (u, s) in cases {
            let keys = StoreKeys::new("ns", &user(u), s);
            let tag = hash_tag(&keys.hash).unwrap().to_vec();
            assert_eq!(Some(&tag[..]), hash_tag(&keys.order), "{u:?}/{s:?}");
            assert!(!tag.contains(&b'}') && !tag.contains(&b'{'));
            assert!(tags.insert(tag), "{u:?}/{s:?} collides");
        }
    }

    #[test]
    fn fields_are_kind_prefixed() {
        assert_eq!(version_field("g"), b"vg");
        assert_eq!(value_field("g"), b"dg");
        assert_ne!(version_field("x"), GLOBAL_VERSION_FIELD);
        assert!(valid_namespace("vss:prod"));
        assert!(!valid_namespace("vss{x"));
        assert!(!valid_namespace("vss}"));
    }
}
