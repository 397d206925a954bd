//! Per-user quotas: what a user may store, what they store, and the rule
//! that judges a put between the two.
//!
//! A user's **usage** is, over every store id of the user, the number of keys
//! stored and their bytes: each key counts its own length plus its value's
//! length ([`Usage::of_item`]). The global version and store ids count nothing.
//!
//! A [`Quota`] caps either or both. The rule, [`Quota::admit`], is judged on
//! the usage before and after a put, in the same transaction as the put:
//! a put is refused ([`VssError::QuotaExceeded`], nothing written) when it
//! *raises* bytes or keys above their limit. A put that does not raise a
//! measure is always allowed for it, even when the user is over the limit
//! already (the quota was lowered, or data predates it): overwriting with a
//! smaller value, deleting, and `deleteObject` always work, so a full user can
//! clean up.
//!
//! Stores take the quota with each put ([`crate::KvStore::put_with_quota`])
//! and keep usage exact in the same transaction as the write; [`Quotas`]
//! decorates a store with a [`QuotaPolicy`] (a default for every user and
//! per-user overrides).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::proto::{
    DeleteObjectRequest, DeleteObjectResponse, GetObjectRequest, GetObjectResponse,
    ListKeyVersionsRequest, ListKeyVersionsResponse, PutObjectRequest, PutObjectResponse,
};
use crate::validate::PutPlan;
use crate::{KvStore, StoreLimits, UserToken, VssError};

/// A user's limits; `None` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quota {
    /// Most bytes (keys plus values) the user may store.
    pub max_bytes: Option<u64>,
    /// Most keys the user may store.
    pub max_keys: Option<u64>,
}

impl Quota {
    /// No limit at all: what a put without a quota is judged by.
    pub const UNLIMITED: Quota = Quota {
        max_bytes: None,
        max_keys: None,
    };

    /// Whether neither measure is limited.
    pub fn is_unlimited(&self) -> bool {
        self.max_bytes.is_none() && self.max_keys.is_none()
    }

    /// The tighter of two quotas, measure by measure.
    pub fn tighter(self, other: Quota) -> Quota {
        fn min(a: Option<u64>, b: Option<u64>) -> Option<u64> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, None) => a,
                (None, b) => b,
            }
        }
        Quota {
            max_bytes: min(self.max_bytes, other.max_bytes),
            max_keys: min(self.max_keys, other.max_keys),
        }
    }

    /// Judges a put that takes the user's usage from `before` to `after`:
    /// refused when it raises a measure above its limit, with a message that
    /// names the limit, the usage the put would reach and the usage now.
    pub fn admit(&self, before: Usage, after: Usage) -> Result<(), VssError> {
        if let Some(max) = self.max_bytes {
            if after.bytes > before.bytes && after.bytes > max {
                return Err(VssError::QuotaExceeded(format!(
                    "this put would store {} bytes for this user, more than its quota of {max} \
                     bytes (stored now: {} bytes in {} keys); delete data to make room",
                    after.bytes, before.bytes, before.keys
                )));
            }
        }
        if let Some(max) = self.max_keys {
            if after.keys > before.keys && after.keys > max {
                return Err(VssError::QuotaExceeded(format!(
                    "this put would store {} keys for this user, more than its quota of {max} \
                     keys (stored now: {} keys, {} bytes); delete keys to make room",
                    after.keys, before.keys, before.bytes
                )));
            }
        }
        Ok(())
    }
}

/// What a user stores: keys, and bytes of keys plus values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Bytes of every stored key plus its value.
    pub bytes: u64,
    /// Number of stored keys.
    pub keys: u64,
}

impl Usage {
    /// What one stored key counts: one key, and its bytes plus its value's.
    pub fn of_item(key: &str, value_len: usize) -> Usage {
        Usage {
            bytes: (key.len() as u64).saturating_add(value_len as u64),
            keys: 1,
        }
    }

    /// This usage with `item` added.
    pub fn plus(self, item: Usage) -> Usage {
        Usage {
            bytes: self.bytes.saturating_add(item.bytes),
            keys: self.keys.saturating_add(item.keys),
        }
    }

    /// This usage with `item` taken away (never below zero).
    pub fn minus(self, item: Usage) -> Usage {
        Usage {
            bytes: self.bytes.saturating_sub(item.bytes),
            keys: self.keys.saturating_sub(item.keys),
        }
    }
}

impl PutPlan {
    /// The user's usage after this put, from the usage `before` it and
    /// `stored_value_len`, which answers the length of a key's stored value
    /// (`None` when the key is not stored) for each key the put writes or
    /// deletes. Call it after [`PutPlan::check`] passed: then every delete
    /// names a stored key.
    pub fn usage_after<E>(
        &self,
        before: Usage,
        mut stored_value_len: impl FnMut(&str) -> Result<Option<usize>, E>,
    ) -> Result<Usage, E> {
        let mut usage = before;
        for write in &self.writes {
            if let Some(len) = stored_value_len(&write.key)? {
                usage = usage.minus(Usage::of_item(&write.key, len));
            }
            usage = usage.plus(Usage::of_item(&write.key, write.value.len()));
        }
        for delete in &self.deletes {
            if let Some(len) = stored_value_len(&delete.key)? {
                usage = usage.minus(Usage::of_item(&delete.key, len));
            }
        }
        Ok(usage)
    }
}

/// Who gets which [`Quota`]: a default for every user, and overrides for
/// some users (an override replaces the default as a whole).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaPolicy {
    /// The quota of every user without an override.
    pub default: Quota,
    /// Quotas of single users, by user token.
    pub users: HashMap<String, Quota>,
}

impl QuotaPolicy {
    /// The quota of `user`.
    pub fn for_user(&self, user: &UserToken) -> Quota {
        self.users
            .get(user.as_str())
            .copied()
            .unwrap_or(self.default)
    }

    /// Whether no user has any limit.
    pub fn is_unlimited(&self) -> bool {
        self.default.is_unlimited() && self.users.values().all(Quota::is_unlimited)
    }
}

/// A store decorator that gives every put the quota of its user under a
/// [`QuotaPolicy`] (the tighter one when the put already carries a quota).
/// The store underneath enforces it, atomically with the write.
#[derive(Debug)]
pub struct Quotas<S> {
    inner: S,
    policy: Arc<QuotaPolicy>,
}

impl<S: KvStore> Quotas<S> {
    /// `inner`, with `policy` applied to every put. Fails when the policy
    /// limits anyone but `inner` does not enforce quotas
    /// ([`StoreLimits::enforces_quotas`]).
    pub fn new(inner: S, policy: QuotaPolicy) -> Result<Self, VssError> {
        if !policy.is_unlimited() && !inner.limits().enforces_quotas {
            return Err(VssError::internal(
                "quotas are configured, but this store does not enforce quotas",
            ));
        }
        Ok(Quotas {
            inner,
            policy: Arc::new(policy),
        })
    }

    /// The policy applied.
    pub fn policy(&self) -> &QuotaPolicy {
        &self.policy
    }
}

#[async_trait]
impl<S: KvStore> KvStore for Quotas<S> {
    async fn get(
        &self,
        user: &UserToken,
        req: GetObjectRequest,
    ) -> Result<GetObjectResponse, VssError> {
        self.inner.get(user, req).await
    }

    async fn put(
        &self,
        user: &UserToken,
        req: PutObjectRequest,
    ) -> Result<PutObjectResponse, VssError> {
        self.put_with_quota(user, req, Quota::UNLIMITED).await
    }

    async fn put_with_quota(
        &self,
        user: &UserToken,
        req: PutObjectRequest,
        quota: Quota,
    ) -> Result<PutObjectResponse, VssError> {
        let quota = quota.tighter(self.policy.for_user(user));
        self.inner.put_with_quota(user, req, quota).await
    }

    async fn delete(
        &self,
        user: &UserToken,
        req: DeleteObjectRequest,
    ) -> Result<DeleteObjectResponse, VssError> {
        self.inner.delete(user, req).await
    }

    async fn list_key_versions(
        &self,
        user: &UserToken,
        req: ListKeyVersionsRequest,
    ) -> Result<ListKeyVersionsResponse, VssError> {
        self.inner.list_key_versions(user, req).await
    }

    fn limits(&self) -> StoreLimits {
        self.inner.limits()
    }

    async fn ready(&self) -> Result<(), VssError> {
        self.inner.ready().await
    }

    async fn close(&self) -> Result<(), VssError> {
        self.inner.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(bytes: u64, keys: u64) -> Usage {
        Usage { bytes, keys }
    }

    #[test]
    fn only_raising_a_measure_above_its_limit_is_refused() {
        let quota = Quota {
            max_bytes: Some(100),
            max_keys: Some(2),
        };
        assert!(quota.admit(usage(0, 0), usage(100, 2)).is_ok());
        let over = quota.admit(usage(61, 1), usage(112, 2)).unwrap_err();
        assert!(matches!(over, VssError::QuotaExceeded(_)), "{over}");
        let message = over.to_string();
        assert!(
            message.contains("112") && message.contains("100") && message.contains("61"),
            "{message}"
        );
        assert!(quota.admit(usage(10, 2), usage(20, 3)).is_err());
        // Over the limit already, and not growing: allowed, so users can clean up.
        assert!(quota.admit(usage(500, 9), usage(400, 9)).is_ok());
        assert!(quota.admit(usage(500, 9), usage(500, 8)).is_ok());
        assert!(Quota::UNLIMITED
            .admit(usage(0, 0), usage(u64::MAX, u64::MAX))
            .is_ok());
    }

    #[test]
    fn tighter_takes_the_smaller_limit_of_each_measure() {
        let a = Quota {
            max_bytes: Some(10),
            max_keys: None,
        };
        let b = Quota {
            max_bytes: Some(20),
            max_keys: Some(3),
        };
        assert_eq!(
            a.tighter(b),
            Quota {
                max_bytes: Some(10),
                max_keys: Some(3)
            }
        );
        assert_eq!(Quota::UNLIMITED.tighter(b), b);
    }

    #[test]
    fn overrides_replace_the_default() {
        let mut policy = QuotaPolicy {
            default: Quota {
                max_bytes: Some(1),
                max_keys: None,
            },
            users: HashMap::new(),
        };
        policy.users.insert("big".into(), Quota::UNLIMITED);
        let big = UserToken::new("big").unwrap();
        let other = UserToken::new("other").unwrap();
        assert_eq!(policy.for_user(&big), Quota::UNLIMITED);
        assert_eq!(policy.for_user(&other).max_bytes, Some(1));
        assert!(!policy.is_unlimited());
    }

    #[test]
    fn a_policy_that_limits_needs_a_store_that_enforces() {
        let refuses = Quotas::new(
            crate::MemoryStore::with_limits(StoreLimits {
                enforces_quotas: false,
                ..StoreLimits::default()
            }),
            QuotaPolicy {
                default: Quota {
                    max_bytes: Some(1),
                    max_keys: None,
                },
                users: HashMap::new(),
            },
        );
        assert!(refuses.is_err());
    }
}
