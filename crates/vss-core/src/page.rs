//! Page tokens of `listKeyVersions`.
//!
//! A token names the position after the last key of a page: the creation
//! sequence of that key. It is bound to the listing it came from (user, store
//! and prefix) by a check value, so garbage, a token altered in transit, or a
//! token of another store or user is refused with INVALID_REQUEST instead of
//! being followed. The check is a plain hash, not a secret: anyone able to
//! recompute it can only move around inside their own store, which the store
//! lets them read anyway, and servers behind a load balancer need no shared key.
//!
//! Wire form: base64url (no padding) of `[format: 1 byte][before_sequence: i64 BE][check: 8 bytes]`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::{UserToken, VssError};

const FORMAT: u8 = 1;
const LEN: usize = 1 + 8 + 8;

/// Where the next page of a listing starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageToken {
    /// The next page holds keys whose creation sequence is below this value.
    pub before_sequence: i64,
}

impl PageToken {
    /// The opaque string form of this token for one listing.
    pub fn encode(&self, user: &UserToken, store_id: &str, prefix: &str) -> String {
        let mut raw = [0u8; LEN];
        raw[0] = FORMAT;
        raw[1..9].copy_from_slice(&self.before_sequence.to_be_bytes());
        raw[9..].copy_from_slice(&check(user, store_id, prefix, self.before_sequence));
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Reads a token, refusing any that this listing did not produce.
    pub fn decode(
        token: &str,
        user: &UserToken,
        store_id: &str,
        prefix: &str,
    ) -> Result<Self, VssError> {
        let invalid =
            || VssError::InvalidRequest("page_token is not valid for this listing".into());
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        if raw.len() != LEN || raw[0] != FORMAT {
            return Err(invalid());
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&raw[1..9]);
        let before_sequence = i64::from_be_bytes(seq);
        if raw[9..] != check(user, store_id, prefix, before_sequence) {
            return Err(invalid());
        }
        Ok(PageToken { before_sequence })
    }
}

fn check(user: &UserToken, store_id: &str, prefix: &str, before_sequence: i64) -> [u8; 8] {
    let mut hash = Sha256::new();
    hash.update(b"vss-rs page token v1");
    // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
    for part in [user.as_str(), store_id, prefix] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hash.update(before_sequence.to_be_bytes());
    let digest = hash.finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let alice = UserToken::new("alice").unwrap();
        let bob = UserToken::new("bob").unwrap();
        let token = PageToken {
            before_sequence: 42,
        }
        .encode(&alice, "s", "p");
        assert_eq!(
            PageToken::decode(&token, &alice, "s", "p")
                .unwrap()
                .before_sequence,
            42
        );
        assert!(PageToken::decode(&token, &bob, "s", "p").is_err());
        assert!(PageToken::decode(&token, &alice, "t", "p").is_err());
        assert!(PageToken::decode(&token, &alice, "s", "").is_err());
        assert!(PageToken::decode("garbage!", &alice, "s", "p").is_err());
        let mut tampered = URL_SAFE_NO_PAD.decode(&token).unwrap();
        tampered[8] ^= 1;
        assert!(PageToken::decode(&URL_SAFE_NO_PAD.encode(tampered), &alice, "s", "p").is_err());
    }
}
