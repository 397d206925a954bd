//! Request validation and the meaning of each request, written once for every backend.
//!
//! Each function checks a request against the protocol and turns it into a plan
//! that a backend only has to map onto its database: [`PutPlan`] says exactly
//! which conditions must hold and what to write, [`ListPlan`] where a page
//! starts and how long it is.

use bytes::Bytes;

use crate::page::PageToken;
use crate::proto::{
    DeleteObjectRequest, GetObjectRequest, KeyValue, ListKeyVersionsRequest,
    ListKeyVersionsResponse, PutObjectRequest,
};
use crate::{StoreLimits, UserToken, VssError};

/// Longest `store_id`, in bytes. The empty string is a valid store id.
pub const MAX_STORE_ID_LEN: usize = 120;
/// Longest key (and key prefix), in bytes. Keys are never empty.
pub const MAX_KEY_LEN: usize = 600;
/// The reserved key under which `getObject` reports a store's global version.
pub const GLOBAL_VERSION_KEY: &str = "global_version";
/// The item version meaning "no condition" (upsert, or delete whatever is stored).
pub const UNCONDITIONAL: i64 = -1;

/// Checks a store id.
pub fn store_id(store_id: &str) -> Result<(), VssError> {
    if store_id.len() > MAX_STORE_ID_LEN {
        return Err(VssError::InvalidRequest(format!(
            "store_id is {} bytes, more than the limit of {MAX_STORE_ID_LEN}",
            store_id.len()
        )));
    }
    Ok(())
}

/// Checks a key's length (1 to [`MAX_KEY_LEN`] bytes). The reserved key passes.
pub fn key(key: &str) -> Result<(), VssError> {
    if key.is_empty() {
        return Err(VssError::InvalidRequest("key must not be empty".into()));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(VssError::InvalidRequest(format!(
            "key is {} bytes, more than the limit of {MAX_KEY_LEN}",
            key.len()
        )));
    }
    Ok(())
}

/// Checks a key that a client wants to write or delete: as [`key`], and not the reserved key.
pub fn writable_key(k: &str) -> Result<(), VssError> {
    key(k)?;
    if k == GLOBAL_VERSION_KEY {
        return Err(VssError::InvalidRequest(format!(
            "the key `{GLOBAL_VERSION_KEY}` is reserved and cannot be written or deleted"
        )));
    }
    Ok(())
}

/// What a `getObject` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetTarget {
    /// An ordinary key.
    Key(String),
    /// The reserved key: answer with the store's global version.
    GlobalVersion,
}

/// Checks a `getObject` request.
pub fn get(req: &GetObjectRequest) -> Result<GetTarget, VssError> {
    store_id(&req.store_id)?;
    key(&req.key)?;
    if req.key == GLOBAL_VERSION_KEY {
        Ok(GetTarget::GlobalVersion)
    } else {
        Ok(GetTarget::Key(req.key.clone()))
    }
}

/// The `KeyValue` a `getObject` of the reserved key answers with.
pub fn global_version_key_value(global_version: i64) -> KeyValue {
    KeyValue {
        key: GLOBAL_VERSION_KEY.to_string(),
        version: global_version,
        value: Bytes::new(),
    }
}

/// The condition under which one written item may be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteCondition {
    /// Version 0: the key must not exist; it is created with version 1.
    MustNotExist,
    /// Version `v > 0`: the key must exist with version `v`; it becomes `v + 1`.
    VersionIs(i64),
    /// Version -1: no condition; the stored version becomes 1.
    Any,
}

impl WriteCondition {
    fn from_version(version: i64) -> Result<Self, VssError> {
        match version {
            0 => Ok(WriteCondition::MustNotExist),
            v if v > 0 => Ok(WriteCondition::VersionIs(v)),
            UNCONDITIONAL => Ok(WriteCondition::Any),
            v => Err(VssError::InvalidRequest(format!(
                "item version {v} is not allowed (use 0 to create, a positive version to update, -1 to overwrite)"
            ))),
        }
    }

    /// Whether the condition holds when the key's current version is `current`
    /// (`None` when the key does not exist).
    pub fn holds(self, current: Option<i64>) -> bool {
        match self {
            WriteCondition::MustNotExist => current.is_none(),
            WriteCondition::VersionIs(v) => current == Some(v),
            WriteCondition::Any => true,
        }
    }

    /// The version the key has after the write.
    pub fn new_version(self) -> i64 {
        match self {
            WriteCondition::MustNotExist | WriteCondition::Any => 1,
            WriteCondition::VersionIs(v) => v.saturating_add(1),
        }
    }
}

/// The condition under which one deleted item (of a put) may be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteCondition {
    /// Version `v >= 0`: the key must exist with version `v`.
    VersionIs(i64),
    /// Version -1: the key must exist, with any version.
    Exists,
}

impl DeleteCondition {
    fn from_version(version: i64) -> Result<Self, VssError> {
        match version {
            v if v >= 0 => Ok(DeleteCondition::VersionIs(v)),
            UNCONDITIONAL => Ok(DeleteCondition::Exists),
            v => Err(VssError::InvalidRequest(format!(
                "delete version {v} is not allowed (use a version >= 0, or -1 for any)"
            ))),
        }
    }

    /// Whether the condition holds when the key's current version is `current`.
    pub fn holds(self, current: Option<i64>) -> bool {
        match (self, current) {
            (_, None) => false,
            (DeleteCondition::VersionIs(v), Some(c)) => v == c,
            (DeleteCondition::Exists, Some(_)) => true,
        }
    }
}

/// One key a put writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedWrite {
    /// The key.
    pub key: String,
    /// The new value.
    pub value: Bytes,
    /// When the write may happen.
    pub condition: WriteCondition,
}

/// One key a put deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedDelete {
    /// The key.
    pub key: String,
    /// When the delete may happen.
    pub condition: DeleteCondition,
}

/// A validated `putObjects`: all of it is applied, or none of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutPlan {
    /// The store the put runs in.
    pub store_id: String,
    /// When set, the store's global version must equal it, and becomes `it + 1`.
    pub global_version: Option<i64>,
    /// Keys to write, in request order.
    pub writes: Vec<PlannedWrite>,
    /// Keys to delete, in request order. Never overlaps `writes`.
    pub deletes: Vec<PlannedDelete>,
}

impl PutPlan {
    /// The message of the CONFLICT answered when `global_version` does not match.
    pub fn global_version_conflict(&self, stored: i64) -> VssError {
        VssError::Conflict(format!(
            "global version mismatch: expected {}, stored {stored}",
            self.global_version.unwrap_or_default()
        ))
    }
}

/// The CONFLICT answered when a written item's condition does not hold.
pub fn write_conflict(key: &str) -> VssError {
    VssError::Conflict(format!("version mismatch for key `{key}`"))
}

/// The CONFLICT answered when a deleted item's condition does not hold.
pub fn delete_conflict(key: &str) -> VssError {
    VssError::Conflict(format!(
        "key `{key}` to delete does not exist or has another version"
    ))
}

/// Checks a `putObjects` request and turns it into a [`PutPlan`].
pub fn put(req: PutObjectRequest, limits: &StoreLimits) -> Result<PutPlan, VssError> {
    store_id(&req.store_id)?;
    let total = req.transaction_items.len() + req.delete_items.len();
    if total > limits.max_items_per_put {
        return Err(VssError::InvalidRequest(format!(
            "a put holds {total} items, more than this server's limit of {}",
            limits.max_items_per_put
        )));
    }
    let mut seen = std::collections::HashSet::with_capacity(total);
    let mut writes = Vec::with_capacity(req.transaction_items.len());
    for item in req.transaction_items {
        writable_key(&item.key)?;
        let condition = WriteCondition::from_version(item.version)?;
        if !seen.insert(item.key.clone()) {
            return Err(duplicate(&item.key));
        }
        writes.push(PlannedWrite {
            key: item.key,
            value: item.value,
            condition,
        });
    }
    let mut deletes = Vec::with_capacity(req.delete_items.len());
    for item in req.delete_items {
        writable_key(&item.key)?;
        let condition = DeleteCondition::from_version(item.version)?;
        if !seen.insert(item.key.clone()) {
            return Err(duplicate(&item.key));
        }
        deletes.push(PlannedDelete {
            key: item.key,
            condition,
        });
    }
    Ok(PutPlan {
        store_id: req.store_id,
        global_version: req.global_version,
        writes,
        deletes,
    })
}

fn duplicate(key: &str) -> VssError {
    VssError::InvalidRequest(format!("key `{key}` appears more than once in one put"))
}

/// A validated `deleteObject`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletePlan {
    /// The store.
    pub store_id: String,
    /// The key to delete.
    pub key: String,
    /// `Some(v)`: delete only when the stored version is `v`; `None`: delete whatever is stored.
    /// Either way a missing key or another version is not an error.
    pub version: Option<i64>,
}

/// Checks a `deleteObject` request.
pub fn delete(req: DeleteObjectRequest) -> Result<DeletePlan, VssError> {
    store_id(&req.store_id)?;
    let item = req
        .key_value
        .ok_or_else(|| VssError::InvalidRequest("key_value is required".into()))?;
    writable_key(&item.key)?;
    let version = match item.version {
        UNCONDITIONAL => None,
        v if v >= 0 => Some(v),
        v => {
            return Err(VssError::InvalidRequest(format!(
                "delete version {v} is not allowed (use a version >= 0, or -1 for any)"
            )))
        }
    };
    Ok(DeletePlan {
        store_id: req.store_id,
        key: item.key,
        version,
    })
}

/// A validated `listKeyVersions`: which page of which store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPlan {
    /// The store.
    pub store_id: String,
    /// Literal byte prefix keys must start with; empty for all keys.
    pub prefix: String,
    /// Most keys this page may hold (0 when the client asked for none).
    pub limit: usize,
    /// Only keys created before this creation sequence (exclusive); `None` on the first page.
    pub before_sequence: Option<i64>,
    /// Whether this is the first page, which carries the global version.
    pub first_page: bool,
    user: UserToken,
}

/// One listed key, with the creation sequence that orders the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedKey {
    /// The key.
    pub key: String,
    /// Its current version.
    pub version: i64,
    /// Its creation sequence: strictly increasing per store, kept by updates,
    /// renewed by a delete and re-create.
    pub sequence: i64,
}

/// Checks a `listKeyVersions` request and works out which page it asks for.
pub fn list(
    user: &UserToken,
    req: ListKeyVersionsRequest,
    limits: &StoreLimits,
) -> Result<ListPlan, VssError> {
    store_id(&req.store_id)?;
    let prefix = req.key_prefix.unwrap_or_default();
    if prefix.len() > MAX_KEY_LEN {
        return Err(VssError::InvalidRequest(format!(
            "key_prefix is {} bytes, more than the limit of {MAX_KEY_LEN}",
            prefix.len()
        )));
    }
    let limit = page_size(req.page_size, limits);
    let (before_sequence, first_page) = match req.page_token.as_deref() {
        None | Some("") => (None, true),
        Some(token) => (
            Some(PageToken::decode(token, user, &req.store_id, &prefix)?.before_sequence),
            false,
        ),
    };
    Ok(ListPlan {
        store_id: req.store_id,
        prefix,
        limit,
        before_sequence,
        first_page,
        user: user.clone(),
    })
}

/// The number of keys a page holds for a requested `page_size`: absent or
/// negative gives the default, 0 gives 0, anything else is capped at the maximum.
pub fn page_size(requested: Option<i32>, limits: &StoreLimits) -> usize {
    let size = match requested {
        None => limits.default_page_size,
        Some(n) if n < 0 => limits.default_page_size,
        Some(n) => n.min(limits.max_page_size),
    };
    usize::try_from(size).unwrap_or(0)
}

impl ListPlan {
    /// How many rows a backend should fetch: one more than the page, so that
    /// [`ListPlan::respond`] knows whether another page follows.
    pub fn fetch_limit(&self) -> usize {
        self.limit + 1
    }

    /// Whether a key belongs to this listing's prefix (a literal byte prefix).
    pub fn matches(&self, key: &str) -> bool {
        key.as_bytes().starts_with(self.prefix.as_bytes())
    }

    /// Builds the response from up to [`ListPlan::fetch_limit`] rows, newest
    /// first, all older than `before_sequence` and matching the prefix.
    /// `global_version` must have been read before the rows (it is only sent on
    /// the first page).
    pub fn respond(&self, rows: Vec<ListedKey>, global_version: i64) -> ListKeyVersionsResponse {
        let more = rows.len() > self.limit;
        self.respond_with(rows, more, global_version)
    }

    /// Like [`ListPlan::respond`], for backends that know by other means whether
    /// more keys may follow (for example a bounded scan that stopped early).
    /// Rows beyond the page's limit are dropped and imply `more`.
    pub fn respond_with(
        &self,
        mut rows: Vec<ListedKey>,
        more: bool,
        global_version: i64,
    ) -> ListKeyVersionsResponse {
        let more = more || rows.len() > self.limit;
        rows.truncate(self.limit);
        let next_page_token = if self.limit == 0 {
            // Nothing was read: the next page starts where this one would have.
            self.token(self.before_sequence.unwrap_or(i64::MAX))
        } else if more {
            match rows.last() {
                Some(last) => self.token(last.sequence),
                // A bounded scan found nothing yet: resume at the same place.
                None => self.token(self.before_sequence.unwrap_or(i64::MAX)),
            }
        } else {
            String::new()
        };
        ListKeyVersionsResponse {
            key_versions: rows
                .into_iter()
                .map(|row| KeyValue {
                    key: row.key,
                    version: row.version,
                    value: Bytes::new(),
                })
                .collect(),
            next_page_token: Some(next_page_token),
            global_version: self.first_page.then_some(global_version),
        }
    }

    fn token(&self, before_sequence: i64) -> String {
        PageToken { before_sequence }.encode(&self.user, &self.store_id, &self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, version: i64) -> KeyValue {
        KeyValue {
            key: key.into(),
            version,
            value: Bytes::new(),
        }
    }

    #[test]
    fn page_sizes() {
        let l = StoreLimits::default();
        assert_eq!(page_size(None, &l), 100);
        assert_eq!(page_size(Some(-5), &l), 100);
        assert_eq!(page_size(Some(0), &l), 0);
        assert_eq!(page_size(Some(7), &l), 7);
        assert_eq!(page_size(Some(5000), &l), 100);
    }

    #[test]
    fn put_rules() {
        let l = StoreLimits::default();
        let req = |items: Vec<KeyValue>, deletes: Vec<KeyValue>| PutObjectRequest {
            store_id: "s".into(),
            global_version: None,
            transaction_items: items,
            delete_items: deletes,
        };
        assert!(put(req(vec![kv("a", 0), kv("b", 3), kv("c", -1)], vec![]), &l).is_ok());
        assert!(put(req(vec![kv("a", -2)], vec![]), &l).is_err());
        assert!(put(req(vec![kv("a", 0)], vec![kv("a", 1)]), &l).is_err());
        assert!(put(req(vec![kv(GLOBAL_VERSION_KEY, 0)], vec![]), &l).is_err());
        assert!(put(req(vec![], vec![kv(GLOBAL_VERSION_KEY, -1)]), &l).is_err());
        assert!(put(req(vec![kv("", 0)], vec![]), &l).is_err());
        assert!(put(req(vec![kv(&"k".repeat(601), 0)], vec![]), &l).is_err());
        let small = StoreLimits {
            max_items_per_put: 2,
            ..l
        };
        assert!(put(req(vec![kv("a", 0), kv("b", 0)], vec![kv("c", 1)]), &small).is_err());
    }

    #[test]
    fn conditions() {
        assert!(WriteCondition::MustNotExist.holds(None));
        assert!(!WriteCondition::MustNotExist.holds(Some(1)));
        assert!(WriteCondition::VersionIs(3).holds(Some(3)));
        assert!(!WriteCondition::VersionIs(3).holds(None));
        assert!(WriteCondition::Any.holds(Some(9)));
        assert_eq!(WriteCondition::VersionIs(3).new_version(), 4);
        assert!(!DeleteCondition::Exists.holds(None));
        assert!(DeleteCondition::VersionIs(0).holds(Some(0)));
    }
}
