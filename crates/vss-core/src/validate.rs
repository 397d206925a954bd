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
    /// (`None` when the key is not stored).
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
    /// The check phase of a put, in the one order every backend reports:
    /// the global version first, then each write's condition, then each
    /// delete's, each in request order. The first that fails is the answer
    /// (a CONFLICT, converted into the caller's error type `E`) and nothing may
    /// be written.
    ///
    /// `stored_global_version` is asked only when the plan carries a global
    /// version (0 for a store never written); `current_version` answers a key's
    /// stored version (`None` when it is not stored), once per item. Either
    /// may fail with the backend's own error, which is passed on unchanged.
    ///
    /// On success, answers the current version of each write, in request order:
    /// `None` marks the keys this put creates (they take the next creation
    /// sequences of the store, in this order).
    pub fn check<E: From<VssError>>(
        &self,
        stored_global_version: impl FnOnce() -> Result<i64, E>,
        mut current_version: impl FnMut(&str) -> Result<Option<i64>, E>,
    ) -> Result<Vec<Option<i64>>, E> {
        if let Some(expected) = self.global_version {
            let stored = stored_global_version()?;
            if stored != expected {
                return Err(self.global_version_conflict(stored).into());
            }
        }
        let mut current = Vec::with_capacity(self.writes.len());
        for write in &self.writes {
            let version = current_version(&write.key)?;
            if !write.condition.holds(version) {
                return Err(write_conflict(&write.key).into());
            }
            current.push(version);
        }
        for delete in &self.deletes {
            if !delete.condition.holds(current_version(&delete.key)?) {
                return Err(delete_conflict(&delete.key).into());
            }
        }
        Ok(current)
    }

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
        if item.value.len() > limits.max_value_size {
            return Err(VssError::TooLarge(format!(
                "the value of key `{}` is {} bytes, more than this store's limit of {} bytes",
                item.key,
                item.value.len(),
                limits.max_value_size
            )));
        }
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

impl DeletePlan {
    /// Whether the key is deleted when its stored version is `current`
    /// (`None`: it is not stored, and there is nothing to delete).
    pub fn matches(&self, current: Option<i64>) -> bool {
        current.is_some_and(|stored| self.version.is_none_or(|v| v == stored))
    }
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
    /// [`ListPlan::respond`] knows whether another page follows. 0 when the
    /// client asked for no keys (page size 0): nothing needs to be read.
    pub fn fetch_limit(&self) -> usize {
        if self.limit == 0 {
            0
        } else {
            self.limit + 1
        }
    }

    /// Whether a key belongs to this listing's prefix (a literal byte prefix).
    pub fn matches(&self, key: &str) -> bool {
        key.as_bytes().starts_with(self.prefix.as_bytes())
    }

    /// Builds the response from up to [`ListPlan::fetch_limit`] rows, newest
    /// first, all older than `before_sequence` and matching the prefix, read
    /// by a scan that went on until it had that many or reached the end.
    /// `global_version` must have been read before the rows (it is only sent on
    /// the first page).
    pub fn respond(&self, rows: Vec<ListedKey>, global_version: i64) -> ListKeyVersionsResponse {
        self.respond_scanned(rows, None, global_version)
    }

    /// Like [`ListPlan::respond`], for backends whose scan is bounded and may
    /// stop before it found [`ListPlan::fetch_limit`] rows and before the end
    /// of the store (a scan budget, a page of the database's own, a filter that
    /// dropped entries). `scan_stopped_at` is then the creation sequence of the
    /// last entry the scan looked at, matching or not; `None` when the scan
    /// found enough rows or reached the end.
    ///
    /// This cuts the page and makes the token: a full page continues after its
    /// last key; a short page whose scan stopped early continues below the
    /// last entry looked at, so a stretch of keys outside the prefix still
    /// moves the listing forward (the page may even be empty, and is then not
    /// the last); a short page whose scan reached the end is the last (`""`).
    pub fn respond_scanned(
        &self,
        mut rows: Vec<ListedKey>,
        scan_stopped_at: Option<i64>,
        global_version: i64,
    ) -> ListKeyVersionsResponse {
        let next_position = if self.limit == 0 {
            // Nothing was read: the next page starts where this one would have.
            Some(self.before_sequence.unwrap_or(i64::MAX))
        } else if rows.len() > self.limit {
            rows.truncate(self.limit);
            rows.last().map(|last| last.sequence)
        } else {
            scan_stopped_at
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
            next_page_token: Some(
                next_position
                    .map(|position| self.token(position))
                    .unwrap_or_default(),
            ),
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
    fn the_check_phase_reports_the_global_version_then_writes_then_deletes() {
        let l = StoreLimits::default();
        let plan = put(
            PutObjectRequest {
                store_id: "s".into(),
                global_version: Some(3),
                transaction_items: vec![kv("new", 0), kv("old", 2)],
                delete_items: vec![kv("gone", 1)],
            },
            &l,
        )
        .unwrap();
        let stored = |key: &str| -> Result<Option<i64>, VssError> {
            Ok(match key {
                "old" => Some(2),
                "gone" => Some(1),
                _ => None,
            })
        };
        assert_eq!(plan.check(|| Ok(3), stored), Ok(vec![None, Some(2)]));
        // Everything fails: the global version is reported.
        let nothing = |_: &str| -> Result<Option<i64>, VssError> { Ok(Some(9)) };
        assert_eq!(
            plan.check(|| Ok(4), nothing),
            Err(plan.global_version_conflict(4))
        );
        // Writes before deletes, in request order.
        assert_eq!(plan.check(|| Ok(3), nothing), Err(write_conflict("new")));
        let only_delete_fails = |key: &str| -> Result<Option<i64>, VssError> {
            Ok(match key {
                "old" => Some(2),
                _ => None,
            })
        };
        assert_eq!(
            plan.check(|| Ok(3), only_delete_fails),
            Err(delete_conflict("gone"))
        );
        // A lookup failure is passed on as it is.
        let broken = |_: &str| -> Result<Option<i64>, VssError> { Err(VssError::internal("db")) };
        assert_eq!(plan.check(|| Ok(3), broken), Err(VssError::internal("db")));
        // Without a global version in the plan, the stored one is never asked for.
        let plain = put(
            PutObjectRequest {
                store_id: "s".into(),
                global_version: None,
                transaction_items: vec![kv("new", 0)],
                delete_items: vec![],
            },
            &l,
        )
        .unwrap();
        assert_eq!(
            plain.check(|| Err(VssError::internal("not asked")), stored),
            Ok(vec![None])
        );
    }

    #[test]
    fn delete_object_matches_present_keys_of_its_version() {
        let req = |version| DeleteObjectRequest {
            store_id: "s".into(),
            key_value: Some(kv("k", version)),
        };
        let any = delete(req(-1)).unwrap();
        assert!(any.matches(Some(7)));
        assert!(!any.matches(None));
        let exact = delete(req(2)).unwrap();
        assert!(exact.matches(Some(2)));
        assert!(!exact.matches(Some(3)));
        assert!(!exact.matches(None));
    }

    fn listed(sequences: &[i64]) -> Vec<ListedKey> {
        sequences
            .iter()
            .map(|&sequence| ListedKey {
                key: format!("k{sequence}"),
                version: 1,
                sequence,
            })
            .collect()
    }

    fn before(plan: &ListPlan, response: &ListKeyVersionsResponse) -> Option<i64> {
        match response.next_page_token.as_deref() {
            Some("") => None,
            Some(token) => Some(
                PageToken::decode(token, &plan.user, &plan.store_id, &plan.prefix)
                    .unwrap()
                    .before_sequence,
            ),
            None => panic!("next_page_token must always be present"),
        }
    }

    #[test]
    fn listing_pages_are_cut_and_resumed_in_one_place() {
        let user = UserToken::new("u").unwrap();
        let plan = |page_size: i32| {
            list(
                &user,
                ListKeyVersionsRequest {
                    store_id: "s".into(),
                    key_prefix: Some("k".into()),
                    page_size: Some(page_size),
                    page_token: None,
                },
                &StoreLimits::default(),
            )
            .unwrap()
        };
        let two = plan(2);
        assert_eq!(two.fetch_limit(), 3);
        // A full page continues after its last key, even when the scan stopped early.
        for stopped in [None, Some(1)] {
            let r = two.respond_scanned(listed(&[9, 8, 7]), stopped, 5);
            assert_eq!(r.key_versions.len(), 2);
            assert_eq!(before(&two, &r), Some(8));
            assert_eq!(r.global_version, Some(5));
        }
        // A short page whose scan stopped early continues below what it looked at.
        let r = two.respond_scanned(listed(&[9]), Some(4), 5);
        assert_eq!((r.key_versions.len(), before(&two, &r)), (1, Some(4)));
        let r = two.respond_scanned(Vec::new(), Some(40), 5);
        assert_eq!((r.key_versions.len(), before(&two, &r)), (0, Some(40)));
        // A short page whose scan reached the end is the last.
        let r = two.respond(listed(&[9, 8]), 5);
        assert_eq!((r.key_versions.len(), before(&two, &r)), (2, None));
        // Page size 0 reads nothing and stays where it is.
        let zero = plan(0);
        assert_eq!(zero.fetch_limit(), 0);
        let r = zero.respond_scanned(Vec::new(), None, 5);
        assert_eq!(before(&zero, &r), Some(i64::MAX));
        assert_eq!(r.global_version, Some(5));
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
