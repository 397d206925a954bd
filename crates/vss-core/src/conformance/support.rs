//! Small helpers the conformance tests are written with.

use bytes::Bytes;

use super::{unique_name, unique_user, Subject, TestError};
use crate::proto::{
    DeleteObjectRequest, GetObjectRequest, KeyValue, ListKeyVersionsRequest,
    ListKeyVersionsResponse, PutObjectRequest,
};
use crate::{KvStore, UserToken, VssError};

/// Fails the test with a message unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::conformance::TestError::Failed(format!($($msg)+)));
        }
    };
}

/// Fails the test unless both sides are equal, showing both.
macro_rules! ensure_eq {
    ($left:expr, $right:expr, $($msg:tt)+) => {{
        let (left, right) = (&$left, &$right);
        if left != right {
            return Err($crate::conformance::TestError::Failed(format!(
                "{}: got {:?}, expected {:?}", format!($($msg)+), left, right
            )));
        }
    }};
}

pub(crate) use {ensure, ensure_eq};

/// Which protocol error an answer was, ignoring its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// NO_SUCH_KEY.
    NoSuchKey,
    /// CONFLICT.
    Conflict,
    /// INVALID_REQUEST.
    InvalidRequest,
    /// AUTH.
    Auth,
    /// INTERNAL.
    Internal,
    /// A value larger than the store holds (INVALID_REQUEST on the wire, HTTP 413).
    TooLarge,
    /// Over a quota (INVALID_REQUEST on the wire, HTTP 507).
    QuotaExceeded,
}

/// The kind of an error.
pub fn kind(err: &VssError) -> Kind {
    match err {
        VssError::NoSuchKey(_) => Kind::NoSuchKey,
        VssError::Conflict(_) => Kind::Conflict,
        VssError::InvalidRequest(_) => Kind::InvalidRequest,
        VssError::Auth(_) => Kind::Auth,
        VssError::Internal(_) => Kind::Internal,
        VssError::TooLarge(_) => Kind::TooLarge,
        VssError::QuotaExceeded(_) => Kind::QuotaExceeded,
    }
}

/// Turns an unexpected store error into a test failure.
pub fn unexpected(what: &str, err: VssError) -> TestError {
    TestError::Failed(format!("{what} failed unexpectedly: {err}"))
}

/// A key-value item for requests.
pub fn kv(key: &str, version: i64, value: &[u8]) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        version,
        value: Bytes::copy_from_slice(value),
    }
}

/// One test's view of the subject: a fresh store id and user, and shorthand for calls.
#[derive(Clone)]
pub struct Ctx {
    /// The store under test.
    pub store: std::sync::Arc<dyn KvStore>,
    /// This test's user.
    pub user: UserToken,
    /// This test's store id.
    pub store_id: String,
}

impl Ctx {
    /// A context with a fresh user and store id.
    pub fn new(subject: &Subject) -> Self {
        Ctx {
            store: subject.store.clone(),
            user: unique_user(),
            store_id: unique_name("store"),
        }
    }

    /// The same store, under another store id of the same user.
    pub fn other_store(&self, store_id: &str) -> Self {
        Ctx {
            store_id: store_id.to_string(),
            ..self.clone()
        }
    }

    /// The same store id, under another user.
    pub fn other_user(&self) -> Self {
        Ctx {
            user: unique_user(),
            ..self.clone()
        }
    }

    /// `putObjects` with writes, deletes and an optional global version.
    pub async fn put_full(
        &self,
        global_version: Option<i64>,
        items: Vec<KeyValue>,
        deletes: Vec<KeyValue>,
    ) -> Result<(), VssError> {
        let req = PutObjectRequest {
            store_id: self.store_id.clone(),
            global_version,
            transaction_items: items,
            delete_items: deletes,
        };
        self.store.put(&self.user, req).await.map(|_| ())
    }

    /// `putObjects` of writes and deletes, judged by `quota`.
    pub async fn put_with_quota(
        &self,
        quota: crate::Quota,
        items: Vec<KeyValue>,
        deletes: Vec<KeyValue>,
    ) -> Result<(), VssError> {
        let req = PutObjectRequest {
            store_id: self.store_id.clone(),
            global_version: None,
            transaction_items: items,
            delete_items: deletes,
        };
        self.store
            .put_with_quota(&self.user, req, quota)
            .await
            .map(|_| ())
    }

    /// `putObjects` of items only.
    pub async fn put(&self, items: Vec<KeyValue>) -> Result<(), VssError> {
        self.put_full(None, items, Vec::new()).await
    }

    /// Writes one key with the given version, failing the test if that fails.
    pub async fn must_put(&self, key: &str, version: i64, value: &[u8]) -> Result<(), TestError> {
        self.put(vec![kv(key, version, value)])
            .await
            .map_err(|e| unexpected(&format!("put of `{key}` with version {version}"), e))
    }

    /// `getObject`, answering the stored (version, value).
    pub async fn get(&self, key: &str) -> Result<(i64, Bytes), VssError> {
        let req = GetObjectRequest {
            store_id: self.store_id.clone(),
            key: key.to_string(),
        };
        let resp = self.store.get(&self.user, req).await?;
        let value = resp
            .value
            .ok_or_else(|| VssError::internal("getObject answered without a value"))?;
        if value.key != key {
            return Err(VssError::internal(format!(
                "getObject of `{key}` answered key `{}`",
                value.key
            )));
        }
        Ok((value.version, value.value))
    }

    /// Reads a key that must exist, failing the test otherwise.
    pub async fn must_get(&self, key: &str) -> Result<(i64, Bytes), TestError> {
        self.get(key)
            .await
            .map_err(|e| unexpected(&format!("get of `{key}`"), e))
    }

    /// The version of a key, or `None` when it is not stored; other errors fail the test.
    pub async fn version_of(&self, key: &str) -> Result<Option<i64>, TestError> {
        match self.get(key).await {
            Ok((version, _)) => Ok(Some(version)),
            Err(VssError::NoSuchKey(_)) => Ok(None),
            Err(e) => Err(unexpected(&format!("get of `{key}`"), e)),
        }
    }

    /// The store's global version, read through the reserved key.
    pub async fn global_version(&self) -> Result<i64, TestError> {
        Ok(self.must_get(crate::validate::GLOBAL_VERSION_KEY).await?.0)
    }

    /// `deleteObject`.
    pub async fn delete(&self, key: &str, version: i64) -> Result<(), VssError> {
        let req = DeleteObjectRequest {
            store_id: self.store_id.clone(),
            key_value: Some(kv(key, version, b"")),
        };
        self.store.delete(&self.user, req).await.map(|_| ())
    }

    /// One `listKeyVersions` page.
    pub async fn list_page(
        &self,
        prefix: Option<&str>,
        page_size: Option<i32>,
        page_token: Option<String>,
    ) -> Result<ListKeyVersionsResponse, VssError> {
        let req = ListKeyVersionsRequest {
            store_id: self.store_id.clone(),
            key_prefix: prefix.map(str::to_string),
            page_size,
            page_token,
        };
        self.store.list_key_versions(&self.user, req).await
    }

    /// Every listed (key, version), following pages to the end, checking the
    /// paging rules on the way: every page has a token, values are empty,
    /// pages respect the size, the global version is on the first page only.
    pub async fn list_all(
        &self,
        prefix: Option<&str>,
        page_size: Option<i32>,
    ) -> Result<Vec<(String, i64)>, TestError> {
        let mut out = Vec::new();
        let mut token = None;
        let max = page_size
            .filter(|s| *s > 0)
            .map(|s| s.min(self.store.limits().max_page_size))
            .unwrap_or(self.store.limits().default_page_size);
        // Enough rounds for any short pages; a listing that never ends fails.
        for round in 0..100_000 {
            let first = token.is_none();
            let page = self
                .list_page(prefix, page_size, token.clone())
                .await
                .map_err(|e| unexpected("listKeyVersions", e))?;
            ensure!(
                page.global_version.is_some() == first,
                "global_version must be present on the first page only (page {round})"
            );
            ensure!(
                page.key_versions.len() <= usize::try_from(max).unwrap_or(0),
                "page {round} holds {} keys, more than the page size {max}",
                page.key_versions.len()
            );
            for item in page.key_versions {
                ensure!(
                    item.value.is_empty(),
                    "listing returned a value for `{}`",
                    item.key
                );
                out.push((item.key, item.version));
            }
            match page.next_page_token {
                None => {
                    return Err(TestError::Failed(
                        "next_page_token must always be present".into(),
                    ))
                }
                Some(t) if t.is_empty() => return Ok(out),
                Some(t) => token = Some(t),
            }
        }
        Err(TestError::Failed(
            "listing did not reach its last page".into(),
        ))
    }

    /// The keys of a full listing, in listed order.
    pub async fn list_keys(&self, prefix: Option<&str>) -> Result<Vec<String>, TestError> {
        Ok(self
            .list_all(prefix, None)
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }
}

/// Asserts that a call failed with the given kind of error.
pub fn expect_err<T: std::fmt::Debug>(
    result: Result<T, VssError>,
    want: Kind,
    what: &str,
) -> Result<(), TestError> {
    match result {
        Err(e) if kind(&e) == want => Ok(()),
        Err(e) => Err(TestError::Failed(format!(
            "{what}: expected {want:?}, got {:?} ({e})",
            kind(&e)
        ))),
        Ok(v) => Err(TestError::Failed(format!(
            "{what}: expected {want:?}, but it succeeded with {v:?}"
        ))),
    }
}
