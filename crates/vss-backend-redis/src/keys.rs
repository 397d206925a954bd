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
//! | `c`          | `1` once the store's data is in its user's usage  |
//!
//! Members of the sorted set are the raw client keys; scores are creation
//! sequences (exact as `f64` up to 2^53, far beyond any store's life).
//!
//! Each user also has a usage hash, with a tag of its own (the user's hex
//! alone, without a `.`, so it never equals a store's tag):
//!
//! ```text
//! <namespace>:{<hex(user_token)>}:u   hash: bytes, keys
//! ```
//!
//! and each namespace one marker, set once every store written before usage
//! was kept has been counted: `<namespace>:usage-counted`.

use vss_core::UserToken;

/// Field of the global version in a store's hash.
pub(crate) const GLOBAL_VERSION_FIELD: &[u8] = b"g";

/// Whether `namespace` keeps the hash tag the first `{...}` of every key.
pub(crate) fn valid_namespace(namespace: &str) -> bool {
    !namespace.contains(['{', '}'])
}

/// The two Redis keys of one store, and its user's usage hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoreKeys {
    /// The hash of versions, values and counters.
    pub hash: Vec<u8>,
    /// The sorted set ordering keys by creation sequence.
    pub order: Vec<u8>,
    /// The usage hash of the store's user (in another cluster slot).
    pub usage: Vec<u8>,
}

impl StoreKeys {
    pub(crate) fn new(namespace: &str, user: &UserToken, store_id: &str) -> Self {
        let mut user_hex = Vec::with_capacity(2 * user.as_str().len());
        push_hex(&mut user_hex, user.as_str().as_bytes());
        let mut store_hex = Vec::with_capacity(2 * store_id.len());
        push_hex(&mut store_hex, store_id.as_bytes());
        Self::from_hex(namespace.as_bytes(), &user_hex, &store_hex)
    }

    fn from_hex(namespace: &[u8], user_hex: &[u8], store_hex: &[u8]) -> Self {
        let mut base = Vec::with_capacity(namespace.len() + 4 + user_hex.len() + store_hex.len());
        base.extend_from_slice(namespace);
        base.extend_from_slice(b":{");
        base.extend_from_slice(user_hex);
        base.push(b'.');
        base.extend_from_slice(store_hex);
        base.push(b'}');
        let mut hash = base.clone();
        hash.extend_from_slice(b":h");
        let mut order = base;
        order.extend_from_slice(b":z");
        StoreKeys {
            hash,
            order,
            usage: usage_key_from_hex(namespace, user_hex),
        }
    }

    /// The keys of the store whose hash is `hash`, a key this module made in
    /// `namespace`; `None` for any other key (for keys a `SCAN` found).
    pub(crate) fn from_hash_key(namespace: &str, hash: &[u8]) -> Option<Self> {
        let tag = hash
            .strip_prefix(namespace.as_bytes())?
            .strip_prefix(b":{")?
            .strip_suffix(b"}:h")?;
        let dot = tag.iter().position(|&b| b == b'.')?;
        let (user_hex, store_hex) = (&tag[..dot], &tag[dot + 1..]);
        let is_hex = |h: &[u8]| {
            h.len().is_multiple_of(2) && h.iter().all(|b| b"0123456789abcdef".contains(b))
        };
        if user_hex.is_empty() || !is_hex(user_hex) || !is_hex(store_hex) {
            return None;
        }
        Some(Self::from_hex(namespace.as_bytes(), user_hex, store_hex))
    }
}

/// The usage hash of `user`: `<namespace>:{<hex(user)>}:u`.
pub(crate) fn usage_key(namespace: &str, user: &UserToken) -> Vec<u8> {
    let mut user_hex = Vec::with_capacity(2 * user.as_str().len());
    push_hex(&mut user_hex, user.as_str().as_bytes());
    usage_key_from_hex(namespace.as_bytes(), &user_hex)
}

fn usage_key_from_hex(namespace: &[u8], user_hex: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(namespace.len() + 5 + user_hex.len());
    key.extend_from_slice(namespace);
    key.extend_from_slice(b":{");
    key.extend_from_slice(user_hex);
    key.extend_from_slice(b"}:u");
    key
}

/// The key that marks a namespace whose stores written before usage was kept
/// have all been counted.
pub(crate) fn usage_marker(namespace: &str) -> Vec<u8> {
    let mut key = namespace.as_bytes().to_vec();
    key.extend_from_slice(b":usage-counted");
    key
}

/// A `SCAN` pattern matching the hash of every store in `namespace` (and
/// maybe other keys, which [`StoreKeys::from_hash_key`] tells apart).
pub(crate) fn store_hash_pattern(namespace: &str) -> Vec<u8> {
    // Glob metacharacters of the namespace match only themselves.
    let mut pattern = escaped(namespace);
    pattern.extend_from_slice(b":{*}:h");
    pattern
}

/// The glob pattern that matches `namespace` literally.
fn escaped(namespace: &str) -> Vec<u8> {
    let mut pattern = Vec::with_capacity(namespace.len() + 8);
    for &b in namespace.as_bytes() {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            pattern.push(b'\\');
        }
        pattern.push(b);
    }
    pattern
}

/// A `SCAN` pattern matching the hash of every store of `user`.
pub(crate) fn user_store_pattern(namespace: &str, user: &UserToken) -> Vec<u8> {
    let mut pattern = escaped(namespace);
    pattern.extend_from_slice(b":{");
    push_hex(&mut pattern, user.as_str().as_bytes());
    pattern.extend_from_slice(b".*}:h");
    pattern
}

/// A `SCAN` pattern matching every user's usage hash (and maybe other keys,
/// which [`user_of_usage_key`] tells apart).
pub(crate) fn usage_pattern(namespace: &str) -> Vec<u8> {
    let mut pattern = escaped(namespace);
    pattern.extend_from_slice(b":{*}:u");
    pattern
}

/// The user whose usage hash is `key`; `None` for any other key.
pub(crate) fn user_of_usage_key(namespace: &str, key: &[u8]) -> Option<UserToken> {
    let hex = key
        .strip_prefix(namespace.as_bytes())?
        .strip_prefix(b":{")?
        .strip_suffix(b"}:u")?;
    let user = String::from_utf8(unhex(hex)?).ok()?;
    UserToken::new(user).ok()
}

/// The user and store id of the store whose hash is `key`; `None` for any
/// other key.
pub(crate) fn store_of_hash_key(namespace: &str, key: &[u8]) -> Option<(UserToken, String)> {
    let tag = key
        .strip_prefix(namespace.as_bytes())?
        .strip_prefix(b":{")?
        .strip_suffix(b"}:h")?;
    let dot = tag.iter().position(|&b| b == b'.')?;
    let user = String::from_utf8(unhex(&tag[..dot])?).ok()?;
    let store_id = String::from_utf8(unhex(&tag[dot + 1..])?).ok()?;
    Some((UserToken::new(user).ok()?, store_id))
}

/// Lowercase hex, decoded; `None` when it is not.
fn unhex(hex: &[u8]) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    hex.chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
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
    fn admin_patterns_and_names_decode() {
        let keys = StoreKeys::new("n*", &user("a.b"), "s}");
        assert_eq!(
            store_of_hash_key("n*", &keys.hash),
            Some((user("a.b"), "s}".to_string()))
        );
        assert_eq!(user_of_usage_key("n*", &keys.usage), Some(user("a.b")));
        assert_eq!(store_of_hash_key("n*", &keys.usage), None);
        assert_eq!(user_of_usage_key("n*", &keys.hash), None);
        assert_eq!(user_store_pattern("n*", &user("a")), b"n\\*:{61.*}:h");
        assert_eq!(usage_pattern("n?"), b"n\\?:{*}:u");
    }

    #[test]
    fn layout() {
        let keys = StoreKeys::new("vss", &user("ab"), "");
        assert_eq!(keys.hash, b"vss:{6162.}:h");
        assert_eq!(keys.order, b"vss:{6162.}:z");
        assert_eq!(keys.usage, b"vss:{6162}:u");
        assert_eq!(keys.usage, usage_key("vss", &user("ab")));
        let keys = StoreKeys::new("vss", &user("}{"), "s:");
        assert_eq!(keys.hash, b"vss:{7d7b.733a}:h");
        assert_eq!(usage_marker("vss"), b"vss:usage-counted");
    }

    #[test]
    fn a_usage_key_never_shares_a_store_tag() {
        // A store's tag always has a `.`, a user's never: no user's usage hash
        // meets a store, whatever the names.
        for (u, s) in [("a", ""), ("ab", "c"), ("a.b", ""), ("x", ".")] {
            let keys = StoreKeys::new("ns", &user(u), s);
            let store_tag = hash_tag(&keys.hash).unwrap();
            let usage_tag = hash_tag(&keys.usage).unwrap();
            assert_ne!(store_tag, usage_tag);
            assert!(!usage_tag.contains(&b'.'));
        }
    }

    #[test]
    fn scanned_hash_keys_give_back_their_store() {
        for (u, s) in [("ab", ""), ("}{", "s:"), ("a.b", "c.d")] {
            let keys = StoreKeys::new("vss:p", &user(u), s);
            assert_eq!(StoreKeys::from_hash_key("vss:p", &keys.hash), Some(keys));
        }
        for other in [
            &b"vss:p:{6162.}:z"[..],
            b"vss:p:{6162}:u",
            b"vss:p:{.61}:h",
            b"vss:p:{616.}:h",
            b"vss:p:{6G62.}:h",
            b"vss:p:{6162.}:h:x",
            b"vss:q:{6162.}:h",
            b"vss:p:usage-counted",
        ] {
            assert_eq!(StoreKeys::from_hash_key("vss:p", other), None, "{other:?}");
        }
        assert_eq!(store_hash_pattern("vss"), b"vss:{*}:h");
        assert_eq!(
            store_hash_pattern("a*b?[c]\\"),
            b"a\\*b\\?\\[c\\]\\\\:{*}:h"
        );
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
